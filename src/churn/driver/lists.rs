//! Version-aware servants, the default (`--bare` plays the article's): each
//! connection asks with the version its list is at (`needs peer list since N`)
//! and follows the manager's answers and pushes from version to version: a whole
//! document sets it, a delta must start where the list is and moves it on, an
//! unchanged answer must name it. One that does not follow is counted (a gap, and
//! malformed) and the connection asks for the whole list next time. Churn keeps
//! versions, not lists: ten thousand lists of ten thousand peers would not fit.
//!
//! With churners that stay (`--stay`), each join and leave they make is timed
//! until each steady servant's list has it: a join from the churner's connect
//! (told apart by its source address, so churners need several, `--bind`), a
//! leave from its hang-up (by the offset its own document gave it).

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::time::Instant;

use memchr::memmem;

use super::super::report::Failure;
use super::version::{read_head, Head, Version};
use super::{Churn, Conn, Role};
use crate::reactor::{Index, Reactor};

/// Changes churners made, for timing how soon the steady servants see them.
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Churner source address -> when it connected.
    joined: HashMap<IpAddr, Instant>,
    /// Offset -> when the churner there hung up.
    left: HashMap<usize, Instant>,
    /// Churners staying until a time: (when, slot).
    leaving: BinaryHeap<Reverse<(Instant, Index)>>,
    /// For each stay's length (xorshift64).
    rng: u64,
}

impl Churn {
    /// What a connection whose list is at `version` asks (0: it has none).
    pub(super) fn request_for(&self, version: Version) -> Cow<'_, [u8]> {
        if self.cfg.bare || self.cfg.generic() {
            Cow::Borrowed(&self.request)
        } else {
            Cow::Owned(version.request())
        }
    }

    /// A churner is connecting from `source`: its join is timed from now.
    pub(super) fn churner_connecting(&mut self, source: Option<IpAddr>) {
        if let Some(ip) = source.filter(|_| !self.cfg.stay.is_zero()) {
            self.changes.joined.insert(ip, Instant::now());
        }
    }

    /// Follows the version of a whole answer on connection `i`, and times the
    /// changes a steady servant's delta brings; one that does not follow is counted.
    pub(super) fn follow(&mut self, r: &mut Reactor<Conn>, i: Index, answer: &[u8], now: Instant) {
        if self.cfg.bare {
            return;
        }
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        let lists = &mut self.stats.lists;
        let was = ask.version;
        let gap = match read_head(answer) {
            Some(Head::Whole(v)) => {
                lists.wholes += 1;
                ask.version = v.unwrap_or_default();
                if ask.role == Role::Churner && !self.cfg.stay.is_zero() {
                    ask.offset = my_offset(answer);
                }
                None
            }
            Some(Head::Unchanged(v)) => {
                lists.unchanged += 1;
                (v != was).then(|| format!("unchanged at version {v}, but the list is at {was}"))
            }
            Some(Head::Delta { from, to }) => {
                lists.deltas += 1;
                ask.version = to;
                let steady = matches!(ask.role, Role::Steady(_));
                if from == was && steady && !self.cfg.stay.is_zero() {
                    self.time_changes(answer, now);
                }
                (from != was)
                    .then(|| format!("a delta from version {from}, but the list is at {was}"))
            }
            None => Some("not a peer document, delta or unchanged".into()),
        };
        let Some(why) = gap else { return };
        if let Some(Conn::Manager(ask)) = r.data_mut(i) {
            ask.version = Version::default(); // the whole list next time
        }
        self.stats.lists.gaps += 1;
        self.fail(Failure::Malformed, || why);
    }

    /// Times each join and leave in a steady servant's delta against when the
    /// churner made it, if it was made in the measured window.
    fn time_changes(&mut self, delta: &[u8], now: Instant) {
        let Some(window) = self.measure_start else {
            return;
        };
        let c = &self.changes;
        let lists = &mut self.stats.lists;
        let mut lag = |at: Option<&Instant>| {
            if let Some(&at) = at.filter(|&&at| at >= window) {
                lists.lagged(now.saturating_duration_since(at).as_nanos() as u64);
            }
        };
        for_each_change(delta, |change| match change {
            Change::Joined(ip) => lag(c.joined.get(&ip)),
            Change::Left(offset) => lag(c.left.get(&offset)),
        });
    }

    /// A churner has its answer: with `--stay` it stays, then leaves; else now.
    /// Each stays between half and one and a half times `--stay`, at random, so
    /// churners that started together do not join and leave in step.
    pub(super) fn churner_done(&mut self, r: &mut Reactor<Conn>, i: Index) {
        if self.cfg.stay.is_zero() {
            return r.close(i);
        }
        let x = &mut self.changes.rng;
        *x = if *x == 0 { 0x9e37_79b9_7f4a_7c15 } else { *x };
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let share = 0.5 + (*x >> 11) as f64 / (1u64 << 53) as f64;
        let at = Instant::now() + self.cfg.stay.mul_f64(share);
        if let Some(Conn::Manager(ask)) = r.data_mut(i) {
            ask.leave_at = Some(at);
        }
        self.changes.leaving.push(Reverse((at, i)));
    }

    /// Churners whose stay is over leave.
    pub(super) fn leave_due(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        while let Some(&Reverse((at, i))) = self.changes.leaving.peek() {
            if at > now {
                break;
            }
            self.changes.leaving.pop();
            // The slot may have been reused since: only the churner that set this time.
            let Some(Conn::Manager(ask)) = r.data(i) else {
                continue;
            };
            if ask.leave_at != Some(at) {
                continue;
            }
            if let Some(offset) = ask.offset {
                self.changes.left.insert(offset, Instant::now());
            }
            r.close(i);
        }
    }
}

