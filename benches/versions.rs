//! Versioned peer lists end to end: the real connmgr (release, pushes on,
//! `--log-level warn`) under `churn`, version-aware servants (churn's default)
//! beside the article's bare ones (`--bare`).
//!
//! - poll: 10,000 servants asking every 2 s (a version-aware one fetched the
//!   whole list once as it joined, before the run). Targets for version-aware
//!   ones: connmgr <= 5% of a core, answer p99 <= 5 ms. Bare ones for comparison.
//! - lag: 10,000 version-aware subscribers while churners in the same process
//!   make about 100 joins and 100 leaves a second (`--stay 1000`): how long until
//!   each steady servant's list has each change (target: all within 500 ms), and
//!   connmgr under one core.
//! - capacity: as many registered servants as one connmgr's descriptor limit
//!   allows here (the hard limit is 20,000), the clients split over two churn
//!   processes: RSS, bytes per servant, answer p99, and what 100,000 would need.
//! - join-leave: connmgr CPU per cycle, version-aware churners (`since 0`, the
//!   whole list with its version) against bare ones, interleaved.
//! - storm: 10,000 of the article's servants joining at once, each asking bare as
//!   it connects (`versions/storm.rs`): connmgr's peak RSS (`VmHWM`). Beside it,
//!   bare `needs peer list` CPU per answer with 10,000 registered and bare
//!   join-leave CPU per cycle. With `P2PCHAT_BEFORE_CONNMGR=PATH` (say, the
//!   parent commit's release build) each figure is taken for that binary too,
//!   interleaved, and the two are compared.
//!
//! `cargo bench --bench versions`, or `-- poll lag ...` for some steps only;
//! `P2PCHAT_BENCH_QUICK=1` (or `-- --quick`) runs every step small and short and
//! asserts nothing about timings.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use p2pchat_harness::Spawn;

mod common;
// In benches/versions/, where Cargo does not take it for a bench of its own.
#[path = "versions/storm.rs"]
mod storm;
use common::{get, median, quick, run_steps, verdict, Server, Step, CHURN};

const CONNMGR: &str = env!("CARGO_BIN_EXE_connmgr");
const READY: Duration = Duration::from_secs(10);

/// Starts connmgr at `--log-level warn`, which logs no `listening on` line: it is
/// given a port the OS just handed out, and is ready when that port takes a
/// connection. Thousands of virtual servants share a few addresses, so the
/// per-address cap is lifted.
fn connmgr(extra: &[&str]) -> Server {
    connmgr_from(CONNMGR, extra)
}

/// As [`connmgr`], from the binary at `path` (another build, for comparison).
fn connmgr_from(path: &str, extra: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let process = Spawn::new(path)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--log-level",
            "warn",
        ])
        .args(["--max-per-address", "1000000"])
        .args(extra)
        .ignore_stdout()
        .keep(100)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + READY;
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "connmgr does not listen on {addr}:\n{}",
            process.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { process, addr }
}

/// Runs churn against `m` with `args`, quietly; returns its JSON summary.
fn churn(m: &Server, args: &[&str]) -> String {
    common::churn(m, &[args, &["--quiet"]].concat())
}

/// Share of a core the server used over a run's window, in percent.
fn core(j: &str) -> f64 {
    100.0 * get(j, "server_cpu_s") / get(j, "elapsed_s")
}

struct Plan {
    /// Servants polling (poll, lag).
    servants: usize,
    /// Servants per churn process in the capacity step.
    per_process: usize,
    churners: &'static str,
    /// How long a churner stays, and the lag run's length.
    stay: &'static str,
    lag_secs: &'static str,
    secs: &'static str,
    warmup: &'static str,
    reps: usize,
}

