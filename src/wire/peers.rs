//! The peer document as a servant reads it: each `<peer>` checked field by field
//! into a [`Peer`], names beside them, and documents framed by their closing tag.
//! [`super::peerdoc`] is the manager's side, which renders it.

use std::net::IpAddr;

use super::relay::Relay;
use super::{key, name, relay};
use crate::noise::PublicKey;
use crate::xml::{self, Element, XmlError};

/// One `<peer>` as a servant reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub ip: IpAddr,
    pub port: u16,
    pub offset: usize,
    pub me: bool,
    /// Behind a port-blocking router: reached only through its relay, if any.
    pub relay: Option<Relay>,
    /// Its public key, listed by a private network's manager ([`super::key`]).
    pub key: Option<PublicKey>,
}

impl Peer {
    /// The address it listens on, as listed.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.ip, self.port)
    }
}

/// Reads a peer document, checking every field; errors name the line and field.
pub fn parse(doc: &str) -> Result<Vec<Peer>, XmlError> {
    parse_named(doc).map(|(peers, _)| peers)
}

/// Like [`parse`], with each peer's `<name>` beside it (`None` when it has none, or
/// one that fails [`name::check`]: a bad name costs the name, not the list).
pub fn parse_named(doc: &str) -> NamedPeers {
    let root = xml::parse(doc)?;
    if root.name != "peers" {
        return Err(XmlError {
            line: root.line,
            column: 1,
            reason: format!("expected <peers>, found <{}>", root.name),
        });
    }
    read_peers(&root)
}

/// Reads the `<peer>` children of a document (or of a delta's element), with each
/// one's `<name>` beside it.
pub(super) fn read_peers(root: &Element) -> NamedPeers {
    let bad = |line: usize, reason: String| XmlError {
        line,
        column: 1,
        reason,
    };
    let mut peers = Vec::with_capacity(root.children.len());
    let mut names = Vec::with_capacity(root.children.len());
    for p in root.children_named("peer") {
        let field = |name: &str| {
            p.child(name)
                .map(|e| e.value())
                .ok_or_else(|| bad(p.line, format!("<peer> has no <{name}>")))
        };
        let ip = field("ip")?;
        let ip: IpAddr = ip.parse().map_err(|_| {
            bad(
                p.line,
                format!("<ip> is not an IP address: {:?}", xml::clip(ip, 60)),
            )
        })?;
        let port = field("port")?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| {
                bad(
                    p.line,
                    format!("<port> is not a port number: {:?}", xml::clip(port, 20)),
                )
            })?;
        let offset = field("offset")?;
        let offset = offset.parse().map_err(|_| {
            bad(
                p.line,
                format!("<offset> is not a number: {:?}", xml::clip(offset, 20)),
            )
        })?;
        let me = match p.child("me").map(|e| e.value()) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(bad(
                    p.line,
                    format!("<me> must be TRUE or FALSE, not {:?}", xml::clip(v, 20)),
                ))
            }
        };
        let relay = relay::read(p).map_err(|reason| bad(p.line, reason))?;
        let key = key::read(p).map_err(|reason| bad(p.line, reason))?;
        peers.push(Peer {
            ip: crate::net::canonical_ip(ip),
            port,
            offset,
            me,
            relay,
            key,
        });
        names.push(name::read(p));
    }
    Ok((peers, names))
}

/// Peers and, beside each, its `<name>` if it has a good one.
pub type NamedPeers = Result<(Vec<Peer>, Vec<Option<String>>), XmlError>;

/// Where the first complete document in `buf` ends (just past `</peers>`), if any.
/// Documents are not length-prefixed on the wire; the closing tag frames them.
pub fn document_end(buf: &[u8]) -> Option<usize> {
    const CLOSE: &[u8] = b"</peers>";
    const EMPTY: &[u8] = b"<peers/>";
    // SIMD search: a servant rescans a partly-read document of up to ~1 MB per read.
    let close = memchr::memmem::find(buf, CLOSE).map(|p| p + CLOSE.len());
    let empty = memchr::memmem::find(buf, EMPTY).map(|p| p + EMPTY.len());
    match (close, empty) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_names_the_bad_field() {
        let e =
            parse("<peers>\n<peer><ip>nope</ip><port>1</port><offset>1</offset></peer></peers>")
                .unwrap_err();
        assert!(e.reason.contains("<ip>") && e.line == 2, "{e}");
        let e = parse(
            "<peers><peer><ip>1.2.3.4</ip><port>70000</port><offset>1</offset></peer></peers>",
        )
        .unwrap_err();
        assert!(e.reason.contains("<port>"), "{e}");
        let e = parse("<peers><peer><ip>1.2.3.4</ip><port>1</port></peer></peers>").unwrap_err();
        assert!(e.reason.contains("no <offset>"), "{e}");
        let e = parse("<peer/>").unwrap_err();
        assert!(e.reason.contains("expected <peers>"), "{e}");
        let e = parse("<peers><peer><ip>1.2.3.4</ip><port>1</port><offset>1</offset><me>yes</me></peer></peers>").unwrap_err();
        assert!(e.reason.contains("TRUE or FALSE"), "{e}");
    }

    #[test]
    fn parse_shows_mapped_addresses_as_ipv4() {
        let peers = parse("<peers><peer><ip>::ffff:10.0.0.1</ip><port>9</port><offset>4</offset><me>TRUE</me></peer></peers>").unwrap();
        assert_eq!(peers[0].ip, ip("10.0.0.1"));
        assert!(peers[0].me);
    }

    #[test]
    fn frames_documents_by_their_closing_tag() {
        assert_eq!(document_end(b"<peers><peer>"), None);
        assert_eq!(document_end(b"<peers></peers>\r\n<peers>"), Some(15));
        assert_eq!(document_end(b"<peers/><peers></peers>"), Some(8));
    }
}
