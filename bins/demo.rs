//! `demo`: a manager and three servants on loopback chatting, for a first look.
//!
//! Starts `connmgr` and three `servant`s (alice, bob and carol on 127.0.0.2, .3 and
//! .4) as child processes, waits for each to say it is ready, has each send a line,
//! then prints every servant's transcript and user list and shuts everything down.
//! It uses the `connmgr` and `servant` binaries built next to it; when they are
//! missing or older than the demo (`cargo run --bin demo` builds only the demo),
//! it runs those roles itself through the same library functions.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use p2pchat::{cli, connmgr, servant};

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(10);
/// The hidden flag the demo runs itself with to play a role.
const ROLE: &str = "--demo-role";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(ROLE) {
        return play(&args[1..]);
    }
    if !args.is_empty() {
        eprintln!("demo takes no arguments: it starts a manager and three servants on loopback, has them chat, and exits");
        return ExitCode::from(2);
    }
    if let Err(e) = cli::init_logging(Some("warn")) {
        eprintln!("demo: {e}");
        return ExitCode::from(2);
    }
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Which program plays each part: the sibling binary, or this one in a role.
struct Programs {
    connmgr: (PathBuf, Vec<String>),
    servant: (PathBuf, Vec<String>),
}

fn programs() -> Result<Programs, String> {
    let me =
        std::env::current_exe().map_err(|e| format!("cannot find the demo executable: {e}"))?;
    let dir = me.parent().unwrap_or(Path::new("."));
    let built = |name: &str| -> (PathBuf, Vec<String>) {
        let sibling = dir.join(name);
        let fresh = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        match (fresh(&sibling), fresh(&me)) {
            (Some(s), Some(d)) if s >= d => (sibling, Vec::new()),
            _ => (me.clone(), vec![ROLE.to_string(), name.to_string()]),
        }
    };
    Ok(Programs {
        connmgr: built("connmgr"),
        servant: built("servant"),
    })
}

/// A child process whose stderr lines (the logs) and stdout lines (the chat) are
/// collected on threads; killed if still running when dropped.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Receiver<String>,
    stdout: Receiver<String>,
}

