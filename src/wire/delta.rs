//! The answers a servant gets when it says which version of the list it has
//! (`needs peer list since N`), and how it keeps its list by them:
//!
//! - `<peers version="N">...</peers>\r\n`: the whole document, with its version
//!   (a cluster of managers says `E.N`: [`Version`] is opaque to the servant);
//! - `<unchanged version="N"/>\r\n`: nothing changed since N;
//! - `<delta from="N" to="M">...</delta>\r\n`: what changed from N to M, in order:
//!   `<left>OFFSET</left>` (that entry is gone), `<changed><peer>...</peer></changed>`
//!   (that offset's entry re-rendered in place, e.g. a new `<relay>`), and
//!   `<peer>...</peer>` (joined: appended, as in the document).
//!
//! Entries are the document's bytes, everything after `<me>` included, with `<me>`
//! FALSE: a delta is shared by every servant at version N, so each keeps `me` on
//! its own entry itself. None of these contains `</peers>` but the whole document,
//! so a reader that frames documents by it is never confused. A bare
//! `needs peer list` still gets the article's document, without a version.
//! [`super::history`] is the manager's side.

mod version;

use quick_xml::events::Event;

pub use version::Version;

use super::peers::{document_end, read_peers, Peer};
use crate::xml::{self, Element, XmlError};

pub(super) const LEFT: &[u8] = b"<left>";
pub(super) const LEFT_END: &[u8] = b"</left>";
pub(super) const CHANGED: &[u8] = b"<changed>";
pub(super) const CHANGED_END: &[u8] = b"</changed>";
const CLOSE: &[u8] = b"</delta>\r\n";

/// `<unchanged version="N"/>\r\n`.
pub fn unchanged(version: u64) -> Vec<u8> {
    let mut out = b"<unchanged version=\"".to_vec();
    super::version::push(&mut out, version);
    out.extend_from_slice(b"\"/>\r\n");
    out
}

pub(super) fn open(out: &mut Vec<u8>, from: u64, to: u64) {
    out.extend_from_slice(b"<delta from=\"");
    super::version::push(out, from);
    out.extend_from_slice(b"\" to=\"");
    super::version::push(out, to);
    out.extend_from_slice(b"\">");
}

pub(super) fn close(out: &mut Vec<u8>) {
    out.extend_from_slice(CLOSE);
}

/// Where the first complete answer in `buf` ends, `buf` starting at its `<`: a
/// document (framed by `</peers>` as always), a delta, or an unchanged.
pub fn answer_end(buf: &[u8]) -> Option<usize> {
    let name_len = (buf.get(1..)?)
        .iter()
        .position(|b| b.is_ascii_whitespace() || matches!(b, b'/' | b'>'))?;
    let tag_end = || memchr::memchr(b'>', buf).map(|p| p + 1);
    match &buf[1..1 + name_len] {
        b"unchanged" => tag_end(),
        b"delta" => match tag_end()? {
            at if buf[at - 2] == b'/' => Some(at),
            _ => memchr::memmem::find(buf, b"</delta>").map(|p| p + 8),
        },
        _ => document_end(buf),
    }
}

/// An answer's kind and versions, as its opening tag says them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// A whole document, with its version if it has one.
    Whole(Option<u64>),
    Unchanged(u64),
    Delta {
        from: u64,
        to: u64,
    },
}

/// Reads an answer's opening tag only, for a reader that follows versions without
/// reading the lists (churn, at ten thousand servants). None: not an answer.
pub fn read_head(answer: &[u8]) -> Option<Head> {
    let answer = answer.trim_ascii_start();
    let tag = &answer[..memchr::memchr(b'>', answer)?];
    let number = |name: &[u8]| {
        let at = memchr::memmem::find(tag, name)? + name.len();
        let digits = &tag[at..];
        let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&digits[..n]).ok()?.parse().ok()
    };
    if tag.starts_with(b"<peers") {
        Some(Head::Whole(number(b" version=\"")))
    } else if tag.starts_with(b"<unchanged") {
        number(b" version=\"").map(Head::Unchanged)
    } else if tag.starts_with(b"<delta") {
        let (from, to) = (number(b" from=\"")?, number(b" to=\"")?);
        Some(Head::Delta { from, to })
    } else {
        None
    }
}

