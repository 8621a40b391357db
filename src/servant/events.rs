//! What happened on the network, as a chat user wants to hear it: who joined and
//! who left, the manager lost and back, a peer that cannot be reached (once). On a
//! terminal each is a short line in the transcript (`-- bob (127.0.0.3:2225)
//! joined`); elsewhere they are only logged, since stdout is one line per message.
//!
//! The article's form refilled `userList1` on every list and said nothing; here
//! joins and leaves are the difference between the last list and the new one. A
//! peer is the same peer when its listed address is; one that kept its name and
//! address but not its port (the manager restarted and numbered ports afresh) is
//! the same peer too, so a manager's restart does not read as everyone leaving.
//!
//! Events are logged under this module's target; the console does not repeat
//! those records as warnings ([`super::console`]).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::peers::{Applied, Peers};
use super::Servant;
use crate::wire::peerdoc::Peer;

/// Joins or leaves shown one by one from a single list; the rest are counted.
const SHOWN: usize = 8;
/// How long a newcomer without a name is given to say one before it is announced
/// by its address.
const NAME_GRACE: Duration = Duration::from_secs(1);

/// What the events remember between lists.
#[derive(Debug, Default)]
pub(super) struct Events {
    /// Peers we could not deliver to, said once until a delivery gets through.
    unreachable: HashSet<SocketAddr>,
    /// Newcomers not announced yet: they have no name so far, and since when.
    unnamed: Vec<(SocketAddr, Instant)>,
    /// The first list has come.
    greeted: bool,
    /// Since when the first list waits to be announced: until every peer on it
    /// has a name, or [`NAME_GRACE`] has passed.
    greeting: Option<Instant>,
}

impl Servant {
    /// A new list replaced `applied.old`: say who joined, who left and who changed
    /// name, or, for the first list, who is here.
    pub(super) fn list_changed(&mut self, applied: Applied, now: Instant) {
        let Applied { old, old_names, .. } = applied;
        let same = self.peers.same_as(&old, &old_names);
        if self.events.greeted && same {
            return; // the answer to a poll, as most are: nothing new
        }
        self.console
            .set_names(self.config.name.as_deref(), self.peers.names());
        let peers = &self.peers;
        let e = &mut self.events;
        e.unreachable.retain(|a| peers.contains(*a));
        e.unnamed.retain(|(a, _)| peers.contains(*a));
        if !std::mem::replace(&mut e.greeted, true) {
            e.greeting = Some(now);
        }
        if e.greeting.is_some() {
            return self.greet(now); // whoever came meanwhile is in the greeting
        }
        let said = e.differences(peers, &old, &old_names, now);
        let more = said.len().saturating_sub(SHOWN);
        for line in said.iter().take(SHOWN) {
            debug!("{line}");
            self.console.event(line);
        }
        if more > 0 {
            self.console.event(&format!(
                "and {more} more joined, left or renamed; /peers lists who is here"
            ));
        }
    }
}

