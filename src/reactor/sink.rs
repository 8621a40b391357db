//! How bytes reach a standard stream without blocking the loop.
//!
//! Non-blocking without touching fds 0, 1 and 2: a terminal's or a pipe's file
//! status flags belong to the open file description, which the shell that started
//! us shares, so O_NONBLOCK on fd 1 would leave the shell's terminal non-blocking
//! too, even after we are killed. Instead the stream is opened again through
//! `/proc/self/fd/N`: a new description of the same pipe, FIFO or terminal, and
//! only that one is made non-blocking. A socket (journald's stream) cannot be
//! opened that way (ENXIO); it is written with `send(MSG_DONTWAIT)`. A regular
//! file is written as it is: it never blocks for long, and a second description
//! would keep an offset of its own and overwrite what the first one wrote.
//! epoll refuses regular files and `/dev/null` (EPERM); they count as always
//! writable.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// How bytes reach one standard stream without blocking.
pub(super) enum Sink {
    /// Not looked at yet.
    Unopened,
    /// A regular file or block device: written directly.
    File,
    /// Our own non-blocking description of the pipe, FIFO or terminal.
    Reopened(OwnedFd),
    /// A socket: `send(MSG_DONTWAIT)`.
    Socket,
    /// No non-blocking way in (no `/proc`, or no permission to reopen a terminal):
    /// written only after `poll` says it takes more, at most `PIPE_BUF` at a time,
    /// which a pipe takes without blocking.
    Polled,
    /// Not open, or failed for good: lines are discarded.
    Gone,
}

impl Sink {
    pub(super) fn open(fd: RawFd) -> Sink {
        // SAFETY: fstat writes into a zeroed stat struct we own.
        let mode = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                return Sink::Gone;
            }
            st.st_mode & libc::S_IFMT
        };
        match mode {
            libc::S_IFREG | libc::S_IFBLK => Sink::File,
            libc::S_IFSOCK => Sink::Socket,
            _ => {
                let Ok(path) = CString::new(format!("/proc/self/fd/{fd}")) else {
                    return Sink::Polled;
                };
                let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
                // SAFETY: open with a valid C string; the fd it returns is ours alone.
                let new = unsafe { libc::open(path.as_ptr(), flags) };
                if new >= 0 {
                    // SAFETY: `new` is a freshly opened descriptor nobody else owns.
                    Sink::Reopened(unsafe { OwnedFd::from_raw_fd(new) })
                } else if io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
                    Sink::Gone // a pipe or FIFO whose reader has gone already
                } else {
                    Sink::Polled
                }
            }
        }
    }

    /// The descriptor to watch for writability, unless it can never block.
    pub(super) fn pollable(&self, fd: RawFd) -> Option<RawFd> {
        match self {
            Sink::Reopened(own) => Some(own.as_raw_fd()),
            Sink::Socket | Sink::Polled => Some(fd),
            Sink::Unopened | Sink::File | Sink::Gone => None,
        }
    }

    pub(super) fn write(&self, fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
        let (ptr, len) = (bytes.as_ptr().cast(), bytes.len());
        // SAFETY: each call reads `len` bytes from a valid slice.
        let n = unsafe {
            match self {
                Sink::File => libc::write(fd, ptr, len),
                Sink::Reopened(own) => libc::write(own.as_raw_fd(), ptr, len),
                Sink::Socket => libc::send(fd, ptr, len, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL),
                Sink::Polled => {
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    if libc::poll(&mut pfd, 1, 0) == 0 {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    libc::write(fd, ptr, len.min(libc::PIPE_BUF))
                }
                Sink::Unopened | Sink::Gone => return Ok(len),
            }
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}
