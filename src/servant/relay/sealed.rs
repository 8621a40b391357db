//! Relays on a private network (docs/PRIVATE.md#relays): what a relay carries
//! there it cannot read. An origin seals each line for each relayed member with
//! an end-to-end session of their own ([`crate::noise::e2e`]) and sends the
//! frames to that member's relay over an ordinary private link; the relay routes
//! each frame by its addressee's key down that member's pull link, unread; the
//! puller opens it and shows it under the name its list gives the sealing key.
//!
//! - The relay forwards a frame only if the key it names as origin is the key
//!   the link it came on proved: a member cannot make a relay carry frames in
//!   another's name (they would not open anyway).
//! - A frame that does not open (altered, forged, misrouted) is dropped and
//!   reported to the manager, `tampered IP:PORT` naming the relay, at most once
//!   per poll interval; the manager's probes are such frames too, so a relay that
//!   alters them loses its probes and is replaced as a black hole is.
//! - A frame played again, or a session start no newer than the last, is refused
//!   (and not reported: a relay may well deliver one twice after a reconnect).
//! - The manager's probes are frames sealed by the manager's key: answered
//!   `probed TEXT` on the manager link, never shown.

use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, info, warn};

use super::Role;
use crate::noise::e2e::{Opener, Sealer};
use crate::noise::PublicKey;
use crate::reactor::{Index, Reactor, State};
use crate::servant::console::Sender;
use crate::servant::said::{RateLimited, SAY_EVERY};
use crate::servant::{Servant, Slot};
use crate::wire::peerdoc::Peer;
use crate::wire::private::{self, Private};
use crate::wire::relay::Relay;
use crate::wire::sealed;

/// A servant's end-to-end sessions, made at first use.
pub(in crate::servant) struct E2e {
    sealer: Sealer,
    opener: Opener,
    scratch: Vec<u8>,
    /// When the relay was last reported for frames that did not open.
    reported: Option<Instant>,
    dropped: RateLimited,
    unrouted: RateLimited,
}

impl std::fmt::Debug for E2e {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("E2e { <redacted> }")
    }
}

impl Servant {
    pub(in crate::servant) fn is_manager_key(&self, key: &PublicKey) -> bool {
        (self.config.private.as_ref()).is_some_and(|p| p.manager_key == *key)
    }

    fn e2e(&mut self, r: &Reactor<Slot>) -> Option<&mut E2e> {
        if self.relay.e2e.is_none() {
            let me = r.keypair()?;
            self.relay.e2e = Some(Box::new(E2e {
                sealer: Sealer::new((*me).clone()),
                opener: Opener::new((*me).clone()),
                scratch: Vec::new(),
                reported: None,
                dropped: RateLimited::default(),
                unrouted: RateLimited::default(),
            }));
        }
        self.relay.e2e.as_deref_mut()
    }

