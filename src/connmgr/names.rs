//! Servants' names: a servant says `name NAME` and the manager lists it in that
//! servant's `<peer>` entry ([`crate::wire::name`]), so every user list and every
//! join or leave a servant shows can say who it is. The article's manager knew
//! servants only by address and port.
//!
//! A name is one word, and no two live servants hold the same one (compared
//! trimmed and case-folded): otherwise anyone could join as `alice` beside alice
//! and speak as her. Every request is answered with one line, `name ok NAME` or
//! `name refused: REASON`, in order with the other answers on that connection. The
//! name is folded only here, on a `name` request, never on a join or a leave.
//! In a cluster in step with Redis the name is claimed there (`cluster/names.rs`)
//! and the connection's later requests wait for the answer.

use log::{debug, info};

use super::{admit, Manager, Slot};
use crate::reactor::{Index, Reactor};
use crate::wire::name;

impl Manager {
    /// `name NAME` from `index`: list it (or, bare, forget it) and answer. A name
    /// that is refused leaves the old one listed. Pushes the list if it changed.
    /// True when the answer waits for Redis's claim: the connection's later
    /// requests wait with it.
    pub(super) fn name_request(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        text: &[u8],
    ) -> bool {
        if self.config.private.is_none() && self.names_through_redis() {
            match name::admit(text) {
                Ok(wanted) => return self.claim_name(r, index, wanted),
                Err(why) => return self.name_refused(r, index, why),
            }
        }
        self.name_locally(r, index, text);
        false
    }

    /// Answers `name NAME` from this manager's copy: a single manager, a
    /// private network, or a cluster while Redis cannot say.
    pub(super) fn name_locally(&mut self, r: &mut Reactor<Slot>, index: Index, text: &[u8]) {
        let outcome = if self.config.private.is_some() {
            // Names are the members file's, bound to keys (`private.rs`).
            Err(name::Refused::Private)
        } else if self.names_through_redis() {
            // Listed when the change comes back from Redis, as on every manager.
            let offset = self.offset_of(r, index);
            name::admit(text).and_then(|wanted| {
                let holder = wanted.and_then(|w| self.members.name_holder(w));
                if holder.is_some_and(|o| o != offset) {
                    return Err(name::Refused::InUse);
                }
                let now = self.members.seat(offset).and_then(|s| s.name());
                Ok((wanted, now != wanted))
            })
        } else {
            let offset = self.offset_of(r, index);
            name::admit(text).and_then(|wanted| Ok((wanted, self.members.rename(offset, wanted)?)))
        };
        match outcome {
            Ok((wanted, changed)) => {
                let mut answer = Vec::with_capacity(48);
                name::answer_ok(&mut answer, wanted);
                r.send(index, &answer);
                if changed {
                    match wanted {
                        Some(n) => info!("offset {index} is called {n:?}"),
                        None => info!("offset {index} has no name now"),
                    }
                    if self.names_through_redis() {
                        self.cluster_named(r, index, wanted);
                    } else {
                        self.diverge(r);
                        self.list_changed(r);
                    }
                }
            }
            Err(why) => {
                self.name_refused(r, index, why);
            }
        }
    }

    /// Tells `index` its name was refused, and logs it (throttled). False: for
    /// [`Manager::name_request`], nothing waits.
    pub(super) fn name_refused(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        why: name::Refused,
    ) -> bool {
        r.send(index, why.answer());
        if let Some(n) = self.name_refusals.note(r.now()) {
            info!(
                "offset {index} was refused a name: {}{}",
                why.reason(),
                admit::more(n)
            );
        } else {
            debug!("offset {index} was refused a name: {}", why.reason());
        }
        false
    }
}