impl Proc {
    fn start(name: &str, program: &(PathBuf, Vec<String>), args: &[&str]) -> Result<Proc, String> {
        let mut child = Command::new(&program.0)
            .args(&program.1)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.0.display()))?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(format!("{name}: no pipes"));
        };
        Ok(Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            stderr: lines(err),
            stdout: lines(out),
        })
    }

    /// The first log line containing `pattern`, within [`STEP`].
    fn wait_log(&self, pattern: &str) -> Result<String, String> {
        let end = Instant::now() + STEP;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) if l.contains(pattern) => return Ok(l),
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "{} did not log {pattern:?} within {} s",
                        self.name,
                        STEP.as_secs()
                    ))
                }
            }
        }
    }

    /// The next chat line, within [`STEP`].
    fn next_line(&self) -> Result<String, String> {
        self.stdout
            .recv_timeout(STEP)
            .map_err(|_| format!("{} printed nothing within {} s", self.name, STEP.as_secs()))
    }

    fn type_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot type into {}: {e}", self.name))
    }

    /// Waits for the process to exit within [`STEP`].
    fn wait_exit(&mut self) -> Result<(), String> {
        let end = Instant::now() + STEP;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("{} exited with {status}", self.name))
                };
            }
            std::thread::sleep(Duration::from_millis(20)); // polling a child's exit status
        }
        Err(format!("{} did not exit", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn demo() -> Result<(), String> {
    let p = programs()?;
    println!("Starting a connection manager on 127.0.0.1 ...");
    let mut manager = Proc::start(
        "connmgr",
        &p.connmgr,
        &["--bind", "127.0.0.1", "--port", "0"],
    )?;
    let line = manager.wait_log("listening on ")?;
    let addr = line
        .rsplit("listening on ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    println!("  manager listening on {addr}");

    let who = [
        ("alice", "127.0.0.2"),
        ("bob", "127.0.0.3"),
        ("carol", "127.0.0.4"),
    ];
    let mut servants = Vec::new();
    for (name, ip) in who {
        println!("Starting servant {name} on {ip} ...");
        let args = [
            "--connmgr",
            &addr,
            "--bind",
            ip,
            "--name",
            name,
            "--poll-interval",
            "500",
        ];
        servants.push(Proc::start(name, &p.servant, &args)?);
    }
    for s in &servants {
        let line = s.wait_log("listening on ")?;
        println!(
            "  {}: {}",
            s.name,
            line.rsplit("] ").next().unwrap_or(&line)
        );
    }
    for s in &servants {
        s.wait_log(&format!("peers: {} (", who.len()))?;
    }
    println!("All three servants have the full peer list.\n");

    let said = [
        ("alice", "hi everyone, this is alice"),
        ("bob", "hello alice, bob here"),
        ("carol", "hey both, carol too"),
    ];
    let mut transcripts = vec![Vec::new(); servants.len()];
    for (k, (name, text)) in said.iter().enumerate() {
        println!("{name} types: {text}");
        servants[k].type_line(text)?;
        // Wait until everyone has shown it, so the transcripts read in order.
        for (s, t) in servants.iter().zip(&mut transcripts) {
            t.push(s.next_line()?);
        }
    }
    let mut lists = Vec::new();
    for s in &mut servants {
        s.type_line("/peers")?;
    }
    for s in &servants {
        let mut list = Vec::new();
        for _ in 0..who.len() {
            list.push(s.next_line()?);
        }
        lists.push(list);
    }
    for ((s, t), l) in servants.iter().zip(&transcripts).zip(&lists) {
        println!("\n=== {}'s window ===", s.name);
        for line in t {
            println!("  {line}");
        }
        println!("  user list (/peers, * = me):");
        for line in l {
            println!("    {line}");
        }
    }

    println!("\nShutting down: closing the servants' input, then stopping the manager.");
    for s in &mut servants {
        s.stdin = None;
    }
    for s in &mut servants {
        s.wait_exit()?;
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(manager.child.id() as i32, libc::SIGTERM) };
    manager.wait_exit()?;
    println!("Done.");
    Ok(())
}

/// Plays `connmgr` or `servant` in this process, for when the sibling binaries are
/// missing or stale. Takes exactly the flags [`demo`] passes.
fn play(args: &[String]) -> ExitCode {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|k| args.get(k + 1))
            .cloned()
    };
    if let Err(e) = cli::init_logging(None) {
        eprintln!("demo: {e}");
        return ExitCode::from(2);
    }
    let result = match args.first().map(String::as_str) {
        Some("connmgr") => {
            let o = connmgr::Overrides {
                bind: flag("--bind").and_then(|b| b.parse().ok()),
                port: flag("--port").and_then(|p| p.parse().ok()),
                ..connmgr::Overrides::default()
            };
            connmgr::Config::load(&o)
                .map_err(|e| e.to_string())
                .and_then(|c| connmgr::run(c).map_err(|e| e.to_string()))
        }
        Some("servant") => {
            // An empty config, so a config.xml in the current directory plays no part.
            let cfg = std::env::temp_dir().join(format!("p2pchat-demo-{}.xml", std::process::id()));
            let o = servant::Overrides {
                config: Some(cfg.clone()),
                connmgr: flag("--connmgr"),
                bind: flag("--bind").and_then(|b| b.parse().ok()),
                name: flag("--name"),
                poll_interval: flag("--poll-interval").and_then(|p| p.parse().ok()),
                ..servant::Overrides::default()
            };
            let result = std::fs::write(&cfg, "<config/>\n")
                .map_err(|e| format!("cannot write {}: {e}", cfg.display()))
                .and_then(|()| servant::Config::load(&o).map_err(|e| e.to_string()))
                .and_then(|c| servant::run(c).map_err(|e| e.to_string()));
            let _ = std::fs::remove_file(cfg);
            result
        }
        other => Err(format!("unknown demo role {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}
