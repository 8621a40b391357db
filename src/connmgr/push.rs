//! Pushes: after a join, a leave or a re-rendered entry, every servant that has
//! asked for the list is sent the news unasked, coalesced to one round per
//! `--push-interval`, and skipped when it was already sent this version (a
//! newcomer's answer). A servant that asked with a version (`needs peer list since
//! N`) is pushed a delta, the same bytes for everyone at the same version, so one
//! join costs N small writes; one that asked bare is pushed the whole document,
//! as the article's servants expect.

use std::time::{Duration, Instant};

use log::debug;

use super::versions::{Answers, Sent};
use super::{Slot, PUSH};
use crate::reactor::{Index, Reactor};
use crate::wire::peerdoc::PeerDoc;

/// Whole documents pushed per second, in bytes, the manager allows itself: a few
/// percent of what one core copies to loopback sockets, so pushes never crowd out
/// answers. Deltas are not paced by it: a round of them is one small write per
/// servant, and pacing them by their bytes would let changes pile up into bigger
/// deltas and longer waits.
const PUSH_BYTES_PER_SEC: u64 = 128 * 1024 * 1024;
/// Pushed bytes per loop turn; the rest of a round waits for the next turn.
const PUSH_TURN_BYTES: usize = 512 * 1024;
/// Pushes per loop turn, however small: each is a write(2), and answers to
/// requests wait behind a turn.
const PUSH_TURN_SENDS: usize = 1024;

/// The push schedule: when the next round may start, and the one under way.
#[derive(Debug)]
pub(super) struct Pushes {
    /// The earliest time the next push round may go out.
    next: Instant,
    /// The push round in progress, if one is spread over several loop turns.
    round: Option<Round>,
    /// The list changed after the current round started.
    changed_mid_round: bool,
}

impl Pushes {
    pub(super) fn new() -> Self {
        Pushes {
            next: Instant::now(),
            round: None,
            changed_mid_round: false,
        }
    }
}

/// Where a push round has got to.
#[derive(Debug)]
struct Round {
    started: Instant,
    /// The next slot to consider.
    next: Index,
    sent: usize,
    bytes: usize,
    /// Bytes of whole documents among `bytes`.
    whole: usize,
}

impl Pushes {
    /// The list changed (its version with it): a push is scheduled, at most one
    /// round per push window (`interval`; zero, no pushes).
    pub(super) fn changed(&mut self, r: &mut Reactor<Slot>, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        if self.round.is_some() {
            // Servants already pushed this round have not seen this change.
            if !std::mem::replace(&mut self.changed_mid_round, true) {
                debug!("the list changed mid-round; another round follows");
            }
        } else if r.timer_due(PUSH).is_none() {
            r.set_timer(PUSH, self.next.max(r.now()));
        } // else one is already coming and will carry this change
    }

    /// Pushes the current version to subscribed servants that have not been sent
    /// it (a servant that just asked already has it), [`PUSH_TURN_BYTES`] or
    /// [`PUSH_TURN_SENDS`] per loop turn so that answers to requests are not
    /// queued behind a whole round. One whose last output is still unsent is owed
    /// the list instead and gets it when it drains.
    pub(super) fn push(
        &mut self,
        r: &mut Reactor<Slot>,
        doc: &PeerDoc,
        answers: &mut Answers,
        interval: Duration,
    ) {
        let version = doc.version();
        let mut round = self.round.take().unwrap_or(Round {
            started: r.now(),
            next: 0,
            sent: 0,
            bytes: 0,
            whole: 0,
        });
        let (mut turn_bytes, mut turn_sends) = (0, 0);
        while round.next < r.slots().capacity() {
            let i = round.next;
            round.next += 1;
            let backlogged = r.socket(i).is_some_and(|s| s.unsent() > 0);
            let Some(Slot::Servant(s)) = r.data_mut(i) else {
                continue;
            };
            if !s.subscribed || s.seen == version {
                continue;
            }
            if backlogged {
                s.push_owed = true;
                continue;
            }
            let sent = answers.send_update(r, doc, i);
            round.sent += 1;
            round.bytes += sent.bytes();
            turn_bytes += sent.bytes();
            if let Sent::Whole(n) = sent {
                round.whole += n;
            }
            turn_sends += 1;
            if turn_bytes >= PUSH_TURN_BYTES || turn_sends >= PUSH_TURN_SENDS {
                self.round = Some(round);
                r.set_timer(PUSH, r.now()); // the rest next turn, after other events
                return;
            }
        }
        // Pushing N documents of N entries is O(N^2) bytes: past PUSH_BYTES_PER_SEC,
        // the next round waits longer than the window and servants rely on polling.
        // Windows count from each round's start, so a round of ten thousand writes
        // does not stretch the wait of the changes behind it.
        let paced = Duration::from_secs_f64(round.whole as f64 / PUSH_BYTES_PER_SEC as f64);
        self.next = (round.started + interval).max(r.now() + paced);
        if std::mem::take(&mut self.changed_mid_round) {
            r.set_timer(PUSH, self.next);
        }
        debug!(
            "pushed version {version} of the list of {} to {} servants ({} bytes)",
            doc.len(),
            round.sent,
            round.bytes
        );
    }
}
