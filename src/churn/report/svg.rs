//! A picture of a run over time, as one self-contained SVG document a browser
//! opens: throughput on top, p50/p99/max latency (log scale) below, and the
//! server's and churn's CPU when churn read them. Every point carries a
//! `<title>` with its figures, which a browser shows on hover, and each line has
//! an `id` (`throughput`, `latency-p50`, ..., `server-cpu`) for scripts.

use std::fmt::Write as _;

use super::{Report, Second};

const WIDTH: f64 = 900.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 130.0;
const PANEL: f64 = 170.0;
const GAP: f64 = 50.0;
const TOP: f64 = 80.0;

/// One line drawn in a panel: its id, legend name, colour and value per second
/// (`None` where there is nothing to draw, e.g. latency in a second without ops).
struct Line<'a> {
    id: &'a str,
    name: &'a str,
    colour: &'a str,
    value: fn(&Second) -> Option<f64>,
}

/// How a panel maps values to heights.
#[derive(Clone, Copy)]
enum Scale {
    /// 0 up to a round maximum.
    Linear(f64),
    /// Decades from 10^lo to 10^hi.
    Log(i32, i32),
}

impl Scale {
    /// 0.0 at the bottom of the panel, 1.0 at the top.
    fn frac(self, v: f64) -> f64 {
        match self {
            Scale::Linear(max) => v / max,
            Scale::Log(lo, hi) => (v.log10() - f64::from(lo)) / f64::from(hi - lo),
        }
        .clamp(0.0, 1.0)
    }

    fn ticks(self) -> Vec<f64> {
        match self {
            Scale::Linear(max) => (0..=4).map(|k| max * f64::from(k) / 4.0).collect(),
            Scale::Log(lo, hi) => (lo..=hi).map(|e| 10f64.powi(e)).collect(),
        }
    }
}

