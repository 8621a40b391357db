//! What every step of the cluster bench stands on: a `redis-server` of its own on
//! a Unix socket in a temporary folder, three release `connmgr --cluster` on it,
//! a light version-aware client, CPU readings and percentiles.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use p2pchat::churn::procfs;
use p2pchat::wire::delta::answer_end;
use p2pchat_harness::{Process, Spawn};

use super::common::Server;

const CONNMGR: &str = env!("CARGO_BIN_EXE_connmgr");
pub const READY: Duration = Duration::from_secs(30);

/// A `redis-server` of the bench's own, killed (after a SIGCONT) when dropped.
pub struct Redis {
    process: Process,
    dir: PathBuf,
}

impl Redis {
    /// Listens on a Unix socket only (`--port 0`), as tests/cluster.rs starts it.
    pub fn start(name: &str) -> Redis {
        let dir = std::env::temp_dir().join(format!(
            "p2pchat-bench-cluster-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("redis.sock");
        let process = Spawn::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&sock)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .keep(50)
            .start()
            .unwrap_or_else(|e| panic!("{e} (install redis-server)"));
        let deadline = Instant::now() + READY;
        while UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "redis-server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { process, dir }
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.dir.join("redis.sock").display())
    }

    pub fn signal(&self, sig: i32) {
        self.process
            .signal(sig)
            .expect("redis-server takes a signal");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.process.signal(libc::SIGCONT);
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three managers on `redis`, each once it said it is in step with it.
pub fn cluster(redis: &Redis, extra: &[&str]) -> Vec<Server> {
    let url = redis.url();
    let managers: Vec<Server> = (0..3)
        .map(|_| {
            let cluster = ["--cluster", &url, "--cluster-prefix", "bench"];
            let log = ["--log-level", "warn,p2pchat::connmgr::cluster=info"];
            connmgr(&[&cluster[..], &log, extra].concat())
        })
        .collect();
    for m in &managers {
        m.process
            .wait_for("in step with redis", READY)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    managers
}

/// A release connmgr on 127.0.0.1 with `args`, its port picked here so that its
/// address is known before it logs. Thousands of light servants share a few
/// addresses, so the per-address cap is lifted.
pub fn connmgr(args: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let process = Spawn::new(CONNMGR)
        .args(["--bind", "127.0.0.1", "--port", &port])
        .args(["--max-per-address", "1000000", "--max-servants", "40000"])
        .args(args)
        .ignore_stdout()
        .keep(100)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    Server { process, addr }
}

/// A version-aware client on a blocking socket: asks `since` the version it has,
/// reads one answer.
pub struct Light {
    pub s: TcpStream,
    pub version: String,
    buf: Vec<u8>,
}

impl Light {
    pub fn connect(to: SocketAddr) -> std::io::Result<Light> {
        let s = TcpStream::connect(to)?;
        s.set_read_timeout(Some(READY))?;
        s.set_nodelay(true)?;
        Ok(Light::on(s))
    }

    pub fn on(s: TcpStream) -> Light {
        Light {
            s,
            version: "0".into(),
            buf: Vec::new(),
        }
    }

    /// Sends `needs peer list since V`.
    pub fn ask(&mut self) -> std::io::Result<()> {
        let line = format!("needs peer list since {}\n", self.version);
        self.s.write_all(line.as_bytes())
    }

    /// The next whole answer (a document, a delta or an unchanged), following its
    /// version.
    pub fn answer(&mut self) -> std::io::Result<Vec<u8>> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let start = self.buf.iter().position(|&b| b == b'<').unwrap_or(0);
            self.buf.drain(..start);
            // answer_end wants at least the `<`.
            if let Some(end) = Some(&self.buf)
                .filter(|b| !b.is_empty())
                .and_then(|b| answer_end(b))
            {
                let a: Vec<u8> = self.buf.drain(..end).collect();
                if let Some(v) = version_of(&a) {
                    self.version = v;
                }
                return Ok(a);
            }
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Asks and reads the answer: how long it took.
    pub fn poll(&mut self) -> std::io::Result<Duration> {
        let t = Instant::now();
        self.ask()?;
        self.answer()?;
        Ok(t.elapsed())
    }
}

/// The version an answer brings the list to: a document's or unchanged's
/// `version`, a delta's `to`.
fn version_of(answer: &[u8]) -> Option<String> {
    let tag = &answer[..memchr::memchr(b'>', answer)?];
    let tag = std::str::from_utf8(tag).ok()?;
    let key = if tag.starts_with("<delta") {
        " to=\""
    } else {
        " version=\""
    };
    let rest = &tag[tag.find(key)? + key.len()..];
    Some(rest[..rest.find('"')?].to_string())
}

/// CPU a process used so far, in nanoseconds (schedstat, else /proc/PID/stat).
pub fn cpu_ns(pid: u32) -> u64 {
    procfs::cpu_ns(pid).map(|c| c.0).unwrap_or(0)
}

pub fn rss_mib(pid: u32) -> f64 {
    procfs::rss_bytes(pid).unwrap_or(0) as f64 / 1048576.0
}

/// The `p` quantile of `sorted`, in milliseconds (NaN when empty).
pub fn quantile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

/// A socket from `source`, so a join can be told apart by its address.
pub fn connect_from(source: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    s.bind(&from.into())?;
    s.connect(&to.into())?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(READY))?;
    s.set_nodelay(true)?;
    Ok(s)
}
