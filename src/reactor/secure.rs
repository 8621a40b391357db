//! Private slots: a slot opened with [`Reactor::connect_secure`] or accepted with
//! [`Reactor::accept_secure`] carries a Noise [`Link`], and the reactor runs its
//! handshake before the handler hears of the peer.
//!
//! The events keep their VB meaning for an authenticated peer:
//! - initiator: `connect` fires when the handshake is done, not when TCP is;
//! - responder: [`Handler::admit_key`] decides on the initiator's static key, then
//!   [`Handler::authenticated`] fires once its first transport message opens;
//! - `data_arrival` gets decrypted bytes, only after one of those; `send` seals
//!   (each record once; the ciphertext is what waits across `WouldBlock`), and
//!   what is sent earlier is held and sealed when the link is up;
//! - `send_complete` means what it means on a plaintext slot: all application
//!   data sent so far, held data included, is with the kernel; handshake bytes
//!   never raise it;
//! - any handshake or decryption error raises `error` and closes the slot.
//!
//! A plaintext slot pays one branch on read, send and connect. Strangers are held
//! to [`crate::noise::guard`]'s limits before any Diffie-Hellman work.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::{Handler, Index, Reactor, Request, State};
use crate::net::Piece;
use crate::noise::guard::{Guard, Refusal, Ticket};
use crate::noise::{Keypair, Link, LinkError, PublicKey, Role, Step};

/// What a private slot has beyond a plaintext one.
pub(super) struct Secure {
    link: Link,
    /// A responder's place among the handshakes pending; given up when the link is up.
    ticket: Option<Ticket>,
    /// Tells this link's deadline from one of an earlier link in the same slot.
    serial: u64,
    /// Application data went into the write queue since the last `send_complete`:
    /// only then does the queue's draining owe one (handshake bytes never do).
    owed: bool,
    /// Closed to make room for a newer handshake when every place was taken.
    evicted: bool,
    /// When the sending key was agreed or last renewed.
    keyed_at: Instant,
}

impl Secure {
    /// Whether the write queue's draining owes `send_complete`; settles the debt.
    pub(super) fn take_owed(&mut self) -> bool {
        std::mem::take(&mut self.owed)
    }

    pub(super) fn owe(&mut self) {
        self.owed = true;
    }
}

/// The reactor's private-link state: this host's key pair, the handshakes under
/// way, and scratch buffers kept between calls.
#[derive(Default)]
pub(super) struct Handshakes {
    identity: Option<Rc<Keypair>>,
    guard: Guard,
    /// Deadlines in the order the handshakes started, which is their order: the
    /// limit is one for all.
    deadlines: VecDeque<(Instant, Index, u64)>,
    /// Handshakes whose places went to newer ones, closed after this batch.
    evicted: Vec<(Index, u64)>,
    /// Evictions since the last warning, and when that was: one line a second.
    evictions: u64,
    warned_at: Option<Instant>,
    serial: u64,
    plain: Vec<u8>,
    wire: Vec<u8>,
    sealed: Vec<u8>,
    gathered: Vec<u8>,
}

/// What is kept of a scratch buffer after a burst.
const SCRATCH_KEPT: usize = 256 * 1024;

fn recycle(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > SCRATCH_KEPT {
        buf.shrink_to(SCRATCH_KEPT);
    }
}

impl<T> Reactor<T> {
    /// Sets this host's static key pair, which private slots present.
    pub fn set_identity(&mut self, identity: Keypair) {
        self.handshakes.identity = Some(Rc::new(identity));
    }

    /// This host's public key, once [`Reactor::set_identity`] has been called.
    pub fn identity(&self) -> Option<&PublicKey> {
        self.handshakes.identity.as_deref().map(Keypair::public)
    }

    /// This host's key pair, for sessions of its own beside the links (the
    /// end-to-end sessions through a relay, [`crate::noise::e2e`]).
    pub fn keypair(&self) -> Option<Rc<Keypair>> {
        self.handshakes.identity.clone()
    }

    fn own_key(&self) -> io::Result<Rc<Keypair>> {
        self.handshakes.identity.clone().ok_or_else(|| {
            io::Error::other("a private link needs this host's key (Reactor::set_identity)")
        })
    }

