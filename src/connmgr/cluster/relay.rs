//! Relays across managers (docs/RELAY.md, "In a cluster"): the verdict on a
//! servant stays with the manager that serves it, but what goes into it, and
//! what comes of it, crosses Redis.
//!
//! - `cannot reach IP:PORT` about another manager's member is put on the stream
//!   (`complain`, no version); the manager serving it counts it as a complaint
//!   from that member's offset, dials back and decides, as it does alone.
//! - `can relay` is kept in Redis (`:canrelay`), so any manager may choose any
//!   member as a relay; the chooser counts its own pullers on it, bans it for
//!   its own pullers, and probes it directly, as it does its own.
//! - A `<relay>` shown in an entry is a change of the document like a name
//!   (`relay`, versioned), applied by every manager; a relay that is marked or
//!   leaves loses its pullers on every manager.
//! - `cannot listen PORT` moves the servant to the cluster's next free port;
//!   its entry is logged as a join again and every manager, this one too, lists
//!   it anew at the end of the document when that comes back on the stream.
//!
//! Like every change of the document, a `<relay>` and a port move are made in
//! this manager's copy only when they come back on the stream, at their version
//! (`sync.rs`); `can relay` and complaints change no document and carry none.
//!
//! Verdicts keep their servants by slot (what the reactor knows), relays by
//! offset (what the document says, and all another manager can name):
//! [`Manager::slot`] and [`Manager::offset_of`] cross between the two.

use std::collections::HashMap;
use std::time::Instant;

use log::{info, warn};

use super::parse::{Change, Listed};
use super::{Cluster, Joining, Wait as MainWait, STREAM_LENGTH};
use crate::connmgr::verdict::{member, member_mut};
use crate::connmgr::{Manager, Slot};
use crate::reactor::{Index, Reactor};
use crate::redis::{Reply, Script};
use crate::wire::relay::Relay;

/// The scripts, and what this manager knows of other managers' relays.
pub(in crate::connmgr) struct Relays {
    can_relay: Script,
    show: Script,
    complain: Script,
    move_port: Script,
    /// Other managers' members that said `can relay` or are marked, by offset.
    remote: HashMap<usize, Remote>,
}

/// Another manager's member, as a relay for this manager's pullers.
#[derive(Debug, Default)]
struct Remote {
    can_relay: bool,
    /// Its entry shows a `<relay>`: it pulls itself, and relays for no one.
    marked: bool,
    /// This manager's servants pulling from it.
    pullers: u32,
    banned_until: Option<Instant>,
}

/// What a reply on the main connection is for.
#[derive(Debug)]
pub(super) enum Wait {
    /// The servant at this offset asked to move off its port; its entry comes
    /// back on the stream with this tag.
    PortMove { tag: u64, offset: usize },
}

impl Relays {
    pub(super) fn new() -> Relays {
        Relays {
            can_relay: Script::new(super::scripts::CAN_RELAY),
            show: Script::new(super::scripts::SHOW_RELAY),
            complain: Script::new(super::scripts::COMPLAIN),
            move_port: Script::new(&super::scripts::port_move()),
            remote: HashMap::new(),
        }
    }
}

/// The cluster, when Redis can be told now.
fn up(c: &mut Option<Cluster>) -> Option<&mut Cluster> {
    c.as_mut().filter(|c| c.main.is_up() && c.synced)
}

impl Manager {
    /// The slot of the servant at `offset`, if this manager serves it.
    pub(in crate::connmgr) fn slot(&self, offset: usize) -> Option<Index> {
        match &self.cluster {
            Some(c) => c.local.get(&offset).copied(),
            None => self.members.seat(offset).map(|_| offset),
        }
    }

    /// The servant in slot `from` cannot reach another manager's member at
    /// `target`: that manager counts it.
    pub(in crate::connmgr) fn complain_remote(
        &mut self,
        r: &mut Reactor<Slot>,
        from: usize,
        target: usize,
    ) {
        let Some(c) = up(&mut self.cluster) else {
            return;
        };
        let (prefix, t, f) = (c.prefix.clone(), target.to_string(), from.to_string());
        let args: [&[u8]; 4] = [
            prefix.as_bytes(),
            t.as_bytes(),
            f.as_bytes(),
            STREAM_LENGTH.as_bytes(),
        ];
        c.eval(r, |c| &c.relays.complain, &args, MainWait::Other);
    }

    /// The servant in slot `index` said `can relay`: every manager may choose it.
    pub(in crate::connmgr) fn cluster_can_relay(&mut self, r: &mut Reactor<Slot>, index: Index) {
        let offset = self.offset_of(r, index).to_string();
        let Some(c) = up(&mut self.cluster) else {
            return;
        };
        let (prefix, id) = (c.prefix.clone(), c.id.clone());
        let args: [&[u8]; 4] = [
            prefix.as_bytes(),
            offset.as_bytes(),
            id.as_bytes(),
            STREAM_LENGTH.as_bytes(),
        ];
        c.eval(r, |c| &c.relays.can_relay, &args, MainWait::Other);
    }

