//! End to end: the real connmgr (and servant) under `churn`, each figure next to a
//! baseline measured in the same run, and the targets beside them.
//!
//! - join-leave: connmgr CPU per cycle / the trivial mio server's (`churn
//!   baseline-server`, same load, replies of the same size; the client closes
//!   first against both). Target <= 1.10. With `strace` installed, also the
//!   syscalls per cycle of each ([`syscalls`]).
//! - needs peer list with 10,000 servants registered: connmgr CPU per answer /
//!   the baseline sending the same bytes from a static buffer. Target <= 2.
//! - steady p99 of 1,000 polling servants while join-leave runs flat out. < 5 ms.
//! - steady p99 of 50 servants polling every 100 ms while another process keeps
//!   6,000 connections past `--max-servants` in flight, and without it ([`flood`]).
//!   < 5 ms.
//! - connmgr RSS idle (< 3 MB) and per connected servant at 10,000 (< 2 KB).
//! - fanout to 100 servants through a real servant, p99. < 10 ms.
//! - stripped release binaries. < 1 MiB each.
//! - peers: server CPU per cycle of connmgr, redis-server and opentracker (when
//!   installed) under the same client, each beside the baseline doing the same
//!   exchange ([`peers`]). No target: for the reader's bearings.
//!
//! connmgr runs at its default log level, its stderr a pipe the bench reads.
//! Servers' CPU is read from /proc/PID/schedstat over churn's measured window.
//! `cargo bench --bench churn`, or `-- join-leave flood ...` for some steps only;
//! `P2PCHAT_BENCH_QUICK=1` (or `-- --quick`) runs every step small and short, for
//! CI, and asserts nothing about timings.

use std::process::{Command, Stdio};
use std::time::Duration;

use p2pchat_harness::Spawn;

mod common;
use common::{churn, get, median, quick, run_steps, verdict, Server, Step, CHURN};

// In benches/churn/, where Cargo does not take them for benches of their own.
#[path = "churn/flood.rs"]
mod flood;
#[path = "churn/peers.rs"]
mod peers;
#[path = "churn/syscalls.rs"]
mod syscalls;

const CONNMGR: &str = env!("CARGO_BIN_EXE_connmgr");
const SERVANT: &str = env!("CARGO_BIN_EXE_servant");
/// How long a server may take to start listening.
const READY: Duration = Duration::from_secs(10);
/// Log lines of a server kept in the bench's memory; the rest are read and let go.
const KEEP_LOG: usize = 1000;

/// Starts `program` and waits for its `listening on` line. Its stderr goes to a
/// pipe that a thread here reads to the end, keeping the last lines: what a log
/// shipper does for a daemon in production. (Sent to /dev/null the log would cost
/// the server the same write(2) per line; a pipe nobody read would stall it once
/// full.)
fn server(spawn: Spawn) -> Server {
    let process = spawn
        .ignore_stdout()
        .keep(KEEP_LOG)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = process
        .listening_addr(READY)
        .unwrap_or_else(|e| panic!("{e}"));
    Server { process, addr }
}

/// Starts connmgr on 127.0.0.1 as an operator would: the default log level (a
/// line per join and per leave), stderr to a pipe that is read. Every virtual
/// servant comes from one address, so the per-address cap is lifted.
fn connmgr(extra: &[&str]) -> Server {
    server(
        Spawn::new(CONNMGR)
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(["--max-per-address", "1000000"])
            .args(extra),
    )
}

/// Starts `churn baseline-server` answering `bytes` per request.
fn baseline(bytes: u64) -> Server {
    server(Spawn::new(CHURN).args(["baseline-server", "--reply-bytes", &bytes.to_string()]))
}

struct Plan {
    reps: usize,
    secs: &'static str,
    warmup: &'static str,
    registered: usize,
    steady: usize,
    fanout: usize,
    /// Connections the flood keeps in flight.
    flood: usize,
    /// Join-leave cycles counted under strace.
    traced: u64,
}

fn main() {
    let quick = quick();
    let p = if quick {
        Plan {
            reps: 1,
            secs: "0.3",
            warmup: "0",
            registered: 300,
            steady: 100,
            fanout: 20,
            flood: 500,
            traced: 200,
        }
    } else {
        Plan {
            reps: 5,
            secs: "3",
            warmup: "0.5",
            registered: 10_000,
            steady: 1_000,
            fanout: 100,
            flood: 6_000,
            traced: 2_000,
        }
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "end-to-end churn ({} mode, {cores} cores, loopback; medians of {} runs of {} s)",
        if quick { "quick" } else { "full" },
        p.reps,
        p.secs
    );
    if quick {
        println!("  (quick mode: small and short runs, figures are not meaningful)");
    }
    let steps: [(&str, Step<Plan>); 7] = [
        ("join-leave", join_leave),
        ("peer-list", peer_list),
        ("steady", steady),
        ("flood", flood::steady_under_flood),
        ("fanout", fanout),
        ("peers", peers::peers),
        ("sizes", |_| sizes()),
    ];
    run_steps(&p, &steps);
}

