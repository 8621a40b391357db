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

use std::io;
use std::net::SocketAddr;

use log::{debug, info};

use super::console::Sender;
use super::{Servant, Slot};
use crate::noise::PublicKey;
use crate::reactor::{Index, Reactor, Request};

impl Servant {
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
