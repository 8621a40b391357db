//! The article's chat window on a terminal: `txtChat1` (the transcript),
//! `txtSend1` (the line being typed) and the events a user wants to see, all on
//! stdout; and stdin, read on the loop.
//!
//! **On a terminal** (stdin and stdout both) the console owns the screen. The
//! prompt and the half-typed line stay at the bottom, however long the line and
//! whatever the width; everything shown (chat, joins and leaves, warnings, the
//! answers to commands) goes above it. Each handler's output is gathered and drawn
//! once when the handler returns ([`Console::settle`]): erase the input, write the
//! lines, draw the input again (`screen.rs`); of an input taller than the screen,
//! the rows around the cursor. The console edits the line itself
//! (`editor.rs`, `keys.rs`) in raw mode (`term.rs`); a resize redraws, Ctrl-Z gives the
//! terminal back before stopping and `fg` takes it again, and every way out
//! restores it. Log records do not go to stderr there, which would write through
//! the prompt: warnings and errors are shown as dim lines, routine records only
//! when asked for ([`crate::logging::route_to_console`]).
//!
//! **On pipes and files** stdout carries one line per chat message and nothing
//! else, as it always did, so scripts and tests can read it; logs go to stderr.
//!
//! In both, peer text is escaped ([`crate::text::escape_bytes`]) before it is
//! written: a peer cannot drive the user's terminal, or fake a line in a log a
//! terminal will show later. Everything goes through the loop's bounded stdout
//! queue ([`crate::reactor::stdio`]), written once per loop turn: a terminal or
//! pipe that stops taking output costs chat lines (counted, and said once it
//! drains), never the servant's loop. On a terminal the notes that say so are
//! event lines above the input like any other, the queue's own included: the
//! console tells the queue how to frame it (`Screen::frame_notes`).
//!
//! stdin is read on the loop too ([`Console::read_stdin`]) but, unlike stdout,
//! without a non-blocking description of its own: the terminal's settings are
//! changed through it and its reads are whole keystrokes, so it is read only after
//! a zero-timeout `poll` says a read will not block. It is never set O_NONBLOCK:
//! on a terminal, fds 0, 1 and 2 share one open file description with the shell,
//! whose writes would then fail with EAGAIN whenever the terminal is slow.

mod complete;
mod editor;
mod history;
mod keys;
mod out;
mod paint;
mod private;
mod screen;
mod search;
mod sender;
mod stamp;
mod status;
mod style;
mod term;
mod transcript;
#[cfg(test)]
mod vt;
mod width;

use std::io;
use std::net::IpAddr;

use log::warn;

pub use sender::Sender;
pub use status::LinkState;
pub use term::{is_tty, stdin_is_null};
pub use width::str_width;

use crate::logging::ConsoleRecord;
use crate::reactor::signals;
use crate::reactor::stdio::{STDERR, STDOUT};
use crate::reactor::{Reactor, READ_BUDGET, READ_CHUNK};
use editor::{Editor, Effect};
use history::HistoryFile;
use keys::{Key, KeyReader};
use out::{emit, PIPE_STAMPS};
use status::Status;
use style::Style;
use term::Modes;
use transcript::Transcript;

/// The id stdin is watched under ([`crate::reactor::Handler::fd_ready`]).
const STDIN: usize = 0;
/// How long Ctrl-Z waits for what was drawn to reach a terminal that is slow.
const SUSPEND_FLUSH: std::time::Duration = std::time::Duration::from_millis(200);
const PROMPT: &[u8] = b"> ";
const PROMPT_COLS: usize = 2;
/// Events are shown as event lines, so their log records are not shown again.
const EVENTS: &str = "p2pchat::servant::events";
/// Its warnings say a peer cannot be reached, every 10 s; the event says it once.
const SEND: &str = "p2pchat::servant::send";
/// Where a peer's cut message is logged, as it always was.
const INCOMING: &str = "p2pchat::servant::incoming";

/// Has the loop report stdin to [`crate::reactor::Handler::fd_ready`].
pub fn watch_stdin<T>(r: &mut Reactor<T>) -> io::Result<()> {
    r.watch_fd(0, STDIN)
}

