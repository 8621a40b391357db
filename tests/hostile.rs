//! Hostile peers, lying managers and careless operators, tried as an attacker
//! would: real `connmgr` and `servant` processes on loopback, and raw sockets or a
//! fake manager in the test playing the attacker. Each test is one class of abuse;
//! each failed before the limits it checks existed.
//!
//! Every test has its own `127.0.8N.x` block, so ports never collide across tests
//! running in parallel. Waits are on log or stdout lines with deadlines.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{
    bin, client, connect_from, connmgr, named_servant, raise_fd_limit, read_doc, Daemon, DEADLINE,
};
use p2pchat_harness::Spawn;

/// A config file with `body` inside `<config>`, named for the test.
fn config_file(test: &str, body: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("p2pchat-hostile-{}-{test}.xml", std::process::id()));
    std::fs::write(&path, format!("<config>\n{body}</config>\n")).unwrap();
    path
}

/// A servant on `bind` asking `manager` every 200 ms, with `extra` flags.
fn servant(test: &str, manager: SocketAddr, bind: &str, name: &str, extra: &[&str]) -> Daemon {
    let config = config_file(&format!("{test}-{name}"), "");
    named_servant(&config, manager, bind, name, extra)
}

/// A port nothing listens on at `ip` just now.
fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Waits for `d` to show `line` on stdout, skipping others.
fn shows(d: &Daemon, line: &str) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if d.stdout_line().as_deref() == Some(line) {
            return;
        }
    }
    panic!("{} never showed {line:?}; log:\n{}", d.name(), d.log_text());
}

/// Lists `ip` at `manager` as a servant that never listens, so that a raw
/// connection from there is a listed peer's, whose lines a servant shows (it holds
/// lines from addresses on no list, then drops them). Keep it open.
fn listed_as(ip: &str, manager: SocketAddr) -> TcpStream {
    let mut c = connect_from(ip, manager);
    c.write_all(b"needs peer list\n").unwrap();
    read_doc(&mut c);
    c
}

/// A peer document: `(ip, port, me)` per entry.
fn document(entries: impl IntoIterator<Item = (String, u16, bool)>) -> Vec<u8> {
    let mut doc = String::from("<peers>");
    for (k, (ip, port, me)) in entries.into_iter().enumerate() {
        let me = if me { "TRUE" } else { "FALSE" };
        doc.push_str(&format!(
            "<peer><ip>{ip}</ip><port>{port}</port><offset>{}</offset><me>{me}</me></peer>",
            k + 1
        ));
    }
    doc.push_str("</peers>\r\n");
    doc.into_bytes()
}

/// A connection manager played by the test: it answers every `needs peer list`
/// with whatever `reply` holds at the time, and counts `cannot reach` complaints.
struct FakeManager {
    addr: SocketAddr,
    reply: Arc<Mutex<Vec<u8>>>,
    complaints: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeManager {
    fn start(ip: &str, reply: Vec<u8>) -> FakeManager {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let reply = Arc::new(Mutex::new(reply));
        let complaints = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, c, s) = (reply.clone(), complaints.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (r, c) = (r.clone(), c.clone());
                std::thread::spawn(move || serve_fake(conn, &r, &c));
            }
        });
        FakeManager {
            addr,
            reply,
            complaints,
            stop,
            thread: Some(thread),
        }
    }

    fn set_reply(&self, reply: Vec<u8>) {
        *self.reply.lock().unwrap() = reply;
    }
}

