//! Behind a port-blocking router: complaints to the manager, pulling from a relay,
//! and relaying for others (`docs/RELAY.md`).
//!
//! The article's last section: a servant reports the peers it cannot contact; the
//! manager tells one that peers cannot reach to pull from a chosen peer, which "for
//! the life of the suspicious servant ... publishes any data that it gets".
//!
//! - **Complaining.** A delivery that fails sends `cannot reach IP:PORT` on the
//!   manager link, at most once per peer per poll interval.
//! - **Pulling.** When this servant's own entry carries `<relay>`, it opens one
//!   connection to the relay's listening port (outgoing connections pass the
//!   router), says `pull IP:PORT` (its own listed address) and keeps it open. What
//!   the relay forwards arrives there. Its own typed lines go over the same
//!   connection to the relay, directly to every other peer that is not relayed, and
//!   are shown here at once: it cannot reach itself at its public address.
//! - **Relaying** (`relay/serve.rs`). A connection whose first line is
//!   `pull IP:PORT`, from that IP, whose entry in our list names us as its relay, is
//!   a puller. Every chat line this servant's listener reads is forwarded to every
//!   puller with its origin ([`crate::wire::pull`]), except to the puller it came
//!   from; its own typed lines come back through its own listener like everyone's.
//!   A puller's lines reach public peers directly from the puller, so the relay
//!   forwards them to the other pullers only: no servant sees a line twice.
//! - **Pulled lines** (`relay/down.rs`) are shown as from their origin, through
//!   our own bans; one from the manager's address is its probe, answered on the
//!   manager link and never shown.
//!
//! Limits, in the spirit of libp2p's circuit relay v2 (128 reservations, 128 KiB
//! per circuit): at most [`MAX_PULLERS`] pull connections, [`MAX_BACKLOG`] bytes
//! queued to one puller (past that it is dropped and pulls again), and
//! [`LINE_RATE`] lines a second from a puller after a burst of [`LINE_BURST`]. The
//! manager caps pullers per relay more tightly (`--relay-pullers`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::chat::ChatReader;
use super::peers::Peers;
use super::said::RateLimited;
use super::{Servant, Slot, TICK};
use crate::reactor::{Index, Reactor, State};
use crate::wire::peerdoc::Peer;
use crate::wire::pull::{self, Origin};
use crate::wire::relay::{self as wire, Relay};

mod down;
mod sealed;
mod serve;

/// Pull connections one servant serves at most.
pub(super) const MAX_PULLERS: usize = 128;
/// Bytes queued to one puller before it is dropped as not reading.
pub(super) const MAX_BACKLOG: usize = 128 * 1024;
/// Lines a second a puller may send through the relay, after a burst.
pub(super) const LINE_RATE: f64 = 20.0;
pub(super) const LINE_BURST: f64 = 100.0;
/// An outgoing connection (a send, or the pull) not up by then has failed.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often both ends of a pull link say something when there is nothing to
/// say, so that neither's idle sweep (30 s at least) closes it. Both ends set
/// TCP_NODELAY on the pull link, so a keepalive never holds back a line (Nagle).
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Peers whose last complaint is remembered, before old ones are forgotten.
const REMEMBERED: usize = 4096;

/// The servant's part in the relay: what its own entry says, its pull link, the
/// pullers it serves, and its complaints.
#[derive(Debug, Default)]
pub(super) struct Relaying {
    /// Our own entry's `<relay>`: `None` while peers reach us directly.
    pub(super) status: Option<Relay>,
    /// Our own entry's address: what `pull` names us by.
    me: Option<SocketAddr>,
    /// The pull link to our relay, while open.
    pub(super) pull: Option<Index>,
    /// When the pull link last said anything (a line, or the relay's keepalive).
    pull_heard: Option<Instant>,
    /// The pull link's loss has been logged; said again after it came back.
    pull_lost_logged: bool,
    /// Our own lines typed while the pull link was down or still connecting, for
    /// the relay once it is up ([`MAX_BACKLOG`] at most).
    held: Vec<u8>,
    /// Pull connections from the servants we relay for.
    pullers: Vec<Index>,
    /// Pull connections our list does not yet say we relay for, until the next
    /// list (or a poll interval) says.
    pending: Vec<Index>,
    /// Pulls refused, said at most once a second.
    refused: RateLimited,
    /// Lines from our relay that were not frames.
    bad_frames: RateLimited,
    /// When each peer was last complained about.
    complained: HashMap<SocketAddr, Instant>,
    /// Lines gathered from one read, to forward to pullers in one write each.
    forward: Vec<u8>,
    /// Lines from pullers dropped for their rate, since the last warning.
    dropped: u64,
    /// When keepalives last went out.
    kept_alive: Option<Instant>,
    /// End-to-end sessions on a private network (`relay/sealed.rs`).
    e2e: Option<Box<sealed::E2e>>,
}

