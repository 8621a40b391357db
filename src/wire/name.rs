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
//! The manager is stricter about the names it lists ([`admit`]): no whitespace
//! (one word, so a name in a chat line or a `/msg` cannot be mistaken for two), no
//! `</` (its answer line never holds a closing tag a document reader frames by), and
//! no name another servant holds, compared trimmed and case-folded ([`fold`]).
//! Every `name` request is answered with one line ([`answer_ok`],
//! [`Refused::answer`]; read back by [`parse_answer`]).
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

/// Why the manager refuses a name; [`Refused::reason`] is the wire's word for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Another live servant holds it (compared by [`fold`]).
    InUse,
    /// It has whitespace inside.
    Whitespace,
    /// It is longer than [`MAX_CHARS`] characters.
    TooLong,
    /// Not UTF-8, a control or direction-changing character, or `</`.
    Invalid,
    /// On a private network names come from the members file, bound to keys:
    /// nobody picks their own.
    Private,
}

impl Refused {
    /// `in use`, `whitespace`, `too long`, `invalid` or `private network`.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::InUse => "in use",
            Refused::Whitespace => "whitespace",
            Refused::TooLong => "too long",
            Refused::Invalid => "invalid",
            Refused::Private => "private network",
        }
    }

    /// The answer line: `name refused: REASON\r\n`. The refused name is never
    /// echoed, so nothing a client asked for comes back in it.
    pub fn answer(self) -> &'static [u8] {
        match self {
            Refused::InUse => b"name refused: in use\r\n",
            Refused::Whitespace => b"name refused: whitespace\r\n",
            Refused::TooLong => b"name refused: too long\r\n",
            Refused::Invalid => b"name refused: invalid\r\n",
            Refused::Private => b"name refused: private network\r\n",
        }
    }
}

/// What the manager makes of the text of a `name` request, before asking whether
/// another servant holds it: `Ok(None)` to forget the name (empty after trimming),
/// `Ok(Some(name))` trimmed, or why it cannot be listed.
pub fn admit(text: &[u8]) -> Result<Option<&str>, Refused> {
    let name = std::str::from_utf8(text)
        .map_err(|_| Refused::Invalid)?
        .trim();
    if name.is_empty() {
        return Ok(None);
    }
    if name.chars().any(char::is_whitespace) {
        return Err(Refused::Whitespace);
    }
    if name.chars().count() > MAX_CHARS {
        return Err(Refused::TooLong);
    }
    if check(name).is_err() || name.contains("</") {
        return Err(Refused::Invalid);
    }
    Ok(Some(name))
}

/// The form two names are compared in: Unicode lowercase, so `Alice` and `alice`
/// are one name.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// Appends the answer to an accepted `name` request: `name ok NAME\r\n`, or
/// `name ok\r\n` when the name was forgotten.
pub fn answer_ok(out: &mut Vec<u8>, name: Option<&str>) {
    out.extend_from_slice(b"name ok");
    if let Some(n) = name {
        out.push(b' ');
        out.extend_from_slice(n.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// A manager's answer to `name`, as a servant reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// `name ok NAME` (`None`: `name ok`, the name is forgotten).
    Ok(Option<&'a str>),
    /// `name refused: REASON`, the reason as sent.
    Refused(&'a str),
}

/// Reads one answer line (its line ending optional); `None` if it is none.
pub fn parse_answer(line: &[u8]) -> Option<Answer<'_>> {
    let line = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\r', '\n']);
    if let Some(reason) = line.strip_prefix("name refused: ") {
        return Some(Answer::Refused(reason));
    }
    match line.strip_prefix("name ok")? {
        "" => Some(Answer::Ok(None)),
        rest => rest.strip_prefix(' ').map(|n| Answer::Ok(Some(n))),
    }
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
    fn the_manager_lists_one_word_names_and_says_why_not() {
        assert_eq!(admit(b"  alice \r"), Ok(Some("alice")));
        assert_eq!(admit(b"   "), Ok(None));
        assert_eq!(admit(b""), Ok(None));
        assert_eq!(admit(b"bob smith"), Err(Refused::Whitespace));
        assert_eq!(admit("bob\u{a0}smith".as_bytes()), Err(Refused::Whitespace));
        assert_eq!(admit(b"a\tb"), Err(Refused::Whitespace));
        assert_eq!(
            admit("é".repeat(MAX_CHARS).as_bytes()),
            Ok(Some(&*"é".repeat(MAX_CHARS)))
        );
        assert_eq!(
            admit("é".repeat(MAX_CHARS + 1).as_bytes()),
            Err(Refused::TooLong)
        );
        assert_eq!(admit(b"evil\x1b[2J"), Err(Refused::Invalid));
        assert_eq!(admit("evil\u{202e}".as_bytes()), Err(Refused::Invalid));
        assert_eq!(admit(b"\xff\xfe"), Err(Refused::Invalid));
        assert_eq!(admit(b"x</peers>"), Err(Refused::Invalid));
        assert_eq!(admit(b"bob&<co>"), Ok(Some("bob&<co>")));
        assert_eq!(fold("ÅLICE"), fold("ålice"));
    }

    #[test]
    fn answers_are_one_line_and_read_back() {
        let mut out = Vec::new();
        answer_ok(&mut out, Some("alice"));
        answer_ok(&mut out, None);
        assert_eq!(out, b"name ok alice\r\nname ok\r\n");
        assert_eq!(
            parse_answer(b"name ok alice\r\n"),
            Some(Answer::Ok(Some("alice")))
        );
        assert_eq!(parse_answer(b"name ok"), Some(Answer::Ok(None)));
        for why in [
            Refused::InUse,
            Refused::Whitespace,
            Refused::TooLong,
            Refused::Invalid,
        ] {
            assert_eq!(
                parse_answer(why.answer()),
                Some(Answer::Refused(why.reason()))
            );
            assert!(why.answer().ends_with(b"\r\n"));
        }
        assert_eq!(parse_answer(b"name okay"), None);
        assert_eq!(parse_answer(b"<peers></peers>"), None);
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
