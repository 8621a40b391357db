//! The private network end to end, with real daemons and real keys on loopback:
//! members chat and a recording proxy on their links sees no plaintext; a
//! stranger's key, a wrong manager key, a bad members file and a readable key
//! file are refused; names come from the sending key; removing a member and
//! SIGHUP revokes her at once.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin, Daemon, DEADLINE};
use p2pchat::noise::Keypair;

/// A temporary folder with keys and a members file.
struct Net {
    dir: PathBuf,
}

impl Net {
    fn new(name: &str) -> Net {
        let dir =
            std::env::temp_dir().join(format!("p2pchat-private-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.xml"), "<config></config>\n").unwrap();
        Net { dir }
    }

    /// A new key pair in `NAME.key` (mode 0600); its public key.
    fn key(&self, name: &str) -> String {
        let pair = Keypair::generate().unwrap();
        pair.save_new(&self.path(&format!("{name}.key"))).unwrap();
        pair.public().to_string()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn members(&self, members: &[(&str, &str)]) {
        let mut text = String::from("<members>\n");
        for (name, key) in members {
            text += &format!("<member><name>{name}</name><key>{key}</key></member>\n");
        }
        text += "</members>\n";
        std::fs::write(self.path("members.xml"), text).unwrap();
    }

    fn manager(&self, extra: &[&str]) -> (Daemon, SocketAddr) {
        let (key, members) = (self.path("connmgr.key"), self.path("members.xml"));
        let mut args = vec![
            "--key",
            key.to_str().unwrap(),
            "--members",
            members.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        common::connmgr(&args)
    }

    fn servant(&self, name: &str, manager: SocketAddr, bind: &str, manager_key: &str) -> Daemon {
        self.servant_with(name, manager, bind, manager_key, &[])
    }

    fn servant_with(
        &self,
        name: &str,
        manager: SocketAddr,
        bind: &str,
        manager_key: &str,
        extra: &[&str],
    ) -> Daemon {
        let (config, key) = (self.path("config.xml"), self.path(&format!("{name}.key")));
        let manager = manager.to_string();
        let poll: &[&str] = match extra.contains(&"--poll-interval") {
            true => &[],
            false => &["--poll-interval", "200"],
        };
        Daemon::spawn(
            &bin("servant"),
            &[
                "--config",
                config.to_str().unwrap(),
                "--connmgr",
                &manager,
                "--bind",
                bind,
                "--key",
                key.to_str().unwrap(),
                "--manager-key",
                manager_key,
            ]
            .iter()
            .chain(extra)
            .chain(poll)
            .copied()
            .collect::<Vec<&str>>(),
        )
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy from `listen` to `to` (connecting out from `from`) that records
/// every byte it carries, both ways.
fn recording_proxy(listen: &str, from: &str, to: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind(listen).unwrap();
    let at = l.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let log = seen.clone();
    let from: SocketAddr = format!("{from}:0").parse().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(a) = conn else { return };
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.bind(&from.into()).unwrap();
            if sock.connect(&to.into()).is_err() {
                continue;
            }
            let b: TcpStream = sock.into();
            for (mut r, mut w) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = r.read(&mut buf) {
                        if n == 0 || w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = w.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    (at, seen)
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads `d`'s stdout until a line containing `want`, failing at the deadline.
fn shows(d: &Daemon, want: &str) -> String {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if let Some(line) = d.stdout_line() {
            if line.contains(want) {
                return line;
            }
        }
    }
    panic!("{} never showed {want:?}; log:\n{}", d.name(), d.log_text());
}

#[test]
fn members_chat_by_key_names_and_nothing_crosses_in_clear_and_removal_revokes_at_once() {
    let net = Net::new("chat");
    let manager_key = net.key("connmgr");
    let keys: Vec<String> = ["alice", "bob", "mallory"]
        .iter()
        .map(|n| net.key(n))
        .collect();
    net.members(&[
        ("alice", &keys[0]),
        ("bob", &keys[1]),
        ("mallory", &keys[2]),
    ]);
    // alice is the first to join, so she gets the first port; the manager sees
    // her come from 127.0.0.3 (the proxy), so peers deliver to 127.0.0.3:PORT,
    // which is a second recording proxy in front of her listener on 127.0.0.2.
    let port = free_port("127.0.0.2");
    let (mgr, addr) = net.manager(&["--first-port", &port.to_string()]);
    let (via, manager_link) = recording_proxy("127.0.0.1:0", "127.0.0.3", addr);
    let alice_listens: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let (_, chat_link) = recording_proxy(&format!("127.0.0.3:{port}"), "127.0.0.5", alice_listens);
    let alice = net.servant("alice", via, "127.0.0.2", &manager_key);
    alice.wait_for("listening on 127.0.0.2");
    let mut bob = net.servant("bob", addr, "127.0.0.4", &manager_key);
    bob.wait_for("listening on");
    let mut mallory = net.servant("mallory", addr, "127.0.0.6", &manager_key);
    mallory.wait_for("listening on");
    mgr.wait_for("joined: mallory");
    alice.wait_for("peers: 3");

    bob.wait_for("peers: 3");
    bob.type_line("the secret plans");
    let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shows(&alice, "the secret plans")
    }));
    let shown =
        shown.unwrap_or_else(|_| panic!("bob:\n{}\nmanager:\n{}", bob.log_text(), mgr.log_text()));
    assert!(shown.starts_with("bob: the secret plans"));
    // mallory cannot speak as alice: the name is the sending key's.
    mallory.type_line("alice: x");
    let shown =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shows(&alice, "alice: x")));
    assert_eq!(
        shown.unwrap_or_else(|_| panic!("mallory:\n{}", mallory.log_text())),
        "mallory: alice: x"
    );

