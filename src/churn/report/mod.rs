//! What a run counted, and the final summary: a table for people (in the manner of
//! redis-benchmark and memtier) and one flat JSON object for machines.

use std::fmt::Write as _;
use std::time::Duration;

use super::histogram::Histogram;
use super::Mode;

/// Why an operation failed. Every failure is counted under one of these and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens at the address (ECONNREFUSED).
    ConnectRefused,
    /// Any other failure to start or finish a connect (EADDRNOTAVAIL when the
    /// ephemeral ports run out, ETIMEDOUT, ...).
    ConnectFailed,
    /// The peer reset the connection.
    Reset,
    /// No answer within `--timeout`.
    Timeout,
    /// The manager closed the connection before a whole document came.
    ClosedEarly,
    /// What came is not a peer document, or (with `--verify`) not a valid one.
    Malformed,
    /// The manager answered `max number of servants reached`.
    RefusedFull,
    /// The manager answered `no free servant port`.
    RefusedNoPort,
    /// A fanout servant could not listen on the port the manager gave it.
    ListenFailed,
    /// A line could not be sent to a peer (fanout with `--sender self`).
    SendFailed,
    /// A listener did not get a fanout line within `--timeout`.
    LineMissed,
    /// Any other I/O error.
    Other,
}

impl Failure {
    const ALL: [Failure; 12] = [
        Failure::ConnectRefused,
        Failure::ConnectFailed,
        Failure::Reset,
        Failure::Timeout,
        Failure::ClosedEarly,
        Failure::Malformed,
        Failure::RefusedFull,
        Failure::RefusedNoPort,
        Failure::ListenFailed,
        Failure::SendFailed,
        Failure::LineMissed,
        Failure::Other,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Failure::ConnectRefused => "connect_refused",
            Failure::ConnectFailed => "connect_failed",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::ClosedEarly => "closed_early",
            Failure::Malformed => "malformed",
            Failure::RefusedFull => "refused_full",
            Failure::RefusedNoPort => "refused_no_port",
            Failure::ListenFailed => "listen_failed",
            Failure::SendFailed => "send_failed",
            Failure::LineMissed => "line_missed",
            Failure::Other => "other",
        }
    }

    /// The failure an I/O error on a connection to the manager stands for.
    pub fn from_io(e: &std::io::Error) -> Failure {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => Failure::ConnectRefused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Failure::Reset,
            K::TimedOut | K::AddrNotAvailable | K::AddrInUse | K::HostUnreachable => {
                Failure::ConnectFailed
            }
            _ => Failure::Other,
        }
    }
}

/// Failures counted by kind, with the first message of each kind kept for the summary.
#[derive(Debug, Default)]
pub struct Failures {
    counts: [u64; Failure::ALL.len()],
    first: [Option<String>; Failure::ALL.len()],
}

