//! Readers that stall or leave early: a client that half-closes with answers still
//! queued, a log pipe nobody reads, a chat stdout nobody reads. Real processes,
//! real pipes and sockets; every wait has a deadline.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{bin, client, connmgr, entries, raise_fd_limit, read_doc, Daemon, DEADLINE};
use p2pchat_harness::{read_line_until, Process, Spawn, LISTENING};

const END: &[u8] = b"</peers>\r\n";

/// The count in a `[N lines lost: ...]` or `... N lines lost: ...` line.
fn lost_in(line: &str) -> Option<u64> {
    let before = line.split(" lines lost: ").next()?;
    if before.len() == line.len() {
        return None;
    }
    before
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Reads lines (`next`, given the time left) until `shown` (lines matching) plus
/// the losses reported add up to `total`; returns the losses reported. Panics at
/// the deadline with the counts.
fn account_for(
    next: impl Fn(Duration) -> std::io::Result<String>,
    shown: impl Fn(&str) -> bool,
    total: u64,
) -> u64 {
    let (mut seen, mut lost) = (0u64, 0u64);
    let end = Instant::now() + DEADLINE;
    while seen + lost < total {
        let left = end.saturating_duration_since(Instant::now());
        let Ok(line) = next(left) else {
            panic!("{seen} lines shown and {lost} reported lost, of {total}");
        };
        if let Some(n) = lost_in(&line) {
            lost += n;
        } else if shown(&line) {
            seen += 1;
        }
    }
    assert_eq!(seen + lost, total, "more lines than were written");
    lost
}

#[test]
fn a_half_close_after_eight_requests_gets_all_eight_documents_of_10000_servants() {
    raise_fd_limit();
    let (_m, addr) = connmgr(&[
        "--max-servants",
        "20000",
        "--max-per-address",
        "20000",
        "--push-interval",
        "0",
    ]);
    let _servants: Vec<TcpStream> = (0..10_000)
        .map(|k| TcpStream::connect(addr).unwrap_or_else(|e| panic!("servant {k}: {e}")))
        .collect();
    // A small receive buffer, so most of the 8 documents (~6.7 MB) is still queued
    // in the manager when it reads our FIN, as it is for `nc -N`.
    let asker = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    asker.set_recv_buffer_size(64 * 1024).unwrap();
    asker.connect(&addr.into()).unwrap();
    let mut asker: TcpStream = asker.into();
    asker.set_read_timeout(Some(DEADLINE)).unwrap();
    asker.write_all(&b"needs peer list\n".repeat(8)).unwrap();
    asker.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    asker
        .read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("after {} bytes: {e}", got.len()));
    let docs: Vec<&[u8]> = got.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(
        docs.len(),
        8,
        "{} bytes in {} pieces",
        got.len(),
        docs.len()
    );
    for (k, doc) in docs.iter().enumerate() {
        assert!(doc.ends_with(END), "document {k} is cut short");
        let peers = entries(std::str::from_utf8(doc).unwrap());
        assert_eq!(peers.len(), 10_001, "document {k}");
        assert_eq!(peers.iter().filter(|p| p.2).count(), 1, "document {k}");
    }
}

