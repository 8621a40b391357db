//! Failover time: 1,000 servants on connmgr A with B configured next; A is
//! SIGKILLed, and each servant's failover time is from the kill until B has
//! answered its request with the whole list (registered there).
//!
//! 1,000 servant processes are too heavy for this machine, so most are light
//! servants in this process, one thread each, following the servant's policy
//! (`src/servant/link/failover.rs`): on losing A, wait a random 0-500 ms, connect
//! to B, ask `needs peer list since 0`, read the document. A few real servant
//! processes (`--connmgr A --connmgr B`) run beside them, and their time until B
//! lists them all is reported too.
//!
//! `cargo bench --bench failover`; `P2PCHAT_BENCH_QUICK=1` runs 100 servants.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use p2pchat_harness::{Process, Spawn};

// Shared with the other benches, which use the rest of it.
#[allow(dead_code)]
mod common;
use common::{jitter, raise_fd_limit};

const CONNMGR: &str = env!("CARGO_BIN_EXE_connmgr");
const SERVANT: &str = env!("CARGO_BIN_EXE_servant");
const READY: Duration = Duration::from_secs(10);
/// Real servant processes beside the light ones.
const REAL: usize = 10;

fn connmgr() -> (Process, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port = port.to_string();
    let p = Spawn::new(CONNMGR)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--log-level",
            "warn",
        ])
        .args(["--max-per-address", "1000000"])
        .ignore_stdout()
        .keep(100)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let end = Instant::now() + READY;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < end, "connmgr does not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (p, addr)
}

/// Asks for the list on `s` and reads until the document's end.
fn registered(s: &mut TcpStream) -> std::io::Result<()> {
    s.write_all(b"needs peer list since 0\n")?;
    let mut doc = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while !doc.windows(8).any(|w| w == b"</peers>") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        doc.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// One light servant: registered with A, then, once A is gone, with B. Reports
/// when B answered.
fn light(
    k: usize,
    a: SocketAddr,
    b: SocketAddr,
    up: mpsc::Sender<()>,
    done: mpsc::Sender<Instant>,
) {
    let mut s = TcpStream::connect(a).expect("connect to A");
    registered(&mut s).expect("registered with A");
    up.send(()).unwrap();
    s.set_read_timeout(None).unwrap();
    // Pushes come as A's list grows; the link's end is the loss.
    let mut buf = [0u8; 64 * 1024];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    std::thread::sleep(jitter(k));
    let mut s = TcpStream::connect(b).expect("connect to B");
    registered(&mut s).expect("registered with B");
    done.send(Instant::now()).unwrap();
    // Kept open until the bench ends, as a servant would.
    std::thread::sleep(Duration::from_secs(30));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let quick = std::env::var_os("P2PCHAT_BENCH_QUICK").is_some()
        || std::env::args().any(|a| a == "--quick");
    let n = if quick { 100 } else { 1000 };
    raise_fd_limit();
    let (a, a_addr) = connmgr();
    let (b, b_addr) = connmgr();
    let (up_tx, up_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    for k in 0..n - REAL {
        let (up, done) = (up_tx.clone(), done_tx.clone());
        std::thread::spawn(move || light(k, a_addr, b_addr, up, done));
    }
    for _ in 0..n - REAL {
        up_rx
            .recv_timeout(READY)
            .expect("light servants registered with A");
    }
    let (ma, mb) = (a_addr.to_string(), b_addr.to_string());
    let real: Vec<Process> = (0..REAL)
        .map(|k| {
            let bind = format!("127.0.1.{}", k + 1);
            Spawn::new(SERVANT)
                .args(["--connmgr", &ma, "--connmgr", &mb, "--bind", &bind])
                .args([
                    "--headless",
                    "--poll-interval",
                    "500",
                    "--log-level",
                    "info",
                ])
                .ignore_stdout()
                .keep(1000)
                .start()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for r in &real {
        r.wait_for("listening on", READY)
            .expect("a real servant listens");
    }
    let killed = Instant::now();
    a.signal(libc::SIGKILL).unwrap();
    let mut times: Vec<Duration> = (0..n - REAL)
        .map(|_| done_rx.recv_timeout(READY).expect("failed over") - killed)
        .collect();
    times.sort();
    for r in &real {
        r.wait_for(&format!("connection manager at {b_addr} is back"), READY)
            .expect("a real servant failed over");
        r.wait_for("peers:", READY)
            .expect("a real servant has B's list");
    }
    let real_all = killed.elapsed();
    println!(
        "failover after SIGKILL, {} light servants: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {REAL} real servants all listed by B within {:.0} ms",
        n - REAL,
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        real_all.as_secs_f64() * 1e3,
    );
    drop(b);
}
