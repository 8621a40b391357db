//! The sockets in the slots, and the Winsock methods on them: `Listen`, `Accept`,
//! `Connect`, `SendData`, `Close`. What the loop does when a socket is ready is
//! in `events.rs`.

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use log::{debug, info};
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use super::outq::{self, OutQueue};
use super::{Index, Reactor, Request, Shared, State};
use crate::net::Piece;

/// The socket in a slot in use: a listener or a connection.
pub(super) enum Io {
    Listener(TcpListener),
    Stream(Conn),
}

/// A connected stream: TCP, or a Unix socket to a local server (Redis). One
/// `match` per call is all a TCP stream pays for the choice.
pub(super) enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    pub(super) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Conn::Tcp(s) => s.take_error(),
            Conn::Unix(s) => s.take_error(),
        }
    }

    /// Whether a connect has finished: `NotConnected` while it has not.
    pub(super) fn connected(&self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.peer_addr().map(drop),
            Conn::Unix(s) => s.peer_addr().map(drop),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write_vectored(bufs),
            Conn::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Conn {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.register(r, t, i),
            Conn::Unix(s) => s.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.reregister(r, t, i),
            Conn::Unix(s) => s.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.deregister(r),
            Conn::Unix(s) => s.deregister(r),
        }
    }
}

/// One slot of the control array: its Winsock state and, while it is in use, a
/// socket, the bytes still to send and whatever the daemon keeps per connection.
/// A slot in `sckClosed` keeps only its state and its last address.
pub struct Socket<T> {
    pub(super) state: State,
    pub(super) io: Option<Io>,
    /// The remote address (streams) or the bound address (listeners).
    pub(super) addr: SocketAddr,
    pub(super) out: OutQueue,
    /// Registered for writability yet (only after the first short write).
    pub(super) want_write: bool,
    /// Close once the queued output is flushed: `close` was asked for, or the peer
    /// closed its side.
    pub(super) close_when_sent: bool,
    /// The peer closed its side (read returned 0): nothing more is read.
    pub(super) peer_closed: bool,
    /// Closing gracefully ([`Reactor::close_gracefully`]): our side is shut, and
    /// reading goes on until the peer's FIN or this deadline.
    pub(super) linger: Option<Instant>,
    /// On the `again` list (budget spent): at most once per turn.
    pub(super) again: bool,
    /// On the `completed` list: `send_complete` fires once per drain.
    pub(super) complete_queued: bool,
    pub(super) last_active: Instant,
    pub(super) data: Option<T>,
    /// A private link's Noise session; `None` for plaintext (one pointer, one branch).
    pub(super) secure: Option<Box<super::secure::Secure>>,
}

impl<T> Socket<T> {
    /// A slot just loaded: `sckClosed`, nothing in it.
    pub(super) fn unloaded(now: Instant) -> Self {
        Socket::new(
            None,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            None,
            now,
        )
    }

