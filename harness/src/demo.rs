//! `p2pchat-demo`: a manager and three servants on loopback chatting, for a first look.
//!
//! [`run`] starts `connmgr` and three `servant`s (alice, bob and carol on
//! 127.0.0.2, .3 and .4) as child processes, waits for each to say it is ready,
//! has each send a line, then prints every servant's transcript and user list and
//! shuts everything down. It uses the `connmgr` and `servant` binaries built next
//! to the running executable; when they are missing or older than it (`cargo run
//! --bin p2pchat-demo` builds only the demo), it runs itself with [`ROLE`] to play those
//! parts: the `p2pchat-demo` binary answers that flag by running the daemon's own
//! library function in its process (`p2pchat::play`).
//!
//! [`run_private`] (`p2pchat-demo --private`) runs the same conversation on a
//! private network: keys, a members file, and Noise on every link.
//!
//! [`run_nat`] (`p2pchat-demo --nat`, root only) instead builds network namespaces with a
//! servant behind a port-blocking router and shows it chatting through a relay.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{servant_args, Process, Spawn, LISTENING};

mod nat;
mod private;
pub use nat::run as run_nat;
pub use private::run as run_private;

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(10);
/// The hidden flag the demo runs itself with to play a part: `--demo-role connmgr`.
pub const ROLE: &str = "--demo-role";

/// The servants: name and the loopback address each stands for.
const WHO: [(&str, &str); 3] = [
    ("alice", "127.0.0.2"),
    ("bob", "127.0.0.3"),
    ("carol", "127.0.0.4"),
];

/// What each servant types, in turn.
const SAID: [&str; 3] = [
    "hi everyone, this is alice",
    "hello alice, bob here",
    "hey both, carol too",
];

/// A program to start for a part: its path and the arguments before the part's flags.
type Program = (PathBuf, Vec<String>);

/// The sibling binary `name` if it is at least as new as this executable, else
/// this executable playing the part.
fn program(name: &str) -> Result<Program, String> {
    let me =
        std::env::current_exe().map_err(|e| format!("cannot find the demo executable: {e}"))?;
    let sibling = me.with_file_name(name);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Ok(match (modified(&sibling), modified(&me)) {
        (Some(s), Some(d)) if s >= d => (sibling, Vec::new()),
        _ => (me, vec![ROLE.to_string(), name.to_string()]),
    })
}

fn start(name: &str, program: &Program, args: &[&str]) -> Result<Process, String> {
    Spawn::new(&program.0)
        .args(&program.1)
        .args(args)
        .name(name)
        .start()
        .map_err(|e| e.to_string())
}

/// Waits until the latest `peers:` line `s` logged lists exactly `ports`.
fn current_list(s: &Process, ports: &[String]) -> Result<(), String> {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let log = s.log_text();
        let latest = log.lines().rev().find_map(|l| l.split("peers: ").nth(1));
        let listed = latest
            .and_then(|l| l.split_once(" (")?.1.strip_suffix(')'))
            .map(|l| {
                let mut got: Vec<&str> = l.split(", ").map(|p| p.trim_end_matches('*')).collect();
                got.sort_unstable();
                got
            });
        let mut want: Vec<&str> = ports.iter().map(String::as_str).collect();
        want.sort_unstable();
        if listed.as_ref() == Some(&want) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        s.wait_for("peers: ", left).map_err(|e| {
            format!(
                "{} did not list the ports {} within {:.1} s (its latest list: {}): {e}",
                s.name(),
                ports.join(", "),
                STEP.as_secs_f64(),
                latest.unwrap_or("none")
            )
        })?;
    }
}

/// Runs the demo, printing what happens on stdout.
pub fn run() -> Result<(), String> {
    let err = |e: std::io::Error| e.to_string();
    println!("Starting a connection manager on 127.0.0.1 ...");
    let mut manager = start(
        "connmgr",
        &program("connmgr")?,
        &["--bind", "127.0.0.1", "--port", "0"],
    )?;
    let addr = manager.listening_addr(STEP).map_err(err)?.to_string();
    println!("  manager listening on {addr}");

    let servant = program("servant")?;
    let mut servants = Vec::new();
    for (name, ip) in WHO {
        println!("Starting servant {name} on {ip} ...");
        let args = servant_args(&addr, ip, name);
        servants.push(start(name, &servant, &args)?);
    }
    converse(&mut servants, &mut manager)
}

/// Waits for the servants to be ready and to have the full list, has each say
/// its line, prints every window and user list, and shuts everything down.
fn converse(servants: &mut [Process], manager: &mut Process) -> Result<(), String> {
    let err = |e: std::io::Error| e.to_string();
    let mut ports = Vec::new();
    for s in servants.iter() {
        let line = s.wait_for(LISTENING, STEP).map_err(err)?;
        let said = line.rsplit("] ").next().unwrap_or(&line);
        println!("  {}: {said}", s.name());
        ports.push(said.rsplit(':').next().unwrap_or_default().to_string());
    }
    // The first full list may still name a port a servant could not listen on
    // (another program held it, and the manager gave it a new one): a line sent
    // then would go to that other program, so wait for the lists that name the
    // ports the servants listen on.
    for s in servants.iter() {
        current_list(s, &ports)?;
    }
    println!("All three servants have the full peer list.\n");

    let mut transcripts = vec![Vec::new(); servants.len()];
    for (k, text) in SAID.iter().enumerate() {
        println!("{} types: {text}", servants[k].name());
        servants[k].type_line(text).map_err(err)?;
        // Wait until everyone has shown it, so the transcripts read in order.
        for (s, t) in servants.iter().zip(&mut transcripts) {
            t.push(s.stdout_line(STEP).map_err(err)?);
        }
    }
    for s in servants.iter_mut() {
        s.type_line("/peers").map_err(err)?;
    }
    let mut lists = Vec::new();
    for s in servants.iter() {
        let list: Result<Vec<String>, _> = (0..WHO.len()).map(|_| s.stdout_line(STEP)).collect();
        lists.push(list.map_err(err)?);
    }
    for ((s, t), l) in servants.iter().zip(&transcripts).zip(&lists) {
        println!("\n=== {}'s window ===", s.name());
        for line in t {
            println!("  {line}");
        }
        println!("  user list (/peers, * = me):");
        for line in l {
            println!("    {line}");
        }
    }

    println!("\nShutting down: closing the servants' input, then stopping the manager.");
    shut_down(servants, manager)?;
    println!("Done.");
    Ok(())
}

/// Ends the servants by closing their input (they leave once their lines are
/// delivered), then the manager by SIGTERM; each must exit cleanly.
fn shut_down(servants: &mut [Process], manager: &mut Process) -> Result<(), String> {
    for s in servants.iter_mut() {
        s.stdin = None;
    }
    for s in servants.iter_mut() {
        exited(s)?;
    }
    manager.signal(libc::SIGTERM).map_err(|e| e.to_string())?;
    exited(manager)
}

/// Waits for `p` to exit, and to exit cleanly.
fn exited(p: &mut Process) -> Result<(), String> {
    let status = p.wait_exit(STEP).map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} exited with {status}", p.name()))
    }
}
