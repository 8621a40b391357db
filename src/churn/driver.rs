//! The virtual servants: one [`Handler`] on the project's reactor drives every mode.
//!
//! A run goes through phases: `Setup` (steady servants join; fanout servants
//! register, listen, and a first line proves the sender
//! reaches them all), `Warmup`, `Measure`, then `Drain`, where nothing new starts
//! and what is in flight finishes, so the counts match what the manager saw.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::histogram::Histogram;
use super::procfs::{self, CpuMark, CpuSource};
use super::report::{Failure, Failures, ProcessUse, Report};
use super::{scan, Config, Mode, RunError, Sender};
use crate::reactor::{Handler, Index, Options, Reactor, Request};

/// What every virtual servant asks.
const REQUEST: &[u8] = b"needs peer list\n";
/// The reactor timer churn runs on.
const TICK: usize = 1;
const TICK_EVERY: Duration = Duration::from_millis(10);
/// Timeouts are checked this often.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Servants connecting at once while steady and fanout servants register, so the
/// manager's listen backlog does not overflow into SYN retries.
const RAMP: usize = 256;
/// What ends a peer document on the wire (the manager never sends `<peers/>`).
const END: &[u8] = b"</peers>";
/// A read buffer that grew past this is freed once empty.
const KEEP_CAPACITY: usize = 64 * 1024;
/// A document larger than this without its closing tag is garbage.
const MAX_DOC: usize = 64 << 20;
/// Marks fanout lines; listeners look for it anywhere in a line, so a sender may
/// prefix a name.
const LINE_MARK: &str = "churn fanout ";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Setup,
    Warmup,
    Measure,
    Drain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Joins, asks once, leaves, and starts again.
    Churner,
    /// Steady servant number k: stays and polls.
    Steady(usize),
    /// Fanout servant number k: registers, then listens on its port.
    Fanout(usize),
}

