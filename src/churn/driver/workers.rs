//! `--workers N`: N event loops, each in its own thread with its own reactor,
//! sharing out `-c`, `--rate`, `-n` and the source addresses, and one report of
//! them all. Latencies merge exactly (the histograms add up); each second's line
//! adds the workers' operations and shows the worst worker's percentiles.
//!
//! One worker catches SIGINT; when it stops, or any worker fails, the others
//! see the shared flag at their next tick and stop too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use super::super::report::{Report, Second};
use super::super::{Config, Progress, RunError};
use super::stats::show_second;

/// What one worker shares with the others and with the thread that reports.
#[derive(Clone)]
pub(super) struct Shared {
    /// Set when the run must stop everywhere.
    stop: Arc<AtomicBool>,
    /// Where a worker sends each measured second, numbered; `None` alone.
    pub seconds: Option<mpsc::Sender<(usize, Second)>>,
    pub catches_signals: bool,
}

impl Default for Shared {
    /// A run on one event loop: it catches signals and shows its own seconds.
    fn default() -> Self {
        Shared {
            stop: Arc::new(AtomicBool::new(false)),
            seconds: None,
            catches_signals: true,
        }
    }
}

impl Shared {
    pub fn stop_all(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Worker `k`'s share of `cfg` among `n`: clients, rate and count divided (the
/// first workers take the remainders), and its own slice of the source
/// addresses when there are enough to go round, else all of them.
fn share(cfg: &Config, k: usize, n: usize) -> Config {
    let part = |total: usize| total / n + usize::from(k < total % n);
    let mut c = cfg.clone();
    c.workers = 1;
    c.concurrency = part(cfg.concurrency);
    c.rate = cfg.rate.map(|r| r / n as f64);
    c.count = cfg.count.map(|total| part(total as usize) as u64);
    let len = cfg.sources.len();
    if len >= n {
        c.sources = cfg.sources[k * len / n..(k + 1) * len / n].to_vec();
    }
    c.progress = Progress::Off;
    c
}

/// Runs `cfg.workers` event loops and adds up their reports.
pub(super) fn run(cfg: Config) -> Result<Report, RunError> {
    let n = cfg.workers;
    let stop = Arc::new(AtomicBool::new(false));
    let (to_main, seconds) = mpsc::channel();
    let mut handles = Vec::with_capacity(n);
    for k in 0..n {
        let shared = Shared {
            stop: stop.clone(),
            seconds: Some(to_main.clone()),
            catches_signals: k == 0,
        };
        let worker = share(&cfg, k, n);
        let spawned = thread::Builder::new()
            .name(format!("churn worker {k}"))
            .spawn(move || super::run_one(worker, shared, None));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(RunError(format!("cannot start worker {k}: {e}")));
            }
        }
    }
    drop(to_main);
    show_seconds(&cfg, n, &seconds);
    let mut reports = Vec::with_capacity(n);
    let mut failed = None;
    for (k, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(r)) => reports.push(r),
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(_) => failed = failed.or(Some(RunError(format!("worker {k} panicked")))),
        }
    }
    if cfg.progress == Progress::Line {
        eprint!("\r\x1b[K");
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(combine(cfg, reports))
}

/// Shows each measured second once every worker has sent it (or has ended).
fn show_seconds(cfg: &Config, n: usize, seconds: &mpsc::Receiver<(usize, Second)>) {
    let mut waiting: BTreeMap<usize, (usize, Second)> = BTreeMap::new();
    for (k, s) in seconds {
        let (got, sum) = waiting.entry(k).or_insert((0, Second::default()));
        *got += 1;
        sum.absorb(&s, false);
        if *got == n {
            let (_, s) = waiting.remove(&k).unwrap_or_default();
            show_second(cfg, &format!("{:>4.0} s", s.t), &s);
        }
    }
}

/// One report from the workers': counts summed, histograms added, the CPU of
/// churn and the server as the worker that saw the most of it read it (every
/// worker reads the whole process, and the same server).
fn combine(cfg: Config, reports: Vec<Report>) -> Report {
    let mut it = reports.into_iter();
    let mut all = it.next().expect("at least one worker");
    let calls = |r: &Report| {
        r.connect_call
            .map_or(0.0, |d| d.as_secs_f64() * r.ops as f64)
    };
    let mut call_total = calls(&all);
    for r in it {
        call_total += calls(&r);
        all.elapsed = all.elapsed.max(r.elapsed);
        all.started = all.started.min(r.started);
        all.ops += r.ops;
        all.latency.add(&r.latency);
        for (mine, theirs) in [
            (&mut all.service, &r.service),
            (&mut all.start_lag, &r.start_lag),
            (&mut all.connect, &r.connect),
            (&mut all.ttfb, &r.ttfb),
        ] {
            if let (Some(a), Some(b)) = (mine, theirs) {
                a.add(b);
            }
        }
        all.waited += r.waited;
        all.steady_answers += r.steady_answers;
        all.steady_latency.add(&r.steady_latency);
        all.pushes += r.pushes;
        all.connections += r.connections;
        all.documents += r.documents;
        all.doc_bytes += r.doc_bytes;
        all.cycles_total += r.cycles_total;
        all.peers_min = all
            .peers_min
            .min(r.peers_min)
            .or(all.peers_min.or(r.peers_min));
        all.peers_max = all.peers_max.max(r.peers_max);
        for (f, count, first) in r.failures.seen() {
            all.failures.add(f, count, Some(first));
        }
        if let (Some(a), Some(b)) = (&mut all.lists, &r.lists) {
            a.add(b);
        }
        for (mine, theirs) in [(&mut all.server, &r.server), (&mut all.client, &r.client)] {
            match (mine, theirs) {
                (Some(a), Some(b)) if b.cpu > a.cpu => *a = b.clone(),
                (a @ None, b) => *a = b.clone(),
                _ => {}
            }
        }
        for (k, s) in r.series.iter().enumerate() {
            match all.series.get_mut(k) {
                Some(mine) => mine.absorb(s, false),
                None => all.series.push(s.clone()),
            }
        }
    }
    if all.ops > 0 && call_total > 0.0 {
        let mean = call_total / all.ops as f64;
        all.connect_call = Some(std::time::Duration::from_secs_f64(mean));
    }
    all.config = cfg;
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::churn::Mode;

    #[test]
    fn workers_share_clients_rate_count_and_addresses() {
        let mut c = Config::new(Mode::JoinLeave, "127.0.0.1:85".parse().unwrap());
        c.concurrency = 5;
        c.rate = Some(1000.0);
        c.count = Some(7);
        c.sources = (1..=10u8).map(|k| [127, 0, 0, k].into()).collect();
        let shares: Vec<Config> = (0..2).map(|k| share(&c, k, 2)).collect();
        assert_eq!((shares[0].concurrency, shares[1].concurrency), (3, 2));
        assert_eq!((shares[0].count, shares[1].count), (Some(4), Some(3)));
        assert_eq!(shares[1].rate, Some(500.0));
        assert_eq!(shares[0].sources, c.sources[..5]);
        assert_eq!(shares[1].sources, c.sources[5..]);
        c.sources.truncate(1);
        assert_eq!(
            share(&c, 1, 2).sources,
            c.sources,
            "too few to split: shared"
        );
    }
}
