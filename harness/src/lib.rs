//! What the p2pchat daemons do not run: the way the tests, the benchmarks,
//! `p2pchat-demo` and `churn` start the project's binaries and wait for their
//! readiness lines ([`Spawn`], [`Process`]), the network namespaces the relay is
//! tried in ([`netns`]), and the demo's script ([`demo`]).
//!
//! It does not depend on the `p2pchat` library, which depends on it: the demo's
//! in-process parts are played by the `p2pchat-demo` binary (see [`demo::ROLE`]).

pub mod demo;
pub mod netns;
mod process;

pub use process::{read_line_until, servant_args, Process, Spawn, LISTENING};
