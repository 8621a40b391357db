//! The peer document: `<peers><peer><ip/><port/><offset/><me/></peer>...</peers>`.
//!
//! The manager keeps it as bytes, rendered once per membership change: a join
//! appends one entry, a leave cuts one out. The entries are kept in chunks of up
//! to 256 that the document's versions share (`chunks.rs`): a change copies only
//! the chunk it touches, and only while some socket still holds the old one. An
//! answer is personalised by slices, not copies: `<peers>`, the entries up to
//! the asker's `FALSE`, `TRUE`, the rest of the entries, `</peers>\r\n`
//! ([`PeerDoc::personalised`]), handed to `writev`, and whatever a socket does
//! not take stays queued as a reference to the version's chunks. (An asker that
//! said which version it has gets `<peers version="N">` in place of `<peers>`.)
//! The article instead re-parsed `pDoc.xml` into a new DOM per request and
//! located the asker with an XPath string.
//!
//! A servant behind a port-blocking router carries a `<relay>` element after
//! `<me>` ([`super::relay`]), and a servant that said its name a `<name>` element
//! after that ([`super::name`]), and on a private network each member's public
//! key in a `<key>` element last ([`super::key`]); [`PeerDoc::set_relay`],
//! [`PeerDoc::set_name`] and [`PeerDoc::set_key`] re-render that one entry in
//! place. A document with no relayed, named or keyed servant is byte for byte
//! the article's.
//!
//! Every change is a version ([`super::history`]): a servant that says which
//! version it has is answered with what changed since ([`super::delta`]).
//!
//! Servants read it back with [`parse`] (`peers.rs`), which checks every field.

use std::cell::{Cell, OnceCell};
use std::net::IpAddr;

use crate::net::{At, Chunks, Piece};

use super::history::{History, Since};
pub use super::peers::{document_end, parse, parse_named, NamedPeers, Peer};
use super::relay::{self, Relay};
use super::render::{push_ip, push_number};
use super::{key, name};
use crate::noise::PublicKey;
use chunks::Chunked;

mod chunks;

const HEAD: &[u8] = b"<peers>";
/// MSXML's `.xml` ends a document with CRLF; it also makes telnet output readable.
const TAIL: &[u8] = b"</peers>\r\n";
const ME_FALSE: &[u8] = b"FALSE";
const ME_TRUE: &[u8] = b"TRUE";
const ME_END: &[u8] = b"</me>";
const PEER_END: &[u8] = b"</peer>";

/// The optional elements an entry may carry after `<me>`, in this order.
#[derive(Clone, Copy)]
enum Extra {
    Relay,
    Name,
    Key,
}

/// The manager's `pDoc`, in join order.
///
/// ```
/// use p2pchat::wire::peerdoc::{parse, PeerDoc};
///
/// let mut doc = PeerDoc::new();
/// doc.add("127.0.0.1".parse().unwrap(), 2224, 1); // AddPeer ip, port, offset
/// doc.add("127.0.0.2".parse().unwrap(), 2225, 2);
/// // What the servant at offset 2 is sent for `needs peer list`:
/// let answer = String::from_utf8(doc.render_for(2)).unwrap();
/// assert!(answer.ends_with("<offset>2</offset><me>TRUE</me></peer></peers>\r\n"));
/// let peers = parse(&answer).unwrap();
/// assert_eq!((peers[0].port, peers[0].me), (2224, false));
/// assert_eq!((peers[1].port, peers[1].me), (2225, true));
/// ```
#[derive(Debug)]
pub struct PeerDoc {
    entries: Chunked,
    /// `<peers version="N">`, for the current version.
    head: Vec<u8>,
    /// Its version and latest changes.
    history: History,
    /// This version's entries in one buffer, made on its second whole answer.
    flat: OnceCell<Flat>,
    /// This version has had a whole answer.
    answered: Cell<bool>,
}

/// The entries laid end to end: answers are written from it while the document
/// holds still (one contiguous slice costs the kernel's copy less than the same
/// bytes in chunks: about 10% of a bare answer to one of 10,000), and queued as
/// runs of chunks, so that no socket holds it and a change simply drops it.
#[derive(Debug)]
struct Flat {
    bytes: Vec<u8>,
    /// Where each chunk starts in `bytes`.
    starts: Vec<usize>,
}