    /// Shows `shown` in the entry of the servant in slot `target`, in this
    /// manager's document and every other's. Whether this one's changed now: in
    /// step with Redis it changes when the change comes back on the stream.
    pub(in crate::connmgr) fn show_relay(
        &mut self,
        r: &mut Reactor<Slot>,
        target: Index,
        shown: Option<Relay>,
    ) -> bool {
        let offset = self.offset_of(r, target);
        if let Some(c) = up(&mut self.cluster) {
            let text = match shown {
                None => String::new(),
                Some(Relay::Nobody) => "none".into(),
                Some(Relay::Via(a)) => a.to_string(),
            };
            let (prefix, id, o) = (c.prefix.clone(), c.id.clone(), offset.to_string());
            let args: [&[u8]; 5] = [
                prefix.as_bytes(),
                o.as_bytes(),
                id.as_bytes(),
                text.as_bytes(),
                STREAM_LENGTH.as_bytes(),
            ];
            c.eval(r, |c| &c.relays.show, &args, MainWait::Other);
            return false;
        }
        if !self.members.set_relay(offset, shown) {
            return false;
        }
        self.diverge(r); // the cluster does not hear of it: versions are ours
        true
    }

    /// Adds `delta` to the pullers counted on the relay at offset `via`; its
    /// count now.
    pub(in crate::connmgr) fn count_pullers(
        &mut self,
        r: &mut Reactor<Slot>,
        via: usize,
        delta: i32,
    ) -> Option<u32> {
        let add = |n: &mut u32| {
            *n = n.saturating_add_signed(delta);
            *n
        };
        if let Some(m) = self.slot(via).and_then(|i| member_mut(r, i)) {
            return Some(add(&mut m.reach.pullers));
        }
        let c = self.cluster.as_mut()?;
        c.relays.remote.get_mut(&via).map(|m| add(&mut m.pullers))
    }

    /// The relay at offset `relay` lost its probes: chosen by no one until `until`.
    pub(in crate::connmgr) fn ban_relay(
        &mut self,
        r: &mut Reactor<Slot>,
        relay: usize,
        until: Instant,
    ) {
        if let Some(m) = self.slot(relay).and_then(|i| member_mut(r, i)) {
            m.reach.banned_until = Some(until);
        } else if let Some(c) = self.cluster.as_mut() {
            c.relays.remote.entry(relay).or_default().banned_until = Some(until);
        }
    }

    /// Other managers' members this one may choose as relays, as (pullers,
    /// offset). They are not dialed first: their own manager has them, and a
    /// relay that forwards nothing is dropped by its probes.
    pub(in crate::connmgr) fn remote_relays(&self, now: Instant) -> Vec<(u32, usize)> {
        let Some(c) = &self.cluster else {
            return Vec::new();
        };
        (c.relays.remote.iter())
            .filter(|(o, m)| {
                m.can_relay
                    && !m.marked
                    && m.pullers < self.config.relay.pullers
                    && m.banned_until.is_none_or(|t| t <= now)
                    && c.remote.contains(o)
            })
            .map(|(&o, m)| (m.pullers, o))
            .collect()
    }

    /// Another manager's member left: it relays for no one here now.
    pub(in crate::connmgr) fn remote_left(&mut self, r: &mut Reactor<Slot>, offset: usize) {
        if let Some(c) = self.cluster.as_mut() {
            if c.relays.remote.remove(&offset).is_some() {
                self.relay_gone(r, offset);
                self.assign(r);
            }
        }
    }

    /// A relay change from the stream: whether the document changed.
    pub(super) fn apply_relay(&mut self, r: &mut Reactor<Slot>, change: Change) -> bool {
        let c = self.cluster.as_mut().expect("in a cluster");
        match change {
            Change::Relay { offset, relay } if c.remote.contains(&offset) => {
                let m = c.relays.remote.entry(offset).or_default();
                let was = std::mem::replace(&mut m.marked, relay.is_some());
                let changed = self.members.set_relay(offset, relay);
                if relay.is_some() && !was {
                    self.relay_gone(r, offset);
                    self.assign(r);
                }
                changed
            }
            // This manager's own: its verdicts chose it, and every manager
            // shows it at this version.
            Change::Relay { offset, relay } => self.members.set_relay(offset, relay),
            Change::CanRelay { offset } if c.remote.contains(&offset) => {
                c.relays.remote.entry(offset).or_default().can_relay = true;
                if self.verdicts.seeking > 0 {
                    self.assign(r);
                }
                false
            }
            Change::Complain { offset, from } => {
                if let Some(target) = c.local.get(&offset).copied() {
                    self.remote_complaint(r, from, target);
                }
                false
            }
            _ => false,
        }
    }

