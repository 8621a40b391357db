//! The real `churn` against the real `connmgr` (and `servant`): each mode in a short,
//! bounded run, its JSON summary checked against what the manager logged.

mod common;

use std::process::{Command, Output};
use std::time::Instant;

use common::{client, connmgr, Daemon, DEADLINE};
use p2pchat::churn::report::json_number;

/// Runs churn with `args` plus `--json`; returns its exit code, JSON line and stderr.
fn churn(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_churn"))
        .args(args)
        .arg("--json")
        .env_remove("RUST_LOG")
        .output()
        .expect("churn runs");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    (status.code().unwrap_or(-1), stdout, stderr)
}

fn num(json: &str, key: &str) -> u64 {
    json_number(json, key).unwrap_or_else(|| panic!("no {key} in {json}")) as u64
}

/// A servant port range for fanout test `k`. Fanout servants really listen on
/// the ports their manager hands out, and every manager starts at 2224, so two
/// managers running at once (tests in parallel, other test runs on the host) must
/// not hand out the same ones. Below the ephemeral range, spread by process.
fn first_port(k: u32) -> String {
    (20_000 + (std::process::id() * 211 + k * 500) % 12_000).to_string()
}

/// Waits until the manager has logged `n` lines containing `pattern`.
fn wait_count(m: &Daemon, pattern: &str, n: usize) {
    let end = Instant::now() + DEADLINE;
    while m.count(pattern) < n {
        let left = end.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the manager logged {} of {n} {pattern:?} lines ({}):\n{}",
            m.count(pattern),
            process_state(m.pid()),
            m.log_text()
        );
        m.wait_for_within(pattern, left);
    }
}

/// What a process is doing, for a failure message: its state, the kernel function
/// it sleeps in (`pipe_write` would mean its log pipe was full), and how many
/// sockets it holds. A stuck manager and a slow one read differently.
fn process_state(pid: u32) -> String {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    let state = read("status")
        .lines()
        .find(|l| l.starts_with("State:"))
        .unwrap_or("State: gone")
        .to_string();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    format!("{state}, wchan {:?}, {fds} fds", read("wchan"))
}

