//! Log lines: `2026-11-22T03:21:44.380Z INFO  [p2pchat::connmgr] message` on stderr,
//! through the loop's non-blocking stderr queue ([`crate::reactor::stdio`]); under
//! journald `<6>[p2pchat::connmgr] message`. Which lines pass is
//! [`crate::logfilter`]'s.
//!
//! Two other places a daemon may send them: a file ([`log_to_file`]), and the
//! servant's console ([`route_to_console`]), which owns the terminal that stderr
//! would otherwise scribble over: it shows records as lines of their own above
//! the prompt, so a log line can never break a half-typed line.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use log::{Level, LevelFilter};

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
    ASKED.store(place != "default", Ordering::Relaxed);
    Ok(())
}

/// The level came from `--log-level` or `RUST_LOG`: someone wants these lines.
static ASKED: AtomicBool = AtomicBool::new(false);
/// Records go somewhere other than stderr: [`ROUTE`] says where. Checked first, so
/// a daemon logging to stderr takes no lock per line.
static ROUTED: AtomicBool = AtomicBool::new(false);
static ROUTE: Mutex<Route> = Mutex::new(Route {
    file: None,
    console: false,
    kept: VecDeque::new(),
    dropped: 0,
});
/// Records kept for the console before the oldest are dropped (and counted).
const KEPT: usize = 256;

/// Where records go when not to stderr.
struct Route {
    /// `--log-file`: every record, as a line.
    file: Option<File>,
    /// A console owns the terminal: nothing goes to stderr, and records are kept
    /// in `kept` for it.
    console: bool,
    kept: VecDeque<ConsoleRecord>,
    dropped: u64,
}

/// A log record kept for the console ([`take_for_console`]).
#[derive(Debug)]
pub struct ConsoleRecord {
    pub level: Level,
    pub target: String,
    pub text: String,
}

/// Appends log lines to `path` instead of writing them to stderr. A regular file
/// takes a line at once; a line the file refuses (a full disk) is lost, not waited for.
pub fn log_to_file(path: &Path) -> io::Result<()> {
    let file = File::options().create(true).append(true).open(path)?;
    route().file = Some(file);
    ROUTED.store(true, Ordering::SeqCst);
    Ok(())
}

/// While `on`, the servant's console owns the terminal and no record goes to
/// stderr. The console is kept warnings and errors, and also every record the
/// level lets through when the level was asked for and no log file takes them.
/// Nobody asked for routine lines otherwise, so the level drops to warn and they
/// are not even formatted. Off again when the console gives the terminal back, so
/// that a last error reaches stderr.
pub fn route_to_console(on: bool) {
    let mut route = route();
    route.console = on;
    if on && !ASKED.load(Ordering::Relaxed) && route.file.is_none() {
        log::set_max_level(log::max_level().min(LevelFilter::Warn));
    }
    let routed = on || route.file.is_some();
    drop(route);
    ROUTED.store(routed, Ordering::SeqCst);
}

/// Moves the records kept for the console into `out`; returns how many were
/// dropped because the console did not take them in time.
pub fn take_for_console(out: &mut Vec<ConsoleRecord>) -> u64 {
    let mut route = route();
    out.extend(route.kept.drain(..));
    std::mem::take(&mut route.dropped)
}

fn route() -> MutexGuard<'static, Route> {
    ROUTE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends one formatted record where [`ROUTE`] says; its message starts at `text`.
fn routed(record: &log::Record<'_>, line: &str, text: usize) {
    let mut route = route();
    if let Some(file) = &mut route.file {
        let _ = file.write_all(line.as_bytes());
    }
    if !route.console {
        if route.file.is_none() {
            STDERR.write(line.as_bytes());
        }
        return;
    }
    // Routine lines went to the file, or nobody asked for them (a reload may have
    // raised the level again): not in the chat view.
    if record.level() > Level::Warn && (route.file.is_some() || !ASKED.load(Ordering::Relaxed)) {
        return;
    }
    if route.kept.len() == KEPT {
        route.kept.pop_front();
        route.dropped += 1;
    }
    route.kept.push_back(ConsoleRecord {
        level: record.level(),
        target: record.target().to_string(),
        text: line[text..].trim_end_matches('\n').to_string(),
    });
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
            let routed_away = ROUTED.load(Ordering::Relaxed);
            // Under journald: its priority, and no timestamp (the journal adds its
            // own). A log file gets the plain form.
            let journal = (!routed_away)
                .then(|| crate::logfilter::journal_priority(record.level()))
                .flatten();
            if let Some(p) = journal {
                let _ = write!(line, "<{p}>[{}] ", record.target());
            } else {
                push_utc_timestamp(line, SystemTime::now());
                let _ = write!(line, " {:<5} [{}] ", record.level(), record.target());
            }
            let text = line.len();
            let _ = writeln!(line, "{}", record.args());
            if routed_away {
                routed(record, line, text);
            } else {
                STDERR.write(line.as_bytes());
            }
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
