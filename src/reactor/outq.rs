//! A socket's unsent output: bytes of its own, or ranges of a buffer that many
//! sockets are sending at once.
//!
//! The manager sends one peer document to thousands of servants. When a socket
//! takes only part of it, copying the rest into that socket's queue would cost a
//! document per slow servant (10,000 servants x 700 KB). Queuing a range of a
//! shared, reference-counted snapshot costs a few words instead.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::ops::Range;

use crate::net::Shared;

/// Most slices handed to one `writev`.
const MAX_SLICES: usize = 8;

/// A piece of one send.
#[derive(Clone, Copy)]
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    Shared(&'a Shared, usize, usize),
}

impl Piece<'_> {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Piece::Bytes(b) => b,
            Piece::Shared(buf, start, end) => &buf[*start..*end],
        }
    }
}

enum Chunk {
    Owned(Vec<u8>),
    Shared(Shared, Range<usize>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(buf, r) => &buf[r.clone()],
        }
    }
}

/// Queued output, in order; `front_sent` bytes of the first chunk are gone already.
#[derive(Default)]
pub struct OutQueue {
    chunks: VecDeque<Chunk>,
    front_sent: usize,
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

    /// Queues what is left of `pieces` after the first `skip` bytes.
    pub fn push(&mut self, pieces: &[Piece<'_>], mut skip: usize) {
        for p in pieces {
            let len = p.bytes().len();
            let n = skip.min(len);
            skip -= n;
            if n == len {
                continue;
            }
            self.unsent += len - n;
            match *p {
                Piece::Shared(buf, start, end) => self
                    .chunks
                    .push_back(Chunk::Shared(buf.clone(), start + n..end)),
                Piece::Bytes(b) => match self.chunks.back_mut() {
                    Some(Chunk::Owned(v)) => v.extend_from_slice(&b[n..]),
                    _ => self.chunks.push_back(Chunk::Owned(b[n..].to_vec())),
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
            let mut count = 0;
            for (k, c) in self.chunks.iter().take(MAX_SLICES).enumerate() {
                let skip = if k == 0 { self.front_sent } else { 0 };
                slices[k] = IoSlice::new(&c.bytes()[skip..]);
                count += 1;
            }
            match w.write_vectored(&slices[..count]) {
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
        if self.is_empty() && self.chunks.capacity() > MAX_SLICES {
            self.chunks = VecDeque::new(); // a burst's bookkeeping is not kept per idle socket
        }
        Ok(total)
    }

    fn consume(&mut self, mut n: usize) {
        self.unsent -= n;
        while n > 0 {
            let front = self.chunks.front().expect("consumed no more than queued");
            let left = front.bytes().len() - self.front_sent;
            if n < left {
                self.front_sent += n;
                return;
            }
            n -= left;
            self.front_sent = 0;
            self.chunks.pop_front();
        }
    }
}

/// Writes `pieces` straight to `w` (one `writev` per turn) until they are all
/// gone or `w` would block; returns how many bytes went.
pub fn write_pieces(w: &mut impl Write, pieces: &[Piece<'_>]) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let count = pieces.len().min(MAX_SLICES);
    for (slot, p) in slices.iter_mut().zip(pieces) {
        *slot = IoSlice::new(p.bytes());
    }
    let mut remaining = &mut slices[..count];
    let mut written = 0;
    while !remaining.is_empty() {
        match w.write_vectored(remaining) {
            Ok(0) => break,
            Ok(n) => {
                written += n;
                IoSlice::advance_slices(&mut remaining, n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    // Pieces past MAX_SLICES go to the queue; callers pass a handful.
    Ok(written)
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
    fn owned_bytes_coalesce_into_one_chunk() {
        let mut q = OutQueue::default();
        q.push(&[Piece::Bytes(b"ab")], 0);
        q.push(&[Piece::Bytes(b"cd"), Piece::Bytes(b"ef")], 1);
        assert_eq!((q.len(), q.chunks.len()), (5, 1));
        let mut w = Trickle {
            got: Vec::new(),
            room: 100,
        };
        q.write_to(&mut w).unwrap();
        assert_eq!(w.got, b"abdef");
    }
}
