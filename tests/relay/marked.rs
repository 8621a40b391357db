//! A NATed servant marked, relayed and released, with real servants in the
//! namespaces: every line arrives once, liars get nobody marked, relays fail over.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{self, DEADLINE};
use crate::world::{drain, internet, listen_addr, World, SETTLE, VERDICT};
use p2pchat_harness::netns::{self, HOME_IPS};

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn complaints_get_a_natted_servant_relayed_and_every_line_arrives_once_everywhere() {
    let mut w = World::new("lines", &[]);
    let (p1, p2, n) = w.pat_quinn_and_nora();
    // The public servants' lines cannot reach nora; each complains, twice.
    for round in 0..2 {
        for k in [p1, p2] {
            w.servants[k]
                .type_line(&format!("warm-up {round}"))
                .unwrap();
        }
        for from in [
            "offset 1 cannot reach offset 3",
            "offset 2 cannot reach offset 3",
        ] {
            w.manager_logged(from, round + 1, VERDICT);
        }
    }
    let verdict = w.wait_manager("verdict: offset 3", VERDICT);
    assert!(
        verdict.contains("2 of 2 other servants complained"),
        "{verdict}"
    );
    w.wait(n, "relayed: ", VERDICT);
    let relay = w.relayed(n, VERDICT);
    assert!(
        relay.starts_with("203.0.113.1"),
        "a public servant relays: {relay}"
    );
    w.relaying(&relay);
    for &k in &[p1, p2] {
        for _ in 0..4 {
            w.servants[k]
                .stdout_line(DEADLINE)
                .expect("the warm-up lines");
        }
    }
    w.everyone_hears_everyone_once(&[p1, p2, n], "round one");
    w.everyone_hears_everyone_once(&[n, p2, p1], "round two");
    // The user list marks the relayed servant, on every servant.
    for &k in &[p1, n] {
        w.servants[k].type_line("/peers").unwrap();
        let list: Vec<String> = (0..3)
            .map(|_| w.servants[k].stdout_line(DEADLINE).unwrap())
            .collect();
        let marked: Vec<&String> = list
            .iter()
            .filter(|l| l.contains(" relayed via "))
            .collect();
        assert_eq!(marked.len(), 1, "{list:?}");
        assert!(
            marked[0].contains(&relay) && marked[0].contains("203.0.113.1 "),
            "{list:?}"
        );
    }
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_lying_servant_cannot_get_a_reachable_peer_marked() {
    let mut w = World::new("liar", &["--relay-recheck", "1", "--relay-threshold", "2"]);
    let p = w.public(0, "pat");
    w.wait(p, "peers: 1 (", DEADLINE);
    // A raw client on the public segment that says it cannot reach pat, every poll.
    let (addr, public) = (w.addr, w.net.public.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let liar = std::thread::spawn(move || -> Result<usize, String> {
        netns::enter(&public).map_err(|e| e.to_string())?;
        let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(b"needs peer list\n").unwrap();
        let doc = common::read_doc(&mut s);
        let victim = p2pchat::wire::peerdoc::parse(&doc)
            .unwrap()
            .into_iter()
            .find(|p| !p.me)
            .unwrap();
        let mut docs = 0;
        let mut reader = BufReader::new(s.try_clone().unwrap());
        while !stopped.load(Ordering::Relaxed) {
            let lie = format!("needs peer list\ncannot reach {}\n", victim.addr());
            s.write_all(lie.as_bytes()).map_err(|e| e.to_string())?;
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            if line.contains("<relay>") {
                return Err(format!("the victim was marked: {line}"));
            }
            docs += 1;
            std::thread::sleep(Duration::from_millis(200)); // the liar's poll interval
        }
        Ok(docs)
    });
    // Dialed back, answered, and not marked; again after each recheck interval.
    for _ in 0..3 {
        let line = w.wait_manager("not confirmed: the dial-back connected", VERDICT);
        assert!(line.contains("complaints about offset 1"), "{line}");
    }
    stop.store(true, Ordering::Relaxed);
    let docs = liar.join().unwrap().unwrap();
    assert!(docs >= 5, "the liar polled {docs} times");
    assert_eq!(w.manager.count("verdict:"), 0, "{}", w.manager.log_text());
    assert_eq!(w.servants[p].count("relayed"), 0);
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn two_natted_servants_get_two_relays_when_each_relays_for_one() {
    let mut w = World::new("two", &["--relay-pullers", "1"]);
    let (p1, p2) = (w.public(0, "pat"), w.public(1, "quinn"));
    let (n1, n2) = (w.home(0, "nora"), w.home(1, "ned"));
    for &k in &[p1, p2, n1, n2] {
        w.wait(k, "peers: 4 (", DEADLINE);
    }
    // Each cannot reach itself at the router's address: it asks to be checked.
    w.servants[n1].type_line("hello?").unwrap();
    w.servants[n2].type_line("anyone?").unwrap();
    let (r1, r2) = (w.relayed(n1, VERDICT), w.relayed(n2, VERDICT));
    assert_ne!(r1, r2, "one puller per relay");
    for r in [&r1, &r2] {
        w.relaying(r);
    }
    w.manager_logged("it cannot reach itself", 2, DEADLINE);
    for &k in &[p1, p2] {
        for _ in 0..2 {
            w.servants[k]
                .stdout_line(DEADLINE)
                .expect("the first lines");
        }
    }
    for &k in &[n1, n2] {
        drain(&w.servants[k]);
    }
    w.everyone_hears_everyone_once(&[n1, p1, n2, p2], "both relayed");
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn when_the_relay_dies_another_takes_over_and_lines_flow_again() {
    let mut w = World::new("failover", &[]);
    let (p1, p2, n) = w.pat_quinn_and_nora();
    let first = w.type_until_relayed(n);
    let dead = w.relaying(&first);
    let alive = if dead == p1 { p2 } else { p1 };
    // The spare: both public servants checked before the relay goes.
    w.manager_logged("): Vet", 2, DEADLINE);
    w.servants[dead].signal(libc::SIGKILL).unwrap();
    w.wait_manager("can no longer relay", DEADLINE);
    // Reassigned in the same turn as the leave, so in the same push: no dial-back first.
    let assigned = w.wait_manager("relay: offset 3", DEADLINE);
    assert!(assigned.contains(&listen_addr(&w, alive)), "{assigned}");
    assert_eq!(w.manager.count("): Vet"), 2, "{}", w.manager.log_text());
    let second = w.relayed(n, VERDICT);
    assert_ne!(first, second, "{}", w.servants[n].log_text());
    assert_eq!(w.by_addr(&second), alive);
    w.wait(alive, "relaying for", DEADLINE);
    for &k in &[alive, n] {
        drain(&w.servants[k]);
    }
    w.everyone_hears_everyone_once(&[alive, n], "after the failover");
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_natted_servant_with_no_eligible_relay_is_told_so() {
    let mut w = World::new("alone", &[]);
    let n = w.home(0, "nora");
    w.wait(n, "peers: 1 (", DEADLINE);
    w.servants[n].type_line("is anyone there?").unwrap();
    w.wait_manager("verdict: offset 1", VERDICT);
    w.wait_manager("no servant is eligible to relay for offset 1", DEADLINE);
    w.wait(n, "no peer can relay for this servant", DEADLINE);
    // Its own line is shown once it knows it is relayed; the list says so too.
    w.servants[n].type_line("still here").unwrap();
    let shown = w.servants[n].stdout_line(DEADLINE).unwrap();
    assert_eq!(shown, "nora: still here");
    w.servants[n].type_line("/peers").unwrap();
    let me = w.servants[n].stdout_line(DEADLINE).unwrap();
    assert!(
        me.starts_with('*') && me.ends_with("relayed, but no peer can relay for it"),
        "{me}"
    );
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_relayed_servant_whose_router_opens_its_port_is_released() {
    let mut w = World::new("released", &["--relay-recheck", "1"]);
    let p = w.public(0, "pat");
    let n = w.home(0, "nora");
    let port: u16 = {
        let line = w.wait(n, "peers: 2 (", DEADLINE);
        let mine = line
            .split(['(', ',', ')'])
            .find(|f| f.contains('*'))
            .unwrap();
        mine.trim().trim_end_matches('*').parse().unwrap()
    };
    w.wait(p, "peers: 2 (", DEADLINE);
    w.type_until_relayed(n);
    w.net.forward_port(port, HOME_IPS[0]).unwrap();
    w.wait_manager("answers dial-backs again: no longer relayed", VERDICT);
    w.wait(n, "no longer relayed", DEADLINE);
    w.wait(p, "stopped relaying for", DEADLINE);
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_line_typed_while_the_pull_link_is_down_reaches_the_relay_once_it_is_back() {
    let mut w = World::new("held", &[]);
    let (p1, p2, n) = w.pat_quinn_and_nora();
    let relay = w.type_until_relayed(n);
    let r = w.relaying(&relay);
    for k in [p1, p2, n] {
        drain(&w.servants[k]);
    }
    // Cut the pull link under nora's feet, as a router reboot would.
    let (ip, port) = relay.rsplit_once(':').unwrap();
    let out = w
        .net
        .exec(&w.net.home, "ss")
        .args(["-K", "dst", ip, "dport", "=", port])
        .output()
        .unwrap();
    assert!(out.status.success(), "ss -K: {out:?}");
    w.wait(n, "lost the relay at", DEADLINE);
    let others: Vec<usize> = [p1, p2].into_iter().filter(|&k| k != r).collect();
    let mut who = vec![n, r];
    who.extend(others);
    // Typed before the link is back: held for the relay, not dropped.
    w.servants[n].type_line("while the link was down").unwrap();
    for &k in &who {
        let s = &w.servants[k];
        let mut got = 0;
        let end = Instant::now() + VERDICT;
        while got == 0 {
            let left = end.saturating_duration_since(Instant::now());
            let line = (s.stdout_line(left)).unwrap_or_else(|_| {
                panic!(
                    "{} never showed nora's line; log:\n{}",
                    s.name(),
                    s.log_text()
                )
            });
            got += usize::from(line == "nora: while the link was down");
        }
        let again = s.stdout_lines_within(SETTLE);
        assert!(
            !again.iter().any(|l| l == "nora: while the link was down"),
            "{} showed it twice",
            s.name()
        );
    }
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn the_nat_demo_shows_a_relayed_servant_chatting() {
    // The demo builds its own namespaces; skip where this test could not build ours.
    // Fails here, saying why, where the demo could not build its namespaces.
    drop(internet());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_p2pchat-demo"))
        .arg("--nat")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    assert!(
        text.contains("carol: pulling from the relay at 203.0.113.1"),
        "{text}"
    );
    assert!(
        text.contains("every window shows every line once"),
        "{text}"
    );
    assert!(text.ends_with("Done.\n"), "{text}");
}
