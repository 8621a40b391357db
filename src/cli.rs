//! What every binary does before it runs: `--help` and `--version`, flags, logging
//! (kept in [`crate::logging`]), the file-descriptor limit. Reading config files is
//! [`crate::config`]'s.

use std::str::FromStr;
use std::time::Duration;

use crate::config::{parse_value, ConfigError};
use crate::StartError;

/// Takes a binary's flags: its config overrides and the `--log-level`, if given.
pub type ParseFlags<O> = fn(&mut pico_args::Arguments) -> Result<(O, Option<String>), ConfigError>;

/// What a daemon's `main` does: `--help` and `--version`, then `parse` the flags,
/// start logging, `load` the config and `run`. Returns the exit status: 2 for bad
/// flags or config (the place named), 1 for a failure to start, 0 after a clean
/// shutdown. A status, not an `ExitCode`, so the static build's C `main` can return
/// it ([`mod@crate::entry`]).
pub fn daemon_main<O, C>(
    name: &str,
    help: &str,
    parse: ParseFlags<O>,
    load: fn(&O) -> Result<C, ConfigError>,
    run: fn(C) -> Result<(), StartError>,
) -> u8 {
    let usage_error = |e: &ConfigError| {
        eprintln!("{name}: {e}");
        2
    };
    let mut args = pico_args::Arguments::from_env();
    if help_or_version(&mut args, name, help).is_some() {
        return 0;
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
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
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
    raise_fd_limit_to(u64::MAX)
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

/// The value of `flag` if given (`--flag VALUE` or `--flag=VALUE`), parsed; errors
/// name the flag and what it needs. A flag given twice is an error, not a choice.
pub fn opt_flag<T: FromStr>(
    args: &mut pico_args::Arguments,
    flag: &'static str,
    expected: &str,
) -> Result<Option<T>, ConfigError> {
    opt_flag_keys(args, flag, flag, expected)
}

/// [`opt_flag`] for a flag with a short name too: `keys` is `["-t", "--target"]`
/// and `name` the long one, for messages.
pub fn opt_flag_keys<T: FromStr, K: Into<pico_args::Keys> + Copy>(
    args: &mut pico_args::Arguments,
    keys: K,
    name: &'static str,
    expected: &str,
) -> Result<Option<T>, ConfigError> {
    let take = |args: &mut pico_args::Arguments| match args.opt_value_from_str::<_, String>(keys) {
        Ok(v) => Ok(v),
        Err(pico_args::Error::OptionWithoutAValue(_)) => {
            Err(ConfigError::new(name, format!("needs a value: {expected}")))
        }
        Err(e) => Err(ConfigError::new(name, e.to_string())),
    };
    let Some(text) = take(args)? else {
        return Ok(None);
    };
    if take(args).map_or(true, |again| again.is_some()) {
        return Err(given_twice(name));
    }
    parse_value(&text, expected)
        .map(Some)
        .map_err(|reason| ConfigError::new(name, reason))
}

/// Whether the switch `flag` (no value) was given; twice is an error.
pub fn switch(args: &mut pico_args::Arguments, flag: &'static str) -> Result<bool, ConfigError> {
    let on = args.contains(flag);
    if on && args.contains(flag) {
        return Err(given_twice(flag));
    }
    Ok(on)
}

fn given_twice(flag: &str) -> ConfigError {
    ConfigError::new(flag, "given twice; give it once")
}

/// What a bare number means in a duration: the unit that flag or element always had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Secs,
}

/// A duration flag: `30s`, `100ms`, `2m`, `1h`, `0.5s`, or a bare number in `bare`
/// units (as the flag always took it).
pub fn opt_duration(
    args: &mut pico_args::Arguments,
    flag: &'static str,
    bare: Unit,
) -> Result<Option<Duration>, ConfigError> {
    opt_duration_keys(args, flag, flag, bare)
}

/// [`opt_duration`] for a flag with a short name too, as [`opt_flag_keys`].
pub fn opt_duration_keys<K: Into<pico_args::Keys> + Copy>(
    args: &mut pico_args::Arguments,
    keys: K,
    name: &'static str,
    bare: Unit,
) -> Result<Option<Duration>, ConfigError> {
    let text: Option<String> = opt_flag_keys(args, keys, name, duration_expected(bare))?;
    text.map(|t| parse_duration(&t, bare).map_err(|reason| ConfigError::new(name, reason)))
        .transpose()
}

fn duration_expected(bare: Unit) -> &'static str {
    match bare {
        Unit::Secs => "a duration such as 30s, 100ms or 2m (a bare number is seconds)",
        Unit::Millis => "a duration such as 100ms, 2s or 1m (a bare number is milliseconds)",
    }
}

