//! Hostile peers and a lying manager against one servant: escapes in text,
//! unfinished lines, a list that lies, a flood.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{bin, client, connect_from, connmgr, raise_fd_limit, DEADLINE};
use crate::fakes::{config_file, document, free_port, listed_as, rss, servant, shows, FakeManager};
use p2pchat_harness::Spawn;

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
        // Lines, not connections: the servant keeps its link for the next line.
        for c in target.incoming().flatten() {
            for _ in std::io::BufRead::lines(std::io::BufReader::new(c)).map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
            }
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
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the line, once");
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
    let (mut floods, mut lost_lines, mut unread) = (0, 0, 0);
    let mut probe_at = Vec::new();
    let end = Instant::now() + DEADLINE * 3;
    while probe_at.len() < 20 && Instant::now() < end {
        let Ok(line) = s.stdout_line(DEADLINE) else {
            break;
        };
        match line.as_str() {
            "f" => floods += 1,
            l if l.starts_with("probe ") => probe_at.push((Instant::now(), floods)),
            l if l.contains("lines lost") => {
                lost_lines += 1;
                unread += usize::from(l.contains("stdout was not read fast enough"));
            }
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
    // The flooder's lines are rationed; the probes never are. A probe may still
    // be dropped with everything else when this test reads stdout slower than the
    // servant writes it (a loaded host): the servant then says so, and counts.
    assert!(
        probe_at.len() == 20 || unread > 0,
        "lines lost without a note:\n{}",
        s.log_text()
    );
    let during = probe_at.iter().filter(|(_, f)| *f < FLOOD).count();
    assert!(during > 0, "every other line waited for the whole flood");
}
