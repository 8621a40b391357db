//! The chosen peer: which servant a marked one pulls from, and telling everyone.
//!
//! The article: "have it notify the suspicious servant that it needs to pull from
//! another peer ... The chosen peer must not itself be a suspicious peer behind a
//! router." Here a relay is a servant that is not marked, keeps asking for the list,
//! has room (`--relay-pullers`, as libp2p's circuit relay v2 caps reservations per
//! relay), and has answered a dial-back: an unchecked candidate is dialed first
//! ([`super::verdict::Purpose::Vet`]), so a servant behind another router is never
//! chosen. Pullers are spread over relays, fewest pullers first.
//!
//! The verdict is told in the document: the marked servant's entry gains
//! `<relay><ip/><port/></relay>` (or `<relay>none</relay>` when no servant can
//! relay), re-rendered in place, and pushed like any change. Everyone sees it, so
//! other servants stop connecting to it directly. When a relay leaves, its pullers
//! get new relays in the same push if a checked one has room; one spare relay is
//! kept checked for that.

use std::time::Instant;

use log::{info, warn};

use super::verdict::{member, member_mut, Purpose, RelayState};
use super::{Manager, Slot};
use crate::reactor::{Index, Reactor};
use crate::wire::relay::Relay;

/// What the best relay for a servant would be.
enum Pick {
    /// A checked servant with room.
    Checked(Index),
    /// One with room that has not been dialed back yet.
    Unchecked(Index),
    None,
}

impl Manager {
    /// The verdict went against `target`: it needs a relay, and any servants that
    /// pulled from it need another.
    pub(super) fn mark(&mut self, r: &mut Reactor<Slot>, target: Index) {
        self.verdicts.marked += 1;
        self.set_state(r, target, RelayState::Seeking);
        let offset = self.offset_of(r, target);
        self.relay_gone(r, offset);
        self.arm_relay_timer(r);
    }

    /// `target` answered a dial-back: peers reach it directly again.
    pub(super) fn unmark(&mut self, r: &mut Reactor<Slot>, target: Index) {
        self.set_state(r, target, RelayState::Direct);
        self.verdicts.marked = self.verdicts.marked.saturating_sub(1);
        let offset = self.offset_of(r, target);
        if let Some(seat) = self.members.seat(offset) {
            info!(
                "offset {offset} ({}) answers dial-backs again: no longer relayed",
                seat.addr()
            );
        }
    }

    /// The relay at offset `relay` left or was marked: its pullers look for another.
    pub(super) fn relay_gone(&mut self, r: &mut Reactor<Slot>, relay: Index) {
        let pullers: Vec<Index> = (r.slots().iter())
            .filter_map(|(i, s)| match s.data() {
                Some(Slot::Servant(m)) if m.reach.relay == RelayState::Via(relay) => Some(i),
                _ => None,
            })
            .collect();
        for p in pullers {
            let at = self.offset_of(r, p);
            info!("relay: offset {relay} can no longer relay; finding offset {at} another");
            self.set_state(r, p, RelayState::Seeking);
        }
    }

    /// Gives every marked servant without a relay the best one there is, checking
    /// candidates with a dial-back first, or tells it that none is eligible.
    pub(super) fn assign(&mut self, r: &mut Reactor<Slot>) {
        if self.verdicts.seeking > 0 {
            let seekers: Vec<Index> = (r.slots().iter())
                .filter_map(|(i, s)| match s.data() {
                    Some(Slot::Servant(m))
                        if matches!(m.reach.relay, RelayState::Seeking | RelayState::Nobody) =>
                    {
                        Some(i)
                    }
                    _ => None,
                })
                .collect();
            for s in seekers {
                match self.best_relay(r, s) {
                    Pick::Checked(c) => self.set_state(r, s, RelayState::Via(c)),
                    Pick::Unchecked(c) => {
                        let c = self.slot(c).unwrap_or(usize::MAX); // unchecked ones are ours
                        let dialing =
                            |r: &Reactor<Slot>| member(r, c).is_some_and(|m| m.reach.dialing);
                        if !dialing(r) && self.verdicts.vetting.is_none() {
                            self.dial(r, c, Purpose::Vet);
                        }
                        // Otherwise its dial-back's result calls this again.
                        if !dialing(r) {
                            self.set_state(r, s, RelayState::Nobody); // the dial could not start
                        }
                    }
                    Pick::None => self.set_state(r, s, RelayState::Nobody),
                }
            }
        }
        // A spare checked relay, so that one leaving is replaced within a push.
        if self.verdicts.marked > 0 && self.verdicts.vetting.is_none() {
            let (checked, unchecked) = self.candidates(r, None);
            if checked.len() < 2 {
                let idle = (unchecked.iter().filter_map(|&(_, c)| self.slot(c)))
                    .find(|&c| member(r, c).is_some_and(|m| !m.reach.dialing));
                if let Some(c) = idle {
                    self.dial(r, c, Purpose::Vet);
                }
            }
        }
    }

