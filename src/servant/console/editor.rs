//! The line being typed, as readline users expect to edit it: the cursor moves by
//! characters and words, Ctrl-K, Ctrl-U and Ctrl-W cut and Ctrl-Y puts back, Up
//! and Down walk the history (this session's and, on a terminal, earlier runs'),
//! Ctrl-R searches it (`search.rs`) and Tab completes names (`complete.rs`). The VB form's `txtSend1` text box, with
//! the keys a terminal has instead of a mouse.
//!
//! The line is kept as characters, not bytes, so that the cursor can never stand
//! inside one; a combining mark moves and erases together with the character it
//! is drawn over. Nothing that is not printable gets in: a paste with escape
//! sequences or controls in it inserts only its text.

use super::keys::Key;
use super::width::width;

/// Characters a line may hold: a whole line stays under the 64 KiB a message may be.
const MAX_CHARS: usize = 16 * 1024;
/// Lines of history kept.
pub(super) const HISTORY: usize = 1000;

/// What a key did, for the console to act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing visible changed (a key with nothing to do at this place).
    None,
    /// The line or the cursor changed: redraw the input.
    Redraw,
    /// Enter: this line is done; the input is empty again.
    Line(String),
    /// Ctrl-D on an empty line.
    Eof,
    /// Ctrl-L: clear the screen, then redraw.
    ClearScreen,
    /// The line is full, or a key with no meaning: ring the bell.
    Bell,
}

/// The line editor's state: the text, the cursor, the history, the cut text.
#[derive(Debug, Default)]
pub struct Editor {
    pub(super) text: Vec<char>,
    /// Index in `text` the next character is inserted at.
    pub(super) cursor: usize,
    /// Lines entered, oldest first: earlier runs', then this session's.
    pub(super) history: Vec<String>,
    /// While walking the history: the entry shown.
    browsing: Option<usize>,
    /// The line that was being typed when Up was first pressed.
    draft: Vec<char>,
    /// The last text cut with Ctrl-K, Ctrl-U or Ctrl-W, for Ctrl-Y.
    cut: Vec<char>,
    /// Names Tab completes, and the completion Tab is cycling through.
    pub(super) names: Vec<String>,
    pub(super) completing: Option<Completion>,
    /// Ctrl-R: the search under way.
    pub(super) search: Option<Search>,
}

/// The completion Tab is cycling through.
#[derive(Debug)]
pub struct Completion {
    /// Where the completed word starts in the line.
    pub(super) start: usize,
    /// The names that fit what was typed, in order, and the one shown.
    pub(super) fits: Vec<String>,
    pub(super) shown: usize,
    /// Characters the shown name (and its `: `) put at `start`.
    pub(super) len: usize,
}

/// A search under way.
#[derive(Debug)]
pub struct Search {
    pub(super) query: Vec<char>,
    /// The history line shown, if one holds the query.
    pub(super) found: Option<usize>,
    /// No line holds the query as typed.
    pub(super) failed: bool,
    /// The line and cursor before Ctrl-R, for Esc.
    pub(super) before: (Vec<char>, usize),
}

