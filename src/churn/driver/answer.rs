//! Framing what comes back: the manager's answers (documents ending in
//! `</peers>`, deltas in `</delta>`, unchanged in `/>`; pushes told apart from
//! answers, versions followed in [`super::lists`]), and, from any other server, an
//! answer ending with `--expect` or at the server's close. A finished answer ends
//! a cycle, a steady poll, or a fanout servant's registration.

use std::net::SocketAddr;
use std::time::Instant;

use super::super::report::Failure;
use super::super::scan;
use super::manager::{classify, Parts, END, KEEP_CAPACITY, MAX_DOC};
use super::{Churn, Conn, Role};
use crate::reactor::{Index, Reactor};
use memchr::memmem;

impl Churn {
    /// Bytes from the manager on connection `i`: frame whole documents.
    pub(super) fn manager_data(&mut self, r: &mut Reactor<Conn>, i: Index, data: &[u8]) {
        let now = Instant::now();
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        ask.bytes_came(now);
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
            ask.buf = buf;
            r.close(i);
        } else {
            ask.buf = buf;
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
            // A cluster's manager says `token OFFSET TOKEN` once before its first
            // versioned answer (docs/CLUSTER.md): churn never resumes, so skips it.
            if bytes[used..].starts_with(b"token ") {
                match memchr::memchr(b'\n', &bytes[used..]) {
                    Some(at) => {
                        used += at + 1;
                        continue;
                    }
                    None => return used,
                }
            }
            from = from.max(used);
            // The root names the end: a document, a delta, or an unchanged.
            let found = match bytes.get(used + 1) {
                None => None,
                Some(b'd') => memmem::find(&bytes[from..], b"</delta>").map(|at| at + 8),
                Some(b'u') => memmem::find(&bytes[from..], b"/>").map(|at| at + 2),
                Some(_) => self.end_tag.find(&bytes[from..]).map(|at| at + END.len()),
            };
            let Some(at) = found else {
                return used;
            };
            let end = from + at;
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
        self.follow(r, i, doc, now);
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        let (role, intended, counted) = (ask.role, ask.intended, ask.counted);
        let Some(asked) = ask.asked.take() else {
            self.stats.pushes += 1;
            return;
        };
        let parts = ask.parts(asked);
        let first = std::mem::replace(&mut ask.first, false);
        ask.answered = true;
        let whole = doc.trim_ascii_start().starts_with(b"<peers");
        let must_parse = whole && (self.cfg.verify || matches!(role, Role::Fanout(_)) && first);
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
            Role::Churner | Role::KeepAlive => {
                self.answered(r, i, role, (asked, intended, counted), parts, now);
            }
            Role::Steady(_) if first && !self.cfg.bare => self.steady_joined(r),
            Role::Steady(_) => {
                if self.measuring() {
                    self.stats.steady_answer(took);
                    self.counted(r, now);
                }
                self.check_drained(r);
            }
            Role::Fanout(k) => self.fanout_document(r, i, k, first, me, doc),
            Role::Filler(k) if first => self.filler_joined(r, k),
            Role::Filler(_) => self.check_drained(r),
        }
    }

    /// Checks `doc`; returns the asker's own address and every peer's.
    pub(super) fn check(&mut self, doc: &[u8]) -> Result<(SocketAddr, Vec<SocketAddr>), String> {
        let scan::Scanned { peers, me } = scan::scan(doc)?;
        self.stats.peers_seen(peers.len());
        Ok((peers[me], peers))
    }

    /// Bytes from a server spoken to with `--request`: an answer is whole when
    /// the bytes end with `--expect`; without it, when the server closes
    /// ([`Churn::manager_closed`]), so until then they are only kept.
    pub(super) fn generic_data(&mut self, r: &mut Reactor<Conn>, i: Index, data: &[u8]) {
        let now = Instant::now();
        let Some(Conn::Manager(ask)) = r.data_mut(i) else {
            return;
        };
        ask.bytes_came(now);
        ask.buf.extend_from_slice(data);
        let found = self.expect.as_ref().and_then(|f| {
            let from = ask.scanned.saturating_sub(f.needle().len() - 1);
            f.find(&ask.buf[from..])
                .map(|at| from + at + f.needle().len())
        });
        let Some(end) = found else {
            ask.scanned = ask.buf.len();
            if ask.buf.len() > MAX_DOC {
                let what = if self.expect.is_some() {
                    "without the expected end"
                } else {
                    "before the server closed"
                };
                ask.failure = Some((
                    Failure::Malformed,
                    format!("more than {} MiB {what}", MAX_DOC >> 20),
                ));
                r.abort(i);
            }
            return;
        };
        ask.buf.drain(..end);
        ask.scanned = 0;
        if ask.buf.is_empty() && ask.buf.capacity() > KEEP_CAPACITY {
            ask.buf = Vec::new();
        }
        self.stats.documents += 1;
        self.stats.doc_bytes += end as u64;
        let (asked, intended, counted, role) =
            (ask.asked.take(), ask.intended, ask.counted, ask.role);
        let Some(asked) = asked else {
            self.stats.pushes += 1; // an answer nobody asked for
            return;
        };
        let parts = ask.parts(asked);
        ask.answered = true;
        self.answered(r, i, role, (asked, intended, counted), parts, now);
    }

    /// A churner's or kept connection's answer came: count the cycle, then hang
    /// up (join-leave) or ask again (kept).
    /// `start` is when it was asked, when it was due, and whether it counts.
    pub(super) fn answered(
        &mut self,
        r: &mut Reactor<Conn>,
        i: Index,
        role: Role,
        start: (Instant, Option<Instant>, bool),
        parts: Parts,
        now: Instant,
    ) {
        let (asked, intended, counted) = start;
        self.cycle_done(r, asked, intended, counted, parts, now);
        if role == Role::KeepAlive {
            self.kept_idle(r, i);
            self.check_drained(r);
        } else {
            self.churner_done(r, i);
        }
    }
}
