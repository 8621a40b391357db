//! Names unique across the cluster: a `name NAME` request is answered by the
//! NAME script ([`super::scripts::NAME`]), which claims the case-folded name in
//! `{p}:names` or says another member holds it, so two managers cannot both
//! grant one name. The asker's later requests wait for that answer (its bytes
//! are kept), so every answer on the connection stays in order. Whatever the
//! script cannot say (Redis gone, an error) is answered from this manager's
//! copy, as on a single manager.

use log::info;

use super::{Wait, STREAM_LENGTH};
use crate::connmgr::{Manager, Slot};
use crate::reactor::{Index, Reactor};
use crate::redis::Reply;
use crate::wire::name;

/// A `name` request waiting for its claim: the connection, its offset (so a
/// slot taken by a new connection meanwhile is not answered), the name wanted.
#[derive(Debug)]
pub(in crate::connmgr) struct Claim {
    index: Index,
    offset: usize,
    wanted: Option<Box<str>>,
}

impl Manager {
    /// Claims `wanted` (None: forget the name) for `index` in Redis. True: the
    /// connection waits for the reply (`data_arrival` keeps what it sends).
    pub(in crate::connmgr) fn claim_name(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        wanted: Option<&str>,
    ) -> bool {
        let offset = self.offset_of(r, index);
        let claim = Claim {
            index,
            offset,
            wanted: wanted.map(Into::into),
        };
        if !self.send_name(r, offset, wanted, Wait::Name(claim)) {
            self.name_locally(r, index, wanted.unwrap_or_default().as_bytes());
            return false;
        }
        if let Some(Slot::Servant(s)) = r.data_mut(index) {
            s.naming = true;
        }
        true
    }

    /// `index` is called `name` now (or nothing): every manager lists it so, this
    /// one too, when the change comes back on the stream.
    pub(in crate::connmgr) fn cluster_named(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        name: Option<&str>,
    ) {
        let offset = self.offset_of(r, index);
        self.send_name(r, offset, name, Wait::Other);
    }

    /// Runs the NAME script for `offset`; false when Redis is away.
    fn send_name(
        &mut self,
        r: &mut Reactor<Slot>,
        offset: usize,
        name: Option<&str>,
        wait: Wait,
    ) -> bool {
        let Some(c) = self.cluster.as_mut().filter(|c| c.main.is_up()) else {
            return false;
        };
        let (prefix, id, o) = (c.prefix.clone(), c.id.clone(), offset.to_string());
        let name = name.unwrap_or_default();
        let folded = name::fold(name);
        let args: [&[u8]; 6] = [
            prefix.as_bytes(),
            o.as_bytes(),
            id.as_bytes(),
            name.as_bytes(),
            STREAM_LENGTH.as_bytes(),
            folded.as_bytes(),
        ];
        c.eval(r, |c| &c.name, &args, wait);
        true
    }

    /// The NAME script answered `claim`: the asker is told, and its requests
    /// that waited are answered now.
    pub(super) fn name_reply(&mut self, r: &mut Reactor<Slot>, claim: Claim, reply: Option<Reply>) {
        let Claim {
            index,
            offset,
            wanted,
        } = claim;
        if !matches!(r.data(index), Some(Slot::Servant(s)) if s.naming && s.offset(index) == offset)
        {
            return; // it left meanwhile
        }
        match reply {
            Some(Reply::Integer(v)) if v > 0 || v == -2 => {
                let mut answer = Vec::with_capacity(48);
                name::answer_ok(&mut answer, wanted.as_deref());
                r.send(index, &answer);
                if v > 0 {
                    match wanted.as_deref() {
                        Some(n) => info!("offset {index} is called {n:?}"),
                        None => info!("offset {index} has no name now"),
                    }
                }
            }
            Some(Reply::Integer(-1)) => {
                self.name_refused(r, index, name::Refused::InUse);
            }
            _ => {
                let text = wanted.as_deref().unwrap_or_default();
                self.name_locally(r, index, text.as_bytes());
            }
        }
        let held = match r.data_mut(index) {
            Some(Slot::Servant(s)) => {
                s.naming = false;
                std::mem::take(&mut s.held)
            }
            _ => return,
        };
        use crate::reactor::Handler;
        self.data_arrival(r, index, &held);
    }
}
