//! The servant's list kept by versions: it asks `needs peer list since N` with
//! the version it has, and the manager answers with the whole document,
//! `<unchanged/>` or a delta ([`crate::wire::delta`]). A delta that does not
//! follow from this version, or does not fit the list (an offset it does not
//! hold), is not applied: the servant asks for the whole document again.
//!
//! Versions are opaque tokens ([`Version`]): `N` from a single manager, `E.N` from
//! a cluster of them. A new link to a single manager asks `since 0`, since it is a
//! new slot there and must be told which entry is its own. A new link within a
//! cluster keeps its `E.N` when its entry goes on (a resume, or a private
//! network's key: [`Servant::keeps_version`]), so the manager it fails over to
//! answers with a delta; a manager of another history answers with the whole
//! document.
//!
//! The VB servant re-read the whole `pDoc1` on every answer; against a manager
//! that knows no versions this one still does, since a document without a
//! version leaves it asking for the whole one. Against the article's manager,
//! which answers nothing but the bare request, the link asks that
//! ([`super::link`]); a versioned answer arriving after all brings it back.

use log::{debug, info, warn};

use super::peers::{Applied, Refused};
use super::{Servant, Slot};
use crate::reactor::Reactor;
use crate::wire::delta::{self, Version};

impl Servant {
    /// What the manager is asked: the version of the list this servant has, or
    /// the article's bare request on a link to the article's manager.
    pub(super) fn list_request(&self) -> Vec<u8> {
        if self.link.article {
            return super::link::BARE_REQUEST.to_vec();
        }
        needs_since(self.peers.version())
    }

    /// Whether a new link may ask `since` the version this servant has: only a
    /// cluster's (`E.N`), and only when its entry goes on at the next manager
    /// (a resume token to offer, or a private network's key).
    pub(super) fn keeps_version(&self) -> bool {
        self.peers.version().is_some_and(|v| v.has_epoch())
            && (self.is_private() || self.link.resume.is_some())
    }

    /// Reads one framed answer and applies it to the peers ([`super::peers::Peers::apply`]),
    /// returning what it replaced; or None when there is nothing to act on: a
    /// malformed or refused answer (the last list is kept) or one that does not
    /// apply (the whole document is asked for).
    pub(super) fn read_answer(&mut self, r: &mut Reactor<Slot>, bytes: &[u8]) -> Option<Applied> {
        if self.too_long(r, bytes) {
            return None;
        }
        let text = String::from_utf8_lossy(bytes);
        let answer = match delta::parse(&text) {
            Ok(a) => a,
            Err(e) => {
                warn!(
                    "ignoring a malformed peer list from the connection manager ({}); keeping the last one",
                    crate::text::escape(&e.to_string())
                );
                return None;
            }
        };
        let versioned = !matches!(answer, delta::Answer::Whole { version: None, .. });
        if versioned && std::mem::take(&mut self.link.article) {
            info!("the connection manager answers versions after all; asking by version again");
        }
        match (self.peers).apply(answer, delta::names(&text), self.config.max_peers) {
            Ok(applied) => {
                self.duplicates(r, applied.listed);
                Some(applied)
            }
            Err(Refused::TooLong(why)) => {
                self.refuse_list(r, &why);
                None
            }
            Err(Refused::Gap(why)) => {
                debug!("the connection manager's answer does not apply ({why}); asking for the whole list");
                self.ask_manager(r);
                None
            }
        }
    }
}