/// Parses `30s`, `100ms`, `2m`, `1h`, `1.5s`; a bare number is in `bare` units.
/// The error says what is expected, for a flag or a config element to prefix.
pub fn parse_duration(text: &str, bare: Unit) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "must be {}, not {:?}",
            duration_expected(bare),
            crate::xml::clip(text, 40)
        )
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim_start());
    let nanos_per: u64 = match unit {
        "" => match bare {
            Unit::Millis => 1_000_000,
            Unit::Secs => 1_000_000_000,
        },
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(bad()),
    };
    // Integers only: exact, and no float parser in the static binaries.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) || fraction.len() > 9 {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        let digits: u128 = fraction.parse().map_err(|_| bad())?;
        digits * u128::from(nanos_per) / 10u128.pow(fraction.len() as u32)
    };
    let nanos = whole
        .checked_mul(u128::from(nanos_per))
        .and_then(|n| n.checked_add(fraction_nanos))
        .ok_or_else(bad)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
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

    fn args(list: &[&str]) -> pico_args::Arguments {
        pico_args::Arguments::from_vec(list.iter().map(Into::into).collect())
    }

    #[test]
    fn flags_take_equals_and_refuse_repeats() {
        let mut a = args(&["--port=8585", "--name", "x"]);
        assert_eq!(
            opt_flag::<u16>(&mut a, "--port", "a port").unwrap(),
            Some(8585)
        );
        let mut a = args(&["--port", "1", "--port", "2"]);
        let e = opt_flag::<u16>(&mut a, "--port", "a port").unwrap_err();
        assert_eq!(e.to_string(), "--port: given twice; give it once");
        let mut a = args(&["--port", "1", "--port=2"]);
        assert!(opt_flag::<u16>(&mut a, "--port", "a port").is_err());
        let mut a = args(&["--port"]);
        let e = opt_flag::<u16>(&mut a, "--port", "a port").unwrap_err();
        assert!(e.reason.contains("needs a value"), "{e}");
        let mut a = args(&["-t", "h:1", "--target=h:2"]);
        assert!(opt_flag_keys::<String, _>(&mut a, ["-t", "--target"], "--target", "x").is_err());
        let mut a = args(&["--headless", "--headless"]);
        assert!(switch(&mut a, "--headless").is_err());
        let mut a = args(&["--headless"]);
        assert!(switch(&mut a, "--headless").unwrap());
    }

    #[test]
    fn durations_take_units_and_bare_numbers_keep_theirs() {
        let ms = |t| parse_duration(t, Unit::Millis);
        let s = |t| parse_duration(t, Unit::Secs);
        assert_eq!(s("30"), Ok(Duration::from_secs(30)));
        assert_eq!(ms("100"), Ok(Duration::from_millis(100)));
        assert_eq!(ms("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(s("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(s("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(s("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(s("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(ms("0.25"), Ok(Duration::from_micros(250)));
        assert_eq!(s("2.000000001"), Ok(Duration::new(2, 1)));
        assert_eq!(s(" 250 ms "), Ok(Duration::from_millis(250)));
        assert_eq!(s("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "-1s",
            "1.s",
            ".5",
            "1.2.3s",
            "1.0000000001s",
            "10 parsecs",
            "1e3",
            "99999999999999999999h",
        ] {
            let e = s(bad).unwrap_err();
            assert!(e.contains("a duration such as 30s"), "{bad}: {e}");
        }
        let mut a = args(&["--idle-timeout=45s"]);
        assert_eq!(
            opt_duration(&mut a, "--idle-timeout", Unit::Secs).unwrap(),
            Some(Duration::from_secs(45))
        );
        let mut a = args(&["--push-interval", "soon"]);
        let e = opt_duration(&mut a, "--push-interval", Unit::Millis).unwrap_err();
        assert_eq!(e.place, "--push-interval");
    }
}
