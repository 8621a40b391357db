//! What a run counted, and the final summary: a table for people (in the manner of
//! redis-benchmark and memtier), one JSON object for machines ([`json`]), a CSV
//! row like redis-benchmark's and HdrHistogram's percentile distribution
//! (`formats.rs`), an SVG picture of the run over time (`svg.rs`), and two JSON
//! summaries side by side ([`compare`]).

pub mod compare;
mod failure;
mod formats;
pub mod json;
mod lists;
pub mod merge;
mod svg;
mod text;

use std::time::{Duration, SystemTime};

use super::args::escape;
use super::hdr_v2;
use super::histogram::Histogram;
use super::{Config, Mode, Protocol};
pub use failure::{Failure, Failures};
pub use json::json_number;
use json::{Obj, Value};
pub use lists::{Lists, LAG_TARGET_MS};

/// The percentiles every summary shows, with their names.
pub const LADDER: [(&str, f64); 6] = [
    ("p50", 50.0),
    ("p75", 75.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];

/// CPU and memory of a process over the measured window.
#[derive(Clone, Debug)]
pub struct ProcessUse {
    pub pid: u32,
    pub cpu: Duration,
    pub rss_bytes: Option<u64>,
    /// `schedstat` (ns resolution) or `stat` (clock ticks).
    pub source: &'static str,
}

/// One second of the measured window (the last may be shorter): the main
/// operation's count and latencies, the failures, and the CPU used.
#[derive(Clone, Debug, Default)]
pub struct Second {
    /// Seconds from the start of the window to the end of this interval.
    pub t: f64,
    /// The interval's length in seconds.
    pub secs: f64,
    pub ops: u64,
    /// Latencies in nanoseconds (0 when there were no operations).
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub errors: u64,
    /// Share of one core the server used (1.0 = all of one), with `--server-pid`.
    pub server_cpu: Option<f64>,
    /// Share of one core churn itself used.
    pub client_cpu: Option<f64>,
}

impl Second {
    /// Adds `other`, the same second of another worker or run: operations and
    /// errors summed; p50, p99 and max the worse of the two (a second keeps no
    /// histogram); the server's CPU the most either saw; churn's summed when the
    /// two were separate processes (`apart`), else the most either saw.
    pub fn absorb(&mut self, other: &Second, apart: bool) {
        self.t = self.t.max(other.t);
        self.secs = self.secs.max(other.secs);
        self.ops += other.ops;
        self.errors += other.errors;
        self.p50 = self.p50.max(other.p50);
        self.p99 = self.p99.max(other.p99);
        self.max = self.max.max(other.max);
        let most = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.server_cpu = most(self.server_cpu, other.server_cpu);
        self.client_cpu = match (self.client_cpu, other.client_cpu) {
            (Some(a), Some(b)) if apart => Some(a + b),
            (a, b) => most(a, b),
        };
    }

    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Everything a run measured, with the settings it ran with. Latencies are in
/// nanoseconds.
#[derive(Debug)]
pub struct Report {
    pub config: Config,
    /// Wall-clock time the run started.
    pub started: SystemTime,
    /// The measured window, after warm-up and before draining.
    pub elapsed: Duration,
    /// Operations completed in the measured window: join-leave cycles (churners'
    /// in steady mode), kept-connection requests, fanout lines or flood refusals.
    /// With `--rate`: those whose intended start fell in the window.
    pub ops: u64,
    /// Latency of `ops`: connect (or request) to whole answer, line sent to last
    /// listener, or connect to refusal. With `--rate`, from the intended start.
    pub latency: Histogram,
    /// With `--rate`: latency from the actual start, as a closed loop would see it.
    pub service: Option<Histogram>,
    /// With `--rate`: how late each operation started after its intended time.
    pub start_lag: Option<Histogram>,
    /// A cycle's parts, where the mode's cycles have them: `connect()` until
    /// writable (not for kept connections), and request sent until the first
    /// reply byte (not for flood): the figures tools that leave out the connect
    /// (h2load, ab) report.
    pub connect: Option<Histogram>,
    pub ttfb: Option<Histogram>,
    /// The mean time inside the `connect()` call itself, where the kernel
    /// searches for a free source port.
    pub connect_call: Option<Duration>,
    /// With `--rate`: starts that found every allowed connection busy.
    pub waited: u64,
    /// Steady servants' answers to `needs peer list` (steady mode).
    pub steady_answers: u64,
    pub steady_latency: Histogram,
    /// Documents that arrived when none was asked for (the manager's pushes).
    pub pushes: u64,
    /// Whole run, every phase: connections the server accepted.
    pub connections: u64,
    /// Whole run: answers received (documents, with pushes), and their bytes.
    pub documents: u64,
    pub doc_bytes: u64,
    /// Whole run: join-leave cycles, kept-connection answers or flood refusals,
    /// including warm-up and drain.
    pub cycles_total: u64,
    /// With `--verify`: peers per document, min and max.
    pub peers_min: Option<usize>,
    pub peers_max: Option<usize>,
    pub failures: Failures,
    /// Version-aware servants (not `--bare`): answers by kind, and list lag.
    pub lists: Option<Lists>,
    pub server: Option<ProcessUse>,
    pub client: Option<ProcessUse>,
    /// The measured window second by second.
    pub series: Vec<Second>,
    /// `churn merge`: the summaries this one adds up (empty for a run).
    pub merged_from: Vec<String>,
    /// `--private`: churn's manager and the handshakes.
    pub private: Option<super::private::PrivateUse>,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

impl Report {
    pub fn per_s(&self, n: u64) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }

    /// Steady servants are the point of a steady run; everything else times `ops`.
    fn steady_first(&self) -> bool {
        self.config.mode == Mode::Steady && self.config.steady > 0
    }

    /// The main operation's count and latencies.
    pub fn main(&self) -> (u64, &Histogram) {
        if self.steady_first() {
            (self.steady_answers, &self.steady_latency)
        } else {
            (self.ops, &self.latency)
        }
    }

    /// What the server CPU is divided by: the main operations.
    fn cpu_divisor(&self) -> u64 {
        self.main().0
    }

    pub fn op_name(&self) -> &'static str {
        op_name(&self.config)
    }

    fn mean_doc_bytes(&self) -> f64 {
        if self.documents == 0 {
            0.0
        } else {
            self.doc_bytes as f64 / self.documents as f64
        }
    }

    /// The summary as one JSON object: latencies in microseconds, CPU per
    /// operation in microseconds, and only the fields that apply to the mode.
    pub fn json(&self) -> String {
        let c = &self.config;
        let mut j = Obj::default();
        j.str("version", env!("CARGO_PKG_VERSION"));
        j.val(
            "args",
            Value::Arr(c.args.iter().map(|a| Value::Str(a.clone())).collect()),
        );
        j.str("start", &utc(self.started));
        let since = self.started.duration_since(SystemTime::UNIX_EPOCH);
        j.num("start_unix_s", since.unwrap_or_default().as_secs_f64());
        if !self.merged_from.is_empty() {
            let files = self.merged_from.iter().map(|f| Value::Str(f.clone()));
            j.val("merged_from", Value::Arr(files.collect()));
        }
        j.str("mode", c.mode.name());
        j.str("target", &c.target.to_string());
        match &c.protocol {
            Protocol::Manager => j.str("protocol", "p2pchat"),
            Protocol::Generic { request, expect } => {
                j.str("protocol", "generic");
                j.str("request", &escape(request));
                match expect {
                    Some(e) => j.str("expect", &escape(e)),
                    None => j.val("expect", Value::Null),
                }
            }
        }
        j.num("concurrency", c.concurrency as f64);
        j.num("workers", c.workers as f64);
        j.num("sources", c.sources.len() as f64);
        match c.mode {
            Mode::JoinLeave => j.val("keep_alive", Value::Bool(c.keep_alive)),
            Mode::Steady => {
                j.num("steady", c.steady as f64);
                j.num("interval_ms", c.interval.as_millis() as f64);
            }
            Mode::Fanout => {
                j.num("listeners", c.concurrency as f64);
                j.str("sender", &sender_name(c));
                j.num("interval_ms", c.interval.as_millis() as f64);
            }
            Mode::Flood => {}
        }
        if let Some(rate) = c.rate {
            j.num("rate", rate);
            j.num("waited", self.waited as f64);
        }
        j.num("elapsed_s", self.elapsed.as_secs_f64());
        j.num("warmup_s", c.warmup.as_secs_f64());
        if self.steady_first() {
            j.num("steady_answers", self.steady_answers as f64);
            j.num("steady_answers_per_s", self.per_s(self.steady_answers));
            hist(&mut j, "steady_latency", &self.steady_latency);
        }
        if c.mode != Mode::Steady || c.concurrency > 0 {
            j.num("ops", self.ops as f64);
            j.num("ops_per_s", self.per_s(self.ops));
            hist(&mut j, "latency", &self.latency);
            if let Some(h) = &self.connect {
                hist(&mut j, "connect_latency", h);
            }
            if let Some(h) = &self.ttfb {
                hist(&mut j, "ttfb_latency", h);
            }
            if let Some(d) = self.connect_call {
                j.num("connect_call_mean_us", d.as_nanos() as f64 / 1e3);
            }
        }
        if let (Some(service), Some(lag)) = (&self.service, &self.start_lag) {
            hist(&mut j, "service", service);
            hist(&mut j, "start_lag", lag);
        }
        j.num("connections", self.connections as f64);
        j.num("cycles_total", self.cycles_total as f64);
        if let Some(p) = &self.private {
            p.json(&mut j);
        }
        if c.generic() {
            j.num("answers", self.documents as f64);
            j.num("answer_bytes_mean", self.mean_doc_bytes());
        } else {
            j.num("documents", self.documents as f64);
            j.num("doc_bytes_mean", self.mean_doc_bytes());
            j.num("pushes", self.pushes as f64);
            j.val("bare", Value::Bool(c.bare));
        }
        if let Some(lists) = &self.lists {
            lists.json(&mut j);
        }
        if let (Some(lo), Some(hi)) = (self.peers_min, self.peers_max) {
            j.num("peers_min", lo as f64);
            j.num("peers_max", hi as f64);
        }
        let per = self.cpu_divisor().max(1) as f64;
        for (who, p) in [("server", &self.server), ("client", &self.client)] {
            let Some(p) = p else { continue };
            j.num(&format!("{who}_pid"), f64::from(p.pid));
            j.num(&format!("{who}_cpu_s"), p.cpu.as_secs_f64());
            j.num(
                &format!("{who}_cpu_us_per_op"),
                p.cpu.as_nanos() as f64 / 1e3 / per,
            );
            if let Some(rss) = p.rss_bytes {
                j.num(&format!("{who}_rss_bytes"), rss as f64);
            }
        }
        j.num("errors", self.failures.total() as f64);
        for f in Failure::ALL {
            if f.applies(c.mode, c.generic()) {
                j.num(&format!("error_{}", f.name()), self.failures.get(f) as f64);
            }
        }
        let mut first = Obj::default();
        for (f, _, text) in self.failures.seen() {
            first.str(f.name(), text);
        }
        j.val("first_errors", first.done());
        j.val(
            "series",
            Value::Arr(self.series.iter().map(second_json).collect()),
        );
        j.done().to_string()
    }

    /// One CSV row like `redis-benchmark --csv`'s, after its header, with an
    /// `errors` column added at the end.
    pub fn csv(&self) -> String {
        formats::csv(self)
    }

    /// The main latencies in HdrHistogram's percentile-distribution text, in
    /// milliseconds, for its plotters.
    pub fn hdr(&self) -> String {
        formats::hdr(self.main().1, 1e6)
    }

    /// A picture of the run over time: a self-contained SVG document.
    pub fn svg(&self) -> String {
        svg::draw(self)
    }
}

/// The name of one main operation of a run with `c`.
pub fn op_name(c: &Config) -> &'static str {
    match c.mode {
        Mode::JoinLeave if c.keep_alive => "request",
        Mode::JoinLeave => "cycle",
        Mode::Steady if c.steady > 0 => "answer",
        Mode::Steady => "churn cycle",
        Mode::Fanout => "line",
        Mode::Flood => "refusal",
    }
}

