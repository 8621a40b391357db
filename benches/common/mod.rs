//! What the end-to-end benches (`churn` and `versions`) share: the server under
//! test, churn's JSON summary and the figures read from it, and running the steps
//! named on the command line. A folder without `main.rs`, so that Cargo does not
//! take it for a bench of its own.

use std::net::SocketAddr;
use std::process::Output;

use p2pchat::churn::{procfs, report::json_number};
use p2pchat_harness::Process;

/// Whether to run every step small and short: `P2PCHAT_BENCH_QUICK=1` or `-- --quick`.
pub fn quick() -> bool {
    std::env::var_os("P2PCHAT_BENCH_QUICK").is_some_and(|v| v != "0")
        || std::env::args().any(|a| a == "--quick")
}

/// A server process, killed when dropped.
pub struct Server {
    pub process: Process,
    pub addr: SocketAddr,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn rss(&self) -> u64 {
        procfs::rss_bytes(self.pid()).unwrap_or(0)
    }
}

/// The churn binary the benches drive.
pub const CHURN: &str = env!("CARGO_BIN_EXE_churn");

/// Runs churn against `server` with `args` to its end; returns its JSON summary.
pub fn churn(server: &Server, args: &[&str]) -> String {
    let out = std::process::Command::new(CHURN)
        .args(args)
        .args(["-t", &server.addr.to_string(), "--json"])
        .args(["--server-pid", &server.pid().to_string()])
        .env_remove("RUST_LOG")
        .output()
        .expect("churn runs");
    summary(&out, args)
}

/// The JSON summary of a churn run that ended with `out`; churn's stderr is shown
/// when it printed no summary or counted errors, since its figures are then suspect.
pub fn summary(out: &Output, args: &[&str]) -> String {
    let json = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let errors = json_number(&json, "errors").unwrap_or(-1.0);
    if json.is_empty() || errors != 0.0 {
        eprintln!(
            "churn {args:?}: exit {:?}, {errors} errors\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    json
}

/// A figure of a summary; NaN when it is missing, so that it shows in the output.
pub fn get(json: &str, key: &str) -> f64 {
    json_number(json, key).unwrap_or(f64::NAN)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// One step of a bench, run with its plan.
pub type Step<P> = fn(&P);

/// Runs the steps named on the command line (`cargo bench --bench churn -- flood
/// steady`), in the bench's order, or every step when none is named.
pub fn run_steps<P>(plan: &P, steps: &[(&str, Step<P>)]) {
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (name, step) in steps {
        if chosen.is_empty() || chosen.iter().any(|c| c == name) {
            step(plan);
        }
    }
}

/// 0-500 ms, different for each `k`: the servant's jitter before it tries the
/// next manager (`src/servant/link/failover.rs`).
#[allow(dead_code)] // the failover benches' only
pub fn jitter(k: usize) -> std::time::Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(k);
    std::time::Duration::from_millis(h.finish() % 501)
}

/// Raises the soft descriptor limit to the hard one: one descriptor per servant,
/// here and in the daemons started from here, which inherit it.
#[allow(dead_code)]
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}
