//! The virtual servants' connections to the manager: opening them (in a ramp for
//! servants that stay), asking, framing the documents that come back, timing the
//! answers, and what a connection that closed early stands for.

use std::cmp::Reverse;
use std::net::SocketAddr;
use std::time::Instant;

use super::super::report::Failure;
use super::super::scan;
use super::{Churn, Conn, Phase, Role, TICK_EVERY};
use crate::reactor::{Index, Reactor};

/// What every virtual servant asks.
pub(super) const REQUEST: &[u8] = b"needs peer list\n";
/// What ends a peer document on the wire (the manager never sends `<peers/>`).
pub(super) const END: &[u8] = b"</peers>";
/// Servants connecting at once while steady and fanout servants register, so the
/// manager's listen backlog does not overflow into SYN retries.
const RAMP: usize = 256;
/// A read buffer that grew past this is freed once empty.
const KEEP_CAPACITY: usize = 64 * 1024;
/// A document larger than this without its closing tag is garbage.
const MAX_DOC: usize = 64 << 20;
/// A refusal is one short line; a flooder reads no more than this of anything.
const MAX_REFUSAL: usize = 512;

/// A connection to the manager.
pub(super) struct Ask {
    pub role: Role,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the end of a document.
    scanned: usize,
    /// When the request now outstanding was sent (or its connect started); for a
    /// flooder, when its connect started.
    pub asked: Option<Instant>,
    /// The first answer on this connection is setup, not a measured poll.
    pub first: bool,
    pub connected: bool,
    answered: bool,
    pub failure: Option<(Failure, String)>,
}

impl Churn {
    /// Opens a connection to the manager for `role` and queues the request, except
    /// for steady servants, which only join and ask on their schedule (asking as
    /// each joins would cost the manager quadratic bytes: at 10,000 servants, 4 GB),
    /// and flooders, which only wait to be refused (a request the manager has not
    /// read when it closes would turn its close into a reset).
    pub(super) fn open(&mut self, r: &mut Reactor<Conn>, role: Role) -> bool {
        let steady = matches!(role, Role::Steady(_));
        let ask = Ask {
            role,
            buf: Vec::new(),
            scanned: 0,
            asked: (!steady).then(Instant::now),
            first: true,
            connected: false,
            answered: false,
            failure: None,
        };
        match r.connect(self.cfg.target, self.cfg.bind, Conn::Manager(ask)) {
            Ok(i) => {
                match role {
                    Role::Steady(k) => self.steady[k] = Some(i),
                    Role::Flooder => {}
                    _ => r.send(i, REQUEST),
                }
                true
            }
            Err(e) => {
                let target = self.cfg.target;
                self.fail(Failure::from_io(&e), || format!("connect to {target}: {e}"));
                false
            }
        }
    }

    /// Starts one join-leave cycle or flood connection (or queues a retry when
    /// connect fails at once).
    pub(super) fn start_churner(&mut self, r: &mut Reactor<Conn>, role: Role) {
        if self.open(r, role) {
            self.churners += 1;
        } else {
            self.restarts += 1;
            self.check_hopeless(r);
        }
    }

    /// Starts registering servants, `RAMP` at a time.
    pub(super) fn ramp(&mut self, r: &mut Reactor<Conn>) {
        while self.registering < RAMP && !r.is_stopped() {
            let Some(role) = self.to_register.pop() else {
                return;
            };
            if self.open(r, role) {
                self.registering += 1;
            } else {
                self.to_register.push(role);
                self.check_hopeless(r);
                return; // try again on the next tick
            }
        }
    }

    /// Steady servants whose turn it is ask again.
    pub(super) fn poll_due(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        while let Some(&Reverse((at, k))) = self.polls.peek() {
            if at > now {
                break;
            }
            self.polls.pop();
            self.polls
                .push(Reverse((at + self.cfg.interval.max(TICK_EVERY), k)));
            let Some(i) = self.steady[k] else { continue };
            let Some(Conn::Manager(ask)) = r.data_mut(i) else {
                continue;
            };
            if ask.asked.is_none() && ask.connected {
                ask.asked = Some(Instant::now());
                r.send(i, REQUEST);
            }
        }
    }

