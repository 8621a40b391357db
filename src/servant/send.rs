//! `send1`, sending: every batch of typed lines goes to every peer on the list,
//! this servant included, one outgoing connection each, all at once; failures are
//! counted per peer address and warned about at a bounded rate.
//!
//! The article looped over the peers through one control, waiting out each
//! connect with `While send1.State = 6: DoEvents: Wend`, so one unreachable peer
//! stalled the rest; here an unreachable peer costs a failed connect, nothing more,
//! and a complaint to the manager ([`super::relay`]). A peer the document shows as
//! relayed is not sent to directly: its relay forwards what it gets. A relayed
//! servant shows its own lines itself and sends them to its relay over the pull
//! link instead of to the relay's listener.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::{Servant, Slot};
use crate::reactor::{Index, Reactor};
use crate::wire::relay::Relay;

/// A peer that stays unreachable is warned about at most once per this window.
const FAILURE_WARN_EVERY: Duration = Duration::from_secs(10);
/// Lines typed before the first peer list are held up to this many bytes.
const MAX_HELD: usize = 1024 * 1024;

/// Delivery failures to one peer address, and when they were last warned about.
#[derive(Debug, Default, Clone)]
pub(super) struct Failures {
    pub(super) count: u64,
    last_warned: Option<Instant>,
    /// Failures since the last warning.
    unwarned: u64,
}

impl Servant {
    /// VB: the loop in `txtSend1_KeyPress` over `./peers/peer`: `send1.Connect ip, port`
    /// and, in `send1_Connect`, `SendData`. Here each peer gets its own slot at once.
    pub(super) fn send1_broadcast(&mut self, r: &mut Reactor<Slot>) {
        if self.batch.is_empty() {
            return;
        }
        if self.peers.is_empty() || self.listener.is_none() {
            if self.held.is_empty() {
                info!(
                    "no peer list yet: holding what is typed until the connection manager answers"
                );
            }
            if self.held.len() + self.batch.len() > MAX_HELD {
                self.console.complain(&format!(
                    "not sent: more than {} KiB typed while there is no peer list",
                    MAX_HELD / 1024
                ));
            } else {
                self.held.extend_from_slice(&self.batch);
            }
            self.batch.clear();
            return;
        }
        let relayed = self.relay.status;
        let via = match relayed {
            Some(Relay::Via(to)) => Some(to),
            _ => None,
        };
        for k in 0..self.peers.len() {
            let peer = &self.peers[k];
            let to = SocketAddr::new(peer.ip, peer.port);
            let skip = if peer.me {
                relayed.is_some() // we cannot reach ourselves at our public address
            } else {
                peer.relay.is_some() || via == Some(to)
            };
            if skip {
                continue;
            }
            let slot = Slot::Outgoing {
                to,
                to_self: peer.me,
                local: None,
                delivered: false,
                error: None,
                started: r.now(),
            };
            match r.connect(to, self.bind_for(to), slot) {
                Ok(i) => {
                    r.send(i, &self.batch);
                    self.outgoing += 1;
                }
                Err(e) => self.peer_failed(r, to, &e.to_string()),
            }
        }
        if relayed.is_some() {
            for line in self.batch.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                self.console.message(line, false);
            }
            if via.is_some() {
                let batch = std::mem::take(&mut self.batch);
                self.send_to_relay(r, &batch);
            }
        }
        self.batch.clear();
    }

    /// VB: `send1_Connect`. A send to ourselves is remembered by its local address
    /// so leaving can wait until our own listener has shown it.
    pub(super) fn send1_connect(&mut self, r: &mut Reactor<Slot>, i: Index) {
        if !matches!(r.data(i), Some(Slot::Outgoing { to_self: true, .. })) {
            return;
        }
        let Ok(local) = r.local_addr(i) else { return };
        let local = SocketAddr::new(crate::reactor::canonical_ip(local.ip()), local.port());
        // Banning our own address hides our own lines too; nothing to wait for then.
        if self.bans.is_banned(local.ip()) {
            return;
        }
        if let Some(Slot::Outgoing { local: l, .. }) = r.data_mut(i) {
            *l = Some(local);
        }
        self.self_pending.push(local);
    }

    /// VB: `send1_SendComplete`: the batch is with the kernel; close.
    pub(super) fn send1_send_complete(&mut self, r: &mut Reactor<Slot>, i: Index) {
        if let Some(Slot::Outgoing { delivered, .. }) = r.data_mut(i) {
            *delivered = true;
        }
        r.close(i);
    }

    /// VB: `send1_Close` / `send1_Error`: count a peer we could not deliver to.
    pub(super) fn send1_close(
        &mut self,
        r: &mut Reactor<Slot>,
        to: SocketAddr,
        local: Option<SocketAddr>,
        delivered: bool,
        error: Option<String>,
    ) {
        self.outgoing = self.outgoing.saturating_sub(1);
        if !delivered {
            // Our own listener will never show this one; do not wait for it.
            if let Some(k) = local.and_then(|l| self.self_pending.iter().position(|&a| a == l)) {
                self.self_pending.swap_remove(k);
            }
            let why = error.unwrap_or_else(|| "closed before the message was sent".into());
            self.peer_failed(r, to, &why);
        }
        self.maybe_leave(r);
    }

    fn peer_failed(&mut self, r: &mut Reactor<Slot>, to: SocketAddr, why: &str) {
        self.complain(r, to);
        let now = r.now();
        let f = self.failures.entry(to).or_default();
        f.count += 1;
        f.unwarned += 1;
        if f.last_warned
            .map_or(true, |t| now.duration_since(t) >= FAILURE_WARN_EVERY)
        {
            warn!(
                "cannot deliver to {to}: {why} ({} failure(s) since the last warning, {} in all)",
                f.unwarned, f.count
            );
            f.last_warned = Some(now);
            f.unwarned = 0;
        }
    }
}
