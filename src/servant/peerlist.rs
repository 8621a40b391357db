//! The list a servant delivers to: what the manager sends, checked, and across a
//! manager restart, kept whole until the new manager's list has settled.
//!
//! VB loaded whatever `pDoc1` the manager sent and looped over it. A manager can be
//! wrong or lie, and every entry costs a connection per line typed, so here a
//! document with more than `--max-peers` entries is refused before it is parsed
//! (the last good list stays), and an address listed more than once is sent to
//! once (`Peers`, `peers.rs`).
//!
//! **After a manager restart.** The new manager starts with an empty list, which
//! fills as servants reconnect (each within the 5 s reconnect backoff). Taken at
//! its word, the first list a servant gets would stop it delivering to everyone
//! not yet back, and the new manager numbers ports afresh, so peers still holding
//! the old list would deliver to ports nobody listens on. So for a while after
//! reconnecting (`Settling`), until the backoff has run out and the list has not
//! changed for two poll intervals:
//! - a peer of the old list whose address (IP) is on no entry of the new one is
//!   still delivered to at its old port;
//! - a peer that cannot be reached at its new port (it has not been told it yet) is
//!   tried at its old one;
//! - this servant keeps listening on its old port as well as its new one.
//!
//! Peers are matched by IP: two servants behind one address look alike, so for
//! them the rule does less (a line may miss the one not yet back).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use log::{debug, info, warn};

use super::link::BACKOFF_MAX;
use super::peers::too_many;
use super::said::RateLimited;
use super::{Servant, Slot};
use crate::reactor::{Index, Reactor};
use crate::wire::peerdoc::Peer;

/// The checks on the manager's lists, and the settling after a reconnect.
#[derive(Debug, Default)]
pub(super) struct Lists {
    pub(super) settling: Option<Settling>,
    /// Lists refused for their length, and lists naming an address twice.
    too_long: RateLimited,
    duplicated: RateLimited,
}

/// The old list kept beside the new one after reconnecting to the manager.
#[derive(Debug)]
pub(super) struct Settling {
    /// The old list's entries, other than this servant's own.
    old: Vec<Peer>,
    /// Listeners (slot, port) on the ports this servant had before, kept open for
    /// peers that still deliver there.
    pub(super) listeners: Vec<(Index, u16)>,
    /// The first list on the new link.
    since: Instant,
    /// The list last changed.
    changed: Instant,
}

/// `<peer>` elements in a document, counted without parsing it (an upper bound).
fn entries(doc: &[u8]) -> usize {
    memchr::memmem::find_iter(doc, b"<peer")
        .filter(|&at| {
            let next = doc.get(at + 5).copied().unwrap_or(b'>');
            next == b'>' || next == b'/' || next.is_ascii_whitespace()
        })
        .count()
}

impl Servant {
    /// A framed document from the manager as the list to use: parsed and checked,
    /// or `None` (said why) to keep the last one.
    /// Whether a whole document in `doc` lists more peers than allowed, counted
    /// before parsing: a lying manager's 200,000 entries would cost some 100 MB as
    /// a tree before they could be refused. Said (rate-limited) when it does.
    pub(super) fn too_long(&mut self, r: &Reactor<Slot>, doc: &[u8]) -> bool {
        let listed = entries(doc);
        if listed <= self.config.max_peers {
            return false;
        }
        self.refuse_list(r, &too_many(listed, self.config.max_peers));
        true
    }

    /// An applied list named some addresses more than once (`listed` entries
    /// collapsed to fewer): said, rate-limited.
    pub(super) fn duplicates(&mut self, r: &Reactor<Slot>, listed: usize) {
        if self.peers.len() < listed {
            if let Some(n) = self.lists.duplicated.due(r.now()) {
                warn!(
                    "the connection manager lists some addresses more than once ({listed} entries, {} addresses); each gets a line once ({n} such list(s) since the last warning)",
                    self.peers.len()
                );
            }
        }
    }

    pub(super) fn refuse_list(&mut self, r: &Reactor<Slot>, why: &str) {
        if let Some(n) = self.lists.too_long.due(r.now()) {
            warn!(
                "refusing a peer list from the connection manager: {why}; keeping the last one of {} ({n} refused since the last warning)",
                self.peers.len()
            );
        }
    }

    /// A new list arrived. The first on a new link, when there was a list before,
    /// starts the settling: the old list stays in use beside it.
    pub(super) fn settle_list(&mut self, now: Instant, fresh: bool, changed: bool, old: &[Peer]) {
        if fresh && !old.is_empty() {
            let settling = self.lists.settling.get_or_insert_with(|| Settling {
                old: Vec::new(),
                listeners: Vec::new(),
                since: now,
                changed: now,
            });
            let known: HashSet<SocketAddr> = settling.old.iter().map(Peer::addr).collect();
            let gone = old.iter().filter(|p| !p.me && !known.contains(&p.addr()));
            settling.old.extend(gone.cloned());
            settling.since = now;
            settling.changed = now;
            debug!(
                "back with the connection manager: the last list ({} peers) is kept in use until the new one settles",
                old.len()
            );
        } else if let Some(settling) = self.lists.settling.as_mut().filter(|_| changed) {
            settling.changed = now;
        }
    }

    /// The settling is over once every servant has had time to reconnect and the
    /// list has not changed for two poll intervals: the old ports stop listening.
    pub(super) fn settle_tick(&mut self, r: &mut Reactor<Slot>) {
        let Some(settling) = &self.lists.settling else {
            return;
        };
        let now = r.now();
        let quiet = self.config.poll_interval * 2;
        if now.duration_since(settling.since) < BACKOFF_MAX + quiet
            || now.duration_since(settling.changed) < quiet
        {
            return;
        }
        let Some(settling) = self.lists.settling.take() else {
            return;
        };
        for (l, _) in settling.listeners {
            r.close(l);
        }
        info!(
            "peer list settled after reconnecting: {} peers",
            self.peers.len()
        );
    }

    /// Peers of the old list to deliver to as well: those whose address is on no
    /// entry of the new list.
    pub(super) fn settling_extras(&self) -> Vec<Peer> {
        let Some(settling) = &self.lists.settling else {
            return Vec::new();
        };
        let now: HashSet<IpAddr> = self.peers.iter().map(|p| p.ip).collect();
        (settling.old.iter())
            .filter(|p| !now.contains(&p.ip))
            .cloned()
            .collect()
    }

    /// Where the peer now listed at `to` listened before, while settling: tried
    /// when it cannot be reached at `to` yet. `None` when that is unknown or
    /// ambiguous (two old entries from that address).
    pub(super) fn fallback_for(&self, to: SocketAddr) -> Option<SocketAddr> {
        let settling = self.lists.settling.as_ref()?;
        let mut same_ip = settling.old.iter().filter(|p| p.ip == to.ip());
        match (same_ip.next(), same_ip.next()) {
            (Some(p), None) if p.addr() != to => Some(p.addr()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_counted_without_parsing() {
        let doc = b"<peers><peer><ip>1.2.3.4</ip></peer><peer ><peer/><peerx></peers>";
        assert_eq!(entries(doc), 3);
        assert_eq!(entries(b"<peers></peers>"), 0);
    }
}
