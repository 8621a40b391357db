//! The real `churn` against the real `connmgr` (and `servant`): each mode in a short,
//! bounded run, its JSON summary checked against what the manager logged; and
//! against a tiny server each test runs, for the generic protocol, source
//! addresses, the open loop and the output formats.

mod common;
#[path = "churn/generic.rs"]
mod generic;
#[path = "churn/guide.rs"]
mod guide;
#[path = "churn/outputs.rs"]
mod outputs;
#[path = "churn/workers.rs"]
mod workers;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin, client, connmgr, Daemon, DEADLINE};
use p2pchat::churn::report::json::Value;
use p2pchat::churn::report::json_number;

/// Runs churn with `args`; returns its exit code, stdout and stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_churn"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("churn runs");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    (status.code().unwrap_or(-1), stdout, stderr)
}

/// Runs churn with `args`, which must succeed; returns its stdout and stderr.
fn run_ok(args: &[&str]) -> (String, String) {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{err}");
    (out, err)
}

/// Runs churn with `args` plus `--json`; returns its exit code, JSON line and stderr.
fn churn(args: &[&str]) -> (i32, String, String) {
    run(&[args, &["--json"]].concat())
}

/// Runs churn with `args` plus `--json`, which must succeed; returns its JSON
/// line and stderr.
fn churn_ok(args: &[&str]) -> (String, String) {
    run_ok(&[args, &["--json"]].concat())
}

/// Arguments written as one command line: split at spaces, so only for words
/// that hold none (a path or an HTTP request line is passed on its own).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A JSON summary parsed, or the test fails showing it.
fn summary(json: &str) -> Value {
    Value::parse(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// A file in the temp directory for this test, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let file = format!("p2pchat-churn-{}-{name}", std::process::id());
        TempFile(std::env::temp_dir().join(file))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }

    fn read(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_else(|e| panic!("{}: {e}", self.0.display()))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A tiny TCP server the test runs: every request (bytes up to `end`) is
/// answered with `reply` after `delay`, and with `close` the server hangs up
/// after its answer. It keeps the address of every client that connected.
struct Tiny {
    addr: SocketAddr,
    clients: Arc<Mutex<Vec<IpAddr>>>,
    stop: Arc<AtomicBool>,
}

impl Tiny {
    fn start(end: &'static [u8], reply: &'static [u8], delay: Duration, close: bool) -> Tiny {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().unwrap();
        let clients = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (clients.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                seen.lock().unwrap().push(conn.peer_addr().unwrap().ip());
                std::thread::spawn(move || serve(conn, end, reply, delay, close));
            }
        });
        Tiny {
            addr,
            clients,
            stop,
        }
    }

    /// A server that answers every line with `ok` at once.
    fn ok() -> Tiny {
        Tiny::start(b"\n", b"ok\n", Duration::ZERO, false)
    }

    fn target(&self) -> String {
        self.addr.to_string()
    }

    /// The command line of a `join-leave` run against this server that sends
    /// `x` and expects `ok` (as [`Tiny::ok`] answers), then `flags`.
    fn join_leave(&self, flags: &str) -> String {
        format!(
            "join-leave -t {} --request x\\n --expect ok\\n {flags}",
            self.addr
        )
    }
}

impl Drop for Tiny {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop to see it
    }
}

/// One connection of a [`Tiny`] server, until the client closes.
fn serve(mut s: TcpStream, end: &[u8], reply: &[u8], delay: Duration, close: bool) {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut input = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&buf[..n]);
        while let Some(at) = input.windows(end.len()).position(|w| w == end) {
            input.drain(..at + end.len());
            std::thread::sleep(delay);
            if s.write_all(reply).is_err() {
                return;
            }
            if close {
                return; // dropping the stream closes it: the server closes first
            }
        }
    }
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

/// Waits until the manager has logged a leave for each of `connections`, and
/// checks that it logged as many joins, no more.
fn joined_and_left(m: &Daemon, connections: u64) {
    wait_count(m, "left:", connections as usize);
    assert_eq!(m.count("joined:"), connections as usize);
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
    let line = format!("join-leave -t {addr} -c 8 -n 300 -d 10 --verify");
    let (json, err) = churn_ok(&words(&line));
    assert_eq!(num(&json, "ops"), 300, "{json}");
    assert_eq!(num(&json, "latency_count"), 300);
    assert_eq!(num(&json, "errors"), 0);
    let connections = num(&json, "connections");
    // Every connection was one whole cycle: drained, nothing cut off.
    assert_eq!(num(&json, "cycles_total"), connections);
    assert!(connections >= 300);
    // --verify: every document parsed and named the asker exactly once.
    assert!(num(&json, "peers_min") >= 1, "{json}");
    joined_and_left(&m, connections);
    assert!(
        err.contains("====== join-leave ======"),
        "the human summary goes to stderr with --json"
    );
}

#[test]
fn steady_servants_are_measured_apart_from_churners() {
    let (m, addr) = connmgr(&["--push-interval", "0"]);
    let line = format!("steady -t {addr} --steady 20 -c 4 --interval 50 -d 1 --verify");
    let (json, _) = churn_ok(&words(&line));
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
    joined_and_left(&m, connections);
}

#[test]
fn pushed_documents_are_counted_as_pushes_not_answers() {
    let (_m, addr) = connmgr(&["--push-interval", "20"]);
    let line = format!("steady -t {addr} --steady 10 -c 2 --interval 100 -d 0.5");
    let (json, err) = churn_ok(&words(&line));
    assert!(
        num(&json, "pushes") > 0,
        "churners joining make pushes: {json}"
    );
    // 10 servants every 100 ms for 0.5 s: no more answers than requests.
    assert!(num(&json, "steady_answers") <= 60, "{json}");
    // Both things that distort steady latency here are said plainly.
    assert!(
        err.contains("note: 2 churners ran in this process"),
        "{err}"
    );
    assert!(err.contains("--push-interval 0"), "{err}");
}

