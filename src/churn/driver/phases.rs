//! A run's phases and its 10 ms tick: setup, warm-up, the measured window, and the
//! drain at the end; retries, timeouts and the second-by-second lines.

use std::time::{Duration, Instant};

use log::{debug, info};

use super::super::report::Failure;
use super::super::Mode;
use super::open_loop::OpenLoop;
use super::{Churn, Conn, Role, SWEEP_EVERY, TICK, TICK_EVERY};
use crate::reactor::Reactor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Setup,
    Warmup,
    Measure,
    Drain,
}

impl Churn {
    /// Setup is over: warm up, or measure at once.
    pub(super) fn setup_done(&mut self, r: &mut Reactor<Conn>) {
        let now = Instant::now();
        match self.cfg.mode {
            Mode::JoinLeave if self.cfg.keep_alive => {
                for _ in 0..self.cfg.concurrency {
                    self.start_churner(r, Role::KeepAlive);
                }
            }
            // The open loop starts its cycles on its own schedule.
            Mode::JoinLeave if self.cfg.rate.is_some() => {}
            Mode::JoinLeave | Mode::Steady => {
                for _ in 0..self.cfg.concurrency {
                    self.start_churner(r, Role::Churner);
                }
            }
            Mode::Flood => {
                for _ in 0..self.cfg.concurrency {
                    self.start_churner(r, Role::Flooder);
                }
                info!(
                    "flooding {} with {} connections in flight",
                    self.cfg.target, self.churners
                );
            }
            Mode::Fanout => {}
        }
        if self.cfg.mode == Mode::Steady && !self.steady.is_empty() {
            // Spread the first polls over one interval so they do not come in a burst.
            let n = self.steady.len() as u32;
            for k in 0..self.steady.len() {
                let at = now + self.cfg.interval * k as u32 / n;
                self.polls.push(std::cmp::Reverse((at, k)));
            }
        }
        if let Some(rate) = self.cfg.rate {
            self.open_loop = Some(OpenLoop::new(now, rate));
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
        self.dispatch(r);
    }

    fn begin_measure(&mut self, now: Instant) {
        self.phase = Phase::Measure;
        self.phase_end = self.cfg.run_for().map(|d| now + d);
        self.measure_start = Some(now);
        self.next_second = now + Duration::from_secs(1);
        self.stats.open_window(now);
        if let Some(ol) = &mut self.open_loop {
            ol.open_window(now, self.cfg.count);
        }
        debug!("measuring");
    }

    pub(super) fn end_measure(&mut self, now: Instant) {
        // The last part-second, if it is long enough to say anything.
        if self.phase == Phase::Measure
            && now.duration_since(self.stats.second_start()) >= Duration::from_millis(100)
        {
            self.second(now);
        }
        self.measure_end = Some(now);
        self.measure_start.get_or_insert(now);
        self.stats.close_window();
    }

    /// Measuring is over (time, count, or a signal): let what is in flight finish,
    /// and, in an open loop, the starts that were due and not yet made.
    pub(super) fn drain(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        if self.phase == Phase::Drain {
            return;
        }
        if self.measure_end.is_none() {
            self.end_measure(now);
        }
        self.phase = Phase::Drain;
        self.drain_deadline = Some(now + self.cfg.timeout);
        if let Some(ol) = &mut self.open_loop {
            ol.close_window();
        }
        self.check_drained(r);
    }

    /// Stops the loop once draining and nothing is in flight.
    pub(super) fn check_drained(&mut self, r: &mut Reactor<Conn>) {
        if self.phase != Phase::Drain {
            return;
        }
        // Anything asked and not yet answered: a cycle, a kept request, a poll.
        let asked = r
            .slots()
            .iter()
            .any(|(_, s)| matches!(s.data(), Some(Conn::Manager(a)) if a.asked.is_some()));
        let line_waiting = self.fanout.sent_at.is_some();
        let cycles_waiting = asked || !self.cfg.keep_alive && self.churners > 0;
        let starts_waiting = self.open_loop.as_ref().is_some_and(|ol| ol.pending() > 0);
        if !cycles_waiting && !line_waiting && !starts_waiting {
            r.stop();
        }
    }

    /// One more measured operation; ends the measurement at `--count` (an open
    /// loop ends it when the last counted start is made, in [`Churn::dispatch`]).
    pub(super) fn counted(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        if self.open_loop.is_some() {
            return;
        }
        let done = match self.cfg.mode {
            Mode::Steady => self.stats.steady_answers,
            _ => self.stats.ops,
        };
        if self.cfg.count.is_some_and(|n| done >= n) {
            self.drain(r, now);
        }
    }

    /// Whether fresh work may start (not while draining or stopped).
    pub(super) fn running(&self, r: &Reactor<Conn>) -> bool {
        self.phase != Phase::Drain && !r.is_stopped()
    }

    /// The 10 ms tick: phases, retries, polls, timeouts, the seconds.
    pub(super) fn tick(&mut self, r: &mut Reactor<Conn>) {
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
            let role = match self.cfg.mode {
                Mode::Flood => Role::Flooder,
                _ if self.cfg.keep_alive => Role::KeepAlive,
                _ => Role::Churner,
            };
            for _ in 0..std::mem::take(&mut self.restarts) {
                self.start_churner(r, role);
            }
            self.ramp(r);
            if self.cfg.mode == Mode::Flood {
                self.fill_more(r);
            }
            self.poll_due(r, now);
            if self.fanout.next_at.is_some_and(|t| t <= now) {
                self.send_line(r);
            }
        }
        self.leave_due(r, now);
        // Starts that waited for a connection too long time out even if none frees.
        self.dispatch(r);
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            self.sweep(r, now);
        }
        if now >= self.next_second {
            // Whole seconds from the window's start, however late the tick.
            while self.next_second <= now {
                self.next_second += Duration::from_secs(1);
            }
            self.second(now);
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
                    self.sender_tail()
                ),
                Mode::Flood => format!(
                    "setup did not finish: {} servants hold the manager, {} still joining",
                    self.fill.held, self.fill.joining
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

    /// Times out requests, refusals and lines that took longer than `--timeout`.
    fn sweep(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        let limit = self.cfg.timeout;
        let mut late = Vec::new();
        for (i, s) in r.slots().iter() {
            let since = match s.data() {
                Some(Conn::Manager(a)) => a.asked,
                Some(Conn::Outgoing { started, .. }) => Some(*started),
                _ => None,
            };
            if since.is_some_and(|t| now.duration_since(t) > limit) {
                late.push(i);
            }
        }
        let ms = limit.as_millis();
        let generic = self.cfg.generic();
        for i in late {
            match r.data_mut(i) {
                Some(Conn::Manager(a)) => {
                    a.asked = None;
                    let why = match a.role {
                        Role::Flooder => {
                            format!("not refused within {ms} ms: the manager has room again")
                        }
                        _ if generic => format!("no whole answer within {ms} ms"),
                        _ => format!("no whole document within {ms} ms"),
                    };
                    a.failure = Some((Failure::Timeout, why));
                }
                Some(Conn::Outgoing { peer, .. }) => {
                    let peer = *peer;
                    self.fail(Failure::SendFailed, || {
                        format!("line to {peer} not sent within {ms} ms")
                    });
                }
                _ => {}
            }
            r.close(i);
        }
        self.line_timeouts(r, now);
    }
}