/// Where chat, events and answers go, and where what the user types comes from.
pub struct Console {
    style: Style,
    /// On a terminal: the screen the console owns.
    screen: Option<Screen>,
    /// Reused for each message (pipes) or each redraw (terminal).
    scratch: Vec<u8>,
    /// Reused for reading stdin; allocated on the first read.
    input: Vec<u8>,
    /// `HH:MM ` before each transcript line.
    stamps: bool,
}

/// The terminal's state as the console drew it, and the line being typed.
struct Screen {
    modes: Modes,
    editor: Editor,
    keys: KeyReader,
    /// The terminal's size when last asked.
    cols: usize,
    rows: usize,
    /// The input is on screen, the cursor this many rows below its first row drawn.
    drawn: Option<usize>,
    /// Which rows of the input are drawn, and what they hold; and the same before
    /// this turn's drawing, for when stdout drops that.
    view: screen::View,
    view_before: screen::View,
    /// Lines to show above the input at the next [`Console::settle`], each ending
    /// in `\r\n`.
    above: Vec<u8>,
    /// The input changed since it was drawn.
    dirty: bool,
    /// Ctrl-L or `/clear`: clear the screen first.
    clear: bool,
    bell: bool,
    /// Lines dropped before they reached the queue that the notes in `above` stand
    /// for besides their own lines ([`Console::lost`]).
    stands_for: u64,
    /// Leaving: the input is not drawn again.
    closed: bool,
    /// We stopped ourselves (Ctrl-Z): after `fg` the cursor is on a fresh line.
    suspended: bool,
    records: Vec<ConsoleRecord>,
    /// How stdout's own loss note is framed now ([`Screen::frame_notes`]), kept
    /// here too for the unit tests.
    note_before: Vec<u8>,
    note_after: Vec<u8>,
    /// What was shown, for Page Up; and the status line above the input.
    transcript: Transcript,
    status: Status,
    /// The status line's width as drawn, to know its rows after a resize.
    status_cols: usize,
    /// Paint the whole screen from the transcript (scrolled up, or back down).
    repaint: bool,
    /// Rows the status line and input took at the last paint.
    block: usize,
    /// Where typed lines are kept for the next run, if anywhere.
    history: Option<HistoryFile>,
}

impl Screen {
    fn new(modes: Modes, (cols, rows): (usize, usize)) -> Screen {
        Screen {
            modes,
            editor: Editor::default(),
            keys: KeyReader::default(),
            cols,
            rows,
            drawn: None,
            view: screen::View::default(),
            view_before: screen::View::default(),
            above: Vec::new(),
            dirty: true,
            clear: false,
            bell: false,
            stands_for: 0,
            closed: false,
            suspended: false,
            records: Vec::new(),
            note_before: Vec::new(),
            note_after: Vec::new(),
            transcript: Transcript::default(),
            status: Status::default(),
            status_cols: 0,
            repaint: false,
            block: 0,
            history: None,
        }
    }

    /// The terminal is `cols` wide now and has rewrapped the input: the cursor's
    /// row is the one at the new width.
    fn resized(&mut self, cols: usize) {
        self.cols = cols;
        if self.drawn.is_some() {
            // The status line above the input rewraps too.
            let status = self.status_cols.div_ceil(cols.max(1)).max(1);
            self.drawn = Some(self.view.cursor_row(cols) + status);
        }
        self.repaint |= self.transcript.below().is_some();
    }

    /// Tells stdout's queue how to frame the note it writes when it drains after
    /// dropping lines. The note goes out right after the last bytes the queue took
    /// before the loss, so it finds the screen as they leave it: the input drawn
    /// with the cursor `drawn` rows below its first row (or a fresh line, `None`),
    /// whose drawing `redraw` repeats. So the note erases that input, stands as a
    /// dim event line, and draws the input again: the screen is then just as the
    /// console believes it to be.
    fn frame_notes(&mut self, style: &Style, drawn: Option<usize>, redraw: &[u8]) {
        let (dim, reset) = style.dim_parts();
        let (before, after) = (&mut self.note_before, &mut self.note_after);
        before.clear();
        after.clear();
        if let Some(row) = drawn {
            screen::erase(before, row);
        }
        before.extend_from_slice(dim);
        before.extend_from_slice(b"-- ");
        after.extend_from_slice(reset);
        after.extend_from_slice(b"\r\n");
        after.extend_from_slice(redraw);
        if !cfg!(test) {
            STDOUT.frame_notes(Some((before, after)));
        }
    }
}

