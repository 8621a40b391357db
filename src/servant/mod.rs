//! The servant: the article's servant form on the shared reactor. It finds its peers
//! through the connection manager, listens on the port the manager gives it, sends
//! each typed line to every peer (itself included), and shows what peers send.
//!
//! | VB6 servant                                  | here                                |
//! |----------------------------------------------|-------------------------------------|
//! | `Winsock1`, the link to the manager          | `link.rs`, `Slot::Manager`          |
//! | `pDoc1`, `userList1`                         | `peers.rs` (`Peers`), `deltas.rs`, shown by `/peers` |
//! | `servants1(0)`, the listener                 | `incoming.rs`, `Slot::Listener`     |
//! | `servants1(i)`, peers sending to us          | `incoming.rs`, `Slot::Incoming`     |
//! | `send1`, one control reused per peer         | `send.rs`, `Slot::Outgoing` kept per peer |
//! | `txtSend1_KeyPress`                          | `typed.rs`, stdin on the same loop  |
//! | closing the form                             | `leave.rs`: `/quit`, end of input   |
//! | `txtChat1`                                   | stdout ([`console`])                |
//! | (joins, leaves, outages said in `txtChat1`)  | `events.rs`                         |
//! | `pConfig` (`config.xml`)                     | [`config`], [`bans`]                |
//! | (the article's last section: relays)         | `relay.rs`, `Slot::Pull`            |
//!
//! This file holds the servant, a struct of parts (each part's state and methods in
//! its own file), and the reactor's handlers, the VB event handlers all in one
//! place, each passing its event to the control it belongs to, whose method carries
//! the VB name and signature (`servants1_data_arrival`, `send1_close`, ...). A
//! peer's chat line goes from [`Handler::data_arrival`] here to
//! `Servant::servants1_data_arrival` and `incoming_line` (`incoming.rs`) to
//! [`console::Console::peer_message`].
//!
//! Where it differs from the article, each file says why. In short: every peer gets
//! its own outgoing connection at once (`send.rs`); chat lines and peer documents
//! are framed, not one `GetData` each ([`chat`], `link.rs`); the manager is asked
//! every poll interval, its pushes are taken, and a lost manager is retried with
//! backoff while the last list stays in use (`link.rs`); bans compare parsed
//! addresses and resolve names off the loop ([`bans`]). Behind a port-blocking
//! router, a servant pulls from a relay the manager names (`relay.rs`).
//!
//! Nothing a peer or the manager sends can grow it without bound: incoming
//! connections are capped in total and per address, the unfinished lines they hold
//! are capped together (`incoming.rs`); a peer list is checked, deduplicated and
//! capped, and sends in flight are capped and queued (`send.rs`, [`peerlist`]).

pub mod bans;
pub mod chat;
pub mod config;
pub mod console;
mod deltas;
mod events;
mod help;
mod incoming;
mod leave;
mod link;
mod msg;
mod names;
pub mod peerlist;
mod peers;
mod private;
mod relay;
mod reload;
mod said;
mod seen;
mod send;
mod typed;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{info, warn};

pub use config::{Config, Overrides};
pub use help::HELP;
pub use peers::replay;

use crate::reactor::{Handler, Index, Options, Reactor, Request};
use crate::StartError;
use bans::Bans;
use chat::ChatReader;
use console::Console;
use incoming::Admission;
use peers::Peers;

