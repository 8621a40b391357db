//! The relay's side of a pull link: who may pull, and what goes down to them.
//!
//! A pull is served only to the servant our current list says pulls from us: the
//! connection must come from the IP it names, and that entry's `<relay>` must be
//! our own listed address. The puller may have its new list before we have ours,
//! so a pull we cannot confirm is held, unanswered, until our next list says (at
//! most one poll interval), then served or refused. A live pull (heard within
//! [`LIVE`]) is never displaced by a newcomer naming the same servant: only one
//! whose link broke, and that has gone quiet, is replaced, so a puller that really
//! lost its link is served again within [`LIVE`] and a tick.

use std::net::SocketAddr;
use std::time::Duration;

use log::{debug, info, warn};

use super::{origin_of, Bucket, Role, KEEPALIVE, MAX_BACKLOG, MAX_PULLERS};
use crate::reactor::{Index, Reactor};
use crate::servant::said::SAY_EVERY;
use crate::servant::{Servant, Slot};
use crate::wire::pull::Origin;
use crate::wire::relay::{self as wire, Relay};

/// A puller heard this recently (a line, or the keepalive it sends every
/// [`KEEPALIVE`]) is live, and keeps its pull.
pub(super) const LIVE: Duration = KEEPALIVE.saturating_add(Duration::from_secs(5));

impl Servant {
    /// A line on incoming connection `i`, as the relay sees it: the first may be a
    /// pull request, a puller's are keepalives or rate-limited chat. The origin of
    /// what is chat, to show and to forward to our pullers.
    pub(in crate::servant) fn relay_line(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        from: SocketAddr,
        role: &mut Role,
        msg: &[u8],
    ) -> Option<Origin> {
        match role {
            Role::First => {
                *role = Role::Batch;
                if let Some(listed) = wire::parse_pull(msg).filter(|a| a.ip() == from.ip()) {
                    *role = self.pull_asked(r, i, from, listed);
                    return None;
                }
                Some(origin_of(&self.peers, from.ip()))
            }
            Role::Batch => Some(origin_of(&self.peers, from.ip())),
            Role::Puller { .. } if msg.is_empty() => None, // keepalive
            Role::Puller { bucket, listed } => {
                let allowed = bucket.take(r.now());
                if !allowed {
                    self.relay.dropped += 1;
                }
                allowed.then_some(Origin::Listed(*listed))
            }
            // Nothing a pull says before it is served is shown or forwarded.
            Role::Pending { .. } | Role::Refused => None,
        }
    }

    /// Whether our list says the servant listed at `listed` pulls from us.
    fn assigned(&self, listed: SocketAddr) -> bool {
        self.assigned_by_list(listed)
    }

    /// On a private network the pull must also come from the key listed there.
    fn assigned_to(&self, r: &Reactor<Slot>, i: Index, listed: SocketAddr) -> bool {
        let keyed = !self.is_private()
            || (self.peers.get(listed))
                .is_some_and(|p| p.key.is_some() && p.key.as_ref() == r.peer_key(i));
        keyed && self.assigned(listed)
    }

    fn assigned_by_list(&self, listed: SocketAddr) -> bool {
        let Some(me) = self.relay.me else {
            return false;
        };
        (self.peers.get(listed)).is_some_and(|p| p.relay == Some(Relay::Via(me)))
    }

    /// `pull IP:PORT` from that IP: served if our list says so, else held for it.
    fn pull_asked(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        from: SocketAddr,
        listed: SocketAddr,
    ) -> Role {
        if self.assigned_to(r, i, listed) {
            return self.take_puller(r, i, from, listed);
        }
        debug!("{from} pulls as {listed}, which our list does not say pulls from us; waiting for the next list");
        self.relay.pending.push(i);
        Role::Pending {
            listed,
            since: r.now(),
        }
    }

    /// A new list, or a tick: pulls held for it are served if it names us their
    /// relay, refused once they have waited a poll interval.
    pub(in crate::servant) fn resolve_pending(&mut self, r: &mut Reactor<Slot>) {
        if self.relay.pending.is_empty() {
            return;
        }
        let (now, wait) = (r.now(), self.config.poll_interval);
        for i in std::mem::take(&mut self.relay.pending) {
            let Some(Slot::Incoming { from, role, .. }) = r.data(i) else {
                continue;
            };
            let (from, Role::Pending { listed, since }) = (*from, role) else {
                continue;
            };
            let (listed, since) = (*listed, *since);
            let next = if self.assigned_to(r, i, listed) {
                self.take_puller(r, i, from, listed)
            } else if now.duration_since(since) >= wait {
                self.refuse_pull(
                    r,
                    i,
                    from,
                    listed,
                    "our peer list does not say it pulls from us",
                );
                Role::Refused
            } else {
                self.relay.pending.push(i);
                continue;
            };
            if let Some(Slot::Incoming { role, .. }) = r.data_mut(i) {
                *role = next;
            }
        }
    }