    /// Seals `lines` (each ending in `\n`) for every relayed member `to` picks,
    /// and sends each relay the frames for its pullers: up our own pull link when
    /// it is our relay, else on a private link of their own.
    fn seal_to(&mut self, r: &mut Reactor<Slot>, lines: &[u8], to: impl Fn(&Peer) -> bool) {
        let now = r.now();
        let targets: Vec<(SocketAddr, PublicKey)> = (self.peers.iter())
            .filter(|p| !p.me && to(p))
            .filter_map(|p| match (p.relay, p.key) {
                (Some(Relay::Via(via)), Some(key)) => Some((via, key)),
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let Some(e2e) = self.e2e(r) else { return };
        let mut by_relay: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        for (via, key) in targets {
            let k = match by_relay.iter().position(|(v, _)| *v == via) {
                Some(k) => k,
                None => {
                    by_relay.push((via, Vec::new()));
                    by_relay.len() - 1
                }
            };
            let out = &mut by_relay[k].1;
            let lines = lines.split(|&b| b == b'\n').filter(|l| !l.is_empty());
            for (n, line) in lines.enumerate() {
                if let Err(e) = e2e.sealer.seal(&key, line, n == 0, now, out) {
                    warn!("cannot seal a line for {key}: {e}");
                }
            }
        }
        let ours = match self.relay.status {
            Some(Relay::Via(v)) => Some(v),
            _ => None,
        };
        for (via, frames) in by_relay {
            match ours == Some(via) {
                true => self.send_to_relay(r, &frames),
                false => self.send_one(r, via, frames),
            }
        }
    }

    /// Our own line, shown here because we cannot reach ourselves while relayed:
    /// on a private network under our listed name, as peers show it.
    pub(in crate::servant) fn show_own(&mut self, line: &[u8]) {
        let me = self.peers.me().map(|p| (p.ip, p.addr()));
        match me.and_then(|(ip, a)| Some((ip, self.peers.name(a)?))) {
            Some((ip, name)) if self.is_private() => {
                self.console
                    .peer_message(ip, Sender::Named(name), line, false)
            }
            _ => self.console.message(line, false),
        }
    }

    /// A typed batch on a private network: sealed for every relayed member.
    pub(in crate::servant) fn seal_for_relayed(&mut self, r: &mut Reactor<Slot>, batch: &[u8]) {
        if self.is_private() {
            self.seal_to(r, batch, |_| true);
        }
    }

    /// `/msg` to a relayed member: sealed for it alone.
    pub(in crate::servant) fn seal_private(
        &mut self,
        r: &mut Reactor<Slot>,
        to: SocketAddr,
        line: &[u8],
    ) {
        self.seal_to(r, &private::direct(line), |p| p.addr() == to);
    }

    /// One line on an incoming private link: a pull, a sealed frame to route, a
    /// `/msg`, or chat from the member whose key the link proved.
    pub(in crate::servant) fn private_incoming(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        from: SocketAddr,
        role: &mut Role,
        msg: &[u8],
        truncated: bool,
    ) {
        if self.relay_line(r, i, from, role, msg).is_none() {
            return;
        }
        // A member may type `sealed ...`: only what reads as a frame's head is one.
        if sealed::addressee(msg).is_some() {
            return self.route(r, i, msg);
        }
        match private::read(msg) {
            Private::Direct(text) => self.member_private(r, i, text, truncated),
            _ => self.member_line(r, i, from, msg, truncated),
        }
    }

    fn member_private(&mut self, r: &mut Reactor<Slot>, i: Index, text: &[u8], truncated: bool) {
        let Some(key) = r.peer_key(i).copied() else {
            return;
        };
        self.show_keyed(&key, text, truncated, true);
    }

    /// Shows `text` as from the member holding `key`, through our bans on its
    /// listed address; a key on no current list is not shown.
    fn show_keyed(&mut self, key: &PublicKey, text: &[u8], truncated: bool, private: bool) {
        let Some(addr) = self.peers.by_key(key) else {
            return debug!("dropped a line sealed by {key}: on no current peer list");
        };
        if self.bans.list.is_banned(addr.ip()) {
            return debug!("dropped a line from {addr}: banned");
        }
        let Some(name) = self.peers.name(addr) else {
            return debug!("dropped a line sealed by {key}: its entry at {addr} has no name");
        };
        match private {
            true => self
                .console
                .private_message(addr.ip(), Sender::Named(name), text, truncated),
            false => self
                .console
                .peer_message(addr.ip(), Sender::Named(name), text, truncated),
        }
    }

    /// The relay routes a sealed frame by its addressee's key, unread, down that
    /// member's pull link; one claiming another origin than its link proved, or
    /// for no one pulling from us, is dropped.
    fn route(&mut self, r: &mut Reactor<Slot>, i: Index, line: &[u8]) {
        let proven = r.peer_key(i).map(|k| *k.as_bytes());
        let why = match sealed::addressee(line) {
            None => "it is not a sealed frame",
            Some((_, from)) if Some(from) != proven => {
                "it names another origin than its link proved"
            }
            Some((to, _)) => match self.puller_with_key(r, &PublicKey::from_bytes(to)) {
                Some(p) => {
                    let mut framed = Vec::with_capacity(line.len() + 1);
                    framed.extend_from_slice(line);
                    framed.push(b'\n');
                    return super::serve::to_puller(r, p, &framed);
                }
                None => "its addressee does not pull from us",
            },
        };
        let now = r.now();
        if let Some(e) = self.relay.e2e.as_deref_mut() {
            if let Some(n) = e.unrouted.due_within(now, 1, SAY_EVERY) {
                let head = crate::text::escape_bytes(&line[..line.len().min(24)]).into_owned();
                info!("dropped {n} sealed frame(s) not ours to route; the last ({} bytes, \"{head}\"): {why}", line.len());
            }
        } else {
            debug!("dropped a sealed frame: {why}");
        }
    }

    fn puller_with_key(&self, r: &Reactor<Slot>, key: &PublicKey) -> Option<Index> {
        let listed = self.peers.by_key(key)?;
        (self.relay.pullers.iter().copied()).find(|&p| {
            matches!(r.data(p), Some(Slot::Incoming { role: Role::Puller { listed: l, .. }, .. }) if *l == listed)
        })
    }

    /// A line down our pull link on a private network: a sealed frame to open.
    pub(in crate::servant) fn pulled_sealed(
        &mut self,
        r: &mut Reactor<Slot>,
        relay: SocketAddr,
        line: &[u8],
        truncated: bool,
    ) {
        if line.is_empty() {
            return; // keepalive
        }
        let now = r.now();
        let manager = self.config.private.as_ref().map(|p| p.manager_key);
        let peers = &self.peers;
        let Some(e2e) = self.relay.e2e.as_deref_mut().or(None) else {
            // Made lazily: nothing sealed for us can open before it exists.
            if self.e2e(r).is_some() {
                return self.pulled_sealed(r, relay, line, truncated);
            }
            return;
        };
        let mut scratch = std::mem::take(&mut e2e.scratch);
        let opened = match sealed::parse(line, &mut scratch) {
            Ok(f) => e2e
                .opener
                .open(&f, now, |k| peers.has_key(k) || Some(*k) == manager),
            Err(_) => Err(crate::noise::e2e::OpenError::Tampered),
        };
        e2e.scratch = scratch;
        match opened {
            Ok((_, None)) => {}
            Ok((from, Some(text))) if Some(from) == manager => self.probed(r, &text),
            Ok((from, Some(text))) => match private::read(&text) {
                Private::Direct(t) => self.show_keyed(&from, t, truncated, true),
                _ => self.show_keyed(&from, &text, truncated, false),
            },
            Err(e) if e.is_tampering() => self.report_tampering(r, relay, &e.to_string()),
            Err(e) => {
                if let Some(n) = e2e_dropped(self, now) {
                    info!("dropped {n} sealed frame(s) from the relay at {relay}; the last: {e}");
                }
            }
        }
    }

    /// A frame from our relay did not open: dropped, logged, and the relay
    /// reported to the manager at most once per poll interval.
    fn report_tampering(&mut self, r: &mut Reactor<Slot>, relay: SocketAddr, why: &str) {
        let (now, gap) = (r.now(), self.config.poll_interval);
        let Some(e2e) = self.relay.e2e.as_deref_mut() else {
            return;
        };
        if e2e.reported.is_some_and(|t| now.duration_since(t) < gap) {
            return;
        }
        e2e.reported = Some(now);
        warn!("dropped a frame from the relay at {relay}: {why}; reporting the relay to the connection manager");
        if let Some(link) = self.link.slot.filter(|&l| r.state(l) == State::Connected) {
            r.send(link, &crate::wire::relay::tampered(relay));
        }
    }
}

fn e2e_dropped(s: &mut Servant, now: Instant) -> Option<u64> {
    let e = s.relay.e2e.as_deref_mut()?;
    e.dropped.due_within(now, 1, SAY_EVERY)
}