    fn best_relay(&self, r: &Reactor<Slot>, seeker: Index) -> Pick {
        let (checked, unchecked) = self.candidates(r, Some(seeker));
        match (checked.first(), unchecked.first()) {
            (Some(&(_, c)), _) => Pick::Checked(c),
            (None, Some(&(_, c))) => Pick::Unchecked(c),
            (None, None) => Pick::None,
        }
    }

    /// Servants that could relay, as (pullers, offset), fewest pullers first: those
    /// a dial-back reached (or another manager serves), and those not yet dialed
    /// or being dialed. `except` is a slot.
    #[allow(clippy::type_complexity)]
    fn candidates(
        &self,
        r: &Reactor<Slot>,
        except: Option<Index>,
    ) -> (Vec<(u32, Index)>, Vec<(u32, Index)>) {
        let cfg = &self.config.relay;
        let now = r.now();
        let fresh = |t: Instant| now.duration_since(t) < cfg.window;
        let (mut checked, mut unchecked) = (Vec::new(), Vec::new());
        for (i, s) in r.slots().iter() {
            let Some(Slot::Servant(m)) = s.data() else {
                continue;
            };
            if Some(i) == except
                || !m.reach.can_relay
                || m.reach.banned_until.is_some_and(|t| t > now)
                || m.reach.relay != RelayState::Direct
                || m.reach.pullers >= cfg.pullers
                || !m.reach.heard.is_some_and(fresh)
            {
                continue;
            }
            let offset = m.offset(i);
            if m.reach.confirmed {
                checked.push((m.reach.pullers, offset));
            } else if m.reach.dialing
                || m.reach
                    .dialed
                    .map_or(true, |t| now.duration_since(t) >= cfg.recheck)
            {
                unchecked.push((m.reach.pullers, offset));
            }
        }
        checked.extend(self.remote_relays(now));
        checked.sort_unstable();
        unchecked.sort_unstable();
        (checked, unchecked)
    }

    /// Moves `target` to `state`: puller counts, the counts of marked servants, its
    /// entry in the document, and the log.
    fn set_state(&mut self, r: &mut Reactor<Slot>, target: Index, state: RelayState) {
        let offset = self.offset_of(r, target);
        let (Some(m), Some(seat)) = (member_mut(r, target), self.members.seat(offset)) else {
            return;
        };
        let old = std::mem::replace(&mut m.reach.relay, state);
        let me = seat.addr();
        if old == state {
            return;
        }
        match state {
            RelayState::Via(via) => self.start_probing(r, target, via),
            _ if matches!(old, RelayState::Via(_)) => self.stop_probing(r, target),
            _ => {}
        }
        let seeking = |s| matches!(s, RelayState::Seeking | RelayState::Nobody);
        self.verdicts.seeking += usize::from(seeking(state));
        self.verdicts.seeking = (self.verdicts.seeking).saturating_sub(usize::from(seeking(old)));
        if let RelayState::Via(o) = old {
            self.count_pullers(r, o, -1);
        }
        let shown = match state {
            // Not told until a relay is found: the entry keeps what it said.
            RelayState::Seeking => return,
            RelayState::Direct => None,
            RelayState::Nobody => {
                warn!("relay: no servant is eligible to relay for offset {offset} ({me}); told it");
                Some(Relay::Nobody)
            }
            RelayState::Via(via) => {
                let Some(addr) = self.members.seat(via).map(|s| s.addr()) else {
                    return;
                };
                let Some(n) = self.count_pullers(r, via, 1) else {
                    return;
                };
                info!("relay: offset {offset} ({me}) pulls from offset {via} ({addr}), which now relays for {n}");
                Some(Relay::Via(addr))
            }
        };
        if self.show_relay(r, target, shown) {
            self.list_changed(r);
        }
    }

    /// `puller`'s relay was dropped: it is given the best other one, or told none.
    pub(super) fn reassign(&mut self, r: &mut Reactor<Slot>, puller: Index) {
        self.set_state(r, puller, RelayState::Seeking);
        self.assign(r);
    }

    /// The servant at `offset` left: it is no longer marked, no longer pulls, no
    /// longer relays.
    pub(super) fn relay_left(&mut self, r: &mut Reactor<Slot>, offset: Index, state: RelayState) {
        if state != RelayState::Direct {
            self.verdicts.marked = self.verdicts.marked.saturating_sub(1);
        }
        match state {
            RelayState::Seeking | RelayState::Nobody => {
                self.verdicts.seeking = self.verdicts.seeking.saturating_sub(1)
            }
            RelayState::Via(v) => drop(self.count_pullers(r, v, -1)),
            RelayState::Direct => {}
        }
        self.relay_gone(r, offset);
        self.assign(r);
        self.arm_relay_timer(r);
    }
}
