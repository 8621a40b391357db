//! What Redis says about members, read strictly: a member's value in the
//! `:members` hash and the stream's entries. Redis is trusted like the manager,
//! but a value some other program wrote there, or one cut short, must not become
//! a member: anything malformed is an error for the caller to log and skip.

use std::net::IpAddr;

use crate::noise::PublicKey;
use crate::redis::Reply;
use crate::wire::name;
use crate::wire::relay::Relay;

/// Offsets above this are refused: the control array is a vector, and a
/// garbage offset of four billion would allocate for every slot below it.
pub(super) const MAX_OFFSET: usize = 1 << 20;

/// A member as Redis lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    pub offset: usize,
    pub manager: String,
    pub ip: IpAddr,
    pub port: u16,
    pub name: Option<String>,
    /// On a private network, the key it proved (`key:KEY` in place of a token).
    pub key: Option<PublicKey>,
}

/// One change from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// `tag`: what the joining manager numbered its request (0: none), so that
    /// it knows which of its connections the entry is.
    Join { listed: Listed, tag: u64 },
    /// A servant resumed on `manager` (it had failed over from `from`): the entry
    /// and the document are as they were; only who serves it changed.
    Move {
        offset: usize,
        manager: String,
        from: String,
    },
    /// The member left; `manager` served it, `by` removed it (itself, or a
    /// manager that reaped it).
    Leave {
        offset: usize,
        manager: String,
        by: String,
    },
    Name {
        offset: usize,
        manager: String,
        name: Option<String>,
    },
    /// What the member's `<relay>` shows now (`super::relay`).
    Relay { offset: usize, relay: Option<Relay> },
    /// The member said `can relay`.
    CanRelay { offset: usize },
    /// The member at `from` cannot reach the one at `offset`.
    Complain { offset: usize, from: usize },
}

pub(super) fn offset(text: &[u8]) -> Result<usize, String> {
    std::str::from_utf8(text)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .filter(|&o| (1..=MAX_OFFSET).contains(&o))
        .ok_or_else(|| format!("offset {}", shown(text)))
}

fn manager(text: &[u8]) -> Result<String, String> {
    match text.len() == 16 && text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        true => Ok(String::from_utf8_lossy(text).into_owned()),
        false => Err(format!("manager id {}", shown(text))),
    }
}

fn listed_name(text: &[u8]) -> Result<Option<String>, String> {
    name::admit(text)
        .map(|n| n.map(str::to_string))
        .map_err(|_| format!("name {}", shown(text)))
}

/// A member's proven key, base64; empty (an open network's, or an entry from
/// before keys were kept): none.
fn key(text: &[u8]) -> Result<Option<PublicKey>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    (std::str::from_utf8(text)
        .ok()
        .and_then(|t| PublicKey::parse(t).ok()))
    .map(Some)
    .ok_or_else(|| format!("key {}", shown(text)))
}

fn ip(text: &[u8]) -> Result<IpAddr, String> {
    (std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()))
        .ok_or_else(|| format!("address {}", shown(text)))
}

fn port(text: &[u8]) -> Result<u16, String> {
    (std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()))
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("port {}", shown(text)))
}

/// `MANAGER IP PORT TOKEN NAME` (NAME may be empty), the value at `offset`.
pub(super) fn member(o: &[u8], value: &[u8]) -> Result<Listed, String> {
    let mut fields = value.splitn(5, |&b| b == b' ');
    let mut next = || fields.next().unwrap_or_default();
    let (m, a, p, token, n) = (next(), next(), next(), next(), next());
    Ok(Listed {
        offset: offset(o)?,
        manager: manager(m)?,
        ip: ip(a)?,
        port: port(p)?,
        name: listed_name(n)?,
        key: key(token.strip_prefix(b"key:").unwrap_or_default())?,
    })
}

/// The entries of an `XREAD` reply, each with its id: a change, or why it is
/// none. A reply of another shape is an error as a whole.
/// Each change comes with the cluster version it made (None: it changes no
/// document).
pub(super) type Entries = Vec<(Vec<u8>, Result<(Option<u64>, Change), String>)>;

