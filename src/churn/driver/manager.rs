//! The virtual clients' connections to the target: opening them (from each
//! source address in turn, in a ramp for servants that stay), asking, timing a
//! finished cycle, and what a connection that closed early stands for. Framing
//! what comes back is in [`super::answer`].

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::super::args::show;
use super::super::report::Failure;
use super::super::Mode;
use super::{Churn, Conn, Phase, Role, TICK_EVERY};
use crate::reactor::{Index, Reactor};

/// How often a flood's filler asks again: well inside the manager's default 30 s
/// idle timeout, so the fillers hold the manager full.
pub(super) const FILL_POLL: Duration = Duration::from_secs(10);

/// A read buffer that grew past this is freed once empty, not kept for reuse.
pub(super) const KEEP_CAPACITY: usize = 64 * 1024;

/// What every virtual servant asks.
pub(super) const REQUEST: &[u8] = b"needs peer list\n";
/// What ends a peer document on the wire (the manager never sends `<peers/>`).
pub(super) const END: &[u8] = b"</peers>";
/// Servants connecting at once while steady and fanout servants register, so the
/// manager's listen backlog does not overflow into SYN retries.
const RAMP: usize = 256;
/// An answer larger than this without its end is garbage.
pub(super) const MAX_DOC: usize = 64 << 20;
/// Answer buffers kept for reuse, at most: one per connection of a typical run.
const SPARE_BUFS: usize = 4096;
/// A refusal is one short line; a flooder reads no more than this of anything.
const MAX_REFUSAL: usize = 512;
/// How much of a server's unexpected bytes a failure message quotes.
const QUOTE: usize = 60;

/// A connection to the target.
pub(super) struct Ask {
    pub role: Role,
    pub buf: Vec<u8>,
    /// Bytes of `buf` already searched for the end of an answer.
    pub scanned: usize,
    /// When the request now outstanding was sent (or its connect started); for a
    /// flooder, when its connect started.
    pub asked: Option<Instant>,
    /// Open loop: when the outstanding request was due, and whether it counts
    /// (was due inside the measured window).
    pub intended: Option<Instant>,
    pub counted: bool,
    /// When the connect completed (the request goes out then), and when the
    /// outstanding request's first reply byte came: the cycle's parts.
    pub connected_at: Option<Instant>,
    pub first_byte: Option<Instant>,
    /// The first answer on this connection is setup, not a measured poll.
    pub first: bool,
    pub connected: bool,
    pub answered: bool,
    pub failure: Option<(Failure, String)>,
    /// The version of the list this connection follows (0: none yet).
    pub version: super::version::Version,
    /// A churner's offset, from its own document (`--stay`).
    pub offset: Option<usize>,
    /// When a churner that stays leaves.
    pub leave_at: Option<Instant>,
    /// `--private`: the member key a churner's link holds, given back at close.
    pub key: Option<usize>,
}

/// A finished cycle's parts, in nanoseconds: `connect()` until writable, and
/// request sent until the first reply byte (the figures h2load and ab report).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Parts {
    pub connect: Option<u64>,
    pub ttfb: Option<u64>,
}

impl Ask {
    /// The parts of the cycle `asked` began, and forgets the first byte for the
    /// next request on a kept connection. Only a connection opened by the cycle
    /// has a connect in it, and a flooder sends no request.
    pub fn parts(&mut self, asked: Instant) -> Parts {
        let ns = |from: Instant, to: Instant| to.saturating_duration_since(from).as_nanos() as u64;
        let opened = matches!(self.role, Role::Churner | Role::Flooder);
        let connect = self.connected_at.filter(|_| opened).map(|c| ns(asked, c));
        let sent = self.connected_at.map_or(asked, |c| c.max(asked));
        let first = self.first_byte.take();
        let ttfb = first
            .filter(|_| self.role != Role::Flooder)
            .map(|b| ns(sent, b));
        Parts { connect, ttfb }
    }

    /// Bytes came at `now`: the first of the outstanding request's reply?
    pub fn bytes_came(&mut self, now: Instant) {
        if self.asked.is_some() && self.first_byte.is_none() {
            self.first_byte = Some(now);
        }
    }

