//! The real `churn` against the real `connmgr` (and `servant`): each mode in a short,
//! bounded run, its JSON summary checked against what the manager logged; and
//! against a tiny server each test runs, for the generic protocol, source
//! addresses, the open loop and the output formats.

mod common;
#[path = "churn/guide.rs"]
mod guide;

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

#[test]
fn any_server_with_request_and_expect() {
    let redis_like = Tiny::start(b"\n", b"+PONG\r\n", Duration::ZERO, false);
    let ping = |flags: &str| {
        let line = format!(
            "join-leave {flags} -t {} --request PING\\r\\n --expect +PONG\\r\\n",
            redis_like.addr
        );
        churn_ok(&words(&line))
    };
    let (json, err) = ping("-c 4 -n 200");
    assert_eq!(num(&json, "ops"), 200, "{json}");
    assert_eq!(num(&json, "errors"), 0, "{json}");
    assert_eq!(num(&json, "answer_bytes_mean"), 7, "{json}");
    assert_eq!(num(&json, "answers"), num(&json, "cycles_total"));
    assert_eq!(
        num(&json, "connections"),
        num(&json, "cycles_total"),
        "one cycle, one connection"
    );
    assert!(
        json.contains(r#""protocol":"generic","request":"PING\\r\\n","expect":"+PONG\\r\\n""#),
        "{json}"
    );
    assert!(
        json_number(&json, "documents").is_none(),
        "no peer documents here: {json}"
    );
    assert!(
        err.contains(r#"request "PING\r\n", answer ends with "+PONG\r\n""#),
        "{err}"
    );

    // Kept connections: many requests, two connections.
    let (json, err) = ping("-c 2 -n 300 --keep-alive");
    assert_eq!(num(&json, "ops"), 300, "{json}");
    assert_eq!(num(&json, "connections"), 2, "{json}");
    assert!(err.contains("requests on kept connections"), "{err}");
}

#[test]
fn without_expect_an_answer_ends_when_the_server_closes() {
    let http_like = Tiny::start(
        b"\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nok",
        Duration::ZERO,
        true,
    );
    let target = http_like.target();
    let get = "GET / HTTP/1.0\\r\\n\\r\\n";
    let (json, _) = churn_ok(&[
        "join-leave",
        "-t",
        &target,
        "--request",
        get,
        "-c",
        "3",
        "-n",
        "100",
    ]);
    assert_eq!(num(&json, "ops"), 100, "{json}");
    assert_eq!(num(&json, "answer_bytes_mean"), 21, "{json}");
    assert!(json.contains(r#""expect":null"#), "{json}");
}

#[test]
fn a_wrong_answer_is_an_error_quoted_safely() {
    let wrong = Tiny::start(b"\n", b"-ERR \x1b[2J\r\n", Duration::ZERO, true);
    let line = format!(
        "join-leave -t {} --request PING\\r\\n --expect +PONG\\r\\n -c 2 -d 0.3",
        wrong.addr
    );
    let (code, json, err) = churn(&words(&line));
    assert_eq!(code, 3, "{err}");
    assert!(num(&json, "error_closed_early") > 0, "{json}");
    assert_eq!(num(&json, "ops"), 0, "{json}");
    // Quoted as --expect would take it: no raw escape sequence reaches a terminal.
    assert!(
        err.contains(r#"without "+PONG\r\n": "-ERR \x1b[2J\r\n""#),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "{err}");
}

#[test]
fn connections_come_from_each_source_address_in_turn() {
    let tiny = Tiny::ok();
    let line = tiny.join_leave("--bind 127.0.0.2-127.0.0.4 -c 3 -n 90");
    let (json, _) = churn_ok(&words(&line));
    let connections = num(&json, "connections") as usize;
    let seen = tiny.clients.lock().unwrap().clone();
    assert_eq!(seen.len(), connections, "{json}");
    for last in 2..=4u8 {
        let ip = IpAddr::from([127, 0, 0, last]);
        let n = seen.iter().filter(|&&a| a == ip).count();
        // In turn: each address within one of a third of the connections.
        assert!(
            n.abs_diff(connections / 3) <= 1,
            "{ip}: {n} of {connections}"
        );
    }
}

#[test]
fn an_open_loop_times_from_the_intended_start() {
    // Each answer takes 40 ms and one connection is allowed, while 50 starts a
    // second are due: start k waits for the k before it, and the open loop
    // counts that wait, which a closed loop would never see.
    let slow = Tiny::start(b"\n", b"ok\n", Duration::from_millis(40), false);
    let (json, err) = churn_ok(&words(&slow.join_leave("--rate 50 -c 1 -d 1")));
    // Every start due in the 1 s window is made and counted, late or not.
    let ops = num(&json, "ops");
    assert!((49..=52).contains(&ops), "{json}");
    let us = |k: &str| json_number(&json, k).unwrap_or_else(|| panic!("{k}: {json}"));
    // The server alone: at least its 40 ms delay.
    assert!(us("service_p50_us") >= 40_000.0, "{json}");
    // From the due time: start k is answered no sooner than 40(k+1) ms after
    // the first, and was due at 20k ms, so it waited 20k + 40 ms: at the 90th
    // percentile (k = 45), over 900 ms.
    assert!(us("latency_p90_us") >= 800_000.0, "{json}");
    assert!(us("latency_p50_us") > 3.0 * us("service_p50_us"), "{json}");
    assert!(num(&json, "waited") > 0, "{json}");
    assert!(
        err.contains("open loop: 50 starts/s") && err.contains("service ms"),
        "{err}"
    );
}

#[test]
fn a_line_per_second_when_stderr_is_not_a_terminal() {
    let tiny = Tiny::ok();
    let (json, err) = churn_ok(&words(&tiny.join_leave("-c 2 -d 2.5")));
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("join-leave ["))
        .collect();
    assert!(lines.len() >= 2, "{err}");
    assert!(
        lines[0].contains("cycles/s") && lines[0].contains("p99"),
        "{err}"
    );
    let v = summary(&json);
    let series = v.get("series").unwrap().arr().unwrap();
    assert_eq!(
        series.len(),
        3,
        "two whole seconds and the last half: {json}"
    );
    assert!(
        series[0].get("ops_per_s").unwrap().num().unwrap() > 0.0,
        "{json}"
    );
    // Long enough for a line a second, were it not --quiet.
    let (_, quiet) = churn_ok(&words(&tiny.join_leave("-c 2 -d 1.1 --quiet")));
    assert!(!quiet.contains("join-leave ["), "{quiet}");
}

#[test]
fn csv_hdr_and_svg_outputs() {
    let tiny = Tiny::ok();
    let (csv, err) = run_ok(&words(&tiny.join_leave("-c 2 -n 300 --csv")));
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some(
            r#""test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms","errors""#
        )
    );
    let row: Vec<&str> = rows
        .next()
        .unwrap()
        .split(',')
        .map(|f| f.trim_matches('"'))
        .collect();
    assert_eq!((row.len(), row[0], row[8]), (9, "join-leave", "0"), "{csv}");
    let figures: Vec<f64> = row[1..8].iter().map(|f| f.parse().unwrap()).collect();
    assert!(
        figures[0] > 0.0 && figures[2] <= figures[4] && figures[4] <= figures[6],
        "{csv}"
    );
    assert!(
        err.contains("====== join-leave ======"),
        "the human summary on stderr"
    );

    let (hdr, svg) = (TempFile::new("run.hdr"), TempFile::new("run.svg"));
    let line = tiny.join_leave("-c 2 -d 1.5");
    let files = ["--hdr", hdr.path(), "--svg", svg.path()]; // paths: words of their own
    let (json, _) = churn_ok(&[&words(&line)[..], &files].concat());
    check_hdr(&hdr.read(), num(&json, "ops"));
    let series = summary(&json).get("series").unwrap().arr().unwrap().len();
    check_svg(&svg.read(), series);
}

/// Reads HdrHistogram's percentile-distribution text as its plotters do.
fn check_hdr(text: &str, ops: u64) {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    assert_eq!(lines.next(), Some(""));
    let (mut last_value, mut last_p, mut rows) = (0.0, 0.0, 0);
    let mut footer = Vec::new();
    for line in lines {
        if line.starts_with("#[") {
            footer.push(line);
            continue;
        }
        let f: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        assert!(f.len() == 4 || f.len() == 3 && f[1] == 1.0, "{line}");
        assert!(
            f[0] >= last_value && f[1] >= last_p && f[1] <= 1.0,
            "{line}"
        );
        (last_value, last_p, rows) = (f[0], f[1], rows + 1);
        if f.len() == 3 {
            assert_eq!(f[2] as u64, ops, "the last row counts every operation");
        }
    }
    assert!(rows > 5 && last_p == 1.0, "{text}");
    assert_eq!(footer.len(), 3, "{text}");
    assert!(footer[0].starts_with("#[Mean    =") && footer[0].contains("StdDeviation"));
    assert!(
        footer[1].ends_with(&format!("Total count    = {ops:>12}]")),
        "{text}"
    );
    assert!(footer[2].starts_with("#[Buckets ="), "{text}");
}

/// Parses the SVG with quick-xml (it checks that tags match) and finds a point
/// per second on every line.
fn check_svg(text: &str, seconds: usize) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let (mut group, mut points, mut paths) = (String::new(), 0, Vec::new());
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed: {e}\n{text}"))
        {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let id = e
                    .try_get_attribute("id")
                    .unwrap()
                    .map(|a| a.value.into_owned());
                match (e.name().as_ref(), id) {
                    ("g", Some(id)) => group = id,
                    ("path", Some(id)) => paths.push(id),
                    ("circle", _) if group == "throughput-points" => points += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    assert_eq!(points, seconds, "{text}");
    for id in ["throughput", "latency-p50", "latency-p99", "latency-max"] {
        assert!(paths.iter().any(|p| p == id), "{id}: {paths:?}");
    }
    assert!(text.contains("<title>1.0 s: cycles/s "), "{text}");
}

#[test]
fn compare_puts_two_runs_side_by_side() {
    let tiny = Tiny::ok();
    let (a, b) = (TempFile::new("a.json"), TempFile::new("b.json"));
    for (file, c) in [(&a, "1"), (&b, "4")] {
        let (json, _) = churn_ok(&words(&tiny.join_leave(&format!("-n 200 -c {c}"))));
        std::fs::write(&file.0, json).unwrap();
    }
    let (out, _) = run_ok(&["compare", a.path(), b.path()]);
    let row = |label: &str| {
        out.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label}: {out}"))
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("concurrency")[1..], ["1", "4", "differ"]);
    let ops = row("ops/s");
    let (x, y, ratio): (f64, f64, f64) = (
        ops[1].parse().unwrap(),
        ops[2].parse().unwrap(),
        ops[3].parse().unwrap(),
    );
    assert!((y / x - ratio).abs() < 0.01 + ratio * 0.01, "{out}");
    let (code, _, err) = run(&["compare", a.path(), "/nonexistent/b.json"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/b.json"), "{err}");
}

#[test]
fn the_human_summary_ends_its_last_line() {
    let tiny = Tiny::ok();
    let (out, _) = run_ok(&words(&tiny.join_leave("-n 5")));
    assert!(
        out.starts_with("====== join-leave") && out.ends_with("errors: none\n"),
        "{out:?}"
    );
}