/// Timer ids.
const POLL: usize = 0;
const RECONNECT: usize = 1;
const QUIT_DEADLINE: usize = 2;
/// Connect timeouts, keepalives and the pull link ([`relay`]).
const TICK: usize = 3;
/// Incoming chat connections silent this long are closed (slow or stuck peers).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What each slot of the servant's control array is.
#[derive(Debug)]
enum Slot {
    /// `servants1(0)`: listening for peers on the port the manager assigned.
    Listener,
    /// `Winsock1`: the link to the connection manager.
    Manager,
    /// `servants1(i)`: a peer delivering a batch of chat lines to us.
    Incoming {
        from: SocketAddr,
        reader: ChatReader,
        /// A batch, or a servant pulling from us.
        role: relay::Role,
        /// When it was accepted or last sent something: the most idle one makes
        /// room when the incoming connections are at their cap.
        heard: Instant,
        /// What it has shown in the current loop turn.
        share: incoming::Share,
    },
    /// Our pull link to the relay the manager named for us.
    Pull {
        to: SocketAddr,
        reader: ChatReader,
        error: Option<String>,
        started: Instant,
        /// It connected: a loss later is not the relay being unreachable.
        up: bool,
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
        /// When the connect began, for [`relay::CONNECT_TIMEOUT`].
        started: Instant,
        /// What is being sent, kept to send it again to `fallback`.
        batch: Rc<[u8]>,
        /// While the list settles after a manager restart, where this peer listened
        /// before ([`peerlist`]): tried if it cannot be reached at `to`.
        fallback: Option<SocketAddr>,
        /// The connection came up: a failure now may have delivered part of it.
        connected: bool,
        /// A kept link, left open for the next batches to this peer ([`send`]).
        kept: bool,
        /// A batch is on its way: counted among the sends in flight.
        inflight: bool,
        /// On a private network, the key the list gave the peer when this send
        /// began: if someone else (or no one) answers, the batch waits for the
        /// list to give that key another address ([`private`]).
        key: Option<crate::noise::PublicKey>,
    },
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

/// The servant: its parts, each in its own file, and the reactor's handlers below,
/// which pass each event to the part it belongs to.
struct Servant {
    config: Config,
    /// `Winsock1` ([`link`]).
    link: link::Link,
    /// `pDoc1` and `userList1` ([`peers`]): the list every line is sent to.
    peers: Peers,
    /// The checks on the manager's lists, and the old list kept beside the new
    /// one after reconnecting to it ([`peerlist`]).
    lists: peerlist::Lists,
    /// `servants1(0)`: the listener's slot and port.
    listener: Option<(Index, u16)>,
    /// The bans and their names' lookups ([`bans`]).
    bans: bans::Banning,
    /// Incoming connections and what they hold, against their caps ([`incoming`]).
    admission: Admission,
    /// `send1`: what is being sent, queued and held ([`send`]).
    sends: send::Sends,
    /// `txtSend1`: how stdin is read, and its unfinished line ([`typed`]).
    typing: typed::Typing,
    /// `txtChat1` ([`console`]).
    console: Console,
    /// The relay role: our pull link, the pullers we serve ([`relay`]).
    relay: relay::Relaying,
    /// What was said of joins, leaves and unreachable peers ([`events`]).
    events: events::Events,
    /// When each peer was first seen, for `/who` ([`seen`]).
    seen: seen::Seen,
    /// `/msg`, and private lines dropped ([`msg`]).
    msg: msg::Privately,
    /// Keys refused on a private network, for the log ([`private`]).
    private_refusals: said::RateLimited,
    quitting: bool,
}

impl Servant {
    fn new(
        config: Config,
        managers: Vec<SocketAddr>,
        bans: Bans,
        input: Input,
        admission: Admission,
    ) -> Self {
        Servant {
            config,
            link: link::Link::new(managers),
            peers: Peers::default(),
            lists: peerlist::Lists::default(),
            listener: None,
            bans: bans::Banning::new(bans),
            admission,
            sends: send::Sends::default(),
            typing: typed::Typing::new(input),
            console: Console::new(input == Input::Terminal && console::is_tty(1)),
            relay: relay::Relaying::default(),
            events: events::Events::default(),
            seen: seen::Seen::default(),
            msg: msg::Privately::default(),
            private_refusals: said::RateLimited::default(),
            quitting: false,
        }
    }

    /// The local address for a connection to `to`: `--bind` when it is of the same
    /// family, so peers and the manager see the address this servant stands for.
    fn bind_for(&self, to: SocketAddr) -> Option<IpAddr> {
        self.config
            .bind
            .filter(|b| !b.is_unspecified() && b.is_ipv4() == to.is_ipv4())
    }
}

impl Handler for Servant {
    type Data = Slot;

    /// VB: `servants1_ConnectionRequest(Index, requestID)`.
    fn connection_request(&mut self, r: &mut Reactor<Slot>, _listener: Index, request: Request) {
        self.servants1_connection_request(r, request);
        self.console.settle();
    }

    /// VB: `Winsock1_DataArrival(bytesTotal)` for the manager link,
    /// `servants1_DataArrival(Index, bytesTotal)` for peers. Outgoing slots expect
    /// nothing back; whatever comes is ignored.
    fn data_arrival(&mut self, r: &mut Reactor<Slot>, i: Index, data: &[u8]) {
        match r.data(i) {
            Some(Slot::Manager) => self.winsock1_data_arrival(r, i, data),
            Some(Slot::Incoming { .. }) => self.servants1_data_arrival(r, i, data),
            Some(Slot::Pull { .. }) => self.pull_data_arrival(r, i, data),
            _ => {}
        }
        // What this read showed is drawn now: a flooding peer's lines go out as they
        // are read, in the loop turn's one write.
        self.console.settle();
    }

