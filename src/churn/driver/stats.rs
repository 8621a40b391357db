//! What a run counts: operations and their latencies in the measured window, the
//! same second by second, the whole run's connections and answers, failures by
//! kind, and the CPU of churn and the server; the progress lines; the final
//! [`Report`].

use std::time::{Duration, Instant, SystemTime};

use super::super::histogram::Histogram;
use super::super::private::PrivateUse;
use super::super::procfs::{self, CpuMark, CpuSource};
use super::super::report::{self, Failures, Lists, ProcessUse, Report, Second};
use super::super::{Config, Mode, Progress};
use super::manager::Parts;
use super::{Churn, Phase};

/// The second under way: its main operations and what the CPU counters read
/// when it began.
struct Interval {
    start: Instant,
    ops: u64,
    latency: Histogram,
    errors_at: u64,
    server_ns_at: Option<u64>,
    client_ns_at: Option<u64>,
}

/// The counters behind the [`Report`]; `ops`, the latencies, the series and the
/// CPU marks cover the measured window, the rest the whole run.
pub(super) struct Stats {
    /// Join-leave cycles or requests, flood refusals or fanout lines.
    pub ops: u64,
    pub latency: Histogram,
    /// Open loop: latency from the actual start, and how late starts were.
    pub service: Histogram,
    pub start_lag: Histogram,
    /// The cycles' parts: connect, and request to first reply byte.
    pub connect: Histogram,
    pub ttfb: Histogram,
    /// Time spent inside `connect()` calls, and how many.
    connect_call_ns: u64,
    connect_calls: u64,
    pub steady_answers: u64,
    pub steady_latency: Histogram,
    pub pushes: u64,
    pub connections: u64,
    pub documents: u64,
    pub doc_bytes: u64,
    /// Cycles, requests or refusals completed, every phase.
    pub cycles_total: u64,
    pub peers_min: Option<usize>,
    pub peers_max: Option<usize>,
    pub failures: Failures,
    pub lists: Lists,
    /// `--private`: the handshakes.
    pub private: Option<PrivateUse>,
    /// Whether the steady answers, not `ops`, are the run's main operation.
    steady_main: bool,
    server_pid: Option<u32>,
    server_mark: Option<CpuMark>,
    client_mark: Option<CpuMark>,
    server: Option<ProcessUse>,
    client: Option<ProcessUse>,
    second: Interval,
    series: Vec<Second>,
    started: SystemTime,
}

fn source_name(s: CpuSource) -> &'static str {
    match s {
        CpuSource::Schedstat => "schedstat",
        CpuSource::Stat => "stat",
    }
}

fn cpu_now(pid: Option<u32>) -> Option<u64> {
    procfs::cpu_ns(pid?).ok().map(|(ns, _)| ns)
}

impl Stats {
    pub fn new(cfg: &Config, now: Instant) -> Stats {
        let mut s = Stats {
            ops: 0,
            latency: Histogram::new(),
            service: Histogram::new(),
            start_lag: Histogram::new(),
            connect: Histogram::new(),
            ttfb: Histogram::new(),
            connect_call_ns: 0,
            connect_calls: 0,
            steady_answers: 0,
            steady_latency: Histogram::new(),
            pushes: 0,
            connections: 0,
            documents: 0,
            doc_bytes: 0,
            cycles_total: 0,
            peers_min: None,
            peers_max: None,
            failures: Failures::default(),
            lists: Lists::default(),
            private: cfg.private.then(PrivateUse::default),
            steady_main: cfg.mode == Mode::Steady && cfg.steady > 0,
            server_pid: cfg.server_pid,
            server_mark: None,
            client_mark: None,
            server: None,
            client: None,
            second: Interval {
                start: now,
                ops: 0,
                latency: Histogram::new(),
                errors_at: 0,
                server_ns_at: None,
                client_ns_at: None,
            },
            series: Vec::new(),
            started: SystemTime::now(),
        };
        s.next_second(now);
        s
    }

    /// One main-kind operation done in the window: a cycle, request, refusal or
    /// line. `service` is the open loop's latency from the actual start.
    pub fn op(&mut self, latency_ns: u64, service_ns: Option<u64>, parts: Parts) {
        self.ops += 1;
        self.latency.record(latency_ns);
        if let Some(ns) = parts.connect {
            self.connect.record(ns);
        }
        if let Some(ns) = parts.ttfb {
            self.ttfb.record(ns);
        }
        if let Some(ns) = service_ns {
            self.service.record(ns);
        }
        if !self.steady_main {
            self.second.ops += 1;
            self.second.latency.record(latency_ns);
        }
    }

    /// A churner's or flooder's `connect()` call in the window took `took`.
    pub fn connect_call(&mut self, took: Duration) {
        self.connect_call_ns += took.as_nanos() as u64;
        self.connect_calls += 1;
    }

    /// A steady servant's answer in the window.
    pub fn steady_answer(&mut self, latency_ns: u64) {
        self.steady_answers += 1;
        self.steady_latency.record(latency_ns);
        if self.steady_main {
            self.second.ops += 1;
            self.second.latency.record(latency_ns);
        }
    }

