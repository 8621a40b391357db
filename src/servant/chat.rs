//! The chat protocol between servants, and the framing of typed lines.
//!
//! One TCP connection carries one batch: the sender connects, writes one or more
//! UTF-8 lines each ending in `\n`, and closes once the socket has taken them.
//! The receiver splits on `\n` and drops a trailing `\r`; an unterminated tail at
//! close is a message too, because the article's VB sender wrote bare text with no
//! line ending at all. A message is capped at `MAX_MESSAGE` bytes: the first
//! 64 KiB are shown, marked truncated, and the rest of that line is discarded, so
//! a peer that never sends a newline costs bounded memory: at most [`MAX_MESSAGE`]
//! bytes of buffer, reported by [`ChatReader::buffered`] so that the servant can
//! bound the sum over all its connections too.

/// The longest message kept; longer ones are cut here and marked truncated.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// A buffer larger than this is given back once its line is done, so that a
/// connection that sent one long line does not keep its memory while idle.
const KEEP: usize = 4 * 1024;

/// Per-connection framing state: the unfinished message so far.
#[derive(Debug, Default)]
pub struct ChatReader {
    line: Vec<u8>,
    /// The current line passed its limit; the rest of it is being dropped.
    truncated: bool,
    /// Bytes a line may hold beyond [`MAX_MESSAGE`]: what a relay's frame adds to
    /// a message ([`crate::wire::pull`]).
    extra: usize,
}

impl ChatReader {
    /// A reader for lines that carry up to `extra` bytes besides the message.
    pub fn with_room(extra: usize) -> ChatReader {
        ChatReader {
            extra,
            ..ChatReader::default()
        }
    }

    fn limit(&self) -> usize {
        MAX_MESSAGE + self.extra
    }

    /// Frames `data`, calling `emit(message, truncated)` for each complete line,
    /// without its line ending. A line that arrives whole in one read is never copied.
    pub fn feed(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while let Some(nl) = memchr::memchr(b'\n', data) {
            let head = &data[..nl];
            if self.line.is_empty() && !self.truncated {
                let cut = head.len().min(self.limit());
                emit(strip_cr(&head[..cut]), cut < head.len());
            } else {
                self.push(head);
                emit(strip_cr(&self.line), self.truncated);
                self.line.clear();
                if self.line.capacity() > KEEP {
                    self.line = Vec::new();
                }
                self.truncated = false;
            }
            data = &data[nl + 1..];
        }
        self.push(data);
    }

    /// The unterminated tail at close, if there is one.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.line.is_empty() || self.truncated {
            emit(strip_cr(&self.line), self.truncated);
        }
        self.line = Vec::new();
        self.truncated = false;
    }

    /// Bytes of memory held for the unfinished line: never more than [`MAX_MESSAGE`]
    /// (and the room asked for).
    pub fn buffered(&self) -> usize {
        self.line.capacity()
    }

    /// Drops the unfinished line and its memory: the connection is being closed
    /// for holding too much, and its tail is not shown.
    pub fn discard(&mut self) {
        self.line = Vec::new();
        self.truncated = false;
    }

    fn push(&mut self, bytes: &[u8]) {
        let limit = self.limit();
        let room = limit - self.line.len();
        let take = bytes.len().min(room);
        let need = self.line.len() + take;
        if need > self.line.capacity() {
            // Grow by doubling as usual, but never past the cap: `extend` alone may
            // reserve up to twice MAX_MESSAGE for the last piece of a long line.
            let want = (self.line.capacity() * 2).clamp(need, limit);
            self.line.reserve_exact(want - self.line.len());
        }
        self.line.extend_from_slice(&bytes[..take]);
        self.truncated |= take < bytes.len();
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut r = ChatReader::default();
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, |m, t| {
                out.push((String::from_utf8_lossy(m).into_owned(), t))
            });
        }
        r.finish(|m, t| out.push((String::from_utf8_lossy(m).into_owned(), t)));
        out
    }

    fn plain(v: &[&str]) -> Vec<(String, bool)> {
        v.iter().map(|s| (s.to_string(), false)).collect()
    }

    #[test]
    fn splits_lines_and_strips_carriage_returns() {
        assert_eq!(
            frame(&[b"alice: hi\r\nbob: yo\n"]),
            plain(&["alice: hi", "bob: yo"])
        );
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        assert_eq!(
            frame(&[b"ali", b"ce: h", b"i\nbo", b"b\n"]),
            plain(&["alice: hi", "bob"])
        );
    }

    #[test]
    fn an_unterminated_tail_is_a_message_too() {
        assert_eq!(frame(&[b"one\ntwo"]), plain(&["one", "two"]));
        assert_eq!(frame(&[b"bare vb text"]), plain(&["bare vb text"]));
        assert_eq!(frame(&[b"done\n"]), plain(&["done"]));
    }

    #[test]
    fn long_lines_are_cut_and_marked() {
        let long = vec![b'x'; MAX_MESSAGE + 10];
        let mut chunk = long.clone();
        chunk.extend_from_slice(b"\nnext\n");
        let out = frame(&[&chunk]);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].0.len(), out[0].1), (MAX_MESSAGE, true));
        assert_eq!(out[1], ("next".to_string(), false));
        // The same line in small pieces, and as a tail at close.
        let pieces: Vec<&[u8]> = long.chunks(1000).collect();
        let out = frame(&pieces);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.len(), out[0].1), (MAX_MESSAGE, true));
    }

    #[test]
    fn the_buffer_never_grows_past_the_cap_and_is_given_back() {
        let mut r = ChatReader::default();
        for piece in [40_000, 25_000, 30_000] {
            r.feed(&vec![b'z'; piece], |_, _| {});
            assert!(r.buffered() <= MAX_MESSAGE, "{}", r.buffered());
        }
        r.feed(b"\n", |_, _| {});
        assert_eq!(
            r.buffered(),
            0,
            "a long line's buffer is freed once it ends"
        );
        r.feed(b"short", |_, _| {});
        r.discard();
        assert_eq!(r.buffered(), 0);
        let mut shown = 0;
        r.finish(|_, _| shown += 1);
        assert_eq!(shown, 0, "a discarded tail is not shown");
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_not_truncated() {
        let mut chunk = vec![b'y'; MAX_MESSAGE];
        chunk.push(b'\n');
        let out = frame(&[&chunk[..10], &chunk[10..]]);
        assert_eq!((out[0].0.len(), out[0].1), (MAX_MESSAGE, false));
    }
}
