//! Private lines (`/msg NAME TEXT`): one line for one peer, on the ordinary chat
//! connection, in a form every receiver can read.
//!
//! The chat protocol carries lines of text and nothing else, and the article's
//! servant shows every line it receives as it came. So a private line is an
//! ordinary line that starts with a mark a VB receiver (or an older p2pchat one)
//! shows as plain text, and a receiver that knows the mark shows as private:
//!
//! ```text
//! (private) TEXT                     to the addressee, directly or down its pull
//! (private for IP:PORT) TEXT         to a relay, for its puller listed at IP:PORT
//! ```
//!
//! `TEXT` is the line as it would be sent to everyone (`alice: hi`, with the
//! sender's `NAME: ` prefix), at least one byte. `IP:PORT` is the addressee's listed
//! address (`[2001:db8::1]:2224` for IPv6), at most [`MAX_ADDRESS`] bytes. A relay
//! sends a `(private for ...)` line down that one puller's link as
//! `(private) TEXT`, in the pull frame (`from ORIGIN NAME (private) TEXT`), and to
//! no one else; it never shows it.
//!
//! A line that starts `(private for ` and is not of that form, or `(private) `
//! with nothing after it, is malformed: it was meant for one peer, so it is
//! dropped, never shown to anyone or forwarded. Anything else (`(privately, ...)`)
//! is an ordinary line. The mark is what the sender says: the receiver still
//! names the sender from the network, never from the text.
//!
//! ```
//! use p2pchat::wire::private::{direct, for_puller, read, Private};
//!
//! assert_eq!(direct(b"alice: hi"), b"(private) alice: hi\n");
//! let bob = "203.0.113.9:2225".parse().unwrap();
//! let line = for_puller(bob, b"alice: hi");
//! assert_eq!(line, b"(private for 203.0.113.9:2225) alice: hi\n");
//! assert_eq!(read(&line[..line.len() - 1]), Private::For(bob, b"alice: hi"));
//! assert_eq!(read(b"alice: hi"), Private::No);
//! ```

use std::fmt;
use std::net::SocketAddr;

use crate::net::canonical_ip;

/// What a private line to its addressee starts with.
pub const MARK: &[u8] = b"(private) ";
/// What a private line to a relay starts with, before the addressee.
pub const FOR: &[u8] = b"(private for ";
/// The longest addressee field: a scoped IPv6 address with a port.
pub const MAX_ADDRESS: usize = 64;
/// What the marks add to a line at most: a sender keeps its text this much under
/// the receiver's cap on a message.
pub const MAX_HEAD: usize = FOR.len() + MAX_ADDRESS + 2;

/// What a received line is.
#[derive(Debug, PartialEq, Eq)]
pub enum Private<'a> {
    /// An ordinary line.
    No,
    /// A private line for us: its text.
    Direct(&'a [u8]),
    /// A private line for the puller listed at this address: its text.
    For(SocketAddr, &'a [u8]),
    /// Meant to be private, but not of the form: dropped.
    Bad(Malformed),
}

/// Why a line that starts like a private one is not one.
#[derive(Debug, PartialEq, Eq)]
pub enum Malformed {
    /// `(private) ` with no text after it.
    Empty,
    /// `(private for ` without `) ` within [`MAX_ADDRESS`] bytes.
    Unclosed,
    /// The addressee is not `IP:PORT`; holds it, escaped.
    BadAddress(String),
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Empty => write!(f, "a private line with no text"),
            Malformed::Unclosed => write!(
                f,
                "\"(private for \" not followed by an address and \") \" within {MAX_ADDRESS} bytes"
            ),
            Malformed::BadAddress(a) => {
                write!(f, "the addressee \"{a}\" of a private line is not IP:PORT")
            }
        }
    }
}

/// `(private) TEXT\n`, for the addressee itself.
pub fn direct(text: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(MARK.len() + text.len() + 1);
    line.extend_from_slice(MARK);
    line.extend_from_slice(text);
    line.push(b'\n');
    line
}

/// `(private for IP:PORT) TEXT\n`, for a relay to pass to its puller at `to`.
pub fn for_puller(to: SocketAddr, text: &[u8]) -> Vec<u8> {
    let mut line = FOR.to_vec();
    line.extend_from_slice(to.to_string().as_bytes());
    line.extend_from_slice(b") ");
    line.extend_from_slice(text);
    line.push(b'\n');
    line
}

/// Reads one received line (without its line ending).
pub fn read(line: &[u8]) -> Private<'_> {
    if let Some(text) = line.strip_prefix(MARK) {
        return match text {
            [] => Private::Bad(Malformed::Empty),
            text => Private::Direct(text),
        };
    }
    let Some(rest) = line.strip_prefix(FOR) else {
        return Private::No;
    };
    let window = &rest[..rest.len().min(MAX_ADDRESS + 2)];
    let Some(end) = memchr::memmem::find(window, b") ") else {
        return Private::Bad(Malformed::Unclosed);
    };
    let field = &rest[..end];
    let Some(to) = std::str::from_utf8(field)
        .ok()
        .and_then(|t| t.parse::<SocketAddr>().ok())
    else {
        let shown = crate::text::escape_bytes(field).into_owned();
        return Private::Bad(Malformed::BadAddress(shown));
    };
    match &rest[end + 2..] {
        [] => Private::Bad(Malformed::Empty),
        text => Private::For(SocketAddr::new(canonical_ip(to.ip()), to.port()), text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_read_back() {
        assert_eq!(read(b"(private) bob: hi"), Private::Direct(b"bob: hi"));
        let v6: SocketAddr = "[2001:db8::1]:2224".parse().unwrap();
        let line = for_puller(v6, b"x");
        assert_eq!(line, b"(private for [2001:db8::1]:2224) x\n");
        assert_eq!(read(&line[..line.len() - 1]), Private::For(v6, b"x"));
        let worst = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535";
        assert!(worst.len() <= MAX_ADDRESS);
        let mapped = read(b"(private for [::ffff:10.0.0.1]:9) y");
        assert_eq!(
            mapped,
            Private::For("10.0.0.1:9".parse().unwrap(), b"y"),
            "as the list has it"
        );
    }

    #[test]
    fn ordinary_lines_are_not_private() {
        for line in [
            &b"alice: (private) hi"[..],
            b"(privately, I think)",
            b"(private)",
            b"(private)x",
            b"",
        ] {
            assert_eq!(
                read(line),
                Private::No,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn malformed_private_lines_say_why() {
        assert_eq!(read(b"(private) "), Private::Bad(Malformed::Empty));
        assert_eq!(
            read(b"(private for 1.2.3.4:5) "),
            Private::Bad(Malformed::Empty)
        );
        assert_eq!(
            read(b"(private for 1.2.3.4:5 x"),
            Private::Bad(Malformed::Unclosed)
        );
        let long = format!("(private for {}) x", "1".repeat(100));
        assert_eq!(read(long.as_bytes()), Private::Bad(Malformed::Unclosed));
        let Private::Bad(e) = read(b"(private for bob\x1b) hi") else {
            panic!("a name is no address");
        };
        assert_eq!(
            e.to_string(),
            "the addressee \"bob\\x1b\" of a private line is not IP:PORT"
        );
        assert_eq!(
            read(b"(private for 1.2.3.4) hi"),
            Private::Bad(Malformed::BadAddress("1.2.3.4".into()))
        );
    }
}
