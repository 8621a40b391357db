//! The ban list: `<bans><ban><target>` from config.xml, by IP address or host name.
//!
//! The article asked MSXML for `ban[target = '" & remoteip & "']` and again with the
//! peer's reverse-resolved host name, pasting the address into XPath and resolving
//! on the UI thread. Here targets that are addresses are compared exactly (as
//! parsed addresses, so `::ffff:1.2.3.4` and `1.2.3.4` match); targets that are
//! names are resolved *forward* to their address sets, at once and then every
//! [`REFRESH`], by [`crate::resolve`] on the loop itself: the questions go out
//! and the answers come back as events, so a dead DNS server (30 s for three
//! names) delays neither listening nor the manager. Until the first results
//! arrive the servant refuses peers' connections, so a name ban holds from the
//! first connection.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use log::{debug, info, warn};

use super::Slot;
use crate::net::canonical_ip;
use crate::reactor::Reactor;
use crate::resolve;

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

/// The addresses the names stand for after a round of lookups, keeping a name's
/// previous addresses in `last` when its lookup failed this time (a DNS hiccup
/// should not lift a ban). Names no longer looked up are forgotten.
pub fn merge<'a>(
    outcomes: impl Iterator<Item = (&'a str, Option<&'a resolve::Found>)>,
    last: &mut HashMap<String, HashSet<IpAddr>>,
) -> HashSet<IpAddr> {
    let mut asked = HashSet::new();
    for (name, outcome) in outcomes {
        asked.insert(name.to_string());
        match outcome {
            Some(Ok(addrs)) => {
                let set: HashSet<IpAddr> = addrs.iter().map(|a| canonical_ip(*a)).collect();
                debug!("ban {}: {}", crate::text::escape(name), show(&set));
                last.insert(name.to_string(), set);
            }
            Some(Err(_)) | None if last.contains_key(name) => debug!(
                "ban {}: cannot resolve it now ({}); keeping its last addresses",
                crate::text::escape(name),
                why(outcome)
            ),
            _ => warn!(
                "ban {}: cannot resolve it ({}); it bans nobody until it resolves",
                crate::text::escape(name),
                why(outcome)
            ),
        }
    }
    last.retain(|name, _| asked.contains(name));
    last.values().flatten().copied().collect()
}

fn why(outcome: Option<&resolve::Found>) -> String {
    match outcome {
        Some(Err(e)) => crate::text::escape(e).into_owned(),
        _ => "no answer".into(),
    }
}

/// Timer id (the servant's `timer` handler): a ban lookup's question timed out,
/// or the next refresh is due.
pub(super) const BAN_LOOKUP: usize = 4;
/// Descriptor id (its `fd_ready` handler): the ban lookups' socket.
pub(super) const BAN_SOCKET: usize = 1;

/// The servant's bans: the list in force, its names' lookups, and who was refused.
#[derive(Debug)]
pub(super) struct Banning {
    pub(super) list: Bans,
    /// The banned host names' lookups in flight.
    pub(super) lookup: Option<resolve::Batch>,
    /// What each banned name stood for when it last resolved.
    pub(super) last: HashMap<String, HashSet<IpAddr>>,
    /// Banned host names have not been resolved yet: every connection is refused.
    pub(super) pending: bool,
    /// Addresses whose refusal has been logged.
    pub(super) refused_logged: HashSet<IpAddr>,
}

impl Banning {
    pub(super) fn new(list: Bans) -> Banning {
        Banning {
            pending: !list.names().is_empty(),
            list,
            lookup: None,
            last: HashMap::new(),
            refused_logged: HashSet::new(),
        }
    }

    /// Puts the new ban list in force: addresses at once; names that stay keep
    /// what they resolved to until the new round of lookups (started here when
    /// the names changed) says otherwise.
    pub(super) fn replace(&mut self, targets: &[String], r: &mut Reactor<Slot>) {
        let mut list = Bans::new(targets);
        let same_names = list.names() == self.list.names();
        if same_names {
            list.set_resolved(self.list.resolved().clone());
        } else {
            self.last.retain(|name, _| list.names().contains(name));
            list.set_resolved(self.last.values().flatten().copied().collect());
        }
        self.list = list;
        if !same_names {
            self.look_up(r);
        }
        // A newly banned peer's first refusal is logged, like anyone's.
        self.refused_logged.clear();
    }

