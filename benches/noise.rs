//! Private links' CPU: the IK handshake on each side, and sealing plus opening a
//! 100-byte chat line, over in-memory links (no sockets: the cryptography alone).
//!
//! `cargo bench --bench noise`; `P2PCHAT_BENCH_QUICK=1` (or `-- --quick`) for a
//! short smoke run with the same output. Figures: docs/BENCHMARKS.md.

use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use p2pchat::noise::{Keypair, Link, Step};

fn quick() -> bool {
    std::env::var_os("P2PCHAT_BENCH_QUICK").is_some_and(|v| v != "0")
        || std::env::args().any(|a| a == "--quick")
}

/// This thread's CPU time so far: what is measured, so that other processes on a
/// busy host do not count (they still slow the caches).
fn cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One handshake from start to both ends up; the time each side spent in it.
fn handshake(client: &Keypair, server: &Rc<Keypair>) -> (Duration, Duration, Link, Link) {
    let (mut plain, mut first, mut second, mut confirm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let t = cpu();
    let mut i = Link::initiator(client, server.public(), &mut first).unwrap();
    let mut initiator = cpu() - t;
    let t = cpu();
    let mut r = Link::responder(server.clone());
    let step = r.receive(&first, &mut plain, &mut second).unwrap();
    assert!(matches!(step, Step::Admit(_)));
    r.admit(&mut second).unwrap();
    let mut responder = cpu() - t;
    let t = cpu();
    assert_eq!(
        i.receive(&second, &mut plain, &mut confirm).unwrap(),
        Step::Up
    );
    initiator += cpu() - t;
    let t = cpu();
    assert_eq!(
        r.receive(&confirm, &mut plain, &mut second).unwrap(),
        Step::Up
    );
    responder += cpu() - t;
    (initiator, responder, i, r)
}

fn main() {
    let rounds = if quick() { 20 } else { 2000 };
    let client = Keypair::generate().unwrap();
    let server = Rc::new(Keypair::generate().unwrap());
    let mut sides: Vec<(Duration, Duration)> = (0..rounds)
        .map(|_| {
            let (a, b, _, _) = handshake(&client, &server);
            (a, b)
        })
        .collect();
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let mut initiator: Vec<Duration> = sides.iter().map(|s| s.0).collect();
    let mut responder: Vec<Duration> = sides.drain(..).map(|s| s.1).collect();
    println!(
        "IK handshake CPU, median of {rounds}: initiator {:.1} us, responder {:.1} us",
        median(&mut initiator).as_nanos() as f64 / 1e3,
        median(&mut responder).as_nanos() as f64 / 1e3
    );

    let (_, _, mut i, mut r) = handshake(&client, &server);
    let line = [b'x'; 100];
    let (mut wire, mut plain, mut answer) = (Vec::new(), Vec::new(), Vec::new());
    let lines = if quick() { 10_000 } else { 2_000_000 };
    let t = cpu();
    for _ in 0..lines {
        wire.clear();
        plain.clear();
        i.seal(black_box(&line), &mut wire).unwrap();
        r.receive(&wire, &mut plain, &mut answer).unwrap();
        assert_eq!(plain.len(), 100);
    }
    let per = (cpu() - t).as_nanos() as f64 / f64::from(lines);
    println!(
        "seal + open of a 100-byte line, CPU ({} bytes on the wire): {per:.0} ns, {:.0} lines/s",
        wire.len(),
        1e9 / per
    );
}
