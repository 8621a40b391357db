//! A servant's way in and out of the cluster: a new connection waits for its
//! first line (it may resume, `resume.rs`), its join goes to Redis and it is
//! listed when the join comes back on the stream; its leave likewise. While Redis
//! is away it is admitted from this manager's own copy (`epoch.rs`).

use std::net::IpAddr;
use std::time::Duration;

use log::{info, warn};

use super::{token, Joining, Limits, JOIN_TIMER};
use crate::connmgr::admit::Refusal;
use crate::connmgr::{Manager, Slot};
use crate::reactor::{Index, Reactor};
use crate::redis::Reply;

/// How long a new connection may say nothing before it joins anyway (its
/// first line may be `resume`).
pub(in crate::connmgr) const FIRST_LINE: Duration = Duration::from_millis(50);

impl Manager {
    /// A new connection in slot `index`: it waits (its lines kept) until its
    /// first line says whether it resumes an entry, or a moment has passed.
    pub(in crate::connmgr) fn cluster_join(&mut self, r: &mut Reactor<Slot>, index: Index) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        if let Some(Slot::Servant(s)) = r.data_mut(index) {
            s.pending = true;
            s.undecided = true;
        }
        let at = r.now() + FIRST_LINE;
        c.undecided.push((at, index));
        if r.timer_due(JOIN_TIMER).is_none() {
            r.set_timer(JOIN_TIMER, at);
        }
    }

    /// `index` is a new member: its join goes to Redis (or, while Redis is away,
    /// it is admitted from this manager's own copy).
    pub(super) fn start_join(&mut self, r: &mut Reactor<Slot>, index: Index) {
        let Some(ip) = r.socket(index).map(|s| s.addr().ip()) else {
            return;
        };
        let private = self.config.private.is_some();
        let name = self.private_name(r, index);
        let token = match r.data_mut(index) {
            // A private network's member keeps its key as its token.
            Some(Slot::Servant(s)) if s.pending && private => {
                s.token.as_deref().unwrap_or_default().to_string()
            }
            Some(Slot::Servant(s)) if s.pending => {
                s.undecided = false;
                let token = token();
                s.token = Some(token.clone().into());
                token
            }
            _ => return,
        };
        let limits = self.join_limits(ip);
        let c = self.cluster.as_mut().expect("in a cluster");
        if !c.main.is_up() {
            return self.admit_locally(r, index, ip);
        }
        if !c.synced {
            return c.queued.push(index);
        }
        let joining = Joining::New { index, got: None };
        c.send_join(r, (0, 0), (ip, &token), &name, joining, limits);
    }

    /// `--max-servants`, `--max-per-address` and the address a servant from `ip`
    /// is counted under: the join script checks them over the whole cluster.
    pub(super) fn join_limits(&self, ip: IpAddr) -> Limits {
        Limits {
            max: self.config.max_servants,
            per_address: self.config.max_per_address,
            address: self.members.address_key(ip),
        }
    }

    /// Admits `index` with an offset and port this manager's copy shows free;
    /// Redis is told when it answers again (`sync.rs`). Its versions are this
    /// manager's own until then.
    pub(super) fn admit_locally(&mut self, r: &mut Reactor<Slot>, index: Index, ip: IpAddr) {
        let offset = (1..)
            .find(|&o| self.members.seat(o).is_none())
            .expect("a free offset");
        let Some(port) = self.members.next_port() else {
            warn!("cluster: no free port for a servant from {ip}");
            return r.abort(index);
        };
        self.diverge(r);
        self.admitted(r, index, offset, port);
    }

    /// `index` joined at `offset` with `port`: listed, and what it sent while it
    /// waited is answered now.
    pub(super) fn admitted(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        offset: usize,
        port: u16,
    ) {
        let Some(ip) = r.socket(index).map(|s| s.addr().ip()) else {
            return;
        };
        self.make_room(offset, port);
        let Some(held) = seated(r, index, offset) else {
            return;
        };
        if let Some(c) = self.cluster.as_mut() {
            c.local.insert(offset, index);
        }
        self.members.join(offset, ip, port);
        self.list_identity(r, index, offset); // before it is answered
        self.log_join(offset);
        self.list_changed(r);
        if !held.is_empty() {
            use crate::reactor::Handler;
            self.data_arrival(r, index, &held);
        }
    }

    /// Clears `offset` and `port` of remote entries the copy still shows (their
    /// leave is on its way), so a member Redis placed there can be listed.
    pub(super) fn make_room(&mut self, offset: usize, port: u16) {
        let in_port = self.members.at_port(port);
        let c = self.cluster.as_mut().expect("in a cluster");
        for o in [Some(offset), in_port].into_iter().flatten() {
            if c.remote.remove(&o) {
                self.members.leave(o);
            }
        }
    }

    /// A servant of this manager left (its connection closed). True when its
    /// entry leaves when the change comes back from Redis (in stream order, at
    /// the cluster's version); false when it leaves now (Redis is away).
    pub(in crate::connmgr) fn cluster_left(
        &mut self,
        r: &mut Reactor<Slot>,
        offset: usize,
    ) -> bool {
        let Some(c) = self.cluster.as_mut() else {
            return false;
        };
        c.local.remove(&offset);
        if c.main.is_up() && c.synced {
            c.send_leave(r, offset);
            return true;
        }
        self.diverge(r);
        false
    }

    /// Whether names go through Redis: the manager is in step with it, so the
    /// name is listed when its change comes back on the stream.
    pub(in crate::connmgr) fn names_through_redis(&self) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.main.is_up() && c.synced)
    }

    /// The join script answered `ok OFFSET PORT VERSION` (the member is listed
    /// when that comes back on the stream), `full`, or failed.
    pub(super) fn join_reply(&mut self, r: &mut Reactor<Slot>, tag: u64, reply: Option<Reply>) {
        let c = self.cluster.as_mut().expect("in a cluster");
        let joined = reply.as_ref().and_then(joined);
        let Some(Joining::New { index, got }) = c.joins.get_mut(&tag) else {
            if joined.is_none() {
                c.joins.remove(&tag); // a registration: the next snapshot tries again
            }
            return;
        };
        let index = *index;
        if let Some((offset, _)) = joined {
            *got = Some(offset);
            return;
        }
        c.joins.remove(&tag);
        if !matches!(r.data(index), Some(Slot::Servant(s)) if s.pending) {
            return;
        }
        let said = |a: &[Reply], i: usize| a.get(i).and_then(Reply::bytes).map(<[u8]>::to_vec);
        match reply {
            Some(Reply::Array(Some(a))) if said(&a, 0).as_deref() == Some(b"full") => {
                info!("cluster: every servant port is taken; refusing offset {index}");
                r.abort(index);
            }
            Some(Reply::Array(Some(a))) if said(&a, 0).as_deref() == Some(b"refused") => {
                let why = match said(&a, 1).as_deref() {
                    Some(b"address") => Refusal::PerAddress(self.config.max_per_address),
                    _ => Refusal::Full(self.config.max_servants),
                };
                // A private network tells nothing to one it refuses, as on one manager.
                let reply = self.config.private.is_none().then(|| why.reply());
                self.refusals.refuse_accepted(r, index, why, reply);
            }
            _ => {
                if let Some(ip) = r.socket(index).map(|s| s.addr().ip()) {
                    self.admit_locally(r, index, ip);
                }
            }
        }
    }

    /// This manager's servant at `offset` leaves the document now.
    pub(super) fn left_here(&mut self, r: &mut Reactor<Slot>, offset: usize) {
        if let Some(gone) = self.members.leave(offset) {
            info!(
                "left: offset {offset}, port {} ({})",
                gone.port,
                crate::connmgr::count(self.members.count())
            );
            self.list_changed(r);
        }
    }
}

/// `ok OFFSET PORT VERSION` from the join script.
pub(super) fn joined(reply: &Reply) -> Option<(usize, u16)> {
    let Reply::Array(Some(a)) = reply else {
        return None;
    };
    match a.as_slice() {
        [ok, Reply::Integer(o), Reply::Integer(p), _] if ok.bytes() == Some(b"ok") => {
            let o = usize::try_from(*o)
                .ok()
                .filter(|o| (1..=super::parse::MAX_OFFSET).contains(o))?;
            Some((o, u16::try_from(*p).ok().filter(|&p| p > 0)?))
        }
        _ => None,
    }
}

/// `index` waits no more: it is served at `offset`. What it sent meanwhile, to be
/// answered now; None if it is no servant.
pub(super) fn seated(r: &mut Reactor<Slot>, index: Index, offset: usize) -> Option<Vec<u8>> {
    match r.data_mut(index) {
        Some(Slot::Servant(s)) => {
            s.pending = false;
            s.offset = offset;
            Some(std::mem::take(&mut s.held))
        }
        _ => None,
    }
}