impl Failures {
    pub fn count(&mut self, f: Failure, detail: impl FnOnce() -> String) {
        let k = f as usize;
        self.counts[k] += 1;
        if self.first[k].is_none() {
            let text = detail();
            log::info!("{}: {text}", f.name());
            self.first[k] = Some(text);
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn get(&self, f: Failure) -> u64 {
        self.counts[f as usize]
    }

    /// `(kind, count, first message)` for each kind seen.
    pub fn seen(&self) -> impl Iterator<Item = (Failure, u64, &str)> {
        Failure::ALL.iter().filter_map(|&f| {
            let n = self.counts[f as usize];
            (n > 0).then(|| (f, n, self.first[f as usize].as_deref().unwrap_or("")))
        })
    }
}

/// CPU and memory of a process over the measured window.
#[derive(Clone, Debug)]
pub struct ProcessUse {
    pub pid: u32,
    pub cpu: Duration,
    pub rss_bytes: Option<u64>,
    /// `schedstat` (ns resolution) or `stat` (clock ticks).
    pub source: &'static str,
}

/// Everything a run measured. Latencies are in nanoseconds.
#[derive(Debug)]
pub struct Report {
    pub mode: Mode,
    pub target: String,
    pub concurrency: usize,
    pub steady: usize,
    /// The measured window, after warm-up and before draining.
    pub elapsed: Duration,
    pub warmup: Duration,
    /// Operations completed in the measured window: join-leave cycles (churners'
    /// in steady mode), fanout lines or flood refusals.
    pub ops: u64,
    /// Latency of `ops`: connect to whole document, line sent to last listener,
    /// or connect to refusal.
    pub latency: Histogram,
    /// Steady servants' answers to `needs peer list` (steady mode).
    pub steady_answers: u64,
    pub steady_latency: Histogram,
    /// Documents that arrived when none was asked for (the manager's pushes).
    pub pushes: u64,
    /// Whole run, every phase: connections the manager accepted (its `joined:` count).
    pub connections: u64,
    /// Whole run: documents received, answers and pushes.
    pub documents: u64,
    pub doc_bytes: u64,
    /// Whole run: join-leave cycles (or flood refusals) completed, including
    /// warm-up and drain.
    pub cycles_total: u64,
    /// With `--verify`: peers per document, min and max.
    pub peers_min: Option<usize>,
    pub peers_max: Option<usize>,
    pub failures: Failures,
    pub server: Option<ProcessUse>,
    pub client: Option<ProcessUse>,
    /// Fanout: how the line was sent (`servant PATH` or `self`).
    pub sender: Option<String>,
    /// Fanout: listeners each line went to.
    pub listeners: usize,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

impl Report {
    fn per_s(&self, n: u64) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }

    /// What the server CPU is divided by: cycles (join-leave), answers (steady
    /// without churners, else cycles), lines (fanout).
    fn cpu_divisor(&self) -> u64 {
        match self.mode {
            Mode::Steady if self.concurrency == 0 => self.steady_answers,
            _ => self.ops,
        }
    }

    fn op_name(&self) -> &'static str {
        match self.mode {
            Mode::JoinLeave => "cycle",
            Mode::Steady if self.concurrency == 0 => "answer",
            Mode::Steady => "churn cycle",
            Mode::Fanout => "line",
            Mode::Flood => "refusal",
        }
    }

    fn mean_doc_bytes(&self) -> f64 {
        if self.documents == 0 {
            0.0
        } else {
            self.doc_bytes as f64 / self.documents as f64
        }
    }

    /// The human summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "====== {} ======", self.mode.name());
        let who = match self.mode {
            Mode::JoinLeave => format!("{} concurrent servants", self.concurrency),
            Mode::Flood => format!("{} connections in flight", self.concurrency),
            Mode::Steady => format!(
                "{} steady servants polling, {} churning",
                self.steady, self.concurrency
            ),
            Mode::Fanout => format!(
                "{} listening servants, sender {}",
                self.listeners,
                self.sender.as_deref().unwrap_or("?")
            ),
        };
        let _ = writeln!(
            s,
            "  manager {}, {who}, {:.2} s measured after {:.2} s warm-up",
            self.target,
            self.elapsed.as_secs_f64(),
            self.warmup.as_secs_f64()
        );
        let table = |s: &mut String, title: &str, n: u64, h: &Histogram| {
            let _ = writeln!(s, "  {title}: {n} in {:.0}/s", self.per_s(n));
            let _ = writeln!(
                s,
                "    latency ms:  min {:.3}  p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
                ms(h.min()),
                ms(h.percentile(50.0)),
                ms(h.percentile(99.0)),
                ms(h.percentile(99.9)),
                ms(h.max()),
                h.mean() / 1e6
            );
        };
        match self.mode {
            Mode::JoinLeave => table(
                &mut s,
                "join-leave cycles (connect, ask, whole document, close)",
                self.ops,
                &self.latency,
            ),
            Mode::Steady => {
                table(
                    &mut s,
                    "steady answers (ask to whole document)",
                    self.steady_answers,
                    &self.steady_latency,
                );
                if self.concurrency > 0 {
                    table(
                        &mut s,
                        "churn cycles (connect, ask, whole document, close)",
                        self.ops,
                        &self.latency,
                    );
                }
            }
            Mode::Fanout => table(
                &mut s,
                "lines (sent until the last listener has it)",
                self.ops,
                &self.latency,
            ),
            Mode::Flood => table(
                &mut s,
                "refusals (connect until the manager's refusal line)",
                self.ops,
                &self.latency,
            ),
        }
        let _ = writeln!(
            s,
            "  whole run: {} connections, {} cycles, {} documents (mean {:.0} bytes), {} pushed",
            self.connections,
            self.cycles_total,
            self.documents,
            self.mean_doc_bytes(),
            self.pushes
        );
        if let (Some(lo), Some(hi)) = (self.peers_min, self.peers_max) {
            let _ = writeln!(
                s,
                "  verified: every document parsed, one `me`; {lo} to {hi} peers"
            );
        }
        let per = self.cpu_divisor();
        for (who, p) in [("server", &self.server), ("churn", &self.client)] {
            let Some(p) = p else { continue };
            let cpu = p.cpu.as_nanos() as u64;
            let _ = write!(
                s,
                "  {who} pid {}: {:.2} us CPU per {}, {:.0}% of a core",
                p.pid,
                if per > 0 { us(cpu) / per as f64 } else { 0.0 },
                self.op_name(),
                100.0 * p.cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
            );
            if let Some(rss) = p.rss_bytes {
                let _ = write!(s, ", RSS {:.1} MiB", rss as f64 / 1048576.0);
            }
            let _ = writeln!(s, " ({})", p.source);
        }
        let total = self.failures.total();
        if total == 0 {
            let _ = writeln!(s, "  errors: none");
        } else {
            let _ = writeln!(s, "  errors: {total}");
            for (f, n, first) in self.failures.seen() {
                let _ = writeln!(s, "    {:<16} {n:>8}  first: {first}", f.name());
            }
        }
        s
    }

