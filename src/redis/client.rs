//! One connection to a Redis server on the daemon's reactor.
//!
//! The daemon owns the [`Reactor`] and its [`crate::reactor::Handler`]; a
//! [`Client`] owns one slot in it, marked with a value of the daemon's slot data
//! (`mark`) so the handler knows whose events they are, and one timer id. The
//! handler passes that slot's `connect`, `data_arrival`, `error` and `close`, and
//! that timer, to the client, then takes what happened from
//! [`Client::next_event`]: the link coming up, its loss, and replies.
//!
//! Commands are pipelined: each gets a [`RequestId`] at once and goes out at once
//! (queued while the first connection is being made); replies come back in the
//! order sent, which is how they are matched. On connecting the client sends
//! `AUTH` and `SELECT` ahead of anything queued. A lost connection is reported
//! once ([`Event::Down`]), every command in flight fails with [`Lost`], and the
//! client reconnects with a doubling back-off; until it is up again, new commands
//! fail at once rather than pile up. A server that stops answering for
//! [`Options::reply_timeout`] counts as lost. Nothing blocks: a name is resolved
//! by [`crate::resolve`] on the client's timer, never by `getaddrinfo`.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info};

use super::resp::{write_array_header, write_bulk, write_command, Int, Limits, Reader, Reply};
use super::script::Script;
use super::url::{RedisUrl, Target};
use crate::reactor::{Index, Reactor};
use crate::resolve::{self, Batch};

/// A command's number, unique per client, in the order the commands were given.
pub type RequestId = u64;

/// How often a name lookup in flight is looked at (it has no descriptor watch of
/// its own, to need nothing from the daemon but a timer id).
const RESOLVE_POLL: Duration = Duration::from_millis(20);

/// The client's timings and the reply reader's caps.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub limits: Limits,
    /// The longest a connect may take.
    pub connect_timeout: Duration,
    /// The longest the oldest command may wait for its reply before the
    /// connection counts as lost (a blocking read: its own block time more).
    pub reply_timeout: Duration,
    /// The first wait before reconnecting; it doubles on each failure.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// What happened, for the daemon to take from [`Client::next_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Connected, logged in and on the right database.
    Up,
    /// The connection is lost (or could not be made), and why. Reported once per
    /// loss, however many reconnects fail after it.
    Down(String),
    /// A command's reply; an error reply (`-ERR ...`) is `Ok(Reply::Error)`.
    Reply(RequestId, Result<Reply, Lost>),
}

/// The connection was lost before the reply came (the command may or may not
/// have run), or was down when the command was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost;

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection to Redis was lost before the reply")
    }
}

impl std::error::Error for Lost {}

/// Who a reply is for.
#[derive(Debug)]
enum Waiter {
    /// The client's own `AUTH` or `SELECT`.
    Login(&'static str),
    User(RequestId),
    /// An `EVALSHA`: on `NOSCRIPT` sent again as `EVAL` with the encoded
    /// `numkeys keys args` in `rest`, `items` of them.
    Script {
        id: RequestId,
        script: Script,
        rest: Vec<u8>,
        items: usize,
    },
}

#[derive(Debug)]
struct Pending {
    waiter: Waiter,
    /// How much longer than the reply timeout it may take (a blocking read);
    /// `None`: no limit (`BLOCK 0`).
    extra: Option<Duration>,
}

/// The connection's life.
#[derive(Debug)]
enum Link {
    /// Not connected; the next attempt is at the time given.
    Idle(Instant),
    /// Looking up the host name.
    Resolving(Batch, u16),
    /// A connect in progress in the slot, until the deadline.
    Connecting(Index, Instant),
    /// Connected: commands go out at once. `login` replies still awaited.
    Up { slot: Index, login: usize },
}

/// One Redis connection; see the module's documentation.
pub struct Client<T> {
    url: RedisUrl,
    options: Options,
    mark: T,
    timer: usize,
    settings: resolve::Settings,
    link: Link,
    reader: Reader,
    /// Commands sent or queued, oldest first: replies come in this order.
    pending: VecDeque<Pending>,
    /// When the oldest command was sent (or the last reply came): its deadline
    /// counts from here.
    oldest_since: Instant,
    /// Commands given before the first connection was up, sent when it is.
    unsent: Vec<u8>,
    /// The buffer each command is encoded in, reused.
    cmd: Vec<u8>,
    next_id: RequestId,
    events: VecDeque<Event>,
    backoff: Duration,
    /// A loss has been reported and no connection has come up since.
    down: bool,
    /// The reactor timer is set for this time.
    timer_at: Option<Instant>,
    last_error: Option<String>,
}

impl<T: Clone> Client<T> {
    /// A client for `url`, whose slot carries `mark` and which uses reactor timer
    /// `timer`. Nothing happens until [`Client::start`].
    pub fn new(url: RedisUrl, options: Options, mark: T, timer: usize) -> Client<T> {
        Client {
            url,
            options,
            mark,
            timer,
            settings: resolve::Settings::system(),
            link: Link::Idle(Instant::now()),
            reader: Reader::new(options.limits),
            pending: VecDeque::new(),
            oldest_since: Instant::now(),
            unsent: Vec::new(),
            cmd: Vec::new(),
            next_id: 0,
            events: VecDeque::new(),
            backoff: options.backoff_min,
            down: false,
            timer_at: None,
            last_error: None,
        }
    }

