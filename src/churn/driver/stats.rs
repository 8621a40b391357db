//! What a run counts: operations and their latencies in the measured window, the
//! whole run's connections and documents, failures by kind, and the CPU of churn
//! and the server across the window; the progress line; the final [`Report`].

use std::time::{Duration, Instant};

use super::super::histogram::Histogram;
use super::super::procfs::{self, CpuMark, CpuSource};
use super::super::report::{Failures, ProcessUse, Report};
use super::super::{Config, Mode};
use super::{Churn, Phase};

/// The counters behind the [`Report`]; `ops`, the latencies and the CPU marks
/// cover the measured window, the rest the whole run.
#[derive(Default)]
pub(super) struct Stats {
    /// Join-leave cycles, flood refusals or fanout lines.
    pub ops: u64,
    pub latency: Histogram,
    pub steady_answers: u64,
    pub steady_latency: Histogram,
    pub pushes: u64,
    pub connections: u64,
    pub documents: u64,
    pub doc_bytes: u64,
    /// Join-leave cycles or flood refusals, every phase.
    pub cycles_total: u64,
    pub peers_min: Option<usize>,
    pub peers_max: Option<usize>,
    pub failures: Failures,
    server_mark: Option<CpuMark>,
    client_mark: Option<CpuMark>,
    server: Option<ProcessUse>,
    client: Option<ProcessUse>,
}

fn source_name(s: CpuSource) -> &'static str {
    match s {
        CpuSource::Schedstat => "schedstat",
        CpuSource::Stat => "stat",
    }
}

impl Stats {
    /// The measured window opens: forget the warm-up's operations, mark the CPU.
    pub fn open_window(&mut self, server_pid: Option<u32>) {
        self.ops = 0;
        self.latency.clear();
        self.steady_answers = 0;
        self.steady_latency.clear();
        self.server_mark = server_pid.and_then(|p| CpuMark::take(p).ok());
        self.client_mark = CpuMark::take(std::process::id()).ok();
    }

    /// The measured window closes: read the CPU used since it opened.
    pub fn close_window(&mut self) {
        let usage = |m: &Option<CpuMark>| {
            m.and_then(|m| {
                Some(ProcessUse {
                    pid: m.pid,
                    cpu: Duration::from_nanos(m.elapsed().ok()?),
                    rss_bytes: procfs::rss_bytes(m.pid).ok(),
                    source: source_name(m.source),
                })
            })
        };
        self.server = usage(&self.server_mark);
        self.client = usage(&self.client_mark);
    }

    /// A checked document listed `n` peers.
    pub fn peers_seen(&mut self, n: usize) {
        self.peers_min = Some(self.peers_min.map_or(n, |m| m.min(n)));
        self.peers_max = Some(self.peers_max.map_or(n, |m| m.max(n)));
    }

    pub fn report(self, cfg: &Config, elapsed: Duration, sender: Option<String>) -> Report {
        let fanout = cfg.mode == Mode::Fanout;
        Report {
            mode: cfg.mode,
            target: cfg.target.to_string(),
            concurrency: if fanout { 0 } else { cfg.concurrency },
            steady: if cfg.mode == Mode::Steady {
                cfg.steady
            } else {
                0
            },
            elapsed,
            warmup: cfg.warmup,
            ops: self.ops,
            latency: self.latency,
            steady_answers: self.steady_answers,
            steady_latency: self.steady_latency,
            pushes: self.pushes,
            connections: self.connections,
            documents: self.documents,
            doc_bytes: self.doc_bytes,
            cycles_total: self.cycles_total,
            peers_min: self.peers_min,
            peers_max: self.peers_max,
            failures: self.failures,
            server: self.server,
            client: self.client,
            sender,
            listeners: if fanout { cfg.concurrency } else { 0 },
        }
    }
}

impl Churn {
    /// Rewrites the progress line on stderr (a terminal).
    pub(super) fn progress(&self, now: Instant) {
        let s = &self.stats;
        let (n, h) = match self.cfg.mode {
            Mode::Steady => (s.steady_answers, &s.steady_latency),
            _ => (s.ops, &s.latency),
        };
        let secs = self
            .measure_start
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        eprint!(
            "\r\x1b[K{} {:?} {secs:.0} s: {n} ops, {:.0}/s, p99 {:.3} ms, {} errors",
            self.cfg.mode.name(),
            self.phase,
            if secs > 0.0 { n as f64 / secs } else { 0.0 },
            h.percentile(99.0) as f64 / 1e6,
            s.failures.total()
        );
    }

    /// Whether operations now count: the measured window is open.
    pub(super) fn measuring(&self) -> bool {
        self.phase == Phase::Measure
    }
}