#[test]
fn steady_churns_nothing_unless_asked() {
    let (_m, addr) = connmgr(&["--push-interval", "0"]);
    let line = format!("steady -t {addr} --steady 5 --interval 50 -d 0.3");
    let (json, err) = churn_ok(&words(&line));
    assert_eq!(num(&json, "concurrency"), 0, "{json}");
    assert!(
        json_number(&json, "ops").is_none(),
        "no churners, no churn figures: {json}"
    );
    assert!(num(&json, "steady_answers") > 0, "{json}");
    assert!(!err.contains("note:"), "{err}");
}

#[test]
fn fanout_from_churn_itself_reaches_every_listener() {
    let (m, addr) = connmgr(&["--first-port", &first_port(0)]);
    let line = format!("fanout -t {addr} -c 10 -n 30 --sender self");
    let (json, _) = churn_ok(&words(&line));
    assert_eq!(num(&json, "ops"), 30, "{json}");
    assert_eq!(num(&json, "listeners"), 10);
    assert_eq!(num(&json, "concurrency"), 10, "-c as given: {json}");
    assert_eq!(num(&json, "error_line_missed"), 0);
    assert_eq!(num(&json, "connections"), 10);
    wait_count(&m, "joined:", 10);
    assert_eq!(m.count("joined:"), 10);
    assert!(json.contains("\"sender\":\"self\""), "{json}");
}

#[test]
fn fanout_through_a_real_servant() {
    let (m, addr) = connmgr(&["--first-port", &first_port(1)]);
    let line = format!("fanout -t {addr} -c 10 -n 20 --sender servant");
    let servant = bin("servant"); // a path: a word of its own
    let (json, _) = churn_ok(&[&words(&line)[..], &["--servant", &servant]].concat());
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
    // The summary keeps the first message of each kind, and says what ran.
    let v = summary(&json);
    let first = v.get("first_errors").unwrap().get("refused_full").unwrap();
    assert!(first
        .str()
        .unwrap()
        .contains("max number of servants reached"));
    assert_eq!(
        v.get("version").unwrap().str(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let args: Vec<&str> = v
        .get("args")
        .unwrap()
        .arr()
        .unwrap()
        .iter()
        .filter_map(Value::str)
        .collect();
    let given = format!("join-leave -t {target} -c 6 -d 0.3 --json");
    assert_eq!(args, words(&given));
    assert!(
        v.get("start").unwrap().str().unwrap().ends_with('Z'),
        "{json}"
    );
    for other_modes in ["steady_answers", "listeners", "rate", "error_line_missed"] {
        assert!(v.get(other_modes).is_none(), "{other_modes} in {json}");
    }
}

#[test]
fn a_flood_at_a_full_manager_counts_refusals_not_errors() {
    let (m, addr) = connmgr(&["--max-servants", "2"]);
    let _held = [client(addr), client(addr)];
    wait_count(&m, "joined:", 2);
    let (json, err) = churn_ok(&words(&format!("flood -t {addr} -c 40 -n 500")));
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
fn a_flood_fills_a_manager_with_room_itself() {
    // At the defaults one address may hold 64 servants: churn holds them, and
    // every flood connection after is refused for its address.
    let (m, addr) = connmgr(&[]);
    let (json, _) = churn_ok(&words(&format!("flood -t {addr} -c 3 -n 200")));
    assert_eq!(num(&json, "ops"), 200, "{json}");
    assert_eq!(num(&json, "errors"), 0, "{json}");
    m.wait_for("max servants per address");
    assert_eq!(m.count("joined:"), 64, "the fillers, and no flooder");
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
    let addr = b.listening_addr();
    let (json, _) = churn_ok(&words(&format!("join-leave -t {addr} -c 4 -n 200")));
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
        (&["join-leave", "--frobnicate"], "unknown flag"),
        (&["--bogus"], "--bogus: unknown flag"),
        (
            &["join-leave", "--duraton", "1"],
            "did you mean --duration?",
        ),
        (
            &["join-leave", "--hdr", "/no/such/dir/x.hdr"],
            "--hdr /no/such/dir/x.hdr",
        ),
        (
            &["join-leave", "-c", "0", "-n", "10"],
            "needs -c of at least 1",
        ),
        (&["flood", "-c", "0"], "needs -c of at least 1"),
        (&["join-leave", "--request", "x\\q"], "unknown escape"),
        (&["join-leave", "--expect", "x"], "goes with --request"),
        (&["steady", "--request", "x"], "only join-leave"),
        (
            &["join-leave", "--request", "x", "--keep-alive"],
            "needs --expect",
        ),
        (&["join-leave", "--rate", "0"], "--rate"),
        (&["steady", "--rate", "10"], "is for join-leave"),
        (
            &["join-leave", "--bind", "127.0.0.9-127.0.0.2"],
            "backwards",
        ),
        (&["join-leave", "--csv"], "choose one"),
    ] {
        let (code, _, err) = churn(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, _, err) = run(&["compare", "only-one.json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs two JSON summaries"), "{err}");
}

#[test]
fn a_target_without_a_port_gets_the_managers() {
    // Whether or not something listens on 127.0.0.1:85, the port was 85.
    let (code, json, err) = churn(&words("join-leave -t 127.0.0.1 -n 1 --timeout 300"));
    if code == 1 {
        assert!(err.contains("127.0.0.1:85"), "{err}");
    } else {
        assert!(json.contains("\"target\":\"127.0.0.1:85\""), "{json}");
    }
}
