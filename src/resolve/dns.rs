//! The DNS wire format, as much of it as a stub resolver needs (RFC 1035, 4.1): a
//! recursive query for one name's A or AAAA records, and the addresses in the reply,
//! followed through CNAMEs.
//!
//! A reply is somebody else's bytes. Every read is bounds-checked, a compression
//! pointer may only point backwards (so names cannot loop), and names come out
//! lowercased with every byte other than a letter, digit, `-` or `_` written as
//! `\DDD`: a server cannot put a control byte, or a dot inside a label, into a name.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::text::escape;

/// The record type of an IPv4 address.
pub const A: u16 = 1;
/// The record type of an IPv6 address.
pub const AAAA: u16 = 28;
const CNAME: u16 = 5;
const CLASS_IN: u16 = 1;
/// Flags of a query: RD, so the server recurses for us.
const RECURSION_DESIRED: u16 = 0x0100;
/// CNAMEs followed from the question's name, at most.
const MAX_CNAME_HOPS: usize = 16;
/// The UDP payload our queries say we accept (EDNS0, RFC 6891): the size the DNS
/// flag day of 2020 settled on, under any path's MTU. Without it a server must
/// cut any answer over 512 bytes, and a name with many addresses would be cut.
const UDP_PAYLOAD: u16 = 1232;
const OPT: u16 = 41;
/// Compression pointers in one name, at most: more than any real name needs, and
/// it bounds the work a chain of pointers to pointers can cost.
const MAX_POINTERS: usize = 128;

/// Errors in a name we were asked to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

/// Encodes a standard recursive query (RD=1, one question, class IN, and an EDNS0
/// record offering 1232 bytes) for `name` of `qtype` with `id`. `name` is dotted text, a trailing dot allowed; each label 1..=63
/// bytes, the whole name at most 253 bytes without the dot; labels hold ASCII letters,
/// digits, `-` and `_` only. Anything else is a [`NameError`] naming the name.
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, NameError> {
    let bad = |why: &str| NameError(format!("cannot look up \"{}\": {why}", escape(name)));
    let dotless = name.strip_suffix('.').unwrap_or(name);
    if dotless.len() > 253 {
        return Err(bad("longer than 253 bytes"));
    }
    let mut packet = Vec::with_capacity(12 + dotless.len() + 6);
    for field in [id, RECURSION_DESIRED, 1, 0, 0, 1] {
        packet.extend_from_slice(&field.to_be_bytes());
    }
    for label in dotless.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("label longer than 63 bytes"));
        }
        if !label.bytes().all(is_plain) {
            return Err(bad("a byte other than a letter, digit, '-' or '_'"));
        }
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT: the root name, its type, the payload size as its class, no flags or data.
    packet.push(0);
    for field in [OPT, UDP_PAYLOAD, 0, 0, 0] {
        packet.extend_from_slice(&field.to_be_bytes());
    }
    Ok(packet)
}

/// A query read back: its question, as [`parse_reply`] reads a reply's (the two
/// differ in the QR bit). None if it is not one.
pub fn question(query: &[u8]) -> Option<Reply> {
    let mut q = query.to_vec();
    *q.get_mut(2)? |= 0x80;
    parse_reply(&q).ok()
}

/// A server's reply to `query` with `rcode` and one record per address, each
/// naming the question by a compression pointer: what the tests' pretend DNS
/// servers send. None if `query` is not a query.
pub fn answer(query: &[u8], rcode: u8, addrs: &[IpAddr]) -> Option<Vec<u8>> {
    question(query)?;
    let mut r = Reader { msg: query, at: 12 };
    r.name().ok()?;
    let question_end = r.at + 4;
    let flags = 0x8080 | u16::from_be_bytes([query[2], query[3]]) & RECURSION_DESIRED;
    let mut out = query[..2].to_vec();
    for field in [flags | u16::from(rcode & 0xf), 1, addrs.len() as u16, 0, 0] {
        out.extend_from_slice(&field.to_be_bytes());
    }
    out.extend_from_slice(&query[12..question_end]);
    for ip in addrs {
        let (rtype, data) = match ip {
            IpAddr::V4(v4) => (A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (AAAA, v6.octets().to_vec()),
        };
        out.extend_from_slice(&[0xc0, 12]);
        for field in [rtype, CLASS_IN, 0, 60, data.len() as u16] {
            out.extend_from_slice(&field.to_be_bytes());
        }
        out.extend_from_slice(&data);
    }
    Some(out)
}

/// What a reply says about the one question it answers: the header fields a
/// resolver acts on and the addresses found for the question's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub id: u16,
    /// 0 no error, 2 server failure, 3 no such name, ...
    pub rcode: u8,
    /// TC: the answer did not fit (the answer section is then not read, see [`parse_reply`]).
    pub truncated: bool,
    /// Lowercase, no trailing dot, odd bytes as `\DDD`.
    pub qname: String,
    pub qtype: u16,
    /// A or AAAA addresses (as `qtype` asks) of `qname` and its CNAME chain, in answer order.
    pub addrs: Vec<IpAddr>,
}

