//! What comes down our pull link: framed lines ([`crate::wire::pull`]), each shown
//! as from its origin, through our own bans, exactly as if it had come to our
//! listener from there; and the manager's probes, which prove to the manager that
//! our relay forwards: a line whose origin is the manager's address is answered
//! `probed TEXT` on the manager link and never shown.

use std::net::IpAddr;

use log::{debug, info, warn};

use crate::net::canonical_ip;
use crate::reactor::{Index, Reactor, State};
use crate::servant::said::SAY_EVERY;
use crate::servant::{Servant, Slot};
use crate::wire::private::Private;
use crate::wire::pull::{self, FrameError, Pulled};

/// What one line down a pull link is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Down<'a> {
    /// An empty line: the relay is still there.
    Keepalive,
    /// The manager's probe through our relay: its text.
    Probe(&'a [u8]),
    /// A chat line, with its origin.
    Line(Pulled<'a>),
    /// Not a frame.
    Bad(FrameError),
}

/// Reads one line from the relay; `manager` is our manager link's address.
pub(super) fn classify(line: &[u8], manager: IpAddr) -> Down<'_> {
    if line.is_empty() {
        return Down::Keepalive;
    }
    match pull::parse(line) {
        Ok(p) if p.origin.ip() == manager => Down::Probe(p.text),
        Ok(p) => Down::Line(p),
        Err(e) => Down::Bad(e),
    }
}

impl Servant {
    /// What the relay forwards: every peer's lines, each shown as from its origin.
    pub(in crate::servant) fn pull_data_arrival(
        &mut self,
        r: &mut Reactor<Slot>,
        i: Index,
        data: &[u8],
    ) {
        let Some(Slot::Pull { to, reader, .. }) = r.data_mut(i) else {
            return;
        };
        let to = *to;
        let mut reader = std::mem::take(reader);
        self.relay.pull_heard = Some(r.now());
        let private = self.is_private();
        reader.feed(data, |msg, truncated| match private {
            true => self.pulled_sealed(r, to, msg, truncated),
            false => self.pulled_line(r, to, msg, truncated),
        });
        if let Some(Slot::Pull { reader: kept, .. }) = r.data_mut(i) {
            *kept = reader;
        }
    }

    fn pulled_line(
        &mut self,
        r: &mut Reactor<Slot>,
        relay: std::net::SocketAddr,
        msg: &[u8],
        truncated: bool,
    ) {
        let now = r.now();
        match classify(msg, canonical_ip(self.link.manager.ip())) {
            Down::Keepalive => {}
            Down::Probe(text) => self.probed(r, text),
            Down::Bad(e) => {
                if let Some(n) = self.relay.bad_frames.due_within(now, 1, SAY_EVERY) {
                    warn!("the relay at {relay} sent {n} line(s) that are not pull frames, dropped; the last: {e}");
                }
            }
            Down::Line(p) if self.bans.list.is_banned(p.origin.ip()) => {
                let banned = &mut self.admission.senders.banned;
                if let Some(n) = banned.due_within(now, 1, SAY_EVERY) {
                    info!("dropped {n} line(s) the relay forwarded from banned addresses (the last from {})", p.origin);
                }
            }
            Down::Line(p) => match crate::wire::private::read(p.text) {
                Private::No => self.show_line(now, p.origin, p.text, truncated),
                line => self.private_line(r, p.origin, line, truncated, true),
            },
        }
    }

    /// Answers a probe on the manager link: `probed TEXT`.
    pub(super) fn probed(&mut self, r: &mut Reactor<Slot>, text: &[u8]) {
        let Some(line) = pull::probed(text) else {
            return debug!(
                "a probe of {} bytes through the relay: too long to answer",
                text.len()
            );
        };
        match self.link.slot.filter(|&l| r.state(l) == State::Connected) {
            Some(link) => {
                debug!("answering the connection manager's probe through our relay");
                r.send(link, &line);
            }
            None => debug!("a probe through the relay, but no manager link to answer on"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::pull::Origin;

    #[test]
    fn a_line_from_the_managers_address_is_a_probe() {
        let manager: IpAddr = "203.0.113.2".parse().unwrap();
        assert_eq!(
            classify(b"from 203.0.113.2  quiet brown words", manager),
            Down::Probe(b"quiet brown words")
        );
        // However the relay names it: listed (a servant on the manager's host) or not.
        assert_eq!(
            classify(b"from 203.0.113.2:2224 bob hi", manager),
            Down::Probe(b"hi")
        );
        let from_bob = classify(b"from 203.0.113.3:2224 bob bob: hi", manager);
        let bob = Origin::Listed("203.0.113.3:2224".parse().unwrap());
        assert_eq!(
            from_bob,
            Down::Line(Pulled {
                origin: bob,
                name: Some("bob"),
                text: b"bob: hi"
            })
        );
        assert_eq!(classify(b"", manager), Down::Keepalive);
        assert!(matches!(classify(b"bob: hi", manager), Down::Bad(_)));
    }
}
