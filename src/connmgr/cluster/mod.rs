//! Several managers, one network: the membership shared through Redis
//! (`--cluster URL`, docs/CLUSTER.md).
//!
//! Each manager keeps its own whole copy of the membership ([`Membership`]) and
//! answers every request from it; Redis is never asked while a servant waits,
//! except when it joins (a new connection is pending until its join script has
//! given it a cluster-wide offset and port) and when it asks for a name (the
//! name is claimed cluster-wide, `names.rs`). Joins, leaves and names are each
//! one Lua script ([`scripts`]) that also appends the change to a stream; every
//! manager follows the stream on a connection of its own (`XREAD BLOCK`) and
//! applies other managers' changes to its copy. Leases, renewed from Redis's own
//! clock, let any manager remove the servants of one that died.
//!
//! Redis is not allowed to hurt the servants a manager already has: while it is
//! unreachable or stalled, the manager serves from its copy, admits newcomers on
//! its own (offsets and ports it knows to be free), and when Redis answers again
//! takes a fresh snapshot, registers its live servants again (keeping their
//! offsets and ports where still free) before it sends any newcomer's join.
//!
//! Versions are the cluster's (`epoch.rs`): every change to the document, this
//! manager's own included, is applied when it comes back on the stream, at the
//! version its script gave it, so every manager's document at `E.N` is the same.

mod epoch;
mod join;
mod names;
mod parse;
mod private;
mod relay;
mod resume;
mod scripts;
mod sync;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use log::{info, warn};

use super::{Manager, Slot};
use crate::reactor::{Index, Reactor};
use crate::redis::{Client, Event, Options, RedisUrl, Reply, RequestId, Script, StreamReader};

/// Timer ids of the two Redis connections and of the lease renewal.
pub(super) const MAIN_TIMER: usize = 3;
pub(super) const STREAM_TIMER: usize = 4;
pub(super) const TICK_TIMER: usize = 5;
/// When new connections that have said nothing yet are joined anyway.
pub(super) const JOIN_TIMER: usize = 6;

/// How often a manager renews its lease, and how long one lasts: a manager that
/// dies leaves everyone's documents within a lease and a renewal (8 s, inside
/// the 10 s a network may take to notice), and a lease outlives two missed
/// renewals.
const RENEW: Duration = Duration::from_secs(2);
const LEASE: Duration = Duration::from_secs(6);
/// The stream keeps about this many changes (`MAXLEN ~`): a manager further
/// behind than that takes a snapshot instead.
const STREAM_LENGTH: &str = "10000";
/// How long one `XREAD` blocks, and how many entries it takes at most.
const BLOCK: Duration = Duration::from_secs(2);
const BATCH: usize = 512;

/// Which of the manager's Redis connections a slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    Main,
    Stream,
}

/// What a reply on the main connection is for.
#[derive(Debug)]
enum Wait {
    /// A join, by its tag in [`Cluster::joins`].
    Join(u64),
    /// A servant's resume: the connection, the offset it asked for.
    Resume(Index, usize),
    /// A leave of this manager's servant at this offset.
    Leave(usize),
    Snapshot,
    /// Relays, complaints and port moves (`relay.rs`).
    Relays(relay::Wait),
    /// The members file's hash this manager published (`private.rs`).
    MembersHash(u64),
    /// A servant's `name` request, answered when the claim's reply comes
    /// (`names.rs`).
    Name(names::Claim),
    /// A leave, a name, a lease renewal: only failures matter, and the next
    /// snapshot mends those.
    Other,
}

/// What the join script checks over the whole cluster before a newcomer joins.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max: usize,
    per_address: usize,
    /// The address it is counted under (IPv6 by its prefix).
    address: std::net::IpAddr,
}

/// A join this manager asked for, until its entry comes back on the stream.
#[derive(Debug, Clone, Copy)]
enum Joining {
    /// A new connection; `got`, the offset its script's reply gave it.
    New { index: Index, got: Option<usize> },
    /// A servant this manager serves, at this offset, registered again after
    /// Redis lost it.
    Register(usize),
    /// This manager's servant in this slot, moved off a port it cannot listen
    /// on (`relay.rs`): listed anew at the end, like a join.
    PortMove(Index),
}