    /// Starts a private connection to a responder whose static key is `responder`.
    /// [`Handler::connect`] fires once the handshake is done: the responder proved
    /// it holds that key. Anything sent before then is sealed and sent then.
    pub fn connect_secure(
        &mut self,
        to: SocketAddr,
        bind: Option<IpAddr>,
        responder: &PublicKey,
        data: T,
    ) -> io::Result<Index> {
        let identity = self.own_key()?;
        let mut wire = std::mem::take(&mut self.handshakes.wire);
        let link = Link::initiator(&identity, responder, &mut wire)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let opened = self.connect(to, bind, data);
        if let Ok(i) = opened {
            self.install(i, link, None);
            self.write_out(i, &[Piece::Bytes(&wire)], false);
        }
        recycle(&mut wire);
        self.handshakes.wire = wire;
        opened
    }

    /// Takes a pending connection as a private responder slot. Refused (and
    /// dropped) when too many handshakes are pending from its address or in all
    /// ([`crate::noise::HandshakeLimits`]). The handler hears of the peer through
    /// [`Handler::admit_key`], then [`Handler::authenticated`].
    pub fn accept_secure(&mut self, request: Request, data: T) -> io::Result<Index> {
        let identity = self.own_key()?;
        let limits = self.options.handshake;
        let ip = request.remote().ip();
        let guard = self.handshakes.guard.clone();
        let ticket = match guard.ticket(ip, &limits, self.now) {
            // Every place is taken: the oldest pending handshake makes room, as a
            // SYN queue drops its oldest, so a flood of half-open handshakes from
            // many addresses delays a member only if it fills all the places
            // within the member's own round trip, not within the deadline.
            Err(Refusal::Total(_)) if self.evict_oldest_handshake() => Ok(guard.grant(ip)),
            other => other,
        }
        .map_err(|refusal| io::Error::other(refusal.to_string()))?;
        let i = self.accept(request, data)?;
        self.install(i, Link::responder(identity), Some(ticket));
        Ok(i)
    }

    fn install(&mut self, i: Index, link: Link, ticket: Option<Ticket>) {
        let hs = &mut self.handshakes;
        hs.serial += 1;
        let serial = hs.serial;
        hs.deadlines
            .push_back((self.now + self.options.handshake.deadline, i, serial));
        if let Some(s) = self.slots.get_mut(i) {
            s.secure = Some(Box::new(Secure {
                link,
                ticket,
                serial,
                owed: false,
                evicted: false,
                keyed_at: self.now,
            }));
        }
    }

    /// The authenticated static key of private slot `i`'s peer; `None` for a
    /// plaintext slot or before the peer has proved it.
    pub fn peer_key(&self, i: Index) -> Option<&PublicKey> {
        self.slots.get(i)?.secure.as_ref()?.link.peer_key()
    }

    /// Whether slot `i` is a private link.
    pub fn is_secure(&self, i: Index) -> bool {
        self.slots.get(i).is_some_and(|s| s.secure.is_some())
    }

    /// Ciphertext arrived on private slot `i`: run the handshake, or open records
    /// and hand their plaintext to `data_arrival`.
    pub(super) fn secure_input<H: Handler<Data = T>>(&mut self, h: &mut H, i: Index, data: &[u8]) {
        let mut plain = std::mem::take(&mut self.handshakes.plain);
        let mut wire = std::mem::take(&mut self.handshakes.wire);
        let Some(sec) = self.slots.get_mut(i).and_then(|s| s.secure.as_deref_mut()) else {
            return;
        };
        // What was held goes out sealed when the link comes up: application data,
        // which owes `send_complete` like any other.
        let held = sec.link.held() > 0;
        let rekeys = sec.link.rekeys().1;
        let mut step = sec.link.receive(data, &mut plain, &mut wire);
        if sec.link.rekeys().1 != rekeys {
            debug!(
                "slot {i}: the peer's new sending key (rekey {} that way)",
                sec.link.rekeys().1
            );
        }
        if let Ok(Step::Admit(key)) = step {
            let admitted = h.admit_key(self, i, &key);
            step = match self.slots.get_mut(i) {
                // The handler closed it meanwhile: nothing more to say.
                Some(s) if s.state != State::Connected => Ok(Step::More),
                Some(s) => match s.secure.as_deref_mut() {
                    Some(sec) if admitted => sec.link.admit(&mut wire).map(|()| Step::More),
                    Some(sec) => Err(sec.link.refuse()),
                    None => Ok(Step::More),
                },
                None => Ok(Step::More),
            };
        }
        if !wire.is_empty() {
            let app_data = held && matches!(step, Ok(Step::Up));
            self.write_out(i, &[Piece::Bytes(&wire)], app_data);
        }
        match step {
            Err(e) => self.secure_fail(h, i, e),
            Ok(step) => {
                if step == Step::Up {
                    self.link_up(h, i);
                }
                if !plain.is_empty() && self.state(i) == State::Connected {
                    h.data_arrival(self, i, &plain);
                }
            }
        }
        recycle(&mut plain);
        recycle(&mut wire);
        self.handshakes.plain = plain;
        self.handshakes.wire = wire;
    }

