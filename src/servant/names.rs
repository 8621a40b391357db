//! Our own name with the manager: `name NAME` asked, and the manager's answer,
//! `name ok NAME` or `name refused: REASON` (a line between its documents).
//!
//! The article had no names on the wire, only a prefix on chat lines. A name is
//! who a line claims to be from, so it is taken only when the manager lists it:
//! `/nick NAME` keeps the old name (and the old `NAME: ` prefix) until the
//! answer, and keeps it for good when the name is refused; a `--name` refused
//! when the link comes up leaves the servant unnamed, said once. Lines typed
//! before the first list wait for that answer too, since their prefix depends
//! on it.
//!
//! An older p2pchat manager never answers: the name is assumed when a document
//! lists it on our own entry, or after a poll interval without an answer, and
//! from then on for the rest of the link (as before answers existed). The
//! article's manager knows no names: a `/nick` there is only a new prefix.

use std::collections::VecDeque;
use std::time::Instant;

use log::{debug, info};

use super::{Servant, Slot};
use crate::reactor::Reactor;

/// Names asked for on one link, unanswered so far, at most this many.
const MAX_ASKED: usize = 16;

/// One `name NAME` the manager has not answered yet.
#[derive(Debug)]
struct Asked {
    name: String,
    since: Instant,
    /// Asked by `/nick` (the old name stays until the answer); else said when
    /// the link came up, for the name we already go by.
    nick: bool,
}

/// The names asked on the current link, and whether its manager answers them.
#[derive(Debug, Default)]
pub(crate) struct Naming {
    asked: VecDeque<Asked>,
    /// This link's manager let a name go unanswered: names are assumed.
    silent: bool,
}

impl Naming {
    /// A new link (or one that turned out to be the article's): nothing is awaited.
    pub(super) fn new_link(&mut self) {
        self.asked.clear();
        self.silent = false;
    }

    /// The name we go by was said as the link came up.
    pub(super) fn asked_at_connect(&mut self, name: &str, now: Instant) {
        self.asked.push_back(Asked {
            name: name.to_string(),
            since: now,
            nick: false,
        });
    }

    /// Lines typed before the list wait: the name they carry is not settled.
    pub(super) fn holding(&self) -> bool {
        self.asked.iter().any(|a| !a.nick)
    }
}

/// The manager's answer to `name NAME`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `name ok NAME` (`name ok` when a name was forgotten).
    Ok(String),
    /// `name refused: REASON`.
    Refused(String),
}

impl Answer {
    /// A line from the manager (without its `\n`) as a name answer, if it is one.
    pub(crate) fn parse(line: &[u8]) -> Option<Answer> {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if let Some(reason) = line.strip_prefix("name refused:") {
            return Some(Answer::Refused(crate::xml::clip(reason.trim(), 80)));
        }
        let name = line.strip_prefix("name ok")?;
        match name.chars().next() {
            None => Some(Answer::Ok(String::new())),
            Some(' ') => Some(Answer::Ok(name.trim().to_string())),
            Some(_) => None,
        }
    }
}

