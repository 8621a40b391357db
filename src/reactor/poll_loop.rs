//! The poll loop: one turn waits for events, dispatches them, fires due timers,
//! reaps the slots that closed, and writes stdout and stderr. Every change of a
//! slot's state goes through [`Reactor::transition`].

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::policy::sweep_period;
use super::{signals, stdio, Handler, Index, Options, SlotTable, Socket, State, READ_CHUNK};

const WAKER: Token = Token(usize::MAX);
const STDOUT: Token = Token(usize::MAX - 1);
const STDERR: Token = Token(usize::MAX - 2);
/// Watched descriptors have the tokens from here up (id 0, 1, ...); slot indices
/// never come near.
const WATCHED: usize = usize::MAX / 2;

/// The poll loop's state: the slot table, the timers and the queued events.
pub struct Reactor<T> {
    pub(super) poll: Poll,
    waker: Arc<Waker>,
    pub(super) slots: SlotTable<T>,
    pub(super) options: Options,
    /// When the current turn's events arrived: the loop reads the clock once per
    /// turn, and handlers use this instead of asking it again.
    pub(super) now: Instant,
    /// Slots in `sckClosing` or `sckError`, reaped after the batch.
    pub(super) doomed: Vec<Index>,
    /// Slots whose write queue emptied, in order: `send_complete` is due.
    pub(super) completed: VecDeque<Index>,
    /// Slots that used up their budget with more waiting: resumed after the others.
    pub(super) again: Vec<Index>,
    /// The `again` list being worked through, kept to reuse its allocation.
    resuming: Vec<Index>,
    timers: Vec<(Instant, usize)>,
    pub(super) accept_retry_at: Option<Instant>,
    pub(super) next_idle_sweep: Option<Instant>,
    /// Slots closing gracefully, with their deadlines.
    pub(super) lingering: Vec<(Instant, Index)>,
    watched: Vec<Watched>,
    pub(super) stopped: bool,
    /// Private links: this host's key, the handshakes under way (secure.rs).
    pub(super) handshakes: super::secure::Handshakes,
}

/// A descriptor delivered to [`Handler::fd_ready`].
struct Watched {
    fd: RawFd,
    id: usize,
    /// epoll refused it (a regular file, `/dev/null`): reported every turn.
    always_ready: bool,
    /// The handler stopped before it would block: reported again next turn.
    again: bool,
}

