//! The manager under a flood of bogus handshakes: connections that send the
//! preamble and a whole first message of random bytes, which costs the manager
//! its Diffie-Hellman work before it fails, while members keep joining. Reports
//! the manager's CPU per bogus handshake and the members' join latency, beside
//! the same joins without the flood.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2pchat::churn::procfs::CpuMark;
use p2pchat::noise::PREAMBLE;

use super::{bind, manager, quantile, quick, Net, DEADLINE};

/// The flooders' threads, each from an address of its own.
const FLOODERS: usize = 8;
/// Flooders from one address at once for `flood-limit`: three times the
/// manager's 16 pending handshakes allowed per address. (Whole first messages
/// are read in the wakeup that accepts them, so measured, they never reach it.)
const AT_LIMIT: usize = 48;

/// A first message's worth of random bytes after the preamble, framed as a real one.
fn bogus(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = PREAMBLE.to_vec();
    out.extend_from_slice(&96u16.to_be_bytes());
    for _ in 0..96 {
        // xorshift: bytes no key opens, different on every connection.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

/// One bogus handshake from `from`: connect, send, read until the manager closes.
/// Whether it was closed (rather than timed out).
fn one(to: SocketAddr, from: &str, seed: u64) -> bool {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    if sock.bind(&from.into()).is_err() || sock.connect(&to.into()).is_err() {
        return false;
    }
    let mut c: TcpStream = sock.into();
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    if c.write_all(&bogus(seed)).is_err() {
        return true;
    }
    let mut buf = [0u8; 256];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// Starts `joiners` servants one after another; each one's time from spawn to its
/// first list, in ms. Killed at the end.
fn join(net: &Net, addr: SocketAddr, key: &str, first: usize, joiners: usize) -> Vec<f64> {
    let mut ms = Vec::new();
    let mut running = Vec::new();
    for k in first..first + joiners {
        let spawned = Instant::now();
        let d = net.servant(&format!("j{k}"), addr, &bind(k, 60), key);
        let (at, _) = d.wait_for("peers: ", Instant::now() + DEADLINE);
        ms.push((at - spawned).as_secs_f64() * 1e3);
        running.push(d);
    }
    ms.sort_by(f64::total_cmp);
    ms
}

pub fn flood() {
    run("flood", FLOODERS, FLOODERS);
}

/// The same flood from one address, `AT_LIMIT` connections at once; the line
/// says whether the manager refused any for its limit on pending handshakes.
pub fn flood_at_limit() {
    run("flood-limit", AT_LIMIT, 1);
}

/// `flooders` threads from `addresses` source addresses, each making bogus
/// handshakes one after another, while members join.
fn run(label: &str, flooders: usize, addresses: usize) {
    let (bogus_total, joiners) = if quick() { (100, 3) } else { (1000, 20) };
    let bogus_total = bogus_total * flooders / FLOODERS;
    let net = Net::new(label);
    let key = net.key("connmgr");
    let members: Vec<(String, String)> = (0..2 * joiners)
        .map(|k| (format!("j{k}"), net.key(&format!("j{k}"))))
        .collect();
    net.members(&members);
    let (mgr, addr) = manager(&net);
    let quiet = join(&net, addr, &key, 0, joiners);

    let next = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let cpu = CpuMark::take(mgr.child.id()).unwrap();
    let started = Instant::now();
    let threads: Vec<_> = (0..flooders)
        .map(|t| {
            let (next, closed) = (next.clone(), closed.clone());
            let from = bind(t % addresses, 70);
            std::thread::spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= bogus_total {
                    return;
                }
                if one(addr, &from, n as u64 * 0x9E37_79B9 + 7) {
                    closed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let flooded = join(&net, addr, &key, joiners, joiners);
    let joins_done = started.elapsed();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed();
    let cpu_ns = cpu.elapsed().unwrap_or(0);
    let per = cpu_ns as f64 / bogus_total as f64 / 1e3;
    // The manager says when it refuses for the limit, at most once a second.
    let mut limit_lines = 0;
    while let Ok((_, line)) = mgr.lines.try_recv() {
        if line.contains("handshakes already pending") {
            limit_lines += 1;
        }
    }
    println!(
        "{label}: {bogus_total} bogus handshakes, {flooders} at once from {addresses} \
         address(es), in {:.2} s ({} closed by the manager; {limit_lines} log lines \
         refusing for the pending-handshake limit); connmgr CPU {:.1} ms in all, \
         {per:.0} us per bogus handshake (the {joiners} joins included)",
        elapsed.as_secs_f64(),
        closed.load(Ordering::Relaxed),
        cpu_ns as f64 / 1e6,
    );
    println!(
        "{label}: join latency (spawn to first list), {joiners} members one after another: \
         quiet p50 {:.1} ms, max {:.1} ms; under the flood p50 {:.1} ms, max {:.1} ms \
         (joins done {:.2} s into the flood)",
        quantile(&quiet, 0.5),
        quantile(&quiet, 1.0),
        quantile(&flooded, 0.5),
        quantile(&flooded, 1.0),
        joins_done.as_secs_f64(),
    );
}
