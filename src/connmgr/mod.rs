//! The connection manager: the article's manager form, `p2p(i)` control array and
//! `pDoc`, on the shared reactor.
//!
//! Servants connect; each gets the next port (`iPortMax`), an entry in the peer
//! document at its slot's offset, and, on `needs peer list`, the document with
//! `me` = TRUE on its own entry. When a servant's socket closes (or it goes silent
//! past the idle timeout) it leaves the document, and everyone who has asked for
//! the list gets the news pushed (`push.rs`). Every change is a version: a servant
//! that says which one it has is answered with what changed since (`versions.rs`).
//!
//! Where it differs from the article, and why:
//! - Requests are framed ([`crate::wire::request`]); VB needed exactly one
//!   `GetData` per request.
//! - The asker's entry is found by offset, not by pasting `Index` into XPath.
//! - Ports wrap past 65535 to the first port and skip ports still held, instead of
//!   overflowing VB's `Integer`.
//! - The critical section goes: one thread owns everything.
//!
//! The article's last section, servants behind port-blocking routers, is built
//! too: complaints and the verdict in `verdict.rs`, the chosen relay in `relay.rs`
//! (`docs/RELAY.md`).

mod admit;
mod cluster;
pub mod config;
mod help;
mod members;
mod membership;
mod names;
mod ports;
mod private;
mod probe;
mod push;
mod relay;
mod reload;
mod verdict;
mod versions;

use std::io;
use std::net::SocketAddr;

use log::{debug, info, warn};

pub use config::{Config, Overrides, RelayConfig};
pub use help::HELP;

use crate::noise::{Keypair, PublicKey};
use crate::reactor::{Handler, Index, Options, Reactor, Request};
use crate::wire::request::{Line, RequestReader, TooLong};
use crate::StartError;
use admit::{Refusal, Refusals};
use membership::Membership;

/// Timer id for the coalesced push of the peer list.
const PUSH: usize = 0;
/// Timer id for dial-back deadlines and rechecks of relayed servants.
const RELAY: usize = 1;
/// Timer id for relay probes and their deadlines.
const PROBE: usize = 2;
/// Request lines other than `needs peer list` logged at info per connection; the rest at debug.
const LOGGED_LINES: u32 = 5;

/// What each slot of the manager's control array (`p2p(i)`) holds.
#[derive(Debug)]
enum Slot {
    /// `p2p(0)`: listening for servants.
    Listener,
    /// `p2p(i)`: a connected servant.
    Servant(Member),
    /// A dial-back to a servant's listening port (VB had no such control).
    Dial(verdict::Dial),
    /// A probe through a relay: one line written to its listening port.
    Probe(probe::Shot),
    /// A private network's connection whose key is not proven yet (`private.rs`).
    Handshake,
    /// One of the manager's connections to the cluster's Redis (`cluster/`).
    Redis(cluster::Link),
}

/// A Redis client marks its slot with a copy of the value it was given, and only
/// ever a [`Slot::Redis`]; nothing else in the control array is ever copied.
impl Clone for Slot {
    fn clone(&self) -> Slot {
        match self {
            Slot::Redis(link) => Slot::Redis(*link),
            _ => unreachable!("only a Redis connection's mark is cloned"),
        }
    }
}

/// A connected servant's connection: whether it takes pushes, which version of
/// the list it last got, and whether it can be reached. Who it is (address, port,
/// name, entry) is its seat in the [`Membership`].
#[derive(Debug)]
struct Member {
    reach: verdict::Reach,
    /// It has sent `needs peer list` at least once, so it gets pushes.
    subscribed: bool,
    /// Its last request said which version it has: it is sent deltas.
    versioned: bool,
    /// The document version it was last sent, answered or pushed: a push round
    /// skips it while that is still the current one.
    seen: u64,
    /// A push was skipped because its previous output was still unsent.
    push_owed: bool,
    requests: RequestReader,
    other_lines: u32,
    /// When it was last moved off a port it could not listen on (`ports.rs`).
    moved: Option<std::time::Instant>,
    /// Probes through its relay (`probe.rs`).
    probes: probe::PullerProbes,
    /// Its offset in the document when a cluster gave it one; 0 (the listener's,
    /// never a servant's): its slot.
    offset: Index,
    /// In a cluster, it waits for Redis to give it an offset and a port; what it
    /// sends meanwhile is kept in `held` and answered once it has them.
    pending: bool,
    held: Vec<u8>,
    /// In a cluster, its `name` request waits for Redis's claim; what it sends
    /// meanwhile is kept in `held` too (`cluster/names.rs`).
    naming: bool,
    /// In a cluster, its first line has not come yet: it may be `resume`.
    undecided: bool,
    /// In a cluster, what it may resume its entry with on another manager, and
    /// whether it has been told (`token OFFSET TOKEN`).
    token: Option<Box<str>>,
    token_sent: bool,
    /// Its entry is another manager's now (it resumed there), or someone
    /// else's: its close is no leave.
    handed_over: bool,
}

