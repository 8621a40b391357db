//! `p2pchat-demo --nat`: a servant behind a port-blocking router chatting through a relay.
//!
//! Builds the namespaces of [`crate::netns`]: a manager and alice and bob on the
//! public segment, carol at home behind a NAT router that drops inbound
//! connections. Carol says hello: alice and bob see it (her outgoing connections
//! pass the router), she does not (she cannot reach herself at the router's
//! address), and the manager, dialing her back, finds her unreachable and names a
//! relay. Then everyone talks, and every window shows every line once. Needs root.

use std::time::Duration;

use super::{program, shut_down, Program, STEP};
use crate::netns::{Internet, HOME_IPS, MANAGER_IP, PUBLIC_IPS};
use crate::{servant_args, Process, Spawn, LISTENING};

/// How long the verdict and the relay may take.
const VERDICT: Duration = Duration::from_secs(20);

/// What each servant types once carol is relayed.
const SAID: [(&str, &str); 3] = [
    ("carol", "thanks to my relay I can hear you now"),
    ("alice", "welcome, carol"),
    ("bob", "hi carol, bob here"),
];

fn start(
    net: &Internet,
    ns: &str,
    name: &str,
    p: &Program,
    args: &[&str],
) -> Result<Process, String> {
    Spawn::command(net.exec(ns, &p.0))
        .args(&p.1)
        .args(args)
        .name(name)
        .start()
        .map_err(|e| e.to_string())
}

/// The text after the log prefix (`... INFO  [module] `).
fn message(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, m)| m)
}

/// Runs the NAT demo, printing what happens on stdout; removes everything after.
pub fn run() -> Result<(), String> {
    let err = |e: std::io::Error| e.to_string();
    println!("Building a small internet out of network namespaces ...");
    let net = Internet::build().map_err(|why| format!("cannot build the namespaces: {why}"))?;
    println!("  public segment 203.0.113.0/24: the manager ({MANAGER_IP}), alice and bob");
    println!("  home segment 198.51.100.0/24 behind a NAT router (203.0.113.1) that drops");
    println!("  new inbound connections: carol");
    let manager = start(
        &net,
        &net.public,
        "connmgr",
        &program("connmgr")?,
        &[
            "--bind",
            MANAGER_IP,
            "--port",
            "0",
            "--relay-dial-timeout",
            "1000",
        ],
    )?;
    let addr = manager.listening_addr(STEP).map_err(err)?.to_string();
    println!("Manager listening on {addr}.");
    let servant = program("servant")?;
    let who = [
        ("alice", &net.public, PUBLIC_IPS[0]),
        ("bob", &net.public, PUBLIC_IPS[1]),
        ("carol", &net.home, HOME_IPS[0]),
    ];
    let mut servants = Vec::new();
    for (name, ns, ip) in who {
        let args = servant_args(&addr, ip, name);
        servants.push(start(&net, ns, name, &servant, &args)?);
    }
    for s in &servants {
        // Listening first: the list can be logged just before the listener is up.
        s.wait_for(LISTENING, STEP).map_err(err)?;
    }
    for s in &servants {
        if s.count("peers: 3 (") == 0 {
            s.wait_for("peers: 3 (", STEP).map_err(err)?;
        }
    }
    println!("alice, bob and carol have the peer list.\n");

    let carol = 2;
    println!("carol types: hello, is anyone there?");
    servants[carol]
        .type_line("hello, is anyone there?")
        .map_err(err)?;
    for s in &servants[..carol] {
        println!(
            "  {} shows: {}",
            s.name(),
            s.stdout_line(STEP).map_err(err)?
        );
    }
    println!("  carol shows nothing: she cannot reach herself at the router's address.");
    for pattern in ["verdict: ", "relay: offset"] {
        let line = manager.wait_for(pattern, VERDICT).map_err(err)?;
        println!("  connmgr: {}", message(&line));
    }
    let line = servants[carol]
        .wait_for("pulling from the relay at", VERDICT)
        .map_err(err)?;
    println!("  carol: {}\n", message(&line));
    let relay = line
        .rsplit("relay at ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let relay_name = PUBLIC_IPS
        .iter()
        .zip(["alice", "bob"])
        .find(|(ip, _)| relay.starts_with(&format!("{ip}:")))
        .map_or("?", |(_, n)| n);
    servants
        .iter()
        .find(|s| s.name() == relay_name)
        .ok_or_else(|| format!("no servant at the relay address {relay}"))?
        .wait_for("relaying for", STEP)
        .map_err(err)?;

    let mut windows = vec![Vec::new(); servants.len()];
    for (name, text) in SAID {
        let k = who.iter().position(|w| w.0 == name).unwrap_or(0);
        println!("{name} types: {text}");
        servants[k].type_line(text).map_err(err)?;
        for (s, w) in servants.iter().zip(&mut windows) {
            w.push(s.stdout_line(VERDICT).map_err(err)?);
        }
    }
    for s in &mut servants {
        s.type_line("/peers").map_err(err)?;
    }
    for ((s, w), name) in servants.iter().zip(&windows).zip(["alice", "bob", "carol"]) {
        println!("\n=== {name}'s window (since carol was relayed) ===");
        for line in w {
            println!("  {line}");
        }
        println!("  user list (/peers, * = me):");
        for _ in 0..who.len() {
            println!("    {}", s.stdout_line(STEP).map_err(err)?);
        }
    }
    for (w, name) in windows.iter().zip(["alice", "bob", "carol"]) {
        for (who, text) in SAID {
            let line = format!("{who}: {text}");
            if w.iter().filter(|l| **l == line).count() != 1 {
                return Err(format!(
                    "{name}'s window does not show {line:?} exactly once: {w:?}"
                ));
            }
        }
    }
    println!("\ncarol pulls from {relay_name} ({relay}); every window shows every line once.");
    println!("\nShutting down, then removing the namespaces.");
    let mut manager = manager;
    shut_down(&mut servants, &mut manager)?;
    drop(net);
    println!("Done.");
    Ok(())
}
