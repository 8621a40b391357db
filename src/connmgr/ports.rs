//! A port someone else holds: the manager hands out ports by counting (VB's
//! `iPortMax`), knowing nothing of what else runs on a servant's host. A servant
//! that cannot bind the port it was given says `cannot listen PORT`; the manager
//! moves it to the next free port, one change of its entry pushed to everyone, and
//! answers it at once so that it learns the new port without waiting for a poll.
//!
//! In a cluster the next free port is the cluster's, and the move every manager's.
//!
//! At most one move a second per servant: one that cannot listen anywhere must not
//! walk the port counter through the whole range.

use std::time::Duration;

use log::{debug, info};

use super::verdict::member_mut;
use super::{admit, Manager, Slot};
use crate::reactor::{Index, Reactor};

/// The least time between two moves of one servant.
const MOVE_GAP: Duration = Duration::from_secs(1);

impl Manager {
    /// `cannot listen PORT` from `index`: if PORT is its port, give it the next
    /// free one and answer as its last `needs peer list` would have been.
    pub(super) fn cannot_listen(&mut self, r: &mut Reactor<Slot>, index: Index, port: u16) {
        let now = r.now();
        let offset = self.offset_of(r, index);
        let current = self.members.seat(offset).map(|s| s.port);
        let Some(m) = member_mut(r, index) else {
            return;
        };
        let why = if current != Some(port) {
            "is not its port"
        } else if m.moved.is_some_and(|t| now.duration_since(t) < MOVE_GAP) {
            "came within a second of its last move"
        } else {
            m.moved = Some(now);
            ""
        };
        if !why.is_empty() {
            if let Some(n) = self.listen_refusals.note(now) {
                debug!(
                    "offset {offset} cannot listen on {port}, which {why}: ignored{}",
                    admit::more(n)
                );
            }
            return;
        }
        if self.cluster.is_some() {
            // The cluster's ports are Redis's to hand out (`cluster/relay.rs`).
            return self.cluster_move(r, index, offset, port);
        }
        let Some((old, new)) = self.members.move_port(offset) else {
            return info!("offset {offset} cannot listen on {port}, and no other port is free");
        };
        info!("offset {offset} cannot listen on {old}: moved to {new}");
        self.answers.send_update(r, self.members.doc(), index);
        self.list_changed(r);
    }
}