fn main() {
    let quick = quick();
    let p = if quick {
        Plan {
            servants: 300,
            per_process: 200,
            churners: "10",
            stay: "200",
            lag_secs: "1.5",
            secs: "0.5",
            warmup: "0.5",
            reps: 1,
        }
    } else {
        Plan {
            servants: 10_000,
            per_process: 9_950,
            churners: "100",
            stay: "1000",
            lag_secs: "10",
            secs: "5",
            warmup: "3",
            reps: 3,
        }
    };
    println!(
        "versioned peer lists ({} mode, loopback; connmgr release, pushes on, --log-level warn)",
        if quick { "quick" } else { "full" }
    );
    if quick {
        println!("  (quick mode: small and short runs, figures are not meaningful)");
    }
    let steps: [(&str, Step<Plan>); 5] = [
        ("poll", poll),
        ("lag", lag),
        ("capacity", capacity),
        ("join-leave", join_leave),
        ("storm", storm),
    ];
    run_steps(&p, &steps);
}

/// Churn's flags for `n` servants polling every 2 s and nobody churning, measured
/// for the plan's time after its warm-up, each answer allowed `timeout_ms`.
fn polling<'a>(n: &'a str, p: &Plan, timeout_ms: &'a str) -> [&'a str; 13] {
    [
        "steady",
        "--steady",
        n,
        "-c",
        "0",
        "--interval",
        "2000",
        "-d",
        p.secs,
        "--warmup",
        p.warmup,
        "--timeout",
        timeout_ms,
    ]
}

/// Steady servants asking every 2 s, version-aware and bare.
fn poll(p: &Plan) {
    let n = p.servants.to_string();
    let max = (p.servants + 100).to_string();
    // A manager each: the first run's servants leaving would be pushed to the
    // second's.
    let run = |bare: &[&str]| {
        let m = connmgr(&["--max-servants", &max]);
        churn(&m, &[&polling(&n, p, "30000")[..], bare].concat())
    };
    let v = run(&[]);
    let b = run(&["--bare"]);
    println!(
        "poll: {} servants each asking every 2 s, no churn:",
        p.servants
    );
    for (who, j) in [("version-aware", &v), ("bare", &b)] {
        // Bare answers are all whole lists; version-aware ones here `<unchanged/>`.
        let bytes = match who {
            "bare" => format!(
                "{:.0} KB each, {:.2} GB/s",
                get(j, "doc_bytes_mean") / 1e3,
                get(j, "doc_bytes_mean") * get(j, "steady_answers_per_s") / 1e9
            ),
            _ => format!("{:.0} unchanged", get(j, "unchanged")),
        };
        println!(
            "  {who:<13}: connmgr {:>5.1}% of a core, answer p50 {:.2} ms, p99 {:.2} ms, {:.0} answers/s, {bytes}",
            core(j),
            get(j, "steady_latency_p50_us") / 1e3,
            get(j, "steady_latency_p99_us") / 1e3,
            get(j, "steady_answers_per_s"),
        );
    }
    let (cpu, p99) = (core(&v), get(&v, "steady_latency_p99_us") / 1e3);
    println!(
        "  version-aware, whole run: {:.0} whole lists (each servant's first, as it joined), {:.0} deltas; targets <= 5% of a core: {}, p99 <= 5 ms: {}",
        get(&v, "wholes"),
        get(&v, "deltas"),
        verdict(cpu <= 5.0),
        verdict(p99 <= 5.0)
    );
}

