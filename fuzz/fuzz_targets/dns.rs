//! The resolver's DNS codec ([`p2pchat::resolve::dns`]) on arbitrary bytes: a reply
//! never panics the parser, and what it accepts is sane (addresses of the asked
//! family, a name with no uppercase or control bytes). The same bytes, read as a
//! name, either are refused by `query` or make a query whose question parses back
//! (as a reply, QR set) to the same name, lowercased, without its trailing dot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::resolve::dns::{parse_reply, query, A, AAAA};

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = parse_reply(data) {
        let family_ok = |ip: &std::net::IpAddr| match reply.qtype {
            A => ip.is_ipv4(),
            AAAA => ip.is_ipv6(),
            _ => false,
        };
        assert!(reply.addrs.iter().all(family_ok), "{reply:?}");
        assert!(!reply.truncated || reply.addrs.is_empty(), "{reply:?}");
        let odd = |b: u8| b.is_ascii_uppercase() || !(0x20..0x7f).contains(&b);
        assert!(!reply.qname.bytes().any(odd), "{reply:?}");
    }

    let name = String::from_utf8_lossy(&data[..data.len().min(300)]);
    let (id, qtype) = match data.len() % 2 {
        0 => (data.len() as u16, A),
        _ => (!(data.len() as u16), AAAA),
    };
    let Ok(mut packet) = query(id, &name, qtype) else {
        return;
    };
    packet[2] |= 0x80;
    let reply = parse_reply(&packet).expect("our own query parses as a reply");
    let dotless = name.strip_suffix('.').unwrap_or(&name);
    assert_eq!(reply.qname, dotless.to_ascii_lowercase());
    assert_eq!((reply.id, reply.qtype, reply.rcode), (id, qtype, 0));
    assert!(reply.addrs.is_empty() && !reply.truncated);
});