    fn refuse_pull(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        from: SocketAddr,
        listed: SocketAddr,
        why: &str,
    ) {
        r.close(i);
        if let Some(n) = self.relay.refused.due_within(r.now(), 1, SAY_EVERY) {
            debug!("refused {n} pull(s) since the last said; the last: {from} pulling as {listed}: {why}");
        }
    }

    fn take_puller(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        from: SocketAddr,
        listed: SocketAddr,
    ) -> Role {
        if self.relay.pullers.len() >= MAX_PULLERS {
            warn!("not relaying for {listed} ({from}): already relaying for {MAX_PULLERS}");
            r.close(i);
            return Role::Refused;
        }
        let now = r.now();
        let old = (self.relay.pullers.iter().copied()).find_map(|p| match r.data(p) {
            Some(Slot::Incoming {
                role: Role::Puller { listed: l, .. },
                heard,
                ..
            }) if *l == listed => Some((p, *heard)),
            _ => None,
        });
        match old {
            Some((_, heard)) if now.duration_since(heard) < LIVE => {
                self.refuse_pull(r, i, from, listed, "its pull is live");
                return Role::Refused;
            }
            // A puller whose link broke, pulling again, replaces its old connection.
            Some((old, _)) => r.close(old),
            None => {}
        }
        self.relay.pullers.push(i);
        r.set_nodelay(i);
        info!(
            "relaying for {listed} ({} puller(s))",
            self.relay.pullers.len()
        );
        Role::Puller {
            listed,
            bucket: Bucket::new(now),
        }
    }

    /// Sends the lines gathered from one read to every puller but `except`; a
    /// puller too far behind is dropped (it pulls again).
    pub(in crate::servant) fn forward(&mut self, r: &mut Reactor<Slot>, except: Option<Index>) {
        if self.relay.forward.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.relay.forward);
        for k in 0..self.relay.pullers.len() {
            let p = self.relay.pullers[k];
            if Some(p) != except {
                to_puller(r, p, &lines);
            }
        }
        self.relay.forward = lines;
        self.relay.forward.clear();
    }

    /// A private line for the puller listed at `to`: sent down its link alone, as
    /// `(private) TEXT` from `origin` ([`crate::wire::private`]); never shown here
    /// or forwarded to anyone else. Whether `to` pulls from us.
    pub(in crate::servant) fn pass_private(
        &mut self,
        r: &mut Reactor<Slot>,
        origin: Origin,
        to: SocketAddr,
        text: &[u8],
    ) -> bool {
        let puller = (self.relay.pullers.iter().copied()).find(|&p| {
            matches!(r.data(p), Some(Slot::Incoming { role: Role::Puller { listed, .. }, .. }) if *listed == to)
        });
        let Some(p) = puller else { return false };
        let name = match origin {
            Origin::Listed(a) => self.peers.name(a),
            Origin::Ip(_) => None,
        };
        let mut frame = Vec::new();
        let marked = [crate::wire::private::MARK, text].concat();
        crate::wire::pull::frame(&mut frame, origin, name, &marked);
        debug!("passing a private line from {origin} to the puller {to}");
        to_puller(r, p, &frame);
        true
    }

    /// An incoming connection closed: a puller goes off the list.
    pub(in crate::servant) fn puller_closed(&mut self, i: Index, role: &Role) {
        match role {
            Role::Puller { listed, .. } => {
                self.relay.pullers.retain(|&p| p != i);
                info!(
                    "stopped relaying for {listed} ({} puller(s) left)",
                    self.relay.pullers.len()
                );
            }
            Role::Pending { .. } => self.relay.pending.retain(|&p| p != i),
            _ => {}
        }
    }
}

/// Sends `lines` down puller `p`'s link; a puller too far behind is dropped (it
/// pulls again).
pub(super) fn to_puller(r: &mut Reactor<Slot>, p: Index, lines: &[u8]) {
    if r.socket(p)
        .is_some_and(|s| s.unsent() + lines.len() > MAX_BACKLOG)
    {
        warn!(
            "a puller is more than {} KiB behind; dropping its connection",
            MAX_BACKLOG / 1024
        );
        return r.abort(p);
    }
    r.send(p, lines);
}