/// One change a delta carries, as churn times it.
enum Change {
    Joined(IpAddr),
    Left(usize),
}

/// Calls `f` for each join and leave in a delta as the manager renders it,
/// without parsing it (ten thousand servants read each one).
fn for_each_change(delta: &[u8], mut f: impl FnMut(Change)) {
    let number = |text: &[u8]| std::str::from_utf8(text).ok()?.parse().ok();
    let mut rest = delta;
    while let Some(at) = memchr::memchr(b'<', rest) {
        rest = &rest[at..];
        let skip_to = |rest: &[u8], end: &[u8]| memmem::find(rest, end).map(|p| p + end.len());
        let next = if rest.starts_with(b"<left>") {
            let end = memchr::memchr(b'<', &rest[6..]).map(|p| p + 6);
            if let Some(offset) = end.and_then(|e| number(&rest[6..e])) {
                f(Change::Left(offset));
            }
            end
        } else if rest.starts_with(b"<changed>") {
            skip_to(rest, b"</changed>")
        } else if rest.starts_with(b"<peer><ip>") {
            let end = memmem::find(&rest[10..], b"</ip>").map(|p| p + 10);
            if let Some(ip) = end.and_then(|e| std::str::from_utf8(&rest[10..e]).ok()?.parse().ok())
            {
                f(Change::Joined(ip));
            }
            skip_to(rest, b"</peer>")
        } else {
            Some(1)
        };
        let Some(next) = next else { return };
        rest = &rest[next..];
    }
}

/// The offset of the entry marked `<me>TRUE</me>` in a document.
fn my_offset(doc: &[u8]) -> Option<usize> {
    let me = memmem::find(doc, b"<me>TRUE</me>")?;
    let open = memmem::rfind(&doc[..me], b"<offset>")? + b"<offset>".len();
    let close = open + memchr::memchr(b'<', &doc[open..me])?;
    std::str::from_utf8(&doc[open..close]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::history::Since;
    use crate::wire::peerdoc::PeerDoc;
    use crate::wire::relay::Relay;

    #[test]
    fn changes_are_found_in_a_delta_without_parsing_it() {
        let mut d = PeerDoc::new();
        for o in 1..=4 {
            d.add(format!("127.1.0.{o}").parse().unwrap(), 2223 + o as u16, o);
        }
        let v = d.version();
        d.remove(2);
        d.set_relay(3, Some(Relay::Via("127.1.0.1:2224".parse().unwrap())));
        d.add("127.1.0.9".parse().unwrap(), 2230, 2);
        let Since::Delta(bytes) = d.since(v) else {
            panic!()
        };
        let mut seen = Vec::new();
        for_each_change(&bytes, |c| {
            seen.push(match c {
                Change::Joined(ip) => format!("joined {ip}"),
                Change::Left(o) => format!("left {o}"),
            })
        });
        assert_eq!(
            seen,
            ["left 2", "joined 127.1.0.9"],
            "the changed entry is not a join"
        );
        assert_eq!(my_offset(&d.render_versioned_for(3)), Some(3));
        assert_eq!(my_offset(&d.render_for(99)), None);
    }
}
