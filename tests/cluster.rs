//! Several managers sharing one network through a real `redis-server` (started
//! by each test in a temporary directory, killed by its pid): a servant on one
//! manager is listed by the others, ports and offsets are unique across them, a
//! killed manager's servants leave the others' documents, a stopped Redis does
//! not slow a manager's answers to its own servants, and a Redis restarted empty
//! is filled again without handing anything out twice. Clients are bare TCP
//! connections asking `needs peer list`.

mod common;
#[path = "cluster/limits.rs"]
mod limits;
#[path = "cluster/names.rs"]
mod names;
#[path = "cluster/private.rs"]
mod private;
#[path = "cluster/relay.rs"]
mod relay;
#[path = "cluster/resume.rs"]
mod resume;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{client, connmgr, entries, read_doc, Daemon};

/// A `redis-server` on a Unix socket in `dir`, killed by its pid when dropped.
struct Redis {
    child: Child,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(dir.join("redis.sock"))
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let redis = Redis { child };
        let deadline = Instant::now() + common::DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l)
                    if l.to_ascii_lowercase()
                        .contains("ready to accept connections") =>
                {
                    return redis
                }
                Ok(_) => {}
                Err(e) => panic!("redis-server never said it was ready: {e}"),
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: a signal to the child we started and have not waited for.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, sig) },
            0
        );
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("p2pchat-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn url(dir: &Path) -> String {
    format!("unix://{}", dir.join("redis.sock").display())
}

/// A manager in the cluster, once it said it is in step with Redis.
fn manager(dir: &Path) -> (Daemon, SocketAddr) {
    manager_with(dir, &[])
}

/// The same, with `extra` flags.
fn manager_with(dir: &Path, extra: &[&str]) -> (Daemon, SocketAddr) {
    let url = url(dir);
    let cluster = ["--cluster", &url, "--cluster-prefix", "test"];
    let (d, addr) = connmgr(&[&cluster[..], extra].concat());
    d.wait_for("in step with redis");
    (d, addr)
}

/// Asks on `s` until the document satisfies `ok`, within `limit`.
fn until(
    s: &mut TcpStream,
    limit: Duration,
    ok: impl Fn(&[(u16, usize, bool)]) -> bool,
) -> Vec<(u16, usize, bool)> {
    let deadline = Instant::now() + limit;
    loop {
        s.write_all(b"needs peer list").unwrap();
        let e = entries(&read_doc(s));
        if ok(&e) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "the document never settled: {e:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn unique(e: &[(u16, usize, bool)]) {
    let ports: HashSet<u16> = e.iter().map(|p| p.0).collect();
    let offsets: HashSet<usize> = e.iter().map(|p| p.1).collect();
    assert_eq!(ports.len(), e.len(), "a port twice: {e:?}");
    assert_eq!(offsets.len(), e.len(), "an offset twice: {e:?}");
    assert_eq!(e.iter().filter(|p| p.2).count(), 1, "me TRUE once: {e:?}");
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn joins_and_leaves_on_one_manager_are_listed_by_the_others() {
    let dir = temp_dir("joins");
    let _redis = Redis::start(&dir);
    let (_a, a) = manager(&dir);
    let (_b, b) = manager(&dir);
    let mut on_a: Vec<TcpStream> = (0..3).map(|_| client(a)).collect();
    let mut on_b: Vec<TcpStream> = (0..2).map(|_| client(b)).collect();
    let seen = until(&mut on_b[0], common::DEADLINE, |e| e.len() == 5);
    unique(&seen);
    let seen_a = until(&mut on_a[0], common::DEADLINE, |e| e.len() == 5);
    unique(&seen_a);
    let mut all: Vec<_> = seen.iter().map(|p| (p.0, p.1)).collect();
    let mut all_a: Vec<_> = seen_a.iter().map(|p| (p.0, p.1)).collect();
    all.sort();
    all_a.sort();
    assert_eq!(all, all_a, "both managers list the same members");
    drop(on_a.pop());
    unique(&until(&mut on_b[1], common::DEADLINE, |e| e.len() == 4));
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn a_killed_managers_servants_leave_the_others_documents() {
    let dir = temp_dir("kill");
    let _redis = Redis::start(&dir);
    let (a_daemon, a) = manager(&dir);
    let (_b, b) = manager(&dir);
    let _on_a: Vec<TcpStream> = (0..2).map(|_| client(a)).collect();
    let mut on_b = client(b);
    until(&mut on_b, common::DEADLINE, |e| e.len() == 3);
    a_daemon.signal(libc::SIGKILL);
    let killed = Instant::now();
    until(&mut on_b, Duration::from_secs(15), |e| e.len() == 1);
    let took = killed.elapsed();
    println!("a killed manager's servants left within {took:?}");
    // A lease (6 s) and a renewal (2 s), within the 10 s the network allows.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn a_stopped_redis_does_not_slow_a_managers_own_answers() {
    let dir = temp_dir("stop");
    let redis = Redis::start(&dir);
    let (_a, a) = manager(&dir);
    let mut mine = client(a);
    until(&mut mine, common::DEADLINE, |e| e.len() == 1);
    redis.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let mut took = Vec::new();
    while stopped.elapsed() < Duration::from_secs(10) {
        let t = Instant::now();
        mine.write_all(b"needs peer list").unwrap();
        read_doc(&mut mine);
        took.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    // A newcomer during the stall is admitted from the manager's own copy.
    let mut newcomer = client(a);
    let e = until(&mut newcomer, common::DEADLINE, |e| e.len() == 2);
    unique(&e);
    redis.signal(libc::SIGCONT);
    took.sort();
    let p99 = took[took.len() * 99 / 100];
    println!(
        "answers while redis was stopped: {} asked, p99 {p99:?}, max {:?}",
        took.len(),
        took.last().unwrap()
    );
    assert!(p99 < Duration::from_millis(200), "p99 {p99:?}");
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn a_redis_restarted_empty_is_filled_again_without_duplicates() {
    let dir = temp_dir("restart");
    let redis = Redis::start(&dir);
    let (_a, a) = manager(&dir);
    let (_b, b) = manager(&dir);
    let _on_a: Vec<TcpStream> = (0..2).map(|_| client(a)).collect();
    let mut on_b = client(b);
    until(&mut on_b, common::DEADLINE, |e| e.len() == 3);
    drop(redis);
    let _redis = Redis::start(&dir);
    let restarted = Instant::now();
    unique(&until(&mut on_b, Duration::from_secs(5), |e| e.len() == 3));
    println!("refilled within {:?}", restarted.elapsed());
    let mut newcomer = client(b);
    let e = until(&mut newcomer, common::DEADLINE, |e| e.len() == 4);
    unique(&e);
    unique(&until(&mut on_b, common::DEADLINE, |e| e.len() == 4));
}
