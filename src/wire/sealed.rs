//! End-to-end frames on a private network's relay: what an origin seals for one
//! relayed member, and what the relay routes by key without reading
//! ([`crate::noise::e2e`] seals and opens them; docs/PRIVATE.md#relays).
//!
//! One frame per line, `sealed BASE64\n`, the base64 (standard, padded) of:
//!
//! ```text
//! kind   1 byte    1: a session start, 2: data
//! to     32 bytes  the addressee's static public key: what the relay routes by
//! from   32 bytes  the origin's static public key: which session opens it
//! sid    4 bytes   the origin's number for the session, big-endian
//! body             start: the Noise K message (e, es, ss; 60 bytes)
//!                  data:  an 8-byte big-endian nonce, then the sealed text (+16)
//! ```
//!
//! The relay reads `to` (and checks `from` against the key its link proved); the
//! rest is opaque to it. Anything it changes fails to open at the addressee.
//!
//! ```
//! use p2pchat::wire::sealed::{encode, parse, Frame, Kind};
//!
//! let f = Frame { kind: Kind::Data, to: [1; 32], from: [2; 32], sid: 7, body: b"12345678a sealed text and its tag" };
//! let mut line = Vec::new();
//! encode(&f, &mut line);
//! assert!(line.starts_with(b"sealed "));
//! let mut scratch = Vec::new();
//! assert_eq!(parse(&line[..line.len() - 1], &mut scratch).unwrap(), f);
//! ```

use std::fmt;

use crate::noise::keys::{ALPHABET, KEY_LEN};

/// Every sealed line starts with this.
pub const TAG: &[u8] = b"sealed ";
/// Bytes before the body: kind, to, from, sid.
pub const HEAD: usize = 1 + 2 * KEY_LEN + 4;
/// The session start's body: a Noise K message 1 carrying a 12-byte TAI64N stamp.
pub const START_LEN: usize = 32 + 12 + 16;
/// A data frame's nonce, before its ciphertext.
pub const NONCE_LEN: usize = 8;
/// ChaChaPoly's tag.
pub const TAG_LEN: usize = 16;
/// The longest text sealed in one frame: its line, base64 and all, stays within
/// the longest line a servant's reader takes whole (64 KiB).
pub const MAX_TEXT: usize = 48_000;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Start = 1,
    Data = 2,
}

/// One frame, its body borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: Kind,
    pub to: [u8; KEY_LEN],
    pub from: [u8; KEY_LEN],
    pub sid: u32,
    pub body: &'a [u8],
}

/// Why a line is not a sealed frame.
#[derive(Debug, PartialEq, Eq)]
pub enum SealedError {
    NoTag,
    NotBase64,
    Short(usize),
    Kind(u8),
    /// A start whose body is not [`START_LEN`] bytes, or data shorter than a nonce and a tag.
    Body(usize),
}

impl fmt::Display for SealedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealedError::NoTag => write!(f, "a sealed frame starts with \"sealed \""),
            SealedError::NotBase64 => write!(f, "the frame is not base64"),
            SealedError::Short(n) => write!(f, "{n} bytes is shorter than a frame's head"),
            SealedError::Kind(k) => write!(f, "no frame is of kind {k}"),
            SealedError::Body(n) => write!(f, "a body of {n} bytes fits no frame of its kind"),
        }
    }
}

/// Whether `line` is meant as a sealed frame (it may still be a bad one).
pub fn is_sealed(line: &[u8]) -> bool {
    line.starts_with(TAG)
}

/// Appends `sealed BASE64\n` for `f`.
pub fn encode(f: &Frame<'_>, out: &mut Vec<u8>) {
    let mut raw = Vec::with_capacity(HEAD + f.body.len());
    raw.push(f.kind as u8);
    raw.extend_from_slice(&f.to);
    raw.extend_from_slice(&f.from);
    raw.extend_from_slice(&f.sid.to_be_bytes());
    raw.extend_from_slice(f.body);
    out.extend_from_slice(TAG);
    base64(&raw, out);
    out.push(b'\n');
}

