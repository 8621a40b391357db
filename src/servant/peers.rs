//! What the servant knows of its peers: the article's `pDoc1` and `userList1` in
//! one place. The list the manager last sent (checked), its version, who is who by
//! address, their names, each entry's relay, and which entry is this servant.
//!
//! [`Peers`] is the only way to change any of it: a whole document, a delta or an
//! `<unchanged/>` answer goes through [`Peers::apply`], a new manager link through
//! [`Peers::forget_version`]. Everything else reads.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use crate::noise::PublicKey;
use crate::wire::delta::{self, Answer, Version};
use crate::wire::peerdoc::Peer;

/// The servant's peers, as the manager's answers make them.
///
/// Invariants, checked by [`Peers::check`] after every change in debug builds:
/// - entries are unique by address (IP and port): a list naming one twice is kept
///   once, at its first entry, marked `me` if any of its entries was;
/// - at most one entry is `me` (none until the manager lists this servant), and
///   [`Peers::me`] is that entry: should a lying manager mark several, the first
///   stays ours;
/// - the index by address holds exactly the entries' addresses, each at its
///   entry's position;
/// - a name is kept only for a listed address, so every name lookup is of an entry;
/// - the index by key holds exactly the keys the entries list (a private
///   network's), each at the first entry listing it;
/// - the index by IP counts every entry once, under its IP, and the set of names
///   holds exactly the names kept;
/// - within one history (from one whole document to the next, or to a new link)
///   the version only moves forward: a delta from `from` to `to > from` (checked
///   when both read as `N` or `E.N` of one epoch: versions are opaque tokens), or
///   `<unchanged/>` at the same version.
#[derive(Debug, Default)]
pub(super) struct Peers {
    entries: Vec<Peer>,
    /// Listed address -> position in `entries`.
    index: HashMap<SocketAddr, usize>,
    /// Listed address -> name, for the entries that have one.
    names: HashMap<SocketAddr, String>,
    /// Listed IP -> the entries at it: what a connection's source address says of
    /// its sender ([`Peers::at_ip`]).
    by_ip: HashMap<IpAddr, AtIp>,
    /// Every name in `names`.
    taken: HashSet<String>,
    /// Listed key -> the first entry's address listing it (a private network's).
    keys: HashMap<PublicKey, SocketAddr>,
    /// The entries the last answer that removed any removed, with their names: a
    /// line they sent just before leaving may arrive after the list that says so.
    left: HashMap<SocketAddr, Option<String>>,
    /// Position of this servant's own entry.
    me: Option<usize>,
    /// The manager's version of `entries`, if it said one.
    version: Option<Version>,
}

/// The listed entries at one IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AtIp {
    /// How many entries have it (several: a NAT, or one host without `--bind`).
    pub(super) count: usize,
    /// The first of them, in the list's order.
    pub(super) first: SocketAddr,
    /// One of them has a name.
    pub(super) named: bool,
}

/// What an applied answer replaced, for those who report the difference.
#[derive(Debug)]
pub(super) struct Applied {
    pub(super) old: Vec<Peer>,
    pub(super) old_names: HashMap<SocketAddr, String>,
    /// Entries in the answer before duplicates collapsed.
    pub(super) listed: usize,
}

/// Why an answer was not applied; the list is as it was.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// It does not follow from our version (a gap) or does not fit the list: the
    /// version is forgotten, so the whole document is asked for next.
    Gap(String),
    /// The list it makes is longer than allowed.
    TooLong(String),
}