/// One change in a delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The entry at this offset left.
    Left(usize),
    /// The entry at its offset is re-rendered in place.
    Changed(Peer),
    /// A newcomer, appended.
    Joined(Peer),
}

/// `<delta from to>`: the changes that take a list at `from` to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub from: Version,
    pub to: Version,
    pub ops: Vec<Op>,
}

/// One answer from the manager, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The whole document; its version if it carried one (a bare `needs peer
    /// list`, or a manager that knows no versions, gets none).
    Whole {
        version: Option<Version>,
        peers: Vec<Peer>,
    },
    Delta(Delta),
    Unchanged(Version),
}

/// The names an answer carries, by address: every `<peer>` of a whole document,
/// and of a delta's joins and changes (`None`: that entry has no name now).
/// Malformed answers carry none; [`parse`] says why.
pub fn names(text: &str) -> Vec<(std::net::SocketAddr, Option<String>)> {
    let Ok(root) = xml::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let parents = std::iter::once(&root).chain(root.children_named("changed"));
    for parent in parents {
        if let Ok((peers, names)) = read_peers(parent) {
            out.extend(peers.iter().map(Peer::addr).zip(names));
        }
    }
    out
}

/// Reads one framed answer, checking every field.
pub fn parse(text: &str) -> Result<Answer, XmlError> {
    let root = xml::parse(text)?;
    let bad = |line: usize, reason: String| XmlError {
        line,
        column: 1,
        reason,
    };
    let attrs = root_versions(text).map_err(|reason| bad(root.line, reason))?;
    let attr = |name: &str| {
        attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
            .ok_or_else(|| {
                bad(
                    root.line,
                    format!("<{}> has no {name}=\"N\" attribute", root.name),
                )
            })
    };
    match root.name.as_str() {
        "peers" => Ok(Answer::Whole {
            version: attr("version").ok(),
            peers: read_peers(&root)?.0,
        }),
        "unchanged" => Ok(Answer::Unchanged(attr("version")?)),
        "delta" => {
            let (from, to) = (attr("from")?, attr("to")?);
            // Versions are opaque, but two of one history still go forward.
            let forward = match (from.count(), to.count()) {
                (Some((e, m)), Some((f, n))) if e == f => n > m,
                _ => from != to,
            };
            if !forward {
                return Err(bad(
                    root.line,
                    format!("<delta> goes from {from} back to {to}"),
                ));
            }
            let ops = root
                .children
                .iter()
                .map(|c| read_op(c).map_err(|reason| bad(c.line, reason)))
                .collect::<Result<_, _>>()?;
            Ok(Answer::Delta(Delta { from, to, ops }))
        }
        other => Err(bad(
            root.line,
            format!("expected <peers>, <delta> or <unchanged>, found <{other}>"),
        )),
    }
}

fn read_op(el: &Element) -> Result<Op, String> {
    let one_peer = |parent: &Element| -> Result<Peer, String> {
        let mut peers = read_peers(parent).map_err(|e| e.reason)?.0;
        match (peers.pop(), peers.is_empty()) {
            (Some(p), true) => Ok(p),
            _ => Err(format!("<{}> must hold one <peer>", parent.name)),
        }
    };
    match el.name.as_str() {
        "left" => el
            .value()
            .parse()
            .map(Op::Left)
            .map_err(|_| format!("<left> is not an offset: {:?}", xml::clip(el.value(), 20))),
        "changed" => one_peer(el).map(Op::Changed),
        "peer" => {
            let wrapper = Element {
                name: "peer".into(),
                text: String::new(),
                children: vec![el.clone()],
                line: el.line,
            };
            one_peer(&wrapper).map(Op::Joined)
        }
        other => Err(format!("a <delta> holds no <{other}>")),
    }
}

