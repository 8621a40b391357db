//! The `churn` load generator: many virtual servants on one reactor, played
//! against a running connection manager (and, in `fanout`, a real servant).
//!
//! | mode         | each virtual servant                                        | measures |
//! |--------------|-------------------------------------------------------------|----------|
//! | `join-leave` | connect, `needs peer list`, read the whole document, close; again | cycles/s, cycle latency |
//! | `steady`     | stays connected and asks every `--interval`, while `-c` others join and leave | answer latency of the steady ones, apart from the churners' |
//! | `fanout`     | registers, listens on the port the manager gave it; a sender sends lines to all | time until every listener has a line |
//! | `flood`      | connect to a full manager, read its refusal, close; again   | refusals/s, connect-to-refusal latency |
//!
//! It dogfoods the project's [`crate::reactor`]: churn is a [`Handler`](crate::reactor::Handler)
//! like the daemons, single-threaded, with a 10 ms tick for timers. Latencies go into a
//! fixed-memory [`histogram::Histogram`]; failures are counted by kind
//! ([`report::Failure`]) and always shown. With a server pid it reads the server's CPU
//! time and memory from `/proc` ([`procfs`]) over exactly the measured window.
//! [`baseline`] is the trivial server the benchmarks compare the manager with.

pub mod baseline;
mod driver;
pub mod histogram;
pub mod procfs;
pub mod report;
pub mod scan;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use report::Report;

/// What the virtual servants do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    JoinLeave,
    Steady,
    Fanout,
    /// Connections past `--max-servants`, refused and made again at once: the load
    /// the manager must shrug off while it serves the servants it has.
    Flood,
}

impl Mode {
    pub const fn name(self) -> &'static str {
        match self {
            Mode::JoinLeave => "join-leave",
            Mode::Steady => "steady",
            Mode::Fanout => "fanout",
            Mode::Flood => "flood",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "join-leave" => Some(Mode::JoinLeave),
            "steady" => Some(Mode::Steady),
            "fanout" => Some(Mode::Fanout),
            "flood" => Some(Mode::Flood),
            _ => None,
        }
    }
}

/// Who sends the fanout lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A real `servant` process at this path, its stdin piped from churn.
    Servant(PathBuf),
    /// Churn itself, one connection per peer, as a servant would.
    Itself,
}

/// A run's settings, as the flags give them.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    /// The connection manager.
    pub target: SocketAddr,
    /// join-leave and steady: servants joining and leaving at once. fanout:
    /// listeners. flood: connections kept in flight.
    pub concurrency: usize,
    /// Stop after this many measured operations (cycles, answers or lines).
    pub count: Option<u64>,
    /// Stop after this long measuring.
    pub duration: Option<Duration>,
    pub warmup: Duration,
    /// steady: time between one servant's requests. fanout: pause between lines.
    pub interval: Duration,
    /// steady: servants that stay connected and poll.
    pub steady: usize,
    /// Source address of every connection, and the listeners' address in fanout.
    pub bind: Option<IpAddr>,
    /// Per operation: a cycle, an answer, a line reaching every listener.
    pub timeout: Duration,
    /// Parse every document and check it names the asker exactly once.
    pub verify: bool,
    /// Read this process's CPU and memory from /proc over the measured window.
    pub server_pid: Option<u32>,
    pub sender: Sender,
    /// A progress line on stderr every second.
    pub progress: bool,
}

impl Config {
    /// Defaults for `mode` against `target`: 10 s, 50 servants (100 listeners in
    /// fanout, 1,000 connections in flood), 5 s timeout, no warm-up.
    pub fn new(mode: Mode, target: SocketAddr) -> Config {
        Config {
            mode,
            target,
            concurrency: match mode {
                Mode::Fanout => 100,
                Mode::Flood => 1000,
                _ => 50,
            },
            count: None,
            duration: None,
            warmup: Duration::ZERO,
            interval: if mode == Mode::Fanout {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            },
            steady: 100,
            bind: None,
            timeout: Duration::from_secs(5),
            verify: false,
            server_pid: None,
            sender: Sender::Itself,
            progress: false,
        }
    }

    /// How long the measured window may last: the duration, else 10 s unless a count is given.
    fn run_for(&self) -> Option<Duration> {
        match (self.duration, self.count) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        }
    }
}

/// Why a run could not be done (as opposed to operations that failed, which are counted).
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// Runs the load and returns what it measured.
pub fn run(config: Config) -> Result<Report, RunError> {
    driver::run(config)
}
