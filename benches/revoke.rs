//! Revocation's reach: how long after the manager's SIGHUP every servant of a
//! private network applies a list without the member just removed.
//!
//! A private connmgr and 100 headless servants on loopback (each from its own
//! 127.0.x.y), plus one more member, the victim, running as a servant too. Once
//! all 100 list all 101, the victim leaves the members file and the manager gets
//! SIGHUP; the time to each servant's `peers: 100` line is one sample. Five
//! rounds, a new victim each. Servants log at info to pipes that threads read,
//! stamping each line as it arrives.
//!
//! Each SIGHUP comes three push intervals after the last list change, as most
//! will; `-- --fresh` sends it as soon as all have the list, so that the pushes
//! it causes wait out the manager's push interval.
//!
//! `cargo bench --bench revoke -- flood` floods with bogus handshakes from 8
//! addresses (`flood.rs`); `-- flood-limit` from one address, held at the
//! manager's limit on pending handshakes.
//!
//! `cargo bench --bench revoke`; `P2PCHAT_BENCH_QUICK=1` (or `-- --quick`): 10
//! servants, one round. Figures: docs/BENCHMARKS.md.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use p2pchat::noise::Keypair;

#[path = "revoke/flood.rs"]
mod flood;

const CONNMGR: &str = env!("CARGO_BIN_EXE_connmgr");
const SERVANT: &str = env!("CARGO_BIN_EXE_servant");
/// The manager's push interval: the goal is 100 ms past it.
const PUSH_MS: u64 = 100;
/// Joining and settling, on a busy host.
const DEADLINE: Duration = Duration::from_secs(120);

fn quick() -> bool {
    std::env::var_os("P2PCHAT_BENCH_QUICK").is_some_and(|v| v != "0")
        || std::env::args().any(|a| a == "--quick")
}

/// A daemon whose stderr lines arrive, stamped, on a channel; killed when dropped.
struct Daemon {
    child: Child,
    lines: Receiver<(Instant, String)>,
}