/// connmgr CPU per join-leave cycle against the baseline's, same load and reply size.
fn join_leave(p: &Plan) {
    let args = ["join-leave", "-c", "50", "-d", p.secs, "--warmup", p.warmup];
    let m = connmgr(&[]);
    let quiet = connmgr(&["--push-interval", "0"]);
    let first = churn(&m, &args);
    let bytes = get(&first, "doc_bytes_mean").round().max(17.0) as u64;
    let b = baseline(bytes);
    let (mut cm, mut cq, mut cb, mut rate, mut rate_b, mut p99) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..p.reps {
        // Interleaved, so that load from elsewhere on the host hits all three alike.
        let j = churn(&m, &args);
        cm.push(get(&j, "server_cpu_us_per_op"));
        rate.push(get(&j, "ops_per_s"));
        p99.push(get(&j, "latency_p99_us"));
        cq.push(get(&churn(&quiet, &args), "server_cpu_us_per_op"));
        let j = churn(&b, &args);
        cb.push(get(&j, "server_cpu_us_per_op"));
        rate_b.push(get(&j, "ops_per_s"));
    }
    let (cm, cq, cb) = (median(cm), median(cq), median(cb));
    println!("join-leave, 50 concurrent servants, replies of {bytes} bytes, the client closing first; connmgr at its default log level (2 lines per cycle to a pipe):");
    println!(
        "  connmgr:  {cm:>7.2} us CPU per cycle, {:>6.0} cycles/s, p99 {:.2} ms",
        median(rate),
        median(p99) / 1e3
    );
    println!("  connmgr --push-interval 0: {cq:.2} us CPU per cycle");
    println!(
        "  baseline: {cb:>7.2} us CPU per cycle, {:>6.0} cycles/s",
        median(rate_b)
    );
    let ratio = cm / cb;
    println!(
        "  ratio {ratio:.2} (pushes off {:.2}); target <= 1.10: {}",
        cq / cb,
        verdict(ratio <= 1.10)
    );
    syscalls::per_cycle(p, &[("connmgr", &m), ("baseline", &b)]);
}