/// Why a reply was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError {
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for ReplyError {}

fn err(at: usize, what: &'static str) -> ReplyError {
    ReplyError { at, what }
}

/// Parses a reply to one question (QR=1, opcode 0, QDCOUNT 1, class IN) and the
/// addresses in its answer section; the authority and additional sections are not read.
/// From the question's name it follows CNAMEs of class IN whose owner is the current
/// name, in any order, at most 16 hops, stopping at a loop; then it collects every A
/// (for qtype A) or AAAA (for AAAA) record of class IN owned by a name on that chain.
/// Other records are skipped. Any malformed or cut field is a [`ReplyError`].
///
/// With TC set the answer section is not read: a server may cut it anywhere, and
/// the caller asks again over TCP or gives up, so `addrs` is then empty.
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, ReplyError> {
    let mut r = Reader { msg: bytes, at: 0 };
    let id = r.u16("truncated header")?;
    let flags = r.u16("truncated header")?;
    let qdcount = r.u16("truncated header")?;
    let ancount = r.u16("truncated header")?;
    r.take(4, "truncated header")?; // authority and additional counts: not read
    if flags & 0x8000 == 0 {
        return Err(err(2, "not a reply (QR is 0)"));
    }
    if (flags >> 11) & 0xf != 0 {
        return Err(err(2, "opcode is not QUERY"));
    }
    if qdcount != 1 {
        return Err(err(4, "question count is not 1"));
    }
    let qname = r.name()?;
    let qtype = r.u16("truncated question type")?;
    if r.u16("truncated question class")? != CLASS_IN {
        return Err(err(r.at - 2, "question class is not IN"));
    }
    let truncated = flags & 0x0200 != 0;
    let mut reply = Reply {
        id,
        rcode: (flags & 0xf) as u8,
        truncated,
        qname,
        qtype,
        addrs: Vec::new(),
    };
    if truncated {
        return Ok(reply);
    }
    let mut cnames = Vec::new();
    let mut found = Vec::new();
    for _ in 0..ancount {
        let owner = r.name()?;
        let rtype = r.u16("truncated record type")?;
        let class = r.u16("truncated record class")?;
        r.take(4, "truncated record TTL")?;
        let len = r.u16("truncated record length")?;
        let start = r.at;
        let data = r.take(usize::from(len), "truncated record data")?;
        let wrong_length = err(start - 2, "address record of the wrong length");
        match (class, rtype) {
            (CLASS_IN, CNAME) => {
                let (target, end) = name(bytes, start)?;
                if end != r.at {
                    return Err(err(start, "CNAME target does not fill its record"));
                }
                cnames.push((owner, target));
            }
            (CLASS_IN, A) if qtype == A => {
                let octets = <[u8; 4]>::try_from(data).map_err(|_| wrong_length)?;
                found.push((owner, IpAddr::from(octets)));
            }
            (CLASS_IN, AAAA) if qtype == AAAA => {
                let octets = <[u8; 16]>::try_from(data).map_err(|_| wrong_length)?;
                found.push((owner, IpAddr::from(octets)));
            }
            _ => {}
        }
    }
    let mut chain = vec![reply.qname.clone()];
    while chain.len() <= MAX_CNAME_HOPS {
        let current = &chain[chain.len() - 1];
        let Some((_, target)) = cnames.iter().find(|(owner, _)| owner == current) else {
            break;
        };
        if chain.contains(target) {
            break;
        }
        chain.push(target.clone());
    }
    reply.addrs = found
        .into_iter()
        .filter(|(owner, _)| chain.contains(owner))
        .map(|(_, a)| a)
        .collect();
    Ok(reply)
}

