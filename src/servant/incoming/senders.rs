//! Who sent a line: the network says, not the text. A line is shown as from the
//! servant the current peer list gives its sending address (or the origin its
//! relay gives, [`crate::wire::pull`]); how, [`super::super::console::Sender`]
//! says.
//!
//! A line from an address on no list may be from a servant that joined after our
//! list was sent: it is held until a newer list says (at most one poll interval),
//! then shown, or dropped and logged once per address. Held lines are capped in
//! count and bytes, per address and in total: past that, more are dropped at once
//! (counted, said at most once a second). Nothing here grows with what an
//! attacker sends.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use log::{debug, info};

use crate::servant::console::Sender;
use crate::servant::peers::Peers;
use crate::servant::said::{RateLimited, SAY_EVERY};
use crate::servant::Servant;
use crate::wire::pull::Origin;

/// Lines held at once, in total and from one address.
const HELD_LINES: usize = 1024;
const HELD_LINES_PER_ADDRESS: usize = 64;
/// Bytes held at once, in total and from one address (two messages of the largest
/// size).
const HELD_BYTES: usize = 1024 * 1024;
const HELD_BYTES_PER_ADDRESS: usize = 128 * 1024;
/// Addresses whose dropped lines are logged one by one; past that, with a count.
const TOLD: usize = 4096;

/// Lines waiting for a list that knows their sender, and what was said of drops.
#[derive(Debug, Default)]
pub(in crate::servant) struct Senders {
    held: VecDeque<Held>,
    bytes: usize,
    per_address: HashMap<IpAddr, (usize, usize)>,
    /// Addresses whose dropped lines were logged.
    told: HashSet<IpAddr>,
    untold: RateLimited,
    /// Lines not held because the caps were reached.
    full: RateLimited,
    /// Lines relayed from a banned origin.
    pub(in crate::servant) banned: RateLimited,
}

#[derive(Debug)]
struct Held {
    origin: Origin,
    text: Box<[u8]>,
    truncated: bool,
    /// A private line's text: shown marked so.
    private: bool,
    since: Instant,
}

/// Who sent `text`, coming from `origin`, by the list: `None` when the list has
/// nobody at that address. `own` is our name, which no peer may claim either.
pub(in crate::servant) fn identify<'a>(
    peers: &'a Peers,
    own: Option<&'a str>,
    origin: Origin,
    text: &[u8],
) -> Option<Sender<'a>> {
    let ip = origin.ip();
    let exact = match origin {
        Origin::Listed(a) if peers.contains(a) => a,
        _ => {
            let Some(at) = peers.at_ip(ip) else {
                // Listed until the last list: its goodbye may come after that.
                let name = peers.left_at(ip)?;
                return Some(name.map_or(Sender::Unnamed, Sender::Named));
            };
            if at.count > 1 {
                let unclear = at.named || claims(peers, own, text);
                return Some(if unclear {
                    Sender::Unverified(ip)
                } else {
                    Sender::Unnamed
                });
            }
            at.first
        }
    };
    // Our own lines come back through our listener carrying the prefix they were
    // typed under: shown as sent, so a `/nick` between sending and their return
    // (or a manager that lists no names) does not put a second name before them.
    if peers.me().is_some_and(|m| m.addr() == exact) {
        return Some(Sender::Unnamed);
    }
    Some(match peers.name(exact) {
        Some(name) => Sender::Named(name),
        None if claims(peers, own, text) => Sender::Unverified(ip),
        None => Sender::Unnamed,
    })
}

/// Whether an unnamed sender's text starts the way a named servant's lines do
/// (`alice: `, `* alice `, `alice (private): `), like the unverified marker
/// (`[`), or like a private line shown (`(private`, `-> `).
fn claims(peers: &Peers, own: Option<&str>, text: &[u8]) -> bool {
    if [&b"["[..], b"(private", b"-> "]
        .iter()
        .any(|m| text.starts_with(m))
    {
        return true;
    }
    let (word, end): (&[u8], &[u8]) = match text.strip_prefix(b"* ") {
        Some(rest) => (rest, b" "),
        None => (text, b":"),
    };
    let Some(at) = memchr::memmem::find(word, end) else {
        return false;
    };
    let Ok(name) = std::str::from_utf8(&word[..at]) else {
        return false;
    };
    let name = name.strip_suffix(" (private)").unwrap_or(name);
    !name.is_empty() && (peers.is_name(name) || own == Some(name))
}

