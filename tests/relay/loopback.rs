//! The manager's side on loopback, with raw clients: no namespaces needed.

use std::io::Write;
use std::net::SocketAddr;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{self, DEADLINE};

/// A manager on loopback that acts on a single complaint, relays for anyone
/// and gives a dial-back 2 s, with `extra` flags.
fn loopback_manager(extra: &[&str]) -> (common::Daemon, SocketAddr) {
    let flags = ["--relay-threshold", "1", "--relay-share", "0"];
    let dial = ["--relay-dial-timeout", "2000"];
    common::connmgr(&[&flags[..], &dial, extra].concat())
}

/// A raw client that asks once and never listens on its port: the one to be
/// marked. Returns it and that port (it is offset 1).
fn first_client(addr: SocketAddr) -> (TcpStream, u16) {
    let mut a = common::client(addr);
    a.write_all(b"needs peer list\n").unwrap();
    let port = common::entries(&common::read_doc(&mut a))[0].0;
    (a, port)
}

/// Reads documents from `s` until one names a relay (or `none`), and returns it.
fn first_doc_with_a_relay(s: &mut TcpStream) -> String {
    loop {
        let doc = common::read_doc(s);
        if doc.contains("<relay>") {
            return doc;
        }
    }
}

/// No namespaces needed: on loopback a raw client that does not listen on its port
/// is marked, and one that does is checked and named as its relay; the document
/// is the article's until then.
#[test]
fn on_loopback_a_client_that_does_not_answer_is_given_one_that_does() {
    let (manager, addr) = loopback_manager(&[]);
    let (_a, a_port) = first_client(addr);
    let mut b = common::client(addr);
    b.write_all(b"can relay\nneeds peer list\n").unwrap();
    let doc = common::read_doc(&mut b);
    assert!(
        !doc.contains("<relay>") && doc.ends_with("<me>TRUE</me></peer></peers>\r\n"),
        "{doc}"
    );
    let b_port = common::entries(&doc)[1].0;
    // b answers dial-backs (the kernel completes the handshake); a does not.
    let _listening = std::net::TcpListener::bind(("127.0.0.1", b_port)).unwrap();
    b.write_all(format!("cannot reach 127.0.0.1:{a_port}\n").as_bytes())
        .unwrap();
    let relayed = first_doc_with_a_relay(&mut b);
    let want = format!(
        "<port>{a_port}</port><offset>1</offset><me>FALSE</me><relay><ip>127.0.0.1</ip><port>{b_port}</port></relay></peer>"
    );
    assert!(relayed.contains(&want), "{relayed}");
    let line = manager.wait_for("verdict: offset 1");
    assert!(
        line.contains("1 of 1 other servants complained 1+ times each"),
        "{line}"
    );
    manager.wait_for("relay: offset 1 (127.0.0.1:");
}

#[test]
fn on_loopback_old_complaints_age_out_so_a_long_lived_servant_is_still_heard() {
    let (manager, addr) = common::connmgr(&[
        "--log-level",
        "debug",
        "--relay-threshold",
        "100",
        "--relay-window",
        "1",
        "--push-interval",
        "0",
        "--max-per-address",
        "100",
    ]);
    let mut clients: Vec<TcpStream> = (0..66).map(|_| common::client(addr)).collect();
    let last = clients.last_mut().unwrap();
    last.write_all(b"needs peer list\n").unwrap();
    let ports: Vec<u16> = common::entries(&common::read_doc(last))
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(ports.len(), 66);
    let complain = |c: &mut TcpStream, port: u16| {
        c.write_all(format!("cannot reach 127.0.0.1:{port}\n").as_bytes())
            .unwrap();
    };
    // Offset 1 complains about 64 peers: as many as one servant may have pending.
    for &port in &ports[1..65] {
        complain(&mut clients[0], port);
    }
    manager.wait_for("offset 1 cannot reach offset 65");
    // The 65th is refused until the first 64 are older than the window (1 s).
    let end = Instant::now() + DEADLINE;
    while manager.count("offset 1 cannot reach offset 66") == 0 {
        assert!(
            Instant::now() < end,
            "a servant with 64 old complaints is never heard again:\n{}",
            manager.log_text()
        );
        complain(&mut clients[0], ports[65]);
        let _ = manager.wait_for_within(
            "offset 1 cannot reach offset 66",
            Duration::from_millis(200),
        );
    }
    assert!(
        manager.count("not recorded: too many") > 0,
        "the cap was reached first"
    );
}

#[test]
fn on_loopback_a_client_that_never_offered_to_relay_is_never_chosen() {
    // Its own ports: the other loopback test binds its b's port in parallel.
    let (manager, addr) = loopback_manager(&["--first-port", "31224"]);
    let (_a, a_port) = first_client(addr);
    // b is a VB-style client: reachable, asking, complaining, but it never said
    // `can relay`, so it would show a `pull` line as chat and forward nothing.
    let mut b = common::client(addr);
    b.write_all(b"needs peer list\n").unwrap();
    let b_port = common::entries(&common::read_doc(&mut b))[1].0;
    let _listening = std::net::TcpListener::bind(("127.0.0.1", b_port)).unwrap();
    b.write_all(format!("cannot reach 127.0.0.1:{a_port}\n").as_bytes())
        .unwrap();
    manager.wait_for("verdict: offset 1");
    let told = first_doc_with_a_relay(&mut b);
    assert!(
        told.contains(&format!(
            "<port>{a_port}</port><offset>1</offset><me>FALSE</me><relay>none</relay>"
        )),
        "{told}"
    );
}
