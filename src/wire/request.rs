//! What servants say to the manager: `needs peer list`, framed the way every
//! client in the wild sends it, `needs peer list since N` (the version the asker
//! has: [`super::delta`]), `cannot reach IP:PORT` (a complaint about a peer, for
//! the relay: [`super::relay`]), `name NAME` ([`super::name`]), `probed TEXT` (a
//! relay probe came down the sender's pull), `tampered IP:PORT` (frames from the
//! sender's relay did not open) and `cannot listen PORT` (the port the manager gave
//! the sender is held by someone else).
//!
//! The article's manager compared a whole `GetData` buffer with the request, so it
//! only worked when TCP delivered exactly the 15 bytes, once. Here the same request
//! is recognised when it comes bare (the VB servant), with CRLF or LF (telnet,
//! netcat), several to a packet, or split across packets. Any other line is passed
//! on as text; a line longer than the limit is an error for the caller to act on.

/// The one request the manager answers.
const NEEDS_PEER_LIST: &[u8] = b"needs peer list";
/// What follows it when the asker says which version it has.
const SINCE: &[u8] = b" since ";
/// Bytes in a version, at most (`E.N`: [`super::version`]).
const MAX_DIGITS: usize = super::version::MAX_LEN;
/// `resume OFFSET TOKEN`: a servant failing over asks to keep its entry.
const RESUME: &[u8] = b"resume ";
/// `probed TEXT`: a probe line reached the sender through its relay.
const PROBED: &[u8] = b"probed ";
/// Longest probe text a `probed` line may carry; a longer one is no probe answer.
pub const MAX_PROBE_TEXT: usize = 64;
/// `cannot listen PORT`: binding the port the manager assigned failed.
const CANNOT_LISTEN: &[u8] = b"cannot listen ";

/// `needs peer list since N\n`: what a version-aware servant asks; 0 when it has
/// no list yet (versions start at 1), which gets the whole document.
pub fn needs_peer_list_since(version: u64) -> Vec<u8> {
    format!("needs peer list since {version}\n").into_bytes()
}

