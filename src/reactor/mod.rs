//! The one reactor every daemon runs: a mio poll loop over a table of socket slots,
//! dispatching the Winsock control's events to a [`Handler`].
//!
//! | Winsock                          | here                                  |
//! |----------------------------------|---------------------------------------|
//! | control array `p2p(i)`           | [`SlotTable`] of [`Socket`], index = mio token |
//! | `.State`                         | [`State`], transitions logged at debug |
//! | `_ConnectionRequest(requestID)`  | [`Handler::connection_request`] with a [`Request`] |
//! | `.Accept requestID`              | [`Reactor::accept`]                   |
//! | `_DataArrival` + `.GetData`      | [`Handler::data_arrival`] with the bytes |
//! | `_Close`                         | [`Handler::close`]                    |
//! | `.Connect` / `_Connect`          | [`Reactor::connect`] / [`Handler::connect`] |
//! | `.SendData` / `_SendComplete`    | [`Reactor::send`] / [`Handler::send_complete`] |
//! | `_Error`                         | [`Handler::error`]                    |
//! | `txtSend_KeyPress`               | [`Handler::key_press`] (stdin)        |
//! | a VB `Timer` control             | [`Reactor::set_timer`] / [`Handler::timer`] |
//!
//! Where it deliberately differs from VB:
//! - Nothing blocks. VB's `DoEvents` loops and `While send1.State = 6` spins become
//!   readiness events; accept, read and write are drained until `WouldBlock`.
//! - Close late. A handler (or the peer) puts a slot in `sckClosing`; the loop reaps
//!   it after the event batch, so a stale event can never reach a connection that
//!   reused the slot (VB reused state-8 controls in place).
//! - `close` fires for every stream slot that goes away, whoever closed it, so a
//!   daemon's cleanup lives in one place. VB fired `_Close` only for the peer's close.
//! - `SendData` never drops bytes: what the socket does not take is queued and
//!   flushed on writability; `send_complete` fires when the queue is empty.
//! - A socket that floods is read at most [`READ_BUDGET`] chunks per turn, then
//!   re-queued behind the other ready sockets, so it cannot starve them.

mod outq;
mod signals;
pub mod slots;
pub mod state;

pub use outq::Shared;
pub use slots::SlotTable;
pub use state::State;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use outq::{OutQueue, Piece};

/// A slot's index: the VB control array `Index` and the mio token.
pub type Index = usize;

const WAKER: Token = Token(usize::MAX);
const STDIN: Token = Token(usize::MAX - 1);

/// Bytes read per `read` call.
pub const READ_CHUNK: usize = 64 * 1024;
/// Reads per socket per turn before it goes to the back of the line.
pub const READ_BUDGET: usize = 16;
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Tunables shared by every daemon.
#[derive(Clone, Debug)]
pub struct Options {
    /// Close a connected stream that has not sent anything for this long.
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose unsent output grows past this (a peer that never reads).
    pub max_backlog: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            idle_timeout: None,
            max_backlog: 16 * 1024 * 1024,
        }
    }
}

enum Io {
    Listener(TcpListener),
    Stream(TcpStream),
}

/// One slot of the control array: a socket, its Winsock state, the bytes still
/// to send, and whatever the daemon keeps per connection (`data`).
pub struct Socket<T> {
    state: State,
    io: Io,
    /// The remote address (streams) or the bound address (listeners).
    addr: SocketAddr,
    out: OutQueue,
    /// Registered for writability yet (only after the first short write).
    want_write: bool,
    /// `close` was asked for while output was queued: close once it is flushed.
    close_when_sent: bool,
    /// On the `again` list (read budget spent): at most once per turn.
    read_again: bool,
    /// On the `completed` list: `send_complete` fires once per drain.
    complete_queued: bool,
    last_active: Instant,
    pub data: T,
}

impl<T> Socket<T> {
    pub fn state(&self) -> State {
        self.state
    }

    /// The peer's address (IPv4-mapped IPv6 shown as IPv4), or a listener's own.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes queued and not yet taken by the socket.
    pub fn unsent(&self) -> usize {
        self.out.len()
    }

    pub fn is_listener(&self) -> bool {
        matches!(self.io, Io::Listener(_))
    }
}

