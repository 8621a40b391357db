//! The servant: the article's servant form on the shared reactor. It finds its peers
//! through the connection manager, listens on the port the manager gives it, sends
//! each typed line to every peer (itself included), and shows what peers send.
//!
//! | VB6 servant                              | here                                   |
//! |------------------------------------------|----------------------------------------|
//! | `Winsock1` (link to the manager)         | [`Slot::Manager`], [`Servant::winsock1_data_arrival`] |
//! | `pDoc1`, `userList1`                     | [`Servant::peers`], `/peers`           |
//! | `servants1(0)` (listener)                | [`Slot::Listener`], re-listened only when `me`'s port changes |
//! | `servants1(i)` (peers sending to us)     | [`Slot::Incoming`], [`Servant::servants1_connection_request`], [`Servant::servants1_data_arrival`] |
//! | `send1` (one control, reused per peer)   | [`Slot::Outgoing`], one slot per peer, all at once |
//! | `txtSend1_KeyPress`                      | [`Servant::txt_send1_key_press`] (stdin, same loop) |
//! | `txtChat1`                               | stdout ([`console`])                   |
//! | `pConfig` (`config.xml`)                 | [`config`], [`bans`]                   |
//!
//! Where it differs from the article, and why:
//! - The article's `While send1.State = 6: DoEvents: Wend` sent to one peer at a time
//!   through one control. Here every peer gets its own outgoing slot at once, so an
//!   unreachable peer costs a failed connect, never a stall for the others.
//! - Messages are framed by newlines ([`chat`]); VB relied on one `GetData` per send.
//! - The manager link asks again every poll interval and takes pushed lists; VB
//!   assumed one `GetData` per document. Documents are framed by `</peers>`.
//! - Bans compare parsed addresses; names are resolved off the loop ([`bans`]).
//! - When the manager goes away the servant keeps its last list and reconnects with
//!   backoff; VB's servant simply stopped hearing of new peers.

pub mod bans;
pub mod chat;
pub mod config;
pub mod console;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

pub use config::{Config, Overrides};

use crate::reactor::{Handler, Index, Options, Reactor, Request, State};
use crate::wire::peerdoc::{self, Peer};
use bans::Bans;
use chat::ChatReader;
use console::Console;

/// What the manager is asked, every poll interval.
const NEEDS_PEER_LIST: &[u8] = b"needs peer list\n";
/// Timer ids.
const POLL: usize = 0;
const RECONNECT: usize = 1;
const QUIT_DEADLINE: usize = 2;
/// Reconnect delays to the manager: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long leaving waits for outgoing sends before giving up on them.
const QUIT_GRACE: Duration = Duration::from_secs(5);
/// A peer that stays unreachable is warned about at most once per this window.
const FAILURE_WARN_EVERY: Duration = Duration::from_secs(10);
/// Lines typed before the first peer list are held up to this many bytes.
const MAX_HELD: usize = 1024 * 1024;
/// Incoming chat connections silent this long are closed (slow or stuck peers).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes from the manager without a complete document before the link is dropped.
const MAX_DOCUMENT: usize = 16 * 1024 * 1024;
/// Peers named in the `peers:` log line before it says "...".
const LOGGED_PEERS: usize = 16;

/// What each slot of the servant's control array is.
#[derive(Debug)]
pub enum Slot {
    /// `servants1(0)`: listening for peers on the port the manager assigned.
    Listener,
    /// `Winsock1`: the link to the connection manager.
    Manager,
    /// `servants1(i)`: a peer delivering a batch of chat lines to us.
    Incoming {
        from: SocketAddr,
        reader: ChatReader,
    },
    /// `send1`: one batch on its way to one peer.
    Outgoing {
        to: SocketAddr,
        /// The peer is this servant (its `me` entry).
        to_self: bool,
        /// For a send to ourselves, our end's address once connected: the one our
        /// own listener sees it come from.
        local: Option<SocketAddr>,
        /// The socket took the whole batch.
        delivered: bool,
        error: Option<String>,
    },
}

/// Delivery failures to one peer address (issue 5 reports these to the manager).
#[derive(Debug, Default, Clone)]
pub struct Failures {
    pub count: u64,
    last_warned: Option<Instant>,
    /// Failures since the last warning.
    unwarned: u64,
}

