//! What the wire documents and the reactor both speak of: addresses as the
//! manager records them, and the shared buffers documents are sent from. Kept
//! apart from both, so that neither depends on the other for them.

use std::net::IpAddr;
use std::rc::Rc;

/// A buffer many sends can queue ranges of. Mutate it with `Rc::make_mut`: it
/// copies only while some socket still has an unsent range of the old contents.
pub type Shared = Rc<Vec<u8>>;

/// A buffer kept in chunks that its versions share: a change copies the list of
/// chunks and the one chunk it touches (`Rc::make_mut` on each) while sends still
/// hold the old version, never the whole buffer. The peer document is kept so.
pub type Chunks = Rc<Vec<Shared>>;

/// A place in [`Chunks`]: byte `byte` of chunk `chunk`. The end of the buffer is
/// chunk `len()`, byte 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub chunk: usize,
    pub byte: usize,
}

/// A piece of one send: bytes of the sender's own, copied if the socket does not
/// take them now, or part of a shared buffer, queued as a reference to it.
#[derive(Clone, Copy, Debug)]
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    /// `start..end` of a shared buffer.
    Shared(&'a Shared, usize, usize),
    /// From one place in a chunked buffer up to (not including) another.
    Chunks(&'a Chunks, At, At),
    /// A run of a chunked buffer, as [`Piece::Chunks`], whose bytes are also laid
    /// end to end in the slice: written from that one slice (the kernel copies
    /// one contiguous slice faster than the same bytes in chunks), queued as the
    /// run, so that a queue never holds the slice's buffer.
    Mirrored(&'a [u8], &'a Chunks, At, At),
}

impl<'a> Piece<'a> {
    /// Its bytes, as the slices `writev` is handed: one, or one per chunk.
    pub fn slices(self) -> Slices<'a> {
        match self {
            Piece::Bytes(b) | Piece::Mirrored(b, ..) => Slices::one(b),
            Piece::Shared(buf, start, end) => Slices::one(&buf[start..end]),
            Piece::Chunks(chunks, from, to) => Slices {
                one: None,
                chunks,
                at: from,
                to,
            },
        }
    }

    /// Its length in bytes (a walk over the chunks it spans).
    pub fn len(self) -> usize {
        self.slices().map(<[u8]>::len).sum()
    }

    pub fn is_empty(self) -> bool {
        self.slices().next().is_none()
    }
}

/// The non-empty slices of a [`Piece`], in order.
#[derive(Clone)]
pub struct Slices<'a> {
    one: Option<&'a [u8]>,
    chunks: &'a [Shared],
    at: At,
    to: At,
}

impl<'a> Slices<'a> {
    fn one(b: &'a [u8]) -> Self {
        let none = At { chunk: 0, byte: 0 };
        Slices {
            one: Some(b).filter(|b| !b.is_empty()),
            chunks: &[],
            at: none,
            to: none,
        }
    }
}

impl<'a> Iterator for Slices<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(b) = self.one.take() {
            return Some(b);
        }
        while self.at.chunk <= self.to.chunk && self.at.chunk < self.chunks.len() {
            let chunk: &'a [u8] = &self.chunks[self.at.chunk];
            let end = if self.at.chunk == self.to.chunk {
                self.to.byte
            } else {
                chunk.len()
            };
            let start = self.at.byte;
            self.at = At {
                chunk: self.at.chunk + 1,
                byte: 0,
            };
            if start < end {
                return Some(&chunk[start..end]);
            }
        }
        None
    }
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, from a dual-stack listener) shown as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_read_as_ipv4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical_ip(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }
}
