//! `send1`, sending: every batch of typed lines goes to every peer on the list,
//! this servant included, one outgoing connection each; failures are counted and
//! warned about in one summary line at a bounded rate.
//!
//! **Kept links.** The article connected, sent and closed for every batch; here the
//! connection to a peer stays open after its batch and carries the next ones: the
//! same `\r\n`-terminated lines, nothing added, so a receiver that reads
//! connections to their close shows them as they come. At most
//! [`Limits::kept`](super::incoming::Limits) stay open, the least recently used
//! closed first; one unused for [`KEPT_IDLE`] is closed, before a receiver's idle
//! sweep would. A receiver closing one (its idle sweep, its caps) shuts its side
//! and reads on until our FIN (docs/PROTOCOL.md): the EOF we read tells us to
//! close it, and the next batch goes on a new connection; what we wrote before
//! is still read, so nothing is sent twice. Sends to ourselves are not kept
//! (leaving waits for our own listener to see each one close), nor `/msg`'s.
//!
//! The article looped over the peers through one control, waiting out each
//! connect with `While send1.State = 6: DoEvents: Wend`, so one unreachable peer
//! stalled the rest; here an unreachable peer costs a failed connect, nothing more,
//! and a complaint to the manager ([`super::relay`]). At most
//! [`super::incoming::MAX_SENDING`] sends are in flight (fewer when descriptors are
//! short); the rest wait in a queue, in order, each sharing its batch's bytes. A
//! peer the document shows as relayed is not sent to directly: its relay forwards
//! what it gets. A relayed servant shows its own lines itself and sends them to its
//! relay over the pull link instead of to the relay's listener.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::said::RateLimited;
use super::{Servant, Slot};
use crate::reactor::{Index, Reactor};
use crate::wire::peerdoc::Peer;
use crate::wire::relay::Relay;

/// Lines typed before the first peer list are held up to this many bytes.
const MAX_HELD: usize = 1024 * 1024;
/// Sends waiting for a slot, at most: ten lines to the largest list allowed.
const MAX_QUEUED: usize = 100_000;
/// Peer addresses whose failures are counted one by one; past that, together.
const REMEMBERED: usize = 4096;
/// A kept link unused this long is closed: before a receiver's idle sweep (30 s)
/// would close it under a batch on its way.
const KEPT_IDLE: Duration = Duration::from_secs(20);

/// A kept link to one peer: its slot, and when it last carried a batch.
#[derive(Debug, Clone, Copy)]
struct Kept {
    slot: Index,
    used: Instant,
    opened: Instant,
}

/// One batch waiting to go to one peer.
#[derive(Debug)]
pub(super) struct Queued {
    to: SocketAddr,
    to_self: bool,
    batch: Rc<[u8]>,
    fallback: Option<SocketAddr>,
    /// It may go on a kept link, or open one: not to ourselves, not `/msg`.
    keep: bool,
    /// Sent again to a member's new address: it does not wait for another.
    resent: bool,
}

/// Delivery failures: counted per peer address, warned about in one line at most
/// every 10 s whatever the number of addresses, summed up when the servant leaves.
#[derive(Debug, Default)]
pub(super) struct Failures {
    by_address: HashMap<SocketAddr, u64>,
    /// Failures to addresses past the first [`REMEMBERED`].
    others: u64,
    total: u64,
    warning: RateLimited,
}

impl Failures {
    /// Counts one; `Some(n)` when the warning is due, with the failures it stands for.
    fn failed(&mut self, to: SocketAddr, now: Instant) -> Option<u64> {
        self.total += 1;
        let room = self.by_address.len() < REMEMBERED;
        match self.by_address.get_mut(&to) {
            Some(n) => *n += 1,
            None if room => {
                self.by_address.insert(to, 1);
            }
            None => self.others += 1,
        }
        self.warning.due(now)
    }

    fn addresses(&self) -> String {
        let n = self.by_address.len();
        if self.others > 0 {
            format!("{n}+")
        } else {
            n.to_string()
        }
    }

