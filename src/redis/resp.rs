//! RESP2, the protocol Redis speaks: commands go out as arrays of bulk strings
//! ([`write_command`]), replies come back as one of five types ([`Reply`]), read
//! incrementally by a [`Reader`] that is fed bytes as the socket yields them and
//! asked for whole replies, the shape of hiredis's `redisReaderFeed` and
//! `redisReaderGetReply`.
//!
//! ```text
//! +OK\r\n               simple string      -ERR unknown\r\n   error
//! :1000\r\n             integer            $3\r\nfoo\r\n     bulk string ($-1: null)
//! *2\r\n:1\r\n:2\r\n    array (*-1: null) of any of these, nested
//! ```
//!
//! The reader trusts nothing it is sent. Nesting is a stack of partial arrays with
//! a hard depth limit, never recursion; every length is checked against a cap
//! before anything is done with it, and nothing is allocated by what a length
//! claims, only by bytes that have arrived. Integers and lengths are parsed
//! strictly (an optional `-`, digits, no leading zero, no overflow), so a reply
//! has exactly one encoding and [`Reply::encode`] gives back the bytes it was read
//! from. Every error names what was wrong, quoting the offending byte escaped.

use std::fmt;

/// The protocol's own limit on a bulk string (Redis's `proto-max-bulk-len`).
pub const PROTOCOL_MAX_BULK: usize = 512 * 1024 * 1024;

/// One reply. Simple strings and errors are kept as bytes: the protocol does not
/// promise UTF-8, and a reply must re-encode to what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...`: the server refused the command; the connection is fine.
    Error(Vec<u8>),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo` or the null bulk string `$-1` (a missing key).
    Bulk(Option<Vec<u8>>),
    /// `*2 ...` or the null array `*-1` (a blocking read that timed out).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// Appends this reply's one encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => line(out, b'+', s),
            Reply::Error(e) => line(out, b'-', e),
            Reply::Integer(n) => line(out, b':', Int::new(*n).as_bytes()),
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(b)) => {
                header(out, b'$', b.len());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(Some(items)) => {
                header(out, b'*', items.len());
                for item in items {
                    item.encode(out);
                }
            }
        }
    }

    /// The text of an error reply (`ERR ...`, `NOSCRIPT ...`), else `None`.
    pub fn error_text(&self) -> Option<String> {
        match self {
            Reply::Error(e) => Some(String::from_utf8_lossy(e).into_owned()),
            _ => None,
        }
    }

    /// The bytes of a bulk or simple string, else `None`.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(b)) | Reply::Simple(b) => Some(b),
            _ => None,
        }
    }
}

fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, kind: u8, len: usize) {
    line(out, kind, Int::new(len as i64).as_bytes());
}

/// An integer formatted on the stack: a number argument or length without a
/// `String` per use.
pub struct Int {
    buf: [u8; 20],
    start: usize,
}

impl Int {
    pub fn new(n: i64) -> Int {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        let mut m = n.unsigned_abs();
        loop {
            start -= 1;
            buf[start] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        if n < 0 {
            start -= 1;
            buf[start] = b'-';
        }
        Int { buf, start }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Appends the command `args` (`SET`, `key`, `value`) to `out` as RESP's array of
/// bulk strings. Nothing is allocated but `out`'s growth, which a reused buffer
/// stops doing.
pub fn write_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    header(out, b'*', args.len());
    for a in args {
        write_bulk(out, a.as_ref());
    }
}

/// Appends an array header, `*n`: for callers that write a command's arguments
/// piecewise with [`write_bulk`].
pub fn write_array_header(out: &mut Vec<u8>, n: usize) {
    header(out, b'*', n);
}

/// Appends one bulk string: for callers that write a command's header and
/// arguments piecewise (a script call's keys after its name).
pub fn write_bulk(out: &mut Vec<u8>, arg: &[u8]) {
    header(out, b'$', arg.len());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// The reader's limits: what a reply may claim before the reader refuses it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest bulk string accepted (at most [`PROTOCOL_MAX_BULK`]).
    pub max_bulk: usize,
    /// The most elements one array may claim.
    pub max_array: usize,
    /// How deep arrays may nest: a top-level array is depth 1.
    pub max_depth: usize,
    /// The longest simple string, error or number line, without its CRLF.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bulk: 16 * 1024 * 1024,
            max_array: 1024 * 1024,
            max_depth: 8,
            max_line: 64 * 1024,
        }
    }
}

/// What was wrong with what the server sent. The reader stops at the first one:
/// the stream can no longer be framed, so the connection must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// A reply began with a byte that is none of `+ - : $ *`.
    BadType(u8),
    /// A number (`what`: an integer, a bulk length, an array length) with a byte
    /// that does not belong there.
    BadNumber { what: &'static str, byte: u8 },
    /// A number with a leading zero, or `-0`, or nothing at all.
    NotCanonical { what: &'static str },
    /// A number too big for an `i64`.
    Overflow { what: &'static str },
    /// A negative length other than `-1`.
    NegativeLength { what: &'static str, len: i64 },
    /// A length over its cap (`what`: a bulk string, an array).
    TooLong {
        what: &'static str,
        len: i64,
        cap: usize,
    },
    /// Arrays nested deeper than the cap.
    TooDeep { cap: usize },
    /// A line over [`Limits::max_line`] bytes with no CRLF yet.
    LineTooLong { cap: usize },
    /// A CR or LF inside a line, or a CR not followed by LF.
    BadLineEnd(u8),
    /// A bulk string not followed by CRLF: the byte found instead.
    BadBulkEnd(u8),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error, ")?;
        match *self {
            RespError::BadType(b) => write!(f, "got \"{}\" as reply type byte", Esc(b)),
            RespError::BadNumber { what, byte } => {
                write!(f, "got \"{}\" in {what}", Esc(byte))
            }
            RespError::NotCanonical { what } => {
                write!(f, "{what} is empty or has a leading zero")
            }
            RespError::Overflow { what } => write!(f, "{what} overflows 64 bits"),
            RespError::NegativeLength { what, len } => write!(f, "{what} of {len}"),
            RespError::TooLong { what, len, cap } => {
                write!(f, "{what} of {len} is over the cap of {cap}")
            }
            RespError::TooDeep { cap } => write!(f, "arrays nested deeper than {cap}"),
            RespError::LineTooLong { cap } => write!(f, "a line longer than {cap} bytes"),
            RespError::BadLineEnd(b) => write!(f, "got \"{}\" inside a line", Esc(b)),
            RespError::BadBulkEnd(b) => {
                write!(f, "got \"{}\" where a bulk string ends", Esc(b))
            }
        }
    }
}

impl std::error::Error for RespError {}

/// A byte as it would be written in a C string: printable ASCII as itself,
/// `\r`, `\n`, `\t`, `\"`, `\\`, and anything else as `\xNN`.
struct Esc(u8);