    /// Bytes from the manager on connection `i`: frame whole documents.
    pub(super) fn manager_data(&mut self, r: &mut Reactor<Conn>, i: Index, data: &[u8]) {
        let now = Instant::now();
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        // The common case, a whole document in one read, is framed in place.
        let mut buf = std::mem::take(&mut ask.buf);
        let in_place = buf.is_empty();
        let from = ask.scanned.saturating_sub(END.len());
        if !in_place {
            buf.extend_from_slice(data);
        }
        let bytes: &[u8] = if in_place { data } else { &buf };
        let used = self.frame(r, i, bytes, from, now);
        if in_place {
            buf.extend_from_slice(&data[used..]);
        } else {
            buf.drain(..used);
        }
        if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
            buf = Vec::new(); // 10,000 idle servants must not each keep a megabyte
        }
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        ask.scanned = buf.len();
        let garbage = !buf.is_empty() && !buf.starts_with(b"<") && buf.contains(&b'\n');
        if buf.len() > MAX_DOC || garbage {
            ask.failure = Some(classify(&buf));
            ask.asked = None;
            ask.buf = buf;
            r.close(i);
        } else {
            ask.buf = buf;
        }
    }

    /// Bytes from the manager on a flooder's connection: once a whole line is
    /// there, a refusal is the operation done, anything else a failure; either way
    /// the flooder hangs up and goes again.
    pub(super) fn refusal_data(&mut self, r: &mut Reactor<Conn>, i: Index, data: &[u8]) {
        let now = Instant::now();
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        let room = MAX_REFUSAL.saturating_sub(ask.buf.len());
        ask.buf.extend_from_slice(&data[..data.len().min(room)]);
        if !ask.buf.contains(&b'\n') && ask.buf.len() < MAX_REFUSAL {
            return;
        }
        let (kind, why) = classify(&ask.buf);
        let refused = matches!(kind, Failure::RefusedFull | Failure::RefusedNoPort);
        // No `asked`: it timed out already, and was counted so.
        let asked = ask.asked.take();
        if refused {
            ask.answered = asked.is_some();
        } else if asked.is_some() {
            ask.failure = Some((kind, format!("not a refusal: {why}")));
        }
        r.close(i);
        let Some(asked) = asked.filter(|_| refused) else {
            return;
        };
        self.stats.cycles_total += 1;
        if self.measuring() {
            self.stats.ops += 1;
            let took = now.saturating_duration_since(asked).as_nanos() as u64;
            self.stats.latency.record(took);
            self.counted(r, now);
        }
    }

    /// A connection to the manager has closed: count what it means, and start
    /// again where the role does.
    pub(super) fn manager_closed(&mut self, r: &mut Reactor<Conn>, ask: Ask) {
        let done = ask.answered && matches!(ask.role, Role::Churner | Role::Flooder);
        let failure = if done {
            None
        } else if let Some(f) = ask.failure {
            Some(f)
        } else if r.is_stopped() || self.phase == Phase::Drain && ask.asked.is_none() {
            None // we closed it at the end
        } else {
            Some(classify(&ask.buf))
        };
        let reason = failure.as_ref().map(|(_, why)| why.clone());
        if let Some((f, why)) = failure {
            let target = self.cfg.target;
            self.fail(f, || format!("{target}: {why}"));
            self.check_hopeless(r);
        }
        match ask.role {
            Role::Churner | Role::Flooder => {
                self.churners -= 1;
                if self.running(r) {
                    self.start_churner(r, ask.role);
                }
                self.check_drained(r);
            }
            Role::Steady(k) => {
                self.steady[k] = None;
                if ask.first {
                    self.registering -= 1;
                    self.to_register.push(ask.role);
                } else if self.running(r) {
                    // Lost: join again.
                    self.steady_ready -= 1;
                    self.to_register.push(ask.role);
                }
                self.check_drained(r);
            }
            Role::Fanout(k) => {
                if !r.is_stopped() {
                    let why = format!(
                        "fanout servant {k} lost its connection to the manager at {}: {}",
                        self.cfg.target,
                        reason.unwrap_or_else(|| "closed".into())
                    );
                    self.abort(r, why);
                }
            }
        }
    }

    /// Hands every whole document in `bytes` to [`Churn::document`]; returns the
    /// bytes used. `from` is where the search for the closing tag may start.
    fn frame(
        &mut self,
        r: &mut Reactor<Conn>,
        i: Index,
        bytes: &[u8],
        from: usize,
        now: Instant,
    ) -> usize {
        let mut used = 0;
        let mut from = from;
        loop {
            // The CRLF after `</peers>` may come in the next read: skip it there.
            while used < bytes.len() && matches!(bytes[used], b'\r' | b'\n') {
                used += 1;
            }
            from = from.max(used);
            let Some(at) = self.end_tag.find(&bytes[from..]) else {
                return used;
            };
            let end = from + at + END.len();
            let mut next = end;
            while next < bytes.len() && matches!(bytes[next], b'\r' | b'\n') {
                next += 1;
            }
            self.document(r, i, &bytes[used..end], next - used, now);
            used = next;
            from = next;
        }
    }

    /// A whole document arrived on manager connection `i`.
    /// `wire_len` counts the line ending after `</peers>` too: what the server sent.
    fn document(
        &mut self,
        r: &mut Reactor<Conn>,
        i: Index,
        doc: &[u8],
        wire_len: usize,
        now: Instant,
    ) {
        self.stats.documents += 1;
        self.stats.doc_bytes += wire_len as u64;
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        let role = ask.role;
        let Some(asked) = ask.asked.take() else {
            self.stats.pushes += 1;
            return;
        };
        let first = std::mem::replace(&mut ask.first, false);
        ask.answered = true;
        let must_parse = self.cfg.verify || (matches!(role, Role::Fanout(_)) && first);
        let me = if must_parse {
            match self.check(doc) {
                Ok(me) => Some(me),
                Err(why) => {
                    if let Some(Conn::Manager(ask)) = r.data_mut(i) {
                        ask.failure = Some((Failure::Malformed, why));
                        ask.answered = false;
                    }
                    r.close(i);
                    return;
                }
            }
        } else {
            None
        };
        let took = now.saturating_duration_since(asked).as_nanos() as u64;
        match role {
            // A flooder sends no request, so it has no answer to wait for.
            Role::Flooder => r.close(i),
            Role::Churner => {
                self.stats.cycles_total += 1;
                r.close(i);
                if self.measuring() {
                    self.stats.ops += 1;
                    self.stats.latency.record(took);
                    self.counted(r, now);
                }
            }
            Role::Steady(_) => {
                if self.measuring() {
                    self.stats.steady_answers += 1;
                    self.stats.steady_latency.record(took);
                    self.counted(r, now);
                }
                self.check_drained(r);
            }
            Role::Fanout(k) => self.fanout_document(r, i, k, first, me, doc),
        }
    }

    /// Checks `doc`; returns the asker's own address and every peer's.
    pub(super) fn check(&mut self, doc: &[u8]) -> Result<(SocketAddr, Vec<SocketAddr>), String> {
        let scan::Scanned { peers, me } = scan::scan(doc)?;
        self.stats.peers_seen(peers.len());
        Ok((peers[me], peers))
    }
}

