//! Where a daemon's process starts. An ordinary build starts at Rust's `fn main`;
//! the static build (`cargo build-static`, docs/DEPLOY.md) starts at a C `main`
//! instead, through [`crate::entry!`].
//!
//! Why: before `fn main`, Rust's start-up asks `pthread_getattr_np` where the main
//! thread's stack ends, to name stack overflows. In static glibc that call reads
//! `/proc/self/maps` with `sscanf`, which links in stdio's scanf and every float
//! parser: about 140 KB, the difference between connmgr fitting in 1 MiB or not.
//! The rest of that start-up is done here ([`start`]): SIGPIPE ignored, descriptors
//! 0-2 kept open, stdout flushed at the end. What is lost is only the message: a
//! stack overflow in the static build is a plain SIGSEGV.

use std::ffi::c_int;
use std::io::Write;

/// Defines `main` for a binary whose exit status is `$status` (a `u8` expression).
/// The crate root must also say `#![cfg_attr(target_feature = "crt-static", no_main)]`.
#[macro_export]
macro_rules! entry {
    ($status:expr) => {
        #[cfg(not(target_feature = "crt-static"))]
        fn main() -> std::process::ExitCode {
            std::process::ExitCode::from($status)
        }

        /// The static build's entry point: see `p2pchat::entry`.
        #[cfg(target_feature = "crt-static")]
        #[no_mangle]
        extern "C" fn main(
            _argc: std::ffi::c_int,
            _argv: *const *const std::ffi::c_char,
        ) -> std::ffi::c_int {
            $crate::entry::start(|| $status)
        }
    };
}

/// Runs `run` as Rust's start-up would have: with SIGPIPE ignored (a closed socket
/// is an error to handle, not a reason to die) and descriptors 0-2 open (so a
/// socket can never become "stderr" and receive log lines), flushing stdout after.
pub fn start(run: impl FnOnce() -> u8) -> c_int {
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    keep_standard_fds_open();
    let status = run();
    let _ = std::io::stdout().flush();
    c_int::from(status)
}

/// Opens `/dev/null` on any of descriptors 0-2 that is closed. Where there is no
/// `/dev/null` (an empty root), the root directory read-only stands in: reads see
/// nothing and writes fail, which is what a closed log should do.
fn keep_standard_fds_open() {
    for fd in 0..3 {
        // SAFETY: fcntl(F_GETFD) on any number only reads the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        // SAFETY: open with NUL-terminated literals; the lowest free descriptor,
        // this one, is the one returned, and it is meant to stay open.
        unsafe {
            if libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) == -1 {
                libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            }
        }
    }
}