/// One framed item.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    NeedsPeerList,
    /// `needs peer list since N`, ended by a line ending.
    NeedsPeerListSince(u64),
    /// `cannot reach IP:PORT`: the sender could not deliver to that peer.
    CannotReach(std::net::SocketAddr),
    /// `can relay`: the sender forwards lines to pullers, so it may be chosen as a
    /// relay. A client that never says it (the VB servant, telnet) never is.
    CanRelay,
    /// `name NAME`: the name the sender wants listed, unchecked; empty to forget it.
    Name(&'a [u8]),
    /// `probed TEXT`: the sender's relay forwarded a probe carrying TEXT (1 to
    /// [`MAX_PROBE_TEXT`] bytes).
    Probed(&'a [u8]),
    /// `cannot listen PORT`: the sender could not bind PORT.
    CannotListen(u16),
    /// `tampered IP:PORT`: frames from the sender's relay at that address did not
    /// open (a private network's relays: docs/PRIVATE.md#relays).
    Tampered(std::net::SocketAddr),
    /// `resume OFFSET TOKEN`: the sender had that entry on another manager of the
    /// cluster and the token it was given for it (`docs/CLUSTER.md`).
    Resume(usize, &'a [u8]),
    /// Any other non-empty line, without its line ending.
    Other(&'a [u8]),
}

/// A line grew past the limit without ending.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong(pub usize);

/// Per-connection framing state: the unfinished tail of what arrived so far.
///
/// ```
/// use p2pchat::wire::request::{Line, RequestReader};
///
/// let mut reader = RequestReader::default();
/// let mut seen = Vec::new();
/// // A bare request (the VB servant), then one split across two reads with CRLF.
/// for chunk in [&b"needs peer listneeds pe"[..], b"er list\r\nhello\n"] {
///     reader
///         .feed(chunk, 4096, |line| seen.push(match line {
///             Line::NeedsPeerList => "request".to_string(),
///             Line::NeedsPeerListSince(v) => format!("request since {v}"),
///             Line::CannotReach(peer) => format!("complaint about {peer}"),
///             Line::CanRelay => "offer".to_string(),
///             Line::Name(name) => format!("name {}", String::from_utf8_lossy(name)),
///             Line::Probed(text) => format!("probed {}", String::from_utf8_lossy(text)),
///             Line::CannotListen(port) => format!("cannot listen {port}"),
///             Line::Tampered(relay) => format!("tampered {relay}"),
///             Line::Resume(offset, _) => format!("resume {offset}"),
///             Line::Other(text) => String::from_utf8_lossy(text).into_owned(),
///         }))
///         .unwrap();
/// }
/// assert_eq!(seen, ["request", "request", "hello"]);
/// ```
#[derive(Debug, Default)]
pub struct RequestReader {
    pending: Vec<u8>,
}

impl RequestReader {
    /// Frames `data`, calling `f` for each complete item. Bytes that may still
    /// become an item wait for the next call. Lines are capped at `max_line` bytes.
    pub fn feed(
        &mut self,
        data: &[u8],
        max_line: usize,
        mut f: impl FnMut(Line<'_>),
    ) -> Result<(), TooLong> {
        self.feed_until(data, max_line, |line| {
            f(line);
            true
        })
    }

    /// As [`RequestReader::feed`], but stops after an item for which `f` says
    /// false: the bytes after it wait, framed by the next call (which may pass
    /// no new data), so a caller can hold a connection's later requests.
    pub fn feed_until(
        &mut self,
        data: &[u8],
        max_line: usize,
        mut f: impl FnMut(Line<'_>) -> bool,
    ) -> Result<(), TooLong> {
        let framed = if self.pending.is_empty() {
            // The common case, a whole request in one read, never copies.
            frame(data, max_line, &mut f).map(|used| self.pending.extend_from_slice(&data[used..]))
        } else {
            self.pending.extend_from_slice(data);
            frame(&self.pending, max_line, &mut f).map(|used| drop(self.pending.drain(..used)))
        };
        if framed.is_err() {
            // Nothing after an overlong line is trusted; keep no part of it either.
            self.pending = Vec::new();
        }
        framed
    }

    /// The unterminated tail left when the connection closed, if any.
    pub fn take_tail(&mut self) -> Option<Vec<u8>> {
        let tail = std::mem::take(&mut self.pending);
        let trimmed = trim_line_end(&tail);
        (!trimmed.is_empty()).then(|| trimmed.to_vec())
    }
}

/// Frames as much of `buf` as possible; returns the bytes used.
fn frame(
    buf: &[u8],
    max_line: usize,
    f: &mut impl FnMut(Line<'_>) -> bool,
) -> Result<usize, TooLong> {
    let mut at = 0;
    let mut stop = false;
    loop {
        if stop {
            return Ok(at);
        }
        // Blank lines and the line ending after a bare request are skipped.
        while at < buf.len() && (buf[at] == b'\n' || buf[at] == b'\r') {
            at += 1;
        }
        let rest = &buf[at..];
        if rest.is_empty() {
            return Ok(at);
        }
        if rest.starts_with(NEEDS_PEER_LIST) {
            at += NEEDS_PEER_LIST.len();
            match since(&rest[NEEDS_PEER_LIST.len()..]) {
                Since::Version(v, used) => {
                    stop |= !f(Line::NeedsPeerListSince(v));
                    at += used;
                }
                Since::Partial => return Ok(at - NEEDS_PEER_LIST.len()),
                // Bare: answered now, since the VB servant sends nothing after it.
                Since::No => stop |= !f(Line::NeedsPeerList),
            }
            continue;
        }
        if NEEDS_PEER_LIST.starts_with(rest) {
            return Ok(at); // the start of a request split across packets
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(nl) if nl > max_line => return Err(TooLong(nl)),
            Some(nl) => {
                let line = trim_line_end(&rest[..nl]);
                if let Some(name) = super::name::parse_request(line) {
                    stop |= !f(Line::Name(name));
                } else if let Some(text) = parse_probed(line) {
                    stop |= !f(Line::Probed(text));
                } else if let Some(port) = parse_cannot_listen(line) {
                    stop |= !f(Line::CannotListen(port));
                } else if let Some((offset, token)) = parse_resume(line) {
                    stop |= !f(Line::Resume(offset, token));
                } else {
                    match super::relay::parse_cannot_reach(line) {
                        Some(peer) => stop |= !f(Line::CannotReach(peer)),
                        None if line == super::relay::CAN_RELAY => stop |= !f(Line::CanRelay),
                        None if line.starts_with(b"tampered ") => {
                            match super::relay::parse_tampered(line) {
                                Some(relay) => stop |= !f(Line::Tampered(relay)),
                                None => stop |= !f(Line::Other(line)),
                            }
                        }
                        None if !line.is_empty() => stop |= !f(Line::Other(line)),
                        None => {}
                    }
                }
                at += nl + 1;
            }
            None if rest.len() > max_line => return Err(TooLong(rest.len())),
            None => return Ok(at),
        }
    }
}

/// What follows `needs peer list`.
enum Since {
    /// ` since N` and a line ending: the version and the bytes before the ending.
    Version(u64, usize),
    /// The start of ` since N` without its line ending yet.
    Partial,
    /// Anything else, the end of the buffer included: a bare request. So a
    /// versioned request split by TCP right after `needs peer list` is taken as a
    /// bare one (the VB servant's request has no ending to wait for): that asker
    /// gets the whole document without a version, its ` since N` is logged as a
    /// stray line, and its next poll asks `since 0` again. A servant writes the
    /// whole line at once, so in practice it arrives whole.
    No,
}

fn since(rest: &[u8]) -> Since {
    if rest.is_empty() {
        return Since::No;
    }
    let Some(digits) = rest.strip_prefix(SINCE) else {
        return match SINCE.starts_with(rest) {
            true => Since::Partial,
            false => Since::No,
        };
    };
    let n = (digits.iter())
        .take_while(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'.'))
        .count();
    match digits.get(n) {
        _ if n > MAX_DIGITS => Since::No,
        None => Since::Partial,
        Some(b'\r' | b'\n') if n > 0 => super::version::parse(&digits[..n])
            .map_or(Since::No, |v| Since::Version(v, SINCE.len() + n)),
        Some(_) => Since::No,
    }
}

/// `resume OFFSET TOKEN`: a decimal offset and a token of 1 to 64 hex digits.
fn parse_resume(line: &[u8]) -> Option<(usize, &[u8])> {
    let rest = line.strip_prefix(RESUME)?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let (offset, token) = (&rest[..space], &rest[space + 1..]);
    let digits = !offset.is_empty() && offset.len() <= 9 && offset.iter().all(u8::is_ascii_digit);
    let hex = (1..=64).contains(&token.len()) && token.iter().all(u8::is_ascii_hexdigit);
    if !digits || !hex {
        return None;
    }
    Some((std::str::from_utf8(offset).ok()?.parse().ok()?, token))
}

/// The text of a `probed TEXT` line: 1 to [`MAX_PROBE_TEXT`] bytes.
fn parse_probed(line: &[u8]) -> Option<&[u8]> {
    let text = line.strip_prefix(PROBED)?;
    (!text.is_empty() && text.len() <= MAX_PROBE_TEXT).then_some(text)
}

/// The port of a `cannot listen PORT` line: 1 to 65535 in plain digits, no sign,
/// no leading zero.
fn parse_cannot_listen(line: &[u8]) -> Option<u16> {
    let digits = line.strip_prefix(CANNOT_LISTEN)?;
    if digits.is_empty() || digits.len() > 5 || digits[0] == b'0' {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another and lists what came out.
    fn frame_all(chunks: &[&[u8]]) -> (Vec<String>, Result<(), TooLong>, usize) {
        let mut r = RequestReader::default();
        let mut out = Vec::new();
        let mut result = Ok(());
        for c in chunks {
            result = r.feed(c, 64, |l| {
                out.push(match l {
                    Line::NeedsPeerList => "LIST".to_string(),
                    Line::NeedsPeerListSince(v) => format!("SINCE {v}"),
                    Line::CannotReach(peer) => format!("COMPLAINT {peer}"),
                    Line::CanRelay => "OFFER".to_string(),
                    Line::Name(n) => format!("NAME {}", String::from_utf8_lossy(n)),
                    Line::Probed(t) => format!("PROBED {}", String::from_utf8_lossy(t)),
                    Line::Tampered(relay) => format!("TAMPERED {relay}"),
                    Line::CannotListen(p) => format!("LISTEN {p}"),
                    Line::Resume(o, t) => format!("RESUME {o} {}", String::from_utf8_lossy(t)),
                    Line::Other(t) => String::from_utf8_lossy(t).into_owned(),
                })
            });
            if result.is_err() {
                break;
            }
        }
        (out, result, r.pending.len())
    }

    #[test]
    fn feed_until_keeps_what_follows_a_stop_for_the_next_call() {
        let mut r = RequestReader::default();
        let mut seen = Vec::new();
        let data = b"name a\nneeds peer listname b\nhi\n";
        let stop_at_name = |seen: &mut Vec<String>, l: Line<'_>| {
            let name = matches!(l, Line::Name(_));
            seen.push(format!("{}", matches!(l, Line::NeedsPeerList)));
            !name
        };
        r.feed_until(data, 64, |l| stop_at_name(&mut seen, l))
            .unwrap();
        assert_eq!(seen.len(), 1);
        r.feed_until(b"", 64, |l| stop_at_name(&mut seen, l))
            .unwrap();
        assert_eq!(seen, ["false", "true", "false"]);
        r.feed_until(b"", 64, |l| stop_at_name(&mut seen, l))
            .unwrap();
        assert_eq!(seen.len(), 4);
        assert!(r.pending.is_empty());
    }

    #[test]
    fn bare_request_as_the_vb_servant_sends_it() {
        assert_eq!(frame_all(&[b"needs peer list"]).0, ["LIST"]);
        assert_eq!(
            frame_all(&[b"needs peer listneeds peer list"]).0,
            ["LIST", "LIST"]
        );
    }

    #[test]
    fn telnet_and_netcat_line_endings() {
        assert_eq!(
            frame_all(&[b"needs peer list\r\n"]),
            (vec!["LIST".into()], Ok(()), 0)
        );
        assert_eq!(frame_all(&[b"needs peer list\n\n\r\n"]).0, ["LIST"]);
    }

    #[test]
    fn batched_and_split_requests() {
        assert_eq!(
            frame_all(&[b"needs peer list\r\nneeds peer list\nneeds peer list"]).0,
            ["LIST"; 3]
        );
        assert_eq!(
            frame_all(&[b"need", b"s peer l", b"ist\r", b"\n"]),
            (vec!["LIST".into()], Ok(()), 0)
        );
        assert_eq!(
            frame_all(&[b"needs peer list\r", b"\nhel", b"lo\n"]).0,
            ["LIST", "hello"]
        );
    }

    #[test]
    fn other_lines_are_passed_on_and_the_connection_goes_on() {
        let (out, res, pending) = frame_all(&[b"hello\r\n\xff\xfe\nneeds peer list\nneeds"]);
        assert_eq!(out, ["hello", "\u{fffd}\u{fffd}", "LIST"]);
        assert_eq!((res, pending), (Ok(()), 5));
    }

    #[test]
    fn overlong_lines_are_refused_whether_or_not_they_end() {
        let long = [b'x'; 100];
        assert_eq!(frame_all(&[&long]).1, Err(TooLong(100)));
        let mut ended = long.to_vec();
        ended.push(b'\n');
        assert_eq!(frame_all(&[&ended]).1, Err(TooLong(100)));
        assert_eq!(frame_all(&[&long[..40], &long[..40]]).1, Err(TooLong(80)));
        let mut r = RequestReader::default();
        assert!(r.feed(&long, 64, |_| {}).is_err());
        assert!(r.pending.is_empty(), "the overlong line is not kept");
    }

    #[test]
    fn complaints_are_recognised_and_malformed_ones_passed_on() {
        assert_eq!(
            frame_all(&[
                b"needs peer list\ncannot reach 203.0.113.1:2226\r\ncannot reach nowhere\ncan relay\n"
            ])
            .0,
            ["LIST", "COMPLAINT 203.0.113.1:2226", "cannot reach nowhere", "OFFER"]
        );
    }

    #[test]
    fn name_requests_are_recognised() {
        assert_eq!(
            frame_all(&[b"name alice
needs peer list
name
namesake
"])
            .0,
            ["NAME alice", "LIST", "NAME ", "namesake"]
        );
    }

    #[test]
    fn probe_answers_are_recognised_within_their_limit() {
        let long = format!("probed {}\n", "x".repeat(MAX_PROBE_TEXT + 1));
        let fit = format!("probed {}\r\n", "y".repeat(MAX_PROBE_TEXT));
        let mut out = Vec::new();
        let mut r = RequestReader::default();
        for chunk in [
            &b"probed quiet lamp river\r\nprobed\nprobed \n"[..],
            long.as_bytes(),
            fit.as_bytes(),
        ] {
            r.feed(chunk, 4096, |l| {
                out.push(match l {
                    Line::Probed(t) => format!("PROBED {}", String::from_utf8_lossy(t)),
                    Line::Other(t) => String::from_utf8_lossy(t).into_owned(),
                    other => format!("{other:?}"),
                })
            })
            .unwrap();
        }
        assert_eq!(out[0], "PROBED quiet lamp river");
        assert_eq!(
            out[1..3],
            ["probed", "probed "],
            "no text: an ordinary line"
        );
        assert!(
            out[3].starts_with("probed xxx"),
            "too long: an ordinary line"
        );
        assert_eq!(out[4], format!("PROBED {}", "y".repeat(MAX_PROBE_TEXT)));
    }

    #[test]
    fn cannot_listen_takes_one_plain_port() {
        assert_eq!(
            frame_all(&[
                b"cannot listen 2224\ncannot listen 65535\r\n",
                b"cannot listen 1\n"
            ])
            .0,
            ["LISTEN 2224", "LISTEN 65535", "LISTEN 1"]
        );
        for bad in [
            &b"cannot listen 0\n"[..],
            b"cannot listen 65536\n",
            b"cannot listen 02224\n",
            b"cannot listen +2224\n",
            b"cannot listen 2224 \n",
            b"cannot listen\n",
            b"cannot listen 123456\n",
        ] {
            let out = frame_all(&[bad]).0;
            assert!(!out[0].starts_with("LISTEN"), "{out:?}");
        }
    }

    #[test]
    fn versions_are_read_whole_even_when_split() {
        assert_eq!(
            frame_all(&[b"needs peer list since 1234\r\nneeds peer list since 0\n"]).0,
            ["SINCE 1234", "SINCE 0"]
        );
        assert_eq!(
            frame_all(&[b"needs peer list si", b"nce 12", b"34", b"\n"]),
            (vec!["SINCE 1234".into()], Ok(()), 0)
        );
        // Not a version: today's request, and the rest of the line as text.
        assert_eq!(
            frame_all(&[b"needs peer list since x\nneeds peer list soon\n"]).0,
            ["LIST", " since x", "LIST", " soon"]
        );
        assert_eq!(
            frame_all(&[b"needs peer list since 99999999999999999999999\n"]).0,
            ["LIST", " since 99999999999999999999999"]
        );
        assert_eq!(
            frame_all(&[b"needs peer list since 5needs peer list\n"]).0[0],
            "LIST"
        );
        assert_eq!(needs_peer_list_since(7), b"needs peer list since 7\n");
    }

    #[test]
    fn tail_at_close() {
        let mut r = RequestReader::default();
        r.feed(b"bye now\r", 64, |_| {}).unwrap();
        assert_eq!(r.take_tail().as_deref(), Some(&b"bye now"[..]));
        assert_eq!(r.take_tail(), None);
    }
}
