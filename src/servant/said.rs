//! Warnings said at most once in a while, with a count of what they stood for:
//! what a flood of bad input costs the log. Every part of the servant that
//! refuses something uses it.

use std::time::{Duration, Instant};

/// A cap's warning is repeated at most this often, with a count.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(10);

/// A refusal's log line is said at most this often, with a count.
pub(super) const SAY_EVERY: Duration = Duration::from_secs(1);

/// A warning said at most once per [`WARN_EVERY`], counting what it stood for.
#[derive(Debug, Default)]
pub(super) struct RateLimited {
    said: Option<Instant>,
    unsaid: u64,
}

impl RateLimited {
    /// Counts one occurrence; `Some(n)` when the warning is due, `n` being the
    /// occurrences since it was last said, this one included.
    pub(super) fn due(&mut self, now: Instant) -> Option<u64> {
        self.due_many(now, 1)
    }

    /// Counts `n` occurrences at once, like [`RateLimited::due`].
    pub(super) fn due_many(&mut self, now: Instant, n: u64) -> Option<u64> {
        self.due_within(now, n, WARN_EVERY)
    }

    /// Counts `n` occurrences; due at most once per `every`.
    pub(super) fn due_within(&mut self, now: Instant, n: u64, every: Duration) -> Option<u64> {
        self.unsaid += n;
        if self.said.is_some_and(|t| now.duration_since(t) < every) {
            return None;
        }
        self.said = Some(now);
        Some(std::mem::take(&mut self.unsaid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limited_warning_counts_what_it_did_not_say() {
        let t0 = Instant::now();
        let mut w = RateLimited::default();
        assert_eq!(w.due(t0), Some(1));
        assert_eq!(w.due(t0 + Duration::from_secs(1)), None);
        assert_eq!(w.due(t0 + Duration::from_secs(2)), None);
        assert_eq!(w.due(t0 + WARN_EVERY), Some(3));
    }
}