/// How stdin is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    /// Not read (`--headless`, or stdin is `/dev/null`): run until signalled.
    Headless,
    /// A pipe or file: end of input means leave once outgoing sends have drained.
    Pipe,
    /// A terminal: a prompt; Ctrl-D or `/quit` leaves.
    Terminal,
}

/// The servant's state: the manager link, the peer list, the bans, the counts.
pub struct Servant {
    config: Config,
    manager: SocketAddr,
    /// The manager link's slot while it exists.
    link: Option<Index>,
    /// Bytes from the manager not yet framed into a document.
    link_buf: Vec<u8>,
    /// We closed the link on purpose (bind failure, leaving): not an outage.
    link_dropped: bool,
    /// Why the link failed, from `error`, for the log line `close` writes.
    link_error: Option<String>,
    /// The outage has been logged; said again only after the link came back.
    outage_logged: bool,
    backoff: Duration,
    /// `pDoc1` as parsed: the list every line is sent to.
    peers: Vec<Peer>,
    /// The listener's slot and port.
    listener: Option<(Index, u16)>,
    /// No document has arrived on this link yet: the first one is logged even if the
    /// membership is unchanged, so a reconnect shows the network formed again.
    fresh_link: bool,
    /// A list without a `me` entry was reported.
    no_me_logged: bool,
    bans: Bans,
    resolved: Option<Receiver<HashSet<IpAddr>>>,
    refused_logged: HashSet<IpAddr>,
    failures: HashMap<SocketAddr, Failures>,
    input: Input,
    typed: ChatReader,
    /// Chat lines typed in this stdin chunk, sent as one batch.
    batch: Vec<u8>,
    /// Lines typed before there was a list to send them to (or a listener for our
    /// own copy); sent when the first one arrives, so `echo hi | servant` works.
    held: Vec<u8>,
    console: Console,
    /// Outgoing slots still open.
    outgoing: usize,
    /// Local addresses of our sends to ourselves that connected but whose incoming
    /// side has not closed yet: leaving waits for them so our own transcript is whole.
    self_pending: Vec<SocketAddr>,
    quitting: bool,
}

impl Servant {
    fn new(config: Config, manager: SocketAddr, bans: Bans, input: Input) -> Self {
        Servant {
            config,
            manager,
            link: None,
            link_buf: Vec::new(),
            link_dropped: false,
            link_error: None,
            outage_logged: false,
            backoff: BACKOFF_FIRST,
            peers: Vec::new(),
            listener: None,
            fresh_link: true,
            no_me_logged: false,
            bans,
            resolved: None,
            refused_logged: HashSet::new(),
            failures: HashMap::new(),
            input,
            typed: ChatReader::default(),
            batch: Vec::new(),
            held: Vec::new(),
            console: Console::new(input == Input::Terminal && console::is_tty(1)),
            outgoing: 0,
            self_pending: Vec::new(),
            quitting: false,
        }
    }

    /// The current peer list (`userList1`), in the manager's order.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// Delivery failures per peer address.
    pub fn failures(&self) -> &HashMap<SocketAddr, Failures> {
        &self.failures
    }

    /// The local address for a connection to `to`: `--bind` when it is of the same
    /// family, so peers and the manager see the address this servant stands for.
    fn bind_for(&self, to: SocketAddr) -> Option<IpAddr> {
        self.config
            .bind
            .filter(|b| !b.is_unspecified() && b.is_ipv4() == to.is_ipv4())
    }

    // ---- Winsock1: the link to the connection manager ----

    /// VB: `Winsock1.Connect connectionmgr, port` at form load; here also after
    /// every outage. The first request is queued at once and goes out on connect.
    fn connect_manager(&mut self, r: &mut Reactor<Slot>) {
        self.link_dropped = false;
        self.fresh_link = true;
        self.link_buf.clear();
        match r.connect(self.manager, self.bind_for(self.manager), Slot::Manager) {
            Ok(i) => {
                debug!("connecting to the connection manager at {}", self.manager);
                self.link = Some(i);
                r.send(i, NEEDS_PEER_LIST);
                r.set_timer(POLL, r.now() + self.config.poll_interval);
            }
            Err(e) => {
                self.manager_lost(r, &format!("cannot connect: {e}"));
            }
        }
    }