    /// Starts connecting.
    pub fn start(&mut self, r: &mut Reactor<T>) {
        self.connect_now(r);
    }

    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// Connected, logged in, and answering.
    pub fn is_up(&self) -> bool {
        matches!(self.link, Link::Up { login: 0, .. })
    }

    /// The slot the client has in the reactor, if any.
    pub fn slot(&self) -> Option<Index> {
        match self.link {
            Link::Connecting(i, _) | Link::Up { slot: i, .. } => Some(i),
            _ => None,
        }
    }

    /// Commands sent or queued whose replies have not come.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The next thing that happened, oldest first.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Sends a command (`["SET", "key", "value"]`); its reply comes as an
    /// [`Event::Reply`] with the id returned.
    pub fn command<A: AsRef<[u8]>>(&mut self, r: &mut Reactor<T>, args: &[A]) -> RequestId {
        self.blocking_command(r, args, Some(Duration::ZERO))
    }

    /// Like [`Client::command`] for a command that blocks the server for up to
    /// `block` (`None`: for ever) before it answers.
    pub(super) fn blocking_command<A: AsRef<[u8]>>(
        &mut self,
        r: &mut Reactor<T>,
        args: &[A],
        block: Option<Duration>,
    ) -> RequestId {
        self.cmd.clear();
        write_command(&mut self.cmd, args);
        self.submit(r, Waiter::User, block)
    }

    /// Runs `script` by its SHA-1 with `keys` and `args`, falling back to `EVAL`
    /// with its source when the server does not have it cached.
    pub fn evalsha<A: AsRef<[u8]>>(
        &mut self,
        r: &mut Reactor<T>,
        script: &Script,
        keys: &[A],
        args: &[A],
    ) -> RequestId {
        let mut rest = Vec::new();
        write_bulk(&mut rest, Int::new(keys.len() as i64).as_bytes());
        for a in keys.iter().chain(args) {
            write_bulk(&mut rest, a.as_ref());
        }
        let items = 1 + keys.len() + args.len();
        self.cmd.clear();
        write_array_header(&mut self.cmd, 2 + items);
        write_bulk(&mut self.cmd, b"EVALSHA");
        write_bulk(&mut self.cmd, script.sha().as_bytes());
        self.cmd.extend_from_slice(&rest);
        let script = script.clone();
        self.submit(
            r,
            move |id| Waiter::Script {
                id,
                script,
                rest,
                items,
            },
            Some(Duration::ZERO),
        )
    }

    /// Sends (or queues) what is in `cmd`, awaited by `waiter`.
    fn submit(
        &mut self,
        r: &mut Reactor<T>,
        waiter: impl FnOnce(RequestId) -> Waiter,
        extra: Option<Duration>,
    ) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        if self.down {
            self.events.push_back(Event::Reply(id, Err(Lost)));
            return id;
        }
        if self.pending.is_empty() {
            self.oldest_since = r.now();
        }
        self.pending.push_back(Pending {
            waiter: waiter(id),
            extra,
        });
        match self.link {
            Link::Up { slot, .. } => {
                r.send(slot, &self.cmd);
                self.arm(r);
            }
            _ => self.unsent.extend_from_slice(&self.cmd),
        }
        id
    }