/// Reads a frame (a line without its ending), decoding into `scratch`.
pub fn parse<'a>(line: &[u8], scratch: &'a mut Vec<u8>) -> Result<Frame<'a>, SealedError> {
    let text = line.strip_prefix(TAG).ok_or(SealedError::NoTag)?;
    scratch.clear();
    unbase64(text, scratch).ok_or(SealedError::NotBase64)?;
    let raw = &scratch[..];
    if raw.len() < HEAD {
        return Err(SealedError::Short(raw.len()));
    }
    let kind = match raw[0] {
        1 => Kind::Start,
        2 => Kind::Data,
        k => return Err(SealedError::Kind(k)),
    };
    let body = &raw[HEAD..];
    let fits = match kind {
        Kind::Start => body.len() == START_LEN,
        Kind::Data => body.len() >= NONCE_LEN + TAG_LEN,
    };
    if !fits {
        return Err(SealedError::Body(body.len()));
    }
    let key = |at: usize| <[u8; KEY_LEN]>::try_from(&raw[at..at + KEY_LEN]).expect("in bounds");
    Ok(Frame {
        kind,
        to: key(1),
        from: key(1 + KEY_LEN),
        sid: u32::from_be_bytes(raw[HEAD - 4..HEAD].try_into().expect("4 bytes")),
        body,
    })
}

/// The addressee of a sealed line, read from its first 44 base64 characters
/// alone: all the relay decodes to route it.
pub fn addressee(line: &[u8]) -> Option<([u8; KEY_LEN], [u8; KEY_LEN])> {
    let text = line.strip_prefix(TAG)?;
    // kind + to + from = 65 bytes: the first 88 characters hold 66.
    let mut head = Vec::with_capacity(66);
    unbase64(text.get(..88)?, &mut head)?;
    let to = head[1..1 + KEY_LEN].try_into().ok()?;
    let from = head[1 + KEY_LEN..1 + 2 * KEY_LEN].try_into().ok()?;
    Some((to, from))
}

fn base64(raw: &[u8], out: &mut Vec<u8>) {
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            out.push(match k <= chunk.len() {
                true => ALPHABET[(n >> (18 - 6 * k) & 63) as usize],
                false => b'=',
            });
        }
    }
}

/// Strict padded base64; `None` for anything else.
fn unbase64(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if text.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let quads = text.len() / 4;
    for (q, quad) in text.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && q + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | u32::from(value(c)?);
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length() {
        for n in 0..70 {
            let raw: Vec<u8> = (0..n).map(|k| (k * 37 + 11) as u8).collect();
            let (mut text, mut back) = (Vec::new(), Vec::new());
            base64(&raw, &mut text);
            assert_eq!(text.len(), raw.len().div_ceil(3) * 4);
            unbase64(&text, &mut back).unwrap();
            assert_eq!(back, raw);
        }
        assert_eq!(unbase64(b"QQ=A", &mut Vec::new()), None);
        assert_eq!(unbase64(b"QQ==QUFB", &mut Vec::new()), None);
        assert_eq!(unbase64(b"Q Q=", &mut Vec::new()), None);
    }

    #[test]
    fn frames_round_trip_and_the_relay_reads_only_the_keys() {
        let body = [9u8; START_LEN];
        let f = Frame {
            kind: Kind::Start,
            to: [3; 32],
            from: [4; 32],
            sid: 0xdead_beef,
            body: &body,
        };
        let mut line = Vec::new();
        encode(&f, &mut line);
        let line = &line[..line.len() - 1];
        assert_eq!(addressee(line), Some(([3; 32], [4; 32])));
        let mut s = Vec::new();
        assert_eq!(parse(line, &mut s), Ok(f));
    }

    #[test]
    fn bad_frames_say_why() {
        let mut s = Vec::new();
        assert_eq!(parse(b"hello", &mut s), Err(SealedError::NoTag));
        assert_eq!(parse(b"sealed !!!!", &mut s), Err(SealedError::NotBase64));
        assert_eq!(parse(b"sealed QUFB", &mut s), Err(SealedError::Short(3)));
        let mut line = Vec::new();
        let f = Frame {
            kind: Kind::Start,
            to: [0; 32],
            from: [0; 32],
            sid: 1,
            body: b"short",
        };
        encode(&f, &mut line);
        assert_eq!(
            parse(&line[..line.len() - 1], &mut s),
            Err(SealedError::Body(5))
        );
        assert_eq!(addressee(b"sealed QUFB"), None);
    }
}