fn serve_fake(conn: TcpStream, reply: &Mutex<Vec<u8>>, complaints: &AtomicUsize) {
    let mut writer = conn.try_clone().unwrap();
    for line in BufReader::new(conn).split(b'\n') {
        let Ok(line) = line else { return };
        if line.starts_with(b"needs peer list") {
            let bytes = reply.lock().unwrap().clone();
            if writer.write_all(&bytes).is_err() {
                return;
            }
        } else if line.starts_with(b"cannot reach") {
            complaints.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for FakeManager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Class 1: a manager's or a client's text is somebody else's bytes. The servant's
/// `connection manager says:` line and a malformed document's error, and the
/// manager's MsgBox line, show escape sequences escaped, never raw.
#[test]
fn hostile_text_never_reaches_a_log_raw() {
    let me = free_port("127.0.80.2");
    let mut reply = "\x1b]0;owned\x07 you are \u{202e}gninraw\n"
        .as_bytes()
        .to_vec();
    reply.extend_from_slice(b"<peers><peer><ip>&\x1b[2J;</ip></peer></peers>\r\n");
    reply.extend_from_slice(&document([("127.0.80.2".into(), me, true)]));
    let fake = FakeManager::start("127.0.80.1", reply);
    let s = servant("text", fake.addr, "127.0.80.2", "s", &[]);
    s.wait_for("connection manager says");
    s.wait_for("malformed peer list");
    s.listening_addr();

    let (m, addr) = connmgr(&["--push-interval", "0"]);
    let mut c = client(addr);
    c.write_all("hello \x1b[2J\u{9b}31m\u{202e}dlrow\n".as_bytes())
        .unwrap();
    m.wait_for("sent: hello");

    for (who, log) in [("servant", s.log_text()), ("connmgr", m.log_text())] {
        let raw: Vec<char> = log
            .chars()
            .filter(|&c| p2pchat::text::is_unsafe(c) && c != '\n')
            .collect();
        assert!(raw.is_empty(), "{who} logged {raw:?} raw:\n{log}");
        assert!(log.contains("\\x1b"), "{who} shows the escape:\n{log}");
    }
}

/// Class 2: 1,000 peers each parking 65,000 bytes of an unfinished line. Before
/// the cap on unfinished lines the servant grew by 97 KiB for each (95 MiB here);
/// now by the cap (16 MiB) and a little per connection.
#[test]
fn unfinished_lines_from_many_peers_cost_bounded_memory() {
    raise_fd_limit();
    let (_m, manager) = connmgr(&["--push-interval", "0"]);
    let s = servant("memory", manager, "127.0.81.2", "s", &["--headless"]);
    let chat = s.listening_addr();
    let _listed = listed_as("127.0.81.9", manager);
    s.wait_for("peers: 2");
    let before = rss(s.pid());
    let parked: Vec<TcpStream> = (0..1000)
        .map(|k| {
            let mut c = connect_from(&format!("127.0.81.{}", 10 + k / 50), chat);
            // Written in full by the kernel whether or not the servant reads it.
            c.set_write_timeout(Some(DEADLINE)).unwrap();
            let _ = c.write_all(&[b'x'; 65_000]);
            c
        })
        .collect();
    let mut probe = connect_from("127.0.81.9", chat);
    probe.write_all(b"probe\n").unwrap();
    drop(probe);
    shows(&s, "probe");
    // The reads of the parked lines may still be in progress: watch for a while.
    let mut peak = rss(s.pid());
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss(s.pid()));
    }
    let grew = peak.saturating_sub(before);
    eprintln!(
        "1,000 peers x 65,000 unfinished bytes: the servant grew by {:.1} MiB",
        grew as f64 / 1048576.0
    );
    assert!(
        grew < 40 << 20,
        "grew by {} MiB; log:\n{}",
        grew >> 20,
        s.log_text()
    );
    assert!(s.count("unfinished lines hold over 16 MiB") >= 1);
    assert!(s.count("unfinished lines hold over") <= 2, "rate-limited");
    drop(parked);
}

/// Class 3: a manager's list is not taken at its word. 5,000 entries for one
/// address cost one connection per line, 2,000 unreachable peers one warning, and
/// a list of 150,000 entries is refused with the last good list kept.
#[test]
fn a_lying_managers_list_is_deduplicated_capped_and_its_failures_summarised() {
    let target = TcpListener::bind("127.0.82.50:0").unwrap();
    let target_addr = target.local_addr().unwrap();
    let me = free_port("127.0.82.2");
    let list = |extra: usize| {
        let mut entries = vec![("127.0.82.2".to_string(), me, true)];
        entries.extend((0..5000).map(|_| ("127.0.82.50".to_string(), target_addr.port(), false)));
        // Nothing listens on these: each connection is refused at once.
        entries.extend(
            (0..2000u16).map(|k| (format!("127.0.82.{}", 60 + k / 500), 20_000 + k, false)),
        );
        entries.extend(
            (0..extra).map(|k| (format!("127.0.83.{}", k % 200), 1 + (k / 200) as u16, false)),
        );
        document(entries)
    };
    let fake = FakeManager::start("127.0.82.1", list(0));
    let mut s = servant("lying", fake.addr, "127.0.82.2", "s", &[]);
    s.listening_addr();

    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for mut c in target.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = c.read_to_end(&mut Vec::new());
        }
    });
    s.type_line("hello");
    shows(&s, "s: hello");
    let end = Instant::now() + DEADLINE;
    while fake.complaints.load(Ordering::SeqCst) < 2000 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        fake.complaints.load(Ordering::SeqCst),
        2000,
        "{}",
        s.log_text()
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection per line"
    );
    let warned = s.count("cannot deliver to");
    assert!(
        (1..=2).contains(&warned),
        "{warned} warnings:\n{}",
        s.log_text()
    );

    fake.set_reply(list(150_000));
    s.wait_for("refusing a peer list from the connection manager: 157001 entries");
    s.type_line("after");
    shows(&s, "s: after");
    let end = Instant::now() + DEADLINE;
    while accepted.load(Ordering::SeqCst) < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "the last good list is kept"
    );
}