    /// The link is gone (or never came up): keep the last list, retry with backoff.
    fn manager_lost(&mut self, r: &mut Reactor<Slot>, why: &str) {
        self.link = None;
        self.link_buf.clear();
        r.cancel_timer(POLL);
        if self.quitting && self.held.is_empty() {
            return;
        }
        if self.link_dropped {
            debug!(
                "manager link closed by us; reconnecting in {:?}",
                self.backoff
            );
        } else if !self.outage_logged {
            self.outage_logged = true;
            warn!(
                "connection manager at {}: {why}; keeping the last list of {} peers and retrying",
                self.manager,
                self.peers.len()
            );
        } else {
            debug!("connection manager at {}: {why}", self.manager);
        }
        r.set_timer(RECONNECT, r.now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// VB: `Winsock1_Connect`.
    fn winsock1_connect(&mut self) {
        if std::mem::take(&mut self.outage_logged) {
            info!("connection manager at {} is back", self.manager);
        } else {
            debug!("connected to the connection manager at {}", self.manager);
        }
    }

    /// The poll timer: ask again (VB had no timer; it asked once).
    fn poll(&mut self, r: &mut Reactor<Slot>) {
        if let Some(i) = self.link {
            // Do not pile requests on a link that is still connecting or backed up.
            if r.socket(i)
                .is_some_and(|s| s.state() == State::Connected && s.unsent() == 0)
            {
                r.send(i, NEEDS_PEER_LIST);
            }
            r.set_timer(POLL, r.now() + self.config.poll_interval);
        }
    }

    /// VB: `Winsock1_DataArrival(bytesTotal)`: `pDoc1.loadXML`, refill `userList1`,
    /// re-listen. Here documents are framed first, since one read may hold part of
    /// one, or several, and the manager also pushes new ones unasked.
    fn winsock1_data_arrival(&mut self, r: &mut Reactor<Slot>, i: Index, data: &[u8]) {
        // The buffer leaves `self` while documents are applied, which needs `&mut self`.
        let mut buf = std::mem::take(&mut self.link_buf);
        buf.extend_from_slice(data);
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            // A line the manager says instead of a document ("max number of servants
            // reached") is logged; blank lines between documents are skipped.
            let start = rest.iter().position(|b| !b.is_ascii_whitespace());
            let Some(start) = start else {
                used = buf.len();
                break;
            };
            if rest[start] != b'<' {
                let Some(nl) = rest[start..].iter().position(|&b| b == b'\n') else {
                    break;
                };
                let line = String::from_utf8_lossy(&rest[start..start + nl]);
                warn!(
                    "connection manager says: {}",
                    crate::xml::clip(line.trim(), 200)
                );
                used += start + nl + 1;
                continue;
            }
            let Some(end) = peerdoc::document_end(rest) else {
                break;
            };
            self.apply_document(r, &rest[..end]);
            used += end;
        }
        buf.drain(..used);
        if buf.len() > MAX_DOCUMENT {
            warn!(
                "connection manager sent {} bytes without a complete peer document; reconnecting",
                buf.len()
            );
            buf.clear();
            self.link_dropped = true;
            r.close(i);
        }
        if self.link == Some(i) {
            self.link_buf = buf;
        }
    }

    fn apply_document(&mut self, r: &mut Reactor<Slot>, doc: &[u8]) {
        let text = String::from_utf8_lossy(doc);
        let peers = match peerdoc::parse(&text) {
            Ok(p) => p,
            Err(e) => {
                return warn!(
                    "ignoring a malformed peer list from the connection manager ({e}); keeping the last one"
                )
            }
        };
        let changed = peers.len() != self.peers.len()
            || peers
                .iter()
                .zip(&self.peers)
                .any(|(a, b)| (a.ip, a.port, a.me) != (b.ip, b.port, b.me));
        self.peers = peers;
        if changed || std::mem::take(&mut self.fresh_link) {
            info!("peers: {}", describe(&self.peers));
        }
        let Some(port) = self.peers.iter().find(|p| p.me).map(|p| p.port) else {
            if !self.no_me_logged {
                self.no_me_logged = true;
                warn!(
                    "the peer list has no entry marked <me>TRUE</me>; not listening until one does"
                );
            }
            return;
        };
        self.no_me_logged = false;
        if self.listener.map(|(_, p)| p) != Some(port) {
            self.servants1_listen(r, port);
        }
        if self.listener.is_some() {
            self.backoff = BACKOFF_FIRST;
            if !self.held.is_empty() {
                debug!(
                    "sending {} bytes held until the peer list came",
                    self.held.len()
                );
                self.batch = std::mem::take(&mut self.held);
                self.send1_broadcast(r);
                self.maybe_leave(r);
            }
        }
    }

    /// VB: `servants1(0).Close: servants1(0).LocalPort = port: servants1(0).Listen`.
    /// If the port cannot be bound, the manager is asked for another by reconnecting
    /// (it hands every new connection the next port), with the usual backoff.
    fn servants1_listen(&mut self, r: &mut Reactor<Slot>, port: u16) {
        if let Some((old, _)) = self.listener.take() {
            r.close(old);
        }
        // Without --bind, `::` (dual-stack): the manager advertises whichever address
        // it saw us come from, IPv4 or IPv6, and peers must reach us there.
        match r.listen(self.config.bind, port, Slot::Listener) {
            Ok(i) => {
                if let Ok(shown) = r.local_addr(i) {
                    info!("listening on {shown}");
                }
                self.listener = Some((i, port));
            }
            Err((addr, e)) => {
                warn!(
                    "cannot listen on {addr}: {e}; asking the connection manager for another port in {} ms",
                    self.backoff.as_millis()
                );
                if let Some(link) = self.link {
                    self.link_dropped = true;
                    r.close(link);
                }
            }
        }
    }

    // ---- servants1: peers sending chat to us ----

    /// VB: `servants1_ConnectionRequest(Index, requestID)`: refuse banned addresses,
    /// else `Accept` into the lowest free slot. VB also matched the peer's reverse
    /// host name; here names are resolved forward instead ([`bans`]), which needs no
    /// lookup per connection. A refused connection is dropped unread.
    fn servants1_connection_request(&mut self, r: &mut Reactor<Slot>, request: Request) {
        let from = request.remote();
        if self.bans.is_banned(from.ip()) {
            if self.refused_logged.insert(from.ip()) {
                info!(
                    "refusing {}: banned (further refusals not logged)",
                    from.ip()
                );
            }
            return;
        }
        let slot = Slot::Incoming {
            from,
            reader: ChatReader::default(),
        };
        if let Err(e) = r.accept(request, slot) {
            warn!("cannot accept a connection from {from}: {e}");
        }
    }

    /// VB: `servants1_DataArrival(Index, bytesTotal)`: `txtChat1.Text & vbCrLf & a`.
    fn servants1_data_arrival(&mut self, r: &mut Reactor<Slot>, i: Index, data: &[u8]) {
        let Some(Slot::Incoming { from, reader }) = r.data_mut(i) else {
            return;
        };
        let (from, console) = (*from, &mut self.console);
        reader.feed(data, |msg, truncated| show(console, from, msg, truncated));
    }

    /// VB: `servants1_Close(Index)` (the article had none): the tail is a message.
    fn servants1_close(&mut self, r: &mut Reactor<Slot>, from: SocketAddr, mut reader: ChatReader) {
        let console = &mut self.console;
        reader.finish(|msg, truncated| show(console, from, msg, truncated));
        if let Some(k) = self.self_pending.iter().position(|&a| a == from) {
            self.self_pending.swap_remove(k);
            self.maybe_leave(r);
        }
    }

    // ---- send1: one batch to every peer ----

    /// VB: the loop in `txtSend1_KeyPress` over `./peers/peer`: `send1.Connect ip, port`
    /// and, in `send1_Connect`, `SendData`. Here each peer gets its own slot at once.
    fn send1_broadcast(&mut self, r: &mut Reactor<Slot>) {
        if self.batch.is_empty() {
            return;
        }
        if self.peers.is_empty() || self.listener.is_none() {
            if self.held.is_empty() {
                info!(
                    "no peer list yet: holding what is typed until the connection manager answers"
                );
            }
            if self.held.len() + self.batch.len() > MAX_HELD {
                self.console.complain(&format!(
                    "not sent: more than {} KiB typed while there is no peer list",
                    MAX_HELD / 1024
                ));
            } else {
                self.held.extend_from_slice(&self.batch);
            }
            self.batch.clear();
            return;
        }
        for k in 0..self.peers.len() {
            let peer = &self.peers[k];
            let to = SocketAddr::new(peer.ip, peer.port);
            let slot = Slot::Outgoing {
                to,
                to_self: peer.me,
                local: None,
                delivered: false,
                error: None,
            };
            match r.connect(to, self.bind_for(to), slot) {
                Ok(i) => {
                    r.send(i, &self.batch);
                    self.outgoing += 1;
                }
                Err(e) => self.peer_failed(r.now(), to, &e.to_string()),
            }
        }
        self.batch.clear();
    }

    /// VB: `send1_Connect`. A send to ourselves is remembered by its local address
    /// so leaving can wait until our own listener has shown it.
    fn send1_connect(&mut self, r: &mut Reactor<Slot>, i: Index) {
        if !matches!(r.data(i), Some(Slot::Outgoing { to_self: true, .. })) {
            return;
        }
        let Ok(local) = r.local_addr(i) else { return };
        let local = SocketAddr::new(crate::reactor::canonical_ip(local.ip()), local.port());
        // Banning our own address hides our own lines too; nothing to wait for then.
        if self.bans.is_banned(local.ip()) {
            return;
        }
        if let Some(Slot::Outgoing { local: l, .. }) = r.data_mut(i) {
            *l = Some(local);
        }
        self.self_pending.push(local);
    }

    /// VB: `send1_SendComplete`: the batch is with the kernel; close.
    fn send1_send_complete(&mut self, r: &mut Reactor<Slot>, i: Index) {
        if let Some(Slot::Outgoing { delivered, .. }) = r.data_mut(i) {
            *delivered = true;
        }
        r.close(i);
    }

    /// VB: `send1_Close` / `send1_Error`: count a peer we could not deliver to.
    fn send1_close(
        &mut self,
        r: &mut Reactor<Slot>,
        to: SocketAddr,
        local: Option<SocketAddr>,
        delivered: bool,
        error: Option<String>,
    ) {
        self.outgoing = self.outgoing.saturating_sub(1);
        if !delivered {
            // Our own listener will never show this one; do not wait for it.
            if let Some(k) = local.and_then(|l| self.self_pending.iter().position(|&a| a == l)) {
                self.self_pending.swap_remove(k);
            }
            let why = error.unwrap_or_else(|| "closed before the message was sent".into());
            self.peer_failed(r.now(), to, &why);
        }
        self.maybe_leave(r);
    }

    fn peer_failed(&mut self, now: Instant, to: SocketAddr, why: &str) {
        let f = self.failures.entry(to).or_default();
        f.count += 1;
        f.unwarned += 1;
        if f.last_warned
            .map_or(true, |t| now.duration_since(t) >= FAILURE_WARN_EVERY)
        {
            warn!(
                "cannot deliver to {to}: {why} ({} failure(s) since the last warning, {} in all)",
                f.unwarned, f.count
            );
            f.last_warned = Some(now);
            f.unwarned = 0;
        }
    }

    // ---- txtSend1: what the user types ----

    /// VB: `txtSend1_KeyPress(KeyAscii)`: Enter sends the line. Here stdin arrives in
    /// chunks; each complete line is chat or a command. Chat lines of one chunk go out
    /// as one batch. An empty chunk is end of input.
    fn txt_send1_key_press(&mut self, r: &mut Reactor<Slot>, data: &[u8]) {
        if self.quitting {
            return;
        }
        let mut lines: Vec<(Vec<u8>, bool)> = Vec::new();
        if data.is_empty() {
            self.typed.finish(|l, t| lines.push((l.to_vec(), t)));
        } else {
            self.typed.feed(data, |l, t| lines.push((l.to_vec(), t)));
        }
        for (line, truncated) in lines {
            if truncated {
                self.console
                    .complain("that line was longer than 64 KiB; sending its first 64 KiB");
            }
            self.typed_line(r, &line);
            if self.quitting {
                return;
            }
        }
        self.send1_broadcast(r);
        if data.is_empty() {
            match self.input {
                Input::Pipe => info!("end of input; leaving once sends have drained"),
                _ => debug!("end of input"),
            }
            return self.quit(r);
        }
        self.console.prompt();
    }

    fn typed_line(&mut self, r: &mut Reactor<Slot>, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text.trim().is_empty() {
            return;
        }
        if let Some(cmd) = text.strip_prefix('/') {
            if !cmd.starts_with('/') {
                // Commands act after the chat typed before them has gone out.
                self.send1_broadcast(r);
                return self.command(r, cmd.trim());
            }
        }
        // `//text` sends `/text`.
        let text = text
            .strip_prefix('/')
            .filter(|t| t.starts_with('/'))
            .unwrap_or(text);
        if let Some(name) = &self.config.name {
            self.batch.extend_from_slice(name.as_bytes());
            self.batch.extend_from_slice(b": ");
        }
        self.batch.extend_from_slice(text.as_bytes());
        self.batch.push(b'\n');
    }

    fn command(&mut self, r: &mut Reactor<Slot>, cmd: &str) {
        match cmd {
            "peers" => {
                let mut out = String::new();
                for p in &self.peers {
                    let mark = if p.me { "*" } else { "" };
                    out.push_str(&format!("{mark}{} {}\n", p.port, p.ip));
                }
                if self.peers.is_empty() {
                    self.console.complain("no peer list yet");
                } else {
                    self.console.reply(&out);
                }
            }
            "help" => self.console.reply(COMMANDS),
            "quit" => self.quit(r),
            other => self.console.complain(&format!(
                "unknown command /{other} (not sent); try /help, or start the line with // to send a /"
            )),
        }
    }

    /// Leaves: no more polling, the manager link closed at once (so the manager drops
    /// us from the list now, not after its idle timeout), and the loop stops once
    /// outgoing sends have drained, or after [`QUIT_GRACE`].
    fn quit(&mut self, r: &mut Reactor<Slot>) {
        if self.quitting {
            return;
        }
        self.quitting = true;
        // Lines still held need the list first: keep the link until they have gone.
        if self.held.is_empty() {
            self.leave_manager(r);
        }
        r.set_timer(QUIT_DEADLINE, r.now() + QUIT_GRACE);
        self.maybe_leave(r);
    }

    fn leave_manager(&mut self, r: &mut Reactor<Slot>) {
        r.cancel_timer(POLL);
        r.cancel_timer(RECONNECT);
        if let Some(link) = self.link.take() {
            self.link_dropped = true;
            r.close(link);
        }
    }

    fn maybe_leave(&mut self, r: &mut Reactor<Slot>) {
        if !self.quitting || !self.held.is_empty() {
            return;
        }
        self.leave_manager(r);
        if self.outgoing == 0 && self.self_pending.is_empty() {
            info!("leaving");
            self.console.finish();
            r.stop();
        }
    }
}

const COMMANDS: &str = "\
Type a line and press Enter to send it to every peer (yourself included).
  /peers   the user list: * marks you, then port and address
  /help    this text
  /quit    leave (also Ctrl-D, SIGINT, SIGTERM)
  //text   sends /text
";

/// One message on stdout; a cut one is also logged with its sender.
fn show(console: &mut Console, from: SocketAddr, msg: &[u8], truncated: bool) {
    if msg.is_empty() && !truncated {
        return;
    }
    if truncated {
        warn!("{from} sent a message over 64 KiB; showing its first 64 KiB");
    }
    console.message(msg, truncated);
}

/// `3 (2224*, 2225, 2226)`.
fn describe(peers: &[Peer]) -> String {
    let mut s = format!("{} (", peers.len());
    for (k, p) in peers.iter().take(LOGGED_PEERS).enumerate() {
        if k > 0 {
            s.push_str(", ");
        }
        s.push_str(&p.port.to_string());
        if p.me {
            s.push('*');
        }
    }
    if peers.len() > LOGGED_PEERS {
        s.push_str(", ...");
    }
    s.push(')');
    s
}

impl Handler for Servant {
    type Data = Slot;