impl Member {
    fn new() -> Member {
        Member {
            reach: verdict::Reach::default(),
            subscribed: false,
            versioned: false,
            seen: 0,
            push_owed: false,
            requests: RequestReader::default(),
            other_lines: 0,
            moved: None,
            probes: probe::PullerProbes::default(),
            offset: 0,
            pending: false,
            held: Vec::new(),
            naming: false,
            undecided: false,
            token: None,
            token_sent: false,
            handed_over: false,
        }
    }

    /// Its offset in the document, `index` being its slot.
    fn offset(&self, index: Index) -> Index {
        match self.offset {
            0 => index,
            o => o,
        }
    }
}

/// The manager: its settings and its parts, each with its own file.
struct Manager {
    config: Config,
    /// Who is a member, and the peer document that lists them (`membership.rs`).
    members: Membership,
    /// Complaints, dial-backs and relays (`verdict.rs`, `relay.rs`).
    verdicts: verdict::Verdicts,
    /// The schedule of pushes (`push.rs`).
    pushes: push::Pushes,
    /// Versioned answers rendered for the current version (`versions.rs`).
    answers: versions::Answers,
    /// Refused connections, for the log (`admit.rs`).
    refusals: Refusals,
    /// Refused names, for the log (`names.rs`).
    name_refusals: admit::Throttle,
    /// Ignored `cannot listen` lines, for the log (`ports.rs`).
    listen_refusals: admit::Throttle,
    /// Relay probes in flight and relays that lost them (`probe.rs`).
    probes: probe::Probes,
    /// A private network's refusals (`private.rs`).
    gate: private::Gate,
    /// The membership shared with other managers through Redis (`cluster/`).
    cluster: Option<cluster::Cluster>,
}

impl Manager {
    fn new(config: Config) -> Self {
        let mut members = Membership::new(config.first_port);
        members.set_ipv6_prefix(config.ipv6_prefix);
        let cluster = (config.cluster.as_deref())
            .and_then(|url| crate::redis::RedisUrl::parse(url).ok())
            .map(|url| cluster::Cluster::new(url, &config.cluster_prefix, config.first_port));
        Manager {
            cluster,
            members,
            config,
            verdicts: verdict::Verdicts::default(),
            pushes: push::Pushes::new(),
            answers: versions::Answers::default(),
            refusals: Refusals::default(),
            name_refusals: admit::Throttle::default(),
            listen_refusals: admit::Throttle::default(),
            probes: probe::Probes::default(),
            gate: private::Gate::default(),
        }
    }

    /// The list changed (its version with it): everyone who asked for it is
    /// pushed the news.
    fn list_changed(&mut self, r: &mut Reactor<Slot>) {
        self.pushes.changed(r, self.config.push_interval);
    }
}

impl Handler for Manager {
    type Data = Slot;