/// Class 4, first half: one host cannot fill the manager. 100 connections from one
/// address get 64 places; the next servant from another address still gets in.
#[test]
fn one_address_cannot_take_the_manager() {
    let (m, addr) = connmgr(&["--max-servants", "100", "--push-interval", "0"]);
    let mut joined = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        let mut c = connect_from("127.0.84.5", addr);
        c.write_all(b"needs peer list\n").unwrap();
        let mut first = [0u8; 7];
        c.read_exact(&mut first).unwrap();
        match &first {
            b"<peers>" => joined.push(c),
            _ => {
                let mut rest = String::new();
                let _ = c.read_to_string(&mut rest);
                let said = format!("{}{rest}", String::from_utf8_lossy(&first));
                assert_eq!(said, "max servants per address reached\r\n");
                refused += 1;
            }
        }
    }
    assert_eq!((joined.len(), refused), (64, 36));
    let mut honest = connect_from("127.0.84.6", addr);
    honest.write_all(b"needs peer list\n").unwrap();
    assert_eq!(common::entries(&read_doc(&mut honest)).len(), 65);
    let lines = m.count("max servants per address");
    assert!((1..=2).contains(&lines), "rate-limited: {lines} lines");
}

/// Class 4, second half: only whole requests keep a servant. 40 connections
/// dripping a byte every 300 ms are reaped by a 2 s idle timeout, while a servant
/// asking every 300 ms stays.
#[test]
fn a_drip_is_reaped_by_the_idle_timeout() {
    let (m, addr) = connmgr(&["--idle-timeout", "2", "--push-interval", "0"]);
    let mut drips: Vec<TcpStream> = (0..40)
        .map(|k| connect_from(&format!("127.0.84.{}", 20 + k / 10), addr))
        .collect();
    let mut honest = connect_from("127.0.84.30", addr);
    let end = Instant::now() + DEADLINE;
    let mut open = drips.len();
    while open > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(300));
        honest.write_all(b"needs peer list\n").unwrap();
        read_doc(&mut honest);
        open = 0;
        for d in &mut drips {
            if d.write_all(b"x").is_ok() && !closed(d) {
                open += 1;
            }
        }
    }
    assert_eq!(
        open,
        0,
        "dripping connections never reaped:\n{}",
        m.log_text()
    );
    honest.write_all(b"needs peer list\n").unwrap();
    assert_eq!(common::entries(&read_doc(&mut honest)).len(), 1);
}

/// Whether the manager has closed `c` (a read finds the end, or a reset).
fn closed(c: &mut TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let gone = match c.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    c.set_nonblocking(false).unwrap();
    gone
}