    /// The peer proved its key: the initiator's `connect`, the responder's `authenticated`.
    fn link_up<H: Handler<Data = T>>(&mut self, h: &mut H, i: Index) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        let Some(sec) = s.secure.as_deref_mut() else {
            return;
        };
        sec.ticket = None;
        let role = sec.link.role();
        debug!(
            "slot {i} ({}): link=handshaking=>transport, peer {}",
            s.addr,
            sec.link
                .peer_key()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        match role {
            Role::Initiator => h.connect(self, i),
            Role::Responder => h.authenticated(self, i),
        }
    }

    /// A handshake or record failed: tell the handler and close the slot. Strangers'
    /// failures are routine (scanners, floods), so logged at debug; a failure on a
    /// link already up is not.
    fn secure_fail<H: Handler<Data = T>>(&mut self, h: &mut H, i: Index, e: LinkError) {
        let Some(s) = self.slots.get(i) else {
            return;
        };
        let up = s.secure.as_ref().is_some_and(|sec| sec.link.is_up());
        if up {
            info!("slot {i} ({}): {e}; closing", s.addr);
        } else {
            debug!("slot {i} ({}): {e}; closing", s.addr);
        }
        let err = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        h.error(self, i, &err);
        self.transition(i, State::Error);
    }

    /// The peer closed private slot `i`: during the handshake that is a failure
    /// (the initiator's connect failed); after it, an ordinary close, and a record
    /// cut short by it is dropped, never delivered.
    pub(super) fn secure_hangup<H: Handler<Data = T>>(&mut self, h: &mut H, i: Index) {
        let Some(s) = self.slots.get(i) else {
            return;
        };
        let Some(sec) = s.secure.as_deref() else {
            return;
        };
        if !sec.link.is_up() {
            return self.secure_fail(h, i, LinkError::Hangup);
        }
        if sec.link.partial() > 0 {
            debug!(
                "slot {i} ({}): closed in mid-record; {} bytes dropped",
                s.addr,
                sec.link.partial()
            );
        }
        self.peer_closed(i);
    }

