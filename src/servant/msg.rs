//! `/msg NAME TEXT`: one line for one peer, and nobody else
//! ([`crate::wire::private`] has the wire form).
//!
//! The addressee is found by its listed name. A peer reached directly is sent
//! `(private) TEXT` on a connection of its own; a relayed one, its relay
//! `(private for IP:PORT) TEXT`, which the relay passes down that puller's link
//! only (`relay/serve.rs`), or, when we pull from the same relay, the same line up
//! our pull link. Our own relay is sent `(private) TEXT` up the pull link. The line
//! is never sent to ourselves, so it is shown at once (`-> bob: TEXT`).
//!
//! On the open network lines are plaintext on the wire: a private line is
//! direct, not secret, and the window says so the first time `/msg` is used. On
//! a private network it goes over the addressee's private link, or sealed end to
//! end for it alone through its relay (`relay/sealed.rs`), and is shown under the
//! name of the key that sent it.
//!
//! A received private line is shown as from whoever the network says sent it, like
//! any line ([`super::incoming`]); a malformed one, or one for a puller we do not
//! serve, is dropped and logged, at most once a second with a count.

use log::{debug, info};

use super::chat::MAX_MESSAGE;
use super::said::{RateLimited, SAY_EVERY};
use super::{Servant, Slot};
use crate::reactor::Reactor;
use crate::wire::private::{self, Private};
use crate::wire::pull::Origin;
use crate::wire::relay::Relay;

/// Said once per session, the first time `/msg` is used.
pub(super) const PLAINTEXT: &str =
    "/msg in a plaintext network is direct, not secret: anyone on the path can read it";

/// What `/msg` has said, and the private lines dropped.
#[derive(Debug, Default)]
pub(super) struct Privately {
    /// [`PLAINTEXT`] was said.
    warned: bool,
    /// Private lines dropped (malformed, or for nobody we relay for).
    dropped: RateLimited,
}

impl Servant {
    /// `/msg NAME TEXT`: the line goes to that peer only; an unknown NAME is an
    /// error and nothing is sent.
    pub(super) fn msg(&mut self, r: &mut Reactor<Slot>, rest: &str) {
        let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
        let text = text.trim();
        if name.is_empty() || text.is_empty() {
            return self
                .console
                .complain("/msg needs a name and a line: /msg bob hi");
        }
        if self.peers.is_empty() {
            return self.console.complain("no peer list yet; /msg not sent");
        }
        let Some(peer) = self.peers.by_name(name).cloned() else {
            return self.console.complain(&format!(
                "/msg: unknown name {} (not sent); /who lists who is here",
                crate::text::escape(name)
            ));
        };
        if peer.me {
            return self.console.complain("/msg: that is you (not sent)");
        }
        let to = peer.addr();
        let listed = self.peers.name(to).unwrap_or(name).to_string();
        if peer.relay == Some(Relay::Nobody) {
            return self.console.complain(&format!(
                "/msg: {} cannot be reached now (relayed, but no peer can relay for it); not sent",
                crate::text::escape(&listed)
            ));
        }
        if !self.is_private() && !std::mem::replace(&mut self.msg.warned, true) {
            self.console.complain(PLAINTEXT);
        }
        // The marks and our prefix stay within what a receiver takes as one message.
        let mut line = Vec::new();
        if let Some(own) = &self.config.name {
            line.extend_from_slice(own.as_bytes());
            line.extend_from_slice(b": ");
        }
        let room = MAX_MESSAGE - private::MAX_HEAD - line.len();
        line.extend_from_slice(cut(text, room).as_bytes());
        let via = match self.relay.status {
            Some(Relay::Via(v)) => Some(v),
            _ => None,
        };
        match peer.relay {
            // Sealed for the addressee alone: its relay routes it unread.
            Some(Relay::Via(_)) if self.is_private() => self.seal_private(r, to, &line),
            // Our relay reads our pull link as from us, and does not forward this.
            None if via == Some(to) => self.send_to_relay(r, &private::direct(&line)),
            None => self.send_one(r, to, private::direct(&line)),
            Some(Relay::Via(relay)) if via == Some(relay) => {
                self.send_to_relay(r, &private::for_puller(to, &line))
            }
            Some(Relay::Via(relay)) => self.send_one(r, relay, private::for_puller(to, &line)),
            Some(Relay::Nobody) => return,
        }
        debug!("a private line for {}", self.peers.who(to));
        let shown = line.len() - self.config.name.as_ref().map_or(0, |n| n.len() + 2);
        self.console
            .private_sent(&listed, &line[line.len() - shown..]);
    }

    /// A received line that is private, or meant to be (`pulled`: down our pull
    /// link, where a relay has already passed it on): shown if it is for us, passed
    /// to the one puller it is for, or dropped.
    pub(super) fn private_line(
        &mut self,
        r: &mut Reactor<Slot>,
        origin: Origin,
        line: Private<'_>,
        truncated: bool,
        pulled: bool,
    ) {
        let now = r.now();
        let why = match line {
            Private::No => return,
            Private::Direct(text) => return self.show_private(now, origin, text, truncated),
            Private::For(_, _) if pulled => {
                "a relay passes a private line on as \"(private) TEXT\"".to_string()
            }
            Private::For(to, text) if self.pass_private(r, origin, to, text) => return,
            Private::For(to, _) => format!("it is for {to}, which does not pull from us"),
            Private::Bad(e) => e.to_string(),
        };
        if let Some(n) = self.msg.dropped.due_within(now, 1, SAY_EVERY) {
            info!("dropped {n} private line(s) not for us to show or pass on; the last, from {origin}: {why}");
        }
    }
}

/// `text` cut to at most `room` bytes, at a character boundary.
fn cut(text: &str, room: usize) -> &str {
    if text.len() <= room {
        return text;
    }
    let mut end = room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_at_a_character() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("hi", 10), "hi");
    }
}
