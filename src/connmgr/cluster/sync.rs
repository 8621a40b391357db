//! Keeping a manager's copy in step with Redis: a snapshot when the main
//! connection comes up, then the stream's changes one by one. Other managers'
//! members are joined, left and renamed in this manager's [`Membership`]
//! (`super::super::membership`); its own servants are registered again when
//! Redis has lost them (restarted empty, or reaped after a stall).

use log::{debug, info, warn};

use super::parse::{self, Change, Listed};
use super::{joined, Cluster, Wait};
use crate::connmgr::{Manager, Slot};
use crate::reactor::Reactor;
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
            match change {
                Ok(change) => changed |= self.apply(r, change),
                Err(e) => c.garbage(&e),
            }
        }
        if changed {
            self.list_changed(r);
        }
    }

    /// One change from the stream; whether the document changed.
    fn apply(&mut self, r: &mut Reactor<Slot>, change: Change) -> bool {
        let c = self.cluster.as_mut().expect("in a cluster");
        match change {
            Change::Join(l) if l.manager == c.id => false, // applied when its script answered
            Change::Join(l) => self.list_remote(&l),
            Change::Leave { offset, by, .. } if c.local.contains_key(&offset) => {
                if by != c.id {
                    // Reaped while Redis could not hear this manager: it is still here.
                    info!("cluster: offset {offset} was reaped by {by}; registering it again");
                    self.register(r, offset);
                }
                false
            }
            Change::Leave { offset, .. } => {
                let left = c.remote.remove(&offset) && self.members.leave(offset).is_some();
                self.remote_left(r, offset);
                left
            }
            Change::Name { offset, name, .. } if c.remote.contains(&offset) => {
                match self.members.rename(offset, name.as_deref()) {
                    Ok(changed) => changed,
                    Err(_) => {
                        debug!(
                            "cluster: offset {offset}'s name {name:?} is held here; listed unnamed"
                        );
                        self.members.rename(offset, None).unwrap_or(false)
                    }
                }
            }
            Change::Name { .. } => false,
            relay => self.apply_relay(r, relay),
        }
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
                    return self
                        .members
                        .rename(l.offset, l.name.as_deref())
                        .unwrap_or(false);
                }
            }
        }
        self.make_room(l.offset, l.port);
        self.members.join(l.offset, l.ip, l.port);
        if l.name.is_some() && self.members.rename(l.offset, l.name.as_deref()).is_err() {
            debug!(
                "cluster: offset {}'s name is held here; listed unnamed",
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

    /// The snapshot's reply: `EPOCH VERSION LAST-ID (OFFSET MEMBER)*`.
    pub(super) fn apply_snapshot(&mut self, r: &mut Reactor<Slot>, items: &[Reply]) {
        let c = self.cluster.as_mut().expect("in a cluster");
        let (Some(epoch), Some(last)) = (
            items.first().and_then(Reply::bytes),
            items.get(2).and_then(Reply::bytes),
        ) else {
            return c.garbage("a snapshot without epoch or stream id");
        };
        if c.epoch.as_deref().is_some_and(|e| e != epoch) {
            warn!(
                "cluster: redis has a new epoch {} (it lost the cluster): registering {} servants again",
                String::from_utf8_lossy(epoch),
                c.local.len()
            );
        }
        c.epoch = Some(epoch.to_vec());
        c.last_id = last.to_vec();
        let mut listed = Vec::new();
        for pair in items[3..].chunks_exact(2) {
            let (Some(o), Some(v)) = (pair[0].bytes(), pair[1].bytes()) else {
                c.garbage("a snapshot member that is no string");
                continue;
            };
            match parse::member(o, v) {
                Ok(l) => listed.push(l),
                Err(e) => c.garbage(&e),
            }
        }
        let mut changed = false;
        // Remote entries Redis no longer lists leave the copy.
        let stale: Vec<usize> = (c.remote.iter().copied())
            .filter(|o| !listed.iter().any(|l| l.offset == *o && l.manager != c.id))
            .collect();
        for o in stale {
            c.remote.remove(&o);
            changed |= self.members.leave(o).is_some();
        }
        let mut ours = Vec::new();
        for l in &listed {
            let c = self.cluster.as_mut().expect("in a cluster");
            if l.manager != c.id {
                changed |= self.list_remote(l);
            } else if c.local.contains_key(&l.offset) {
                ours.push(l.offset);
            } else {
                c.send_leave(r, l.offset); // it left while Redis could not hear it
            }
        }
        let c = self.cluster.as_mut().expect("in a cluster");
        let missing: Vec<usize> = c
            .local
            .keys()
            .copied()
            .filter(|o| !ours.contains(o))
            .collect();
        if !missing.is_empty() {
            info!(
                "cluster: registering {} servants redis does not list",
                missing.len()
            );
        }
        for offset in missing {
            self.register(r, offset);
        }
        // Newcomers' joins only after the registrations: Redis runs them in order.
        let c = self.cluster.as_mut().expect("in a cluster");
        c.synced = true;
        c.send_tick(r); // the lease first: a manager that dies at once is reaped too
        info!(
            "cluster: in step with redis: {} members, {} of them here",
            self.members.count(),
            c.local.len()
        );
        for index in std::mem::take(&mut c.queued) {
            if let Some(ip) = (matches!(r.data(index), Some(Slot::Servant(s)) if s.pending))
                .then(|| r.socket(index).map(|s| s.addr().ip()))
                .flatten()
            {
                c.send_join(r, (0, 0), ip, "", Wait::Join(index));
            }
        }
        if changed {
            self.list_changed(r);
        }
        self.send_relay_snapshot(r);
    }

    /// Asks Redis to list this manager's servant at `offset` again, at the same
    /// offset and port if they are free there.
    fn register(&mut self, r: &mut Reactor<Slot>, offset: usize) {
        let Some(seat) = self.members.seat(offset) else {
            return;
        };
        let (ip, port) = (seat.ip, seat.port);
        let name = seat.name().unwrap_or_default().to_string();
        let c: &mut Cluster = self.cluster.as_mut().expect("in a cluster");
        c.send_join(r, (offset, port), ip, &name, Wait::Register(offset));
    }

    /// The answer to [`Manager::register`]: kept, or moved to a new offset and
    /// port (its servant sees itself leave and join; someone else had them).
    pub(super) fn register_reply(
        &mut self,
        r: &mut Reactor<Slot>,
        offset: usize,
        reply: Option<Reply>,
    ) {
        let Some((new, port)) = reply.as_ref().and_then(joined) else {
            return; // lost again: the next snapshot tries again
        };
        let c = self.cluster.as_mut().expect("in a cluster");
        if new == offset {
            return;
        }
        let Some(index) = c.local.remove(&offset) else {
            return c.send_leave(r, new); // it left meanwhile
        };
        warn!("cluster: offset {offset} was taken while redis was away; moved to offset {new}, port {port}");
        self.members.leave(offset);
        self.admitted(r, index, new, port);
    }
}
