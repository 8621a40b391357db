//! What a relay writes down a pull link: each line with its origin, so that the
//! servant pulling applies its own bans to whoever really sent it, and shows who
//! that was, instead of taking every line as the relay's.
//!
//! One frame per line, `from ORIGIN NAME TEXT\n`:
//!
//! - `ORIGIN` is the sender's listed address `IP:PORT` (`[2001:db8::1]:2224`) when
//!   the relay knows which listed servant sent the line (the only one listed at
//!   the connection's address, or a puller), else the connection's bare `IP`;
//! - `NAME` is the name the relay's list gives that servant, empty when it has
//!   none (names hold no whitespace, so the empty field is unambiguous);
//! - `TEXT` is the line exactly as it was sent.
//!
//! An empty line is a keepalive, as before. Lines a puller sends up are not framed:
//! the relay knows who they are from.
//!
//! ```
//! use p2pchat::wire::pull::{frame, parse, Origin};
//!
//! let alice = Origin::Listed("203.0.113.5:2225".parse().unwrap());
//! let mut out = Vec::new();
//! frame(&mut out, alice, Some("alice"), b"alice: hi");
//! assert_eq!(out, b"from 203.0.113.5:2225 alice alice: hi\n");
//! let line = parse(&out[..out.len() - 1]).unwrap();
//! assert_eq!((line.origin, line.name, line.text), (alice, Some("alice"), &b"alice: hi"[..]));
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::net::canonical_ip;

/// Every frame starts with this.
pub const TAG: &[u8] = b"from ";
/// The longest origin: a scoped IPv6 address with a port
/// (`[ffff:...:255.255.255.255%4294967295]:65535`).
const MAX_ORIGIN: usize = 64;
/// The longest name field, in bytes: [`super::name::MAX_CHARS`] characters of up
/// to four bytes each.
const MAX_NAME: usize = super::name::MAX_CHARS * 4;
/// What a frame adds to a line at most: the tag, origin, name and two spaces. A
/// puller's reader allows this much beyond the longest message.
pub const MAX_HEAD: usize = TAG.len() + MAX_ORIGIN + 1 + MAX_NAME + 1;

/// Who a line came from, as the relay knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The listed servant at this address sent it.
    Listed(SocketAddr),
    /// A connection from this address sent it; which servant, the relay cannot say.
    Ip(IpAddr),
}

impl Origin {
    pub fn ip(self) -> IpAddr {
        match self {
            Origin::Listed(a) => a.ip(),
            Origin::Ip(ip) => ip,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Listed(a) => a.fmt(f),
            Origin::Ip(ip) => ip.fmt(f),
        }
    }
}

/// One frame read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Pulled<'a> {
    pub origin: Origin,
    pub name: Option<&'a str>,
    pub text: &'a [u8],
}

/// Why a line is not a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// It does not start with `from `; holds its first bytes, escaped.
    NoTag(String),
    /// The origin field is not an address; holds it, escaped.
    BadOrigin(String),
    /// The name field breaks the rules for names; holds why.
    BadName(String),
    /// The line ends before the name field does.
    Short,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NoTag(head) => {
                write!(f, "a pull frame starts with \"from \", not \"{head}\"")
            }
            FrameError::BadOrigin(o) => write!(f, "the origin \"{o}\" is not an address"),
            FrameError::BadName(why) => write!(f, "the name {why}"),
            FrameError::Short => write!(f, "the frame ends before its name field does"),
        }
    }
}

/// Appends the frame for `text` from `origin` (named `name` in the relay's list).
/// A name that is not one (whitespace in it, too long) is sent as none.
pub fn frame(out: &mut Vec<u8>, origin: Origin, name: Option<&str>, text: &[u8]) {
    use std::io::Write;
    out.extend_from_slice(TAG);
    let _ = write!(out, "{origin}");
    out.push(b' ');
    if let Some(n) = name.filter(|n| is_field(n)) {
        out.extend_from_slice(n.as_bytes());
    }
    out.push(b' ');
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// Reads one frame (without its line ending).
pub fn parse(line: &[u8]) -> Result<Pulled<'_>, FrameError> {
    let Some(rest) = line.strip_prefix(TAG) else {
        let head = &line[..line.len().min(TAG.len() + 8)];
        return Err(FrameError::NoTag(escaped(head)));
    };
    let (origin, rest) = split_field(rest, MAX_ORIGIN).ok_or(FrameError::Short)?;
    let origin = parse_origin(origin)
        .ok_or_else(|| FrameError::BadOrigin(escaped(&origin[..origin.len().min(MAX_ORIGIN)])))?;
    let (name, text) = split_field(rest, MAX_NAME).ok_or(FrameError::Short)?;
    let name = match name {
        [] => None,
        bytes => {
            let n = std::str::from_utf8(bytes)
                .map_err(|_| FrameError::BadName("is not UTF-8".into()))?;
            if !is_field(n) {
                return Err(FrameError::BadName(format!(
                    "\"{}\" is not a name",
                    crate::text::escape(n)
                )));
            }
            Some(n)
        }
    };
    Ok(Pulled { origin, name, text })
}