    /// VB: `servants1_ConnectionRequest(Index, requestID)`.
    fn connection_request(&mut self, r: &mut Reactor<Slot>, _listener: Index, request: Request) {
        self.servants1_connection_request(r, request);
    }

    /// VB: `Winsock1_DataArrival(bytesTotal)` for the manager link,
    /// `servants1_DataArrival(Index, bytesTotal)` for peers. Outgoing slots expect
    /// nothing back; whatever comes is ignored.
    fn data_arrival(&mut self, r: &mut Reactor<Slot>, i: Index, data: &[u8]) {
        match r.data(i) {
            Some(Slot::Manager) => self.winsock1_data_arrival(r, i, data),
            Some(Slot::Incoming { .. }) => self.servants1_data_arrival(r, i, data),
            _ => {}
        }
    }

    /// VB: `Winsock1_Close`, `servants1_Close(Index)`, `send1_Close`.
    fn close(&mut self, r: &mut Reactor<Slot>, i: Index, data: Slot) {
        match data {
            Slot::Manager if self.link == Some(i) => {
                let why = self
                    .link_error
                    .take()
                    .unwrap_or_else(|| "it closed the connection".into());
                self.manager_lost(r, &why)
            }
            Slot::Manager => {}
            Slot::Listener => {
                if self.listener.is_some_and(|(l, _)| l == i) {
                    warn!(
                        "the chat listener closed; waiting for the next peer list to listen again"
                    );
                    self.listener = None;
                }
            }
            Slot::Incoming { from, reader } => self.servants1_close(r, from, reader),
            Slot::Outgoing {
                to,
                local,
                delivered,
                error,
                ..
            } => self.send1_close(r, to, local, delivered, error),
        }
    }

