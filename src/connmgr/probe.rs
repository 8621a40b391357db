//! Relays prove they forward. A servant that says `can relay` and answers a
//! dial-back could still forward nothing, black-holing everyone told to pull from
//! it. So after choosing a relay for a puller, the manager probes through it: it
//! connects to the relay's listening port from its own address, writes one line
//! shaped like chat (random lowercase words) and closes, as any peer's batch
//! would. An honest relay forwards it down its pulls; the puller sees that it came
//! from the manager's address, does not show it, and says `probed TEXT` on its
//! manager link (`docs/RELAY.md`).
//!
//! The schedule, so that an honest relay under load is not dropped:
//! - the first probe waits one `--relay-probe-interval` (the puller must get its
//!   list and connect its pull first), then one goes every interval, each with its
//!   own generous deadline (`--relay-probe-timeout`); up to [`MAX_OUTSTANDING`] are
//!   in flight at once;
//! - a relay is judged only after `--relay-probe-misses` probes in a row passed
//!   their deadline; one answered probe clears the count;
//! - once a probe has come back, probes go ten times less often.
//!
//! With the defaults (3 s, 10 s, 4) a relay that forwards nothing is dropped 22 s
//! after it was chosen: its puller is given another, and it is chosen for no one
//! for `--relay-ban` (10 min). Only a puller that said `can relay` judges its
//! relays (every servant that answers probes says it; a VB client never does), and
//! a puller that has never answered a probe gets at most [`BLIND_DROPS`] relays
//! dropped per connection: a servant from before probes, or a liar, cannot get
//! every relay banned.

use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::verdict::{member, member_mut, RelayState};
use super::{admit, Manager, Slot, PROBE};
use crate::noise::e2e::Sealer;
use crate::reactor::{Index, Reactor};

/// Probes one puller has in flight at most.
const MAX_OUTSTANDING: usize = 8;
/// Relays a puller that has never answered a probe may get dropped, per connection.
const BLIND_DROPS: u8 = 2;
/// A proven relay is probed this many times less often.
const PROVEN_SLOWER: u32 = 10;
/// Probe text length, in bytes: 16 to 32, as the wire says.
const TEXT_MIN: usize = 16;
const TEXT_MAX: usize = 32;

/// One probe's text, fixed size: a puller's probes cost no allocation each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Text {
    bytes: [u8; TEXT_MAX],
    len: u8,
}