/// A connection waiting to be accepted (VB's `requestID`). Dropping it refuses it.
pub struct Request {
    stream: TcpStream,
    remote: SocketAddr,
}

impl Request {
    /// The remote address, with IPv4-mapped IPv6 addresses shown as IPv4.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }
}

/// The events a daemon handles. Every method gets the reactor so it can send,
/// accept, connect, close and set timers; none of them may block.
pub trait Handler {
    /// What the daemon keeps in each slot.
    type Data;

    /// A listener has a connection waiting. Call [`Reactor::accept`] to take it,
    /// [`Reactor::refuse`] to answer and drop it, or just drop it.
    fn connection_request(
        &mut self,
        r: &mut Reactor<Self::Data>,
        listener: Index,
        request: Request,
    );

    /// Bytes arrived on a connected slot. Framing is the handler's business:
    /// TCP may split or merge whatever the peer sent.
    fn data_arrival(&mut self, r: &mut Reactor<Self::Data>, index: Index, data: &[u8]);

    /// A stream slot has gone: its socket is closed and the index is free again.
    fn close(&mut self, r: &mut Reactor<Self::Data>, index: Index, data: Self::Data);

    /// An outgoing connection from [`Reactor::connect`] is established.
    fn connect(&mut self, _r: &mut Reactor<Self::Data>, _index: Index) {}

    /// Everything sent on `index` so far has been taken by the socket.
    fn send_complete(&mut self, _r: &mut Reactor<Self::Data>, _index: Index) {}

    /// An I/O error ended `index` (already logged); `close` follows.
    fn error(&mut self, _r: &mut Reactor<Self::Data>, _index: Index, _err: &io::Error) {}

    /// A timer set with [`Reactor::set_timer`] expired.
    fn timer(&mut self, _r: &mut Reactor<Self::Data>, _id: usize) {}

    /// Bytes arrived on stdin (after [`Reactor::watch_stdin`]); empty means EOF.
    fn key_press(&mut self, _r: &mut Reactor<Self::Data>, _data: &[u8]) {}

    /// Another thread called `wake()` on [`Reactor::waker`].
    fn wake(&mut self, _r: &mut Reactor<Self::Data>) {}

    /// SIGINT or SIGTERM arrived. The default stops the loop.
    fn shutdown(&mut self, r: &mut Reactor<Self::Data>) {
        r.stop();
    }
}

/// The poll loop's state: the slot table, the timers and the queued events.
pub struct Reactor<T> {
    poll: Poll,
    waker: Arc<Waker>,
    slots: SlotTable<Socket<T>>,
    options: Options,
    /// The time the current batch started; handlers use it instead of asking the clock.
    now: Instant,
    /// Slots marked closing or errored, reaped after the batch.
    doomed: Vec<Index>,
    /// Slots whose write queue emptied, in order: `send_complete` is due.
    completed: VecDeque<Index>,
    /// Sockets that used up their read budget and still have data.
    again: Vec<Index>,
    timers: Vec<(Instant, usize)>,
    accept_retry_at: Option<Instant>,
    next_idle_sweep: Option<Instant>,
    stdin: Option<Stdin>,
    stopped: bool,
}

/// stdin is read without O_NONBLOCK: on a terminal, fds 0, 1 and 2 share one open
/// file description, and non-blocking stdin would make every write to stdout and
/// stderr fail with EAGAIN whenever the terminal is slow. Instead each read is
/// preceded by a zero-timeout `poll`, so it only happens when it cannot block.
struct Stdin {
    /// epoll cannot watch regular files and /dev/null; such stdin is read every turn.
    always_ready: bool,
    /// The read budget ran out with input still waiting: read again next turn.
    again: bool,
    eof: bool,
}

impl Stdin {
    /// Input may be waiting that no epoll event will announce.
    fn pending(&self) -> bool {
        !self.eof && (self.always_ready || self.again)
    }
}

