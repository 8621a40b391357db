//! Several connection managers: the servant uses the first it can reach, in
//! order, and when that link is lost (closed, refused, or silent) moves on to the
//! next, cycling. With one manager nothing here changes what it does: it
//! reconnects to that one with backoff, as it always did.
//!
//! Thousands of servants lose a manager at the same moment when it dies, so the
//! first attempt after a loss waits a random 0-500 ms ([`JITTER`]): they reach the
//! next manager spread out, not in one burst. The rest of a round follows at once
//! (a refused connection costs nothing); after a whole round without an answer the
//! usual backoff (0.1 s doubling to 5 s) is added.
//!
//! **A silent manager** (stopped, or a host gone without a reset) keeps its socket
//! open. With several managers, a request left unanswered for one poll interval
//! plus [`SILENCE_GRACE`] counts as losing it: every request is answered (with
//! `<unchanged/>` at least), and the article's manager, which answers only the bare
//! request sent one poll interval in, has the grace to do so. With one manager
//! there is nowhere to go, and the idle sweep drops a silent link as before.
//!
//! **Resuming.** A cluster's manager gives each versioned link a resume token
//! (`token OFFSET TOKEN`); after a failover the servant offers it first
//! (`resume OFFSET TOKEN`) and is answered `resumed OFFSET` (its entry, port and
//! offset go on at the new manager) or `resume refused` (a new join). A manager
//! without a cluster never sends a token, so no resume is offered to one; nor on a
//! private network, where the key is the identity. The token is a credential: it
//! is never logged.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info};

use crate::reactor::Reactor;
use crate::servant::{Servant, Slot};

/// The most a first attempt after a loss waits, chosen at random below it.
pub(in crate::servant) const JITTER: Duration = Duration::from_millis(500);
/// Past one poll interval, how long a request may go unanswered before the
/// manager counts as lost (several managers only).
pub(in crate::servant) const SILENCE_GRACE: Duration = Duration::from_secs(1);

/// The managers to use, in order, and where the servant is among them.
#[derive(Debug)]
pub(in crate::servant) struct Managers {
    addrs: Vec<SocketAddr>,
    /// The one in use or being tried.
    at: usize,
    /// Attempts since a manager last answered: a whole round of them adds backoff.
    tried: usize,
    /// When the oldest request still unanswered went out on this link.
    pub(in crate::servant) asked: Option<Instant>,
    random: RandomState,
    /// Jitters drawn: each one different.
    draws: u64,
}

/// What to do after losing the link to the manager in use.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::servant) enum Next {
    /// Try this manager after this long (jitter, and backoff after a round).
    Try {
        to: SocketAddr,
        wait: Duration,
        /// A whole round has gone by without an answer: the backoff grows.
        round_over: bool,
    },
    /// Only one manager: reconnect to it with the usual backoff.
    Same,
}

impl Managers {
    pub(in crate::servant) fn new(addrs: Vec<SocketAddr>) -> Managers {
        Managers {
            addrs,
            at: 0,
            tried: 0,
            asked: None,
            random: RandomState::new(),
            draws: 0,
        }
    }

    pub(in crate::servant) fn several(&self) -> bool {
        self.addrs.len() > 1
    }

    /// The manager in use has answered: the next loss starts a new round.
    pub(in crate::servant) fn heard(&mut self) {
        self.tried = 0;
        self.asked = None;
    }

    /// A request went out; the oldest unanswered one is kept.
    pub(in crate::servant) fn asking(&mut self, now: Instant) {
        self.asked.get_or_insert(now);
    }

    /// The link to the manager in use is gone: which one to try, and when.
    /// `backoff` is the reconnect backoff, added after a whole round.
    pub(in crate::servant) fn lost(&mut self, backoff: Duration) -> Next {
        self.asked = None;
        if !self.several() {
            return Next::Same;
        }
        self.at = (self.at + 1) % self.addrs.len();
        self.tried += 1;
        let round_over = self.tried % self.addrs.len() == 0;
        let wait = match self.tried {
            _ if round_over => backoff + self.jitter(),
            1 => self.jitter(),
            _ => Duration::ZERO,
        };
        Next::Try {
            to: self.addrs[self.at],
            wait,
            round_over,
        }
    }