/// A connection to the manager.
struct Ask {
    role: Role,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the end of a document.
    scanned: usize,
    /// When the request now outstanding was sent (or its connect started).
    asked: Option<Instant>,
    /// The first answer on this connection is setup, not a measured poll.
    first: bool,
    connected: bool,
    answered: bool,
    failure: Option<(Failure, String)>,
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

/// Fanout state: the listeners, the sender, and the line in flight.
#[derive(Default)]
struct Fanout {
    /// Listening servants so far.
    listening: usize,
    /// Where lines go with `--sender self`: every peer in the manager's list.
    peers: Vec<SocketAddr>,
    sender: Option<ServantProcess>,
    ready: bool,
    /// The line in flight: its number, when it was sent, how many listeners have it.
    seq: u64,
    sent_at: Option<Instant>,
    got: usize,
    /// The last line number each listener has seen.
    seen: Vec<u64>,
    next_at: Option<Instant>,
}

/// A spawned `servant` sending the fanout lines.
struct ServantProcess {
    child: Child,
    stdin: ChildStdin,
    /// 0 starting, 1 listening, 2 exited.
    status: Arc<AtomicU8>,
    /// Its last stderr lines, for error messages.
    tail: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServantProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Churn {
    cfg: Config,
    phase: Phase,
    /// When the current phase (warm-up or measurement) ends.
    phase_end: Option<Instant>,
    measure_start: Option<Instant>,
    measure_end: Option<Instant>,
    drain_deadline: Option<Instant>,
    next_sweep: Instant,
    next_progress: Instant,
    started: Instant,

    churners: usize,
    /// Churners whose connect failed at once; retried on the next tick.
    restarts: usize,
    /// Slot of each steady servant, if connected.
    steady: Vec<Option<Index>>,
    steady_ready: usize,
    /// Steady or fanout servants not yet started (the ramp).
    to_register: Vec<Role>,
    registering: usize,
    polls: BinaryHeap<Reverse<(Instant, usize)>>,
    fanout: Fanout,

    ops: u64,
    latency: Histogram,
    steady_answers: u64,
    steady_latency: Histogram,
    pushes: u64,
    connections: u64,
    documents: u64,
    doc_bytes: u64,
    cycles_total: u64,
    peers_min: Option<usize>,
    peers_max: Option<usize>,
    failures: Failures,
    server_mark: Option<CpuMark>,
    client_mark: Option<CpuMark>,
    server: Option<ProcessUse>,
    client: Option<ProcessUse>,
    fatal: Option<String>,
    end_tag: memchr::memmem::Finder<'static>,
}

fn source_name(s: CpuSource) -> &'static str {
    match s {
        CpuSource::Schedstat => "schedstat",
        CpuSource::Stat => "stat",
    }
}

/// Sets up the reactor, runs the phases, and assembles the report.
pub(super) fn run(cfg: Config) -> Result<Report, RunError> {
    let fd_limit = crate::cli::raise_fd_limit();
    let wanted = (cfg.concurrency + cfg.steady) as u64 + 64;
    if wanted > fd_limit {
        warn!("{wanted} sockets wanted but the open-file limit is {fd_limit}; connects will fail");
    }
    if let Some(pid) = cfg.server_pid {
        procfs::cpu_ns(pid)
            .map_err(|e| RunError(format!("--server-pid {pid}: cannot read /proc/{pid}: {e}")))?;
    }
    let mut r: Reactor<Conn> = Reactor::new(Options::default())
        .map_err(|e| RunError(format!("cannot start the event loop: {e}")))?;
    r.catch_signals()
        .map_err(|e| RunError(format!("cannot catch signals: {e}")))?;
    let now = Instant::now();
    let mut c = Churn {
        phase: Phase::Setup,
        phase_end: None,
        measure_start: None,
        measure_end: None,
        drain_deadline: None,
        next_sweep: now + SWEEP_EVERY,
        next_progress: now + Duration::from_secs(1),
        started: now,
        churners: 0,
        restarts: 0,
        steady: Vec::new(),
        steady_ready: 0,
        to_register: Vec::new(),
        registering: 0,
        polls: BinaryHeap::new(),
        fanout: Fanout::default(),
        ops: 0,
        latency: Histogram::new(),
        steady_answers: 0,
        steady_latency: Histogram::new(),
        pushes: 0,
        connections: 0,
        documents: 0,
        doc_bytes: 0,
        cycles_total: 0,
        peers_min: None,
        peers_max: None,
        failures: Failures::default(),
        server_mark: None,
        client_mark: None,
        server: None,
        client: None,
        fatal: None,
        end_tag: memchr::memmem::Finder::new(END),
        cfg,
    };
    match c.cfg.mode {
        Mode::JoinLeave => c.setup_done(&mut r),
        Mode::Steady => {
            c.steady = vec![None; c.cfg.steady];
            c.to_register = (0..c.cfg.steady).rev().map(Role::Steady).collect();
            if c.cfg.steady == 0 {
                c.setup_done(&mut r);
            }
        }
        Mode::Fanout => {
            if c.cfg.concurrency == 0 {
                return Err(RunError("fanout needs at least one listener (-c)".into()));
            }
            c.fanout.seen = vec![0; c.cfg.concurrency];
            c.to_register = (0..c.cfg.concurrency).rev().map(Role::Fanout).collect();
        }
    }
    c.ramp(&mut r);
    r.set_timer(TICK, Instant::now() + TICK_EVERY);
    r.run(&mut c)
        .map_err(|e| RunError(format!("event loop failed: {e}")))?;
    if c.cfg.progress {
        eprint!("\r\x1b[K");
    }
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
    let sender = match (&c.cfg.mode, &c.cfg.sender) {
        (Mode::Fanout, Sender::Servant(p)) => Some(format!("servant {}", p.display())),
        (Mode::Fanout, Sender::Itself) => Some("self".to_string()),
        _ => None,
    };
    Ok(Report {
        mode: c.cfg.mode,
        target: c.cfg.target.to_string(),
        concurrency: if c.cfg.mode == Mode::Fanout {
            0
        } else {
            c.cfg.concurrency
        },
        steady: if c.cfg.mode == Mode::Steady {
            c.cfg.steady
        } else {
            0
        },
        elapsed,
        warmup: c.cfg.warmup,
        ops: c.ops,
        latency: c.latency,
        steady_answers: c.steady_answers,
        steady_latency: c.steady_latency,
        pushes: c.pushes,
        connections: c.connections,
        documents: c.documents,
        doc_bytes: c.doc_bytes,
        cycles_total: c.cycles_total,
        peers_min: c.peers_min,
        peers_max: c.peers_max,
        failures: c.failures,
        server: c.server,
        client: c.client,
        sender,
        listeners: if c.cfg.mode == Mode::Fanout {
            c.cfg.concurrency
        } else {
            0
        },
    })
}

impl Churn {
    fn abort(&mut self, r: &mut Reactor<Conn>, why: String) {
        if self.fatal.is_none() {
            self.fatal = Some(why);
        }
        r.stop();
    }

