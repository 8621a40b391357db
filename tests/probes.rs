//! Relays prove they forward: real `connmgr`, raw clients on loopback playing a
//! puller (which never listens, so it is marked) and relays (which say `can relay`
//! and listen on their ports, so dial-backs reach them). A relay that takes the
//! manager's probes and forwards nothing must be dropped; one that forwards them
//! must be kept.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, entries, read_doc, Daemon, DEADLINE};

/// A manager on loopback that marks a servant on one complaint and probes fast:
/// every 300 ms, 1 s to answer, dropped after 3 misses in a row.
fn manager(first_port: &str) -> (Daemon, SocketAddr) {
    common::connmgr(&[
        "--first-port",
        first_port,
        "--relay-threshold",
        "1",
        "--relay-share",
        "0",
        "--relay-dial-timeout",
        "2000",
        "--relay-probe-interval",
        "300ms",
        "--relay-probe-timeout",
        "1s",
        "--relay-probe-misses",
        "3",
        "--log-level",
        "debug",
    ])
}

/// A relay: says `can relay`, asks for the list, and listens on its port. Each
/// line a connection writes to that port goes to `forward` (None: a black hole
/// that accepts and drops it). Returns its manager link and its port.
fn relay(addr: SocketAddr, forward: Option<TcpStream>, stop: Arc<AtomicBool>) -> (TcpStream, u16) {
    let mut link = client(addr);
    link.write_all(b"can relay\nneeds peer list\n").unwrap();
    let doc = read_doc(&mut link);
    let port = entries(&doc).into_iter().find(|e| e.2).unwrap().0;
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut forward = forward;
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20)); // accept poll
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(DEADLINE)).unwrap();
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            // The puller's side of the pull: it sees the probe and answers it.
            if let (Some(puller), Some(line)) = (forward.as_mut(), got.lines().next()) {
                let _ = puller.write_all(format!("probed {line}\n").as_bytes());
            }
        }
    });
    (link, port)
}

/// Keeps `link` asking for the list every 200 ms until `stop`, so the manager
/// hears its heartbeat; what it is sent is read and dropped.
fn keep_asking(mut link: TcpStream, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut sink = [0u8; 65536];
        link.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        while !stop.load(Ordering::Relaxed) {
            if link.write_all(b"needs peer list\n").is_err() {
                return;
            }
            let _ = link.read(&mut sink);
        }
    });
}

/// The puller: says `can relay` (it answers probes), asks, and never listens.
/// Returns its link and port.
fn puller(addr: SocketAddr) -> (TcpStream, u16) {
    let mut a = client(addr);
    a.write_all(b"can relay\nneeds peer list\n").unwrap();
    let port = entries(&read_doc(&mut a))[0].0;
    (a, port)
}

/// The puller asks to be checked; its dial-back fails, so it is marked.
fn mark(a: &mut TcpStream, port: u16) {
    a.write_all(format!("cannot reach 127.0.0.1:{port}\n").as_bytes())
        .unwrap();
}

/// Reads the puller's documents until its own entry's relay satisfies `want`,
/// asking again every so often; returns that relay element's text.
fn relay_of_puller(a: &mut TcpStream, port: u16, want: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    let mut doc_seen = String::new();
    loop {
        assert!(
            Instant::now() < end,
            "the puller's relay never became what was wanted: {doc_seen}"
        );
        a.write_all(b"needs peer list\n").unwrap();
        let doc = read_doc(a);
        doc_seen = doc.clone();
        let me = format!("<port>{port}</port><offset>1</offset><me>TRUE</me>");
        let Some(at) = doc.find(&me) else { continue };
        let rest = &doc[at + me.len()..];
        let shown = match rest.strip_prefix("<relay>") {
            Some(r) => r[..r.find("</relay>").unwrap()].to_string(),
            None => String::new(),
        };
        if want(&shown) {
            return shown;
        }
        std::thread::sleep(Duration::from_millis(100)); // the puller's poll interval
    }
}

#[test]
fn a_relay_that_forwards_nothing_is_replaced_and_not_chosen_again() {
    let (m, addr) = manager("25224");
    let stop = Arc::new(AtomicBool::new(false));
    let (mut a, a_port) = puller(addr);
    let (hole, hole_port) = relay(addr, None, stop.clone());
    keep_asking(hole, stop.clone());
    mark(&mut a, a_port);
    let via_hole = format!("<ip>127.0.0.1</ip><port>{hole_port}</port>");
    relay_of_puller(&mut a, a_port, |r| r == via_hole);
    let chosen = Instant::now();
    // An honest relay joins; the black hole is still the puller's until judged.
    let (honest, honest_port) = relay(addr, Some(a.try_clone().unwrap()), stop.clone());
    keep_asking(honest, stop.clone());
    let via_honest = format!("<ip>127.0.0.1</ip><port>{honest_port}</port>");
    relay_of_puller(&mut a, a_port, |r| r == via_honest);
    assert!(chosen.elapsed() < Duration::from_secs(30));
    m.wait_for(&format!(
        "relay: offset 2 (127.0.0.1:{hole_port}) lost 3 probes in a row"
    ));
    m.wait_for("forwarded a probe to offset 1: proven");
    // The honest relay leaves: the black hole is banned, so nobody is left.
    stop.store(true, Ordering::Relaxed);
    let shown = relay_of_puller(&mut a, a_port, |r| r != via_honest);
    assert_eq!(
        shown,
        "none",
        "the dropped relay was chosen again: {}",
        m.log_text()
    );
}

#[test]
fn a_relay_that_forwards_is_kept() {
    let (m, addr) = manager("26224");
    let stop = Arc::new(AtomicBool::new(false));
    let (mut a, a_port) = puller(addr);
    let (r, r_port) = relay(addr, Some(a.try_clone().unwrap()), stop.clone());
    keep_asking(r, stop.clone());
    mark(&mut a, a_port);
    let via = format!("<ip>127.0.0.1</ip><port>{r_port}</port>");
    relay_of_puller(&mut a, a_port, |shown| shown == via);
    m.wait_for("forwarded a probe to offset 1: proven");
    // Many probe deadlines later (3 misses would take under 2 s), still its relay.
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        let shown = relay_of_puller(&mut a, a_port, |_| true);
        assert_eq!(shown, via, "{}", m.log_text());
    }
    assert_eq!(m.count("probes in a row"), 0, "{}", m.log_text());
    assert!(
        m.count("forwarded a probe to offset 1") >= 2,
        "{}",
        m.log_text()
    );
    stop.store(true, Ordering::Relaxed);
}
