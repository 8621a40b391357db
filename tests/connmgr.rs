//! The real `connmgr`, driven over TCP the way servants, telnet and netcat drive it.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{bin, client, connmgr, entries, read_doc, Daemon, DEADLINE};
use p2pchat_harness::{read_line_until, Spawn, LISTENING};

/// Joins, asks for the list, and returns the stream with its `(port, offset)`.
fn join(addr: std::net::SocketAddr) -> (TcpStream, u16, usize) {
    let mut s = client(addr);
    s.write_all(b"needs peer list\r\n").unwrap();
    let doc = read_doc(&mut s);
    let me: Vec<_> = entries(&doc).into_iter().filter(|e| e.2).collect();
    assert_eq!(me.len(), 1, "exactly one entry is me: {doc}");
    (s, me[0].0, me[0].1)
}

/// Reads until the peer closes; returns what came, or panics on timeout.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("expected the manager to close the connection: {e}"),
        }
    }
}

#[test]
fn first_and_second_servant_get_the_articles_ports_and_offsets() {
    let (_m, addr) = connmgr(&["--push-interval", "0"]);
    let (_a, port_a, off_a) = join(addr);
    let (mut b, port_b, off_b) = join(addr);
    assert_eq!((port_a, off_a), (2224, 1));
    assert_eq!((port_b, off_b), (2225, 2));
    b.write_all(b"needs peer list\n").unwrap();
    assert_eq!(
        entries(&read_doc(&mut b)),
        vec![(2224, 1, false), (2225, 2, true)]
    );
}

#[test]
fn the_join_is_logged_as_the_articles_telnet_test_shows_it() {
    let (m, addr) = connmgr(&[]);
    let _a = client(addr);
    let line = m.wait_for("joined:");
    assert!(
        line.contains(
            "<peer><ip>127.0.0.1</ip><port>2224</port><offset>1</offset><me>FALSE</me></peer>"
        ),
        "{line}"
    );
}

#[test]
fn a_leave_removes_the_entry_and_pushes_the_new_list() {
    let (m, addr) = connmgr(&["--push-interval", "50"]);
    let (mut a, _, _) = join(addr);
    let (b, _, _) = join(addr);
    // a has asked before, so b's join is pushed to it.
    assert_eq!(
        entries(&read_doc(&mut a)),
        vec![(2224, 1, true), (2225, 2, false)]
    );
    drop(b);
    m.wait_for("left: offset 2");
    assert_eq!(entries(&read_doc(&mut a)), vec![(2224, 1, true)]);
}

#[test]
fn a_servant_that_never_asked_gets_no_pushes() {
    let (m, addr) = connmgr(&["--push-interval", "10"]);
    let mut quiet = client(addr);
    m.wait_for("joined:");
    let (_a, _, _) = join(addr);
    m.wait_for("joined:");
    quiet
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    let got = quiet.read(&mut buf);
    assert!(got.is_err(), "unexpected bytes: {got:?}");
}

#[test]
fn the_lowest_free_offset_is_reused_while_the_port_keeps_counting() {
    let (m, addr) = connmgr(&["--push-interval", "0"]);
    let (a, _, _) = join(addr);
    let (b, _, _) = join(addr);
    let (_c, _, _) = join(addr);
    drop(b);
    m.wait_for("left: offset 2");
    drop(a);
    m.wait_for("left: offset 1");
    let (mut d, port_d, off_d) = join(addr);
    assert_eq!((port_d, off_d), (2227, 1), "lowest free offset, next port");
    let (_e, port_e, off_e) = join(addr);
    assert_eq!((port_e, off_e), (2228, 2));
    d.write_all(b"needs peer list\n").unwrap();
    // Document order is join order: c, then d, then e.
    assert_eq!(
        entries(&read_doc(&mut d)),
        vec![(2226, 3, false), (2227, 1, true), (2228, 2, false)]
    );
}

#[test]
fn a_bare_request_as_the_vb_servant_sends_it() {
    let (_m, addr) = connmgr(&[]);
    let mut s = client(addr);
    s.write_all(b"needs peer list").unwrap();
    assert_eq!(entries(&read_doc(&mut s)), vec![(2224, 1, true)]);
}

