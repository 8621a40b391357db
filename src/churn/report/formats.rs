//! Summaries in other tools' formats: a CSV row like `redis-benchmark --csv`,
//! and HdrHistogram's percentile distribution, which its plotters read
//! (`HistogramLogAnalyzer`, the `plotFiles.html` page of HdrHistogram's site).

use std::fmt::Write as _;

use super::super::histogram::{Histogram, HDR_BUCKETS, HDR_SUB_BUCKETS};
use super::Report;

/// Rows per halving of the distance to 100 %, as HdrHistogram prints by default.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// redis-benchmark's header and one row, the test named after the mode; the
/// errors column and the cycle's parts are churn's own, after redis-benchmark's
/// columns, so its readers still find theirs.
pub fn csv(r: &Report) -> String {
    let (n, h) = r.main();
    let ms = |ns: u64| format!("{:.3}", ns as f64 / 1e6);
    let mut test = r.config.mode.name().to_string();
    if r.config.keep_alive {
        test += " keep-alive";
    }
    let row = [
        test,
        format!("{:.2}", r.per_s(n)),
        format!("{:.3}", h.mean() / 1e6),
        ms(h.min()),
        ms(h.percentile(50.0)),
        ms(h.percentile(95.0)),
        ms(h.percentile(99.0)),
        ms(h.max()),
        r.failures.total().to_string(),
    ];
    // The cycle's parts, for tools that leave out the connect (h2load, ab);
    // empty where the mode's operations have no such part.
    let mut row = row.to_vec();
    for part in [&r.connect, &r.ttfb] {
        match part {
            Some(h) => row.extend([
                format!("{:.3}", h.mean() / 1e6),
                ms(h.percentile(50.0)),
                ms(h.percentile(99.0)),
            ]),
            None => row.extend([String::new(), String::new(), String::new()]),
        }
    }
    let quoted: Vec<String> = row
        .iter()
        .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
        .collect();
    format!(
        "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\",\"errors\",\
         \"avg_connect_ms\",\"p50_connect_ms\",\"p99_connect_ms\",\
         \"avg_first_byte_ms\",\"p50_first_byte_ms\",\"p99_first_byte_ms\"\n{}\n",
        quoted.join(",")
    )
}

/// `h` as HdrHistogram's `outputPercentileDistribution` prints it, values divided
/// by `scale` (1e6: nanoseconds shown as milliseconds), 3 decimals. The rows
/// follow its percentile iterator: a row each time the cumulative share reaches
/// the next level, levels 5 to each halving of the distance to 100 %, and a last
/// row at 100 %.
pub fn hdr(h: &Histogram, scale: f64) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let total = h.count();
    let mut level = 0.0f64;
    let mut cumulative = 0u64;
    for (value, count) in h.buckets() {
        cumulative += count;
        let v = value as f64 / scale;
        let last = cumulative == total;
        while 100.0 * cumulative as f64 / total as f64 >= level {
            let p = level / 100.0;
            let _ = writeln!(
                s,
                "{v:12.3} {p:2.12} {cumulative:10} {:14.2}",
                1.0 / (1.0 - p)
            );
            if last {
                break;
            }
            level += next_step(level);
        }
        if last {
            let _ = writeln!(s, "{v:12.3} {:2.12} {cumulative:10}", 1.0);
        }
    }
    let max = h.buckets().last().map_or(0, |(v, _)| v);
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / scale,
        h.stddev() / scale
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {total:12}]",
        max as f64 / scale
    );
    let _ = writeln!(
        s,
        "#[Buckets = {HDR_BUCKETS:12}, SubBuckets     = {HDR_SUB_BUCKETS:12}]"
    );
    s
}

/// HdrHistogram's step from `level` (percent) to the next reported level.
fn next_step(level: f64) -> f64 {
    let halvings = (100.0 / (100.0 - level)).log2().floor() as i32 + 1;
    let ticks = f64::from(TICKS_PER_HALF_DISTANCE) * 2f64.powi(halvings);
    100.0 / ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdr_matches_hdrhistograms_layout() {
        let mut h = Histogram::new();
        for v in 1..=100u64 {
            h.record(v); // exact: below 256 every value has its own bucket
        }
        let text = hdr(&h, 1.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "       1.000 0.000000000000          1           1.00"
        );
        // Levels 0, 10, 20, ... 50, then 55, 60, ... (5 ticks per halving).
        assert_eq!(
            lines[3],
            "      10.000 0.100000000000         10           1.11"
        );
        let rows: Vec<&str> = lines[2..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .copied()
            .collect();
        let last = rows.last().unwrap();
        assert_eq!(*last, "     100.000 1.000000000000        100");
        let footer = &lines[2 + rows.len()..];
        assert!(
            footer[0].starts_with("#[Mean    =       50.5"),
            "{}",
            footer[0]
        );
        assert!(footer[1].ends_with("Total count    =          100]"));
        assert_eq!(
            footer[2],
            "#[Buckets =           57, SubBuckets     =          256]"
        );
    }

    #[test]
    fn hdr_of_nothing_has_no_rows() {
        let text = hdr(&Histogram::new(), 1e6);
        assert_eq!(text.lines().filter(|l| l.starts_with("#[")).count(), 3);
        assert_eq!(text.lines().count(), 5);
    }

    #[test]
    fn csv_is_redis_benchmarks_with_errors() {
        let r = super::super::tests::sample(300);
        let text = csv(&r);
        let mut lines = text.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("\"test\",\"rps\",\"avg_latency_ms\""));
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(row[0], "\"join-leave\"");
        assert_eq!(row[1], "\"100.00\"");
        assert_eq!(row[8], "\"0\"");
        assert_eq!(row.len(), 15);
        assert_eq!(row[9], "\"\"", "no connect times in the sample");
    }
}