    fn fail(&mut self, f: Failure, detail: impl FnOnce() -> String) {
        self.failures.count(f, detail);
    }

    /// Everything failing and nothing ever connecting means the target is wrong.
    fn check_hopeless(&mut self, r: &mut Reactor<Conn>) {
        let tries = (self.cfg.concurrency + self.steady.len()).max(1) as u64 * 3;
        if self.connections == 0 && self.failures.total() >= tries {
            let first = self
                .failures
                .seen()
                .next()
                .map(|(f, _, m)| format!("{}: {m}", f.name()))
                .unwrap_or_default();
            let why = format!(
                "cannot get anything from the manager at {} ({} attempts failed; {first})",
                self.cfg.target,
                self.failures.total()
            );
            self.abort(r, why);
        }
    }

    /// Opens a connection to the manager for `role` and queues the request, except
    /// for steady servants: they only join, and ask on their schedule. (Asking as each
    /// joins would cost the manager quadratic bytes: at 10,000 servants, 4 GB.)
    fn open(&mut self, r: &mut Reactor<Conn>, role: Role) -> bool {
        let steady = matches!(role, Role::Steady(_));
        let ask = Ask {
            role,
            buf: Vec::new(),
            scanned: 0,
            asked: (!steady).then(Instant::now),
            first: true,
            connected: false,
            answered: false,
            failure: None,
        };
        match r.connect(self.cfg.target, self.cfg.bind, Conn::Manager(ask)) {
            Ok(i) => {
                match role {
                    Role::Steady(k) => self.steady[k] = Some(i),
                    _ => r.send(i, REQUEST),
                }
                true
            }
            Err(e) => {
                let target = self.cfg.target;
                self.fail(Failure::from_io(&e), || format!("connect to {target}: {e}"));
                false
            }
        }
    }

    /// Starts one join-leave cycle (or queues a retry when connect fails at once).
    fn start_churner(&mut self, r: &mut Reactor<Conn>) {
        if self.open(r, Role::Churner) {
            self.churners += 1;
        } else {
            self.restarts += 1;
            self.check_hopeless(r);
        }
    }

    /// Starts registering servants, `RAMP` at a time.
    fn ramp(&mut self, r: &mut Reactor<Conn>) {
        while self.registering < RAMP && !r.is_stopped() {
            let Some(role) = self.to_register.pop() else {
                return;
            };
            if self.open(r, role) {
                self.registering += 1;
            } else {
                self.to_register.push(role);
                self.check_hopeless(r);
                return; // try again on the next tick
            }
        }
    }

    /// Setup is over: warm up, or measure at once.
    fn setup_done(&mut self, r: &mut Reactor<Conn>) {
        let now = Instant::now();
        if self.cfg.mode != Mode::Fanout {
            for _ in 0..self.cfg.concurrency {
                self.start_churner(r);
            }
        }
        if self.cfg.mode == Mode::Steady && !self.steady.is_empty() {
            // Spread the first polls over one interval so they do not come in a burst.
            let n = self.steady.len() as u32;
            for k in 0..self.steady.len() {
                let at = now + self.cfg.interval * k as u32 / n;
                self.polls.push(Reverse((at, k)));
            }
        }
        if self.cfg.warmup.is_zero() {
            self.begin_measure(now);
        } else {
            info!("warming up for {:.1} s", self.cfg.warmup.as_secs_f64());
            self.phase = Phase::Warmup;
            self.phase_end = Some(now + self.cfg.warmup);
        }
        if self.cfg.mode == Mode::Fanout {
            self.send_line(r);
        }
    }

    fn begin_measure(&mut self, now: Instant) {
        self.phase = Phase::Measure;
        self.phase_end = self.cfg.run_for().map(|d| now + d);
        self.measure_start = Some(now);
        self.ops = 0;
        self.latency.clear();
        self.steady_answers = 0;
        self.steady_latency.clear();
        self.server_mark = self.cfg.server_pid.and_then(|p| CpuMark::take(p).ok());
        self.client_mark = CpuMark::take(std::process::id()).ok();
        debug!("measuring");
    }

    fn end_measure(&mut self, now: Instant) {
        self.measure_end = Some(now);
        if self.measure_start.is_none() {
            self.measure_start = Some(now);
        }
        let usage = |m: &Option<CpuMark>| {
            m.and_then(|m| {
                Some(ProcessUse {
                    pid: m.pid,
                    cpu: Duration::from_nanos(m.elapsed().ok()?),
                    rss_bytes: procfs::rss_bytes(m.pid).ok(),
                    source: source_name(m.source),
                })
            })
        };
        self.server = usage(&self.server_mark);
        self.client = usage(&self.client_mark);
    }