    /// VB: `p2p_ConnectionRequest(Index, requestID)`: take the lowest free slot,
    /// hand out the next port, `AddPeer ip, port, offset`.
    fn connection_request(
        &mut self,
        r: &mut Reactor<Self::Data>,
        _listener: Index,
        request: Request,
    ) {
        let max = self.config.max_servants;
        let ip = request.remote().ip();
        let per_address = self.config.max_per_address;
        let refused = if self.members.count() >= max {
            Some(Refusal::Full(max))
        } else if self.members.at_address(ip) >= per_address {
            Some(Refusal::PerAddress(per_address))
        } else {
            None
        };
        match refused {
            Some(why) if self.config.private.is_some() => {
                return self.refusals.drop_quietly(r, request, why)
            }
            Some(why) => return self.refusals.refuse(r, request, why),
            None => {}
        }
        if self.config.private.is_some() {
            return self.private_request(r, request);
        }
        if self.cluster.is_some() {
            return match r.accept(request, Slot::Servant(Member::new())) {
                Ok(index) => self.cluster_join(r, index),
                Err(e) => warn!("cannot accept a servant from {ip}: {e}"),
            };
        }
        let Some(port) = self.members.next_port() else {
            return self.refusals.refuse(r, request, Refusal::NoPort);
        };
        let index = match r.accept(request, Slot::Servant(Member::new())) {
            Ok(i) => i,
            Err(e) => return warn!("cannot accept a servant from {ip}: {e}"),
        };
        self.members.join(index, ip, port);
        self.log_join(index);
        self.list_changed(r);
    }

    /// VB: `p2p_DataArrival(Index, bytesTotal)`: answer `needs peer list`, count
    /// `cannot reach` complaints, list names, log the rest.
    fn data_arrival(&mut self, r: &mut Reactor<Self::Data>, index: Index, data: &[u8]) {
        let now = r.now();
        if let Some(Slot::Redis(link)) = r.data(index) {
            let link = *link;
            return self.redis_data(r, link, index, data);
        }
        let Some(Slot::Servant(s)) = r.data_mut(index) else {
            return;
        };
        if s.pending || s.naming {
            // Answered, in order, once Redis has given it an offset or answered
            // its name; a flood meanwhile is cut.
            s.held.extend_from_slice(data);
            if s.held.len() > 4 * self.config.max_line {
                r.abort(index);
            } else if s.pending && s.undecided {
                self.first_line(r, index);
            }
            return;
        }
        let offset = s.offset(index);
        let was_subscribed = s.subscribed;
        // The framer leaves the slot while it runs, so answering can borrow the reactor.
        let mut requests = std::mem::take(&mut s.requests);
        let mut subscribe = false;
        let mut lines = s.other_lines;
        let outcome = requests.feed_until(data, self.config.max_line, |line| {
            match line {
                Line::NeedsPeerList => {
                    subscribe = true;
                    r.touch(index); // only whole requests keep a servant, not any byte
                    let doc = self.members.doc();
                    self.answers
                        .needs_peer_list(r, doc, index, offset, now, None);
                }
                Line::NeedsPeerListSince(since) => {
                    subscribe = true;
                    r.touch(index);
                    self.send_token(r, index, offset);
                    let doc = self.members.doc();
                    self.answers
                        .needs_peer_list(r, doc, index, offset, now, Some(since));
                }
                Line::CannotReach(peer) => {
                    r.touch(index);
                    self.cannot_reach(r, index, peer)
                }
                Line::CanRelay => {
                    r.touch(index);
                    if let Some(Slot::Servant(s)) = r.data_mut(index) {
                        s.reach.can_relay = true;
                    }
                    self.cluster_can_relay(r, index);
                }
                Line::Name(name) => {
                    r.touch(index);
                    if self.name_request(r, index, name) {
                        return false; // the rest waits for Redis's answer
                    }
                }
                Line::Probed(text) => {
                    r.touch(index);
                    self.probed(r, index, text);
                }
                Line::Tampered(relay) => {
                    r.touch(index);
                    self.tampered(r, index, relay);
                }
                Line::CannotListen(port) => {
                    r.touch(index);
                    self.cannot_listen(r, index, port);
                }
                Line::Resume(..) => {
                    // Only a first line resumes (`cluster/resume.rs`): this
                    // connection is the member it already is.
                    r.send(index, b"resume refused\r\n");
                }
                Line::Other(text) => {
                    lines += 1;
                    log_line(index, lines, text);
                }
            }
            true
        });
        let Some(Slot::Servant(s)) = r.data_mut(index) else {
            return;
        };
        s.requests = requests;
        s.other_lines = lines;
        s.subscribed |= subscribe;
        if subscribe && !was_subscribed && self.verdicts.seeking > 0 {
            self.assign(r); // a new candidate relay for whoever has none
        }
        if let Err(TooLong(n)) = outcome {
            let addr = r.socket(index).map(|s| s.addr());
            warn!(
                "offset {index} ({}): line of {n} bytes exceeds the limit of {}; closing",
                addr.map_or_else(String::new, |a| a.to_string()),
                self.config.max_line
            );
            // Now, not after queued output drains: nothing more is read from it.
            r.abort(index);
        }
    }

