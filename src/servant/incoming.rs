//! `servants1`, the control array peers deliver chat to: `servants1(0)` listens on
//! the port the manager assigned, `servants1(i)` is one peer's batch of lines,
//! shown on stdout as they arrive.
//!
//! VB accepted, then read each `GetData` as one message; here a connection carries
//! newline-framed lines ([`super::chat`]) and banned addresses are refused unread.
//! A connection whose first line is `pull IP:PORT` is a servant behind a
//! port-blocking router pulling from us; every line shown here is also forwarded
//! to such pullers ([`super::relay`]).
//!
//! VB loaded a control for every connection and kept whatever it was sent; here
//! what peers can make the servant hold is capped ([`Admission`]): connections at
//! once, in total ([`MAX_INCOMING`], fewer when file descriptors are short) and
//! from one address ([`MAX_PER_ADDRESS`]), and the bytes of unfinished lines
//! across all of them ([`MAX_UNFINISHED`]). Past the total, the connection silent
//! the longest makes room; past the per-address cap, that address's connection
//! silent the longest does (one address may be a NAT hiding many servants, each
//! keeping a link to us), or the newcomer is refused when it has none to give;
//! past the bytes, the one holding the most is closed. Making room is a graceful
//! close ([`Reactor::close_gracefully`]): a sender writing on its kept link just
//! then loses nothing; at most [`LINGER_ROOM`] close that way at once, past that
//! at once. Each says so in one warning
//! at most every [`WARN_EVERY`](super::said::WARN_EVERY).
//!
//! A flood is read like anything else, [`crate::reactor::READ_BUDGET`] chunks a
//! turn, so others are read in the same turn. What it makes the servant show is
//! bounded too: while stdout is behind by more than [`BACKED_UP`], one connection
//! shows at most [`SHARE`] a turn and the rest of its lines are dropped, so that
//! the queue in front of stdout, which drops every line once it is full, keeps
//! room for the other peers' lines. Where they are missing, the console says how
//! many ([`Console::lost`]: `[N lines lost: ADDR sent them faster than stdout
//! takes them]` on a pipe, an event line on a terminal), as stdout does for lines
//! it drops itself.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::chat::ChatReader;
use super::relay::Role;
use super::said::RateLimited;
use super::{Servant, Slot};
use crate::reactor::stdio::STDOUT;
use crate::reactor::{Index, Reactor, Request, State};
use crate::wire::private::Private;

mod senders;

/// Incoming connections at once: peers delivering, and servants pulling from us.
pub(super) const MAX_INCOMING: usize = 4096;
/// Incoming connections at once from one address (a NAT may hide several servants).
pub(super) const MAX_PER_ADDRESS: u32 = 64;
/// Bytes of unfinished lines held across every incoming connection: 256 messages
/// of the largest size at once.
pub(super) const MAX_UNFINISHED: usize = 16 * 1024 * 1024;
/// Sends in flight at once; more wait in a queue ([`super::send`]).
pub(super) const MAX_SENDING: usize = 512;
/// Outgoing links kept open between batches ([`super::send`]): well under
/// [`MAX_INCOMING`], so a network of this many keeping links to one receiver fits.
pub(super) const MAX_KEPT: usize = 1024;
/// Incoming connections closing gracefully at once, beyond the caps: their senders'
/// FINs are waited for at most [`LINGER`].
const LINGER_ROOM: usize = 32;
/// How long a connection closing gracefully is read after our FIN.
pub(super) const LINGER: Duration = Duration::from_secs(3);
/// Descriptors beside connections: stdio, epoll, the waker, listeners, the manager
/// link, the pull link, the few accepted in one turn before a close is reaped, and
/// those closing gracefully.
const RESERVED_FDS: usize = 64 + LINGER_ROOM;
/// The open-file limit the caps need.
pub(super) const FDS_WANTED: u64 = (MAX_INCOMING + MAX_SENDING + MAX_KEPT + RESERVED_FDS) as u64;
/// The fewest connections each way, however low the descriptor limit.
const AT_LEAST: usize = 4;
/// Bytes waiting for stdout beyond which one connection's lines are rationed: a
/// quarter of the queue in front of it.
const BACKED_UP: usize = 256 * 1024;
/// Bytes of lines one connection may show in one loop turn while stdout is backed up.
const SHARE: usize = 64 * 1024;

/// The caps on connections, after fitting them to the open-file limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Limits {
    pub(super) incoming: usize,
    pub(super) sending: usize,
    /// Outgoing links kept between batches, beside those sending.
    pub(super) kept: usize,
}

