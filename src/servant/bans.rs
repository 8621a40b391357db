//! The ban list: `<bans><ban><target>` from config.xml, by IP address or host name.
//!
//! The article asked MSXML for `ban[target = '" & remoteip & "']` and again with the
//! peer's reverse-resolved host name, pasting the address into XPath and resolving
//! on the UI thread. Here targets that are addresses are compared exactly (as
//! parsed addresses, so `::ffff:1.2.3.4` and `1.2.3.4` match); targets that are
//! names are resolved *forward* to their address sets on a helper thread, at once
//! and then every [`REFRESH`], which hands the results to the loop through a
//! channel and the reactor's waker. The loop itself never resolves anything, so a
//! dead resolver (30 s for three names) delays neither listening nor the manager;
//! until the first results arrive the servant refuses peers' connections, so a
//! name ban still holds from the first connection.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, info, warn};

use crate::net::canonical_ip;

/// How often banned host names are resolved again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// The targets, split into addresses and names, with the names' current addresses.
#[derive(Debug, Default, Clone)]
pub struct Bans {
    ips: HashSet<IpAddr>,
    names: Vec<String>,
    resolved: HashSet<IpAddr>,
}

impl Bans {
    pub fn new<S: AsRef<str>>(targets: &[S]) -> Self {
        let mut bans = Bans::default();
        for t in targets {
            let t = t.as_ref().trim();
            let bracketed = t.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
            match bracketed.unwrap_or(t).parse::<IpAddr>() {
                Ok(ip) => {
                    bans.ips.insert(canonical_ip(ip));
                }
                Err(_) => bans.names.push(t.to_ascii_lowercase()),
            }
        }
        bans
    }

    /// Whether connections from `ip` are refused.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.ips.contains(&ip) || self.resolved.contains(&ip)
    }

    /// The targets that are host names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The addresses the names stand for now.
    pub fn resolved(&self) -> &HashSet<IpAddr> {
        &self.resolved
    }

    /// Replaces the addresses the names stand for; says so when they change.
    pub fn set_resolved(&mut self, addrs: HashSet<IpAddr>) {
        if addrs != self.resolved {
            info!(
                "banned host names now stand for {} address(es): {}",
                addrs.len(),
                show(&addrs)
            );
            self.resolved = addrs;
        }
    }
}

fn show(addrs: &HashSet<IpAddr>) -> String {
    let mut v: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
    v.sort();
    v.join(", ")
}

/// Resolves each name, keeping a name's previous addresses in `last` when it fails
/// this time (a DNS hiccup should not lift a ban). Blocks: never call it in the loop.
pub fn resolve(names: &[String], last: &mut HashMap<String, HashSet<IpAddr>>) -> HashSet<IpAddr> {
    for name in names {
        match (name.as_str(), 0).to_socket_addrs() {
            Ok(addrs) => {
                let set: HashSet<IpAddr> = addrs.map(|a| canonical_ip(a.ip())).collect();
                debug!("ban {}: {}", crate::text::escape(name), show(&set));
                last.insert(name.clone(), set);
            }
            Err(e) if last.contains_key(name) => debug!(
                "ban {}: cannot resolve it now ({e}); keeping its last addresses",
                crate::text::escape(name)
            ),
            Err(e) => warn!(
                "ban {}: cannot resolve it ({e}); it bans nobody until it resolves",
                crate::text::escape(name)
            ),
        }
    }
    last.values().flatten().copied().collect()
}

/// Starts the thread that resolves `names` at once and then every `period`, and
/// sends each result, waking the loop. It ends when the loop drops the receiving end.
pub fn spawn_refresher(
    names: Vec<String>,
    period: Duration,
    tx: Sender<HashSet<IpAddr>>,
    waker: Arc<mio::Waker>,
) -> std::io::Result<()> {
    let mut last = HashMap::new();
    std::thread::Builder::new()
        .name("ban-resolver".into())
        .spawn(move || loop {
            let addrs = resolve(&names, &mut last);
            if tx.send(addrs).is_err() || waker.wake().is_err() {
                return;
            }
            std::thread::sleep(period);
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_match_exactly_and_names_are_kept_apart() {
        let b = Bans::new(&[
            "1.1.1.1",
            " fooUser234.fooISP23423.com ",
            "::1",
            "[fe80::2]",
        ]);
        assert!(b.is_banned(ip("1.1.1.1")));
        assert!(b.is_banned(ip("::ffff:1.1.1.1")));
        assert!(b.is_banned(ip("::1")));
        assert!(b.is_banned(ip("fe80::2")));
        assert!(!b.is_banned(ip("1.1.1.11")));
        assert!(!b.is_banned(ip("11.1.1.1")));
        assert_eq!(b.names(), ["foouser234.fooisp23423.com"]);
    }

    #[test]
    fn names_ban_what_they_resolve_to() {
        let mut b = Bans::new(&["localhost"]);
        assert!(!b.is_banned(ip("127.0.0.1")));
        let mut last = HashMap::new();
        b.set_resolved(resolve(b.names().to_vec().as_slice(), &mut last));
        assert!(b.is_banned(ip("127.0.0.1")));
        assert!(!b.is_banned(ip("127.0.0.2")));
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_addresses() {
        let names = vec!["no-such-host.invalid".to_string()];
        let mut last = HashMap::new();
        last.insert(names[0].clone(), HashSet::from([ip("10.0.0.9")]));
        assert!(resolve(&names, &mut last).contains(&ip("10.0.0.9")));
    }
}
