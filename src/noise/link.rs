//! One private link's Noise session: ciphertext in, plaintext out; plaintext in,
//! framed ciphertext out. No sockets here: the reactor feeds it what a socket read
//! and sends what it writes, and the tests drive two of them over a `Vec`.
//!
//! The wire, in order (docs/PRIVATE.md):
//! 1. initiator: the preamble `\0p2pchat\x01`, then frame(IK message 1: `-> e, es, s, ss`),
//!    exactly [`FIRST_LEN`] bytes with an empty payload;
//! 2. responder, once the handler admits the initiator's static key:
//!    frame(IK message 2: `<- e, ee, se`), exactly [`SECOND_LEN`] bytes;
//! 3. initiator: frame(an empty transport message), which proves to the responder
//!    that it holds the key message 1 claimed (message 1 alone can be replayed);
//! 4. both: frame(transport message) per record, at most [`MAX_PLAIN`] bytes of
//!    plaintext each, never empty;
//! 5. either, at any time after: frame(an empty transport message), after which
//!    that direction's key is Noise's `Rekey()` of the last ([`Link::rekey`]), so a
//!    key taken from memory opens nothing sent before it. Records are never
//!    empty, so the marker cannot be data.
//!
//! The preamble is the handshake's prologue too, so a link cannot be talked into
//! another version of this protocol. Any error closes the link for good.

use std::fmt;
use std::rc::Rc;

use snow::{HandshakeState, TransportState};

use super::frame::{write_frame, FrameError, FrameReader, HEADER, MAX_FRAME};
use super::keys::{Keypair, PublicKey, KEY_LEN};
use super::resolver::Resolver;

/// The Noise protocol every private link speaks.
pub const PATTERN: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// What a private connection starts with: no plaintext request begins with NUL.
/// The last byte is the link protocol's version.
pub const PREAMBLE: [u8; 9] = *b"\0p2pchat\x01";
/// IK message 1 with an empty payload: e (32), s encrypted (32 + 16), tag (16).
pub const FIRST_LEN: usize = 96;
/// IK message 2 with an empty payload: e (32), tag (16).
pub const SECOND_LEN: usize = 48;
/// The authentication tag each transport message carries.
pub const TAG_LEN: usize = 16;
/// Plaintext per transport message: a longer record is split.
pub const MAX_PLAIN: usize = MAX_FRAME - TAG_LEN;

/// Which end of the handshake this link is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// The life of a link, with the handshake's steps as states.
enum Phase {
    /// Responder: `0..PREAMBLE.len()` bytes of the preamble matched so far.
    Preamble(usize),
    /// Responder: waiting for message 1; no handshake state is built (no DH work
    /// done) until it is whole.
    AwaitFirst,
    /// Initiator: message 1 sent, waiting for message 2.
    AwaitSecond(Box<HandshakeState>),
    /// Responder: message 1 read; the initiator's static key awaits admission.
    Admitting(Box<HandshakeState>),
    /// Keys agreed. A responder's peer is authenticated only once its first
    /// transport message opens (`Link::up`).
    Transport(Box<TransportState>),
    /// An error ended it, or admission was refused: nothing more in or out.
    Closing,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Preamble(_) | Phase::AwaitFirst | Phase::AwaitSecond(_) => "handshaking",
            Phase::Admitting(_) => "admitting",
            Phase::Transport(_) => "transport",
            Phase::Closing => "closing",
        }
    }
}

/// What [`Link::receive`] found besides plaintext.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing new: plaintext, if any, is in the output.
    More,
    /// Responder: message 1 named this static key. Call [`Link::admit`] or
    /// [`Link::refuse`]; nothing more may arrive until then.
    Admit(PublicKey),
    /// The peer is authenticated: the initiator read message 2, or the responder
    /// opened the first transport message. Plaintext that came with it follows.
    Up,
}