impl<T> Reactor<T> {
    pub fn new(options: Options) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let now = Instant::now();
        let next_idle_sweep = options.idle_timeout.map(|t| now + sweep_period(t));
        Ok(Reactor {
            poll,
            waker,
            slots: SlotTable::new(),
            options,
            now,
            doomed: Vec::new(),
            completed: VecDeque::new(),
            again: Vec::new(),
            timers: Vec::new(),
            accept_retry_at: None,
            next_idle_sweep,
            stdin: None,
            stopped: false,
        })
    }

    /// Turns SIGINT and SIGTERM into [`Handler::shutdown`] calls (a second one exits at once).
    pub fn catch_signals(&self) -> io::Result<()> {
        signals::install(self.waker.clone())
    }

    /// A handle other threads use to wake the loop ([`Handler::wake`]).
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// The time the current event batch started.
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn slots(&self) -> &SlotTable<Socket<T>> {
        &self.slots
    }

    pub fn socket(&self, i: Index) -> Option<&Socket<T>> {
        self.slots.get(i)
    }

    pub fn data(&self, i: Index) -> Option<&T> {
        self.slots.get(i).map(|s| &s.data)
    }

    pub fn data_mut(&mut self, i: Index) -> Option<&mut T> {
        self.slots.get_mut(i).map(|s| &mut s.data)
    }

    pub fn state(&self, i: Index) -> State {
        self.slots.get(i).map_or(State::Closed, |s| s.state)
    }

    /// The local address of slot `i` (a listener's real port after binding port 0).
    pub fn local_addr(&self, i: Index) -> io::Result<SocketAddr> {
        match &self.slots.get(i).ok_or_else(no_slot)?.io {
            Io::Listener(l) => l.local_addr(),
            Io::Stream(s) => s.local_addr(),
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
            (
                SocketAddr::new(bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port),
                e,
            )
        })?;
        let index = self.slots.next_index();
        self.poll
            .registry()
            .register(&mut listener, Token(index), Interest::READABLE)
            .map_err(|e| (bound, e))?;
        Ok(self.insert(Io::Listener(listener), State::Listening, bound, data))
    }

    /// Takes a pending connection into the lowest free slot (VB: `p2p(a).Accept requestID`).
    pub fn accept(&mut self, request: Request, data: T) -> io::Result<Index> {
        let Request { mut stream, remote } = request;
        let index = self.slots.next_index();
        self.poll
            .registry()
            .register(&mut stream, Token(index), Interest::READABLE)?;
        Ok(self.insert(Io::Stream(stream), State::Connected, remote, data))
    }

    /// Answers a pending connection with `reply` (best effort) and drops it.
    pub fn refuse(&mut self, request: Request, reply: &[u8]) {
        let mut stream = request.stream;
        // Closing with unread input sends RST, which can destroy the reply before the
        // client reads it; a servant sends its request right after connecting.
        let _ = stream.read(&mut [0u8; 512]);
        let _ = stream.write(reply);
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }

    /// Starts an outgoing connection (VB: `.Connect ip, port`) from `bind` if given,
    /// without blocking. [`Handler::connect`] fires when it is up; anything sent
    /// before then is queued.
    pub fn connect(&mut self, to: SocketAddr, bind: Option<IpAddr>, data: T) -> io::Result<Index> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(to),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_nonblocking(true)?;
        if let Some(ip) = bind {
            // Leave the port to connect(), which can reuse one across destinations
            // and from TIME_WAIT; bind() alone must find one free for every
            // destination, slowly, and runs out after ~28,000 recent connections.
            let on: libc::c_int = 1;
            // SAFETY: setsockopt on our own socket with a valid int option value.
            unsafe {
                use std::os::fd::AsRawFd;
                let opt = (&on as *const libc::c_int).cast();
                let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                let fd = socket.as_raw_fd();
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    opt,
                    len,
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
        self.poll.registry().register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(self.insert(Io::Stream(stream), State::Connecting, to, data))
    }

    fn insert(&mut self, io: Io, state: State, addr: SocketAddr, data: T) -> Index {
        let i = self.slots.insert(Socket {
            state,
            io,
            addr,
            out: OutQueue::default(),
            want_write: matches!(state, State::Connecting),
            close_when_sent: false,
            read_again: false,
            complete_queued: false,
            last_active: self.now,
            data,
        });
        debug!("slot {i} ({addr}): state={}=>{state}", State::Closed);
        i
    }

    /// Queues `data` on slot `i` and writes what the socket takes now (VB: `.SendData`).
    pub fn send(&mut self, i: Index, data: &[u8]) {
        self.send_pieces(i, &[Piece::Bytes(data)]);
    }

    /// Sends several buffers as one (`writev`), so a document assembled from pieces
    /// is never copied when the socket takes it whole.
    pub fn send_vectored(&mut self, i: Index, bufs: &[&[u8]]) {
        let mut pieces = [Piece::Bytes(&[]); 8];
        for (p, b) in pieces.iter_mut().zip(bufs) {
            *p = Piece::Bytes(b);
        }
        self.send_pieces(i, &pieces[..bufs.len().min(8)]);
        if bufs.len() > 8 {
            self.send_vectored(i, &bufs[8..]);
        }
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

    fn send_pieces(&mut self, i: Index, pieces: &[Piece<'_>]) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        let written = match (&mut s.io, s.state) {
            (Io::Stream(stream), State::Connected) if s.out.is_empty() => {
                outq::write_pieces(stream, pieces)
            }
            (_, State::Connected | State::Connecting) => Ok(0),
            _ => return, // closing or a listener: nothing more goes out
        };
        match written {
            Ok(n) => {
                s.out.push(pieces, n);
                if s.out.is_empty() {
                    if !std::mem::replace(&mut s.complete_queued, true) {
                        self.completed.push_back(i);
                    }
                } else {
                    self.queued(i);
                }
            }
            Err(e) => self.fail(i, e),
        }
    }

    /// Output is waiting on slot `i`: watch for writability and police the backlog.
    fn queued(&mut self, i: Index) {
        let max = self.options.max_backlog;
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if s.unsent() > max {
            warn!(
                "slot {i} ({}): peer is not reading, {} bytes unsent (limit {max}); closing",
                s.addr,
                s.unsent()
            );
            self.mark(i, State::Error);
            return;
        }
        if !s.want_write {
            s.want_write = true;
            if let Io::Stream(stream) = &mut s.io {
                let token = Token(i);
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self.poll.registry().reregister(stream, token, interest) {
                    self.fail(i, e);
                }
            }
        }
    }

    /// Closes slot `i` once its queued output is flushed (VB: `.Close`). The slot is
    /// reaped after the current event batch, and [`Handler::close`] runs then.
    pub fn close(&mut self, i: Index) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if s.unsent() > 0 && matches!(s.state, State::Connected | State::Connecting) {
            s.close_when_sent = true;
        } else {
            self.mark(i, State::Closing);
        }
    }

    /// Closes slot `i` now, dropping any queued output: for a peer that broke the
    /// protocol, whose further input must not be read. Reaped like [`Reactor::close`].
    pub fn abort(&mut self, i: Index) {
        self.mark(i, State::Closing);
    }

    /// Calls [`Handler::timer`] with `id` at `at`, replacing any timer with that id.
    pub fn set_timer(&mut self, id: usize, at: Instant) {
        self.cancel_timer(id);
        self.timers.push((at, id));
    }

    pub fn cancel_timer(&mut self, id: usize) {
        self.timers.retain(|&(_, t)| t != id);
    }

    pub fn timer_due(&self, id: usize) -> Option<Instant> {
        self.timers
            .iter()
            .find(|&&(_, t)| t == id)
            .map(|&(at, _)| at)
    }

    /// Delivers stdin to [`Handler::key_press`] from the same loop, without threads.
    pub fn watch_stdin(&mut self) -> io::Result<()> {
        let fd = 0;
        let always_ready = match self.poll.registry().register(
            &mut mio::unix::SourceFd(&fd),
            STDIN,
            Interest::READABLE,
        ) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => true,
            Err(e) => return Err(e),
        };
        self.stdin = Some(Stdin {
            always_ready,
            again: false,
            eof: false,
        });
        Ok(())
    }

    /// Ends the loop after the current batch.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn mark(&mut self, i: Index, to: State) {
        if let Some(s) = self.slots.get_mut(i) {
            if matches!(s.state, State::Closing | State::Error) {
                return;
            }
            debug!("slot {i} ({}): state={}=>{to}", s.addr, s.state);
            s.state = to;
            self.doomed.push(i);
        }
    }

    fn fail(&mut self, i: Index, e: io::Error) {
        if let Some(s) = self.slots.get(i) {
            match e.kind() {
                // Routine on the network, and the handler hears of them through `error`.
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionRefused => {
                    debug!("slot {i} ({}): {e}", s.addr)
                }
                _ => info!("slot {i} ({}): {e}", s.addr),
            }
            self.mark(i, State::Error);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers
            .iter()
            .map(|&(at, _)| at)
            .chain(self.accept_retry_at)
            .chain(self.next_idle_sweep)
            .min()
    }

    /// Runs the loop until [`Reactor::stop`].
    pub fn run<H: Handler<Data = T>>(&mut self, h: &mut H) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; READ_CHUNK];
        while !self.stopped {
            let busy = !self.again.is_empty() || self.stdin.as_ref().is_some_and(Stdin::pending);
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => {
                        if signals::take() {
                            info!("signal received, shutting down");
                            h.shutdown(self);
                        }
                        h.wake(self);
                    }
                    STDIN => self.stdin_ready(h, &mut buf),
                    Token(i) => self.ready(h, i, event, &mut buf),
                }
            }
            for i in std::mem::take(&mut self.again) {
                if let Some(s) = self.slots.get_mut(i) {
                    s.read_again = false;
                    self.read(h, i, &mut buf);
                }
            }
            if self.stdin.as_ref().is_some_and(Stdin::pending) {
                self.stdin_ready(h, &mut buf);
            }
            self.after_batch(h);
        }
        Ok(())
    }

    /// Timers, retries and sweeps, then queued `send_complete`s, then the reaping.
    fn after_batch<H: Handler<Data = T>>(&mut self, h: &mut H) {
        let now = Instant::now();
        self.now = now;
        if self.accept_retry_at.is_some_and(|at| at <= now) {
            self.accept_retry_at = None;
            let listeners: Vec<Index> = self
                .slots
                .iter()
                .filter(|(_, s)| s.is_listener())
                .map(|(i, _)| i)
                .collect();
            for l in listeners {
                self.accept_all(h, l);
            }
        }
        if self.next_idle_sweep.is_some_and(|at| at <= now) {
            self.sweep_idle();
        }
        if self.timers.iter().any(|&(at, _)| at <= now) {
            // Take the due ones first: a handler that re-arms its timer for `now`
            // runs again next turn, not forever within this one.
            let mut due = Vec::new();
            self.timers.retain(|&(at, id)| {
                let fire = at <= now;
                if fire {
                    due.push((at, id));
                }
                !fire
            });
            due.sort_unstable();
            for (_, id) in due {
                h.timer(self, id);
            }
        }
        loop {
            while let Some(i) = self.completed.pop_front() {
                let Some(s) = self.slots.get_mut(i) else {
                    continue;
                };
                s.complete_queued = false;
                if s.state != State::Connected || s.unsent() > 0 {
                    continue;
                }
                if s.close_when_sent {
                    self.mark(i, State::Closing);
                } else {
                    h.send_complete(self, i);
                }
            }
            if self.doomed.is_empty() {
                break;
            }
            self.reap(h);
        }
    }

    /// Removes every doomed slot and tells the handler. A close may doom others
    /// or complete sends; the caller loops until both queues are empty.
    fn reap<H: Handler<Data = T>>(&mut self, h: &mut H) {
        while let Some(i) = self.doomed.pop() {
            let Some(s) = self.slots.remove(i) else {
                continue;
            };
            debug!(
                "slot {i} ({}): state={}=>{}",
                s.addr,
                s.state,
                State::Closed
            );
            // Dropping the socket closes the fd, which also takes it out of the epoll
            // set: no deregister syscall on the churn path.
            let Socket { io, data, .. } = s;
            drop(io);
            h.close(self, i, data);
        }
    }

    fn sweep_idle(&mut self) {
        let Some(limit) = self.options.idle_timeout else {
            return;
        };
        self.next_idle_sweep = Some(self.now + sweep_period(limit));
        let now = self.now;
        let idle: Vec<(Index, SocketAddr)> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                matches!(s.state, State::Connected | State::Connecting)
                    && now.duration_since(s.last_active) >= limit
            })
            .map(|(i, s)| (i, s.addr))
            .collect();
        for (i, addr) in idle {
            info!(
                "slot {i} ({addr}): silent for {} s, closing",
                limit.as_secs_f64()
            );
            self.mark(i, State::Closing);
        }
    }

    fn ready<H: Handler<Data = T>>(
        &mut self,
        h: &mut H,
        i: Index,
        event: &mio::event::Event,
        buf: &mut [u8],
    ) {
        // Sporadic events for slots reaped earlier are normal; ignore them.
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        match s.state {
            State::Listening => self.accept_all(h, i),
            State::Connecting => {
                if event.is_writable() || event.is_error() || event.is_write_closed() {
                    self.finish_connect(h, i);
                }
                if event.is_readable() {
                    self.read(h, i, buf);
                }
            }
            State::Connected => {
                if event.is_writable() {
                    self.flush(i);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(h, i, buf);
                }
            }
            // Closing or errored: the slot is already on its way out.
            _ => {}
        }
    }

    fn finish_connect<H: Handler<Data = T>>(&mut self, h: &mut H, i: Index) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        let Io::Stream(stream) = &s.io else { return };
        let outcome = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => Ok(()),
                // Not yet: a spurious wake-up; wait for the next event.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(()) => {
                debug!(
                    "slot {i} ({}): state={}=>{}",
                    s.addr,
                    s.state,
                    State::Connected
                );
                s.state = State::Connected;
                s.last_active = self.now;
                h.connect(self, i);
                self.flush(i);
            }
            Err(e) => {
                h.error(self, i, &e);
                self.fail(i, e);
            }
        }
    }

    fn accept_all<H: Handler<Data = T>>(&mut self, h: &mut H, l: Index) {
        while !self.stopped {
            let Some(Socket {
                io: Io::Listener(listener),
                ..
            }) = self.slots.get(l)
            else {
                return;
            };
            match listener.accept() {
                Ok((stream, remote)) => {
                    let remote = SocketAddr::new(canonical_ip(remote.ip()), remote.port());
                    h.connection_request(self, l, Request { stream, remote });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: the connection stays in the backlog; spinning
                    // on it would burn the CPU, so pause accepting and try again shortly.
                    if self.accept_retry_at.is_none() {
                        warn!(
                            "accept failed: {e}; pausing accepts for {} ms",
                            ACCEPT_BACKOFF.as_millis()
                        );
                    }
                    self.accept_retry_at = Some(self.now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn read<H: Handler<Data = T>>(&mut self, h: &mut H, i: Index, buf: &mut [u8]) {
        for _ in 0..READ_BUDGET {
            let Some(s) = self.slots.get_mut(i) else {
                return;
            };
            // VB: `If p2p(Index).State <> 7 Then p2p(Index).Close: Exit Sub`.
            if s.state != State::Connected {
                return;
            }
            let Io::Stream(stream) = &mut s.io else {
                return;
            };
            match stream.read(buf) {
                Ok(0) => {
                    self.mark(i, State::Closing);
                    return;
                }
                Ok(n) => {
                    s.last_active = self.now;
                    h.data_arrival(self, i, &buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    h.error(self, i, &e);
                    self.fail(i, e);
                    return;
                }
            }
        }
        // Budget spent with data still waiting: come back after the others, once.
        if let Some(s) = self.slots.get_mut(i) {
            if !std::mem::replace(&mut s.read_again, true) {
                self.again.push(i);
            }
        }
    }

    fn flush(&mut self, i: Index) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if s.state != State::Connected || s.out.is_empty() {
            return;
        }
        let Io::Stream(stream) = &mut s.io else {
            return;
        };
        match s.out.write_to(stream) {
            Ok(0) => {}
            Ok(_) => {
                s.last_active = self.now;
                if s.out.is_empty() && !std::mem::replace(&mut s.complete_queued, true) {
                    self.completed.push_back(i);
                }
            }
            Err(e) => self.fail(i, e),
        }
    }

    fn stdin_ready<H: Handler<Data = T>>(&mut self, h: &mut H, buf: &mut [u8]) {
        if let Some(stdin) = &mut self.stdin {
            stdin.again = false;
        }
        for _ in 0..READ_BUDGET {
            let Some(stdin) = &mut self.stdin else { return };
            if stdin.eof {
                return;
            }
            let mut pfd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one valid pollfd, zero timeout.
            if unsafe { libc::poll(&mut pfd, 1, 0) } == 0 {
                return; // nothing waiting: the read would block
            }
            // SAFETY: reads into a valid, writable buffer of the given length.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return,
                    io::ErrorKind::Interrupted => continue,
                    _ => {
                        warn!("stdin: {e}; no more input");
                        stdin.eof = true;
                        h.key_press(self, &[]);
                        return;
                    }
                }
            }
            if n == 0 {
                stdin.eof = true;
                h.key_press(self, &[]);
                return;
            }
            h.key_press(self, &buf[..n as usize]);
        }
        if let Some(stdin) = &mut self.stdin {
            stdin.again = true;
        }
    }
}

/// A non-blocking listener on `addr`, dual-stack when `addr` is `::`.
fn open_listener(addr: SocketAddr) -> Result<TcpListener, (SocketAddr, io::Error)> {
    let open = || -> io::Result<TcpListener> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
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

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, from a dual-stack listener) shown as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn sweep_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

fn no_slot() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no such slot")
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::TcpStream as StdStream;

    /// Answers any input with `reply_len` bytes, then closes (after the flush).
    struct Blaster {
        reply_len: usize,
        closes: usize,
    }

    impl Handler for Blaster {
        type Data = ();
        fn connection_request(&mut self, r: &mut Reactor<()>, _l: Index, req: Request) {
            r.accept(req, ()).unwrap();
        }
        fn data_arrival(&mut self, r: &mut Reactor<()>, i: Index, _data: &[u8]) {
            let reply: Vec<u8> = (0..self.reply_len).map(|n| (n % 251) as u8).collect();
            r.send_vectored(i, &[&reply[..10], &reply[10..]]);
            r.close(i);
        }
        fn close(&mut self, r: &mut Reactor<()>, _i: Index, _data: ()) {
            self.closes += 1;
            r.stop();
        }
    }

    /// Runs `h` on a reactor in a thread; returns the listener's address and the thread.
    fn serve<H: Handler<Data = ()> + Send + 'static>(
        options: Options,
        mut h: H,
    ) -> (SocketAddr, std::thread::JoinHandle<H>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let mut r = Reactor::new(options).unwrap();
            let l = r.listen(Some([127, 0, 0, 1].into()), 0, ()).unwrap();
            tx.send(r.local_addr(l).unwrap()).unwrap();
            r.run(&mut h).unwrap();
            h
        });
        (rx.recv().unwrap(), t)
    }

    #[test]
    fn a_reply_bigger_than_the_socket_buffer_arrives_whole_before_the_close() {
        let len = 8 * 1024 * 1024;
        let (addr, t) = serve(
            Options::default(),
            Blaster {
                reply_len: len,
                closes: 0,
            },
        );
        let mut c = StdStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"go").unwrap();
        // Read slowly at first, so the server has to queue most of it.
        let mut first = [0u8; 1024];
        c.read_exact(&mut first).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert_eq!(first.len() + rest.len(), len);
        assert!(rest
            .iter()
            .enumerate()
            .all(|(n, &b)| b == ((n + 1024) % 251) as u8));
        assert_eq!(t.join().unwrap().closes, 1);
    }

    #[test]
    fn a_client_that_never_reads_is_dropped_at_the_backlog_limit() {
        let options = Options {
            max_backlog: 64 * 1024,
            ..Options::default()
        };
        let (addr, t) = serve(
            options,
            Blaster {
                reply_len: 16 * 1024 * 1024,
                closes: 0,
            },
        );
        let mut c = StdStream::connect(addr).unwrap();
        c.write_all(b"go").unwrap();
        // The server gives up on us without our reading a byte, and its loop goes on.
        assert_eq!(t.join().unwrap().closes, 1);
    }

    #[test]
    fn mapped_addresses_read_as_ipv4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical_ip(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }

    #[test]
    fn idle_sweeps_are_frequent_enough_but_bounded() {
        assert_eq!(
            sweep_period(Duration::from_secs(30)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_period(Duration::from_millis(200)),
            Duration::from_millis(50)
        );
    }
}