/// The cluster side of one manager.
pub(super) struct Cluster {
    /// `{NAME}`: the hash tag every key starts with.
    prefix: String,
    /// This manager's id in Redis, random per run.
    id: String,
    main: Client<Slot>,
    stream: StreamReader<Slot>,
    join: Script,
    leave: Script,
    tick: Script,
    snapshot: Script,
    name: Script,
    resume: Script,
    members_hash: Script,
    relays: relay::Relays,
    first_port: u16,
    /// The cluster's epoch as Redis has it, once a snapshot said.
    epoch: Option<Vec<u8>>,
    /// The cluster's version as far as this manager has applied it.
    version: u64,
    /// Versions are this manager's own (a random epoch): its document may differ
    /// from the cluster's (`epoch.rs`).
    diverged: bool,
    /// Joins in flight, by the tag their stream entry carries.
    joins: HashMap<u64, Joining>,
    next_tag: u64,
    /// New connections not joined yet: their first line may be `resume`.
    undecided: Vec<(std::time::Instant, Index)>,
    /// The last stream entry applied.
    last_id: Vec<u8>,
    /// A snapshot has been applied since the main connection last came up.
    synced: bool,
    snapshot_asked: bool,
    waits: HashMap<RequestId, Wait>,
    /// Offset -> slot of each servant this manager serves.
    local: HashMap<usize, Index>,
    /// Offsets of members other managers serve, as this manager lists them.
    remote: HashSet<usize>,
    /// Connections waiting for the snapshot before their join is sent.
    queued: Vec<Index>,
    /// Malformed data from Redis, counted; the first few are logged.
    garbage: u64,
}

impl Cluster {
    pub(super) fn new(url: RedisUrl, prefix: &str, first_port: u16) -> Cluster {
        let options = Options {
            reply_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            backoff_max: Duration::from_secs(1),
            ..Options::default()
        };
        let id = hex(random_u64());
        Cluster {
            prefix: format!("{{{prefix}}}"),
            id,
            main: Client::new(url.clone(), options, Slot::Redis(Link::Main), MAIN_TIMER),
            stream: StreamReader::new(url, options, Slot::Redis(Link::Stream), STREAM_TIMER),
            join: Script::new(&scripts::join()),
            leave: Script::new(&scripts::leave()),
            tick: Script::new(&scripts::tick()),
            snapshot: Script::new(scripts::SNAPSHOT),
            name: Script::new(scripts::NAME),
            resume: Script::new(scripts::RESUME),
            members_hash: Script::new(scripts::MEMBERS_HASH),
            relays: relay::Relays::new(),
            first_port,
            epoch: None,
            version: 0,
            diverged: true,
            joins: HashMap::new(),
            next_tag: 0,
            undecided: Vec::new(),
            last_id: b"0-0".to_vec(),
            synced: false,
            snapshot_asked: false,
            waits: HashMap::new(),
            local: HashMap::new(),
            remote: HashSet::new(),
            queued: Vec::new(),
            garbage: 0,
        }
    }

    pub(super) fn start(&mut self, r: &mut Reactor<Slot>) {
        info!(
            "cluster: manager {} on redis {} under {}",
            self.id,
            self.main.url(),
            self.prefix
        );
        self.main.start(r);
        self.stream.start(r);
        r.set_timer(TICK_TIMER, r.now() + RENEW);
    }

    /// Runs `script` on the main connection, remembering what for.
    fn eval(
        &mut self,
        r: &mut Reactor<Slot>,
        which: fn(&Cluster) -> &Script,
        args: &[&[u8]],
        wait: Wait,
    ) {
        let script = which(self).clone();
        let id = self.main.evalsha(r, &script, &[], args);
        self.waits.insert(id, wait);
    }

    /// Asks Redis to list a servant from `ip` with `token`; its entry comes back
    /// on the stream with the tag this remembers as `joining`.
    fn send_join(
        &mut self,
        r: &mut Reactor<Slot>,
        want: (usize, u16),
        (ip, token): (IpAddr, &str),
        name: &str,
        joining: Joining,
        limits: Limits,
    ) {
        let tag = self.tag(joining);
        let (ip, first) = (ip.to_string(), self.first_port.to_string());
        let (o, p, t) = (want.0.to_string(), want.1.to_string(), tag.to_string());
        let (prefix, id) = (self.prefix.clone(), self.id.clone());
        let (max, per, address) = (
            limits.max.to_string(),
            limits.per_address.to_string(),
            limits.address.to_string(),
        );
        let folded = crate::wire::name::fold(name);
        let args: [&[u8]; 14] = [
            prefix.as_bytes(),
            id.as_bytes(),
            ip.as_bytes(),
            first.as_bytes(),
            token.as_bytes(),
            STREAM_LENGTH.as_bytes(),
            o.as_bytes(),
            p.as_bytes(),
            name.as_bytes(),
            t.as_bytes(),
            max.as_bytes(),
            per.as_bytes(),
            address.as_bytes(),
            folded.as_bytes(),
        ];
        self.eval(r, |c| &c.join, &args, Wait::Join(tag));
    }

