//! `churn compare A.json B.json`: two runs' JSON summaries side by side, each
//! figure with the ratio B/A, so a change (a commit, a flag, another server) is
//! read as numbers rather than by eye.

use std::fmt::Write as _;
use std::path::Path;

use super::json::Value;

/// Settings shown as they are, so the reader sees whether the runs compare.
const SETTINGS: [&str; 9] = [
    "mode",
    "target",
    "protocol",
    "request",
    "concurrency",
    "keep_alive",
    "rate",
    "start",
    "version",
];

/// Figures shown with their ratio: key, label, and the factor to the unit shown.
const FIGURES: [(&str, &str, f64); 29] = [
    ("elapsed_s", "measured s", 1.0),
    ("ops_per_s", "ops/s", 1.0),
    ("latency_min_us", "latency min ms", 1e-3),
    ("latency_p50_us", "latency p50 ms", 1e-3),
    ("latency_p90_us", "latency p90 ms", 1e-3),
    ("latency_p99_us", "latency p99 ms", 1e-3),
    ("latency_p999_us", "latency p99.9 ms", 1e-3),
    ("latency_p9999_us", "latency p99.99 ms", 1e-3),
    ("latency_max_us", "latency max ms", 1e-3),
    ("latency_mean_us", "latency mean ms", 1e-3),
    ("service_p50_us", "service p50 ms", 1e-3),
    ("service_p99_us", "service p99 ms", 1e-3),
    ("start_lag_p99_us", "start lag p99 ms", 1e-3),
    ("steady_answers_per_s", "steady answers/s", 1.0),
    ("steady_latency_p50_us", "steady p50 ms", 1e-3),
    ("steady_latency_p99_us", "steady p99 ms", 1e-3),
    ("steady_latency_p999_us", "steady p99.9 ms", 1e-3),
    ("steady_latency_max_us", "steady max ms", 1e-3),
    ("server_cpu_us_per_op", "server CPU us/op", 1.0),
    ("client_cpu_us_per_op", "churn CPU us/op", 1.0),
    ("server_rss_bytes", "server RSS MiB", 1.0 / 1048576.0),
    ("doc_bytes_mean", "document bytes", 1.0),
    ("answer_bytes_mean", "answer bytes", 1.0),
    ("pushes", "pushes", 1.0),
    ("connections", "connections", 1.0),
    ("cycles_total", "operations, whole run", 1.0),
    ("waited", "starts that waited", 1.0),
    ("errors", "errors", 1.0),
    ("error_timeout", "  timeouts", 1.0),
];

/// Reads two summaries from files and compares them.
pub fn files(a: &Path, b: &Path) -> Result<String, String> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let (ta, tb) = (read(a)?, read(b)?);
    texts(
        (&a.display().to_string(), &ta),
        (&b.display().to_string(), &tb),
    )
}

/// Compares two summaries given as `(name, JSON text)`.
pub fn texts(a: (&str, &str), b: (&str, &str)) -> Result<String, String> {
    let (va, vb) = (summary(a)?, summary(b)?);
    let mut s = String::new();
    let row = |s: &mut String, label: &str, x: &str, y: &str, ratio: &str| {
        let _ = writeln!(s, "{label:<24}{x:>22}  {y:>22}  {ratio:>8}");
    };
    row(&mut s, "", "A", "B", "B/A");
    row(&mut s, "file", &clip(a.0), &clip(b.0), "");
    for key in SETTINGS {
        let (x, y) = (setting(&va, key), setting(&vb, key));
        if x.is_some() || y.is_some() {
            let (x, y) = (x.unwrap_or_default(), y.unwrap_or_default());
            let mark = if x != y { "differ" } else { "" };
            row(&mut s, key, &clip(&x), &clip(&y), mark);
        }
    }
    for (key, label, unit) in FIGURES {
        let x = va.get(key).and_then(Value::num);
        let y = vb.get(key).and_then(Value::num);
        if x.is_none() && y.is_none() {
            continue;
        }
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| number(v * unit));
        let ratio = match (x, y) {
            (Some(x), Some(y)) if x != 0.0 => format!("{:.2}", y / x),
            (Some(_), Some(0.0)) => "=".into(),
            _ => "-".into(),
        };
        row(&mut s, label, &show(x), &show(y), &ratio);
    }
    Ok(s)
}

/// Parses one summary and checks it is churn's.
fn summary((name, text): (&str, &str)) -> Result<Value, String> {
    let v = Value::parse(text.trim()).map_err(|e| format!("{name}: {e}"))?;
    if v.get("mode").and_then(Value::str).is_none() {
        return Err(format!(
            "{name}: not a churn summary (no \"mode\"; write one with churn --json > FILE)"
        ));
    }
    Ok(v)
}

fn setting(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::Str(s) => Some(s.clone()),
        Value::Num(n) => Some(number(*n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A figure with as many decimals as its size needs.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Text kept to one column: the end of a long path is the part that differs.
fn clip(s: &str) -> String {
    let n = s.chars().count();
    if n <= 22 {
        s.to_string()
    } else {
        let tail: String = s.chars().skip(n - 21).collect();
        format!("…{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_by_side_with_ratios() {
        let a = r#"{"mode":"join-leave","target":"127.0.0.1:85","concurrency":50,"ops_per_s":1000,"latency_p50_us":1500,"errors":0}"#;
        let b = r#"{"mode":"join-leave","target":"127.0.0.1:6379","concurrency":50,"ops_per_s":2500,"latency_p50_us":750,"errors":0}"#;
        let out = texts(("a.json", a), ("b.json", b)).unwrap();
        let line = |label: &str| {
            out.lines()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("{label}: {out}"))
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(line("ops/s")[1..], ["1000", "2500", "2.50"]);
        assert_eq!(line("latency p50 ms")[3..], ["1.500", "0.750", "0.50"]);
        assert_eq!(line("target").last().unwrap(), "differ");
        assert_eq!(line("errors")[1..], ["0", "0", "="]);
        assert!(!out.contains("steady"), "absent from both: {out}");
    }

    #[test]
    fn refuses_what_is_not_a_summary() {
        let e = texts(("a", "{}"), ("b", "{}")).unwrap_err();
        assert!(e.contains("a: not a churn summary"), "{e}");
        let e = texts(("a", r#"{"mode":"x"}"#), ("b", "oops")).unwrap_err();
        assert!(e.starts_with("b: not JSON"), "{e}");
    }
}
