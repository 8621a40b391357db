//! A servant that failed over from another manager takes its entry with it:
//! `resume OFFSET TOKEN` as its first line, checked and moved by one script
//! ([`super::scripts::RESUME`]), answered `resumed OFFSET` (same offset, port and
//! name; nobody sees it leave or join) or `resume refused` (a new join). To know
//! which, a new connection joins only once its first line has come, or a moment
//! after it connected if it says nothing (a bare client that only listens).
//!
//! The token a servant resumes with is sent to it once per connection, just
//! before its first versioned answer: `token OFFSET TOKEN`.

use log::{info, warn};

use super::sync::waiting;
use super::{Wait, JOIN_TIMER, STREAM_LENGTH};
use crate::connmgr::{Manager, Slot};
use crate::reactor::{Index, Reactor};
use crate::redis::Reply;
use crate::wire::request::{Line, RequestReader};

const RESUME: &[u8] = b"resume ";

impl Manager {
    /// Joins the new connections whose first line did not come in time.
    pub(super) fn first_line_timer(&mut self, r: &mut Reactor<Slot>) {
        let now = r.now();
        let c = self.cluster.as_mut().expect("in a cluster");
        let (due, later): (Vec<_>, Vec<_>) = c.undecided.drain(..).partition(|&(at, _)| at <= now);
        c.undecided = later;
        if let Some(&(at, _)) = c.undecided.first() {
            r.set_timer(JOIN_TIMER, at);
        }
        for (_, index) in due {
            if matches!(r.data(index), Some(Slot::Servant(s)) if s.undecided) {
                self.start_join(r, index);
            }
        }
    }

    /// `index` has sent its first bytes (kept in its `held`): a resume, a join,
    /// or wait for the rest of the line.
    pub(in crate::connmgr) fn first_line(&mut self, r: &mut Reactor<Slot>, index: Index) {
        let Some(Slot::Servant(s)) = r.data_mut(index) else {
            return;
        };
        let n = s.held.len().min(RESUME.len());
        if s.held[..n] != RESUME[..n] {
            return self.start_join(r, index);
        }
        let Some(nl) = s.held.iter().position(|&b| b == b'\n') else {
            return; // the rest of the line is coming
        };
        let line: Vec<u8> = s.held.drain(..=nl).collect();
        let mut resume = None;
        let _ = RequestReader::default().feed(&line, line.len(), |l| {
            if let Line::Resume(offset, token) = l {
                resume = Some((offset, token.to_vec()));
            }
        });
        let c = self.cluster.as_mut().expect("in a cluster");
        let token_ok =
            |t: &[u8]| t.len() == 32 && t.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        match resume {
            Some((offset, token)) if c.main.is_up() && c.synced && token_ok(&token) => {
                if let Some(Slot::Servant(s)) = r.data_mut(index) {
                    s.undecided = false;
                    s.token = std::str::from_utf8(&token).ok().map(Into::into);
                }
                let (prefix, id, o) = (c.prefix.clone(), c.id.clone(), offset.to_string());
                let args: [&[u8]; 5] = [
                    prefix.as_bytes(),
                    o.as_bytes(),
                    &token,
                    id.as_bytes(),
                    STREAM_LENGTH.as_bytes(),
                ];
                c.eval(r, |c| &c.resume, &args, Wait::Resume(index, offset));
            }
            _ => self.resume_refused(r, index),
        }
    }

    /// `resume refused`: the connection is a new join.
    fn resume_refused(&mut self, r: &mut Reactor<Slot>, index: Index) {
        if self.config.private.is_none() {
            r.send(index, b"resume refused\r\n"); // a private member asked nothing
        }
        self.start_join(r, index);
    }

    /// The resume script answered: `ok PORT` (the entry is this manager's now)
    /// or `refused`.
    pub(super) fn resume_reply(
        &mut self,
        r: &mut Reactor<Slot>,
        index: Index,
        offset: usize,
        reply: Option<Reply>,
    ) {
        let port = match &reply {
            Some(Reply::Array(Some(a))) if a.first().and_then(Reply::bytes) == Some(b"ok") => {
                a.get(1).and_then(|p| match p {
                    Reply::Integer(p) => u16::try_from(*p).ok(),
                    _ => None,
                })
            }
            _ => None,
        };
        let here = waiting(r, index);
        let c = self.cluster.as_mut().expect("in a cluster");
        match (port, here) {
            (Some(_), false) => c.send_leave(r, offset), // it closed meanwhile
            (None, false) => {}
            (None, true) => self.resume_refused(r, index),
            (Some(port), true) => {
                c.remote.remove(&offset);
                if let Some(old) = c.local.insert(offset, index).filter(|&o| o != index) {
                    // A private member's new link here: its old one is done.
                    if let Some(Slot::Servant(s)) = r.data_mut(old) {
                        s.handed_over = true;
                    }
                    r.abort(old);
                }
                let listed = self.members.seat(offset).is_some_and(|s| s.port == port);
                let Some(held) = super::join::seated(r, index, offset) else {
                    return;
                };
                if !listed {
                    // This copy had not heard of it yet: listed now, and mended
                    // by the snapshot that follows.
                    warn!("cluster: offset {offset} resumed here before its join arrived");
                    self.diverge(r);
                    if let Some(ip) = r.socket(index).map(|s| s.addr().ip()) {
                        self.members.leave(offset);
                        self.members.join(offset, ip, port);
                        self.list_changed(r);
                    }
                }
                info!("resumed: offset {offset}, port {port}");
                if self.config.private.is_none() {
                    r.send(index, format!("resumed {offset}\r\n").as_bytes());
                }
                if !held.is_empty() {
                    use crate::reactor::Handler;
                    self.data_arrival(r, index, &held);
                }
            }
        }
    }

    /// The stream says `offset` is `manager`'s now, resumed from `from`. If it was
    /// this manager's, its old connection is closed without a leave.
    pub(super) fn moved(
        &mut self,
        r: &mut Reactor<Slot>,
        offset: usize,
        manager: &str,
        from: &str,
    ) {
        let c = self.cluster.as_mut().expect("in a cluster");
        if manager == c.id {
            return; // taken over when its script answered
        }
        if from == c.id {
            if let Some(index) = c.local.remove(&offset) {
                info!(
                    "cluster: offset {offset} resumed on manager {manager}; closing its old link"
                );
                if let Some(Slot::Servant(s)) = r.data_mut(index) {
                    s.handed_over = true;
                }
                r.abort(index);
            }
        }
        if self.members.seat(offset).is_some() {
            self.cluster
                .as_mut()
                .expect("in a cluster")
                .remote
                .insert(offset);
        }
    }

    /// `token OFFSET TOKEN`, once per connection, before its first versioned
    /// answer: what it resumes with on another manager.
    pub(in crate::connmgr) fn send_token(
        &self,
        r: &mut Reactor<Slot>,
        index: Index,
        offset: Index,
    ) {
        if self.cluster.is_none() || self.config.private.is_some() {
            return;
        }
        let Some(Slot::Servant(s)) = r.data_mut(index) else {
            return;
        };
        if s.token_sent {
            return;
        }
        let Some(token) = s.token.clone() else {
            return;
        };
        s.token_sent = true;
        r.send(index, format!("token {offset} {token}\r\n").as_bytes());
    }
}
