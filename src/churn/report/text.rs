//! The human summary: what ran, each operation's count and percentile ladder,
//! the whole run's counts, CPU and memory, errors by kind with their first
//! message, and notes on what could make the figures mislead.

use std::fmt::Write as _;

use super::super::args::escape;
use super::super::histogram::Histogram;
use super::super::{Mode, Protocol};
use super::{ms, sender_name, us, Report, LADDER};

impl Report {
    /// The target and what is said to it.
    pub(super) fn target_text(&self) -> String {
        let c = &self.config;
        match &c.protocol {
            Protocol::Manager if c.bare => format!("manager {}, bare requests", c.target),
            Protocol::Manager => format!("manager {}, versioned requests", c.target),
            Protocol::Generic { request, expect } => format!(
                "{}, request \"{}\", answer {}",
                c.target,
                escape(request),
                match expect {
                    Some(e) => format!("ends with \"{}\"", escape(e)),
                    None => "ends when the server closes".into(),
                }
            ),
        }
    }

    /// The human summary; every line ends in a newline.
    pub fn text(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(s, "====== {} ======", c.mode.name());
        let who = match c.mode {
            Mode::JoinLeave if c.keep_alive => format!("{} kept connections", c.concurrency),
            Mode::JoinLeave => format!("{} concurrent", c.concurrency),
            Mode::Flood => format!("{} connections in flight", c.concurrency),
            Mode::Steady => format!(
                "{} steady servants polling every {} ms, {} churning",
                c.steady,
                c.interval.as_millis(),
                c.concurrency
            ),
            Mode::Fanout => format!(
                "{} listening servants, sender {}",
                c.concurrency,
                sender_name(c)
            ),
        };
        let who = match c.workers {
            1 => who,
            n => format!("{who} on {n} workers"),
        };
        let _ = writeln!(
            s,
            "  {}, {who}, {:.2} s measured after {:.2} s warm-up",
            self.target_text(),
            self.elapsed.as_secs_f64(),
            c.warmup.as_secs_f64()
        );
        if !self.merged_from.is_empty() {
            let _ = writeln!(
                s,
                "  merged from {} runs ({}): counts summed, percentiles from the merged histograms",
                self.merged_from.len(),
                self.merged_from.join(", ")
            );
        }
        if c.default_sources {
            let _ = writeln!(
                s,
                "  from {} (churn's default source addresses on loopback; --bind chooses others)",
                super::super::sources::DEFAULT
            );
        }
        if let Some(rate) = c.rate {
            let _ = writeln!(
                s,
                "  open loop: {rate} starts/s intended, at most {} in flight; latency counts from each intended start; {} starts found every connection busy",
                c.concurrency, self.waited
            );
        }
        self.tables(&mut s);
        let answers = if c.generic() { "answers" } else { "documents" };
        // What `cycles_total` counts: the steady servants' answers are not in it,
        // and fanout has nothing that cycles.
        let cycles = match c.mode {
            Mode::Fanout => String::new(),
            Mode::Steady => format!("{} churn cycles, ", self.cycles_total),
            Mode::Flood => format!("{} refusals, ", self.cycles_total),
            _ if c.keep_alive => format!("{} requests, ", self.cycles_total),
            _ => format!("{} cycles, ", self.cycles_total),
        };
        let _ = write!(
            s,
            "  whole run: {} connections, {cycles}{} {answers} (mean {:.0} bytes)",
            self.connections,
            self.documents,
            self.mean_doc_bytes(),
        );
        let _ = if c.generic() {
            writeln!(s)
        } else {
            writeln!(s, ", {} pushed", self.pushes)
        };
        if let Some(p) = &self.private {
            p.text(&mut s);
        }
        if let Some(lists) = &self.lists {
            lists.text(&mut s);
        }
        if let (Some(lo), Some(hi)) = (self.peers_min, self.peers_max) {
            let _ = writeln!(
                s,
                "  verified: every document parsed, one `me`; {lo} to {hi} peers"
            );
        }
        let per = self.cpu_divisor();
        for (who, p) in [("server", &self.server), ("churn", &self.client)] {
            let Some(p) = p else { continue };
            let cpu = p.cpu.as_nanos() as u64;
            let _ = write!(
                s,
                "  {who} pid {}: {:.2} us CPU per {}, {:.0}% of a core",
                p.pid,
                if per > 0 { us(cpu) / per as f64 } else { 0.0 },
                self.op_name(),
                100.0 * p.cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
            );
            if let Some(rss) = p.rss_bytes {
                let _ = write!(s, ", RSS {:.1} MiB", rss as f64 / 1048576.0);
            }
            let _ = writeln!(s, " ({})", p.source);
        }
        let total = self.failures.total();
        if total == 0 {
            let _ = writeln!(s, "  errors: none");
        } else {
            let _ = writeln!(s, "  errors: {total}");
            for (f, n, first) in self.failures.seen() {
                let _ = writeln!(s, "    {:<16} {n:>8}  first: {first}", f.name());
            }
        }
        for note in self.notes() {
            let _ = writeln!(s, "  note: {note}");
        }
        s
    }

