//! What happened on the network, as a chat user wants to hear it: who joined and
//! who left, the manager lost and back, a peer that cannot be reached (once). On a
//! terminal each is a short line in the transcript (`-- bob (127.0.0.3:2225)
//! joined`); elsewhere they are only logged, since stdout is one line per message.
//!
//! The article's form refilled `userList1` on every list and said nothing; here
//! joins, leaves and renames are told, and only when membership really changed.
//! A peer is who it says it is: the same name is the same peer whatever its
//! address and port, and an unnamed peer is the same peer while its address is.
//! So a manager's restart, after which every servant reconnects within its
//! backoff and is given a new port, is no news: a peer missing from the list is
//! told as gone only once it has stayed away for [`LEAVE_GRACE`], and never while
//! the list settles after our own reconnect (`peerlist.rs`). And every leave told
//! follows a join (or the greeting) told for the same peer: a peer that came and
//! went before it was told is never told at all.
//!
//! Events are logged under this module's target; the console does not repeat
//! those records as warnings ([`super::console`]).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::console::LinkState;
use super::peers::{Applied, Peers};
use super::Servant;
use crate::wire::peerdoc::Peer;

/// Joins or leaves shown one by one from a single list; the rest are counted.
const SHOWN: usize = 8;
/// How long a newcomer without a name is given to say one before it is announced
/// by its address.
const NAME_GRACE: Duration = Duration::from_secs(1);

/// How long a peer missing from the list is given to come back (its manager link
/// blipped, a push raced its reconnect) before it is told as gone.
const LEAVE_GRACE: Duration = Duration::from_millis(1500);

/// Who a peer is, across ports: its name, or its address while it has none.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Who {
    Named(String),
    Unnamed(IpAddr),
}

/// What the events remember between lists.
#[derive(Debug, Default)]
pub(super) struct Events {
    /// Peers we could not deliver to, said once until a delivery gets through.
    unreachable: HashSet<SocketAddr>,
    /// Newcomers not announced yet: they have no name so far, and since when.
    unnamed: Vec<(SocketAddr, Instant)>,
    /// Peers told as here (greeted or joined), and where they were last listed.
    told: Vec<(Who, SocketAddr)>,
    /// Peers told as here that the list no longer holds, and since when.
    missing: Vec<(Who, SocketAddr, Instant)>,
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
        self.console.set_peer_count(self.peers.len());
        self.console.set_link(if self.link.article {
            LinkState::ArticleMode
        } else {
            LinkState::Connected
        });
        let same = self.peers.same_as(&old, &old_names);
        if self.events.greeted && same {
            return; // the answer to a poll, as most are: nothing new
        }
        self.seen.saw(&self.peers, now);
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
    /// What changed from `old` to the current list, as event lines: renames and
    /// named newcomers at once; an unnamed newcomer waits in `unnamed` for a name
    /// (a servant says its name right after connecting, but the manager may push
    /// the list with it before that), a missing peer in `missing` for its return.
    fn differences(
        &mut self,
        peers: &Peers,
        old: &[Peer],
        old_names: &HashMap<SocketAddr, String>,
        now: Instant,
    ) -> Vec<String> {
        let mut said = Vec::new();
        // A name changed at the same address: a rename, if the peer was told.
        for p in peers.iter().filter(|p| !p.me) {
            let a = p.addr();
            if !old.iter().any(|o| o.addr() == a) {
                continue;
            }
            let (was, now_named) = (old_names.get(&a), peers.name(a));
            let Some(n) = now_named else { continue };
            let from = match was {
                Some(w) if w != n => Who::Named(w.clone()),
                None => Who::Unnamed(p.ip),
                _ => continue,
            };
            let told = self.told.iter().position(|(w, at)| *w == from && *at == a);
            let Some(k) = told else { continue };
            said.push(match was {
                Some(w) => format!("{w} ({a}) is now known as {n}"),
                None => format!("{a} is now known as {n}"),
            });
            self.told[k].0 = Who::Named(n.to_string());
        }
        let mut listed: Vec<(Who, SocketAddr)> = (peers.iter().filter(|p| !p.me))
            .map(|p| (who(peers, p), p.addr()))
            .collect();
        // Each peer told is matched to one listed as the same peer: found, it has
        // perhaps moved; not found, it is missing (told as gone later, if it stays so).
        for (w, at) in &mut self.told {
            match listed.iter().position(|(l, _)| l == w) {
                Some(k) => {
                    *at = listed.swap_remove(k).1;
                    self.missing.retain(|(m, ..)| m != w);
                }
                None if !self.missing.iter().any(|(m, ..)| m == w) => {
                    self.missing.push((w.clone(), *at, now));
                }
                None => {}
            }
        }
        // The rest are newcomers: told at once by name, or waiting for one.
        self.unnamed.retain(|(a, _)| {
            listed
                .iter()
                .any(|(w, l)| l == a && matches!(w, Who::Unnamed(_)))
        });
        for (w, a) in listed {
            match w {
                Who::Named(n) => {
                    said.push(format!("{n} ({a}) joined"));
                    self.told.push((Who::Named(n), a));
                }
                Who::Unnamed(_) if self.unnamed.iter().any(|(u, _)| *u == a) => {}
                Who::Unnamed(_) => self.unnamed.push((a, now)),
            }
        }
        said
    }

