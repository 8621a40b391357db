//! What every binary does before it runs: `--help` and `--version`, flags, logging
//! (kept in [`crate::logging`]), the file-descriptor limit. Reading config files is
//! [`crate::config`]'s.

use std::str::FromStr;

use crate::config::{parse_value, ConfigError};
use crate::StartError;

/// Takes a binary's flags: its config overrides and the `--log-level`, if given.
pub type ParseFlags<O> = fn(&mut pico_args::Arguments) -> Result<(O, Option<String>), ConfigError>;

/// What a daemon's `main` does: `--help` and `--version`, then `parse` the flags,
/// start logging, `load` the config and `run`. Bad flags or config exit 2 with the
/// place named; a failure to start exits 1; a clean shutdown exits 0.
pub fn daemon_main<O, C>(
    name: &str,
    help: &str,
    parse: ParseFlags<O>,
    load: fn(&O) -> Result<C, ConfigError>,
    run: fn(C) -> Result<(), StartError>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let usage_error = |e: &ConfigError| {
        eprintln!("{name}: {e}");
        ExitCode::from(2)
    };
    let mut args = pico_args::Arguments::from_env();
    if let Some(done) = help_or_version(&mut args, name, help) {
        return done;
    }
    let (overrides, log_level) = match parse(&mut args) {
        Ok(v) => v,
        Err(e) => return usage_error(&e),
    };
    if let Err(e) = init_logging(log_level.as_deref()) {
        return usage_error(&e);
    }
    let config = match load(&overrides) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Answers `-h`/`--help` with `help` and `-V`/`--version` with the version, if asked.
pub fn help_or_version(
    args: &mut pico_args::Arguments,
    name: &str,
    help: &str,
) -> Option<std::process::ExitCode> {
    if args.contains(["-h", "--help"]) {
        print!("{help}");
    } else if args.contains(["-V", "--version"]) {
        println!("{name} {}", env!("CARGO_PKG_VERSION"));
    } else {
        return None;
    }
    Some(std::process::ExitCode::SUCCESS)
}

/// Logging lives in [`crate::logging`]; `daemon_main` and the demo start it from here.
pub use crate::logging::init_logging;

/// Raises the soft open-file limit to the hard one, so a manager can hold as many
/// servants as the host allows. Returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

/// Raises the soft open-file limit towards `want`, as far as the hard limit allows,
/// never lowering it: a daemon whose caps need `want` descriptors gets no more
/// room than that to be flooded in. Returns the limit now in force.
pub fn raise_fd_limit_to(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let target = want.min(lim.rlim_max);
        if lim.rlim_cur < target {
            let raised = libc::rlimit {
                rlim_cur: target,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return target;
            }
        }
    }
    lim.rlim_cur
}

/// The value of `flag` if given, parsed; errors name the flag and what it needs.
pub fn opt_flag<T: FromStr>(
    args: &mut pico_args::Arguments,
    flag: &'static str,
    expected: &str,
) -> Result<Option<T>, ConfigError> {
    match args.opt_value_from_str::<_, String>(flag) {
        Ok(Some(text)) => parse_value(&text, expected)
            .map(Some)
            .map_err(|reason| ConfigError::new(flag, reason)),
        Ok(None) => Ok(None),
        Err(pico_args::Error::OptionWithoutAValue(_)) => {
            Err(ConfigError::new(flag, format!("needs a value: {expected}")))
        }
        Err(e) => Err(ConfigError::new(flag, e.to_string())),
    }
}

/// Fails on any argument left after the known flags were taken.
pub fn no_more_args(args: &mut pico_args::Arguments) -> Result<(), ConfigError> {
    let rest = std::mem::replace(args, pico_args::Arguments::from_vec(Vec::new())).finish();
    match rest.first() {
        Some(extra) => Err(ConfigError::new(
            extra.to_string_lossy(),
            "unknown argument (see --help)",
        )),
        None => Ok(()),
    }
}