    /// One flat JSON object; latencies in microseconds, CPU per operation in microseconds.
    pub fn json(&self) -> String {
        let mut j = Json::default();
        j.str("mode", self.mode.name());
        j.str("target", &self.target);
        j.num("concurrency", self.concurrency as f64);
        j.num("steady", self.steady as f64);
        j.num("listeners", self.listeners as f64);
        if let Some(sender) = &self.sender {
            j.str("sender", sender);
        }
        j.num("elapsed_s", self.elapsed.as_secs_f64());
        j.num("warmup_s", self.warmup.as_secs_f64());
        j.num("ops", self.ops as f64);
        j.num("ops_per_s", self.per_s(self.ops));
        j.hist("latency", &self.latency);
        j.num("steady_answers", self.steady_answers as f64);
        j.num("steady_answers_per_s", self.per_s(self.steady_answers));
        j.hist("steady_latency", &self.steady_latency);
        j.num("pushes", self.pushes as f64);
        j.num("connections", self.connections as f64);
        j.num("cycles_total", self.cycles_total as f64);
        j.num("documents", self.documents as f64);
        j.num("doc_bytes_mean", self.mean_doc_bytes());
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
            j.num(&format!("error_{}", f.name()), self.failures.get(f) as f64);
        }
        j.finish()
    }
}

/// A flat JSON object writer: strings and numbers only, keys in insertion order.
#[derive(Default)]
struct Json(String);

impl Json {
    fn key(&mut self, k: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        let _ = write!(self.0, "\"{k}\":");
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.0.push('"');
        for c in v.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
    }

    fn num(&mut self, k: &str, v: f64) {
        self.key(k);
        if !v.is_finite() {
            self.0.push_str("null");
        } else if v.fract() == 0.0 && v.abs() < 1e15 {
            let _ = write!(self.0, "{}", v as i64);
        } else {
            let _ = write!(self.0, "{v:.3}");
        }
    }

    fn hist(&mut self, prefix: &str, h: &Histogram) {
        self.num(&format!("{prefix}_count"), h.count() as f64);
        self.num(&format!("{prefix}_min_us"), us(h.min()));
        self.num(&format!("{prefix}_p50_us"), us(h.percentile(50.0)));
        self.num(&format!("{prefix}_p99_us"), us(h.percentile(99.0)));
        self.num(&format!("{prefix}_p999_us"), us(h.percentile(99.9)));
        self.num(&format!("{prefix}_max_us"), us(h.max()));
        self.num(&format!("{prefix}_mean_us"), h.mean() / 1e3);
    }

    fn finish(mut self) -> String {
        if self.0.is_empty() {
            self.0.push('{');
        }
        self.0.push('}');
        self.0
    }
}

/// The number under `key` in a flat JSON object such as [`Report::json`] writes
/// (for tests and benchmarks that read churn's output).
pub fn json_number(json: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let at = json.find(&pat)? + pat.len();
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_flat_and_readable_back() {
        let mut j = Json::default();
        j.str("mode", "join-leave \"x\"");
        j.num("ops", 12.0);
        j.num("rate", 1.23456);
        let mut h = Histogram::new();
        h.record(2_000);
        j.hist("latency", &h);
        let text = j.finish();
        assert!(
            text.starts_with("{\"mode\":\"join-leave \\\"x\\\"\",\"ops\":12,"),
            "{text}"
        );
        assert_eq!(json_number(&text, "ops"), Some(12.0));
        assert_eq!(json_number(&text, "rate"), Some(1.235));
        assert_eq!(json_number(&text, "latency_max_us"), Some(2.0));
        assert_eq!(json_number(&text, "nope"), None);
        assert_eq!(Json::default().finish(), "{}");
    }

    #[test]
    fn failures_keep_counts_and_the_first_message() {
        let mut f = Failures::default();
        f.count(Failure::Timeout, || "first".into());
        f.count(Failure::Timeout, || "second".into());
        f.count(Failure::Reset, || "reset".into());
        assert_eq!(f.total(), 3);
        let seen: Vec<_> = f.seen().collect();
        assert_eq!(
            seen,
            vec![(Failure::Reset, 1, "reset"), (Failure::Timeout, 2, "first")]
        );
    }
}
