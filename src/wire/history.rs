//! The peer document's versions: every change to it (a join, a leave, an entry
//! re-rendered in place, as a `<relay>` change does) is one version, and a bounded
//! log of the latest changes lets the manager answer "what changed since version
//! N" with a delta (`<delta from="N" to="M">`, [`super::delta`]) instead of the
//! whole document. The log keeps offsets and kinds only, never bytes: a delta
//! copies each entry's current bytes out of the document when it is rendered.
//!
//! The article's manager had no versions: every poll got the whole `pDoc.xml`, so
//! N servants polling a list of N cost N squared bytes.

use std::collections::VecDeque;

use super::delta::{self, CHANGED, CHANGED_END, LEFT, LEFT_END};
use super::render::push_number;

/// Changes the log remembers (16 bytes each, 1 MiB in all). A servant further
/// behind than this gets the whole document: at 200 changes a second (100 joins
/// and 100 leaves) that is five minutes, and ten thousand servants joining at
/// once stay inside it while their first whole lists drain (with 4096, a servant
/// whose own whole list took two seconds to send was owed another one).
pub const LOG_CHANGES: usize = 65_536;

/// What one change did to the entry at its offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Joined,
    /// The entry that left had joined at this version.
    Left {
        joined: u64,
    },
    /// Re-rendered in place (its `<relay>`, or any element after `<me>`).
    Changed,
}

/// One logged change, at its version. Versions rise by one per change for a
/// manager alone; a cluster's jump past changes that did not touch this document
/// and may carry several changes at one version (one change of the cluster's).
#[derive(Clone, Copy, Debug)]
struct Change {
    version: u64,
    offset: u32,
    kind: Kind,
}

/// When the entry now at an offset joined and was last re-rendered (0: no entry).
#[derive(Clone, Copy, Debug, Default)]
struct Stamp {
    joined: u64,
    changed: u64,
}

/// The document's version and the log of its latest changes.
#[derive(Debug, Default)]
pub struct History {
    /// The version of the newest change; 0 before any.
    version: u64,
    /// The last changes, oldest first; the last one made `version`.
    log: VecDeque<Change>,
    /// By offset.
    stamps: Vec<Stamp>,
    /// The oldest version the log reaches back to: a delta from any version
    /// below it would miss changes.
    floor: u64,
    /// While set, every change is made at this version ([`History::pin`]).
    pinned: Option<u64>,
}

/// What changed since a version, netted per offset: an entry that joined and left
/// in between is in none of the lists, one re-rendered twice is in `changed` once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Net {
    /// Offsets whose entry (there at the old version) is gone.
    pub left: Vec<usize>,
    /// Offsets whose entry was there at the old version and has been re-rendered.
    pub changed: Vec<usize>,
    /// Offsets of entries that joined since, in document (join) order.
    pub joined: Vec<usize>,
}

