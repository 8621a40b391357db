//! A Redis client on the project's own reactor, for the connection managers that
//! will share one network's membership through a Redis server (the cluster mode,
//! `connmgr --cluster URL`, is being built on this; until it exists nothing in
//! the daemons talks to Redis, and without `--cluster` nothing ever will).
//!
//! Why not the `redis` crate: it adds about 430 KiB to the static binary,
//! resolves names with a blocking `getaddrinfo`, and has no non-blocking API to
//! put on a mio loop. RESP2 is small:
//!
//! - [`resp`]: the command writer and the incremental reply reader, with caps on
//!   everything a reply can claim.
//! - [`url`]: `redis://[USER:PASSWORD@]HOST:PORT[/DB]` and `unix:///path`.
//! - [`client`]: one connection (TCP or Unix socket) on the reactor: AUTH and
//!   SELECT on connect, pipelined commands answered in order by request id, a
//!   loss reported once and reconnection with back-off, a reply timeout; and
//!   [`streams::StreamReader`], the connection for one `XREAD BLOCK` at a time.
//! - [`script`]: Lua scripts by `EVALSHA`, falling back to `EVAL` when the
//!   server's script cache is empty (`NOSCRIPT`, after a restart).
//!
//! Nothing here blocks: names are resolved with [`crate::resolve`], connects,
//! reads and writes are the reactor's, and a server that stops answering costs a
//! timeout, never a stalled loop.

pub mod client;
pub mod resp;
pub mod script;
pub mod streams;
pub mod url;

pub use client::{Client, Event, Lost, Options, RequestId};
pub use resp::{Reader, Reply, RespError};
pub use script::Script;
pub use streams::StreamReader;
pub use url::{RedisUrl, Target};
