//! What the relay adds to the wire: the `<relay>` element of a peer entry, the
//! `cannot reach` complaint a servant sends the manager, and the `pull` line a
//! servant behind a port-blocking router opens its relay connection with.
//!
//! The article's last section sketches it: servants report the peers they cannot
//! contact; the manager decides which servant is behind a port-blocking router
//! and tells it to pull from a chosen peer, which publishes to it everything it
//! gets. `docs/RELAY.md` has the whole design; `docs/PROTOCOL.md` the bytes.
//!
//! ```
//! use p2pchat::wire::relay::{cannot_reach, parse_pull, pull_line};
//!
//! let relayed = "203.0.113.1:2226".parse().unwrap();
//! assert_eq!(cannot_reach(relayed), b"cannot reach 203.0.113.1:2226\n");
//! assert_eq!(parse_pull(&pull_line(relayed)[..]), Some(relayed));
//! ```

use std::net::SocketAddr;

use super::render::{push_ip, push_number};
use crate::xml::Element;

/// A complaint starts with this; the rest of the line is the peer's `IP:PORT`.
pub const CANNOT_REACH: &[u8] = b"cannot reach ";
/// What a servant that forwards to pullers tells the manager once per link.
pub const CAN_RELAY: &[u8] = b"can relay";
const TAMPERED: &[u8] = b"tampered ";
/// A pull connection's first line starts with this; the rest is the puller's own
/// `IP:PORT` as the peer document lists it.
const PULL: &[u8] = b"pull ";

/// What the manager says about a servant behind a port-blocking router, inside its
/// `<peer>` entry after `<me>`: the peer it pulls from, or that none can relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relay {
    /// `<relay><ip>A</ip><port>P</port></relay>`: pulls from the servant listening there.
    Via(SocketAddr),
    /// `<relay>none</relay>`: relayed, but no peer is eligible to relay for it now.
    Nobody,
}

/// The word `<relay>` holds when no peer can relay.
const NOBODY: &str = "none";

/// Appends the `<relay>` element for `relay`, as the manager renders it.
pub(crate) fn render(out: &mut Vec<u8>, relay: Relay) {
    match relay {
        Relay::Via(addr) => {
            out.extend_from_slice(b"<relay><ip>");
            push_ip(out, addr.ip());
            out.extend_from_slice(b"</ip><port>");
            push_number(out, addr.port() as usize);
            out.extend_from_slice(b"</port></relay>");
        }
        Relay::Nobody => {
            out.extend_from_slice(b"<relay>");
            out.extend_from_slice(NOBODY.as_bytes());
            out.extend_from_slice(b"</relay>");
        }
    }
}

/// Reads a `<peer>`'s `<relay>` child, if it has one; the error says what is wrong.
pub(crate) fn read(peer: &Element) -> Result<Option<Relay>, String> {
    let Some(el) = peer.child("relay") else {
        return Ok(None);
    };
    if el.children.is_empty() {
        return match el.value() {
            v if v.eq_ignore_ascii_case(NOBODY) => Ok(Some(Relay::Nobody)),
            v => Err(format!(
                "<relay> must hold <ip> and <port>, or none, not {:?}",
                crate::xml::clip(v, 20)
            )),
        };
    }
    let field = |name: &str| {
        el.child(name)
            .map(|e| e.value())
            .ok_or_else(|| format!("<relay> has no <{name}>"))
    };
    let ip = field("ip")?;
    let ip: std::net::IpAddr = ip.parse().map_err(|_| {
        format!(
            "<relay><ip> is not an IP address: {:?}",
            crate::xml::clip(ip, 60)
        )
    })?;
    let port = field("port")?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| {
            format!(
                "<relay><port> is not a port number: {:?}",
                crate::xml::clip(port, 20)
            )
        })?;
    Ok(Some(Relay::Via(SocketAddr::new(
        crate::net::canonical_ip(ip),
        port,
    ))))
}

/// `cannot reach IP:PORT\n`: what a servant tells the manager about a peer it could
/// not deliver to.
pub fn cannot_reach(peer: SocketAddr) -> Vec<u8> {
    format!("cannot reach {peer}\n").into_bytes()
}

/// The peer named by a complaint line (without its line ending), if it is one.
pub fn parse_cannot_reach(line: &[u8]) -> Option<SocketAddr> {
    parse_addr(line.strip_prefix(CANNOT_REACH)?)
}

/// `tampered IP:PORT\n`: a puller's report that frames from its relay at that
/// address did not open (docs/PRIVATE.md#relays); the manager probes that relay at once.
pub fn tampered(relay: SocketAddr) -> Vec<u8> {
    format!("tampered {relay}\n").into_bytes()
}

/// The relay a `tampered IP:PORT` line (without its line ending) reports.
pub fn parse_tampered(line: &[u8]) -> Option<SocketAddr> {
    parse_addr(line.strip_prefix(TAMPERED)?)
}

/// `pull IP:PORT\n`: the first line of a connection to a relay, naming the puller
/// by its entry in the peer document.
pub fn pull_line(me: SocketAddr) -> Vec<u8> {
    format!("pull {me}\n").into_bytes()
}

/// The puller named by a connection's first line (without its line ending), if it
/// is a pull.
pub fn parse_pull(line: &[u8]) -> Option<SocketAddr> {
    parse_addr(line.strip_prefix(PULL)?)
}

fn parse_addr(text: &[u8]) -> Option<SocketAddr> {
    let addr: SocketAddr = std::str::from_utf8(text).ok()?.trim().parse().ok()?;
    Some(SocketAddr::new(
        crate::net::canonical_ip(addr.ip()),
        addr.port(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_reject_look_alikes() {
        let v6: SocketAddr = "[2001:db8::1]:2224".parse().unwrap();
        assert_eq!(
            parse_cannot_reach(b"cannot reach [2001:db8::1]:2224"),
            Some(v6)
        );
        assert_eq!(parse_cannot_reach(b"cannot reach 1.2.3.4"), None);
        assert_eq!(parse_cannot_reach(b"cannot reach you"), None);
        let relay = "203.0.113.7:2230".parse().unwrap();
        let line = tampered(relay);
        assert_eq!(parse_tampered(&line[..line.len() - 1]), Some(relay));
        assert_eq!(parse_tampered(b"tampered nobody"), None);
        assert_eq!(parse_pull(b"pull me"), None);
        assert_eq!(parse_pull(b"pulled 1.2.3.4:5"), None);
        let mapped = parse_pull(b"pull [::ffff:198.51.100.2]:9").unwrap();
        assert_eq!(mapped, "198.51.100.2:9".parse().unwrap());
    }

    #[test]
    fn relay_elements_read_back() {
        let read_doc = |inner: &str| {
            let root = crate::xml::parse(&format!("<peer>{inner}</peer>")).unwrap();
            read(&root)
        };
        assert_eq!(read_doc("<me>FALSE</me>"), Ok(None));
        assert_eq!(read_doc("<relay>none</relay>"), Ok(Some(Relay::Nobody)));
        assert_eq!(
            read_doc("<relay><ip>203.0.113.10</ip><port>2224</port></relay>"),
            Ok(Some(Relay::Via("203.0.113.10:2224".parse().unwrap())))
        );
        assert!(read_doc("<relay>maybe</relay>")
            .unwrap_err()
            .contains("none"));
        assert!(read_doc("<relay><ip>x</ip><port>1</port></relay>")
            .unwrap_err()
            .contains("<ip>"));
        assert!(read_doc("<relay><ip>1.2.3.4</ip></relay>")
            .unwrap_err()
            .contains("no <port>"));
    }
}
