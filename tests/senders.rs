//! Who a line is shown as from, with a real manager and real servants on loopback:
//! the address it came from, looked up in the list, never the name its text starts
//! with.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{connect_from, connmgr, named_servant, read_doc, shows, Daemon, DEADLINE};

fn config(test: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("p2pchat-senders-{}-{test}.xml", std::process::id()));
    std::fs::write(&path, "<config>\n</config>\n").unwrap();
    path
}

/// Waits for a log line, counting those already read.
fn logged(d: &Daemon, pattern: &str) {
    if d.count(pattern) == 0 {
        d.wait_for(pattern);
    }
}

fn servant(test: &str, manager: SocketAddr, bind: &str, name: &str) -> Daemon {
    named_servant(&config(&format!("{test}-{name}")), manager, bind, name, &[])
}

#[test]
fn a_host_on_no_list_is_not_shown_as_alice() {
    let (_m, manager) = connmgr(&[]);
    let bob = servant("nolist", manager, "127.0.95.2", "bob");
    let mut alice = servant("nolist", manager, "127.0.95.3", "alice");
    let chat = bob.listening_addr();
    alice.listening_addr();
    logged(&bob, "peers: 2");
    let mut forger = connect_from("127.0.95.9", chat);
    forger.write_all(b"alice: I owe you 100\n").unwrap();
    drop(forger);
    bob.wait_for("dropped a line from 127.0.95.9: that address is on no peer list");
    alice.type_line("the real alice");
    let before = shows(&bob, "alice: the real alice");
    assert!(
        !before.iter().any(|l| l.contains("I owe you")),
        "a forged line was shown: {before:?}"
    );
    let after = bob.stdout_lines_within(Duration::from_millis(300));
    assert!(after.is_empty(), "{after:?}");
}

#[test]
fn a_listed_mallory_typing_alices_name_shows_as_mallory() {
    let (_m, manager) = connmgr(&[]);
    let bob = servant("claim", manager, "127.0.96.2", "bob");
    let _alice = servant("claim", manager, "127.0.96.3", "alice");
    let mut mallory = servant("claim", manager, "127.0.96.4", "mallory");
    bob.listening_addr();
    logged(&bob, "peers: 3");
    // Mallory sends to the peers her own list has, and bob names her once his
    // list carries her name (she asks for it after joining): until then her line
    // is missing or, unnamed and claiming a listed name, unverified.
    logged(&mallory, "peers: 3");
    let end = Instant::now() + DEADLINE * 2;
    loop {
        mallory.type_line("alice: x");
        match bob.stdout_line_within(Duration::from_secs(2)).as_deref() {
            Some("mallory: alice: x") => break,
            Some("[127.0.96.4?] alice: x") | None if Instant::now() < end => continue,
            other => panic!("bob showed {other:?}; log:\n{}", bob.log_text()),
        }
    }
    mallory.type_line("hi");
    shows(&bob, "mallory: hi");
}

#[test]
fn servants_sharing_an_address_are_shown_unverified_and_unnamed_ones_as_they_type() {
    let (_m, manager) = connmgr(&[]);
    let bob = servant("shared", manager, "127.0.97.2", "bob");
    let mut n1 = servant("shared", manager, "127.0.97.5", "n1");
    let _n2 = servant("shared", manager, "127.0.97.5", "n2");
    let bob_chat = bob.listening_addr();
    logged(&bob, "peers: 3");
    logged(&n1, "peers: 3");
    // Until bob's list carries n1's and n2's names (they ask for them after
    // joining), the two are unnamed and n1's line shows as typed; from then on it
    // is unverified. Each try waits up to 2 s for bob to show the line.
    let end = Instant::now() + DEADLINE * 2;
    loop {
        n1.type_line("hi");
        match bob.stdout_line_within(Duration::from_secs(2)).as_deref() {
            Some("[127.0.97.5?] n1: hi") => break,
            Some("n1: hi") | None if Instant::now() < end => continue,
            other => panic!(
                "bob showed {other:?}; log:\n{}\nn1:\n{}",
                bob.log_text(),
                n1.log_text()
            ),
        }
    }
    // A VB-style client: listed, unnamed, prefixing nothing.
    let mut vb = connect_from("127.0.97.8", manager);
    vb.write_all(b"needs peer list\n").unwrap();
    read_doc(&mut vb);
    logged(&bob, "peers: 4");
    for text in ["plain vb text", "bob: not bob"] {
        let mut c = connect_from("127.0.97.8", bob_chat);
        c.write_all(format!("{text}\n").as_bytes()).unwrap();
    }
    shows(&bob, "plain vb text");
    shows(&bob, "[127.0.97.8?] bob: not bob");
}
