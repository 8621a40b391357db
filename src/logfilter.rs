//! Which log lines are written, and how they are marked for journald.
//!
//! - [`Filter`]: `RUST_LOG` and `--log-level` in env_logger's syntax, by hand:
//!   `warn`, `p2pchat=debug`, `info,p2pchat::servant=debug`, `off`.
//! - [`announce`]: the readiness line (`listening on ...`) shows at every level but
//!   `off`, so a daemon run at `warn` still says where it listens.
//! - [`journal_priority`]: when stderr is the systemd journal, lines start with a
//!   `<N>` priority and carry no timestamp (the journal stamps them itself).
//! - [`push_utc_timestamp`]: otherwise every line starts with the time in UTC.
//!
//! The filter in force lives here, not in the logger, so a reload can change it and
//! the logger only asks [`enabled`].

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::str::FromStr;
use std::sync::{OnceLock, RwLock};
use std::time::SystemTime;

use log::{Level, LevelFilter, Metadata};

/// A parsed level spec: a default level and per-target levels.
///
/// As env_logger: directives are separated by commas; `LEVEL` sets the default,
/// `TARGET=LEVEL` a target's level and a bare `TARGET` turns on everything for it.
/// A target matches every log target that starts with it, and the longest match
/// wins. Without a bare `LEVEL`, targets that match no directive log nothing.
/// Not supported: env_logger's `/REGEX` message filter (an error, not ignored).
/// Stricter: a bare word that is neither a level nor part of this crate's target
/// names (`loud`, `inf`) is an error, since env_logger would silently log nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// `None`: no bare level was given.
    default: Option<LevelFilter>,
    /// Longest target first, so the first match is the most specific.
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// One level for everything.
    pub fn level(level: LevelFilter) -> Filter {
        Filter {
            default: Some(level),
            targets: Vec::new(),
        }
    }

    /// Parses `info,p2pchat::servant=debug` and the like; the error says what is wrong.
    pub fn parse(spec: &str) -> Result<Filter, String> {
        const LEVELS: &str = "off, error, warn, info, debug or trace";
        if spec.contains('/') {
            return Err(format!(
                "{spec:?}: message filters (/REGEX) are not supported; use LEVEL or TARGET=LEVEL"
            ));
        }
        let mut default = None;
        let mut targets: Vec<(String, LevelFilter)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut pieces = part.split('=').map(str::trim);
            let (target, level) = match (pieces.next(), pieces.next(), pieces.next()) {
                (Some(word), None, None) => match LevelFilter::from_str(word) {
                    Ok(level) => (None, level),
                    Err(_) if ours(word) => (Some(word), LevelFilter::Trace),
                    Err(_) => return Err(format!("{word:?} is not a log level ({LEVELS})")),
                },
                (Some(target), Some(""), None) => (Some(target), LevelFilter::Trace),
                (Some(target), Some(level), None) => match LevelFilter::from_str(level) {
                    Ok(level) => (Some(target), level),
                    Err(_) => return Err(format!("{level:?} is not a log level ({LEVELS})")),
                },
                _ => return Err(format!("{part:?} is not LEVEL or TARGET=LEVEL")),
            };
            match target {
                Some("") => return Err(format!("{part:?} has no target before =")),
                Some(t) => match targets.iter_mut().find(|(have, _)| have == t) {
                    Some(entry) => entry.1 = level,
                    // Kept longest first (no sort: a few entries, and no sort code
                    // in the static binaries).
                    None => {
                        let at = targets
                            .iter()
                            .position(|(have, _)| have.len() < t.len())
                            .unwrap_or(targets.len());
                        targets.insert(at, (t.to_string(), level));
                    }
                },
                None => default = Some(level),
            }
        }
        if default.is_none() && targets.is_empty() {
            return Err(format!("{spec:?} names no level ({LEVELS})"));
        }
        Ok(Filter { default, targets })
    }

    /// The most detailed level allowed for `target`.
    pub fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .find(|(t, _)| target.starts_with(t.as_str()))
            .map(|&(_, level)| level)
            .or(self.default)
            .unwrap_or(LevelFilter::Off)
    }

    /// The most detailed level any target may log at: `log`'s global cut-off.
    pub fn max_level(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|&(_, level)| level)
            .chain(self.default)
            .max()
            .unwrap_or(LevelFilter::Off)
    }
}

