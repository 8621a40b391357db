//! `--workers`: several event loops in one churn, one summary of them all,
//! checked against what a real manager logged and a real baseline server served.

use super::*;

#[test]
fn two_workers_add_up_to_what_the_manager_saw() {
    let (m, addr) = connmgr(&[]);
    let line = format!("join-leave -t {addr} -c 8 -n 301 -d 10 --workers 2 --verify");
    let (json, err) = churn_ok(&words(&line));
    assert_eq!(num(&json, "workers"), 2, "{json}");
    assert_eq!(num(&json, "ops"), 301, "{json}");
    assert_eq!(num(&json, "latency_count"), 301, "{json}");
    assert_eq!(num(&json, "connect_latency_count"), 301, "{json}");
    assert_eq!(num(&json, "errors"), 0, "{json}");
    let connections = num(&json, "connections");
    assert_eq!(num(&json, "cycles_total"), connections, "{json}");
    joined_and_left(&m, connections);
    assert!(err.contains("8 concurrent on 2 workers"), "{err}");
}

#[test]
fn two_workers_against_the_baseline_server() {
    let server = Daemon::spawn(
        env!("CARGO_BIN_EXE_churn"),
        &["baseline-server", "--reply", "+PONG\\r\\n"],
    );
    let target = server.listening_addr().to_string();
    let line = format!(
        "join-leave -t {target} --request PING\\r\\n --expect +PONG\\r\\n -c 4 -d 1.5 --workers 2"
    );
    let (json, err) = churn_ok(&words(&line));
    let v = summary(&json);
    let ops = num(&json, "ops");
    assert!(ops > 0, "{json}");
    assert_eq!(num(&json, "latency_count"), ops, "{json}");
    assert_eq!(num(&json, "answers"), num(&json, "cycles_total"), "{json}");
    // The seconds add up to the window's operations, a line for each on stderr.
    let series = v.get("series").unwrap().arr().unwrap();
    let by_second: f64 = series
        .iter()
        .map(|s| s.get("ops").unwrap().num().unwrap())
        .sum();
    assert_eq!(by_second as u64, ops, "{json}");
    let lines = err
        .lines()
        .filter(|l| l.starts_with("join-leave ["))
        .count();
    assert_eq!(lines, series.len(), "{err}");
    // The default addresses are shared out: every worker's connections from its own.
    assert_eq!(num(&json, "sources"), 254, "{json}");
}