    /// The line logged on the way out, if anything failed.
    pub(super) fn summary(&self) {
        if self.total > 0 {
            info!(
                "{} delivery failure(s) to {} peer address(es)",
                self.total,
                self.addresses()
            );
        }
    }
}

/// What is on its way to peers: the batch being gathered, lines held for want of
/// a list, sends queued and in flight, and their failures.
#[derive(Debug, Default)]
pub(super) struct Sends {
    /// Chat lines typed in this stdin chunk, sent as one batch.
    pub(super) batch: Vec<u8>,
    /// Lines typed before there was a list to send them to (or a listener for our
    /// own copy); sent when the first one arrives, so `echo hi | servant` works.
    pub(super) held: Vec<u8>,
    /// Sends waiting for a slot, past the cap on sends in flight.
    queued: VecDeque<Queued>,
    /// Outgoing slots still open, at most `admission.limits.sending`.
    pub(super) outgoing: usize,
    /// Local addresses of our sends to ourselves that connected but whose incoming
    /// side has not closed yet: leaving waits for them so our own transcript is whole.
    pub(super) self_pending: Vec<SocketAddr>,
    /// Links left open for the next batches, by peer.
    kept: HashMap<SocketAddr, Kept>,
    /// Batches for members that were not at their listed address.
    pub(super) moved: super::private::Awaiting,
    pub(super) failures: Failures,
}

impl Sends {
    /// Our own send from `local` has been shown by our listener, or never will be:
    /// leaving need not wait for it. Whether it was waited for.
    pub(super) fn self_done(&mut self, local: SocketAddr) -> bool {
        match self.self_pending.iter().position(|&a| a == local) {
            Some(k) => {
                self.self_pending.swap_remove(k);
                true
            }
            None => false,
        }
    }

    /// Nothing left in flight, to peers or to ourselves.
    pub(super) fn drained(&self) -> bool {
        self.outgoing == 0 && self.self_pending.is_empty()
    }
}

