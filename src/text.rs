//! Text from the network made safe to show: on a terminal, in a pipe, in a log.
//!
//! A peer's chat line or a manager's error text is somebody else's bytes. Written
//! raw to a terminal, `ESC ] 52` writes the user's clipboard, `ESC [ 2J` clears the
//! screen, a bare `\r` overwrites the line to fake another sender, the C1 control
//! U+009B starts a sequence without any ESC, and U+202E turns the rest of a line
//! around. The VB form showed text in a text box, where none of that could happen;
//! a terminal interprets it, so every such character is shown escaped instead, the
//! same way in every mode, so that what a pipe records is what a screen shows.
//!
//! What is escaped, and how:
//! - C0 controls other than tab, and DEL: `\x1b`, `\x07`, `\r`, `\x7f`, ...
//! - C1 controls (U+0080 to U+009F): `\u{9b}`.
//! - Bidirectional embeddings, overrides and isolates (U+202A to U+202E, U+2066 to
//!   U+2069) and the marks U+200E, U+200F, U+061C: `\u{202e}`.
//! - Bytes that are not UTF-8 become U+FFFD, as `String::from_utf8_lossy` does.
//!
//! Everything else, tab and printable Unicode included, passes unchanged.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{200e}' | '\u{200f}' | '\u{61c}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `c` to `out` in its visible, escaped form.
fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write as _;
    match c {
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\u{0}'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        _ => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// Appends `bytes`, decoded lossily and with unsafe characters escaped, to `out`.
pub fn escape_into(out: &mut String, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for c in text.chars() {
        if is_unsafe(c) {
            push_escaped(out, c);
        } else {
            out.push(c);
        }
    }
}

/// `text` with unsafe characters escaped; borrowed when nothing needed escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    escape_into(&mut out, text.as_bytes());
    Cow::Owned(out)
}

/// Like [`escape`] for bytes that may not be UTF-8.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => escape(text),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 16);
            escape_into(&mut out, bytes);
            Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_are_shown_not_interpreted() {
        // OSC 0 (window title), OSC 52 (clipboard), clear screen, a fake sender.
        assert_eq!(escape("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
        assert_eq!(escape("\x1b]52;c;aGk=\x07"), "\\x1b]52;c;aGk=\\x07");
        assert_eq!(escape("\x1b[2J"), "\\x1b[2J");
        assert_eq!(escape("hi\rbob: lies"), "hi\\rbob: lies");
        assert_eq!(escape("a\x7fb\x00"), "a\\x7fb\\x00");
    }

    #[test]
    fn c1_controls_and_bidi_overrides_are_escaped() {
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(escape("\u{200f}"), "\\u{200f}");
    }

    #[test]
    fn ordinary_text_passes_untouched_and_unborrowed() {
        for s in ["hello\tworld", "héllo wörld", "日本語", "emoji 🎉", ""] {
            assert!(matches!(escape(s), Cow::Borrowed(_)), "{s:?}");
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(escape_bytes(b"ok\xff\x1b"), "ok\u{fffd}\\x1b");
        assert_eq!(escape_bytes(b"plain"), "plain");
    }

    #[test]
    fn nothing_unsafe_survives_escaping() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!escape(&all).chars().any(is_unsafe));
    }
}
