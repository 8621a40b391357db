//! Kept links between real servants: lines over one connection per peer, a
//! receiver closing a kept link while its sender writes on it (no line lost), more
//! than the per-address cap of senders behind one address, a one-connection-per-
//! batch sender as in the article, and a ban made after a link was accepted.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use common::{bin, connect_from, connmgr, shows, Daemon, DEADLINE};

/// A config.xml banning `bans`, in a temp file (rewritten by the ban test).
fn write_config(path: &PathBuf, bans: &[&str]) {
    let mut xml = String::from("<config>\n  <bans>\n");
    for b in bans {
        xml.push_str(&format!("    <ban><target>{b}</target></ban>\n"));
    }
    xml.push_str("  </bans>\n</config>\n");
    std::fs::write(path, xml).unwrap();
}

/// A servant named `name` on `bind`, with the sends' debug lines logged.
fn servant(manager: SocketAddr, bind: &str, name: &str, extra: &[&str]) -> Daemon {
    let m = manager.to_string();
    let mut args = vec![
        "--connmgr",
        &m,
        "--bind",
        bind,
        "--name",
        name,
        "--poll-interval",
        "200",
        "--log-level",
        "p2pchat::servant::send=debug,info",
    ];
    args.extend_from_slice(extra);
    Daemon::spawn(&bin("servant"), &args)
}

/// Waits for a stdout line ending with `tail` (a line from an address several
/// servants share is shown with the address).
fn shows_ending(d: &Daemon, tail: &str) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        match d.stdout_line() {
            Some(l) if l.ends_with(tail) => return,
            Some(_) => {}
            None => break,
        }
    }
    panic!("{} never showed {tail:?}", d.name());
}

/// Waits for a log line containing `pattern`, including lines earlier waits passed.
fn logged(d: &Daemon, pattern: &str) {
    if d.count(pattern) == 0 {
        d.wait_for(pattern);
    }
}

/// Whether the receiver has closed (FIN or reset) raw connection `c`.
fn closed_by_peer(c: &mut TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let gone =
        !matches!(c.read(&mut [0u8; 64]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    c.set_nonblocking(false).unwrap();
    gone
}

#[test]
fn lines_go_over_one_kept_link_per_peer() {
    let (_m, addr) = connmgr(&[]);
    let mut a = servant(addr, "127.0.131.1", "alice", &[]);
    let mut b = servant(addr, "127.0.131.2", "bob", &[]);
    a.wait_for("peers: 2");
    b.wait_for("peers: 2");
    for k in 0..20 {
        a.type_line(&format!("from alice {k}"));
        b.type_line(&format!("from bob {k}"));
        shows(&b, &format!("alice: from alice {k}"));
        shows(&a, &format!("bob: from bob {k}"));
    }
    // Each kept one link to the other, never closed: no new one was needed.
    for d in [&a, &b] {
        assert_eq!(d.count("kept link to"), 0, "{}", d.log_text());
        assert_eq!(d.count("cannot deliver"), 0, "{}", d.log_text());
    }
}

#[test]
fn a_receiver_closing_a_kept_link_as_its_sender_writes_loses_no_line() {
    let (_m, addr) = connmgr(&[]);
    let r = servant(addr, "127.0.132.1", "r", &[]);
    let mut s = servant(addr, "127.0.132.2", "s", &[]);
    let to = r.listening_addr();
    logged(&r, "peers: 2");
    logged(&s, "peers: 2");
    // Beside s's kept link, 63 more connections from s's address fill r's
    // per-address cap; each one more makes r close the one silent the longest
    // gracefully, s's link when the others spoke last.
    let mut raw: Vec<TcpStream> = Vec::new();
    for k in 0..40 {
        raw.retain_mut(|c| !closed_by_peer(c));
        while raw.len() < 63 {
            raw.push(connect_from("127.0.132.2", to));
        }
        for c in &mut raw {
            let _ = c.write_all(b"\r\n");
        }
        s.type_line(&format!("line {k}"));
        raw.push(connect_from("127.0.132.2", to));
        shows(&r, &format!("s: line {k}"));
    }
    let closes = s.count(&format!("the kept link to {to} closed"));
    assert!(closes >= 5, "r closed s's link {closes} times of 40");
    assert_eq!(s.count("cannot deliver"), 0, "{}", s.log_text());
}

#[test]
fn more_senders_behind_one_address_than_its_cap_all_get_through() {
    let (_m, addr) = connmgr(&["--max-per-address", "200"]);
    let r = servant(addr, "127.0.133.1", "r", &[]);
    let n = 70;
    let mut senders: Vec<Daemon> = (0..n)
        .map(|k| servant(addr, "127.0.133.2", &format!("s{k}"), &[]))
        .collect();
    let all = format!("peers: {}", n + 1);
    r.wait_for(&all);
    for s in &senders {
        s.wait_for(&all);
    }
    for round in 0..2 {
        for (k, s) in senders.iter_mut().enumerate() {
            s.type_line(&format!("round {round}"));
            shows_ending(&r, &format!("s{k}: round {round}"));
        }
    }
    assert_eq!(r.count("refusing 127.0.133.2"), 0, "{}", r.log_text());
}

#[test]
fn a_one_connection_per_batch_sender_still_gets_through() {
    let (_m, addr) = connmgr(&[]);
    let r = servant(addr, "127.0.134.1", "r", &[]);
    let v = servant(addr, "127.0.134.2", "v", &[]);
    let to = r.listening_addr();
    logged(&r, "peers: 2");
    logged(&v, "peers: 2");
    // v's name reaches r's list a push after v itself: until it has, v's lines
    // are shown unnamed. Warm up until one is shown as v's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    'named: loop {
        assert!(
            std::time::Instant::now() < deadline,
            "r never named v: {}",
            r.log_text()
        );
        let mut c = connect_from("127.0.134.2", to);
        c.write_all(b"warm\r\n").unwrap();
        drop(c);
        while let Some(line) = r.stdout_line_within(std::time::Duration::from_millis(500)) {
            if line.contains("v: warm") {
                break 'named;
            }
        }
    }
    for k in 0..5 {
        // Shown as from v, the listed servant at the address it comes from.
        let mut c = connect_from("127.0.134.2", to);
        c.write_all(format!("vb {k}\r\nvb {k} again\r\n").as_bytes())
            .unwrap();
        drop(c);
        shows(&r, &format!("v: vb {k}"));
        shows(&r, &format!("v: vb {k} again"));
    }
}

#[test]
fn a_ban_made_after_a_link_was_accepted_refuses_its_next_line() {
    let (_m, addr) = connmgr(&[]);
    let config = std::env::temp_dir().join(format!("p2pchat-kept-{}.xml", std::process::id()));
    write_config(&config, &[]);
    let r = servant(
        addr,
        "127.0.135.1",
        "r",
        &["--config", config.to_str().unwrap()],
    );
    let mut s = servant(addr, "127.0.135.2", "s", &[]);
    let mut t = servant(addr, "127.0.135.3", "t", &[]);
    for d in [&r, &s, &t] {
        d.wait_for("peers: 3");
    }
    s.type_line("before the ban");
    shows(&r, "s: before the ban");
    write_config(&config, &["127.0.135.2"]);
    r.signal(libc::SIGHUP);
    r.wait_for("SIGHUP: read");
    s.type_line("after the ban");
    r.wait_for("refusing 127.0.135.2: banned");
    t.type_line("from t");
    let before = shows(&r, "t: from t");
    assert!(
        !before.iter().any(|l| l.contains("after the ban")),
        "{before:?}"
    );
    let _ = std::fs::remove_file(&config);
}
