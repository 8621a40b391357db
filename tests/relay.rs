//! Servants behind a port-blocking router, across a real network boundary: each
//! test builds a public segment, a NAT router that drops new inbound connections
//! and a home segment out of network namespaces ([`p2pchat_harness::netns`]), runs the
//! real binaries inside them, and removes everything when it ends.
//!
//! They need root, `ip` and `nft`. Where those are missing the build script marks
//! them ignored, with that reason; run anyway, they fail saying what is missing.
//! The tests named `on_loopback_...` need none of it: the manager's side on
//! loopback, with raw clients.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bin, DEADLINE};
use p2pchat_harness::netns::{self, Internet, HOME_IPS, MANAGER_IP, PUBLIC_IPS};
use p2pchat_harness::{Process, Spawn};

/// How long a verdict may take: a send to a servant behind the router fails only
/// when its connect times out (3 s), and two complaints from each peer are needed.
const VERDICT: Duration = Duration::from_secs(25);
/// How long after the last expected line a duplicate would have to arrive by.
const SETTLE: Duration = Duration::from_millis(1500);
const POLL_MS: &str = "200";

/// The namespaces and what runs in them. Fields drop in order: the processes are
/// killed before the namespaces are removed.
struct World {
    servants: Vec<Process>,
    /// Which of them are at home, behind the router.
    at_home: Vec<bool>,
    manager: Process,
    addr: SocketAddr,
    config: PathBuf,
    net: Internet,
}

impl World {
    /// The namespaces and a manager on 203.0.113.10.
    fn new(test: &str, flags: &[&str]) -> World {
        let net = internet();
        let mut cmd = net.exec(&net.public, bin("connmgr"));
        cmd.args(["--bind", MANAGER_IP, "--port", "0", "--log-level", "debug"]);
        cmd.args(["--relay-dial-timeout", "500"]).args(flags);
        let manager = start(cmd, "connmgr");
        let addr = manager.listening_addr(DEADLINE).unwrap();
        let config =
            std::env::temp_dir().join(format!("p2pchat-relay-{test}-{}.xml", std::process::id()));
        std::fs::write(&config, "<config/>\n").unwrap();
        World {
            servants: Vec::new(),
            at_home: Vec::new(),
            manager,
            addr,
            config,
            net,
        }
    }

    /// Starts a servant named `name` on `ip` in namespace `ns`; returns its index.
    fn servant(&mut self, ns_home: bool, ip: &str, name: &str) -> usize {
        let ns = if ns_home {
            &self.net.home
        } else {
            &self.net.public
        };
        let mut cmd = self.net.exec(ns, bin("servant"));
        let addr = self.addr.to_string();
        cmd.args(["--connmgr", &addr, "--bind", ip, "--name", name]);
        cmd.args([
            "--poll-interval",
            POLL_MS,
            "--config",
            self.config.to_str().unwrap(),
        ]);
        let d = start(cmd, name);
        d.wait_for("listening on", DEADLINE).unwrap();
        self.servants.push(d);
        self.at_home.push(ns_home);
        self.servants.len() - 1
    }

    fn public(&mut self, k: usize, name: &str) -> usize {
        self.servant(false, PUBLIC_IPS[k], name)
    }

    fn home(&mut self, k: usize, name: &str) -> usize {
        self.servant(true, HOME_IPS[k], name)
    }

    /// pat and quinn on the public segment and nora at home, once each lists
    /// all three; returns their indices in that order.
    fn pat_quinn_and_nora(&mut self) -> (usize, usize, usize) {
        let (p1, p2) = (self.public(0, "pat"), self.public(1, "quinn"));
        let n = self.home(0, "nora");
        for &k in &[p1, p2, n] {
            self.wait(k, "peers: 3 (", DEADLINE);
        }
        (p1, p2, n)
    }

    /// Servant `k`, behind the router, types a line: sending it fails, so it asks
    /// to be checked. Returns the address of the relay it then pulls from.
    fn type_until_relayed(&mut self, k: usize) -> String {
        self.servants[k].type_line("hello?").unwrap();
        self.relayed(k, VERDICT)
    }

    /// The index of the servant at `relay`, once it says it relays.
    fn relaying(&self, relay: &str) -> usize {
        let r = self.by_addr(relay);
        self.wait(r, "relaying for", DEADLINE);
        r
    }

