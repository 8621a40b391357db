//! Keeping a manager's copy in step with Redis: a snapshot when the main
//! connection comes up, then the stream's changes one by one, this manager's own
//! as well as the others', each at the version the cluster gave it. Members are
//! joined, left and renamed in this manager's [`Membership`]
//! (`super::super::membership`) only here (while Redis is there); its own
//! servants are registered again when Redis has lost them (restarted empty, or
//! reaped after a stall).

use std::net::IpAddr;

use log::{debug, info, warn};

use super::parse::{self, Change, Listed};
use super::{Cluster, Joining};
use crate::connmgr::{Manager, Slot};
use crate::reactor::{Index, Reactor};
use crate::redis::{Event, Reply};

impl Manager {
    pub(super) fn stream_event(&mut self, r: &mut Reactor<Slot>, event: Event) {
        let Event::Reply(_, Ok(reply)) = event else {
            return; // up or down: the next read is made by `read_on`
        };
        let c = self.cluster.as_mut().expect("in a cluster");
        if !c.synced {
            return; // read before the snapshot: the snapshot has it all
        }
        let entries = match parse::entries(&reply) {
            Ok(e) => e,
            Err(e) => return c.garbage(&e),
        };
        let mut changed = false;
        for (id, change) in entries {
            let c = self.cluster.as_mut().expect("in a cluster");
            let Some(at) = parse::stream_id(&id) else {
                c.garbage("a stream id that is no id");
                continue;
            };
            if parse::stream_id(&c.last_id).is_some_and(|last| at <= last) {
                continue;
            }
            c.last_id = id;
            let (v, change) = match change {
                Ok(vc) => vc,
                Err(e) => {
                    c.garbage(&e);
                    continue;
                }
            };
            let Some(v) = v else {
                // Changes no document (a complaint, `can relay`): no version.
                changed |= self.apply(r, change);
                continue;
            };
            if v < c.version {
                c.garbage(&format!("version {v} after {}", c.version));
                self.diverge(r);
                continue;
            }
            c.version = v;
            self.members.pin_version(Some(v));
            changed |= self.apply(r, change);
            self.members.pin_version(None);
        }
        self.settle(r);
        if changed {
            self.list_changed(r);
        }
    }

    /// One change from the stream; whether the document changed.
    fn apply(&mut self, r: &mut Reactor<Slot>, change: Change) -> bool {
        let c = self.cluster.as_mut().expect("in a cluster");
        match change {
            Change::Join { listed, tag } if listed.manager == c.id => {
                match c.joins.remove(&tag) {
                    Some(Joining::New { index, .. }) if waiting(r, index) => {
                        self.admitted(r, index, listed.offset, listed.port);
                        true
                    }
                    Some(Joining::Register(old)) if c.local.contains_key(&old) => {
                        self.registered(r, old, &listed)
                    }
                    Some(Joining::PortMove(index))
                        if c.local.get(&listed.offset) == Some(&index) =>
                    {
                        self.port_moved(r, index, &listed)
                    }
                    // Gone meanwhile: listed until its leave comes back, as
                    // every other manager lists it.
                    _ => {
                        c.send_leave(r, listed.offset);
                        self.list_remote(&listed)
                    }
                }
            }
            Change::Join { listed, .. } => self.list_remote(&listed),
            Change::Leave { offset, by, .. } if c.local.contains_key(&offset) => {
                if by != c.id {
                    // Reaped while Redis could not hear this manager: it is still here.
                    info!("cluster: offset {offset} was reaped by {by}; registering it again");
                    self.register(r, offset);
                }
                false
            }
            Change::Leave { offset, .. } => {
                if c.remote.remove(&offset) {
                    let left = self.members.leave(offset).is_some();
                    self.remote_left(r, offset);
                    left
                } else {
                    let listed = self.members.seat(offset).is_some();
                    self.left_here(r, offset);
                    listed
                }
            }
            Change::Name { offset, name, .. } => {
                match self.members.rename(offset, name.as_deref()) {
                    Ok(changed) => changed,
                    Err(_) => {
                        // Every manager applies the same changes in the same
                        // order, so every one lists it unnamed alike.
                        debug!("cluster: offset {offset}'s name {name:?} is held; listed unnamed");
                        self.members.rename(offset, None).unwrap_or(false)
                    }
                }
            }
            Change::Move {
                offset,
                manager,
                from,
            } => {
                self.moved(r, offset, &manager, &from);
                false
            }
            relay => self.apply_relay(r, relay),
        }
    }