/// `needs peer list` answered to many registered servants, against the baseline
/// sending the same bytes; also connmgr's memory idle and with them all connected.
fn peer_list(p: &Plan) {
    let n = p.registered;
    let max = (n + 100).to_string();
    // Each servant asks once per interval: about 200 answers/s whatever n is.
    let interval = (n as u64 * 1000 / 200).to_string();
    let ns = n.to_string();
    // Bare: each answer is the whole document (version-aware servants would be
    // told `<unchanged/>`; benches/versions.rs has those).
    let args = [
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
    let m = connmgr(&[
        "--push-interval",
        "0",
        "--idle-timeout",
        "0",
        "--max-servants",
        &max,
    ]);
    let idle = m.rss();
    let mut cm = vec![];
    let mut rss = vec![];
    let mut bytes = 0.0;
    for _ in 0..p.reps.min(3) {
        let j = churn(&m, &args);
        cm.push(get(&j, "server_cpu_us_per_op"));
        rss.push(get(&j, "server_rss_bytes"));
        bytes = get(&j, "doc_bytes_mean");
    }
    let b = baseline(bytes.round() as u64);
    let cb: Vec<f64> = (0..p.reps.min(3))
        .map(|_| get(&churn(&b, &args), "server_cpu_us_per_op"))
        .collect();
    let (cm, cb, rss) = (median(cm), median(cb), median(rss));
    let ratio = cm / cb;
    println!("needs peer list with {n} servants registered ({bytes:.0}-byte answers, pushes off):");
    println!("  connmgr {cm:.1} us CPU per answer, baseline {cb:.1} us; ratio {ratio:.2}; target <= 2: {}", verdict(ratio <= 2.0));
    let per = (rss - idle as f64) / n as f64;
    println!(
        "  connmgr RSS idle {:.2} MiB (target < 3 MB: {}); with {n} connected {:.2} MiB, {per:.0} bytes per servant (target < 2 KB: {})",
        idle as f64 / 1048576.0,
        verdict((idle as f64) < 3e6),
        rss / 1048576.0,
        verdict(per < 2048.0)
    );
}

/// Steady servants' answer latency while churners join and leave flat out.
///
/// The churners run in a second churn process: in one process the steady servants'
/// answers would wait behind the churners' events in churn's own single thread
/// (near 100 % of a core), and the figure would measure the load generator.
/// Returns `(steady JSON, churners' JSON)`.
fn steady_under_churn(p: &Plan, m: &Server) -> (String, String) {
    let n = p.steady.to_string();
    // Long enough to cover the steady run's setup, warm-up and measurement.
    let total = format!(
        "{:.1}",
        p.secs.parse::<f64>().unwrap() + p.warmup.parse::<f64>().unwrap() + 2.0
    );
    let churners = Command::new(CHURN)
        .args([
            "join-leave",
            "-t",
            &m.addr.to_string(),
            "-c",
            "50",
            "-d",
            &total,
            "--json",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("churn join-leave starts");
    let args = [
        "steady",
        "--steady",
        &n,
        "-c",
        "0",
        "--interval",
        "1000",
        "-d",
        p.secs,
        "--warmup",
        p.warmup,
    ];
    let steady = churn(m, &args);
    let out = churners.wait_with_output().expect("churn join-leave ends");
    (
        steady,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

fn steady(p: &Plan) {
    let max = (p.steady + 1000).to_string();
    let m = connmgr(&["--push-interval", "0", "--max-servants", &max]);
    let runs: Vec<(String, String)> = (0..p.reps.min(3))
        .map(|_| steady_under_churn(p, &m))
        .collect();
    let pick = |key: &str| median(runs.iter().map(|(s, _)| get(s, key)).collect()) / 1e3;
    let (p50, p99) = (pick("steady_latency_p50_us"), pick("steady_latency_p99_us"));
    let cycles = median(runs.iter().map(|(_, c)| get(c, "ops_per_s")).collect());
    println!(
        "steady: {} servants each asking every 1 s while another churn process runs join-leave -c 50 flat out ({cycles:.0} cycles/s), pushes off:",
        p.steady
    );
    println!(
        "  steady answers p50 {p50:.2} ms, p99 {p99:.2} ms; target p99 < 5 ms: {}",
        verdict(p99 < 5.0)
    );
    drop(m);
    // With pushes on (the default), joins and leaves send the whole list to every
    // steady servant, paced by the manager.
    let m = connmgr(&["--max-servants", &max]);
    let (s, c) = steady_under_churn(p, &m);
    println!(
        "  with pushes on (default): p99 {:.2} ms, {:.0} cycles/s, {:.0} pushed documents/s to the steady servants, connmgr {:.0}% of a core",
        get(&s, "steady_latency_p99_us") / 1e3,
        get(&c, "ops_per_s"),
        get(&s, "pushes") / get(&s, "elapsed_s"),
        100.0 * get(&s, "server_cpu_s") / get(&s, "elapsed_s")
    );
}

/// Time until every listener has a line, sent by a real servant and by churn itself.
fn fanout(p: &Plan) {
    let n = p.fanout.to_string();
    // Fanout servants listen on the ports the manager hands out: keep them clear of
    // the default 2224.. that test runs and servants on this host may be using.
    let first = (15_000 + std::process::id() % 5_000).to_string();
    let m = connmgr(&["--first-port", &first]);
    for sender in ["servant", "self"] {
        let mut args = vec!["fanout", "-c", &n, "-d", p.secs, "--sender", sender];
        if sender == "servant" {
            args.extend(["--servant", SERVANT]);
        }
        let runs: Vec<String> = (0..p.reps.min(3)).map(|_| churn(&m, &args)).collect();
        let p50 = median(runs.iter().map(|j| get(j, "latency_p50_us")).collect()) / 1e3;
        let p99 = median(runs.iter().map(|j| get(j, "latency_p99_us")).collect()) / 1e3;
        println!(
            "fanout to {} listeners, sender {sender}: p50 {p50:.2} ms, p99 {p99:.2} ms{}",
            p.fanout,
            if sender == "servant" {
                format!("; target p99 < 10 ms: {}", verdict(p99 < 10.0))
            } else {
                String::new()
            }
        );
    }
}

fn sizes() {
    let mut line = String::from("release binaries (stripped):");
    for path in [CONNMGR, SERVANT, CHURN] {
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        let name = std::path::Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy();
        line += &format!(
            " {name} {:.0} KiB ({})",
            size as f64 / 1024.0,
            verdict(size < 1 << 20)
        );
    }
    println!("{line}; target < 1 MiB each");
    // `cargo build-static` output, when it has been built.
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/x86_64-unknown-linux-gnu/static"
    );
    let mut line = String::from("static binaries (cargo build-static):");
    for name in ["connmgr", "servant"] {
        match std::fs::metadata(format!("{dir}/{name}")) {
            Ok(m) => {
                line += &format!(
                    " {name} {} bytes ({})",
                    m.len(),
                    verdict(m.len() <= 1 << 20)
                )
            }
            Err(_) => return println!("static binaries: not built (run `cargo build-static`)"),
        }
    }
    println!("{line}; target <= 1 MiB each");
}