impl Default for PeerDoc {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerDoc {
    pub fn new() -> Self {
        PeerDoc {
            entries: Chunked::default(),
            head: versioned_head(0),
            history: History::default(),
            flat: OnceCell::new(),
            answered: Cell::new(false),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in the whole document.
    pub fn byte_len(&self) -> usize {
        HEAD.len() + self.entries.bytes() + TAIL.len()
    }

    /// After every change: the version head is the new one.
    fn stamp_version(&mut self) {
        self.flat = OnceCell::new();
        self.answered.set(false);
        self.head.clear();
        push_versioned_head(&mut self.head, self.history.version());
    }

    /// VB: `AddPeer ip, port, offset`. Replaces any entry already at `offset`.
    pub fn add(&mut self, ip: IpAddr, port: u16, offset: usize) {
        self.remove(offset);
        self.entries.push(offset, 96, |body| {
            body.extend_from_slice(b"<peer><ip>");
            push_ip(body, ip);
            body.extend_from_slice(b"</ip><port>");
            push_number(body, port as usize);
            body.extend_from_slice(b"</port><offset>");
            push_number(body, offset);
            body.extend_from_slice(b"</offset><me>");
            let me = body.len();
            body.extend_from_slice(ME_FALSE);
            body.extend_from_slice(ME_END);
            body.extend_from_slice(PEER_END);
            me
        });
        self.history.joined(offset);
        self.stamp_version();
    }

    /// VB: `RemovePeerByOffset offset`. Returns whether there was such an entry.
    pub fn remove(&mut self, offset: usize) -> bool {
        if !self.entries.remove(offset) {
            return false;
        }
        self.history.left(offset);
        self.stamp_version();
        true
    }

    /// Sets or clears the `<relay>` element of `offset`'s entry, re-rendering that
    /// entry only. Returns whether the document changed (false for no such entry,
    /// or the same element). Like every change, it copies the entry's chunk only
    /// while a queued send still holds the old one.
    pub fn set_relay(&mut self, offset: usize, relay: Option<Relay>) -> bool {
        let mut element = Vec::with_capacity(64);
        if let Some(relay) = relay {
            relay::render(&mut element, relay);
        }
        self.set_extra(offset, Extra::Relay, &element)
    }

    /// Sets or clears the `<name>` element of `offset`'s entry (a name that passed
    /// [`name::check`]), as [`PeerDoc::set_relay`] does the `<relay>` element.
    pub fn set_name(&mut self, offset: usize, name: Option<&str>) -> bool {
        let mut element = Vec::with_capacity(64);
        if let Some(n) = name {
            name::render(&mut element, n);
        }
        self.set_extra(offset, Extra::Name, &element)
    }

    /// Sets or clears the `<key>` element of `offset`'s entry (a private network's
    /// member), as [`PeerDoc::set_relay`] does the `<relay>` element.
    pub fn set_key(&mut self, offset: usize, key: Option<&PublicKey>) -> bool {
        let mut element = Vec::with_capacity(64);
        if let Some(k) = key {
            key::render(&mut element, k);
        }
        self.set_extra(offset, Extra::Key, &element)
    }

    /// Replaces one of the optional elements after `<me>` (`<relay>`, `<name>`,
    /// then `<key>`) in `offset`'s entry with `element`, keeping the others.
    fn set_extra(&mut self, offset: usize, which: Extra, element: &[u8]) -> bool {
        let (Some((_, e)), Some(entry)) = (self.entries.find(offset), self.entries.entry(offset))
        else {
            return false;
        };
        let extras = e.me + ME_FALSE.len() + ME_END.len();
        let end = e.len - PEER_END.len();
        // A name is escaped and a key is base64, so `<name>` and `<key>` start
        // their elements and nothing else.
        let key_at =
            memchr::memmem::find(&entry[extras..end], b"<key>").map_or(end, |k| extras + k);
        let name_at =
            memchr::memmem::find(&entry[extras..key_at], b"<name>").map_or(key_at, |k| extras + k);
        let [relay, name, key] = [extras..name_at, name_at..key_at, key_at..end].map(|r| &entry[r]);
        let tail = match which {
            Extra::Relay => [element, name, key].concat(),
            Extra::Name => [relay, element, key].concat(),
            Extra::Key => [relay, name, element].concat(),
        };
        self.replace_after_me(offset, tail)
    }

    /// Changes the port `offset`'s entry shows (the manager moved it off a port
    /// someone else holds), re-rendering that entry in place as one versioned
    /// change. Returns whether the document changed.
    pub fn set_port(&mut self, offset: usize, port: u16) -> bool {
        let (Some((_, e)), Some(entry)) = (self.entries.find(offset), self.entries.entry(offset))
        else {
            return false;
        };
        let before_me = &entry[..e.me];
        let (Some(open), Some(close)) = (
            memchr::memmem::find(before_me, b"<port>"),
            memchr::memmem::find(before_me, b"</port>"),
        ) else {
            return false;
        };
        let digits_at = open + b"<port>".len()..close;
        let mut digits = Vec::with_capacity(5);
        push_number(&mut digits, port as usize);
        if entry[digits_at.clone()] == digits[..] {
            return false;
        }
        self.entries.splice(offset, digits_at, &digits);
        self.history.changed(offset);
        self.stamp_version();
        true
    }

    /// Re-renders what follows `</me>` in `offset`'s entry as `after_me` and
    /// `</peer>`. Every re-render goes through here, so each is a versioned change
    /// that deltas carry.
    fn replace_after_me(&mut self, offset: usize, mut tail: Vec<u8>) -> bool {
        let (Some((_, e)), Some(entry)) = (self.entries.find(offset), self.entries.entry(offset))
        else {
            return false;
        };
        tail.extend_from_slice(PEER_END);
        let after_me = e.me + ME_FALSE.len() + ME_END.len()..e.len;
        if entry[after_me.clone()] == tail[..] {
            return false; // unchanged: keep the chunk, and any queued sends sharing it
        }
        self.entries.splice(offset, after_me, &tail);
        self.history.changed(offset);
        self.stamp_version();
        true
    }

    /// The `<peer>...</peer>` entry for `offset`, as the article's telnet test shows it.
    pub fn entry(&self, offset: usize) -> Option<&[u8]> {
        self.entries.entry(offset)
    }

    /// The document with `me` = TRUE on `offset`'s entry only, as pieces for
    /// `writev`: the entries are this version's shared chunks, up to the asker's
    /// `FALSE` and on after it; nothing is rendered for the asker but `TRUE`. An
    /// offset with no entry gets the plain document (the middle pieces empty).
    pub fn personalised(&self, offset: usize) -> [Piece<'_>; 5] {
        self.pieces(HEAD, offset)
    }

    /// As [`PeerDoc::personalised`], opening with `<peers version="N">`: the whole
    /// document for an asker that said which version it has, in one `writev`.
    pub fn personalised_versioned(&self, offset: usize) -> [Piece<'_>; 5] {
        self.pieces(&self.head, offset)
    }

    fn pieces<'a>(&'a self, head: &'a [u8], offset: usize) -> [Piece<'a>; 5] {
        let chunks: &Chunks = self.entries.chunks();
        let start = At { chunk: 0, byte: 0 };
        let end = At {
            chunk: chunks.len(),
            byte: 0,
        };
        let flat = self.flat();
        let run = |from: At, to: At| match flat {
            Some(f) => {
                let byte = |p: At| f.starts.get(p.chunk).map_or(f.bytes.len(), |s| s + p.byte);
                Piece::Mirrored(&f.bytes[byte(from)..byte(to)], chunks, from, to)
            }
            None => Piece::Chunks(chunks, from, to),
        };
        match self.entries.find(offset) {
            Some((chunk, e)) => {
                let me = e.start + e.me;
                let at = At { chunk, byte: me };
                let after = At {
                    chunk,
                    byte: me + ME_FALSE.len(),
                };
                [
                    Piece::Bytes(head),
                    run(start, at),
                    Piece::Bytes(ME_TRUE),
                    run(after, end),
                    Piece::Bytes(TAIL),
                ]
            }
            None => [
                Piece::Bytes(head),
                run(start, end),
                Piece::Bytes(&[]),
                Piece::Bytes(&[]),
                Piece::Bytes(TAIL),
            ],
        }
    }

    /// The entries in one buffer, from this version's second whole answer on: a
    /// document that changes between answers (a join storm, each newcomer asking)
    /// is not copied per answer; one that holds still is copied once.
    fn flat(&self) -> Option<&Flat> {
        if self.flat.get().is_none() && !self.answered.replace(true) {
            return None;
        }
        Some(self.flat.get_or_init(|| {
            let chunks = self.entries.chunks();
            let mut bytes = Vec::with_capacity(self.entries.bytes());
            let mut starts = Vec::with_capacity(chunks.len());
            for c in chunks.iter() {
                starts.push(bytes.len());
                bytes.extend_from_slice(c);
            }
            Flat { bytes, starts }
        }))
    }

    /// The versioned personalised document in one buffer (tests, benchmarks).
    pub fn render_versioned_for(&self, offset: usize) -> Vec<u8> {
        concat(&self.personalised_versioned(offset))
    }

    /// The personalised document in one buffer (tests, benchmarks, logs).
    pub fn render_for(&self, offset: usize) -> Vec<u8> {
        concat(&self.personalised(offset))
    }

    /// The document's version: bumped by every join, leave and re-rendered entry.
    pub fn version(&self) -> u64 {
        self.history.version()
    }

    /// Makes every change at version `at` until `pin_version(None)`, which leaves
    /// the document at `at` even if nothing changed ([`History::pin`]): a
    /// cluster's versions are the cluster's, not counted here.
    pub fn pin_version(&mut self, at: Option<u64>) {
        self.history.pin(at);
        if at.is_none() {
            self.stamp_version();
        }
    }

    /// Starts the history again at `at`, and renders the version head anew (the
    /// epoch may have changed with it): see [`History::restart`].
    pub fn restart_versions(&mut self, at: u64) {
        self.history.restart(at);
        self.stamp_version();
    }

    /// Verifies how the entries are kept (their chunks, and where each offset's
    /// entry is) and that the version head is the current version's.
    #[cfg(any(debug_assertions, test))]
    pub fn check(&self) -> Result<(), String> {
        self.entries.check()?;
        if self.head != versioned_head(self.version()) {
            let head = String::from_utf8_lossy(&self.head);
            return Err(format!("version {} but head {head}", self.version()));
        }
        Ok(())
    }

    /// What to send a servant whose list is at version `since` (0: it has none).
    ///
    /// ```
    /// use p2pchat::wire::history::Since;
    /// use p2pchat::wire::peerdoc::PeerDoc;
    ///
    /// let mut doc = PeerDoc::new();
    /// for offset in 1..=3 {
    ///     let ip = format!("127.0.0.{offset}").parse().unwrap();
    ///     doc.add(ip, 2223 + offset as u16, offset); // versions 1, 2, 3
    /// }
    /// doc.remove(1); // version 4
    /// assert_eq!(doc.since(4), Since::Unchanged);
    /// let Since::Delta(delta) = doc.since(2) else { panic!() };
    /// assert_eq!(
    ///     String::from_utf8(delta).unwrap(),
    ///     "<delta from=\"2\" to=\"4\"><left>1</left><peer><ip>127.0.0.3</ip>\
    ///      <port>2226</port><offset>3</offset><me>FALSE</me></peer></delta>\r\n"
    /// );
    /// assert_eq!(doc.since(0), Since::Whole);
    /// ```
    pub fn since(&self, since: u64) -> Since {
        self.history
            .answer(since, self.len(), |offset| self.entry(offset))
    }
}

/// `pieces`' bytes in one buffer.
fn concat(pieces: &[Piece<'_>]) -> Vec<u8> {
    let slices = pieces.iter().flat_map(|p| p.slices());
    let mut out = Vec::with_capacity(slices.clone().map(<[u8]>::len).sum());
    for s in slices {
        out.extend_from_slice(s);
    }
    out
}

/// `<peers version="N">`: the whole document opens so for a servant that asked
/// with `since`; the rest is the article's document from its `<peers>` on.
fn versioned_head(version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    push_versioned_head(&mut out, version);
    out
}

fn push_versioned_head(out: &mut Vec<u8>, version: u64) {
    out.extend_from_slice(b"<peers version=\"");
    super::version::push(out, version);
    out.extend_from_slice(b"\">");
}

#[cfg(test)]
mod tests;