/// A label byte kept as it is in names, in queries and replies alike.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A position in a reply, every read checked against its end.
struct Reader<'a> {
    msg: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ReplyError> {
        let bytes = self
            .msg
            .get(self.at..self.at + n)
            .ok_or(err(self.at, what))?;
        self.at += n;
        Ok(bytes)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ReplyError> {
        self.take(2, what).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn name(&mut self) -> Result<String, ReplyError> {
        let (text, end) = name(self.msg, self.at)?;
        self.at = end;
        Ok(text)
    }
}

/// The name at `start` in `msg` as text, and the position just after it (after its
/// first pointer, if it has one). Each pointer must point before the labels that
/// led to it, so every jump goes strictly backwards and no name can loop.
fn name(msg: &[u8], start: usize) -> Result<(String, usize), ReplyError> {
    let mut text = String::new();
    let (mut at, mut since, mut wire_len, mut pointers) = (start, start, 1, 0);
    let mut end = None;
    loop {
        let len = *msg.get(at).ok_or(err(at, "truncated name"))?;
        match len >> 6 {
            0 if len == 0 => return Ok((text, end.unwrap_or(at + 1))),
            0 => {
                let label = msg.get(at + 1..at + 1 + usize::from(len));
                let label = label.ok_or(err(at, "truncated label"))?;
                wire_len += 1 + label.len();
                if wire_len > 255 {
                    return Err(err(at, "name longer than 255 bytes"));
                }
                if !text.is_empty() {
                    text.push('.');
                }
                for &b in label {
                    match is_plain(b) {
                        true => text.push(char::from(b.to_ascii_lowercase())),
                        false => write!(text, "\\{b:03}").expect("writing to a String"),
                    }
                }
                at += 1 + label.len();
            }
            3 => {
                let low = *msg.get(at + 1).ok_or(err(at, "truncated pointer"))?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                pointers += 1;
                if target >= since || pointers > MAX_POINTERS {
                    return Err(err(at, "compression pointer not backwards"));
                }
                end.get_or_insert(at + 2);
                (at, since) = (target, target);
            }
            _ => return Err(err(at, "unknown label type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name` uncompressed, as it is on the wire.
    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// A reply with id 0xbeef to one question, with `answers` (see [`record`]).
    fn reply(flags: u16, qname: &[u8], qtype: u16, answers: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for field in [0xbeef, flags, 1, answers.len() as u16, 0, 0] {
            out.extend(field.to_be_bytes());
        }
        out.extend(qname);
        out.extend([qtype.to_be_bytes(), CLASS_IN.to_be_bytes()].concat());
        out.extend(answers.concat());
        out
    }

    /// One answer record with a TTL of 300; `owner` in wire form (maybe a pointer).
    fn record(owner: &[u8], class: u16, rtype: u16, data: &[u8]) -> Vec<u8> {
        let mut out = owner.to_vec();
        for field in [rtype, class, 0, 300, data.len() as u16] {
            out.extend(field.to_be_bytes());
        }
        out.extend(data);
        out
    }

    fn rr(owner: &[u8], rtype: u16, data: &[u8]) -> Vec<u8> {
        record(owner, CLASS_IN, rtype, data)
    }

    const OK: u16 = 0x8180; // QR, RD, RA
    const QNAME: &[u8] = &[0xc0, 12]; // a pointer to the question's name

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn query_is_encoded_byte_for_byte() {
        let expected = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\
                         \x07Example\x03com\x00\x00\x1c\x00\x01\
                         \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
        assert_eq!(query(0x1234, "Example.com.", AAAA).unwrap(), expected);
        assert_eq!(query(0x1234, "Example.com", AAAA).unwrap(), expected);
    }

    #[test]
    fn a_pretend_server_answers_what_was_asked() {
        let q = query(0x1234, "Host.Example", A).unwrap();
        assert_eq!(question(&q).unwrap().qname, "host.example");
        let a = answer(&q, 0, &ips(&["192.0.2.1", "192.0.2.2"])).unwrap();
        let got = parse_reply(&a).unwrap();
        assert_eq!((got.id, got.rcode, got.qtype), (0x1234, 0, A));
        assert_eq!(got.addrs, ips(&["192.0.2.1", "192.0.2.2"]));
        assert_eq!(parse_reply(&answer(&q, 3, &[]).unwrap()).unwrap().rcode, 3);
        assert_eq!(answer(&a[..5], 0, &[]), None);
    }

    #[test]
    fn bad_names_are_refused() {
        let long_label = format!("{}.com", "a".repeat(64));
        let name_253 = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        let name_254 = format!("{name_253}d");
        assert!(query(1, &format!("{name_253}."), A).is_ok());
        assert!(query(1, &"a".repeat(63), A).is_ok());
        for bad in [
            "",
            ".",
            "a..b",
            "a.b..",
            &long_label,
            &name_254,
            "a b.com",
            "é.com",
            "a\x1b[2J",
        ] {
            let err = query(1, bad, A).unwrap_err();
            assert!(!err.to_string().contains('\x1b'), "{err}");
        }
        assert!(query(1, "a..b", A)
            .unwrap_err()
            .to_string()
            .contains("empty label"));
        assert!(query(1, &name_254, A)
            .unwrap_err()
            .to_string()
            .contains("253"));
    }

    #[test]
    fn two_a_records_for_the_question() {
        let owner = wire("WWW.Example.COM");
        let answers = [
            rr(&owner, A, &[192, 0, 2, 1]),
            rr(QNAME, A, &[192, 0, 2, 2]),
        ];
        let got = parse_reply(&reply(OK, &wire("www.example.com"), A, &answers)).unwrap();
        assert_eq!(
            (got.id, got.rcode, got.truncated, got.qtype),
            (0xbeef, 0, false, A)
        );
        assert_eq!(got.qname, "www.example.com");
        assert_eq!(got.addrs, ips(&["192.0.2.1", "192.0.2.2"]));
    }

    #[test]
    fn aaaa_record() {
        let v6: [u8; 16] = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let answers = [rr(QNAME, AAAA, &v6), rr(QNAME, A, &[192, 0, 2, 1])];
        let got = parse_reply(&reply(OK, &wire("host.example"), AAAA, &answers)).unwrap();
        assert_eq!(got.addrs, ips(&["2001:db8::1"]));
    }

    /// www -> b (compressed against the question) -> c, answered address first.
    fn cname_chain() -> Vec<u8> {
        let answers = [
            rr(&wire("c.example.net"), A, &[198, 51, 100, 7]),
            rr(&[1, b'b', 0xc0, 16], CNAME, &wire("c.example.net")),
            rr(QNAME, CNAME, &[1, b'B', 0xc0, 16]), // b.example.com
        ];
        reply(OK, &wire("www.example.com"), A, &answers)
    }

    #[test]
    fn cname_chain_in_any_order() {
        assert_eq!(
            parse_reply(&cname_chain()).unwrap().addrs,
            ips(&["198.51.100.7"])
        );
    }

    #[test]
    fn cname_loop_stops_the_walk() {
        let answers = [
            rr(QNAME, CNAME, &wire("x.example")),
            rr(&wire("x.example"), CNAME, &wire("a.example")),
            rr(&wire("x.example"), A, &[192, 0, 2, 9]),
        ];
        let got = parse_reply(&reply(OK, &wire("a.example"), A, &answers)).unwrap();
        assert_eq!(got.addrs, ips(&["192.0.2.9"]));
    }

    #[test]
    fn records_of_other_owners_classes_and_types_are_ignored() {
        let answers = [
            rr(&wire("evil.example"), A, &[203, 0, 113, 1]),
            record(QNAME, 3, A, &[203, 0, 113, 2]), // class CH
            rr(QNAME, 16, b"\x05hello"),            // TXT
            rr(QNAME, AAAA, &[0; 16]),
            rr(QNAME, A, &[192, 0, 2, 3]),
        ];
        let got = parse_reply(&reply(OK, &wire("a.example"), A, &answers)).unwrap();
        assert_eq!(got.addrs, ips(&["192.0.2.3"]));
    }

    #[test]
    fn odd_bytes_in_names_are_escaped() {
        let got = parse_reply(&reply(OK, b"\x03A.\x1b\x02\xc3\xa9\0", A, &[])).unwrap();
        assert_eq!(got.qname, "a\\046\\027.\\195\\169");
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_errors() {
        let what = |owner: &[u8]| {
            let answer = rr(owner, A, &[1; 4]);
            parse_reply(&reply(OK, &wire("a.example"), A, &[answer]))
                .unwrap_err()
                .what
        };
        let at = 12 + wire("a.example").len() + 4; // the first record's owner
        let to = |p: usize| [0xc0 | (p >> 8) as u8, p as u8];
        let backwards = "compression pointer not backwards";
        assert_eq!(what(&to(at)), backwards); // to itself
        assert_eq!(what(&to(at + 2)), backwards); // forwards
        assert_eq!(what(&[&[1, b'x'][..], &to(at)].concat()), backwards); // a loop through a label
        assert_eq!(what(&[0x40]), "unknown label type");
        assert_eq!(what(&[0x80]), "unknown label type");
    }

    #[test]
    fn every_prefix_of_a_reply_is_an_error() {
        let whole = cname_chain();
        for n in 0..whole.len() {
            assert!(parse_reply(&whole[..n]).is_err(), "{n} bytes");
        }
    }

    #[test]
    fn nxdomain_and_truncation_are_reported() {
        let got = parse_reply(&reply(0x8183, &wire("nope.example"), A, &[])).unwrap();
        assert_eq!((got.rcode, got.addrs.len()), (3, 0));
        // TC with the answer section cut: ANCOUNT says 1, no record follows.
        let mut cut = reply(0x8380, &wire("big.example"), A, &[]);
        cut[7] = 1;
        assert!(parse_reply(&cut).unwrap().truncated);
    }

    #[test]
    fn queries_and_bad_headers_are_refused() {
        let packet = query(7, "a.example", A).unwrap();
        assert_eq!(
            parse_reply(&packet).unwrap_err().to_string(),
            "not a reply (QR is 0) at byte 2"
        );
        let mut two = reply(OK, &wire("a.example"), A, &[]);
        two[5] = 2;
        assert_eq!(parse_reply(&two).unwrap_err().at, 4);
    }
}
