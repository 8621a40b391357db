//! Who is turned away: refusals (`--max-servants`, `--max-per-address`, no free
//! port) told to the client and logged at a bounded rate.
//!
//! VB accepted every connection. Here one host cannot fill `--max-servants` and
//! lock everyone else out: past `--max-per-address` servants from one address,
//! its next connection is refused.

use std::time::{Duration, Instant};

use log::warn;

use super::Slot;
use crate::reactor::{Index, Reactor, Request};

/// What a servant refused for lack of room is told.
const FULL: &[u8] = b"max number of servants reached\r\n";
const NO_PORT: &[u8] = b"no free servant port\r\n";
const PER_ADDRESS: &[u8] = b"max servants per address reached\r\n";

/// Why a connection is refused: the log line says it; [`Refusal::reply`] tells
/// the servant.
#[derive(Clone, Copy, Debug)]
pub(super) enum Refusal {
    /// `--max-servants`, reached.
    Full(usize),
    /// `--max-per-address`, reached by the connection's address.
    PerAddress(usize),
    /// Every port from the first servant port up is held.
    NoPort,
}

impl Refusal {
    pub(super) fn reply(self) -> &'static [u8] {
        match self {
            Refusal::Full(_) => FULL,
            Refusal::PerAddress(_) => PER_ADDRESS,
            Refusal::NoPort => NO_PORT,
        }
    }

    /// Each kind is counted and rate-limited on its own, so that a flood of one
    /// does not hide the other.
    fn kind(self) -> usize {
        match self {
            Refusal::Full(_) => 0,
            Refusal::PerAddress(_) => 1,
            Refusal::NoPort => 2,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Full(max) => write!(f, "max number of servants ({max}) reached"),
            Refusal::PerAddress(max) => {
                write!(
                    f,
                    "max servants per address ({max}) reached from that address"
                )
            }
            Refusal::NoPort => f.write_str("every servant port is taken"),
        }
    }
}

/// Refused connections not yet mentioned in the log, per kind of refusal.
#[derive(Default)]
pub(super) struct Refusals([Throttle; 3]);

/// One kind of refusal (or of ignored request): when it was last logged, and how
/// many since. Two numbers whatever a client does, so a flood of refusals costs
/// neither memory nor log lines.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    logged: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    /// One more: `Some(n)` when a line may be logged now, `n` being how many went
    /// unlogged since the last one; `None` when it is only counted.
    pub(super) fn note(&mut self, now: Instant) -> Option<u64> {
        if (self.logged).is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            self.unlogged += 1;
            return None;
        }
        self.logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

/// ` (N more since the last line)`, or nothing.
pub(super) fn more(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(" ({n} more since the last line)"),
    }
}

impl Refusals {
    /// Refuses with `why`'s reply, logging at most one line per second so that a
    /// flood of connections cannot become a flood of log lines. Nothing is
    /// formatted for a refusal that is only counted.
    pub(super) fn refuse(&mut self, r: &mut Reactor<Slot>, request: Request, why: Refusal) {
        self.log(r, &request, why);
        r.refuse(request, why.reply());
    }

    /// As [`Refusals::refuse`], without the reply: a private network tells a
    /// connection nothing before it has proven a member's key.
    pub(super) fn drop_quietly(&mut self, r: &mut Reactor<Slot>, request: Request, why: Refusal) {
        self.log(r, &request, why);
    }

    /// An accepted connection refused after all (the cluster's join script
    /// counted the limits over every manager): told `reply`, if any, and closed.
    pub(super) fn refuse_accepted(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        why: Refusal,
        reply: Option<&[u8]>,
    ) {
        if let Some(from) = r.socket(index).map(|s| s.addr()) {
            self.log_from(r, from, why);
        }
        match reply {
            Some(reply) => {
                r.send(index, reply);
                r.close_gracefully(index, std::time::Duration::from_secs(1));
            }
            None => r.abort(index),
        }
    }

    fn log(&mut self, r: &Reactor<Slot>, request: &Request, why: Refusal) {
        self.log_from(r, request.remote(), why);
    }

    fn log_from(&mut self, r: &Reactor<Slot>, from: std::net::SocketAddr, why: Refusal) {
        if let Some(n) = self.0[why.kind()].note(r.now()) {
            match n {
                0 => warn!("refusing {from}: {why}"),
                n => warn!("refusing {from}: {why} ({n} more refused since the last line)"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_logs_once_a_second_with_a_count() {
        let mut t = Throttle::default();
        let start = Instant::now();
        assert_eq!(t.note(start), Some(0));
        for ms in [1, 500, 999] {
            assert_eq!(t.note(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(t.note(start + Duration::from_secs(1)), Some(3));
        assert_eq!(more(3), " (3 more since the last line)");
        assert_eq!(more(0), "");
    }

    #[test]
    fn refusals_say_why_as_they_always_have() {
        assert_eq!(
            Refusal::Full(3).to_string(),
            "max number of servants (3) reached"
        );
        assert_eq!(Refusal::NoPort.to_string(), "every servant port is taken");
        assert_eq!(Refusal::Full(3).reply(), FULL);
        assert_eq!(Refusal::NoPort.reply(), NO_PORT);
        assert_eq!(
            Refusal::PerAddress(64).reply(),
            b"max servants per address reached\r\n"
        );
    }
}
