//! The `churn` load generator: many virtual clients on one reactor, played
//! against a running connection manager (and, in `fanout`, a real servant), or,
//! in `join-leave` with `--request`, against any TCP server.
//!
//! | mode         | each virtual servant                                        | measures |
//! |--------------|-------------------------------------------------------------|----------|
//! | `join-leave` | connect, `needs peer list` (or `--request`), read the whole answer, close; again (`--keep-alive`: ask again on the same connection) | cycles/s, cycle latency |
//! | `steady`     | stays connected and asks every `--interval`, while `-c` others join and leave | answer latency of the steady ones, apart from the churners' |
//! | `fanout`     | registers, listens on the port the manager gave it; a sender sends lines to all | time until every listener has a line |
//! | `flood`      | connect to a full manager, read its refusal, close; again   | refusals/s, connect-to-refusal latency |
//!
//! It dogfoods the project's [`crate::reactor`]: churn is a [`Handler`](crate::reactor::Handler)
//! like the daemons, single-threaded, with a 10 ms tick for timers. Closed loop by
//! default (each client starts again when it is done); with `--rate` an open loop
//! whose latencies count from each start's intended time. Latencies go into a
//! fixed-memory [`histogram::Histogram`], and per second into a [`report::Second`];
//! failures are counted by kind ([`report::Failure`]) and always shown. With a
//! server pid it reads the server's CPU time and memory from `/proc` ([`procfs`])
//! over exactly the measured window. [`report`] writes the summary as text, JSON,
//! CSV, HdrHistogram's percentile distribution and an SVG picture, and compares
//! two JSON summaries. [`baseline`] is the trivial server the benchmarks compare
//! servers with.

pub mod args;
pub mod baseline;
pub mod cli;
mod driver;
pub mod hdr_v2;
pub mod histogram;
pub mod private;
pub mod procfs;
pub mod report;
pub mod scan;
pub mod sources;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;
pub use report::Report;

/// The manager's port (the article's default), for a target given without one.
pub const MANAGER_PORT: u16 = 85;
/// The fastest `--rate`: starts are counted in a `u64` of intervals, and a
/// typo should not ask one thread for billions per second.
pub const MAX_RATE: f64 = 1_000_000.0;

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

/// What the clients say, and how an answer ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `needs peer list`, answered by a peer document: the connection manager's.
    Manager,
    /// Any TCP server: send `request`; the answer is complete when the bytes
    /// received end with `expect`, or, without it, when the server closes.
    Generic {
        request: Vec<u8>,
        expect: Option<Vec<u8>>,
    },
}

/// How progress is shown on stderr while a run goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Off,
    /// One line rewritten every second (stderr is a terminal).
    Line,
    /// One line per second, kept (stderr is a file or a pipe).
    Lines,
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
    /// The connection manager, or with a generic protocol any server.
    pub target: SocketAddr,
    pub protocol: Protocol,
    /// join-leave: keep each connection and ask again on it, instead of a new
    /// connection per cycle.
    pub keep_alive: bool,
    /// join-leave and steady: clients joining and leaving at once (with `rate`,
    /// the most in flight; with `keep_alive`, the connections). fanout:
    /// listeners. flood: connections kept in flight.
    pub concurrency: usize,
    /// join-leave: start this many cycles per second whatever the answers do
    /// (open loop), instead of each client starting again when it is done.
    pub rate: Option<f64>,
    /// Stop after this many measured operations (cycles, answers or lines).
    pub count: Option<u64>,
    /// Stop after this long measuring.
    pub duration: Option<Duration>,
    pub warmup: Duration,
    /// steady: time between one servant's requests. fanout: pause between lines.
    pub interval: Duration,
    /// steady: servants that stay connected and poll.
    pub steady: usize,
    /// Source addresses, used in turn, one per connection; the first is the
    /// fanout sender's. Empty: the OS chooses.
    pub sources: Vec<IpAddr>,
    /// `sources` are churn's own choice ([`sources::DEFAULT`]), not `--bind`'s.
    pub default_sources: bool,
    /// Per operation: a cycle, an answer, a line reaching every listener.
    pub timeout: Duration,
    /// Parse every document and check it names the asker exactly once.
    pub verify: bool,
    /// Play the article's servants: `needs peer list`, whole documents every
    /// time. Otherwise each connection says the version it has
    /// (`needs peer list since N`) and follows deltas (`driver/lists.rs`).
    pub bare: bool,
    /// Churners (join-leave, steady -c) stay this long after their answer before
    /// leaving, so that their join and their leave are two changes others see.
    pub stay: Duration,
    /// Read this process's CPU and memory from /proc over the measured window.
    pub server_pid: Option<u32>,
    pub sender: Sender,
    /// join-leave: event loops, each in its own thread, sharing out `-c`,
    /// `--rate`, `-n` and the source addresses.
    pub workers: usize,
    /// join-leave and fanout: run churn's own private network and play its
    /// members over Noise links ([`private`]); `target` is where its manager listens.
    pub private: bool,
    pub progress: Progress,
    /// The command line, kept in the JSON summary.
    pub args: Vec<String>,
}