/// The root element's attributes, each a version (all the answers have).
fn root_versions(text: &str) -> Result<Vec<(String, Version)>, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) | Event::Empty(e) => {
                let mut out = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| e.to_string())?;
                    let name = a.key.as_ref().to_string();
                    let value = Version::parse(&a.value).map_err(|e| format!("{name}= {e}"))?;
                    out.push((name, value));
                }
                return Ok(out);
            }
            Event::Eof => return Ok(Vec::new()),
            _ => {}
        }
    }
}

impl Delta {
    /// Applies the changes, in order, to `peers` (a list at version `from`). A
    /// change that does not fit the list (an offset it does not hold, a newcomer
    /// at an offset it does) is an error, and `peers` is left part-way: apply to
    /// a copy. `me` stays where it was.
    pub fn apply(&self, peers: &mut Vec<Peer>) -> Result<(), String> {
        let find = |peers: &[Peer], offset: usize| peers.iter().position(|p| p.offset == offset);
        for op in &self.ops {
            match op {
                Op::Left(offset) => match find(peers, *offset) {
                    Some(k) => drop(peers.remove(k)),
                    None => return Err(format!("offset {offset} left, but the list has none")),
                },
                Op::Changed(p) => match find(peers, p.offset) {
                    Some(k) => {
                        let me = peers[k].me;
                        peers[k] = Peer { me, ..p.clone() };
                    }
                    None => {
                        return Err(format!(
                            "offset {} changed, but the list has none",
                            p.offset
                        ))
                    }
                },
                Op::Joined(p) if find(peers, p.offset).is_some() => {
                    return Err(format!("offset {} joined, but the list has one", p.offset))
                }
                Op::Joined(p) => peers.push(p.clone()),
            }
        }
        Ok(())
    }
}

/// Brings `peers`, at `version` (None: unknown), up to date with `answer`, and
/// returns the new version; an answer that does not follow from this version (a
/// gap) or does not apply is an error, and then `peers` may be left part-way.
pub fn update(
    peers: &mut Vec<Peer>,
    version: Option<Version>,
    answer: Answer,
) -> Result<Option<Version>, String> {
    match answer {
        Answer::Whole {
            version,
            peers: all,
        } => {
            *peers = all;
            Ok(version)
        }
        Answer::Unchanged(v) if version == Some(v) => Ok(version),
        Answer::Unchanged(v) => Err(format!(
            "unchanged at version {v}, but the list is at {}",
            shown(version)
        )),
        Answer::Delta(d) if version != Some(d.from) => Err(format!(
            "a delta from version {}, but the list is at {}",
            d.from,
            shown(version)
        )),
        Answer::Delta(d) => d.apply(peers).map(|()| Some(d.to)),
    }
}

fn shown(version: Option<Version>) -> String {
    version.map_or_else(|| "no version".into(), |v| v.to_string())
}

