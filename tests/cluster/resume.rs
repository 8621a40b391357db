//! Versions across the cluster and resumed entries: a servant that fails over
//! from a killed manager keeps its offset and port on the next one, nobody sees
//! it leave or join, and a version from the dead manager is answered with a
//! delta, not the whole document; a wrong token is a new join.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{manager, temp_dir, Redis};
use crate::common::{self, bin, client, entries, Daemon, DEADLINE};

/// Reads from `s` until what was read ends one answer: a line (`token`,
/// `resumed`, `resume refused`) or a document, delta or `<unchanged/>`.
fn answer(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        s.read_exact(&mut byte).expect("an answer");
        got.push(byte[0]);
        let text = String::from_utf8_lossy(&got);
        let line = got.ends_with(b"\r\n") && !got.starts_with(b"<");
        let doc = text.ends_with("</peers>\r\n") || text.ends_with("</delta>\r\n");
        if line || doc || (text.starts_with("<unchanged") && text.ends_with("/>\r\n")) {
            return text.into_owned();
        }
    }
}

/// `E.N` from `<peers version="E.N">`, `<delta ... to="E.N">`, `<unchanged version="E.N"/>`.
fn version_of(doc: &str) -> String {
    let at = doc
        .find("to=\"")
        .or_else(|| doc.find("version=\""))
        .expect("a version");
    let rest = &doc[at..];
    let start = rest.find('"').unwrap() + 1;
    let end = start + rest[start..].find('"').unwrap();
    rest[start..end].to_string()
}

/// Asks `since` on `s` (skipping a `token` line) and returns the answer.
fn ask(s: &mut TcpStream, since: &str) -> String {
    s.write_all(format!("needs peer list since {since}\n").as_bytes())
        .unwrap();
    loop {
        let a = answer(s);
        if !a.starts_with("token ") {
            return a;
        }
    }
}

/// A versioned client on `addr`: its token line, and its first whole document.
fn versioned(addr: SocketAddr) -> (TcpStream, (usize, String), String) {
    let mut s = client(addr);
    s.write_all(b"needs peer list since 0\n").unwrap();
    let token = answer(&mut s);
    let mut words = token.split_whitespace();
    assert_eq!(words.next(), Some("token"), "{token:?}");
    let offset: usize = words.next().unwrap().parse().unwrap();
    let t = words.next().unwrap().to_string();
    assert!(
        t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()),
        "{t}"
    );
    let doc = answer(&mut s);
    assert!(doc.starts_with("<peers version=\""), "{doc}");
    (s, (offset, t), doc)
}

/// Asks on `s` until its list holds `n` entries; the whole document and version.
fn until_entries(s: &mut TcpStream, n: usize) -> (String, String) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let doc = ask(s, "0");
        // A push (a delta) may come before the answer asked for.
        if doc.starts_with("<peers") && entries(&doc).len() == n {
            return (version_of(&doc), doc);
        }
        assert!(Instant::now() < deadline, "never {n} entries: {doc}");
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn versions_are_the_clusters_and_a_resume_after_a_kill_is_a_delta_without_a_leave() {
    let dir = temp_dir("resume");
    let _redis = Redis::start(&dir);
    let (a_daemon, a) = manager(&dir);
    let (b_daemon, b) = manager(&dir);
    let (mut x, (offset, token), _) = versioned(a);
    let (mut y, _, _) = versioned(b);
    let (vy, doc_b) = until_entries(&mut y, 2);
    let (vx, doc_a) = until_entries(&mut x, 2);
    assert_eq!(vx, vy, "one version across the cluster");
    assert!(vx.len() > 17 && vx.as_bytes()[16] == b'.', "E.N: {vx}");
    let strip = |d: &str| d.replace("TRUE", "FALSE");
    assert_eq!(strip(&doc_a), strip(&doc_b), "the same bytes apart from me");
    // A version B wrote is one A answers from: nothing changed since.
    assert!(
        ask(&mut x, &vy).starts_with("<unchanged"),
        "across managers"
    );

    a_daemon.signal(libc::SIGKILL);
    drop(x);
    let mut z = client(b);
    z.write_all(format!("resume {offset} {token}\nneeds peer list since {vx}\n").as_bytes())
        .unwrap();
    assert_eq!(answer(&mut z), format!("resumed {offset}\r\n"));
    let after = ask(&mut z, &vx);
    assert!(
        after.starts_with("<unchanged") || after.starts_with("<delta"),
        "a delta or unchanged after the move, not the whole document: {after}"
    );
    b_daemon.wait_for(&format!("resumed: offset {offset}"));

    // Past the dead manager's lease and a reaping: the entry stays, unmoved.
    let port = entries(&doc_b).iter().find(|e| e.1 == offset).unwrap().0;
    let mut v = vy;
    let until = Instant::now() + Duration::from_secs(13);
    while Instant::now() < until {
        let got = ask(&mut y, &v);
        assert!(!got.contains(&format!("<left>{offset}</left>")), "{got}");
        v = version_of(&got);
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, doc) = until_entries(&mut y, 2);
    assert!(entries(&doc).contains(&(port, offset, false)), "{doc}");

    // A wrong token is a new join, with a token of its own.
    let mut w = client(b);
    w.write_all(
        format!(
            "resume {offset} {}\nneeds peer list since 0\n",
            "0".repeat(32)
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(answer(&mut w), "resume refused\r\n");
    let t = answer(&mut w);
    assert!(
        t.starts_with("token ") && !t.starts_with(&format!("token {offset} ")),
        "{t}"
    );
}

fn servant(managers: &[SocketAddr]) -> Daemon {
    let mut args: Vec<String> = Vec::new();
    for m in managers {
        args.extend(["--connmgr".into(), m.to_string()]);
    }
    let rest = [
        "--bind",
        "127.0.0.2",
        "--name",
        "sam",
        "--poll-interval",
        "500",
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::spawn(&bin("servant"), &args)
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn a_real_servant_resumes_on_the_next_manager_with_its_offset_and_port() {
    let dir = temp_dir("servant");
    let _redis = Redis::start(&dir);
    let (a_daemon, a) = manager(&dir);
    let (b_daemon, b) = manager(&dir);
    let sam = servant(&[a, b]);
    let (mut y, _, _) = versioned(b);
    let (v, doc) = until_entries(&mut y, 2);
    let (port, offset, _) = *entries(&doc).iter().find(|e| !e.2).unwrap();
    a_daemon.signal(libc::SIGKILL);
    b_daemon.wait_for(&format!("resumed: offset {offset}"));
    let mut v = v;
    let until = Instant::now() + common::DEADLINE;
    while Instant::now() < until {
        let got = ask(&mut y, &v);
        assert!(!got.contains(&format!("<left>{offset}</left>")), "{got}");
        v = version_of(&got);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, doc) = until_entries(&mut y, 2);
    assert!(entries(&doc).contains(&(port, offset, false)), "{doc}");
    drop(sam);
}
