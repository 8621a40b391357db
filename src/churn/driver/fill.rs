//! A flood's setup: churn fills the manager itself. Servants ("fillers") join
//! from churn's addresses, a few at a time, until the manager refuses one (its
//! `--max-per-address` for the address, or `--max-servants`); they then stay,
//! asking again every [`FILL_POLL`](super::manager::FILL_POLL) so the manager's idle timeout keeps them,
//! and the flooders' connections are all refused. A manager that others have
//! filled already refuses the first filler, and nothing is held.

use std::cmp::Reverse;
use std::time::Instant;

use super::super::report::Failure;
use super::manager::{Ask, FILL_POLL};
use super::phases::Phase;
use super::{Churn, Conn, Role};
use crate::reactor::Reactor;

/// Fillers joining at once: a refusal stops the fill with at most this many too many.
const FILL_BATCH: usize = 16;
/// The most fillers churn holds; a manager with room for more is not full.
const MAX_FILL: usize = 20_000;

/// How the fill goes.
#[derive(Debug, Default)]
pub(super) struct Fill {
    /// Fillers connecting or waiting for their first answer.
    pub joining: usize,
    /// Fillers the manager took, still connected.
    pub held: usize,
    /// The refusal that ended the fill.
    pub refused: Option<Failure>,
}

impl Churn {
    /// Starts fillers until the batch is full; ends the setup once a refusal
    /// came and no filler is still joining.
    pub(super) fn fill_more(&mut self, r: &mut Reactor<Conn>) {
        if self.phase != Phase::Setup || r.is_stopped() {
            return;
        }
        while self.fill.refused.is_none()
            && self.fill.joining < FILL_BATCH
            && self.steady.len() < MAX_FILL
        {
            let k = self.steady.len();
            self.steady.push(None);
            if !self.open(r, Role::Filler(k), None) {
                self.steady.pop();
                self.check_hopeless(r);
                return; // again on the next tick
            }
            self.fill.joining += 1;
        }
        if self.fill.joining > 0 {
            return;
        }
        if self.fill.refused.is_some() {
            log::info!("{} servants hold the manager full", self.fill.held);
            return self.setup_done(r);
        }
        let why = format!(
            "the manager at {} took {} servants and still has room: a flood needs a full \
             manager (start it with a lower --max-servants or --max-per-address)",
            self.cfg.target, self.fill.held
        );
        self.abort(r, why);
    }

    /// A filler's first answer came: the manager holds it; it polls from now on.
    pub(super) fn filler_joined(&mut self, r: &mut Reactor<Conn>, k: usize) {
        self.fill.joining -= 1;
        self.fill.held += 1;
        let at = Instant::now() + FILL_POLL;
        self.polls.push(Reverse((at, k)));
        self.fill_more(r);
    }

    /// A filler's connection closed: before its first answer, a refusal (or the
    /// reset a refusal can turn into when the request was unread) ends the fill.
    pub(super) fn filler_closed(&mut self, r: &mut Reactor<Conn>, k: usize, ask: Ask) {
        self.steady[k] = None;
        if !ask.first {
            self.fill.held -= 1;
            return self.check_drained(r);
        }
        self.fill.joining -= 1;
        let failure = ask
            .failure
            .unwrap_or_else(|| super::manager::classify(&ask.buf));
        match failure.0 {
            f if f.is_refusal() => self.fill.refused = Some(f),
            Failure::Reset | Failure::ClosedEarly if ask.connected => {
                self.fill.refused = Some(failure.0);
            }
            f => {
                let target = self.cfg.target;
                let why = failure.1;
                self.fail(f, || format!("{target}: filling the manager: {why}"));
                self.check_hopeless(r);
            }
        }
        self.fill_more(r);
    }
}
