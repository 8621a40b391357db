//! What version-aware servants were sent (whole documents, deltas, unchanged),
//! and how long after each churner's join or leave every steady servant's list
//! had it.

use std::fmt::Write as _;

use super::super::histogram::Histogram;
use super::json::Obj;
use super::{hist, ms, LADDER};

/// Answers and pushes by kind, for the whole run, and the lag of the lists.
#[derive(Debug, Default)]
pub struct Lists {
    pub wholes: u64,
    pub deltas: u64,
    pub unchanged: u64,
    /// Deltas or unchanged answers that did not follow from the connection's
    /// version (also counted as malformed): it asked for the whole list again.
    pub gaps: u64,
    /// In the measured window: from a churner's join (its connect) or leave (its
    /// hang-up) until each steady servant's list had it, one sample per servant.
    pub lag: Histogram,
    /// Samples of `lag` over [`LAG_TARGET_MS`].
    pub late: u64,
}

/// How soon every steady servant's list should show a change.
pub const LAG_TARGET_MS: u64 = 500;

impl Lists {
    /// Adds another worker's counts and lags.
    pub fn add(&mut self, other: &Lists) {
        self.wholes += other.wholes;
        self.deltas += other.deltas;
        self.unchanged += other.unchanged;
        self.gaps += other.gaps;
        self.lag.add(&other.lag);
        self.late += other.late;
    }

    pub(super) fn text(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "  versions: {} whole documents, {} deltas, {} unchanged; {} gaps",
            self.wholes, self.deltas, self.unchanged, self.gaps
        );
        let h = &self.lag;
        if h.count() == 0 {
            return;
        }
        let _ = write!(
            s,
            "  list lag (change until each steady servant's list has it), {} samples, ms:",
            h.count()
        );
        for (name, q) in LADDER {
            let _ = write!(s, " {name} {:.1}", ms(h.percentile(q)));
        }
        let _ = writeln!(
            s,
            " max {:.1}; {} over {LAG_TARGET_MS} ms",
            ms(h.max()),
            self.late
        );
    }

    pub(super) fn json(&self, j: &mut Obj) {
        j.num("wholes", self.wholes as f64);
        j.num("deltas", self.deltas as f64);
        j.num("unchanged", self.unchanged as f64);
        j.num("gaps", self.gaps as f64);
        if self.lag.count() > 0 {
            hist(j, "list_lag", &self.lag);
            j.num("list_lag_late", self.late as f64);
        }
    }

    /// One lag sample, in nanoseconds.
    pub fn lagged(&mut self, ns: u64) {
        self.lag.record(ns);
        self.late += u64::from(ns > LAG_TARGET_MS * 1_000_000);
    }
}