    /// `buf` is an empty buffer, fresh or one a closed connection left.
    fn new(role: Role, asked: Option<Instant>, buf: Vec<u8>) -> Ask {
        Ask {
            role,
            buf,
            scanned: 0,
            asked,
            intended: None,
            counted: false,
            connected_at: None,
            first_byte: None,
            first: true,
            connected: false,
            answered: false,
            failure: None,
            version: Default::default(),
            offset: None,
            leave_at: None,
            key: None,
        }
    }
}

/// Virtual servants registering at once with a private manager: its limit on
/// handshakes pending from one address (16) would refuse more, and they come from
/// one address.
const PRIVATE_RAMP: usize = 12;

/// Virtual servants starting to register with a private manager in one second:
/// it lets one address start 128 handshakes a second (PRIVATE.md, Strangers),
/// and all of them come from one address.
const PRIVATE_PER_SECOND: usize = 100;

impl Churn {
    /// Opens a connection to the target for `role`; the request goes out once it
    /// is up ([`Churn::connected`]), except for bare steady servants, which only join and ask on their schedule (every
    /// answer is the whole list: asking as each joins would cost the manager
    /// quadratic bytes, at 10,000 servants 4 GB, on top of the polls; a
    /// version-aware one asks at once, as the servant does, and then polls for
    /// changes), kept connections, which ask once connected, and flooders, which only wait
    /// to be refused (a request the manager has not read when it closes would turn
    /// its close into a reset). `open_loop` is the start's due time and whether it
    /// counts.
    pub(super) fn open(
        &mut self,
        r: &mut Reactor<Conn>,
        role: Role,
        open_loop: Option<(Instant, bool)>,
    ) -> bool {
        let asks_now = match role {
            Role::Churner | Role::Flooder | Role::Fanout(_) | Role::Filler(_) => true,
            Role::Steady(_) => !self.cfg.bare,
            Role::KeepAlive => false,
        };
        let t0 = Instant::now();
        let buf = self.spare_bufs.pop().unwrap_or_default();
        let mut ask = Ask::new(role, asks_now.then_some(t0), buf);
        if let Some((at, counted)) = open_loop {
            ask.intended = Some(at);
            ask.counted = counted;
        }
        let source = match self.cfg.sources.len() {
            0 => None,
            n => {
                self.next_source = (self.next_source + 1) % n;
                Some(self.cfg.sources[self.next_source])
            }
        };
        let connected = if self.keys.is_some() {
            self.connect_private(r, source, ask)
        } else {
            r.connect(self.cfg.target, source, Conn::Manager(ask))
        };
        if matches!(role, Role::Churner | Role::Flooder) && self.measuring() {
            // The call alone: where the kernel searches for a free source port.
            self.stats.connect_call(t0.elapsed());
        }
        match connected {
            Ok(i) => {
                match role {
                    Role::Steady(k) | Role::Filler(k) => self.steady[k] = Some(i),
                    Role::Churner => self.churner_connecting(source),
                    Role::Fanout(_) | Role::Flooder | Role::KeepAlive => {}
                }
                true
            }
            Err(e) => {
                let target = self.cfg.target;
                let from = source.map_or(String::new(), |ip| format!(" from {ip}"));
                self.fail(Failure::from_io(&e), || {
                    format!("connect to {target}{from}: {e}")
                });
                false
            }
        }
    }

    /// Connection `i` is up: a request asked at its open goes out now. Written
    /// straight to the socket; queued while connecting it would cost the reactor
    /// an allocation per cycle, and it went out at this moment all the same.
    pub(super) fn connected(&mut self, r: &mut Reactor<Conn>, i: Index) {
        let Some(Conn::Manager(ask)) = r.data(i) else {
            return;
        };
        if ask.asked.is_some() && ask.role != Role::Flooder {
            r.send(i, &self.request_for(ask.version));
        }
    }

