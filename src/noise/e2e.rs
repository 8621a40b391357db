//! End-to-end sessions through a relay (docs/PRIVATE.md#relays): an origin seals
//! lines for one relayed member so that the relay between them, which carries the
//! frames ([`crate::wire::sealed`]), can neither read, alter nor forge them, as
//! Tailscale's DERP carries WireGuard packets.
//!
//! - **Session start.** Per (origin, addressee) pair the origin runs Noise's
//!   one-way pattern `Noise_K_25519_ChaChaPoly_BLAKE2s`: both static keys are
//!   known from the peer list, so one message (`e, es, ss`) makes the session.
//!   Its payload is a TAI64N stamp (as WireGuard's initiation carries); the
//!   addressee takes a start only if its stamp is strictly newer than the last it
//!   took from that origin, so a recorded start played again is refused.
//! - **Transport.** `into_stateless_transport_mode`: each frame carries its own
//!   8-byte nonce, and the addressee keeps a sliding window of the last
//!   [`WINDOW`] nonces (RFC 6479, as WireGuard does): a relay may drop or reorder
//!   frames, or the puller change relays, and nothing stalls; a frame seen before
//!   is refused.
//! - **Rekeying.** The origin starts a new session after [`REKEY_AFTER`] or
//!   [`REKEY_FRAMES`] frames, whichever first (WireGuard: 120 s, 2^60 messages;
//!   the count here is lower, the cost of a start being one frame). The addressee
//!   keeps the previous session beside the current one for frames still on their
//!   way.
//! - **Restarts.** An addressee that restarts has forgotten the stamps it took, so
//!   it refuses every start stamped before its own start less [`REKEY_AFTER`] and
//!   [`CLOCK_SKEW`]: an origin's current session is at most that old, so it still
//!   opens, and a start recorded longer ago than that cannot be played again.
//! - **Starts travel with the data.** The origin puts the session's start before
//!   its frames in every batch it sends (a batch, not a line: the start is 99
//!   bytes of base64); the addressee skips a start whose session it already has
//!   without any cryptography. So a batch that overtakes another, or reaches a
//!   puller that changed relays, still opens.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use snow::StatelessTransportState;

use super::keys::{Keypair, PublicKey};
use super::resolver::{fill_random, Resolver};
use crate::wire::sealed::{self, Frame, Kind, NONCE_LEN, START_LEN, TAG_LEN};

pub const PATTERN: &str = "Noise_K_25519_ChaChaPoly_BLAKE2s";
/// A session is replaced by a new one this old.
pub const REKEY_AFTER: Duration = Duration::from_secs(120);
/// ... or after sealing this many frames.
pub const REKEY_FRAMES: u64 = 1 << 20;
/// Nonces behind the highest seen that are still taken (once each).
pub const WINDOW: u64 = 1024;
/// How far an origin's clock may run behind ours.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);
/// Origins whose sessions an addressee keeps; past that the longest idle goes.
const MAX_ORIGINS: usize = 4096;

fn builder() -> snow::Builder<'static> {
    let params = PATTERN.parse().expect("the pattern is valid");
    snow::Builder::with_resolver(params, Box::new(Resolver))
}

/// TAI64N: seconds since 1970 plus 2^62, then nanoseconds, big-endian.
fn tai64n(now: SystemTime) -> [u8; 12] {
    let d = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut t = [0u8; 12];
    t[..8].copy_from_slice(&(d.as_secs() + (1 << 62)).to_be_bytes());
    t[8..].copy_from_slice(&d.subsec_nanos().to_be_bytes());
    t
}

/// Why a frame was not opened.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Not addressed to this key: a relay that misroutes.
    NotForUs,
    /// A start no newer than the last taken from its origin: a replay.
    StaleStart,
    /// Data whose session this end does not have (its start never came, or is old).
    NoSession,
    /// A nonce already taken, or too far behind: a replay.
    Replayed,
    /// The cryptography failed: the frame was altered, or forged.
    Tampered,
}

impl OpenError {
    /// Whether the frame was altered on the way: what a puller reports.
    pub fn is_tampering(&self) -> bool {
        matches!(self, OpenError::Tampered | OpenError::NotForUs)
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpenError::NotForUs => "it is addressed to another key",
            OpenError::StaleStart => "a session start no newer than the last taken (a replay)",
            OpenError::NoSession => "its session never started here",
            OpenError::Replayed => "its nonce was taken before (a replay)",
            OpenError::Tampered => "it does not open: altered or forged on the way",
        })
    }
}

/// The origin's session with one addressee.
struct Outbound {
    sid: u32,
    state: StatelessTransportState,
    /// The session's start line, sent before its frames in every batch.
    start: Vec<u8>,
    next: u64,
    born: Instant,
}

