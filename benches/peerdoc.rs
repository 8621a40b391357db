//! The peer document in memory: rendering it, personalising it for an asker, and
//! reading it back, each against a memcpy of the same bytes measured in the same run.
//!
//! `cargo bench --bench peerdoc`; `P2PCHAT_BENCH_QUICK=1` (or `-- --quick`) for a
//! few-second smoke run with the same output.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use p2pchat::churn::scan;
use p2pchat::wire::peerdoc::{self, PeerDoc};

fn quick() -> bool {
    std::env::var_os("P2PCHAT_BENCH_QUICK").is_some_and(|v| v != "0")
        || std::env::args().any(|a| a == "--quick")
}

/// Median nanoseconds per call of `f`, over `reps` timed batches of about `batch` each.
fn time(batch: Duration, reps: usize, mut f: impl FnMut()) -> f64 {
    // Calibrate: how many calls fill a batch.
    let mut n = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let took = t.elapsed();
        if took >= batch / 4 || n >= 1 << 30 {
            let per = took.as_nanos() as f64 / n as f64;
            n = ((batch.as_nanos() as f64 / per.max(0.1)) as u64).max(1);
            break;
        }
        n *= 4;
    }
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A document of `n` servants as the manager builds it, offsets 1..=n.
fn doc_of(n: usize) -> PeerDoc {
    let mut d = PeerDoc::new();
    for k in 1..=n {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, (k >> 8) as u8, k as u8));
        d.add(ip, 2224 + (k % 60000) as u16, k);
    }
    d
}

fn show(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn main() {
    let quick = quick();
    let (batch, reps) = if quick {
        (Duration::from_millis(5), 1)
    } else {
        (Duration::from_millis(100), 7)
    };
    println!(
        "peer document ({}; median of {reps} batches; ratio = this / memcpy of the same bytes)",
        if quick { "quick" } else { "full" }
    );
    for n in [10usize, 1_000, 10_000] {
        let d = doc_of(n);
        let bytes = d.render_for(n / 2 + 1);
        let len = bytes.len();
        let mut out: Vec<u8> = Vec::with_capacity(len);
        let memcpy = time(batch, reps, || {
            out.clear();
            out.extend_from_slice(black_box(&bytes));
            black_box(&out);
        });

        // Render: the manager's work as n servants join (one add each), per document.
        let render = time(batch, reps, || {
            black_box(doc_of(black_box(n)));
        });
        // Personalise: the answer to `needs peer list`, copied out as writev would.
        let mut asker = 1;
        let personalise = time(batch, reps, || {
            asker = asker % n + 1;
            out.clear();
            for p in d.personalised(black_box(asker)) {
                for s in p.slices() {
                    out.extend_from_slice(s);
                }
            }
            black_box(&out);
        });
        // A leave and a join. The newest leaving is free (a truncate); the oldest
        // leaving shifts every entry after it, the worst case.
        let mut churned = doc_of(n);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let newest = time(batch, reps, || {
            churned.remove(n);
            churned.add(ip, 9999, n);
        });
        let mut next = 0;
        let oldest = time(batch, reps, || {
            next = next % n + 1; // offsets 1, 2, 3, ...: always the oldest entry
            churned.remove(next);
            churned.add(ip, 9999, next);
        });
        println!("  N = {n:>6} ({len} bytes): memcpy {}", show(memcpy));
        println!(
            "    render (N adds)        {:>10}  ratio {:>8.1}   ({} per add)",
            show(render),
            render / memcpy,
            show(render / n as f64)
        );
        println!(
            "    personalise + copy     {:>10}  ratio {:>8.2}",
            show(personalise),
            personalise / memcpy
        );
        println!(
            "    newest leaves + joins  {:>10}  ratio {:>8.2}",
            show(newest),
            newest / memcpy
        );
        println!(
            "    oldest leaves + joins  {:>10}  ratio {:>8.2}",
            show(oldest),
            oldest / memcpy
        );
    }

    // What a servant pays to read the list it is sent: the project's parser
    // (peerdoc::parse over xml::parse) against churn's one-pass check.
    println!("reading a document back (servant side)");
    let sizes: &[usize] = if quick { &[10, 100] } else { &[10, 100, 1_000] };
    for &n in sizes {
        let full = doc_of(n).render_for(1);
        let doc = &full[..full.len() - 2];
        let text = std::str::from_utf8(doc).unwrap();
        let parse = time(batch, reps.min(3), || {
            black_box(peerdoc::parse(black_box(text)).unwrap());
        });
        let scanned = time(batch, reps, || {
            black_box(scan::scan(black_box(doc)).unwrap());
        });
        println!(
            "  N = {n:>6}: peerdoc::parse {:>10} ({} per peer)   churn::scan {:>10} ({} per peer)   ratio {:.0}",
            show(parse),
            show(parse / n as f64),
            show(scanned),
            show(scanned / n as f64),
            parse / scanned
        );
    }
}