impl Events {
    /// What changed from `old` to the current list, as event lines. A newcomer
    /// without a name waits in `unnamed` for one: a servant says its name right
    /// after connecting, but the manager may push the list with it before that.
    fn differences(
        &mut self,
        peers: &Peers,
        old: &[Peer],
        old_names: &HashMap<SocketAddr, String>,
        now: Instant,
    ) -> Vec<String> {
        // A peer that left and one that joined from the same address with the same
        // name (or both without one) are one peer the manager gave another port.
        type Key = (IpAddr, Option<String>);
        let old_key = |p: &Peer| (p.ip, old_names.get(&p.addr()).cloned());
        let new_key = |p: &Peer| (p.ip, peers.name(p.addr()).map(str::to_owned));
        let count = |keys: &mut HashMap<Key, usize>, k: Key| *keys.entry(k).or_default() += 1;
        let before: HashSet<SocketAddr> = old.iter().filter(|p| !p.me).map(Peer::addr).collect();
        let gone: Vec<&Peer> = (old.iter())
            .filter(|p| !p.me && !peers.contains(p.addr()))
            .collect();
        let new: Vec<&Peer> = (peers.iter())
            .filter(|p| !p.me && !before.contains(&p.addr()))
            .collect();
        let (mut gone_keys, mut new_keys) = (HashMap::new(), HashMap::new());
        gone.iter().for_each(|p| count(&mut gone_keys, old_key(p)));
        new.iter().for_each(|p| count(&mut new_keys, new_key(p)));
        let moved = |keys: &mut HashMap<Key, usize>, k: Key| match keys.get_mut(&k) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        let mut said = Vec::new();
        for p in new {
            if moved(&mut gone_keys, new_key(p)) {
                continue;
            }
            match peers.name(p.addr()) {
                Some(n) => said.push(format!("{n} ({}) joined", p.addr())),
                None => self.unnamed.push((p.addr(), now)),
            }
        }
        for p in gone {
            if moved(&mut new_keys, old_key(p)) {
                continue;
            }
            said.push(match old_names.get(&p.addr()) {
                Some(n) => format!("{n} ({}) left", p.addr()),
                None => format!("{} left", p.addr()),
            });
        }
        for p in peers.iter().filter(|p| before.contains(&p.addr())) {
            let a = p.addr();
            let waiting = self.unnamed.iter().position(|&(u, _)| u == a);
            said.push(
                match (
                    old_names.get(&a).map(String::as_str),
                    peers.name(a),
                    waiting,
                ) {
                    (None, Some(n), Some(k)) => {
                        self.unnamed.swap_remove(k);
                        format!("{n} ({a}) joined")
                    }
                    (Some(w), Some(n), _) if w != n => format!("{w} ({a}) is now known as {n}"),
                    (None, Some(n), None) => format!("{a} is now known as {n}"),
                    (Some(w), None, _) => format!("{w} ({a}) has no name now"),
                    _ => continue,
                },
            );
        }
        said
    }
}

impl Servant {
    /// Newcomers still without a name after [`NAME_GRACE`] are announced by address.
    pub(super) fn unnamed_joins(&mut self, now: Instant) {
        if self.events.greeting.is_some() {
            self.greet(now);
        }
        while let Some(k) =
            (self.events.unnamed.iter()).position(|&(_, at)| now.duration_since(at) >= NAME_GRACE)
        {
            let (a, _) = self.events.unnamed.swap_remove(k);
            self.console.event(&format!("{a} joined"));
        }
    }

    /// The first list: who is here, once all have names or [`NAME_GRACE`] passed.
    fn greet(&mut self, now: Instant) {
        let named = |p: &Peer| p.me || self.peers.name(p.addr()).is_some();
        let since = self.events.greeting.unwrap_or(now);
        if now.duration_since(since) < NAME_GRACE && !self.peers.iter().all(named) {
            return;
        }
        self.events.greeting = None;
        let others: Vec<String> = (self.peers.iter())
            .filter(|p| !p.me)
            .map(|p| self.peers.who(p.addr()))
            .collect();
        let me = self.peers.me().map(Peer::addr);
        let you = match (me, &self.config.name) {
            (Some(a), Some(n)) => format!("you are {n} ({a})"),
            (Some(a), None) => format!("you are {a}"),
            (None, _) => "you are not on the list yet".into(),
        };
        let line = match others.len() {
            0 => format!("{you}; nobody else is here yet"),
            n if n <= SHOWN => format!("{you}; here: {}", others.join(", ")),
            n => format!("{you}; {n} others here (/peers lists them)"),
        };
        self.console.event(&line);
    }

    /// The manager link is down: logged once per outage, and shown.
    pub(super) fn manager_lost_event(&mut self, why: &str) {
        warn!(
            "connection manager at {}: {why}; keeping the last list of {} peers and retrying",
            self.link.manager,
            self.peers.len()
        );
        let others = self.peers.iter().filter(|p| !p.me).count();
        self.console.event(&format!(
            "lost the connection manager at {} ({why}); still chatting with {others} peer(s), reconnecting",
            self.link.manager
        ));
    }

    /// The manager link is up again after an outage.
    pub(super) fn manager_back_event(&mut self) {
        info!("connection manager at {} is back", self.link.manager);
        self.console.event(&format!(
            "the connection manager at {} is back",
            self.link.manager
        ));
    }