impl Servant {
    /// Shows a chat line from `origin`, or holds it until the list knows its sender.
    pub(in crate::servant) fn show_line(
        &mut self,
        now: Instant,
        origin: Origin,
        text: &[u8],
        truncated: bool,
    ) {
        self.show(now, origin, text, truncated, false);
    }

    /// Shows a private line's text ([`crate::wire::private`]) from `origin`, or
    /// holds it like any line.
    pub(in crate::servant) fn show_private(
        &mut self,
        now: Instant,
        origin: Origin,
        text: &[u8],
        truncated: bool,
    ) {
        self.show(now, origin, text, truncated, true);
    }

    fn show(&mut self, now: Instant, origin: Origin, text: &[u8], truncated: bool, private: bool) {
        let own = self.config.name.as_deref();
        if let Some(sender) = identify(&self.peers, own, origin, text) {
            let ip = origin.ip();
            return match private {
                true => self.console.private_message(ip, sender, text, truncated),
                false => self.console.peer_message(ip, sender, text, truncated),
            };
        }
        let s = &mut self.admission.senders;
        let ip = origin.ip();
        let (lines, bytes) = s.per_address.get(&ip).copied().unwrap_or((0, 0));
        let full = s.held.len() >= HELD_LINES
            || s.bytes + text.len() > HELD_BYTES
            || lines >= HELD_LINES_PER_ADDRESS
            || bytes + text.len() > HELD_BYTES_PER_ADDRESS;
        if full {
            if let Some(n) = s.full.due_within(now, 1, SAY_EVERY) {
                info!(
                    "dropped {n} line(s) from addresses on no peer list: too many already waiting for a newer list (last from {ip})"
                );
            }
            return;
        }
        s.per_address.insert(ip, (lines + 1, bytes + text.len()));
        s.bytes += text.len();
        s.held.push_back(Held {
            origin,
            text: text.into(),
            truncated,
            private,
            since: now,
        });
    }

    /// A new list, or a tick: held lines whose sender is now listed are shown; those
    /// held a poll interval are dropped.
    pub(in crate::servant) fn release_held(&mut self, now: Instant) {
        if self.admission.senders.held.is_empty() {
            return;
        }
        let wait = self.config.poll_interval;
        let held = std::mem::take(&mut self.admission.senders.held);
        let mut kept = VecDeque::new();
        for h in held {
            let own = self.config.name.as_deref();
            if let Some(sender) = identify(&self.peers, own, h.origin, &h.text) {
                let (ip, c) = (h.origin.ip(), &mut self.console);
                match h.private {
                    true => c.private_message(ip, sender, &h.text, h.truncated),
                    false => c.peer_message(ip, sender, &h.text, h.truncated),
                }
            } else if now.duration_since(h.since) < wait {
                kept.push_back(h);
                continue;
            } else {
                self.dropped_unlisted(now, h.origin, wait);
            }
            self.admission.senders.unhold(h.origin.ip(), h.text.len());
        }
        self.admission.senders.held = kept;
    }

    fn dropped_unlisted(&mut self, now: Instant, origin: Origin, wait: Duration) {
        let s = &mut self.admission.senders;
        let ip = origin.ip();
        if s.told.contains(&ip) {
            return debug!("dropped a line from {origin}: on no peer list");
        }
        if s.told.len() < TOLD {
            s.told.insert(ip);
            return info!(
                "dropped a line from {origin}: that address is on no peer list, and was not on the list that came within {} ms (further lines from it logged at debug)",
                wait.as_millis()
            );
        }
        if let Some(n) = s.untold.due_within(now, 1, SAY_EVERY) {
            info!("dropped {n} line(s) from addresses on no peer list (last from {origin})");
        }
    }
}

impl Senders {
    fn unhold(&mut self, ip: IpAddr, len: usize) {
        self.bytes = self.bytes.saturating_sub(len);
        if let Some((lines, bytes)) = self.per_address.get_mut(&ip) {
            *lines = lines.saturating_sub(1);
            *bytes = bytes.saturating_sub(len);
            if *lines == 0 {
                self.per_address.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests;