impl Text {
    /// Random lowercase words, 16 to 32 bytes, single spaces between.
    fn random() -> Text {
        let mut noise = [0u8; 64];
        fill_random(&mut noise);
        let mut noise = noise.iter().copied();
        let mut next = move || noise.next().unwrap_or(7);
        let want = TEXT_MIN + usize::from(next()) % (TEXT_MAX - TEXT_MIN + 1);
        let mut bytes = [b' '; TEXT_MAX];
        let mut len = 0;
        while len < want {
            // A word of 2 to 7 letters, cut to fit; never a space last.
            let word = 2 + usize::from(next()) % 6;
            for _ in 0..word.min(want - len) {
                bytes[len] = b'a' + next() % 26;
                len += 1;
            }
            if len + 2 < want {
                len += 1; // the space already there
            }
        }
        Text {
            bytes,
            len: len as u8,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Noise for probe texts from the kernel; a clock-derived fill if it refuses.
fn fill_random(buf: &mut [u8]) {
    // SAFETY: getrandom writes at most `buf.len()` bytes into `buf`.
    let got = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if got != buf.len() as isize {
        let mut x = Instant::now().elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15;
        for b in buf {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (x >> 33) as u8;
        }
    }
}

/// A puller's probes through its current relay.
#[derive(Debug)]
pub(super) struct Probing {
    relay: Index,
    /// The relay's serial, so a probe never goes to a newcomer in its slot.
    relay_serial: u64,
    next: Instant,
    outstanding: [(Text, Instant); MAX_OUTSTANDING],
    in_flight: usize,
    /// Probes in a row that passed their deadline unanswered.
    misses: u32,
    /// A probe came back through this relay.
    proven: bool,
}

/// What a puller's connection remembers of probes across its relays.
#[derive(Debug, Default)]
pub(super) struct PullerProbes {
    pub(super) probing: Option<Box<Probing>>,
    /// Probes it has answered on this connection.
    answered: u32,
    /// Relays dropped for it before it had answered any.
    blind_drops: u8,
}

/// The manager's probes: the probe connections in flight, and the log's counts.
#[derive(Debug, Default)]
pub(super) struct Probes {
    /// Pullers being probed through their relays.
    pullers: Vec<Index>,
    /// Probe connections and when they are given up.
    shots: Vec<(Index, Instant)>,
    ignored: admit::Throttle,
    dropped: admit::Throttle,
    /// On a private network, the manager's end-to-end sessions with pullers.
    sealer: Option<Box<Sealer>>,
}

/// A probe connection: the line it writes once connected (on a private network,
/// the probe sealed for the puller: a session start and one data frame).
#[derive(Debug)]
pub(super) struct Shot {
    line: Vec<u8>,
}

impl Manager {
    /// `puller` was given `relay`: probe through it from one interval on.
    pub(super) fn start_probing(&mut self, r: &mut Reactor<Slot>, puller: Index, relay: Index) {
        let interval = self.config.relay.probe_interval;
        let serial = self.members.seat(relay).map(|s| s.serial);
        let now = r.now();
        let Some(m) = member_mut(r, puller) else {
            return;
        };
        m.probes.probing = match (interval.is_zero(), serial) {
            (false, Some(relay_serial)) => Some(Box::new(Probing {
                relay,
                relay_serial,
                next: now + interval,
                outstanding: [(Text::random(), now); MAX_OUTSTANDING],
                in_flight: 0,
                misses: 0,
                proven: false,
            })),
            _ => None,
        };
        if m.probes.probing.is_some() && !self.probes.pullers.contains(&puller) {
            self.probes.pullers.push(puller);
        }
        self.arm_probe_timer(r);
    }

    /// `puller` no longer pulls from the relay it was probed through.
    pub(super) fn stop_probing(&mut self, r: &mut Reactor<Slot>, puller: Index) {
        if let Some(m) = member_mut(r, puller) {
            m.probes.probing = None;
        }
        self.probes.pullers.retain(|&p| p != puller);
    }

    /// `probed TEXT` from `puller`: proof that its relay forwards, if TEXT is one
    /// of the probes sent through it.
    pub(super) fn probed(&mut self, r: &mut Reactor<Slot>, puller: Index, text: &[u8]) {
        let text = text.trim_ascii();
        let Some(m) = member_mut(r, puller) else {
            return;
        };
        let Some(p) = m.probes.probing.as_mut() else {
            return self.ignored_probe(r, puller, "it is probed through no relay");
        };
        let found = (p.outstanding[..p.in_flight].iter()).position(|(t, _)| t.as_bytes() == text);
        let Some(k) = found else {
            return self.ignored_probe(r, puller, "it matches no probe in flight");
        };
        // Older probes are forgiven: this one got through, so the relay forwards.
        p.outstanding.copy_within(k + 1..p.in_flight, 0);
        p.in_flight -= k + 1;
        p.misses = 0;
        let first = !std::mem::replace(&mut p.proven, true);
        let relay = p.relay;
        m.probes.answered += 1;
        if first {
            info!("relay: offset {relay} forwarded a probe to offset {puller}: proven");
        } else {
            debug!("relay: offset {relay} forwarded a probe to offset {puller}");
        }
    }

    fn ignored_probe(&mut self, r: &Reactor<Slot>, puller: Index, why: &str) {
        if let Some(n) = self.probes.ignored.note(r.now()) {
            debug!(
                "offset {puller} said `probed`, ignored: {why}{}",
                admit::more(n)
            );
        }
    }

    /// The probe timer: late probe connections are given up, probes past their
    /// deadline are misses, relays with too many in a row are dropped, and probes
    /// that are due go out.
    pub(super) fn probe_timer(&mut self, r: &mut Reactor<Slot>) {
        let now = r.now();
        let late: Vec<Index> = (self.probes.shots.iter())
            .filter(|&&(_, at)| at <= now)
            .map(|&(i, _)| i)
            .collect();
        for i in late {
            r.abort(i);
        }
        self.probes.shots.retain(|&(_, at)| at > now);
        let cfg = self.config.relay.clone();
        for puller in self.probes.pullers.clone() {
            let can_relay = member(r, puller).is_some_and(|m| m.reach.can_relay);
            let Some(m) = member_mut(r, puller) else {
                self.probes.pullers.retain(|&p| p != puller);
                continue;
            };
            let Some(p) = m.probes.probing.as_mut() else {
                continue;
            };
            let expired = (p.outstanding[..p.in_flight].iter())
                .take_while(|(_, sent)| now.duration_since(*sent) >= cfg.probe_timeout)
                .count();
            p.outstanding.copy_within(expired..p.in_flight, 0);
            p.in_flight -= expired;
            p.misses += expired as u32;
            let (relay, misses) = (p.relay, p.misses);
            let blind = m.probes.answered == 0;
            let judged = can_relay && !(blind && m.probes.blind_drops >= BLIND_DROPS);
            if misses >= cfg.probe_misses && judged {
                if blind {
                    m.probes.blind_drops += 1;
                }
                self.drop_relay(r, puller, relay, misses);
                continue;
            }
            if p.next <= now {
                let interval = match p.proven {
                    true => cfg.probe_interval * PROVEN_SLOWER,
                    false => cfg.probe_interval,
                };
                p.next = now + interval;
                if p.in_flight < MAX_OUTSTANDING {
                    let text = Text::random();
                    p.outstanding[p.in_flight] = (text, now);
                    p.in_flight += 1;
                    let serial = p.relay_serial;
                    self.shoot(r, puller, relay, serial, text);
                }
            }
        }
        self.arm_probe_timer(r);
    }

    /// `relay` lost `misses` probes in a row to `puller`: it is chosen for no one
    /// for the ban, and `puller` is given another relay (or told there is none).
    fn drop_relay(&mut self, r: &mut Reactor<Slot>, puller: Index, relay: Index, misses: u32) {
        let until = r.now() + self.config.relay.ban;
        let addr = self.members.seat(relay).map(|s| s.addr());
        self.ban_relay(r, relay, until);
        if let Some(n) = self.probes.dropped.note(r.now()) {
            let addr = addr.map_or_else(String::new, |a| a.to_string());
            warn!(
                "relay: offset {relay} ({addr}) lost {misses} probes in a row to offset {puller}: dropped, and not chosen again for {:?}{}",
                self.config.relay.ban,
                admit::more(n)
            );
        }
        self.stop_probing(r, puller);
        if member(r, puller).is_some_and(|m| m.reach.relay == RelayState::Via(relay)) {
            self.reassign(r, puller);
        }
    }

    /// Opens a probe connection to `relay`'s listening port, from the manager's own
    /// address, that writes `text` and closes. On a private network the link is a
    /// private one to the relay's key, and `text` goes sealed for `puller` alone:
    /// the relay routes it by key as it does any member's frame.
    fn shoot(
        &mut self,
        r: &mut Reactor<Slot>,
        puller: Index,
        relay: Index,
        serial: u64,
        text: Text,
    ) {
        let Some((to, relay_key)) = (self.members.seat(relay))
            .filter(|s| s.serial == serial)
            .map(|s| (s.addr(), s.key))
        else {
            return;
        };
        let bind =
            (self.config.bind).filter(|b| !b.is_unspecified() && b.is_ipv4() == to.is_ipv4());
        let mut line = Vec::with_capacity(TEXT_MAX + 1);
        let opened = match (self.config.private.is_some(), relay_key) {
            (false, _) => {
                line.extend_from_slice(text.as_bytes());
                line.push(b'\n');
                r.connect(to, bind, Slot::Probe(Shot { line }))
            }
            (true, Some(key)) => {
                let Some(puller_key) = self.members.seat(puller).and_then(|s| s.key) else {
                    return;
                };
                if self.probes.sealer.is_none() {
                    let Some(me) = r.keypair() else { return };
                    self.probes.sealer = Some(Box::new(Sealer::new((*me).clone())));
                }
                let sealer = self.probes.sealer.as_mut().expect("just made");
                if let Err(e) = sealer.seal(&puller_key, text.as_bytes(), true, r.now(), &mut line)
                {
                    return debug!("cannot seal a probe for offset {puller}: {e}");
                }
                r.connect_secure(to, bind, &key, Slot::Probe(Shot { line }))
            }
            (true, None) => return,
        };
        match opened {
            Ok(i) => {
                debug!("relay: probing offset {relay} ({to})");
                let deadline = r.now() + self.config.relay.probe_timeout;
                self.probes.shots.push((i, deadline));
            }
            // Our own trouble (out of descriptors): the probe is a miss, no more.
            Err(e) => debug!("cannot probe offset {relay} ({to}): {e}"),
        }
    }

    /// VB: `Winsock_Connect` on a probe: write its line and close.
    pub(super) fn probe_connect(&mut self, r: &mut Reactor<Slot>, i: Index) {
        let Some(Slot::Probe(shot)) = r.data_mut(i) else {
            return;
        };
        let line = std::mem::take(&mut shot.line);
        r.send(i, &line);
        r.close(i);
    }

    /// A probe connection closed (sent, refused or given up).
    pub(super) fn probe_closed(&mut self, i: Index) {
        self.probes.shots.retain(|&(s, _)| s != i);
    }

    /// Sets the probe timer for the next probe due, deadline, or shot to give up.
    fn arm_probe_timer(&mut self, r: &mut Reactor<Slot>) {
        let timeout = self.config.relay.probe_timeout;
        let mut next: Option<Instant> = self.probes.shots.iter().map(|&(_, at)| at).min();
        for &puller in &self.probes.pullers {
            if let Some(p) = member(r, puller).and_then(|m| m.probes.probing.as_deref()) {
                let deadline = (p.in_flight > 0).then(|| p.outstanding[0].1 + timeout);
                for at in std::iter::once(p.next).chain(deadline) {
                    next = Some(next.map_or(at, |n: Instant| n.min(at)));
                }
            }
        }
        match next {
            Some(at) => r.set_timer(PROBE, at.max(r.now() + Duration::from_millis(1))),
            None => r.cancel_timer(PROBE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_texts_are_chat_shaped_and_fresh() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let t = Text::random();
            let b = t.as_bytes();
            assert!((TEXT_MIN..=TEXT_MAX).contains(&b.len()), "{b:?}");
            assert!(
                b.iter().all(|&c| c == b' ' || c.is_ascii_lowercase()),
                "{b:?}"
            );
            assert!(b[0] != b' ' && b[b.len() - 1] != b' ' && !b.windows(2).any(|w| w == b"  "));
            seen.insert(b.to_vec());
        }
        assert!(seen.len() > 490, "texts repeat: {}", seen.len());
    }
}