    let recorded = |log: &Arc<Mutex<Vec<u8>>>| log.lock().unwrap().clone();
    let (m, c) = (recorded(&manager_link), recorded(&chat_link));
    assert!(
        m.len() > 200 && c.len() > 100,
        "the proxies carried the links"
    );
    for clear in [
        "the secret plans",
        "alice: x",
        "alice",
        "bob",
        "mallory",
        "needs peer list",
        "<peers",
    ] {
        for (what, bytes) in [("manager link", &m), ("chat link", &c)] {
            assert!(
                memchr::memmem::find(bytes, clear.as_bytes()).is_none(),
                "{clear:?} crossed the {what} in clear"
            );
        }
    }

    // Revocation: mallory leaves the members file; SIGHUP.
    net.members(&[("alice", &keys[0]), ("bob", &keys[1])]);
    let sighup = Instant::now();
    mgr.signal(libc::SIGHUP);
    mgr.wait_for("no longer a member");
    alice.wait_for("peers: 2");
    let revoked = sighup.elapsed();
    // The push interval is 100 ms; 100 ms more, and slack for a shared machine.
    assert!(
        revoked < Duration::from_millis(1000),
        "alice knew only after {revoked:?}"
    );
    eprintln!("revoke-to-refused: {revoked:?}");
    // mallory's kept link to alice was closed from alice's side; until mallory
    // has read that close, a line of hers dies on it. Past it, her next line
    // opens a new link, which alice refuses.
    let end = Instant::now() + DEADLINE;
    loop {
        mallory.type_line("still here?");
        let refused =
            alice.wait_for_within("is on no current peer list", Duration::from_millis(500));
        if refused.is_some() {
            break;
        }
        assert!(
            Instant::now() < end,
            "alice never refused mallory's key:\n{}",
            alice.log_text()
        );
    }
    bob.type_line("after mallory");
    let end = Instant::now() + DEADLINE;
    loop {
        let line = alice.stdout_line_within(end.saturating_duration_since(Instant::now()));
        let line = line.unwrap_or_else(|| panic!("alice never showed bob's line"));
        assert!(
            !line.contains("still here"),
            "a revoked member was shown: {line}"
        );
        if line.contains("after mallory") {
            assert!(line.starts_with("bob: "), "{line}");
            break;
        }
    }
    mallory.signal(libc::SIGTERM);
}

