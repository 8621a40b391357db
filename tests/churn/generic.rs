//! churn against any TCP server: `--request` and `--expect`, answers that end at
//! the server's close, wrong answers quoted safely, source addresses in turn, and
//! the open loop's timing from each intended start.

use super::*;

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
    // Each cycle's parts are timed too, each within the whole.
    assert_eq!(num(&json, "connect_latency_count"), 200, "{json}");
    assert_eq!(num(&json, "ttfb_latency_count"), 200, "{json}");
    for part in ["connect_latency", "ttfb_latency"] {
        assert!(num(&json, &format!("{part}_mean_us")) <= num(&json, "latency_mean_us"));
    }
    assert!(
        err.contains("connect ms") && err.contains("first byte ms"),
        "{err}"
    );
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
    assert!(
        json_number(&json, "connect_latency_count").is_none(),
        "connected once: {json}"
    );
    assert_eq!(num(&json, "ttfb_latency_count"), 300, "{json}");
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
