//! `Winsock1`, the link to the connection manager: connect, ask for the list every
//! poll interval, take the documents it answers or pushes, and reconnect with
//! backoff when it goes away.
//!
//! VB connected once at form load and assumed one `GetData` per document; here
//! answers are framed (documents by `</peers>`, deltas by `</delta>`), one read
//! may hold part of one or several, the list is kept by versions (`deltas.rs`),
//! and an outage keeps the last list while the link is retried.
//!
//! **The article's own manager.** The VB manager compared each whole `GetData`
//! buffer with the 15 bytes `needs peer list` and showed anything else in a
//! `MsgBox`: it never answers `needs peer list since N`, `can relay` or `name`.
//! A link whose manager has answered nothing one poll interval after it came up
//! falls back to what the VB servant sent: the bare 15 bytes, one request per
//! write (never a second one while the first is unsent, so two cannot arrive in
//! one read), and nothing else. The fallback is per link: a reconnect tries
//! versions again, so a p2pchat manager started in the VB one's place is used
//! fully.
//!
//! **A port someone else holds.** When the assigned port cannot be bound, the
//! servant says `cannot listen PORT` and waits one poll interval for the new port
//! the answer brings; only then (or at once, with the article's manager, which
//! knows no such line) does it drop the link, since a manager hands every new
//! connection the next port.
//!
//! **Several managers.** With more than one configured, a lost link moves on to
//! the next manager instead of waiting for the same one ([`failover`]).

mod failover;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::console::LinkState;
use super::names::Naming;
use super::{Servant, Slot, POLL, RECONNECT};
use crate::reactor::{Index, Reactor, State};
use crate::wire::delta;
use crate::wire::peerdoc::{self, Peer};
use failover::{Managers, Next, Resume, ResumeLine};

/// The article's request, as the VB servant sent it: no line ending.
pub(super) const BARE_REQUEST: &[u8] = b"needs peer list";
/// Reconnect delays to the manager: doubling from the first to the last.
pub(super) const BACKOFF_FIRST: Duration = Duration::from_millis(100);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Bytes from the manager without a complete document before the link is dropped.
const MAX_DOCUMENT: usize = 16 * 1024 * 1024;
/// Peers named in the `peers:` log line before it says "...".
const LOGGED_PEERS: usize = 16;

/// The link to the manager and what it is in the middle of.
#[derive(Debug)]
pub(super) struct Link {
    /// The manager in use or being tried.
    pub(super) manager: SocketAddr,
    /// Every manager configured, in order ([`failover`]).
    managers: Managers,
    /// What to offer the next manager so that our entry goes on there: the last
    /// token a cluster's manager gave.
    pub(super) resume: Option<Resume>,
    /// The link's slot while it exists.
    pub(super) slot: Option<Index>,
    /// Bytes from the manager not yet framed into a document.
    buf: Vec<u8>,
    /// We closed the link on purpose (bind failure, leaving): not an outage.
    pub(super) dropped: bool,
    /// Why the link failed, from `error`, for the log line `close` writes.
    pub(super) error: Option<String>,
    /// The outage has been logged; said again only after the link came back.
    outage_logged: bool,
    /// A link has come up at least once: a failure now is losing a manager we had,
    /// not failing to find one.
    had: bool,
    pub(super) backoff: Duration,
    /// No document has arrived on this link yet: the first one is logged even if the
    /// membership is unchanged, so a reconnect shows the network formed again.
    fresh: bool,
    /// A list without a `me` entry was reported.
    no_me_logged: bool,
    /// This link has come up (`Winsock1_Connect`) and sent its first request.
    up: bool,
    /// The manager has sent something on this link (an answer, a line).
    answered: bool,
    /// This link speaks the article's protocol: only [`BARE_REQUEST`] goes out.
    pub(super) article: bool,
    /// The fallback to the article's protocol was logged (once per run).
    article_logged: bool,
    /// `cannot listen PORT` was said for this port at this time: the new port is
    /// awaited until a poll interval has passed.
    moving: Option<(u16, Instant)>,
    /// Our name with the manager: asked, answered, assumed ([`super::names`]).
    pub(super) names: Naming,
}

