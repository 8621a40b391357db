//! The private run's links (`--private`, [`crate::churn::private`]): a virtual
//! servant presents its own member key on each connection to the manager, and a
//! fanout listener answers the sending servant's handshake with its key and
//! admits only the sender's.

use std::io;
use std::net::IpAddr;

use super::manager::Ask;
use super::{Churn, Conn, Role};
use crate::noise::{HandshakeLimits, PublicKey};
use crate::reactor::{Index, Options, Reactor, Request};

/// churn's own reactor as a responder (fanout listeners): one sending servant
/// opens a link to every listener at once from one address, so the limits that
/// protect a daemon from strangers would refuse it.
pub(super) fn options(private: bool) -> Options {
    let mut o = Options::default();
    if private {
        o.handshake = HandshakeLimits {
            per_address: usize::MAX,
            total: usize::MAX,
            rate: u32::MAX,
            ..HandshakeLimits::default()
        };
    }
    o
}

impl Churn {
    /// Opens a private link to the manager for `ask`, presenting fanout servant
    /// k's key, or a free one for a churner (given back at close).
    pub(super) fn connect_private(
        &mut self,
        r: &mut Reactor<Conn>,
        source: Option<IpAddr>,
        mut ask: Ask,
    ) -> io::Result<Index> {
        let Some(keys) = self.keys.as_mut() else {
            return r.connect(self.cfg.target, source, Conn::Manager(ask));
        };
        let churner = !matches!(ask.role, Role::Fanout(_));
        let k = match ask.role {
            Role::Fanout(k) => k,
            _ => keys
                .take()
                .ok_or_else(|| io::Error::other("every member key is in use"))?,
        };
        if churner {
            ask.key = Some(k);
        }
        r.set_identity(keys.pair(k).clone());
        let manager = keys.manager;
        let opened = r.connect_secure(self.cfg.target, source, &manager, Conn::Manager(ask));
        match (&opened, self.keys.as_mut()) {
            (Err(_), Some(keys)) if churner => keys.give_back(k),
            _ => {}
        }
        if let Some(p) = self.stats.private.as_mut() {
            p.started += 1;
        }
        opened
    }

    /// A connection to the manager closed: its key is free again.
    pub(super) fn key_closed(&mut self, ask: &Ask) {
        if let (Some(keys), Some(k)) = (self.keys.as_mut(), ask.key) {
            keys.give_back(k);
        }
    }

    /// A private link to the manager came up.
    pub(super) fn handshake_done(&mut self) {
        if let Some(p) = self.stats.private.as_mut() {
            p.done += 1;
        }
    }

    /// Fanout servant k's listener has the sender's link coming: answer it as k.
    pub(super) fn accept_private(
        &mut self,
        r: &mut Reactor<Conn>,
        k: usize,
        request: Request,
        incoming: Conn,
    ) -> io::Result<Index> {
        match &self.keys {
            Some(keys) => {
                r.set_identity(keys.pair(k).clone());
                r.accept_secure(request, incoming)
            }
            None => r.accept(request, incoming),
        }
    }

    /// Only the sending servant's key reaches a fanout listener.
    pub(super) fn admit(&self, key: &PublicKey) -> bool {
        self.keys.as_ref().is_some_and(|k| *key == k.sender)
    }

    /// The sender proved its key to a listener.
    pub(super) fn sender_proven(&mut self) {
        if let Some(p) = self.stats.private.as_mut() {
            p.accepted += 1;
        }
    }
}