/// Why a link closed.
#[derive(Debug)]
pub enum LinkError {
    /// Not a private connection: byte `at` of the preamble was `got`.
    Preamble {
        at: usize,
        got: u8,
    },
    Frame(FrameError),
    /// A handshake message did not check out (wrong key, tampered, malformed).
    Handshake(snow::Error),
    /// A transport message did not open: tampered, replayed, or not ours.
    Decrypt,
    /// A handshake message carried a payload; ours never do.
    Payload(usize),
    /// Bytes came after message 1, before the responder's answer.
    Early(usize),
    /// The handler did not admit the initiator's key.
    Refused(PublicKey),
    /// The peer closed the connection before the handshake was done.
    Hangup,
    /// The link had already closed.
    Closed,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Preamble { at, got } => write!(
                f,
                "not a private link: got \"{}\" as byte {at} of the preamble \"{}\"",
                [*got].escape_ascii(),
                PREAMBLE.escape_ascii()
            ),
            LinkError::Frame(e) => write!(f, "bad frame: {e}"),
            LinkError::Handshake(e) => write!(f, "handshake failed: {e}"),
            LinkError::Decrypt => f.write_str("a message did not decrypt: tampered, or not for us"),
            LinkError::Payload(n) => write!(f, "a handshake message carried {n} bytes of payload"),
            LinkError::Early(n) => write!(f, "{n} bytes arrived before the handshake's answer"),
            LinkError::Refused(key) => write!(f, "key {key} is not admitted"),
            LinkError::Hangup => f.write_str("the peer closed the connection during the handshake"),
            LinkError::Closed => f.write_str("the link is closed"),
        }
    }
}

impl std::error::Error for LinkError {}

impl From<FrameError> for LinkError {
    fn from(e: FrameError) -> Self {
        LinkError::Frame(e)
    }
}

/// One end of a private link. Its `Debug` shows the phase and the peer's public
/// key, never a secret.
pub struct Link {
    role: Role,
    phase: Phase,
    frames: FrameReader,
    /// The responder's own key pair, kept for building the handshake late.
    identity: Option<Rc<Keypair>>,
    /// The peer's static key: known to an initiator from the start, learnt by a
    /// responder from message 1.
    peer: Option<PublicKey>,
    /// The peer is authenticated ([`Step::Up`] was returned).
    up: bool,
    /// Plaintext sent before the link was up, sealed when it is.
    pending: Vec<u8>,
    /// Rekeys of the sending and of the receiving key.
    rekeyed: (u64, u64),
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("role", &self.role)
            .field("phase", &self.phase.name())
            .field("peer", &self.peer)
            .field("up", &self.up)
            .finish_non_exhaustive()
    }
}

fn builder<'a>(prologue: &'a [u8]) -> Result<snow::Builder<'a>, snow::Error> {
    let params = PATTERN.parse().expect("the pattern is valid");
    snow::Builder::with_resolver(params, Box::new(Resolver)).prologue(prologue)
}

impl Link {
    /// An initiator that knows the responder's static key. Appends the preamble and
    /// message 1 to `wire`.
    pub fn initiator(
        identity: &Keypair,
        responder: &PublicKey,
        wire: &mut Vec<u8>,
    ) -> Result<Link, LinkError> {
        let mut hs = builder(&PREAMBLE)
            .and_then(|b| b.local_private_key(identity.private_bytes()))
            .and_then(|b| b.remote_public_key(responder.as_bytes()))
            .and_then(|b| b.build_initiator())
            .map_err(LinkError::Handshake)?;
        let mut first = [0u8; FIRST_LEN];
        let n = hs
            .write_message(&[], &mut first)
            .map_err(LinkError::Handshake)?;
        debug_assert_eq!(n, FIRST_LEN);
        wire.extend_from_slice(&PREAMBLE);
        write_frame(wire, &first[..n]);
        Ok(Link {
            role: Role::Initiator,
            phase: Phase::AwaitSecond(Box::new(hs)),
            frames: FrameReader::new(SECOND_LEN, SECOND_LEN),
            identity: None,
            peer: Some(*responder),
            up: false,
            pending: Vec::new(),
            rekeyed: (0, 0),
        })
    }