    /// Whether the manager in use has left a request unanswered too long.
    pub(in crate::servant) fn silent(&self, now: Instant, poll: Duration) -> Option<Duration> {
        let asked = self.asked.filter(|_| self.several())?;
        let waited = now.saturating_duration_since(asked);
        (waited >= poll + SILENCE_GRACE).then_some(waited)
    }

    /// 0 to [`JITTER`], fresh each time: std's random hash keys (new for every
    /// `RandomState`), over a counter, are random enough to spread a crowd.
    fn jitter(&mut self) -> Duration {
        self.draws += 1;
        let mut h = self.random.build_hasher();
        h.write_u64(self.draws);
        let ms = h.finish() % (JITTER.as_millis() as u64 + 1);
        Duration::from_millis(ms)
    }
}

impl Servant {
    /// The tick: a manager that has left a request unanswered past the bound is
    /// taken to be lost, and the link closed so that the next one is tried.
    pub(in crate::servant) fn silence_tick(&mut self, r: &mut Reactor<Slot>) {
        let (Some(i), poll) = (self.link.slot, self.config.poll_interval) else {
            return;
        };
        if let Some(waited) = self.link.managers.silent(r.now(), poll) {
            self.link.error = Some(format!("no answer for {} ms", waited.as_millis()));
            self.link.managers.asked = None;
            // Whatever is queued would never leave: a plain close would wait for it.
            r.abort(i);
        }
    }

    /// `token`, `resumed` or `resume refused` from the manager.
    pub(in crate::servant) fn resume_line(&mut self, r: &mut Reactor<Slot>, said: ResumeLine) {
        match said {
            ResumeLine::Token(resume) => {
                debug!("resume token for offset {} received", resume.offset);
                self.link.resume = Some(resume);
            }
            ResumeLine::Resumed(offset) => {
                info!(
                    "the connection manager at {} took over our entry (offset {offset})",
                    self.link.manager
                );
            }
            ResumeLine::Refused => {
                // A new join: a new entry, which only the whole document shows.
                info!(
                    "the connection manager at {} refused to resume our entry; joining anew",
                    self.link.manager
                );
                self.link.resume = None;
                self.peers.forget_version();
                self.ask_manager(r);
            }
        }
    }
}

/// What a manager said that concerns resuming.
#[derive(Clone, PartialEq, Eq)]
pub(in crate::servant) enum ResumeLine {
    /// `token OFFSET TOKEN`: what to offer on the next link.
    Token(Resume),
    /// `resumed OFFSET`: the entry goes on at this manager.
    Resumed(usize),
    /// `resume refused`: this link is a new join.
    Refused,
}

/// An entry's resume token, offered after a failover. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub(in crate::servant) struct Resume {
    pub(in crate::servant) offset: usize,
    token: String,
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resume {{ offset: {}, token: <redacted> }}", self.offset)
    }
}

impl Resume {
    /// `resume OFFSET TOKEN\n`, the first line of a new link.
    pub(in crate::servant) fn line(&self) -> Vec<u8> {
        format!("resume {} {}\n", self.offset, self.token).into_bytes()
    }
}

impl ResumeLine {
    /// One line from the manager (without its `\n`), if it is one of these. Strict:
    /// a token is 32 lowercase hex digits, an offset a plain number.
    pub(in crate::servant) fn parse(line: &[u8]) -> Option<ResumeLine> {
        let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
        let offset = |s: &str| {
            let digits = !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| s.parse().ok()).flatten()
        };
        if line == "resume refused" {
            return Some(ResumeLine::Refused);
        }
        if let Some(rest) = line.strip_prefix("resumed ") {
            return offset(rest).map(ResumeLine::Resumed);
        }
        let (o, token) = line.strip_prefix("token ")?.split_once(' ')?;
        let hex = token.len() == 32
            && token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        Some(ResumeLine::Token(Resume {
            offset: offset(o)?,
            token: token.to_owned(),
        }))
        .filter(|_| hex)
    }
}

