//! The virtual clients: one [`Handler`] on the project's reactor drives every mode.
//!
//! A run goes through phases ([`phases`]): `Setup` (steady servants join; fanout
//! servants register, listen, and a first line proves the sender reaches them
//! all), `Warmup`, `Measure`, then `Drain`, where nothing new starts and what is in
//! flight finishes, so the counts match what the server saw. Connections to the
//! target are in [`manager`], framing their answers in [`answer`], the `--rate`
//! schedule in [`open_loop`], the fanout listeners and sender in [`fanout`], and
//! what is counted, second by second too, in [`stats`].

mod answer;
mod fanout;
mod fill;
mod lists;
mod manager;
mod open_loop;
mod phases;
mod private;
mod stats;
mod version;
mod workers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use memchr::memmem;

use super::private::{Keys, Network};
use super::report::{Failure, Report};
use super::{private as network, procfs};
use super::{Config, Mode, Progress, Protocol, RunError};
use crate::noise::PublicKey;
use crate::reactor::{Handler, Index, Reactor, Request};
use fanout::Fanout;
use manager::Ask;
use open_loop::{OpenLoop, RATE_TIMER};
use phases::Phase;
use stats::Stats;

/// The reactor timer churn runs on.
const TICK: usize = 1;
const TICK_EVERY: Duration = Duration::from_millis(10);
/// Timeouts are checked this often.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// What one virtual client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Joins, asks once, leaves, and starts again (or, in an open loop, when due).
    Churner,
    /// Stays connected and asks again as soon as answered (or when due).
    KeepAlive,
    /// Connects to a full manager, reads its refusal, and starts again.
    Flooder,
    /// Steady servant number k: stays and polls.
    Steady(usize),
    /// Fanout servant number k: registers, then listens on its port.
    Fanout(usize),
    /// Flood filler number k: joins, and stays so that the manager is full.
    Filler(usize),
}

/// What churn keeps in each reactor slot.
enum Conn {
    Manager(Ask),
    /// Fanout servant k's listener.
    Listener(usize),
    /// A line arriving at fanout servant k.
    Incoming {
        servant: usize,
        buf: Vec<u8>,
    },
    /// A line going out to one peer (`--sender self`).
    Outgoing {
        started: Instant,
        peer: SocketAddr,
    },
}

/// The load generator's state: the phase, the virtual clients, and what is counted.
struct Churn {
    cfg: Config,
    phase: Phase,
    /// When the current phase (warm-up or measurement) ends.
    phase_end: Option<Instant>,
    measure_start: Option<Instant>,
    measure_end: Option<Instant>,
    drain_deadline: Option<Instant>,
    next_sweep: Instant,
    /// When the second under way ends.
    next_second: Instant,
    started: Instant,

    /// What every client asks: `needs peer list`, or `--request`.
    request: Vec<u8>,
    /// What ends an answer, with `--expect`.
    expect: Option<memmem::Finder<'static>>,
    /// The source address used last, in `cfg.sources`.
    next_source: usize,
    /// With `--rate`: the schedule of starts.
    open_loop: Option<OpenLoop>,
    /// Churners, kept connections or flooders connected or connecting.
    churners: usize,
    /// Churners whose connect failed at once; retried on the next tick.
    restarts: usize,
    /// Slot of each steady servant, if connected.
    steady: Vec<Option<Index>>,
    steady_ready: usize,
    /// Steady or fanout servants not yet started (the ramp).
    to_register: Vec<Role>,
    registering: usize,
    /// Private registrations started in the current second, and when it began.
    ramp_second: (Option<Instant>, usize),
    polls: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, usize)>>,
    fanout: Fanout,
    fill: fill::Fill,
    stats: Stats,
    fatal: Option<String>,
    end_tag: memmem::Finder<'static>,
    /// Churners' joins and leaves, for timing the steady servants' lists.
    changes: lists::Changes,
    /// What a worker shares with the others.
    shared: workers::Shared,
    /// Answer buffers of closed connections, for the next ones to open.
    spare_bufs: Vec<Vec<u8>>,
    /// `--private`: the member keys churn plays, and its manager (kept running
    /// until the run ends; its folder of keys removed then).
    keys: Option<Keys>,
    network: Option<Network>,
}

