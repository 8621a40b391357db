//! Starting a program and following what it prints: the one way the tests, the
//! benchmarks, `demo` and `churn` start the project's binaries.
//!
//! A [`Process`] is a child whose stderr (its log) and, unless ignored, stdout are
//! read line by line on threads, so the child never blocks on a full pipe however
//! much it logs; a reader that stops looking costs memory up to [`Spawn::keep`]
//! lines per stream, no more. Callers wait for a line containing a pattern with a
//! deadline (never a bare sleep), read the `listening on ADDR` every daemon logs
//! when ready, type lines into stdin, send signals; a child still running when its
//! `Process` drops is killed and reaped.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use p2pchat_harness::Spawn;
//! let m = Spawn::new("target/release/connmgr").args(["--port", "0"]).start()?;
//! let addr = m.listening_addr(Duration::from_secs(10))?;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What every daemon logs once it can take connections.
pub const LISTENING: &str = "listening on ";

/// The flags a servant started by the demo or a benchmark gets: the manager at
/// `connmgr`, the address it binds and stands for, its name, and a half-second
/// poll so that everyone has the peer list soon.
pub fn servant_args<'a>(connmgr: &'a str, bind: &'a str, name: &'a str) -> [&'a str; 8] {
    [
        "--connmgr",
        connmgr,
        "--bind",
        bind,
        "--name",
        name,
        "--poll-interval",
        "500",
    ]
}

/// Lines kept per stream unless [`Spawn::keep`] says otherwise: every line of a
/// test's daemon, a bounded amount of a benchmark's.
const KEEP: usize = 100_000;

/// Called on a reader thread; see [`Spawn::wake_on`].
type Wake = Arc<dyn Fn() + Send + Sync>;

/// How to start a [`Process`]: the command, and how to follow it.
pub struct Spawn {
    cmd: Command,
    name: Option<String>,
    stdout: bool,
    /// Pipes left in the [`Child`] for the caller: (stdout, stderr).
    unread: (bool, bool),
    keep: usize,
    wake: Option<(String, Wake)>,
}

impl Spawn {
    /// Runs `program`, stdin piped, stdout and stderr followed.
    pub fn new(program: impl AsRef<OsStr>) -> Spawn {
        Spawn::command(Command::new(program))
    }

    /// Runs a prepared command (extra environment, `pre_exec` limits) the same way.
    /// `RUST_LOG` is removed: the child logs at the level its flags give, since a
    /// level inherited from the caller could hide the lines waited for.
    pub fn command(mut cmd: Command) -> Spawn {
        cmd.env_remove("RUST_LOG");
        Spawn {
            cmd,
            name: None,
            stdout: true,
            unread: (false, false),
            keep: KEEP,
            wake: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Spawn {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Spawn {
        self.cmd.args(args);
        self
    }

    /// The name used in error messages [default: the program's file name].
    pub fn name(mut self, name: impl Into<String>) -> Spawn {
        self.name = Some(name.into());
        self
    }

    /// Sends stdout to `/dev/null` instead of following it.
    pub fn ignore_stdout(mut self) -> Spawn {
        self.stdout = false;
        self
    }

    /// Leaves stdout a pipe that nothing here reads, in [`Process::child`]: for a
    /// test of a reader that stalls. [`Process::follow_stdout`] starts reading it.
    pub fn unread_stdout(mut self) -> Spawn {
        self.unread.0 = true;
        self
    }

    /// Leaves stderr a pipe that nothing here reads, in [`Process::child`]; see
    /// [`read_line_until`] and [`Process::follow_stderr`].
    pub fn unread_stderr(mut self) -> Spawn {
        self.unread.1 = true;
        self
    }

    /// Keeps at most the last `lines` lines of each stream (at least 1).
    pub fn keep(mut self, lines: usize) -> Spawn {
        self.keep = lines.max(1);
        self
    }

    /// Calls `wake` on the stderr reader thread whenever a line containing
    /// `pattern` arrives, and once when stderr closes (the child exited): for an
    /// event loop that cannot block in [`Process::wait_for`], such as churn's.
    pub fn wake_on(mut self, pattern: &str, wake: impl Fn() + Send + Sync + 'static) -> Spawn {
        self.wake = Some((pattern.to_string(), Arc::new(wake)));
        self
    }

    pub fn start(self) -> io::Result<Process> {
        let Spawn {
            mut cmd,
            name,
            stdout,
            unread,
            keep,
            wake,
        } = self;
        let name = name.unwrap_or_else(|| {
            let program = std::path::Path::new(cmd.get_program());
            program
                .file_name()
                .unwrap_or(program.as_os_str())
                .to_string_lossy()
                .into_owned()
        });
        cmd.stdin(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()),
            )
        })?;
        let stderr = Lines::follow(child.stderr.take_if(|_| !unread.1), keep, wake);
        let stdout = Lines::follow(child.stdout.take_if(|_| !unread.0), keep, None);
        Ok(Process {
            stdin: child.stdin.take(),
            child,
            name,
            stderr,
            stdout,
            keep,
            stderr_seen: AtomicU64::new(0),
            stdout_seen: AtomicU64::new(0),
        })
    }
}

