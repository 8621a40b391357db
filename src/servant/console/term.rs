//! The terminal itself: its modes, its width, whether we are in its foreground.
//!
//! Raw here means non-canonical, no echo: the console reads each key as it is
//! typed and draws the line itself. Signals stay on (Ctrl-C is SIGINT, Ctrl-Z is
//! SIGTSTP) and output processing stays on (`\n` still returns the carriage), so
//! whatever else writes to the terminal still looks right.

/// stdin's terminal settings before we changed them, and whether ours are in force.
#[derive(Debug)]
pub struct Modes {
    /// `None` only in unit tests, which draw on no terminal.
    saved: Option<libc::termios>,
    pub raw: bool,
}

impl Modes {
    /// Puts stdin's terminal in raw mode; `None` if stdin is no terminal.
    pub fn enter() -> Option<Modes> {
        // SAFETY: tcgetattr fills a zeroed termios we own.
        let saved = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            t
        };
        crate::reactor::signals::restore_at_forced_exit(saved);
        let mut m = Modes {
            saved: Some(saved),
            raw: false,
        };
        m.raw();
        m.raw.then_some(m)
    }

    /// Modes that touch no terminal, for unit tests of what the console draws.
    #[cfg(test)]
    pub fn pretend() -> Modes {
        Modes {
            saved: None,
            raw: true,
        }
    }

    /// Our settings again (after Ctrl-Z and `fg`). Only from the foreground: a
    /// background process that changes the terminal is stopped (SIGTTOU).
    pub fn raw(&mut self) {
        let Some(saved) = self.saved else { return };
        if !foreground() {
            return;
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: sets settings derived from ones tcgetattr returned.
        self.raw = unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } == 0;
    }

    /// The settings we found, back in force.
    pub fn restore(&mut self) {
        if let Some(saved) = self.saved.filter(|_| self.raw) {
            // SAFETY: restores settings read from this terminal.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        }
        self.raw = false;
    }
}

impl Drop for Modes {
    /// Every way out, a panic included, gives the terminal back.
    fn drop(&mut self) {
        self.restore();
    }
}

impl Modes {
    /// The terminal's columns and rows now; `None` for modes that touch no terminal.
    pub fn size(&self) -> Option<(usize, usize)> {
        self.saved.map(|_| size())
    }
}

/// Whether this process's group is the terminal's foreground.
fn foreground() -> bool {
    // SAFETY: both calls only read process state.
    unsafe { libc::tcgetpgrp(0) == libc::getpgrp() }
}

/// The terminal's size in columns and rows (80 x 24 where it will not say).
pub fn size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ fills a zeroed winsize we own.
    let ws = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) != 0 {
            ws = std::mem::zeroed();
        }
        ws
    };
    let or = |n: u16, default| if n == 0 { default } else { usize::from(n) };
    (or(ws.ws_col, 80), or(ws.ws_row, 24))
}

/// Stops this process as Ctrl-Z would have, once the caller gave the terminal back.
pub fn stop() {
    // SAFETY: raise only signals this process.
    unsafe { libc::raise(libc::SIGSTOP) };
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