    /// The measured window opens: forget the warm-up's operations, mark the CPU.
    pub fn open_window(&mut self, now: Instant) {
        self.ops = 0;
        self.latency.clear();
        self.service.clear();
        self.start_lag.clear();
        self.connect.clear();
        self.ttfb.clear();
        self.connect_call_ns = 0;
        self.connect_calls = 0;
        self.steady_answers = 0;
        self.steady_latency.clear();
        self.lists.lag.clear();
        self.lists.late = 0;
        self.server_mark = self.server_pid.and_then(|p| CpuMark::take(p).ok());
        self.client_mark = CpuMark::take(std::process::id()).ok();
        self.next_second(now);
    }

    /// When the second under way began.
    pub fn second_start(&self) -> Instant {
        self.second.start
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

    /// Starts a new second at `now`.
    fn next_second(&mut self, now: Instant) {
        self.second.start = now;
        self.second.ops = 0;
        self.second.latency.clear();
        self.second.errors_at = self.failures.total();
        self.second.server_ns_at = cpu_now(self.server_pid);
        self.second.client_ns_at = cpu_now(Some(std::process::id()));
    }

    /// Ends the second under way at `now` and starts the next; `t` counts from
    /// `window_start`.
    pub fn end_second(&mut self, now: Instant, window_start: Instant) -> Second {
        let i = &self.second;
        let secs = now.duration_since(i.start).as_secs_f64();
        let share = |at: Option<u64>, pid: Option<u32>| {
            let used = cpu_now(pid)?.checked_sub(at?)?;
            Some(used as f64 / 1e9 / secs.max(1e-9))
        };
        let s = Second {
            t: now.saturating_duration_since(window_start).as_secs_f64(),
            secs,
            ops: i.ops,
            p50: i.latency.percentile(50.0),
            p99: i.latency.percentile(99.0),
            max: i.latency.max(),
            errors: self.failures.total() - i.errors_at,
            server_cpu: share(i.server_ns_at, self.server_pid),
            client_cpu: share(i.client_ns_at, Some(std::process::id())),
        };
        self.next_second(now);
        s
    }

    /// A checked document listed `n` peers.
    pub fn peers_seen(&mut self, n: usize) {
        self.peers_min = Some(self.peers_min.map_or(n, |m| m.min(n)));
        self.peers_max = Some(self.peers_max.map_or(n, |m| m.max(n)));
    }

    pub fn report(self, cfg: Config, elapsed: Duration, waited: u64) -> Report {
        let open_loop = cfg.rate.is_some();
        let versioned = !cfg.bare && !cfg.generic();
        // Which parts the mode's cycles have: kept connections connect once, a
        // flooder asks nothing, fanout lines are neither.
        let churns = cfg.mode == Mode::Flood
            || cfg.mode == Mode::JoinLeave && !cfg.keep_alive
            || cfg.mode == Mode::Steady && cfg.concurrency > 0;
        let asks = cfg.mode == Mode::JoinLeave || cfg.mode == Mode::Steady && cfg.concurrency > 0;
        Report {
            config: cfg,
            started: self.started,
            elapsed,
            ops: self.ops,
            latency: self.latency,
            service: open_loop.then_some(self.service),
            start_lag: open_loop.then_some(self.start_lag),
            connect: churns.then_some(self.connect),
            ttfb: asks.then_some(self.ttfb),
            connect_call: (self.connect_calls > 0)
                .then(|| Duration::from_nanos(self.connect_call_ns / self.connect_calls)),
            waited,
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
            lists: versioned.then_some(self.lists),
            server: self.server,
            client: self.client,
            series: self.series,
            merged_from: Vec::new(),
            private: self.private,
        }
    }
}

impl Churn {
    /// A second has passed: keep it in the series if it was measured, and show it
    /// (a worker hands its measured seconds to the thread that shows them all).
    pub(super) fn second(&mut self, now: Instant) {
        let window_start = self.measure_start.unwrap_or(self.started);
        let s = self.stats.end_second(now, window_start);
        let tag = match self.phase {
            Phase::Measure => format!("{:>4.0} s", s.t),
            Phase::Setup => "setup".to_string(),
            Phase::Warmup => "warm-up".to_string(),
            Phase::Drain => return,
        };
        if self.phase == Phase::Measure {
            if let Some(to) = &self.shared.seconds {
                let _ = to.send((self.stats.series.len(), s.clone()));
            }
        }
        show_second(&self.cfg, &tag, &s);
        if self.phase == Phase::Measure {
            self.stats.series.push(s);
        }
    }

    /// Whether operations now count: the measured window is open.
    pub(super) fn measuring(&self) -> bool {
        self.phase == Phase::Measure
    }
}

/// The line on stderr for second `s`, as `cfg.progress` asks.
pub(super) fn show_second(cfg: &Config, tag: &str, s: &Second) {
    let ms = |ns: u64| ns as f64 / 1e6;
    let mut line = format!(
        "[{tag}] {:.0} {}s/s  p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  {} errors",
        s.rate(),
        report::op_name(cfg),
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        s.errors
    );
    if let Some(cpu) = s.server_cpu {
        line += &format!("  server {:.0}% CPU", cpu * 100.0);
    }
    match cfg.progress {
        Progress::Off => {}
        Progress::Line => eprint!("\r\x1b[K{} {line}", cfg.mode.name()),
        Progress::Lines => eprintln!("{} {line}", cfg.mode.name()),
    }
}