/// Class 5: the manager killed for 3 s and restarted on its port, while three
/// servants type a line every 10 ms each. Every servant shows every line.
#[test]
fn no_line_between_live_peers_is_lost_across_a_manager_restart() {
    let (m, addr) = connmgr(&[]);
    let port = addr.port().to_string();
    let names = ["a", "b", "c"];
    let mut s: Vec<Daemon> = (names.iter().enumerate())
        .map(|(k, n)| servant("restart", addr, &format!("127.0.85.{}", k + 2), n, &[]))
        .collect();
    for d in &s {
        d.wait_for("peers: 3 ");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let typists: Vec<JoinHandle<usize>> = (s.iter_mut().zip(names))
        .map(|(d, n)| {
            let mut stdin = d.stdin.take().unwrap();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::SeqCst) {
                    writeln!(stdin, "{n} {k}").unwrap();
                    k += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                std::mem::forget(stdin); // kept open: end of input would make it leave
                k
            })
        })
        .collect();
    let mut manager = m;
    for _ in 0..2 {
        // The scenario's timeline, not readiness waits: chat flows for 0.5 s, the
        // manager is down for 3 s (as the failure was reported), chat flows again.
        std::thread::sleep(Duration::from_millis(500));
        manager.signal(libc::SIGKILL);
        for d in &s {
            d.wait_for("connection manager at");
        }
        std::thread::sleep(Duration::from_secs(3));
        manager = Daemon::spawn(&bin("connmgr"), &["--bind", "127.0.0.1", "--port", &port]);
        manager.listening_addr();
        for d in &s {
            d.wait_for("is back");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let typed: Vec<usize> = typists.into_iter().map(|t| t.join().unwrap()).collect();
    let want: BTreeSet<String> = (names.iter().zip(&typed))
        .flat_map(|(n, &count)| (0..count).map(move |k| format!("{n}: {n} {k}")))
        .collect();
    let mut lost = Vec::new();
    for (d, n) in s.iter().zip(names) {
        let mut got = BTreeSet::new();
        let end = Instant::now() + DEADLINE;
        while got.len() < want.len() && Instant::now() < end {
            match d.stdout_line() {
                Some(l) => {
                    got.insert(l);
                }
                None => break,
            }
        }
        let missing: Vec<&String> = want.difference(&got).collect();
        if !missing.is_empty() {
            let first = &missing[..missing.len().min(10)];
            lost.push(format!(
                "{n} lost {} of {}: {first:?}",
                missing.len(),
                want.len()
            ));
        }
    }
    let logs: Vec<String> = s.iter().map(|d| d.log_text()).collect();
    assert!(lost.is_empty(), "{lost:?}; logs:\n{}", logs.join("\n\n"));
}

/// Class 6: one peer sends a million two-byte messages on one connection while
/// another peer sends a line every 50 ms. The flood is read a budget at a time,
/// so the other lines are shown while it is still going on, not after it; how
/// long they waited is printed.
#[test]
fn a_flood_of_tiny_messages_leaves_room_for_everyone_else() {
    let (_m, manager) = connmgr(&["--push-interval", "0"]);
    let config = config_file("flood", "");
    let mut cmd = Command::new(bin("servant"));
    cmd.args(["--config", config.to_str().unwrap(), "--headless"]);
    cmd.args(["--connmgr", &manager.to_string(), "--bind", "127.0.86.2"]);
    // Every line is kept, however fast they come: the probes must not be let go.
    let s = Spawn::command(cmd).keep(1_100_000).start().unwrap();
    let chat = s.listening_addr(DEADLINE).unwrap();
    let _listed = ["127.0.86.10", "127.0.86.11"].map(|ip| listed_as(ip, manager));
    s.wait_for("peers: 3", DEADLINE).unwrap();
    const FLOOD: usize = 1_000_000;
    let flood = std::thread::spawn(move || {
        let mut c = connect_from("127.0.86.10", chat);
        c.write_all(&b"f\n".repeat(FLOOD)).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
    });
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let times = sent.clone();
    let probes = std::thread::spawn(move || {
        for k in 0..20 {
            std::thread::sleep(Duration::from_millis(50));
            let mut c = connect_from("127.0.86.11", chat);
            times.lock().unwrap().push(Instant::now());
            c.write_all(format!("probe {k}\n").as_bytes()).unwrap();
        }
    });
    let (mut floods, mut lost_lines) = (0, 0);
    let mut probe_at = Vec::new();
    let end = Instant::now() + DEADLINE * 3;
    while probe_at.len() < 20 && Instant::now() < end {
        let Ok(line) = s.stdout_line(DEADLINE) else {
            break;
        };
        match line.as_str() {
            "f" => floods += 1,
            l if l.starts_with("probe ") => probe_at.push((Instant::now(), floods)),
            l if l.contains("lines lost") => lost_lines += 1,
            _ => {}
        }
    }
    flood.join().unwrap();
    probes.join().unwrap();
    let sent = sent.lock().unwrap();
    let delays: Vec<u128> = (probe_at.iter().zip(sent.iter()))
        .map(|((at, _), sent)| at.saturating_duration_since(*sent).as_millis())
        .collect();
    eprintln!(
        "a flood of {FLOOD} messages: other lines waited {delays:?} ms; {lost_lines} loss notices"
    );
    assert_eq!(probe_at.len(), 20, "lines lost:\n{}", s.log_text());
    let during = probe_at.iter().filter(|(_, f)| *f < FLOOD).count();
    assert!(during > 0, "every other line waited for the whole flood");
}

/// Class 7: three banned names behind a resolver that never answers. The servant
/// listens and reaches its manager at once, says once that names are pending, and
/// refuses peers until they are resolved, or until a reload drops the names. Needs root, for a private resolv.conf
/// in a mount namespace.
#[test]
#[cfg_attr(
    p2pchat_no_root,
    ignore = "needs root (a private resolv.conf in a mount namespace)"
)]
fn banned_names_behind_a_dead_resolver_do_not_delay_listening() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "needs root, for a private resolv.conf in a mount namespace"
    );
    // A "DNS server" that takes every query and answers none.
    let dns = UdpSocket::bind("127.0.87.53:53").unwrap();
    let resolv = std::env::temp_dir().join(format!("p2pchat-resolv-{}", std::process::id()));
    std::fs::write(
        &resolv,
        "nameserver 127.0.87.53\noptions timeout:5 attempts:2\n",
    )
    .unwrap();
    let config = config_file(
        "dns",
        "<bans><ban><target>one.p2pchat.test</target></ban><ban><target>two.p2pchat.test</target></ban><ban><target>three.p2pchat.test</target></ban></bans>\n",
    );
    let (_m, manager) = connmgr(&["--push-interval", "0"]);
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
    ]);
    cmd.arg(&resolv).arg(bin("servant"));
    cmd.args(["--config", config.to_str().unwrap(), "--headless"]);
    cmd.args(["--connmgr", &manager.to_string(), "--bind", "127.0.87.2"]);
    let s = Daemon::spawn_command(cmd);
    let chat = s.listening_addr();
    let _listed = listed_as("127.0.87.9", manager);
    s.wait_for("peers: 2");
    let mut buf = [0u8; 512];
    dns.set_read_timeout(Some(DEADLINE)).unwrap();
    dns.recv(&mut buf)
        .expect("the servant asked the dead resolver");
    let mut peer = connect_from("127.0.87.9", chat);
    let _ = peer.write_all(b"from an unresolved address\n");
    drop(peer);
    s.wait_for("banned host names are still being resolved");
    assert_eq!(
        s.count("cannot resolve"),
        0,
        "listening came first:\n{}",
        s.log_text()
    );
    assert_eq!(s.count("resolving banned host names"), 1);
    assert!(s.stdout_lines_within(Duration::from_millis(300)).is_empty());
    // A reload that drops the names while they are still pending lets peers in.
    std::fs::write(&config, "<config>\n</config>\n").unwrap();
    s.signal(libc::SIGHUP);
    s.wait_for("no banned host names left to look up; accepting connections");
    let mut peer = connect_from("127.0.87.9", chat);
    peer.write_all(b"in at last\n").unwrap();
    drop(peer);
    assert_eq!(s.stdout_line().as_deref(), Some("in at last"));
    let _ = std::fs::remove_file(resolv);
}

