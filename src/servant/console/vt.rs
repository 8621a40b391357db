//! A terminal just large enough to check what the console draws: printable
//! characters with their widths and the wrap an xterm does, CR, LF, cursor up
//! (stopping at the top row, as a real one does) and forward, erase to the end of
//! the line and of the screen, scrolling into a history, and SGR sequences
//! (ignored). Unit tests only.

use super::width::width;

/// A screen of `rows` by `cols` cells, a cursor, and the rows scrolled off the top.
pub struct Vt {
    pub cells: Vec<Vec<char>>,
    pub row: usize,
    pub col: usize,
    /// Rows that scrolled off the top, oldest first, trailing blanks trimmed: what a
    /// user scrolling back would see.
    pub scrolled: Vec<String>,
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
            scrolled: Vec::new(),
            pending: false,
            cols,
        }
    }

    /// The screen's rows, trailing blanks trimmed.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self.cells.iter().map(|r| text(r)).collect();
        while v.last().is_some_and(String::is_empty) {
            v.pop();
        }
        v
    }

    fn line_feed(&mut self) {
        if self.row + 1 == self.cells.len() {
            let gone = self.cells.remove(0);
            self.scrolled.push(text(&gone));
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
                        'B' => self.row = (self.row + arg).min(self.cells.len() - 1),
                        'C' => self.col = (self.col + arg).min(self.cols - 1),
                        'K' if n == "2" => self.cells[self.row].fill(' '),
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

/// A row as text: the second cell of a wide character dropped, trailing blanks trimmed.
fn text(row: &[char]) -> String {
    let s: String = row.iter().filter(|&&c| c != '\0').collect();
    s.trim_end().to_string()
}