/// Checks the settings and the host, runs the load on one event loop or on
/// `--workers` of them, and returns the report.
pub(super) fn run(cfg: Config) -> Result<Report, RunError> {
    cfg.check().map_err(|e| RunError(e.to_string()))?;
    // Once for the process: every worker's sockets count against one limit.
    let fd_limit = crate::cli::raise_fd_limit();
    let wanted = (cfg.concurrency + cfg.steady) as u64 + 64;
    if wanted > fd_limit {
        eprintln!(
            "churn: warning: {wanted} sockets wanted but the open-file limit is {fd_limit}; \
             connects will fail (raise it with ulimit -n)"
        );
    }
    if let Some(pid) = cfg.server_pid {
        procfs::cpu_ns(pid)
            .map_err(|e| RunError(format!("--server-pid {pid}: cannot read /proc/{pid}: {e}")))?;
    }
    if cfg.workers > 1 {
        return workers::run(cfg);
    }
    if !cfg.private {
        return run_one(cfg, workers::Shared::default(), None);
    }
    let mut cfg = cfg;
    let (net, keys) = network::start(&cfg)?;
    cfg.target = net.addr;
    cfg.server_pid = Some(net.manager.pid());
    run_one(cfg, workers::Shared::default(), Some((net, keys)))
}

/// One event loop: sets up the reactor, runs the phases, and assembles the report.
fn run_one(
    cfg: Config,
    shared: workers::Shared,
    private: Option<(Network, Keys)>,
) -> Result<Report, RunError> {
    let mut r: Reactor<Conn> = Reactor::new(private::options(private.is_some()))
        .map_err(|e| RunError(format!("cannot start the event loop: {e}")))?;
    // Signals wake one loop; a worker's that catches them stops the others.
    if shared.catches_signals {
        r.catch_signals()
            .map_err(|e| RunError(format!("cannot catch signals: {e}")))?;
    }
    let now = Instant::now();
    let (request, expect) = match &cfg.protocol {
        Protocol::Manager => (manager::REQUEST.to_vec(), None),
        Protocol::Generic { request, expect } => (
            request.clone(),
            expect.as_ref().map(|e| memmem::Finder::new(e).into_owned()),
        ),
    };
    let mut c = Churn {
        phase: Phase::Setup,
        phase_end: None,
        measure_start: None,
        measure_end: None,
        drain_deadline: None,
        next_sweep: now + SWEEP_EVERY,
        next_second: now + Duration::from_secs(1),
        started: now,
        request,
        expect,
        next_source: 0,
        open_loop: None,
        churners: 0,
        restarts: 0,
        steady: Vec::new(),
        steady_ready: 0,
        to_register: Vec::new(),
        registering: 0,
        ramp_second: (None, 0),
        polls: Default::default(),
        fanout: Fanout::default(),
        fill: fill::Fill::default(),
        stats: Stats::new(&cfg, now),
        fatal: None,
        end_tag: memmem::Finder::new(manager::END),
        changes: lists::Changes::default(),
        shared,
        spare_bufs: Vec::new(),
        keys: None,
        network: None,
        cfg,
    };
    if let Some((net, keys)) = private {
        if let Some(p) = c.stats.private.as_mut() {
            p.manager_pid = net.manager.pid();
            p.members = keys.members();
        }
        c.keys = Some(keys);
        c.network = Some(net);
    }
    match c.cfg.mode {
        Mode::JoinLeave => c.setup_done(&mut r),
        Mode::Flood => c.fill_more(&mut r),
        Mode::Steady => {
            c.steady = vec![None; c.cfg.steady];
            c.to_register = (0..c.cfg.steady).rev().map(Role::Steady).collect();
            if c.cfg.steady == 0 {
                c.setup_done(&mut r);
            }
        }
        Mode::Fanout => {
            c.fanout.seen = vec![0; c.cfg.concurrency];
            c.to_register = (0..c.cfg.concurrency).rev().map(Role::Fanout).collect();
        }
    }
    c.ramp(&mut r);
    r.set_timer(TICK, Instant::now() + TICK_EVERY);
    let ran = r.run(&mut c);
    if c.cfg.progress == Progress::Line {
        eprint!("\r\x1b[K"); // the rewritten line gives way to the summary
    }
    if c.fatal.is_some() {
        c.shared.stop_all(); // the others would measure a run that failed
    }
    ran.map_err(|e| RunError(format!("event loop failed: {e}")))?;
    if let Some(why) = c.fatal.take() {
        return Err(RunError(why));
    }
    if c.measure_end.is_none() {
        c.end_measure(Instant::now()); // interrupted by a signal
    }
    let elapsed = match (c.measure_start, c.measure_end) {
        (Some(a), Some(b)) => b.duration_since(a),
        _ => Duration::ZERO,
    };
    let waited = c.open_loop.as_ref().map_or(0, |ol| ol.waited);
    Ok(c.stats.report(c.cfg, elapsed, waited))
}