/// The longest probe text a puller answers (`probed TEXT`): the manager reads no longer.
pub const MAX_PROBE: usize = 64;

/// `probed TEXT\n`: what a puller tells its manager on receiving the manager's
/// probe through its relay; `None` for a text too long or holding a line end.
pub fn probed(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() > MAX_PROBE || text.contains(&b'\n') || text.contains(&b'\r') {
        return None;
    }
    let mut line = b"probed ".to_vec();
    line.extend_from_slice(text);
    line.push(b'\n');
    Some(line)
}

/// A name that can stand as the field: one the name rules allow, untrimmed.
fn is_field(name: &str) -> bool {
    super::name::check(name).is_ok_and(|n| n.len() == name.len())
        && !name.contains(char::is_whitespace)
}

/// The bytes before the first space (at most `max` of them) and those after it.
fn split_field(bytes: &[u8], max: usize) -> Option<(&[u8], &[u8])> {
    let at = memchr::memchr(b' ', &bytes[..bytes.len().min(max + 1)])?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

fn parse_origin(field: &[u8]) -> Option<Origin> {
    let text = std::str::from_utf8(field).ok()?;
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(Origin::Listed(SocketAddr::new(
            canonical_ip(a.ip()),
            a.port(),
        )));
    }
    text.parse::<IpAddr>()
        .ok()
        .map(|ip| Origin::Ip(canonical_ip(ip)))
}

fn escaped(bytes: &[u8]) -> String {
    crate::text::escape_bytes(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(origin: Origin, name: Option<&str>, text: &[u8]) {
        let mut out = Vec::new();
        frame(&mut out, origin, name, text);
        assert!(out.len() <= MAX_HEAD + text.len() + 1);
        let got = parse(&out[..out.len() - 1]).unwrap();
        assert_eq!(got, Pulled { origin, name, text });
    }

    #[test]
    fn frames_round_trip() {
        let v6: SocketAddr = "[2001:db8::1]:2224".parse().unwrap();
        round(Origin::Listed(v6), Some("bob"), b"bob: hi");
        round(
            Origin::Ip("203.0.113.9".parse().unwrap()),
            None,
            b"alice: x",
        );
        round(
            Origin::Ip("2001:db8::7".parse().unwrap()),
            Some("\u{e9}ve"),
            b"",
        );
        round(Origin::Listed("1.2.3.4:5".parse().unwrap()), None, b"a  b ");
        let worst = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535";
        assert!(worst.len() <= MAX_ORIGIN);
    }

    #[test]
    fn a_name_that_is_not_one_is_sent_as_none() {
        let mut out = Vec::new();
        frame(
            &mut out,
            Origin::Ip("1.2.3.4".parse().unwrap()),
            Some("a b"),
            b"t",
        );
        assert_eq!(out, b"from 1.2.3.4  t\n");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            parse(b"alice: hi").unwrap_err().to_string(),
            "a pull frame starts with \"from \", not \"alice: hi\""
        );
        assert!(matches!(
            parse(b"from nowhere  x"),
            Err(FrameError::BadOrigin(_))
        ));
        assert_eq!(parse(b"from 1.2.3.4"), Err(FrameError::Short));
        assert_eq!(parse(b"from 1.2.3.4 bob"), Err(FrameError::Short));
        assert!(matches!(
            parse(b"from 1.2.3.4 b\x1bob x"),
            Err(FrameError::BadName(_))
        ));
        let long = format!("from 1.2.3.4 {} x", "n".repeat(200));
        assert_eq!(parse(long.as_bytes()), Err(FrameError::Short));
        let mapped = parse(b"from [::ffff:10.0.0.1]:9  x").unwrap();
        assert_eq!(mapped.origin, Origin::Listed("10.0.0.1:9".parse().unwrap()));
    }
}