/// What an incoming connection turned out to be.
#[derive(Debug)]
pub(super) enum Role {
    /// Nothing read yet: a batch of chat, or a pull.
    First,
    /// A batch of chat lines from a peer.
    Batch,
    /// A pull our list cannot confirm yet: held, unanswered, since then.
    Pending { listed: SocketAddr, since: Instant },
    /// A servant pulling from us, named by its listed address.
    Puller { listed: SocketAddr, bucket: Bucket },
    /// A pull refused (beyond [`MAX_PULLERS`], not ours to serve, or displacing a
    /// live one): closing, read no further.
    Refused,
}

/// A token bucket: [`LINE_RATE`] lines a second, [`LINE_BURST`] at once.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket {
            tokens: LINE_BURST,
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * LINE_RATE;
        self.tokens = (self.tokens + refill).min(LINE_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Relaying {
    /// A chat line read from `origin`, framed with it and gathered to forward to our
    /// pullers after the read: the origin is the only copy made.
    pub(super) fn gather(&mut self, peers: &Peers, origin: Origin, msg: &[u8]) {
        if !self.pullers.is_empty() && !msg.is_empty() {
            let name = match origin {
                Origin::Listed(a) => peers.name(a),
                Origin::Ip(_) => None,
            };
            pull::frame(&mut self.forward, origin, name, msg);
        }
    }
}

/// How a relay names a connection's sender: the listed servant, when it is the only
/// one at that address, else the address alone.
pub(super) fn origin_of(peers: &Peers, ip: std::net::IpAddr) -> Origin {
    match peers.at_ip(ip) {
        Some(at) if at.count == 1 => Origin::Listed(at.first),
        _ => Origin::Ip(ip),
    }
}

impl Servant {
    /// Tells the manager we could not deliver to `peer`, at most once per poll interval.
    pub(super) fn complain(&mut self, r: &mut Reactor<Slot>, peer: SocketAddr) {
        if !(self.link.slot).is_some_and(|l| r.state(l) == State::Connected) {
            return;
        }
        let (now, gap) = (r.now(), self.config.poll_interval);
        let c = &mut self.relay.complained;
        if c.get(&peer).is_some_and(|&t| now.duration_since(t) < gap) {
            return;
        }
        if c.len() >= REMEMBERED {
            c.retain(|_, t| now.duration_since(*t) < gap);
        }
        c.insert(peer, now);
        debug!("telling the connection manager we cannot reach {peer}");
        self.tell_manager(r, &wire::cannot_reach(peer));
    }

    /// A new document: our own entry says whether we are relayed, and through whom.
    pub(super) fn relay_document(&mut self, r: &mut Reactor<Slot>) {
        let mine = self.peers.me();
        self.relay.me = mine.map(Peer::addr);
        let now = r.now();
        self.resolve_pending(r);
        self.release_held(now);
        let mine = self.peers.me();
        let status = mine.and_then(|p| p.relay);
        if status != self.relay.status {
            match (self.relay.status, status) {
                (_, Some(Relay::Via(to))) => info!(
                    "relayed: the connection manager finds peers cannot reach this servant (a port-blocking router); pulling from {to}"
                ),
                (_, Some(Relay::Nobody)) => warn!(
                    "relayed, but no peer can relay for this servant: peers cannot reach it (a port-blocking router), so it hears nobody until one can; what it sends still goes out"
                ),
                (Some(_), None) => info!("no longer relayed: peers reach this servant directly"),
                (None, None) => {}
            }
            self.relay.status = status;
        }
        let pulling = self.relay.pull.and_then(|p| match r.data(p) {
            Some(Slot::Pull { to, .. }) => Some(*to),
            _ => None,
        });
        match status {
            Some(Relay::Via(to)) if pulling == Some(to) => {}
            Some(Relay::Via(to)) => {
                self.drop_pull(r);
                self.open_pull(r, to);
            }
            _ => {
                self.drop_pull(r);
                if !self.relay.held.is_empty() {
                    debug!(
                        "no longer pulling: {} bytes held for the relay are dropped",
                        self.relay.held.len()
                    );
                    self.relay.held = Vec::new();
                }
            }
        }
    }

    /// Our own lines for the relay, which skips them from direct delivery: down the
    /// pull link once it is up, else held until it is. Not sent to the relay's
    /// listener instead: it would forward them back to us like any peer's lines.
    pub(super) fn send_to_relay(&mut self, r: &mut Reactor<Slot>, batch: &[u8]) {
        let up = self
            .relay
            .pull
            .filter(|&p| matches!(r.data(p), Some(Slot::Pull { up: true, .. })));
        if let Some(p) = up {
            return r.send(p, batch);
        }
        if self.relay.held.len() + batch.len() > MAX_BACKLOG {
            return warn!(
                "the relay link is down and {} KiB are already waiting for it; these lines reach direct peers only",
                MAX_BACKLOG / 1024
            );
        }
        self.relay.held.extend_from_slice(batch);
    }

    fn drop_pull(&mut self, r: &mut Reactor<Slot>) {
        if let Some(p) = self.relay.pull.take() {
            r.close(p);
        }
    }

    /// Connects to the relay and says `pull IP:PORT`.
    fn open_pull(&mut self, r: &mut Reactor<Slot>, to: SocketAddr) {
        let Some(me) = self.relay.me else { return };
        let slot = Slot::Pull {
            to,
            reader: ChatReader::with_room(pull::MAX_HEAD),
            error: None,
            started: r.now(),
            up: false,
        };
        // On a private network the pull is a private link to the relay's listed key.
        let opened = match self.is_private() {
            false => r.connect(to, self.bind_for(to), slot),
            true => match self.peers.get(to).and_then(|p| p.key) {
                Some(key) => r.connect_secure(to, self.bind_for(to), &key, slot),
                None => Err(std::io::Error::other("the peer list gives no key for it")),
            },
        };
        match opened {
            Ok(i) => {
                r.send(i, &wire::pull_line(me));
                self.relay.pull = Some(i);
            }
            Err(e) => self.pull_lost(r, to, &e.to_string(), true),
        }
    }

    /// VB-style `Connect` on the pull link.
    pub(super) fn pull_connect(&mut self, r: &mut Reactor<Slot>, i: Index) {
        let Some(Slot::Pull { to, up, .. }) = r.data_mut(i) else {
            return;
        };
        *up = true;
        let to = *to;
        self.relay.pull_heard = Some(r.now());
        r.set_nodelay(i);
        self.relay.pull_lost_logged = false;
        info!("pulling from the relay at {to}");
        if !self.relay.held.is_empty() {
            r.send(i, &std::mem::take(&mut self.relay.held));
        }
    }

    /// The pull link closed: pull again on the next tick, while still relayed there.
    pub(super) fn pull_closed(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        to: SocketAddr,
        connected: bool,
        error: Option<String>,
    ) {
        if self.relay.pull == Some(i) {
            self.relay.pull = None;
        }
        if self.relay.status == Some(Relay::Via(to)) && !self.quitting {
            let why = error.unwrap_or_else(|| "it closed the connection".into());
            self.pull_lost(r, to, &why, !connected);
        }
    }

    fn pull_lost(&mut self, r: &mut Reactor<Slot>, to: SocketAddr, why: &str, unreachable: bool) {
        if !std::mem::replace(&mut self.relay.pull_lost_logged, true) {
            warn!("lost the relay at {to}: {why}; pulling again until the connection manager names another");
        }
        if unreachable {
            self.complain(r, to);
        }
    }

    /// The relay tick: outgoing connections that will not come up fail, both ends of
    /// pull links hear a keepalive every [`KEEPALIVE`], a lost pull link is opened
    /// again, and lines dropped for their rate are reported.
    pub(super) fn tick(&mut self, r: &mut Reactor<Slot>) {
        let now = r.now();
        let stuck: Vec<Index> = (r.slots().iter())
            .filter(|(_, s)| s.state() == State::Connecting)
            .filter(|(_, s)| match s.data() {
                Some(Slot::Outgoing { started, .. } | Slot::Pull { started, .. }) => {
                    now.duration_since(*started) >= CONNECT_TIMEOUT
                }
                _ => false,
            })
            .map(|(i, _)| i)
            .collect();
        let why = format!("no answer within {} s", CONNECT_TIMEOUT.as_secs());
        for i in stuck {
            if let Some(Slot::Outgoing { error, .. } | Slot::Pull { error, .. }) = r.data_mut(i) {
                *error = Some(why.clone());
            }
            r.abort(i);
        }
        let keepalive = self
            .relay
            .kept_alive
            .map_or(true, |t| now.duration_since(t) >= KEEPALIVE);
        if keepalive {
            self.relay.kept_alive = Some(now);
            for k in 0..self.relay.pullers.len() {
                r.send(self.relay.pullers[k], b"\n");
            }
        }
        self.drop_silent_pull(r);
        match (self.relay.pull, self.relay.status) {
            (Some(p), _) if keepalive => r.send(p, b"\n"),
            (None, Some(Relay::Via(to))) if !self.quitting => self.open_pull(r, to),
            _ => {}
        }
        self.resolve_pending(r);
        self.release_held(now);
        if self.relay.dropped > 0 {
            warn!(
                "dropped {} line(s) from pullers sending faster than {LINE_RATE} a second",
                std::mem::take(&mut self.relay.dropped)
            );
        }
        let every = self
            .config
            .poll_interval
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        r.set_timer(TICK, now + every);
    }
}

impl Servant {
    /// A pull link that died without a FIN or a reset (a NAT that forgot it, a
    /// router gone) looks open for as long as TCP retries, about 15 minutes: our
    /// keepalives still leave, unanswered. The relay says something every
    /// [`KEEPALIVE`], so one silent for [`serve::LIVE`] is dropped and pulled again
    /// on the next tick; the relay, not having heard us for as long, takes the new
    /// pull in place of the old.
    fn drop_silent_pull(&mut self, r: &mut Reactor<Slot>) {
        let (Some(p), Some(heard)) = (self.relay.pull, self.relay.pull_heard) else {
            return;
        };
        if !matches!(r.data(p), Some(Slot::Pull { up: true, .. }))
            || r.now().duration_since(heard) < serve::LIVE
        {
            return;
        }
        if let Some(Slot::Pull { error, .. }) = r.data_mut(p) {
            *error = Some(format!("heard nothing for {} s", serve::LIVE.as_secs()));
        }
        r.abort(p);
    }
}

/// A peer for `/peers`: `*2226 203.0.113.1 relayed via 203.0.113.10:2224`.
pub(super) fn describe_peer(p: &Peer) -> String {
    let mark = if p.me { "*" } else { "" };
    let relay = match p.relay {
        None => String::new(),
        Some(Relay::Via(via)) => format!(" relayed via {via}"),
        Some(Relay::Nobody) => " relayed, but no peer can relay for it".into(),
    };
    format!("{mark}{} {}{relay}\n", p.port, p.ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(t0);
        let burst = (0..1000).filter(|_| b.take(t0)).count();
        assert_eq!(burst, LINE_BURST as usize);
        let later = t0 + Duration::from_secs(1);
        let refilled = (0..1000).filter(|_| b.take(later)).count();
        assert_eq!(refilled, LINE_RATE as usize);
    }

    #[test]
    fn peers_show_their_relay() {
        let mut p = Peer {
            ip: "203.0.113.1".parse().unwrap(),
            port: 2226,
            offset: 3,
            me: true,
            relay: Some(Relay::Via("203.0.113.10:2224".parse().unwrap())),
            key: None,
        };
        assert_eq!(
            describe_peer(&p),
            "*2226 203.0.113.1 relayed via 203.0.113.10:2224\n"
        );
        p.me = false;
        p.relay = None;
        assert_eq!(describe_peer(&p), "2226 203.0.113.1\n");
    }
}