    /// Measuring is over (time, count, or a signal): let what is in flight finish.
    fn drain(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        if self.phase == Phase::Drain {
            return;
        }
        if self.measure_end.is_none() {
            self.end_measure(now);
        }
        self.phase = Phase::Drain;
        self.drain_deadline = Some(now + self.cfg.timeout);
        self.check_drained(r);
    }

    fn check_drained(&mut self, r: &mut Reactor<Conn>) {
        if self.phase != Phase::Drain {
            return;
        }
        let steady_waiting = self
            .steady
            .iter()
            .flatten()
            .any(|&i| matches!(r.data(i), Some(Conn::Manager(a)) if a.asked.is_some()));
        let line_waiting = self.fanout.sent_at.is_some();
        if self.churners == 0 && !steady_waiting && !line_waiting {
            r.stop();
        }
    }

    fn measuring(&self) -> bool {
        self.phase == Phase::Measure
    }

    /// One more measured operation; ends the measurement at `--count`.
    fn counted(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        let done = match self.cfg.mode {
            Mode::Steady => self.steady_answers,
            _ => self.ops,
        };
        if self.cfg.count.is_some_and(|n| done >= n) {
            self.drain(r, now);
        }
    }

    /// Whether fresh work may start (not while draining or stopped).
    fn running(&self, r: &Reactor<Conn>) -> bool {
        self.phase != Phase::Drain && !r.is_stopped()
    }

    /// A whole document arrived on manager connection `i`.
    /// `wire_len` counts the line ending after `</peers>` too: what the server sent.
    fn document(
        &mut self,
        r: &mut Reactor<Conn>,
        i: Index,
        doc: &[u8],
        wire_len: usize,
        now: Instant,
    ) {
        self.documents += 1;
        self.doc_bytes += wire_len as u64;
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        let role = ask.role;
        let Some(asked) = ask.asked.take() else {
            self.pushes += 1;
            return;
        };
        let first = std::mem::replace(&mut ask.first, false);
        ask.answered = true;
        let must_parse = self.cfg.verify || (matches!(role, Role::Fanout(_)) && first);
        let me = if must_parse {
            match self.check(doc) {
                Ok(me) => Some(me),
                Err(why) => {
                    if let Some(Conn::Manager(ask)) = r.data_mut(i) {
                        ask.failure = Some((Failure::Malformed, why));
                        ask.answered = false;
                    }
                    r.close(i);
                    return;
                }
            }
        } else {
            None
        };
        let took = now.saturating_duration_since(asked).as_nanos() as u64;
        match role {
            Role::Churner => {
                self.cycles_total += 1;
                r.close(i);
                if self.measuring() {
                    self.ops += 1;
                    self.latency.record(took);
                    self.counted(r, now);
                }
            }
            Role::Steady(_) => {
                if self.measuring() {
                    self.steady_answers += 1;
                    self.steady_latency.record(took);
                    self.counted(r, now);
                }
                self.check_drained(r);
            }
            Role::Fanout(k) if first => {
                let Some((me, _)) = me else { return };
                self.registering -= 1;
                self.ramp(r);
                let addr = me;
                match r.listen(Some(addr.ip()), addr.port(), Conn::Listener(k)) {
                    Ok(_) => self.fanout.listening += 1,
                    Err((_, e)) => {
                        self.fail(Failure::ListenFailed, || format!("listen on {addr}: {e}"));
                        let why = format!(
                            "fanout servant {k} cannot listen on {addr}, the port the manager gave it: {e}"
                        );
                        return self.abort(r, why);
                    }
                }
                if self.fanout.listening == self.cfg.concurrency {
                    self.all_listening(r, i);
                }
            }
            Role::Fanout(_) => {
                // Servant 0 asked again once everyone listened: this is the full list.
                let Some((_, all)) = me.or_else(|| self.check(doc).ok()) else {
                    return;
                };
                self.fanout.peers = all;
                self.fanout_ready(r);
            }
        }
    }

    /// Checks `doc`; returns the asker's own address and every peer's.
    fn check(&mut self, doc: &[u8]) -> Result<(SocketAddr, Vec<SocketAddr>), String> {
        let scan::Scanned { peers, me } = scan::scan(doc)?;
        let n = peers.len();
        self.peers_min = Some(self.peers_min.map_or(n, |m| m.min(n)));
        self.peers_max = Some(self.peers_max.map_or(n, |m| m.max(n)));
        Ok((peers[me], peers))
    }

