//! Answers to `needs peer list`: bare, the whole document personalised for the
//! asker, as the article's manager sent it. Versioned (`needs peer list since N`),
//! `<unchanged/>` when nothing changed, a delta when the document's log still
//! reaches back to N, and otherwise the whole document with its version (`docs/PROTOCOL.md`,
//! [`crate::wire::delta`]). Every servant at the same version is sent the same
//! bytes, rendered once per version and queued as shared ranges, so ten thousand
//! servants polling an unchanged list cost ten thousand small writes, not ten
//! thousand documents.
//!
//! What a servant is sent follows from what was sent on its connection before:
//! every answer and push moves its [`Member::seen`](super::Member) to the current
//! version, and the next one starts there. A request that names an older version
//! than that (it crossed a push on the wire) is answered from `seen` too: TCP
//! delivers the push first, so the servant has that version by the time it reads
//! the answer.

use std::rc::Rc;
use std::time::Instant;

use super::Slot;
use crate::net::Shared;
use crate::reactor::{Index, Reactor};
use crate::wire::delta;
use crate::wire::history::Since;
use crate::wire::peerdoc::PeerDoc;

/// Deltas kept rendered for the current version, by the version they start from.
/// Servants are mostly at one or two versions; past this, the oldest is dropped.
const CACHED_DELTAS: usize = 16;

/// Answers rendered for one version of the document.
#[derive(Debug, Default)]
pub(super) struct Answers {
    version: u64,
    /// The epoch `version` is written in: a cluster's manager changes epochs.
    epoch: u64,
    unchanged: Option<Shared>,
    /// From-version -> the delta to `version`, or None for the whole document.
    deltas: Vec<(u64, Option<Shared>)>,
}

/// What one send queued, in bytes: a whole document, or a delta or unchanged.
#[derive(Clone, Copy, Debug)]
pub(super) enum Sent {
    Whole(usize),
    Short(usize),
}

impl Sent {
    pub(super) fn bytes(self) -> usize {
        match self {
            Sent::Whole(n) | Sent::Short(n) => n,
        }
    }
}

impl Answers {
    /// VB: the `needs peer list` branch of `p2p_DataArrival`. `since`: the
    /// asker said which version it has (`needs peer list since N`; 0, none).
    pub(super) fn needs_peer_list(
        &mut self,
        r: &mut Reactor<Slot>,
        doc: &PeerDoc,
        index: Index,
        offset: Index,
        now: Instant,
        since: Option<u64>,
    ) {
        let Some(Slot::Servant(s)) = r.data_mut(index) else {
            return;
        };
        s.reach.heard = Some(now); // the article's heartbeat
        s.versioned = since.is_some();
        match since {
            None => {
                send_list(r, doc, index, offset);
            }
            Some(since) => {
                let from = if since == 0 { 0 } else { since.max(s.seen) };
                self.send_versioned(r, doc, index, offset, from);
            }
        }
    }

    /// Brings `index` up to the current version: what it asked for last time, a
    /// delta or the whole document.
    pub(super) fn send_update(
        &mut self,
        r: &mut Reactor<Slot>,
        doc: &PeerDoc,
        index: Index,
    ) -> Sent {
        match r.data(index) {
            Some(Slot::Servant(s)) if s.versioned => {
                let (seen, offset) = (s.seen, s.offset(index));
                self.send_versioned(r, doc, index, offset, seen)
            }
            Some(Slot::Servant(s)) => {
                let offset = s.offset(index);
                send_list(r, doc, index, offset)
            }
            _ => Sent::Whole(0),
        }
    }

    /// Sends `index`, whose list is at version `from`, what brings it to the
    /// current one.
    fn send_versioned(
        &mut self,
        r: &mut Reactor<Slot>,
        doc: &PeerDoc,
        index: Index,
        offset: Index,
        from: u64,
    ) -> Sent {
        let version = doc.version();
        if let Some(Slot::Servant(s)) = r.data_mut(index) {
            s.push_owed = false;
            s.seen = version;
        }
        let epoch = crate::wire::version::epoch();
        if self.version != version || self.epoch != epoch {
            *self = Answers {
                version,
                epoch,
                ..Answers::default()
            };
        }
        if from == version {
            let bytes = self
                .unchanged
                .get_or_insert_with(|| Rc::new(delta::unchanged(version)));
            send_all(r, index, bytes);
            return Sent::Short(bytes.len());
        }
        let cached = match self.deltas.iter().find(|(f, _)| *f == from) {
            Some((_, d)) => d.clone(),
            None => {
                let d = match doc.since(from) {
                    Since::Delta(bytes) => Some(Rc::new(bytes)),
                    Since::Unchanged | Since::Whole => None,
                };
                if self.deltas.len() == CACHED_DELTAS {
                    self.deltas.remove(0);
                }
                self.deltas.push((from, d.clone()));
                d
            }
        };
        if let Some(bytes) = cached {
            send_all(r, index, &bytes);
            return Sent::Short(bytes.len());
        }
        // The whole document, personalised, opening with its version.
        let pieces = doc.personalised_versioned(offset);
        r.send_pieces(index, &pieces);
        Sent::Whole(pieces.iter().map(|p| p.len()).sum())
    }
}

/// Sends `index`, listed at `offset`, its personalised document (VB: the `needs
/// peer list` branch).
fn send_list(r: &mut Reactor<Slot>, doc: &PeerDoc, index: Index, offset: Index) -> Sent {
    if let Some(Slot::Servant(s)) = r.data_mut(index) {
        s.push_owed = false; // it is getting the current list now
        s.seen = doc.version();
    }
    r.send_pieces(index, &doc.personalised(offset));
    Sent::Whole(doc.byte_len())
}

/// Hands freed buffers of a megabyte or so back to the system. The document is
/// kept in chunks of a few kilobytes, so a change no longer copies it whole; but
/// glibc raises its mmap threshold past the first large buffer freed (read
/// buffers, a private link's gathered record), after which such buffers come
/// from the heap and stay there: when whole documents were copied on every
/// change, the heap kept 184 MiB after a storm of 20,000 joins. A fixed threshold
/// keeps every buffer past 128 KiB in its own mapping, returned when freed.
pub(super) fn return_document_copies() {
    #[cfg(all(
        target_os = "linux",
        target_env = "gnu",
        not(target_feature = "crt-static")
    ))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Queues all of `bytes`, shared.
fn send_all(r: &mut Reactor<Slot>, index: Index, bytes: &Shared) {
    r.send_shared(index, bytes, std::slice::from_ref(&(0..bytes.len())));
}
