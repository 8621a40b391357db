//! A private network served by several managers: each holds the manager key and
//! the same members file; members on different managers chat both ways, a member
//! moves from a killed manager to another by its key without leaving or joining,
//! and SIGHUP to every manager revokes a removed key: its links close on every
//! servant, and every servant refuses it.

use std::path::Path;

use super::{temp_dir, url, Redis};
use crate::common::{bin, connmgr, shows, Daemon};
use p2pchat::noise::Keypair;

fn key(dir: &Path, name: &str) -> String {
    let pair = Keypair::generate().unwrap();
    pair.save_new(&dir.join(format!("{name}.key"))).unwrap();
    pair.public().to_string()
}

fn members(dir: &Path, members: &[(&str, &str)]) {
    let mut text = String::from("<members>\n");
    for (name, key) in members {
        text += &format!("<member><name>{name}</name><key>{key}</key></member>\n");
    }
    std::fs::write(dir.join("members.xml"), text + "</members>\n").unwrap();
}

fn manager(dir: &Path) -> (Daemon, std::net::SocketAddr) {
    let (key, list, url) = (dir.join("connmgr.key"), dir.join("members.xml"), url(dir));
    let (d, addr) = connmgr(&[
        "--key",
        key.to_str().unwrap(),
        "--members",
        list.to_str().unwrap(),
        "--cluster",
        &url,
        "--cluster-prefix",
        "private",
    ]);
    d.wait_for("in step with redis");
    (d, addr)
}

fn servant(dir: &Path, name: &str, managers: &[std::net::SocketAddr], manager_key: &str) -> Daemon {
    let (config, key) = (dir.join("config.xml"), dir.join(format!("{name}.key")));
    let mut args: Vec<String> = Vec::new();
    for m in managers {
        args.extend(["--connmgr".into(), m.to_string()]);
    }
    for a in [
        "--config",
        config.to_str().unwrap(),
        "--bind",
        "127.0.0.2",
        "--poll-interval",
        "200",
        "--key",
        key.to_str().unwrap(),
        "--manager-key",
        manager_key,
    ] {
        args.push(a.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::spawn(&bin("servant"), &args)
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn a_member_moves_between_managers_by_its_key_and_sighup_revokes_it_everywhere() {
    let dir = temp_dir("private");
    let _redis = Redis::start(&dir);
    std::fs::write(dir.join("config.xml"), "<config></config>\n").unwrap();
    let manager_key = key(&dir, "connmgr");
    let (alice_key, bob_key, carol_key) =
        (key(&dir, "alice"), key(&dir, "bob"), key(&dir, "carol"));
    let everyone = [
        ("alice", &*alice_key),
        ("bob", &bob_key),
        ("carol", &carol_key),
    ];
    members(&dir, &everyone);
    let (a_daemon, a) = manager(&dir);
    let (b_daemon, b) = manager(&dir);
    let mut alice = servant(&dir, "alice", &[a, b], &manager_key);
    a_daemon.wait_for("joined: <peer>");
    let mut bob = servant(&dir, "bob", &[b], &manager_key);
    bob.wait_for("peers: 2");
    alice.wait_for("peers: 2");
    // Each reached the other by the key its own manager lists: lines both ways.
    bob.type_line("hello alice");
    shows(&alice, "bob: hello alice");
    alice.type_line("hello bob");
    shows(&bob, "alice: hello bob");

    a_daemon.signal(libc::SIGKILL);
    b_daemon.wait_for("resumed: offset");
    alice.type_line("still here");
    shows(&bob, "alice: still here");
    let b_log = b_daemon.log_text();
    assert!(!b_log.contains("left: offset"), "{b_log}");
    assert!(
        !b_log.contains("<name>alice</name>"),
        "alice joined b: {b_log}"
    );
    assert!(!bob.log_text().contains("peers: 1"), "{}", bob.log_text());

    // A third manager and member, so revocation is seen on two managers.
    let (c_daemon, c) = manager(&dir);
    let carol = servant(&dir, "carol", &[c], &manager_key);
    for d in [&alice, &bob, &carol] {
        d.wait_for("peers: 3");
    }
    alice.type_line("hello both");
    shows(&bob, "alice: hello both");
    shows(&carol, "alice: hello both");

    members(&dir, &everyone[1..]);
    b_daemon.signal(libc::SIGHUP);
    c_daemon.signal(libc::SIGHUP);
    b_daemon.wait_for("alice (offset 1) is no longer a member");
    for d in [&bob, &carol] {
        d.wait_for("peers: 2");
        d.wait_for(&format!("closing a link of {alice_key}"));
    }
    alice.type_line("after revocation");
    for d in [&bob, &carol] {
        d.wait_for(&format!("key {alice_key} is on no current peer list"));
    }
    bob.signal(libc::SIGTERM);
    carol.signal(libc::SIGTERM);
    drop(alice);
}
