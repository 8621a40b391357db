//! What goes over the wire: the peer document, the manager's request lines, and
//! what the relay and servants' names add to both.
//! `docs/PROTOCOL.md` is the reference.

pub mod name;
pub mod peerdoc;
pub mod relay;
pub mod request;
