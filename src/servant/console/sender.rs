//! Who a chat line is shown as from. The sender is what the network says (the
//! address a line came from, or the origin its relay gives, looked up in the peer
//! list), never what the text says: a line's `name: ` prefix is whatever its
//! sender typed.
//!
//! - a listed servant with a name: `NAME: TEXT`, the text as it came, except that a
//!   leading `NAME: ` (or `* NAME ` of an action) equal to that same name is not
//!   repeated, so mallory's `alice: x` shows as `mallory: alice: x`;
//! - a listed servant without a name: the text as it came, as the article showed
//!   every line;
//! - a line whose sender cannot be told apart (several listed servants share its
//!   address, behind a NAT or on one host without `--bind`, and one of them has a
//!   name), or an unnamed sender's line that starts like a listed name's:
//!   `[203.0.113.1?] TEXT`, the marker dim on a terminal. No name can look like
//!   it: a named line's first space follows `NAME:`, never `?]`.

use std::net::IpAddr;

/// Who a line is shown as from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender<'a> {
    /// The one listed servant it came from, by the name the list gives it.
    Named(&'a str),
    /// The one listed servant it came from, which has no name.
    Unnamed,
    /// From this address, but which servant sent it, or whether it may use the
    /// name it starts with, the list cannot say.
    Unverified(IpAddr),
}

/// What goes before the text (already escaped) when `sender` sent it: nothing,
/// `NAME: `, or the unverified marker (`true`: to be dimmed).
pub fn prefix(sender: Sender<'_>, text: &str) -> Option<(String, bool)> {
    match sender {
        Sender::Unnamed => None,
        Sender::Named(name) => {
            let said = text
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(": "))
                || (text.strip_prefix("* "))
                    .and_then(|t| t.strip_prefix(name))
                    .is_some_and(|rest| rest.starts_with(' '));
            (!said).then(|| (format!("{}: ", crate::text::escape(name)), false))
        }
        Sender::Unverified(ip) => Some((format!("[{ip}?] "), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(sender: Sender<'_>, text: &str) -> String {
        match prefix(sender, text) {
            Some((p, _)) => format!("{p}{text}"),
            None => text.to_string(),
        }
    }

    #[test]
    fn the_listed_name_leads_and_is_not_repeated() {
        assert_eq!(shown(Sender::Named("alice"), "alice: hi"), "alice: hi");
        assert_eq!(shown(Sender::Named("alice"), "hi"), "alice: hi");
        assert_eq!(
            shown(Sender::Named("mallory"), "alice: x"),
            "mallory: alice: x"
        );
        assert_eq!(shown(Sender::Named("al"), "alice: x"), "al: alice: x");
        assert_eq!(shown(Sender::Named("bob"), "* bob waves"), "* bob waves");
        assert_eq!(
            shown(Sender::Named("eve"), "* bob waves"),
            "eve: * bob waves"
        );
    }

    #[test]
    fn unnamed_and_unverified_lines() {
        assert_eq!(shown(Sender::Unnamed, "plain vb text"), "plain vb text");
        let ip = "127.0.0.1".parse().unwrap();
        assert_eq!(
            shown(Sender::Unverified(ip), "alice: x"),
            "[127.0.0.1?] alice: x"
        );
        let v6 = "2001:db8::1".parse().unwrap();
        assert_eq!(shown(Sender::Unverified(v6), "x"), "[2001:db8::1?] x");
    }
}
