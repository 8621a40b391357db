//! The transcript kept for Page Up and Page Down: the last [`LINES`] lines shown
//! (at most [`BYTES`] of them), as they were drawn, styles and time stamps
//! included.
//!
//! At the bottom the window draws nothing from here: a new line is written above
//! the input and the terminal scrolls, as it always did, so the terminal's own
//! scrollback keeps working. Page Up paints the screen from this copy instead,
//! row by row from the top; while the view is up, new lines are kept here but not
//! drawn, so the view stays where the user put it, and the status line counts
//! them. Page Down back to the bottom paints the newest lines and the window
//! writes new lines as before.

use std::collections::VecDeque;

use super::width::width;

/// Lines kept for scrolling back.
pub const LINES: usize = 5000;
/// Bytes those lines may hold together: a flood of 64 KiB lines keeps fewer.
const BYTES: usize = 4 * 1024 * 1024;

/// The lines kept and where the view is.
#[derive(Debug, Default)]
pub struct Transcript {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    /// While scrolled up: how many lines are below the view.
    below: Option<usize>,
}

impl Transcript {
    /// Keeps a line as drawn, without its line end.
    pub fn push(&mut self, line: &[u8]) {
        self.lines.push_back(line.to_vec());
        self.bytes += line.len();
        while self.lines.len() > LINES || (self.bytes > BYTES && self.lines.len() > 1) {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len();
            }
        }
        if let Some(b) = &mut self.below {
            // The view stays on the lines it shows; the oldest may have gone.
            *b = (*b + 1).min(self.lines.len().saturating_sub(1));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Lines below the view while scrolled up; `None` at the bottom.
    pub fn below(&self) -> Option<usize> {
        self.below
    }

    /// Page Up: `page` lines further back, but no further than a view of `area`
    /// rows `cols` wide with the first line at its top.
    pub fn page_up(&mut self, page: usize, cols: usize, area: usize) -> bool {
        let (mut rows, mut first_view) = (0, 0);
        while first_view < self.lines.len() && rows < area {
            rows += rows_of(&self.lines[first_view], cols);
            first_view += 1;
        }
        let most = self.lines.len() - first_view.max(1).min(self.lines.len());
        let now = self.below.unwrap_or(0);
        let next = (now + page.max(1)).min(most);
        if next == now {
            return false;
        }
        self.below = Some(next);
        true
    }

    /// Page Down: `page` lines on, back at the bottom at the end.
    pub fn page_down(&mut self, page: usize) -> bool {
        let Some(now) = self.below else { return false };
        let next = now.saturating_sub(page.max(1));
        self.below = (next > 0).then_some(next);
        true
    }

    /// Back at the bottom.
    pub fn bottom(&mut self) {
        self.below = None;
    }

    /// Writes `area` rows of a screen `cols` wide, from the cursor's row (at its
    /// first column) down, each cleared first: the lines that end the view at its
    /// bottom, blank rows above them when they do not fill it. A line taller than
    /// the whole area shows its first rows.
    pub fn paint(&self, out: &mut Vec<u8>, cols: usize, area: usize) {
        let end = self.lines.len() - self.below.unwrap_or(0).min(self.lines.len());
        let mut used = 0;
        let mut first = end;
        while first > 0 {
            let rows = rows_of(&self.lines[first - 1], cols);
            if used + rows > area && first < end {
                break;
            }
            used += rows;
            first -= 1;
            if used >= area {
                break;
            }
        }
        for _ in used..area {
            out.extend_from_slice(b"\x1b[2K\r\n");
        }
        let mut left = area;
        for line in self.lines.range(first..end) {
            let rows = rows_of(line, cols);
            clear_rows(out, rows.min(left));
            if rows > left {
                out.extend_from_slice(cut(line, cols, left));
                out.extend_from_slice(b"\x1b[0m\r\n");
                return;
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            left -= rows;
        }
    }
}

/// Clears `rows` rows from the cursor's down, and comes back to the first: a
/// wrapped line overwrites its rows only as far as it reaches.
fn clear_rows(out: &mut Vec<u8>, rows: usize) {
    out.extend_from_slice(b"\x1b[2K");
    for _ in 1..rows {
        out.extend_from_slice(b"\x1b[B\x1b[2K");
    }
    if rows > 1 {
        let _ = std::io::Write::write_fmt(out, format_args!("\x1b[{}A", rows - 1));
    }
    out.push(b'\r');
}

/// Calls `f(at, row)` for each character of `line` (escape sequences skipped),
/// with its byte offset and the row it is drawn on, wrapped at `cols` as the
/// terminal wraps it; returns the rows the line takes.
fn lay_out(line: &[u8], cols: usize, mut f: impl FnMut(usize, usize)) -> usize {
    let cols = cols.max(2);
    let (mut row, mut col) = (0, 0);
    let text = String::from_utf8_lossy(line);
    let mut chars = text.char_indices().peekable();
    while let Some((k, c)) = chars.next() {
        if c == '\x1b' {
            // An SGR sequence we wrote: ESC [ params final.
            while let Some(&(_, d)) = chars.peek() {
                chars.next();
                if d != '[' && ('\x40'..='\x7e').contains(&d) {
                    break;
                }
            }
            continue;
        }
        let w = width(c);
        if w > 0 && col + w > cols {
            row += 1;
            col = 0;
        }
        f(k, row);
        col += w;
    }
    row + 1
}

/// The rows `line` takes on a screen `cols` wide.
pub fn rows_of(line: &[u8], cols: usize) -> usize {
    lay_out(line, cols, |_, _| {})
}

/// The start of `line` that fits in `rows` rows.
fn cut(line: &[u8], cols: usize, rows: usize) -> &[u8] {
    let mut end = line.len();
    lay_out(line, cols, |k, row| {
        if row >= rows && end == line.len() {
            end = k;
        }
    });
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::super::vt::Vt;
    use super::*;

    fn transcript(n: usize) -> Transcript {
        let mut t = Transcript::default();
        for k in 0..n {
            t.push(format!("line {k}").as_bytes());
        }
        t
    }

    fn painted(t: &Transcript, cols: usize, area: usize) -> Vec<String> {
        let mut vt = Vt::new(area + 1, cols);
        // What an earlier paint left: every row full.
        for _ in 0..area {
            vt.feed(&vec![b'#'; cols]);
            vt.feed(b"\r\n");
        }
        vt.feed(b"\x1b[H");
        vt.scrolled.clear();
        let mut out = Vec::new();
        t.paint(&mut out, cols, area);
        vt.feed(&out);
        assert!(vt.scrolled.is_empty(), "painting never scrolls");
        vt.lines()
    }

    #[test]
    fn paging_moves_the_view_and_new_lines_do_not() {
        let mut t = transcript(100);
        assert_eq!(painted(&t, 20, 3), ["line 97", "line 98", "line 99"]);
        assert!(t.page_up(10, 20, 3));
        assert_eq!(painted(&t, 20, 3), ["line 87", "line 88", "line 89"]);
        t.push(b"line 100");
        assert_eq!(t.below(), Some(11));
        assert_eq!(painted(&t, 20, 3), ["line 87", "line 88", "line 89"]);
        assert!(t.page_up(1000, 20, 3));
        assert_eq!(painted(&t, 20, 3), ["line 0", "line 1", "line 2"]);
        assert!(!t.page_up(1, 20, 3), "not past the first page");
        t.page_down(1000);
        assert_eq!(t.below(), None);
        assert!(!t.page_down(1));
    }

    #[test]
    fn wrapped_and_styled_lines_take_their_rows() {
        let mut t = Transcript::default();
        t.push(b"\x1b[2m12:00\x1b[0m -- a long event line");
        t.push("日本語のテキスト".as_bytes());
        assert_eq!(rows_of(b"\x1b[2m12:00\x1b[0m 0123", 10), 1);
        assert_eq!(
            painted(&t, 10, 6),
            [
                "",
                "12:00 -- a",
                " long even",
                "t line",
                "日本語のテ",
                "キスト"
            ]
        );
        assert_eq!(painted(&t, 10, 2), ["日本語のテ", "キスト"]);
        let mut tall = Transcript::default();
        tall.push(&[b'x'; 50]);
        assert_eq!(painted(&tall, 10, 2), ["x".repeat(10), "x".repeat(10)]);
    }

    #[test]
    fn the_kept_lines_are_bounded() {
        let t = transcript(LINES + 5);
        assert_eq!(t.len(), LINES);
        let mut t = Transcript::default();
        let big = vec![b'x'; 64 * 1024];
        for _ in 0..100 {
            t.push(&big);
        }
        assert!(t.len() * big.len() <= BYTES);
    }
}
