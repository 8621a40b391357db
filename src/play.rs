//! A daemon played inside another executable: what `p2pchat-demo` runs when it
//! starts itself with `--demo-role connmgr|servant` because the sibling binaries
//! are missing or older than it (`cargo run --bin p2pchat-demo` builds only the demo).
//! Only the few flags the demo passes are taken, and `keygen FILE`, which the
//! private demo makes its keys with.

use std::process::ExitCode;

use crate::cli;
use crate::config::ConfigError;
use crate::{connmgr, servant};

/// Plays `role` with the flags left in `args`: exit status 0 after a clean
/// shutdown, 1 if the daemon failed, 2 for a bad part or flag (`flag` names it).
pub fn play(flag: &str, role: &str, args: &mut pico_args::Arguments) -> ExitCode {
    if let Some(done) = keygen(role, args) {
        return done;
    }
    let parsed = (|| {
        let run: Box<dyn FnOnce() -> Result<(), String>> = match role {
            "connmgr" => {
                let o = connmgr::Overrides {
                    bind: cli::opt_flag(args, "--bind", "an IP address")?,
                    port: cli::opt_flag(args, "--port", "a port number")?,
                    relay_dial_timeout: cli::opt_duration(
                        args,
                        "--relay-dial-timeout",
                        cli::Unit::Millis,
                    )?,
                    key: cli::opt_flag(args, "--key", "a key file")?,
                    members: cli::opt_flag(args, "--members", "a members file")?,
                    ..connmgr::Overrides::default()
                };
                Box::new(move || play_connmgr(&o))
            }
            "servant" => {
                let o = servant::Overrides {
                    connmgr: Vec::from_iter(cli::opt_flag(args, "--connmgr", "HOST:PORT")?),
                    bind: cli::opt_flag(args, "--bind", "an IP address")?,
                    name: cli::opt_flag(args, "--name", "a name")?,
                    poll_interval: cli::opt_duration(args, "--poll-interval", cli::Unit::Millis)?,
                    key: cli::opt_flag(args, "--key", "a key file")?,
                    manager_key: cli::opt_flag(args, "--manager-key", "a public key")?,
                    ..servant::Overrides::default()
                };
                Box::new(move || play_servant(o))
            }
            other => return Err(ConfigError::new(flag, format!("no part {other:?}"))),
        };
        cli::no_more_args(args)?;
        cli::init_logging(None)?;
        Ok(run)
    })();
    let run = match parsed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("p2pchat-demo: {e}");
            return ExitCode::from(2);
        }
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `--demo-role connmgr keygen FILE` (or servant's), as the daemon's own
/// `keygen`: `None` when the arguments are not that.
fn keygen(role: &str, args: &mut pico_args::Arguments) -> Option<ExitCode> {
    let rest = args.clone().finish();
    let [verb, file] = rest.as_slice() else {
        return None;
    };
    if verb != "keygen" {
        return None;
    }
    Some(
        match crate::noise::command::keygen(std::path::Path::new(file)) {
            Ok(public) => {
                println!("{public}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{role}: {e}");
                ExitCode::from(1)
            }
        },
    )
}

fn play_connmgr(o: &connmgr::Overrides) -> Result<(), String> {
    let config = connmgr::Config::load(o).map_err(|e| e.to_string())?;
    connmgr::run(config).map_err(|e| e.to_string())
}

fn play_servant(mut o: servant::Overrides) -> Result<(), String> {
    // An empty config, so a config.xml in the current directory plays no part.
    let cfg = std::env::temp_dir().join(format!("p2pchat-demo-{}.xml", std::process::id()));
    o.config = Some(cfg.clone());
    let result = std::fs::write(&cfg, "<config/>\n")
        .map_err(|e| format!("cannot write {}: {e}", cfg.display()))
        .and_then(|()| servant::Config::load(&o).map_err(|e| e.to_string()))
        .and_then(|c| servant::run(c).map_err(|e| e.to_string()));
    let _ = std::fs::remove_file(cfg);
    result
}