pub(super) fn entries(reply: &Reply) -> Result<Entries, String> {
    let Reply::Array(streams) = reply else {
        return Err("an XREAD reply that is no array".into());
    };
    let mut out = Vec::new();
    for stream in streams.iter().flatten() {
        let Reply::Array(Some(pair)) = stream else {
            return Err("a stream that is no pair".into());
        };
        let Some(Reply::Array(Some(items))) = pair.get(1) else {
            return Err("a stream without entries".into());
        };
        for item in items {
            let Reply::Array(Some(e)) = item else {
                return Err("an entry that is no array".into());
            };
            let (Some(id), Some(Reply::Array(Some(fields)))) =
                (e.first().and_then(Reply::bytes), e.get(1))
            else {
                return Err("an entry without id or fields".into());
            };
            out.push((id.to_vec(), change(fields)));
        }
    }
    Ok(out)
}

/// A change, with the version it made: required of every change to the
/// document; `canrelay` and `complain` change none and carry none.
fn change(fields: &[Reply]) -> Result<(Option<u64>, Change), String> {
    let get = |key: &[u8]| -> &[u8] {
        (fields.chunks_exact(2))
            .find(|kv| kv[0].bytes() == Some(key))
            .and_then(|kv| kv[1].bytes())
            .unwrap_or_default()
    };
    let o = offset(get(b"o"))?;
    let change = match get(b"op") {
        b"join" => Change::Join {
            listed: Listed {
                offset: o,
                manager: manager(get(b"m"))?,
                ip: ip(get(b"ip"))?,
                port: port(get(b"port"))?,
                name: listed_name(get(b"name"))?,
                key: key(get(b"key"))?,
            },
            tag: number(get(b"t")).unwrap_or(0),
        },
        b"move" => Change::Move {
            offset: o,
            manager: manager(get(b"m"))?,
            from: String::from_utf8_lossy(get(b"from")).into_owned(),
        },
        b"leave" => Change::Leave {
            offset: o,
            manager: String::from_utf8_lossy(get(b"m")).into_owned(),
            by: String::from_utf8_lossy(get(b"by")).into_owned(),
        },
        b"name" => Change::Name {
            offset: o,
            manager: manager(get(b"m"))?,
            name: listed_name(get(b"name"))?,
        },
        b"relay" => Change::Relay {
            offset: o,
            relay: relay(get(b"relay"))?,
        },
        b"canrelay" => return Ok((None, Change::CanRelay { offset: o })),
        b"complain" => {
            let from = offset(get(b"from"))?;
            return Ok((None, Change::Complain { offset: o, from }));
        }
        other => return Err(format!("operation {}", shown(other))),
    };
    let v = number(get(b"v")).ok_or_else(|| format!("version {}", shown(get(b"v"))))?;
    Ok((Some(v), change))
}

/// A decimal number, strictly: digits only, no sign, no overflow.
pub(super) fn number(text: &[u8]) -> Option<u64> {
    (!text.is_empty() && text.len() <= 20 && text.iter().all(u8::is_ascii_digit))
        .then(|| std::str::from_utf8(text).ok()?.parse().ok())
        .flatten()
}

/// An epoch as Redis keeps it: 16 lowercase hex digits, not zero.
pub(super) fn epoch(text: &[u8]) -> Option<u64> {
    let hex = text.len() == 16 && text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    hex.then(|| u64::from_str_radix(std::str::from_utf8(text).ok()?, 16).ok())
        .flatten()
        .filter(|&e| e != 0)
}

/// A `<relay>` as the relay script keeps it: `IP:PORT`, `none`, or empty
/// (none shown).
pub(super) fn relay(text: &[u8]) -> Result<Option<Relay>, String> {
    match text {
        b"" => Ok(None),
        b"none" => Ok(Some(Relay::Nobody)),
        _ => (std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()))
            .map(|a| Some(Relay::Via(a)))
            .ok_or_else(|| format!("relay {}", shown(text))),
    }
}

