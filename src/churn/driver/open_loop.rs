//! The open loop (`--rate N`): start k is due at `start + k/N` whatever the
//! answers do, and its latency counts from then, not from when a connection was
//! free to make it. A closed loop (each client starting again when done) asks
//! less of a server that slows down, and so never times the requests a stalled
//! server would have kept waiting: coordinated omission, in Gil Tene's words.
//! Here every due start is made, late if it must be, and its wait is in its
//! latency; what the server alone took is kept apart as the service time.
//!
//! Starts are made by a reactor timer, which wakes with 1 ms resolution, so a
//! start is made up to [`EARLY`] before its time rather than up to 1 ms after
//! it; one made early is timed from when it was made.

use std::time::{Duration, Instant};

use super::super::report::Failure;
use super::{Churn, Conn, Phase, Role};
use crate::reactor::{Index, Reactor};

/// How far ahead of its time a start may be made.
pub(super) const EARLY: Duration = Duration::from_millis(1);
/// The reactor timer the schedule runs on.
pub(super) const RATE_TIMER: usize = 2;

/// The schedule: which starts are due, which are made, which count.
pub(super) struct OpenLoop {
    /// When start 0 is due.
    start: Instant,
    /// Nanoseconds between starts.
    every_ns: f64,
    /// Starts due so far: 0..due.
    due: u64,
    /// Starts made (or given up as timed out): 0..made.
    made: u64,
    /// The first start that counts: the first due in the measured window.
    first_counted: Option<u64>,
    /// No start from this one on: the window closed, or `-n` starts were due.
    stop: Option<u64>,
    /// Kept connections (`--keep-alive`) with nothing outstanding.
    pub idle: Vec<Index>,
    /// Starts that found every allowed connection busy when they came due.
    pub waited: u64,
    waited_upto: u64,
}

impl OpenLoop {
    pub fn new(start: Instant, rate: f64) -> OpenLoop {
        OpenLoop {
            start,
            every_ns: 1e9 / rate,
            due: 0,
            made: 0,
            first_counted: None,
            stop: None,
            idle: Vec::new(),
            waited: 0,
            waited_upto: 0,
        }
    }

    /// When start `k` is due.
    fn at(&self, k: u64) -> Instant {
        self.start + Duration::from_nanos((k as f64 * self.every_ns) as u64)
    }

    /// How many starts are due by `t`.
    fn due_by(&self, t: Instant) -> u64 {
        let ns = t.saturating_duration_since(self.start).as_nanos() as f64;
        (ns / self.every_ns).floor() as u64 + 1
    }

    /// The window opens at `now`: starts due from now count; with `count`, only
    /// that many.
    pub fn open_window(&mut self, now: Instant, count: Option<u64>) {
        let ns = now.saturating_duration_since(self.start).as_nanos() as f64;
        let first = ((ns / self.every_ns).ceil() as u64).max(self.made);
        self.first_counted = Some(first);
        self.stop = count.map(|n| first + n);
    }

    /// The window has closed: nothing more comes due.
    pub fn close_window(&mut self) {
        let stop = self.stop.map_or(self.due, |s| s.min(self.due));
        self.stop = Some(stop.max(self.made));
        self.due = self.due.min(self.stop.unwrap_or(self.due));
    }

    /// Starts due and not yet made.
    pub fn pending(&self) -> u64 {
        self.due - self.made
    }
}

impl Churn {
    /// Makes the starts that are due, as connections allow, and sets the timer for
    /// the next. Called by its timer, by the tick, and whenever a connection frees.
    pub(super) fn dispatch(&mut self, r: &mut Reactor<Conn>) {
        if self.open_loop.is_none() || r.is_stopped() {
            return;
        }
        let now = Instant::now();
        let timeout = self.cfg.timeout;
        let keep_alive = self.cfg.keep_alive;
        while !r.is_stopped() {
            let Some(ol) = &mut self.open_loop else {
                return;
            };
            if self.phase != Phase::Drain {
                let due = ol.due_by(now + EARLY);
                ol.due = ol.stop.map_or(due, |s| due.min(s)).max(ol.due);
            }
            if ol.made == ol.due {
                break;
            }
            let k = ol.made;
            let at = ol.at(k);
            if now.saturating_duration_since(at) > timeout {
                ol.made += 1;
                self.fail(Failure::Timeout, || {
                    format!(
                        "not started within {} ms of its time: every one of the -c connections was busy",
                        timeout.as_millis()
                    )
                });
                continue;
            }
            let room = if keep_alive {
                !ol.idle.is_empty()
            } else {
                self.churners < self.cfg.concurrency
            };
            if !room {
                // Count once each start already past its time (not merely
                // within EARLY of it) that found no room.
                let late = ol.due_by(now).min(ol.due);
                ol.waited += late.saturating_sub(ol.waited_upto.max(k));
                ol.waited_upto = ol.waited_upto.max(late);
                break;
            }
            ol.made += 1;
            let counted = ol.first_counted.is_some_and(|f| k >= f);
            let last_counted = counted && ol.stop == Some(ol.made);
            let kept = ol.idle.pop();
            if counted {
                let lag = now.saturating_duration_since(at).as_nanos() as u64;
                self.stats.start_lag.record(lag);
            }
            match kept {
                Some(i) => self.ask_again(r, i, Some(at), counted),
                None => {
                    if self.open(r, Role::Churner, Some((at, counted))) {
                        self.churners += 1;
                    } else {
                        self.check_hopeless(r);
                    }
                }
            }
            if last_counted && self.phase == Phase::Measure {
                // `-n` starts made: measuring is over once they are answered.
                self.drain(r, now);
            }
        }
        let next = self
            .open_loop
            .as_ref()
            .filter(|ol| ol.stop.map_or(true, |s| ol.due < s))
            .map(|ol| ol.at(ol.due));
        if let Some(at) = next {
            r.set_timer(RATE_TIMER, at.checked_sub(EARLY).unwrap_or(at));
        }
        self.check_drained(r);
    }

    /// Kept connection `i` has nothing outstanding: ask again now (closed loop),
    /// or wait for the schedule (open loop).
    pub(super) fn kept_idle(&mut self, r: &mut Reactor<Conn>, i: Index) {
        if let Some(ol) = &mut self.open_loop {
            ol.idle.push(i);
            self.dispatch(r);
        } else if self.running(r) {
            self.ask_again(r, i, None, false);
        }
    }

    /// Sends the request again on kept connection `i`.
    pub(super) fn ask_again(
        &mut self,
        r: &mut Reactor<Conn>,
        i: Index,
        intended: Option<Instant>,
        counted: bool,
    ) {
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        ask.asked = Some(Instant::now());
        ask.intended = intended;
        ask.counted = counted;
        let version = ask.version;
        r.send(i, &self.request_for(version));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_counts_the_window() {
        let t0 = Instant::now();
        let mut ol = OpenLoop::new(t0, 1000.0); // one start per ms
        assert_eq!(ol.due_by(t0), 1);
        assert_eq!(ol.due_by(t0 + Duration::from_micros(2500)), 3);
        assert_eq!(ol.at(3), t0 + Duration::from_millis(3));
        ol.made = 4;
        ol.due = 5;
        ol.open_window(t0 + Duration::from_micros(4500), Some(10));
        assert_eq!(ol.first_counted, Some(5));
        assert_eq!(ol.stop, Some(15));
        assert_eq!(ol.pending(), 1);
        ol.due = 12;
        ol.close_window();
        assert_eq!((ol.stop, ol.due), (Some(12), 12));
    }
}
