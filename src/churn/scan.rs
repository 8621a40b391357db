//! A linear-time check of a peer document as the manager renders it, for checking
//! every answer at load-generator speed.
//!
//! [`crate::wire::peerdoc::parse`] reads any well-formed document (whitespace,
//! entities, any field order) through a general XML parser, and costs time
//! quadratic in the document's size (it computes a line number per event from the
//! start of the input); at thousands of peers that would make churn measure itself.
//! This reads the manager's exact shape, one pass, and is cross-checked against
//! `parse` in the tests.

use std::net::{IpAddr, SocketAddr};

/// What a document says: every peer's address, and which one is the asker.
#[derive(Debug, PartialEq, Eq)]
pub struct Scanned {
    pub peers: Vec<SocketAddr>,
    /// Index in `peers` of the one entry with `<me>TRUE</me>`.
    pub me: usize,
}

/// Checks `doc` (through `</peers>`) and reads it; errors say what is wrong.
pub fn scan(doc: &[u8]) -> Result<Scanned, String> {
    let text = std::str::from_utf8(doc).map_err(|_| "the document is not UTF-8".to_string())?;
    let body = strip_head(text)
        .and_then(|t| t.strip_suffix("</peers>"))
        .ok_or_else(|| format!("not <peers>...</peers>: {:?}", clip(text)))?;
    let mut peers = Vec::new();
    let mut me = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let entry = rest
            .strip_prefix("<peer>")
            .and_then(|r| r.split_once("</peer>"))
            .ok_or_else(|| {
                format!(
                    "peer {}: not <peer>...</peer>: {:?}",
                    peers.len() + 1,
                    clip(rest)
                )
            })?;
        let (fields, after) = entry;
        rest = after;
        let n = peers.len() + 1;
        let (ip, f) = field(fields, "ip").ok_or_else(|| format!("peer {n}: no <ip>"))?;
        let (port, f) = field(f, "port").ok_or_else(|| format!("peer {n}: no <port>"))?;
        let (offset, f) = field(f, "offset").ok_or_else(|| format!("peer {n}: no <offset>"))?;
        let (flag, mut f) = field(f, "me").ok_or_else(|| format!("peer {n}: no <me>"))?;
        // What an entry may carry after `<me>`, in this order; churn needs none.
        for optional in ["relay", "name", "key"] {
            if let Some((_, after)) = field(f, optional) {
                f = after;
            }
        }
        if !f.is_empty() {
            return Err(format!("peer {n}: unexpected {:?}", clip(f)));
        }
        let ip: IpAddr = ip.parse().map_err(|_| format!("peer {n}: <ip> {ip:?}"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("peer {n}: <port> {port:?}"))?;
        offset
            .parse::<usize>()
            .map_err(|_| format!("peer {n}: <offset> {offset:?}"))?;
        match flag {
            "TRUE" => me.push(peers.len()),
            "FALSE" => {}
            other => return Err(format!("peer {n}: <me> {other:?}")),
        }
        peers.push(SocketAddr::new(crate::reactor::canonical_ip(ip), port));
    }
    match me[..] {
        [one] => Ok(Scanned { peers, me: one }),
        _ => Err(format!(
            "{} entries have <me>TRUE</me>, not 1, among {} peers",
            me.len(),
            peers.len()
        )),
    }
}

/// `<name>value</name>` at the start of `s`: the value and what follows.
/// The document after its opening tag: `<peers>`, or `<peers version="N">` for an
/// asker that said which version it has.
fn strip_head(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix("<peers>") {
        return Some(rest);
    }
    let (digits, rest) = text.strip_prefix("<peers version=\"")?.split_once("\">")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(rest)
}

fn field<'a>(s: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let s = s.strip_prefix('<')?.strip_prefix(name)?.strip_prefix('>')?;
    let end = s.find("</")?;
    let after = s[end + 2..].strip_prefix(name)?.strip_prefix('>')?;
    Some((&s[..end], after))
}

fn clip(s: &str) -> String {
    crate::xml::clip(s, 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::peerdoc::{self, PeerDoc};

    #[test]
    fn agrees_with_the_project_parser() {
        let mut d = PeerDoc::new();
        d.add("127.0.0.1".parse().unwrap(), 2224, 1);
        d.add("::1".parse().unwrap(), 2225, 3);
        d.add("10.0.0.9".parse().unwrap(), 65535, 2);
        for asker in [1, 2, 3] {
            let bytes = d.render_for(asker);
            let doc = &bytes[..bytes.len() - 2]; // without the CRLF
            let got = scan(doc).unwrap();
            let want = peerdoc::parse(std::str::from_utf8(doc).unwrap()).unwrap();
            let addrs: Vec<SocketAddr> =
                want.iter().map(|p| SocketAddr::new(p.ip, p.port)).collect();
            assert_eq!(got.peers, addrs);
            assert!(want[got.me].me && want[got.me].offset == asker);
        }
    }

    #[test]
    fn reads_a_private_managers_entries() {
        let doc = b"<peers><peer><ip>1.2.3.4</ip><port>5</port><offset>1</offset><me>TRUE</me>\
<name>alice</name><key>hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=</key></peer></peers>";
        assert_eq!(scan(doc).unwrap().me, 0);
        let reordered =
            b"<peers><peer><ip>1.2.3.4</ip><port>5</port><offset>1</offset><me>TRUE</me>\
<key>k</key><name>alice</name></peer></peers>";
        assert!(scan(reordered).unwrap_err().contains("unexpected"));
    }

    #[test]
    fn names_what_is_wrong() {
        let e = scan(b"<peers></peers>").unwrap_err();
        assert!(e.contains("0 entries"), "{e}");
        let two =
            b"<peers><peer><ip>1.2.3.4</ip><port>5</port><offset>1</offset><me>TRUE</me></peer>\
<peer><ip>1.2.3.4</ip><port>6</port><offset>2</offset><me>TRUE</me></peer></peers>";
        assert!(scan(two).unwrap_err().contains("2 entries"));
        let bad_port = b"<peers><peer><ip>1.2.3.4</ip><port>0</port><offset>1</offset><me>TRUE</me></peer></peers>";
        assert!(scan(bad_port).unwrap_err().contains("<port>"));
        let missing =
            b"<peers><peer><ip>1.2.3.4</ip><offset>1</offset><me>TRUE</me></peer></peers>";
        assert!(scan(missing).unwrap_err().contains("no <port>"));
        assert!(scan(b"max number of servants reached")
            .unwrap_err()
            .contains("not <peers>"));
    }
}
