//! What every binary does before it runs: `--help` and `--version`, flags, logging,
//! the file-descriptor limit. Reading config files is [`crate::config`]'s.

use std::str::FromStr;

use log::LevelFilter;

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

/// Starts logging to stderr at `flag`'s level, else `RUST_LOG`'s, else `info`.
pub fn init_logging(flag: Option<&str>) -> Result<(), ConfigError> {
    let (place, text) = match flag {
        Some(l) => ("--log-level", l.to_string()),
        None => match std::env::var("RUST_LOG") {
            Ok(l) if !l.trim().is_empty() => ("RUST_LOG", l),
            _ => ("default", "info".to_string()),
        },
    };
    let level = LevelFilter::from_str(text.trim()).map_err(|_| {
        ConfigError::new(
            place,
            format!("{text:?} is not a log level (off, error, warn, info, debug, trace)"),
        )
    })?;
    static LOGGER: StderrLogger = StderrLogger;
    log::set_logger(&LOGGER).map_err(|e| ConfigError::new("logging", e.to_string()))?;
    log::set_max_level(level);
    Ok(())
}

/// Writes `2026-11-22T03:21:44.380Z INFO  [p2pchat::connmgr] message` lines to stderr.
///
/// Not `simple_logger`: it writes with `eprintln!`, which panics when stderr fails
/// (a closed log pipe), and a daemon must not die because its log reader did.
/// A line that cannot be written is dropped.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        use std::fmt::Write as _;
        let mut line = String::with_capacity(128);
        push_utc_timestamp(&mut line, std::time::SystemTime::now());
        let _ = writeln!(
            line,
            " {:<5} [{}] {}",
            record.level(),
            record.target(),
            record.args()
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }

    fn flush(&self) {}
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, as in Howard Hinnant's date algorithms).
fn push_utc_timestamp(out: &mut String, t: std::time::SystemTime) {
    use std::fmt::Write as _;
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    );
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_iso_8601() {
        let at = |secs: u64, millis: u64| {
            let mut s = String::new();
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(secs * 1000 + millis);
            push_utc_timestamp(&mut s, t);
            s
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_318_904, 380), "2026-11-22T03:41:44.380Z");
        assert_eq!(at(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }
}