#[test]
fn telnet_crlf_and_netcat_lf() {
    let (_m, addr) = connmgr(&["--push-interval", "0"]);
    let mut s = client(addr);
    s.write_all(b"needs peer list\r\n").unwrap();
    read_doc(&mut s);
    s.write_all(b"needs peer list\n").unwrap();
    read_doc(&mut s);
}

#[test]
fn a_request_split_across_packets() {
    let (m, addr) = connmgr(&[]);
    let mut s = client(addr);
    s.set_nodelay(true).unwrap();
    s.write_all(b"needs pe").unwrap();
    m.wait_for("joined:");
    // Half a request gets no answer (and the wait lets the manager read the half alone).
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(s.read(&mut [0u8; 16]).is_err(), "answered half a request");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"er list\r\n").unwrap();
    assert_eq!(entries(&read_doc(&mut s)), vec![(2224, 1, true)]);
}

#[test]
fn several_requests_in_one_packet_get_one_answer_each() {
    let (_m, addr) = connmgr(&["--push-interval", "0"]);
    let mut s = client(addr);
    s.write_all(b"needs peer list\r\nneeds peer list\nneeds peer list")
        .unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while all.windows(8).filter(|w| w == b"</peers>").count() < 3 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        all.extend_from_slice(&buf[..n]);
    }
    assert_eq!(all.windows(8).filter(|w| w == b"</peers>").count(), 3);
}

#[test]
fn a_flood_of_requests_is_answered_in_full() {
    let (_m, addr) = connmgr(&["--push-interval", "0"]);
    let mut s = client(addr);
    let n = 5000;
    let requests = b"needs peer list\n".repeat(n);
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(&requests).unwrap())
    };
    let one = b"<peers><peer><ip>127.0.0.1</ip><port>2224</port><offset>1</offset><me>TRUE</me></peer></peers>\r\n";
    let mut got = vec![0u8; one.len() * n];
    s.read_exact(&mut got).unwrap();
    assert!(got.chunks(one.len()).all(|c| c == one));
    writer.join().unwrap();
}

#[test]
fn other_lines_are_logged_like_the_msgbox_and_the_connection_stays() {
    let (m, addr) = connmgr(&[]);
    let mut s = client(addr);
    s.write_all(b"hello manager\r\n\x00\xff garbage \x07\n")
        .unwrap();
    let line = m.wait_for("sent: hello manager to the connection manager");
    assert!(line.contains("1 sent:"), "{line}");
    m.wait_for("to the connection manager");
    s.write_all(b"needs peer list\n").unwrap();
    assert_eq!(entries(&read_doc(&mut s)).len(), 1);
}

#[test]
fn an_oversized_line_closes_that_connection_only() {
    let (m, addr) = connmgr(&["--push-interval", "0"]);
    let (mut good, _, _) = join(addr);
    let mut bad = client(addr);
    let _ = bad.write_all(&vec![b'x'; 10_000]);
    m.wait_for("exceeds the limit of 4096");
    read_to_close(&mut bad);
    m.wait_for("left: offset 2");
    good.write_all(b"needs peer list\n").unwrap();
    assert_eq!(entries(&read_doc(&mut good)), vec![(2224, 1, true)]);
}

#[test]
fn connections_past_max_servants_are_refused_with_a_line() {
    let (m, addr) = connmgr(&["--max-servants", "3", "--push-interval", "0"]);
    let held: Vec<_> = (0..3).map(|_| join(addr)).collect();
    for _ in 0..20 {
        let mut extra = client(addr);
        let reply = read_to_close(&mut extra);
        assert_eq!(reply, b"max number of servants reached\r\n");
    }
    m.wait_for("max number of servants (3) reached");
    assert_eq!(m.count("joined:"), 3);
    drop(held);
    for _ in 0..3 {
        m.wait_for("left:");
    }
    let (_s, port, offset) = join(addr);
    assert_eq!(
        (port, offset),
        (2227, 1),
        "the refused connection got no port"
    );
}

