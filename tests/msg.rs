//! `/msg NAME TEXT` and `/who`, with real servants: a private line reaches its
//! addressee marked so, and nobody else, directly and through a relay (the test
//! plays the manager there, to say who is relayed through whom); a VB-style
//! receiver reads it as a plain line.

mod common;
mod fakemgr;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{connmgr, named_servant, shows, Daemon, DEADLINE};
use fakemgr::{free_port, listing_manager, Entry};

fn config(test: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("p2pchat-msg-{}-{test}.xml", std::process::id()));
    std::fs::write(&path, "<config>\n</config>\n").unwrap();
    path
}

fn servant(test: &str, manager: SocketAddr, bind: &str, name: &str) -> Daemon {
    named_servant(&config(&format!("{test}-{name}")), manager, bind, name, &[])
}

/// Asks `d` for `/who` until every one of `names` is on it; its lines.
fn who(d: &mut Daemon, names: &[&str]) -> Vec<String> {
    let end = Instant::now() + DEADLINE;
    loop {
        d.type_line("/who");
        // The table comes in one write: its lines, until a pause.
        let mut lines: Vec<String> = d.stdout_line().into_iter().collect();
        while let Ok(l) = (**d).stdout_line(Duration::from_millis(300)) {
            lines.push(l);
        }
        let all = names
            .iter()
            .all(|n| lines.iter().any(|l| l[2..].starts_with(&format!("{n} "))));
        if all || Instant::now() > end {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_private_line_reaches_bob_only_and_who_says_how_long() {
    let (_m, manager) = connmgr(&[]);
    let mut alice = servant("direct", manager, "127.0.96.1", "alice");
    let bob = servant("direct", manager, "127.0.96.2", "bob");
    let carol = servant("direct", manager, "127.0.96.3", "carol");
    for d in [&alice, &bob, &carol] {
        d.listening_addr();
    }
    // /who: a name (or an address) and how long since alice first saw it.
    let lines = who(&mut alice, &["alice", "bob", "carol"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        let age = l.split_whitespace().last().unwrap();
        let (n, unit) = age.split_at(age.len() - 1);
        assert!(
            n.parse::<u64>().is_ok() && "smhd".contains(unit),
            "{lines:?}"
        );
    }
    assert!(lines.iter().any(|l| l.starts_with("* alice ")), "{lines:?}");

    alice.type_line("/msg bob hi there");
    shows(&bob, "alice (private): hi there");
    // In a pipe the marks are text: `-> bob: ` on alice's own stdout.
    shows(&alice, "-> bob: hi there");
    alice.type_line("/msg bob again");
    shows(&bob, "alice (private): again");
    alice.wait_for("/msg in a plaintext network is direct, not secret");
    alice.type_line("/msg nobody x");
    alice.wait_for("unknown name nobody");
    assert_eq!(alice.count("plaintext network"), 1, "said once per session");
    // carol saw neither: the next line she shows is alice's next chat line.
    alice.type_line("for everyone");
    let before = shows(&carol, "alice: for everyone");
    assert!(
        !before
            .iter()
            .any(|l| l.contains("hi there") || l.contains("again")),
        "{before:?}"
    );
    assert_eq!(carol.count("private"), 0, "{}", carol.log_text());
}

#[test]
fn a_vb_style_receiver_reads_a_plain_line() {
    let vb = TcpListener::bind("127.0.97.2:0").unwrap();
    let entries = vec![
        Entry {
            addr: free_port("127.0.97.1"),
            name: "alice",
            relay: None,
        },
        Entry {
            addr: vb.local_addr().unwrap(),
            name: "vb",
            relay: None,
        },
    ];
    let manager = listing_manager(entries);
    let mut alice = servant("vb", manager, "127.0.97.1", "alice");
    alice.listening_addr();
    alice.type_line("/msg vb hello, old friend");
    vb.set_nonblocking(false).unwrap();
    let (mut c, _) = vb.accept().unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = String::new();
    c.read_to_string(&mut got).unwrap();
    assert_eq!(got, "(private) alice: hello, old friend\n");
}

#[test]
fn through_a_relay_only_the_addressee_hears_it() {
    // bob relays for alice and pat; mallory is public.
    let bob_at = free_port("127.0.98.1");
    let entries = vec![
        Entry {
            addr: bob_at,
            name: "bob",
            relay: None,
        },
        Entry {
            addr: free_port("127.0.98.2"),
            name: "alice",
            relay: Some(bob_at),
        },
        Entry {
            addr: free_port("127.0.98.3"),
            name: "pat",
            relay: Some(bob_at),
        },
        Entry {
            addr: free_port("127.0.98.4"),
            name: "mallory",
            relay: None,
        },
    ];
    let manager = listing_manager(entries.clone());
    let bob = servant("relay", manager, "127.0.98.1", "bob");
    let alice = servant("relay", manager, "127.0.98.2", "alice");
    let mut pat = servant("relay", manager, "127.0.98.3", "pat");
    let mut mallory = servant("relay", manager, "127.0.98.4", "mallory");
    mallory.listening_addr();
    for e in &entries[1..3] {
        if bob.count(&format!("relaying for {}", e.addr)) == 0 {
            bob.wait_for(&format!("relaying for {}", e.addr));
        }
    }
    alice.wait_for("pulling from the relay");
    pat.wait_for("pulling from the relay");
    // From a public peer, through bob's listener; from a fellow puller, up its pull.
    mallory.type_line("/msg alice psst");
    shows(&alice, "mallory (private): psst");
    pat.type_line("/msg alice from pat");
    shows(&alice, "pat (private): from pat");
    // bob passed both on without showing them; pat was not given mallory's.
    mallory.type_line("after");
    for d in [&bob, &pat] {
        let before = shows(d, "mallory: after");
        assert!(
            !(before.iter())
                .filter(|l| !l.starts_with("-> ")) // pat's own, as sent
                .any(|l| l.contains("psst") || l.contains("from pat")),
            "{} showed {before:?}",
            d.name()
        );
    }
    shows(&alice, "mallory: after");
}
