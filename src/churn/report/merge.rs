//! `churn merge A.json B.json ...`: runs made at once against one server (from
//! several hosts, say) added up into one [`Report`], printed like a run's:
//! counts summed, percentiles from the merged histograms (each summary carries
//! its latencies whole, in HdrHistogram's encoding), the server's CPU from the run
//! that saw the most of it, the clients' summed.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::super::args::{self, unescape};
use super::super::hdr_v2;
use super::super::histogram::Histogram;
use super::super::{Config, Mode, Protocol};
use super::json::Value;
use super::{Failure, Failures, ProcessUse, Report, Second};

/// The histograms a summary may carry: the JSON prefix of its ladder, and the
/// key of its encoding.
const HISTOGRAMS: [(&str, &str); 6] = [
    ("latency", "latency_histogram"),
    ("connect_latency", "connect_histogram"),
    ("ttfb_latency", "ttfb_histogram"),
    ("service", "service_histogram"),
    ("start_lag", "start_lag_histogram"),
    ("steady_latency", "steady_histogram"),
];

/// One summary read back, and the name to show for it.
struct Run {
    name: String,
    v: Value,
}

impl Run {
    fn num(&self, key: &str) -> Option<f64> {
        self.v.get(key)?.num()
    }

    fn n(&self, key: &str) -> u64 {
        self.num(key).unwrap_or(0.0).max(0.0) as u64
    }

    fn str(&self, key: &str) -> Result<&str, String> {
        self.v
            .get(key)
            .and_then(Value::str)
            .ok_or_else(|| format!("{}: no {key:?}: not a churn --json summary", self.name))
    }
}

/// Reads every summary in `paths` and adds them up.
pub fn files(paths: &[impl AsRef<Path>]) -> Result<Report, String> {
    let mut runs = Vec::new();
    for p in paths {
        let p = p.as_ref();
        let name = p.display().to_string();
        let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {name}: {e}"))?;
        let v = Value::parse(text.trim()).map_err(|e| format!("{name}: {e}"))?;
        runs.push(Run { name, v });
    }
    merge(&runs)
}