/// Draws the report's series.
pub fn draw(r: &Report) -> String {
    let series = &r.series;
    let cpu = series
        .iter()
        .any(|s| s.server_cpu.is_some() || s.client_cpu.is_some());
    let panels = if cpu { 3.0 } else { 2.0 };
    let height = TOP + panels * (PANEL + GAP);
    let span = series.last().map_or(1.0, |s| s.t).max(1.0);
    let mut svg = String::new();
    let _ = writeln!(svg, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let title = format!(
        "churn {}: {} over {:.1} s",
        r.config.mode.name(),
        r.target_text(),
        r.elapsed.as_secs_f64()
    );
    let _ = writeln!(svg, "<title>{}</title>", xml(&title));
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="15">{}</text>"#,
        xml(&title)
    );
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="42" fill="#555">{}</text>"##,
        xml(&format!(
            "{} {}s in the window, {} errors; started {}",
            r.main().0,
            r.op_name(),
            r.failures.total(),
            super::utc(r.started)
        ))
    );
    let unit = format!("{}s/s", r.op_name());
    let throughput = [Line {
        id: "throughput",
        name: &unit,
        colour: "#1f77b4",
        value: |s| Some(s.rate()),
    }];
    let peak = series.iter().map(Second::rate).fold(0.0, f64::max);
    panel(
        &mut svg,
        0,
        "throughput per second",
        Scale::Linear(round_up(peak)),
        span,
        series,
        &throughput,
    );
    let latency = [
        Line {
            id: "latency-p50",
            name: "p50",
            colour: "#2ca02c",
            value: |s| ms(s, s.p50),
        },
        Line {
            id: "latency-p99",
            name: "p99",
            colour: "#ff7f0e",
            value: |s| ms(s, s.p99),
        },
        Line {
            id: "latency-max",
            name: "max",
            colour: "#d62728",
            value: |s| ms(s, s.max),
        },
    ];
    let (lo, hi) = series
        .iter()
        .filter(|s| s.ops > 0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), s| {
            (
                lo.min(s.p50.max(1) as f64 / 1e6),
                hi.max(s.max as f64 / 1e6),
            )
        });
    let (lo, hi) = if hi > 0.0 {
        (
            lo.log10().floor() as i32,
            (hi.log10().ceil() as i32).max(lo.log10().floor() as i32 + 1),
        )
    } else {
        (-1, 1)
    };
    panel(
        &mut svg,
        1,
        "latency ms (log scale)",
        Scale::Log(lo, hi),
        span,
        series,
        &latency,
    );
    if cpu {
        let cpu_lines = [
            Line {
                id: "server-cpu",
                name: "server",
                colour: "#9467bd",
                value: |s| s.server_cpu.map(|c| c * 100.0),
            },
            Line {
                id: "churn-cpu",
                name: "churn",
                colour: "#7f7f7f",
                value: |s| s.client_cpu.map(|c| c * 100.0),
            },
        ];
        let top = series
            .iter()
            .flat_map(|s| [s.server_cpu, s.client_cpu])
            .flatten()
            .fold(1.0f64, f64::max);
        panel(
            &mut svg,
            2,
            "CPU, % of one core",
            Scale::Linear(round_up(top * 100.0)),
            span,
            series,
            &cpu_lines,
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds into the measured window</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 12.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn ms(s: &Second, ns: u64) -> Option<f64> {
    (s.ops > 0).then(|| ns.max(1) as f64 / 1e6)
}

/// Panel `k`: frame, grid, axis labels, then each line as a path and its points.
#[allow(clippy::too_many_arguments)]
fn panel(
    svg: &mut String,
    k: usize,
    title: &str,
    scale: Scale,
    span: f64,
    series: &[Second],
    lines: &[Line<'_>],
) {
    let top = TOP + k as f64 * (PANEL + GAP);
    let bottom = top + PANEL;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |t: f64| LEFT + plot_w * t / span;
    let y = |v: f64| bottom - PANEL * scale.frac(v);
    let _ = writeln!(svg, r#"<g id="panel-{k}">"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"#,
        top - 8.0,
        xml(title)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#999"/>"##
    );
    for v in scale.ticks() {
        let yy = y(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0,
            label(v)
        );
    }
    let step = time_step(span);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            x(t),
            bottom + 16.0,
            label(t)
        );
        t += step;
    }
    let drawn = lines
        .iter()
        .filter(|l| series.iter().any(|s| (l.value)(s).is_some()));
    for (n, line) in drawn.enumerate() {
        let mut d = String::new();
        let mut pen_down = false;
        let mut points = String::new();
        for s in series {
            let Some(v) = (line.value)(s) else {
                pen_down = false;
                continue;
            };
            let (px, py) = (x(s.t), y(v));
            let _ = write!(d, "{}{px:.1},{py:.1} ", if pen_down { "L" } else { "M" });
            pen_down = true;
            let _ = writeln!(
                points,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="2.5"><title>{:.1} s: {} {}</title></circle>"#,
                s.t,
                xml(line.name),
                label(v)
            );
        }
        let c = line.colour;
        let _ = writeln!(
            svg,
            r#"<path id="{}" d="{}" fill="none" stroke="{c}" stroke-width="1.5"/>"#,
            line.id,
            d.trim_end()
        );
        let _ = write!(svg, r#"<g id="{}-points" fill="{c}">"#, line.id);
        let _ = writeln!(svg, "\n{points}</g>");
        let ly = top + 14.0 + 16.0 * n as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="{c}" stroke-width="2"/><text x="{3}" y="{4}">{5}</text>"#,
            WIDTH - RIGHT + 10.0,
            ly - 4.0,
            WIDTH - RIGHT + 28.0,
            WIDTH - RIGHT + 34.0,
            ly,
            xml(line.name)
        );
    }
    svg.push_str("</g>\n");
}

/// A number as an axis or tooltip shows it: no more digits than it needs.
fn label(v: f64) -> String {
    if v == 0.0 || v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}").trim_end_matches(".0").to_string()
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').to_string()
    }
}

/// The round number (1, 2 or 5 times a power of ten) at or above `v`.
fn round_up(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

/// Seconds between time labels: at most about ten of them.
fn time_step(span: f64) -> f64 {
    [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|&s| span / s <= 10.0)
    .unwrap_or(span / 10.0)
}

/// Text made safe inside an XML element or attribute. It is churn's own (server
/// bytes reach it already escaped), so only XML's specials and the controls XML
/// forbids need care.
fn xml(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            c if c.is_control() => s.push('\u{fffd}'),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_numbers_and_labels() {
        assert_eq!(round_up(14_012.0), 20_000.0);
        assert_eq!(round_up(0.3), 0.5);
        assert_eq!(round_up(100.0), 100.0);
        assert_eq!(label(0.05), "0.05");
        assert_eq!(label(2.0), "2");
        assert_eq!(label(2.5), "2.5");
        assert_eq!(label(14012.3), "14012");
        assert_eq!(time_step(3.0), 1.0);
        assert_eq!(time_step(60.0), 10.0);
        assert_eq!(xml("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn draws_every_second_of_the_series() {
        let svg = draw(&super::super::tests::sample(300));
        let doc = crate::xml::parse(&svg).expect("well-formed");
        assert_eq!(doc.name, "svg");
        // Three seconds, three points on each line; server CPU drawn.
        assert_eq!(svg.matches("<circle").count(), 3 * 5);
        assert!(!svg.contains("churn-cpu"), "no readings, no line");
        for id in [
            "throughput",
            "latency-p50",
            "latency-p99",
            "latency-max",
            "server-cpu",
        ] {
            assert!(svg.contains(&format!("<path id=\"{id}\"")), "{id}");
        }
        assert!(svg.contains("<title>1.0 s: cycles/s 100</title>"), "{svg}");
    }
}
