//! A servant's name on the wire: the `name NAME` line a servant tells the manager,
//! and the `<name>` element the manager then carries in that servant's `<peer>`
//! entry, after `<me>` and after any `<relay>`.
//!
//! The article had no names in the document: a servant's `--name` only prefixed
//! its own chat lines, so nobody's user list could say who was who. The element is
//! an addition a VB-style reader skips (it selects the children it knows), and a
//! servant that never says `name` is listed in exactly the article's bytes.
//!
//! A name is one line of at most [`MAX_CHARS`] characters with no control or
//! direction-changing characters ([`crate::text::is_unsafe`]); it is XML-escaped in
//! the document, and checked again by whoever reads it, since a manager is just
//! another program on the network.
//!
//! ```
//! use p2pchat::wire::name::{check, parse_request, request};
//!
//! assert_eq!(request("alice"), b"name alice\n");
//! assert_eq!(parse_request(b"name alice"), Some(&b"alice"[..]));
//! assert!(check("bob\x1b[31m").is_err());
//! ```

use crate::xml::Element;

/// The longest name, in characters.
pub const MAX_CHARS: usize = 32;
/// The request: `name NAME`; a bare `name` forgets the name.
const REQUEST: &[u8] = b"name";

/// The name trimmed, or why it cannot be one.
pub fn check(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name
        .chars()
        .any(|c| c.is_control() || crate::text::is_unsafe(c))
    {
        return Err("must be one line without control characters".into());
    }
    let n = name.chars().count();
    if n > MAX_CHARS {
        return Err(format!("is {n} characters long; the limit is {MAX_CHARS}"));
    }
    Ok(name)
}

/// The line that tells the manager our name.
pub fn request(name: &str) -> Vec<u8> {
    [REQUEST, b" ", name.as_bytes(), b"\n"].concat()
}

/// The name a `name ...` request line (without its line ending) asks for, unchecked;
/// empty for a bare `name`. `None` when the line is no name request.
pub fn parse_request(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(REQUEST)?;
    match rest.first() {
        None => Some(rest),
        Some(b' ') => Some(&rest[1..]),
        Some(_) => None, // `names`, `nameless`: some other line
    }
}

/// Appends `<name>NAME</name>`, escaped, as the manager renders it.
pub(crate) fn render(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"<name>");
    for b in name.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(b"</name>");
}

/// A `<peer>`'s name, if it has one that passes [`check`]. A bad name costs only
/// the name, not the peer list.
pub(crate) fn read(peer: &Element) -> Option<String> {
    let el = peer.child("name")?;
    check(el.value()).ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::peerdoc::{parse_named, PeerDoc};
    use crate::wire::relay::Relay;

    /// Servants at offsets 1, 2, 3 on ports 2224..2226.
    fn doc3() -> PeerDoc {
        let mut d = PeerDoc::new();
        for k in 1..=3u16 {
            d.add(
                format!("127.0.0.{k}").parse().unwrap(),
                2223 + k,
                usize::from(k),
            );
        }
        d
    }

    #[test]
    fn names_are_one_short_printable_line() {
        assert_eq!(check("  alice "), Ok("alice"));
        assert_eq!(check("日本語の名前"), Ok("日本語の名前"));
        assert!(check("").is_err() && check("   ").is_err());
        assert!(check("a\nb").is_err());
        assert!(check("evil\u{202e}").is_err(), "direction override");
        assert!(check("\u{9b}31m").is_err(), "C1 control");
        assert!(check(&"x".repeat(MAX_CHARS)).is_ok());
        assert!(check(&"é".repeat(MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn requests_are_recognised_only_as_the_whole_word() {
        assert_eq!(parse_request(b"name bob smith"), Some(&b"bob smith"[..]));
        assert_eq!(parse_request(b"name"), Some(&b""[..]));
        assert_eq!(parse_request(b"names"), None);
        assert_eq!(parse_request(b"needs peer list"), None);
    }

    #[test]
    fn markup_in_a_name_is_escaped_and_read_back() {
        let mut out = Vec::new();
        render(&mut out, "<b>&co</b>");
        assert_eq!(out, b"<name>&lt;b&gt;&amp;co&lt;/b&gt;</name>");
        let doc = format!("<peer>{}</peer>", String::from_utf8(out).unwrap());
        let peer = crate::xml::parse(&doc).unwrap();
        assert_eq!(read(&peer).as_deref(), Some("<b>&co</b>"));
        let bad = crate::xml::parse("<peer><name>a&#27;[2J</name></peer>").unwrap();
        assert_eq!(
            read(&bad),
            None,
            "an escape character from a manager is refused"
        );
    }

    #[test]
    fn a_name_goes_after_the_relay_and_each_is_set_without_the_other() {
        let mut d = doc3();
        let bare = d.render_for(3);
        let relay: std::net::SocketAddr = "203.0.113.10:2224".parse().unwrap();
        assert!(d.set_name(2, Some("bob & <co>")));
        assert!(!d.set_name(2, Some("bob & <co>")), "the same name again");
        assert!(d.set_relay(2, Some(Relay::Via(relay))));
        assert!(d.set_name(1, Some("alice")));
        let text = String::from_utf8(d.render_for(3)).unwrap();
        assert!(
            text.contains("<offset>1</offset><me>FALSE</me><name>alice</name></peer>"),
            "{text}"
        );
        assert!(text.contains("<me>FALSE</me><relay><ip>203.0.113.10</ip><port>2224</port></relay><name>bob &amp; &lt;co&gt;</name></peer>"), "{text}");
        let (peers, names) = parse_named(&text).unwrap();
        assert_eq!(
            names,
            [Some("alice".into()), Some("bob & <co>".into()), None]
        );
        assert_eq!(peers[1].relay, Some(Relay::Via(relay)));
        assert!(
            peers[2].me,
            "later entries still personalise after the lengths changed"
        );
        // Clearing the relay keeps the name; renaming keeps the relay.
        assert!(d.set_relay(2, None));
        assert!(d.set_name(2, Some("robert")));
        assert!(d.set_relay(2, Some(Relay::Nobody)));
        let text = String::from_utf8(d.render_for(3)).unwrap();
        assert!(
            text.contains("<relay>none</relay><name>robert</name></peer>"),
            "{text}"
        );
        for offset in [1, 2] {
            d.set_name(offset, None);
        }
        d.set_relay(2, None);
        assert_eq!(
            d.render_for(3),
            bare,
            "unnamed servants render the article's bytes"
        );
    }

    #[test]
    fn a_bad_name_from_a_manager_costs_the_name_not_the_list() {
        let doc = "<peers><peer><ip>127.0.0.2</ip><port>2224</port><offset>1</offset><me>TRUE</me><name>a&#27;[2J</name></peer></peers>";
        let (peers, names) = parse_named(doc).unwrap();
        assert_eq!((peers.len(), names), (1, vec![None]));
    }
}