/// An origin's sessions, one per addressee.
pub struct Sealer {
    me: Keypair,
    sessions: HashMap<PublicKey, Outbound>,
    /// The last stamp used: each start's is strictly newer, whatever the clock does.
    stamp: [u8; 12],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sealer {{ me: {}, sessions: {} }}",
            self.me.public(),
            self.sessions.len()
        )
    }
}

impl Sealer {
    pub fn new(me: Keypair) -> Sealer {
        Sealer {
            me,
            sessions: HashMap::new(),
            stamp: [0; 12],
        }
    }

    /// Appends the session start for `to` (a new session when due) and `text`
    /// sealed for `to` as a data frame, each a `sealed` line. `start`: whether to
    /// put the start first (once per batch).
    pub fn seal(
        &mut self,
        to: &PublicKey,
        text: &[u8],
        start: bool,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), snow::Error> {
        let due = self.sessions.get(to).map_or(true, |s| {
            now.duration_since(s.born) >= REKEY_AFTER || s.next >= REKEY_FRAMES
        });
        if due {
            let session = self.start(to, now)?;
            self.sessions.insert(*to, session);
        }
        let s = self.sessions.get_mut(to).expect("just made");
        if start || due {
            out.extend_from_slice(&s.start);
        }
        let text = &text[..text.len().min(sealed::MAX_TEXT)];
        let mut body = vec![0u8; NONCE_LEN + text.len() + TAG_LEN];
        body[..NONCE_LEN].copy_from_slice(&s.next.to_be_bytes());
        let n = s
            .state
            .write_message(s.next, text, &mut body[NONCE_LEN..])?;
        body.truncate(NONCE_LEN + n);
        s.next += 1;
        let f = Frame {
            kind: Kind::Data,
            to: *to.as_bytes(),
            from: *self.me.public().as_bytes(),
            sid: s.sid,
            body: &body,
        };
        sealed::encode(&f, out);
        Ok(())
    }

    fn start(&mut self, to: &PublicKey, now: Instant) -> Result<Outbound, snow::Error> {
        let mut hs = builder()
            .local_private_key(self.me.private_bytes())?
            .remote_public_key(to.as_bytes())?
            .build_initiator()?;
        let mut stamp = tai64n(SystemTime::now());
        if stamp <= self.stamp {
            stamp = self.stamp;
            let nanos = u32::from_be_bytes(stamp[8..].try_into().expect("4 bytes")) + 1;
            stamp[8..].copy_from_slice(&nanos.to_be_bytes());
        }
        self.stamp = stamp;
        let mut msg = [0u8; START_LEN];
        let n = hs.write_message(&stamp, &mut msg)?;
        debug_assert_eq!(n, START_LEN);
        let mut sid = [0u8; 4];
        fill_random(&mut sid).map_err(|_| snow::Error::Rng)?;
        let sid = u32::from_be_bytes(sid);
        let mut start = Vec::new();
        let f = Frame {
            kind: Kind::Start,
            to: *to.as_bytes(),
            from: *self.me.public().as_bytes(),
            sid,
            body: &msg,
        };
        sealed::encode(&f, &mut start);
        Ok(Outbound {
            sid,
            state: hs.into_stateless_transport_mode()?,
            start,
            next: 0,
            born: now,
        })
    }
}

/// The nonces taken in one session: the highest, and a bitmap of the [`WINDOW`]
/// below it.
#[derive(Default)]
struct Window {
    /// One past the highest nonce taken; 0 while none has been.
    top: u64,
    bits: [u64; (WINDOW / 64) as usize],
}

impl Window {
    /// Whether `n` may still be taken (checked before any cryptography).
    fn fresh(&self, n: u64) -> bool {
        if n >= self.top {
            return n < u64::MAX;
        }
        let behind = self.top - 1 - n;
        behind < WINDOW && self.bits[(n % WINDOW / 64) as usize] & 1 << (n % 64) == 0
    }

    /// Takes `n`, which opened: the window slides up to it.
    fn take(&mut self, n: u64) {
        if n >= self.top {
            let from = self.top.max((n + 1).saturating_sub(WINDOW));
            if n + 1 - from >= WINDOW {
                self.bits = Default::default();
            } else {
                for k in from..n {
                    self.bits[(k % WINDOW / 64) as usize] &= !(1 << (k % 64));
                }
            }
            self.top = n + 1;
        }
        self.bits[(n % WINDOW / 64) as usize] |= 1 << (n % 64);
    }
}

struct Inbound {
    sid: u32,
    state: StatelessTransportState,
    window: Window,
}