    /// A new tag for a join's stream entry, remembered as `joining`.
    fn tag(&mut self, joining: Joining) -> u64 {
        self.next_tag += 1;
        self.joins.insert(self.next_tag, joining);
        self.next_tag
    }

    fn send_leave(&mut self, r: &mut Reactor<Slot>, offset: usize) {
        if !self.main.is_up() {
            return; // the next snapshot lists it as ours and not here: left then
        }
        let (prefix, id, o) = (self.prefix.clone(), self.id.clone(), offset.to_string());
        let args: [&[u8]; 4] = [
            prefix.as_bytes(),
            o.as_bytes(),
            id.as_bytes(),
            STREAM_LENGTH.as_bytes(),
        ];
        self.eval(r, |c| &c.leave, &args, Wait::Leave(offset));
    }

    fn send_tick(&mut self, r: &mut Reactor<Slot>) {
        let (prefix, id) = (self.prefix.clone(), self.id.clone());
        let (lease, renew) = (LEASE.as_millis().to_string(), RENEW.as_millis().to_string());
        let args: [&[u8]; 5] = [
            prefix.as_bytes(),
            id.as_bytes(),
            lease.as_bytes(),
            renew.as_bytes(),
            STREAM_LENGTH.as_bytes(),
        ];
        self.eval(r, |c| &c.tick, &args, Wait::Other);
    }

    fn send_snapshot(&mut self, r: &mut Reactor<Slot>) {
        self.snapshot_asked = true;
        let (prefix, epoch) = (self.prefix.clone(), hex(random_u64()));
        let args: [&[u8]; 2] = [prefix.as_bytes(), epoch.as_bytes()];
        self.eval(r, |c| &c.snapshot, &args, Wait::Snapshot);
    }

    /// Starts the next `XREAD` if the copy is in step and none is outstanding.
    fn read_on(&mut self, r: &mut Reactor<Slot>) {
        if !self.synced || !self.stream.is_up() || self.stream.is_reading() {
            return;
        }
        let key = format!("{}:log", self.prefix);
        let last = self.last_id.clone();
        self.stream
            .xread(r, &[(key.as_bytes(), &last)], Some(BATCH), BLOCK);
    }

    /// Redis said something this manager cannot use: logged (the first ten,
    /// then every thousandth) and ignored.
    fn garbage(&mut self, what: &str) {
        self.garbage += 1;
        if self.garbage <= 10 || self.garbage % 1000 == 0 {
            warn!(
                "cluster: ignored from redis ({} so far): {what}",
                self.garbage
            );
        }
    }
}

impl Manager {
    /// The offset `index`'s servant has in the document: its slot, unless a
    /// cluster gave it another.
    pub(super) fn offset_of(&self, r: &Reactor<Slot>, index: Index) -> Index {
        match r.data(index) {
            Some(Slot::Servant(s)) => s.offset(index),
            _ => index,
        }
    }

    /// `joined: ENTRY (N servants)`, at info.
    pub(super) fn log_join(&self, offset: Index) {
        if log::log_enabled!(log::Level::Info) {
            let entry = self.members.doc().entry(offset).unwrap_or_default();
            info!(
                "joined: {} ({})",
                String::from_utf8_lossy(entry),
                super::count(self.members.count())
            );
        }
    }

    /// VB: `_DataArrival` for a Redis connection.
    pub(super) fn redis_data(&mut self, r: &mut Reactor<Slot>, link: Link, i: Index, data: &[u8]) {
        if let Some(c) = self.cluster.as_mut() {
            match link {
                Link::Main => c.main.data_arrival(r, i, data),
                Link::Stream => c.stream.data_arrival(r, i, data),
            }
        }
        self.cluster_events(r);
    }

    /// VB: `_Connect` for a Redis connection.
    pub(super) fn redis_connect(&mut self, r: &mut Reactor<Slot>, link: Link, i: Index) {
        if let Some(c) = self.cluster.as_mut() {
            match link {
                Link::Main => c.main.connect(r, i),
                Link::Stream => c.stream.connect(r, i),
            }
        }
        self.cluster_events(r);
    }

    /// VB: `_Error` for a Redis connection: why it is about to close.
    pub(super) fn redis_error(&mut self, link: Link, i: Index, err: &std::io::Error) {
        if let Some(c) = self.cluster.as_mut() {
            match link {
                Link::Main => c.main.error(i, err),
                Link::Stream => c.stream.error(i, err),
            }
        }
    }

