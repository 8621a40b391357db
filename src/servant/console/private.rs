//! Private lines on screen and in a pipe: distinct from chat by their text, so a
//! pipe shows them apart, and on a terminal by their mark in reverse video.
//!
//! - to us: `alice (private): TEXT`, the sender named from the network as for any
//!   line (a leading `alice: ` in the text is not repeated); `(private) TEXT` from
//!   a listed servant without a name, `[203.0.113.1?] (private) TEXT` when the
//!   list cannot tell who sent it;
//! - from us: `-> bob: TEXT`.
//!
//! No peer's chat line can look like either: a named sender's lines start with its
//! name, and an unnamed sender's that start with `(private`, `-> ` or a listed
//! name (`bob (private): `) are shown as unverified ([`super::Sender`]).

use std::net::IpAddr;

use log::warn;

use super::style::Part;
use super::{emit, Console, Sender, INCOMING};

impl Console {
    /// Shows a private line a peer sent us, as from `sender`.
    pub fn private_message(
        &mut self,
        from: IpAddr,
        sender: Sender<'_>,
        bytes: &[u8],
        truncated: bool,
    ) {
        if truncated {
            warn!(target: INCOMING, "{from} sent a private message over 64 KiB; showing its first 64 KiB");
        }
        let text = crate::text::escape_bytes(bytes);
        let (name, marker, rest) = match sender {
            Sender::Named(name) => {
                let name = crate::text::escape(name).into_owned();
                let rest = (text.strip_prefix(name.as_str()))
                    .and_then(|t| t.strip_prefix(": "))
                    .unwrap_or(&text)
                    .to_string();
                (name, String::new(), rest)
            }
            Sender::Unnamed => (String::new(), String::new(), text.into_owned()),
            Sender::Unverified(ip) => (String::new(), format!("[{ip}?] "), text.into_owned()),
        };
        let parts = if name.is_empty() {
            [
                Part::Plain(&marker),
                Part::Mark("(private)"),
                Part::Plain(" "),
                Part::Plain(&rest),
            ]
        } else {
            [
                Part::Name(&name),
                Part::Plain(" "),
                Part::Mark("(private)"),
                Part::Plain(": "),
            ]
        };
        let tail = if name.is_empty() { "" } else { rest.as_str() };
        self.private_line(parts, tail, truncated);
    }

    /// Shows a private line we sent to `to`: `-> bob: TEXT`.
    pub fn private_sent(&mut self, to: &str, bytes: &[u8]) {
        let text = crate::text::escape_bytes(bytes);
        let to = crate::text::escape(to);
        let parts = [
            Part::Mark("->"),
            Part::Plain(" "),
            Part::Name(&to),
            Part::Plain(": "),
        ];
        self.private_line(parts, &text, false);
    }

    fn private_line(&mut self, parts: [Part<'_>; 4], tail: &str, truncated: bool) {
        self.take_log();
        let (out, eol): (_, &[u8]) = match &mut self.screen {
            Some(s) => (&mut s.above, b"\r\n"),
            None => {
                self.scratch.clear();
                (&mut self.scratch, b"\n")
            }
        };
        self.style.private_line(out, parts);
        out.extend_from_slice(tail.as_bytes());
        if truncated {
            out.extend_from_slice(b" [truncated]");
        }
        out.extend_from_slice(eol);
        if self.screen.is_none() {
            emit(&self.scratch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(c: &Console) -> String {
        String::from_utf8(c.scratch.clone()).unwrap()
    }

    #[test]
    fn private_lines_read_apart_from_chat_without_colour() {
        let mut c = Console::new(false);
        c.style.on = false;
        let ip: IpAddr = "203.0.113.1".parse().unwrap();
        c.private_message(ip, Sender::Named("alice"), b"alice: hi", false);
        assert_eq!(shown(&c), "alice (private): hi\n");
        c.private_message(ip, Sender::Named("mallory"), b"alice: hi", false);
        assert_eq!(shown(&c), "mallory (private): alice: hi\n");
        c.private_message(ip, Sender::Unnamed, b"vb text", false);
        assert_eq!(shown(&c), "(private) vb text\n");
        c.private_message(ip, Sender::Unverified(ip), b"bob: x", true);
        assert_eq!(shown(&c), "[203.0.113.1?] (private) bob: x [truncated]\n");
        c.private_sent("bob", b"see you \x1b[2J");
        assert_eq!(shown(&c), "-> bob: see you \\x1b[2J\n");
    }

    #[test]
    fn on_a_terminal_the_mark_is_in_reverse_video() {
        let mut c = Console::new(false);
        c.style.on = true;
        c.style.set_names(Some("alice"), ["bob"].into_iter());
        c.private_sent("bob", b"hi");
        let s = shown(&c);
        assert!(s.starts_with("\x1b[7m->\x1b[0m \x1b[1;"), "{s:?}");
        assert!(s.ends_with(": hi\n"), "{s:?}");
    }
}
