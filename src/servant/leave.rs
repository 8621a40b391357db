//! Leaving (VB: closing the form): on `/quit`, at the end of piped input, or at
//! [`QUIT_GRACE`] past either. The article's servant just vanished and the manager
//! noticed when its socket closed; here the link is closed on purpose, and lines
//! already typed are given the time to reach every peer, this servant included.

use std::time::Duration;

use log::{info, warn};

use super::{Servant, Slot, POLL, QUIT_DEADLINE, RECONNECT};
use crate::reactor::Reactor;

/// How long leaving waits for outgoing sends before giving up on them.
const QUIT_GRACE: Duration = Duration::from_secs(5);

impl Servant {
    /// Leaves: no more polling, the manager link closed at once (so the manager drops
    /// us from the list now, not after its idle timeout), and the loop stops once
    /// outgoing sends have drained, or after [`QUIT_GRACE`].
    pub(super) fn quit(&mut self, r: &mut Reactor<Slot>) {
        if self.quitting {
            return;
        }
        self.quitting = true;
        // Lines still held need the list first: keep the link until they have gone.
        if self.sends.held.is_empty() {
            self.leave_manager(r);
        }
        r.set_timer(QUIT_DEADLINE, r.now() + QUIT_GRACE);
        self.maybe_leave(r);
    }

    /// Stops asking and closes the link, so the manager drops this servant now.
    fn leave_manager(&mut self, r: &mut Reactor<Slot>) {
        r.cancel_timer(POLL);
        r.cancel_timer(RECONNECT);
        if let Some(link) = self.link.slot.take() {
            self.link.dropped = true;
            r.close(link);
        }
    }

    /// Stops the loop if leaving and nothing is left to deliver: no held lines, no
    /// outgoing sends, no send to ourselves that our listener has not yet shown.
    pub(super) fn maybe_leave(&mut self, r: &mut Reactor<Slot>) {
        if !self.quitting || !self.sends.held.is_empty() {
            return;
        }
        self.leave_manager(r);
        if self.sends.drained() {
            self.close_kept(r);
            info!("leaving");
            self.console.finish();
            r.stop();
        }
    }

    /// [`QUIT_GRACE`] is up: leave with sends still unfinished.
    pub(super) fn quit_deadline(&mut self, r: &mut Reactor<Slot>) {
        warn!(
            "leaving with {} send(s) unfinished after {} s{}",
            self.sends.outgoing + self.sends.self_pending.len(),
            QUIT_GRACE.as_secs(),
            if self.sends.held.is_empty() {
                ""
            } else {
                "; lines typed before any peer list arrived were never sent"
            }
        );
        self.console.finish();
        r.stop();
    }
}