    /// VB: `_Connect`: the client's slot is connected; log in, then send what
    /// was queued.
    pub fn connect(&mut self, r: &mut Reactor<T>, i: Index) {
        if !matches!(self.link, Link::Connecting(slot, _) if slot == i) {
            return;
        }
        r.set_nodelay(i);
        self.cmd.clear();
        let mut login = Vec::new();
        if let Some(password) = &self.url.password {
            match &self.url.user {
                Some(user) => write_command(
                    &mut self.cmd,
                    &[b"AUTH", user.as_bytes(), password.as_bytes()],
                ),
                None => write_command(&mut self.cmd, &[b"AUTH".as_slice(), password.as_bytes()]),
            }
            login.push("AUTH");
        }
        if let Some(db) = self.url.db {
            write_command(
                &mut self.cmd,
                &[b"SELECT".as_slice(), Int::new(db.into()).as_bytes()],
            );
            login.push("SELECT");
        }
        for what in login.iter().rev() {
            self.pending.push_front(Pending {
                waiter: Waiter::Login(what),
                extra: Some(Duration::ZERO),
            });
        }
        self.cmd.append(&mut self.unsent);
        self.link = Link::Up {
            slot: i,
            login: login.len(),
        };
        self.oldest_since = r.now();
        if !self.cmd.is_empty() {
            r.send(i, &self.cmd);
        }
        if login.is_empty() {
            self.came_up();
        }
        self.arm(r);
    }

    fn came_up(&mut self) {
        info!("redis {}: connected", self.url);
        self.backoff = self.options.backoff_min;
        self.down = false;
        self.events.push_back(Event::Up);
    }

