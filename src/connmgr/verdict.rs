//! The verdict: which servants are behind a port-blocking router.
//!
//! The article: "Have each servant report to the connection manager any peers that
//! they are unable to contact ... If most peers are complaining that they can't
//! connect to a suspicious servant but the suspicious servant continuously asks the
//! connection manager for a user list then the connection manager can conclude that
//! the servant is probably behind a port blocking router", with "a threshold of 2 or
//! 3 complaints from each of the other peers".
//!
//! Kept: complaints (`cannot reach IP:PORT`) counted per complainer, a threshold
//! from each, a share of the other servants, and the heartbeat (the suspect asked
//! for the list within the window). Beyond the article, because it was naive:
//! complaints only make the manager *dial the suspect back* (a non-blocking connect
//! to its listening port, as libp2p's AutoNAT does); only a dial-back that fails
//! marks it, so no number of lying servants can get a reachable one marked. A
//! servant that cannot reach itself asks for the same check. Marked servants are
//! dialed again every recheck interval and released when they answer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::{Manager, Member, Slot, RELAY};
use crate::reactor::{Index, Reactor};

/// Complaints about one servant remembered from this many complainers at most.
const MAX_COMPLAINERS: usize = 1024;
/// Servants one complainer may have complaints pending about at most.
const MAX_COMPLAINED: u16 = 64;
/// Complainers served by other managers are counted from here on, plus their
/// offset: no slot is ever this high.
const REMOTE: Index = usize::MAX / 2;
/// Repeats of one complaint closer together than this count once.
const COMPLAINT_GAP: Duration = Duration::from_millis(100);

/// What the manager knows of one servant's reachability: its heartbeat, the
/// complaints about it, the dial-backs, and its relay state.
#[derive(Debug, Default)]
pub(super) struct Reach {
    /// When it last asked for the list: its heartbeat.
    pub(super) heard: Option<Instant>,
    /// Complaints about it, one record per complainer.
    complaints: Vec<Complaint>,
    /// Servants it has complaints recorded about.
    complained: u16,
    /// A dial-back to it is under way.
    pub(super) dialing: bool,
    /// When the last dial-back to it finished.
    pub(super) dialed: Option<Instant>,
    /// The last dial-back connected: it can be reached to relay.
    pub(super) confirmed: bool,
    /// It said `can relay`: it forwards lines to pullers. A VB servant would show
    /// a `pull` line as chat and forward nothing, black-holing its pullers.
    pub(super) can_relay: bool,
    pub(super) relay: RelayState,
    /// Servants assigned to pull from it.
    pub(super) pullers: u32,
    /// It lost its probes (`probe.rs`): chosen as a relay for no one until then.
    pub(super) banned_until: Option<Instant>,
}

/// Where a servant stands with the relay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum RelayState {
    /// Reached directly: no verdict against it.
    #[default]
    Direct,
    /// Marked; a relay is being found (its entry is unchanged meanwhile).
    Seeking,
    /// Marked; pulls from the servant at this offset.
    Via(Index),
    /// Marked; no servant can relay for it, and it has been told.
    Nobody,
}

/// One servant's complaints about another: how many, and the latest.
#[derive(Clone, Copy, Debug)]
struct Complaint {
    from: Index,
    count: u32,
    last: Instant,
}

/// Why a servant is being dialed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Enough of the others complained.
    Complaints { complainers: usize, of: usize },
    /// It said it cannot reach itself.
    SelfReport,
    /// A servant pulling from it cannot reach it.
    Puller,
    /// It would be a relay: check it can be reached first.
    Vet,
    /// It is marked: is it still unreachable?
    Recheck,
}

/// A dial-back in flight, held in its slot.
#[derive(Debug)]
pub(super) struct Dial {
    target: Index,
    /// The target's [`Seat::serial`](super::membership::Seat::serial), so a result never lands on a newcomer in its slot.
    serial: u64,
    purpose: Purpose,
    outcome: Option<Result<(), String>>,
}

/// The manager's dial-backs and counts for the relay.
#[derive(Debug, Default)]
pub(super) struct Verdicts {
    /// Dial slots and their deadlines.
    dials: Vec<(Index, Instant)>,
    /// The dial slot checking a would-be relay, if any (one at a time).
    pub(super) vetting: Option<Index>,
    /// Servants marked (any state but `Direct`).
    pub(super) marked: usize,
    /// Marked servants without a relay (`Seeking` or `Nobody`).
    pub(super) seeking: usize,
    /// When marked servants are next dialed again.
    next_recheck: Option<Instant>,
    /// When complaints past the window were last forgotten everywhere.
    pruned: Option<Instant>,
}

