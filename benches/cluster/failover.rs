//! Failover over the real cluster: servants spread over three managers, each
//! configured with all three; one manager is SIGKILLed, and each of its servants'
//! failover time runs from the kill until another manager has registered it
//! (answered its `needs peer list since 0` with the whole list, which it sends
//! only once the servant's join script has run in Redis).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use p2pchat_harness::{Process, Spawn};

use super::common::{jitter, verdict};
use super::setup::{cluster, quantile, Light, Redis, READY};
use super::Plan;

const SERVANT: &str = env!("CARGO_BIN_EXE_servant");
/// Real servant processes, all on the manager that is killed.
const REAL: usize = 6;

/// One light servant on `order[0]`; once that link ends it waits its jitter and
/// registers with the next manager that takes it, and says when (if `report`).
fn light(
    k: usize,
    order: [SocketAddr; 3],
    up: mpsc::Sender<()>,
    done: Option<mpsc::Sender<Instant>>,
) {
    let Ok(mut l) = Light::connect(order[0]) else {
        return;
    };
    if l.ask().and_then(|()| l.answer()).is_err() {
        return;
    }
    let _ = up.send(());
    let _ = l.s.set_read_timeout(None);
    let mut buf = [0u8; 64 * 1024];
    while matches!(l.s.read(&mut buf), Ok(n) if n > 0) {}
    let Some(done) = done else { return };
    std::thread::sleep(jitter(k));
    for next in &order[1..] {
        let Ok(mut l) = Light::connect(*next) else {
            continue;
        };
        if l.ask().and_then(|()| l.answer()).is_ok() {
            let _ = done.send(Instant::now());
            // Kept open a while, as a servant would.
            std::thread::sleep(Duration::from_secs(10));
            return;
        }
    }
}

pub fn failover(p: &Plan) {
    let redis = Redis::start("failover");
    let mut servers = cluster(&redis, &[]);
    let addrs: Vec<SocketAddr> = servers.iter().map(|m| m.addr).collect();
    let (up_tx, up_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let n = p.failover - REAL;
    let mut on_killed = 0;
    for k in 0..n {
        let home = k % 3;
        let order = [addrs[home], addrs[(home + 1) % 3], addrs[(home + 2) % 3]];
        let done = (home == 0).then(|| done_tx.clone());
        on_killed += usize::from(home == 0);
        let up = up_tx.clone();
        std::thread::spawn(move || light(k, order, up, done));
    }
    for _ in 0..n {
        up_rx
            .recv_timeout(READY)
            .expect("light servants registered");
    }
    let managers: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let real: Vec<Process> = (0..REAL)
        .map(|k| {
            let bind = format!("127.0.1.{}", k + 1);
            Spawn::new(SERVANT)
                .args(["--connmgr", &managers[0], "--connmgr", &managers[1]])
                .args(["--connmgr", &managers[2], "--bind", &bind, "--headless"])
                .args(["--poll-interval", "500", "--log-level", "info"])
                .ignore_stdout()
                .keep(1000)
                .start()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for r in &real {
        r.wait_for("listening on", READY)
            .expect("a real servant listens");
        r.wait_for("peers:", READY)
            .expect("a real servant is listed");
    }
    let killed = Instant::now();
    let dead = servers.remove(0);
    dead.process.signal(libc::SIGKILL).unwrap();
    let mut times: Vec<Duration> = (0..on_killed)
        .map(|_| done_rx.recv_timeout(READY).expect("failed over") - killed)
        .collect();
    times.sort();
    let mut real_back = 0;
    for r in &real {
        let back = [&managers[1], &managers[2]].iter().any(|m| {
            r.wait_for(&format!("connection manager at {m} is back"), READY)
                .is_ok()
        });
        real_back += usize::from(back && r.wait_for("peers:", READY).is_ok());
    }
    let real_all = killed.elapsed();
    let resumed: usize = real.iter().map(|r| r.count("took over our entry")).sum();
    let p99 = quantile(&times, 0.99);
    println!(
        "failover: {} servants over three managers ({on_killed} light and {REAL} real on the one SIGKILLed), each configured with all three:",
        p.failover
    );
    println!(
        "  light servants registered with another manager: p50 {:.0} ms, p99 {p99:.0} ms, max {:.0} ms; goal p99 < 2 s: {}, ratio {:.2}; {real_back} of {REAL} real servants back and listed within {:.0} ms; {resumed} of them say the new manager took over their entry (resumed)",
        quantile(&times, 0.5),
        quantile(&times, 1.0),
        verdict(p99 < 2000.0),
        p99 / 2000.0,
        real_all.as_secs_f64() * 1e3,
    );
}
