//! names: a `name` claim on a cluster manager, which claims the name in Redis
//! first (one script: the names hash, then the stream) and holds the
//! connection's later requests meanwhile, against one manager alone, which
//! answers from memory. The same requests and the same reply bytes on each.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::common::Server;
use super::setup::{cluster, connmgr, quantile, Light, Redis, READY};
use super::Plan;

pub fn names(p: &Plan) {
    let redis = Redis::start("names");
    // Pushes off, so that the only bytes after a request are its answer.
    let managers = cluster(&redis, &["--push-interval", "0"]);
    let alone = alone();
    let clustered = claims(managers[0].addr, p.joins);
    let baseline = claims(alone.addr, p.joins);
    let (c50, c99) = (quantile(&clustered, 0.5), quantile(&clustered, 0.99));
    let (b50, b99) = (quantile(&baseline, 0.5), quantile(&baseline, 0.99));
    println!(
        "names: {} claims in turn by one servant (`name benchK`, answered `name ok benchK`): on a cluster manager p50 {c50:.3} ms, p99 {c99:.3} ms, max {:.3} ms; on one manager alone p50 {b50:.3} ms, p99 {b99:.3} ms; ratio p50 {:.1}, p99 {:.1}",
        clustered.len(),
        quantile(&clustered, 1.0),
        c50 / b50,
        c99 / b99,
    );
}

/// One manager with no Redis, started as [`cluster`] starts each.
fn alone() -> Server {
    let alone = connmgr(&["--push-interval", "0", "--log-level", "warn"]);
    alone
        .process
        .wait_for("listening on", READY)
        .unwrap_or_else(|e| panic!("{e}"));
    alone
}

/// A servant joins `to`, then claims `n` names in turn: how long each answer took.
fn claims(to: SocketAddr, n: usize) -> Vec<Duration> {
    let mut l = Light::connect(to).expect("a servant connects");
    l.ask().unwrap();
    l.answer().expect("the whole list");
    let mut took = Vec::with_capacity(n);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for k in 0..n {
        let name = format!("bench{k}");
        let want = format!("name ok {name}\r\n");
        let t = Instant::now();
        l.s.write_all(format!("name {name}\n").as_bytes()).unwrap();
        while memchr::memmem::find(&buf, want.as_bytes()).is_none() {
            let got = l.s.read(&mut chunk).expect("the manager answers a name");
            assert!(got > 0, "the manager closed the connection");
            buf.extend_from_slice(&chunk[..got]);
        }
        took.push(t.elapsed());
        buf.clear();
    }
    took.sort();
    took
}