/// What keystrokes, or one turn's reads of stdin, amount to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Edited {
    /// On a terminal, complete lines, each ending in `\n`; from a pipe or file,
    /// what was read, which may end mid-line.
    pub lines: Vec<u8>,
    /// Ctrl-D on an empty line, or the end of a pipe or file.
    pub eof: bool,
}

impl Console {
    /// A console that owns the terminal when `terminal` (stdin and stdout are
    /// terminals) and raw mode can be had; a plain one otherwise.
    pub fn new(terminal: bool) -> Self {
        let screen = (terminal.then(Modes::enter).flatten()).map(|m| Screen::new(m, term::size()));
        Console {
            style: Style::for_stdout(is_tty(1)),
            screen,
            scratch: Vec::new(),
            input: Vec::new(),
            stamps: false,
        }
    }

    /// Takes over the terminal, once the loop can be woken: its signals, and the
    /// log records that would otherwise go to stderr; and the history of earlier
    /// runs. Time stamps as `config` says (on a terminal unless asked not to).
    pub fn start(&mut self, config: &crate::servant::Config) {
        self.set_timestamps(config.timestamps);
        let Some(s) = &mut self.screen else { return };
        s.status.name.clone_from(&config.name);
        let no_history = match HistoryFile::open(config.name.as_deref()) {
            Ok((file, lines)) => {
                s.editor.load_history(lines);
                s.history = Some(file);
                None
            }
            Err(why) => Some(why),
        };
        crate::logging::route_to_console(true);
        if let Err(e) = signals::catch_terminal_signals() {
            warn!("cannot catch the terminal's signals ({e}): resizes and Ctrl-Z are not handled");
        }
        self.event("Type a line to chat, /help for commands.");
        if let Some(why) = no_history {
            self.event(&format!("no history kept for the next run: {why}"));
        }
    }

    /// `HH:MM ` before each line: `Some` as asked, `None` on a terminal only.
    pub fn set_timestamps(&mut self, on: Option<bool>) {
        self.stamps = on.unwrap_or(self.screen.is_some());
        PIPE_STAMPS.store(self.stamps, std::sync::atomic::Ordering::Relaxed);
    }

    /// The peer list holds `n` entries (this servant's included), for the status line.
    pub fn set_peer_count(&mut self, n: usize) {
        if let Some(s) = &mut self.screen {
            s.dirty |= s.status.peers != Some(n);
            s.status.peers = Some(n);
        }
    }

    /// The manager link's state, for the status line.
    pub fn set_link(&mut self, link: LinkState) {
        if let Some(s) = &mut self.screen {
            s.dirty |= s.status.link != link;
            s.status.link = link;
        }
    }

    /// On a terminal, not in plain mode.
    pub fn is_screen(&self) -> bool {
        self.screen.is_some()
    }

    /// Reads what stdin has for this turn, at most [`READ_BUDGET`] chunks, each
    /// only after `poll` says it will not block; on a terminal, through the line
    /// editor. At the end of input stdin is no longer watched.
    pub fn read_stdin<T>(&mut self, r: &mut Reactor<T>) -> Edited {
        let mut typed = Edited::default();
        self.input.resize(READ_CHUNK, 0);
        for _ in 0..READ_BUDGET {
            let mut pfd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one valid pollfd, zero timeout.
            if unsafe { libc::poll(&mut pfd, 1, 0) } == 0 {
                return typed; // nothing waiting: a read would block
            }
            // SAFETY: reads into a valid, writable buffer of the given length.
            let n = unsafe { libc::read(0, self.input.as_mut_ptr().cast(), self.input.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return typed,
                    io::ErrorKind::Interrupted => continue,
                    _ => warn!("stdin: {e}; no more input"),
                }
            }
            if n <= 0 {
                typed.eof = true;
            } else if self.screen.is_some() {
                let keys = std::mem::take(&mut self.input);
                self.edit(&keys[..n as usize], &mut typed);
                self.input = keys;
            } else {
                typed.lines.extend_from_slice(&self.input[..n as usize]);
            }
            if typed.eof {
                r.unwatch_fd(STDIN);
                return typed;
            }
        }
        // Budget spent with input perhaps still waiting: no new event will say so.
        r.fd_again(STDIN);
        typed
    }

