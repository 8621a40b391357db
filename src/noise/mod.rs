//! The private network's link layer: every link a Noise session
//! (`Noise_IK_25519_ChaChaPoly_BLAKE2s`, through the `snow` crate), opt-in, on
//! the same reactor and the same VB events as plaintext links.
//!
//! | what                                       | where            |
//! |--------------------------------------------|------------------|
//! | static keys, key files, their permissions  | [`keys`]         |
//! | snow's primitives, the kernel's randomness | [`resolver`]     |
//! | the 2-byte length frames, read incrementally | [`frame`]      |
//! | one link's handshake and transport         | [`link`]         |
//! | limits on handshakes from strangers        | [`guard`]        |
//! | `keygen` and `pubkey` subcommands          | [`command`]      |
//!
//! The reactor runs the handshake for a slot opened with
//! `Reactor::connect_secure` or accepted with `Reactor::accept_secure`
//! (src/reactor/secure.rs) and raises the handler's events only for an
//! authenticated peer. What is built and what is not: docs/PRIVATE.md.

pub mod command;
pub mod e2e;
pub mod frame;
pub mod guard;
pub mod keys;
pub mod link;
pub mod resolver;
#[cfg(test)]
mod tests;

pub use guard::HandshakeLimits;
pub use keys::{Keypair, PublicKey};
pub use link::{Link, LinkError, Role, Step, PREAMBLE};