impl fmt::Display for Esc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b'\r' => f.write_str("\\r"),
            b'\n' => f.write_str("\\n"),
            b'\t' => f.write_str("\\t"),
            b'"' => f.write_str("\\\""),
            b'\\' => f.write_str("\\\\"),
            b @ 0x20..=0x7e => write!(f, "{}", b as char),
            b => write!(f, "\\x{b:02x}"),
        }
    }
}

/// An array being filled: the elements so far and how many it claimed.
#[derive(Debug)]
struct Partial {
    items: Vec<Reply>,
    want: usize,
}

/// The incremental reply reader; see the module's documentation.
#[derive(Debug)]
pub struct Reader {
    limits: Limits,
    buf: Vec<u8>,
    /// Where the unread bytes in `buf` start.
    pos: usize,
    /// How far past `pos` a line was already searched for its LF.
    scanned: usize,
    /// A bulk string's length, read from its header, while its body is awaited.
    bulk: Option<usize>,
    stack: Vec<Partial>,
    /// The first error, returned from then on.
    failed: Option<RespError>,
}

/// What one step of reading found.
enum Step {
    Value(Reply),
    Open(usize),
}

impl Default for Reader {
    fn default() -> Reader {
        Reader::new(Limits::default())
    }
}

impl Reader {
    pub fn new(limits: Limits) -> Reader {
        let limits = Limits {
            max_bulk: limits.max_bulk.min(PROTOCOL_MAX_BULK),
            ..limits
        };
        Reader {
            limits,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            bulk: None,
            stack: Vec::new(),
            failed: None,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Adds bytes as they arrived.
    pub fn feed(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Drop what has been read once it is most of the buffer, so a long
        // pipeline does not keep every reply it ever read.
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes fed and not yet part of a whole reply (the buffered part of one).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Forgets everything fed and any error: for a new connection.
    pub fn reset(&mut self) {
        *self = Reader::new(self.limits);
    }

    /// The next whole reply, `None` until its last byte has been fed, or the
    /// error that stopped the reader (again on every later call).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Reply, RespError>> {
        if let Some(e) = &self.failed {
            return Some(Err(e.clone()));
        }
        match self.read_reply() {
            Ok(reply) => reply.map(Ok),
            Err(e) => {
                self.failed = Some(e.clone());
                Some(Err(e))
            }
        }
    }

    fn read_reply(&mut self) -> Result<Option<Reply>, RespError> {
        loop {
            let mut value = match self.step()? {
                None => return Ok(None),
                Some(Step::Value(v)) => v,
                // An empty array is as deep as any other.
                Some(Step::Open(_)) if self.stack.len() >= self.limits.max_depth => {
                    return Err(RespError::TooDeep {
                        cap: self.limits.max_depth,
                    });
                }
                Some(Step::Open(0)) => Reply::Array(Some(Vec::new())),
                Some(Step::Open(n)) => {
                    // Room for what could have arrived, not for what is claimed.
                    let room = n.min(16);
                    self.stack.push(Partial {
                        items: Vec::with_capacity(room),
                        want: n,
                    });
                    continue;
                }
            };
            // Put the value in its array, closing every array it completes.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    return Ok(Some(value));
                };
                top.items.push(value);
                if top.items.len() < top.want {
                    break;
                }
                let done = self.stack.pop().expect("the top was there");
                value = Reply::Array(Some(done.items));
            }
        }
    }