impl Limits {
    /// [`MAX_INCOMING`], [`MAX_SENDING`] and [`MAX_KEPT`], or shares of `fds` when
    /// it is too low for all: a quarter for sends, an eighth for kept links, the
    /// rest for incoming connections.
    pub(super) fn for_fds(fds: u64) -> Limits {
        let room = usize::try_from(fds).unwrap_or(usize::MAX);
        let room = room.saturating_sub(RESERVED_FDS);
        if room >= MAX_INCOMING + MAX_SENDING + MAX_KEPT {
            return Limits {
                incoming: MAX_INCOMING,
                sending: MAX_SENDING,
                kept: MAX_KEPT,
            };
        }
        let sending = (room / 4).clamp(AT_LEAST, MAX_SENDING);
        let kept = (room / 8).min(MAX_KEPT);
        Limits {
            incoming: room.saturating_sub(sending + kept).max(AT_LEAST),
            sending,
            kept,
        }
    }
}

/// Bytes of lines one incoming connection has shown in one loop turn.
#[derive(Debug, Clone, Copy)]
pub(super) struct Share {
    turn: Instant,
    bytes: usize,
}

/// Incoming connections against their caps: how many, from where, what they hold.
#[derive(Debug)]
pub(super) struct Admission {
    pub(super) limits: Limits,
    total: usize,
    per_address: HashMap<IpAddr, u32>,
    /// Bytes held by the incoming connections' chat readers.
    unfinished: usize,
    crowded: RateLimited,
    too_many_from: RateLimited,
    hoarding: RateLimited,
    /// Lines dropped for a connection's share while stdout was behind.
    rationed: RateLimited,
    /// A connection was refused while banned names were being resolved, and said so.
    refused_pending: bool,
    /// Lines whose sender the list does not know yet ([`senders`]).
    pub(super) senders: senders::Senders,
}

impl Admission {
    pub(super) fn new(fds: u64) -> Admission {
        let limits = Limits::for_fds(fds);
        if limits.incoming < MAX_INCOMING {
            info!(
                "open-file limit {fds}: at most {} incoming and {} outgoing connections at once",
                limits.incoming, limits.sending
            );
        }
        Admission {
            limits,
            total: 0,
            per_address: HashMap::new(),
            unfinished: 0,
            crowded: RateLimited::default(),
            too_many_from: RateLimited::default(),
            hoarding: RateLimited::default(),
            rationed: RateLimited::default(),
            refused_pending: false,
            senders: senders::Senders::default(),
        }
    }

    fn opened(&mut self, ip: IpAddr) {
        self.total += 1;
        *self.per_address.entry(ip).or_default() += 1;
    }

    fn closed(&mut self, ip: IpAddr, held: usize) {
        self.total = self.total.saturating_sub(1);
        self.unfinished = self.unfinished.saturating_sub(held);
        if let Some(n) = self.per_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&ip);
            }
        }
    }
}

impl Servant {
    /// VB: `servants1(0).Close: servants1(0).LocalPort = port: servants1(0).Listen`.
    /// If the port cannot be bound, the manager is asked for another
    /// (`cannot listen PORT`, or by reconnecting: [`super::link`]). While
    /// the list settles after a manager restart the old port keeps listening too
    /// ([`super::peerlist`]): peers with the old list still deliver there.
    pub(super) fn servants1_listen(&mut self, r: &mut Reactor<Slot>, port: u16) {
        if let Some(old) = self.listener.take() {
            match &mut self.lists.settling {
                Some(settling) => settling.listeners.push(old),
                None => r.close(old.0),
            }
        }
        // A port still listened on from before is taken back: binding it again
        // would fail on our own listener.
        if let Some(settling) = &mut self.lists.settling {
            if let Some(k) = settling.listeners.iter().position(|&(_, p)| p == port) {
                let kept = settling.listeners.swap_remove(k);
                if let Ok(shown) = r.local_addr(kept.0) {
                    info!("listening on {shown}");
                }
                self.listener = Some(kept);
                return;
            }
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
            Err((addr, e)) => self.cannot_listen(r, addr, &e.to_string()),
        }
    }

