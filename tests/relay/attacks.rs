//! What the network does to a pull link, and what a relay can do to its puller,
//! with real servants in the namespaces: a link that dies without a word is pulled
//! again, a relay that forwards nothing is replaced, and an honest relay under
//! load keeps its puller.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::common::{self, DEADLINE};
use crate::world::{drain, World, SETTLE, VERDICT};
use p2pchat_harness::netns::{self, HOME_IPS, PUBLIC_IPS};

/// Runs `rules` through `nft -f -` in namespace `ns`.
fn nft(w: &World, ns: &str, rules: &str) {
    let mut child = w
        .net
        .exec(ns, "nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft: {rules}");
}

/// The local port of the home servant's established connection to `to`.
fn home_port_to(w: &World, to: &str) -> u16 {
    let (ip, port) = to.rsplit_once(':').unwrap();
    let out = w
        .net
        .exec(&w.net.home, "ss")
        .args(["-Htn", "state", "established", "dst", ip])
        .args(["dport", "=", &format!(":{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let ports: Vec<u16> = (text.split_whitespace())
        .filter_map(|a| a.strip_prefix(&format!("{}:", HOME_IPS[0])))
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(ports.len(), 1, "one pull link to {to}: {text}");
    ports[0]
}

/// Relay lines (`relaying for`, not `stopped relaying for`) servant `k` has logged.
fn served(w: &World, k: usize) -> usize {
    let log = w.servants[k].log_text();
    (log.lines())
        .filter(|l| l.contains("relaying for") && !l.contains("stopped relaying"))
        .count()
}

/// The pull link dies under nora without a FIN or a reset (a NAT that forgot the
/// mapping, a cable pulled between two routers): every packet of that one
/// connection is dropped, both ways, from then on. Nora must notice the silence,
/// pull again, and be served by the same relay within 20 s.
#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_puller_whose_link_dies_silently_is_served_again_within_20_s() {
    let mut w = World::new("silent", &[]);
    let (p1, p2, n) = w.pat_quinn_and_nora();
    let relay = w.type_until_relayed(n);
    let r = w.relaying(&relay);
    for k in [p1, p2, n] {
        drain(&w.servants[k]);
    }
    let local = home_port_to(&w, &relay);
    let (ip, port) = relay.rsplit_once(':').unwrap();
    let home = w.net.home.clone();
    nft(
        &w,
        &home,
        &format!(
            "table inet cut {{
  chain out {{ type filter hook output priority filter; ip daddr {ip} tcp dport {port} tcp sport {local} drop; }}
  chain in {{ type filter hook input priority filter; ip saddr {ip} tcp sport {port} tcp dport {local} drop; }}
}}
"
        ),
    );
    let cut = Instant::now();
    let end = cut + Duration::from_secs(20);
    while served(&w, r) < 2 {
        assert!(
            Instant::now() < end,
            "not served again 20 s after the link died; nora:\n{}\nrelay:\n{}",
            w.servants[n].log_text(),
            w.servants[r].log_text()
        );
        std::thread::sleep(Duration::from_millis(50)); // polling a log with a deadline
    }
    eprintln!(
        "served again {:.1} s after the link died",
        cut.elapsed().as_secs_f64()
    );
    assert_eq!(
        w.manager.count("lost 4 probes"),
        0,
        "the relay is not to blame"
    );
    w.everyone_hears_everyone_once(&[p1, p2, n], "after the silence");
}

/// A black hole: a raw client on the public segment at `ip` that says `can relay`,
/// keeps asking for the list, and accepts every connection to its port (dial-backs,
/// probes, pulls) and reads it, but never writes a byte. Sends its port, then runs
/// until `stop`.
fn black_hole(w: &World, ip: &'static str, stop: Arc<AtomicBool>) -> u16 {
    let (addr, public) = (w.addr, w.net.public.clone());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        netns::enter(&public).unwrap();
        let mut link = common::connect_from(ip, addr);
        link.set_read_timeout(Some(DEADLINE)).unwrap();
        link.write_all(b"can relay\nneeds peer list\n").unwrap();
        let port = (common::entries(&common::read_doc(&mut link)).into_iter())
            .find(|e| e.2)
            .unwrap()
            .0;
        let listener = TcpListener::bind((ip, port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        tx.send(port).unwrap();
        link.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut sink = [0u8; 65536];
        let mut asked = Instant::now();
        let mut taken: Vec<TcpStream> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if asked.elapsed() >= Duration::from_millis(200) {
                asked = Instant::now();
                if link.write_all(b"needs peer list\n").is_err() {
                    return;
                }
            }
            let _ = link.read(&mut sink);
            while let Ok((s, _)) = listener.accept() {
                s.set_nonblocking(true).unwrap();
                taken.push(s);
            }
            // Read everything, answer nothing; a closed one is let go.
            taken.retain_mut(|s| !matches!(s.read(&mut sink), Ok(0)));
        }
    });
    rx.recv_timeout(DEADLINE).expect("the black hole's port")
}

