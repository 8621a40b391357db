//! Numbers and addresses as the manager's documents write them: straight into
//! the output buffer, without `core::fmt`. The peer document, its deltas and the
//! `<relay>` element are all rendered from these.

use std::net::IpAddr;

/// Writes an address as text without `core::fmt` (a sixth of a join's instructions
/// went to formatting the address). IPv6 is rare enough to go through `Display`,
/// into a stack buffer; addresses never hold markup, so nothing needs escaping.
pub(super) fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (k, octet) in v4.octets().into_iter().enumerate() {
                if k > 0 {
                    out.push(b'.');
                }
                push_number(out, octet as usize);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let mut text = [0u8; 64];
            let mut cursor = std::io::Cursor::new(&mut text[..]);
            let _ = write!(cursor, "{v6}");
            let n = cursor.position() as usize;
            out.extend_from_slice(&text[..n]);
        }
    }
}

pub(super) fn push_number(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_render_as_display_does() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "255.10.0.99",
            "::1",
            "fe80::1:2",
            "2001:db8::ff00:42:8329",
        ] {
            let mut out = Vec::new();
            push_ip(&mut out, ip(text));
            assert_eq!(out, ip(text).to_string().as_bytes());
        }
    }

    #[test]
    fn numbers_render_without_allocating_strings() {
        let mut out = Vec::new();
        for n in [0usize, 7, 10, 65535, usize::MAX] {
            out.clear();
            push_number(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
