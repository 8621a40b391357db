//! p2pchat: a Rust port of dzzxyz's "Generic P2P Architecture" VB6 chat.
//!
//! Two single-threaded daemons share one reactor:
//!
//! | VB6 original                                   | here                       |
//! |------------------------------------------------|----------------------------|
//! | Winsock control arrays, `Load`, `.State`, events | [`reactor`]              |
//! | connection manager form (`p2p(i)`, `pDoc`, `iPortMax`) | [`connmgr`]          |
//! | the peer document `<peers><peer>...`           | [`wire::peerdoc`]          |
//! | `"needs peer list"` and other request lines    | [`wire::request`]          |
//! | MSXML `loadXML` of config and documents        | [`xml`]                    |
//! | `config.xml` read with file, line and reason    | [`config`]                 |
//! | servant form (`Winsock1`, `servants1(i)`, `send1`, `txtSend1`) | [`servant`] |
//! | (none: many servants at once, to measure the manager) | [`churn`]          |
//! | (none: `p2pchat-demo` playing a daemon in its own process) | [`play`]   |
//! | `Debug.Print`, never blocking the loop           | [`logging`]                |
//! | (shared by the wire and the reactor)           | [`net`]                    |
//! | (none: opt-in private links, Noise sessions)   | [`noise`]                  |
//! | (none: a Redis client for the cluster of managers being built) | [`redis`] |
//! | (none: VB's text box showed text; a terminal interprets it) | [`text`]      |
//!
//! The library holds what the binaries run. How the tests, the benchmarks, the
//! demo and churn start the binaries and wait for them, the network namespaces
//! the relay is tried in, and the demo's script are the `p2pchat-harness` crate
//! (`harness/`), which the daemons never link.
//!
//! See `docs/PROTOCOL.md` for the wire protocol and `README.md` for running it.

pub mod churn;
pub mod cli;
pub mod config;
pub mod connmgr;
pub mod entry;
pub mod logfilter;
pub mod logging;
pub mod net;
pub mod noise;
pub mod notify;
pub mod play;
pub mod reactor;
pub mod redis;
pub mod resolve;
pub mod servant;
pub mod static_libc;
pub mod text;
pub mod wire;
pub mod xml;

/// Why a daemon could not start: its `run` failed before or while looping
/// (exit status 1, where a bad flag or config file is a [`config::ConfigError`], 2).
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}
