//! The one reactor every daemon runs: a mio poll loop over a table of socket slots,
//! dispatching the Winsock control's events to a [`Handler`].
//!
//! | Winsock                          | here                                  |
//! |----------------------------------|---------------------------------------|
//! | control array `p2p(i)`           | [`SlotTable`] of [`Socket`], index = mio token |
//! | `Load p2p(i)`, reuse of state 0 or 8 | the lowest reusable slot, `slots.rs` |
//! | `.State`                         | [`State`], every change logged at debug |
//! | `_ConnectionRequest(requestID)`  | [`Handler::connection_request`] with a [`Request`] |
//! | `.Accept requestID`              | [`Reactor::accept`]                   |
//! | `_DataArrival` + `.GetData`      | [`Handler::data_arrival`] with the bytes |
//! | `_Close`                         | [`Handler::close`]                    |
//! | `.Connect` / `_Connect`          | [`Reactor::connect`] (or [`Reactor::connect_unix`]) / [`Handler::connect`] |
//! | `.SendData` / `_SendComplete`    | [`Reactor::send`] / [`Handler::send_complete`] |
//! | `_Error`                         | [`Handler::error`]                    |
//! | a VB `Timer` control             | [`Reactor::set_timer`] / [`Handler::timer`] |
//! | any other input (the servant's stdin) | [`Reactor::watch_fd`] / [`Handler::fd_ready`] |
//! | `txtChat1`, `Debug.Print`        | stdout and stderr, owned by the loop ([`stdio`]) |
//! | (none: private links, opt-in)    | [`Reactor::connect_secure`] / [`Reactor::accept_secure`], [`Handler::admit_key`], [`Handler::authenticated`], `secure.rs` |
//!
//! The mechanism: `poll_loop.rs` (the loop, timers, the one state transition, the
//! reap), `sockets.rs` (the slots' sockets and the Winsock methods on them),
//! `events.rs` (what a ready socket raises), `slots.rs` (the control array), and
//! [`stdio`] with `sink.rs` (stdout and stderr, never blocking). The policies that
//! keep one peer from hurting the others are in `policy.rs`: read and accept
//! budgets, the backlog limit, the idle sweep, the accept back-off.
//!
//! Where it deliberately differs from VB:
//! - Nothing blocks. VB's `DoEvents` loops and `While send1.State = 6` spins become
//!   readiness events; reads, accepts and writes go on until `WouldBlock` or the
//!   turn's budget; even stdout and stderr are written without blocking.
//! - Close late. A handler (or the peer) puts a slot in `sckClosing`; the loop reaps
//!   it after the event batch, so a stale event can never reach a connection that
//!   reused the slot (VB reused state-8 controls in place).
//! - `close` fires for every stream slot that goes away, whoever closed it, so a
//!   daemon's cleanup lives in one place. VB fired `_Close` only for the peer's close.
//! - `SendData` never drops bytes: what the socket does not take is queued and
//!   flushed on writability; `send_complete` fires when the queue is empty. When
//!   the peer closes its side, what is queued for it still goes out before the
//!   slot closes; only the backlog limit drops queued bytes, and says so.

mod events;
mod outq;
mod policy;
mod poll_loop;
mod secure;
#[cfg(test)]
mod secure_tests;
pub mod signals;
mod sink;
pub mod slots;
mod sockets;
pub mod state;
pub mod stdio;
#[cfg(test)]
mod tests;

pub use crate::net::{canonical_ip, At, Chunks, Piece, Shared};
pub use policy::{Options, READ_BUDGET, REKEY_AFTER};
pub use poll_loop::Reactor;
pub use slots::SlotTable;
pub use sockets::Socket;
pub use state::State;

use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;

use crate::noise::PublicKey;

/// A slot's index: the VB control array `Index` and the mio token.
pub type Index = usize;

/// Bytes read per `read` call.
pub const READ_CHUNK: usize = 64 * 1024;

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

    /// A slot has gone: its socket is closed and the slot, back in
    /// `sckClosed`, may be reused.
    fn close(&mut self, r: &mut Reactor<Self::Data>, index: Index, data: Self::Data);

    /// A private slot from [`Reactor::accept_secure`] read the initiator's first
    /// handshake message, which names its static key: `true` goes on with the
    /// handshake, `false` closes the slot. No VB counterpart. The key is not proven
    /// yet (a replayed message names another's key), so nothing is owed to it
    /// before [`Handler::authenticated`]. The default admits nobody: a daemon that
    /// accepts private links says whom.
    fn admit_key(&mut self, _r: &mut Reactor<Self::Data>, _index: Index, _key: &PublicKey) -> bool {
        false
    }

    /// A private slot's initiator proved its static key ([`Reactor::peer_key`]);
    /// its data follows in `data_arrival`. The responder's `connect`; no VB
    /// counterpart.
    fn authenticated(&mut self, _r: &mut Reactor<Self::Data>, _index: Index) {}

    /// An outgoing connection from [`Reactor::connect`] is established; for
    /// [`Reactor::connect_secure`], its handshake is done too.
    fn connect(&mut self, _r: &mut Reactor<Self::Data>, _index: Index) {}

    /// Everything sent on `index` so far has been taken by the socket.
    fn send_complete(&mut self, _r: &mut Reactor<Self::Data>, _index: Index) {}

    /// An I/O error ended `index` (already logged); `close` follows.
    fn error(&mut self, _r: &mut Reactor<Self::Data>, _index: Index, _err: &io::Error) {}

    /// A timer set with [`Reactor::set_timer`] expired.
    fn timer(&mut self, _r: &mut Reactor<Self::Data>, _id: usize) {}

    /// A descriptor watched with [`Reactor::watch_fd`] may have input. Reading it,
    /// without blocking, is the handler's business.
    fn fd_ready(&mut self, _r: &mut Reactor<Self::Data>, _id: usize) {}

    /// Another thread called `wake()` on [`Reactor::waker`]. It may also come for
    /// nothing (a line another thread logged, a signal), so it must be harmless.
    fn wake(&mut self, _r: &mut Reactor<Self::Data>) {}

    /// SIGINT or SIGTERM arrived. The default stops the loop.
    fn shutdown(&mut self, r: &mut Reactor<Self::Data>) {
        r.stop();
    }

    /// SIGHUP arrived: read the settings again and apply what can change live.
    /// The default has nothing to reload.
    fn reload(&mut self, _r: &mut Reactor<Self::Data>) {
        log::info!("SIGHUP: nothing to reload");
    }
}
