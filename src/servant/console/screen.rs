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
//! A terminal resized while the input is on screen rewraps it (tmux, VTE, kitty,
//! iTerm and alacritty all reflow): the cursor keeps its place in the text, so its
//! row is [`place`]'s at the new width.

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

/// Lays out a prompt `prompt` columns wide followed by `text` on a screen `cols`
/// wide, with the cursor before `text[cursor]`.
pub fn place(prompt: usize, text: &[char], cursor: usize, cols: usize) -> Placed {
    let cols = cols.max(prompt + 2);
    let (mut row, mut col) = (0, prompt);
    let mut at = None;
    for (k, &c) in text.iter().enumerate() {
        let w = width(c);
        if w > 0 && col + w > cols {
            row += 1;
            col = 0;
        }
        if k == cursor {
            at = Some((row, col));
        }
        col += w;
    }
    let at_edge = col == cols;
    let end = if at_edge { (row + 1, 0) } else { (row, col) };
    Placed {
        cursor: at.unwrap_or(end),
        end,
        at_edge,
    }
}

/// Moves from the input's cursor row to the start of the prompt's row and clears
/// from there to the end of the screen: the input is gone, the transcript above
/// it untouched.
pub fn erase(out: &mut Vec<u8>, cursor_row: usize) {
    out.push(b'\r');
    if cursor_row > 0 {
        let _ = write!(out, "\x1b[{cursor_row}A");
    }
    out.extend_from_slice(b"\x1b[J");
}

/// Writes the prompt (already styled, `prompt_cols` wide) and `text`, then puts the
/// cursor before `text[cursor]`. Returns the cursor's row, for [`erase`].
pub fn draw(
    out: &mut Vec<u8>,
    prompt: &[u8],
    prompt_cols: usize,
    text: &[char],
    cursor: usize,
    cols: usize,
) -> usize {
    out.extend_from_slice(prompt);
    let mut utf8 = [0; 4];
    for &c in text {
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
    let p = place(prompt_cols, text, cursor, cols);
    if p.at_edge {
        // Take the pending wrap now, with a space the next draw overwrites or
        // clears, so the cursor is where `place` says. (`\r\n` would do it too,
        // but would end the row for good: a reflowing terminal would then keep
        // a broken line after a resize.)
        out.extend_from_slice(b" \r");
    }
    let up = p.end.0 - p.cursor.0;
    if up > 0 {
        let _ = write!(out, "\x1b[{up}A");
    }
    if p.end.1 != p.cursor.1 || up > 0 {
        out.push(b'\r');
        if p.cursor.1 > 0 {
            let _ = write!(out, "\x1b[{}C", p.cursor.1);
        }
    }
    p.cursor.0
}

#[cfg(test)]
pub(super) mod vt {
    //! A terminal just large enough to check what the console draws: printable
    //! characters with their widths and the wrap an xterm does, CR, LF, cursor up
    //! and forward, erase to the end of the line and of the screen, scrolling, and
    //! SGR sequences (ignored).

    use super::width;

    /// A screen of `rows` by `cols` cells and a cursor.
    pub struct Vt {
        pub cells: Vec<Vec<char>>,
        pub row: usize,
        pub col: usize,
        /// The last column was written: the next character wraps first.
        pending: bool,
        cols: usize,
    }

    impl Vt {
        pub fn new(rows: usize, cols: usize) -> Vt {
            Vt {
                cells: vec![vec![' '; cols]; rows],
                row: 0,
                col: 0,
                pending: false,
                cols,
            }
        }

        /// The screen's rows, trailing blanks trimmed.
        pub fn lines(&self) -> Vec<String> {
            let mut v: Vec<String> = (self.cells.iter())
                .map(|r| r.iter().filter(|&&c| c != '\0').collect::<String>())
                .map(|l| l.trim_end().to_string())
                .collect();
            while v.last().is_some_and(String::is_empty) {
                v.pop();
            }
            v
        }

        fn line_feed(&mut self) {
            if self.row + 1 == self.cells.len() {
                self.cells.remove(0);
                self.cells.push(vec![' '; self.cols]);
            } else {
                self.row += 1;
            }
        }

        pub fn feed(&mut self, bytes: &[u8]) {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\r' => (self.col, self.pending) = (0, false),
                    '\n' => {
                        self.pending = false;
                        self.line_feed();
                    }
                    '\x07' => {}
                    '\x1b' => {
                        assert_eq!(chars.next(), Some('['), "only CSI sequences");
                        let mut n = String::new();
                        let fin = loop {
                            let c = chars.next().expect("a complete sequence");
                            if c.is_ascii_digit() || c == ';' {
                                n.push(c);
                            } else {
                                break c;
                            }
                        };
                        let arg = n.parse::<usize>().unwrap_or(1).max(1);
                        self.pending = false;
                        match fin {
                            'A' => self.row = self.row.saturating_sub(arg),
                            'C' => self.col = (self.col + arg).min(self.cols - 1),
                            'K' => self.cells[self.row][self.col..].fill(' '),
                            'J' => {
                                self.cells[self.row][self.col..].fill(' ');
                                for r in &mut self.cells[self.row + 1..] {
                                    r.fill(' ');
                                }
                            }
                            'H' => (self.row, self.col) = (0, 0),
                            'm' => {}
                            other => panic!("unexpected CSI {n}{other}"),
                        }
                    }
                    c => {
                        let w = width(c);
                        if w == 0 {
                            continue;
                        }
                        if self.pending || self.col + w > self.cols {
                            self.col = 0;
                            self.pending = false;
                            self.line_feed();
                        }
                        self.cells[self.row][self.col] = c;
                        if w == 2 {
                            self.cells[self.row][self.col + 1] = '\0';
                        }
                        self.col += w;
                        if self.col == self.cols {
                            self.col -= 1;
                            self.pending = true;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::vt::Vt;
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

    /// Draws, shows a line above, draws again: what the console does per message.
    fn message_over_input(cols: usize, text: &str, cursor: usize) -> (Vt, usize) {
        let text = chars(text);
        let mut vt = Vt::new(12, cols);
        let mut out = Vec::new();
        let row = draw(&mut out, b"> ", 2, &text, cursor, cols);
        vt.feed(&out);
        out.clear();
        erase(&mut out, row);
        out.extend_from_slice(b"bob: hi\r\n");
        let row = draw(&mut out, b"> ", 2, &text, cursor, cols);
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
}
