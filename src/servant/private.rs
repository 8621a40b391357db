//! The servant as a private network's member (docs/PRIVATE.md): every link a
//! Noise session, peers known by the keys the manager lists.
//!
//! - The manager link is `connect_secure` to the configured manager key: a
//!   manager that cannot prove it fails the handshake, which is logged once as an
//!   outage and retried with backoff, as a manager that is down.
//! - The listener takes only private links, and admits a key only while some
//!   entry of the current list carries it (bans by address are checked before).
//! - Chat goes out with `connect_secure` to the key listed for each peer, on a
//!   link kept for the next batches as in the open network ([`super::send`]):
//!   one handshake per peer, not per batch. A kept link is used only while the
//!   list still gives its peer the key that proved it.
//! - A line is shown as `NAME: TEXT`, NAME the members-file name the list gives
//!   the key that sent it, TEXT as sent: the servant sends no `NAME: ` prefix, so
//!   mallory's `alice: x` shows as `mallory: alice: x`. A line from a key on no
//!   current list is not shown.
//! - When a list arrives without a key, every link proven by that key is closed
//!   at once (revocation), kept links both ways included: the revoked member's
//!   next batch goes on a new connection, whose handshake is refused and logged.
//! - Relays carry sealed frames end to end (`relay/sealed.rs`); the listener
//!   also admits the manager's key, whose probes come as such frames.
//! - A batch whose member was not at its listed address (someone else answered,
//!   or no one) waits up to [`AWAIT_MOVE`] for a list that gives the member's key
//!   another address, and goes there: a port the member could not listen on, or
//!   a restart, leaves peers a stale address until their next list. On the open
//!   network such a line reaches whoever holds the port, or is lost; here the
//!   key says whom it was for.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, info};

use super::console::Sender;
use super::{Servant, Slot};
use crate::noise::PublicKey;
use crate::reactor::{Index, Reactor, Request};

/// Batches waiting for their member's new address, oldest first.
#[derive(Debug, Default)]
pub(super) struct Awaiting(VecDeque<Moved>);

#[derive(Debug)]
struct Moved {
    key: PublicKey,
    from: SocketAddr,
    batch: Rc<[u8]>,
    until: Instant,
}

/// How long a batch waits for its member's new address: a push or a poll or
/// two, and a manager finding a port another program does not hold.
pub(super) const AWAIT_MOVE: Duration = Duration::from_secs(10);

/// Batches waiting at most; the oldest give way (their failure was counted).
const AWAITING_MAX: usize = 256;

impl Servant {
    /// A send to `from` failed before its link was up: the batch waits for the
    /// list to give `key` another address (or goes now, if it already has).
    pub(super) fn await_move(
        &mut self,
        r: &mut Reactor<Slot>,
        key: PublicKey,
        from: SocketAddr,
        batch: Rc<[u8]>,
    ) {
        let q = &mut self.sends.moved.0;
        if q.len() >= AWAITING_MAX {
            q.pop_front();
        }
        let until = r.now() + AWAIT_MOVE;
        q.push_back(Moved {
            key,
            from,
            batch,
            until,
        });
        self.deliver_moved(r);
    }

    /// After a new list, and on the tick: batches whose member is listed at
    /// another address go there; those that waited too long are dropped.
    pub(super) fn deliver_moved(&mut self, r: &mut Reactor<Slot>) {
        if self.sends.moved.0.is_empty() {
            return;
        }
        let now = r.now();
        let mut due = Vec::new();
        let peers = &self.peers;
        self.sends.moved.0.retain(|m| match peers.by_key(&m.key) {
            Some(to) if to != m.from => {
                due.push((m.from, to, m.batch.clone()));
                false
            }
            _ if now >= m.until => {
                debug!(
                    "a batch for {} waited {AWAIT_MOVE:?} for a new address; dropped",
                    m.from
                );
                false
            }
            _ => true,
        });
        for (from, to, batch) in due {
            // Relayed now: its relay carries only what is sent from here on.
            if !self.peers.get(to).is_some_and(|p| self.sent_directly(p)) {
                debug!("a batch for {from}: its member is relayed now; dropped");
                continue;
            }
            info!(
                "{} was not at {from}: delivering at its new address",
                self.peers.who(to)
            );
            self.send_again(r, to, batch);
        }
    }

    pub(super) fn is_private(&self) -> bool {
        self.config.private.is_some()
    }

    /// The manager link: private to the configured key, or plaintext.
    pub(super) fn open_manager(&mut self, r: &mut Reactor<Slot>) -> io::Result<Index> {
        let (to, bind) = (self.link.manager, self.bind_for(self.link.manager));
        match &self.config.private {
            Some(p) => r.connect_secure(to, bind, &p.manager_key.clone(), Slot::Manager),
            None => r.connect(to, bind, Slot::Manager),
        }
    }

    /// A send's connection: private to the key listed for `to`, or plaintext.
    pub(super) fn open_send(
        &mut self,
        r: &mut Reactor<Slot>,
        to: SocketAddr,
        slot: Slot,
    ) -> io::Result<Index> {
        let bind = self.bind_for(to);
        if !self.is_private() {
            return r.connect(to, bind, slot);
        }
        match self.peers.get(to).and_then(|p| p.key) {
            Some(key) => r.connect_secure(to, bind, &key, slot),
            None => Err(io::Error::other("the peer list gives no key for it")),
        }
    }

    /// An incoming connection: a private responder, or plaintext.
    pub(super) fn take_incoming(
        &mut self,
        r: &mut Reactor<Slot>,
        request: Request,
        slot: Slot,
    ) -> io::Result<Index> {
        if self.is_private() {
            r.accept_secure(request, slot)
        } else {
            r.accept(request, slot)
        }
    }

    /// A peer named its key: admitted while the current list carries it.
    pub(super) fn private_admit(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        key: &PublicKey,
    ) -> bool {
        if self.peers.has_key(key) || self.is_manager_key(key) {
            return true;
        }
        let from = r
            .socket(i)
            .map(|s| s.addr().to_string())
            .unwrap_or_default();
        if let Some(n) = self
            .private_refusals
            .due_within(r.now(), 1, super::said::SAY_EVERY)
        {
            info!("refusing {from}: key {key} is on no current peer list ({n} refused since the last line)");
        }
        false
    }

    /// A chat line on a private link: shown as from the member whose key sent it.
    pub(super) fn member_line(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        from: SocketAddr,
        msg: &[u8],
        truncated: bool,
    ) {
        if msg.is_empty() && !truncated {
            return;
        }
        let Some(key) = r.peer_key(i).copied() else {
            return;
        };
        let name = self.peers.by_key(&key).and_then(|a| self.peers.name(a));
        match name {
            Some(name) => self
                .console
                .peer_message(from.ip(), Sender::Named(name), msg, truncated),
            None => debug!("dropped a line from {from}: its key {key} is on no current peer list"),
        }
    }

    /// A new list: links proven by a key it no longer carries close now.
    pub(super) fn revoke_unlisted(&mut self, r: &mut Reactor<Slot>) {
        if !self.is_private() {
            return;
        }
        let gone: Vec<(Index, PublicKey)> = (r.slots().iter())
            .filter(|(_, s)| {
                matches!(
                    s.data(),
                    Some(Slot::Incoming { .. } | Slot::Outgoing { .. })
                )
            })
            .filter_map(|(i, _)| Some((i, *r.peer_key(i)?)))
            .filter(|(_, k)| !self.peers.has_key(k) && !self.is_manager_key(k))
            .collect();
        for (i, key) in gone {
            info!("closing a link of {key}: no longer on the peer list");
            r.abort(i);
        }
    }
}
