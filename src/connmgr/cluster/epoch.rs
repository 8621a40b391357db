//! Whose versions a manager writes. In step with Redis, the cluster's: `E.N`,
//! E the cluster's epoch (`{p}:epoch`), N the version of the last change applied
//! from the stream, so a servant that fails over to any other manager and asks
//! `since E.N` gets a correct delta. While Redis is away (or this manager's copy
//! may differ from the cluster's, as when it has servants Redis does not list
//! yet), it cannot mint the cluster's versions: it writes its own, under a random
//! epoch of its own, and a servant that brings one to another manager, or back
//! here after Redis returns, gets the whole document.
//!
//! Switching epochs starts the document's history again and forgets what every
//! servant was sent, so each one's next answer or push is the whole document:
//! never `<unchanged>` or a delta from a version of another history.

use log::info;

use super::{random_u64, Joining};
use crate::connmgr::{Manager, Slot};
use crate::reactor::Reactor;
use crate::wire::version;

impl Manager {
    /// The document may differ from the cluster's from now on: versions are this
    /// manager's own. If Redis is there, a snapshot brings the copy back in step.
    pub(in crate::connmgr) fn diverge(&mut self, r: &mut Reactor<Slot>) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if !c.diverged {
            c.diverged = true;
            version::set_epoch(random_u64());
            self.members.restart_versions(self.members.doc().version());
            self.forget_what_was_sent(r);
            info!("cluster: versions are this manager's own until it is in step with redis");
        }
        let c = self.cluster.as_mut().expect("in a cluster");
        if c.main.is_up() && c.synced {
            c.synced = false;
            c.send_snapshot(r);
        }
    }

    /// Back to the cluster's versions, if the copy is the cluster's now: in step
    /// with Redis and every servant here listed there.
    pub(super) fn settle(&mut self, r: &mut Reactor<Slot>) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        let registering = c.joins.values().any(|j| matches!(j, Joining::Register(_)));
        let Some(epoch) = c.epoch.as_deref().and_then(super::parse::epoch) else {
            return;
        };
        if !c.diverged || !c.synced || registering {
            return;
        }
        c.diverged = false;
        let at = c.version;
        version::set_epoch(epoch);
        self.members.restart_versions(at);
        self.forget_what_was_sent(r);
        info!("cluster: in step at version {epoch:016x}.{at}");
        self.list_changed(r);
    }

    /// Every servant here is owed the whole document with its next answer.
    fn forget_what_was_sent(&mut self, r: &mut Reactor<Slot>) {
        let c = self.cluster.as_ref().expect("in a cluster");
        for &index in c.local.values() {
            if let Some(Slot::Servant(s)) = r.data_mut(index) {
                s.seen = 0;
            }
        }
    }
}
