//! Private links' CPU: the IK handshake on each side, and sealing plus opening a
//! 100-byte chat line, over in-memory links (no sockets: the cryptography alone).
//!
//! `cargo bench --bench noise -- sealed` instead: a relayed private line's cost,
//! end to end (docs/PRIVATE.md#relays): the origin sealing a 100-byte line for one
//! puller, the relay reading the frame's addressee to route it, and the puller
//! opening it; and a session start, sealed and opened.
//!
//! `cargo bench --bench noise`; `P2PCHAT_BENCH_QUICK=1` (or `-- --quick`) for a
//! short smoke run with the same output. Figures: docs/BENCHMARKS.md.

use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use std::time::Instant;

use p2pchat::noise::e2e::{Opener, Sealer};
use p2pchat::noise::{Keypair, Link, Step};
use p2pchat::wire::sealed;

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

/// A relayed line's three steps, each timed alone over many lines.
fn relayed_line() {
    let lines = if quick() { 10_000 } else { 1_000_000 };
    let (origin, puller) = (Keypair::generate().unwrap(), Keypair::generate().unwrap());
    let to = *puller.public();
    let mut sealer = Sealer::new(origin);
    let mut opener = Opener::new(puller);
    let now = Instant::now();
    // The session's start, paid once per session (120 s) and skipped after.
    let mut first = Vec::new();
    let t = cpu();
    sealer.seal(&to, b"start", true, now, &mut first).unwrap();
    let start_seal = cpu() - t;
    let start = first.split(|&b| b == b'\n').next().unwrap().to_vec();
    let mut scratch = Vec::new();
    let t = cpu();
    let f = sealed::parse(&start, &mut scratch).unwrap();
    opener.open(&f, now, |_| true).unwrap();
    let start_open = cpu() - t;
    let line = [b'x'; 100];
    let mut frames: Vec<Vec<u8>> = Vec::with_capacity(lines);
    let mut out = Vec::new();
    let t = cpu();
    for _ in 0..lines {
        out.clear();
        sealer
            .seal(&to, black_box(&line), false, now, &mut out)
            .unwrap();
        frames.push(out[..out.len() - 1].to_vec());
    }
    let seal = cpu() - t;
    let t = cpu();
    for f in &frames {
        black_box(sealed::addressee(black_box(f)).unwrap());
    }
    let route = cpu() - t;
    let t = cpu();
    for f in &frames {
        let f = sealed::parse(f, &mut scratch).unwrap();
        let (_, text) = opener.open(&f, now, |_| true).unwrap();
        assert_eq!(text.map(|t| t.len()), Some(100));
    }
    let open = cpu() - t;
    let per = |d: Duration| d.as_nanos() as f64 / lines as f64;
    let (s, r, o) = (per(seal), per(route), per(open));
    println!(
        "relayed private line of 100 bytes ({} bytes sealed), CPU per line: seal {s:.0} ns, route {r:.0} ns, open {o:.0} ns; {:.0} ns in all, {:.0} lines/s",
        frames[0].len() + 1,
        s + r + o,
        1e9 / (s + r + o)
    );
    println!(
        "session start ({} bytes), once per session: seal {:.1} us, open {:.1} us",
        start.len() + 1,
        start_seal.as_nanos() as f64 / 1e3,
        start_open.as_nanos() as f64 / 1e3
    );
}

fn main() {
    if std::env::args().any(|a| a == "sealed") {
        return relayed_line();
    }
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
