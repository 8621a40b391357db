//! Where churn's connections come from when `--bind` does not say.
//!
//! Each connect from one source address to one server makes the kernel search
//! the ephemeral port range for a port that source has free towards that server
//! (`__inet_hash_connect`), and on loopback every cycle whose client closes first
//! leaves its port in TIME_WAIT: the search grows long and the connect rate of
//! one source address, not churn's thread, is what tops out. All of 127.0.0.0/8
//! is loopback on Linux, so against an IPv4 loopback target churn spreads the
//! connections that it closes over [`DEFAULT`], a range no servant in the
//! project's docs or tests uses.

use std::net::IpAddr;

use super::{Config, Mode};

/// The source addresses churn uses by default against IPv4 loopback. The
/// project keeps 127.200.0.0/16 for churn: docs and tests use other ranges.
pub const DEFAULT: &str = "127.200.0.1-127.200.0.254";

/// What churn chose for a run with no `--bind`.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// Spread over [`DEFAULT`].
    Spread(Vec<IpAddr>),
    /// Loopback, but IPv6: one address only; say so.
    Warn(String),
    /// Let the OS choose (a remote target, or the server closes first).
    Os,
}

/// Whether churn closes the connections it makes first, so that their
/// TIME_WAIT ports stay on churn's side.
fn closes_first(c: &Config) -> bool {
    match c.mode {
        Mode::JoinLeave => {
            !c.keep_alive
                && match &c.protocol {
                    super::Protocol::Manager => true,
                    super::Protocol::Generic { expect, .. } => expect.is_some(),
                }
        }
        // Steady churners are told apart from steady servants by their source
        // addresses (`--stay`): only `--bind` may choose those.
        Mode::Steady | Mode::Fanout | Mode::Flood => false,
    }
}

/// The source addresses for `c`, which has no `--bind`.
pub fn choose(c: &Config) -> Choice {
    if !c.sources.is_empty() || !closes_first(c) || !c.target.ip().is_loopback() {
        return Choice::Os;
    }
    match c.target.ip() {
        IpAddr::V4(_) => Choice::Spread(super::args::sources(DEFAULT).expect("a valid range")),
        IpAddr::V6(_) => Choice::Warn(format!(
            "every connection to {} comes from ::1, one source address: past ~14,000 \
             connects/s the kernel's search for a free port is the limit. Give \
             --bind with more addresses, or target 127.0.0.1 (churn then spreads \
             over {DEFAULT})",
            c.target
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: Mode, target: &str) -> Config {
        Config::new(mode, target.parse().unwrap())
    }

    #[test]
    fn loopback_churn_is_spread_unless_told() {
        let c = config(Mode::JoinLeave, "127.0.0.1:85");
        let Choice::Spread(list) = choose(&c) else {
            panic!("not spread")
        };
        assert_eq!(list.len(), 254);
        assert_eq!(list[0], "127.200.0.1".parse::<IpAddr>().unwrap());
        let mut bound = c.clone();
        bound.sources = vec!["127.0.0.2".parse().unwrap()];
        assert_eq!(choose(&bound), Choice::Os);
        let mut kept = c.clone();
        kept.keep_alive = true;
        assert_eq!(choose(&kept), Choice::Os);
        assert_eq!(choose(&config(Mode::Flood, "127.0.0.1:85")), Choice::Os);
        assert_eq!(choose(&config(Mode::JoinLeave, "10.0.0.1:85")), Choice::Os);
        assert!(matches!(
            choose(&config(Mode::JoinLeave, "[::1]:85")),
            Choice::Warn(_)
        ));
    }
}
