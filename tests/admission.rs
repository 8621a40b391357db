//! Who gets in, and on which port: real `connmgr`, raw clients playing servants.
//! One host must not take more than its allowance by spreading over its IPv6
//! subnet, and a servant whose port someone else holds is moved, not stranded.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{client, entries, read_doc, Daemon, DEADLINE};

const REFUSED: &str = "max servants per address reached\r\n";

/// Connects to `to` from `from` and says whether the manager kept the connection
/// (answered `needs peer list`) or refused it; the connection, if kept.
fn try_join(from: IpAddr, to: SocketAddr) -> Result<TcpStream, String> {
    let domain = socket2::Domain::for_address(to);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(from, 0).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    s.connect_timeout(&to.into(), DEADLINE)
        .unwrap_or_else(|e| panic!("connect {to} from {from}: {e}"));
    let mut s: TcpStream = s.into();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"needs peer list\n").unwrap();
    let mut first = [0u8; 1];
    s.peek(&mut first).unwrap();
    if first[0] == b'<' {
        read_doc(&mut s);
        return Ok(s);
    }
    let mut said = String::new();
    let _ = s.read_to_string(&mut said);
    Err(said)
}

#[test]
fn ipv4_mapped_clients_are_counted_per_ipv4_address() {
    // Listening on `::`, IPv4 clients arrive as ::ffff:a.b.c.d; they must not all
    // share the allowance of one IPv6 /64.
    let d = Daemon::spawn(
        &common::bin("connmgr"),
        &["--bind", "::", "--port", "0", "--max-per-address", "1"],
    );
    let port = d.listening_addr().port();
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    let one = try_join("127.0.0.1".parse().unwrap(), to).expect("the first");
    assert_eq!(
        try_join("127.0.0.1".parse().unwrap(), to).unwrap_err(),
        REFUSED
    );
    let other = try_join("127.0.0.2".parse().unwrap(), to);
    assert!(other.is_ok(), "another IPv4 address: {other:?}");
    drop(one);
}

/// A network namespace of our own with IPv6 documentation addresses on its
/// loopback, removed on drop.
struct Netns(String);