/// A running child whose output is followed line by line (see the module doc).
/// The child and its stdin are public, for a caller that must kill it its own way
/// or close its input.
pub struct Process {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    name: String,
    stderr: Arc<Lines>,
    stdout: Arc<Lines>,
    keep: usize,
    /// Sequence number of the next line each stream's waits look at: a line a
    /// wait has passed is not seen by the next wait, as when reading a pipe.
    stderr_seen: AtomicU64,
    stdout_seen: AtomicU64,
}

impl Process {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts following the stdout left unread ([`Spawn::unread_stdout`]), from
    /// what is in the pipe now.
    pub fn follow_stdout(&mut self) {
        if let Some(pipe) = self.child.stdout.take() {
            self.stdout = Lines::follow(Some(pipe), self.keep, None);
            self.stdout_seen.store(0, Ordering::Relaxed);
        }
    }

    /// Starts following the stderr left unread ([`Spawn::unread_stderr`]).
    pub fn follow_stderr(&mut self) {
        if let Some(pipe) = self.child.stderr.take() {
            self.stderr = Lines::follow(Some(pipe), self.keep, None);
            self.stderr_seen.store(0, Ordering::Relaxed);
        }
    }

    /// The next stderr line containing `pattern`, waiting up to `within`.
    /// Fails with `TimedOut`, or `UnexpectedEof` if the child closed stderr first.
    pub fn wait_for(&self, pattern: &str, within: Duration) -> io::Result<String> {
        self.stderr
            .next(&self.stderr_seen, Some(pattern), within)
            .map_err(|end| self.missing(end, &format!("log {pattern:?}"), within))
    }

    /// Waits for the `listening on ADDR` line and returns the address.
    pub fn listening_addr(&self, within: Duration) -> io::Result<SocketAddr> {
        let line = self.wait_for(LISTENING, within)?;
        let text = line.rsplit(LISTENING).next().unwrap_or_default().trim();
        text.parse().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no address in {line:?}: {e}", self.name),
            )
        })
    }

    /// The next stdout line, waiting up to `within`.
    pub fn stdout_line(&self, within: Duration) -> io::Result<String> {
        self.stdout
            .next(&self.stdout_seen, None, within)
            .map_err(|end| self.missing(end, "print a line", within))
    }

    /// The stdout lines that arrive within `limit`.
    pub fn stdout_lines_within(&self, limit: Duration) -> Vec<String> {
        let end = Instant::now() + limit;
        let mut out = Vec::new();
        while let Ok(line) = self.stdout_line(end.saturating_duration_since(Instant::now())) {
            out.push(line);
        }
        out
    }

    /// Kept stderr lines containing `pattern` (every line, unless [`Spawn::keep`]).
    pub fn count(&self, pattern: &str) -> usize {
        let kept = self.stderr.lock();
        kept.lines.iter().filter(|l| l.contains(pattern)).count()
    }

    /// The kept stderr lines, for error messages.
    pub fn log_text(&self) -> String {
        let kept = self.stderr.lock();
        let lines: Vec<&str> = kept.lines.iter().map(String::as_str).collect();
        lines.join("\n")
    }

    /// Whether the child has closed stderr, which it does by exiting.
    pub fn log_ended(&self) -> bool {
        self.stderr.lock().ended
    }

    /// Writes `line` and a newline to the child's stdin.
    pub fn type_line(&mut self, line: &str) -> io::Result<()> {
        let name = &self.name;
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("{name}'s stdin is closed"),
            )
        })?;
        // One write, so a line is never split between two reads of a reader that
        // does not buffer.
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        stdin
            .write_all(&bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot type into {name}: {e}")))
    }

    /// Sends `signal` (`libc::SIGTERM`, ...) to the child.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped while
        // `self.child` is not waited for, so the pid is still ours.
        if unsafe { libc::kill(self.child.id() as i32, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits up to `within` for the child to exit.
    pub fn wait_exit(&mut self, within: Duration) -> io::Result<ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= end {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} did not exit within {:.1} s",
                        self.name,
                        within.as_secs_f64()
                    ),
                ));
            }
            // Polling the exit status: std offers no wait with a timeout.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn missing(&self, ended: bool, what: &str, within: Duration) -> io::Error {
        let tail = {
            let kept = self.stderr.lock();
            let skip = kept.lines.len().saturating_sub(20);
            let lines: Vec<&str> = kept.lines.iter().skip(skip).map(String::as_str).collect();
            lines.join("\n  ")
        };
        let (kind, why) = if ended {
            (io::ErrorKind::UnexpectedEof, "exited".to_string())
        } else {
            (
                io::ErrorKind::TimedOut,
                format!("did not within {:.1} s", within.as_secs_f64()),
            )
        };
        io::Error::new(
            kind,
            format!(
                "{} was to {what} but {why}; its last log lines:\n  {tail}",
                self.name
            ),
        )
    }
}