#[test]
fn ports_wrap_past_65535_skipping_ports_still_held() {
    let (m, addr) = connmgr(&["--first-port", "65534", "--push-interval", "0"]);
    let (a, port_a, _) = join(addr);
    let (_b, port_b, _) = join(addr);
    assert_eq!((port_a, port_b), (65534, 65535));
    drop(a);
    m.wait_for("left: offset 1");
    let (_c, port_c, _) = join(addr);
    assert_eq!(port_c, 65534, "wrapped to the first port");
    // 65535 and 65534 are both held now: nothing is left to give.
    let mut d = client(addr);
    assert_eq!(read_to_close(&mut d), b"no free servant port\r\n");
}

#[test]
fn a_silent_servant_is_dropped_after_the_idle_timeout() {
    let (m, addr) = connmgr(&["--idle-timeout", "1", "--push-interval", "0"]);
    let mut silent = client(addr);
    m.wait_for("joined:");
    m.wait_for("silent for 1s, closing");
    m.wait_for("left: offset 1");
    assert_eq!(read_to_close(&mut silent), b"");
}

#[test]
fn ipv6_and_mapped_ipv4_addresses() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    }
    let m = Daemon::spawn(&bin("connmgr"), &["--bind", "::", "--port", "0"]);
    let port = m.listening_addr().port();
    let mut v6 = client(format!("[::1]:{port}").parse().unwrap());
    v6.write_all(b"needs peer list\n").unwrap();
    let doc = read_doc(&mut v6);
    assert!(doc.contains("<ip>::1</ip>"), "{doc}");
    let mut v4 = client(format!("127.0.0.1:{port}").parse().unwrap());
    v4.write_all(b"needs peer list\n").unwrap();
    let doc = read_doc(&mut v4);
    assert!(
        doc.contains("<ip>127.0.0.1</ip>") && !doc.contains("ffff"),
        "{doc}"
    );
}

#[test]
fn sigterm_shuts_it_down_cleanly() {
    let (mut m, addr) = connmgr(&[]);
    let (_a, _, _) = join(addr);
    m.signal(libc::SIGTERM);
    m.wait_for("shut down with 1 servant connected");
    assert_eq!(m.wait_exit(), Some(0));
}

#[test]
fn a_bad_config_file_is_rejected_with_file_line_and_reason() {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("connmgr-bad-{}.xml", std::process::id()));
    std::fs::write(
        &path,
        "<connmgr>\n  <port>85</port>\n  <maxservants>lots</maxservants>\n</connmgr>\n",
    )
    .unwrap();
    let out = Command::new(bin("connmgr"))
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3: <maxservants> must be a whole number",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn bad_flags_say_which_and_exit_2() {
    for (args, says) in [
        (&["--port", "eighty"][..], "--port: must be a port number"),
        (&["--bogus"][..], "--bogus: unknown argument"),
        (
            &["--log-level", "loud"][..],
            "--log-level: \"loud\" is not a log level",
        ),
        (
            &["--first-port", "0"][..],
            "--first-port: the first servant port",
        ),
    ] {
        let out = Command::new(bin("connmgr")).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn a_port_in_use_is_explained() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(bin("connmgr"))
        .args(["--bind", "127.0.0.1", "--port", &port])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot listen on 127.0.0.1:") && err.contains("another program"),
        "{err}"
    );
}