    /// This manager's servant at `old`, registered again, came back listed as
    /// `l`: moved to the end of the document (as every other manager, seeing it
    /// join, lists it), at a new offset and port if someone else had them.
    fn registered(&mut self, r: &mut Reactor<Slot>, old: usize, l: &Listed) -> bool {
        let c = self.cluster.as_mut().expect("in a cluster");
        let Some(index) = c.local.remove(&old) else {
            return false;
        };
        if l.offset != old {
            warn!(
                "cluster: offset {old} was taken while redis was away; moved to offset {}, port {}",
                l.offset, l.port
            );
        }
        let name = self
            .members
            .leave(old)
            .and_then(|s| s.name().map(str::to_string));
        if let Some(Slot::Servant(s)) = r.data_mut(index) {
            s.pending = true; // as a newcomer, for `admitted`
        }
        self.admitted(r, index, l.offset, l.port);
        if self.members.rename(l.offset, name.as_deref()).is_err() {
            debug!(
                "cluster: offset {}'s name is held; listed unnamed",
                l.offset
            );
        }
        true
    }

    /// Lists `l`, another manager's member, replacing whatever remote entry the
    /// copy still had at its offset or port. Never displaces this manager's own.
    fn list_remote(&mut self, l: &Listed) -> bool {
        let c = self.cluster.as_mut().expect("in a cluster");
        let by_port = self.members.at_port(l.port);
        if c.local.contains_key(&l.offset) || by_port.is_some_and(|o| c.local.contains_key(&o)) {
            c.garbage(&format!(
                "offset {} or port {} is one of this manager's",
                l.offset, l.port
            ));
            return false;
        }
        if c.remote.contains(&l.offset) {
            if let Some(s) = self.members.seat(l.offset) {
                if s.ip == l.ip && s.port == l.port {
                    let keyed = self.members.set_key(l.offset, l.key).unwrap_or(false);
                    let named = (self.members.rename(l.offset, l.name.as_deref())).unwrap_or(false);
                    return keyed || named;
                }
            }
        }
        // Listed anew at its offset (moved off a port): its `<relay>` stays, as on
        // its own manager (`relay.rs`).
        let shown = (c.remote.contains(&l.offset))
            .then(|| self.members.seat(l.offset).and_then(|s| s.relay()))
            .flatten();
        self.make_room(l.offset, l.port);
        self.members.join(l.offset, l.ip, l.port);
        if l.name.is_some() && self.members.rename(l.offset, l.name.as_deref()).is_err() {
            debug!(
                "cluster: offset {}'s name is held here; listed unnamed",
                l.offset
            );
        }
        self.members.set_relay(l.offset, shown);
        if self.members.set_key(l.offset, l.key).is_err() {
            debug!(
                "cluster: offset {}'s key is listed at another offset here",
                l.offset
            );
        }
        self.cluster
            .as_mut()
            .expect("in a cluster")
            .remote
            .insert(l.offset);
        true
    }

    /// The snapshot's reply: `EPOCH VERSION LAST-ID CAN-RELAY RELAYS (OFFSET
    /// MEMBER)*`, members in the document's order. The copy is built again in that order, so that
    /// it is byte for byte every other manager's.
    pub(super) fn apply_snapshot(&mut self, r: &mut Reactor<Slot>, items: &[Reply]) {
        let c = self.cluster.as_mut().expect("in a cluster");
        let (Some(epoch), Some(version), Some(last)) = (
            items.first().and_then(Reply::bytes),
            items.get(1).and_then(Reply::bytes).and_then(parse::number),
            items.get(2).and_then(Reply::bytes),
        ) else {
            return c.garbage("a snapshot without epoch, version or stream id");
        };
        let [can_relay, relays, members @ ..] = &items[3..] else {
            return c.garbage("a snapshot without relays");
        };
        if parse::epoch(epoch).is_none() {
            return c.garbage("a snapshot whose epoch is no epoch");
        }
        if c.epoch.as_deref().is_some_and(|e| e != epoch) {
            warn!(
                "cluster: redis has a new epoch {} (it lost the cluster): registering {} servants again",
                String::from_utf8_lossy(epoch),
                c.local.len()
            );
        }
        c.epoch = Some(epoch.to_vec());
        c.last_id = last.to_vec();
        c.version = version;
        let mut listed = Vec::new();
        for pair in members.chunks_exact(2) {
            let (Some(o), Some(v)) = (pair[0].bytes(), pair[1].bytes()) else {
                c.garbage("a snapshot member that is no string");
                continue;
            };
            match parse::member(o, v) {
                Ok(l) => listed.push(l),
                Err(e) => c.garbage(&e),
            }
        }
        // Joins whose reply came but whose entry the stream will not bring now.
        let answered: Vec<(usize, Index)> = (c.joins.values())
            .filter_map(|j| match *j {
                Joining::New {
                    index,
                    got: Some(o),
                } => Some((o, index)),
                _ => None,
            })
            .collect();
        c.joins.clear();
        self.diverge(r);
        self.rebuild(r, &listed, &answered);
        self.apply_relays(r, can_relay, relays);
        let c = self.cluster.as_mut().expect("in a cluster");
        c.synced = true;
        c.send_tick(r); // the lease first: a manager that dies at once is reaped too
        info!(
            "cluster: in step with redis: {} members, {} of them here",
            self.members.count(),
            c.local.len()
        );
        // Newcomers' joins only after the registrations: Redis runs them in order.
        for index in std::mem::take(&mut c.queued) {
            self.start_join(r, index);
        }
        self.settle(r);
        self.list_changed(r);
        self.publish_members_hash(r);
    }