/// Subscribers' lists while churners join and leave about 100 times a second.
fn lag(p: &Plan) {
    let n = p.servants.to_string();
    let max = (p.servants + 1000).to_string();
    let m = connmgr(&["--max-servants", &max]);
    let args = [
        "steady",
        "--steady",
        &n,
        "--interval",
        "2000",
        "-c",
        p.churners,
        "--stay",
        p.stay,
        // Churners are told apart by source address: 1,016 of them, each reused
        // about every 10 s, while a churner stays 1 s.
        "--bind",
        "127.4.0.1-127.4.3.254",
        "-d",
        p.lag_secs,
        "--warmup",
        p.warmup,
        "--timeout",
        "30000",
    ];
    let j = churn(&m, &args);
    let rate = get(&j, "ops_per_s");
    println!(
        "lag: {} version-aware servants asking every 2 s while {} churners each join, get the whole list, stay {} ms and leave ({rate:.0} joins/s and as many leaves):",
        p.servants, p.churners, p.stay
    );
    let late = get(&j, "list_lag_late");
    println!(
        "  change until each steady servant's list has it, {:.0} samples: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms; {late:.0} over 500 ms; {:.0} gaps",
        get(&j, "list_lag_count"),
        get(&j, "list_lag_p50_us") / 1e3,
        get(&j, "list_lag_p99_us") / 1e3,
        get(&j, "list_lag_p999_us") / 1e3,
        get(&j, "list_lag_max_us") / 1e3,
        get(&j, "gaps"),
    );
    let cpu = core(&j);
    println!(
        "  connmgr {cpu:.0}% of a core (churn {:.0}%); {:.0} pushes/s; steady answers p99 {:.2} ms (churners in the same process delay them); targets: all within 500 ms: {}, under one core: {}",
        100.0 * get(&j, "client_cpu_s") / get(&j, "elapsed_s"),
        get(&j, "pushes") / get(&j, "elapsed_s"),
        get(&j, "steady_latency_p99_us") / 1e3,
        verdict(late == 0.0 && get(&j, "list_lag_count") > 0.0),
        verdict(cpu < 100.0)
    );
}

/// As many registered servants as one manager's descriptors allow, from two churns.
///
/// The first churn process's servants join, fetch their lists and poll; once it
/// logs its first measured second, the second joins and is measured, so that its
/// window sees all of them polling and nobody joining. The first is then stopped.
fn capacity(p: &Plan) {
    let per = p.per_process;
    let total = 2 * per;
    let max = (total + 50).to_string();
    let m = connmgr(&["--max-servants", &max, "--idle-timeout", "0"]);
    let pid = m.pid();
    let idle = m.rss() as f64;
    let n = per.to_string();
    let first = Spawn::new(CHURN)
        .args(["steady", "--steady", &n, "-c", "0", "--interval", "2000"])
        .args([
            "-d",
            "600",
            "--timeout",
            "60000",
            "--bind",
            "127.5.0.1-127.5.0.100",
        ])
        .args(["-t", &m.addr.to_string()])
        .keep(100)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    first
        .wait_for("1 s]", Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    let bind = ["--bind", "127.6.0.1-127.6.0.100"];
    let j = churn(&m, &[&polling(&n, p, "60000")[..], &bind].concat());
    let _ = first.signal(libc::SIGINT);
    let rss = get(&j, "server_rss_bytes");
    let peak = peak_rss(pid);
    let per_servant = (rss - idle) / total as f64;
    println!("capacity: {total} version-aware servants registered (two churn processes of {per}), asking every 2 s:");
    println!(
        "  connmgr RSS {:.1} MiB ({:.1} idle, peak {:.0} MiB while whole lists went out to the second process's servants joining), {per_servant:.0} bytes per servant; {:.1}% of a core; answer p50 {:.2} ms, p99 {:.2} ms ({:.0} answers/s); whole list {:.2} MB",
        rss / 1048576.0,
        idle / 1048576.0,
        peak / 1048576.0,
        core(&j),
        get(&j, "steady_latency_p50_us") / 1e3,
        get(&j, "steady_latency_p99_us") / 1e3,
        get(&j, "steady_answers_per_s"),
        total as f64 * 85.0 / 1e6,
    );
    println!(
        "  100,000 would need: about {:.0} MiB of RSS, 100,000+ descriptors (a hard limit raised past 20,000), more ports than 2224..65535 holds (63,312: the port counter would have to be per address), and {:.1} MB per whole list, sent once to each newcomer",
        (idle + 100_000.0 * per_servant) / 1048576.0,
        100_000.0 * 85.0 / 1e6
    );
}

/// The most memory `pid` has held (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(f64::NAN) * 1024.0
}