impl Manager {
    /// `cannot reach IP:PORT` from the servant in slot `from`: count it, and dial
    /// the peer back if enough servants now complain about it. In a cluster a
    /// peer another manager serves is that manager's to judge (`cluster/relay.rs`).
    pub(super) fn cannot_reach(&mut self, r: &mut Reactor<Slot>, from: Index, about: SocketAddr) {
        let me = self.offset_of(r, from);
        let Some(offset) = self.members.at(about) else {
            return debug!("offset {me} cannot reach {about}, which is not on the list");
        };
        if self.config.relay.threshold == 0 {
            return;
        }
        let Some(target) = self.slot(offset) else {
            return self.complain_remote(r, me, offset);
        };
        if target == from {
            return self.judge(r, target, Some(Purpose::SelfReport));
        }
        // One puller losing its relay is enough to check the relay.
        if member(r, from).is_some_and(|m| m.reach.relay == RelayState::Via(offset)) {
            return self.judge(r, target, Some(Purpose::Puller));
        }
        if self.complaint(r, from, target) {
            debug!("offset {me} cannot reach offset {offset} ({about})");
            self.judge(r, target, None);
        }
    }

    /// Another manager's servant at offset `from` cannot reach this manager's
    /// servant in slot `target`: a complaint like any other.
    pub(super) fn remote_complaint(&mut self, r: &mut Reactor<Slot>, from: usize, target: Index) {
        if self.config.relay.threshold > 0 && self.complaint(r, REMOTE + from, target) {
            let at = self.offset_of(r, target);
            debug!("offset {from} cannot reach offset {at} (another manager's servant)");
            self.judge(r, target, None);
        }
    }

    /// Counts a complaint from `from` (a slot, or [`REMOTE`] plus another
    /// manager's offset) about the servant in slot `target`; whether it counted.
    fn complaint(&mut self, r: &mut Reactor<Slot>, from: Index, target: Index) -> bool {
        let now = r.now();
        let window = self.config.relay.window;
        // Another manager bounds what its servants complain about.
        let full = |r: &Reactor<Slot>| match member(r, from) {
            Some(m) => m.reach.complained >= MAX_COMPLAINED,
            None => from < REMOTE,
        };
        if full(r) || member(r, target).is_some_and(|m| m.reach.complaints.len() >= MAX_COMPLAINERS)
        {
            self.forget_stale(r);
        }
        let full = full(r);
        let Some(m) = member_mut(r, target) else {
            return false;
        };
        let list = &mut m.reach.complaints;
        let room = !full && list.len() < MAX_COMPLAINERS;
        match list.iter_mut().find(|c| c.from == from) {
            Some(c) if now.duration_since(c.last) < COMPLAINT_GAP => return false,
            Some(c) => {
                c.count = if now.duration_since(c.last) >= window {
                    1
                } else {
                    c.count + 1
                };
                c.last = now;
            }
            None if !room => {
                debug!("a complaint about slot {target} not recorded: too many");
                return false;
            }
            None => {
                list.push(Complaint {
                    from,
                    count: 1,
                    last: now,
                });
                if let Some(c) = member_mut(r, from) {
                    c.reach.complained += 1;
                }
            }
        }
        true
    }

    /// Dials `target` back if the complaints (or `why`) call for it, it is not
    /// already marked or being dialed, it has not answered a dial-back within the
    /// recheck interval, and it keeps asking for the list.
    fn judge(&mut self, r: &mut Reactor<Slot>, target: Index, why: Option<Purpose>) {
        let cfg = &self.config.relay;
        let now = r.now();
        let others = self.members.count().saturating_sub(1);
        let Some(m) = member(r, target) else { return };
        let fresh = |t: Instant| now.duration_since(t) < cfg.window;
        if m.reach.relay != RelayState::Direct
            || m.reach.dialing
            || m.reach
                .dialed
                .is_some_and(|t| now.duration_since(t) < cfg.recheck)
            || !m.reach.heard.is_some_and(fresh)
        {
            return;
        }
        let purpose = match why {
            Some(p) => p,
            None => {
                let complainers = (m.reach.complaints.iter())
                    .filter(|c| c.count >= cfg.threshold && fresh(c.last))
                    .count();
                // Past MAX_COMPLAINERS records, the share is of what can be counted.
                let counted = others.min(MAX_COMPLAINERS);
                if complainers == 0 || complainers * 100 <= cfg.share as usize * counted {
                    return;
                }
                Purpose::Complaints {
                    complainers,
                    of: others,
                }
            }
        };
        self.dial(r, target, purpose);
    }