/// The relay nora is given forwards nothing: not its probes, not the chat. The
/// manager's probes find it out, nora is given a real servant instead within 30 s
/// of asking to be checked (22 s with the default probe settings), and hears lines
/// again.
#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_relay_that_forwards_nothing_is_replaced_within_30_s_and_lines_flow_again() {
    let mut w = World::new("hole", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let hole = format!(
        "{}:{}",
        PUBLIC_IPS[0],
        black_hole(&w, PUBLIC_IPS[0], stop.clone())
    );
    let n = w.home(0, "nora");
    w.wait(n, "peers: 2 (", DEADLINE);
    let asked = Instant::now();
    // The only candidate: nora is relayed through the black hole.
    assert_eq!(w.type_until_relayed(n), hole);
    let p = w.public(1, "pat");
    w.wait(p, "peers: 3 (", DEADLINE);
    let pat = crate::world::listen_addr(&w, p);
    // Nora pulls again from a relay that never says a word; wait for another one.
    let end = asked + Duration::from_secs(30);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let now = w.relayed(n, left);
        if now != hole {
            assert_eq!(now, pat, "{}", w.manager.log_text());
            break;
        }
    }
    eprintln!(
        "replaced {:.1} s after nora asked",
        asked.elapsed().as_secs_f64()
    );
    let dropped = w.wait_manager("lost 4 probes in a row", DEADLINE);
    assert!(dropped.contains(&hole), "{dropped}");
    w.wait(p, "relaying for", DEADLINE);
    for k in [p, n] {
        drain(&w.servants[k]);
    }
    w.everyone_hears_everyone_once(&[p, n], "past the hole");
    stop.store(true, Ordering::Relaxed);
}

/// An honest relay is not dropped for being busy: a line every 100 ms for 60 s
/// through the relay while the manager probes every 100 ms (every second once the
/// relay is proven), each probe given 2 s. Every line arrives once, the manager
/// changes no relay, and nora never pulls again.
#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn an_honest_relay_under_load_is_not_dropped() {
    let flags = [
        "--relay-probe-interval",
        "100ms",
        "--relay-probe-timeout",
        "2s",
    ];
    let mut w = World::new("load", &flags);
    let (p1, p2, n) = w.pat_quinn_and_nora();
    let relay = w.type_until_relayed(n);
    let r = w.relaying(&relay);
    let sender = if r == p1 { p2 } else { p1 };
    w.wait_manager("forwarded a probe to offset 3: proven", VERDICT);
    for k in [p1, p2, n] {
        drain(&w.servants[k]);
    }
    let (before_sent, before_answered) = (
        w.manager.count("relay: probing offset"),
        w.manager.count("forwarded a probe to offset"),
    );
    let began = Instant::now();
    let mut sent = 0;
    while began.elapsed() < Duration::from_secs(60) {
        let next = began + Duration::from_millis(100) * sent;
        std::thread::sleep(next.saturating_duration_since(Instant::now())); // the typing pace
        w.servants[sender]
            .type_line(&format!("load {sent}"))
            .unwrap();
        sent += 1;
    }
    let name = w.servants[sender].name().to_string();
    let mut seen = vec![0usize; sent as usize];
    let mut missing = sent as usize;
    let end = Instant::now() + VERDICT;
    while missing > 0 {
        let left = end.saturating_duration_since(Instant::now());
        let Ok(line) = w.servants[n].stdout_line(left) else {
            panic!(
                "nora lost {missing} of {sent} lines; log:\n{}",
                w.servants[n].log_text()
            );
        };
        if let Some(k) = line.strip_prefix(&format!("{name}: load ")) {
            let k: usize = k.parse().unwrap();
            missing -= usize::from(seen[k] == 0);
            seen[k] += 1;
        }
    }
    for line in w.servants[n].stdout_lines_within(SETTLE) {
        if let Some(k) = line.strip_prefix(&format!("{name}: load ")) {
            seen[k.parse::<usize>().unwrap()] += 1;
        }
    }
    assert!(seen.iter().all(|&c| c == 1), "lines shown twice");
    let m = &w.manager;
    let probes = m.count("relay: probing offset") - before_sent;
    let answered = m.count("forwarded a probe to offset") - before_answered;
    eprintln!("{sent} lines through the relay in 60 s; {probes} probes, {answered} answered");
    assert_eq!(m.count("pulls from offset"), 1, "{}", m.log_text());
    assert_eq!(m.count("probes in a row"), 0, "{}", m.log_text());
    assert_eq!(m.count("can no longer relay"), 0, "{}", m.log_text());
    assert_eq!(w.servants[n].count("pulling from the relay at"), 1);
    assert!(probes >= 40, "only {probes} probes");
    assert!(
        answered + 3 >= probes,
        "{answered} of {probes} probes answered"
    );
}