    /// VB: `p2p_Close(Index)`: `RemovePeerByOffset`, and tell the others.
    fn close(&mut self, r: &mut Reactor<Self::Data>, index: Index, data: Self::Data) {
        let mut s = match data {
            Slot::Servant(s) => s,
            Slot::Dial(d) => return self.dial_closed(r, index, d),
            Slot::Probe(_) => return self.probe_closed(index),
            Slot::Redis(link) => return self.redis_closed(r, link, index),
            Slot::Listener | Slot::Handshake => return,
        };
        if s.pending || s.handed_over {
            // Pending: its join's reply finds it gone and takes the entry back.
            // Handed over: the entry lives on, served elsewhere.
            return;
        }
        let offset = s.offset(index);
        if let Some(tail) = s.requests.take_tail() {
            log_line(index, s.other_lines + 1, &tail);
        }
        if s.other_lines > LOGGED_LINES {
            info!(
                "offset {index} sent {} lines that were not requests",
                s.other_lines
            );
        }
        if self.cluster_left(r, offset) {
            // It leaves when Redis's change comes back, at the cluster's version.
        } else if let Some(gone) = self.members.leave(offset) {
            info!(
                "left: offset {offset}, port {} ({})",
                gone.port,
                count(self.members.count())
            );
            self.list_changed(r);
        }
        self.forget_reach(r, index, &mut s);
        if s.probes.probing.take().is_some() {
            self.stop_probing(r, index);
        }
        self.relay_left(r, offset, s.reach.relay);
    }

    /// A private network's servant named its key: members only (`private.rs`).
    fn admit_key(&mut self, r: &mut Reactor<Slot>, index: Index, key: &PublicKey) -> bool {
        self.private_admit(r, index, key)
    }

    /// A private network's servant proved its key: now it joins (`private.rs`).
    fn authenticated(&mut self, r: &mut Reactor<Slot>, index: Index) {
        self.private_join(r, index);
    }

    /// VB: `Winsock_Connect`: a dial-back got through.
    fn connect(&mut self, r: &mut Reactor<Self::Data>, index: Index) {
        match r.data(index) {
            Some(Slot::Dial(_)) => self.dial_connect(r, index),
            Some(Slot::Probe(_)) => self.probe_connect(r, index),
            Some(Slot::Redis(link)) => {
                let link = *link;
                self.redis_connect(r, link, index);
            }
            _ => {}
        }
    }

    /// VB: `Winsock_Error`: a dial-back failed; servants' errors end in `close`.
    fn error(&mut self, r: &mut Reactor<Self::Data>, index: Index, err: &io::Error) {
        match r.data(index) {
            Some(Slot::Dial(_)) => self.dial_error(r, index, err),
            Some(Slot::Redis(link)) => {
                let link = *link;
                self.redis_error(link, index, err);
            }
            _ => {}
        }
    }

    /// VB: `p2p_SendComplete(Index)`: the push that [`push::Pushes::push`] owed a
    /// backlogged servant goes out now.
    fn send_complete(&mut self, r: &mut Reactor<Self::Data>, index: Index) {
        let Some(Slot::Servant(s)) = r.data_mut(index) else {
            return;
        };
        if std::mem::take(&mut s.push_owed) {
            self.answers.send_update(r, self.members.doc(), index);
        }
    }

    fn timer(&mut self, r: &mut Reactor<Self::Data>, id: usize) {
        match id {
            PUSH => {
                let (doc, interval) = (self.members.doc(), self.config.push_interval);
                self.pushes.push(r, doc, &mut self.answers, interval);
            }
            RELAY => self.relay_timer(r),
            PROBE => self.probe_timer(r),
            id => self.cluster_timer(r, id),
        }
    }