fn merge(runs: &[Run]) -> Result<Report, String> {
    let first = runs.first().ok_or("nothing to merge")?;
    let mode =
        Mode::parse(first.str("mode")?).ok_or_else(|| format!("{}: unknown mode", first.name))?;
    for r in runs {
        let (m, t) = (r.str("mode")?, r.str("target")?);
        if m != mode.name() || t != first.str("target")? {
            return Err(format!(
                "{} ran {m} at {t}, {} {} at {}: only runs of one mode at one server merge",
                r.name,
                first.name,
                mode.name(),
                first.str("target")?
            ));
        }
    }
    let target = args::target(first.str("target")?, super::super::MANAGER_PORT)
        .map_err(|e| format!("{}: target: {e}", first.name))?;
    let mut config = Config::new(mode, target);
    if first.str("protocol")? == "generic" {
        let request =
            unescape(first.str("request")?).map_err(|e| format!("{}: {e}", first.name))?;
        let expect = match first.v.get("expect").and_then(Value::str) {
            Some(e) => Some(unescape(e).map_err(|e| format!("{}: {e}", first.name))?),
            None => None,
        };
        config.protocol = Protocol::Generic { request, expect };
    }
    let sum = |key: &str| runs.iter().map(|r| r.n(key)).sum::<u64>();
    let most = |key: &str| runs.iter().filter_map(|r| r.num(key)).fold(0.0, f64::max);
    config.concurrency = sum("concurrency") as usize;
    config.workers = (sum("workers") as usize).max(1);
    config.steady = sum("steady") as usize;
    config.keep_alive = first.v.get("keep_alive") == Some(&Value::Bool(true));
    config.bare = first.v.get("bare") == Some(&Value::Bool(true));
    config.interval = Duration::from_millis(first.n("interval_ms"));
    config.warmup = Duration::from_secs_f64(most("warmup_s"));
    let rates: Vec<f64> = runs.iter().filter_map(|r| r.num("rate")).collect();
    config.rate = (!rates.is_empty()).then(|| rates.iter().sum());
    config.args = std::iter::once("merge".to_string())
        .chain(runs.iter().map(|r| r.name.clone()))
        .collect();

    let mut hists: Vec<Option<Histogram>> = Vec::new();
    for (prefix, key) in HISTOGRAMS {
        hists.push(merged_histogram(runs, prefix, key)?);
    }
    let [latency, connect, ttfb, service, start_lag, steady] =
        <[_; 6]>::try_from(hists).map_err(|_| "six histograms".to_string())?;
    if latency.is_none() && steady.is_none() {
        return Err(format!(
            "{}: no latency_histogram: written by a churn from before summaries carried their histograms",
            first.name
        ));
    }
    let mut failures = Failures::default();
    for f in Failure::ALL {
        for r in runs {
            let first_text = r.v.get("first_errors").and_then(|e| e.get(f.name())?.str());
            failures.add(f, r.n(&format!("error_{}", f.name())), first_text);
        }
    }
    let documents = sum("documents") + sum("answers");
    let doc_bytes: f64 = runs
        .iter()
        .map(|r| {
            let n = r.num("documents").or(r.num("answers")).unwrap_or(0.0);
            n * r
                .num("doc_bytes_mean")
                .or(r.num("answer_bytes_mean"))
                .unwrap_or(0.0)
        })
        .sum();
    let started = runs
        .iter()
        .filter_map(|r| r.num("start_unix_s"))
        .fold(f64::INFINITY, f64::min);
    let connect_call = runs
        .iter()
        .filter_map(|r| Some(r.num("connect_call_mean_us")? * r.num("ops")?))
        .sum::<f64>();
    Ok(Report {
        started: SystemTime::UNIX_EPOCH
            + Duration::from_secs_f64(if started.is_finite() { started } else { 0.0 }),
        elapsed: Duration::from_secs_f64(most("elapsed_s")),
        ops: sum("ops"),
        latency: latency.unwrap_or_default(),
        service,
        start_lag,
        connect,
        ttfb,
        connect_call: (connect_call > 0.0)
            .then(|| Duration::from_secs_f64(connect_call / 1e6 / sum("ops").max(1) as f64)),
        waited: sum("waited"),
        steady_answers: sum("steady_answers"),
        steady_latency: steady.unwrap_or_default(),
        pushes: sum("pushes"),
        connections: sum("connections"),
        documents,
        doc_bytes: doc_bytes as u64,
        cycles_total: sum("cycles_total"),
        private: None,
        peers_min: runs
            .iter()
            .filter_map(|r| r.num("peers_min"))
            .reduce(f64::min)
            .map(|n| n as usize),
        peers_max: runs
            .iter()
            .filter_map(|r| r.num("peers_max"))
            .reduce(f64::max)
            .map(|n| n as usize),
        failures,
        lists: None,
        server: process(runs, "server", false),
        client: process(runs, "client", true),
        series: series(runs),
        merged_from: runs.iter().map(|r| r.name.clone()).collect(),
        config,
    })
}

/// The histogram under `key` of every run that has one, added up, with the
/// exact min, max and mean the runs' ladders give.
fn merged_histogram(runs: &[Run], prefix: &str, key: &str) -> Result<Option<Histogram>, String> {
    let mut out: Option<Histogram> = None;
    let (mut min, mut max, mut sum) = (u64::MAX, 0u64, 0u128);
    for r in runs {
        let Some(text) = r.v.get(key) else { continue };
        let text = text
            .str()
            .ok_or_else(|| format!("{}: {key} is not a string", r.name))?;
        let h = hdr_v2::decode(text, 1000).map_err(|e| format!("{}: {key}: {e}", r.name))?;
        let count = r
            .num(&format!("{prefix}_count"))
            .unwrap_or(h.count() as f64);
        if h.count() as f64 != count {
            return Err(format!(
                "{}: {key} holds {} values but {prefix}_count says {count}",
                r.name,
                h.count()
            ));
        }
        if h.count() > 0 {
            let us = |k: &str| r.num(&format!("{prefix}_{k}_us")).map(|v| (v * 1e3) as u64);
            min = min.min(us("min").unwrap_or(h.min()));
            max = max.max(us("max").unwrap_or(h.max()));
            let mean = r
                .num(&format!("{prefix}_mean_us"))
                .map_or(h.mean(), |m| m * 1e3);
            sum += (mean * h.count() as f64) as u128;
        }
        out.get_or_insert_with(Histogram::new).add(&h);
    }
    if let Some(h) = &mut out {
        h.set_exact(min, max, sum);
    }
    Ok(out)
}

