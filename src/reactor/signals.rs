//! SIGINT and SIGTERM become a wake-up of the poll loop, so shutdown runs as an
//! ordinary event on the loop's own thread. A second signal exits at once.
//! SIGHUP wakes it the same way to reload settings; it never counts towards exiting.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use mio::Waker;

static WAKER: OnceLock<Arc<Waker>> = OnceLock::new();
static PENDING: AtomicBool = AtomicBool::new(false);
static SEEN: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    if SEEN.swap(true, Ordering::SeqCst) {
        // The loop did not stop after the first signal: the user means it.
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

pub(super) fn install(waker: Arc<Waker>) -> io::Result<()> {
    let _ = WAKER.set(waker);
    let handlers: [(libc::c_int, extern "C" fn(libc::c_int)); 3] = [
        (libc::SIGINT, on_signal),
        (libc::SIGTERM, on_signal),
        (libc::SIGHUP, on_hangup),
    ];
    for (sig, handler) in handlers {
        // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid;
        // the handler only touches atomics and calls async-signal-safe functions.
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
