//! Who gets in: the ports held by live servants, and refusals (`--max-servants`,
//! no free port) told to the client and logged at a bounded rate.

use std::time::{Duration, Instant};

use log::warn;

use super::{Manager, Slot};
use crate::reactor::{Reactor, Request};

/// What a servant refused for lack of room is told.
const FULL: &[u8] = b"max number of servants reached\r\n";
const NO_PORT: &[u8] = b"no free servant port\r\n";

/// A set of ports, one bit each.
pub(super) struct PortSet(Vec<u64>);

impl PortSet {
    pub(super) fn new() -> Self {
        PortSet(vec![0; 65536 / 64])
    }
    pub(super) fn contains(&self, p: u16) -> bool {
        self.0[p as usize / 64] & (1 << (p % 64)) != 0
    }
    pub(super) fn insert(&mut self, p: u16) {
        self.0[p as usize / 64] |= 1 << (p % 64);
    }
    pub(super) fn remove(&mut self, p: u16) {
        self.0[p as usize / 64] &= !(1 << (p % 64));
    }
}

/// Why a connection is refused: the log line says it; [`Refusal::reply`] tells
/// the servant.
#[derive(Clone, Copy, Debug)]
pub(super) enum Refusal {
    /// `--max-servants`, reached.
    Full(usize),
    /// Every port from the first servant port up is held.
    NoPort,
}

impl Refusal {
    pub(super) fn reply(self) -> &'static [u8] {
        match self {
            Refusal::Full(_) => FULL,
            Refusal::NoPort => NO_PORT,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Full(max) => write!(f, "max number of servants ({max}) reached"),
            Refusal::NoPort => f.write_str("every servant port is taken"),
        }
    }
}

/// Refused connections not yet mentioned in the log.
#[derive(Default)]
pub(super) struct Refusals {
    logged: Option<Instant>,
    unlogged: u64,
}

impl Manager {
    /// Refuses with `why`'s reply, logging at most one line per second so that a
    /// flood of connections cannot become a flood of log lines. Nothing is
    /// formatted for a refusal that is only counted.
    pub(super) fn refuse(&mut self, r: &mut Reactor<Slot>, request: Request, why: Refusal) {
        let now = r.now();
        if self
            .refusals
            .logged
            .map_or(true, |t| now.duration_since(t) >= Duration::from_secs(1))
        {
            let from = request.remote();
            match std::mem::take(&mut self.refusals.unlogged) {
                0 => warn!("refusing {from}: {why}"),
                n => warn!("refusing {from}: {why} ({n} more refused since the last line)"),
            }
            self.refusals.logged = Some(now);
        } else {
            self.refusals.unlogged += 1;
        }
        r.refuse(request, why.reply());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_why_as_they_always_have() {
        assert_eq!(
            Refusal::Full(3).to_string(),
            "max number of servants (3) reached"
        );
        assert_eq!(Refusal::NoPort.to_string(), "every servant port is taken");
        assert_eq!(Refusal::Full(3).reply(), FULL);
        assert_eq!(Refusal::NoPort.reply(), NO_PORT);
    }
}
