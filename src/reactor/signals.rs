//! SIGINT and SIGTERM become a wake-up of the poll loop, so shutdown runs as an
//! ordinary event on the loop's own thread. A second signal exits at once, giving
//! the terminal back first if a console asked ([`restore_at_forced_exit`]).
//! SIGHUP wakes it the same way to reload settings; it never counts towards exiting.
//!
//! A console also asks for the terminal's own signals ([`catch_terminal_signals`]):
//! a resize, Ctrl-Z and `fg` arrive the same way, as bits its `wake` takes.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use mio::Waker;

static WAKER: OnceLock<Arc<Waker>> = OnceLock::new();
static PENDING: AtomicBool = AtomicBool::new(false);
static SEEN: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

/// SIGWINCH: the terminal changed size.
pub const RESIZED: u32 = 1;
/// SIGTSTP: Ctrl-Z; the console gives the terminal back, then stops.
pub const SUSPEND: u32 = 2;
/// SIGCONT: running again (after `fg`, or `bg`).
pub const CONTINUED: u32 = 4;
static TERMINAL: AtomicU32 = AtomicU32::new(0);
/// Terminal settings the forced exit puts back.
static RESTORE: OnceLock<libc::termios> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    if SEEN.swap(true, Ordering::SeqCst) {
        // The loop did not stop after the first signal: the user means it.
        if let Some(t) = RESTORE.get() {
            // SAFETY: tcsetattr is async-signal-safe; `t` was read by tcgetattr.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
    PENDING.store(true, Ordering::SeqCst);
    if let Some(w) = WAKER.get() {
        // Waker::wake is a write(2) to an eventfd: async-signal-safe.
        let _ = w.wake();
    }
}

extern "C" fn on_hangup(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
    if let Some(w) = WAKER.get() {
        let _ = w.wake();
    }
}

extern "C" fn on_terminal_signal(sig: libc::c_int) {
    let bit = match sig {
        libc::SIGWINCH => RESIZED,
        libc::SIGTSTP => SUSPEND,
        _ => CONTINUED,
    };
    TERMINAL.fetch_or(bit, Ordering::SeqCst);
    if let Some(w) = WAKER.get() {
        let _ = w.wake();
    }
}

pub(super) fn install(waker: Arc<Waker>) -> io::Result<()> {
    let _ = WAKER.set(waker);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        handle(sig, on_signal)?;
    }
    handle(libc::SIGHUP, on_hangup)
}

/// Delivers SIGWINCH, SIGTSTP and SIGCONT as [`take_terminal_signals`] bits with a
/// wake-up of the loop that caught SIGINT ([`super::Reactor::catch_signals`]).
/// Ctrl-Z then no longer stops the process: the console must.
pub fn catch_terminal_signals() -> io::Result<()> {
    for sig in [libc::SIGWINCH, libc::SIGTSTP, libc::SIGCONT] {
        handle(sig, on_terminal_signal)?;
    }
    Ok(())
}

/// The terminal signals that arrived since the last call: [`RESIZED`], [`SUSPEND`],
/// [`CONTINUED`] or'ed together.
pub fn take_terminal_signals() -> u32 {
    TERMINAL.swap(0, Ordering::SeqCst)
}

/// Settings a second SIGINT or SIGTERM, which exits at once, puts back on stdin's
/// terminal first. Set once, by the console that changed them.
pub fn restore_at_forced_exit(saved: libc::termios) {
    let _ = RESTORE.set(saved);
}

fn handle(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid;
    // the handlers only touch atomics and call async-signal-safe functions.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a signal arrived since the last call.
pub(super) fn take() -> bool {
    PENDING.swap(false, Ordering::SeqCst)
}

/// Whether SIGHUP arrived since the last call.
pub(super) fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}
