//! The peer document's entries, in join order, kept in chunks of up to [`CHUNK`]
//! entries that the document's versions share ([`Chunks`]).
//!
//! A send in flight holds the version it was given: a reference to its list of
//! chunks. A change copies that list (a pointer per chunk) and the one chunk it
//! touches, and only while some send still holds them; so ten thousand servants
//! joining while their whole lists are still going out cost a chunk each, not a
//! document each. Joins append to the last chunk; a leave cuts its entry out of
//! its chunk, and a chunk left with few entries is merged into a neighbour, so
//! that a document of N entries stays in about N / 128 to N / 256 chunks.

use std::ops::Range;
use std::rc::Rc;

use crate::net::{Chunks, Shared};

/// Entries per chunk at most: a chunk of the article's entries is about 21 KB,
/// the most a change copies, and a document of 10,000 is about 40 slices. The
/// kernel copies a `writev` of many slices slower than one buffer: at 64 (160
/// slices of 5 KB) a bare answer to one of 10,000 cost about 20% more CPU, at
/// 256 about 10% more (so a document that holds still is answered from one
/// buffer, `PeerDoc::flat`), and a bare join storm's peak stayed as low.
pub(crate) const CHUNK: usize = 256;

/// Where one entry sits in its chunk.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) offset: usize,
    /// Where `<peer>` starts in its chunk.
    pub(super) start: usize,
    pub(super) len: usize,
    /// Where `FALSE` starts, relative to `start`.
    pub(super) me: usize,
}

/// Where an offset's entry is: its chunk, and its place among that chunk's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    chunk: u32,
    slot: u32,
}

const NOWHERE: Pos = Pos {
    chunk: u32::MAX,
    slot: u32::MAX,
};

/// The entries, their chunks, and where each offset's entry is.
///
/// Invariants ([`Chunked::check`]): `index[k]` describes `chunks[k]` exactly,
/// its entries laid end to end from byte 0 to the chunk's end; no chunk is empty
/// or holds more than [`CHUNK`] entries, and no two neighbours hold [`CHUNK`] or
/// fewer together; `position` maps each entry's offset to it and holds nothing
/// else; `len` and `bytes` are the entries' count and total length.
#[derive(Debug, Default)]
pub(super) struct Chunked {
    chunks: Chunks,
    /// Per chunk, its entries in order.
    index: Vec<Vec<Entry>>,
    /// Offset -> where its entry is, or [`NOWHERE`].
    position: Vec<Pos>,
    len: usize,
    bytes: usize,
}

impl Chunked {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes in all the entries.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// This version's chunks: what a send holds.
    pub(super) fn chunks(&self) -> &Chunks {
        &self.chunks
    }

    /// `offset`'s entry and the chunk it is in.
    pub(super) fn find(&self, offset: usize) -> Option<(usize, Entry)> {
        let p = self.position.get(offset).filter(|&&p| p != NOWHERE)?;
        let k = p.chunk as usize;
        Some((k, self.index[k][p.slot as usize]))
    }

    /// `offset`'s entry, `<peer>...</peer>`.
    pub(super) fn entry(&self, offset: usize) -> Option<&[u8]> {
        let (k, e) = self.find(offset)?;
        Some(&self.chunks[k][e.start..e.start + e.len])
    }

    /// Appends an entry for `offset`, which has none: `render` writes it at the end
    /// of the buffer it is given and returns where in that buffer its `FALSE`
    /// starts. `room`: about what it will write, reserved if a chunk is copied.
    pub(super) fn push(
        &mut self,
        offset: usize,
        room: usize,
        render: impl FnOnce(&mut Vec<u8>) -> usize,
    ) {
        debug_assert!(self.find(offset).is_none(), "offset {offset} is listed");
        if self.index.last().is_none_or(|l| l.len() >= CHUNK) {
            Rc::make_mut(&mut self.chunks).push(Rc::new(Vec::with_capacity(room * CHUNK)));
            self.index.push(Vec::with_capacity(CHUNK));
        }
        let k = self.index.len() - 1;
        let chunk = self.chunk_mut(k, room);
        let start = chunk.len();
        let me = render(chunk) - start;
        let len = chunk.len() - start;
        let slot = self.index[k].len();
        self.index[k].push(Entry {
            offset,
            start,
            len,
            me,
        });
        if self.position.len() <= offset {
            self.position.resize(offset + 1, NOWHERE);
        }
        self.position[offset] = Pos {
            chunk: k as u32,
            slot: slot as u32,
        };
        self.len += 1;
        self.bytes += len;
    }

    /// Cuts `offset`'s entry out. Returns whether there was one.
    pub(super) fn remove(&mut self, offset: usize) -> bool {
        let Some((k, gone)) = self.find(offset) else {
            return false;
        };
        let slot = self.position[offset].slot as usize;
        self.position[offset] = NOWHERE;
        self.index[k].remove(slot);
        let range = gone.start..gone.start + gone.len;
        let c = &mut Rc::make_mut(&mut self.chunks)[k];
        match Rc::get_mut(c) {
            Some(chunk) => drop(chunk.drain(range)),
            // Held by a send: the copy leaves the entry out rather than moving
            // what follows it afterwards.
            None => *c = Rc::new([&c[..range.start], &c[range.end..]].concat()),
        }
        for (j, later) in self.index[k].iter_mut().enumerate().skip(slot) {
            later.start -= gone.len;
            self.position[later.offset].slot = j as u32;
        }
        self.len -= 1;
        self.bytes -= gone.len;
        if self.index[k].is_empty() {
            Rc::make_mut(&mut self.chunks).remove(k);
            self.index.remove(k);
            self.renumber(k);
            if k > 0 {
                self.settle(k - 1);
            }
        } else {
            self.settle(k);
        }
        true
    }

