//! The resolver against DNS servers played by threads on loopback sockets.

use super::*;
use std::net::UdpSocket;
use std::time::Duration;

/// How one pretend server answers a question: by name and type, the reply's
/// rcode and addresses; `None` leaves it unanswered.
type Script = fn(&str, u16) -> Option<(u8, Vec<IpAddr>)>;

/// A pretend DNS server answering `questions` questions by `script`.
fn server(script: Script, questions: usize) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..questions {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return;
            };
            let question = dns::question(&buf[..n]).unwrap();
            if let Some((rcode, addrs)) = script(&question.qname, question.qtype) {
                let reply = dns::answer(&buf[..n], rcode, &addrs).unwrap();
                socket.send_to(&reply, from).unwrap();
            }
        }
    });
    addr
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn settings(servers: &[SocketAddr], search: &[&str]) -> Settings {
    Settings {
        hosts: Hosts::parse("192.0.2.7 listed.example listed\n"),
        conf: ResolvConf {
            nameservers: servers.to_vec(),
            search: search.iter().map(|s| s.to_string()).collect(),
            ndots: 1,
            timeout: Duration::from_millis(300),
            attempts: 1,
        },
    }
}

/// Scripts: who answers what.
fn knows_manager(name: &str, qtype: u16) -> Option<(u8, Vec<IpAddr>)> {
    match (name, qtype) {
        ("manager.example", dns::A) => Some((0, vec![ip("192.0.2.1")])),
        ("manager.example", dns::AAAA) => Some((0, vec![ip("2001:db8::1")])),
        _ => Some((3, vec![])),
    }
}

fn fails(_: &str, _: u16) -> Option<(u8, Vec<IpAddr>)> {
    Some((2, vec![]))
}

fn silent(_: &str, _: u16) -> Option<(u8, Vec<IpAddr>)> {
    None
}

#[test]
fn literals_hosts_and_localhost_need_no_server() {
    let s = settings(&[], &[]);
    let names = ["192.0.2.9", "[2001:db8::9]", "LISTED", "localhost"].map(String::from);
    let batch = Batch::start(&s, &names, Instant::now()).unwrap();
    assert!(batch.is_done());
    assert_eq!(batch.fd(), None, "no socket was opened");
    let got: Vec<Found> = batch.outcomes().map(|(_, f)| f.unwrap().clone()).collect();
    assert_eq!(
        got,
        [
            Ok(vec![ip("192.0.2.9")]),
            Ok(vec![ip("2001:db8::9")]),
            Ok(vec![ip("192.0.2.7")]),
            Ok(vec![ip("127.0.0.1"), ip("::1")]),
        ]
    );
}

#[test]
fn a_name_gets_its_a_and_aaaa_records() {
    let s = settings(&[server(knows_manager, 2)], &[]);
    let found = lookup_blocking(&s, "Manager.Example");
    assert_eq!(found, Ok(vec![ip("192.0.2.1"), ip("2001:db8::1")]));
}

#[test]
fn search_domains_are_tried_until_one_exists() {
    let s = settings(&[server(knows_manager, 4)], &["nope.example", "example"]);
    assert_eq!(
        lookup_blocking(&s, "manager"),
        Ok(vec![ip("192.0.2.1"), ip("2001:db8::1")])
    );
}

#[test]
fn a_silent_or_failing_server_passes_the_question_on() {
    let s = settings(
        &[
            server(silent, 2),
            server(fails, 2),
            server(knows_manager, 2),
        ],
        &[],
    );
    let start = Instant::now();
    let found = lookup_blocking(&s, "manager.example");
    assert_eq!(found, Ok(vec![ip("192.0.2.1"), ip("2001:db8::1")]));
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "waited for the silent one"
    );
}

#[test]
fn a_missing_name_says_so_and_a_dead_resolver_says_why() {
    let s = settings(&[server(knows_manager, 2)], &[]);
    assert_eq!(
        lookup_blocking(&s, "nobody.example"),
        Err("no such host".into())
    );
    let s = settings(&[server(fails, 2)], &[]);
    let why = lookup_blocking(&s, "manager.example").unwrap_err();
    assert!(why.contains("SERVFAIL"), "{why}");
    let s = settings(&[server(silent, 2)], &[]);
    let why = lookup_blocking(&s, "manager.example").unwrap_err();
    assert!(why.starts_with("no reply from 127.0.0.1"), "{why}");
}