    /// Applies keystrokes to the line being typed; lines finished with Enter and
    /// Ctrl-D on an empty line go into `typed`.
    fn edit(&mut self, bytes: &[u8], typed: &mut Edited) {
        let Some(s) = &mut self.screen else { return };
        let Screen {
            editor,
            keys,
            dirty,
            clear,
            bell,
            transcript,
            repaint,
            history,
            ..
        } = s;
        // Page Up and Down move by the rows above the status line and input, less one.
        let page = s.rows.saturating_sub(s.block + 1).max(1);
        let (cols, area) = (s.cols, s.rows.saturating_sub(s.block));
        let mut pressed = Vec::new();
        keys.feed(bytes, |key| pressed.push(key));
        let mut k = 0;
        while k < pressed.len() || (editor.search.is_some() && keys.lone_escape()) {
            // Escape alone ends a search; elsewhere it waits for the rest of a sequence.
            let key = pressed.get(k).copied().unwrap_or(Key::Escape);
            k += 1;
            if typed.eof {
                return; // what follows Ctrl-D is not read
            }
            match key {
                Key::PageUp => *repaint |= transcript.page_up(page, cols, area),
                Key::PageDown => *repaint |= transcript.page_down(page),
                _ => match editor.key(key) {
                    Effect::None => {}
                    Effect::Redraw => *dirty = true,
                    Effect::Line(line) => {
                        // The line leaves the input; it is shown once, when our own
                        // copy comes back from the network like everyone else's.
                        if let Some(h) = history {
                            h.append(&line);
                        }
                        typed.lines.extend_from_slice(line.as_bytes());
                        typed.lines.push(b'\n');
                        *dirty = true;
                    }
                    Effect::Eof => typed.eof = true,
                    Effect::ClearScreen => *clear = true,
                    Effect::Bell => *bell = true,
                },
            }
        }
    }

    /// Shows one message a peer sent, as from `sender` ([`sender`]); a cut one is
    /// also logged with the address it came from.
    pub fn peer_message(
        &mut self,
        from: IpAddr,
        sender: Sender<'_>,
        bytes: &[u8],
        truncated: bool,
    ) {
        if bytes.is_empty() && !truncated {
            return;
        }
        if truncated {
            warn!(target: INCOMING, "{from} sent a message over 64 KiB; showing its first 64 KiB");
        }
        self.line(Some(sender), bytes, truncated);
    }

    /// Shows one chat message, escaped, marked when it was cut at the size limit.
    pub fn message(&mut self, bytes: &[u8], truncated: bool) {
        self.line(None, bytes, truncated);
    }

    fn line(&mut self, sender: Option<Sender<'_>>, bytes: &[u8], truncated: bool) {
        self.take_log();
        let text = crate::text::escape_bytes(bytes);
        let (out, eol): (_, &[u8]) = match &mut self.screen {
            Some(s) => (&mut s.above, b"\r\n"),
            None => {
                self.scratch.clear();
                (&mut self.scratch, b"\n")
            }
        };
        match sender.and_then(|s| sender::prefix(s, &text)) {
            Some((marker, true)) => {
                let (dim, reset) = self.style.dim_parts();
                out.extend_from_slice(dim);
                out.extend_from_slice(marker.as_bytes());
                out.extend_from_slice(reset);
                out.extend_from_slice(text.as_bytes());
            }
            Some((name, false)) => self.style.chat_line(out, &format!("{name}{text}")),
            None => self.style.chat_line(out, &text),
        }
        if truncated {
            out.extend_from_slice(b" [truncated]");
        }
        out.extend_from_slice(eol);
        if self.screen.is_none() {
            emit(&self.scratch);
        }
    }

    /// Shows an event (`-- bob (127.0.0.3:2225) joined`) on a terminal. Elsewhere
    /// events are only logged, and stdout stays one line per message.
    pub fn event(&mut self, text: &str) {
        self.take_log();
        if let Some(s) = &mut self.screen {
            let line = format!("-- {}", crate::text::escape(text));
            self.style.dim_line(&mut s.above, &line, b"\r\n");
        }
    }

