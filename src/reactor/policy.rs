//! The reactor's policies: what keeps one peer, or a crowd of them, from hurting
//! the others. Budgets per turn for reads and accepts, a limit on what a peer that
//! does not read may have queued, an idle sweep, and a pause in accepting when the
//! process runs out of descriptors.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use log::{info, warn};

use super::{Handler, Index, Reactor, State};

/// Reads per socket per turn before it goes to the back of the line, behind every
/// other ready socket: a peer that floods us cannot starve the rest.
pub const READ_BUDGET: usize = 16;
/// Accepts per listener per turn, for the same reason: a connection flood waits
/// behind the established connections' events, and a turn spends at most some
/// 150 us refusing (four syscalls each). With 6,000 refused connections in flight,
/// 50 steady servants' p99 measured 3 to 7 ms with budgets of 4 to 16 on a loaded
/// 2-core host, 15 ms with 64, and no better with 1 (an `epoll_wait` per accept).
pub(super) const ACCEPT_BUDGET: usize = 8;
/// How long accepting pauses when the process is out of file descriptors.
pub(super) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a private link's sending key is used: WireGuard's `REKEY_AFTER_TIME`.
pub const REKEY_AFTER: Duration = Duration::from_secs(120);

/// Tunables shared by every daemon.
#[derive(Clone, Debug)]
pub struct Options {
    /// Close a connected stream that has not sent anything for this long.
    pub idle_timeout: Option<Duration>,
    /// With this, the idle sweep closes gracefully ([`Reactor::close_gracefully`]),
    /// waiting this long at most for the peer's FIN: for links a peer keeps to
    /// write on, which may carry its next bytes as the sweep closes them.
    pub linger: Option<Duration>,
    /// Close a connection whose unsent output grows past this (a peer that never reads).
    pub max_backlog: usize,
    /// Only [`Reactor::touch`] counts as activity for the idle sweep, not every read
    /// and write: the daemon decides. The manager touches a servant for each whole
    /// request, so one dripping a byte every second is still reaped.
    pub touch_only: bool,
    /// Limits on private links' handshakes: pending per address and in all, and
    /// the deadline (`crate::noise::guard`).
    pub handshake: crate::noise::HandshakeLimits,
    /// A private link whose sending key is this old takes a new one (Noise's
    /// `Rekey()`) before its next record ([`crate::noise::Link::rekey`]).
    pub rekey_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            idle_timeout: None,
            linger: None,
            max_backlog: 16 * 1024 * 1024,
            touch_only: false,
            handshake: Default::default(),
            rekey_after: REKEY_AFTER,
        }
    }
}

impl<T> Reactor<T> {
    /// Whether slot `i` may keep what it has queued. A peer that does not read is
    /// closed once [`Options::max_backlog`] is queued for it: the only way queued
    /// bytes are thrown away, and it is logged.
    pub(super) fn backlog_allowed(&mut self, i: Index) -> bool {
        let max = self.options.max_backlog;
        let Some(s) = self.slots.get(i).filter(|s| s.unsent() > max) else {
            return true;
        };
        warn!(
            "slot {i} ({}): peer is not reading; dropping {} unsent bytes (limit {max}) and closing",
            s.addr,
            s.unsent()
        );
        self.transition(i, State::Error);
        false
    }

    /// EMFILE, ENFILE or ENOBUFS from `accept`: the connection stays in the backlog,
    /// and accepting again at once would spin on it, so accepting pauses.
    pub(super) fn pause_accepts(&mut self, e: &io::Error) {
        if self.accept_retry_at.is_none() {
            warn!(
                "accept failed: {e}; pausing accepts for {} ms",
                ACCEPT_BACKOFF.as_millis()
            );
        }
        self.accept_retry_at = Some(self.now + ACCEPT_BACKOFF);
    }

    pub(super) fn accepts_paused(&self) -> bool {
        self.accept_retry_at.is_some()
    }

    /// The pause is over: every listener tries again.
    pub(super) fn retry_accepts<H: Handler<Data = T>>(&mut self, h: &mut H) {
        self.accept_retry_at = None;
        let listeners: Vec<Index> = self
            .slots
            .iter()
            .filter(|(_, s)| s.state == State::Listening)
            .map(|(i, _)| i)
            .collect();
        for l in listeners {
            self.accept_some(h, l);
        }
    }

    /// Slot `i` did something that counts as activity: its idle timer starts again.
    /// Only needed with [`Options::touch_only`]; otherwise reads and writes count.
    pub fn touch(&mut self, i: Index) {
        let now = self.now;
        if let Some(s) = self.slots.get_mut(i) {
            s.last_active = now;
        }
    }

    /// Closes every connected stream silent for [`Options::idle_timeout`].
    pub(super) fn sweep_idle(&mut self) {
        let Some(limit) = self.options.idle_timeout else {
            return;
        };
        let now = self.now;
        self.next_idle_sweep = Some(now + sweep_period(limit));
        let idle: Vec<(Index, SocketAddr, usize)> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                matches!(s.state, State::Connected | State::Connecting)
                    && s.linger.is_none()
                    && now.duration_since(s.last_active) >= limit
            })
            .map(|(i, s)| (i, s.addr, s.unsent()))
            .collect();
        for (i, addr, unsent) in idle {
            let dropped = if unsent > 0 {
                format!(", dropping {unsent} unsent bytes")
            } else {
                String::new()
            };
            // Debug prints `30s` or `1.5s`, without pulling in float formatting.
            info!("slot {i} ({addr}): silent for {limit:?}{dropped}, closing");
            match self.options.linger {
                Some(within) if unsent == 0 => self.close_gracefully(i, within),
                _ => self.transition(i, State::Closing),
            }
        }
    }
}

/// How often to look for idle slots: often enough to close one soon after its
/// limit, never more than once per 10 ms or less than once a second.
pub(super) fn sweep_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}