    /// VB: `Winsock1_Close`, `servants1_Close(Index)`, `send1_Close`.
    fn close(&mut self, r: &mut Reactor<Slot>, i: Index, data: Slot) {
        match data {
            Slot::Manager if self.link.slot == Some(i) => {
                let why = self
                    .link
                    .error
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
            incoming @ Slot::Incoming { .. } => self.servants1_close(r, i, incoming),
            Slot::Pull { to, error, up, .. } => self.pull_closed(r, i, to, up, error),
            outgoing @ Slot::Outgoing { .. } => self.send1_close(r, i, outgoing),
        }
        self.console.settle();
    }

    /// A private network's peer named its key ([`private`]).
    fn admit_key(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        key: &crate::noise::PublicKey,
    ) -> bool {
        self.private_admit(r, i, key)
    }

    /// VB: `Winsock1_Connect`, `send1_Connect`.
    fn connect(&mut self, r: &mut Reactor<Slot>, i: Index) {
        match r.data(i) {
            Some(Slot::Manager) => self.winsock1_connect(),
            Some(Slot::Outgoing { .. }) => self.send1_connect(r, i),
            Some(Slot::Pull { .. }) => self.pull_connect(r, i),
            _ => {}
        }
        self.console.settle();
    }

    /// VB: `send1_SendComplete`.
    fn send_complete(&mut self, r: &mut Reactor<Slot>, i: Index) {
        // On a private link too: the reactor owes it for the batch, held during
        // the handshake or not, never for the handshake's own bytes.
        if let Some(Slot::Outgoing { .. }) = r.data(i) {
            self.send1_send_complete(r, i);
        }
    }

    /// VB: `Winsock1_Error`, `send1_Error(Number, Description, ...)`: remembered for
    /// the close that follows, which does the counting and the logging.
    fn error(&mut self, r: &mut Reactor<Slot>, i: Index, err: &io::Error) {
        match r.data_mut(i) {
            Some(Slot::Outgoing { error, .. } | Slot::Pull { error, .. }) => {
                *error = Some(err.to_string())
            }
            Some(Slot::Manager) => self.link.error = Some(err.to_string()),
            _ => {}
        }
    }

    /// The poll and reconnect timers (VB had neither) and leaving's deadline.
    fn timer(&mut self, r: &mut Reactor<Slot>, id: usize) {
        match id {
            POLL => self.poll(r),
            RECONNECT if !self.quitting || !self.sends.held.is_empty() => self.connect_manager(r),
            QUIT_DEADLINE => self.quit_deadline(r),
            TICK => {
                self.tick(r);
                self.link_tick(r);
                self.unnamed_joins(r.now());
                self.settle_tick(r);
                self.kept_tick(r);
                self.deliver_moved(r);
            }
            bans::BAN_LOOKUP => self.bans.lookup_event(r, false),
            _ => {}
        }
        self.console.settle();
    }

    /// VB: `txtSend1_KeyPress(KeyAscii)`: stdin has input. The console reads it; on a
    /// terminal it edits the line (so a message arriving mid-line can redraw it) and
    /// hands over whole lines.
    fn fd_ready(&mut self, r: &mut Reactor<Slot>, id: usize) {
        if id == bans::BAN_SOCKET {
            return self.bans.lookup_event(r, true);
        }
        let edited = self.console.read_stdin(r);
        if !edited.lines.is_empty() {
            self.txt_send1_key_press(r, &edited.lines);
        }
        if edited.eof {
            self.txt_send1_key_press(r, &[]);
        }
        self.console.settle();
    }

    /// The terminal's signals (a resize, Ctrl-Z, `fg`).
    fn wake(&mut self, _r: &mut Reactor<Slot>) {
        self.console.terminal_signals();
        self.console.settle();
    }

    /// SIGHUP: read config.xml again (`reload.rs`).
    fn reload(&mut self, r: &mut Reactor<Slot>) {
        self.reload_config(r);
    }

    /// SIGINT or SIGTERM: leave at once; the manager sees the link close.
    fn shutdown(&mut self, r: &mut Reactor<Slot>) {
        self.quitting = true;
        self.console.finish();
        r.stop();
    }
}

/// Resolves every manager's host before the loop starts (blocking is fine here),
/// in order: the first, then those to fail over to.
fn resolve_managers(config: &Config) -> Result<Vec<SocketAddr>, StartError> {
    let first = (config.connmgr_host.as_str(), config.connmgr_port);
    let more = (config.more_connmgrs.iter())
        .map(|(host, port)| (host.as_str(), port.unwrap_or(config.connmgr_port)));
    std::iter::once(first)
        .chain(more)
        .map(|(host, port)| resolve_manager(config, host, port))
        .collect()
}

/// Resolves one manager's host, preferring an address of `--bind`'s family.
fn resolve_manager(config: &Config, host: &str, port: u16) -> Result<SocketAddr, StartError> {
    if let Some(addr) = crate::resolve::scoped_literal(host, port) {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> =
        crate::resolve::lookup_blocking(&crate::resolve::Settings::system(), host)
            .map_err(|e| {
                StartError(format!(
                    "cannot resolve the connection manager's host {host:?}: {}; check <connectionmgr> or --connmgr",
                    crate::text::escape(&e)
                ))
            })?
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
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
    // The file's <loglevel>, unless --log-level or RUST_LOG said otherwise.
    let _ = crate::logfilter::set_from_file(config.log_level.as_ref());
    let managers = resolve_managers(&config)?;
    let manager = match &managers[..] {
        [one] => one.to_string(),
        [first, more @ ..] => {
            let more: Vec<String> = more.iter().map(ToString::to_string).collect();
            format!("{first} (then {})", more.join(", "))
        }
        [] => String::new(),
    };
    let bans = Bans::new(&config.bans);
    let input = if config.headless || console::stdin_is_null() {
        Input::Headless
    } else if console::is_tty(0) {
        Input::Terminal
    } else {
        Input::Pipe
    };
    // As many descriptors as the caps on connections need, and no more; with fewer
    // available, the caps shrink to fit (`incoming.rs`).
    let admission = Admission::new(crate::cli::raise_fd_limit_to(incoming::FDS_WANTED));
    // The idle sweep covers the manager link too, which hears something at least
    // once per poll: never time it out between polls.
    let options = Options {
        idle_timeout: Some(IDLE_TIMEOUT.max(config.poll_interval * 3)),
        // A sender may be writing on the kept link the sweep closes (docs/PROTOCOL.md).
        linger: Some(incoming::LINGER),
        // Every private link renews its sending key this often (the manager link,
        // relay links, links peers keep to us); links we keep to peers are also
        // replaced with a new handshake at that age (`send.rs`).
        rekey_after: (config.private.as_ref())
            .map_or(crate::reactor::REKEY_AFTER, |p| p.rekey_after),
        ..Options::default()
    };
    let mut r = Reactor::new(options)
        .map_err(|e| StartError(format!("cannot start the event loop: {e}")))?;
    let mut config = config;
    if let Some(p) = &config.private {
        r.set_identity(crate::noise::Keypair::load(&p.key).map_err(StartError)?);
        if let Some(name) = config.name.take() {
            warn!("--name {name:?} changes nothing on a private network: this servant is listed by the members file's name for its key");
        }
    }
    r.catch_signals()
        .map_err(|e| StartError(format!("cannot catch signals: {e}")))?;
    if input != Input::Headless {
        console::watch_stdin(&mut r).map_err(|e| StartError(format!("cannot read stdin: {e}")))?;
    }
    if config.poll_interval >= Duration::from_secs(30) {
        warn!(
            "--poll-interval {} ms: a manager drops servants silent for 30 s (its default), so this one may be dropped between polls",
            config.poll_interval.as_millis()
        );
    }
    if let Some(path) = &config.log_file {
        crate::logging::log_to_file(path)
            .map_err(|e| StartError(format!("cannot open the log file {}: {e}", path.display())))?;
    }
    let private = config.private.is_some();
    let mut servant = Servant::new(config, managers, bans, input, admission);
    if private {
        info!(
            "private network: this servant's key is {}; the manager must prove {}",
            r.identity().map(ToString::to_string).unwrap_or_default(),
            servant
                .config
                .private
                .as_ref()
                .map(|p| p.manager_key.to_string())
                .unwrap_or_default()
        );
    }
    servant.console.start(&servant.config);
    servant.config.log_source();
    if !servant.bans.list.names().is_empty() {
        // Looked up on the loop from the start: a slow DNS server delays nothing
        // but the peers' connections, which are refused until the names are
        // known, so that a name ban holds from the first connection.
        info!(
            "resolving banned host names ({}); refusing peers' connections until done",
            crate::text::escape(&servant.bans.list.names().join(", "))
        );
        servant.bans.look_up(&mut r);
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
    servant.connect_manager(&mut r);
    servant.console.settle();
    r.set_timer(TICK, r.now());
    crate::notify::ready();
    let outcome = r.run(&mut servant);
    crate::notify::stopping();
    outcome.map_err(|e| StartError(format!("event loop failed: {e}")))?;
    servant.sends.failures.summary();
    Ok(())
}