    /// VB: `servants1_ConnectionRequest(Index, requestID)`: refuse banned addresses,
    /// else `Accept` into the lowest free slot. VB also matched the peer's reverse
    /// host name; here names are resolved forward instead ([`super::bans`]), which
    /// needs no lookup per connection. A refused connection is dropped unread; so is
    /// every connection until banned names are first resolved, and one past the
    /// per-address cap. At the total cap the connection silent the longest is
    /// closed to make room.
    pub(super) fn servants1_connection_request(&mut self, r: &mut Reactor<Slot>, request: Request) {
        let from = request.remote();
        if self.bans.pending {
            if !std::mem::replace(&mut self.admission.refused_pending, true) {
                info!(
                    "refusing {}: banned host names are still being resolved (further refusals until then not logged)",
                    from.ip()
                );
            }
            return;
        }
        if self.bans.list.is_banned(from.ip()) {
            return self.refused_banned(from.ip());
        }
        let now = r.now();
        let a = &mut self.admission;
        let crowded = a.total >= a.limits.incoming;
        if a.per_address.get(&from.ip()).copied().unwrap_or(0) >= MAX_PER_ADDRESS {
            if self.make_room(r, Some(from.ip())).is_none() {
                if let Some(n) = self.admission.too_many_from.due(now) {
                    warn!(
                        "refusing {}: {MAX_PER_ADDRESS} connections from that address already ({n} refused for this since the last warning)",
                        from.ip()
                    );
                }
                return;
            }
        } else if crowded {
            if let Some(heard) = self.make_room(r, None) {
                if let Some(n) = self.admission.crowded.due(now) {
                    warn!(
                        "{} incoming connections, the most at once: closing the one silent longest ({:.1} s) to make room ({n} closed for this since the last warning)",
                        self.admission.limits.incoming,
                        now.duration_since(heard).as_secs_f64()
                    );
                }
            }
        }
        let slot = Slot::Incoming {
            from,
            reader: ChatReader::default(),
            role: Role::First,
            heard: now,
            share: Share {
                turn: now,
                bytes: 0,
            },
        };
        match self.take_incoming(r, request, slot) {
            Ok(_) => self.admission.opened(from.ip()),
            Err(e) => warn!("cannot accept a connection from {from}: {e}"),
        }
    }

    /// Says once per address that a banned one is refused.
    fn refused_banned(&mut self, ip: IpAddr) {
        if self.bans.refused_logged.insert(ip) {
            info!("refusing {ip}: banned (further refusals not logged)");
        }
    }

    /// The incoming connections (from `ip`, if given) are at their cap: the one
    /// silent the longest (not a puller, which is quiet by nature, nor one already
    /// closing) is closed gracefully, or at once when [`LINGER_ROOM`] are closing
    /// gracefully already. When it was last heard from, if there was one.
    fn make_room(&mut self, r: &mut Reactor<Slot>, ip: Option<IpAddr>) -> Option<Instant> {
        let mut lingering = 0;
        let idle = (r.slots().iter())
            .filter_map(|(i, s)| match s.data() {
                _ if s.lingering() => {
                    lingering += 1;
                    None
                }
                Some(Slot::Incoming {
                    heard, role, from, ..
                }) if !matches!(role, Role::Puller { .. })
                    && s.state() == State::Connected
                    && ip.is_none_or(|ip| ip == from.ip()) =>
                {
                    Some((*heard, i))
                }
                _ => None,
            })
            .min();
        let (heard, i) = idle?;
        if lingering >= LINGER_ROOM {
            self.evict(r, i);
        } else {
            r.close_gracefully(i, LINGER);
        }
        Some(heard)
    }

    /// Closes incoming connection `i` now, dropping its unfinished line.
    fn evict(&mut self, r: &mut Reactor<Slot>, i: Index) {
        if let Some(Slot::Incoming { reader, .. }) = r.data_mut(i) {
            let a = &mut self.admission;
            a.unfinished = a.unfinished.saturating_sub(reader.buffered());
            reader.discard();
        }
        r.abort(i);
    }

    /// VB: `servants1_DataArrival(Index, bytesTotal)`: `txtChat1.Text & vbCrLf & a`,
    /// and the same lines forwarded to our pullers.
    pub(super) fn servants1_data_arrival(&mut self, r: &mut Reactor<Slot>, i: Index, data: &[u8]) {
        let now = r.now();
        // A kept link outlives a ban made after it was accepted (a reload, a banned
        // name resolving): what it brings then is refused unread.
        if let Some(Slot::Incoming { from, .. }) = r.data(i) {
            if self.bans.list.is_banned(from.ip()) {
                self.refused_banned(from.ip());
                return self.evict(r, i);
            }
        }
        let Some(Slot::Incoming {
            from,
            reader,
            role,
            heard,
            share,
        }) = r.data_mut(i)
        else {
            return;
        };
        *heard = now;
        if share.turn != now {
            *share = Share {
                turn: now,
                bytes: 0,
            };
        }
        // Reader and role leave the slot while lines are handled, which needs the reactor.
        let (from, mut shown) = (*from, share.bytes);
        let mut reader = std::mem::take(reader);
        let mut role = std::mem::replace(role, Role::Batch);
        let before = reader.buffered();
        let rationed = STDOUT.queued() > BACKED_UP;
        let mut dropped = 0;
        reader.feed(data, |msg, truncated| {
            if rationed && shown > SHARE && matches!(role, Role::Batch) {
                dropped += 1;
                return;
            }
            shown += msg.len() + 1;
            self.incoming_line(r, i, from, &mut role, msg, truncated)
        });
        let a = &mut self.admission;
        a.unfinished = a.unfinished.saturating_sub(before) + reader.buffered();
        let origin = matches!(role, Role::Puller { .. }).then_some(i);
        self.forward(r, origin);
        if let Some(Slot::Incoming {
            reader: kept,
            role: was,
            share,
            ..
        }) = r.data_mut(i)
        {
            *kept = reader;
            *was = role;
            share.bytes = shown;
        }
        if dropped > 0 {
            self.console.lost(
                dropped,
                &format!("{from} sent them faster than stdout takes them"),
            );
            if let Some(n) = self.admission.rationed.due_many(now, dropped) {
                warn!(
                    "{from} sends lines faster than stdout takes them: dropped {n} of its lines since the last warning (it may show {} KiB a loop turn while stdout is behind)",
                    SHARE / 1024
                );
            }
        }
        if self.admission.unfinished > MAX_UNFINISHED {
            self.drop_hoarder(r);
        }
    }

