//! What protects a responder from initiators it does not know, before it spends a
//! Diffie-Hellman operation on them: a limit on handshakes pending from one
//! address and in all, a deadline for each, and a rate of new handshakes per
//! address. The rate is what bounds CPU: a whole bogus first message is read and
//! refused at once, so it never holds a pending place, yet each costs two key
//! exchanges (about 100 us); one address may start at most `rate` a second. (The third guard, an exact first
//! message length, is the frame reader's.) Beside the handshake, not inside it, as
//! boringtun keeps its rate limiter.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Limits on handshakes in progress, set through the reactor's `Options`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Responder handshakes pending from one address; more are refused at accept.
    pub per_address: usize,
    /// Responder handshakes pending in all; at the limit a newcomer takes the
    /// oldest one's place (the reactor closes it) rather than being refused.
    pub total: usize,
    /// A handshake not finished this long after the connection closes it (both
    /// sides; a responder's ends with the initiator's first transport message).
    pub deadline: Duration,
    /// New responder handshakes one address may start each second, in bursts of
    /// up to as many (a NAT of servants all reconnecting at once fits).
    pub rate: u32,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            per_address: 16,
            total: 1024,
            deadline: Duration::from_secs(5),
            rate: 128,
        }
    }
}

/// Why a handshake was refused before it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    PerAddress(IpAddr, usize),
    Total(usize),
    /// The address started its `rate` handshakes within the last second.
    Rate(IpAddr, u32),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PerAddress(ip, n) => write!(f, "{n} handshakes already pending from {ip}"),
            Refusal::Total(n) => write!(f, "{n} handshakes already pending"),
            Refusal::Rate(ip, n) => write!(f, "{ip} started more than {n} handshakes a second"),
        }
    }
}

#[derive(Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
    starts: HashMap<IpAddr, Bucket>,
}

/// A token bucket: `tokens` left at `at`, refilled at the rate, capped at it.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before full ones (idle addresses) are forgotten, so a stream of
/// new addresses cannot grow the table without bound.
const BUCKETS_KEPT: usize = 4096;

/// Counts the handshakes pending; each holds a [`Ticket`] until it ends.
#[derive(Clone, Default)]
pub struct Guard {
    counts: Rc<RefCell<Counts>>,
}

impl Guard {
    /// A ticket for a handshake from `ip`, or why there is none.
    pub fn ticket(
        &self,
        ip: IpAddr,
        limits: &HandshakeLimits,
        now: Instant,
    ) -> Result<Ticket, Refusal> {
        let mut c = self.counts.borrow_mut();
        if c.by_address.get(&ip).copied().unwrap_or(0) >= limits.per_address {
            return Err(Refusal::PerAddress(ip, c.by_address[&ip]));
        }
        take_token(&mut c.starts, ip, limits.rate, now)?;
        // Last, so that `Total` means the address itself may start one: the
        // caller may make room and [`Guard::grant`] it.
        if c.total >= limits.total {
            return Err(Refusal::Total(c.total));
        }
        drop(c);
        Ok(self.grant(ip))
    }

    /// A ticket for `ip` without the checks, for a caller that was refused with
    /// [`Refusal::Total`] and has since freed a place.
    pub fn grant(&self, ip: IpAddr) -> Ticket {
        let mut c = self.counts.borrow_mut();
        *c.by_address.entry(ip).or_insert(0) += 1;
        c.total += 1;
        Ticket {
            counts: self.counts.clone(),
            ip,
        }
    }

    /// Handshakes pending, in all and from `ip`.
    pub fn pending(&self, ip: IpAddr) -> (usize, usize) {
        let c = self.counts.borrow();
        (c.total, c.by_address.get(&ip).copied().unwrap_or(0))
    }
}

/// One pending handshake's place; dropping it (the handshake ended, either way)
/// frees the place.
fn take_token(
    starts: &mut HashMap<IpAddr, Bucket>,
    ip: IpAddr,
    rate: u32,
    now: Instant,
) -> Result<(), Refusal> {
    let rate = f64::from(rate);
    let full =
        |b: &Bucket| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate >= rate;
    if starts.len() >= BUCKETS_KEPT && !starts.contains_key(&ip) {
        starts.retain(|_, b| !full(b));
    }
    let b = starts.entry(ip).or_insert(Bucket {
        tokens: rate,
        at: now,
    });
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    b.tokens = (b.tokens + elapsed * rate).min(rate);
    b.at = now;
    if b.tokens < 1.0 {
        return Err(Refusal::Rate(ip, rate as u32));
    }
    b.tokens -= 1.0;
    Ok(())
}

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
        let now = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t1 = g.ticket(a, &limits, now).unwrap();
        let _t2 = g.ticket(a, &limits, now).unwrap();
        assert_eq!(
            g.ticket(a, &limits, now).err(),
            Some(Refusal::PerAddress(a, 2))
        );
        let _t3 = g.ticket(b, &limits, now).unwrap();
        assert_eq!(g.ticket(b, &limits, now).err(), Some(Refusal::Total(3)));
        drop(t1);
        assert_eq!(g.pending(a), (2, 1));
        assert!(g.ticket(a, &limits, now).is_ok());
    }

    #[test]
    fn one_address_starts_at_most_its_rate_and_the_bucket_refills() {
        let limits = HandshakeLimits {
            rate: 4,
            ..HandshakeLimits::default()
        };
        let g = Guard::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        // Tickets dropped at once: whole bogus messages never hold a place.
        for _ in 0..4 {
            drop(g.ticket(a, &limits, t0).unwrap());
        }
        assert_eq!(g.ticket(a, &limits, t0).err(), Some(Refusal::Rate(a, 4)));
        assert!(
            g.ticket(b, &limits, t0).is_ok(),
            "another address is not held"
        );
        let later = t0 + Duration::from_millis(500);
        drop(g.ticket(a, &limits, later).unwrap());
        drop(g.ticket(a, &limits, later).unwrap());
        assert!(g.ticket(a, &limits, later).is_err());
    }

    #[test]
    fn idle_addresses_are_forgotten_when_the_table_fills() {
        let limits = HandshakeLimits::default();
        let g = Guard::default();
        let t0 = Instant::now();
        for n in 0..BUCKETS_KEPT as u32 + 10 {
            drop(
                g.ticket(IpAddr::from(n.to_be_bytes()), &limits, t0)
                    .unwrap(),
            );
        }
        let later = t0 + Duration::from_secs(2);
        drop(g.ticket([10, 9, 9, 9].into(), &limits, later).unwrap());
        assert!(g.counts.borrow().starts.len() < 64);
    }
}