    /// `send` on private slot `i`: seals the pieces as one record (split into
    /// frames as needed) and sends the ciphertext.
    pub(super) fn seal_and_send(&mut self, i: Index, pieces: &[Piece<'_>]) {
        let mut sealed = std::mem::take(&mut self.handshakes.sealed);
        let mut gathered = std::mem::take(&mut self.handshakes.gathered);
        let record: &[u8] = match pieces {
            [Piece::Bytes(one)] => one,
            _ => {
                for s in pieces.iter().flat_map(|p| p.slices()) {
                    gathered.extend_from_slice(s);
                }
                &gathered
            }
        };
        let (now, rekey_after) = (self.now, self.options.rekey_after);
        let ok = self
            .slots
            .get_mut(i)
            .filter(|s| matches!(s.state, State::Connected | State::Connecting))
            .and_then(|s| s.secure.as_deref_mut())
            .is_some_and(|sec| {
                // Renewed on the way out, never on a timer: an idle link's key
                // protects nothing new.
                if sec.link.is_up() && now.saturating_duration_since(sec.keyed_at) >= rekey_after {
                    if sec.link.rekey(&mut sealed).is_err() {
                        return false;
                    }
                    sec.keyed_at = now;
                    debug!(
                        "slot {i}: new sending key (rekey {} this way)",
                        sec.link.rekeys().0
                    );
                }
                sec.link.seal(record, &mut sealed).is_ok()
            });
        if ok && !sealed.is_empty() {
            self.write_out(i, &[Piece::Bytes(&sealed)], true);
        }
        recycle(&mut sealed);
        recycle(&mut gathered);
        self.handshakes.sealed = sealed;
        self.handshakes.gathered = gathered;
    }

    /// Responder handshakes holding a place, for the tests that hold the limits.
    #[cfg(test)]
    pub(super) fn pending_handshakes(&self) -> usize {
        self.handshakes.guard.pending([0, 0, 0, 0].into()).0
    }

    /// When the next handshake deadline falls (now, if one was evicted).
    pub(super) fn next_handshake_deadline(&self) -> Option<Instant> {
        if !self.handshakes.evicted.is_empty() {
            return Some(self.now);
        }
        self.handshakes.deadlines.front().map(|&(at, _, _)| at)
    }

    /// Gives up the place of the oldest responder handshake still pending and
    /// marks it to close after this batch; false if there is none.
    fn evict_oldest_handshake(&mut self) -> bool {
        let hs = &mut self.handshakes;
        let slots = &mut self.slots;
        let pending = |slots: &super::SlotTable<T>, &(_, i, serial): &(Instant, Index, u64)| {
            slots
                .get(i)
                .and_then(|s| s.secure.as_deref())
                .is_some_and(|sec| sec.serial == serial && !sec.link.is_up() && !sec.evicted)
        };
        // Ended handshakes at the front go now, so the search stays short.
        while hs.deadlines.front().is_some_and(|d| !pending(slots, d)) {
            hs.deadlines.pop_front();
        }
        let victim = hs.deadlines.iter().position(|&(_, i, serial)| {
            slots
                .get(i)
                .and_then(|s| s.secure.as_deref())
                .is_some_and(|sec| sec.serial == serial && sec.ticket.is_some() && !sec.evicted)
        });
        let Some((_, i, serial)) = victim.and_then(|k| hs.deadlines.remove(k)) else {
            return false;
        };
        if let Some(sec) = slots.get_mut(i).and_then(|s| s.secure.as_deref_mut()) {
            sec.ticket = None;
            sec.evicted = true;
        }
        hs.evicted.push((i, serial));
        hs.evictions += 1;
        let quiet = hs
            .warned_at
            .is_some_and(|at| self.now.saturating_duration_since(at) < Duration::from_secs(1));
        if !quiet {
            warn!(
                "{} handshakes pending, the most allowed: closing the oldest for each newcomer ({} since the last line)",
                self.options.handshake.total,
                hs.evictions
            );
            hs.evictions = 0;
            hs.warned_at = Some(self.now);
        }
        true
    }

    /// Closes every private slot whose handshake missed its deadline.
    pub(super) fn expire_handshakes<H: Handler<Data = T>>(&mut self, h: &mut H) {
        for (i, serial) in std::mem::take(&mut self.handshakes.evicted) {
            let Some(s) = self.slots.get(i) else {
                continue;
            };
            let mine = s.secure.as_ref().is_some_and(|sec| sec.serial == serial);
            if !mine || !matches!(s.state, State::Connected | State::Connecting) {
                continue;
            }
            debug!(
                "slot {i} ({}): handshake evicted for a newer one, closing",
                s.addr
            );
            let err = io::Error::new(io::ErrorKind::TimedOut, "handshake evicted");
            h.error(self, i, &err);
            self.transition(i, State::Error);
        }
        let now = self.now;
        while let Some(&(at, i, serial)) = self.handshakes.deadlines.front() {
            if at > now {
                break;
            }
            self.handshakes.deadlines.pop_front();
            let Some(s) = self.slots.get(i) else {
                continue;
            };
            let late = s
                .secure
                .as_ref()
                .is_some_and(|sec| sec.serial == serial && !sec.link.is_up());
            if !late || !matches!(s.state, State::Connected | State::Connecting) {
                continue;
            }
            let limit = self.options.handshake.deadline;
            debug!(
                "slot {i} ({}): handshake not done within {limit:?}, closing",
                s.addr
            );
            let err = io::Error::new(io::ErrorKind::TimedOut, "handshake timed out");
            h.error(self, i, &err);
            self.transition(i, State::Error);
        }
        if self.handshakes.deadlines.is_empty() && self.handshakes.deadlines.capacity() > 64 {
            self.handshakes.deadlines = VecDeque::new();
        }
    }
}