/// Whether `target` names this crate or a module in it (`p2pchat`, `p2pchat::servant`).
fn ours(target: &str) -> bool {
    const CRATE: &str = env!("CARGO_CRATE_NAME");
    CRATE.starts_with(target) || target.starts_with(CRATE)
}

/// The spec, written back in a canonical form (`info,p2pchat::servant=debug`).
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(level) = self.default {
            write!(f, "{}", level.as_str().to_ascii_lowercase())?;
            sep = ",";
        }
        // Shortest first reads the way people write it.
        for (target, level) in self.targets.iter().rev() {
            write!(f, "{sep}{target}={}", level.as_str().to_ascii_lowercase())?;
            sep = ",";
        }
        Ok(())
    }
}

/// Where the filter in force came from, which decides whether a config file's
/// `<loglevel>` may replace it: the command line and `RUST_LOG` beat the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Flag => "--log-level",
            Source::Env => "RUST_LOG",
            Source::File => "the config file",
            Source::Default => "the default",
        })
    }
}

static ACTIVE: RwLock<Option<(Filter, Source)>> = RwLock::new(None);

thread_local! {
    /// Set while [`announce`] logs, so [`enabled`] lets its line through.
    static ANNOUNCING: Cell<bool> = const { Cell::new(false) };
}

/// Puts `filter` in force (and `log`'s cut-off with it).
pub fn set(filter: Filter, source: Source) {
    log::set_max_level(filter.max_level());
    *ACTIVE.write().unwrap_or_else(|e| e.into_inner()) = Some((filter, source));
}