    /// `cannot listen PORT` from the servant in slot `index` at `offset`, whose
    /// port PORT is: Redis gives it the next free one.
    pub(in crate::connmgr) fn cluster_move(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        offset: usize,
        port: u16,
    ) {
        let first = self.config.first_port.to_string();
        let Some(c) = up(&mut self.cluster) else {
            return info!("offset {offset} cannot listen on {port}; redis is away, so it stays");
        };
        let tag = c.tag(Joining::PortMove(index));
        let (prefix, id, o, p) = (
            c.prefix.clone(),
            c.id.clone(),
            offset.to_string(),
            port.to_string(),
        );
        let t = tag.to_string();
        let args: [&[u8]; 7] = [
            prefix.as_bytes(),
            o.as_bytes(),
            id.as_bytes(),
            p.as_bytes(),
            first.as_bytes(),
            STREAM_LENGTH.as_bytes(),
            t.as_bytes(),
        ];
        c.eval(r, |c| &c.relays.move_port, &args, {
            MainWait::Relays(Wait::PortMove { tag, offset })
        });
    }

    pub(super) fn relay_reply(&mut self, wait: Wait, reply: Option<Reply>) {
        let Wait::PortMove { tag, offset } = wait;
        match reply {
            // Moved when its entry comes back on the stream (`port_moved`).
            Some(Reply::Array(Some(a))) if a.first().and_then(Reply::bytes) == Some(b"ok") => {}
            Some(e) if e.error_text().is_some() => {
                warn!("cluster: redis refused a port move: {e:?}");
                self.cluster
                    .as_mut()
                    .expect("in a cluster")
                    .joins
                    .remove(&tag);
            }
            _ => {
                info!("offset {offset} cannot listen on its port, and no other is free");
                self.cluster
                    .as_mut()
                    .expect("in a cluster")
                    .joins
                    .remove(&tag);
            }
        }
    }

    /// From a snapshot, after its members: `can relay` of other managers'
    /// members, and the `<relay>` of every member (this manager's too: its copy
    /// is the cluster's).
    pub(super) fn apply_relays(&mut self, r: &mut Reactor<Slot>, can: &Reply, shown: &Reply) {
        let c = self.cluster.as_mut().expect("in a cluster");
        let offsets = |reply: &Reply| -> Vec<Reply> {
            match reply {
                Reply::Array(Some(a)) => a.clone(),
                _ => Vec::new(),
            }
        };
        for o in offsets(can) {
            match o.bytes().map(super::parse::offset) {
                Some(Ok(o)) if c.remote.contains(&o) => {
                    c.relays.remote.entry(o).or_default().can_relay = true;
                }
                Some(Ok(_)) => {}
                _ => c.garbage("a `can relay` offset that is none"),
            }
        }
        let mut changed = false;
        for pair in offsets(shown).chunks_exact(2) {
            let (Some(o), Some(v)) = (pair[0].bytes(), pair[1].bytes()) else {
                continue;
            };
            let c = self.cluster.as_mut().expect("in a cluster");
            match (super::parse::offset(o), super::parse::relay(v)) {
                (Ok(offset), Ok(relay)) if self.members.seat(offset).is_some() => {
                    changed |= self.apply_relay(r, Change::Relay { offset, relay });
                }
                (Ok(_), Ok(_)) => {}
                (Err(e), _) | (_, Err(e)) => c.garbage(&e),
            }
        }
        if changed {
            self.list_changed(r);
        }
        if self.verdicts.seeking > 0 {
            self.assign(r);
        }
    }

    /// This manager's servant in slot `index` came back on the stream moved to
    /// `l.port`: its entry leaves and joins again with it, at the end, as every
    /// other manager lists it, and the servant is answered at once.
    pub(super) fn port_moved(&mut self, r: &mut Reactor<Slot>, index: Index, l: &Listed) -> bool {
        let offset = l.offset;
        let live = member(r, index).is_some_and(|m| !m.pending && m.offset(index) == offset);
        let Some(seat) = self.members.seat(offset).filter(|_| live) else {
            return false; // it left meanwhile; its leave frees the port
        };
        let (ip, old, shown) = (seat.ip, seat.port, seat.relay());
        self.make_room(offset, l.port);
        self.members.leave(offset);
        self.members.join(offset, ip, l.port);
        if l.name.is_some() && self.members.rename(offset, l.name.as_deref()).is_err() {
            warn!("offset {offset} lost its name moving to port {}", l.port);
        }
        self.members.set_relay(offset, shown);
        info!(
            "offset {offset} cannot listen on {old}: moved to {}",
            l.port
        );
        self.answers.send_update(r, self.members.doc(), index);
        true
    }
}