    /// SIGHUP: read the config file again (`reload.rs`).
    fn reload(&mut self, r: &mut Reactor<Self::Data>) {
        self.config.reload(r, self.members.count());
        self.members.set_ipv6_prefix(self.config.ipv6_prefix);
        self.members_reloaded(r);
    }
}

/// `1 servant`, `2 servants`.
fn count(servants: usize) -> String {
    match servants {
        1 => "1 servant".to_string(),
        n => format!("{n} servants"),
    }
}

/// VB: `MsgBox Index & " sent: " & a & " to the connection manager"`. The text is
/// a client's: escaped ([`crate::text`]) so that it cannot drive a terminal.
fn log_line(index: Index, count: u32, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    let shown = crate::xml::clip(&text, 200);
    let shown = crate::text::escape(&shown);
    if count <= LOGGED_LINES {
        info!("{index} sent: {shown} to the connection manager");
    } else {
        debug!("{index} sent: {shown} to the connection manager");
    }
}

/// Runs the manager until SIGINT or SIGTERM.
pub fn run(config: Config) -> Result<(), StartError> {
    versions::return_document_copies();
    let fd_limit = crate::cli::raise_fd_limit();
    if config.max_servants as u64 + 16 > fd_limit {
        warn!(
            "--max-servants {} is above the open-file limit ({fd_limit}); accepts will pause when it runs out",
            config.max_servants
        );
    }
    let options = Options {
        idle_timeout: (!config.idle_timeout.is_zero()).then_some(config.idle_timeout),
        // A servant is alive while it asks (the article's heartbeat); a byte now
        // and then is not a request, and must not keep a slot forever.
        touch_only: true,
        ..Options::default()
    };
    let mut r = Reactor::new(options)
        .map_err(|e| StartError(format!("cannot start the event loop: {e}")))?;
    if let Some(p) = &config.private {
        r.set_identity(Keypair::load(&p.key).map_err(StartError)?);
        info!(
            "private network: {} members in {}; this manager's key is {}",
            p.members.len(),
            p.members_file.display(),
            r.identity().map(ToString::to_string).unwrap_or_default()
        );
    }
    let listener = listen(&mut r, &config)?;
    let addr = r
        .local_addr(listener)
        .map_err(|e| StartError(e.to_string()))?;
    r.catch_signals()
        .map_err(|e| StartError(format!("cannot catch signals: {e}")))?;
    // The file's <loglevel>, unless --log-level or RUST_LOG said otherwise.
    let _ = crate::logfilter::set_from_file(config.log_level.as_ref());
    crate::announce!("listening on {addr}");
    crate::notify::ready();
    if config.cluster.is_some() {
        // Versions are this run's own until it is in step with Redis, then the
        // cluster's (docs/CLUSTER.md).
        crate::wire::version::set_epoch(cluster::random_u64());
    }
    let mut manager = Manager::new(config);
    if let Some(c) = manager.cluster.as_mut() {
        c.start(&mut r);
    }
    let outcome = r.run(&mut manager);
    crate::notify::stopping();
    outcome.map_err(|e| StartError(format!("event loop failed: {e}")))?;
    info!(
        "shut down with {} connected",
        count(manager.members.count())
    );
    Ok(())
}

/// Binds the listener in slot 0 (VB: `p2p(0).Listen`). With no `--bind`, every
/// interface: `::` where IPv6 exists, else `0.0.0.0`.
fn listen(r: &mut Reactor<Slot>, config: &Config) -> Result<Index, StartError> {
    r.listen(config.bind, config.port, Slot::Listener)
        .map_err(|(addr, e)| bind_error(addr, &e))
}

fn bind_error(addr: SocketAddr, e: &io::Error) -> StartError {
    let hint: String = match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "ports below 1024 need root or CAP_NET_BIND_SERVICE; use --port 8585 \
             (or --port 0 for any free port) and put the same port in the servants' config.xml"
                .into()
        }
        io::ErrorKind::AddrInUse => {
            "another program is using that port: stop it, or choose another with --port".into()
        }
        io::ErrorKind::AddrNotAvailable => "that address is not on this host: check --bind".into(),
        _ => "check --bind and --port".into(),
    };
    StartError(format!("cannot listen on {addr}: {e}; {hint}"))
}
