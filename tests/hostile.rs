//! Hostile peers, lying managers and careless operators, tried as an attacker
//! would: real `connmgr` and `servant` processes on loopback, and raw sockets or a
//! fake manager in the test playing the attacker. Each test is one class of abuse;
//! each failed before the limits it checks existed.
//!
//! Every test has its own `127.0.8N.x` block, so ports never collide across tests
//! running in parallel. Waits are on log or stdout lines with deadlines.

mod common;
#[path = "hostile/fakes.rs"]
mod fakes;
#[path = "hostile/manager.rs"]
mod manager;
#[path = "hostile/operators.rs"]
mod operators;
#[path = "hostile/peers.rs"]
mod peers;
