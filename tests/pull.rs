//! Pull links on loopback, against a real relay and a real puller: who may pull,
//! and whose bans hold through the relay. The test plays the connection manager,
//! so that it can say who is relayed through whom (a real manager decides that only
//! after a dial-back fails, which needs the network namespaces of `tests/relay.rs`).

mod common;
mod fakemgr;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{bin, connect_from, Daemon, DEADLINE};
use fakemgr::{free_port, listing_manager as fake_manager, Entry};

fn config(test: &str, bans: &[&str]) -> PathBuf {
    let mut xml = String::from("<config>\n  <bans>\n");
    for b in bans {
        xml.push_str(&format!("    <ban><target>{b}</target></ban>\n"));
    }
    xml.push_str("  </bans>\n</config>\n");
    let path = std::env::temp_dir().join(format!("p2pchat-pull-{}-{test}.xml", std::process::id()));
    std::fs::write(&path, xml).unwrap();
    path
}

/// A servant at `e.addr`, without `--name`: the list names it.
fn servant(manager: SocketAddr, e: &Entry, cfg: &Path) -> Daemon {
    let (m, ip) = (manager.to_string(), e.addr.ip().to_string());
    Daemon::spawn(
        &bin("servant"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--connmgr",
            &m,
            "--bind",
            &ip,
            "--poll-interval",
            "200",
        ],
    )
}

/// Waits for `d` to show `line`, skipping others.
fn shows(d: &Daemon, line: &str) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if d.stdout_line().as_deref() == Some(line) {
            return;
        }
    }
    panic!("{} never showed {line:?}; log:\n{}", d.name(), d.log_text());
}

/// What `c` is sent before it is closed (within the deadline).
fn heard(c: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let end = Instant::now() + DEADLINE;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => break,
            Err(_) => break,
        }
    }
    got
}

/// bob relays for alice; mallory is public too.
fn network(net: u8) -> (Vec<Entry>, SocketAddr) {
    let bob = free_port(&format!("127.0.{net}.1"));
    let entries = vec![
        Entry {
            addr: bob,
            name: "bob",
            relay: None,
        },
        Entry {
            addr: free_port(&format!("127.0.{net}.2")),
            name: "alice",
            relay: Some(bob),
        },
        Entry {
            addr: free_port(&format!("127.0.{net}.3")),
            name: "mallory",
            relay: None,
        },
    ];
    let manager = fake_manager(entries.clone());
    (entries, manager)
}

#[test]
fn an_outsider_saying_pull_hears_nothing() {
    let (e, manager) = network(91);
    let cfg = config("outsider", &[]);
    let mut bob = servant(manager, &e[0], &cfg);
    let alice = servant(manager, &e[1], &cfg);
    bob.listening_addr();
    bob.wait_for(&format!("relaying for {}", e[1].addr));
    // An outsider names itself, from its own address: nobody's list relays it.
    let mut outsider = connect_from("127.0.91.9", e[0].addr);
    outsider.write_all(b"pull 127.0.91.9:4000\n").unwrap();
    // A listed servant that the list does not say is relayed through bob, too.
    let mut mallory = connect_from("127.0.91.3", e[0].addr);
    mallory
        .write_all(format!("pull {}\n", e[2].addr).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(100)); // both pulls are read first
    bob.type_line("for my pullers only");
    shows(&alice, "bob: for my pullers only");
    for (who, c) in [("an outsider", &mut outsider), ("mallory", &mut mallory)] {
        let got = heard(c);
        assert!(
            got.is_empty(),
            "{who} pulled {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

#[test]
fn a_second_pull_from_the_same_address_does_not_kick_the_puller_off() {
    let (e, manager) = network(92);
    let cfg = config("second", &[]);
    let mut bob = servant(manager, &e[0], &cfg);
    let alice = servant(manager, &e[1], &cfg);
    bob.listening_addr();
    bob.wait_for(&format!("relaying for {}", e[1].addr));
    let mut thief = connect_from("127.0.92.2", e[0].addr);
    thief
        .write_all(format!("pull {}\n", e[1].addr).as_bytes())
        .unwrap();
    let got = heard(&mut thief);
    assert!(
        got.is_empty(),
        "the thief pulled {:?}",
        String::from_utf8_lossy(&got)
    );
    bob.type_line("still yours");
    shows(&alice, "bob: still yours");
    assert_eq!(bob.count("stopped relaying"), 0, "{}", bob.log_text());
    assert_eq!(bob.count("relaying for"), 1, "{}", bob.log_text());
}

#[test]
fn bans_hold_through_the_relay() {
    let (e, manager) = network(93);
    let mut bob = servant(manager, &e[0], &config("ban-bob", &[]));
    let alice = servant(manager, &e[1], &config("ban-alice", &["127.0.93.3"]));
    let mut mallory = servant(manager, &e[2], &config("ban-mallory", &[]));
    bob.listening_addr();
    mallory.listening_addr();
    bob.wait_for(&format!("relaying for {}", e[1].addr));
    mallory.type_line("alice: I owe you 100");
    shows(&bob, "mallory: alice: I owe you 100");
    bob.type_line("after mallory");
    // In order down the pull link: mallory's line would have come first.
    assert_eq!(
        alice.stdout_line().as_deref(),
        Some("bob: after mallory"),
        "{}",
        alice.log_text()
    );
    alice.wait_for("forwarded from banned addresses (the last from 127.0.93.3");
}