#[test]
fn join_leave_cycles_match_the_managers_joins_and_leaves() {
    let (m, addr) = connmgr(&[]);
    let target = addr.to_string();
    let (code, json, err) = churn(&[
        "join-leave",
        "-t",
        &target,
        "-c",
        "8",
        "-n",
        "300",
        "-d",
        "10",
        "--verify",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(num(&json, "ops"), 300, "{json}");
    assert_eq!(num(&json, "latency_count"), 300);
    assert_eq!(num(&json, "errors"), 0);
    let connections = num(&json, "connections");
    // Every connection was one whole cycle: drained, nothing cut off.
    assert_eq!(num(&json, "cycles_total"), connections);
    assert!(connections >= 300);
    // --verify: every document parsed and named the asker exactly once.
    assert!(num(&json, "peers_min") >= 1, "{json}");
    wait_count(&m, "left:", connections as usize);
    assert_eq!(m.count("joined:"), connections as usize);
    assert!(
        err.contains("====== join-leave ======"),
        "the human summary goes to stderr with --json"
    );
}

#[test]
fn steady_servants_are_measured_apart_from_churners() {
    let (m, addr) = connmgr(&["--push-interval", "0"]);
    let target = addr.to_string();
    let args = [
        "steady",
        "-t",
        &target,
        "--steady",
        "20",
        "-c",
        "4",
        "--interval",
        "50",
        "-d",
        "1",
        "--verify",
    ];
    let (code, json, err) = churn(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(num(&json, "steady"), 20);
    // 20 servants asking every 50 ms for 1 s: about 400 answers.
    let answers = num(&json, "steady_answers");
    assert!((200..=440).contains(&answers), "{json}");
    assert_eq!(num(&json, "steady_latency_count"), answers);
    assert!(num(&json, "ops") > 0, "the churners cycled: {json}");
    assert_eq!(num(&json, "pushes"), 0, "pushes are off");
    assert_eq!(num(&json, "errors"), 0);
    assert!(
        num(&json, "peers_max") >= 20,
        "the lists hold the steady servants: {json}"
    );
    let connections = num(&json, "connections");
    assert_eq!(connections, num(&json, "cycles_total") + 20);
    wait_count(&m, "left:", connections as usize);
    assert_eq!(m.count("joined:"), connections as usize);
}

#[test]
fn pushed_documents_are_counted_as_pushes_not_answers() {
    let (_m, addr) = connmgr(&["--push-interval", "20"]);
    let target = addr.to_string();
    let args = [
        "steady",
        "-t",
        &target,
        "--steady",
        "10",
        "-c",
        "2",
        "--interval",
        "100",
        "-d",
        "0.5",
    ];
    let (code, json, err) = churn(&args);
    assert_eq!(code, 0, "{err}");
    assert!(
        num(&json, "pushes") > 0,
        "churners joining make pushes: {json}"
    );
    // 10 servants every 100 ms for 0.5 s: no more answers than requests.
    assert!(num(&json, "steady_answers") <= 60, "{json}");
}

#[test]
fn fanout_from_churn_itself_reaches_every_listener() {
    let (m, addr) = connmgr(&["--first-port", &first_port(0)]);
    let target = addr.to_string();
    let (code, json, err) = churn(&[
        "fanout", "-t", &target, "-c", "10", "-n", "30", "--sender", "self",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(num(&json, "ops"), 30, "{json}");
    assert_eq!(num(&json, "listeners"), 10);
    assert_eq!(num(&json, "error_line_missed"), 0);
    assert_eq!(num(&json, "connections"), 10);
    wait_count(&m, "joined:", 10);
    assert_eq!(m.count("joined:"), 10);
    assert!(json.contains("\"sender\":\"self\""), "{json}");
}

#[test]
fn fanout_through_a_real_servant() {
    let (m, addr) = connmgr(&["--first-port", &first_port(1)]);
    let target = addr.to_string();
    let servant = env!("CARGO_BIN_EXE_servant");
    let args = [
        "fanout",
        "-t",
        &target,
        "-c",
        "10",
        "-n",
        "20",
        "--sender",
        "servant",
        "--servant",
        servant,
    ];
    let (code, json, err) = churn(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(num(&json, "ops"), 20, "{json}");
    assert_eq!(num(&json, "errors"), 0);
    // Ten virtual servants and the real one.
    wait_count(&m, "joined:", 11);
    assert!(json.contains("\"sender\":\"servant "), "{json}");
}

#[test]
fn refusals_are_counted_and_change_the_exit_status() {
    let (_m, addr) = connmgr(&["--max-servants", "2"]);
    let target = addr.to_string();
    let (code, json, err) = churn(&["join-leave", "-t", &target, "-c", "6", "-d", "0.3"]);
    assert_eq!(code, 3, "some operations failed: {err}");
    assert!(num(&json, "error_refused_full") > 0, "{json}");
    assert!(
        err.contains("refused_full") && err.contains("max number of servants reached"),
        "{err}"
    );
    assert!(num(&json, "ops") > 0, "two at a time still cycle: {json}");
}

#[test]
fn a_flood_at_a_full_manager_counts_refusals_not_errors() {
    let (m, addr) = connmgr(&["--max-servants", "2"]);
    let _held = [client(addr), client(addr)];
    wait_count(&m, "joined:", 2);
    let target = addr.to_string();
    let (code, json, err) = churn(&["flood", "-t", &target, "-c", "40", "-n", "500"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(num(&json, "ops"), 500, "{json}");
    assert_eq!(num(&json, "errors"), 0, "{json}");
    assert_eq!(num(&json, "documents"), 0, "{json}");
    // Each connection was refused and nothing else: drained, none left over.
    assert_eq!(
        num(&json, "cycles_total"),
        num(&json, "connections"),
        "{json}"
    );
    assert!(err.contains("====== flood ======"), "{err}");
    m.wait_for("refusing");
    assert_eq!(m.count("joined:"), 2, "the flood took no slot");
}

#[test]
fn a_flood_at_a_manager_with_room_says_so() {
    let (_m, addr) = connmgr(&["--max-servants", "100"]);
    let target = addr.to_string();
    let args = [
        "flood",
        "-t",
        &target,
        "-c",
        "3",
        "-d",
        "0.2",
        "--timeout",
        "100",
    ];
    let (code, json, err) = churn(&args);
    assert_eq!(code, 3, "{err}");
    assert!(num(&json, "error_timeout") >= 3, "{json}");
    assert!(err.contains("the manager has room"), "{err}");
}

#[test]
fn an_unreachable_manager_is_a_clear_error() {
    // Bind a port and drop it, so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let (code, json, err) = churn(&["join-leave", "-t", &target, "-c", "2", "-d", "5"]);
    assert_eq!(code, 1, "{err}");
    assert!(json.is_empty());
    assert!(
        err.contains("cannot get anything from the manager") && err.contains("connect_refused"),
        "{err}"
    );
}

#[test]
fn baseline_server_answers_the_bytes_it_is_told() {
    let b = Daemon::spawn(
        env!("CARGO_BIN_EXE_churn"),
        &["baseline-server", "--reply-bytes", "5000"],
    );
    let addr = b.listening_addr().to_string();
    let (code, json, err) = churn(&["join-leave", "-t", &addr, "-c", "4", "-n", "200"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(num(&json, "ops"), 200);
    assert_eq!(num(&json, "doc_bytes_mean"), 5000, "{json}");
}

#[test]
fn bad_options_name_the_flag() {
    for (args, needle) in [
        (&["join-leave", "-c", "many"][..], "--concurrency"),
        (&["fanout", "--sender", "carrier-pigeon"], "--sender"),
        (&["leave-join"], "unknown mode"),
        (&["join-leave", "--target", "nowhere"], "--target"),
        (&["join-leave", "--frobnicate"], "unknown argument"),
    ] {
        let (code, _, err) = churn(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