    /// Unnamed newcomers that had their time to say a name, and peers missing for
    /// longer than [`LEAVE_GRACE`] (not while the list settles: `settling`).
    fn overdue(&mut self, now: Instant, settling: bool) -> Vec<String> {
        let mut said = Vec::new();
        let missing_from = |ip: IpAddr, missing: &[(Who, SocketAddr, Instant)]| {
            missing.iter().any(|(_, a, _)| a.ip() == ip)
        };
        let mut k = 0;
        while k < self.unnamed.len() {
            let (a, since) = self.unnamed[k];
            // One that may be a missing peer coming back waits for that to be known.
            if now.duration_since(since) < NAME_GRACE || missing_from(a.ip(), &self.missing) {
                k += 1;
                continue;
            }
            self.unnamed.swap_remove(k);
            said.push(format!("{a} joined"));
            self.told.push((Who::Unnamed(a.ip()), a));
        }
        if settling {
            return said;
        }
        let gone =
            |(_, _, since): &(Who, SocketAddr, Instant)| now.duration_since(*since) >= LEAVE_GRACE;
        for (w, a, _) in self.missing.iter().filter(|m| gone(m)) {
            self.told.retain(|(t, _)| t != w);
            said.push(match w {
                Who::Named(n) => format!("{n} ({a}) left"),
                Who::Unnamed(_) => format!("{a} left"),
            });
        }
        self.missing.retain(|m| !gone(m));
        said
    }
}

/// Who the peer listed as `p` is.
pub(super) fn who(peers: &Peers, p: &Peer) -> Who {
    match peers.name(p.addr()) {
        Some(n) => Who::Named(n.to_string()),
        None => Who::Unnamed(p.ip),
    }
}

