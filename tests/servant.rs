//! The servant, as users run it: real `connmgr` and `servant` processes on loopback.
//!
//! Each test gives its servants their own `127.0.N.x` block (`--bind`), so the ports
//! the manager hands out (2224, 2225, ... per manager) never collide across tests
//! running in parallel. Every wait is on a log or stdout line with a deadline.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{bin, connmgr, Daemon, DEADLINE};

/// A config.xml in the article's shape with these ban targets, in a temp file.
fn config_file(test: &str, bans: &[&str]) -> PathBuf {
    let mut xml = String::from(
        "<config>\n  <connectionmgr>127.0.0.1</connectionmgr>\n  <port>85</port>\n  <bans>\n",
    );
    for b in bans {
        xml.push_str(&format!("    <ban><target>{b}</target></ban>\n"));
    }
    xml.push_str("  </bans>\n</config>\n");
    let path = std::env::temp_dir().join(format!(
        "p2pchat-servant-test-{}-{test}.xml",
        std::process::id()
    ));
    std::fs::write(&path, xml).unwrap();
    path
}

/// Starts a servant on `bind` talking to `manager`, polling every `poll_ms`.
fn servant(manager: SocketAddr, bind: &str, name: &str, config: &Path, poll_ms: u64) -> Daemon {
    let connmgr = manager.to_string();
    let poll = poll_ms.to_string();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--connmgr",
        &connmgr,
        "--bind",
        bind,
        "--name",
        name,
        "--poll-interval",
        &poll,
    ];
    Daemon::spawn(&bin("servant"), &args)
}

/// Waits for a stderr line containing `pattern`, including lines already consumed
/// by earlier waits (they stay in the log).
fn logged(d: &Daemon, pattern: &str) {
    if d.count(pattern) == 0 {
        d.wait_for(pattern);
    }
}