/// connmgr at its default log level, its stderr a pipe read only up to the
/// readiness line; returns it (its stderr unread from there on) and its address.
fn connmgr_with_unread_log() -> (Process, SocketAddr) {
    let mut m = Spawn::new(bin("connmgr"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--push-interval", "0"])
        .ignore_stdout()
        .unread_stderr()
        .start()
        .unwrap();
    let log = m.child.stderr.as_mut().unwrap();
    let ready = read_line_until(log, LISTENING, DEADLINE).unwrap();
    let addr = ready.rsplit(LISTENING).next().unwrap().trim();
    (m, addr.parse().unwrap())
}

/// Connects and closes `n` times, each connect within the deadline.
fn cycles(addr: SocketAddr, n: usize) {
    for k in 0..n {
        let s = TcpStream::connect_timeout(&addr, DEADLINE)
            .unwrap_or_else(|e| panic!("cycle {k}: {e}: the manager stopped accepting"));
        drop(s);
    }
}

#[test]
fn a_log_nobody_reads_costs_lines_counted_when_it_drains_never_the_manager() {
    let (mut m, addr) = connmgr_with_unread_log();
    // Two log lines a cycle, ~250 bytes: the pipe's 64 KiB fill after ~260 cycles.
    cycles(addr, 2_000);
    let mut asker = client(addr);
    asker
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    asker.write_all(b"needs peer list\n").unwrap();
    let doc = read_doc(&mut asker);
    assert_eq!(entries(&doc).iter().filter(|p| p.2).count(), 1, "{doc}");
    drop(asker);
    // Past what the 1 MiB queue holds as well: lines must now be dropped.
    cycles(addr, 6_000);
    // The reader comes back: every joined/left line is either there or counted.
    m.follow_stderr();
    let total = 2 * (2_000 + 1 + 6_000);
    let logged = |l: &str| l.contains("] joined: ") || l.contains("] left: ");
    let lost = account_for(|left| m.wait_for("", left), logged, total);
    assert!(lost > 0, "8,000 cycles fit in the queue and the pipe?");
}

/// A servant on `bind` whose stdout is a pipe nobody reads; its stderr is followed.
fn servant_with_unread_stdout(manager: SocketAddr, bind: &str) -> Process {
    let manager = manager.to_string();
    Spawn::new(bin("servant"))
        .args(["--connmgr", &manager, "--bind", bind, "--name", "alice"])
        .args(["--poll-interval", "100"])
        .unread_stdout()
        // Every line of the flood, once read: the accounting must see each.
        .keep(1 << 20)
        .start()
        .unwrap()
}

/// Waits for a log line containing `pattern`.
fn logged(log: &Process, pattern: &str) -> String {
    log.wait_for(pattern, DEADLINE)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits for a log line containing `a` and one containing `b`, in either order.
fn logged_both(log: &Process, a: &str, b: &str) -> (String, String) {
    let (mut first, mut second) = (None, None);
    let end = Instant::now() + DEADLINE;
    while first.is_none() || second.is_none() {
        let left = end.saturating_duration_since(Instant::now());
        match log.wait_for("", left) {
            Ok(line) if first.is_none() && line.contains(a) => first = Some(line),
            Ok(line) if second.is_none() && line.contains(b) => second = Some(line),
            Ok(_) => {}
            Err(_) => panic!("never logged {a:?} and {b:?}"),
        }
    }
    (first.unwrap(), second.unwrap())
}

/// A servant showing its chat on a followed stdout.
fn servant(manager: SocketAddr, bind: &str, name: &str) -> Daemon {
    let manager = manager.to_string();
    let args = ["--connmgr", &manager, "--bind", bind, "--name", name];
    Daemon::spawn(
        &bin("servant"),
        &[&args[..], &["--poll-interval", "100"]].concat(),
    )
}

/// Waits for `d` to show `line` on stdout.
fn shows(d: &Daemon, line: &str) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if d.stdout_line().as_deref() == Some(line) {
            return;
        }
    }
    panic!("{} never showed {line:?}", d.name());
}

#[test]
fn a_chat_stdout_nobody_reads_costs_lines_counted_when_it_drains_never_the_servant() {
    // No pushes: the servant learns of newcomers only by polling. A servant that
    // stops polling for 3 s is dropped.
    let (m, manager) = connmgr(&["--push-interval", "0", "--idle-timeout", "3"]);
    let mut alice = servant_with_unread_stdout(manager, "127.0.91.2");
    let bob = servant(manager, "127.0.91.3", "bob");
    bob.listening_addr();
    // Whichever comes first: bob may have joined before alice's first list.
    let (chat_port, _) = logged_both(&alice, "listening on 127.0.91.2:", "peers: 2 ");
    let chat: SocketAddr = chat_port
        .rsplit("listening on ")
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // A peer sends alice 20 MB of chat, which her stdout cannot take.
    const LINES: u64 = 200_000;
    let flood = std::thread::spawn(move || -> std::io::Result<()> {
        // From bob's address: lines from an address on no list are not shown.
        let mut s = common::connect_from("127.0.91.3", chat);
        s.set_write_timeout(Some(DEADLINE))?;
        let line = format!("{}\n", "f".repeat(104));
        let batch = line.repeat(1_000);
        for _ in 0..LINES / 1_000 {
            s.write_all(batch.as_bytes())?;
        }
        s.shutdown(Shutdown::Write)
    });
    // Meanwhile her own lines still go out.
    alice.type_line("during the flood").unwrap();
    shows(&bob, "alice: during the flood");
    flood
        .join()
        .unwrap()
        .expect("alice stopped reading her peer");

    // She still polls: she learns of carol without a push, and reaches her.
    let carol = servant(manager, "127.0.91.4", "carol");
    carol.listening_addr();
    logged(&alice, "peers: 3 ");
    alice.type_line("after the flood").unwrap();
    shows(&carol, "alice: after the flood");
    shows(&bob, "alice: after the flood");
    assert_eq!(m.count("silent for"), 0, "{}", m.log_text());

    // Her stdout is read at last: each line is there, or counted where it is missing.
    alice.follow_stdout();
    // Named by the list once it carries bob's name; as sent before that (pushes
    // are off, so alice may still have the list from before bob said his name).
    let flood_or_own =
        |l: &str| l.starts_with("bob: ffff") || l.starts_with("ffff") || l.starts_with("alice: ");
    let lost = account_for(|left| alice.stdout_line(left), flood_or_own, LINES + 2);
    assert!(lost > 0, "20 MB fit in a pipe and a 1 MiB queue?");
}