impl Netns {
    fn new(addrs: &[&str]) -> Netns {
        let ns = Netns(format!("p2pchat-{}-admission", std::process::id()));
        let ip = |args: &[&str]| {
            let ok = Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {args:?} failed");
        };
        let _ = (Command::new("ip").args(["netns", "del", &ns.0]))
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &ns.0]);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        for a in addrs {
            ip(&[
                "-n",
                &ns.0,
                "addr",
                "add",
                &format!("{a}/64"),
                "dev",
                "lo",
                "nodad",
            ]);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn one_ipv6_subnet_shares_one_allowance_and_a_reload_recounts() {
    let addrs = [
        "2001:db8:1::1",
        "2001:db8:1::2",
        "2001:db8:1::3",
        "2001:db8:2::1",
    ];
    let ns = Netns::new(&addrs);
    let config = std::env::temp_dir().join(format!("p2pchat-admission-{}.xml", std::process::id()));
    std::fs::write(
        &config,
        "<connmgr><maxperaddress>2</maxperaddress></connmgr>",
    )
    .unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0, &common::bin("connmgr")]);
    cmd.args(["--bind", "::", "--port", "0", "--config"])
        .arg(&config);
    let d = Daemon::spawn_command(cmd);
    let port = d.listening_addr().port();
    let ns_name = ns.0.clone();
    // The clients run in a thread inside the namespace; it reports each outcome.
    let (tx, rx) = std::sync::mpsc::channel::<(String, bool)>();
    let (go, wait) = std::sync::mpsc::channel::<Vec<&'static str>>();
    let clients = std::thread::spawn(move || {
        p2pchat_harness::netns::enter(&ns_name).unwrap();
        let to: SocketAddr = "[2001:db8:1::1]:0"
            .parse::<SocketAddr>()
            .map(|mut a| {
                a.set_port(port);
                a
            })
            .unwrap();
        let mut kept = Vec::new();
        while let Ok(batch) = wait.recv() {
            for from in batch {
                let joined = try_join(from.parse().unwrap(), to);
                tx.send((from.to_string(), joined.is_ok())).unwrap();
                kept.extend(joined.ok());
            }
        }
        drop(kept);
    });
    let run = |batch: Vec<&'static str>| -> Vec<bool> {
        let n = batch.len();
        go.send(batch).unwrap();
        (0..n)
            .map(|_| rx.recv_timeout(DEADLINE).unwrap().1)
            .collect()
    };
    // The attack: a third servant from the same /64, from a fresh address.
    assert_eq!(
        run(vec!["2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3"]),
        [true, true, false],
        "{}",
        d.log_text()
    );
    assert_eq!(run(vec!["2001:db8:2::1"]), [true], "another /64");
    // Counted per address (/128) after a reload, the third address gets in.
    std::fs::write(
        &config,
        "<connmgr><maxperaddress>2</maxperaddress><ipv6prefix>128</ipv6prefix></connmgr>",
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("IPv6 prefix /64 -> /128");
    assert_eq!(
        run(vec!["2001:db8:1::3", "2001:db8:1::3", "2001:db8:1::3"]),
        [true, true, false]
    );
    // Counted per /32, all five members share one allowance, far past the limit.
    std::fs::write(
        &config,
        "<connmgr><maxperaddress>2</maxperaddress><ipv6prefix>32</ipv6prefix></connmgr>",
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("IPv6 prefix /128 -> /32");
    assert_eq!(run(vec!["2001:db8:2::1"]), [false]);
    drop(go);
    clients.join().unwrap();
    let _ = std::fs::remove_file(config);
}

#[test]
fn a_servant_that_cannot_listen_is_moved_to_a_free_port_at_once() {
    let (d, addr) = common::connmgr(&["--first-port", "27224"]);
    let mut bare = client(addr);
    bare.write_all(b"needs peer list\n").unwrap();
    let old = entries(&read_doc(&mut bare))[0].0;
    let mut watcher = client(addr);
    watcher.write_all(b"needs peer list since 0\n").unwrap();
    read_doc(&mut watcher);
    // Someone else's port is ignored: a client cannot move a port it does not hold.
    bare.write_all(format!("cannot listen {}\n", old + 1).as_bytes())
        .unwrap();
    bare.write_all(format!("cannot listen {old}\n").as_bytes())
        .unwrap();
    // Answered at once, as its last request was: the bare, whole document.
    let doc = read_doc(&mut bare);
    let new = entries(&doc)[0].0;
    assert!(
        new != old && new != old + 1,
        "moved from {old} to {new}: {doc}"
    );
    assert!(doc.starts_with("<peers><peer>"), "{doc}");
    d.wait_for(&format!("cannot listen on {old}: moved to {new}"));
    // Everyone else is pushed the change, one version.
    let push = read_doc_or_delta(&mut watcher);
    assert!(push.contains(&format!("<port>{new}</port>")), "{push}");
    // A versioned asker is answered with a delta.
    watcher.write_all(b"needs peer list since 0\n").unwrap();
    let whole = read_doc(&mut watcher);
    let w_port = entries(&whole)[1].0;
    watcher
        .write_all(format!("cannot listen {w_port}\n").as_bytes())
        .unwrap();
    let delta = read_doc_or_delta(&mut watcher);
    assert!(delta.starts_with("<delta from="), "{delta}");
    // Within a second of its move, a second request does not walk the counter.
    let pushed = read_doc(&mut bare); // the watcher's move
    assert_eq!(entries(&pushed)[0].0, new);
    bare.write_all(format!("cannot listen {new}\n").as_bytes())
        .unwrap();
    bare.write_all(b"needs peer list\n").unwrap();
    let doc = read_doc(&mut bare);
    assert_eq!(entries(&doc)[0].0, new, "moved twice within a second");
    let end = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < end, "never moved again: {}", d.log_text());
        bare.write_all(format!("cannot listen {new}\nneeds peer list\n").as_bytes())
            .unwrap();
        let doc = read_doc(&mut bare);
        if entries(&doc)[0].0 != new {
            break;
        }
        let _ = d.wait_for_within("moved to", Duration::from_millis(250));
    }
}

/// One answer: a whole document or a delta, whichever comes.
fn read_doc_or_delta(s: &mut TcpStream) -> String {
    let mut first = [0u8; 7];
    s.peek(&mut first).unwrap();
    if first.starts_with(b"<peers") {
        return read_doc(s);
    }
    let mut out = Vec::new();
    let mut byte = [0u8];
    while !out.ends_with(b"\r\n") {
        assert!(s.read(&mut byte).unwrap() > 0);
        out.push(byte[0]);
    }
    String::from_utf8(out).unwrap()
}