impl Churn {
    /// A steady servant has joined; setup ends when they all have.
    fn steady_joined(&mut self, r: &mut Reactor<Conn>) {
        self.registering -= 1;
        self.steady_ready += 1;
        self.ramp(r);
        if self.phase == Phase::Setup && self.steady_ready == self.steady.len() {
            self.setup_done(r);
        }
    }

    fn abort(&mut self, r: &mut Reactor<Conn>, why: String) {
        if self.fatal.is_none() {
            self.fatal = Some(why);
        }
        r.stop();
    }

    fn fail(&mut self, f: Failure, detail: impl FnOnce() -> String) {
        if f != Failure::NoSourcePort {
            return self.stats.failures.count(f, detail);
        }
        // Said once, with the first: the cure is more source addresses.
        let sources = self.cfg.sources.len().max(1);
        self.stats.failures.count(f, || {
            format!(
                "{}: the ephemeral ports of {sources} source address(es) towards this \
                 target ran out; spread the connections with --bind over more addresses \
                 (e.g. {})",
                detail(),
                super::sources::DEFAULT
            )
        });
    }

    /// Everything failing and nothing ever connecting means the target is wrong.
    fn check_hopeless(&mut self, r: &mut Reactor<Conn>) {
        let tries = (self.cfg.concurrency + self.steady.len()).max(1) as u64 * 3;
        let failures = &self.stats.failures;
        if self.stats.connections == 0 && failures.total() >= tries {
            let first = failures
                .seen()
                .next()
                .map(|(f, _, m)| format!("{}: {m}", f.name()))
                .unwrap_or_default();
            let why = format!(
                "cannot get anything from the manager at {} ({} attempts failed; {first})",
                self.cfg.target,
                failures.total()
            );
            self.abort(r, why);
        }
    }
}

impl Handler for Churn {
    type Data = Conn;

    /// A fanout servant's listener has a line coming.
    fn connection_request(&mut self, r: &mut Reactor<Conn>, listener: Index, request: Request) {
        let Some(&Conn::Listener(servant)) = r.data(listener) else {
            return;
        };
        let incoming = Conn::Incoming {
            servant,
            buf: Vec::new(),
        };
        if let Err(e) = self.accept_private(r, servant, request, incoming) {
            eprintln!("churn: fanout servant {servant} cannot accept: {e}");
        }
    }