    /// Every fanout servant listens: get the sender going.
    fn all_listening(&mut self, r: &mut Reactor<Conn>, i: Index) {
        info!("{} fanout servants listening", self.cfg.concurrency);
        match self.cfg.sender.clone() {
            Sender::Itself => {
                // Ask again for the whole list, the one a servant joining now would get.
                if let Some(Conn::Manager(ask)) = r.data_mut(i) {
                    ask.asked = Some(Instant::now());
                }
                r.send(i, REQUEST);
            }
            Sender::Servant(path) => match spawn_servant(&path, &self.cfg, r.waker()) {
                Ok(p) => self.fanout.sender = Some(p),
                Err(why) => self.abort(r, why),
            },
        }
    }

    /// The sender knows every listener: send the first line, which proves it.
    fn fanout_ready(&mut self, r: &mut Reactor<Conn>) {
        if !self.fanout.ready {
            self.fanout.ready = true;
            self.send_line(r);
        }
    }

    /// Sends fanout line `seq + 1` (line 1 is the untimed proof that all listen).
    fn send_line(&mut self, r: &mut Reactor<Conn>) {
        if !self.fanout.ready || self.fanout.sent_at.is_some() || !self.running(r) {
            return;
        }
        self.fanout.seq += 1;
        self.fanout.got = 0;
        self.fanout.next_at = None;
        let line = format!("{LINE_MARK}{}\n", self.fanout.seq);
        let now = Instant::now();
        self.fanout.sent_at = Some(now);
        if let Some(p) = &mut self.fanout.sender {
            if let Err(e) = p.stdin.write_all(line.as_bytes()) {
                let why = format!("cannot write to the servant's stdin: {e}{}", tail(p));
                return self.abort(r, why);
            }
            return;
        }
        for k in 0..self.fanout.peers.len() {
            let peer = self.fanout.peers[k];
            match r.connect(peer, self.cfg.bind, Conn::Outgoing { started: now, peer }) {
                Ok(i) => r.send(i, line.as_bytes()),
                Err(e) => self.fail(Failure::SendFailed, || format!("connect to {peer}: {e}")),
            }
        }
    }

    /// Listener `servant` got `line`.
    fn line_arrived(&mut self, r: &mut Reactor<Conn>, servant: usize, line: &[u8]) {
        let Some(at) = line
            .windows(LINE_MARK.len())
            .position(|w| w == LINE_MARK.as_bytes())
        else {
            return;
        };
        let digits = &line[at + LINE_MARK.len()..];
        let end = digits
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(digits.len());
        let Some(seq) = std::str::from_utf8(&digits[..end])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return;
        };
        let f = &mut self.fanout;
        if seq != f.seq || f.sent_at.is_none() || f.seen.get(servant).map_or(true, |&s| s >= seq) {
            return; // late, repeated, or from another run
        }
        f.seen[servant] = seq;
        f.got += 1;
        if f.got < f.seen.len() {
            return;
        }
        let now = Instant::now();
        let sent = f.sent_at.take().unwrap_or(now);
        if seq == 1 {
            info!("every listener has the first line");
            if self.phase == Phase::Setup {
                self.setup_done(r); // sends the next line
                return;
            }
        } else if self.measuring() {
            self.ops += 1;
            self.latency
                .record(now.saturating_duration_since(sent).as_nanos() as u64);
            self.counted(r, now);
        }
        self.check_drained(r);
        self.next_line(r, now);
    }

    fn next_line(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        if self.cfg.interval.is_zero() {
            self.send_line(r);
        } else {
            self.fanout.next_at = Some(now + self.cfg.interval);
        }
    }

    /// Hands every whole document in `bytes` to [`Churn::document`]; returns the
    /// bytes used. `from` is where the search for the closing tag may start.
    fn frame(
        &mut self,
        r: &mut Reactor<Conn>,
        i: Index,
        bytes: &[u8],
        from: usize,
        now: Instant,
    ) -> usize {
        let mut used = 0;
        let mut from = from;
        loop {
            // The CRLF after `</peers>` may come in the next read: skip it there.
            while used < bytes.len() && matches!(bytes[used], b'\r' | b'\n') {
                used += 1;
            }
            from = from.max(used);
            let Some(at) = self.end_tag.find(&bytes[from..]) else {
                return used;
            };
            let end = from + at + END.len();
            let mut next = end;
            while next < bytes.len() && matches!(bytes[next], b'\r' | b'\n') {
                next += 1;
            }
            self.document(r, i, &bytes[used..end], next - used, now);
            used = next;
            from = next;
        }
    }

