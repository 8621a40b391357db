//! Drawing the input below the transcript: the prompt and the half-typed line,
//! however many rows it wraps to at the terminal's width.
//!
//! Everything the servant shows goes above the input. To show a line, the console
//! moves the cursor up to the input's first row, clears to the end of the screen,
//! writes the line (the terminal scrolls as it always does) and draws the input
//! again below it. For that it must know which row of the input the cursor is on,
//! so [`place`] lays the input out as the terminal wraps it: a character that does
//! not fit goes to the next row, and a wide one that would straddle the edge goes
//! there whole, leaving the last column empty.
//!
//! An input taller than the screen leaves it a row for the transcript: only the
//! rows around the cursor are drawn (a [`View`] of them, as zsh does), and the
//! rows above are simply not shown. Drawing it all would scroll its first rows
//! off the top, where the cursor cannot go back up to erase them: every redraw
//! would leave a copy of them in the transcript's scrollback.
//!
//! A terminal resized while the input is on screen rewraps it (tmux, VTE, kitty,
//! iTerm and alacritty all reflow): the cursor keeps its place in the text, so its
//! row is where [`place`] puts it among the characters drawn, at the new width.

use std::io::Write as _;

use super::width::width;

/// The input as the terminal shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The cursor's row, counted from the prompt's row, and its column.
    pub cursor: (usize, usize),
    /// Where the terminal's cursor is after writing the whole input.
    pub end: (usize, usize),
    /// The input ends exactly at the right edge: the terminal is waiting to wrap.
    pub at_edge: bool,
}

/// Calls `f(k, row, col)` with where each of `text`'s characters goes after a
/// prompt `prompt` columns wide, on a screen `cols` wide (at least the prompt and
/// two columns, so that a wide character always fits on a row of its own);
/// returns the row and column after the last one. A character of no width stays
/// on the row of the one it is drawn over.
fn lay_out(
    prompt: usize,
    text: &[char],
    cols: usize,
    mut f: impl FnMut(usize, usize, usize),
) -> (usize, usize) {
    let cols = cols.max(prompt + 2);
    let (mut row, mut col) = (0, prompt);
    for (k, &c) in text.iter().enumerate() {
        let w = width(c);
        if w > 0 && col + w > cols {
            row += 1;
            col = 0;
        }
        f(k, row, col);
        col += w;
    }
    (row, col)
}

/// Lays out a prompt `prompt` columns wide followed by `text` on a screen `cols`
/// wide, with the cursor before `text[cursor]`.
pub fn place(prompt: usize, text: &[char], cursor: usize, cols: usize) -> Placed {
    let mut at = None;
    let (row, col) = lay_out(prompt, text, cols, |k, row, col| {
        if k == cursor {
            at = Some((row, col));
        }
    });
    let at_edge = col == cols.max(prompt + 2);
    let end = if at_edge { (row + 1, 0) } else { (row, col) };
    Placed {
        cursor: at.unwrap_or(end),
        end,
        at_edge,
    }
}

/// Moves from the input's cursor row to the start of the prompt's row and clears
/// from there to the end of the screen: the input is gone, the transcript above
/// it untouched. The row is cleared on its own and the rest from its second
/// column: an erase-below sent from the top-left corner is what tmux
/// (`scroll-on-clear`) takes for clearing the screen, and it would copy the
/// screen into its history at every keystroke once the input is on the top row.
pub fn erase(out: &mut Vec<u8>, cursor_row: usize) {
    out.push(b'\r');
    if cursor_row > 0 {
        let _ = write!(out, "\x1b[{cursor_row}A");
    }
    out.extend_from_slice(b"\x1b[2K\x1b[C\x1b[J\r");
}

/// The rows of the input on screen, and what they hold.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The input's first row drawn; the rows above it are not shown.
    top: usize,
    /// The characters drawn, the columns before the first of them (the prompt's,
    /// or none below the first row), and the cursor's place among them: enough to
    /// find the cursor's row again after the terminal rewraps them.
    chars: Vec<char>,
    lead: usize,
    cursor: usize,
}

impl View {
    /// The cursor's row, counted from the first row drawn, once the terminal has
    /// rewrapped what was drawn to `cols` columns.
    pub fn cursor_row(&self, cols: usize) -> usize {
        place(self.lead, &self.chars, self.cursor, cols).cursor.0
    }
}

