//! What goes over the wire: the peer document, the manager's request lines, and
//! what the relay adds to both.
//! `docs/PROTOCOL.md` is the reference.

pub mod peerdoc;
pub mod relay;
pub mod request;
