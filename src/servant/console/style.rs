//! Colour: your own name in one colour, everyone else's in colours of their own
//! (the same name always gets the same one), events dim. Off when stdout is not a
//! terminal, under `NO_COLOR` (no-color.org) and on a `dumb` terminal.
//!
//! Only names the peer list confirms are coloured: a line's `name: ` prefix is
//! whatever its sender typed, and colouring any prefix would let `note: ` pass for
//! a person.

use std::collections::HashSet;

const RESET: &[u8] = b"\x1b[0m";
const DIM: &[u8] = b"\x1b[2m";
const OWN: &[u8] = b"\x1b[1;32m";
/// Reverse video: the mark on a private line (`(private)`, `->`).
const PRIVATE: &[u8] = b"\x1b[7m";
/// Bold cyan, magenta, yellow, blue, red: readable on dark and light backgrounds.
const OTHERS: [&[u8]; 5] = [
    b"\x1b[1;36m",
    b"\x1b[1;35m",
    b"\x1b[1;33m",
    b"\x1b[1;34m",
    b"\x1b[1;31m",
];

/// A piece of a private line, styled by what it is.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    Plain(&'a str),
    Mark(&'a str),
    Name(&'a str),
}

/// Whether to colour, and the names worth colouring.
#[derive(Debug, Default)]
pub struct Style {
    pub on: bool,
    own: Option<String>,
    known: HashSet<String>,
}

impl Style {
    /// Colour when stdout is a terminal and neither `NO_COLOR` nor `TERM=dumb` says no.
    pub fn for_stdout(stdout_is_tty: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Style {
            on: stdout_is_tty && !no_color && !dumb,
            ..Style::default()
        }
    }

    /// The names to colour: ours, and those the peer list carries.
    pub fn set_names<'a>(&mut self, own: Option<&str>, others: impl Iterator<Item = &'a str>) {
        self.own = own.map(str::to_string);
        self.known = others.map(str::to_string).collect();
    }

    /// Appends `text` dimmed, then a line end.
    pub fn dim_line(&self, out: &mut Vec<u8>, text: &str, eol: &[u8]) {
        self.paint(out, DIM, text);
        out.extend_from_slice(eol);
    }

    /// What starts and ends a dim stretch: nothing when colour is off.
    pub fn dim_parts(&self) -> (&'static [u8], &'static [u8]) {
        if self.on {
            (DIM, RESET)
        } else {
            (b"", b"")
        }
    }

    /// Appends a chat line (already escaped) with its sender's name coloured when it
    /// is a known name: `alice: text`, or `* alice text` from `/me`.
    pub fn chat_line(&self, out: &mut Vec<u8>, line: &str) {
        if self.on {
            if let Some((before, name, after)) = self.sender(line) {
                out.extend_from_slice(before.as_bytes());
                self.paint(out, self.colour(name), name);
                out.extend_from_slice(after.as_bytes());
                return;
            }
        }
        out.extend_from_slice(line.as_bytes());
    }

    /// Appends a private line's parts (already escaped): `name` coloured when it is
    /// a known name, `mark` in reverse video, around `between` and after `rest`:
    /// `NAME (private): text` to us, `-> NAME: text` from us.
    pub fn private_line(&self, out: &mut Vec<u8>, parts: [Part<'_>; 4]) {
        for part in parts {
            match part {
                Part::Plain(t) => out.extend_from_slice(t.as_bytes()),
                Part::Mark(t) => self.paint(out, PRIVATE, t),
                Part::Name(n) => {
                    let known = self.own.as_deref() == Some(n) || self.known.contains(n);
                    match known {
                        true => self.paint(out, self.colour(n), n),
                        false => out.extend_from_slice(n.as_bytes()),
                    }
                }
            }
        }
    }

    fn paint(&self, out: &mut Vec<u8>, colour: &[u8], text: &str) {
        if self.on {
            out.extend_from_slice(colour);
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(RESET);
        } else {
            out.extend_from_slice(text.as_bytes());
        }
    }

    /// The line split around its sender's name, if it starts with a known one.
    fn sender<'a>(&self, line: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
        let (before, rest) = match line.strip_prefix("* ") {
            Some(rest) => ("* ", rest),
            None => ("", line),
        };
        let end = if before.is_empty() {
            rest.find(": ")?
        } else {
            rest.find(' ')?
        };
        let name = &rest[..end];
        let known = self.own.as_deref() == Some(name) || self.known.contains(name);
        known.then(|| (before, name, &rest[end..]))
    }

    fn colour(&self, name: &str) -> &'static [u8] {
        if self.own.as_deref() == Some(name) {
            return OWN;
        }
        // FNV-1a: the same name gets the same colour on every servant.
        let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        OTHERS[hash as usize % OTHERS.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style() -> Style {
        let mut s = Style {
            on: true,
            ..Style::default()
        };
        s.set_names(Some("alice"), ["bob"].into_iter());
        s
    }

    fn chat(s: &Style, line: &str) -> String {
        let mut out = Vec::new();
        s.chat_line(&mut out, line);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn known_names_are_coloured_and_nothing_else() {
        let s = style();
        assert_eq!(chat(&s, "alice: hi"), "\x1b[1;32malice\x1b[0m: hi");
        assert!(chat(&s, "bob: yo").starts_with("\x1b[1;"));
        assert!(chat(&s, "* bob waves").starts_with("* \x1b[1;"));
        assert_eq!(chat(&s, "note: not a name"), "note: not a name");
        assert_eq!(chat(&s, "no prefix at all"), "no prefix at all");
    }

    #[test]
    fn off_means_plain_bytes() {
        let mut s = style();
        s.on = false;
        assert_eq!(chat(&s, "alice: hi"), "alice: hi");
        let mut out = Vec::new();
        s.dim_line(&mut out, "-- bob joined", b"\n");
        assert_eq!(out, b"-- bob joined\n");
    }
}