/// Forward secrecy over time: a link to a peer older than `--rekey-after` is
/// closed once idle and the next line opens a new one, with a new handshake;
/// every line shows once, in order. The manager link, which lasts, renews its
/// sending key in place and goes on carrying lists.
#[test]
fn an_old_link_to_a_peer_gets_a_new_handshake_at_its_next_line_and_no_line_is_lost() {
    let net = Net::new("rekey");
    let manager_key = net.key("connmgr");
    let (a, b, c) = (net.key("alice"), net.key("bob"), net.key("carol"));
    net.members(&[("alice", &a), ("bob", &b), ("carol", &c)]);
    let (_mgr, addr) = net.manager(&[]);
    let debug = [
        "--log-level",
        "info,p2pchat::reactor=debug,p2pchat::servant=debug",
    ];
    let rekey = [&debug[..], &["--rekey-after", "1"]].concat();
    let mut alice = net.servant_with("alice", addr, "127.0.0.2", &manager_key, &rekey);
    let bob = net.servant_with("bob", addr, "127.0.0.4", &manager_key, &debug);
    alice.wait_for("peers: 2");
    bob.wait_for("peers: 2");
    let from_alice = format!("link=handshaking=>transport, peer {a}");
    // Each link's log line is read by another thread than its lines: waited for.
    alice.type_line("one");
    assert_eq!(shows(&bob, "one"), "alice: one");
    bob.wait_for(&from_alice);
    alice.type_line("two");
    assert_eq!(shows(&bob, "two"), "alice: two");
    // The link's age is what is under test: let it pass the second.
    std::thread::sleep(Duration::from_millis(1200));
    alice.type_line("three");
    assert_eq!(shows(&bob, "three"), "alice: three");
    alice.wait_for("a new handshake for new keys");
    bob.wait_for(&from_alice);
    alice.type_line("four");
    assert_eq!(shows(&bob, "four"), "alice: four");
    assert_eq!(
        bob.count(&from_alice),
        2,
        "one link for the first two lines, a new one for the last two"
    );
    assert_eq!(alice.count("a new handshake for new keys"), 1);
    // alice asks every 200 ms: her requests went under a new key, and the
    // manager still reads them and answers: a newcomer reaches her list.
    let rekeyed = alice.wait_for("new sending key");
    let _carol = net.servant("carol", addr, "127.0.0.6", &manager_key);
    alice.wait_for("peers: 3");
    assert_eq!(
        alice.count("lost the connection manager"),
        0,
        "{rekeyed}: the renewed manager link broke and was reconnected"
    );
}

/// A member that restarts gets a new port; a peer whose list still names the old
/// one finds nobody there. Its line is not lost: it waits for the list that
/// gives the member's key the new address, and goes there.
#[test]
fn a_line_for_a_member_not_at_its_listed_address_follows_its_key_to_the_new_one() {
    let net = Net::new("moved");
    let manager_key = net.key("connmgr");
    let (a, b) = (net.key("alice"), net.key("bob"));
    net.members(&[("alice", &a), ("bob", &b)]);
    // No pushes: alice learns of changes only when she asks.
    let (_mgr, addr) = net.manager(&["--push-interval", "0"]);
    let mut alice = net.servant("alice", addr, "127.0.0.2", &manager_key);
    alice.wait_for("listening on");
    let bob = net.servant("bob", addr, "127.0.0.4", &manager_key);
    let first = bob.wait_for("listening on 127.0.0.4:");
    let old_port = first.rsplit(':').next().unwrap().trim().to_string();
    let stale = alice.wait_for("peers: 2");
    assert!(stale.contains(&old_port), "{stale}");
    // alice is stopped while bob restarts, so her list cannot change meanwhile;
    // once she runs again, the line waiting on her stdin is read in her first
    // turn, before the request her overdue poll sends there can be answered.
    alice.signal(libc::SIGSTOP);
    bob.signal(libc::SIGKILL);
    drop(bob);
    let bob = net.servant("bob", addr, "127.0.0.4", &manager_key);
    let again = bob.wait_for("listening on 127.0.0.4:");
    // Its list, with alice's key, was applied before it listened.
    assert!(!again.ends_with(&format!(":{old_port}")), "{again}");
    alice.type_line("are you there, bob?");
    alice.signal(libc::SIGCONT);
    alice.wait_for(&format!("cannot deliver to 127.0.0.4:{old_port}"));
    alice.wait_for("was not at 127.0.0.4:");
    assert_eq!(shows(&bob, "are you there"), "alice: are you there, bob?");
}

