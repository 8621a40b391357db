//! stdout as the article's `txtChat1` text box, and the `> ` prompt on a terminal.
//!
//! On pipes and files stdout carries exactly one line per chat message and nothing
//! else, so scripts and tests can read it. On a terminal a message that arrives
//! while the user is typing clears the prompt line, prints the message and redraws
//! the prompt. The terminal stays in canonical mode (the kernel edits the line), so
//! what was half typed is still there but not redrawn; Ctrl-R reprints it. Control
//! characters from peers are shown as `?` on a terminal, so a peer cannot drive
//! the user's terminal with escape sequences.

use std::io::{self, Write};

use log::warn;

/// Where chat goes.
pub struct Console {
    /// stdin and stdout are both terminals: show and keep a prompt.
    prompt: bool,
    /// Writing stdout failed once (said in the log; later failures are silent).
    broken: bool,
    /// Reused for terminal-safe copies of messages.
    scratch: String,
}

const PROMPT: &str = "> ";

impl Console {
    pub fn new(prompt: bool) -> Self {
        Console {
            prompt,
            broken: false,
            scratch: String::new(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.prompt
    }

    /// Prints one message (lossy UTF-8), marked when it was cut at the size limit.
    pub fn message(&mut self, bytes: &[u8], truncated: bool) {
        let text = String::from_utf8_lossy(bytes);
        let marker = if truncated { " [truncated]" } else { "" };
        let mut out = io::stdout().lock();
        let result = if self.prompt {
            self.scratch.clear();
            self.scratch.extend(text.chars().map(|c| {
                if c.is_control() && c != '\t' {
                    '?'
                } else {
                    c
                }
            }));
            write!(out, "\r\x1b[K{}{marker}\n{PROMPT}", self.scratch)
        } else {
            writeln!(out, "{text}{marker}")
        };
        self.done(result.and_then(|()| out.flush()));
    }

    /// Prints lines the user asked for (`/peers`, `/help`). The prompt is redrawn by
    /// the caller once the whole typed chunk has been handled.
    pub fn reply(&mut self, text: &str) {
        let mut out = io::stdout().lock();
        let clear = if self.prompt { "\r\x1b[K" } else { "" };
        let result = write!(out, "{clear}{text}");
        self.done(result.and_then(|()| out.flush()));
    }

    /// Shows the prompt (after start, and after each line the user entered).
    pub fn prompt(&mut self) {
        if self.prompt {
            let mut out = io::stdout().lock();
            let result = write!(out, "{PROMPT}").and_then(|()| out.flush());
            self.done(result);
        }
    }

    /// Says something to the user on stderr, on a line of its own. Like [`Self::reply`],
    /// it leaves redrawing the prompt to the caller.
    pub fn complain(&mut self, text: &str) {
        if self.prompt {
            eprint!("\r\x1b[K{text}\n");
        } else {
            eprintln!("{text}");
        }
    }

    /// Leaves the terminal on a fresh line.
    pub fn finish(&mut self) {
        if self.prompt {
            let mut out = io::stdout().lock();
            let _ = write!(out, "\r\x1b[K").and_then(|()| out.flush());
        }
    }

    fn done(&mut self, result: io::Result<()>) {
        if let Err(e) = result {
            if !self.broken {
                self.broken = true;
                warn!("cannot write chat to stdout: {e}; messages are being lost");
            }
        }
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