/// A stream id `MS-SEQ` as a pair that orders as the stream does.
pub(super) fn stream_id(id: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(id).ok()?;
    let (ms, seq) = text.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Untrusted bytes for the log: escaped and cut short.
fn shown(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(&text[..text.len().min(40)]);
    format!("{:?}", crate::text::escape(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &str) -> Reply {
        Reply::Bulk(Some(b.as_bytes().to_vec()))
    }

    #[test]
    fn a_member_value_is_read_strictly() {
        let m = member(b"3", b"00112233445566ff 10.0.0.1 2230 abc alice").unwrap();
        assert_eq!(
            (m.offset, m.port, m.name.as_deref()),
            (3, 2230, Some("alice"))
        );
        let unnamed = member(b"3", b"00112233445566ff 10.0.0.1 2230 abc ").unwrap();
        assert_eq!(unnamed.name, None);
        for (o, v) in [
            ("0", "00112233445566ff 10.0.0.1 2230 abc "),
            ("99999999999", "00112233445566ff 10.0.0.1 2230 abc "),
            ("3", "somebody 10.0.0.1 2230 abc "),
            ("3", "00112233445566ff ten 2230 abc "),
            ("3", "00112233445566ff 10.0.0.1 0 abc "),
            ("3", "00112233445566ff 10.0.0.1"),
            ("3", ""),
        ] {
            assert!(member(o.as_bytes(), v.as_bytes()).is_err(), "{o} {v}");
        }
    }

    #[test]
    fn stream_entries_become_changes_and_garbage_does_not() {
        let entry = |id: &str, kv: &[&str]| {
            Reply::Array(Some(vec![
                bulk(id),
                Reply::Array(Some(kv.iter().map(|s| bulk(s)).collect())),
            ]))
        };
        let reply = Reply::Array(Some(vec![Reply::Array(Some(vec![
            bulk("{p}:log"),
            Reply::Array(Some(vec![
                entry(
                    "1-1",
                    &[
                        "v",
                        "1",
                        "op",
                        "join",
                        "o",
                        "1",
                        "m",
                        "00112233445566ff",
                        "ip",
                        "::1",
                        "port",
                        "2224",
                        "name",
                        "",
                    ],
                ),
                entry(
                    "1-2",
                    &[
                        "v",
                        "2",
                        "op",
                        "leave",
                        "o",
                        "1",
                        "m",
                        "00112233445566ff",
                        "by",
                        "x",
                    ],
                ),
                entry("1-3", &["op", "explode", "o", "1"]),
                entry(
                    "1-4",
                    &[
                        "op",
                        "join",
                        "o",
                        "1",
                        "m",
                        "00112233445566ff",
                        "ip",
                        "::1",
                        "port",
                        "99999",
                    ],
                ),
                entry("1-5", &["op", "complain", "o", "2", "from", "1"]),
                entry("1-6", &["op", "relay", "o", "2", "relay", "none"]),
            ])),
        ]))]));
        let got = entries(&reply).unwrap();
        assert_eq!(got.len(), 6);
        assert!(
            matches!(&got[0].1, Ok((Some(1), Change::Join { listed: l, tag: 0 })) if l.port == 2224 && l.offset == 1)
        );
        assert!(matches!(
            &got[1].1,
            Ok((Some(2), Change::Leave { offset: 1, .. }))
        ));
        assert!(got[2].1.is_err() && got[3].1.is_err());
        // No version: a complaint changes no document; a relay must carry one.
        assert!(matches!(
            &got[4].1,
            Ok((None, Change::Complain { offset: 2, from: 1 }))
        ));
        assert!(got[5].1.is_err());
        assert!(entries(&Reply::Integer(1)).is_err());
        assert_eq!(entries(&Reply::Array(None)).unwrap(), vec![]);
        assert_eq!(stream_id(b"12-3"), Some((12, 3)));
        assert_eq!(stream_id(b"x"), None);
    }
}
