//! Shared by the integration tests: start a real binary, follow its stderr for
//! readiness lines with deadlines, and kill it when the guard drops. A thin layer
//! over [`p2pchat_harness`] that panics with the log instead of returning errors.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use p2pchat_harness::{Process, Spawn};

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The path of the project's binary `name` to run: `$P2PCHAT_BIN_DIR/name` when
/// that variable is set and the file is there, so the same tests can check other
/// builds of it (`P2PCHAT_BIN_DIR=target/x86_64-unknown-linux-gnu/static` for
/// `cargo build-static`'s); otherwise the one Cargo built for these tests.
pub fn bin(name: &str) -> String {
    if let Some(dir) = std::env::var_os("P2PCHAT_BIN_DIR") {
        let other = Path::new(&dir).join(name);
        if other.is_file() {
            // Absolute, so a test that gives its child another working directory
            // still finds it.
            let other = std::path::absolute(&other).expect("the working directory");
            return other.into_os_string().into_string().expect("a UTF-8 path");
        }
    }
    match name {
        "connmgr" => env!("CARGO_BIN_EXE_connmgr"),
        "servant" => env!("CARGO_BIN_EXE_servant"),
        "churn" => env!("CARGO_BIN_EXE_churn"),
        "p2pchat-demo" => env!("CARGO_BIN_EXE_p2pchat-demo"),
        _ => panic!("{name} is not one of the project's binaries"),
    }
    .to_string()
}

/// A running binary whose stderr (and stdout) lines are collected as they come.
/// Derefs to the [`Process`], so `child` and `stdin` are its fields.
pub struct Daemon(Process);

impl Deref for Daemon {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

impl Daemon {
    /// Starts `bin` with `args`, stdin piped, stdout and stderr followed.
    pub fn spawn(bin: &str, args: &[&str]) -> Daemon {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        Daemon::spawn_command(cmd)
    }

    /// Starts a prepared command (extra environment, limits) the same way.
    pub fn spawn_command(cmd: Command) -> Daemon {
        Daemon(
            Spawn::command(cmd)
                .start()
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    /// Waits for a stderr line containing `pattern`; panics with the log on timeout.
    pub fn wait_for(&self, pattern: &str) -> String {
        self.wait_for_within(pattern, DEADLINE).unwrap_or_else(|| {
            panic!(
                "{} never logged {pattern:?}; log:\n{}",
                self.name(),
                self.log_text()
            )
        })
    }

    /// Like `wait_for`, but returns `None` at the deadline instead of panicking.
    pub fn wait_for_within(&self, pattern: &str, limit: Duration) -> Option<String> {
        self.0.wait_for(pattern, limit).ok()
    }

    /// Waits for the `listening on ADDR:PORT` line and returns the address.
    pub fn listening_addr(&self) -> SocketAddr {
        self.0
            .listening_addr(DEADLINE)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The next stdout line, within the deadline.
    pub fn stdout_line(&self) -> Option<String> {
        self.0.stdout_line(DEADLINE).ok()
    }

    /// The next stdout line, or `None` after `limit`.
    pub fn stdout_line_within(&self, limit: Duration) -> Option<String> {
        self.0.stdout_line(limit).ok()
    }

    /// Writes a line to the child's stdin.
    pub fn type_line(&mut self, line: &str) {
        self.0.type_line(line).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends `sig` (e.g. libc::SIGTERM) to the child.
    pub fn signal(&self, sig: i32) {
        self.0
            .signal(sig)
            .unwrap_or_else(|e| panic!("signal {sig} to {}: {e}", self.name()));
    }

    /// Waits for the child to exit within the deadline; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let status = self.0.wait_exit(DEADLINE).ok()?;
        Some(status.code().unwrap_or(-1))
    }
}

/// Waits for `d` to show `line` on stdout; what it showed before it. Panics with
/// what it showed instead.
pub fn shows(d: &Daemon, line: &str) -> Vec<String> {
    let mut before = Vec::new();
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        match d.stdout_line() {
            Some(l) if l == line => return before,
            Some(l) => before.push(l),
            None => break,
        }
    }
    panic!(
        "{} never showed {line:?} (showed {before:?}); log:\n{}",
        d.name(),
        d.log_text()
    );
}

/// Starts a connection manager on 127.0.0.1 with an OS-chosen port.
pub fn connmgr(extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec!["--bind", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    let d = Daemon::spawn(&bin("connmgr"), &args);
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

/// A connection to `to` from the loopback address `from`, with read timeouts.
pub fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let ip: std::net::IpAddr = from.parse().unwrap();
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    s.connect_timeout(&to.into(), DEADLINE)
        .unwrap_or_else(|e| panic!("connect {to} from {from}: {e}"));
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Raises this process's soft open-file limit to the hard one (20,000 here), so
/// a test can hold thousands of connections; fails the test if it cannot.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

/// A servant reading `config`, asking `manager` every 200 ms from `bind` as
/// `name`, with `extra` flags.
pub fn named_servant(
    config: &Path,
    manager: SocketAddr,
    bind: &str,
    name: &str,
    extra: &[&str],
) -> Daemon {
    let manager = manager.to_string();
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--connmgr",
        &manager,
        "--bind",
        bind,
        "--name",
        name,
        "--poll-interval",
        "200",
    ];
    args.extend_from_slice(extra);
    Daemon::spawn(&bin("servant"), &args)
}