    /// Starts a non-blocking connection to `target`'s listening port.
    pub(super) fn dial(&mut self, r: &mut Reactor<Slot>, target: Index, purpose: Purpose) -> bool {
        let offset = self.offset_of(r, target);
        let Some(seat) = self.members.seat(offset) else {
            return false;
        };
        let (to, serial) = (seat.addr(), seat.serial);
        let bind =
            (self.config.bind).filter(|b| !b.is_unspecified() && b.is_ipv4() == to.is_ipv4());
        let deadline = r.now() + self.config.relay.dial_timeout;
        let dial = Dial {
            target,
            serial,
            purpose,
            outcome: None,
        };
        let i = match r.connect(to, bind, Slot::Dial(dial)) {
            Ok(i) => i,
            // Our own trouble (out of descriptors, say), not evidence against it.
            Err(e) => {
                warn!("cannot dial back offset {offset} ({to}): {e}");
                return false;
            }
        };
        debug!("dialing back offset {offset} ({to}): {purpose:?}");
        if let Some(m) = member_mut(r, target) {
            m.reach.dialing = true;
        }
        if purpose == Purpose::Vet {
            self.verdicts.vetting = Some(i);
        }
        self.verdicts.dials.push((i, deadline));
        self.arm_relay_timer(r);
        true
    }

    /// VB: `Winsock_Connect` on a dial-back: it answered. Nothing is sent.
    pub(super) fn dial_connect(&mut self, r: &mut Reactor<Slot>, i: Index) {
        if let Some(Slot::Dial(d)) = r.data_mut(i) {
            d.outcome = Some(Ok(()));
        }
        r.close(i);
    }

    /// VB: `Winsock_Error` on a dial-back: refused, unreachable, reset.
    pub(super) fn dial_error(&mut self, r: &mut Reactor<Slot>, i: Index, e: &std::io::Error) {
        if let Some(Slot::Dial(d)) = r.data_mut(i) {
            d.outcome.get_or_insert(Err(e.to_string()));
        }
    }

    /// VB: `Winsock_Close` on a dial-back: act on what it found.
    pub(super) fn dial_closed(&mut self, r: &mut Reactor<Slot>, i: Index, dial: Dial) {
        self.verdicts.dials.retain(|&(d, _)| d != i);
        if self.verdicts.vetting == Some(i) {
            self.verdicts.vetting = None;
        }
        let now = r.now();
        let result = dial
            .outcome
            .unwrap_or_else(|| Err("closed before connecting".into()));
        let offset = self.offset_of(r, dial.target);
        let seat = (self.members.seat(offset)).filter(|s| s.serial == dial.serial);
        let (Some(seat), Some(m)) = (seat, member_mut(r, dial.target)) else {
            return self.assign(r); // it left; a vetting slot may be free again
        };
        m.reach.dialing = false;
        m.reach.dialed = Some(now);
        m.reach.confirmed = result.is_ok();
        let (to, state) = (seat.addr(), m.reach.relay);
        let fresh = m
            .reach
            .heard
            .is_some_and(|t| now.duration_since(t) < self.config.relay.window);
        let (target, at) = (dial.target, offset);
        match result {
            Ok(()) => {
                let complaints = self.forget_complaints(r, target);
                if let Purpose::Complaints { .. } = dial.purpose {
                    info!("complaints about offset {at} ({to}) not confirmed: the dial-back connected ({complaints} complainers)");
                } else {
                    debug!(
                        "offset {at} ({to}) answered a dial-back ({:?})",
                        dial.purpose
                    );
                }
                if state != RelayState::Direct {
                    self.unmark(r, target);
                }
            }
            Err(why) if state == RelayState::Direct && fresh => {
                let reason = match dial.purpose {
                    Purpose::Complaints { complainers, of } => format!(
                        "{complainers} of {of} other servants complained {}+ times each",
                        self.config.relay.threshold
                    ),
                    Purpose::SelfReport => "it cannot reach itself".into(),
                    Purpose::Puller => "a servant pulling from it cannot reach it".into(),
                    Purpose::Vet | Purpose::Recheck => "it was checked as a possible relay".into(),
                };
                info!("verdict: offset {at} ({to}) is behind a port-blocking router: {reason}, and the dial-back failed ({why})");
                self.mark(r, target);
            }
            Err(why) => debug!("dial-back to offset {at} ({to}) failed: {why}"),
        }
        self.assign(r);
    }