/// Writes the prompt (already styled, `prompt_cols` wide) and `text`, then puts the
/// cursor before `text[cursor]`; of an input taller than `height` rows, only the
/// `height` rows around the cursor, keeping `view`'s first row when the cursor is
/// still among them. Returns the cursor's row counted from the first row drawn,
/// for [`erase`].
pub fn draw(
    out: &mut Vec<u8>,
    prompt: &[u8],
    prompt_cols: usize,
    (text, cursor): (&[char], usize),
    (cols, height): (usize, usize),
    view: &mut View,
) -> usize {
    let p = place(prompt_cols, text, cursor, cols);
    let (rows, height) = (p.end.0 + 1, height.max(1));
    // The cursor's row in sight, and no empty rows below the input's last.
    let mut top = view.top.min(p.cursor.0);
    if p.cursor.0 >= top + height {
        top = p.cursor.0 + 1 - height;
    }
    let top = top.min(rows.saturating_sub(height));
    let last = (top + height).min(rows) - 1;
    // The characters on rows top..=last, and where the terminal's cursor is once
    // they are written; written in one run, the terminal wraps them as `place` did.
    let mut from = text.len();
    let mut to = text.len();
    let mut at = (top, if top == 0 { prompt_cols } else { 0 });
    lay_out(prompt_cols, text, cols, |k, row, col| {
        if row >= top && from == text.len() {
            from = k;
        }
        if row <= last {
            at = (row, col + width(text[k]));
        } else if to == text.len() {
            to = k;
        }
    });
    let from = from.min(to);
    if top == 0 {
        out.extend_from_slice(prompt);
    }
    let mut utf8 = [0; 4];
    for &c in &text[from..to] {
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
    if p.at_edge && last == p.end.0 {
        // Take the pending wrap now, with a space the next draw overwrites or
        // clears, so the cursor is where `place` says. (`\r\n` would do it too,
        // but would end the row for good: a reflowing terminal would then keep
        // a broken line after a resize.)
        out.extend_from_slice(b" \r");
        at = p.end;
    }
    let up = at.0 - p.cursor.0;
    if up > 0 {
        let _ = write!(out, "\x1b[{up}A");
    }
    if at.1 != p.cursor.1 || up > 0 {
        out.push(b'\r');
        if p.cursor.1 > 0 {
            let _ = write!(out, "\x1b[{}C", p.cursor.1);
        }
    }
    view.top = top;
    view.chars.clear();
    view.chars.extend_from_slice(&text[from..to]);
    view.lead = if top == 0 { prompt_cols } else { 0 };
    view.cursor = cursor - from;
    p.cursor.0 - top
}

#[cfg(test)]
mod tests {
    use super::super::vt::Vt;
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn wrapping_as_a_terminal_does() {
        let text = chars("abcdefgh");
        // "> abcdefgh" on 5 columns: "> abc", "defgh", then waiting to wrap.
        let p = place(2, &text, 8, 5);
        assert_eq!((p.cursor, p.end, p.at_edge), ((2, 0), (2, 0), true));
        assert_eq!(place(2, &text, 3, 5).cursor, (1, 0));
        assert_eq!(place(2, &text, 0, 80).cursor, (0, 2));
        // A wide character that would straddle the edge goes to the next row.
        let wide = chars("ab日");
        let p = place(2, &wide, 2, 5);
        assert_eq!((p.cursor, p.end, p.at_edge), ((1, 0), (1, 2), false));
    }

    /// A terminal `rows` x `cols` with `bob: hi` shown, and the input drawn below
    /// it as the console does for each change: erase what was drawn, draw again.
    struct Input {
        vt: Vt,
        view: View,
        row: Option<usize>,
        height: usize,
        cols: usize,
    }

    impl Input {
        fn new(rows: usize, cols: usize) -> Input {
            let mut vt = Vt::new(rows, cols);
            vt.feed(b"bob: hi\r\n");
            Input {
                vt,
                view: View::default(),
                row: None,
                height: rows - 1,
                cols,
            }
        }

        fn draw(&mut self, text: &[char], cursor: usize, above: &[u8]) {
            let mut out = Vec::new();
            if let Some(row) = self.row {
                erase(&mut out, row);
            }
            out.extend_from_slice(above);
            let size = (self.cols, self.height);
            let row = draw(&mut out, b"> ", 2, (text, cursor), size, &mut self.view);
            self.row = Some(row);
            self.vt.feed(&out);
        }
    }

    /// Draws, shows a line above, draws again: what the console does per message.
    fn message_over_input(cols: usize, text: &str, cursor: usize) -> (Vt, usize) {
        let text = chars(text);
        let mut vt = Vt::new(12, cols);
        let mut out = Vec::new();
        let mut view = View::default();
        let row = draw(&mut out, b"> ", 2, (&text, cursor), (cols, 11), &mut view);
        vt.feed(&out);
        out.clear();
        erase(&mut out, row);
        out.extend_from_slice(b"bob: hi\r\n");
        let row = draw(&mut out, b"> ", 2, (&text, cursor), (cols, 11), &mut view);
        vt.feed(&out);
        (vt, row)
    }

    #[test]
    fn a_message_goes_above_a_wrapped_input_that_stays_whole() {
        for cursor in [0, 5, 29, 30] {
            let (vt, _) = message_over_input(10, "0123456789abcdefghijklmnopqrst", cursor);
            assert_eq!(
                vt.lines(),
                ["bob: hi", "> 01234567", "89abcdefgh", "ijklmnopqr", "st"],
                "cursor {cursor}"
            );
        }
        // Exactly at the edge, with the cursor at the end: the space that takes the
        // wrap is cleared with the rest.
        let (vt, row) = message_over_input(10, "01234567", 8);
        assert_eq!(vt.lines(), ["bob: hi", "> 01234567"]);
        assert_eq!((vt.row, vt.col, row), (2, 0, 1));
    }

    #[test]
    fn the_cursor_lands_on_its_character() {
        let text = chars("日本語のテキスト");
        for cursor in 0..=text.len() {
            let (vt, _) = message_over_input(7, "日本語のテキスト", cursor);
            let p = place(2, &text, cursor, 7);
            assert_eq!((vt.row - 1, vt.col), p.cursor, "cursor {cursor}");
            if cursor < text.len() {
                assert_eq!(vt.cells[vt.row][vt.col], text[cursor]);
            }
        }
    }

    /// The rows `place` gives `text` after the prompt, as the terminal shows them.
    fn layout_rows(text: &[char], cols: usize) -> Vec<String> {
        let mut rows = vec![String::from("> ")];
        lay_out(2, text, cols, |k, row, _| {
            if row == rows.len() {
                rows.push(String::new());
            }
            if width(text[k]) > 0 {
                rows[row].push(text[k]); // as the terminal keeps it: marks dropped
            }
        });
        rows.iter().map(|r| r.trim_end().to_string()).collect()
    }

    /// Types `text` a character at a time into a 5-row terminal, then walks the
    /// cursor back to the start and forth to the end, checking after each draw that
    /// the cursor is on its character, the input shows only whole rows of its
    /// layout around the cursor, and `bob: hi` stays on the top row with nothing
    /// scrolled off.
    fn walk_a_tall_input(text: &str, cols: usize) {
        let text = chars(text);
        let want = layout_rows(&text, cols);
        let mut t = Input::new(5, cols);
        let check = |t: &mut Input, typed: &[char], cursor: usize| {
            t.draw(typed, cursor, b"");
            let lines = t.vt.lines();
            assert_eq!(lines[0], "bob: hi", "cursor {cursor}");
            assert!(t.vt.scrolled.is_empty(), "{:?}", t.vt.scrolled);
            let shown = &lines[1..];
            assert!(shown.len() <= 4, "{lines:?}");
            if typed.len() == text.len() {
                let top = t.view.top;
                assert_eq!(shown, &want[top..top + shown.len()], "cursor {cursor}");
            }
            if cursor < typed.len() && width(typed[cursor]) > 0 {
                let c = t.vt.cells[t.vt.row][t.vt.col];
                assert_eq!(c, typed[cursor], "cursor {cursor}: {lines:?}");
            } else if cursor == typed.len() {
                let p = place(2, typed, cursor, cols);
                assert_eq!(t.vt.col, p.cursor.1, "at the end: {lines:?}");
            }
        };
        for n in 0..=text.len() {
            check(&mut t, &text[..n], n);
        }
        for cursor in (0..text.len()).rev().chain(1..=text.len()) {
            check(&mut t, &text, cursor);
        }
        // A line above a scrolled input: it goes above, the input stays as it was.
        let before = t.vt.lines()[1..].to_vec();
        t.draw(&text, text.len(), b"c: yo\r\n");
        assert_eq!(t.vt.scrolled, ["bob: hi"]);
        assert_eq!(t.vt.lines()[0], "c: yo");
        assert_eq!(t.vt.lines()[1..], before);
    }

    #[test]
    fn an_input_taller_than_the_screen_shows_the_rows_around_the_cursor() {
        let text: String = (0..12).map(|k| format!("word{k:02} ")).collect();
        walk_a_tall_input(&text, 10);
        // Rows that end exactly at the edge, and an input that ends there too.
        walk_a_tall_input(&"0123456789".repeat(6)[2..], 10);
    }

    #[test]
    fn a_tall_input_of_wide_characters_scrolls_with_the_cursor_on_its_character() {
        // Odd widths: a wide character straddling the edge goes to the next row.
        walk_a_tall_input("日本語のテキストa日本語のテキストbカタカナ漢字ひらがなc", 9);
        walk_a_tall_input(
            "e\u{301}日本語のテキストと e\u{301}mojis 🎉🎉🎉 and more",
            7,
        );
    }

    #[test]
    fn the_view_stays_put_while_the_cursor_moves_within_it() {
        let text = chars(&"abcdefghij".repeat(10));
        let mut t = Input::new(5, 10);
        t.draw(&text, text.len(), b"");
        let bottom = t.view.top;
        assert_eq!(bottom, 7, "rows 7..=10: the last row is the cursor's");
        t.draw(&text, 75, b""); // row 7: still in sight
        assert_eq!(t.view.top, bottom);
        t.draw(&text, 60, b""); // row 6: the view follows it up by one row
        assert_eq!(t.view.top, 6);
        t.draw(&text, 0, b"");
        assert_eq!((t.view.top, t.vt.lines()[1].as_str()), (0, "> abcdefgh"));
        assert_eq!((t.vt.row, t.vt.col), (1, 2));
        // The text shrinks under the view: no empty rows below it.
        let short = &text[..30];
        t.draw(short, 30, b"");
        assert_eq!(t.view.top, 0);
        assert_eq!(t.vt.lines().len(), 1 + 4);
    }
}
