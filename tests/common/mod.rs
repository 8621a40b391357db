//! Shared by the integration tests: start a real binary, follow its stderr for
//! readiness lines with deadlines, and kill it when the guard drops.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running binary whose stderr (and stdout) lines are collected as they come.
pub struct Daemon {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    stderr: Receiver<String>,
    stdout: Receiver<String>,
    /// Every stderr line seen so far, for failure messages and counting.
    pub log: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl Daemon {
    /// Starts `bin` with `args`, stdin piped, stdout and stderr followed.
    pub fn spawn(bin: &str, args: &[&str]) -> Daemon {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        Daemon::spawn_command(cmd)
    }

    /// Starts a prepared command (extra environment, limits) the same way.
    pub fn spawn_command(mut cmd: Command) -> Daemon {
        let bin = cmd.get_program().to_string_lossy().into_owned();
        let bin = bin.as_str();
        let mut child = cmd
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = follow(child.stderr.take().unwrap(), Some(log.clone()));
        let stdout = follow(child.stdout.take().unwrap(), None);
        let name = std::path::Path::new(bin)
            .file_name()
            .map_or(bin.to_string(), |n| n.to_string_lossy().into_owned());
        Daemon {
            stdin: child.stdin.take(),
            child,
            stderr,
            stdout,
            log,
            name,
        }
    }

    /// Waits for a stderr line containing `pattern`; panics with the log on timeout.
    pub fn wait_for(&self, pattern: &str) -> String {
        self.wait_for_within(pattern, DEADLINE).unwrap_or_else(|| {
            panic!(
                "{} never logged {pattern:?}; log:\n{}",
                self.name,
                self.log_text()
            )
        })
    }

    /// Like `wait_for`, but returns `None` at the deadline instead of panicking.
    pub fn wait_for_within(&self, pattern: &str, limit: Duration) -> Option<String> {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(pattern) => return Some(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Waits for the `listening on ADDR:PORT` line and returns the address.
    pub fn listening_addr(&self) -> SocketAddr {
        let line = self.wait_for("listening on ");
        let addr = line.rsplit("listening on ").next().unwrap().trim();
        addr.parse()
            .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
    }

    /// The next stdout line, within the deadline.
    pub fn stdout_line(&self) -> Option<String> {
        self.stdout.recv_timeout(DEADLINE).ok()
    }

    /// Stdout lines that arrive within `limit`.
    pub fn stdout_lines_within(&self, limit: Duration) -> Vec<String> {
        let end = Instant::now() + limit;
        let mut out = Vec::new();
        while let Ok(l) = self
            .stdout
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            out.push(l);
        }
        out
    }

    /// Writes a line to the child's stdin.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("child stdin");
        stdin.flush().unwrap();
    }

    /// Stderr lines so far containing `pattern`.
    pub fn count(&self, pattern: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(pattern))
            .count()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. libc::SIGTERM) to the child.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the child to exit within the deadline; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(10)); // polling a child's exit, not a readiness wait
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn follow(
    pipe: impl Read + Send + 'static,
    log: Option<Arc<Mutex<Vec<String>>>>,
) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(log) = &log {
                log.lock().unwrap().push(line.clone());
            }
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts a connection manager on 127.0.0.1 with an OS-chosen port.
pub fn connmgr(extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec!["--bind", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    let d = Daemon::spawn(env!("CARGO_BIN_EXE_connmgr"), &args);
    let addr = d.listening_addr();
    (d, addr)
}

/// A client connection with read timeouts, so nothing hangs.
pub fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Reads exactly one peer document (through `</peers>\r\n`), leaving whatever
/// follows it (a pushed document, say) unread for the next call.
pub fn read_doc(s: &mut TcpStream) -> String {
    const END: &[u8] = b"</peers>\r\n";
    let mut doc = Vec::new();
    let mut peeked = vec![0u8; 1 << 20];
    loop {
        let n = s.peek(&mut peeked).expect("reading a peer document");
        assert!(
            n > 0,
            "connection closed mid-document: {:?}",
            String::from_utf8_lossy(&doc)
        );
        // The end may straddle what was read already and what is waiting.
        let from = doc.len().saturating_sub(END.len() - 1);
        let mut window = doc[from..].to_vec();
        window.extend_from_slice(&peeked[..n]);
        let take = match memchr::memmem::find(&window, END) {
            Some(at) => from + at + END.len() - doc.len(),
            None => n,
        };
        let start = doc.len();
        doc.resize(start + take, 0);
        s.read_exact(&mut doc[start..]).unwrap();
        if doc.ends_with(END) {
            return String::from_utf8(doc).expect("documents are UTF-8");
        }
    }
}

/// `(port, offset, me)` of every peer in a document, in document order.
pub fn entries(doc: &str) -> Vec<(u16, usize, bool)> {
    p2pchat::wire::peerdoc::parse(doc)
        .unwrap_or_else(|e| panic!("bad document {doc:?}: {e}"))
        .into_iter()
        .map(|p| (p.port, p.offset, p.me))
        .collect()
}