    /// The relay timer: dial-backs past their deadline fail; marked servants due a
    /// recheck are dialed.
    pub(super) fn relay_timer(&mut self, r: &mut Reactor<Slot>) {
        let now = r.now();
        let late: Vec<Index> = (self.verdicts.dials.iter())
            .filter(|&&(_, at)| at <= now)
            .map(|&(i, _)| i)
            .collect();
        let ms = self.config.relay.dial_timeout.as_millis();
        for i in late {
            if let Some(Slot::Dial(d)) = r.data_mut(i) {
                d.outcome
                    .get_or_insert(Err(format!("no answer within {ms} ms")));
            }
            r.abort(i);
        }
        if self.verdicts.next_recheck.is_some_and(|t| t <= now) {
            self.verdicts.next_recheck = None;
            let recheck = self.config.relay.recheck;
            // Those dialed within the interval (just marked, say) wait for the next round.
            let due: Vec<Index> = (r.slots().iter())
                .filter_map(|(i, s)| match s.data() {
                    Some(Slot::Servant(m))
                        if m.reach.relay != RelayState::Direct
                            && !m.reach.dialing
                            && (m.reach.dialed)
                                .map_or(true, |t| now.duration_since(t) >= recheck) =>
                    {
                        Some(i)
                    }
                    _ => None,
                })
                .collect();
            for i in due {
                self.dial(r, i, Purpose::Recheck);
            }
        }
        self.arm_relay_timer(r);
    }

    /// Sets the relay timer for the next dial deadline or recheck.
    pub(super) fn arm_relay_timer(&mut self, r: &mut Reactor<Slot>) {
        if self.verdicts.marked == 0 {
            self.verdicts.next_recheck = None;
        } else if self.verdicts.next_recheck.is_none() {
            self.verdicts.next_recheck = Some(r.now() + self.config.relay.recheck);
        }
        let next = (self.verdicts.dials.iter().map(|&(_, at)| at))
            .chain(self.verdicts.next_recheck)
            .min();
        match next {
            Some(at) => r.set_timer(RELAY, at),
            None => r.cancel_timer(RELAY),
        }
    }

    /// Drops the complaints about `target` (it answered); returns how many servants
    /// had complained.
    /// Forgets complaints older than the window, about everyone, at most once a
    /// window. Without it an honest servant that stays for days would reach
    /// [`MAX_COMPLAINED`] with complaints about peers that are still there but long
    /// since reachable, and never be heard again; and a crowded list would keep
    /// complainers that have long stopped complaining.
    fn forget_stale(&mut self, r: &mut Reactor<Slot>) {
        let (now, window) = (r.now(), self.config.relay.window);
        if (self.verdicts.pruned).is_some_and(|t| now.duration_since(t) < window) {
            return;
        }
        self.verdicts.pruned = Some(now);
        let mut freed = Vec::new();
        for i in 0..r.slots().capacity() {
            if let Some(m) = member_mut(r, i) {
                m.reach.complaints.retain(|c| {
                    let fresh = now.duration_since(c.last) < window;
                    if !fresh {
                        freed.push(c.from);
                    }
                    fresh
                });
            }
        }
        for from in freed {
            if let Some(m) = member_mut(r, from) {
                m.reach.complained = m.reach.complained.saturating_sub(1);
            }
        }
    }

    fn forget_complaints(&mut self, r: &mut Reactor<Slot>, target: Index) -> usize {
        let Some(m) = member_mut(r, target) else {
            return 0;
        };
        let list = std::mem::take(&mut m.reach.complaints);
        for c in &list {
            if let Some(from) = member_mut(r, c.from) {
                from.reach.complained = from.reach.complained.saturating_sub(1);
            }
        }
        list.len()
    }

    /// A servant left: its complaints, and complaints about it, go with it.
    pub(super) fn forget_reach(&mut self, r: &mut Reactor<Slot>, index: Index, gone: &mut Member) {
        for c in std::mem::take(&mut gone.reach.complaints) {
            if let Some(from) = member_mut(r, c.from) {
                from.reach.complained = from.reach.complained.saturating_sub(1);
            }
        }
        if gone.reach.complained == 0 {
            return;
        }
        // Its index will be reused: no complaint may stay recorded in its name.
        let targets: Vec<Index> = r.slots().iter().map(|(i, _)| i).collect();
        for t in targets {
            if let Some(m) = member_mut(r, t) {
                m.reach.complaints.retain(|c| c.from != index);
            }
        }
    }
}

pub(super) fn member(r: &Reactor<Slot>, i: Index) -> Option<&Member> {
    match r.data(i) {
        Some(Slot::Servant(m)) => Some(m),
        _ => None,
    }
}

pub(super) fn member_mut(r: &mut Reactor<Slot>, i: Index) -> Option<&mut Member> {
    match r.data_mut(i) {
        Some(Slot::Servant(m)) => Some(m),
        _ => None,
    }
}