/// Class 8: settings that make no sense are refused with the place and a reason.
#[test]
fn nonsense_settings_are_refused_with_the_place() {
    let (connmgr, servant) = (bin("connmgr"), bin("servant"));
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let port0 = config_file(
        "port0",
        "<connectionmgr>127.0.0.1</connectionmgr>\n<port>0</port>\n",
    );
    let (code, err) = run(&servant, &["--config", port0.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:3: <port>", port0.display())),
        "{err}"
    );
    for (program, args, says) in [
        (
            &connmgr,
            &["--max-servants", "0"][..],
            "--max-servants: must be at least 1",
        ),
        (
            &connmgr,
            &["--max-per-address", "0"],
            "--max-per-address: must be at least 1",
        ),
        (
            &servant,
            &["--poll-interval", "1"],
            "--poll-interval: must be at least 100",
        ),
        (
            &servant,
            &["--max-peers", "0"],
            "--max-peers: must be at least 1",
        ),
    ] {
        let (code, err) = run(program, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Class 8, descriptors: a servant with 256 of them and 300 idle peers. The one
/// silent the longest makes room, so a real peer's line is shown at once, not
/// after the idle peers time out (30 s).
#[test]
fn with_few_descriptors_idle_peers_do_not_lock_real_ones_out() {
    raise_fd_limit();
    let (_m, manager) = connmgr(&["--push-interval", "0"]);
    let config = config_file("fds", "");
    let mut cmd = Command::new(bin("servant"));
    cmd.args(["--config", config.to_str().unwrap(), "--headless"]);
    cmd.args(["--connmgr", &manager.to_string(), "--bind", "127.0.88.2"]);
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let s = Daemon::spawn_command(cmd);
    let chat = s.listening_addr();
    let _listed = listed_as("127.0.88.3", manager);
    s.wait_for("peers: 2");
    let idle: Vec<TcpStream> = (0..300)
        .map(|k| connect_from(&format!("127.0.88.{}", 10 + k / 30), chat))
        .collect();
    s.wait_for("the most at once");
    let mut real = connect_from("127.0.88.3", chat);
    real.write_all(b"a real line\n").unwrap();
    drop(real);
    shows(&s, "a real line");
    drop(idle);
}