impl Daemon {
    fn spawn(bin: &str, args: &[&str]) -> Daemon {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e}"));
        let err = child.stderr.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Daemon { child, lines }
    }

    /// When the first line containing `want` arrived; panics past `until`.
    fn wait_for(&self, want: &str, until: Instant) -> (Instant, String) {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if line.contains(want) => return (at, line),
                Ok(_) => {}
                Err(_) => panic!("no {want:?} line by the deadline"),
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder with the keys, the members file and an empty servant config.
struct Net {
    dir: PathBuf,
}

impl Net {
    fn new(tag: &str) -> Net {
        let dir = std::env::temp_dir().join(format!("p2pchat-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.xml"), "<config></config>\n").unwrap();
        Net { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    /// A new key pair in `NAME.key`; its public key.
    fn key(&self, name: &str) -> String {
        let pair = Keypair::generate().unwrap();
        pair.save_new(Path::new(&self.path(&format!("{name}.key"))))
            .unwrap();
        pair.public().to_string()
    }

    fn members(&self, members: &[(String, String)]) {
        let mut text = String::from("<members>\n");
        for (name, key) in members {
            text += &format!("<member><name>{name}</name><key>{key}</key></member>\n");
        }
        text += "</members>\n";
        let tmp = self.path("members.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.path("members.xml")).unwrap();
    }

    fn servant(&self, name: &str, manager: SocketAddr, bind: &str, manager_key: &str) -> Daemon {
        let (config, key) = (self.path("config.xml"), self.path(&format!("{name}.key")));
        let manager = manager.to_string();
        Daemon::spawn(
            SERVANT,
            &[
                "--config",
                &config,
                "--connmgr",
                &manager,
                "--bind",
                bind,
                "--headless",
                "--log-level",
                "info",
                "--key",
                &key,
                "--manager-key",
                manager_key,
            ],
        )
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Enough descriptors for the manager's links and the bench's pipes.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct; children
    // inherit the raised limit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The `q` quantile of sorted `v`, nearest rank.
fn quantile(v: &[f64], q: f64) -> f64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn main() {
    raise_fd_limit();
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let steps = [
        ("revoke", revoke as fn()),
        ("flood", flood::flood),
        ("flood-limit", flood::flood_at_limit),
    ];
    for (name, step) in steps {
        if chosen.is_empty() || chosen.iter().any(|c| c == name) {
            step();
        }
    }
}

/// A private connmgr on 127.0.0.1, its push interval [`PUSH_MS`]; its address.
fn manager(net: &Net) -> (Daemon, SocketAddr) {
    let push = format!("{PUSH_MS}ms");
    let (key, members) = (net.path("connmgr.key"), net.path("members.xml"));
    let mgr = Daemon::spawn(
        CONNMGR,
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--key",
            &key,
            "--members",
            &members,
            "--push-interval",
            &push,
            "--log-level",
            "info",
        ],
    );
    let (_, line) = mgr.wait_for("listening on", Instant::now() + DEADLINE);
    let addr: SocketAddr = line
        .rsplit(' ')
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (mgr, addr)
}

/// 127.0.`net`.1 onwards: an address of its own for each of many servants.
fn bind(k: usize, net: u8) -> String {
    format!("127.0.{}.{}", net + (k / 250) as u8, 1 + k % 250)
}

fn revoke() {
    let (servants, rounds) = if quick() { (10, 1) } else { (100, 5) };
    let fresh = std::env::args().any(|a| a == "--fresh");
    let net = Net::new("revoke");
    let manager_key = net.key("connmgr");
    let observers: Vec<(String, String)> = (0..servants)
        .map(|k| (format!("s{k}"), net.key(&format!("s{k}"))))
        .collect();
    let with = |victim: &(String, String)| {
        let mut all = observers.clone();
        all.push(victim.clone());
        all
    };
    let mut victim = ("v0".to_string(), net.key("v0"));
    net.members(&with(&victim));
    let (mgr, addr) = manager(&net);
    let until = Instant::now() + DEADLINE;
    let started = Instant::now();
    let running: Vec<Daemon> = (0..servants)
        .map(|k| net.servant(&format!("s{k}"), addr, &bind(k, 40), &manager_key))
        .collect();
    let mut victim_d = net.servant("v0", addr, &bind(0, 50), &manager_key);
    let full = format!("peers: {} (", servants + 1);
    let short = format!("peers: {servants} (");
    for d in &running {
        d.wait_for(&full, until);
    }
    println!(
        "revoke: {servants} servants and a victim joined in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut samples = Vec::new();
    for round in 0..rounds {
        // A revocation usually comes long after the last push; one within a push
        // interval of it waits out the interval, which `--fresh` measures.
        if !fresh {
            std::thread::sleep(Duration::from_millis(3 * PUSH_MS));
        }
        net.members(&observers);
        let until = Instant::now() + DEADLINE;
        let hup = Instant::now();
        mgr.signal(libc::SIGHUP);
        let mut ms: Vec<f64> = running
            .iter()
            .map(|d| (d.wait_for(&short, until).0 - hup).as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "revoke: round {round}: p50 {:.1} ms, max {:.1} ms",
            quantile(&ms, 0.5),
            quantile(&ms, 1.0)
        );
        samples.extend(ms);
        if round + 1 == rounds {
            break;
        }
        // A new victim for the next round, once all list it.
        drop(victim_d);
        let name = format!("v{}", round + 1);
        victim = (name.clone(), net.key(&name));
        net.members(&with(&victim));
        mgr.signal(libc::SIGHUP);
        victim_d = net.servant(&name, addr, &bind(round + 1, 50), &manager_key);
        for d in &running {
            d.wait_for(&full, until);
        }
    }
    samples.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        quantile(&samples, 0.5),
        quantile(&samples, 0.99),
        quantile(&samples, 1.0),
    );
    let goal = (100 + PUSH_MS) as f64;
    println!(
        "revoke: SIGHUP{} to `peers: {servants}` on each of {servants} servants, {rounds} rounds \
         ({} samples): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms \
         (goal p99 <= {goal:.0} ms: {})",
        if fresh { " (fresh)" } else { "" },
        samples.len(),
        if p99 <= goal { "met" } else { "MISSED" }
    );
}
