//! Several managers, one network, measured (docs/CLUSTER.md): a `redis-server`
//! of the bench's own on a Unix socket and three release `connmgr --cluster`.
//!
//! - scale: 30,000 version-aware servants, 10,000 on each manager, each asking
//!   `needs peer list since V` every 2 s (three `churn steady` processes, one per
//!   manager, since one process holds at most 20,000 descriptors here). Each
//!   manager's CPU over a measured window (goal: under 5% of a core) and RSS.
//! - propagation: a join on manager A until a client on B that asks every
//!   millisecond (pushes off) is answered with it; p50/p99 over a few hundred
//!   joins (goal: p99 under 100 ms).
//! - failover: 1,000 servants over the three, each configured with all three;
//!   one manager is SIGKILLed, and each of its servants' time until another
//!   manager has registered it (answered its request with the whole list); goal
//!   p99 under 2 s. Light servants in threads following the servant's policy
//!   (a random 0-500 ms, then the next manager), and a few real servants.
//! - stall: Redis SIGSTOPped for 10 s while servants ask; each manager's answer
//!   p99 to its own servants during the stall (goal: under 5 ms).
//! - names: a servant's `name` claims on a cluster manager (claimed in Redis
//!   before the answer) against one manager alone; p50/p99 and the ratio.
//!
//! `cargo bench --bench cluster`, or `-- scale stall` for some steps only;
//! `P2PCHAT_BENCH_QUICK=1` (or `-- --quick`) runs every step small and short.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use p2pchat_harness::{Process, Spawn};

// Shared with the other benches, which use the rest of it.
#[allow(dead_code)]
mod common;
use common::{get, quick, run_steps, verdict, Step, CHURN};

// In benches/cluster/, where Cargo does not take them for benches of their own.
#[path = "cluster/failover.rs"]
mod failover;
#[path = "cluster/names.rs"]
mod names;
#[path = "cluster/setup.rs"]
mod setup;
#[path = "cluster/stall.rs"]
mod stall;
use setup::{cluster, connect_from, cpu_ns, quantile, rss_mib, Light, Redis};

pub struct Plan {
    /// Servants on each manager in the scale step.
    per_manager: usize,
    /// Left to settle after the last servant joined, then measured.
    settle: Duration,
    window: Duration,
    joins: usize,
    failover: usize,
    /// Clients asking each manager during the stall, each every 100 ms.
    probes: usize,
    stall: Duration,
}

fn main() {
    let quick = quick();
    let p = if quick {
        Plan {
            per_manager: 300,
            settle: Duration::from_secs(1),
            window: Duration::from_secs(3),
            joins: 30,
            failover: 100,
            probes: 10,
            stall: Duration::from_secs(3),
        }
    } else {
        Plan {
            per_manager: 10_000,
            settle: Duration::from_secs(5),
            window: Duration::from_secs(20),
            joins: 300,
            failover: 1000,
            probes: 100,
            stall: Duration::from_secs(10),
        }
    };
    common::raise_fd_limit();
    println!(
        "several managers ({} mode, loopback; three release connmgr --cluster on one redis-server, Unix socket)",
        if quick { "quick" } else { "full" }
    );
    if quick {
        println!("  (quick mode: small and short runs, figures are not meaningful)");
    }
    let steps: [(&str, Step<Plan>); 5] = [
        ("scale", scale),
        ("propagation", propagation),
        ("failover", failover::failover),
        ("stall", stall::stall),
        ("names", names::names),
    ];
    run_steps(&p, &steps);
}

/// One churn process of `n` version-aware servants on `m`, asking every 2 s
/// until it is told to stop; returned once its first measured second is over.
fn steady_churn(m: &common::Server, n: usize, k: usize) -> Process {
    let bind = format!("127.{}.0.1-127.{}.0.100", 20 + k, 20 + k);
    let c = Spawn::new(CHURN)
        .args(["steady", "--steady", &n.to_string(), "-c", "0"])
        .args(["--interval", "2000", "-d", "3600", "--timeout", "120000"])
        .args(["--bind", &bind, "--json", "-t", &m.addr.to_string()])
        .args(["--server-pid", &m.pid().to_string()])
        .keep(100)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    c.wait_for("1 s]", Duration::from_secs(900))
        .unwrap_or_else(|e| panic!("{e}"));
    c
}