    /// The counts and latency ladders of the operations timed.
    fn tables(&self, s: &mut String) {
        let c = &self.config;
        let mut table = |title: &str, n: u64, rows: &[(&str, &Histogram)]| {
            let _ = writeln!(s, "  {title}: {n} in {:.0}/s", self.per_s(n));
            let _ = write!(s, "    {:<14}{:>9}", "", "min");
            for (name, _) in LADDER {
                let _ = write!(s, "{name:>9}");
            }
            let _ = writeln!(s, "{:>9}{:>9}", "max", "mean");
            for (label, h) in rows {
                let _ = write!(s, "    {label:<14}{:>9.3}", ms(h.min()));
                for (_, q) in LADDER {
                    let _ = write!(s, "{:>9.3}", ms(h.percentile(q)));
                }
                let _ = writeln!(s, "{:>9.3}{:>9.3}", ms(h.max()), h.mean() / 1e6);
            }
        };
        let cycle = match &c.protocol {
            Protocol::Manager => "connect, ask, whole document, close",
            Protocol::Generic { .. } => "connect, request, whole answer, close",
        };
        let mut rows = vec![("latency ms", &self.latency)];
        if let Some(h) = &self.connect {
            rows.push(("connect ms", h));
        }
        if let Some(h) = &self.ttfb {
            rows.push(("first byte ms", h));
        }
        if let (Some(service), Some(lag)) = (&self.service, &self.start_lag) {
            rows.push(("service ms", service));
            rows.push(("start lag ms", lag));
        }
        match c.mode {
            Mode::JoinLeave if c.keep_alive => table(
                "requests on kept connections (request to whole answer)",
                self.ops,
                &rows,
            ),
            Mode::JoinLeave => table(&format!("join-leave cycles ({cycle})"), self.ops, &rows),
            Mode::Steady => {
                if c.steady > 0 {
                    table(
                        "steady answers (ask to whole document)",
                        self.steady_answers,
                        &[("latency ms", &self.steady_latency)],
                    );
                }
                if c.concurrency > 0 {
                    table(&format!("churn cycles ({cycle})"), self.ops, &rows);
                }
            }
            Mode::Fanout => table(
                "lines (sent until the last listener has it)",
                self.ops,
                &rows,
            ),
            Mode::Flood => table(
                "refusals (connect until the manager's refusal line)",
                self.ops,
                &rows,
            ),
        }
    }

    /// What could make the figures mislead, said plainly.
    pub fn notes(&self) -> Vec<String> {
        let c = &self.config;
        let mut notes = Vec::new();
        if c.mode == Mode::Steady && c.steady > 0 && c.concurrency > 0 {
            notes.push(format!(
                "{} churners ran in this process, on the steady servants' one thread: their work delays the steady answers. To time the steady servants, run `churn steady -c 0` and the churners from a second churn process.",
                c.concurrency
            ));
        }
        if c.mode == Mode::Steady && self.pushes > 0 {
            notes.push(format!(
                "the manager pushed {} documents: they queue ahead of answers on the same connections. To time answers alone, run the manager with --push-interval 0.",
                self.pushes
            ));
        }
        if c.rate.is_some() && self.waited > 0 {
            notes.push(format!(
                "{} starts waited for one of the -c {} connections: their wait is in the latency (as it would be for real clients). Raise -c to see the server alone.",
                self.waited, c.concurrency
            ));
        }
        notes.extend(self.port_search_note());
        notes
    }

    /// From one source address, with churn closing first, each `connect()` makes
    /// the kernel search the ephemeral ports past those left in TIME_WAIT. That
    /// search is CPU inside the call: when the call costs churn more than twice
    /// the rest of its cycle, say so once, naming the cure. (Measured: 50 us in
    /// the call and 16 us besides from 127.0.0.1, 24 and 16 from 99 addresses.)
    fn port_search_note(&self) -> Option<String> {
        let c = &self.config;
        let closes_first = match &c.protocol {
            Protocol::Manager => true,
            Protocol::Generic { expect, .. } => expect.is_some(),
        };
        let one_address = c.sources.len() <= 1;
        if c.mode != Mode::JoinLeave || c.keep_alive || !closes_first || !one_address {
            return None;
        }
        let call = self.connect_call?.as_nanos() as f64;
        let cpu = self.client.as_ref()?.cpu.as_nanos() as f64 / self.ops.max(1) as f64;
        if call < 30_000.0 || call < 2.0 * (cpu - call) {
            return None;
        }
        let connect = self.connect.as_ref()?;
        Some(format!(
            "{:.1} us of churn's {:.1} us CPU per cycle went inside connect() (connect mean {:.3} ms, p99 {:.3} ms), from {}: the kernel searches the ephemeral ports of one source address past those in TIME_WAIT. Spread the connections with --bind over more addresses (e.g. {}).",
            call / 1e3,
            cpu / 1e3,
            connect.mean() / 1e6,
            ms(connect.percentile(99.0)),
            c.sources.first().map_or("one address".to_string(), |ip| ip.to_string()),
            super::super::sources::DEFAULT
        ))
    }
}
