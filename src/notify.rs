//! sd_notify(3) by hand: telling systemd (a `Type=notify` unit) that the daemon is
//! ready, reloading or stopping. One datagram to the unix socket named by
//! `$NOTIFY_SOCKET`, a path or, starting with `@`, an abstract name. Without that
//! variable every call does nothing, so daemons call these unconditionally.

use std::io;
use std::os::unix::net::UnixDatagram;

use log::{debug, warn};

/// `READY=1`: listening and serving (with `MAINPID`, which systemd then need not guess).
pub fn ready() {
    notify(&format!("READY=1\nMAINPID={}", std::process::id()));
}

/// `STOPPING=1`: shutting down, so systemd does not take the exit for a crash.
pub fn stopping() {
    notify("STOPPING=1");
}

/// `RELOADING=1` with the monotonic time systemd wants (systemd 253+); a
/// [`ready`] follows once the new settings are in force.
pub fn reloading() {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

/// `STATUS=...`: a line `systemctl status` shows.
pub fn status(text: &str) {
    notify(&format!("STATUS={}", text.replace('\n', " ")));
}

fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    match send(&target.to_string_lossy(), state) {
        Ok(()) => debug!("told systemd {}", state.replace('\n', " ")),
        Err(e) => warn!(
            "cannot notify systemd at NOTIFY_SOCKET={}: {e}",
            target.to_string_lossy()
        ),
    }
}

/// Sends `state` to `target`, a socket path or `@abstract-name`.
pub fn send(target: &str, state: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let sent = if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        socket.send_to_addr(state.as_bytes(), &addr)?
    } else if target.starts_with('/') {
        socket.send_to(state.as_bytes(), target)?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path or @abstract name",
        ));
    };
    if sent != state.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"));
    }
    Ok(())
}

fn monotonic_usec() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::linux::net::SocketAddrExt;

    #[test]
    fn datagrams_reach_paths_and_abstract_names() {
        let path = std::env::temp_dir().join(format!("p2pchat-notify-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_file(&path);

        let name = format!("p2pchat-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");

        assert!(send("relative/path", "READY=1").is_err());
    }
}