/// Collects stdout lines until `want` have arrived (deadline), then any extras that
/// follow within a short grace, so duplicates are caught.
fn transcript(d: &Daemon, want: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let end = Instant::now() + DEADLINE;
    while lines.len() < want && Instant::now() < end {
        match d.stdout_line() {
            Some(l) => lines.push(l),
            None => break,
        }
    }
    lines.extend(d.stdout_lines_within(Duration::from_millis(300)));
    lines
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    sorted(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

#[test]
fn every_servant_shows_every_line_once_including_its_own() {
    let (_m, addr) = connmgr(&[]);
    let cfg = config_file("all", &[]);
    let names = ["alice", "bob", "carol"];
    let mut s: Vec<Daemon> = names
        .iter()
        .enumerate()
        .map(|(k, n)| servant(addr, &format!("127.0.31.{}", k + 1), n, &cfg, 200))
        .collect();
    for (k, d) in s.iter().enumerate() {
        let at = d.listening_addr();
        assert_eq!(at.ip().to_string(), format!("127.0.31.{}", k + 1));
    }
    for d in &s {
        logged(d, "peers: 3 (");
    }
    for (d, n) in s.iter_mut().zip(names) {
        d.type_line(&format!("hello from {n}"));
    }
    let want = strings(&[
        "alice: hello from alice",
        "bob: hello from bob",
        "carol: hello from carol",
    ]);
    for d in &s {
        assert_eq!(sorted(&transcript(d, 3)), want);
    }

    // /peers: one line per peer in aligned columns: `*` on this servant's own, then
    // name, address, port and how long since this servant first saw it.
    // Names reach the list a push after the join: ask until they are all there.
    let deadline = Instant::now() + DEADLINE;
    let peers = loop {
        s[0].type_line("/peers");
        let peers = transcript(&s[0], 3);
        if !peers.iter().any(|l| l.contains(" - ")) || Instant::now() > deadline {
            break peers;
        }
    };
    assert_eq!(peers.len(), 3, "{peers:?}");
    let own: Vec<&String> = peers.iter().filter(|l| l.starts_with('*')).collect();
    assert_eq!(own.len(), 1, "{peers:?}");
    assert!(own[0].starts_with("* alice  127.0.31.1  "), "{peers:?}");
    let ips: BTreeSet<&str> = (peers.iter())
        .filter_map(|l| l.split_whitespace().rev().nth(2))
        .collect();
    assert_eq!(ips.len(), 3, "{peers:?}");
    assert!(
        ips.iter().all(|ip| ip.starts_with("127.0.31.")),
        "{peers:?}"
    );
    let names: BTreeSet<&str> = (peers.iter())
        .filter_map(|l| l.trim_start_matches('*').split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["alice", "bob", "carol"]),
        "{peers:?}"
    );
    assert!(
        peers.iter().all(|l| l.len() == peers[0].len()),
        "columns line up: {peers:?}"
    );

    // An unknown command is an error, never chat.
    s[1].type_line("/frobnicate");
    s[1].wait_for("unknown command /frobnicate");
    assert!(s[0]
        .stdout_lines_within(Duration::from_millis(300))
        .is_empty());

    // A last line, then end of input: it is delivered everywhere, the sender's own
    // transcript included, before the servant leaves with status 0.
    s[2].type_line("bye");
    s[2].stdin = None;
    assert_eq!(s[2].wait_exit(), Some(0), "{}", s[2].log_text());
    for d in &s {
        assert_eq!(transcript(d, 1), ["carol: bye"]);
    }
    for d in &s[..2] {
        logged(d, "peers: 2 (");
    }
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn bans_by_address_and_by_host_name_hide_that_peer_and_nothing_else() {
    let (_m, addr) = connmgr(&[]);
    let none = config_file("bans-none", &[]);
    let by_ip = config_file("bans-ip", &["127.0.32.2"]);
    let by_name = config_file("bans-name", &["localhost"]);
    let mut x = servant(addr, "127.0.32.1", "x", &by_ip, 200);
    let mut y = servant(addr, "127.0.32.2", "y", &none, 200);
    let mut w = servant(addr, "127.0.32.3", "w", &by_name, 200);
    let mut z = servant(addr, "127.0.0.1", "z", &none, 200);
    for d in [&x, &y, &w, &z] {
        d.listening_addr();
    }
    for d in [&x, &y, &w, &z] {
        logged(d, "peers: 4 (");
    }
    for (d, n) in [(&mut x, "x"), (&mut y, "y"), (&mut w, "w"), (&mut z, "z")] {
        d.type_line(&format!("{n} here"));
    }
    assert_eq!(
        sorted(&transcript(&x, 3)),
        strings(&["x: x here", "w: w here", "z: z here"])
    );
    assert_eq!(
        sorted(&transcript(&w, 3)),
        strings(&["x: x here", "y: y here", "w: w here"])
    );
    let all = strings(&["x: x here", "y: y here", "w: w here", "z: z here"]);
    assert_eq!(sorted(&transcript(&y, 4)), all);
    assert_eq!(sorted(&transcript(&z, 4)), all);
    logged(&x, "refusing 127.0.32.2: banned");
    logged(&w, "refusing 127.0.0.1: banned");
    for p in [none, by_ip, by_name] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn a_killed_servant_leaves_the_lists_within_a_poll_interval_and_gets_nothing_more() {
    let (_m, addr) = connmgr(&[]);
    let cfg = config_file("kill", &[]);
    let poll = Duration::from_millis(1000);
    let mut s: Vec<Daemon> = (1..=3)
        .map(|k| servant(addr, &format!("127.0.33.{k}"), &format!("s{k}"), &cfg, 1000))
        .collect();
    let listening: Vec<SocketAddr> = s.iter().map(Daemon::listening_addr).collect();
    for d in &s {
        logged(d, "peers: 3 (");
    }
    let mut gone = s.pop().unwrap();
    gone.child.kill().unwrap(); // SIGKILL: no goodbye to anyone
    let _ = gone.child.wait();
    let killed_at = Instant::now();
    for d in &s {
        assert!(
            d.wait_for_within("peers: 2 (", poll).is_some(),
            "the list did not shrink within {poll:?}:\n{}",
            d.log_text()
        );
    }
    assert!(killed_at.elapsed() <= poll + Duration::from_millis(200));

    // Stand in for the dead servant: nothing may be sent to its address any more.
    let stand_in = TcpListener::bind(listening[2]).unwrap();
    stand_in.set_nonblocking(true).unwrap();
    s[0].type_line("still here");
    for d in &s {
        assert_eq!(transcript(d, 1), ["s1: still here"]);
    }
    assert!(
        stand_in.accept().is_err(),
        "a servant still sends to the one that was killed"
    );
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn the_network_forms_again_when_the_manager_restarts() {
    let (mut m, addr) = connmgr(&[]);
    let cfg = config_file("restart", &[]);
    let mut a = servant(addr, "127.0.34.1", "a", &cfg, 200);
    let b = servant(addr, "127.0.34.2", "b", &cfg, 200);
    for d in [&a, &b] {
        d.listening_addr();
        logged(d, "peers: 2 (");
    }
    m.child.kill().unwrap();
    let _ = m.child.wait();
    for d in [&a, &b] {
        d.wait_for("keeping the last list of 2 peers");
    }
    // Still chatting with the peers it knows while the manager is down.
    a.type_line("manager is down");
    for d in [&a, &b] {
        assert_eq!(transcript(d, 1), ["a: manager is down"]);
    }
    let port = addr.port().to_string();
    let _m2 = Daemon::spawn(&bin("connmgr"), &["--bind", "127.0.0.1", "--port", &port]);
    for d in [&a, &b] {
        d.wait_for("is back");
        d.wait_for("peers: 2 (");
    }
    a.type_line("manager is back");
    for d in [&a, &b] {
        assert_eq!(transcript(d, 1), ["a: manager is back"]);
    }
    let _ = std::fs::remove_file(cfg);
}

/// A document for a servant at `me` plus `others`.
fn doc(me: SocketAddr, others: &[SocketAddr]) -> String {
    let mut d = String::from("<peers>");
    let entry = |a: &SocketAddr, o: usize, m: bool| {
        format!(
            "<peer><ip>{}</ip><port>{}</port><offset>{o}</offset><me>{}</me></peer>",
            a.ip(),
            a.port(),
            if m { "TRUE" } else { "FALSE" }
        )
    };
    d.push_str(&entry(&me, 1, true));
    for (k, a) in others.iter().enumerate() {
        d.push_str(&entry(a, k + 2, false));
    }
    d.push_str("</peers>\r\n");
    d
}

fn free_port(ip: &str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

#[test]
fn split_and_malformed_documents_and_a_garbage_peer_do_not_crash_it() {
    // The test plays the connection manager.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = config_file("robust", &[]);
    let mut s = servant(fake.local_addr().unwrap(), "127.0.35.1", "r", &cfg, 200);
    let (mut link, _) = fake.accept().unwrap();
    link.set_read_timeout(Some(DEADLINE)).unwrap();
    // A new link offers to relay, then asks for the whole list by version (0: it
    // has none).
    let mut ask = [0u8; 34];
    link.read_exact(&mut ask).unwrap();
    assert_eq!(&ask, b"can relay\nneeds peer list since 0\n");

    let me = free_port("127.0.35.1");
    let other = TcpListener::bind("127.0.35.2:0").unwrap();
    other.set_nonblocking(false).unwrap();
    let first = doc(me, &[]);
    let (head, tail) = first.split_at(first.len() / 2);
    link.set_nodelay(true).unwrap();
    link.write_all(head.as_bytes()).unwrap();
    // Half a document is not acted on (and the wait lets the servant read it alone).
    assert!(
        s.wait_for_within("listening on", Duration::from_millis(300))
            .is_none(),
        "acted on half a document: {}",
        s.log_text()
    );
    link.write_all(tail.as_bytes()).unwrap();
    assert_eq!(s.listening_addr(), me);
    logged(&s, "peers: 1 (");

    link.write_all(
        b"<peers><peer><ip>not-an-ip</ip><port>1</port><offset>1</offset></peer></peers>\r\n",
    )
    .unwrap();
    s.wait_for("ignoring a malformed peer list");
    // Two documents in one write; the second one counts.
    let two = doc(me, &[other.local_addr().unwrap()]);
    link.write_all(format!("{first}{two}").as_bytes()).unwrap();
    s.wait_for("peers: 2 (");

    // A slow peer: half a line, then nothing for a while.
    // From the listed peer's address: lines from an address on no list are not shown.
    let mut slow = common::connect_from("127.0.35.2", me);
    slow.write_all(b"half a li").unwrap();

    // A garbage peer: invalid UTF-8, a line far over the limit, then a short one.
    let mut g = common::connect_from("127.0.35.2", me);
    let mut junk = vec![0xffu8, 0xfe, b'\r', 0, 0x80];
    junk.extend_from_slice(&vec![b'x'; 200 * 1024]);
    junk.extend_from_slice(b"\nok\n");
    g.write_all(&junk).unwrap();
    drop(g);
    let shown = transcript(&s, 2);
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].ends_with("x [truncated]") && shown[0].starts_with('\u{fffd}'),
        "{:?}",
        &shown[0][..20]
    );
    assert_eq!(shown[1], "ok");

    // Still alive and still sending: to itself and to the other peer.
    s.type_line("survived");
    assert_eq!(transcript(&s, 1), ["r: survived"]);
    let (c, from) = other.accept().unwrap();
    assert_eq!(from.ip().to_string(), "127.0.35.1");
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    // A line, not the whole connection: it stays open for the next batches.
    let mut got = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(c), &mut got).unwrap();
    assert_eq!(got, "r: survived\n");

    // The slow peer finishes its line at last; it was held, not lost.
    slow.write_all(b"ne\n").unwrap();
    drop(slow);
    assert_eq!(transcript(&s, 1), ["half a line"]);
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn bad_options_and_config_exit_2_with_the_place() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin("servant"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--config", "/nonexistent/p2pchat.xml"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("/nonexistent/p2pchat.xml: cannot read it"),
        "{err}"
    );
    let bad = std::env::temp_dir().join(format!(
        "p2pchat-servant-test-{}-bad.xml",
        std::process::id()
    ));
    std::fs::write(
        &bad,
        "<config>\n<bans>\n<ban><target></target></ban>\n</bans>\n</config>\n",
    )
    .unwrap();
    let (code, err) = run(&["--config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains(":3: <ban> needs a <target>"), "{err}");
    let _ = std::fs::remove_file(bad);
    let (code, err) = run(&["--poll-interval", "soon"]);
    assert_eq!(
        (code, err.contains("--poll-interval")),
        (Some(2), true),
        "{err}"
    );
    let (code, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
}

#[test]
fn a_port_that_cannot_be_bound_is_traded_for_another() {
    // Hold the port the manager will hand out first, on the servant's address.
    let taken = TcpListener::bind("127.0.36.1:0").unwrap();
    let first = taken.local_addr().unwrap().port();
    let first_port = first.to_string();
    let (_m, addr) = connmgr(&["--first-port", &first_port]);
    let cfg = config_file("taken", &[]);
    let s = servant(addr, "127.0.36.1", "t", &cfg, 200);
    s.wait_for(&format!("cannot listen on 127.0.36.1:{first}"));
    let now = s.listening_addr();
    assert_ne!(now.port(), first);
    assert_eq!(now.ip().to_string(), "127.0.36.1");
    logged(&s, &format!("peers: 1 ({}*)", now.port()));
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn lines_piped_before_the_first_list_are_delivered_before_it_leaves() {
    let (_m, addr) = connmgr(&[]);
    let cfg = config_file("early", &[]);
    let stay = servant(addr, "127.0.37.1", "stay", &cfg, 200);
    stay.listening_addr();
    // `printf 'early bird\n' | servant ...`: the line and the end of input come
    // before the servant has even heard from the manager.
    let mut early = servant(addr, "127.0.37.2", "early", &cfg, 200);
    early.type_line("early bird");
    early.stdin = None;
    assert_eq!(early.wait_exit(), Some(0), "{}", early.log_text());
    assert_eq!(transcript(&early, 1), ["early: early bird"]);
    // It reached stay; shown if stay's list named early before early left, else
    // held for a list that never names it and dropped (an address on no list).
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        if stay.count("dropped a line from 127.0.37.2") > 0 {
            break;
        }
        if let Ok(line) = p2pchat_harness::Process::stdout_line(&stay, Duration::from_millis(100)) {
            assert_eq!(line, "early: early bird");
            break;
        }
        assert!(std::time::Instant::now() < end, "{}", stay.log_text());
    }
    logged(&stay, "peers: 1 (");
    let _ = std::fs::remove_file(cfg);
}

#[test]
fn a_servant_that_reaches_its_manager_over_ipv6_gets_chat() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    }
    let m = Daemon::spawn(&bin("connmgr"), &["--bind", "::1", "--port", "0"]);
    let manager = m.listening_addr();
    let config = config_file("ipv6", &[]);
    // No --bind: the manager sees ::1 and advertises it, so the listener must take IPv6.
    let connmgr = manager.to_string();
    let mut s = Daemon::spawn(
        &bin("servant"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--connmgr",
            &connmgr,
            "--port",
            &manager.port().to_string(),
            "--name",
            "six",
            "--poll-interval",
            "200",
        ],
    );
    s.wait_for("listening on [::]:");
    s.type_line("over six");
    assert_eq!(
        s.stdout_line().as_deref(),
        Some("six: over six"),
        "{}",
        s.log_text()
    );
    let _ = std::fs::remove_file(config);
}