/// Reads `pipe` byte by byte up to a line containing `pattern` and returns that
/// line, taking nothing past it: for a pipe left unread ([`Spawn::unread_stderr`]),
/// whose readiness line is wanted and the rest not. Fails at `within`, or when
/// the pipe closes first.
pub fn read_line_until(
    pipe: &mut (impl Read + AsRawFd),
    pattern: &str,
    within: Duration,
) -> io::Result<String> {
    let end = Instant::now() + within;
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let mut fd = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd that lives through the call.
        let ready =
            unsafe { libc::poll(&mut fd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if ready == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no line with {pattern:?} within {:.1} s",
                    within.as_secs_f64()
                ),
            ));
        }
        if pipe.read(&mut byte)? == 0 {
            let e = format!("the pipe closed before a line with {pattern:?}");
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, e));
        }
        if byte[0] != b'\n' {
            line.push(byte[0]);
            continue;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        if text.contains(pattern) {
            return Ok(text);
        }
        line.clear();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One output stream's lines, filled by a reader thread and waited on by the
/// [`Process`].
#[derive(Default)]
struct Lines {
    kept: Mutex<Kept>,
    arrived: Condvar,
}

#[derive(Default)]
struct Kept {
    lines: VecDeque<String>,
    /// Sequence number of `lines[0]`: how many older lines were let go.
    dropped: u64,
    /// The stream closed.
    ended: bool,
}

impl Lines {
    /// Starts a thread reading `pipe` to its end, keeping the last `keep` lines.
    fn follow(
        pipe: Option<impl Read + Send + 'static>,
        keep: usize,
        wake: Option<(String, Wake)>,
    ) -> Arc<Lines> {
        let lines = Arc::new(Lines::default());
        let Some(pipe) = pipe else {
            lines.lock().ended = true;
            return lines;
        };
        let shared = lines.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                // Bytes, not `lines()`: a line that is not UTF-8 must not stop the
                // reading, or the child would block on a full pipe.
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&raw);
                let line = text.trim_end_matches(['\n', '\r']).to_string();
                let wakes = wake.as_ref().filter(|(p, _)| line.contains(p.as_str()));
                {
                    let mut kept = shared.lock();
                    if kept.lines.len() == keep {
                        kept.lines.pop_front();
                        kept.dropped += 1;
                    }
                    kept.lines.push_back(line);
                }
                shared.arrived.notify_all();
                if let Some((_, wake)) = wakes {
                    wake();
                }
            }
            shared.lock().ended = true;
            shared.arrived.notify_all();
            if let Some((_, wake)) = &wake {
                wake();
            }
        });
        lines
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        // A reader thread cannot panic while holding the lock; recover anyway.
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first line at or after `*seen` containing `pattern` (any line if
    /// `None`), waiting up to `within`; moves `seen` past what it looked at.
    /// `Err(true)` if the stream ended first, `Err(false)` at the deadline.
    fn next(
        &self,
        seen: &AtomicU64,
        pattern: Option<&str>,
        within: Duration,
    ) -> Result<String, bool> {
        let end = Instant::now() + within;
        let mut kept = self.lock();
        loop {
            let from = seen.load(Ordering::Relaxed).max(kept.dropped);
            let skip = (from - kept.dropped) as usize;
            let found = kept
                .lines
                .iter()
                .enumerate()
                .skip(skip)
                .find(|(_, l)| pattern.is_none_or(|p| l.contains(p)));
            if let Some((k, line)) = found {
                seen.store(kept.dropped + k as u64 + 1, Ordering::Relaxed);
                return Ok(line.clone());
            }
            seen.store(kept.dropped + kept.lines.len() as u64, Ordering::Relaxed);
            if kept.ended {
                return Err(true);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(false);
            }
            kept = self
                .arrived
                .wait_timeout(kept, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests;