    /// VB: `Winsock1_Connect`, `send1_Connect`.
    fn connect(&mut self, r: &mut Reactor<Slot>, i: Index) {
        match r.data(i) {
            Some(Slot::Manager) => self.winsock1_connect(),
            Some(Slot::Outgoing { .. }) => self.send1_connect(r, i),
            _ => {}
        }
    }

    /// VB: `send1_SendComplete`.
    fn send_complete(&mut self, r: &mut Reactor<Slot>, i: Index) {
        if let Some(Slot::Outgoing { .. }) = r.data(i) {
            self.send1_send_complete(r, i);
        }
    }

    /// VB: `Winsock1_Error`, `send1_Error(Number, Description, ...)`: remembered for
    /// the close that follows, which does the counting and the logging.
    fn error(&mut self, r: &mut Reactor<Slot>, i: Index, err: &io::Error) {
        match r.data_mut(i) {
            Some(Slot::Outgoing { error, .. }) => *error = Some(err.to_string()),
            Some(Slot::Manager) => self.link_error = Some(err.to_string()),
            _ => {}
        }
    }

    fn timer(&mut self, r: &mut Reactor<Slot>, id: usize) {
        match id {
            POLL => self.poll(r),
            RECONNECT if !self.quitting || !self.held.is_empty() => self.connect_manager(r),
            QUIT_DEADLINE => {
                warn!(
                    "leaving with {} send(s) unfinished after {} s{}",
                    self.outgoing + self.self_pending.len(),
                    QUIT_GRACE.as_secs(),
                    if self.held.is_empty() {
                        ""
                    } else {
                        "; lines typed before any peer list arrived were never sent"
                    }
                );
                self.console.finish();
                r.stop();
            }
            _ => {}
        }
    }

