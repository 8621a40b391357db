//! What protects a responder from initiators it does not know, before it spends a
//! Diffie-Hellman operation on them: a limit on handshakes pending from one
//! address and in all, and a deadline for each. (The third guard, an exact first
//! message length, is the frame reader's.) Beside the handshake, not inside it, as
//! boringtun keeps its rate limiter.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

/// Limits on handshakes in progress, set through the reactor's `Options`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Responder handshakes pending from one address; more are refused at accept.
    pub per_address: usize,
    /// Responder handshakes pending in all.
    pub total: usize,
    /// A handshake not finished this long after the connection closes it (both
    /// sides; a responder's ends with the initiator's first transport message).
    pub deadline: Duration,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            per_address: 16,
            total: 1024,
            deadline: Duration::from_secs(5),
        }
    }
}

/// Why a handshake was refused before it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    PerAddress(IpAddr, usize),
    Total(usize),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PerAddress(ip, n) => write!(f, "{n} handshakes already pending from {ip}"),
            Refusal::Total(n) => write!(f, "{n} handshakes already pending"),
        }
    }
}

#[derive(Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
}

/// Counts the handshakes pending; each holds a [`Ticket`] until it ends.
#[derive(Clone, Default)]
pub struct Guard {
    counts: Rc<RefCell<Counts>>,
}

impl Guard {
    /// A ticket for a handshake from `ip`, or why there is none.
    pub fn ticket(&self, ip: IpAddr, limits: &HandshakeLimits) -> Result<Ticket, Refusal> {
        let mut c = self.counts.borrow_mut();
        if c.total >= limits.total {
            return Err(Refusal::Total(c.total));
        }
        let n = c.by_address.entry(ip).or_insert(0);
        if *n >= limits.per_address {
            return Err(Refusal::PerAddress(ip, *n));
        }
        *n += 1;
        c.total += 1;
        Ok(Ticket {
            counts: self.counts.clone(),
            ip,
        })
    }

    /// Handshakes pending, in all and from `ip`.
    pub fn pending(&self, ip: IpAddr) -> (usize, usize) {
        let c = self.counts.borrow();
        (c.total, c.by_address.get(&ip).copied().unwrap_or(0))
    }
}

/// One pending handshake's place; dropping it (the handshake ended, either way)
/// frees the place.
pub struct Ticket {
    counts: Rc<RefCell<Counts>>,
    ip: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut c = self.counts.borrow_mut();
        c.total -= 1;
        if let Some(n) = c.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_limited_per_address_and_in_all_and_freed_on_drop() {
        let limits = HandshakeLimits {
            per_address: 2,
            total: 3,
            ..HandshakeLimits::default()
        };
        let g = Guard::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t1 = g.ticket(a, &limits).unwrap();
        let _t2 = g.ticket(a, &limits).unwrap();
        assert_eq!(g.ticket(a, &limits).err(), Some(Refusal::PerAddress(a, 2)));
        let _t3 = g.ticket(b, &limits).unwrap();
        assert_eq!(g.ticket(b, &limits).err(), Some(Refusal::Total(3)));
        drop(t1);
        assert_eq!(g.pending(a), (2, 1));
        assert!(g.ticket(a, &limits).is_ok());
    }
}
