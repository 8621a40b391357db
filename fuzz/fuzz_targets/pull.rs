//! The pull framing ([`p2pchat::wire::pull`]) on arbitrary bytes: parsing never
//! panics; whatever parses frames again to the same bytes' meaning; and any origin,
//! name and text framed reads back as they were. The same for the private lines a
//! frame's text may be ([`p2pchat::wire::private`]), direct or for a puller.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use p2pchat::wire::private::{self, Private};
use p2pchat::wire::pull::{frame, parse, Origin, MAX_HEAD};

/// An origin made from the input's first bytes.
fn origin(bytes: &[u8]) -> Origin {
    let b = |k: usize| bytes.get(k).copied().unwrap_or(0);
    let ip = if b(0) & 1 == 0 {
        IpAddr::V4(Ipv4Addr::new(b(1), b(2), b(3), b(4)))
    } else {
        let mut octets = [0u8; 16];
        for (k, o) in octets.iter_mut().enumerate() {
            *o = b(1 + k);
        }
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let ip = p2pchat::net::canonical_ip(ip);
    match b(0) & 2 {
        0 => Origin::Ip(ip),
        _ => Origin::Listed(SocketAddr::new(ip, u16::from_be_bytes([b(17), b(18)]))),
    }
}

fuzz_target!(|data: &[u8]| {
    // Any bytes: a frame or an error, never a panic; a frame reframes to itself.
    let line = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
    if let Ok(p) = parse(line) {
        let mut again = Vec::new();
        frame(&mut again, p.origin, p.name, p.text);
        let back = parse(&again[..again.len() - 1]).expect("a reframed frame parses");
        assert_eq!(back, p);
    }
    // Any line as a private one: read or refused, never a panic; what reads back
    // writes again to the same meaning, within the marks' head room.
    match private::read(line) {
        Private::Direct(text) => {
            let again = private::direct(text);
            assert_eq!(private::read(&again[..again.len() - 1]), Private::Direct(text));
        }
        Private::For(to, text) => {
            let again = private::for_puller(to, text);
            assert!(again.len() <= private::MAX_HEAD + text.len() + 1);
            assert_eq!(private::read(&again[..again.len() - 1]), Private::For(to, text));
        }
        Private::No | Private::Bad(_) => {}
    }
    // Built from parts: reads back as they were (a name that is not one, as none).
    let (head, rest) = data.split_at(data.len().min(19));
    let o = origin(head);
    let cut = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let name = std::str::from_utf8(&rest[..cut]).ok();
    let text: Vec<u8> = rest[(cut + 1).min(rest.len())..]
        .iter()
        .copied()
        .filter(|&b| b != b'\n')
        .collect();
    let mut out = Vec::new();
    frame(&mut out, o, name, &text);
    assert!(
        out.len() <= MAX_HEAD + text.len() + 1,
        "{} bytes",
        out.len()
    );
    let p = parse(&out[..out.len() - 1]).expect("a frame parses");
    assert_eq!((p.origin, p.text), (o, &text[..]));
    if let Some(n) = p.name {
        assert_eq!(Some(n), name);
    }
});