/// What an addressee keeps of one origin.
struct Origin {
    /// The newest start taken.
    stamp: [u8; 12],
    current: Option<Inbound>,
    previous: Option<Inbound>,
    used: Instant,
}

/// An addressee's sessions, one per origin.
pub struct Opener {
    me: Keypair,
    origins: HashMap<PublicKey, Origin>,
    /// Starts stamped before this are refused: older than any session an origin
    /// may still be using when we started.
    floor: [u8; 12],
}

/// A frame opened: who sealed it (proven), and the text; `None` for a start.
pub type Opened = (PublicKey, Option<Vec<u8>>);

impl Opener {
    pub fn new(me: Keypair) -> Opener {
        Opener::started_at(me, SystemTime::now())
    }

    /// An addressee that started at `at` (by the wall clock).
    pub fn started_at(me: Keypair, at: SystemTime) -> Opener {
        let floor = at
            .checked_sub(REKEY_AFTER + CLOCK_SKEW)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Opener {
            me,
            origins: HashMap::new(),
            floor: tai64n(floor),
        }
    }

    /// Opens one frame. A start makes (or skips, if already made) a session; data
    /// gives its text. `allowed`: whether a key may start a session at all (it is
    /// listed), checked before any cryptography.
    pub fn open(
        &mut self,
        f: &Frame<'_>,
        now: Instant,
        allowed: impl Fn(&PublicKey) -> bool,
    ) -> Result<Opened, OpenError> {
        if f.to != *self.me.public().as_bytes() {
            return Err(OpenError::NotForUs);
        }
        let from = PublicKey::from_bytes(f.from);
        if !allowed(&from) {
            return Err(OpenError::NoSession);
        }
        match f.kind {
            Kind::Start => self.start(f, from, now).map(|()| (from, None)),
            Kind::Data => self.data(f, from, now).map(|t| (from, Some(t))),
        }
    }

    fn start(&mut self, f: &Frame<'_>, from: PublicKey, now: Instant) -> Result<(), OpenError> {
        let known = self.origins.get(&from);
        if known.is_some_and(|o| o.current.as_ref().is_some_and(|c| c.sid == f.sid)) {
            return Ok(()); // this session's start again, in a later batch
        }
        let mut hs = builder()
            .local_private_key(self.me.private_bytes())
            .and_then(|b| b.remote_public_key(from.as_bytes()))
            .and_then(|b| b.build_responder())
            .map_err(|_| OpenError::Tampered)?;
        let mut stamp = [0u8; 12 + 16];
        let n = hs
            .read_message(f.body, &mut stamp)
            .map_err(|_| OpenError::Tampered)?;
        let stamp: [u8; 12] = stamp[..n].try_into().map_err(|_| OpenError::Tampered)?;
        if known.is_some_and(|o| stamp <= o.stamp) || stamp < self.floor {
            return Err(OpenError::StaleStart);
        }
        let state = hs
            .into_stateless_transport_mode()
            .map_err(|_| OpenError::Tampered)?;
        if self.origins.len() >= MAX_ORIGINS && known.is_none() {
            let idle = self
                .origins
                .iter()
                .min_by_key(|(_, o)| o.used)
                .map(|(k, _)| *k);
            idle.map(|k| self.origins.remove(&k));
        }
        let fresh = Inbound {
            sid: f.sid,
            state,
            window: Window::default(),
        };
        let o = self.origins.entry(from).or_insert(Origin {
            stamp,
            current: None,
            previous: None,
            used: now,
        });
        o.stamp = stamp;
        o.used = now;
        o.previous = o.current.replace(fresh);
        Ok(())
    }

    fn data(&mut self, f: &Frame<'_>, from: PublicKey, now: Instant) -> Result<Vec<u8>, OpenError> {
        let o = self.origins.get_mut(&from).ok_or(OpenError::NoSession)?;
        let s = [o.current.as_mut(), o.previous.as_mut()]
            .into_iter()
            .flatten()
            .find(|s| s.sid == f.sid)
            .ok_or(OpenError::NoSession)?;
        let nonce = u64::from_be_bytes(f.body[..NONCE_LEN].try_into().expect("8 bytes"));
        if !s.window.fresh(nonce) {
            return Err(OpenError::Replayed);
        }
        let sealed = &f.body[NONCE_LEN..];
        let mut text = vec![0u8; sealed.len()];
        let n = s
            .state
            .read_message(nonce, sealed, &mut text)
            .map_err(|_| OpenError::Tampered)?;
        s.window.take(nonce);
        o.used = now;
        text.truncate(n);
        Ok(text)
    }
}

#[cfg(test)]
mod tests;