impl Link {
    /// `managers` is never empty: the first is used first.
    pub(super) fn new(managers: Vec<SocketAddr>) -> Link {
        Link {
            manager: managers[0],
            managers: Managers::new(managers),
            resume: None,
            slot: None,
            buf: Vec::new(),
            dropped: false,
            error: None,
            outage_logged: false,
            had: false,
            backoff: BACKOFF_FIRST,
            fresh: true,
            no_me_logged: false,
            up: false,
            answered: false,
            article: false,
            article_logged: false,
            moving: None,
            names: Naming::default(),
        }
    }

    /// What a new link starts from: versions and names tried again, nothing
    /// awaited. A manager may have been replaced while the link was down.
    fn restart(&mut self) {
        self.dropped = false;
        self.fresh = true;
        self.buf.clear();
        self.up = false;
        self.answered = false;
        self.article = false;
        self.moving = None;
        self.managers.asked = None;
        self.names.new_link();
    }
}

impl Servant {
    /// VB: `Winsock1.Connect connectionmgr, port` at form load; here also after
    /// every outage. The first request is queued at once and goes out on connect.
    pub(super) fn connect_manager(&mut self, r: &mut Reactor<Slot>) {
        self.link.restart();
        if !self.keeps_version() {
            // A new link is a new entry: the whole list, to find it.
            self.peers.forget_version();
        }
        match self.open_manager(r) {
            Ok(i) => {
                debug!(
                    "connecting to the connection manager at {}",
                    self.link.manager
                );
                self.link.slot = Some(i);
                // Offered once per link, before the first request: this servant
                // forwards to pullers, so the manager may choose it as a relay.
                // On a private network too: what it carries there is sealed end
                // to end, and it routes by key (relay/sealed.rs).
                // A resume goes first, the request right behind it: the answer to
                // both comes in one round trip.
                let mut hello = Vec::new();
                let resume = self.link.resume.as_ref().filter(|_| !self.is_private());
                if let Some(resume) = resume {
                    hello.extend_from_slice(&resume.line());
                    hello.extend_from_slice(&self.list_request());
                }
                hello.extend_from_slice(crate::wire::relay::CAN_RELAY);
                hello.push(b'\n');
                if resume.is_none() {
                    hello.extend_from_slice(&self.list_request());
                }
                r.send(i, &hello);
                self.link.managers.asking(r.now());
                // After the first request, which a manager that knows no names
                // still answers first; the lists that follow carry the name.
                if let Some(name) = &self.config.name {
                    r.send(i, &crate::wire::name::request(name));
                    self.link.names.asked_at_connect(name, r.now());
                }
                r.set_timer(POLL, r.now() + self.config.poll_interval);
            }
            Err(e) => {
                self.manager_lost(r, &format!("cannot connect: {e}"));
            }
        }
    }