impl Net {
    pub fn len(&self) -> usize {
        self.left.len() + self.changed.len() + self.joined.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl History {
    pub fn version(&self) -> u64 {
        self.version
    }

    pub(super) fn joined(&mut self, offset: usize) {
        self.record(offset, Kind::Joined);
        let v = self.version;
        if self.stamps.len() <= offset {
            self.stamps.resize(offset + 1, Stamp::default());
        }
        self.stamps[offset] = Stamp {
            joined: v,
            changed: v,
        };
    }

    pub(super) fn left(&mut self, offset: usize) {
        let joined = std::mem::take(&mut self.stamps[offset]).joined;
        self.record(offset, Kind::Left { joined });
    }

    pub(super) fn changed(&mut self, offset: usize) {
        self.record(offset, Kind::Changed);
        self.stamps[offset].changed = self.version;
    }

    fn record(&mut self, offset: usize, kind: Kind) {
        self.version = self.pinned.unwrap_or(self.version + 1);
        if self.log.len() == LOG_CHANGES {
            if let Some(gone) = self.log.pop_front() {
                self.floor = gone.version;
            }
        }
        self.log.push_back(Change {
            version: self.version,
            offset: offset as u32,
            kind,
        });
    }

    /// From now until `pin(None)`, every change is made at version `at` (no lower
    /// than the current one): a cluster's change may touch this document once,
    /// twice or not at all, and is still the one version every manager numbers
    /// it. Unpinned, the version is `at` even if nothing changed.
    pub fn pin(&mut self, at: Option<u64>) {
        match at {
            Some(v) => self.pinned = Some(v.max(self.version)),
            None => {
                if let Some(v) = self.pinned.take() {
                    self.version = self.version.max(v);
                }
            }
        }
    }

    /// Starts a new history at version `at` (higher or lower than the current
    /// one) for the document as it is: nothing before it is known, so every
    /// asker from an older version is sent the whole document. For a manager that
    /// changes epochs (its cluster's, or its own while Redis is away).
    pub fn restart(&mut self, at: u64) {
        self.log.clear();
        self.version = at;
        self.floor = at;
        self.pinned = None;
        for s in self.stamps.iter_mut().filter(|s| s.joined != 0) {
            *s = Stamp {
                joined: at.max(1),
                changed: at.max(1),
            };
        }
    }

    /// What changed after version `since`, if the log still holds all of it.
    pub fn since(&self, since: u64) -> Option<Net> {
        if since > self.version || since < self.floor {
            return None;
        }
        let first = self.log.partition_point(|c| c.version <= since);
        // (offset, whether an entry there at `since` left), one per change.
        let mut touched: Vec<(u32, bool)> = (self.log.range(first..))
            .map(|c| {
                let old_left = matches!(c.kind, Kind::Left { joined } if joined <= since);
                (c.offset, old_left)
            })
            .collect();
        // Sorted, an offset's `true` (if any) comes last among its changes.
        touched.sort_unstable();
        let mut net = Net::default();
        let mut joined = Vec::new();
        for (k, &(offset, old_left)) in touched.iter().enumerate() {
            if touched.get(k + 1).is_some_and(|next| next.0 == offset) {
                continue;
            }
            let offset = offset as usize;
            if old_left {
                net.left.push(offset);
            }
            match self.stamps.get(offset) {
                Some(s) if s.joined > since => joined.push((s.joined, offset)),
                Some(s) if s.joined != 0 && s.changed > since => net.changed.push(offset),
                _ => {}
            }
        }
        joined.sort_unstable();
        net.joined = joined.into_iter().map(|(_, offset)| offset).collect();
        Some(net)
    }
}

/// What a servant that has version `since` is sent, as the manager decides it.
#[derive(Debug, PartialEq, Eq)]
pub enum Since {
    /// Nothing changed: `<unchanged version="N"/>`.
    Unchanged,
    /// `<delta from="since" to="N">...</delta>\r\n`, rendered.
    Delta(Vec<u8>),
    /// The log no longer reaches back that far, or the delta would be longer than
    /// the document: send the whole one, with its version.
    Whole,
}

impl History {
    /// What to send a servant whose list is at version `since` (0: it has none),
    /// for a document of `len` entries whose bytes `entry` gives by offset.
    pub(super) fn answer<'a>(
        &self,
        since: u64,
        len: usize,
        entry: impl Fn(usize) -> Option<&'a [u8]>,
    ) -> Since {
        let version = self.version;
        if since == version {
            return Since::Unchanged;
        }
        // No list, or so many changes behind that netting them costs more than
        // sending the whole document would.
        let behind = version.saturating_sub(since);
        if since == 0 || behind > 4 * len as u64 + 64 {
            return Since::Whole;
        }
        let net = match self.since(since) {
            Some(net) if net.len() <= len => net,
            _ => return Since::Whole,
        };
        let entries: usize = (net.changed.iter().chain(&net.joined))
            .filter_map(|&o| entry(o))
            .map(<[u8]>::len)
            .sum();
        let mut out =
            Vec::with_capacity(64 + net.left.len() * 20 + net.changed.len() * 19 + entries);
        delta::open(&mut out, since, version);
        for &offset in &net.left {
            out.extend_from_slice(LEFT);
            push_number(&mut out, offset);
            out.extend_from_slice(LEFT_END);
        }
        for &offset in &net.changed {
            out.extend_from_slice(CHANGED);
            out.extend_from_slice(entry(offset).unwrap_or_default());
            out.extend_from_slice(CHANGED_END);
        }
        for &offset in &net.joined {
            out.extend_from_slice(entry(offset).unwrap_or_default());
        }
        delta::close(&mut out);
        Since::Delta(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(left: &[usize], changed: &[usize], joined: &[usize]) -> Net {
        Net {
            left: left.to_vec(),
            changed: changed.to_vec(),
            joined: joined.to_vec(),
        }
    }

    #[test]
    fn changes_net_out_per_offset() {
        let mut h = History::default();
        h.joined(1); // 1
        h.joined(2); // 2
        h.changed(1); // 3
        h.left(2); // 4
        h.joined(2); // 5: a newcomer in the reused slot
        h.joined(3); // 6
        h.left(3); // 7: came and went
        assert_eq!(h.since(7), Some(Net::default()));
        assert_eq!(h.since(2), Some(net(&[2], &[1], &[2])));
        assert_eq!(h.since(3), Some(net(&[2], &[], &[2])));
        assert_eq!(h.since(4), Some(net(&[], &[], &[2])));
        assert_eq!(h.since(0), Some(net(&[], &[], &[1, 2])));
        assert_eq!(h.since(8), None, "a version from the future");
    }

    #[test]
    fn joins_come_in_join_order_whatever_their_offsets() {
        let mut h = History::default();
        h.joined(5);
        h.joined(2);
        h.joined(9);
        assert_eq!(h.since(0).unwrap().joined, [5, 2, 9]);
    }

    #[test]
    fn the_log_is_bounded_and_says_when_it_no_longer_reaches() {
        let mut h = History::default();
        for _ in 0..LOG_CHANGES + 10 {
            h.joined(1);
            h.left(1);
        }
        let v = h.version();
        assert_eq!(h.log.len(), LOG_CHANGES);
        assert!(h.since(v - LOG_CHANGES as u64).is_some());
        assert!(h.since(v - LOG_CHANGES as u64 - 1).is_none());
    }

    #[test]
    fn pinned_changes_share_a_version_and_a_restart_forgets_the_past() {
        let mut h = History::default();
        h.joined(1); // 1
        h.pin(Some(5));
        h.left(1);
        h.joined(1); // both at 5: one change of a cluster's
        h.pin(None);
        assert_eq!(h.version(), 5);
        assert_eq!(h.since(1), Some(net(&[1], &[], &[1])));
        assert_eq!(
            h.since(3),
            Some(net(&[1], &[], &[1])),
            "3 and 4 touched nothing here"
        );
        h.pin(Some(9));
        h.pin(None);
        assert_eq!((h.version(), h.since(5)), (9, Some(Net::default())));
        h.restart(4);
        assert_eq!(h.version(), 4);
        assert_eq!(h.since(3), None, "from before the restart");
        h.joined(2); // 5
        assert_eq!(h.since(4), Some(net(&[], &[], &[2])));
        h.left(1); // 6
        assert_eq!(h.since(4), Some(net(&[1], &[], &[2])));
    }
}
