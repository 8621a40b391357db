//! A socket's unsent output: bytes of its own, or parts of buffers that many
//! sockets are sending at once.
//!
//! The manager sends one peer document to thousands of servants. When a socket
//! takes only part of it, copying the rest into that socket's queue would cost a
//! document per slow servant (10,000 servants x 700 KB). Queuing a range of a
//! shared, reference-counted snapshot costs a few words instead; the document is
//! kept in chunks ([`Chunks`]), and what is left of a run of them is one entry
//! here, a reference to the version's list of chunks and a place in it.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::ops::Range;

use crate::net::{At, Chunks, Piece, Shared};

/// Most slices handed to one `writev`: a whole document of 10,000 entries (about
/// 40 chunks) goes in one call, as it did from one buffer, and so would one of
/// 60,000.
const MAX_SLICES: usize = 256;
/// Queue entries an idle socket keeps room for; a burst's are let go.
const KEPT_ITEMS: usize = 8;

/// What is left of one queued piece.
enum Queued {
    /// Own bytes, of which the first `.1` are gone already.
    Owned(Vec<u8>, usize),
    Shared(Shared, Range<usize>),
    /// From `.1` up to `.2`.
    Chunks(Chunks, At, At),
}

impl Queued {
    fn piece(&self) -> Piece<'_> {
        match self {
            Queued::Owned(v, sent) => Piece::Bytes(&v[*sent..]),
            Queued::Shared(buf, r) => Piece::Shared(buf, r.start, r.end),
            Queued::Chunks(chunks, from, to) => Piece::Chunks(chunks, *from, *to),
        }
    }

    /// Drops up to `n` bytes from its front; returns how many of `n` are left over.
    fn advance(&mut self, n: usize) -> usize {
        match self {
            Queued::Owned(v, sent) => {
                let take = n.min(v.len() - *sent);
                *sent += take;
                n - take
            }
            Queued::Shared(_, r) => {
                let take = n.min(r.len());
                r.start += take;
                n - take
            }
            Queued::Chunks(chunks, from, to) => {
                let mut n = n;
                while n > 0 && from.chunk <= to.chunk && from.chunk < chunks.len() {
                    let end = if from.chunk == to.chunk {
                        to.byte
                    } else {
                        chunks[from.chunk].len()
                    };
                    let take = n.min(end.saturating_sub(from.byte));
                    from.byte += take;
                    n -= take;
                    if n > 0 {
                        *from = At {
                            chunk: from.chunk + 1,
                            byte: 0,
                        };
                    }
                }
                n
            }
        }
    }
}

/// Queued output, in order.
#[derive(Default)]
pub struct OutQueue {
    items: VecDeque<Queued>,
    unsent: usize,
}

impl OutQueue {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.unsent
    }

    pub fn is_empty(&self) -> bool {
        self.unsent == 0
    }

    /// Queues what is left of `pieces` after the first `skip` bytes. Own bytes
    /// are copied; shared ones are queued as references, whatever their size.
    pub fn push(&mut self, pieces: &[Piece<'_>], mut skip: usize) {
        for &p in pieces {
            let len = p.len();
            let n = skip.min(len);
            skip -= n;
            if n == len {
                continue;
            }
            self.unsent += len - n;
            match p {
                Piece::Shared(buf, start, end) => self
                    .items
                    .push_back(Queued::Shared(buf.clone(), start + n..end)),
                Piece::Chunks(chunks, from, to) | Piece::Mirrored(_, chunks, from, to) => {
                    let mut rest = Queued::Chunks(chunks.clone(), from, to);
                    rest.advance(n);
                    self.items.push_back(rest);
                }
                Piece::Bytes(b) => match self.items.back_mut() {
                    Some(Queued::Owned(v, _)) => v.extend_from_slice(&b[n..]),
                    _ => self.items.push_back(Queued::Owned(b[n..].to_vec(), 0)),
                },
            }
        }
    }

    /// Writes queued bytes until the queue is empty or `w` would block; returns
    /// how many went.
    pub fn write_to(&mut self, w: &mut impl Write) -> io::Result<usize> {
        let mut total = 0;
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = fill(
                &mut slices,
                self.items.iter().flat_map(|q| q.piece().slices()),
            );
            match write_slices(w, &slices[..count]) {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.is_empty() && self.items.capacity() > KEPT_ITEMS {
            self.items = VecDeque::new(); // a burst's bookkeeping is not kept per idle socket
        }
        Ok(total)
    }

    fn consume(&mut self, mut n: usize) {
        self.unsent -= n;
        while n > 0 {
            let front = self
                .items
                .front_mut()
                .expect("consumed no more than queued");
            n = front.advance(n);
            if front.piece().is_empty() {
                self.items.pop_front();
            }
        }
    }
}

/// Puts the first slices of `from` in `slices`; returns how many.
fn fill<'a>(slices: &mut [IoSlice<'a>], from: impl Iterator<Item = &'a [u8]>) -> usize {
    let mut count = 0;
    for (slot, b) in slices.iter_mut().zip(from) {
        *slot = IoSlice::new(b);
        count += 1;
    }
    count
}