impl Editor {
    pub fn text(&self) -> &[char] {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Lines from earlier runs, oldest first, before this session's.
    pub fn load_history(&mut self, lines: Vec<String>) {
        let mut lines = lines;
        lines.append(&mut self.history);
        let over = lines.len().saturating_sub(HISTORY);
        lines.drain(..over);
        self.history = lines;
    }

    /// Applies one key.
    pub fn key(&mut self, key: Key) -> Effect {
        if self.search.is_some() {
            if let Some(effect) = self.search_key(key) {
                return effect;
            }
        }
        if key == Key::Tab {
            return self.complete();
        }
        self.completing = None;
        let before = (self.text.len(), self.cursor);
        match key {
            Key::Ctrl(b'r') => return self.search_start(),
            Key::Char(c) => return self.insert(c),
            Key::Enter => return self.enter(),
            Key::Ctrl(b'd') if self.text.is_empty() => return Effect::Eof,
            Key::Ctrl(b'l') => return Effect::ClearScreen,
            Key::Up | Key::Ctrl(b'p') => return self.history_step(true),
            Key::Down | Key::Ctrl(b'n') => return self.history_step(false),
            Key::Left | Key::Ctrl(b'b') => self.cursor = self.prev(self.cursor),
            Key::Right | Key::Ctrl(b'f') => self.cursor = self.next(self.cursor),
            Key::Home | Key::Ctrl(b'a') => self.cursor = 0,
            Key::End | Key::Ctrl(b'e') => self.cursor = self.text.len(),
            Key::WordLeft => self.cursor = self.word_start(self.cursor),
            Key::WordRight => self.cursor = self.word_end(self.cursor),
            Key::Backspace => {
                let from = self.prev(self.cursor);
                self.remove(from, self.cursor, false);
            }
            Key::Delete | Key::Ctrl(b'd') => {
                let to = self.next(self.cursor);
                self.remove(self.cursor, to, false);
            }
            Key::Ctrl(b'k') => self.remove(self.cursor, self.text.len(), true),
            Key::Ctrl(b'u') => self.remove(0, self.cursor, true),
            Key::Ctrl(b'w') | Key::EraseWord => {
                let from = self.word_start(self.cursor);
                self.remove(from, self.cursor, true);
            }
            Key::EraseWordForward => {
                let to = self.word_end(self.cursor);
                self.remove(self.cursor, to, true);
            }
            Key::Ctrl(b'y') => return self.yank(),
            Key::Ctrl(_) | Key::Tab | Key::PageUp | Key::PageDown | Key::Escape => {
                return Effect::None
            }
        }
        if (self.text.len(), self.cursor) == before {
            Effect::None
        } else {
            Effect::Redraw
        }
    }

    pub(super) fn insert(&mut self, c: char) -> Effect {
        if c.is_control() || crate::text::is_unsafe(c) {
            return Effect::None;
        }
        if self.text.len() >= MAX_CHARS {
            return Effect::Bell;
        }
        self.text.insert(self.cursor, c);
        self.cursor += 1;
        Effect::Redraw
    }

    pub(super) fn enter(&mut self) -> Effect {
        let line: String = std::mem::take(&mut self.text).into_iter().collect();
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        Effect::Line(line)
    }

    /// Removes `text[from..to]`, keeping it for Ctrl-Y when `cut`.
    fn remove(&mut self, from: usize, to: usize, cut: bool) {
        if from >= to {
            return;
        }
        let gone: Vec<char> = self.text.drain(from..to).collect();
        if cut {
            self.cut = gone;
        }
        self.cursor = from;
    }

    fn yank(&mut self) -> Effect {
        if self.cut.is_empty() {
            return Effect::None;
        }
        if self.text.len() + self.cut.len() > MAX_CHARS {
            return Effect::Bell;
        }
        let at = self.cursor;
        self.text.splice(at..at, self.cut.iter().copied());
        self.cursor += self.cut.len();
        Effect::Redraw
    }

    /// Up (`back`) or Down through the history; Down past the newest entry brings
    /// back what was being typed.
    fn history_step(&mut self, back: bool) -> Effect {
        let next = match (self.browsing, back) {
            (None, true) if !self.history.is_empty() => Some(self.history.len() - 1),
            (Some(k), true) if k > 0 => Some(k - 1),
            (Some(k), false) if k + 1 < self.history.len() => Some(k + 1),
            (Some(_), false) => None,
            _ => return Effect::Bell,
        };
        if self.browsing.is_none() {
            self.draft = std::mem::take(&mut self.text);
        }
        self.browsing = next;
        self.text = match next {
            Some(k) => self.history[k].chars().collect(),
            None => std::mem::take(&mut self.draft),
        };
        self.cursor = self.text.len();
        Effect::Redraw
    }

    /// The character boundary before `at`, stepping over combining marks.
    fn prev(&self, at: usize) -> usize {
        let mut k = at.saturating_sub(1);
        while k > 0 && width(self.text[k]) == 0 {
            k -= 1;
        }
        k
    }

    /// The character boundary after `at`, with the marks drawn over that character.
    fn next(&self, at: usize) -> usize {
        let mut k = (at + 1).min(self.text.len());
        while k < self.text.len() && width(self.text[k]) == 0 {
            k += 1;
        }
        k
    }

    /// The start of the word before `at`: back over spaces, then over non-spaces.
    fn word_start(&self, mut at: usize) -> usize {
        while at > 0 && self.text[at - 1].is_whitespace() {
            at -= 1;
        }
        while at > 0 && !self.text[at - 1].is_whitespace() {
            at -= 1;
        }
        at
    }

    /// The end of the word after `at`: over spaces, then over non-spaces.
    fn word_end(&self, mut at: usize) -> usize {
        let n = self.text.len();
        while at < n && self.text[at].is_whitespace() {
            at += 1;
        }
        while at < n && !self.text[at].is_whitespace() {
            at += 1;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servant::console::keys::KeyReader;

    /// Feeds `bytes` as keystrokes; returns the lines entered.
    fn typed(e: &mut Editor, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        KeyReader::default().feed(bytes, |k| {
            if let Effect::Line(l) = e.key(k) {
                lines.push(l);
            }
        });
        lines
    }

    fn shown(e: &Editor) -> (String, usize) {
        (e.text.iter().collect(), e.cursor)
    }

    #[test]
    fn moving_and_inserting_in_the_middle() {
        let mut e = Editor::default();
        typed(&mut e, b"helo");
        typed(&mut e, b"\x1b[D\x1b[Dl");
        assert_eq!(shown(&e), ("hello".into(), 3));
        typed(&mut e, b"\x01X\x05!");
        assert_eq!(shown(&e), ("Xhello!".into(), 7));
        assert_eq!(typed(&mut e, b"\r"), ["Xhello!"]);
        assert_eq!(shown(&e), (String::new(), 0));
    }

    #[test]
    fn cutting_and_putting_back() {
        let mut e = Editor::default();
        typed(&mut e, b"one two three");
        typed(&mut e, b"\x17");
        assert_eq!(shown(&e), ("one two ".into(), 8));
        typed(&mut e, b"\x01\x1bf\x0b");
        assert_eq!(shown(&e), ("one".into(), 3), "Alt-F then Ctrl-K");
        typed(&mut e, b"\x19");
        assert_eq!(shown(&e), ("one two ".into(), 8), "Ctrl-Y");
        typed(&mut e, b"\x1b[1;5D\x15");
        assert_eq!(shown(&e), ("two ".into(), 0), "Ctrl-Left then Ctrl-U");
        typed(&mut e, b"\x1b[3~\x04");
        assert_eq!(
            shown(&e),
            ("o ".into(), 0),
            "Delete, then Ctrl-D deletes too"
        );
    }

    #[test]
    fn wide_characters_and_combining_marks_move_as_one() {
        let mut e = Editor::default();
        typed(&mut e, "日本e\u{301}x".as_bytes());
        typed(&mut e, b"\x1b[D\x1b[D");
        assert_eq!(e.cursor, 2, "left over x, then over e and its accent");
        typed(&mut e, b"\x7f");
        assert_eq!(shown(&e), ("日e\u{301}x".into(), 1));
        typed(&mut e, b"\x1b[3~");
        assert_eq!(shown(&e), ("日x".into(), 1));
    }

    #[test]
    fn history_walks_back_and_returns_to_the_draft() {
        let mut e = Editor::default();
        typed(&mut e, b"first\rsecond\rsecond\rdraft");
        typed(&mut e, b"\x1b[A");
        assert_eq!(shown(&e).0, "second");
        typed(&mut e, b"\x1b[A");
        assert_eq!(shown(&e).0, "first", "a repeated line is kept once");
        assert_eq!(e.key(Key::Up), Effect::Bell);
        typed(&mut e, b"\x1b[B\x1b[B");
        assert_eq!(shown(&e), ("draft".into(), 5));
        assert_eq!(typed(&mut e, b"\x10\r"), ["second"], "Ctrl-P, Enter");
    }

    #[test]
    fn controls_never_get_in_and_eof_only_on_an_empty_line() {
        let mut e = Editor::default();
        typed(&mut e, "a\u{9b}b\u{202e}c".as_bytes());
        assert_eq!(shown(&e).0, "abc");
        assert_eq!(
            e.key(Key::Ctrl(b'd')),
            Effect::None,
            "nothing to delete at the end"
        );
        assert_eq!(shown(&e).0, "abc");
        typed(&mut e, b"\x15");
        assert_eq!(e.key(Key::Ctrl(b'd')), Effect::Eof);
    }

    #[test]
    fn a_full_line_rings_the_bell() {
        let mut e = Editor::default();
        for _ in 0..MAX_CHARS {
            e.key(Key::Char('x'));
        }
        assert_eq!(e.key(Key::Char('y')), Effect::Bell);
        assert_eq!(e.text.len(), MAX_CHARS);
    }
}
