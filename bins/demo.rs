//! `p2pchat-demo`: a manager and three servants on loopback chatting. Parses the
//! arguments (`--nat`, `--private`) and runs [`p2pchat_harness::demo`]; with the hidden `--demo-role`, which
//! that demo starts this executable with, plays a daemon ([`p2pchat::play`]).

use std::process::ExitCode;

use p2pchat::config::ConfigError;
use p2pchat::{cli, play};
use p2pchat_harness::demo;

const HELP: &str = "\
p2pchat-demo - a p2pchat network on loopback, for a first look

Starts a connection manager on 127.0.0.1 and three servants, alice, bob and carol,
on 127.0.0.2, 127.0.0.3 and 127.0.0.4; has each say a line; prints every servant's
window (the lines it showed, in order) and its user list; then shuts them all down.
Uses the connmgr and servant binaries next to p2pchat-demo when they are at least as new
(else it plays their parts itself).

With --nat (root only, needs `ip` and `nft`), builds a small internet out of
network namespaces instead: the manager, alice and bob on a public segment, carol
behind a NAT router that drops inbound connections. Nobody can reach carol, so the
manager has her pull from a relay; then all three chat. Everything is removed after.

With --private, the same conversation on a private network (docs/PRIVATE.md): the
demo makes a key for the manager and for each servant with `connmgr keygen` and
`servant keygen` (mode 0600) and a members file naming alice, bob and carol by
their keys, in a temporary folder; every link is a Noise session and each line
shows under the name the members file gives its sender's key. The folder is
removed after.

USAGE:
    p2pchat-demo [--nat | --private]

OPTIONS:
    --nat            the servant-behind-a-router demo (root)
    --private        the private-network demo, with its own keys
    -h, --help       print this help
    -V, --version    print the version

EXIT STATUS: 0 when the conversation went through, 1 if a step failed (it says
which), 2 for arguments.
";

fn main() -> ExitCode {
    let mut args = pico_args::Arguments::from_env();
    if let Some(done) = cli::help_or_version(&mut args, "p2pchat-demo", HELP) {
        return done;
    }
    match args.opt_value_from_str::<_, String>(demo::ROLE) {
        Ok(Some(role)) => return play::play(demo::ROLE, &role, &mut args),
        Ok(None) => {}
        Err(e) => return usage_error(&ConfigError::new(demo::ROLE, e.to_string())),
    }
    let nat = args.contains("--nat");
    let private = args.contains("--private");
    if nat && private {
        return usage_error(&ConfigError::new("--private", "not with --nat"));
    }
    if let Err(e) = cli::no_more_args(&mut args) {
        return usage_error(&e);
    }
    if let Err(e) = cli::init_logging(Some("warn")) {
        return usage_error(&e);
    }
    let run = match (nat, private) {
        (true, _) => demo::run_nat,
        (_, true) => demo::run_private,
        _ => demo::run,
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p2pchat-demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage_error(e: &ConfigError) -> ExitCode {
    eprintln!("p2pchat-demo: {e}");
    ExitCode::from(2)
}