/// 10,000 polling servants on each of the three managers.
fn scale(p: &Plan) {
    let redis = Redis::start("scale");
    let managers = cluster(&redis, &["--idle-timeout", "0"]);
    let idle: Vec<f64> = managers.iter().map(|m| rss_mib(m.pid())).collect();
    let started = Instant::now();
    // One manager's servants at a time: each newcomer fetches the whole list once.
    let churns: Vec<Process> = managers
        .iter()
        .enumerate()
        .map(|(k, m)| steady_churn(m, p.per_manager, k))
        .collect();
    let joined = started.elapsed();
    std::thread::sleep(p.settle);
    let pids: Vec<u32> = managers.iter().map(|m| m.pid()).collect();
    let before: Vec<u64> = pids.iter().map(|&pid| cpu_ns(pid)).collect();
    let churn_before: Vec<u64> = churns.iter().map(|c| cpu_ns(c.pid())).collect();
    let t = Instant::now();
    std::thread::sleep(p.window);
    let secs = t.elapsed().as_secs_f64();
    let core = |now: u64, then: u64| 100.0 * (now - then) as f64 / 1e9 / secs;
    let cpu: Vec<f64> = pids
        .iter()
        .zip(&before)
        .map(|(&pid, &b)| core(cpu_ns(pid), b))
        .collect();
    let churn_cpu: Vec<f64> = churns
        .iter()
        .zip(&churn_before)
        .map(|(c, &b)| core(cpu_ns(c.pid()), b))
        .collect();
    let rss: Vec<f64> = pids.iter().map(|&pid| rss_mib(pid)).collect();
    // Every manager lists every servant (and the one asking).
    let listed: Vec<usize> = managers
        .iter()
        .map(|m| {
            let mut l = Light::connect(m.addr).expect("a newcomer connects");
            l.ask().unwrap();
            let doc = l.answer().expect("the whole list");
            memchr::memmem::find_iter(&doc, b"<peer>").count()
        })
        .collect();
    let total = 3 * p.per_manager;
    println!(
        "scale: {total} version-aware servants, {} on each manager, each asking `since V` every 2 s (three churn processes); all joined in {:.0} s, then {:.0} s to settle and {secs:.0} s measured:",
        p.per_manager,
        joined.as_secs_f64(),
        p.settle.as_secs_f64()
    );
    for (k, c) in churns.iter().enumerate() {
        let _ = c.signal(libc::SIGINT);
        let j = c.stdout_line(Duration::from_secs(120)).unwrap_or_default();
        println!(
            "  manager {k}: {:.1}% of a core (goal < 5%: {}, ratio {:.2}), RSS {:.1} MiB ({:.1} idle), lists {} entries; its churn: {:.0} unchanged, {:.0} deltas, {:.0} whole, {:.0} gaps, {:.0} errors, answer p99 {:.2} ms over its whole run, churn {:.1}% of a core",
            cpu[k],
            verdict(cpu[k] < 5.0),
            cpu[k] / 5.0,
            rss[k],
            idle[k],
            listed[k],
            get(&j, "unchanged"),
            get(&j, "deltas"),
            get(&j, "wholes"),
            get(&j, "gaps"),
            get(&j, "errors"),
            get(&j, "steady_latency_p99_us") / 1e3,
            churn_cpu[k],
        );
    }
}

/// Joins on A until B's answer to a client that keeps asking lists them.
fn propagation(p: &Plan) {
    let redis = Redis::start("propagation");
    let managers = cluster(&redis, &["--push-interval", "0"]);
    let (a, b) = (managers[0].addr, managers[1].addr);
    let (seen_tx, seen) = mpsc::channel::<(String, Instant)>();
    let stop = Arc::new(AtomicBool::new(false));
    let asking = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut l = Light::connect(b).expect("a client on B");
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                l.ask().unwrap();
                let answer = l.answer().expect("B answers");
                let now = Instant::now();
                for ip in joined_ips(&answer) {
                    let _ = seen_tx.send((ip, now));
                }
                std::thread::sleep(Duration::from_millis(1).saturating_sub(t.elapsed()));
            }
        })
    };
    let mut took = Vec::with_capacity(p.joins);
    for k in 0..p.joins {
        let ip = format!("127.30.{}.{}", k / 250, k % 250 + 1);
        let t = Instant::now();
        let mut s = connect_from(&ip, a).expect("a join on A");
        std::io::Write::write_all(&mut s, b"needs peer list since 0\n").unwrap();
        loop {
            let (got, at) = seen
                .recv_timeout(Duration::from_secs(10))
                .expect("B lists the join");
            if got == ip {
                took.push(at - t);
                break;
            }
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(10 + (k as u64 * 7) % 20));
    }
    stop.store(true, Ordering::Relaxed);
    asking.join().unwrap();
    took.sort();
    let p99 = quantile(&took, 0.99);
    println!(
        "propagation: {} joins on manager A, each until a client on B asking every 1 ms (pushes off) is answered with it: p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms; goal p99 < 100 ms: {}, ratio {:.2}",
        took.len(),
        quantile(&took, 0.5),
        quantile(&took, 1.0),
        verdict(p99 < 100.0),
        p99 / 100.0
    );
}

/// The addresses of the newcomers an answer lists (`<peer><ip>...</ip>`).
fn joined_ips(answer: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(answer);
    text.split("<peer><ip>")
        .skip(1)
        .filter_map(|s| s.split_once("</ip>").map(|(ip, _)| ip.to_string()))
        .collect()
}