/// The failure a connection that closed before its document stands for.
fn classify(buf: &[u8]) -> (Failure, String) {
    let text = String::from_utf8_lossy(&buf[..buf.len().min(200)]);
    let shown = text.trim();
    if shown.starts_with("max number of servants reached") {
        (Failure::RefusedFull, shown.to_string())
    } else if shown.starts_with("no free servant port") {
        (Failure::RefusedNoPort, shown.to_string())
    } else if buf.is_empty() {
        (Failure::ClosedEarly, "closed before any answer".into())
    } else if shown.starts_with("<peers") {
        (
            Failure::ClosedEarly,
            format!("closed after {} bytes of a document", buf.len()),
        )
    } else {
        (
            Failure::Malformed,
            format!("not a peer document: {shown:?}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_closes_are_classified_by_what_came() {
        let kind = |b: &[u8]| classify(b).0;
        assert_eq!(
            kind(b"max number of servants reached\r\n"),
            Failure::RefusedFull
        );
        assert_eq!(kind(b"no free servant port\r\n"), Failure::RefusedNoPort);
        assert_eq!(kind(b""), Failure::ClosedEarly);
        assert_eq!(kind(b"<peers><peer><ip>1.2"), Failure::ClosedEarly);
        let (f, why) = classify(b"HTTP/1.1 400 Bad Request\r\n");
        assert_eq!(f, Failure::Malformed);
        assert!(why.contains("HTTP/1.1 400"), "{why}");
    }
}
