//! `send1`, sending: every batch of typed lines goes to every peer on the list,
//! this servant included, one outgoing connection each; failures are counted and
//! warned about in one summary line at a bounded rate.
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
use std::time::Instant;

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

/// One batch waiting to go to one peer.
#[derive(Debug)]
pub(super) struct Queued {
    to: SocketAddr,
    to_self: bool,
    batch: Rc<[u8]>,
    fallback: Option<SocketAddr>,
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
        let skip = |peer: &Peer| {
            if peer.me {
                relayed.is_some() // we cannot reach ourselves at our public address
            } else {
                peer.relay.is_some() || via == Some(peer.addr())
            }
        };
        let extras = self.settling_extras();
        let targets: Vec<&Peer> = self
            .peers
            .iter()
            .chain(&extras)
            .filter(|p| !skip(p))
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

    /// One line for one peer only (`/msg`), queued like any batch.
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
        });
        self.start_sends(r);
    }

    /// Starts queued sends while fewer than the cap are in flight.
    fn start_sends(&mut self, r: &mut Reactor<Slot>) {
        while self.sends.outgoing < self.admission.limits.sending {
            let Some(q) = self.sends.queued.pop_front() else {
                return;
            };
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
            };
            match self.open_send(r, q.to, slot) {
                Ok(i) => {
                    r.send(i, &q.batch);
                    self.sends.outgoing += 1;
                }
                Err(e) => self.peer_failed(r, q.to, &e.to_string()),
            }
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

    /// VB: `send1_SendComplete`: the batch is with the kernel; close.
    pub(super) fn send1_send_complete(&mut self, r: &mut Reactor<Slot>, i: Index) {
        if let Some(Slot::Outgoing { delivered, .. }) = r.data_mut(i) {
            *delivered = true;
        }
        r.close(i);
    }

    /// VB: `send1_Close` / `send1_Error`: count a peer we could not deliver to, or
    /// while the list settles, try it where it listened before. The next queued
    /// send takes the slot.
    pub(super) fn send1_close(&mut self, r: &mut Reactor<Slot>, slot: Slot) {
        let Slot::Outgoing {
            to,
            local,
            delivered,
            error,
            batch,
            fallback,
            connected,
            ..
        } = slot
        else {
            return;
        };
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
                    });
                }
                None => {
                    let why = error.unwrap_or_else(|| "closed before the message was sent".into());
                    self.peer_failed(r, to, &why);
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