/// Who sent the fanout lines.
fn sender_name(c: &Config) -> String {
    match &c.sender {
        super::Sender::Servant(p) => format!("servant {}", p.display()),
        super::Sender::Itself => "self".into(),
    }
}

/// `h` as its ladder (`{prefix}_p50_us`, ...), and whole, in HdrHistogram's
/// compressed V2 encoding in microseconds, as `{base}_histogram` (`latency`
/// for the whole cycle, `connect` for `connect_latency`, ...).
fn hist(j: &mut Obj, prefix: &str, h: &Histogram) {
    hist_ladder(j, prefix, h);
    let base = prefix.strip_suffix("_latency").unwrap_or(prefix);
    j.str(&format!("{base}_histogram"), &hdr_v2::encode(h, 1000));
}

fn hist_ladder(j: &mut Obj, prefix: &str, h: &Histogram) {
    j.num(&format!("{prefix}_count"), h.count() as f64);
    j.num(&format!("{prefix}_min_us"), us(h.min()));
    for (name, q) in LADDER {
        let key = name.replace('.', "");
        j.num(&format!("{prefix}_{key}_us"), us(h.percentile(q)));
    }
    j.num(&format!("{prefix}_max_us"), us(h.max()));
    j.num(&format!("{prefix}_mean_us"), h.mean() / 1e3);
}

