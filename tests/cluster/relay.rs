//! Relays, complaints and port moves across two managers of one cluster, on
//! loopback with raw clients (as `tests/relay/loopback.rs` does alone): a
//! client that never listens on its port cannot be reached, one that does and
//! says `can relay` can relay.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::common::{client, connmgr, entries, read_doc, Daemon, DEADLINE};
use super::{temp_dir, url, Redis};

/// A manager in the cluster that acts on one complaint from anyone and gives a
/// dial-back 2 s, once in step with Redis. Each test's cluster counts ports from
/// its own `first`: the tests listen on them side by side.
fn manager(dir: &Path, first: u16) -> (Daemon, SocketAddr) {
    let (url, first) = (url(dir), first.to_string());
    let (d, addr) = connmgr(&[
        "--first-port",
        &first,
        "--cluster",
        &url,
        "--cluster-prefix",
        "test",
        "--relay-threshold",
        "1",
        "--relay-share",
        "0",
        "--relay-dial-timeout",
        "2000",
    ]);
    d.wait_for("in step with redis");
    (d, addr)
}

/// Asks on `s` until its document contains `want`; the document.
fn doc_with(s: &mut TcpStream, want: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        s.write_all(b"needs peer list\n").unwrap();
        let doc = read_doc(s);
        if doc.contains(want) {
            return doc;
        }
        assert!(Instant::now() < deadline, "never {want:?} in {doc}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asks on `s` until it lists `n` servants; their (port, offset, me).
fn listing(s: &mut TcpStream, n: usize) -> Vec<(u16, usize, bool)> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        s.write_all(b"needs peer list\n").unwrap();
        let e = entries(&read_doc(s));
        if e.len() == n {
            return e;
        }
        assert!(Instant::now() < deadline, "never {n} servants: {e:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two managers of a fresh cluster counting ports from `first`, with a client
/// `x` on B that listens nowhere and a client `y` on A that says `can relay`,
/// answers dial-backs (the kernel completes them) and complains about `x`.
struct Scene {
    _redis: Redis,
    _a: Daemon,
    b: Daemon,
    a_addr: SocketAddr,
    x: TcpStream,
    y: TcpStream,
    /// (port, offset, me) of each, as their documents list them.
    x_entry: (u16, usize, bool),
    y_entry: (u16, usize, bool),
    listening: TcpListener,
}

fn scene(name: &str, first: u16) -> Scene {
    let dir = temp_dir(name);
    let redis = Redis::start(&dir);
    let (a, a_addr) = manager(&dir, first);
    let (b, b_addr) = manager(&dir, first);
    let mut x = client(b_addr);
    let x_entry = listing(&mut x, 1)[0];
    let mut y = client(a_addr);
    y.write_all(b"can relay\n").unwrap();
    let y_entry = *listing(&mut y, 2).iter().find(|e| e.2).unwrap();
    let listening = TcpListener::bind(("127.0.0.1", y_entry.0)).unwrap();
    y.write_all(format!("cannot reach 127.0.0.1:{}\n", x_entry.0).as_bytes())
        .unwrap();
    Scene {
        _redis: redis,
        _a: a,
        b,
        a_addr,
        x,
        y,
        x_entry,
        y_entry,
        listening,
    }
}

/// A client on manager B that nobody can reach is judged by B on a complaint
/// from a client on manager A, and relayed through a client on A that said
/// `can relay`: both managers' documents show it, at the cluster's offsets.
#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn a_complaint_on_one_manager_gets_a_servant_on_another_a_relay_there() {
    let mut s = scene("relay", 41224);
    s.b.wait_for("is behind a port-blocking router");
    let (x, y) = (s.x_entry, s.y_entry);
    let relayed = format!(
        "<port>{}</port><offset>{}</offset><me>{{}}</me><relay><ip>127.0.0.1</ip><port>{}</port></relay></peer>",
        x.0, x.1, y.0
    );
    doc_with(&mut s.x, &relayed.replace("{}", "TRUE"));
    doc_with(&mut s.y, &relayed.replace("{}", "FALSE"));
    let line = s.b.wait_for("pulls from offset");
    assert!(
        line.contains(&format!("offset {} (", x.1))
            && line.contains(&format!("from offset {} (", y.1)),
        "{line}"
    );
}

/// A relay on another manager that leaves is replaced: its puller is told that
/// no one can relay, in both documents.
#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn a_relay_leaving_on_one_manager_frees_its_puller_on_another() {
    let mut s = scene("relay-leaves", 42224);
    doc_with(&mut s.x, &format!("<port>{}</port></relay>", s.y_entry.0));
    drop(s.y);
    drop(s.listening);
    let mut w = client(s.a_addr);
    doc_with(&mut w, "<me>FALSE</me><relay>none</relay>");
    doc_with(&mut s.x, "<me>TRUE</me><relay>none</relay>");
}

/// `cannot listen PORT` on one manager moves the servant to a port no member
/// of the cluster holds, and the other manager lists it there.
#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn cannot_listen_moves_a_servant_to_a_port_free_in_the_whole_cluster() {
    let dir = temp_dir("relay-ports");
    let _redis = Redis::start(&dir);
    let (_a, a_addr) = manager(&dir, 43224);
    let (_b, b_addr) = manager(&dir, 43224);
    let mut x = client(b_addr);
    listing(&mut x, 1);
    let mut z = client(a_addr);
    let before = listing(&mut z, 2);
    let (old, offset) = before.iter().find(|e| e.2).map(|e| (e.0, e.1)).unwrap();
    z.write_all(format!("cannot listen {old}\n").as_bytes())
        .unwrap();
    let after = entries(&read_doc(&mut z));
    let new = after.iter().find(|e| e.2).unwrap();
    assert_eq!(new.1, offset, "{after:?}");
    assert!(
        before.iter().all(|e| e.0 != new.0),
        "{before:?} -> {after:?}"
    );
    let moved = format!("<port>{}</port><offset>{offset}</offset>", new.0);
    doc_with(&mut x, &moved);
}