    /// Lists `listed` in order, this manager's servants among them; then this
    /// manager's servants Redis does not list, at the end, registered again.
    fn rebuild(&mut self, r: &mut Reactor<Slot>, listed: &[Listed], answered: &[(usize, Index)]) {
        let c = self.cluster.as_mut().expect("in a cluster");
        for o in std::mem::take(&mut c.remote) {
            self.members.leave(o);
        }
        let c = self.cluster.as_mut().expect("in a cluster");
        let mut ours: Vec<(usize, IpAddr, u16, Option<String>)> = Vec::new();
        for &o in c.local.keys() {
            if let Some(seat) = self.members.leave(o) {
                ours.push((o, seat.ip, seat.port, seat.name().map(str::to_string)));
            }
        }
        ours.sort_unstable();
        let id = self.cluster.as_ref().expect("in a cluster").id.clone();
        for l in listed {
            let mine = l.manager == id;
            let at = ours.iter().position(|s| s.0 == l.offset || s.2 == l.port);
            if let Some(k) = at {
                let (o, _, _, name) = ours.remove(k);
                if mine && o == l.offset {
                    self.members.join(l.offset, l.ip, l.port);
                    let _ = self.members.rename(l.offset, name.as_deref());
                    self.identity_of_local(r, o);
                    continue;
                }
                // Redis gave its offset or port to another while it could not
                // hear this manager.
                warn!("cluster: offset {o} was taken while redis was away; closing its servant");
                self.drop_local(r, o);
            }
            let index = answered.iter().find(|a| a.0 == l.offset).map(|a| a.1);
            match index {
                Some(index) if mine && waiting(r, index) => {
                    self.admitted(r, index, l.offset, l.port);
                }
                _ => {
                    if mine {
                        // It left while Redis could not hear it.
                        let c = self.cluster.as_mut().expect("in a cluster");
                        c.send_leave(r, l.offset);
                    }
                    self.list_remote(l);
                }
            }
        }
        if !ours.is_empty() {
            info!(
                "cluster: registering {} servants redis does not list",
                ours.len()
            );
        }
        for (offset, ip, port, name) in ours {
            self.members.join(offset, ip, port);
            let _ = self.members.rename(offset, name.as_deref());
            self.identity_of_local(r, offset);
            self.register(r, offset);
        }
    }

    /// A private network's servant here at `offset`, listed again: with its key.
    fn identity_of_local(&mut self, r: &Reactor<Slot>, offset: usize) {
        if let Some(index) = self.slot(offset) {
            self.list_identity(r, index, offset);
        }
    }

    /// This manager's servant at `offset` is closed, not listed (its entry is
    /// someone else's now).
    fn drop_local(&mut self, r: &mut Reactor<Slot>, offset: usize) {
        let c = self.cluster.as_mut().expect("in a cluster");
        if let Some(index) = c.local.remove(&offset) {
            if let Some(Slot::Servant(s)) = r.data_mut(index) {
                s.handed_over = true;
            }
            r.abort(index);
        }
    }

    /// Asks Redis to list this manager's servant at `offset` again, at the same
    /// offset and port if they are free there.
    fn register(&mut self, r: &mut Reactor<Slot>, offset: usize) {
        let Some(seat) = self.members.seat(offset) else {
            return;
        };
        let (ip, port) = (seat.ip, seat.port);
        let name = seat.name().unwrap_or_default().to_string();
        let limits = self.join_limits(ip);
        let c: &mut Cluster = self.cluster.as_mut().expect("in a cluster");
        let token = (c.local.get(&offset))
            .and_then(|&i| match r.data(i) {
                Some(Slot::Servant(s)) => s.token.clone(),
                _ => None,
            })
            .unwrap_or_default();
        let joining = Joining::Register(offset);
        c.send_join(r, (offset, port), (ip, &token), &name, joining, limits);
    }
}

/// Whether `index` is a connection still waiting for its entry.
pub(super) fn waiting(r: &Reactor<Slot>, index: Index) -> bool {
    matches!(r.data(index), Some(Slot::Servant(s)) if s.pending)
}