/// The filter in force and where it came from, if logging has started.
pub fn current() -> Option<(Filter, Source)> {
    ACTIVE.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A config file's `<loglevel>` (or its absence, `None`), read at start or on a
/// reload: it replaces the filter unless `--log-level` or `RUST_LOG` set it, in
/// which case that source is returned. Without `<loglevel>`, a level that came
/// from a file goes back to the default `info`.
pub fn set_from_file(filter: Option<&Filter>) -> Result<(), Source> {
    match current() {
        Some((_, source @ (Source::Flag | Source::Env))) => Err(source),
        _ => {
            match filter {
                Some(f) => set(f.clone(), Source::File),
                None => set(Filter::level(LevelFilter::Info), Source::Default),
            }
            Ok(())
        }
    }
}

/// A reload read `<loglevel>` `new` where it was `old`: applies it (see
/// [`set_from_file`]) and returns the change to report, if there is one.
pub fn reload(old: Option<&Filter>, new: Option<&Filter>) -> Option<String> {
    if old == new {
        return None;
    }
    let shown = |f: Option<&Filter>| f.map_or_else(|| "(none)".to_string(), ToString::to_string);
    Some(match set_from_file(new) {
        Ok(()) => format!("log level {} -> {}", shown(old), shown(new)),
        Err(source) => format!(
            "<loglevel> {} noted, but {source} sets the log level",
            shown(new)
        ),
    })
}

/// Whether the logger should write a record: the filter in force says so, or it is
/// the readiness line of [`announce`].
pub fn enabled(metadata: &Metadata<'_>) -> bool {
    if ANNOUNCING.with(Cell::get) {
        return true;
    }
    match &*ACTIVE.read().unwrap_or_else(|e| e.into_inner()) {
        Some((filter, _)) => metadata.level() <= filter.level_for(metadata.target()),
        None => metadata.level() <= log::max_level(),
    }
}

/// Logs `args` at info from `target` whatever the level, unless `target`'s level
/// is `off`: for the one line people and scripts wait for (`listening on ...`).
pub fn announce(target: &str, args: fmt::Arguments<'_>) {
    let allowed = current().is_none_or(|(f, _)| f.level_for(target) != LevelFilter::Off);
    if !allowed {
        return;
    }
    ANNOUNCING.with(|a| a.set(true));
    log::logger().log(
        &log::Record::builder()
            .level(Level::Info)
            .target(target)
            .args(args)
            .build(),
    );
    ANNOUNCING.with(|a| a.set(false));
}

/// `announce!("listening on {addr}")`: [`announce`] from the calling module.
#[macro_export]
macro_rules! announce {
    ($($arg:tt)+) => {
        $crate::logfilter::announce(module_path!(), format_args!($($arg)+))
    };
}

/// The `<N>` priority to start a line with when stderr is the journal; `None`
/// when it is not, and lines carry their own timestamp instead.
pub fn journal_priority(level: Level) -> Option<u8> {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    JOURNAL
        .get_or_init(stderr_is_journal)
        .then(|| priority(level))
}

/// sd-daemon(3)'s number for `level`: `<3>` error ... `<7>` debug.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stderr is the journal;
/// it counts only if stderr is still that stream (not redirected by a wrapper).
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat fills a zeroed stat struct for fd 2; nothing else is touched.
    let stat = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(2, &mut st) != 0 {
            return false;
        }
        st
    };
    stat.st_dev == dev && stat.st_ino == ino
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (civil-from-days, as in Howard Hinnant's date algorithms).
pub(crate) fn push_utc_timestamp(out: &mut String, t: SystemTime) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Filter {
        Filter::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    #[test]
    fn a_bare_level_sets_everything() {
        let f = parse("warn");
        assert_eq!(f.level_for("p2pchat::connmgr"), LevelFilter::Warn);
        assert_eq!(f.level_for("mio::poll"), LevelFilter::Warn);
        assert_eq!(f.max_level(), LevelFilter::Warn);
        assert_eq!(parse("OFF").max_level(), LevelFilter::Off);
    }

    #[test]
    fn targets_take_the_longest_match() {
        let f = parse("info, p2pchat::servant=debug ,mio=warn");
        assert_eq!(f.level_for("p2pchat::servant::link"), LevelFilter::Debug);
        assert_eq!(f.level_for("p2pchat::connmgr"), LevelFilter::Info);
        assert_eq!(f.level_for("mio::poll"), LevelFilter::Warn);
        assert_eq!(f.max_level(), LevelFilter::Debug);
        let f = parse("p2pchat=trace,p2pchat::reactor=warn,debug");
        assert_eq!(f.level_for("p2pchat::reactor"), LevelFilter::Warn);
        assert_eq!(f.level_for("p2pchat::connmgr"), LevelFilter::Trace);
        assert_eq!(f.level_for("other"), LevelFilter::Debug);
    }

    #[test]
    fn without_a_bare_level_other_targets_are_off() {
        let f = parse("p2pchat=debug");
        assert_eq!(f.level_for("p2pchat::connmgr"), LevelFilter::Debug);
        assert_eq!(f.level_for("mio::poll"), LevelFilter::Off);
        // A bare target and `target=` mean every level, as in env_logger.
        assert_eq!(parse("p2pchat").level_for("p2pchat::x"), LevelFilter::Trace);
        assert_eq!(
            parse("p2pchat=").level_for("p2pchat::x"),
            LevelFilter::Trace
        );
    }

    #[test]
    fn a_later_directive_for_the_same_target_wins() {
        let f = parse("info,p2pchat=debug,warn,p2pchat=error");
        assert_eq!(f.level_for("p2pchat::servant"), LevelFilter::Error);
        assert_eq!(f.level_for("x"), LevelFilter::Warn);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("p2pchat=loud", "\"loud\" is not a log level"),
            ("loud", "\"loud\" is not a log level"),
            ("info,debgu", "\"debgu\" is not a log level"),
            ("a=b=c", "is not LEVEL or TARGET=LEVEL"),
            ("=debug", "has no target"),
            ("info/listening", "message filters"),
            (" , ", "names no level"),
        ] {
            let e = Filter::parse(spec).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn specs_are_written_back_canonically() {
        assert_eq!(
            parse("INFO,mio=warn,p2pchat::servant=debug").to_string(),
            "info,mio=warn,p2pchat::servant=debug"
        );
        assert_eq!(parse("p2pchat").to_string(), "p2pchat=trace");
    }

    #[test]
    fn priorities_follow_sd_daemon() {
        let got: Vec<u8> = [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ]
        .into_iter()
        .map(priority)
        .collect();
        assert_eq!(got, [3, 4, 6, 7, 7]);
    }

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