fn second_json(s: &Second) -> Value {
    let mut j = Obj::default();
    j.num("t", s.t);
    j.num("secs", s.secs);
    j.num("ops", s.ops as f64);
    j.num("ops_per_s", s.rate());
    j.num("p50_us", us(s.p50));
    j.num("p99_us", us(s.p99));
    j.num("max_us", us(s.max));
    j.num("errors", s.errors as f64);
    if let Some(cpu) = s.server_cpu {
        j.num("server_cpu_pct", 100.0 * cpu);
    }
    if let Some(cpu) = s.client_cpu {
        j.num("client_cpu_pct", 100.0 * cpu);
    }
    j.done()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as the log lines' timestamps.
fn utc(t: SystemTime) -> String {
    let mut out = String::with_capacity(24);
    crate::logging::push_utc_timestamp(&mut out, t);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A join-leave report with `n` cycles of 1 ms and a few seconds in its series.
    pub(crate) fn sample(n: u64) -> Report {
        let mut config = Config::new(Mode::JoinLeave, "127.0.0.1:85".parse().unwrap());
        config.args = vec!["join-leave".into(), "-n".into(), n.to_string()];
        let mut latency = Histogram::new();
        for k in 0..n {
            latency.record(1_000_000 + k);
        }
        let series = (1..=3)
            .map(|t| Second {
                t: t as f64,
                secs: 1.0,
                ops: n / 3,
                p50: 1_000_000,
                p99: 1_000_000 + t * 1000,
                max: 2_000_000,
                errors: 0,
                server_cpu: Some(0.25),
                client_cpu: None,
            })
            .collect();
        Report {
            config,
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            elapsed: Duration::from_secs(3),
            ops: n,
            latency,
            service: None,
            start_lag: None,
            connect: None,
            ttfb: None,
            connect_call: None,
            waited: 0,
            steady_answers: 0,
            steady_latency: Histogram::new(),
            pushes: 0,
            connections: n,
            documents: n,
            doc_bytes: n * 100,
            cycles_total: n,
            peers_min: None,
            peers_max: None,
            failures: Failures::default(),
            lists: None,
            server: None,
            client: None,
            series,
            merged_from: Vec::new(),
            private: None,
        }
    }

    #[test]
    fn the_summary_shows_the_ladder_and_ends_in_a_newline() {
        let mut r = sample(300);
        r.failures.count(Failure::Timeout, || "no answer".into());
        let text = r.text();
        assert!(text.ends_with('\n'), "{text}");
        for name in ["p50", "p75", "p90", "p99", "p99.9", "p99.99", "max"] {
            assert!(text.contains(name), "{name}: {text}");
        }
        assert!(text.contains("timeout") && text.contains("first: no answer"));
    }

    #[test]
    fn slow_connects_from_one_address_name_bind_once() {
        let mut r = sample(100);
        let mut connect = Histogram::new();
        for _ in 0..100 {
            connect.record(900_000); // 0.9 of each 1 ms cycle
        }
        r.connect = Some(connect);
        r.connect_call = Some(Duration::from_micros(50));
        r.client = Some(ProcessUse {
            pid: 1,
            cpu: Duration::from_micros(66 * 100),
            rss_bytes: None,
            source: "schedstat",
        });
        let text = r.text();
        assert_eq!(text.matches("--bind").count(), 1, "{text}");
        assert!(text.contains("TIME_WAIT"), "{text}");
        r.config.sources = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
        assert!(!r.text().contains("TIME_WAIT"), "many addresses: no note");
        r.config.sources.clear();
        r.connect_call = Some(Duration::from_micros(24));
        assert!(!r.text().contains("TIME_WAIT"), "fast connects: no note");
    }

    #[test]
    fn json_carries_the_run_and_leaves_out_other_modes() {
        let mut r = sample(30);
        r.failures.count(Failure::Reset, || "reset by peer".into());
        let v = Value::parse(&r.json()).unwrap();
        assert_eq!(
            v.get("version").unwrap().str(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(v.get("args").unwrap().arr().unwrap().len(), 3);
        assert_eq!(
            v.get("start").unwrap().str(),
            Some("2023-11-14T22:13:20.000Z")
        );
        assert_eq!(v.get("concurrency").unwrap().num(), Some(50.0));
        assert_eq!(
            v.get("latency_p9999_us").unwrap().num().map(f64::round),
            Some(1000.0)
        );
        let first = v.get("first_errors").unwrap();
        assert_eq!(first.get("reset").unwrap().str(), Some("reset by peer"));
        assert_eq!(v.get("series").unwrap().arr().unwrap().len(), 3);
        for absent in [
            "steady",
            "steady_latency_p99_us",
            "listeners",
            "error_line_missed",
        ] {
            assert!(v.get(absent).is_none(), "{absent}");
        }
        assert!(v.get("error_refused_full").is_some());
    }
}
