//! Peers: the same client (`churn join-leave -c 50`) against other servers that
//! do a comparable job, each beside the baseline server doing the same exchange
//! (the same request framing, the same reply bytes, the same side closing first),
//! runs interleaved:
//!
//! - connmgr: `needs peer list`, a peer document back, the client closes.
//! - redis-server: `PING\r\n`, `+PONG\r\n` back, the client closes.
//! - opentracker: an HTTP announce, a bencoded peer list back, the server closes.
//!
//! A peer that is not installed is skipped with the reason and how to install it
//! (`apt-get install redis-server opentracker`). Both run on a loopback port of
//! their own with their files in a temp directory; neither is left running.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use p2pchat::churn::args::escape;
use p2pchat_harness::Spawn;

use super::{baseline, churn, connmgr, get, median, server, Plan, Server, CHURN, READY};

/// An announce for one torrent, whitelisted in the tracker's config, from one peer.
const INFO_HASH: &str = "0123456789abcdef0123456789abcdef01234567";
const ANNOUNCE: &str = "GET /announce?info_hash=%01%23%45%67%89%ab%cd%ef%01%23%45%67%89%ab%cd%ef%01%23%45%67&peer_id=-CH0001-000000000001&port=6881&uploaded=0&downloaded=0&left=0&compact=1 HTTP/1.0\r\n\r\n";

/// One server under test and how to speak to it.
struct Peer {
    name: &'static str,
    exchange: &'static str,
    server: Server,
    /// Extra churn flags: the request and how an answer ends.
    protocol: Vec<String>,
    /// The baseline doing the same exchange.
    baseline: Server,
    reply_bytes: usize,
    server_closes: bool,
    /// Kept alive until the peer is dropped: its config and data.
    _dir: Option<TempDir>,
}

pub fn peers(p: &Plan) {
    let mut peers = Vec::new();
    let mut skipped = Vec::new();
    for start in [start_connmgr, start_redis, start_opentracker] {
        match start(p) {
            Ok(peer) => peers.push(peer),
            Err(why) => skipped.push(why),
        }
    }
    let args = ["join-leave", "-c", "50", "-d", p.secs, "--warmup", p.warmup];
    let reps = p.reps.min(3);
    println!(
        "peers: one churn join-leave -c 50 client, each server beside the baseline doing the same exchange (medians of {reps} interleaved runs of {} s):",
        p.secs
    );
    println!(
        "  {:<13} {:<34} {:>6} {:>7} {:>10} {:>10} {:>6} {:>9} {:>9}",
        "server",
        "exchange",
        "bytes",
        "closes",
        "us/cycle",
        "baseline",
        "ratio",
        "cycles/s",
        "baseline"
    );
    for peer in &peers {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(peer.protocol.iter().map(String::as_str));
        let (mut cpu, mut cpu_b, mut rate, mut rate_b, mut errors) =
            (vec![], vec![], vec![], vec![], 0.0);
        for _ in 0..reps {
            let j = churn(&peer.server, &full);
            cpu.push(get(&j, "server_cpu_us_per_op"));
            rate.push(get(&j, "ops_per_s"));
            errors += get(&j, "errors");
            let j = churn(&peer.baseline, &full);
            cpu_b.push(get(&j, "server_cpu_us_per_op"));
            rate_b.push(get(&j, "ops_per_s"));
            errors += get(&j, "errors");
        }
        let (cpu, cpu_b) = (median(cpu), median(cpu_b));
        println!(
            "  {:<13} {:<34} {:>6} {:>7} {cpu:>10.2} {cpu_b:>10.2} {:>6.2} {:>9.0} {:>9.0}{}",
            peer.name,
            peer.exchange,
            peer.reply_bytes,
            if peer.server_closes {
                "server"
            } else {
                "client"
            },
            cpu / cpu_b,
            median(rate),
            median(rate_b),
            if errors == 0.0 {
                String::new()
            } else {
                format!("  ({errors} errors)")
            }
        );
    }
    println!("  (server CPU per cycle from /proc/PID/task/*/schedstat over churn's window; ratio = server / baseline)");
    for why in skipped {
        println!("  skipped: {why}");
    }
}

fn start_connmgr(p: &Plan) -> Result<Peer, String> {
    let m = connmgr(&[]);
    // The baseline answers what connmgr answered in a first run.
    let first = churn(&m, &["join-leave", "-c", "50", "-d", p.secs]);
    let bytes = get(&first, "doc_bytes_mean").round().max(17.0) as usize;
    Ok(Peer {
        name: "connmgr",
        exchange: "needs peer list -> peer document",
        server: m,
        protocol: vec![],
        baseline: baseline(bytes as u64),
        reply_bytes: bytes,
        server_closes: false,
        _dir: None,
    })
}