/// The server's CPU and memory as the run that saw the most of it measured them
/// (every run watched the same server), or the clients' summed (`add`).
fn process(runs: &[Run], who: &str, add: bool) -> Option<ProcessUse> {
    let seen: Vec<&Run> = runs
        .iter()
        .filter(|r| r.num(&format!("{who}_cpu_s")).is_some())
        .collect();
    let first = seen.first()?;
    let cpu = |r: &Run| r.num(&format!("{who}_cpu_s")).unwrap_or(0.0);
    let rss = |r: &Run| r.num(&format!("{who}_rss_bytes"));
    let (cpu, rss) = if add {
        (
            seen.iter().map(|r| cpu(r)).sum(),
            seen.iter().filter_map(|r| rss(r)).reduce(|a, b| a + b),
        )
    } else {
        (
            seen.iter().map(|r| cpu(r)).fold(0.0, f64::max),
            seen.iter().filter_map(|r| rss(r)).reduce(f64::max),
        )
    };
    Some(ProcessUse {
        pid: first.n(&format!("{who}_pid")) as u32,
        cpu: Duration::from_secs_f64(cpu),
        rss_bytes: rss.map(|b| b as u64),
        source: "merged",
    })
}

/// The runs' seconds side by side: operations, errors and the clients' CPU
/// summed; the server's CPU, and p50, p99 and max, the worst of the runs'
/// (a second's own histogram is not in the summary).
fn series(runs: &[Run]) -> Vec<Second> {
    let mut out: Vec<Second> = Vec::new();
    for r in runs {
        let Some(seconds) = r.v.get("series").and_then(Value::arr) else {
            continue;
        };
        for (k, s) in seconds.iter().enumerate() {
            let n = |key: &str| s.get(key).and_then(Value::num);
            let ns = |key: &str| (n(key).unwrap_or(0.0) * 1e3) as u64;
            if out.len() <= k {
                out.push(Second::default());
            }
            let one = Second {
                t: n("t").unwrap_or(0.0),
                secs: n("secs").unwrap_or(0.0),
                ops: n("ops").unwrap_or(0.0) as u64,
                p50: ns("p50_us"),
                p99: ns("p99_us"),
                max: ns("max_us"),
                errors: n("errors").unwrap_or(0.0) as u64,
                server_cpu: n("server_cpu_pct").map(|c| c / 100.0),
                client_cpu: n("client_cpu_pct").map(|c| c / 100.0),
            };
            out[k].absorb(&one, true);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, r: &Report) -> Run {
        Run {
            name: name.into(),
            v: Value::parse(&r.json()).unwrap(),
        }
    }

    #[test]
    fn two_runs_add_up() {
        let (mut a, b) = (
            super::super::tests::sample(300),
            super::super::tests::sample(100),
        );
        a.failures.count(Failure::Timeout, || "late".into());
        let m = merge(&[run("a.json", &a), run("b.json", &b)]).unwrap();
        assert_eq!((m.ops, m.connections, m.latency.count()), (400, 400, 400));
        assert_eq!(m.config.concurrency, 100);
        assert_eq!(m.failures.get(Failure::Timeout), 1);
        assert_eq!(m.latency.min(), 1_000_000);
        assert_eq!(m.latency.max(), 1_000_299);
        assert_eq!(m.series.len(), 3);
        assert_eq!(m.series[0].ops, 133);
        let text = m.text();
        assert!(
            text.contains("merged from 2 runs (a.json, b.json)"),
            "{text}"
        );
        assert!(text.contains("first: late"), "{text}");
        let p50 = m.latency.percentile(50.0) as f64;
        assert!((p50 / 1e6 - 1.0).abs() < 0.02, "{p50}");
    }

    #[test]
    fn runs_that_do_not_merge_are_named() {
        let a = super::super::tests::sample(10);
        let mut b = super::super::tests::sample(10);
        b.config.mode = Mode::Flood;
        let e = merge(&[run("a.json", &a), run("b.json", &b)])
            .err()
            .unwrap();
        assert!(e.contains("b.json ran flood"), "{e}");
        let mut bad = run("c.json", &a);
        if let Value::Obj(m) = &mut bad.v {
            for (k, v) in m.iter_mut() {
                if k == "latency_histogram" {
                    *v = Value::Str("HISTFAAAAAA=".into());
                }
            }
        }
        let e = merge(&[bad]).err().unwrap();
        assert!(e.starts_with("c.json: latency_histogram: "), "{e}");
    }
}