    /// A responder with this host's key pair. It costs no cryptography until a
    /// whole message 1 has arrived.
    pub fn responder(identity: Rc<Keypair>) -> Link {
        Link {
            role: Role::Responder,
            phase: Phase::Preamble(0),
            frames: FrameReader::new(FIRST_LEN, FIRST_LEN),
            identity: Some(identity),
            peer: None,
            up: false,
            pending: Vec::new(),
            rekeyed: (0, 0),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// `handshaking`, `admitting`, `transport` or `closing`.
    pub fn phase(&self) -> &'static str {
        self.phase.name()
    }

    /// The peer is authenticated: data flows.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The peer's authenticated static key; `None` until the link is up.
    pub fn peer_key(&self) -> Option<&PublicKey> {
        self.peer.as_ref().filter(|_| self.up)
    }

    /// Bytes of an unfinished frame held: what a close now drops, undelivered.
    pub fn partial(&self) -> usize {
        self.frames.buffered()
    }

    /// Takes ciphertext from the peer: appends what it opens to `plain` and what
    /// the handshake must answer to `wire`. Any error closes the link for good.
    pub fn receive(
        &mut self,
        input: &[u8],
        plain: &mut Vec<u8>,
        wire: &mut Vec<u8>,
    ) -> Result<Step, LinkError> {
        let result = self.take(input, plain, wire);
        if result.is_err() {
            self.phase = Phase::Closing;
            self.pending = Vec::new();
        }
        result
    }

    fn take(
        &mut self,
        mut input: &[u8],
        plain: &mut Vec<u8>,
        wire: &mut Vec<u8>,
    ) -> Result<Step, LinkError> {
        let mut step = Step::More;
        if let Phase::Closing = self.phase {
            return Err(LinkError::Closed);
        }
        if let Phase::Preamble(matched) = &mut self.phase {
            while *matched < PREAMBLE.len() {
                let Some((&got, rest)) = input.split_first() else {
                    return Ok(step);
                };
                if got != PREAMBLE[*matched] {
                    return Err(LinkError::Preamble { at: *matched, got });
                }
                *matched += 1;
                input = rest;
            }
            self.phase = Phase::AwaitFirst;
        }
        while !input.is_empty() {
            if let Phase::Admitting(_) = self.phase {
                return Err(LinkError::Early(input.len()));
            }
            let Some(frame) = self.frames.feed(&mut input)? else {
                break;
            };
            match &mut self.phase {
                Phase::Preamble(_) | Phase::Admitting(_) => unreachable!("handled above"),
                Phase::Closing => return Err(LinkError::Closed),
                Phase::AwaitFirst => {
                    let identity = self.identity.take().ok_or(LinkError::Closed)?;
                    let mut hs = builder(&PREAMBLE)
                        .and_then(|b| b.local_private_key(identity.private_bytes()))
                        .and_then(|b| b.build_responder())
                        .map_err(LinkError::Handshake)?;
                    let mut payload = [0u8; FIRST_LEN];
                    let n = hs
                        .read_message(frame, &mut payload)
                        .map_err(LinkError::Handshake)?;
                    if n != 0 {
                        return Err(LinkError::Payload(n));
                    }
                    let key: [u8; KEY_LEN] = hs
                        .get_remote_static()
                        .and_then(|k| k.try_into().ok())
                        .ok_or(LinkError::Handshake(snow::Error::Input))?;
                    let key = PublicKey::from_bytes(key);
                    self.peer = Some(key);
                    self.phase = Phase::Admitting(Box::new(hs));
                    if !input.is_empty() {
                        return Err(LinkError::Early(input.len()));
                    }
                    return Ok(Step::Admit(key));
                }
                Phase::AwaitSecond(hs) => {
                    let mut payload = [0u8; SECOND_LEN];
                    let n = hs
                        .read_message(frame, &mut payload)
                        .map_err(LinkError::Handshake)?;
                    if n != 0 {
                        return Err(LinkError::Payload(n));
                    }
                    let Phase::AwaitSecond(hs) = std::mem::replace(&mut self.phase, Phase::Closing)
                    else {
                        unreachable!("matched above");
                    };
                    let t = hs.into_transport_mode().map_err(LinkError::Handshake)?;
                    self.phase = Phase::Transport(Box::new(t));
                    self.frames.set_limits(TAG_LEN, MAX_FRAME);
                    // The confirmation that lets the responder count us as authenticated.
                    self.seal_now(&[], wire)?;
                    self.go_up(wire)?;
                    step = Step::Up;
                }
                Phase::Transport(t) => {
                    let at = plain.len();
                    plain.resize(at + frame.len(), 0);
                    let n = match t.read_message(frame, &mut plain[at..]) {
                        Ok(n) => n,
                        Err(_) => {
                            plain.truncate(at);
                            return Err(LinkError::Decrypt);
                        }
                    };
                    plain.truncate(at + n);
                    if !self.up {
                        // The initiator's empty confirmation.
                        self.go_up(wire)?;
                        step = Step::Up;
                    } else if n == 0 {
                        t.rekey_incoming();
                        self.rekeyed.1 += 1;
                    }
                }
            }
        }
        Ok(step)
    }

    /// The link is up: what was sent before goes out now.
    fn go_up(&mut self, wire: &mut Vec<u8>) -> Result<(), LinkError> {
        self.up = true;
        if self.pending.is_empty() {
            // Nothing held: no record (an empty one would be a rekey).
            self.pending = Vec::new();
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let sealed = self.seal_now(&pending, wire);
        self.pending = pending;
        self.pending.clear();
        self.pending.shrink_to(0);
        sealed
    }

    /// Responder: the handler admits the initiator's key. Appends message 2 to `wire`.
    pub fn admit(&mut self, wire: &mut Vec<u8>) -> Result<(), LinkError> {
        let Phase::Admitting(mut hs) = std::mem::replace(&mut self.phase, Phase::Closing) else {
            return Err(LinkError::Closed);
        };
        let mut second = [0u8; SECOND_LEN];
        let n = hs
            .write_message(&[], &mut second)
            .map_err(LinkError::Handshake)?;
        write_frame(wire, &second[..n]);
        let t = hs.into_transport_mode().map_err(LinkError::Handshake)?;
        self.phase = Phase::Transport(Box::new(t));
        self.frames.set_limits(TAG_LEN, MAX_FRAME);
        Ok(())
    }

    /// Responder: the handler refused the initiator's key. The link is closed.
    pub fn refuse(&mut self) -> LinkError {
        self.phase = Phase::Closing;
        match self.peer {
            Some(key) => LinkError::Refused(key),
            None => LinkError::Closed,
        }
    }

    /// Seals `data` into framed transport messages appended to `wire`, each record
    /// encrypted once. Before the link is up the plaintext is held, and sealed then.
    pub fn seal(&mut self, data: &[u8], wire: &mut Vec<u8>) -> Result<(), LinkError> {
        match self.phase {
            Phase::Closing => Err(LinkError::Closed),
            // An empty record is the rekey marker: nothing to send.
            _ if data.is_empty() => Ok(()),
            Phase::Transport(_) if self.up => self.seal_now(data, wire),
            _ => {
                self.pending.extend_from_slice(data);
                Ok(())
            }
        }
    }

    /// New keys for what this end sends from now on: an empty transport message,
    /// then Noise's `Rekey()` of the sending key, which the peer applies when that
    /// message opens. A no-op until the link is up.
    pub fn rekey(&mut self, wire: &mut Vec<u8>) -> Result<(), LinkError> {
        if !self.up {
            return Ok(());
        }
        self.seal_now(&[], wire)?;
        if let Phase::Transport(t) = &mut self.phase {
            t.rekey_outgoing();
        }
        self.rekeyed.0 += 1;
        Ok(())
    }

    /// Rekeys so far: of what this end sends, and of what it receives.
    pub fn rekeys(&self) -> (u64, u64) {
        self.rekeyed
    }

    /// Plaintext held until the link is up.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    fn seal_now(&mut self, data: &[u8], wire: &mut Vec<u8>) -> Result<(), LinkError> {
        let Phase::Transport(t) = &mut self.phase else {
            return Err(LinkError::Closed);
        };
        // An empty record is one empty message (the initiator's confirmation).
        let mut records = data.chunks(MAX_PLAIN);
        let empty: &[u8] = &[];
        let first = records.next().unwrap_or(empty);
        for record in std::iter::once(first).chain(records) {
            let at = wire.len();
            let len = record.len() + TAG_LEN;
            wire.resize(at + HEADER + len, 0);
            wire[at..at + HEADER].copy_from_slice(&(len as u16).to_be_bytes());
            if t.write_message(record, &mut wire[at + HEADER..]).is_err() {
                wire.truncate(at);
                return Err(LinkError::Closed);
            }
        }
        Ok(())
    }
}