    /// VB: `txtSend1_KeyPress(KeyAscii)`. On a terminal the console edits the line
    /// (so a message arriving mid-line can redraw it) and hands over whole lines.
    fn key_press(&mut self, r: &mut Reactor<Slot>, data: &[u8]) {
        if !self.console.is_terminal() || data.is_empty() {
            return self.txt_send1_key_press(r, data);
        }
        let edited = self.console.edit(data);
        if !edited.lines.is_empty() {
            self.txt_send1_key_press(r, &edited.lines);
        }
        if edited.eof {
            self.txt_send1_key_press(r, &[]);
        }
    }

    /// New addresses for the banned host names, from the resolver thread.
    fn wake(&mut self, _r: &mut Reactor<Slot>) {
        let Some(rx) = &self.resolved else { return };
        let mut latest = None;
        while let Ok(addrs) = rx.try_recv() {
            latest = Some(addrs);
        }
        if let Some(addrs) = latest {
            self.bans.set_resolved(addrs);
        }
    }

    /// SIGINT or SIGTERM: leave at once; the manager sees the link close.
    fn shutdown(&mut self, r: &mut Reactor<Slot>) {
        self.quitting = true;
        self.console.finish();
        r.stop();
    }
}

use crate::StartError;

/// Resolves the manager's host before the loop starts (blocking is fine here),
/// preferring an address of `--bind`'s family.
fn resolve_manager(config: &Config) -> Result<SocketAddr, StartError> {
    let host = config.connmgr_host.as_str();
    let addrs: Vec<SocketAddr> = (host, config.connmgr_port)
        .to_socket_addrs()
        .map_err(|e| {
            StartError(format!(
                "cannot resolve the connection manager's host {host:?}: {e}; check <connectionmgr> or --connmgr"
            ))
        })?
        .collect();
    let family = config.bind.filter(|b| !b.is_unspecified());
    addrs
        .iter()
        .find(|a| family.map_or(true, |b| b.is_ipv4() == a.is_ipv4()))
        .or(addrs.first())
        .copied()
        .ok_or_else(|| {
            StartError(format!(
                "the connection manager's host {host:?} has no addresses"
            ))
        })
}

/// Runs the servant until `/quit`, end of input (from a pipe or file), or a signal.
pub fn run(config: Config) -> Result<(), StartError> {
    let manager = resolve_manager(&config)?;
    let mut bans = Bans::new(&config.bans);
    // Names are resolved once now, before any peer can connect, so a name ban holds
    // from the first connection; the refresher thread keeps them current after that.
    let mut last = HashMap::new();
    if !bans.names().is_empty() {
        let names = bans.names().to_vec();
        bans.set_resolved(bans::resolve(&names, &mut last));
    }
    let input = if config.headless || console::stdin_is_null() {
        Input::Headless
    } else if console::is_tty(0) {
        Input::Terminal
    } else {
        Input::Pipe
    };
    crate::cli::raise_fd_limit(); // one outgoing slot per peer per line
                                  // The idle sweep covers the manager link too, which hears something at least
                                  // once per poll: never time it out between polls.
    let options = Options {
        idle_timeout: Some(IDLE_TIMEOUT.max(config.poll_interval * 3)),
        ..Options::default()
    };
    let mut r = Reactor::new(options)
        .map_err(|e| StartError(format!("cannot start the event loop: {e}")))?;
    r.catch_signals()
        .map_err(|e| StartError(format!("cannot catch signals: {e}")))?;
    if input != Input::Headless {
        r.watch_stdin()
            .map_err(|e| StartError(format!("cannot read stdin: {e}")))?;
    }
    if config.poll_interval >= Duration::from_secs(30) {
        warn!(
            "--poll-interval {} ms: a manager drops servants silent for 30 s (its default), so this one may be dropped between polls",
            config.poll_interval.as_millis()
        );
    }
    let mut servant = Servant::new(config, manager, bans, input);
    if !servant.bans.names().is_empty() {
        let (tx, rx) = mpsc::channel();
        let names = servant.bans.names().to_vec();
        bans::spawn_refresher(names, last, bans::REFRESH, tx, r.waker())
            .map_err(|e| StartError(format!("cannot start the ban resolver thread: {e}")))?;
        servant.resolved = Some(rx);
    }
    info!(
        "servant{} asking the connection manager at {manager} every {} ms{}",
        servant
            .config
            .name
            .as_deref()
            .map_or_else(String::new, |n| format!(" {n:?}")),
        servant.config.poll_interval.as_millis(),
        match input {
            Input::Headless => "; stdin not read (headless)",
            Input::Pipe => "; reading lines from stdin",
            Input::Terminal => "",
        }
    );
    if input == Input::Terminal {
        servant
            .console
            .reply("Type a line to chat, /help for commands.\n");
        servant.console.prompt();
    }
    servant.connect_manager(&mut r);
    r.run(&mut servant)
        .map_err(|e| StartError(format!("event loop failed: {e}")))?;
    let failed: u64 = servant.failures.values().map(|f| f.count).sum();
    if failed > 0 {
        info!(
            "{failed} delivery failure(s) to {} peer address(es)",
            servant.failures.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16, me: bool) -> Peer {
        Peer {
            ip: "127.0.0.2".parse().unwrap(),
            port,
            offset: 1,
            me,
        }
    }

    #[test]
    fn the_peers_line_marks_self() {
        let peers = [peer(2224, true), peer(2225, false), peer(2226, false)];
        assert_eq!(describe(&peers), "3 (2224*, 2225, 2226)");
        assert_eq!(describe(&[]), "0 ()");
    }
}