impl<T> Reactor<T> {
    pub fn new(options: Options) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let now = Instant::now();
        let next_idle_sweep = options.idle_timeout.map(|t| now + sweep_period(t));
        Ok(Reactor {
            poll,
            waker,
            slots: SlotTable::new(),
            options,
            now,
            doomed: Vec::new(),
            completed: VecDeque::new(),
            again: Vec::new(),
            resuming: Vec::new(),
            timers: Vec::new(),
            accept_retry_at: None,
            next_idle_sweep,
            lingering: Vec::new(),
            watched: Vec::new(),
            stopped: false,
            handshakes: Default::default(),
        })
    }

    /// Turns SIGINT and SIGTERM into [`Handler::shutdown`] calls (a second one exits at
    /// once) and SIGHUP into [`Handler::reload`].
    pub fn catch_signals(&self) -> io::Result<()> {
        signals::install(self.waker.clone())
    }

    /// Changes the idle timeout (on a reload); the sweeps follow the new period.
    pub fn set_idle_timeout(&mut self, limit: Option<Duration>) {
        self.options.idle_timeout = limit;
        self.next_idle_sweep = limit.map(|t| self.now + sweep_period(t));
    }

    /// A handle other threads use to wake the loop ([`Handler::wake`]).
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// The time the current event batch started.
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn slots(&self) -> &SlotTable<T> {
        &self.slots
    }

    /// Slot `i`, in use or in `sckClosed`.
    pub fn socket(&self, i: Index) -> Option<&Socket<T>> {
        self.slots.get(i)
    }

    pub fn data(&self, i: Index) -> Option<&T> {
        self.slots.get(i)?.data.as_ref()
    }

    pub fn data_mut(&mut self, i: Index) -> Option<&mut T> {
        self.slots.get_mut(i)?.data.as_mut()
    }

    pub fn state(&self, i: Index) -> State {
        self.slots.get(i).map_or(State::Closed, Socket::state)
    }

    /// Calls [`Handler::timer`] with `id` at `at`, replacing any timer with that id.
    pub fn set_timer(&mut self, id: usize, at: Instant) {
        self.cancel_timer(id);
        self.timers.push((at, id));
    }

    pub fn cancel_timer(&mut self, id: usize) {
        self.timers.retain(|&(_, t)| t != id);
    }

    pub fn timer_due(&self, id: usize) -> Option<Instant> {
        self.timers
            .iter()
            .find(|&&(_, t)| t == id)
            .map(|&(at, _)| at)
    }

    /// Delivers readiness of `fd` to [`Handler::fd_ready`] with `id` (a small number
    /// of the daemon's choosing), from the same loop. Readiness is edge-triggered:
    /// a handler that stops reading before the descriptor would block calls
    /// [`Reactor::fd_again`]. epoll cannot watch regular files and `/dev/null`;
    /// those are reported every turn until [`Reactor::unwatch_fd`].
    pub fn watch_fd(&mut self, fd: RawFd, id: usize) -> io::Result<()> {
        let token = Token(WATCHED + id);
        let registered =
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), token, Interest::READABLE);
        let always_ready = match registered {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => true,
            Err(e) => return Err(e),
        };
        self.watched.push(Watched {
            fd,
            id,
            always_ready,
            again: false,
        });
        Ok(())
    }

    /// Stops watching descriptor `id` (at end of input, say).
    pub fn unwatch_fd(&mut self, id: usize) {
        if let Some(k) = self.watched.iter().position(|w| w.id == id) {
            let w = self.watched.remove(k);
            if !w.always_ready {
                let _ = self.poll.registry().deregister(&mut SourceFd(&w.fd));
            }
        }
    }

    /// Descriptor `id` may have more input than the handler read this turn:
    /// report it again next turn, after the other events.
    pub fn fd_again(&mut self, id: usize) {
        if let Some(w) = self.watched.iter_mut().find(|w| w.id == id) {
            w.again = true;
        }
    }

    /// Ends the loop after the current batch.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Lets [`Reactor::run`] go on after [`Reactor::stop`]: for a caller that
    /// runs the loop in stages (a test waiting for one reply at a time).
    pub fn clear_stop(&mut self) {
        self.stopped = false;
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Every change of a slot's state goes through here. It is logged at debug
    /// (`slot 3 (127.0.0.1:40000): state=sckConnected=>sckClosing`); a slot entering
    /// `sckClosing` or `sckError` is doomed, queued for the reap after this event
    /// batch, and stays doomed whatever else happens to it before then. A slot
    /// without a socket is free and stays in `sckClosed`: closing, aborting or
    /// failing it again (a daemon's late timer, a stale error) changes nothing.
    pub(super) fn transition(&mut self, i: Index, to: State) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        let from = s.state;
        let doomed = matches!(from, State::Closing | State::Error);
        // Doomed stays doomed and free stays free, until the reap closes the slot.
        if from == to || (to != State::Closed && (doomed || !s.has_socket())) {
            return;
        }
        debug!("slot {i} ({}): state={from}=>{to}", s.addr);
        s.state = to;
        if matches!(to, State::Closing | State::Error) {
            self.doomed.push(i);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers
            .iter()
            .map(|&(at, _)| at)
            .chain(self.accept_retry_at)
            .chain(self.next_idle_sweep)
            .chain(self.lingering.iter().map(|&(at, _)| at).min())
            .chain(self.next_handshake_deadline())
            .min()
    }

    /// Work is waiting that no event will announce.
    fn busy(&self) -> bool {
        !self.again.is_empty() || self.watched.iter().any(|w| w.always_ready || w.again)
    }

    /// Runs the loop until [`Reactor::stop`]. While it runs, the loop owns stdout
    /// and stderr ([`stdio`]), unless another loop in the process has them.
    pub fn run<H: Handler<Data = T>>(&mut self, h: &mut H) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; READ_CHUNK];
        let streams = stdio::attach(self.poll.registry(), &self.waker, [STDOUT, STDERR]);
        self.now = Instant::now();
        let mut result = Ok(());
        while !self.stopped && result.is_ok() {
            result = self.turn(h, &mut events, &mut buf, streams.as_ref());
        }
        if let Some(streams) = streams {
            streams.detach(self.poll.registry());
        }
        result
    }

    /// One turn: wait, dispatch, resume what used its budget, then timers, sends
    /// completed, the reap, and the standard streams' one write each.
    pub(super) fn turn<H: Handler<Data = T>>(
        &mut self,
        h: &mut H,
        events: &mut Events,
        buf: &mut [u8],
        streams: Option<&stdio::Attached>,
    ) -> io::Result<()> {
        // Measured from this turn's start: a deadline may be met late by as long as
        // the turn took, which saves reading the clock again.
        let timeout = if self.busy() {
            Some(Duration::ZERO)
        } else {
            self.next_deadline()
                .map(|d| d.saturating_duration_since(self.now))
        };
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        self.now = Instant::now();
        // What used its budget last turn goes after this turn's events.
        let mut resuming = std::mem::replace(&mut self.again, std::mem::take(&mut self.resuming));
        for event in events.iter() {
            match event.token() {
                WAKER => {
                    if signals::take() {
                        info!("signal received, shutting down");
                        h.shutdown(self);
                    }
                    if signals::take_reload() {
                        h.reload(self);
                    }
                    h.wake(self);
                }
                STDOUT | STDERR => {
                    if let Some(streams) = streams {
                        streams.writable(usize::from(event.token() == STDERR));
                    }
                }
                Token(t) if t >= WATCHED => h.fd_ready(self, t - WATCHED),
                Token(i) => self.ready(h, i, event, buf),
            }
        }
        for &i in &resuming {
            self.resume(h, i, buf);
        }
        resuming.clear();
        self.resuming = resuming;
        let mut k = 0;
        while let Some(w) = self.watched.get_mut(k) {
            k += 1;
            if w.always_ready || std::mem::take(&mut w.again) {
                let id = w.id;
                h.fd_ready(self, id);
            }
        }
        self.after_batch(h);
        if let Some(streams) = streams {
            streams.flush();
        }
        Ok(())
    }

    /// Retries and sweeps, timers, then queued `send_complete`s, then the reaping.
    fn after_batch<H: Handler<Data = T>>(&mut self, h: &mut H) {
        let now = self.now;
        if self.accept_retry_at.is_some_and(|at| at <= now) {
            self.retry_accepts(h);
        }
        if self.next_idle_sweep.is_some_and(|at| at <= now) {
            self.sweep_idle();
        }
        if self.lingering.iter().any(|&(at, _)| at <= now) {
            self.expire_lingering();
        }
        if self.next_handshake_deadline().is_some_and(|at| at <= now) {
            self.expire_handshakes(h);
        }
        if self.timers.iter().any(|&(at, _)| at <= now) {
            // Take the due ones first: a handler that re-arms its timer for `now`
            // runs again next turn, not forever within this one.
            let mut due = Vec::new();
            self.timers.retain(|&(at, id)| {
                let fire = at <= now;
                if fire {
                    due.push((at, id));
                }
                !fire
            });
            due.sort_unstable();
            for (_, id) in due {
                h.timer(self, id);
            }
        }
        loop {
            while let Some(i) = self.completed.pop_front() {
                let Some(s) = self.slots.get_mut(i) else {
                    continue;
                };
                s.complete_queued = false;
                // Taken by the socket although the peer has closed its side (in
                // this turn, or while it was flushed): sent all the same, and the
                // handler is told so before the close.
                let fin = s.peer_closed;
                let live = s.state == State::Connected || (fin && s.state == State::Closing);
                if !live || s.unsent() > 0 {
                    continue;
                }
                let owed = fin || !s.close_when_sent;
                if s.close_when_sent {
                    self.transition(i, State::Closing);
                }
                if owed {
                    h.send_complete(self, i);
                }
            }
            if self.doomed.is_empty() {
                break;
            }
            self.reap(h);
        }
    }

    /// Closes every doomed slot's socket, puts the slot back in `sckClosed` and
    /// tells the handler. A close may doom others or complete sends; the caller
    /// loops until both queues are empty.
    ///
    /// VB reuses a control whose state is 0 or 8 (`is_reusable`). One in
    /// sckClosing still has its socket, and the batch may still hold events for
    /// that socket under the slot's token: a connection put in the slot then would
    /// get them (VB's stale-event bug). So only here, after the batch and once its
    /// socket is closed, is a slot offered for reuse. Close late.
    pub(super) fn reap<H: Handler<Data = T>>(&mut self, h: &mut H) {
        while let Some(i) = self.doomed.pop() {
            // Dropping the socket closes the fd, which also takes it out of the epoll
            // set: no deregister syscall on the churn path.
            let Some(data) = self.slots.vacate(i) else {
                continue;
            };
            self.transition(i, State::Closed);
            if let Some(data) = data {
                h.close(self, i, data);
            }
        }
    }
}
