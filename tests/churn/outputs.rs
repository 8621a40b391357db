//! What churn writes: a line per second, the CSV row, HdrHistogram's text, the
//! SVG picture, two runs side by side, and the human summary's last line.

use super::*;

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
            r#""test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms","errors","avg_connect_ms","p50_connect_ms","p99_connect_ms","avg_first_byte_ms","p50_first_byte_ms","p99_first_byte_ms""#
        )
    );
    let row: Vec<&str> = rows
        .next()
        .unwrap()
        .split(',')
        .map(|f| f.trim_matches('"'))
        .collect();
    assert_eq!(
        (row.len(), row[0], row[8]),
        (15, "join-leave", "0"),
        "{csv}"
    );
    let figures: Vec<f64> = row[1..8].iter().map(|f| f.parse().unwrap()).collect();
    let parts: Vec<f64> = row[9..].iter().map(|f| f.parse().unwrap()).collect();
    // A cycle's parts are each within the whole cycle (p99 to p99, give or take a bucket).
    assert!(
        parts[2] <= figures[6] * 1.01 && parts[5] <= figures[6] * 1.01,
        "{csv}"
    );
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

#[test]
fn merge_adds_up_runs_made_at_once() {
    let tiny = Tiny::ok();
    let (a, b) = (TempFile::new("ma.json"), TempFile::new("mb.json"));
    let runs: Vec<_> = [&a, &b]
        .into_iter()
        .map(|file| {
            let line = tiny.join_leave("-n 300 -c 3");
            let args: Vec<String> = words(&line).into_iter().map(String::from).collect();
            let path = file.0.clone();
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let (json, _) = churn_ok(&args);
                std::fs::write(path, json).unwrap();
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
    let (json, err) = run_ok(&["merge", a.path(), b.path(), "--json"]);
    assert_eq!(num(&json, "ops"), 600, "{json}");
    assert_eq!(num(&json, "latency_count"), 600, "{json}");
    assert_eq!(num(&json, "connect_latency_count"), 600, "{json}");
    assert_eq!(num(&json, "concurrency"), 6, "{json}");
    assert!(err.contains("merged from 2 runs"), "{err}");
    assert!(summary(&json).get("latency_histogram").is_some(), "{json}");

    let garbage = TempFile::new("garbage.json");
    let text = format!(
        r#"{{"mode":"join-leave","target":"{}","protocol":"p2pchat","latency_histogram":"HISTFAAAAAA="}}"#,
        tiny.target()
    );
    std::fs::write(&garbage.0, text).unwrap();
    let (code, _, err) = run(&["merge", a.path(), garbage.path()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{}: latency_histogram: ", garbage.path())),
        "{err}"
    );
}
