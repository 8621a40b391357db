//! `servant`: a chat peer. Parses flags, starts logging, runs.

use std::process::ExitCode;

use p2pchat::cli;
use p2pchat::config::ConfigError;
use p2pchat::servant::{self, Overrides};

const HELP: &str = "\
servant - a p2pchat peer

Asks the connection manager for the peer list (at start, then every poll interval,
and takes the lists it pushes), listens on the port the manager assigns, and sends
each line typed on stdin to every peer, itself included. What peers send is printed
on stdout, one message per line; logs go to stderr.

USAGE:
    servant [OPTIONS]

OPTIONS:
    --config FILE          the article's config.xml (see conf/config.xml)
                           [default: ./config.xml; if it is missing, the article's
                           defaults: manager 127.0.0.1:85, no bans]
    --connmgr HOST[:PORT]  the connection manager (address or host name); overrides
                           <connectionmgr>
    --port N               the connection manager's port; overrides both [default: 85]
    --bind ADDR            local address for the listener and all outgoing connections,
                           so servants on one host can stand for 127.0.0.2, 127.0.0.3, ...
                           [default: listen on every interface, :: or 0.0.0.0]
    --name NAME            prefix outgoing lines with `NAME: `; overrides <name>
    --poll-interval MS     ask for the peer list every MS milliseconds, at least 100
                           [default: 2000]
    --max-peers N          refuse a peer list longer than this, keeping the last good
                           one; each entry costs a connection per line [default: 10000]
    --headless             do not read stdin; run until SIGINT or SIGTERM
    --log-level LEVEL      off, error, warn, info, debug or trace [default: $RUST_LOG or info]
    -h, --help             print this help
    -V, --version          print the version

INPUT:
    A line is chat. /peers prints the user list (* marks this servant, then port and
    address), /help the commands, /quit leaves. //text sends /text. An unknown
    /command is an error on stderr, not chat.
    On a terminal there is a `> ` prompt; Ctrl-D leaves.
    From a pipe or file, end of input leaves once every line has been delivered
    (at most 5 s later). Lines typed before the first peer list are held and
    sent when it arrives. With stdin at /dev/null, or --headless, it runs until
    SIGINT or SIGTERM.

When it listens it logs `listening on ADDR:PORT`, and `peers: N (...)` whenever the
list changes. If the manager goes away it keeps chatting with the peers it knows and
reconnects with backoff (0.1 s doubling to 5 s).

EXIT STATUS: 0 after leaving cleanly, 1 if it could not start, 2 for bad options or config.
";

fn main() -> ExitCode {
    cli::daemon_main("servant", HELP, parse, servant::Config::load, servant::run)
}

fn parse(args: &mut pico_args::Arguments) -> Result<(Overrides, Option<String>), ConfigError> {
    let o = Overrides {
        headless: args.contains("--headless"),
        config: cli::opt_flag(args, "--config", "a file name")?,
        connmgr: cli::opt_flag(args, "--connmgr", "HOST or HOST:PORT")?,
        port: cli::opt_flag(args, "--port", "a port number from 1 to 65535")?,
        bind: cli::opt_flag(args, "--bind", "an IP address such as 127.0.0.2")?,
        name: cli::opt_flag(args, "--name", "a name")?,
        poll_interval: cli::opt_flag(args, "--poll-interval", "a number of milliseconds")?,
        max_peers: cli::opt_flag(args, "--max-peers", "a number of peers")?,
    };
    let log_level = cli::opt_flag(args, "--log-level", "a log level")?;
    cli::no_more_args(args)?;
    Ok((o, log_level))
}
