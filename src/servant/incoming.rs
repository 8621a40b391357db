//! `servants1`, the control array peers deliver chat to: `servants1(0)` listens on
//! the port the manager assigned, `servants1(i)` is one peer's batch of lines,
//! shown on stdout as they arrive.
//!
//! VB accepted, then read each `GetData` as one message; here a connection carries
//! newline-framed lines ([`super::chat`]) and banned addresses are refused unread.
//! A connection whose first line is `pull IP:PORT` is a servant behind a
//! port-blocking router pulling from us; every line shown here is also forwarded
//! to such pullers ([`super::relay`]).

use std::net::SocketAddr;

use log::{info, warn};

use super::chat::ChatReader;
use super::console::Console;
use super::relay::Role;
use super::{Servant, Slot};
use crate::reactor::{Index, Reactor, Request};

impl Servant {
    /// VB: `servants1(0).Close: servants1(0).LocalPort = port: servants1(0).Listen`.
    /// If the port cannot be bound, the manager is asked for another by reconnecting
    /// (it hands every new connection the next port), with the usual backoff.
    pub(super) fn servants1_listen(&mut self, r: &mut Reactor<Slot>, port: u16) {
        if let Some((old, _)) = self.listener.take() {
            r.close(old);
        }
        // Without --bind, `::` (dual-stack): the manager advertises whichever address
        // it saw us come from, IPv4 or IPv6, and peers must reach us there.
        match r.listen(self.config.bind, port, Slot::Listener) {
            Ok(i) => {
                if let Ok(shown) = r.local_addr(i) {
                    crate::announce!("listening on {shown}");
                }
                self.listener = Some((i, port));
            }
            Err((addr, e)) => {
                warn!(
                    "cannot listen on {addr}: {e}; asking the connection manager for another port in {} ms",
                    self.backoff.as_millis()
                );
                if let Some(link) = self.link {
                    self.link_dropped = true;
                    r.close(link);
                }
            }
        }
    }

    /// VB: `servants1_ConnectionRequest(Index, requestID)`: refuse banned addresses,
    /// else `Accept` into the lowest free slot. VB also matched the peer's reverse
    /// host name; here names are resolved forward instead ([`super::bans`]), which
    /// needs no lookup per connection. A refused connection is dropped unread.
    pub(super) fn servants1_connection_request(&mut self, r: &mut Reactor<Slot>, request: Request) {
        let from = request.remote();
        if self.bans.is_banned(from.ip()) {
            if self.refused_logged.insert(from.ip()) {
                info!(
                    "refusing {}: banned (further refusals not logged)",
                    from.ip()
                );
            }
            return;
        }
        let slot = Slot::Incoming {
            from,
            reader: ChatReader::default(),
            role: Role::First,
        };
        if let Err(e) = r.accept(request, slot) {
            warn!("cannot accept a connection from {from}: {e}");
        }
    }

    /// VB: `servants1_DataArrival(Index, bytesTotal)`: `txtChat1.Text & vbCrLf & a`,
    /// and the same lines forwarded to our pullers.
    pub(super) fn servants1_data_arrival(&mut self, r: &mut Reactor<Slot>, i: Index, data: &[u8]) {
        let Some(Slot::Incoming { from, reader, role }) = r.data_mut(i) else {
            return;
        };
        // Reader and role leave the slot while lines are handled, which needs the reactor.
        let from = *from;
        let mut reader = std::mem::take(reader);
        let mut role = std::mem::replace(role, Role::Batch);
        reader.feed(data, |msg, truncated| {
            self.incoming_line(r, i, from, &mut role, msg, truncated)
        });
        let origin = matches!(role, Role::Puller { .. }).then_some(i);
        self.forward(r, origin);
        if let Some(Slot::Incoming {
            reader: kept,
            role: was,
            ..
        }) = r.data_mut(i)
        {
            *kept = reader;
            *was = role;
        }
    }

    /// VB: `servants1_Close(Index)` (the article had none): the tail is a message.
    pub(super) fn servants1_close(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        from: SocketAddr,
        mut reader: ChatReader,
        mut role: Role,
    ) {
        reader.finish(|msg, truncated| self.incoming_line(r, i, from, &mut role, msg, truncated));
        let origin = matches!(role, Role::Puller { .. }).then_some(i);
        self.forward(r, origin);
        self.puller_closed(i, &role);
        if let Some(k) = self.self_pending.iter().position(|&a| a == from) {
            self.self_pending.swap_remove(k);
            self.maybe_leave(r);
        }
    }
}

/// One message on stdout; a cut one is also logged with its sender.
pub(super) fn show(console: &mut Console, from: SocketAddr, msg: &[u8], truncated: bool) {
    if msg.is_empty() && !truncated {
        return;
    }
    if truncated {
        warn!("{from} sent a message over 64 KiB; showing its first 64 KiB");
    }
    console.message(msg, truncated);
}
