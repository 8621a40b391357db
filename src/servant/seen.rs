//! How long each peer has been here, as `/who` and `/peers` say it: since this
//! servant first saw it on a list (`alice  12m`, `bob  3h`).
//!
//! A peer is who it says it is, as for joins and leaves ([`super::events`]): its
//! name, or its address while it has none. So a manager's restart, after which
//! every servant is listed again at a new port, changes nobody's time, and a peer
//! that takes a name is new under it. What is remembered is bounded: past
//! [`REMEMBERED`] peers, those no longer listed are forgotten.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::events::{who, Who};
use super::peers::Peers;
use super::Servant;

/// Peers whose first sighting is kept, before those no longer listed are forgotten.
const REMEMBERED: usize = 20_000;

/// When each peer was first seen on a list.
#[derive(Debug, Default)]
pub(super) struct Seen {
    first: HashMap<Who, Instant>,
}

impl Seen {
    /// A new list: every peer on it not seen before is seen now.
    pub(super) fn saw(&mut self, peers: &Peers, now: Instant) {
        for p in peers.iter() {
            self.first.entry(who(peers, p)).or_insert(now);
        }
        if self.first.len() > REMEMBERED {
            let listed: Vec<Who> = peers.iter().map(|p| who(peers, p)).collect();
            self.first.retain(|w, _| listed.contains(w));
        }
    }

    /// How long ago `w` was first seen (nothing, if never).
    fn since(&self, w: &Who, now: Instant) -> Duration {
        self.first
            .get(w)
            .map_or(Duration::ZERO, |&t| now.duration_since(t))
    }
}

/// A duration as a chat user reads it: `45s`, `12m`, `3h`, `2d`, rounded down.
pub(super) fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

impl Servant {
    /// How long the peer listed as `p` has been here, as [`age`] says it.
    pub(super) fn here_for(&self, p: &crate::wire::peerdoc::Peer, now: Instant) -> String {
        age(self.seen.since(&who(&self.peers, p), now))
    }

    /// `/who`: one line per peer, `*` on this servant, its name (its address when
    /// it has none) and how long since this servant first saw it, in columns.
    pub(super) fn who_table(&self, now: Instant) -> String {
        let rows: Vec<(bool, String, String)> = (self.peers.iter())
            .map(|p| {
                let label = match self.peers.name(p.addr()) {
                    Some(n) => crate::text::escape(n).into_owned(),
                    None => p.addr().to_string(),
                };
                (p.me, label, self.here_for(p, now))
            })
            .collect();
        let cols = (rows.iter().map(|(_, l, _)| super::console::str_width(l))).max();
        let ages = rows.iter().map(|(_, _, a)| a.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (me, label, age) in &rows {
            let pad = cols.unwrap_or(0) - super::console::str_width(label);
            let mark = if *me { '*' } else { ' ' };
            out.push_str(&format!("{mark} {label}{:pad$}  {age:>ages$}\n", ""));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_a_chat_user_says_them() {
        let secs = Duration::from_secs;
        assert_eq!(age(secs(0)), "0s");
        assert_eq!(age(secs(59)), "59s");
        assert_eq!(age(secs(12 * 60 + 30)), "12m");
        assert_eq!(age(secs(3 * 3600 + 59 * 60)), "3h");
        assert_eq!(age(secs(2 * 86_400 + 5)), "2d");
    }

    #[test]
    fn a_peer_keeps_its_first_sighting_by_name_whatever_its_port() {
        let t0 = Instant::now();
        let mut seen = Seen::default();
        let alice = Who::Named("alice".into());
        seen.first.insert(alice.clone(), t0);
        let later = t0 + Duration::from_secs(90);
        seen.saw(&Peers::default(), later);
        assert_eq!(seen.since(&alice, later), Duration::from_secs(90));
        assert_eq!(seen.since(&Who::Named("bob".into()), later), Duration::ZERO);
    }
}