impl Config {
    /// Defaults for `mode` against `target`: 10 s, 50 clients (100 listeners in
    /// fanout, 1,000 connections in flood, none churning beside steady servants),
    /// 5 s timeout, no warm-up, closed loop.
    pub fn new(mode: Mode, target: SocketAddr) -> Config {
        Config {
            mode,
            target,
            protocol: Protocol::Manager,
            keep_alive: false,
            concurrency: match mode {
                Mode::Fanout => 100,
                Mode::Flood => 1000,
                // Churners in the steady servants' own thread would delay their
                // answers: the latency would be churn's. Run them from another churn.
                Mode::Steady => 0,
                Mode::JoinLeave => 50,
            },
            rate: None,
            count: None,
            duration: None,
            warmup: Duration::ZERO,
            interval: if mode == Mode::Fanout {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            },
            steady: 100,
            sources: Vec::new(),
            default_sources: false,
            timeout: Duration::from_secs(5),
            verify: false,
            bare: false,
            stay: Duration::ZERO,
            server_pid: None,
            sender: Sender::Itself,
            workers: 1,
            private: false,
            progress: Progress::Off,
            args: Vec::new(),
        }
    }

    /// Refuses settings that cannot make a run, naming the flag.
    pub fn check(&self) -> Result<(), ConfigError> {
        let fail = |flag: &str, why: &str| Err(ConfigError::new(flag, why));
        let generic = matches!(self.protocol, Protocol::Generic { .. });
        let join_leave = self.mode == Mode::JoinLeave;
        match self.mode {
            Mode::Steady if self.steady == 0 && self.concurrency == 0 => {
                return fail("--steady", "steady needs --steady or -c above 0")
            }
            Mode::Steady => {}
            _ if self.concurrency == 0 => {
                return fail(
                    "--concurrency",
                    &format!("{} needs -c of at least 1", self.mode.name()),
                )
            }
            _ => {}
        }
        if generic && !join_leave {
            return fail("--request", "only join-leave speaks other protocols");
        }
        if let Protocol::Generic { request, expect } = &self.protocol {
            if request.is_empty() {
                return fail("--request", "must not be empty");
            }
            if expect.as_ref().is_some_and(Vec::is_empty) {
                return fail("--expect", "must not be empty");
            }
            if expect.is_none() && self.keep_alive {
                return fail(
                    "--keep-alive",
                    "needs --expect: without it an answer ends when the server closes",
                );
            }
        }
        if generic && self.bare {
            return fail("--bare", "is for the manager's protocol, not --request");
        }
        let churners = matches!(self.mode, Mode::JoinLeave | Mode::Steady);
        if !self.stay.is_zero() && (!churners || self.keep_alive || self.rate.is_some()) {
            return fail(
                "--stay",
                "is for closed-loop churners (join-leave or steady -c, without --keep-alive or --rate)",
            );
        }
        if generic && self.verify {
            return fail("--verify", "checks peer documents, not --request answers");
        }
        if self.keep_alive && !join_leave {
            return fail("--keep-alive", "is for join-leave");
        }
        if let Some(rate) = self.rate {
            if !join_leave {
                return fail("--rate", "is for join-leave");
            }
            if !(rate > 0.0 && rate <= MAX_RATE) {
                return fail("--rate", &format!("must be above 0 and at most {MAX_RATE}"));
            }
        }
        if self.private {
            self.check_private()?;
        }
        if self.workers > 1 {
            if !join_leave {
                return fail("--workers", "is for join-leave");
            }
            if self.concurrency < self.workers {
                return fail("--workers", "needs -c of at least one client per worker");
            }
            if self.count.is_some_and(|n| n < self.workers as u64) {
                return fail("--workers", "needs -n of at least one cycle per worker");
            }
        }
        Ok(())
    }

    /// What `--private` does not go with.
    fn check_private(&self) -> Result<(), ConfigError> {
        let fail = |flag: &str, why: &str| Err(ConfigError::new(flag, why));
        if !matches!(self.mode, Mode::JoinLeave | Mode::Fanout) {
            return fail("--private", "is for join-leave and fanout");
        }
        if self.generic() {
            return fail("--private", "speaks the manager's protocol, not --request");
        }
        if self.workers > 1 {
            return fail("--private", "runs on one event loop: leave out --workers");
        }
        if self.server_pid.is_some() {
            return fail(
                "--server-pid",
                "goes without --private: churn watches the manager it starts",
            );
        }
        if self.mode == Mode::Fanout && self.sender == Sender::Itself {
            return fail(
                "--private",
                "fanout needs --sender servant: a real private servant sends the lines",
            );
        }
        Ok(())
    }

    /// How long the measured window may last: the duration, else 10 s unless a count is given.
    fn run_for(&self) -> Option<Duration> {
        match (self.duration, self.count) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        }
    }

    /// Whether the target is any server rather than a connection manager.
    pub fn generic(&self) -> bool {
        matches!(self.protocol, Protocol::Generic { .. })
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