    /// Waits until servant `k` logs `pattern`, for up to `within`.
    /// Servant `k`'s first log line with `pattern`, waiting up to `within` for it.
    /// Lines already passed by other waits count too.
    fn wait(&self, k: usize, pattern: &str, within: Duration) -> String {
        let s = &self.servants[k];
        if let Some(line) = s.log_text().lines().find(|l| l.contains(pattern)) {
            return line.to_string();
        }
        s.wait_for(pattern, within)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn wait_manager(&self, pattern: &str, within: Duration) -> String {
        (self.manager.wait_for(pattern, within)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until servant `k` is relayed and pulling; returns the relay's address.
    /// Each call waits for the next such line: after a failover, the new relay.
    fn relayed(&self, k: usize, within: Duration) -> String {
        let line = (self.servants[k].wait_for("pulling from the relay at ", within))
            .unwrap_or_else(|e| panic!("{e}"));
        line.rsplit("relay at ").next().unwrap().trim().to_string()
    }

    /// The index of the servant listening at `addr` (its `listening on` line).
    fn by_addr(&self, addr: &str) -> usize {
        let line = format!("listening on {addr}");
        (0..self.servants.len())
            .find(|&k| self.servants[k].count(&line) > 0)
            .unwrap_or_else(|| panic!("no servant listens on {addr}"))
    }

    /// Waits until the manager has logged `pattern` at least `n` times, in any
    /// order with other lines.
    fn manager_logged(&self, pattern: &str, n: usize, within: Duration) {
        let end = Instant::now() + within;
        while self.manager.count(pattern) < n {
            assert!(
                Instant::now() < end,
                "connmgr logged {pattern:?} {} times, not {n}; log:\n{}",
                self.manager.count(pattern),
                self.manager.log_text()
            );
            std::thread::sleep(Duration::from_millis(20)); // polling a log with a deadline
        }
    }

    /// Every servant in `who` types one line tagged `round`; then every one of them
    /// must show every line exactly once, and nothing else tagged `round`. Where
    /// several servants are at home they share the router's address, so others
    /// may show their lines as unverified, with that address.
    fn everyone_hears_everyone_once(&mut self, who: &[usize], round: &str) {
        let mut said = Vec::new();
        for &k in who {
            let text = format!("{round} from {}", self.servants[k].name());
            self.servants[k].type_line(&text).unwrap();
            said.push(format!("{}: {text}", self.servants[k].name()));
        }
        // Unless it came up a pull link, whose relay knows who sent it.
        let shared = self.at_home.iter().filter(|&&h| h).count() > 1;
        let marker = format!("[{}?] ", netns::ROUTER_WAN_IP);
        let plain = |line: String| match line.strip_prefix(&marker) {
            Some(rest) if shared => rest.to_string(),
            _ => line,
        };
        for &k in who {
            let s = &self.servants[k];
            let mut seen: HashMap<String, usize> = HashMap::new();
            let end = Instant::now() + VERDICT;
            while said.iter().any(|l| !seen.contains_key(l)) {
                let left = end.saturating_duration_since(Instant::now());
                let Ok(line) = s.stdout_line(left) else {
                    panic!(
                        "{} showed only {seen:?} of {said:?}; log:\n{}",
                        s.name(),
                        s.log_text()
                    );
                };
                *seen.entry(plain(line)).or_default() += 1;
            }
            for line in s.stdout_lines_within(SETTLE) {
                *seen.entry(plain(line)).or_default() += 1;
            }
            seen.retain(|l, _| l.contains(round));
            let twice: Vec<_> = seen.iter().filter(|&(_, &n)| n != 1).collect();
            assert!(
                twice.is_empty(),
                "{} showed lines more than once: {twice:?}",
                s.name()
            );
            assert_eq!(seen.len(), said.len(), "{} showed {seen:?}", s.name());
        }
    }
}

/// The namespaces; a test that cannot build them fails saying why.
fn internet() -> Internet {
    Internet::build().unwrap_or_else(|why| panic!("the namespaces cannot be built: {why}"))
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

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

/// The address servant `k` listens on, from its `listening on` line.
fn listen_addr(w: &World, k: usize) -> String {
    let line = w.wait(k, "listening on ", DEADLINE);
    line.rsplit("listening on ")
        .next()
        .unwrap()
        .trim()
        .to_string()
}

/// Reads and drops what servant `d` shows until it has been quiet a moment.
fn drain(d: &Process) {
    while d.stdout_line(Duration::from_millis(300)).is_ok() {}
}

/// Starts a prepared `ip netns exec` command, named for its part (not `ip`).
fn start(cmd: std::process::Command, name: &str) -> Process {
    Spawn::command(cmd)
        .name(name)
        .start()
        .unwrap_or_else(|e| panic!("{e}"))
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

/// A manager on loopback that acts on a single complaint, relays for anyone
/// and gives a dial-back 2 s, with `extra` flags.
fn loopback_manager(extra: &[&str]) -> (common::Daemon, SocketAddr) {
    let flags = ["--relay-threshold", "1", "--relay-share", "0"];
    let dial = ["--relay-dial-timeout", "2000"];
    common::connmgr(&[&flags[..], &dial, extra].concat())
}

/// A raw client that asks once and never listens on its port: the one to be
/// marked. Returns it and that port (it is offset 1).
fn first_client(addr: SocketAddr) -> (TcpStream, u16) {
    let mut a = common::client(addr);
    a.write_all(b"needs peer list\n").unwrap();
    let port = common::entries(&common::read_doc(&mut a))[0].0;
    (a, port)
}

/// Reads documents from `s` until one names a relay (or `none`), and returns it.
fn first_doc_with_a_relay(s: &mut TcpStream) -> String {
    loop {
        let doc = common::read_doc(s);
        if doc.contains("<relay>") {
            return doc;
        }
    }
}

/// No namespaces needed: on loopback a raw client that does not listen on its port
/// is marked, and one that does is checked and named as its relay; the document
/// is the article's until then.
#[test]
fn on_loopback_a_client_that_does_not_answer_is_given_one_that_does() {
    let (manager, addr) = loopback_manager(&[]);
    let (_a, a_port) = first_client(addr);
    let mut b = common::client(addr);
    b.write_all(b"can relay\nneeds peer list\n").unwrap();
    let doc = common::read_doc(&mut b);
    assert!(
        !doc.contains("<relay>") && doc.ends_with("<me>TRUE</me></peer></peers>\r\n"),
        "{doc}"
    );
    let b_port = common::entries(&doc)[1].0;
    // b answers dial-backs (the kernel completes the handshake); a does not.
    let _listening = std::net::TcpListener::bind(("127.0.0.1", b_port)).unwrap();
    b.write_all(format!("cannot reach 127.0.0.1:{a_port}\n").as_bytes())
        .unwrap();
    let relayed = first_doc_with_a_relay(&mut b);
    let want = format!(
        "<port>{a_port}</port><offset>1</offset><me>FALSE</me><relay><ip>127.0.0.1</ip><port>{b_port}</port></relay></peer>"
    );
    assert!(relayed.contains(&want), "{relayed}");
    let line = manager.wait_for("verdict: offset 1");
    assert!(
        line.contains("1 of 1 other servants complained 1+ times each"),
        "{line}"
    );
    manager.wait_for("relay: offset 1 (127.0.0.1:");
}

#[test]
fn on_loopback_old_complaints_age_out_so_a_long_lived_servant_is_still_heard() {
    let (manager, addr) = common::connmgr(&[
        "--log-level",
        "debug",
        "--relay-threshold",
        "100",
        "--relay-window",
        "1",
        "--push-interval",
        "0",
        "--max-per-address",
        "100",
    ]);
    let mut clients: Vec<TcpStream> = (0..66).map(|_| common::client(addr)).collect();
    let last = clients.last_mut().unwrap();
    last.write_all(b"needs peer list\n").unwrap();
    let ports: Vec<u16> = common::entries(&common::read_doc(last))
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(ports.len(), 66);
    let complain = |c: &mut TcpStream, port: u16| {
        c.write_all(format!("cannot reach 127.0.0.1:{port}\n").as_bytes())
            .unwrap();
    };
    // Offset 1 complains about 64 peers: as many as one servant may have pending.
    for &port in &ports[1..65] {
        complain(&mut clients[0], port);
    }
    manager.wait_for("offset 1 cannot reach offset 65");
    // The 65th is refused until the first 64 are older than the window (1 s).
    let end = Instant::now() + DEADLINE;
    while manager.count("offset 1 cannot reach offset 66") == 0 {
        assert!(
            Instant::now() < end,
            "a servant with 64 old complaints is never heard again:\n{}",
            manager.log_text()
        );
        complain(&mut clients[0], ports[65]);
        let _ = manager.wait_for_within(
            "offset 1 cannot reach offset 66",
            Duration::from_millis(200),
        );
    }
    assert!(
        manager.count("not recorded: too many") > 0,
        "the cap was reached first"
    );
}

#[test]
fn on_loopback_a_client_that_never_offered_to_relay_is_never_chosen() {
    // Its own ports: the other loopback test binds its b's port in parallel.
    let (manager, addr) = loopback_manager(&["--first-port", "31224"]);
    let (_a, a_port) = first_client(addr);
    // b is a VB-style client: reachable, asking, complaining, but it never said
    // `can relay`, so it would show a `pull` line as chat and forward nothing.
    let mut b = common::client(addr);
    b.write_all(b"needs peer list\n").unwrap();
    let b_port = common::entries(&common::read_doc(&mut b))[1].0;
    let _listening = std::net::TcpListener::bind(("127.0.0.1", b_port)).unwrap();
    b.write_all(format!("cannot reach 127.0.0.1:{a_port}\n").as_bytes())
        .unwrap();
    manager.wait_for("verdict: offset 1");
    let told = first_doc_with_a_relay(&mut b);
    assert!(
        told.contains(&format!(
            "<port>{a_port}</port><offset>1</offset><me>FALSE</me><relay>none</relay>"
        )),
        "{told}"
    );
}