    /// Says that `lines` lines were dropped before they reached stdout, and why (a
    /// flooding peer rationed): an event on a terminal; elsewhere the
    /// `[N lines lost: WHY]` line stdout's queue writes for its own losses.
    pub fn lost(&mut self, lines: u64, why: &str) {
        if self.screen.is_none() {
            return STDOUT.lost(lines, why);
        }
        self.event(&format!("{lines} lines lost: {why}"));
        if let Some(s) = &mut self.screen {
            s.stands_for += lines.saturating_sub(1);
        }
    }

    /// Shows lines the user asked for (`/peers`, `/help`), each ending in `\n`.
    pub fn reply(&mut self, text: &str) {
        self.take_log();
        match &mut self.screen {
            Some(s) => {
                for line in text.lines() {
                    s.above.extend_from_slice(line.as_bytes());
                    s.above.extend_from_slice(b"\r\n");
                }
            }
            None => {
                emit(text.as_bytes());
            }
        }
    }

    /// Says something to the user: a dim line on a terminal, a line on stderr
    /// elsewhere (stdout is for chat only).
    pub fn complain(&mut self, text: &str) {
        match &mut self.screen {
            Some(_) => self.event(text),
            None => {
                STDERR.write(format!("{text}\n").as_bytes());
            }
        }
    }

    /// `/clear`: an empty screen with the input at the top.
    pub fn clear(&mut self) {
        if let Some(s) = &mut self.screen {
            s.clear = true;
        }
    }

    /// The names to colour in chat lines: ours and those on the peer list.
    /// They are also what Tab completes, and the status line shows ours.
    pub fn set_names<'a>(&mut self, own: Option<&str>, others: impl Iterator<Item = &'a str>) {
        let others: Vec<&str> = others.collect();
        self.style.set_names(own, others.iter().copied());
        if let Some(s) = &mut self.screen {
            s.editor.names = (others.iter())
                .filter(|&&n| Some(n) != own)
                .map(|n| n.to_string())
                .collect();
            s.dirty |= s.status.name.as_deref() != own;
            s.status.name = own.map(str::to_string);
        }
    }

    /// The terminal's signals, taken from the loop's wake-up: a resize redraws at
    /// the new width; Ctrl-Z gives the terminal back and stops; `fg` takes it again.
    pub fn terminal_signals(&mut self) {
        let bits = signals::take_terminal_signals();
        let Some(s) = &mut self.screen else { return };
        if bits & signals::SUSPEND != 0 {
            // What this turn drew goes out before the shell writes, or it would
            // land after `fg` wherever the shell left the cursor. A terminal that
            // takes nothing (Ctrl-S) is given a moment only.
            STDOUT.flush_within(SUSPEND_FLUSH);
            // The input stays where it is; the shell writes below it. After `fg`
            // the cursor is on a fresh line, where a note about lost lines may go.
            s.modes.restore();
            s.drawn = None;
            s.frame_notes(&self.style, None, b"");
            s.suspended = true;
            term::stop();
        }
        if bits & signals::CONTINUED != 0 {
            s.modes.raw();
            if s.modes.raw {
                if std::mem::take(&mut s.suspended) {
                    s.drawn = None; // `fg` left the cursor on a line of its own
                    s.repaint |= s.transcript.below().is_some();
                }
                s.dirty = true;
            }
        }
        if bits & signals::RESIZED != 0 {
            s.dirty = true; // `settle` finds the new width
        }
    }

    /// Leaving: the input is erased at the next [`Console::settle`] and not drawn again.
    pub fn close_input(&mut self) {
        if let Some(s) = &mut self.screen {
            s.closed = true;
            s.dirty = true;
        }
    }

    /// Leaves the terminal as it was: what is left to show above, no input, the
    /// settings we found.
    pub fn finish(&mut self) {
        self.close_input();
        self.settle();
        if let Some(s) = &mut self.screen {
            s.modes.restore();
            crate::logging::route_to_console(false);
        }
    }
}

/// However the servant ends, log records go to stderr again (and `Modes` gives
/// the terminal back), so an error after the loop is seen.
impl Drop for Console {
    fn drop(&mut self) {
        if self.screen.is_some() {
            crate::logging::route_to_console(false);
        }
    }
}

#[cfg(test)]
mod tests;
