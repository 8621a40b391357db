//! Log lines: `2026-11-22T03:21:44.380Z INFO  [p2pchat::connmgr] message` on stderr,
//! through the loop's non-blocking stderr queue ([`crate::reactor::stdio`]); under
//! journald `<6>[p2pchat::connmgr] message`. Which lines pass is
//! [`crate::logfilter`]'s.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::SystemTime;

use crate::config::ConfigError;
use crate::reactor::stdio::STDERR;

/// Starts logging to stderr at `flag`'s level, else `RUST_LOG`'s, else `info`; either
/// takes env_logger's syntax ([`crate::logfilter::Filter`]).
pub fn init_logging(flag: Option<&str>) -> Result<(), ConfigError> {
    use crate::logfilter::{self, Filter, Source};
    let (place, text, source) = match flag {
        Some(l) => ("--log-level", l.to_string(), Source::Flag),
        None => match std::env::var("RUST_LOG") {
            Ok(l) if !l.trim().is_empty() => ("RUST_LOG", l, Source::Env),
            _ => ("default", "info".to_string(), Source::Default),
        },
    };
    let filter = Filter::parse(&text).map_err(|reason| ConfigError::new(place, reason))?;
    static LOGGER: StderrLogger = StderrLogger;
    log::set_logger(&LOGGER).map_err(|e| ConfigError::new("logging", e.to_string()))?;
    logfilter::set(filter, source);
    Ok(())
}

/// Formats each record as one line and queues it for stderr.
///
/// Not `simple_logger`: it writes with `eprintln!`, which panics when stderr fails
/// (a closed log pipe) and blocks when its reader stalls, and a daemon must neither
/// die nor freeze because of its log reader. Here lines go through the loop's
/// bounded, non-blocking stderr queue: a line that cannot be written is dropped,
/// and counted.
struct StderrLogger;

thread_local! {
    /// Reused for every line this thread formats: logging allocates nothing per line.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        crate::logfilter::enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let write = |line: &mut String| {
            line.clear();
            // Under journald: its priority, and no timestamp (the journal adds its own).
            if let Some(p) = crate::logfilter::journal_priority(record.level()) {
                let _ = writeln!(line, "<{p}>[{}] {}", record.target(), record.args());
            } else {
                push_utc_timestamp(line, SystemTime::now());
                let _ = writeln!(
                    line,
                    " {:<5} [{}] {}",
                    record.level(),
                    record.target(),
                    record.args()
                );
            }
            STDERR.write(line.as_bytes());
        };
        // A record whose formatting logs, or a line logged while the thread exits,
        // gets a buffer of its own.
        let reused = LINE.try_with(|l| l.try_borrow_mut().map(|mut l| write(&mut l)).is_ok());
        if reused != Ok(true) {
            write(&mut String::new());
        }
    }

    fn flush(&self) {}
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