fn start_redis(_p: &Plan) -> Result<Peer, String> {
    let program = find_program("redis-server")
        .ok_or("redis-server: not installed (apt-get install redis-server)")?;
    let dir = TempDir::new("redis")?;
    // redis-server cannot bind port 0 (it means no TCP), so take a free port
    // and hand it over; another process may take it first, so try again then.
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        let process = Spawn::new(&program)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&dir.0)
            .name("redis-server")
            .keep(1000)
            .start()
            .map_err(|e| format!("redis-server: {e}"))?;
        match wait_stdout(&process, "Ready to accept connections") {
            Ok(()) => {
                let server = Server {
                    process,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                };
                return Ok(Peer {
                    name: "redis-server",
                    exchange: "PING -> +PONG",
                    server,
                    protocol: ["--request", "PING\\r\\n", "--expect", "+PONG\\r\\n"]
                        .map(String::from)
                        .to_vec(),
                    baseline: baseline_with(&["--reply", "+PONG\\r\\n"]),
                    reply_bytes: 7,
                    server_closes: false,
                    _dir: Some(dir),
                });
            }
            Err(e) => last = e,
        }
    }
    Err(format!("redis-server did not start: {last}"))
}

fn start_opentracker(_p: &Plan) -> Result<Peer, String> {
    let program = find_program("opentracker")
        .ok_or("opentracker: not installed (apt-get install opentracker)")?;
    let dir = TempDir::new("opentracker")?;
    // Debian's build serves only whitelisted torrents; paths are inside the
    // root directory it chroots to when started as root.
    std::fs::write(dir.0.join("whitelist.txt"), format!("{INFO_HASH}\n"))
        .map_err(|e| format!("opentracker: {e}"))?;
    let config = dir.0.join("opentracker.conf");
    let text = format!(
        "listen.tcp 127.0.0.1:0\naccess.whitelist ./whitelist.txt\ntracker.rootdir {}\n",
        dir.0.display()
    );
    std::fs::write(&config, text).map_err(|e| format!("opentracker: {e}"))?;
    let process = Spawn::new(&program)
        .arg("-f")
        .arg(&config)
        .name("opentracker")
        .keep(1000)
        .start()
        .map_err(|e| format!("opentracker: {e}"))?;
    // It prints nothing when ready: its listening socket appearing is the sign.
    let port = listening_port(process.pid())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let reply = ask_once(addr, ANNOUNCE.as_bytes())?;
    if !reply.starts_with(b"HTTP/1.1 200") || !reply.windows(5).any(|w| w == b"peers") {
        return Err(format!(
            "opentracker answered the announce with {:?}",
            escape(&reply[..reply.len().min(120)])
        ));
    }
    let reply_text = escape(&reply);
    Ok(Peer {
        name: "opentracker",
        exchange: "HTTP announce -> bencoded peers",
        server: Server { process, addr },
        protocol: vec!["--request".into(), escape(ANNOUNCE.as_bytes())],
        baseline: baseline_with(&[
            "--reply",
            &reply_text,
            "--request-end",
            "\\r\\n\\r\\n",
            "--close",
        ]),
        reply_bytes: reply.len(),
        server_closes: true,
        _dir: Some(dir),
    })
}

/// `churn baseline-server` with `args`.
fn baseline_with(args: &[&str]) -> Server {
    server(Spawn::new(CHURN).arg("baseline-server").args(args))
}

/// The first `name` on `PATH` that is a file.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A loopback port nobody listens on just now.
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Waits for a stdout line containing `pattern` (redis logs to stdout).
fn wait_stdout(p: &p2pchat_harness::Process, pattern: &str) -> Result<(), String> {
    let end = Instant::now() + READY;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match p.stdout_line(left) {
            Ok(line) if line.contains(pattern) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The TCP port process `pid` listens on, read from /proc as it appears: the
/// socket inode among its descriptors, then that inode's entry in net/tcp.
fn listening_port(pid: u32) -> Result<u16, String> {
    let end = Instant::now() + READY;
    loop {
        if let Some(port) = proc_listen_port(pid) {
            return Ok(port);
        }
        if Instant::now() >= end {
            return Err(format!(
                "process {pid} listened on no TCP port within {READY:?}"
            ));
        }
        // Polling /proc: the process announces nothing when it is ready.
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn proc_listen_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        // sl local_address rem_address st ... uid timeout inode
        let f: Vec<&str> = line.split_whitespace().collect();
        let listening = f.get(3) == Some(&"0A");
        if !listening || !inodes.iter().any(|i| Some(&i.as_str()) == f.get(9)) {
            return None;
        }
        let port = f.get(1)?.rsplit(':').next()?;
        u16::from_str_radix(port, 16).ok()
    })
}

/// Sends `request` on a new connection and reads until the server closes.
fn ask_once(addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    let fail = |e: std::io::Error| format!("{addr}: {e}");
    let mut s = TcpStream::connect(addr).map_err(fail)?;
    s.set_read_timeout(Some(READY)).map_err(fail)?;
    s.write_all(request).map_err(fail)?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(fail)?;
    Ok(reply)
}

/// A directory of the bench's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Result<TempDir, String> {
        let dir = std::env::temp_dir().join(format!("p2pchat-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(Path::new(&self.0));
    }
}
