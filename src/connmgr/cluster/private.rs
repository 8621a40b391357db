//! A private network served by a cluster (docs/PRIVATE.md, docs/CLUSTER.md):
//! every manager holds the network's manager key and the same members file. A
//! member's key travels in its entry (`key:KEY` in place of a token), so every
//! manager lists its `<key>`; the key is the identity, so a member's new
//! authenticated link on any manager takes over that key's entry through the
//! resume script, with no token and nobody seeing it leave or join. SIGHUP to
//! each manager revokes: each closes its own servants' links for keys no longer
//! in the file, and their entries leave every document.

use log::{info, warn};

use super::{Wait, STREAM_LENGTH};
use crate::connmgr::{Manager, Member, Slot};
use crate::noise::PublicKey;
use crate::reactor::{Index, Reactor};
use crate::redis::Reply;

impl Manager {
    /// The member in slot `index` proved `key`: it takes over the key's entry
    /// if the cluster lists one, or joins.
    pub(in crate::connmgr) fn cluster_private_join(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        key: PublicKey,
    ) {
        let token = format!("key:{key}");
        if let Some(slot) = r.data_mut(index) {
            let mut m = Member::new();
            m.pending = true;
            m.token = Some(token.clone().into());
            *slot = Slot::Servant(m);
        }
        let held = self.members.by_key(&key);
        let c = self.cluster.as_mut().expect("in a cluster");
        match held {
            Some(offset) if c.main.is_up() && c.synced => {
                let (prefix, id, o) = (c.prefix.clone(), c.id.clone(), offset.to_string());
                let args: [&[u8]; 5] = [
                    prefix.as_bytes(),
                    o.as_bytes(),
                    token.as_bytes(),
                    id.as_bytes(),
                    STREAM_LENGTH.as_bytes(),
                ];
                c.eval(r, |c| &c.resume, &args, Wait::Resume(index, offset));
            }
            _ => self.start_join(r, index),
        }
    }

    /// On a private network, the name the members file gives the key `index`
    /// proved ("" on an open one).
    pub(super) fn private_name(&self, r: &Reactor<Slot>, index: Index) -> String {
        let key = r.peer_key(index);
        (self.config.private.as_ref())
            .and_then(|p| p.members.name(key?))
            .unwrap_or_default()
            .to_string()
    }

    /// The member at `offset`, this manager's in slot `index`, is listed under
    /// the key its link proved and the members file's name for it.
    pub(super) fn list_identity(&mut self, r: &Reactor<Slot>, index: Index, offset: usize) {
        let Some(key) = r.peer_key(index).copied() else {
            return;
        };
        let name = self.private_name(r, index);
        if self.members.set_key(offset, Some(key)).is_err() {
            warn!("offset {offset}: its key is listed at another offset too");
        }
        let _ = self
            .members
            .rename(offset, (!name.is_empty()).then_some(&*name));
    }

    /// SIGHUP read the members file again: this manager's servants whose key is
    /// no longer in it are closed (their entries leave every document), those
    /// renamed there are renamed through Redis. Other managers' members are
    /// theirs to revoke, on their own SIGHUP.
    pub(in crate::connmgr) fn cluster_members_reloaded(&mut self, r: &mut Reactor<Slot>) {
        let Some(members) = self.config.private.as_ref().map(|p| p.members.clone()) else {
            return;
        };
        let listed: Vec<(Index, PublicKey, Option<String>)> = (self.members.keyed())
            .map(|(o, k, n)| (o, k, n.map(str::to_string)))
            .collect();
        for (offset, key, name) in listed {
            let Some(index) = self.slot(offset) else {
                continue;
            };
            match members.name(&key) {
                None => {
                    info!(
                        "{} (offset {offset}) is no longer a member: closing its link",
                        name.as_deref().unwrap_or("?")
                    );
                    r.abort(index);
                }
                Some(now) if name.as_deref() != Some(now) => {
                    if self.names_through_redis() {
                        self.cluster_named(r, index, Some(now));
                    } else if self.members.rename(offset, Some(now)) == Ok(true) {
                        self.diverge(r);
                        self.list_changed(r);
                    }
                }
                Some(_) => {}
            }
        }
        self.publish_members_hash(r);
    }

    /// Publishes the members file's hash; the reply says whether the last one
    /// published (another manager's, most likely) was the same.
    pub(super) fn publish_members_hash(&mut self, r: &mut Reactor<Slot>) {
        let Some(digest) = (self.config.private.as_ref()).map(|p| p.members.digest()) else {
            return;
        };
        let Some(c) = self.cluster.as_mut().filter(|c| c.main.is_up()) else {
            return;
        };
        let (prefix, hash) = (c.prefix.clone(), format!("{digest:016x}"));
        let args: [&[u8]; 2] = [prefix.as_bytes(), hash.as_bytes()];
        c.eval(r, |c| &c.members_hash, &args, Wait::MembersHash(digest));
    }

    pub(super) fn members_hash_reply(&mut self, ours: u64, reply: Option<Reply>) {
        let theirs = reply.as_ref().and_then(Reply::bytes).map(<[u8]>::to_vec);
        match theirs {
            Some(t) if t != format!("{ours:016x}").as_bytes() => warn!(
                "cluster: this manager's members file (hash {ours:016x}) differs from the one last published ({}): deploy the same file to every manager and SIGHUP each",
                String::from_utf8_lossy(&t)
            ),
            _ => {}
        }
    }
}