    /// Splits complete lines out of an incoming connection's buffer.
    fn incoming(&mut self, r: &mut Reactor<Conn>, servant: usize, buf: &mut Vec<u8>, eof: bool) {
        let mut used = 0;
        while let Some(nl) = buf[used..].iter().position(|&b| b == b'\n') {
            let line = buf[used..used + nl].to_vec();
            self.line_arrived(r, servant, &line);
            used += nl + 1;
        }
        buf.drain(..used);
        if eof && !buf.is_empty() {
            let line = std::mem::take(buf);
            self.line_arrived(r, servant, &line);
        }
    }

    /// The 10 ms tick: phases, retries, polls, timeouts, progress.
    fn tick(&mut self, r: &mut Reactor<Conn>) {
        let now = Instant::now();
        if let Some(end) = self.phase_end.filter(|&e| e <= now) {
            self.phase_end = None;
            match self.phase {
                Phase::Warmup => self.begin_measure(end.max(now)),
                Phase::Measure => self.drain(r, now),
                _ => {}
            }
        }
        if self.phase == Phase::Drain && self.drain_deadline.is_some_and(|d| d <= now) {
            debug!("drain deadline: {} cycles still in flight", self.churners);
            r.stop();
        }
        if self.running(r) {
            for _ in 0..std::mem::take(&mut self.restarts) {
                self.start_churner(r);
            }
            self.ramp(r);
            self.poll_due(r, now);
            if self.fanout.next_at.is_some_and(|t| t <= now) {
                self.send_line(r);
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            self.sweep(r, now);
        }
        if self.cfg.progress && now >= self.next_progress {
            self.next_progress = now + Duration::from_secs(1);
            self.progress(now);
        }
        if self.phase == Phase::Setup
            && now.duration_since(self.started) > self.cfg.timeout * 4 + Duration::from_secs(5)
        {
            let why = match self.cfg.mode {
                Mode::Fanout => format!(
                    "setup did not finish: {} of {} fanout servants listening, sender ready: {}{}",
                    self.fanout.listening,
                    self.cfg.concurrency,
                    self.fanout.ready,
                    self.fanout.sender.as_ref().map(tail).unwrap_or_default()
                ),
                _ => format!(
                    "setup did not finish: {} of {} steady servants answered",
                    self.steady_ready,
                    self.steady.len()
                ),
            };
            self.abort(r, why);
        }
        r.set_timer(TICK, now + TICK_EVERY);
    }

    /// Steady servants whose turn it is ask again.
    fn poll_due(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        while let Some(&Reverse((at, k))) = self.polls.peek() {
            if at > now {
                break;
            }
            self.polls.pop();
            self.polls
                .push(Reverse((at + self.cfg.interval.max(TICK_EVERY), k)));
            let Some(i) = self.steady[k] else { continue };
            let Some(Conn::Manager(ask)) = r.data_mut(i) else {
                continue;
            };
            if ask.asked.is_none() && ask.connected {
                ask.asked = Some(Instant::now());
                r.send(i, REQUEST);
            }
        }
    }

    /// Times out requests and lines that took longer than `--timeout`.
    fn sweep(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        let limit = self.cfg.timeout;
        let mut late = Vec::new();
        for (i, s) in r.slots().iter() {
            let since = match &s.data {
                Conn::Manager(a) => a.asked,
                Conn::Outgoing { started, .. } => Some(*started),
                _ => None,
            };
            if since.is_some_and(|t| now.duration_since(t) > limit) {
                late.push(i);
            }
        }
        for i in late {
            match r.data_mut(i) {
                Some(Conn::Manager(a)) => {
                    a.asked = None;
                    a.failure = Some((
                        Failure::Timeout,
                        format!("no whole document within {} ms", limit.as_millis()),
                    ));
                }
                Some(Conn::Outgoing { peer, .. }) => {
                    let peer = *peer;
                    self.fail(Failure::SendFailed, || {
                        format!("line to {peer} not sent within {} ms", limit.as_millis())
                    });
                }
                _ => {}
            }
            r.close(i);
        }
        if let Some(sent) = self
            .fanout
            .sent_at
            .filter(|&t| now.duration_since(t) > limit)
        {
            let missing = self.fanout.seen.len() - self.fanout.got;
            let seq = self.fanout.seq;
            for _ in 0..missing {
                self.fail(Failure::LineMissed, || {
                    format!(
                        "line {seq} did not reach every listener within {} ms",
                        limit.as_millis()
                    )
                });
            }
            debug!(
                "line {seq} timed out {} ms after it was sent",
                sent.elapsed().as_millis()
            );
            self.fanout.sent_at = None;
            if seq == 1 {
                let why = format!(
                    "the first line reached {} of {} listeners within {} ms{}",
                    self.fanout.got,
                    self.fanout.seen.len(),
                    limit.as_millis(),
                    self.fanout.sender.as_ref().map(tail).unwrap_or_default()
                );
                return self.abort(r, why);
            }
            self.check_drained(r);
            self.next_line(r, now);
        }
    }

    fn progress(&self, now: Instant) {
        let (n, h) = match self.cfg.mode {
            Mode::Steady => (self.steady_answers, &self.steady_latency),
            _ => (self.ops, &self.latency),
        };
        let secs = self
            .measure_start
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        eprint!(
            "\r\x1b[K{} {:?} {secs:.0} s: {n} ops, {:.0}/s, p99 {:.3} ms, {} errors",
            self.cfg.mode.name(),
            self.phase,
            if secs > 0.0 { n as f64 / secs } else { 0.0 },
            h.percentile(99.0) as f64 / 1e6,
            self.failures.total()
        );
    }
}

/// Spawns `servant` against the manager with stdin piped; a thread follows its
/// stderr for `listening on` and wakes the loop.
fn spawn_servant(
    path: &std::path::Path,
    cfg: &Config,
    waker: Arc<mio::Waker>,
) -> Result<ServantProcess, String> {
    let mut cmd = Command::new(path);
    cmd.arg("--connmgr")
        .arg(cfg.target.ip().to_string())
        .arg("--port")
        .arg(cfg.target.port().to_string())
        .arg("--log-level")
        .arg("info")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(ip) = cfg.bind {
        cmd.arg("--bind").arg(ip.to_string());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the servant {}: {e}", path.display()))?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let status = Arc::new(AtomicU8::new(0));
    let tail = Arc::new(Mutex::new(Vec::new()));
    let (st, tl) = (status.clone(), tail.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening on ") && st.load(Ordering::SeqCst) == 0 {
                st.store(1, Ordering::SeqCst);
                let _ = waker.wake();
            }
            let mut t = tl.lock().unwrap_or_else(|e| e.into_inner());
            if t.len() == 20 {
                t.remove(0);
            }
            t.push(line);
        }
        st.store(2, Ordering::SeqCst);
        let _ = waker.wake();
    });
    info!("started servant {} (pid {})", path.display(), child.id());
    Ok(ServantProcess {
        child,
        stdin,
        status,
        tail,
    })
}