impl Peers {
    /// The entries, in the manager's order (deltas' newcomers at the end).
    pub(super) fn list(&self) -> &[Peer] {
        &self.entries
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Peer> {
        self.entries.iter()
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// This servant's own entry.
    pub(super) fn me(&self) -> Option<&Peer> {
        self.me.map(|k| &self.entries[k])
    }

    pub(super) fn version(&self) -> Option<Version> {
        self.version
    }

    /// The entry listed at `addr`.
    pub(super) fn get(&self, addr: SocketAddr) -> Option<&Peer> {
        self.index.get(&addr).map(|&k| &self.entries[k])
    }

    pub(super) fn contains(&self, addr: SocketAddr) -> bool {
        self.index.contains_key(&addr)
    }

    /// The name of the peer listed at `addr`, if it said one.
    pub(super) fn name(&self, addr: SocketAddr) -> Option<&str> {
        self.names.get(&addr).map(String::as_str)
    }

    /// The entries listed at `ip`, if any.
    pub(super) fn at_ip(&self, ip: IpAddr) -> Option<AtIp> {
        self.by_ip.get(&ip).copied()
    }

    /// The one entry at `ip` that the last removal removed, and its name.
    pub(super) fn left_at(&self, ip: IpAddr) -> Option<Option<&str>> {
        let mut at = self.left.iter().filter(|(a, _)| a.ip() == ip);
        let (_, name) = at.next()?;
        at.next().is_none().then_some(name.as_deref())
    }

    /// Whether some listed peer goes by `name`.
    pub(super) fn is_name(&self, name: &str) -> bool {
        self.taken.contains(name)
    }

    /// The peer listed as `name`: that name exactly, else the one name equal to it
    /// case-folded, as the manager compares names.
    pub(super) fn by_name(&self, name: &str) -> Option<&Peer> {
        let exact = self.names.iter().find(|(_, n)| *n == name);
        let folded = || {
            let want = name.to_lowercase();
            let mut fits = self.names.iter().filter(|(_, n)| n.to_lowercase() == want);
            fits.next().filter(|_| fits.next().is_none())
        };
        exact.or_else(folded).and_then(|(a, _)| self.get(*a))
    }

    /// The address listed with `key`, on a private network.
    pub(super) fn by_key(&self, key: &PublicKey) -> Option<SocketAddr> {
        self.keys.get(key).copied()
    }

    /// Whether some entry lists `key`.
    pub(super) fn has_key(&self, key: &PublicKey) -> bool {
        self.keys.contains_key(key)
    }

    /// Every name the listed peers go by.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.names.values().map(String::as_str)
    }

    /// Whether these are the entries and names `old` and `old_names` were.
    pub(super) fn same_as(&self, old: &[Peer], old_names: &HashMap<SocketAddr, String>) -> bool {
        self.entries == old && self.names == *old_names
    }

    /// `bob (127.0.0.3:2225)`, or the address alone for a peer without a name.
    pub(super) fn who(&self, addr: SocketAddr) -> String {
        match self.names.get(&addr) {
            Some(name) => format!("{name} ({addr})"),
            None => addr.to_string(),
        }
    }

    /// A new link is a new entry at the manager: the next answer must be the whole
    /// document, to find it.
    pub(super) fn forget_version(&mut self) {
        self.version = None;
        self.check();
    }

    /// Applies one answer from the manager, with the names it carries
    /// ([`delta::names`]), allowing at most `max` entries. A delta names only
    /// what changed: the other entries keep theirs. A name said twice for one
    /// address is the last one said.
    pub(super) fn apply(
        &mut self,
        answer: Answer,
        said: Vec<(SocketAddr, Option<String>)>,
        max: usize,
    ) -> Result<Applied, Refused> {
        let before = self.version;
        let whole = matches!(answer, Answer::Whole { .. });
        let mut next = if whole {
            Vec::new()
        } else {
            self.entries.clone()
        };
        let version = match delta::update(&mut next, self.version, answer) {
            Ok(v) => v,
            Err(why) => {
                self.version = None;
                self.check();
                return Err(Refused::Gap(why));
            }
        };
        if next.len() > max {
            return Err(Refused::TooLong(too_many(next.len(), max)));
        }
        let mut named: HashMap<SocketAddr, Option<String>> = HashMap::new();
        if !whole {
            named.extend(self.names.iter().map(|(a, n)| (*a, Some(n.clone()))));
        }
        named.extend(said);
        let listed = next.len();
        let old = std::mem::replace(&mut self.entries, Vec::with_capacity(listed));
        self.index.clear();
        for p in next {
            match self.index.entry(p.addr()) {
                Entry::Vacant(v) => {
                    v.insert(self.entries.len());
                    self.entries.push(p);
                }
                Entry::Occupied(o) if p.me => self.entries[*o.get()].me = true,
                Entry::Occupied(_) => {}
            }
        }
        self.me = None;
        for (k, p) in self.entries.iter_mut().enumerate() {
            match self.me {
                None if p.me => self.me = Some(k),
                Some(_) => p.me = false,
                None => {}
            }
        }
        let mut names = HashMap::with_capacity(named.len().min(self.entries.len()));
        for p in &self.entries {
            if let Some(Some(n)) = named.remove(&p.addr()) {
                names.insert(p.addr(), n);
            }
        }
        let old_names = std::mem::replace(&mut self.names, names);
        self.index_ips();
        let left: HashMap<SocketAddr, Option<String>> = (old.iter())
            .filter(|p| !self.index.contains_key(&p.addr()))
            .map(|p| (p.addr(), old_names.get(&p.addr()).cloned()))
            .collect();
        if !left.is_empty() {
            self.left = left;
        }
        self.version = version;
        debug_assert!(
            whole || forward(before, version),
            "version {before:?} -> {version:?}"
        );
        self.check();
        Ok(Applied {
            old,
            old_names,
            listed,
        })
    }

    fn index_ips(&mut self) {
        self.by_ip.clear();
        for p in &self.entries {
            let named = self.names.contains_key(&p.addr());
            let at = self.by_ip.entry(p.ip).or_insert(AtIp {
                count: 0,
                first: p.addr(),
                named: false,
            });
            at.count += 1;
            at.named |= named;
        }
        self.taken = self.names.values().cloned().collect();
        self.keys.clear();
        for p in &self.entries {
            if let Some(k) = p.key {
                self.keys.entry(k).or_insert(p.addr());
            }
        }
    }

    /// The invariants above; panics naming the one broken. Debug builds only.
    pub(super) fn check(&self) {
        #[cfg(debug_assertions)]
        {
            assert_eq!(
                self.index.len(),
                self.entries.len(),
                "an address listed twice"
            );
            let mut mine = None;
            for (k, p) in self.entries.iter().enumerate() {
                assert_eq!(self.index.get(&p.addr()), Some(&k), "index of {}", p.addr());
                if p.me {
                    assert!(mine.is_none(), "two entries marked me");
                    mine = Some(k);
                }
            }
            assert_eq!(self.me, mine, "me is not the entry marked me");
            for addr in self.names.keys() {
                assert!(self.index.contains_key(addr), "{addr} named but not listed");
            }
            let keyed: HashSet<_> = self.entries.iter().filter_map(|p| p.key).collect();
            assert_eq!(keyed.len(), self.keys.len(), "keys indexed");
            for (k, a) in &self.keys {
                assert_eq!(self.get(*a).and_then(|p| p.key), Some(*k), "key {k}");
            }
            let counted: usize = self.by_ip.values().map(|a| a.count).sum();
            assert_eq!(counted, self.entries.len(), "entries by IP miscounted");
            assert_eq!(
                self.taken.len(),
                self.names.values().collect::<HashSet<_>>().len()
            );
        }
    }
}

/// The manager's answers `texts` (whole documents, deltas, `<unchanged/>`),
/// applied in order to an empty list of at most `max` entries, as a servant
/// applies them; the invariants are checked after each (debug builds, fuzzing).
/// The list at the end, or the first answer that did not parse or apply.
pub fn replay<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Result<Vec<Peer>, String> {
    let mut peers = Peers::default();
    for text in texts {
        let answer = delta::parse(text).map_err(|e| e.to_string())?;
        match peers.apply(answer, delta::names(text), max) {
            Ok(_) => {}
            Err(Refused::Gap(why)) => return Err(why.to_string()),
            Err(Refused::TooLong(why)) => return Err(why),
        }
    }
    Ok(peers.entries)
}

pub(super) fn too_many(n: usize, max: usize) -> String {
    format!("{n} entries, more than the {max} allowed (--max-peers)")
}

#[cfg(test)]
pub(super) mod tests;

/// `after` follows `before` within one history: the same, or further on when both
/// read as counts of one epoch (the invariant [`Peers`] states).
fn forward(before: Option<Version>, after: Option<Version>) -> bool {
    let count = |v: Option<Version>| v.and_then(|v| v.count().map(|(e, n)| (e.to_owned(), n)));
    match (count(before), count(after)) {
        (Some((e, m)), Some((f, n))) if e == f => n >= m,
        _ => true,
    }
}