    /// Reads one value or array header, `None` if its bytes are not all here.
    fn step(&mut self) -> Result<Option<Step>, RespError> {
        if let Some(len) = self.bulk {
            let rest = &self.buf[self.pos..];
            if rest.len() < len + 2 {
                return Ok(None);
            }
            if rest[len] != b'\r' {
                return Err(RespError::BadBulkEnd(rest[len]));
            }
            if rest[len + 1] != b'\n' {
                return Err(RespError::BadBulkEnd(rest[len + 1]));
            }
            let body = rest[..len].to_vec();
            self.pos += len + 2;
            self.bulk = None;
            return Ok(Some(Step::Value(Reply::Bulk(Some(body)))));
        }
        let Some(&kind) = self.buf.get(self.pos) else {
            return Ok(None);
        };
        if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
            return Err(RespError::BadType(kind));
        }
        let Some(end) = self.line_end()? else {
            return Ok(None);
        };
        let body = self.pos + 1..end;
        self.pos = end + 2;
        self.scanned = 0;
        let body = &self.buf[body];
        let step = match kind {
            b'+' => Step::Value(Reply::Simple(body.to_vec())),
            b'-' => Step::Value(Reply::Error(body.to_vec())),
            b':' => Step::Value(Reply::Integer(parse_int(body, "an integer")?)),
            b'$' => match length(body, "a bulk length", self.limits.max_bulk)? {
                None => Step::Value(Reply::Bulk(None)),
                Some(len) => {
                    self.bulk = Some(len);
                    return self.step();
                }
            },
            _ => match length(body, "an array length", self.limits.max_array)? {
                None => Step::Value(Reply::Array(None)),
                Some(n) => Step::Open(n),
            },
        };
        Ok(Some(step))
    }

    /// Where the CR of the line starting at `pos` is, once its CRLF has arrived.
    fn line_end(&mut self) -> Result<Option<usize>, RespError> {
        let from = self.pos + 1 + self.scanned;
        let rest = &self.buf[from..];
        let found = rest.iter().position(|&b| b == b'\r' || b == b'\n');
        let Some(k) = found else {
            self.scanned += rest.len();
            if self.scanned > self.limits.max_line {
                return Err(RespError::LineTooLong {
                    cap: self.limits.max_line,
                });
            }
            return Ok(None);
        };
        let cr = from + k;
        if cr - self.pos - 1 > self.limits.max_line {
            return Err(RespError::LineTooLong {
                cap: self.limits.max_line,
            });
        }
        if self.buf[cr] == b'\n' {
            return Err(RespError::BadLineEnd(b'\n'));
        }
        match self.buf.get(cr + 1) {
            None => {
                self.scanned = cr - self.pos - 1;
                Ok(None)
            }
            Some(b'\n') => Ok(Some(cr)),
            Some(&b) => Err(RespError::BadLineEnd(b)),
        }
    }
}

/// A length line: `-1` for null, else `0..=cap`.
fn length(body: &[u8], what: &'static str, cap: usize) -> Result<Option<usize>, RespError> {
    let n = parse_int(body, what)?;
    if n == -1 {
        return Ok(None);
    }
    if n < 0 {
        return Err(RespError::NegativeLength { what, len: n });
    }
    let thing = if what == "an array length" {
        "an array"
    } else {
        "a bulk string"
    };
    if n as u64 > cap as u64 {
        return Err(RespError::TooLong {
            what: thing,
            len: n,
            cap,
        });
    }
    Ok(Some(n as usize))
}

/// Parses an optional `-` and decimal digits, with no leading zero (`0` itself
/// excepted, `-0` refused), no sign, no space and no overflow.
pub fn parse_int(body: &[u8], what: &'static str) -> Result<i64, RespError> {
    let (negative, digits) = match body.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, body),
    };
    if let Some(&b) = digits.iter().find(|b| !b.is_ascii_digit()) {
        return Err(RespError::BadNumber { what, byte: b });
    }
    match digits {
        [] => return Err(RespError::NotCanonical { what }),
        [b'0'] if negative => return Err(RespError::NotCanonical { what }),
        [b'0', _, ..] => return Err(RespError::NotCanonical { what }),
        _ => {}
    }
    // Accumulate downwards: i64::MIN has no positive counterpart.
    let mut n: i64 = 0;
    for &d in digits {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_sub(i64::from(d - b'0')))
            .ok_or(RespError::Overflow { what })?;
    }
    if negative {
        Ok(n)
    } else {
        n.checked_neg().ok_or(RespError::Overflow { what })
    }
}

#[cfg(test)]
#[path = "resp_tests.rs"]
mod tests;