    fn new(io: Option<Io>, addr: SocketAddr, data: Option<T>, now: Instant) -> Self {
        Socket {
            state: State::Closed,
            io,
            addr,
            out: OutQueue::default(),
            want_write: false,
            close_when_sent: false,
            peer_closed: false,
            linger: None,
            again: false,
            complete_queued: false,
            last_active: now,
            data,
            secure: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The peer's address (IPv4-mapped IPv6 shown as IPv4), or a listener's own;
    /// in `sckClosed`, the last one it had.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the daemon keeps in this slot; `None` in `sckClosed`.
    pub fn data(&self) -> Option<&T> {
        self.data.as_ref()
    }

    /// Whether more may be sent on it: connected or connecting, and neither side
    /// has begun to close it.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Connected | State::Connecting)
            && !self.peer_closed
            && !self.close_when_sent
            && self.linger.is_none()
    }

    /// Whether it is closing gracefully, reading until the peer's FIN.
    pub fn lingering(&self) -> bool {
        self.linger.is_some()
    }

    /// Bytes queued and not yet taken by the socket.
    pub fn unsent(&self) -> usize {
        self.out.len()
    }

    pub(super) fn has_socket(&self) -> bool {
        self.io.is_some()
    }

    pub(super) fn stream(&mut self) -> Option<&mut Conn> {
        match &mut self.io {
            Some(Io::Stream(s)) => Some(s),
            _ => None,
        }
    }
}

impl<T> Reactor<T> {
    /// The local address of slot `i` (a listener's real port after binding port 0).
    pub fn local_addr(&self, i: Index) -> io::Result<SocketAddr> {
        match self.slots.get(i).and_then(|s| s.io.as_ref()) {
            Some(Io::Listener(l)) => l.local_addr(),
            Some(Io::Stream(Conn::Tcp(s))) => s.local_addr(),
            Some(Io::Stream(Conn::Unix(_))) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a Unix socket has no IP address",
            )),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no socket in that slot",
            )),
        }
    }

    /// Sends small writes on slot `i` at once instead of holding them for the
    /// peer's ACK (Nagle). Not the default: a connection that carries one request
    /// and one answer gains nothing and pays a syscall; a long-lived link that
    /// trickles lines (the relay's pull link) otherwise waits up to a delayed ACK,
    /// 40 ms on Linux, per line.
    pub fn set_nodelay(&mut self, i: Index) {
        if let Some(Io::Stream(Conn::Tcp(s))) = self.slots.get(i).and_then(|s| s.io.as_ref()) {
            if let Err(e) = s.set_nodelay(true) {
                log::debug!("slot {i}: TCP_NODELAY: {e}");
            }
        }
    }

    /// Binds a listener (VB: `.LocalPort = n: .Listen`) in the lowest free slot.
    /// `bind` `None` means every interface: `::` accepting IPv4 too, or `0.0.0.0`
    /// on a host without IPv6. On failure, the error comes with the address tried.
    pub fn listen(
        &mut self,
        bind: Option<IpAddr>,
        port: u16,
        data: T,
    ) -> Result<Index, (SocketAddr, io::Error)> {
        let mut listener = match bind {
            Some(ip) => open_listener(SocketAddr::new(ip, port)),
            None => match open_listener(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)) {
                Err((_, e)) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                    open_listener(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
                }
                other => other,
            },
        }?;
        let bound = listener.local_addr().map_err(|e| {
            let ip = bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            (SocketAddr::new(ip, port), e)
        })?;
        let index = self.slots.next_index();
        self.poll
            .registry()
            .register(&mut listener, Token(index), Interest::READABLE)
            .map_err(|e| (bound, e))?;
        Ok(self.open(Io::Listener(listener), State::Listening, bound, data))
    }

    /// Takes a pending connection into the lowest free slot (VB: `p2p(a).Accept requestID`).
    pub fn accept(&mut self, request: Request, data: T) -> io::Result<Index> {
        let Request { mut stream, remote } = request;
        let index = self.slots.next_index();
        self.poll
            .registry()
            .register(&mut stream, Token(index), Interest::READABLE)?;
        Ok(self.open(
            Io::Stream(Conn::Tcp(stream)),
            State::Connected,
            remote,
            data,
        ))
    }

    /// Answers a pending connection with `reply` (best effort) and drops it. Under a
    /// flood of connections this runs for each, so it allocates nothing and makes
    /// three syscalls besides the accept: read, write, close (which sends the FIN).
    pub fn refuse(&mut self, request: Request, reply: &[u8]) {
        let mut stream = request.stream;
        // Closing with unread input sends RST, which can destroy the reply before the
        // client reads it; a servant sends its request right after connecting.
        let _ = stream.read(&mut [0u8; 512]);
        let _ = stream.write(reply);
    }

    /// Starts an outgoing connection (VB: `.Connect ip, port`) from `bind` if given,
    /// without blocking. [`super::Handler::connect`] fires when it is up; anything sent
    /// before then is queued.
    pub fn connect(&mut self, to: SocketAddr, bind: Option<IpAddr>, data: T) -> io::Result<Index> {
        let socket = nonblocking_stream(to)?;
        if let Some(ip) = bind {
            // Leave the port to connect(), which can reuse one across destinations
            // and from TIME_WAIT; bind() alone must find one free for every
            // destination, slowly, and runs out after ~28,000 recent connections.
            let on: libc::c_int = 1;
            // SAFETY: setsockopt on our own socket with a valid int option value.
            unsafe {
                use std::os::fd::AsRawFd;
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&to.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        let index = self.slots.next_index();
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, Token(index), interest)?;
        Ok(self.open(Io::Stream(Conn::Tcp(stream)), State::Connecting, to, data))
    }

    /// Starts a connection to the Unix socket at `path`, like [`Reactor::connect`]:
    /// for a local server (Redis) reached without TCP. The slot's address is
    /// `0.0.0.0:0`, a Unix socket having none.
    pub fn connect_unix(&mut self, path: &Path, data: T) -> io::Result<Index> {
        let mut stream = UnixStream::connect(path)?;
        let index = self.slots.next_index();
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, Token(index), interest)?;
        let none = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        Ok(self.open(
            Io::Stream(Conn::Unix(stream)),
            State::Connecting,
            none,
            data,
        ))
    }

    /// Puts a registered socket in the lowest reusable slot and moves the slot out
    /// of `sckClosed`.
    fn open(&mut self, io: Io, state: State, addr: SocketAddr, data: T) -> Index {
        let now = self.now;
        let (i, slot) = self.slots.take(now);
        *slot = Socket::new(Some(io), addr, Some(data), now);
        // A connecting socket was registered for writability, which says it is up.
        slot.want_write = state == State::Connecting;
        self.transition(i, state);
        i
    }

    /// Queues `data` on slot `i` and writes what the socket takes now (VB: `.SendData`).
    pub fn send(&mut self, i: Index, data: &[u8]) {
        self.send_pieces(i, &[Piece::Bytes(data)]);
    }

    /// Sends `ranges` of a shared buffer as one message. What the socket does not
    /// take now is queued as ranges of `buf`, not copied.
    pub fn send_shared(&mut self, i: Index, buf: &Shared, ranges: &[std::ops::Range<usize>]) {
        let mut pieces = [Piece::Bytes(&[]); 8];
        for (p, r) in pieces.iter_mut().zip(ranges) {
            *p = Piece::Shared(buf, r.start, r.end);
        }
        self.send_pieces(i, &pieces[..ranges.len().min(8)]);
        if ranges.len() > 8 {
            self.send_shared(i, buf, &ranges[8..]);
        }
    }

    /// Sends `pieces` as one message: own bytes, ranges of a shared buffer, runs of
    /// a chunked one. What the socket does not take now is queued, the shared
    /// parts by reference, not copied.
    pub fn send_pieces(&mut self, i: Index, pieces: &[Piece<'_>]) {
        if self.slots.get(i).is_some_and(|s| s.secure.is_some()) {
            return self.seal_and_send(i, pieces);
        }
        self.write_out(i, pieces, true);
    }

    /// Writes `pieces` on slot `i` as they are, queuing what the socket does not
    /// take; `notify` says whether emptying the queue owes the handler a
    /// `send_complete` (a handshake's own bytes do not).
    pub(super) fn write_out(&mut self, i: Index, pieces: &[Piece<'_>], notify: bool) {
        let Some(s) = self.slots.get_mut(i).filter(|s| s.linger.is_none()) else {
            return; // gone, or our side is shut
        };
        let direct = s.state == State::Connected && s.out.is_empty();
        let queueable = matches!(s.state, State::Connected | State::Connecting);
        let written = match s.stream() {
            Some(stream) if direct => outq::write_pieces(stream, pieces),
            Some(_) if queueable => Ok(0),
            _ => return, // closing, closed or a listener: nothing more goes out
        };
        match written {
            Ok(n) => {
                s.out.push(pieces, n);
                if s.out.is_empty() {
                    if notify {
                        if let Some(sec) = s.secure.as_deref_mut() {
                            sec.take_owed();
                        }
                        self.sent_all(i);
                    }
                } else {
                    if notify {
                        if let Some(sec) = s.secure.as_deref_mut() {
                            sec.owe();
                        }
                    }
                    self.queued(i);
                }
            }
            Err(e) => self.fail(i, e),
        }
    }

    /// Slot `i`'s output is all with the kernel: `send_complete` (or the close that
    /// waited for it) is due after this batch.
    pub(super) fn sent_all(&mut self, i: Index) {
        if let Some(s) = self.slots.get_mut(i) {
            if !std::mem::replace(&mut s.complete_queued, true) {
                self.completed.push_back(i);
            }
        }
    }

    /// Output is waiting on slot `i`: police the backlog and watch for writability.
    fn queued(&mut self, i: Index) {
        if !self.backlog_allowed(i) {
            return;
        }
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if !std::mem::replace(&mut s.want_write, true) {
            if let Some(stream) = s.stream() {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self.poll.registry().reregister(stream, Token(i), interest) {
                    self.fail(i, e);
                }
            }
        }
    }

    /// Closes slot `i` once its queued output is flushed (VB: `.Close`). The slot is
    /// reaped after the current event batch, and [`super::Handler::close`] runs then.
    pub fn close(&mut self, i: Index) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if s.unsent() > 0 && matches!(s.state, State::Connected | State::Connecting) {
            s.close_when_sent = true;
        } else {
            self.transition(i, State::Closing);
        }
    }

    /// Closes slot `i` gracefully (VB's `.Close` dropped whatever the peer was still
    /// sending): our side is shut now, a FIN the peer reads as our close, while
    /// reading goes on, every byte to `data_arrival`, until the peer's FIN or
    /// `within`, when the slot is aborted. A peer that keeps a link open to write
    /// on loses nothing it wrote before it saw our FIN. A slot not connected, or
    /// with output still queued, is closed as by [`Reactor::close`].
    pub fn close_gracefully(&mut self, i: Index, within: Duration) {
        let deadline = self.now + within;
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if s.linger.is_some() {
            return;
        }
        if s.state != State::Connected || s.peer_closed || s.unsent() > 0 {
            return self.close(i);
        }
        let shut = match s.stream() {
            Some(Conn::Tcp(t)) => t.shutdown(Shutdown::Write),
            Some(Conn::Unix(u)) => u.shutdown(Shutdown::Write),
            None => Ok(()),
        };
        if let Err(e) = shut {
            return self.fail(i, e);
        }
        debug!(
            "slot {i} ({}): our side shut; reading until the peer's",
            s.addr
        );
        s.linger = Some(deadline);
        self.lingering.push((deadline, i));
    }

    /// Slots closing gracefully whose peer has not closed in time are aborted.
    pub(super) fn expire_lingering(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        self.lingering.retain(|&(at, i)| {
            let fire = at <= now;
            if fire {
                due.push((at, i));
            }
            !fire
        });
        for (at, i) in due {
            // The slot may have closed, and been reused, since.
            if self.slots.get(i).is_some_and(|s| s.linger == Some(at)) {
                debug!("slot {i}: no FIN from the peer in time; aborting");
                self.abort(i);
            }
        }
    }

    /// Closes slot `i` now, dropping any queued output: for a peer that broke the
    /// protocol, whose further input must not be read. Reaped like [`Reactor::close`].
    pub fn abort(&mut self, i: Index) {
        if let Some(s) = self.slots.get(i).filter(|s| s.unsent() > 0) {
            debug!(
                "slot {i} ({}): aborted with {} bytes unsent",
                s.addr,
                s.unsent()
            );
        }
        self.transition(i, State::Closing);
    }

    /// An I/O error ends slot `i` (the handler's `error` has been told, if it asked).
    pub(super) fn fail(&mut self, i: Index, e: io::Error) {
        let Some(s) = self.slots.get(i) else {
            return;
        };
        match e.kind() {
            // Routine on the network, and the handler hears of them through `error`.
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionRefused => debug!("slot {i} ({}): {e}", s.addr),
            _ => info!("slot {i} ({}): {e}", s.addr),
        }
        self.transition(i, State::Error);
    }
}

/// A non-blocking listener on `addr`, dual-stack when `addr` is `::`.
fn open_listener(addr: SocketAddr) -> Result<TcpListener, (SocketAddr, io::Error)> {
    let open = || -> io::Result<TcpListener> {
        let domain = socket2::Domain::for_address(addr);
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            // Best effort: some hosts force v6-only; then `::` is IPv6 only.
            let _ = socket.set_only_v6(false);
        }
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        socket.set_nonblocking(true)?;
        Ok(TcpListener::from_std(socket.into()))
    };
    open().map_err(|e| (addr, e))
}

/// A TCP socket for `to`'s family, non-blocking and close-on-exec from `socket()`
/// itself: one system call where `socket2`'s constructor and `set_nonblocking` take
/// three, on every outgoing connection (a churn cycle, a servant's send).
fn nonblocking_stream(to: SocketAddr) -> io::Result<socket2::Socket> {
    use std::os::fd::FromRawFd;
    let family = match to {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) with constant arguments; a non-negative result is a new
    // descriptor that nothing else owns, so the Socket may take it.
    let fd = unsafe { libc::socket(family, flags, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open and owned by no one else (above).
    Ok(unsafe { socket2::Socket::from_raw_fd(fd) })
}