    /// Replaces `range` (relative to the start of `offset`'s entry) with `with`.
    /// A range before its `FALSE` moves it. Returns whether there is such an entry.
    pub(super) fn splice(&mut self, offset: usize, range: Range<usize>, with: &[u8]) -> bool {
        let Some((k, e)) = self.find(offset) else {
            return false;
        };
        let slot = self.position[offset].slot as usize;
        let grown = with.len() as isize - range.len() as isize;
        let at = e.start + range.start..e.start + range.end;
        self.chunk_mut(k, with.len())
            .splice(at, with.iter().copied());
        let moved = |n: usize| n.checked_add_signed(grown).expect("entry bounds");
        let entry = &mut self.index[k][slot];
        entry.len = moved(entry.len);
        if range.end <= entry.me {
            entry.me = moved(entry.me);
        }
        for later in &mut self.index[k][slot + 1..] {
            later.start = moved(later.start);
        }
        self.bytes = moved(self.bytes);
        true
    }

    /// Chunk `k`, for writing: copied first (with `room` to grow) if a send holds it.
    fn chunk_mut(&mut self, k: usize, room: usize) -> &mut Vec<u8> {
        let c = &mut Rc::make_mut(&mut self.chunks)[k];
        if Rc::get_mut(c).is_none() {
            let mut copy = Vec::with_capacity(c.len() + room);
            copy.extend_from_slice(c);
            *c = Rc::new(copy);
        }
        Rc::get_mut(c).expect("copied above if shared")
    }

    /// After chunk `k` lost an entry: merges it into a neighbour if the two fit in
    /// one chunk, so that leaves cannot leave a document of near-empty chunks.
    fn settle(&mut self, k: usize) {
        let fits = |s: &Self, a: usize| {
            a + 1 < s.index.len() && s.index[a].len() + s.index[a + 1].len() <= CHUNK
        };
        if fits(self, k) {
            self.merge(k);
        }
        if k > 0 && fits(self, k - 1) {
            self.merge(k - 1);
        }
    }

    /// Moves chunk `a + 1`'s entries to the end of chunk `a`.
    fn merge(&mut self, a: usize) {
        let next: Shared = Rc::make_mut(&mut self.chunks).remove(a + 1);
        let moved = self.index.remove(a + 1);
        let chunk = self.chunk_mut(a, next.len());
        let base = chunk.len();
        chunk.extend_from_slice(&next);
        let shifted = moved.into_iter().map(|e| Entry {
            start: e.start + base,
            ..e
        });
        self.index[a].extend(shifted);
        self.renumber(a);
    }

    /// Chunks from `from` on moved: their entries' positions follow.
    fn renumber(&mut self, from: usize) {
        for (k, entries) in self.index.iter().enumerate().skip(from) {
            for (j, e) in entries.iter().enumerate() {
                self.position[e.offset] = Pos {
                    chunk: k as u32,
                    slot: j as u32,
                };
            }
        }
    }

    /// Verifies every invariant in the type's documentation; says which failed.
    #[cfg(any(debug_assertions, test))]
    pub(super) fn check(&self) -> Result<(), String> {
        if self.chunks.len() != self.index.len() {
            let (c, i) = (self.chunks.len(), self.index.len());
            return Err(format!("{c} chunks but {i} indexed"));
        }
        let (mut len, mut bytes) = (0, 0);
        for (k, (chunk, entries)) in self.chunks.iter().zip(&self.index).enumerate() {
            if entries.is_empty() || entries.len() > CHUNK {
                return Err(format!("chunk {k} holds {} entries", entries.len()));
            }
            if let Some(next) = self.index.get(k + 1) {
                if entries.len() + next.len() <= CHUNK {
                    return Err(format!("chunks {k} and {} fit in one", k + 1));
                }
            }
            let mut at = 0;
            for (j, e) in entries.iter().enumerate() {
                let bytes = chunk.get(e.start..e.start + e.len).unwrap_or_default();
                let shape = e.start == at
                    && bytes.starts_with(b"<peer>")
                    && bytes.ends_with(b"</peer>")
                    && bytes[..e.me].ends_with(b"<me>")
                    && bytes[e.me..].starts_with(b"FALSE</me>");
                if !shape {
                    return Err(format!(
                        "chunk {k}'s entry {j} (offset {}) is {:?} at {} (the last ended at {at})",
                        e.offset,
                        String::from_utf8_lossy(bytes),
                        e.start
                    ));
                }
                let want = Pos {
                    chunk: k as u32,
                    slot: j as u32,
                };
                if self.position.get(e.offset) != Some(&want) {
                    return Err(format!(
                        "offset {} does not map to chunk {k}, entry {j}",
                        e.offset
                    ));
                }
                at += e.len;
            }
            if at != chunk.len() {
                return Err(format!(
                    "chunk {k} has {} bytes, its entries {at}",
                    chunk.len()
                ));
            }
            len += entries.len();
            bytes += at;
        }
        let mapped = self.position.iter().filter(|&&p| p != NOWHERE).count();
        if (len, bytes, mapped) != (self.len, self.bytes, self.len) {
            return Err(format!(
                "{len} entries of {bytes} bytes, {mapped} mapped; counted {} of {}",
                self.len, self.bytes
            ));
        }
        Ok(())
    }
}
