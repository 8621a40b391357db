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
/// The stamp lives with the filter, below the reactor, whose stderr queue stamps
/// its own note of lost lines the same way.
pub(crate) use crate::logfilter::push_utc_timestamp;
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
