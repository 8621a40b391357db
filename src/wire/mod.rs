//! What goes over the wire: the peer document and the manager's request lines.
//! `docs/PROTOCOL.md` is the reference.

pub mod peerdoc;
pub mod request;