    /// A closed connection's answer buffer, kept for the next one to open:
    /// a cycle allocates nothing. Large ones go back to the allocator.
    fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0
            && buf.capacity() <= KEEP_CAPACITY
            && self.spare_bufs.len() < SPARE_BUFS
        {
            buf.clear();
            self.spare_bufs.push(buf);
        }
    }

    /// Starts one join-leave cycle or flood connection (or queues a retry when
    /// connect fails at once).
    pub(super) fn start_churner(&mut self, r: &mut Reactor<Conn>, role: Role) {
        if self.open(r, role, None) {
            self.churners += 1;
        } else {
            self.restarts += 1;
            self.check_hopeless(r);
        }
    }

    /// Starts registering servants, `RAMP` at a time.
    pub(super) fn ramp(&mut self, r: &mut Reactor<Conn>) {
        let ramp = if self.keys.is_some() {
            PRIVATE_RAMP
        } else {
            RAMP
        };
        while self.registering < ramp && !r.is_stopped() {
            if self.keys.is_some() && !self.private_ramp_allows(r.now()) {
                return; // try again on the next tick
            }
            let Some(role) = self.to_register.pop() else {
                return;
            };
            if self.open(r, role, None) {
                self.registering += 1;
                self.ramp_second.1 += 1;
            } else {
                self.to_register.push(role);
                self.check_hopeless(r);
                return; // try again on the next tick
            }
        }
    }

    /// Whether another private registration may start in this second.
    fn private_ramp_allows(&mut self, now: Instant) -> bool {
        match self.ramp_second.0 {
            Some(began) if now.duration_since(began) < Duration::from_secs(1) => {
                self.ramp_second.1 < PRIVATE_PER_SECOND
            }
            _ => {
                self.ramp_second = (Some(now), 0);
                true
            }
        }
    }

    /// Steady servants whose turn it is ask again.
    pub(super) fn poll_due(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        while let Some(&Reverse((at, k))) = self.polls.peek() {
            if at > now {
                break;
            }
            self.polls.pop();
            let every = match self.cfg.mode {
                Mode::Flood => FILL_POLL,
                _ => self.cfg.interval.max(TICK_EVERY),
            };
            self.polls.push(Reverse((at + every, k)));
            let Some(i) = self.steady[k] else { continue };
            let Some(Conn::Manager(ask)) = r.data_mut(i) else {
                continue;
            };
            if ask.asked.is_none() && ask.connected {
                ask.asked = Some(Instant::now());
                let version = ask.version;
                r.send(i, &self.request_for(version));
            }
        }
    }

    /// Bytes from the manager on a flooder's connection: once a whole line is
    /// there, a refusal is the operation done, anything else a failure; either way
    /// the flooder hangs up and goes again.
    pub(super) fn refusal_data(&mut self, r: &mut Reactor<Conn>, i: Index, data: &[u8]) {
        let now = Instant::now();
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        ask.bytes_came(now);
        let room = MAX_REFUSAL.saturating_sub(ask.buf.len());
        ask.buf.extend_from_slice(&data[..data.len().min(room)]);
        if !ask.buf.contains(&b'\n') && ask.buf.len() < MAX_REFUSAL {
            return;
        }
        let (kind, why) = classify(&ask.buf);
        let refused = kind.is_refusal();
        // No `asked`: it timed out already, and was counted so.
        let parts = ask.asked.map(|a| ask.parts(a)).unwrap_or_default();
        let asked = ask.asked.take();
        if refused {
            ask.answered = asked.is_some();
        } else if asked.is_some() {
            ask.failure = Some((kind, format!("not a refusal: {why}")));
        }
        r.close(i);
        let Some(asked) = asked.filter(|_| refused) else {
            return;
        };
        self.cycle_done(r, asked, None, false, parts, now);
    }

    /// A cycle, request or refusal is done: count it, and time it if it falls in
    /// the measured window (an open loop's, if its start was due in it). Timed
    /// from the due time `intended` when it started late, else from its start;
    /// its `parts` from when they happened.
    pub(super) fn cycle_done(
        &mut self,
        r: &mut Reactor<Conn>,
        asked: Instant,
        intended: Option<Instant>,
        counted: bool,
        parts: Parts,
        now: Instant,
    ) {
        self.stats.cycles_total += 1;
        let since = |t: Instant| now.saturating_duration_since(t).as_nanos() as u64;
        match intended {
            Some(due) if counted => self
                .stats
                .op(since(due.min(asked)), Some(since(asked)), parts),
            Some(_) => {}
            None if self.measuring() => {
                self.stats.op(since(asked), None, parts);
                self.counted(r, now);
            }
            None => {}
        }
    }

    /// A connection to the target has closed: count what it means, and start
    /// again where the role does.
    pub(super) fn manager_closed(&mut self, r: &mut Reactor<Conn>, i: Index, ask: Ask) {
        match ask.role {
            Role::Filler(k) => return self.filler_closed(r, k, ask),
            Role::Fanout(k) if self.fanout.moving.contains(&k) => {
                self.fanout.moving.retain(|&m| m != k);
                return self.ramp(r);
            }
            _ => {}
        }
        let mut ask = ask;
        let at_eof = self.expect.is_none() && self.cfg.generic();
        if at_eof && ask.failure.is_none() && !ask.buf.is_empty() {
            // Without --expect an answer ends when the server closes: now.
            if let Some(asked) = ask.asked {
                let parts = ask.parts(asked);
                ask.asked = None;
                self.stats.documents += 1;
                self.stats.doc_bytes += ask.buf.len() as u64;
                ask.answered = true;
                let now = Instant::now();
                self.cycle_done(r, asked, ask.intended, ask.counted, parts, now);
            }
        }
        let done = match ask.role {
            Role::Churner | Role::Flooder => ask.answered,
            // A kept connection closed with nothing asked has lost nothing.
            Role::KeepAlive => ask.asked.is_none(),
            _ => false,
        };
        let failure = if let Some(f) = ask.failure.take() {
            Some(f)
        } else if done || r.is_stopped() || self.phase == Phase::Drain && ask.asked.is_none() {
            None // finished, or we closed it at the end
        } else if self.cfg.generic() {
            Some(self.classify_generic(&ask.buf))
        } else {
            Some(classify(&ask.buf))
        };
        let reason = failure.as_ref().map(|(_, why)| why.clone());
        self.recycle(std::mem::take(&mut ask.buf));
        if let Some((f, why)) = failure {
            let target = self.cfg.target;
            self.fail(f, || format!("{target}: {why}"));
            self.check_hopeless(r);
        }
        match ask.role {
            Role::Churner | Role::Flooder | Role::KeepAlive => {
                self.churners -= 1;
                if let Some(ol) = &mut self.open_loop {
                    ol.idle.retain(|&k| k != i);
                }
                if self.running(r) && (self.open_loop.is_none() || ask.role == Role::KeepAlive) {
                    self.start_churner(r, ask.role);
                }
                self.dispatch(r);
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
            Role::Filler(_) => {}
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
}

/// The failure a connection that closed before its document stands for.
pub(super) fn classify(buf: &[u8]) -> (Failure, String) {
    const FULL: &str = "max number of servants reached";
    const NO_PORT: &str = "no free servant port";
    const PER_ADDRESS: &str = "max servants per address reached";
    let shown = buf.trim_ascii_start();
    let refusals = [
        (FULL, Failure::RefusedFull),
        (NO_PORT, Failure::RefusedNoPort),
        (PER_ADDRESS, Failure::RefusedPerAddress),
    ];
    if let Some((text, kind)) = refusals
        .iter()
        .find(|(text, _)| shown.starts_with(text.as_bytes()))
    {
        (*kind, (*text).into())
    } else if buf.is_empty() {
        (Failure::ClosedEarly, "closed before any answer".into())
    } else if [&b"<peers"[..], b"<delta", b"<unchanged"]
        .iter()
        .any(|root| shown.starts_with(root))
    {
        (
            Failure::ClosedEarly,
            format!("closed after {} bytes of a document", buf.len()),
        )
    } else {
        (
            Failure::Malformed,
            format!(
                "not a peer document: {} (for another kind of server, give --request and --expect)",
                show(buf, QUOTE)
            ),
        )
    }
}

impl Churn {
    /// The failure a generic connection that closed without its answer stands for.
    fn classify_generic(&self, buf: &[u8]) -> (Failure, String) {
        if buf.is_empty() {
            return (Failure::ClosedEarly, "closed before any answer".into());
        }
        let wanted = self.expect.as_ref().map_or(String::new(), |f| {
            format!(" without {}", show(f.needle(), QUOTE))
        });
        (
            Failure::ClosedEarly,
            format!(
                "closed after {} bytes{wanted}: {}",
                buf.len(),
                show(buf, QUOTE)
            ),
        )
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
        assert_eq!(
            kind(b"max servants per address reached\r\n"),
            Failure::RefusedPerAddress
        );
        assert_eq!(kind(b""), Failure::ClosedEarly);
        assert_eq!(kind(b"<peers><peer><ip>1.2"), Failure::ClosedEarly);
        let (f, why) = classify(b"HTTP/1.1 400 Bad Request\r\n");
        assert_eq!(f, Failure::Malformed);
        assert!(why.contains("HTTP/1.1 400"), "{why}");
    }
}