    /// Unfinished lines hold more than [`MAX_UNFINISHED`] together: the connection
    /// holding the most is closed, until they are back under it.
    fn drop_hoarder(&mut self, r: &mut Reactor<Slot>) {
        while self.admission.unfinished > MAX_UNFINISHED {
            let largest = (r.slots().iter())
                .filter_map(|(i, s)| match s.data() {
                    Some(Slot::Incoming { reader, .. }) if reader.buffered() > 0 => {
                        Some((reader.buffered(), i))
                    }
                    _ => None,
                })
                .max();
            let Some((held, i)) = largest else {
                // Only what closed connections held is counted: nothing to close.
                debug!("unfinished lines miscounted; recounting from zero");
                self.admission.unfinished = 0;
                return;
            };
            if let Some(n) = self.admission.hoarding.due(r.now()) {
                let from = r.socket(i).map(|s| s.addr().ip());
                warn!(
                    "unfinished lines hold over {} MiB across incoming connections: closing the one holding the most ({held} bytes, from {}; {n} closed for this since the last warning)",
                    MAX_UNFINISHED >> 20,
                    from.map_or_else(String::new, |ip| ip.to_string())
                );
            }
            self.evict(r, i);
        }
    }

    /// One line on an incoming connection: for the relay (a pull request, a
    /// puller's keepalive), a private line ([`super::msg`]), or chat to forward
    /// to our pullers with its origin, and to show as from whoever the list says
    /// sent it ([`senders`]).
    fn incoming_line(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        from: SocketAddr,
        role: &mut Role,
        msg: &[u8],
        truncated: bool,
    ) {
        if self.is_private() {
            return self.private_incoming(r, i, from, role, msg, truncated);
        }
        let Some(origin) = self.relay_line(r, i, from, role, msg) else {
            return;
        };
        if msg.is_empty() && !truncated {
            return;
        }
        match crate::wire::private::read(msg) {
            // Ours to show, or one puller's: never forwarded to the rest.
            Private::No => {}
            line => return self.private_line(r, origin, line, truncated, false),
        }
        self.relay.gather(&self.peers, origin, msg);
        self.show_line(r.now(), origin, msg, truncated);
    }

    /// VB: `servants1_Close(Index)` (the article had none): the tail is a message.
    pub(super) fn servants1_close(&mut self, r: &mut Reactor<Slot>, i: Index, slot: Slot) {
        let Slot::Incoming {
            from,
            mut reader,
            mut role,
            ..
        } = slot
        else {
            return;
        };
        self.admission.closed(from.ip(), reader.buffered());
        reader.finish(|msg, truncated| self.incoming_line(r, i, from, &mut role, msg, truncated));
        let origin = matches!(role, Role::Puller { .. }).then_some(i);
        self.forward(r, origin);
        self.puller_closed(i, &role);
        if self.sends.self_done(from) {
            self.maybe_leave(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_fit_the_descriptors_there_are() {
        let full = Limits::for_fds(FDS_WANTED);
        let most = (MAX_INCOMING, MAX_SENDING, MAX_KEPT);
        assert_eq!((full.incoming, full.sending, full.kept), most);
        assert_eq!(Limits::for_fds(1 << 20), full);
        let low = Limits::for_fds(256);
        assert_eq!((low.incoming, low.sending, low.kept), (100, 40, 20));
        assert!(low.incoming + low.sending + low.kept + RESERVED_FDS <= 256);
        let tiny = Limits::for_fds(10);
        assert_eq!((tiny.incoming, tiny.sending), (AT_LEAST, AT_LEAST));
    }
}
