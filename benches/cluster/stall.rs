//! Redis stopped (SIGSTOP) while servants ask: each manager keeps answering its
//! own servants from its copy. Clients ask every 100 ms, pushes off so that
//! every document read is the answer to the request before it; a newcomer joins
//! each manager halfway through the stall.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::verdict;
use super::setup::{cluster, quantile, Light, Redis};
use super::Plan;

const EVERY: Duration = Duration::from_millis(100);

/// Asks every 100 ms until `stop`: when each request went out, and how long its
/// answer took.
fn probe(to: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Vec<(Instant, Duration)> {
    let mut l = Light::connect(to).expect("a probe connects");
    l.poll().expect("the whole list");
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match l.poll() {
            Ok(d) => out.push((t, d)),
            Err(e) => panic!("a manager stopped answering: {e}"),
        }
        std::thread::sleep(EVERY.saturating_sub(t.elapsed()));
    }
    out
}

pub fn stall(p: &Plan) {
    let redis = Redis::start("stall");
    let managers = cluster(&redis, &["--push-interval", "0"]);
    let stop = Arc::new(AtomicBool::new(false));
    let probes: Vec<Vec<_>> = managers
        .iter()
        .map(|m| {
            (0..p.probes)
                .map(|_| {
                    let (to, stop) = (m.addr, stop.clone());
                    std::thread::spawn(move || probe(to, stop))
                })
                .collect()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let stopped = Instant::now();
    redis.signal(libc::SIGSTOP);
    std::thread::sleep(p.stall / 2);
    // In parallel: a newcomer may wait for its join script until the manager
    // gives Redis up.
    let newcomers: Vec<_> = managers
        .iter()
        .map(|m| {
            let to = m.addr;
            std::thread::spawn(move || {
                let t = Instant::now();
                let mut l = Light::connect(to).expect("a newcomer connects");
                l.poll().expect("a newcomer is answered");
                (t.elapsed().as_secs_f64() * 1e3, l)
            })
        })
        .collect();
    let newcomers: Vec<(f64, Light)> = newcomers
        .into_iter()
        .map(|t| t.join().expect("a newcomer"))
        .collect();
    let admitted: Vec<f64> = newcomers.iter().map(|n| n.0).collect();
    std::thread::sleep(p.stall.saturating_sub(stopped.elapsed()));
    redis.signal(libc::SIGCONT);
    let resumed = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    println!(
        "stall: redis SIGSTOPped for {:.0} s while {} clients on each manager ask every 100 ms (pushes off):",
        (resumed - stopped).as_secs_f64(),
        p.probes
    );
    for (k, threads) in probes.into_iter().enumerate() {
        let samples: Vec<(Instant, Duration)> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("a probe"))
            .collect();
        let pick = |during: bool| {
            let mut v: Vec<Duration> = samples
                .iter()
                .filter(|(t, _)| (*t >= stopped && *t < resumed) == during && *t < resumed)
                .map(|s| s.1)
                .collect();
            v.sort();
            v
        };
        let (during, before) = (pick(true), pick(false));
        let p99 = quantile(&during, 0.99);
        println!(
            "  manager {k}: {} answers during the stall, p50 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms (before it: p99 {:.2} ms); a newcomer admitted from its own copy in {:.1} ms; goal p99 < 5 ms: {}, ratio {:.2}",
            during.len(),
            quantile(&during, 0.5),
            quantile(&during, 1.0),
            quantile(&before, 0.99),
            admitted[k],
            verdict(p99 < 5.0),
            p99 / 5.0
        );
    }
}