    /// Looks the banned host names up (again), on the loop: at start, after a
    /// reload that changed them, and every [`REFRESH`].
    pub(super) fn look_up(&mut self, r: &mut Reactor<Slot>) {
        self.stop_lookup(r);
        let names = self.list.names().to_vec();
        if names.is_empty() {
            // A reload took the names away before they were first looked up.
            if std::mem::take(&mut self.pending) {
                info!("no banned host names left to look up; accepting connections");
            }
            return;
        }
        match resolve::Batch::start(&resolve::Settings::system(), &names, r.now()) {
            Ok(batch) => {
                if let Some(fd) = batch.fd() {
                    if let Err(e) = r.watch_fd(fd, BAN_SOCKET) {
                        warn!("cannot watch the ban lookups' socket: {e}; trying again later");
                        r.set_timer(BAN_LOOKUP, r.now() + REFRESH);
                        return;
                    }
                }
                self.lookup = Some(batch);
                self.lookup_moved(r);
            }
            Err(e) => {
                warn!("cannot look up banned host names: {e}; trying again later");
                r.set_timer(BAN_LOOKUP, r.now() + REFRESH);
            }
        }
    }

    pub(super) fn stop_lookup(&mut self, r: &mut Reactor<Slot>) {
        if let Some(batch) = self.lookup.take() {
            r.unwatch_fd(BAN_SOCKET);
            drop(batch); // its socket closes only after the loop stopped watching it
        }
        r.cancel_timer(BAN_LOOKUP);
    }

    /// The lookups' socket is readable, or a question timed out.
    pub(super) fn lookup_event(&mut self, r: &mut Reactor<Slot>, readable: bool) {
        match &mut self.lookup {
            Some(batch) if readable => batch.readable(r.now()),
            Some(batch) => batch.expire(r.now()),
            None if !readable => return self.look_up(r), // the refresh is due
            None => return,
        }
        self.lookup_moved(r);
    }

    /// Applies a finished round, or waits for the next deadline.
    fn lookup_moved(&mut self, r: &mut Reactor<Slot>) {
        let Some(batch) = &self.lookup else {
            return;
        };
        if !batch.is_done() {
            if let Some(at) = batch.deadline() {
                r.set_timer(BAN_LOOKUP, at);
            }
            return;
        }
        let addrs = merge(batch.outcomes(), &mut self.last);
        self.stop_lookup(r);
        self.list.set_resolved(addrs);
        if std::mem::take(&mut self.pending) {
            info!("banned host names looked up; accepting connections");
        }
        r.set_timer(BAN_LOOKUP, r.now() + REFRESH);
    }
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
        let found: resolve::Found = Ok(vec![ip("::ffff:127.0.0.1")]);
        b.set_resolved(merge([("localhost", Some(&found))].into_iter(), &mut last));
        assert!(b.is_banned(ip("127.0.0.1")));
        assert!(!b.is_banned(ip("127.0.0.2")));
    }

    #[test]
    fn a_failed_lookup_keeps_the_last_addresses_and_dropped_names_are_forgotten() {
        let mut last = HashMap::new();
        last.insert(
            "flaky.example".to_string(),
            HashSet::from([ip("192.0.2.9")]),
        );
        last.insert(
            "dropped.example".to_string(),
            HashSet::from([ip("192.0.2.8")]),
        );
        let failed: resolve::Found = Err("no reply from 127.0.0.1".into());
        let now = merge([("flaky.example", Some(&failed))].into_iter(), &mut last);
        assert_eq!(now, HashSet::from([ip("192.0.2.9")]));
        assert!(!last.contains_key("dropped.example"));
        let never = merge([("new.example", Some(&failed))].into_iter(), &mut last);
        assert!(never.is_empty());
    }
}
