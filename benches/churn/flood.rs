//! Steady servants' answer latency while a second churn process floods the manager
//! with connections past `--max-servants` (`churn flood`: each refused and made
//! again at once, thousands in flight), next to the same servants without the
//! flood, on the same manager, runs interleaved.

use std::time::Duration;

use p2pchat_harness::{Process, Spawn};

use super::{connmgr, get, median, verdict, Plan, Server, CHURN, READY};

/// The servants that fill the manager: all it admits.
const STEADY: usize = 50;
/// How long a churn run may take beyond its own phases.
const SLACK: Duration = Duration::from_secs(30);

pub fn steady_under_flood(p: &Plan) {
    let max = STEADY.to_string();
    let m = connmgr(&["--max-servants", &max]);
    let (mut calm, mut flooded, mut floods) = (vec![], vec![], vec![]);
    for _ in 0..p.reps.min(3) {
        // Interleaved, so that load from elsewhere on the host hits both alike.
        calm.push(steady_run(p, &m, None).0);
        let (s, f) = steady_run(p, &m, Some(p.flood));
        flooded.push(s);
        floods.extend(f);
    }
    let pick = |runs: &[String], key: &str| median(runs.iter().map(|j| get(j, key)).collect());
    let ms = |runs: &[String], key: &str| pick(runs, key) / 1e3;
    let core = |runs: &[String]| {
        100.0
            * median(
                runs.iter()
                    .map(|j| get(j, "server_cpu_s") / get(j, "elapsed_s"))
                    .collect(),
            )
    };
    println!(
        "steady under a flood: {STEADY} servants each asking every 100 ms fill connmgr --max-servants {STEADY}:"
    );
    println!(
        "  without a flood:  p50 {:.2} ms, p99 {:.2} ms, connmgr {:.0}% of a core",
        ms(&calm, "steady_latency_p50_us"),
        ms(&calm, "steady_latency_p99_us"),
        core(&calm)
    );
    let p99 = ms(&flooded, "steady_latency_p99_us");
    println!(
        "  with another churn process keeping {} connections in flight, each refused ({:.0} refusals/s, {:.0} flood errors):",
        p.flood,
        pick(&floods, "ops_per_s"),
        pick(&floods, "errors")
    );
    println!(
        "                    p50 {:.2} ms, p99 {p99:.2} ms, connmgr {:.0}% of a core; target p99 <= 5 ms: {}",
        ms(&flooded, "steady_latency_p50_us"),
        core(&flooded),
        verdict(p99 <= 5.0)
    );
}

/// One steady run against `m`, with a flood of `flood` connections running from
/// another process through its measured window if asked. Returns the JSON
/// summaries of the steady run and of the flood.
fn steady_run(p: &Plan, m: &Server, flood: Option<usize>) -> (String, Option<String>) {
    let target = m.addr.to_string();
    let warmup = if super::quick() { "0.3" } else { "1" };
    let steady = Spawn::new(CHURN)
        .args(["steady", "-t", &target, "--steady", &STEADY.to_string()])
        .args([
            "-c",
            "0",
            "--interval",
            "100",
            "-d",
            p.secs,
            "--warmup",
            warmup,
        ])
        .args(["--server-pid", &m.pid().to_string(), "--json"])
        .args(["--log-level", "info"])
        .name("churn steady")
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    // Logged once every steady servant has joined, so the flood finds the manager full.
    steady
        .wait_for("warming up", READY)
        .unwrap_or_else(|e| panic!("{e}"));
    let flood = flood.map(|n| {
        let f = Spawn::new(CHURN)
            .args(["flood", "-t", &target, "-c", &n.to_string(), "-d", "3600"])
            .args(["--json", "--log-level", "info"])
            .name("churn flood")
            .start()
            .unwrap_or_else(|e| panic!("{e}"));
        f.wait_for("connections in flight", READY)
            .unwrap_or_else(|e| panic!("{e}"));
        f
    });
    let json = summary(steady);
    // SIGINT: the flood stops, lets what is in flight finish, and reports.
    let flood = flood.map(|f| {
        f.signal(libc::SIGINT).unwrap_or_else(|e| panic!("{e}"));
        summary(f)
    });
    (json, flood)
}

/// Waits for a churn run to end and returns its JSON line; shows its log if it
/// counted errors.
fn summary(mut run: Process) -> String {
    let status = run.wait_exit(SLACK).unwrap_or_else(|e| panic!("{e}"));
    let json = run.stdout_line(READY).unwrap_or_default();
    if !status.success() {
        eprintln!("{} exited with {status}:\n{}", run.name(), run.log_text());
    }
    json
}