#[test]
fn replies_from_elsewhere_or_for_other_questions_are_ignored() {
    // The real server answers late; a liar on another port answers at once with
    // the right ids (it sees the questions), and is not believed.
    let real = UdpSocket::bind("127.0.0.1:0").unwrap();
    real.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let at = real.local_addr().unwrap();
    std::thread::spawn(move || {
        let liar = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 512];
        let mut asked = Vec::new();
        for _ in 0..2 {
            let (n, from) = real.recv_from(&mut buf).unwrap();
            let lie = dns::answer(&buf[..n], 0, &[ip("203.0.113.66")]).unwrap();
            liar.send_to(&lie, from).unwrap();
            asked.push((buf[..n].to_vec(), from));
        }
        std::thread::sleep(Duration::from_millis(50));
        for (query, from) in asked {
            let truth = match dns::question(&query).unwrap().qtype {
                dns::A => ip("192.0.2.1"),
                _ => ip("2001:db8::1"),
            };
            real.send_to(&dns::answer(&query, 0, &[truth]).unwrap(), from)
                .unwrap();
        }
    });
    let s = settings(&[at], &[]);
    let found = lookup_blocking(&s, "manager.example").unwrap();
    assert_eq!(found, [ip("192.0.2.1"), ip("2001:db8::1")]);
}

#[test]
fn a_batch_runs_many_names_over_one_socket_without_blocking() {
    let s = settings(&[server(knows_manager, 4)], &[]);
    let names = ["manager.example", "nobody.example", "listed"].map(String::from);
    let mut batch = Batch::start(&s, &names, Instant::now()).unwrap();
    let fd = batch.fd().expect("a socket for the two DNS names");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !batch.is_done() && Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        batch.readable(Instant::now());
        batch.expire(Instant::now());
    }
    let got: Vec<(&str, Found)> = batch
        .outcomes()
        .map(|(n, f)| (n, f.unwrap().clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "manager.example",
                Ok(vec![ip("192.0.2.1"), ip("2001:db8::1")])
            ),
            ("nobody.example", Err("no such host".into())),
            ("listed", Ok(vec![ip("192.0.2.7")])),
        ]
    );
}

#[test]
fn a_truncated_reply_passes_the_question_to_the_next_server() {
    let cutter = UdpSocket::bind("127.0.0.1:0").unwrap();
    cutter
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let at = cutter.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..2 {
            let (n, from) = cutter.recv_from(&mut buf).unwrap();
            let mut cut = dns::answer(&buf[..n], 0, &[]).unwrap();
            cut[2] |= 0x02; // TC
            cutter.send_to(&cut, from).unwrap();
        }
    });
    let s = settings(&[at, server(knows_manager, 2)], &[]);
    assert_eq!(
        lookup_blocking(&s, "manager.example"),
        Ok(vec![ip("192.0.2.1"), ip("2001:db8::1")])
    );
}

fn a_only_then_servfail(name: &str, qtype: u16) -> Option<(u8, Vec<IpAddr>)> {
    match (name, qtype) {
        ("manager.example", dns::A) => Some((0, vec![ip("192.0.2.1")])),
        ("manager.example", _) => Some((2, vec![])),
        _ => Some((3, vec![])),
    }
}

fn broken_domain(name: &str, qtype: u16) -> Option<(u8, Vec<IpAddr>)> {
    match name {
        "manager.broken" => Some((2, vec![])),
        _ => knows_manager(name, qtype),
    }
}

#[test]
fn what_one_type_found_survives_the_other_failing() {
    let s = settings(&[server(a_only_then_servfail, 2)], &[]);
    assert_eq!(
        lookup_blocking(&s, "manager.example"),
        Ok(vec![ip("192.0.2.1")])
    );
}

#[test]
fn a_search_domain_whose_server_fails_gives_way_to_the_next() {
    let s = settings(&[server(broken_domain, 4)], &["broken", "example"]);
    assert_eq!(
        lookup_blocking(&s, "manager"),
        Ok(vec![ip("192.0.2.1"), ip("2001:db8::1")])
    );
}

#[test]
fn a_server_that_cannot_be_sent_to_is_skipped_at_once() {
    // Sending to the broadcast address without SO_BROADCAST fails (EACCES).
    let broadcast: SocketAddr = "255.255.255.255:53".parse().unwrap();
    let mut s = settings(&[broadcast], &[]);
    s.conf.timeout = Duration::from_secs(30);
    let start = Instant::now();
    let why = lookup_blocking(&s, "manager.example").unwrap_err();
    assert!(why.starts_with("cannot ask 255.255.255.255"), "{why}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "not after the timeout"
    );
}

#[test]
fn zoned_ipv6_literals_keep_their_zone() {
    let lo = scoped_literal("fe80::1%lo", 85).expect("the loopback interface");
    assert!(matches!(lo, SocketAddr::V6(v6) if v6.scope_id() > 0 && v6.port() == 85));
    let numbered = scoped_literal("[fe80::1%7]", 85).unwrap();
    assert!(matches!(numbered, SocketAddr::V6(v6) if v6.scope_id() == 7));
    assert_eq!(scoped_literal("fe80::1%no-such-interface", 85), None);
    assert_eq!(scoped_literal("192.0.2.1", 85), None);
    assert_eq!(
        scoped_literal("fe80::1", 85),
        None,
        "no zone: an ordinary lookup"
    );
}