/// One slice goes by `send`, several by `writev`: on a socket `send` skips the
/// file layer `writev` goes through, which shows when one line goes to a
/// thousand peers.
fn write_slices(w: &mut impl Write, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    match slices {
        [one] => w.write(one),
        _ => w.write_vectored(slices),
    }
}

/// Writes `pieces` straight to `w`, [`MAX_SLICES`] slices per `writev`, until
/// they are all gone or `w` would block; returns how many bytes went.
pub fn write_pieces(w: &mut impl Write, pieces: &[Piece<'_>]) -> io::Result<usize> {
    let mut from = pieces.iter().flat_map(|p| p.slices());
    let mut written = 0;
    loop {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let count = fill(&mut slices, from.by_ref());
        if count == 0 {
            return Ok(written);
        }
        let mut remaining = &mut slices[..count];
        while !remaining.is_empty() {
            match write_slices(w, remaining) {
                Ok(0) => return Ok(written),
                Ok(n) => {
                    written += n;
                    IoSlice::advance_slices(&mut remaining, n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::rc::Rc;

    /// A writer that takes at most `room` bytes, then would block.
    struct Trickle {
        got: Vec<u8>,
        room: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(b)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.room - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
            }
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_exactly_where_they_stopped() {
        let shared: Shared = Rc::new(b"<peers>ABCDEFGH</peers>".to_vec());
        let pieces = [
            Piece::Shared(&shared, 0, 10),
            Piece::Bytes(b"TRUE"),
            Piece::Shared(&shared, 10, 23),
        ];
        let mut w = Trickle {
            got: Vec::new(),
            room: 7,
        };
        let n = write_pieces(&mut w, &pieces).unwrap();
        assert_eq!(n, 7);
        let mut q = OutQueue::default();
        q.push(&pieces, n);
        assert_eq!(q.len(), 27 - 7);
        assert_eq!(
            Rc::strong_count(&shared),
            3,
            "the rest is queued as ranges, not copies"
        );
        for room in [1, 5, 0, 100] {
            w.room = room;
            q.write_to(&mut w).unwrap();
        }
        assert!(q.is_empty());
        assert_eq!(w.got, b"<peers>ABCTRUEDEFGH</peers>");
        assert_eq!(Rc::strong_count(&shared), 1);
    }

    #[test]
    fn a_run_of_chunks_is_queued_by_reference_and_resumes_exactly() {
        let chunk = |b: &[u8]| Rc::new(b.to_vec());
        let chunks: Chunks = Rc::new(vec![
            chunk(b"<a>FALSE</a>"),
            chunk(b""),
            chunk(b"<b/>"),
            chunk(b"<c/>"),
        ]);
        let at = |chunk, byte| At { chunk, byte };
        let pieces = [
            Piece::Bytes(b"<x>"),
            Piece::Chunks(&chunks, at(0, 0), at(0, 3)),
            Piece::Bytes(b"TRUE"),
            Piece::Chunks(&chunks, at(0, 8), at(4, 0)),
            Piece::Bytes(b"</x>"),
        ];
        let whole = b"<x><a>TRUE</a><b/><c/></x>";
        for first in 0..whole.len() {
            for room in 1..4 {
                let mut w = Trickle {
                    got: Vec::new(),
                    room: first,
                };
                let n = write_pieces(&mut w, &pieces).unwrap();
                let mut q = OutQueue::default();
                q.push(&pieces, n);
                assert_eq!(q.len(), whole.len() - n);
                assert!(
                    q.items.len() <= 5,
                    "a run is one entry, however many chunks"
                );
                while !q.is_empty() {
                    w.room = room;
                    q.write_to(&mut w).unwrap();
                }
                assert_eq!(w.got, whole, "first write {first}, then {room} at a time");
                assert!(q.items.is_empty());
            }
        }
        assert_eq!(Rc::strong_count(&chunks), 1, "nothing kept once sent");
    }

    #[test]
    fn owned_bytes_coalesce_into_one_chunk() {
        let mut q = OutQueue::default();
        q.push(&[Piece::Bytes(b"ab")], 0);
        q.push(&[Piece::Bytes(b"cd"), Piece::Bytes(b"ef")], 1);
        assert_eq!((q.len(), q.items.len()), (5, 1));
        let mut w = Trickle {
            got: Vec::new(),
            room: 100,
        };
        q.write_to(&mut w).unwrap();
        assert_eq!(w.got, b"abdef");
    }
}
