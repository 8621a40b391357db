//! Servants behind a port-blocking router, across a real network boundary: each
//! test builds a public segment, a NAT router that drops new inbound connections
//! and a home segment out of network namespaces ([`p2pchat_harness::netns`]), runs the
//! real binaries inside them, and removes everything when it ends.
//!
//! They need root, `ip` and `nft`. Where those are missing the build script marks
//! them ignored, with that reason; run anyway, they fail saying what is missing.
//! The tests named `on_loopback_...` need none of it: the manager's side on
//! loopback, with raw clients.

#[path = "relay/attacks.rs"]
mod attacks;
mod common;
#[path = "relay/hostile_relay.rs"]
mod hostile_relay;
#[path = "relay/loopback.rs"]
mod loopback;
#[path = "relay/marked.rs"]
mod marked;
#[path = "relay/private.rs"]
mod private;
#[path = "relay/tampering.rs"]
mod tampering;
#[path = "relay/world.rs"]
mod world;