impl std::fmt::Debug for ResumeLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeLine::Token(r) => write!(f, "Token({r:?})"),
            ResumeLine::Resumed(o) => write!(f, "Resumed({o})"),
            ResumeLine::Refused => f.write_str("Refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managers(n: u16) -> Managers {
        Managers::new(
            (0..n)
                .map(|k| SocketAddr::from(([127, 0, 0, 1], 8000 + k)))
                .collect(),
        )
    }

    #[test]
    fn managers_are_tried_in_order_cycling_with_jitter_then_backoff() {
        let mut m = managers(3);
        let backoff = Duration::from_secs(2);
        let mut order = Vec::new();
        for _ in 0..6 {
            let Next::Try { to, wait, .. } = m.lost(backoff) else {
                panic!()
            };
            order.push((to.port(), wait));
        }
        let ports: Vec<u16> = order.iter().map(|o| o.0).collect();
        assert_eq!(ports, [8001, 8002, 8000, 8001, 8002, 8000]);
        assert!(order[0].1 <= JITTER, "first attempt: jitter only");
        assert_eq!((order[1].1, order[3].1), (Duration::ZERO, Duration::ZERO));
        for k in [2, 5] {
            assert!(order[k].1 >= backoff && order[k].1 <= backoff + JITTER);
        }
        m.heard();
        assert!(matches!(m.lost(backoff), Next::Try { wait, .. } if wait <= JITTER));
        assert_eq!(managers(1).lost(backoff), Next::Same);
    }

    #[test]
    fn jitter_spreads_over_the_window() {
        let waits: Vec<Duration> = (0..200)
            .map(|_| {
                let mut m = managers(2);
                match m.lost(Duration::ZERO) {
                    Next::Try { wait, .. } => wait,
                    Next::Same => panic!(),
                }
            })
            .collect();
        assert!(waits.iter().all(|&w| w <= JITTER));
        let early = waits.iter().filter(|&&w| w < JITTER / 2).count();
        assert!(
            (50..150).contains(&early),
            "{early} of 200 in the first half"
        );
    }

    #[test]
    fn silence_counts_from_the_oldest_unanswered_request() {
        let (mut m, t0, poll) = (managers(2), Instant::now(), Duration::from_millis(500));
        m.asking(t0);
        m.asking(t0 + poll);
        assert_eq!(m.silent(t0 + poll + SILENCE_GRACE / 2, poll), None);
        assert!(m.silent(t0 + poll + SILENCE_GRACE, poll).is_some());
        m.heard();
        assert_eq!(m.silent(t0 + poll * 10, poll), None);
        let mut one = managers(1);
        one.asking(t0);
        assert_eq!(
            one.silent(t0 + poll * 10, poll),
            None,
            "one manager: as before"
        );
    }

    #[test]
    fn resume_lines_are_read_strictly_and_the_token_never_printed() {
        let token = "0123456789abcdef0123456789abcdef";
        let Some(ResumeLine::Token(r)) = ResumeLine::parse(format!("token 7 {token}\r").as_bytes())
        else {
            panic!()
        };
        assert_eq!(r.line(), format!("resume 7 {token}\n").into_bytes());
        assert!(!format!("{r:?}").contains(token));
        assert_eq!(
            ResumeLine::parse(b"resumed 7\r"),
            Some(ResumeLine::Resumed(7))
        );
        assert_eq!(
            ResumeLine::parse(b"resume refused\r"),
            Some(ResumeLine::Refused)
        );
        for bad in [
            "token 7 0123456789ABCDEF0123456789ABCDEF",
            "token 7 0123",
            "token x 0123456789abcdef0123456789abcdef",
            "resumed -1",
            "resumed",
            "name ok alice",
        ] {
            assert_eq!(ResumeLine::parse(bad.as_bytes()), None, "{bad}");
        }
    }
}
