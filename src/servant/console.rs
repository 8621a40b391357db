//! stdout as the article's `txtChat1` text box, the `> ` prompt on a terminal, and
//! stdin as its `txtSend1` text box.
//!
//! On pipes and files stdout carries exactly one line per chat message and nothing
//! else, so scripts and tests can read it. On a terminal a message that arrives
//! while the user is typing clears the prompt line, prints the message and redraws
//! the prompt with what was half typed. For that the console edits the line itself
//! ([`Console::edit`]): the terminal is put in non-canonical, no-echo mode (signals
//! stay on, so Ctrl-C still stops the servant) and restored on the way out. Control
//! characters from peers are shown as `?` on a terminal, so a peer cannot drive
//! the user's terminal with escape sequences.
//!
//! Everything shown goes through the loop's bounded stdout queue
//! ([`crate::reactor::stdio`]): a terminal or pipe that stops taking output costs
//! chat lines (counted, and said once it drains), never the servant's loop.
//!
//! stdin is read on the loop too ([`Console::read_stdin`]) but, unlike stdout,
//! without a non-blocking description of its own: the terminal's settings are
//! changed through it (raw mode) and its reads are whole keystrokes, so it is read
//! only after a zero-timeout `poll` says a read will not block. It is never set
//! O_NONBLOCK: on a terminal, fds 0, 1 and 2 share one open file description with
//! the shell, whose writes would then fail with EAGAIN whenever the terminal is slow.

use std::io;

use log::warn;

use crate::reactor::stdio::{STDERR, STDOUT};
use crate::reactor::{Reactor, READ_BUDGET, READ_CHUNK};

/// The id stdin is watched under ([`crate::reactor::Handler::fd_ready`]).
const STDIN: usize = 0;

/// Has the loop report stdin to [`crate::reactor::Handler::fd_ready`].
pub fn watch_stdin<T>(r: &mut Reactor<T>) -> io::Result<()> {
    r.watch_fd(0, STDIN)
}

/// Where chat goes, and where what the user types comes from.
pub struct Console {
    /// stdin and stdout are both terminals: show and keep a prompt.
    prompt: bool,
    /// Reused for each message as it is shown.
    scratch: Vec<u8>,
    /// Reused for reading stdin; allocated on the first read.
    input: Vec<u8>,
    /// The line being typed (terminal only).
    line: Vec<u8>,
    /// Inside an escape sequence (arrow keys and the like), which is ignored.
    escape: Escape,
    /// The terminal settings to restore, when we changed them.
    saved: Option<libc::termios>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Started,
    /// After `ESC [` or `ESC O`: parameters until a final byte.
    Sequence,
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

const PROMPT: &str = "> ";

impl Console {
    pub fn new(prompt: bool) -> Self {
        Console {
            saved: if prompt { raw_mode() } else { None },
            prompt,
            scratch: Vec::new(),
            input: Vec::new(),
            line: Vec::new(),
            escape: Escape::None,
        }
    }