    /// A batch to `to` was delivered or not: an unreachable peer is said once, and
    /// once again when it can be reached.
    pub(super) fn delivery_event(&mut self, to: SocketAddr, delivered: bool) {
        let newly = if delivered {
            self.events.unreachable.remove(&to)
        } else {
            self.events.unreachable.insert(to)
        };
        if !newly || self.quitting {
            return;
        }
        let who = self.peers.who(to);
        self.console.event(&if delivered {
            format!("{who} can be reached again")
        } else {
            format!("{who} cannot be reached; lines to it are lost")
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servant::{bans::Bans, Config, Input};

    fn servant() -> Servant {
        let manager = "127.0.0.1:8585".parse().unwrap();
        let mut s = Servant::new(
            Config::default(),
            manager,
            Bans::new::<&str>(&[]),
            Input::Headless,
            crate::servant::incoming::Admission::new(1024),
        );
        s.events.greeted = true;
        s
    }

    fn peer(ip: &str, port: u16, me: bool) -> Peer {
        Peer {
            ip: ip.parse().unwrap(),
            port,
            offset: usize::from(port),
            me,
            relay: None,
        }
    }

    /// Moves `s` to the list `peers` (with their names) and returns what it said.
    fn list(s: &mut Servant, peers: &[(&str, u16, Option<&str>)], at: Instant) -> Vec<String> {
        let mut next = vec![peer("127.0.0.2", 2224, true)];
        let mut said = Vec::new();
        for &(ip, port, name) in peers {
            let p = peer(ip, port, false);
            said.push((p.addr(), name.map(String::from)));
            next.push(p);
        }
        let whole = crate::wire::delta::Answer::Whole {
            version: None,
            peers: next,
        };
        let applied = s.peers.apply(whole, said, usize::MAX).unwrap();
        (s.events).differences(&s.peers, &applied.old, &applied.old_names, at)
    }

    #[test]
    fn joins_leaves_and_renames_by_name() {
        let mut s = servant();
        let t = Instant::now();
        assert_eq!(
            list(&mut s, &[("127.0.0.3", 2225, Some("bob"))], t),
            ["bob (127.0.0.3:2225) joined"]
        );
        assert_eq!(
            list(&mut s, &[("127.0.0.3", 2225, Some("robert"))], t),
            ["bob (127.0.0.3:2225) is now known as robert"]
        );
        assert_eq!(list(&mut s, &[], t), ["robert (127.0.0.3:2225) left"]);
    }

    #[test]
    fn a_newcomer_is_announced_with_the_name_it_says_next() {
        let mut s = servant();
        let t = Instant::now();
        assert!(list(&mut s, &[("127.0.0.3", 2225, None)], t).is_empty());
        assert_eq!(
            list(&mut s, &[("127.0.0.3", 2225, Some("bob"))], t),
            ["bob (127.0.0.3:2225) joined"],
            "one line, not a join and a rename"
        );
        assert!(list(
            &mut s,
            &[("127.0.0.3", 2225, Some("bob")), ("127.0.0.4", 2226, None)],
            t
        )
        .is_empty());
        s.unnamed_joins(t + NAME_GRACE / 2);
        assert_eq!(s.events.unnamed.len(), 1, "still given time to say a name");
        s.unnamed_joins(t + NAME_GRACE);
        assert!(s.events.unnamed.is_empty(), "announced by address");
    }

    #[test]
    fn a_restarted_manager_renumbering_ports_is_no_news() {
        let mut s = servant();
        let t = Instant::now();
        let first = [
            ("127.0.0.3", 2225, Some("bob")),
            ("127.0.0.1", 2226, None),
            ("127.0.0.1", 2227, None),
        ];
        list(&mut s, &first, t);
        s.events.unnamed.clear();
        let renumbered = [
            ("127.0.0.1", 3001, None),
            ("127.0.0.3", 3002, Some("bob")),
            ("127.0.0.1", 3003, None),
        ];
        assert!(list(&mut s, &renumbered, t).is_empty());
        assert!(s.events.unnamed.is_empty());
        let one_gone = [("127.0.0.3", 3002, Some("bob")), ("127.0.0.1", 3003, None)];
        assert_eq!(list(&mut s, &one_gone, t), ["127.0.0.1:3001 left"]);
    }
}