    /// VB: `_Close` for a Redis connection.
    pub(super) fn redis_closed(&mut self, r: &mut Reactor<Slot>, link: Link, i: Index) {
        if let Some(c) = self.cluster.as_mut() {
            match link {
                Link::Main => c.main.close(r, i),
                Link::Stream => c.stream.close(r, i),
            }
        }
        self.cluster_events(r);
    }

    /// A Redis connection's slot had an event, or one of the cluster's timers
    /// fired: take what happened from both connections and act on it.
    pub(super) fn cluster_events(&mut self, r: &mut Reactor<Slot>) {
        loop {
            let Some(c) = self.cluster.as_mut() else {
                return;
            };
            if let Some(e) = c.main.next_event() {
                self.main_event(r, e);
            } else if let Some(e) = c.stream.next_event() {
                self.stream_event(r, e);
            } else {
                let c = self.cluster.as_mut().expect("checked above");
                return c.read_on(r);
            }
        }
    }

    pub(super) fn cluster_timer(&mut self, r: &mut Reactor<Slot>, id: usize) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        match id {
            MAIN_TIMER => drop(c.main.timer(r, id)),
            STREAM_TIMER => drop(c.stream.timer(r, id)),
            TICK_TIMER => {
                r.set_timer(TICK_TIMER, r.now() + RENEW);
                if c.main.is_up() && c.synced {
                    c.send_tick(r);
                }
            }
            JOIN_TIMER => self.first_line_timer(r),
            _ => {}
        }
        self.cluster_events(r);
    }

    fn main_event(&mut self, r: &mut Reactor<Slot>, event: Event) {
        let c = self.cluster.as_mut().expect("in a cluster");
        match event {
            Event::Up => {
                c.synced = false;
                c.send_snapshot(r);
            }
            Event::Down(why) => {
                c.synced = false;
                c.snapshot_asked = false;
                self.diverge(r);
                let c = self.cluster.as_mut().expect("in a cluster");
                for index in std::mem::take(&mut c.queued) {
                    if let Some(ip) = r.socket(index).map(|s| s.addr().ip()) {
                        self.admit_locally(r, index, ip);
                    }
                }
                let c = self.cluster.as_mut().expect("in a cluster");
                warn!(
                    "cluster: redis unreachable ({why}); serving {} servants from this manager's copy, other managers' frozen",
                    c.local.len()
                );
            }
            Event::Reply(id, reply) => {
                let Some(wait) = c.waits.remove(&id) else {
                    return;
                };
                self.main_reply(r, wait, reply.ok());
            }
        }
    }

    fn main_reply(&mut self, r: &mut Reactor<Slot>, wait: Wait, reply: Option<Reply>) {
        match wait {
            Wait::Join(tag) => self.join_reply(r, tag, reply),
            Wait::Resume(index, offset) => self.resume_reply(r, index, offset, reply),
            Wait::Leave(offset) => {
                if !matches!(reply, Some(Reply::Integer(_))) {
                    // Not removed there, as far as this manager can tell: it
                    // leaves here now, and the next snapshot mends the rest.
                    self.left_here(r, offset);
                    self.diverge(r);
                }
            }
            Wait::Snapshot => {
                self.cluster.as_mut().expect("in a cluster").snapshot_asked = false;
                match reply {
                    Some(Reply::Array(Some(items))) => self.apply_snapshot(r, &items),
                    other => self.snapshot_failed(other),
                }
            }
            Wait::Relays(w) => self.relay_reply(w, reply),
            Wait::MembersHash(ours) => self.members_hash_reply(ours, reply),
            Wait::Name(claim) => self.name_reply(r, claim, reply),
            Wait::Other => {
                if let Some(e) = reply.as_ref().and_then(Reply::error_text) {
                    warn!("cluster: redis refused a script: {e}");
                }
            }
        }
    }

    fn snapshot_failed(&mut self, reply: Option<Reply>) {
        if let Some(e) = reply.as_ref().and_then(Reply::error_text) {
            warn!("cluster: redis refused the snapshot: {e}");
        } else if reply.is_some() {
            self.cluster
                .as_mut()
                .expect("in a cluster")
                .garbage("a snapshot of another shape");
        }
    }
}

/// A random u64 from the kernel, never zero.
pub(super) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most the eight bytes it is given.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    let v = u64::from_ne_bytes(b);
    if n == 8 && v != 0 {
        v
    } else {
        // No entropy (an old kernel): the time and pid still differ per run.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        (t ^ (u64::from(std::process::id()) << 32)) | 1
    }
}

fn hex(v: u64) -> String {
    format!("{v:016x}")
}

/// A resume token: 32 lowercase hex digits from the kernel.
fn token() -> String {
    format!("{}{}", hex(random_u64()), hex(random_u64()))
}