    fn data_arrival(&mut self, r: &mut Reactor<Conn>, i: Index, data: &[u8]) {
        match r.data_mut(i) {
            Some(Conn::Manager(ask)) if ask.role == Role::Flooder => self.refusal_data(r, i, data),
            Some(Conn::Manager(_)) if self.cfg.generic() => self.generic_data(r, i, data),
            Some(Conn::Manager(_)) => self.manager_data(r, i, data),
            Some(Conn::Incoming { servant, buf }) => {
                let servant = *servant;
                buf.extend_from_slice(data);
                let mut b = std::mem::take(buf);
                self.incoming(r, servant, &mut b, false);
                if let Some(Conn::Incoming { buf, .. }) = r.data_mut(i) {
                    *buf = b;
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, r: &mut Reactor<Conn>, i: Index, data: Conn) {
        match data {
            Conn::Manager(ask) => {
                self.key_closed(&ask);
                self.manager_closed(r, i, ask)
            }
            Conn::Incoming { servant, mut buf } => self.incoming(r, servant, &mut buf, true),
            Conn::Listener(_) | Conn::Outgoing { .. } => {}
        }
    }

    fn connect(&mut self, r: &mut Reactor<Conn>, i: Index) {
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        ask.connected = true;
        ask.connected_at = Some(Instant::now());
        let private = self.keys.is_some();
        // A flood's fillers are its setup, not its load.
        if !matches!(ask.role, Role::Filler(_)) {
            self.stats.connections += 1;
        }
        if private {
            self.handshake_done();
        }
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        if ask.role == Role::KeepAlive {
            return self.kept_idle(r, i);
        }
        // A bare steady servant has joined; a version-aware one has joined once
        // its first answer, the whole list, is in (`steady_joined`).
        if matches!(ask.role, Role::Steady(_)) && self.cfg.bare && std::mem::take(&mut ask.first) {
            self.steady_joined(r);
        }
        self.connected(r, i);
    }

    /// A fanout listener admits only the sending servant's key.
    fn admit_key(&mut self, _r: &mut Reactor<Conn>, _i: Index, key: &PublicKey) -> bool {
        self.admit(key)
    }

    /// The sending servant proved its key to a fanout listener.
    fn authenticated(&mut self, _r: &mut Reactor<Conn>, _i: Index) {
        self.sender_proven();
    }

    /// A line has gone out to a peer: hang up, as a servant does.
    fn send_complete(&mut self, r: &mut Reactor<Conn>, i: Index) {
        if let Some(Conn::Outgoing { .. }) = r.data(i) {
            r.close(i);
        }
    }

    fn error(&mut self, r: &mut Reactor<Conn>, i: Index, err: &std::io::Error) {
        match r.data_mut(i) {
            Some(Conn::Manager(ask)) => {
                let what = if ask.connected { "" } else { "connect: " };
                ask.failure = Some((Failure::from_io(err), format!("{what}{err}")));
            }
            Some(Conn::Outgoing { peer, .. }) => {
                let peer = *peer;
                self.fail(Failure::SendFailed, || format!("line to {peer}: {err}"));
            }
            _ => {}
        }
    }

    fn timer(&mut self, r: &mut Reactor<Conn>, id: usize) {
        match id {
            // Another worker was stopped (a signal, or it failed): stop too.
            TICK if self.shared.stopping() => self.shutdown(r),
            TICK => self.tick(r),
            RATE_TIMER => self.dispatch(r),
            _ => {}
        }
    }

    /// The sending servant logged that it listens, or exited.
    fn wake(&mut self, r: &mut Reactor<Conn>) {
        self.sender_news(r);
    }

    /// SIGINT or SIGTERM: stop measuring and report what there is.
    fn shutdown(&mut self, r: &mut Reactor<Conn>) {
        self.shared.stop_all();
        if self.measure_end.is_none() {
            self.end_measure(Instant::now());
        }
        r.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_length_defaults_to_ten_seconds_unless_counted() {
        let mut c = Config::new(Mode::JoinLeave, "127.0.0.1:85".parse().unwrap());
        assert_eq!(c.run_for(), Some(Duration::from_secs(10)));
        c.count = Some(5);
        assert_eq!(c.run_for(), None);
        c.duration = Some(Duration::from_secs(2));
        assert_eq!(c.run_for(), Some(Duration::from_secs(2)));
    }
}