/// The servant's last stderr lines, for an error message.
fn tail(p: &ServantProcess) -> String {
    let t = p.tail.lock().unwrap_or_else(|e| e.into_inner());
    if t.is_empty() {
        String::new()
    } else {
        format!("; the servant's last log lines:\n  {}", t.join("\n  "))
    }
}

/// The failure a connection that closed before its document stands for.
fn classify(buf: &[u8]) -> (Failure, String) {
    let text = String::from_utf8_lossy(&buf[..buf.len().min(200)]);
    let shown = text.trim();
    if shown.starts_with("max number of servants reached") {
        (Failure::RefusedFull, shown.to_string())
    } else if shown.starts_with("no free servant port") {
        (Failure::RefusedNoPort, shown.to_string())
    } else if buf.is_empty() {
        (Failure::ClosedEarly, "closed before any answer".into())
    } else if shown.starts_with("<peers") {
        (
            Failure::ClosedEarly,
            format!("closed after {} bytes of a document", buf.len()),
        )
    } else {
        (
            Failure::Malformed,
            format!("not a peer document: {shown:?}"),
        )
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
        if let Err(e) = r.accept(request, incoming) {
            warn!("fanout servant {servant} cannot accept: {e}");
        }
    }

    fn data_arrival(&mut self, r: &mut Reactor<Conn>, i: Index, data: &[u8]) {
        let now = Instant::now();
        match r.data_mut(i) {
            Some(Conn::Manager(ask)) => {
                // The common case, a whole document in one read, is framed in place.
                let mut buf = std::mem::take(&mut ask.buf);
                let in_place = buf.is_empty();
                let from = ask.scanned.saturating_sub(END.len());
                if !in_place {
                    buf.extend_from_slice(data);
                }
                let bytes: &[u8] = if in_place { data } else { &buf };
                let used = self.frame(r, i, bytes, from, now);
                if in_place {
                    buf.extend_from_slice(&data[used..]);
                } else {
                    buf.drain(..used);
                }
                if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
                    buf = Vec::new(); // 10,000 idle servants must not each keep a megabyte
                }
                let Some(Conn::Manager(ask)) = r.data_mut(i) else {
                    return;
                };
                ask.scanned = buf.len();
                let garbage = !buf.is_empty() && !buf.starts_with(b"<") && buf.contains(&b'\n');
                if buf.len() > MAX_DOC || garbage {
                    ask.failure = Some(classify(&buf));
                    ask.asked = None;
                    ask.buf = buf;
                    r.close(i);
                } else {
                    ask.buf = buf;
                }
            }
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

    fn close(&mut self, r: &mut Reactor<Conn>, _i: Index, data: Conn) {
        match data {
            Conn::Manager(ask) => {
                let failure = if ask.answered && ask.role == Role::Churner {
                    None
                } else if let Some(f) = ask.failure {
                    Some(f)
                } else if r.is_stopped() || self.phase == Phase::Drain && ask.asked.is_none() {
                    None // we closed it at the end
                } else {
                    Some(classify(&ask.buf))
                };
                let reason = failure.as_ref().map(|(_, why)| why.clone());
                if let Some((f, why)) = failure {
                    let target = self.cfg.target;
                    self.fail(f, || format!("{target}: {why}"));
                    self.check_hopeless(r);
                }
                match ask.role {
                    Role::Churner => {
                        self.churners -= 1;
                        if self.running(r) {
                            self.start_churner(r);
                        }
                        self.check_drained(r);
                    }
                    Role::Steady(k) => {
                        self.steady[k] = None;
                        if ask.first {
                            self.registering -= 1;
                            self.to_register.push(ask.role);
                        } else if self.running(r) {
                            // Lost: join again.
                            self.steady_ready -= 1;
                            self.to_register.push(ask.role);
                        }
                        self.check_drained(r);
                    }
                    Role::Fanout(k) => {
                        if !r.is_stopped() {
                            let why = format!(
                                "fanout servant {k} lost its connection to the manager at {}: {}",
                                self.cfg.target,
                                reason.unwrap_or_else(|| "closed".into())
                            );
                            self.abort(r, why);
                        }
                    }
                }
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
        self.connections += 1;
        if matches!(ask.role, Role::Steady(_)) && std::mem::replace(&mut ask.first, false) {
            // A steady servant has joined; setup ends when they all have.
            self.registering -= 1;
            self.steady_ready += 1;
            self.ramp(r);
            if self.phase == Phase::Setup && self.steady_ready == self.steady.len() {
                self.setup_done(r);
            }
        }
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
        if id == TICK {
            self.tick(r);
        }
    }

    /// The servant's stderr thread saw it listening, or saw it exit.
    fn wake(&mut self, r: &mut Reactor<Conn>) {
        let Some(p) = &self.fanout.sender else { return };
        match p.status.load(Ordering::SeqCst) {
            1 if !self.fanout.ready => {
                info!("the servant is listening");
                self.fanout_ready(r);
            }
            2 if !r.is_stopped() => {
                let why = format!("the servant exited{}", tail(p));
                self.abort(r, why);
            }
            _ => {}
        }
    }

    /// SIGINT or SIGTERM: stop measuring and report what there is.
    fn shutdown(&mut self, r: &mut Reactor<Conn>) {
        let now = Instant::now();
        if self.measure_end.is_none() {
            self.end_measure(now);
        }
        r.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_closes_are_classified_by_what_came() {
        let kind = |b: &[u8]| classify(b).0;
        assert_eq!(
            kind(b"max number of servants reached\r\n"),
            Failure::RefusedFull
        );
        assert_eq!(kind(b"no free servant port\r\n"), Failure::RefusedNoPort);
        assert_eq!(kind(b""), Failure::ClosedEarly);
        assert_eq!(kind(b"<peers><peer><ip>1.2"), Failure::ClosedEarly);
        let (f, why) = classify(b"HTTP/1.1 400 Bad Request\r\n");
        assert_eq!(f, Failure::Malformed);
        assert!(why.contains("HTTP/1.1 400"), "{why}");
    }

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