#[test]
fn a_stranger_learns_nothing_and_a_wrong_manager_key_is_refused() {
    let net = Net::new("stranger");
    let manager_key = net.key("connmgr");
    let alice = net.key("alice");
    net.key("eve");
    net.members(&[("alice", &alice)]);
    let (mgr, addr) = net.manager(&[]);
    let (via, seen) = recording_proxy("127.0.0.1:0", "127.0.0.1", addr);
    let eve = net.servant("eve", via, "127.0.0.7", &manager_key);
    mgr.wait_for("is not in the members file");
    eve.wait_for("cannot reach the connection manager");
    std::thread::sleep(Duration::from_millis(800)); // retries happen meanwhile
    let bytes = seen.lock().unwrap().clone();
    // The preamble and message 1 (9 + 2 + 96 bytes) per try, and nothing back.
    assert_eq!(
        bytes.len() % 107,
        0,
        "the manager answered a stranger: {bytes:?}"
    );
    assert!(bytes.len() >= 2 * 107, "eve retried");
    assert_eq!(
        eve.log_text()
            .matches("cannot reach the connection manager")
            .count(),
        1
    );
    assert!(
        !eve.log_text().contains("listening on"),
        "no port for a stranger"
    );

    // alice, a member, but told another manager key: she refuses this manager.
    let wrong = Keypair::generate().unwrap().public().to_string();
    let a = net.servant("alice", addr, "127.0.0.8", &wrong);
    a.wait_for("cannot reach the connection manager");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        a.log_text()
            .matches("cannot reach the connection manager")
            .count(),
        1
    );
    assert!(!a.log_text().contains("listening on"));
    assert!(!mgr.log_text().contains("joined:"));
}

#[test]
fn bad_members_files_key_files_and_half_settings_are_refused_at_start() {
    let net = Net::new("bad");
    let key = net.key("connmgr");
    let run = |bin_name: &str, args: &[&str]| {
        let out = std::process::Command::new(bin(bin_name))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (k, m) = (net.path("connmgr.key"), net.path("members.xml"));
    let (k, m) = (k.to_str().unwrap(), m.to_str().unwrap());
    let manager = |extra: &str| {
        std::fs::write(net.path("members.xml"), extra).unwrap();
        run("connmgr", &["--port", "0", "--key", k, "--members", m])
    };
    let (code, log) = manager(&format!(
        "<members>\n<member><name>a</name><key>{key}</key></member>\n<member><name>b</name><key>{key}</key></member>\n</members>\n"
    ));
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("members.xml:3: the key") && log.contains("listed twice"),
        "{log}"
    );
    let (code, log) =
        manager("<members>\n<member><name>a</name><key>bad!base64</key></member>\n</members>\n");
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("members.xml:2: <key> is not a public key"),
        "{log}"
    );
    let (code, log) = run("connmgr", &["--port", "0", "--key", k]);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("--key") && log.contains("members file too"),
        "{log}"
    );
    std::fs::write(net.path("members.xml"), "<members/>").unwrap();
    set_mode(&net.path("connmgr.key"), 0o644);
    let (code, log) = run("connmgr", &["--port", "0", "--key", k, "--members", m]);
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("chmod 600"), "{log}");
    let (code, log) = run(
        "servant",
        &[
            "--config",
            net.path("config.xml").to_str().unwrap(),
            "--key",
            k,
        ],
    );
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("needs the manager's public key too"), "{log}");
    let (code, log) = run(
        "servant",
        &[
            "--config",
            net.path("config.xml").to_str().unwrap(),
            "--manager-key",
            &key,
        ],
    );
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("needs this servant's key file too"), "{log}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
