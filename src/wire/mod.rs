//! What goes over the wire: the peer document and its versions (deltas), the
//! manager's request lines, and what the relay, servants' names and a private
//! network's keys add to both.
//! `docs/PROTOCOL.md` is the reference.

pub mod delta;
pub mod history;
pub mod key;
pub mod name;
pub mod peerdoc;
pub mod peers;
pub mod private;
pub mod pull;
pub mod relay;
mod render;
pub mod request;
pub mod sealed;
pub mod version;