/// `held` (typed lines, each ending `\n`) with `name`'s prefix taken off each line
/// that has it: `NAME: text` and the action `* NAME text`.
fn unprefixed(held: &[u8], name: &str) -> Vec<u8> {
    let said = format!("{name}: ");
    let action = format!("* {name} ");
    let mut out = Vec::with_capacity(held.len());
    for line in held.split_inclusive(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(said.as_bytes()) {
            out.extend_from_slice(rest);
        } else if let Some(rest) = line.strip_prefix(action.as_bytes()) {
            out.extend_from_slice(b"* ");
            out.extend_from_slice(rest);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

impl Servant {
    /// `/nick NAME`, checked: asked of the manager, and taken when it answers; at
    /// once when there is no link (it is said when the link comes up), when the
    /// manager is the article's, or when it does not answer names.
    pub(super) fn ask_name(&mut self, r: &mut Reactor<Slot>, name: String) {
        if self.config.private.is_some() {
            info!("not renamed to {name:?}: on a private network names are the members file's");
            return self.console.complain(
                "names on a private network come from the manager's members file; your name is unchanged",
            );
        }
        let sent = self.tell_manager(r, &crate::wire::name::request(&name));
        let n = &mut self.link.names;
        if sent && !n.silent && n.asked.len() < MAX_ASKED {
            debug!("asking the connection manager for the name {name:?}");
            n.asked.push_back(Asked {
                name,
                since: r.now(),
                nick: true,
            });
            return;
        }
        self.take_name(name);
    }

    /// The name is ours: our lines carry it from now on.
    fn take_name(&mut self, name: String) {
        info!("now called {name:?}");
        self.console
            .complain(&format!("you are now {}", crate::text::escape(&name)));
        self.config.name = Some(name);
        self.console
            .set_names(self.config.name.as_deref(), self.peers.names());
    }

    /// The manager answered the oldest name asked on this link.
    pub(super) fn name_answer(&mut self, r: &mut Reactor<Slot>, answer: Answer) {
        let Some(asked) = self.link.names.asked.pop_front() else {
            return debug!("the connection manager answered a name nobody asked: {answer:?}");
        };
        match answer {
            Answer::Ok(listed) if asked.nick => {
                let listed = crate::wire::name::check(&listed).map(str::to_string);
                self.take_name(listed.unwrap_or(asked.name));
            }
            Answer::Ok(_) => debug!("the connection manager lists us as {:?}", asked.name),
            Answer::Refused(why) if asked.nick => {
                debug!("the name {:?} was refused: {why}", asked.name);
                self.console.complain(&format!(
                    "{} refused: {}",
                    crate::text::escape(&asked.name),
                    crate::text::escape(&why)
                ));
            }
            Answer::Refused(why) => {
                if self.config.name.as_deref() == Some(asked.name.as_str()) {
                    self.config.name = None;
                    self.sends.held = unprefixed(&self.sends.held, &asked.name);
                    let said = format!(
                        "the connection manager refused the name {} ({}); running unnamed",
                        crate::text::escape(&asked.name),
                        crate::text::escape(&why)
                    );
                    debug!("{said}");
                    self.console.complain(&said);
                    self.console.set_names(None, self.peers.names());
                }
            }
        }
        self.send_held(r);
    }

    /// A new list: a manager that does not answer names shows that it took one by
    /// listing it on our own entry.
    pub(super) fn names_listed(&mut self, r: &mut Reactor<Slot>) {
        let Some(me) = self.peers.me().map(|p| p.addr()) else {
            return;
        };
        let listed = self.peers.name(me).map(str::to_string);
        let first = self.link.names.asked.front();
        if listed.is_some() && first.map(|a| &a.name) == listed.as_ref() {
            debug!("the connection manager lists our name without answering it");
            self.link.names.silent = true;
            self.assume_names(r);
        }
    }

    /// Names unanswered for a poll interval: an older manager, which never answers.
    pub(super) fn names_tick(&mut self, r: &mut Reactor<Slot>) {
        let poll = self.config.poll_interval;
        let first = self.link.names.asked.front();
        if first.is_some_and(|a| r.now().duration_since(a.since) >= poll) {
            debug!("the connection manager does not answer names; assuming them");
            self.link.names.silent = true;
            self.assume_names(r);
        }
    }

    /// Every name asked on this link is taken as granted, as before answers.
    pub(super) fn assume_names(&mut self, r: &mut Reactor<Slot>) {
        let asked = std::mem::take(&mut self.link.names.asked);
        if let Some(last) = asked.into_iter().rfind(|a| a.nick) {
            self.take_name(last.name);
        }
        self.send_held(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_other_lines_are_not() {
        assert_eq!(
            Answer::parse(b"name ok alice\r"),
            Some(Answer::Ok("alice".into()))
        );
        assert_eq!(Answer::parse(b"name ok"), Some(Answer::Ok(String::new())));
        assert_eq!(
            Answer::parse(b"name refused: in use\r"),
            Some(Answer::Refused("in use".into()))
        );
        assert_eq!(Answer::parse(b"name okay"), None);
        assert_eq!(Answer::parse(b"max number of servants reached"), None);
    }

    #[test]
    fn a_refused_name_comes_off_the_lines_it_prefixed() {
        let held = b"bob: hi\n* bob waves\nbobby: not us\n";
        assert_eq!(unprefixed(held, "bob"), b"hi\n* waves\nbobby: not us\n");
    }
}
