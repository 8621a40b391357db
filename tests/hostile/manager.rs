//! One host against the connection manager, and the manager itself going away.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{self, bin, connect_from, connmgr, read_doc, Daemon, DEADLINE};
use crate::fakes::servant;

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