    /// VB: `_DataArrival`: replies for the client's slot.
    pub fn data_arrival(&mut self, r: &mut Reactor<T>, i: Index, data: &[u8]) {
        if self.slot() != Some(i) {
            return;
        }
        self.reader.feed(data);
        while let Some(reply) = self.reader.next() {
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => return self.lost(r, e.to_string()),
            };
            let Some(p) = self.pending.pop_front() else {
                return self.lost(r, "a reply to no command".into());
            };
            self.oldest_since = r.now();
            match p.waiter {
                Waiter::Login(what) => {
                    if let Some(e) = reply.error_text() {
                        return self.lost(r, format!("{what} refused: {e}"));
                    }
                    if let Link::Up { login, .. } = &mut self.link {
                        *login -= 1;
                        if *login == 0 {
                            self.came_up();
                        }
                    }
                }
                Waiter::User(id) => self.events.push_back(Event::Reply(id, Ok(reply))),
                Waiter::Script {
                    id,
                    script,
                    rest,
                    items,
                } => {
                    let missing = matches!(&reply, Reply::Error(e) if e.starts_with(b"NOSCRIPT"));
                    if !missing {
                        self.events.push_back(Event::Reply(id, Ok(reply)));
                        continue;
                    }
                    debug!(
                        "redis {}: script {} not cached; sending its source",
                        self.url,
                        script.sha()
                    );
                    self.cmd.clear();
                    write_array_header(&mut self.cmd, 2 + items);
                    write_bulk(&mut self.cmd, b"EVAL");
                    write_bulk(&mut self.cmd, script.source());
                    self.cmd.extend_from_slice(&rest);
                    self.pending.push_back(Pending {
                        waiter: Waiter::User(id),
                        extra: p.extra,
                    });
                    r.send(i, &self.cmd);
                }
            }
        }
    }

    /// VB: `_Error`: why the slot is about to close.
    pub fn error(&mut self, i: Index, err: &io::Error) {
        if self.slot() == Some(i) {
            self.last_error = Some(err.to_string());
        }
    }

    /// VB: `_Close`: the client's slot has gone.
    pub fn close(&mut self, r: &mut Reactor<T>, i: Index) {
        if self.slot() != Some(i) {
            return;
        }
        let why = self
            .last_error
            .take()
            .unwrap_or_else(|| "the server closed the connection".into());
        self.lost(r, why);
    }

    /// The reactor's timer `id` fired; `false` if it is not the client's.
    pub fn timer(&mut self, r: &mut Reactor<T>, id: usize) -> bool {
        if id != self.timer {
            return false;
        }
        self.timer_at = None;
        let now = r.now();
        let overdue = self.overdue(now);
        match &mut self.link {
            Link::Idle(at) if *at <= now => self.connect_now(r),
            Link::Resolving(batch, port) => {
                let port = *port;
                batch.readable(now);
                if batch.deadline().is_some_and(|d| d <= now) {
                    batch.expire(now);
                }
                if batch.is_done() {
                    let found = batch.outcomes().next().and_then(|(_, f)| f.cloned());
                    self.resolved(r, found.unwrap_or_else(|| Err("no answer".into())), port);
                }
            }
            Link::Connecting(_, deadline) if *deadline <= now => {
                let t = self.options.connect_timeout;
                self.lost(r, format!("no connection within {t:?}"));
            }
            Link::Up { .. } if overdue => {
                let t = self.options.reply_timeout;
                self.lost(r, format!("no reply within {t:?}"));
            }
            _ => {}
        }
        self.arm(r);
        true
    }

    /// When the oldest command's reply is due, if any is awaited with a limit.
    fn reply_due(&self) -> Option<Instant> {
        let extra = self.pending.front()?.extra?;
        Some(self.oldest_since + self.options.reply_timeout + extra)
    }

    fn overdue(&self, now: Instant) -> bool {
        self.reply_due().is_some_and(|due| due <= now)
    }

    /// Sets the timer for the next thing due, unless it is set for earlier: then
    /// it fires, finds nothing due, and is set again.
    fn arm(&mut self, r: &mut Reactor<T>) {
        let want = match &self.link {
            Link::Idle(at) => Some(*at),
            Link::Resolving(..) => Some(r.now() + RESOLVE_POLL),
            Link::Connecting(_, deadline) => Some(*deadline),
            Link::Up { .. } => self.reply_due(),
        };
        let Some(want) = want else {
            return;
        };
        if self.timer_at.is_some_and(|at| at <= want) {
            return;
        }
        self.timer_at = Some(want);
        r.set_timer(self.timer, want);
    }

    /// Starts a connection attempt: to the Unix socket, the IP literal, or the
    /// host name once it is looked up.
    fn connect_now(&mut self, r: &mut Reactor<T>) {
        self.reader.reset();
        self.last_error = None;
        let (host, port) = match &self.url.target {
            Target::Unix(path) => {
                let started = r.connect_unix(path, self.mark.clone());
                return self.connecting(r, started);
            }
            Target::Tcp { host, port } => (host.clone(), *port),
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.resolved(r, Ok(vec![ip]), port);
        }
        if let Some(addr) = resolve::scoped_literal(&host, port) {
            let started = r.connect(addr, None, self.mark.clone());
            return self.connecting(r, started);
        }
        match Batch::start(&self.settings, &[host], r.now()) {
            Err(e) => self.lost(r, format!("cannot look up the host: {e}")),
            Ok(batch) if batch.is_done() => {
                let found = batch.outcomes().next().and_then(|(_, f)| f.cloned());
                self.resolved(r, found.unwrap_or_else(|| Err("no answer".into())), port);
            }
            Ok(batch) => {
                self.link = Link::Resolving(batch, port);
                self.arm(r);
            }
        }
    }

    fn resolved(&mut self, r: &mut Reactor<T>, found: resolve::Found, port: u16) {
        match found {
            Ok(ips) if !ips.is_empty() => {
                let started = r.connect(SocketAddr::new(ips[0], port), None, self.mark.clone());
                self.connecting(r, started);
            }
            Ok(_) => self.lost(r, "the host name has no address".into()),
            Err(e) => self.lost(r, format!("cannot look up the host: {e}")),
        }
    }

    fn connecting(&mut self, r: &mut Reactor<T>, started: io::Result<Index>) {
        match started {
            Ok(i) => {
                self.link = Link::Connecting(i, r.now() + self.options.connect_timeout);
                self.arm(r);
            }
            Err(e) => self.lost(r, e.to_string()),
        }
    }

    /// The connection is gone or could not be made: fail what was awaited,
    /// report it (once), and try again after the back-off.
    fn lost(&mut self, r: &mut Reactor<T>, why: String) {
        if let Some(i) = self.slot() {
            // Its close, after this batch, is then no longer the client's.
            r.abort(i);
        }
        let retry = r.now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.options.backoff_max);
        self.link = Link::Idle(retry);
        self.unsent.clear();
        self.reader.reset();
        for p in self.pending.drain(..) {
            match p.waiter {
                Waiter::Login(_) => {}
                Waiter::User(id) | Waiter::Script { id, .. } => {
                    self.events.push_back(Event::Reply(id, Err(Lost)));
                }
            }
        }
        if self.down {
            debug!("redis {}: still down: {why}", self.url);
        } else {
            info!("redis {}: connection lost: {why}", self.url);
            self.down = true;
            self.events.push_back(Event::Down(why));
        }
        self.arm(r);
    }
}

impl<T> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("link", &self.link)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}