#[test]
fn help_documents_every_option() {
    let out = Command::new(bin("connmgr")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--bind",
        "--port",
        "--first-port",
        "--max-servants",
        "--idle-timeout",
        "--push-interval",
        "--log-level",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn a_half_closed_client_still_gets_its_answer_then_leaves() {
    let (m, addr) = connmgr(&["--push-interval", "0"]);
    let mut s = client(addr);
    s.write_all(b"needs peer list").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    // The manager answers what arrived before the close, then drops the servant.
    let got = read_to_close(&mut s);
    m.wait_for("left: offset 1");
    assert!(
        got.ends_with(b"<me>TRUE</me></peer></peers>\r\n"),
        "{got:?}"
    );
}

#[test]
fn a_push_round_too_big_for_one_turn_reaches_every_subscriber() {
    // 120 subscribers x ~10 KB documents is more than one turn's share of pushes,
    // so the round is spread over several loop turns.
    let (m, addr) = connmgr(&["--push-interval", "20", "--max-per-address", "200"]);
    let mut subs: Vec<TcpStream> = (0..120).map(|_| join(addr).0).collect();
    let (_last, last_port, _) = join(addr);
    for (k, s) in subs.iter_mut().enumerate() {
        // Pushes arrive back to back; read documents until one lists the newest servant.
        loop {
            let peers = entries(&read_doc(s));
            if peers.iter().any(|p| p.0 == last_port) {
                assert_eq!(peers.len(), 121, "subscriber {k}");
                assert_eq!(peers.iter().filter(|p| p.2).count(), 1);
                break;
            }
        }
    }
    assert_eq!(m.count("joined:"), 121);
}

#[test]
fn running_out_of_file_descriptors_pauses_accepting_instead_of_spinning() {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin("connmgr"));
    cmd.args(["--bind", "127.0.0.1", "--port", "0", "--push-interval", "0"]);
    // SAFETY: setrlimit is async-signal-safe; this runs in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 24,
                rlim_max: 24,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let m = Daemon::spawn_command(cmd);
    let addr = m.listening_addr();
    // More connections than descriptors: the kernel queues them in the backlog.
    let mut held: Vec<TcpStream> = (0..40).map(|_| client(addr)).collect();
    m.wait_for("pausing accepts");
    let joined = m.count("joined:");
    assert!(joined < 24, "{joined} joined with 24 descriptors");
    // The manager still answers the servants it has.
    held[0].write_all(b"needs peer list\n").unwrap();
    assert_eq!(entries(&read_doc(&mut held[0])).len(), joined);
    // Spinning on EMFILE would log (and burn a core); the back-off retries quietly.
    let pid = m.pid();
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = cpu();
    // A measuring window, not a readiness wait: CPU used over half a second.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        cpu() - before < 25,
        "connmgr used {} ticks in 0.5 s while out of descriptors",
        cpu() - before
    );
    // As servants leave, the waiting connections are taken in.
    held.truncate(30);
    held.drain(..10);
    for _ in 0..10 {
        m.wait_for("left:");
    }
    m.wait_for_within("joined:", DEADLINE)
        .expect("a queued connection was accepted after descriptors freed up");
    assert!(m.count("pausing accepts") >= 1);
}

#[test]
fn an_oversized_line_closes_at_once_even_with_answers_still_queued() {
    let (m, addr) = connmgr(&["--push-interval", "0"]);
    let greedy = client(addr);
    // Thousands of answers the client does not read: output stays queued...
    let requests = b"needs peer list\n".repeat(50_000);
    let writer = {
        let mut w = greedy.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&requests);
            // ...then an endless line. Before the fix it was kept and re-read.
            let junk = vec![b'x'; 64 * 1024];
            for _ in 0..64 {
                if w.write_all(&junk).is_err() {
                    break;
                }
            }
        })
    };
    m.wait_for("exceeds the limit of 4096");
    m.wait_for("left: offset 1");
    let _ = greedy.shutdown(Shutdown::Both); // the manager may have closed it already
    writer.join().unwrap();
    assert_eq!(m.count("exceeds the limit"), 1, "{}", m.log_text());
}

#[test]
fn a_closed_log_pipe_does_not_take_it_down() {
    let mut m = Spawn::new(bin("connmgr"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--push-interval", "0"])
        .unread_stderr()
        .start()
        .unwrap();
    let mut log = m.child.stderr.take().unwrap();
    let ready = read_line_until(&mut log, LISTENING, DEADLINE).unwrap();
    let addr: std::net::SocketAddr = ready.rsplit(LISTENING).next().unwrap().parse().unwrap();
    drop(log); // whoever read the log has gone: every log line now meets EPIPE
    for _ in 0..3 {
        let mut s = client(addr);
        s.write_all(b"needs peer list\n").unwrap();
        // The previous client's close may not be handled yet, so count only our entry.
        let doc = entries(&read_doc(&mut s));
        assert_eq!(doc.iter().filter(|e| e.2).count(), 1, "{doc:?}");
    }
    assert!(m.child.try_wait().unwrap().is_none(), "connmgr exited");
}