    /// The link is gone (or never came up): keep the last list, retry with backoff.
    pub(super) fn manager_lost(&mut self, r: &mut Reactor<Slot>, why: &str) {
        self.link.slot = None;
        self.link.buf.clear();
        r.cancel_timer(POLL);
        if self.quitting && self.sends.held.is_empty() {
            return;
        }
        if self.link.dropped {
            debug!(
                "manager link closed by us; reconnecting in {:?}",
                self.link.backoff
            );
        } else if !self.link.outage_logged {
            self.link.outage_logged = true;
            if self.link.had {
                self.console.set_link(LinkState::Reconnecting);
                self.manager_lost_event(why);
            } else {
                self.manager_unreachable_event(why);
            }
        } else {
            debug!("connection manager at {}: {why}", self.link.manager);
        }
        // Closed on purpose (a port, a runaway document): the same manager again.
        let next = match self.link.dropped {
            true => Next::Same,
            false => self.link.managers.lost(self.link.backoff),
        };
        let (wait, round_over) = match next {
            Next::Try {
                to,
                wait,
                round_over,
            } => {
                info!(
                    "failing over from the connection manager at {} to the one at {to} in {} ms",
                    self.link.manager,
                    wait.as_millis()
                );
                self.link.manager = to;
                (wait, round_over)
            }
            Next::Same => (self.link.backoff, true),
        };
        r.set_timer(RECONNECT, r.now() + wait);
        if round_over {
            self.link.backoff = (self.link.backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// VB: `Winsock1_Connect`.
    pub(super) fn winsock1_connect(&mut self) {
        self.link.up = true;
        self.console.set_link(LinkState::Connected);
        let had = std::mem::replace(&mut self.link.had, true);
        if std::mem::take(&mut self.link.outage_logged) {
            self.manager_back_event(had);
        } else {
            debug!(
                "connected to the connection manager at {}",
                self.link.manager
            );
        }
    }

    /// The poll timer: ask again (VB had no timer; it asked once).
    pub(super) fn poll(&mut self, r: &mut Reactor<Slot>) {
        if self.link.slot.is_some() {
            // The first request went out as the link came up, a poll interval ago:
            // nothing back means the article's manager. The bare request goes in
            // place of this poll's, so no two requests arrive close together.
            if self.link.up && !self.link.answered && !self.link.article {
                self.fall_back_to_article(r);
            }
            self.ask_manager(r);
            r.set_timer(POLL, r.now() + self.config.poll_interval);
        }
    }

    /// Asks for the list, unless the link is still connecting or has not sent the
    /// last request yet: requests are not piled up, and the article's manager,
    /// which reads each request alone, never gets two in one read.
    pub(super) fn ask_manager(&mut self, r: &mut Reactor<Slot>) {
        let Some(i) = self.link.slot else { return };
        if r.socket(i)
            .is_some_and(|s| s.state() == State::Connected && s.unsent() == 0)
        {
            r.send(i, &self.list_request());
            self.link.managers.asking(r.now());
        }
    }

    /// Writes a line of p2pchat's own (`cannot reach`, `name`, `cannot listen`,
    /// `probed`) on the manager link; false, sending nothing, when there is no link
    /// or its manager is the article's, which knows only `needs peer list`.
    pub(super) fn tell_manager(&mut self, r: &mut Reactor<Slot>, line: &[u8]) -> bool {
        let Some(i) = self.link.slot else {
            return false;
        };
        if self.link.article || !matches!(r.state(i), State::Connected | State::Connecting) {
            return false;
        }
        r.send(i, line);
        true
    }

    /// The timer tick: the new port awaited after `cannot listen`, names left
    /// unanswered.
    pub(super) fn link_tick(&mut self, r: &mut Reactor<Slot>) {
        let (now, poll) = (r.now(), self.config.poll_interval);
        if let Some((port, at)) = self.link.moving {
            if now.duration_since(at) >= poll {
                self.link.moving = None;
                warn!(
                    "the connection manager gave no new port for {port} within {} ms; reconnecting to it for one",
                    poll.as_millis()
                );
                self.drop_link(r);
            }
        }
        self.silence_tick(r);
        self.names_tick(r);
    }

    /// Nothing came back for a poll interval: the manager is taken to be the
    /// article's, and this link asks as the VB servant did.
    fn fall_back_to_article(&mut self, r: &mut Reactor<Slot>) {
        self.link.article = true;
        self.console.set_link(LinkState::ArticleMode);
        // It knows no names: a `/nick` asked meanwhile is only a new prefix.
        self.assume_names(r);
        let said = format!(
            "the connection manager at {} does not answer `needs peer list since N`; asking it as the article's servant did (`needs peer list`, nothing else) on this link",
            self.link.manager
        );
        if std::mem::replace(&mut self.link.article_logged, true) {
            debug!("{said}");
        } else {
            info!("{said}");
        }
    }

    /// The assigned port cannot be bound (another program holds it): the manager
    /// is told, and its answer brings a new port; with the article's manager, or
    /// no link, the link is dropped and made again, which brings the next port.
    pub(super) fn cannot_listen(&mut self, r: &mut Reactor<Slot>, addr: SocketAddr, e: &str) {
        let port = addr.port();
        if self.link.moving.is_some_and(|(p, _)| p == port) {
            return debug!("still cannot listen on {addr}: {e}");
        }
        let line = format!("cannot listen {port}\n");
        if self.tell_manager(r, line.as_bytes()) {
            warn!("cannot listen on {addr}: {e}; asking the connection manager for another port");
            self.link.moving = Some((port, r.now()));
            return;
        }
        warn!(
            "cannot listen on {addr}: {e}; asking the connection manager for another port in {} ms",
            self.link.backoff.as_millis()
        );
        self.drop_link(r);
    }

    /// Closes the link on purpose; it is made again after the backoff.
    fn drop_link(&mut self, r: &mut Reactor<Slot>) {
        if let Some(link) = self.link.slot {
            self.link.dropped = true;
            r.close(link);
        }
    }

    /// VB: `Winsock1_DataArrival(bytesTotal)`: `pDoc1.loadXML`, refill `userList1`,
    /// re-listen. Here documents are framed first, since one read may hold part of
    /// one, or several, and the manager also pushes new ones unasked.
    pub(super) fn winsock1_data_arrival(&mut self, r: &mut Reactor<Slot>, i: Index, data: &[u8]) {
        // The buffer leaves `self` while documents are applied, which needs `&mut self`.
        self.link.managers.heard();
        let mut buf = std::mem::take(&mut self.link.buf);
        let searched = searched(&buf);
        buf.extend_from_slice(data);
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            // A line the manager says instead of a document ("max number of servants
            // reached") is logged; blank lines between documents are skipped.
            let start = rest.iter().position(|b| !b.is_ascii_whitespace());
            let Some(start) = start else {
                used = buf.len();
                break;
            };
            if rest[start] != b'<' {
                let Some(nl) = rest[start..].iter().position(|&b| b == b'\n') else {
                    break;
                };
                let line = &rest[start..start + nl];
                self.link.answered = true;
                // `name ok NAME`, `name refused: REASON`: the answer to a `name`.
                if let Some(said) = ResumeLine::parse(line) {
                    self.resume_line(r, said);
                } else {
                    match super::names::Answer::parse(line) {
                        Some(answer) => self.name_answer(r, answer),
                        None => manager_says(line),
                    }
                }
                used += start + nl + 1;
                continue;
            }
            let answer = &rest[start..];
            // A whole document is searched only past what earlier reads searched, so
            // a manager dripping a huge one costs one pass, not one per read.
            let found = if answer.starts_with(b"<peers") {
                document_end_past(answer, searched.saturating_sub(used + start))
            } else {
                delta::answer_end(answer)
            };
            let Some(end) = found.map(|e| start + e) else {
                break;
            };
            self.link.answered = true;
            self.apply_document(r, &rest[..end]);
            used += end;
        }
        buf.drain(..used);
        if buf.len() > MAX_DOCUMENT {
            warn!(
                "connection manager sent {} bytes without a complete peer document; reconnecting",
                buf.len()
            );
            buf.clear();
            self.link.dropped = true;
            r.close(i);
        }
        if self.link.slot == Some(i) {
            self.link.buf = buf;
        }
    }

    /// One framed document: VB's `pDoc1.loadXML document`, then `userList1` refilled
    /// and `servants1(0)` listening on `me`'s port (re-listened only if it changed).
    /// Lines typed while there was no list go out now.
    fn apply_document(&mut self, r: &mut Reactor<Slot>, doc: &[u8]) {
        let Some(applied) = self.read_answer(r, doc) else {
            return;
        };
        // Taken first: `changed || take(..)` would leave it set after a changed list,
        // and the next, unchanged, list would be logged again.
        let fresh = std::mem::take(&mut self.link.fresh);
        let changed = applied.old != self.peers.list();
        self.settle_list(r.now(), fresh, changed, &applied.old);
        if changed || fresh {
            info!("peers: {}", describe(self.peers.list()));
        }
        self.list_changed(applied, r.now());
        if self.is_private() {
            self.revoke_unlisted(r);
            self.deliver_moved(r);
        }
        self.relay_document(r);
        let Some(port) = self.peers.me().map(|p| p.port) else {
            if !self.link.no_me_logged {
                self.link.no_me_logged = true;
                warn!(
                    "the peer list has no entry marked <me>TRUE</me>; not listening until one does"
                );
            }
            return;
        };
        self.link.no_me_logged = false;
        self.names_listed(r);
        // A port we said we cannot listen on is not tried again while the manager
        // is finding another.
        let moving = self.link.moving.is_some_and(|(p, _)| p == port);
        if self.listener.map(|(_, p)| p) != Some(port) && !moving {
            self.servants1_listen(r, port);
        }
        if self.listener.is_some() {
            self.link.moving = None;
            self.link.backoff = BACKOFF_FIRST;
            self.send_held(r);
        }
    }

    /// Lines typed while there was no list go out, once there is one, we listen,
    /// and the name they are prefixed with is settled ([`super::names`]).
    pub(super) fn send_held(&mut self, r: &mut Reactor<Slot>) {
        let ready = !self.peers.is_empty() && self.listener.is_some();
        if !ready || self.sends.held.is_empty() || self.link.names.holding() {
            return;
        }
        debug!(
            "sending {} bytes held until the peer list came",
            self.sends.held.len()
        );
        self.sends.batch = std::mem::take(&mut self.sends.held);
        self.send1_broadcast(r);
        self.maybe_leave(r);
    }
}

/// How much of what was kept from earlier reads is known to hold no document end:
/// all of it but the last bytes, which new ones may complete. Searching only past
/// it keeps a large document, read 64 KiB at a time, from costing a search of
/// everything so far on every read (quadratic in its size).
fn searched(kept: &[u8]) -> usize {
    kept.len().saturating_sub(b"</peers>".len() - 1)
}

/// [`peerdoc::document_end`] of `rest`, knowing its first `skip` bytes hold none.
fn document_end_past(rest: &[u8], skip: usize) -> Option<usize> {
    let skip = skip.min(rest.len());
    peerdoc::document_end(&rest[skip..]).map(|end| end + skip)
}

/// A line the manager said instead of a document, logged as text that cannot drive
/// a terminal: a manager is somebody else's program.
fn manager_says(line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    let shown = crate::xml::clip(line.trim(), 200);
    warn!("connection manager says: {}", crate::text::escape(&shown));
}

/// `3 (2224*, 2225, 2226)`.
fn describe(peers: &[Peer]) -> String {
    let mut s = format!("{} (", peers.len());
    for (k, p) in peers.iter().take(LOGGED_PEERS).enumerate() {
        if k > 0 {
            s.push_str(", ");
        }
        s.push_str(&p.port.to_string());
        if p.me {
            s.push('*');
        }
        if p.relay.is_some() {
            s.push_str(" relayed");
        }
    }
    if peers.len() > LOGGED_PEERS {
        s.push_str(", ...");
    }
    s.push(')');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16, me: bool) -> Peer {
        Peer {
            ip: "127.0.0.2".parse().unwrap(),
            port,
            offset: 1,
            me,
            relay: None,
            key: None,
        }
    }

    #[test]
    fn a_document_end_split_across_reads_is_found_searching_only_new_bytes() {
        let doc = b"<peers><peer/></peers>\r\n";
        let end = doc.len() - 2;
        // Whatever was kept from earlier reads held no complete end.
        for cut in 0..end {
            let skip = searched(&doc[..cut]);
            assert_eq!(document_end_past(doc, skip), Some(end), "cut at {cut}");
        }
        assert_eq!(document_end_past(b"<peers/>", 99), None);
    }

    #[test]
    fn the_peers_line_marks_self() {
        let peers = [peer(2224, true), peer(2225, false), peer(2226, false)];
        assert_eq!(describe(&peers), "3 (2224*, 2225, 2226)");
        let mut relayed = peer(2227, false);
        relayed.relay = Some(crate::wire::relay::Relay::Nobody);
        assert_eq!(describe(&[relayed]), "1 (2227 relayed)");
        assert_eq!(describe(&[]), "0 ()");
    }
}
