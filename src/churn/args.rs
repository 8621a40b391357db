//! Values churn takes on its command line that are more than a number: bytes
//! written with escapes (`--request 'PING\r\n'`), lists and ranges of source
//! addresses (`--bind 127.0.0.2-127.0.0.40`), and a target whose port may be left
//! out. Bytes from a server are shown back in the same escaped form, so what a
//! summary quotes can be pasted into `--expect`, and no server's bytes reach a
//! terminal raw.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Most source addresses `--bind` may name: each is a socket address per
/// connection, and a typo such as `127.0.0.1-127.255.0.0` should not allocate
/// millions.
pub const MAX_SOURCES: usize = 65_536;

/// Bytes from `text`, where `\r`, `\n`, `\t`, `\0`, `\\` and `\xNN` stand for
/// the bytes they name; every other character is itself (UTF-8).
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("\\x needs two hex digits, not {hex:?}"))?;
                out.push(byte);
            }
            Some(other) => {
                return Err(format!(
                    "unknown escape \\{other} (use \\r, \\n, \\t, \\0, \\\\ or \\xNN)"
                ))
            }
            None => return Err("ends in a lone backslash (write \\\\ for one)".into()),
        }
    }
    Ok(out)
}

/// `bytes` in the form [`unescape`] reads: printable ASCII as itself, the rest escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// The first `max` bytes escaped and quoted, with `...` when there were more.
pub fn show(bytes: &[u8], max: usize) -> String {
    let more = if bytes.len() > max { "..." } else { "" };
    format!("\"{}\"{more}", escape(&bytes[..bytes.len().min(max)]))
}

/// Source addresses from a comma-separated list of addresses and inclusive ranges:
/// `127.0.0.2`, `127.0.0.2-127.0.0.40`, `127.0.0.2,127.0.0.9-127.0.0.12`, `::1`.
pub fn sources(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (ip(a)?, ip(b)?),
            None => (ip(part)?, ip(part)?),
        };
        let (lo, hi, v4) = match (from, to) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u128::from(u32::from(a)), u128::from(u32::from(b)), true)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), false),
            _ => return Err(format!("{part:?} mixes IPv4 and IPv6")),
        };
        if hi < lo {
            return Err(format!("{part:?} runs backwards"));
        }
        if hi - lo >= (MAX_SOURCES - out.len()) as u128 {
            return Err(format!("more than {MAX_SOURCES} addresses"));
        }
        out.extend((lo..=hi).map(|n| {
            if v4 {
                IpAddr::from((n as u32).to_be_bytes())
            } else {
                IpAddr::from(n.to_be_bytes())
            }
        }));
    }
    Ok(out)
}

fn ip(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{:?} is not an IP address", text.trim()))
}

/// `HOST:PORT`, `[V6]:PORT`, or a bare `HOST` or IPv6 address, which gets
/// `default_port`; names are resolved, the first address used.
pub fn target(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let text = text.trim();
    let has_port = match text.rsplit_once(':') {
        // `::1` is an address without a port; `[::1]:85` has one.
        Some((host, port)) => {
            (!host.contains(':') || host.ends_with(']')) && port.parse::<u16>().is_ok()
        }
        None => false,
    };
    let resolved = if has_port {
        text.to_socket_addrs()
    } else {
        let host = text.trim_start_matches('[').trim_end_matches(']');
        (host, default_port).to_socket_addrs()
    };
    resolved
        .map_err(|e| format!("{text:?} does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let bytes = unescape(r"PING\r\n\x00\xffé\\t").unwrap();
        assert_eq!(bytes, b"PING\r\n\x00\xff\xc3\xa9\\t");
        assert_eq!(escape(&bytes), r"PING\r\n\x00\xff\xc3\xa9\\t");
        assert_eq!(unescape(&escape(&bytes)).unwrap(), bytes);
        assert_eq!(escape(b"\x1b]52;c;\x07"), r"\x1b]52;c;\x07");
        assert!(unescape(r"\q").unwrap_err().contains("unknown escape"));
        assert!(unescape(r"\x4").unwrap_err().contains("two hex digits"));
        assert!(unescape("a\\").unwrap_err().contains("lone backslash"));
        assert_eq!(show(b"abcdef", 3), "\"abc\"...");
    }

    #[test]
    fn sources_take_lists_and_ranges() {
        let got = sources("127.0.0.2-127.0.0.4, 10.0.0.255-10.0.1.0,::1").unwrap();
        let want: Vec<IpAddr> = [
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.4",
            "10.0.0.255",
            "10.0.1.0",
            "::1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(got, want);
        assert!(sources("127.0.0.9-127.0.0.2")
            .unwrap_err()
            .contains("backwards"));
        assert!(sources("127.0.0.1-::1").unwrap_err().contains("mixes"));
        assert!(sources("127.0.0.0-127.255.255.255")
            .unwrap_err()
            .contains("more than"));
        assert!(sources("localhost").unwrap_err().contains("not an IP"));
    }

    #[test]
    fn targets_default_their_port() {
        let t = |s| target(s, 85).unwrap();
        assert_eq!(t("127.0.0.1"), "127.0.0.1:85".parse().unwrap());
        assert_eq!(t("127.0.0.1:8585"), "127.0.0.1:8585".parse().unwrap());
        assert_eq!(t("::1"), "[::1]:85".parse().unwrap());
        assert_eq!(t("[::1]"), "[::1]:85".parse().unwrap());
        assert_eq!(t("[::1]:6379"), "[::1]:6379".parse().unwrap());
        assert_eq!(t("localhost:9").port(), 9);
        assert!(target("no such host.invalid", 85).is_err());
    }
}