impl Servant {
    /// VB: the loop in `txtSend1_KeyPress` over `./peers/peer`: `send1.Connect ip, port`
    /// and, in `send1_Connect`, `SendData`. Here each peer gets its own slot, as
    /// many at once as the cap allows.
    pub(super) fn send1_broadcast(&mut self, r: &mut Reactor<Slot>) {
        if self.sends.batch.is_empty() {
            return;
        }
        if self.peers.is_empty() || self.listener.is_none() {
            if self.sends.held.is_empty() {
                info!(
                    "no peer list yet: holding what is typed until the connection manager answers"
                );
            }
            if self.sends.held.len() + self.sends.batch.len() > MAX_HELD {
                self.console.complain(&format!(
                    "not sent: more than {} KiB typed while there is no peer list",
                    MAX_HELD / 1024
                ));
            } else {
                self.sends.held.extend_from_slice(&self.sends.batch);
            }
            self.sends.batch.clear();
            return;
        }
        let relayed = self.relay.status;
        let via = match relayed {
            Some(Relay::Via(to)) => Some(to),
            _ => None,
        };
        let extras = self.settling_extras();
        let targets: Vec<&Peer> = self
            .peers
            .iter()
            .chain(&extras)
            .filter(|p| self.sent_directly(p))
            .collect();
        if self.sends.queued.len() + targets.len() > MAX_QUEUED {
            self.console.complain(&format!(
                "not sent: {} deliveries of earlier lines are still waiting",
                self.sends.queued.len()
            ));
            self.sends.batch.clear();
            return;
        }
        let batch: Rc<[u8]> = Rc::from(&self.sends.batch[..]);
        for peer in targets {
            let to = peer.addr();
            self.sends.queued.push_back(Queued {
                to,
                to_self: peer.me,
                batch: batch.clone(),
                fallback: if peer.me { None } else { self.fallback_for(to) },
                keep: !peer.me,
                resent: false,
            });
        }
        self.start_sends(r);
        self.seal_for_relayed(r, &batch);
        if relayed.is_some() {
            for line in batch.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                self.show_own(line);
            }
            if via.is_some() {
                let batch = std::mem::take(&mut self.sends.batch);
                self.send_to_relay(r, &batch);
            }
        }
        self.sends.batch.clear();
    }

    /// Whether batches go to `peer` on a connection of ours: not to a relayed peer,
    /// whose relay forwards them, nor to our own relay, which gets them on the
    /// pull link, nor to ourselves while relayed (not reachable at our address).
    pub(super) fn sent_directly(&self, peer: &Peer) -> bool {
        let relayed = self.relay.status;
        if peer.me {
            return relayed.is_none();
        }
        peer.relay.is_none() && relayed != Some(Relay::Via(peer.addr()))
    }

    /// One line for one peer only (`/msg`), queued like any batch, on a connection
    /// of its own closed after it: a receiver may read it to the close.
    pub(super) fn send_one(&mut self, r: &mut Reactor<Slot>, to: SocketAddr, line: Vec<u8>) {
        if self.sends.queued.len() >= MAX_QUEUED {
            return self.console.complain(&format!(
                "not sent: {} deliveries of earlier lines are still waiting",
                self.sends.queued.len()
            ));
        }
        self.sends.queued.push_back(Queued {
            to,
            to_self: false,
            batch: Rc::from(line),
            fallback: self.fallback_for(to),
            keep: false,
            resent: false,
        });
        self.start_sends(r);
    }

    /// A batch again, for a member found at a new address ([`super::private`]).
    pub(super) fn send_again(&mut self, r: &mut Reactor<Slot>, to: SocketAddr, batch: Rc<[u8]>) {
        self.sends.queued.push_back(Queued {
            to,
            to_self: false,
            batch,
            fallback: None,
            keep: true,
            resent: true,
        });
        self.start_sends(r);
    }

    /// Starts queued sends while fewer than the cap are in flight: on the peer's
    /// kept link if it has one, else on a new connection, kept if there is room.
    fn start_sends(&mut self, r: &mut Reactor<Slot>) {
        while self.sends.outgoing < self.admission.limits.sending {
            let Some(q) = self.sends.queued.pop_front() else {
                return;
            };
            if q.keep && self.send_kept(r, &q) {
                continue;
            }
            let keep = q.keep && !self.quitting && self.room_to_keep(r);
            let slot = Slot::Outgoing {
                to: q.to,
                to_self: q.to_self,
                local: None,
                delivered: false,
                error: None,
                started: r.now(),
                batch: q.batch.clone(),
                fallback: q.fallback,
                connected: false,
                kept: keep,
                inflight: true,
                key: (self.is_private() && !q.resent && !q.to_self)
                    .then(|| self.peers.get(q.to).and_then(|p| p.key))
                    .flatten(),
            };
            match self.open_send(r, q.to, slot) {
                Ok(i) => {
                    r.send(i, &q.batch);
                    self.sends.outgoing += 1;
                    if keep {
                        // A later batch may be written while the last is unacknowledged
                        // (a receiver that delays its ACKs): Nagle would hold it back.
                        r.set_nodelay(i);
                        let used = r.now();
                        let kept = Kept {
                            slot: i,
                            used,
                            opened: used,
                        };
                        self.sends.kept.insert(q.to, kept);
                    }
                }
                Err(e) => self.peer_failed(r, q.to, &e.to_string()),
            }
        }
    }

    /// Sends `q` on its peer's kept link, if that is still open and, on a private
    /// network, proven by the key the list now gives the peer.
    fn send_kept(&mut self, r: &mut Reactor<Slot>, q: &Queued) -> bool {
        let Some(k) = self.sends.kept.get_mut(&q.to) else {
            return false;
        };
        let slot = k.slot;
        // Marked used now, while the entry is at hand: a link found closed below
        // leaves the map anyway. One lookup per peer per batch, not two.
        k.used = r.now();
        // Forward secrecy over time, not only per link: an old private link is
        // closed gracefully once idle and this batch opens a new one, with a new
        // handshake (a busy link is reused until its next idle moment).
        let rekey = self.config.private.as_ref().map(|p| p.rekey_after);
        if rekey.is_some_and(|after| k.used.duration_since(k.opened) >= after) && idle(r, slot) {
            debug!(
                "link to {} is {:?} old: a new handshake for new keys",
                q.to,
                k.used.duration_since(k.opened)
            );
            self.sends.kept.remove(&q.to);
            r.close(slot);
            return false;
        }
        let stale = self.is_private() && {
            let listed = self.peers.get(q.to).and_then(|p| p.key);
            r.peer_key(slot).is_some_and(|&key| Some(key) != listed)
        };
        let open = r.socket(slot).is_some_and(|s| s.is_open());
        let Some(Slot::Outgoing {
            to,
            delivered,
            batch,
            inflight,
            connected,
            ..
        }) = r.data_mut(slot).filter(|_| open && !stale)
        else {
            self.sends.kept.remove(&q.to);
            if stale {
                r.close(slot);
            }
            return false;
        };
        if *to != q.to {
            return false;
        }
        if !*connected {
            // Still connecting: both go to the fallback if it cannot be reached.
            *batch = [&batch[..], &q.batch[..]].concat().into();
        }
        if !std::mem::replace(inflight, true) {
            self.sends.outgoing += 1;
        }
        *delivered = false;
        r.send(slot, &q.batch);
        true
    }

    /// Whether a new link may be kept: below the cap, or once the least recently
    /// used idle one is closed to make room.
    fn room_to_keep(&mut self, r: &mut Reactor<Slot>) -> bool {
        if self.sends.kept.len() < self.admission.limits.kept {
            return true;
        }
        let lru = (self.sends.kept.iter())
            .filter(|(_, k)| idle(r, k.slot))
            .min_by_key(|(_, k)| k.used)
            .map(|(&to, k)| (to, k.slot));
        let Some((to, i)) = lru else { return false };
        self.sends.kept.remove(&to);
        r.close(i);
        true
    }

    /// The timer tick: kept links unused for [`KEPT_IDLE`] are closed, and those to
    /// peers no longer sent to directly (gone from the list, or relayed now).
    pub(super) fn kept_tick(&mut self, r: &mut Reactor<Slot>) {
        let now = r.now();
        let unused: Vec<SocketAddr> = (self.sends.kept.iter())
            .filter(|(to, k)| {
                let direct = self.peers.get(**to).is_some_and(|p| self.sent_directly(p));
                (now.duration_since(k.used) >= KEPT_IDLE || !direct) && idle(r, k.slot)
            })
            .map(|(&to, _)| to)
            .collect();
        for to in unused {
            if let Some(k) = self.sends.kept.remove(&to) {
                r.close(k.slot);
            }
        }
    }

    /// Leaving: every kept link is closed.
    pub(super) fn close_kept(&mut self, r: &mut Reactor<Slot>) {
        for (_, k) in self.sends.kept.drain() {
            r.close(k.slot);
        }
    }

    /// VB: `send1_Connect`. A send to ourselves is remembered by its local address
    /// so leaving can wait until our own listener has shown it.
    pub(super) fn send1_connect(&mut self, r: &mut Reactor<Slot>, i: Index) {
        let Some(Slot::Outgoing {
            to_self, connected, ..
        }) = r.data_mut(i)
        else {
            return;
        };
        *connected = true;
        if !*to_self {
            return;
        }
        let Ok(local) = r.local_addr(i) else { return };
        let local = SocketAddr::new(crate::reactor::canonical_ip(local.ip()), local.port());
        // Banning our own address hides our own lines too; nothing to wait for then.
        if self.bans.list.is_banned(local.ip()) {
            return;
        }
        if let Some(Slot::Outgoing { local: l, .. }) = r.data_mut(i) {
            *l = Some(local);
        }
        self.sends.self_pending.push(local);
    }

    /// VB: `send1_SendComplete`: the batch is with the kernel. A kept link waits
    /// for the next one, any other closes; its place in flight goes to the next
    /// queued send.
    pub(super) fn send1_send_complete(&mut self, r: &mut Reactor<Slot>, i: Index) {
        let Some(Slot::Outgoing {
            to,
            delivered,
            kept,
            inflight,
            ..
        }) = r.data_mut(i)
        else {
            return;
        };
        *delivered = true;
        let to = *to;
        if !*kept || self.quitting {
            return r.close(i);
        }
        if std::mem::replace(inflight, false) {
            self.sends.outgoing = self.sends.outgoing.saturating_sub(1);
        }
        self.delivery_event(to, true);
        self.start_sends(r);
        self.maybe_leave(r);
    }

    /// VB: `send1_Close` / `send1_Error`: count a peer we could not deliver to, or
    /// while the list settles, try it where it listened before. The next queued
    /// send takes the slot. A kept link that closes between batches (the receiver
    /// closed its side, the tick, our caps) is just forgotten: the next batch to
    /// its peer opens a new one.
    pub(super) fn send1_close(&mut self, r: &mut Reactor<Slot>, i: Index, slot: Slot) {
        let Slot::Outgoing {
            to,
            local,
            delivered,
            error,
            batch,
            fallback,
            connected,
            inflight,
            key,
            ..
        } = slot
        else {
            return;
        };
        if self.sends.kept.get(&to).is_some_and(|k| k.slot == i) {
            self.sends.kept.remove(&to);
            debug!("the kept link to {to} closed; the next batch opens a new one");
        }
        if !inflight {
            self.start_sends(r);
            return self.maybe_leave(r);
        }
        self.delivery_event(to, delivered);
        self.sends.outgoing = self.sends.outgoing.saturating_sub(1);
        if !delivered {
            // Our own listener will never show this one; do not wait for it.
            if let Some(l) = local {
                self.sends.self_done(l);
            }
            match fallback.filter(|_| !connected) {
                // Nothing reached it: it has not moved to its new port yet.
                Some(old) => {
                    debug!("cannot reach {to} yet; delivering where it listened before, {old}");
                    self.sends.queued.push_front(Queued {
                        to: old,
                        to_self: false,
                        batch,
                        fallback: None,
                        keep: false,
                        resent: false,
                    });
                }
                None => {
                    let why = error.unwrap_or_else(|| "closed before the message was sent".into());
                    self.peer_failed(r, to, &why);
                    if let Some(key) = key.filter(|_| !connected) {
                        self.await_move(r, key, to, batch);
                    }
                }
            }
        }
        self.start_sends(r);
        self.maybe_leave(r);
    }

    fn peer_failed(&mut self, r: &mut Reactor<Slot>, to: SocketAddr, why: &str) {
        self.complain(r, to);
        if let Some(n) = self.sends.failures.failed(to, r.now()) {
            warn!(
                "cannot deliver to {to}: {why} ({n} failure(s) since the last warning, {} in all, to {} peer address(es))",
                self.sends.failures.total,
                self.sends.failures.addresses()
            );
        }
    }
}

/// Whether kept link `i` carries no batch now, and may be closed.
fn idle(r: &Reactor<Slot>, i: Index) -> bool {
    matches!(
        r.data(i),
        Some(Slot::Outgoing {
            inflight: false,
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_to_many_addresses_make_one_warning_and_bounded_memory() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        let warned = (0..10_000u16)
            .filter(|&p| {
                f.failed(SocketAddr::from(([127, 0, 0, 1], p)), t0)
                    .is_some()
            })
            .count();
        assert_eq!(warned, 1, "one warning for the lot");
        assert_eq!(f.by_address.len(), REMEMBERED);
        assert_eq!((f.total, f.others), (10_000, 10_000 - REMEMBERED as u64));
        assert_eq!(f.addresses(), format!("{REMEMBERED}+"));
        let later = t0 + std::time::Duration::from_secs(10);
        let n = f.failed(SocketAddr::from(([127, 0, 0, 1], 1)), later);
        assert_eq!(n, Some(10_000), "the next warning counts what was not said");
    }
}