/// connmgr CPU per join-leave cycle: version-aware churners against bare ones.
fn join_leave(p: &Plan) {
    let m = connmgr(&[]);
    let args = ["join-leave", "-c", "50", "-d", p.secs, "--warmup", "0.5"];
    let bare = [&args[..], &["--bare"]].concat();
    let (mut v, mut b) = (vec![], vec![]);
    for _ in 0..p.reps {
        v.push(get(&churn(&m, &args), "server_cpu_us_per_op"));
        b.push(get(&churn(&m, &bare), "server_cpu_us_per_op"));
    }
    let (v, b) = (median(v), median(b));
    println!(
        "join-leave, 50 concurrent: connmgr {v:.2} us CPU per cycle version-aware (`since 0`: the whole list with its version), {b:.2} us bare; ratio {:.2}",
        v / b
    );
}

/// A bare join storm's peak memory, and bare answer and join-leave CPU, for this
/// build and (with `P2PCHAT_BEFORE_CONNMGR`) another.
fn storm(p: &Plan) {
    let n = p.servants;
    let max = (n + 100).to_string();
    let before = std::env::var("P2PCHAT_BEFORE_CONNMGR").ok();
    let builds: Vec<(&str, &str)> = before
        .as_deref()
        .map(|b| ("before", b))
        .into_iter()
        .chain([("this build", CONNMGR)])
        .collect();
    let ns = n.to_string();
    // About 200 answers/s whatever n is, each the whole document (pushes off).
    let interval = (n as u64 * 1000 / 200).to_string();
    let asking = [
        "steady",
        "--steady",
        &ns,
        "-c",
        "0",
        "--interval",
        &interval,
        "-d",
        p.secs,
        "--bare",
    ];
    let cycling = [
        "join-leave",
        "-c",
        "50",
        "-d",
        p.secs,
        "--warmup",
        "0.5",
        "--bare",
    ];
    let mut figures = vec![(vec![], vec![], vec![]); builds.len()];
    for _ in 0..p.reps {
        // Interleaved, so that load from elsewhere on the host hits every build alike.
        for ((_, bin), (peaks, answers, cycles)) in builds.iter().zip(&mut figures) {
            // Nobody asks twice: a storm longer than the idle timeout would drop the first.
            let m = connmgr_from(bin, &["--max-servants", &max, "--idle-timeout", "0"]);
            let took = storm::run(m.addr, n, Duration::from_secs(600))
                .unwrap_or_else(|e| panic!("{bin}: {e}\n{}", m.process.log_text()));
            peaks.push(peak_rss(m.pid()));
            drop(m);
            println!(
                "  ({bin}: storm listed all in {:.1} s, {:.2} GB read in all)",
                took.listed_after.as_secs_f64(),
                took.bytes as f64 / 1e9
            );
            let quiet = ["--push-interval", "0", "--idle-timeout", "0"];
            let m = connmgr_from(bin, &[&quiet[..], &["--max-servants", &max]].concat());
            answers.push(get(&churn(&m, &asking), "server_cpu_us_per_op"));
            drop(m);
            let m = connmgr_from(bin, &[]);
            cycles.push(get(&churn(&m, &cycling), "server_cpu_us_per_op"));
        }
    }
    println!(
        "storm: {n} bare servants joining at once, each asking as it connects; medians of {} runs:",
        p.reps
    );
    let mut medians = vec![];
    for ((who, _), (peaks, answers, cycles)) in builds.iter().zip(figures) {
        let (peak, answer, cycle) = (median(peaks), median(answers), median(cycles));
        println!(
            "  {who:<10}: connmgr peak RSS {:>7.1} MiB; bare answer with {n} registered {answer:>6.1} us CPU; bare join-leave {cycle:>5.2} us CPU per cycle",
            peak / 1048576.0
        );
        medians.push((peak, answer, cycle));
    }
    let &(peak, answer, cycle) = medians.last().expect("this build");
    if let [(b_peak, b_answer, b_cycle), _] = medians[..] {
        println!(
            "  this build / before: peak RSS {:.3}, answer CPU {:.2}, join-leave CPU {:.2}",
            peak / b_peak,
            answer / b_answer,
            cycle / b_cycle
        );
    }
    println!(
        "  target: peak under 100 MiB: {}",
        verdict(peak < 100.0 * 1048576.0)
    );
}