/// `needs peer list since V\n`; `since 0` without a version.
pub(super) fn needs_since(version: Option<Version>) -> Vec<u8> {
    let v = version.map_or_else(|| "0".to_owned(), |v| v.to_string());
    format!("needs peer list since {v}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use crate::servant::peers::tests::Rng;
    use crate::wire::delta::{self, Answer, Op};
    use crate::wire::history::Since;
    use crate::wire::peerdoc::{self, PeerDoc};
    use crate::wire::relay::Relay;

    /// The manager's slot and port rules around a [`PeerDoc`]: the lowest free
    /// offset from 1, ports counting up from `first` and wrapping past 65535,
    /// skipping ports still held.
    struct Model {
        doc: PeerDoc,
        ports: Vec<Option<u16>>,
        last_port: u16,
        first: u16,
    }

    impl Model {
        fn join(&mut self, rng: &mut Rng) {
            let offset = (1..)
                .find(|&o| self.ports.get(o).map_or(true, Option::is_none))
                .unwrap();
            let held: Vec<u16> = self.ports.iter().flatten().copied().collect();
            let mut port = self.last_port;
            loop {
                port = if port == 65535 { self.first } else { port + 1 };
                if !held.contains(&port) {
                    break;
                }
            }
            self.last_port = port;
            if self.ports.len() <= offset {
                self.ports.resize(offset + 1, None);
            }
            self.ports[offset] = Some(port);
            let ip = format!("127.0.{}.{}", rng.below(4), 1 + rng.below(250));
            self.doc.add(ip.parse().unwrap(), port, offset);
        }

        fn live(&self) -> Vec<usize> {
            (0..self.ports.len())
                .filter(|&o| self.ports[o].is_some())
                .collect()
        }
    }

    /// A servant's side: its list, its version, its offset, kept only by what the
    /// manager sends it; and the manager's record of what it sent (`seen`).
    struct Follower {
        me: usize,
        peers: Vec<peerdoc::Peer>,
        version: Option<u64>,
        seen: u64,
        deltas: u32,
    }

    impl Follower {
        /// What the manager sends a servant whose list is at `from`, as
        /// `Manager::send_versioned` does.
        fn send(&mut self, doc: &PeerDoc, from: u64) -> Vec<u8> {
            self.seen = doc.version();
            match doc.since(from) {
                Since::Unchanged => delta::unchanged(doc.version()),
                Since::Delta(d) => d,
                Since::Whole => doc.render_versioned_for(self.me),
            }
        }

        /// A push, from what the manager last sent; `lost`, it never arrives.
        fn push(&mut self, doc: &PeerDoc, lost: bool) {
            let bytes = self.send(doc, self.seen);
            if !lost {
                self.receive(doc, &bytes);
            }
        }

        /// `needs peer list since N`, answered as the manager answers it.
        fn poll(&mut self, doc: &PeerDoc) {
            let from = self.version.map_or(0, |v| v.max(self.seen));
            let bytes = self.send(doc, from);
            self.receive(doc, &bytes);
        }

        /// Applies an answer as the servant does: one that does not apply is
        /// dropped and the whole document asked for.
        fn receive(&mut self, doc: &PeerDoc, bytes: &[u8]) {
            let answer = delta::parse(std::str::from_utf8(bytes).unwrap()).unwrap();
            self.deltas += u32::from(matches!(answer, Answer::Delta(_)));
            let mut peers = match answer {
                Answer::Whole { .. } => Vec::new(),
                _ => self.peers.clone(),
            };
            match delta::update(&mut peers, self.version.map(Into::into), answer) {
                Ok(v) => {
                    let v = v.and_then(|v| v.count().map(|(_, n)| n));
                    (self.peers, self.version) = (peers, v)
                }
                Err(_) => {
                    self.version = None;
                    self.poll(doc);
                }
            }
        }
    }

    #[test]
    fn a_list_kept_by_deltas_is_the_managers_document() {
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let first = 65535 - 40 - rng.below(40) as u16; // wraps; room for 30
            let mut m = Model {
                doc: PeerDoc::new(),
                ports: vec![None],
                last_port: first - 1,
                first,
            };
            for _ in 0..5 {
                m.join(&mut rng);
            }
            let me = m.live()[rng.below(5) as usize];
            let mut f = Follower {
                me,
                peers: Vec::new(),
                version: None,
                seen: 0,
                deltas: 0,
            };
            f.poll(&m.doc);
            for step in 0..400 {
                let live = m.live();
                let others: Vec<usize> = live.iter().copied().filter(|&o| o != me).collect();
                match rng.below(10) {
                    0..=3 if live.len() < 30 => m.join(&mut rng),
                    0..=5 if !others.is_empty() => {
                        let o = others[rng.below(others.len() as u64) as usize];
                        m.ports[o] = None;
                        m.doc.remove(o);
                    }
                    6 | 7 => {
                        let o = live[rng.below(live.len() as u64) as usize];
                        let relay = match rng.below(3) {
                            0 => None,
                            1 => Some(Relay::Nobody),
                            _ => Some(Relay::Via(
                                format!("127.0.0.9:{}", 2224 + rng.below(3))
                                    .parse()
                                    .unwrap(),
                            )),
                        };
                        m.doc.set_relay(o, relay);
                    }
                    _ => {}
                }
                // Several changes may go by between pushes (they are coalesced);
                // a few pushes are lost; now and then the servant polls.
                match rng.below(8) {
                    0..=2 => continue,
                    3 => f.push(&m.doc, true),
                    4 => f.poll(&m.doc),
                    _ => f.push(&m.doc, false),
                }
                if f.seen == m.doc.version() && f.version == Some(f.seen) {
                    let want = m.doc.render_for(me);
                    let want = peerdoc::parse(std::str::from_utf8(&want).unwrap()).unwrap();
                    assert_eq!(f.peers, want, "seed {seed}, step {step}");
                }
            }
            f.poll(&m.doc);
            let want = peerdoc::parse(std::str::from_utf8(&m.doc.render_for(me)).unwrap());
            assert_eq!(f.peers, want.unwrap(), "seed {seed}, at the end");
            assert!(f.deltas > 100, "seed {seed}: only {} deltas", f.deltas);
        }
    }

    #[test]
    fn a_lost_delta_is_a_gap_and_the_whole_document_mends_it() {
        let mut doc = PeerDoc::new();
        for o in 1..=4 {
            doc.add("127.0.0.1".parse().unwrap(), 2223 + o as u16, o);
        }
        let v = doc.version();
        let mut peers = peerdoc::parse(std::str::from_utf8(&doc.render_for(1)).unwrap()).unwrap();
        doc.remove(2);
        let lost = doc.version();
        doc.remove(3);
        let Since::Delta(next) = doc.since(lost) else {
            panic!()
        };
        let answer = delta::parse(std::str::from_utf8(&next).unwrap()).unwrap();
        assert!(matches!(&answer, Answer::Delta(d) if d.ops == [Op::Left(3)]));
        let gap = delta::update(&mut peers, Some(v.into()), answer);
        assert!(gap.unwrap_err().contains(&format!("from version {lost}")));
    }
}
