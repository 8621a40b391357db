//! The frames Noise messages travel in: a 2-byte big-endian length, then that many
//! bytes. Read incrementally, as `hiredis` reads replies: fed whatever the socket
//! gave, it hands back one whole frame at a time and keeps a partial one.
//!
//! Limits are checked on the length, before a byte of the body is buffered: a
//! reader never holds more than one frame of at most its `max` bytes, and a first
//! handshake message must be exactly its size (`min == max`), so nobody makes a
//! responder wait for, or buffer, 64 KiB of garbage.

use std::fmt;

/// Bytes in a frame's length prefix.
pub const HEADER: usize = 2;
/// The largest frame body the 2-byte length can state.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// What was wrong with a frame's length, with the two bytes that stated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError {
    pub len: usize,
    pub header: [u8; HEADER],
    pub min: usize,
    pub max: usize,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed = if self.min == self.max {
            format!("exactly {}", self.min)
        } else {
            format!("{} to {}", self.min, self.max)
        };
        write!(
            f,
            "frame length {} (got \"{}\" as length bytes) where {allowed} bytes are allowed",
            self.len,
            self.header.escape_ascii()
        )
    }
}

impl std::error::Error for FrameError {}

/// An incremental frame reader with a hard cap: it holds one partial frame at most.
#[derive(Debug)]
pub struct FrameReader {
    /// The frame being read: its length prefix, then its body.
    buf: Vec<u8>,
    /// The body's length, once the prefix is whole and within the limits.
    want: Option<usize>,
    /// The last call returned a whole frame: the next one starts afresh.
    done: bool,
    min: usize,
    max: usize,
}

impl FrameReader {
    /// A reader that accepts bodies of `min..=max` bytes (`max` at most 65,535).
    pub fn new(min: usize, max: usize) -> Self {
        let mut r = FrameReader {
            buf: Vec::new(),
            want: None,
            done: false,
            min: 0,
            max: 0,
        };
        r.set_limits(min, max);
        r
    }

    /// The limits for frames whose length prefix is not read yet (a new phase of
    /// the protocol); a frame already under way keeps the ones it was checked with.
    pub fn set_limits(&mut self, min: usize, max: usize) {
        debug_assert!(min <= max && max <= MAX_FRAME);
        self.min = min;
        self.max = max.min(MAX_FRAME);
    }

    /// Bytes of a partial frame held: what a close in mid-frame drops.
    pub fn buffered(&self) -> usize {
        if self.done {
            0
        } else {
            self.buf.len()
        }
    }

    /// Takes bytes from the front of `input` up to the end of the current frame and
    /// returns the frame's body when it is whole; `None` means `input` is used up.
    /// Call again with the rest of `input` for the next frame.
    pub fn feed<'s>(&'s mut self, input: &mut &[u8]) -> Result<Option<&'s [u8]>, FrameError> {
        if std::mem::take(&mut self.done) {
            self.buf.clear();
            self.want = None;
        }
        if self.want.is_none() {
            let take = (HEADER - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            *input = &input[take..];
            if self.buf.len() < HEADER {
                return Ok(None);
            }
            let header = [self.buf[0], self.buf[1]];
            let len = usize::from(u16::from_be_bytes(header));
            if len < self.min || len > self.max {
                return Err(FrameError {
                    len,
                    header,
                    min: self.min,
                    max: self.max,
                });
            }
            self.want = Some(len);
            self.buf.reserve_exact(len);
        }
        let len = self.want.unwrap_or(0);
        let body = self.buf.len() - HEADER;
        let take = (len - body).min(input.len());
        self.buf.extend_from_slice(&input[..take]);
        *input = &input[take..];
        if self.buf.len() - HEADER < len {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(&self.buf[HEADER..]))
    }
}

/// Appends `body` to `out` as one frame. The caller keeps bodies within 65,535.
pub fn write_frame(out: &mut Vec<u8>, body: &[u8]) {
    let len = u16::try_from(body.len()).expect("a frame body fits its 2-byte length");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame `r` yields from `input` fed in pieces of `size`.
    fn frames(r: &mut FrameReader, input: &[u8], size: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        for mut piece in input.chunks(size) {
            while let Some(f) = r.feed(&mut piece)? {
                out.push(f.to_vec());
            }
        }
        Ok(out)
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_are_split() {
        let mut wire = Vec::new();
        let bodies: Vec<Vec<u8>> = [1usize, 300, 65_535, 17]
            .iter()
            .map(|&n| (0..n).map(|k| k as u8).collect())
            .collect();
        for b in &bodies {
            write_frame(&mut wire, b);
        }
        for size in [1, 2, 3, 7, 1000, wire.len()] {
            let mut r = FrameReader::new(1, MAX_FRAME);
            assert_eq!(
                frames(&mut r, &wire, size).unwrap(),
                bodies,
                "pieces of {size}"
            );
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn a_length_outside_the_limits_is_refused_before_its_body_is_read() {
        let mut r = FrameReader::new(96, 96);
        let mut input: &[u8] = b"GET / HTTP/1.0\r\n";
        let e = r.feed(&mut input).unwrap_err();
        assert_eq!(e.len, 0x4745);
        assert_eq!(
            e.to_string(),
            "frame length 18245 (got \"GE\" as length bytes) where exactly 96 bytes are allowed"
        );
        let mut r = FrameReader::new(16, MAX_FRAME);
        let e = r.feed(&mut &[0u8, 3, 1, 2, 3][..]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "frame length 3 (got \"\\x00\\x03\" as length bytes) where 16 to 65535 bytes are allowed"
        );
    }

    #[test]
    fn a_truncated_frame_is_held_never_handed_out() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &[7u8; 40]);
        let mut r = FrameReader::new(1, MAX_FRAME);
        let got = frames(&mut r, &wire[..30], 5).unwrap();
        assert!(got.is_empty());
        assert_eq!(r.buffered(), 30);
    }

    #[test]
    fn new_limits_apply_from_the_next_frame() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &[1u8; 96]);
        write_frame(&mut wire, &[2u8; 20]);
        let mut r = FrameReader::new(96, 96);
        let mut input = &wire[..];
        assert_eq!(r.feed(&mut input).unwrap().unwrap().len(), 96);
        r.set_limits(16, MAX_FRAME);
        assert_eq!(r.feed(&mut input).unwrap().unwrap(), &[2u8; 20]);
        assert!(input.is_empty());
    }
}
