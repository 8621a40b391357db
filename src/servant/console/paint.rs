//! Drawing a turn's output on the terminal: the lines gathered above the input,
//! each after its time stamp and kept in the transcript; the status line; the
//! input. At the bottom the lines are written where the input was and the terminal
//! scrolls; scrolled up (Page Up), the screen is painted from the transcript
//! instead (`transcript.rs`), and new lines only change the status line's count.

use log::Level;

use super::out::emit_drawn;
use super::{screen, Console, EVENTS, PROMPT, PROMPT_COLS, SEND};

impl Console {
    /// Moves the log records kept for the console above the input, as dim lines,
    /// so that they stand in order among the events and messages shown around them.
    pub(super) fn take_log(&mut self) {
        let Some(s) = &mut self.screen else { return };
        let dropped = crate::logging::take_for_console(&mut s.records);
        for rec in s.records.drain(..) {
            let target = rec.target.as_str();
            if target == EVENTS || (target == SEND && rec.level == Level::Warn) {
                continue;
            }
            let label = match rec.level {
                Level::Error => "error: ",
                Level::Warn => "warning: ",
                Level::Info => "",
                Level::Debug => "debug: ",
                Level::Trace => "trace: ",
            };
            let line = format!("-- {label}{}", crate::text::escape(&rec.text));
            self.style.dim_line(&mut s.above, &line, b"\r\n");
        }
        if dropped > 0 {
            let line = format!("-- {dropped} log lines were not shown (too many at once)");
            self.style.dim_line(&mut s.above, &line, b"\r\n");
        }
    }

    /// Every transcript line shown on a terminal passes here, once: gathered in
    /// `above` (each ending in `\r\n`), it gets its time stamp and is kept for
    /// Page Up; returns them as they are to be written.
    fn stamp_lines(&mut self) -> Vec<u8> {
        let Some(s) = &mut self.screen else {
            return Vec::new();
        };
        let above = std::mem::take(&mut s.above);
        if above.is_empty() {
            return above;
        }
        let now = self.stamps.then(super::stamp::now);
        let (dim, reset) = self.style.dim_parts();
        let mut out = Vec::with_capacity(above.len() + 16);
        for line in above.split_inclusive(|&b| b == b'\n') {
            let start = out.len();
            if let Some(now) = &now {
                out.extend_from_slice(dim);
                out.extend_from_slice(now);
                out.extend_from_slice(reset);
                out.push(b' ');
            }
            out.extend_from_slice(line);
            let body = out[start..].strip_suffix(b"\r\n").unwrap_or(&out[start..]);
            s.transcript.push(body);
        }
        out
    }

    /// Draws what this handler gathered: the lines above the input, then the status
    /// line and the input again. Nothing is written when nothing changed.
    pub fn settle(&mut self) {
        self.take_log();
        let Some(s) = &self.screen else { return };
        if s.above.is_empty() && !s.dirty && !s.clear && !s.bell && !s.repaint {
            return;
        }
        let lines = self.stamp_lines();
        let Some(s) = &mut self.screen else { return };
        // Asked each time: SIGWINCH may still be on its way when a message arrives,
        // and a draw at the old width would leave rows of the input behind.
        if let Some((cols, rows)) = s.modes.size() {
            if cols != s.cols {
                s.resized(cols);
            }
            if rows != s.rows {
                s.repaint |= s.transcript.below().is_some();
            }
            s.rows = rows;
        }
        let shown = !s.closed && s.modes.raw;
        let prompt = s.editor.search_prompt();
        let (prompt, prompt_cols) = match &prompt {
            Some(p) => (p.as_bytes(), super::str_width(p)),
            None => (PROMPT, PROMPT_COLS),
        };
        // Rows for the input: all but one for the transcript and one for the status.
        let height = s.rows.saturating_sub(2).max(1);
        let input = (s.editor.text(), s.editor.cursor());
        let input_rows = screen::place(prompt_cols, input.0, input.1, s.cols).end.0 + 1;
        let block = if shown { 1 + input_rows.min(height) } else { 0 };
        if s.closed && s.transcript.below().is_some() {
            s.transcript.bottom(); // leaving shows the newest lines
            s.repaint = true;
        }
        let scrolled = s.transcript.below().is_some();
        let paint = s.repaint || (scrolled && (s.clear || block != s.block));
        let out = &mut self.scratch;
        out.clear();
        let was = s.drawn.take();
        let mut written = 0;
        if paint {
            // Row by row from the top: an erase of the whole screen is what tmux
            // takes for clearing it, and would copy it into its history.
            out.extend_from_slice(b"\x1b[H");
            s.transcript
                .paint(out, s.cols, s.rows.saturating_sub(block));
            out.extend_from_slice(b"\x1b[J");
            s.block = block;
        } else {
            if let Some(row) = was {
                screen::erase(out, row);
            }
            if s.clear {
                out.extend_from_slice(b"\x1b[H\x1b[2J");
            }
            if !scrolled {
                // Each ends in `\n`, which escaped text never holds.
                written = memchr::memchr_iter(b'\n', &lines).count() as u64;
                out.extend_from_slice(&lines);
            }
        }
        s.clear = false;
        s.repaint = false;
        if std::mem::take(&mut s.bell) {
            out.push(0x07);
        }
        s.dirty = false;
        let mut redraw = None;
        if shown {
            redraw = Some(out.len());
            s.view_before.clone_from(&s.view);
            let status = s.status.text(s.transcript.below(), s.cols);
            s.status_cols = super::str_width(&status);
            let (on, off): (&[u8], &[u8]) = if self.style.on {
                (b"\x1b[7m", b"\x1b[0m")
            } else {
                (b"", b"")
            };
            out.extend_from_slice(on);
            out.extend_from_slice(status.as_bytes());
            out.extend_from_slice(off);
            out.extend_from_slice(b"\r\n");
            let size = (s.cols, height);
            let row = screen::draw(out, prompt, prompt_cols, input, size, &mut s.view);
            s.drawn = Some(row + 1);
            if !scrolled {
                s.block = block;
            }
        }
        if emit_drawn(out, written + std::mem::take(&mut s.stands_for)) {
            let redraw = redraw.map_or(&[][..], |k| &out[k..]);
            s.frame_notes(&self.style, s.drawn, redraw);
        } else {
            // Dropped, and counted: the terminal is not taking output. It shows
            // what it last took, then the queue's note, framed to leave the input
            // as that drew it; the next draw starts from there.
            s.drawn = was;
            if redraw.is_some() {
                std::mem::swap(&mut s.view, &mut s.view_before);
            }
            s.dirty = true;
            s.repaint |= paint;
            if s.closed {
                s.frame_notes(&self.style, was, b""); // and not drawn again
            }
        }
    }
}