    /// Applies keystrokes to the line being typed, echoing them, and returns the
    /// lines finished with Enter. Backspace, Ctrl-U (erase line), Ctrl-W (erase
    /// word) and Ctrl-D (leave, on an empty line) work; escape sequences are ignored.
    fn edit(&mut self, keys: &[u8]) -> Edited {
        let mut done = Edited::default();
        let mut echo = Vec::new();
        for &k in keys {
            match (self.escape, k) {
                (Escape::Started, b'[' | b'O') => self.escape = Escape::Sequence,
                (Escape::Started, _) => self.escape = Escape::None,
                (Escape::Sequence, 0x40..=0x7e) => self.escape = Escape::None,
                (Escape::Sequence, _) => {}
                (Escape::None, 0x1b) => self.escape = Escape::Started,
                (Escape::None, b'\r' | b'\n') => {
                    done.lines.append(&mut self.line);
                    done.lines.push(b'\n');
                    echo.extend_from_slice(b"\r\n");
                }
                (Escape::None, 0x7f | 0x08) => {
                    // Back over one whole UTF-8 character.
                    while let Some(b) = self.line.pop() {
                        if b & 0xc0 != 0x80 {
                            break;
                        }
                    }
                    redraw(&mut echo, &self.line);
                }
                (Escape::None, 0x15) => {
                    self.line.clear();
                    redraw(&mut echo, &self.line);
                }
                (Escape::None, 0x17) => {
                    while self.line.last() == Some(&b' ') {
                        self.line.pop();
                    }
                    while self.line.last().is_some_and(|&b| b != b' ') {
                        self.line.pop();
                    }
                    redraw(&mut echo, &self.line);
                }
                (Escape::None, 0x04) if self.line.is_empty() => {
                    done.eof = true;
                    break;
                }
                (Escape::None, b'\t') | (Escape::None, 0x20..) => {
                    self.line.push(k);
                    echo.push(k);
                }
                (Escape::None, _) => {} // other control keys
            }
        }
        if !echo.is_empty() {
            STDOUT.write(&echo);
        }
        done
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
            } else if self.prompt {
                let keys = std::mem::take(&mut self.input);
                let edited = self.edit(&keys[..n as usize]);
                self.input = keys;
                typed.lines.extend_from_slice(&edited.lines);
                typed.eof = edited.eof;
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

    /// Shows one message (lossy UTF-8), marked when it was cut at the size limit.
    pub fn message(&mut self, bytes: &[u8], truncated: bool) {
        let text = String::from_utf8_lossy(bytes);
        let marker = if truncated { " [truncated]" } else { "" };
        let out = &mut self.scratch;
        out.clear();
        if self.prompt {
            out.extend_from_slice(b"\r\x1b[K");
            for c in text.chars() {
                let shown = if c.is_control() && c != '\t' { '?' } else { c };
                out.extend_from_slice(shown.encode_utf8(&mut [0; 4]).as_bytes());
            }
            out.extend_from_slice(marker.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(PROMPT.as_bytes());
            out.extend_from_slice(&self.line);
        } else {
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(marker.as_bytes());
            out.push(b'\n');
        }
        STDOUT.write(out);
    }

    /// Shows lines the user asked for (`/peers`, `/help`). The prompt is redrawn by
    /// the caller once the whole typed chunk has been handled.
    pub fn reply(&mut self, text: &str) {
        let clear = if self.prompt { "\r\x1b[K" } else { "" };
        STDOUT.write(format!("{clear}{text}").as_bytes());
    }

    /// Shows the prompt (after start, and after each line the user entered).
    pub fn prompt(&mut self) {
        if self.prompt {
            let mut out = PROMPT.as_bytes().to_vec();
            out.extend_from_slice(&self.line);
            STDOUT.write(&out);
        }
    }

    /// Says something to the user on stderr, on a line of its own. Like [`Self::reply`],
    /// it leaves redrawing the prompt to the caller.
    pub fn complain(&mut self, text: &str) {
        let clear = if self.prompt { "\r\x1b[K" } else { "" };
        STDERR.write(format!("{clear}{text}\n").as_bytes());
    }

    /// Leaves the terminal on a fresh line, in the mode it was in.
    pub fn finish(&mut self) {
        if self.prompt {
            STDOUT.write(b"\r\x1b[K");
        }
        if let Some(saved) = self.saved.take() {
            // SAFETY: restores settings read from this terminal by raw_mode().
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            // SAFETY: restores settings read from this terminal by raw_mode().
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        }
    }
}

/// `\r`, clear the line, the prompt and `line` again.
fn redraw(echo: &mut Vec<u8>, line: &[u8]) {
    echo.extend_from_slice(b"\r\x1b[K");
    echo.extend_from_slice(PROMPT.as_bytes());
    echo.extend_from_slice(line);
}

/// Turns off the terminal's own line editing and echo (keeping signals, so Ctrl-C
/// still works); returns the settings to restore, or `None` if stdin is no terminal.
fn raw_mode() -> Option<libc::termios> {
    // SAFETY: tcgetattr fills a zeroed termios we own; tcsetattr reads it.
    unsafe {
        let mut saved: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut saved) != 0 {
            return None;
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        (libc::tcsetattr(0, libc::TCSANOW, &raw) == 0).then_some(saved)
    }
}

/// Whether `fd` is a terminal.
pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Whether stdin is a character device that is not a terminal (`/dev/null`), or
/// not open at all: nothing will ever be typed there.
pub fn stdin_is_null() -> bool {
    // SAFETY: fstat writes into a zeroed stat struct we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(0, &mut st) != 0 {
            return true;
        }
        (st.st_mode & libc::S_IFMT) == libc::S_IFCHR && libc::isatty(0) != 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminal console that never touched the real terminal.
    fn console() -> Console {
        Console {
            prompt: true,
            scratch: Vec::new(),
            input: Vec::new(),
            line: Vec::new(),
            escape: Escape::None,
            saved: None,
        }
    }

    #[test]
    fn keystrokes_become_lines() {
        let mut c = console();
        assert_eq!(c.edit(b"hi al").lines, b"");
        assert_eq!(c.line, b"hi al");
        let e = c.edit(b"ice\rnext\r");
        assert_eq!(e.lines, b"hi alice\nnext\n");
        assert!(c.line.is_empty() && !e.eof);
    }

    #[test]
    fn erasing_and_escape_sequences() {
        let mut c = console();
        c.edit("héllo wörld".as_bytes());
        c.edit(b"\x7f\x7f");
        assert_eq!(c.line, "héllo wör".as_bytes());
        c.edit(b"\x17");
        assert_eq!(c.line, "héllo ".as_bytes());
        c.edit(b"\x1b[A\x1bOBx\x15y");
        assert_eq!(c.line, b"y", "arrows ignored, Ctrl-U erased");
    }

    #[test]
    fn ctrl_d_leaves_only_on_an_empty_line() {
        let mut c = console();
        assert!(!c.edit(b"abc\x04").eof);
        c.edit(b"\x15");
        assert!(c.edit(b"\x04").eof);
    }
}