/// A peer as a delta test writes it (the servant's side does not render).
#[cfg(test)]
pub(crate) fn peer(ip: &str, port: u16, offset: usize) -> Peer {
    Peer {
        ip: ip.parse::<std::net::IpAddr>().unwrap(),
        port,
        offset,
        me: false,
        relay: None,
        key: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::history::Since;
    use crate::wire::peerdoc::{self, PeerDoc};
    use crate::wire::relay::Relay;

    fn v(n: u64) -> Version {
        n.into()
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn answers_frame_by_their_own_root() {
        let delta = b"<delta from=\"1\" to=\"2\"><left>1</left></delta>\r\n<unch";
        assert_eq!(answer_end(delta), Some(delta.len() - 7));
        assert_eq!(answer_end(b"<unchanged version=\"5\"/>\r\n"), Some(24));
        assert_eq!(answer_end(b"<unchanged version=\"5\""), None);
        assert_eq!(answer_end(b"<delt"), None);
        assert_eq!(
            answer_end(b""),
            None,
            "nothing yet is no answer, not a panic"
        );
        assert_eq!(answer_end(b"<delta from=\"1\" to=\"2\"><left>"), None);
        assert_eq!(answer_end(b"<delta from=\"1\" to=\"2\"/>"), Some(24));
        let doc = b"<peers version=\"3\"></peers>\r\n";
        assert_eq!(answer_end(doc), Some(doc.len() - 2));
        assert_eq!(answer_end(b"<peers/>"), Some(8));
    }

    #[test]
    fn heads_read_without_the_rest() {
        assert_eq!(read_head(b"<peers><peer>"), Some(Head::Whole(None)));
        assert_eq!(
            read_head(b"\r\n<peers version=\"12\"><peer>"),
            Some(Head::Whole(Some(12)))
        );
        assert_eq!(read_head(&unchanged(7)), Some(Head::Unchanged(7)));
        let delta = b"<delta from=\"3\" to=\"9\"><left>1</left></delta>";
        assert_eq!(read_head(delta), Some(Head::Delta { from: 3, to: 9 }));
        assert_eq!(read_head(b"<delta to=\"9\">"), None);
        assert_eq!(read_head(b"max number of servants reached"), None);
    }

    #[test]
    fn a_whole_document_reads_with_and_without_its_version() {
        let mut d = PeerDoc::new();
        d.add("127.0.0.1".parse().unwrap(), 2224, 1);
        let versioned = d.render_versioned_for(1);
        let Answer::Whole { version, peers } = parse(text(&versioned)).unwrap() else {
            panic!()
        };
        assert_eq!((version, peers.len(), peers[0].me), (Some(v(1)), 1, true));
        let bare = parse(text(&d.render_for(1))).unwrap();
        assert!(matches!(bare, Answer::Whole { version: None, .. }));
        assert_eq!(parse(text(&unchanged(7))).unwrap(), Answer::Unchanged(v(7)));
    }

    #[test]
    fn a_delta_carries_every_element_of_an_entry_and_keeps_me() {
        let ip = |s: &str| s.parse().unwrap();
        let mut d = PeerDoc::new();
        d.add(ip("127.0.0.1"), 2224, 1);
        d.add(ip("127.0.0.2"), 2225, 2);
        d.add(ip("127.0.0.4"), 2227, 4);
        let n = d.version();
        let mut mine = peerdoc::parse(text(&d.render_for(2))).unwrap();
        let relay = Relay::Via("127.0.0.1:2224".parse().unwrap());
        d.set_relay(2, Some(relay));
        d.add(ip("127.0.0.3"), 2226, 3);
        d.remove(1);
        let Since::Delta(bytes) = d.since(n) else {
            panic!()
        };
        let Answer::Delta(delta) = parse(text(&bytes)).unwrap() else {
            panic!()
        };
        assert_eq!((delta.from, delta.to), (v(n), v(n + 3)));
        let mut relayed = peer("127.0.0.2", 2225, 2);
        relayed.relay = Some(relay);
        assert_eq!(
            delta.ops,
            [
                Op::Left(1),
                Op::Changed(relayed),
                Op::Joined(peer("127.0.0.3", 2226, 3))
            ]
        );
        assert_eq!(
            update(&mut mine, Some(v(n)), Answer::Delta(delta)),
            Ok(Some(v(n + 3)))
        );
        assert_eq!(mine, peerdoc::parse(text(&d.render_for(2))).unwrap());
        assert!(mine[0].me && mine[0].relay == Some(relay) && mine[2].port == 2226);
    }

    #[test]
    fn what_does_not_follow_is_refused() {
        let mut peers = vec![peer("127.0.0.1", 2224, 1)];
        let delta = |from: u64, ops| {
            Answer::Delta(Delta {
                from: v(from),
                to: v(from + 1),
                ops,
            })
        };
        let gap = update(&mut peers, Some(v(4)), delta(3, vec![]));
        assert!(gap.unwrap_err().contains("from version 3"));
        let unknown = update(&mut peers, Some(v(4)), delta(4, vec![Op::Left(9)]));
        assert!(unknown.unwrap_err().contains("offset 9 left"));
        let twice = update(
            &mut peers,
            Some(v(4)),
            delta(4, vec![Op::Joined(peer("127.0.0.2", 2225, 1))]),
        );
        assert!(twice.unwrap_err().contains("has one"));
        let changed = update(
            &mut peers,
            Some(v(4)),
            delta(4, vec![Op::Changed(peer("127.0.0.2", 2225, 5))]),
        );
        assert!(changed.unwrap_err().contains("offset 5 changed"));
        assert!(update(&mut peers, None, Answer::Unchanged(v(4))).is_err());
        assert_eq!(
            update(&mut peers, Some(v(4)), Answer::Unchanged(v(4))),
            Ok(Some(v(4)))
        );
    }

    #[test]
    fn malformed_answers_name_what_is_wrong() {
        let e = |t: &str| parse(t).unwrap_err().reason;
        assert!(e("<delta to=\"2\"></delta>").contains("from="));
        assert!(e("<delta from=\"x\" to=\"2\"></delta>").contains("from= a version"));
        assert!(e("<delta from=\"1.2\" to=\"1.2\"></delta>").contains("back to"));
        assert!(e("<delta from=\"3\" to=\"2\"></delta>").contains("back to"));
        assert!(e("<delta from=\"1\" to=\"2\"><left>me</left></delta>").contains("<left>"));
        assert!(e("<delta from=\"1\" to=\"2\"><joined/></delta>").contains("no <joined>"));
        assert!(e("<delta from=\"1\" to=\"2\"><changed></changed></delta>").contains("one <peer>"));
        assert!(e("<delta from=\"1\" to=\"2\"><peer><ip>x</ip></peer></delta>").contains("<ip>"));
        assert!(e("<unchanged/>").contains("version="));
        assert!(e(&format!("<unchanged version=\"{}\"/>", "1".repeat(41))).contains("version="));
        assert!(e("<nothing/>").contains("expected"));
    }

    #[test]
    fn cluster_versions_are_read_and_compared_as_tokens() {
        let e = "00c0ffee12345678";
        let delta = format!("<delta from=\"{e}.4\" to=\"{e}.5\"><left>2</left></delta>\r\n");
        let Answer::Delta(d) = parse(&delta).unwrap() else {
            panic!()
        };
        assert_eq!(d.from.to_string(), format!("{e}.4"));
        let mut peers = vec![peer("127.0.0.1", 2224, 1), peer("127.0.0.1", 2225, 2)];
        let at = |s: &str| Some(Version::parse(s).unwrap());
        // A plain 4 is another history than E.4: a gap, not a delta to apply.
        let gap = update(&mut peers.clone(), Some(v(4)), Answer::Delta(d.clone()));
        assert!(gap.is_err());
        let to = update(&mut peers, at(&format!("{e}.4")), Answer::Delta(d));
        assert_eq!(to, Ok(at(&format!("{e}.5"))));
        assert_eq!(peers.len(), 1);
        let doc = format!("<peers version=\"{e}.9\"></peers>\r\n");
        assert!(
            matches!(parse(&doc), Ok(Answer::Whole { version, .. }) if version == at(&format!("{e}.9")))
        );
        let same = parse(&format!("<unchanged version=\"{e}.9\"/>")).unwrap();
        assert_eq!(
            update(&mut peers, at(&format!("{e}.9")), same),
            Ok(at(&format!("{e}.9")))
        );
    }
}
