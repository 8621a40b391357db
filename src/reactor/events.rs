//! What the loop does when a slot's socket is ready, each as the Winsock event it
//! raises: `ConnectionRequest` (accepting, [`ACCEPT_BUDGET`] a turn), `Connect`,
//! `DataArrival` (reading, [`READ_BUDGET`] chunks a turn), `SendComplete` (writing
//! out what `SendData` queued), and `Close` when the peer closes its side.

use std::io::{self, Read};
use std::net::SocketAddr;

use log::debug;
use mio::event::Event;

use super::policy::ACCEPT_BUDGET;
use super::sockets::{Io, Socket};
use super::{canonical_ip, Handler, Index, Reactor, Request, State, READ_BUDGET};

impl<T> Reactor<T> {
    /// An event for slot `i`.
    pub(super) fn ready<H: Handler<Data = T>>(
        &mut self,
        h: &mut H,
        i: Index,
        event: &Event,
        buf: &mut [u8],
    ) {
        // Sporadic events for slots reaped earlier are normal; ignore them.
        let Some(s) = self.slots.get(i) else {
            return;
        };
        // One waiting on the `again` list has had its budget this turn: it is
        // resumed after the other events, not here.
        let (state, waiting) = (s.state, s.again);
        match state {
            State::Listening if !waiting => self.accept_some(h, i),
            State::Connecting => {
                if event.is_writable() || event.is_error() || event.is_write_closed() {
                    self.finish_connect(h, i, event.is_writable() && !event.is_error());
                }
                if event.is_readable() {
                    self.read(h, i, buf, false);
                }
            }
            State::Connected => {
                if event.is_writable() || event.is_error() {
                    self.flush(i);
                }
                let input = event.is_readable() || event.is_read_closed() || event.is_error();
                if input && !waiting {
                    // Without a close or an error in the event, a short read has
                    // emptied the socket: what arrives later raises a new event.
                    let settled = !event.is_read_closed() && !event.is_error();
                    self.read(h, i, buf, settled);
                }
            }
            // Closing, errored or closed: the slot is on its way out, or gone.
            _ => {}
        }
    }

    /// A slot that used its budget last turn gets another.
    pub(super) fn resume<H: Handler<Data = T>>(&mut self, h: &mut H, i: Index, buf: &mut [u8]) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        s.again = false;
        let state = s.state;
        match state {
            State::Listening => self.accept_some(h, i),
            State::Connected => self.read(h, i, buf, false),
            _ => {}
        }
    }

    fn finish_connect<H: Handler<Data = T>>(&mut self, h: &mut H, i: Index, writable: bool) {
        let Some(stream) = self.slots.get_mut(i).and_then(Socket::stream) else {
            return;
        };
        let outcome = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            // Linux reports a connecting socket writable only once the connect is
            // done, and no error pending then means it succeeded: no getpeername.
            Ok(None) if writable => Ok(()),
            Ok(None) => match stream.connected() {
                Ok(()) => Ok(()),
                // Not yet: a spurious wake-up; wait for the next event.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(()) => {
                self.transition(i, State::Connected);
                // A private link's `connect` waits for its handshake (secure.rs).
                if !self.is_secure(i) {
                    h.connect(self, i);
                }
                self.flush(i);
            }
            Err(e) => {
                h.error(self, i, &e);
                self.fail(i, e);
            }
        }
    }

    /// Accepts up to [`ACCEPT_BUDGET`] connections, then lets the others
    /// have their turn.
    pub(super) fn accept_some<H: Handler<Data = T>>(&mut self, h: &mut H, l: Index) {
        for _ in 0..ACCEPT_BUDGET {
            if self.stopped || self.accepts_paused() {
                return;
            }
            let Some(s) = self.slots.get(l).filter(|s| s.state == State::Listening) else {
                return;
            };
            let Some(Io::Listener(listener)) = &s.io else {
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
                Err(e) => return self.pause_accepts(&e),
            }
        }
        self.again_later(l);
    }

    /// Reads up to [`READ_BUDGET`] chunks from slot `i`, then lets the others have
    /// their turn. With `settled` (an edge-triggered readable event that reported
    /// no close), a read shorter than `buf` ends it: epoll(7) says a short read
    /// of a stream socket has drained it, so the read that would only say
    /// "would block" is skipped: one syscall in two when a line comes to each of
    /// a thousand connections.
    fn read<H: Handler<Data = T>>(&mut self, h: &mut H, i: Index, buf: &mut [u8], settled: bool) {
        let active = !self.options.touch_only;
        for _ in 0..READ_BUDGET {
            let now = self.now;
            let Some(s) = self.slots.get_mut(i) else {
                return;
            };
            // VB: `If p2p(Index).State <> 7 Then p2p(Index).Close: Exit Sub`.
            if s.state != State::Connected || s.peer_closed {
                return;
            }
            let Some(stream) = s.stream() else {
                return;
            };
            match stream.read(buf) {
                Ok(0) if s.secure.is_some() => return self.secure_hangup(h, i),
                Ok(0) => return self.peer_closed(i),
                Ok(n) => {
                    if active {
                        s.last_active = now;
                    }
                    if s.secure.is_some() {
                        self.secure_input(h, i, &buf[..n]);
                    } else {
                        h.data_arrival(self, i, &buf[..n]);
                    }
                    if settled && n < buf.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    h.error(self, i, &e);
                    return self.fail(i, e);
                }
            }
        }
        self.again_later(i);
    }

    /// The peer closed its side. VB went to `sckClosing` at once; here what is
    /// still queued for the peer goes out first (a client may half-close right
    /// after its requests, as `nc -N` does), then the slot closes.
    pub(super) fn peer_closed(&mut self, i: Index) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        s.peer_closed = true;
        if s.unsent() == 0 {
            return self.transition(i, State::Closing);
        }
        debug!(
            "slot {i} ({}): the peer closed its side; sending the {} bytes queued first",
            s.addr,
            s.unsent()
        );
        s.close_when_sent = true;
    }

    /// Puts slot `i` on the list to come back to after the others, once per turn.
    fn again_later(&mut self, i: Index) {
        if let Some(s) = self.slots.get_mut(i) {
            if !std::mem::replace(&mut s.again, true) {
                self.again.push(i);
            }
        }
    }

    /// Writes what is queued on slot `i` until the socket would block.
    pub(super) fn flush(&mut self, i: Index) {
        let now = self.now;
        let active = !self.options.touch_only;
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if s.state != State::Connected || s.out.is_empty() {
            return;
        }
        let Some(Io::Stream(stream)) = &mut s.io else {
            return;
        };
        match s.out.write_to(stream) {
            Ok(0) => {}
            Ok(_) => {
                if active {
                    s.last_active = now;
                }
                // A private slot's queue may have held only handshake bytes, which
                // owe no `send_complete`; a close waiting for them is still due.
                if s.out.is_empty() {
                    let owed = s.secure.as_deref_mut().is_none_or(|sec| sec.take_owed());
                    if owed || s.close_when_sent {
                        self.sent_all(i);
                    }
                }
            }
            Err(e) => self.fail(i, e),
        }
    }
}