impl Servant {
    /// Newcomers still without a name after [`NAME_GRACE`] are announced by
    /// address; peers missing for [`LEAVE_GRACE`] are told as gone.
    pub(super) fn unnamed_joins(&mut self, now: Instant) {
        if self.events.greeting.is_some() {
            self.greet(now);
        }
        let settling = self.lists.settling.is_some();
        for line in self.events.overdue(now, settling) {
            debug!("{line}");
            self.console.event(&line);
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
        self.events.told = (self.peers.iter().filter(|p| !p.me))
            .map(|p| (who(&self.peers, p), p.addr()))
            .collect();
        self.events.unnamed.clear();
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

    /// No manager could be reached at start: said once, with what happened and
    /// where to look, then retried quietly.
    pub(super) fn manager_unreachable_event(&mut self, why: &str) {
        let m = self.link.manager;
        let said = format!(
            "cannot reach the connection manager at {m}: {}. Is connmgr running there? \
             Name it with --connmgr HOST[:PORT] or --port N (the default port is 85; \
             the README runs connmgr on 8585). Retrying quietly",
            failure(why)
        );
        warn!("{said}");
        self.console.event(&said);
    }

    /// The manager link is up again after an outage (`had`), or at last after
    /// failing at start.
    pub(super) fn manager_back_event(&mut self, had: bool) {
        let m = self.link.manager;
        if had {
            info!("connection manager at {m} is back");
            self.console
                .event(&format!("the connection manager at {m} is back"));
        } else {
            info!("reached the connection manager at {m}");
            self.console
                .event(&format!("reached the connection manager at {m}"));
        }
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

/// What a failed connection to the manager amounts to, in a user's words.
fn failure(why: &str) -> String {
    let lower = why.to_lowercase();
    if lower.contains("refused") {
        "connection refused (nothing listens on that port)".into()
    } else if lower.contains("timed out") {
        "timed out (a firewall, or no such host)".into()
    } else if lower.contains("no route") || lower.contains("unreachable") {
        "no route to that address".into()
    } else {
        why.to_string()
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
            vec![manager],
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
            key: None,
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

    /// What the tick says at `at`, the list not settling.
    fn tick(s: &mut Servant, at: Instant) -> Vec<String> {
        s.events.overdue(at, false)
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
        assert!(list(&mut s, &[], t).is_empty(), "not gone yet");
        assert!(tick(&mut s, t + LEAVE_GRACE / 2).is_empty());
        assert_eq!(
            tick(&mut s, t + LEAVE_GRACE),
            ["robert (127.0.0.3:2225) left"]
        );
        assert!(tick(&mut s, t + LEAVE_GRACE * 2).is_empty(), "said once");
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
        assert!(
            tick(&mut s, t + NAME_GRACE / 2).is_empty(),
            "still given time"
        );
        assert_eq!(tick(&mut s, t + NAME_GRACE), ["127.0.0.4:2226 joined"]);
        assert_eq!(
            list(
                &mut s,
                &[
                    ("127.0.0.3", 2225, Some("bob")),
                    ("127.0.0.4", 2226, Some("dan"))
                ],
                t
            ),
            ["127.0.0.4:2226 is now known as dan"]
        );
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
        assert_eq!(tick(&mut s, t + NAME_GRACE).len(), 2, "both unnamed joined");
        // The new manager's list fills as servants reconnect, each first unnamed.
        let t = t + NAME_GRACE;
        assert!(list(&mut s, &[], t).is_empty());
        assert!(list(&mut s, &[("127.0.0.3", 3002, None)], t).is_empty());
        assert!(
            s.events.overdue(t + LEAVE_GRACE * 4, true).is_empty(),
            "settling"
        );
        let renumbered = [
            ("127.0.0.1", 3001, None),
            ("127.0.0.3", 3002, Some("bob")),
            ("127.0.0.1", 3003, None),
        ];
        assert!(list(&mut s, &renumbered, t).is_empty());
        assert!(tick(&mut s, t + LEAVE_GRACE * 4).is_empty());
        let one_gone = [("127.0.0.3", 3002, Some("bob")), ("127.0.0.1", 3003, None)];
        assert!(list(&mut s, &one_gone, t).is_empty());
        assert_eq!(tick(&mut s, t + LEAVE_GRACE), ["127.0.0.1:3003 left"]);
    }

    #[test]
    fn a_peer_gone_before_it_was_told_is_never_told() {
        let mut s = servant();
        let t = Instant::now();
        assert!(list(&mut s, &[("127.0.0.5", 2230, None)], t).is_empty());
        assert!(list(&mut s, &[], t).is_empty());
        assert!(
            tick(&mut s, t + LEAVE_GRACE * 4).is_empty(),
            "neither joined nor left"
        );
        // A named one that blips (gone and back within the grace) is no news either.
        list(&mut s, &[("127.0.0.3", 2225, Some("bob"))], t);
        assert!(list(&mut s, &[], t).is_empty());
        assert!(list(&mut s, &[("127.0.0.3", 2290, Some("bob"))], t).is_empty());
        assert!(tick(&mut s, t + LEAVE_GRACE * 4).is_empty());
    }
}
