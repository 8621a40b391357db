//! The manager of a private network (docs/PRIVATE.md): every servant link is a
//! Noise session, and only the members file's keys join.
//!
//! - The listener takes connections with `accept_secure`; [`Manager::admit_key`]
//!   admits a key in the members file, and refuses any other before answering
//!   the handshake, so a stranger is closed having learnt nothing (not even a
//!   refusal line: the open network's `max number of servants reached` is not
//!   said either, the connection is just closed).
//! - A member joins at `authenticated`, when its key is proven, not at accept: it
//!   is listed under its members-file name, with its `<key>`. A second link for
//!   one key replaces the first (the member restarted; the old link may be a
//!   dead one the idle sweep has not reaped yet).
//! - `name` requests are refused (`name refused: private network`): names are
//!   bound to keys by the members file.
//! - SIGHUP reads the members file again: a member removed (or given another key)
//!   is closed at once and leaves the list, which is pushed; a renamed one is
//!   re-listed. A bad file changes nothing.

use log::{info, warn};

use super::admit::{self, Throttle};
use super::{count, Manager, Member, Slot};
use crate::noise::PublicKey;
use crate::reactor::{Index, Reactor, Request};

/// What the manager keeps for a private network beyond its config.
#[derive(Default)]
pub(super) struct Gate {
    /// Keys refused, for the log.
    strangers: Throttle,
}

impl Manager {
    fn members_file(&self) -> Option<&super::config::Members> {
        self.config.private.as_ref().map(|p| &p.members)
    }

    /// A private network's listener has a connection waiting: take it as a
    /// private responder; it joins when its key is proven.
    pub(super) fn private_request(&mut self, r: &mut Reactor<Slot>, request: Request) {
        let from = request.remote();
        if let Err(e) = r.accept_secure(request, Slot::Handshake) {
            if let Some(n) = self.gate.strangers.note(r.now()) {
                warn!("refusing {from}: {e}{}", admit::more(n));
            }
        }
    }

    /// VB had no counterpart: the initiator named its key. Members only.
    pub(super) fn private_admit(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        key: &PublicKey,
    ) -> bool {
        if self.members_file().is_some_and(|m| m.name(key).is_some()) {
            return true;
        }
        if let Some(n) = self.gate.strangers.note(r.now()) {
            let from = r
                .socket(index)
                .map(|s| s.addr().to_string())
                .unwrap_or_default();
            warn!(
                "refusing {from}: key {key} is not in the members file{}",
                admit::more(n)
            );
        }
        false
    }

    /// A member proved its key: it joins, listed by its members-file name, with
    /// its key. An older link for the same key is closed first.
    pub(super) fn private_join(&mut self, r: &mut Reactor<Slot>, index: Index) {
        let Some(key) = r.peer_key(index).copied() else {
            return;
        };
        // Removed by a SIGHUP between its first message and its proof.
        let Some(name) = self
            .members_file()
            .and_then(|m| m.name(&key))
            .map(str::to_string)
        else {
            return r.abort(index);
        };
        if self.cluster.is_some() {
            return self.cluster_private_join(r, index, key);
        }
        if let Some(old) = self.members.by_key(&key) {
            info!("{name} connected again: closing its older link (offset {old})");
            self.private_leave(r, old);
        }
        let Some(port) = self.members.next_port() else {
            warn!("{name}: every servant port is taken; closing");
            return r.abort(index);
        };
        let Some(ip) = r.socket(index).map(|s| s.addr().ip()) else {
            return;
        };
        if let Some(slot) = r.data_mut(index) {
            *slot = Slot::Servant(Member::new());
        }
        self.members.join(index, ip, port);
        // Unique in the members file, and no one else may pick a name here.
        let _ = self.members.rename(index, Some(&name));
        let _ = self.members.set_key(index, Some(key));
        info!(
            "joined: {name} at offset {index}, {ip} port {port} ({})",
            count(self.members.count())
        );
        self.list_changed(r);
    }

    /// Takes `index` off the list now and closes its link at once.
    fn private_leave(&mut self, r: &mut Reactor<Slot>, index: Index) {
        if self.members.leave(index).is_some() {
            self.list_changed(r);
        }
        r.abort(index);
    }

    /// After SIGHUP read the members file again: whoever is no longer in it, or
    /// is now under another name, is closed or re-listed at once.
    pub(super) fn members_reloaded(&mut self, r: &mut Reactor<Slot>) {
        if self.cluster.is_some() {
            return self.cluster_members_reloaded(r);
        }
        let Some(members) = self.members_file().cloned() else {
            return;
        };
        let listed: Vec<(Index, PublicKey, Option<String>)> = (self.members.keyed())
            .map(|(o, k, n)| (o, k, n.map(str::to_string)))
            .collect();
        // Removals first, so a name moved to another key is free for it.
        let mut renames = Vec::new();
        for (offset, key, name) in listed {
            match members.name(&key) {
                None => {
                    info!(
                        "{} (offset {offset}) is no longer a member: closing its link",
                        name.as_deref().unwrap_or("?")
                    );
                    self.private_leave(r, offset);
                }
                Some(now) if name.as_deref() != Some(now) => {
                    renames.push((offset, now.to_string()))
                }
                Some(_) => {}
            }
        }
        for (offset, name) in renames {
            let _ = self.members.rename(offset, None);
            if self.members.rename(offset, Some(&name)) == Ok(true) {
                info!("offset {offset} is called {name:?} now");
                self.list_changed(r);
            }
        }
    }
}
