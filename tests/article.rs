//! The servant against the article's own connection manager (played by the test
//! as its VB program behaves), and a servant whose assigned port another program
//! holds.

mod common;
mod fakemgr;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::DEADLINE;
use fakemgr::{accept_within, entry, free_port, servant, Link, VbManager};

const BARE: &[u8] = b"needs peer list";
const HELLO: &str = "can relay\nneeds peer list since 0\n";
const FALLBACK: &str = "does not answer `needs peer list since N`";

/// Two servants on the VB manager find each other, listen where it says and
/// chat; after the fallback each link carries nothing but the 15 bytes, one per
/// read, even when a peer cannot be reached or the user renames.
fn two_servants_chat_on_the_vb_manager(net: &str, ending: &'static str) {
    let (ip_a, ip_b) = (format!("{net}.1"), format!("{net}.2"));
    let (a_at, b_at) = (free_port(&ip_a), free_port(&ip_b));
    let dead = free_port(&format!("{net}.3"));
    let vb = VbManager::start(vec![a_at.port(), b_at.port()], vec![dead], ending);
    let poll = 400;
    let mut a = servant(vb.addr, &ip_a, poll, &["--name", "a"]);
    assert_eq!(a.listening_addr(), a_at);
    let b = servant(vb.addr, &ip_b, poll, &["--name", "b"]);
    assert_eq!(b.listening_addr(), b_at);
    for k in 0..2 {
        let first_bare = vb.wait_read(k, BARE);
        let waited = first_bare.duration_since(vb.accepted(k));
        assert!(
            waited <= Duration::from_millis(poll) + Duration::from_secs(1),
            "fell back after {waited:?}"
        );
    }
    a.wait_for("peers: 3 (");
    a.type_line("hello from a");
    a.type_line("/nick carol");
    for d in [&a, &b] {
        let end = Instant::now() + DEADLINE;
        let mut got = Vec::new();
        while !got.iter().any(|l: &String| l == "a: hello from a") && Instant::now() < end {
            got.extend(d.stdout_line());
        }
        assert_eq!(got, ["a: hello from a"], "{}", d.log_text());
    }
    a.wait_for("you are now carol");
    // A few more polls, with the unreachable peer complained about meanwhile.
    let polled = vb.reads(0).len();
    while vb.reads(0).len() < polled + 3 {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (k, d) in [(0, &a), (1, &b)] {
        let reads = vb.reads(k);
        let from = reads.iter().position(|r| r == BARE).unwrap();
        let before: Vec<u8> = reads[..from].concat();
        assert!(
            String::from_utf8_lossy(&before).starts_with(HELLO),
            "the link tried versions first: {before:?}"
        );
        for r in &reads[from..] {
            assert_eq!(
                r, BARE,
                "after the fallback only the bare request: {reads:?}"
            );
        }
        assert_eq!(d.count(FALLBACK), 1, "{}", d.log_text());
    }
}

#[test]
fn two_servants_on_the_articles_manager_chat_with_documents_ending_bare() {
    two_servants_chat_on_the_vb_manager("127.0.51", "");
}

#[test]
fn two_servants_on_the_articles_manager_chat_with_documents_ending_crlf() {
    two_servants_chat_on_the_vb_manager("127.0.52", "\r\n");
}

/// Reads the servant's writes on a link until `want` arrives alone in one read.
fn read_until_alone(link: &mut Link, want: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = link
            .reader
            .get_mut()
            .read(&mut buf)
            .expect("reading the link");
        assert!(n > 0, "link closed after {seen:?}");
        if &buf[..n] == want {
            return seen;
        }
        seen.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn the_fallback_is_per_link_and_logged_once() {
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let me = free_port("127.0.53.1");
    let s = servant(fake.local_addr().unwrap(), "127.0.53.1", 300, &[]);
    let doc = format!("<peers>{}</peers>", entry(me, 1, true, None));
    // The first two links reach a manager that answers only the bare request.
    for _ in 0..2 {
        let mut link = Link::accept(&fake);
        let before = read_until_alone(&mut link, BARE);
        assert_eq!(String::from_utf8_lossy(&before), HELLO);
        link.send(&doc);
        s.wait_for("peers: 1 (");
        drop(link);
    }
    assert_eq!(
        s.count(&format!("listening on {me}")),
        1,
        "{}",
        s.log_text()
    );
    assert_eq!(s.count(FALLBACK), 1, "{}", s.log_text());
    // The third reaches p2pchat's manager: versions again, and kept.
    let mut link = Link::accept(&fake);
    assert_eq!(link.line(), "can relay");
    assert_eq!(link.line(), "needs peer list since 0");
    link.send(&format!(
        "<peers version=\"7\">{}</peers>\r\n",
        entry(me, 1, true, None)
    ));
    for _ in 0..3 {
        assert_eq!(link.line(), "needs peer list since 7");
    }
    assert_eq!(s.count(FALLBACK), 1);
}

/// A versioned document giving the servant at `at` (its own entry only).
fn versioned(version: u64, at: std::net::SocketAddr) -> String {
    format!(
        "<peers version=\"{version}\">{}</peers>\r\n",
        entry(at, 1, true, None)
    )
}

#[test]
fn a_port_someone_else_holds_is_replaced_at_once_on_the_same_link() {
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = TcpListener::bind("127.0.54.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let free = free_port("127.0.54.1");
    // A long poll interval: the servant must not wait for a poll to say it.
    let s = servant(fake.local_addr().unwrap(), "127.0.54.1", 5000, &[]);
    let mut link = Link::accept(&fake);
    assert_eq!(link.line(), "can relay");
    assert_eq!(link.line(), "needs peer list since 0");
    let sent = Instant::now();
    link.send(&versioned(1, taken));
    assert_eq!(link.line(), format!("cannot listen {}", taken.port()));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    s.wait_for(&format!("cannot listen on {taken}"));
    link.send(&versioned(2, free));
    assert_eq!(s.listening_addr(), free);
    assert!(
        accept_within(&fake, Duration::from_millis(300)).is_none(),
        "the link was dropped: {}",
        s.log_text()
    );
    drop(held);
}

#[test]
fn a_new_port_that_never_comes_means_reconnecting_after_a_poll_interval() {
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = TcpListener::bind("127.0.55.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let s = servant(fake.local_addr().unwrap(), "127.0.55.1", 500, &[]);
    let mut link = Link::accept(&fake);
    link.line_starting("needs peer list since 0");
    link.send(&versioned(1, taken));
    assert_eq!(link.line(), format!("cannot listen {}", taken.port()));
    let said = Instant::now();
    // The manager ignores it (an older one) and keeps giving the same port.
    let again = accept_within(&fake, DEADLINE).expect("no reconnect");
    let waited = said.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_millis(2500),
        "reconnected after {waited:?}"
    );
    s.wait_for("gave no new port");
    drop((again, held));
}

#[test]
fn the_articles_manager_is_never_told_cannot_listen() {
    let held = TcpListener::bind("127.0.56.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let free = free_port("127.0.56.1");
    // iPortMax + 1 for each connection: the held port first, then a free one.
    let vb = VbManager::start(vec![taken.port(), free.port()], vec![], "\r\n");
    let s = servant(vb.addr, "127.0.56.1", 300, &[]);
    s.wait_for(&format!("cannot listen on {taken}"));
    assert_eq!(s.listening_addr(), free);
    let all: Vec<u8> = (0..2).flat_map(|k| vb.reads(k).concat()).collect();
    assert!(
        !String::from_utf8_lossy(&all).contains("cannot listen"),
        "{all:?}"
    );
    drop(held);
}
