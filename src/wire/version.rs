//! How a version is written on the wire: `N` for a manager alone, `E.N` in a
//! cluster (`docs/CLUSTER.md`), E being 16 lowercase hex digits that name the
//! history the N counts in. A servant that fails over to another manager brings
//! a version from another history; the differing E tells the new manager to send
//! the whole document rather than a delta from a number that means something else
//! there.
//!
//! The epoch is the daemon's (one thread, one manager), set once at start; zero,
//! the default, is a manager alone and every byte as before.

use std::cell::Cell;

use super::render::push_number;

thread_local! {
    static EPOCH: Cell<u64> = const { Cell::new(0) };
}

/// Longest version a request may carry: `E.N` with N at most 20 digits.
pub const MAX_LEN: usize = 16 + 1 + 20;

/// From now on this thread's versions are written `E.N` (0: plain `N`).
pub fn set_epoch(epoch: u64) {
    EPOCH.with(|e| e.set(epoch));
}

pub fn epoch() -> u64 {
    EPOCH.with(Cell::get)
}

/// Appends `version` as the wire writes it.
pub fn push(out: &mut Vec<u8>, version: u64) {
    let epoch = epoch();
    if epoch != 0 {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend((0..16).rev().map(|k| HEX[(epoch >> (4 * k)) as usize & 15]));
        out.push(b'.');
    }
    push_number(out, version as usize);
}

/// A version a servant sent, as this manager's own number: `Some(N)` when it is
/// one of ours, `Some(0)` (it has none we know: the whole document) when it is
/// well formed but from another epoch, or has an epoch when we have none, or none
/// when we have one; `None` when it is no version at all.
pub fn parse(text: &[u8]) -> Option<u64> {
    let (epoch, n) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => {
            let e = &text[..dot];
            let hex = e.len() == 16 && e.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            let e = std::str::from_utf8(e).ok().filter(|_| hex)?;
            (u64::from_str_radix(e, 16).ok()?, &text[dot + 1..])
        }
        None => (0, text),
    };
    if n.is_empty() || n.len() > 20 || !n.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(n).ok()?.parse().ok()?;
    Some(if epoch == self::epoch() { n } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_without_an_epoch_and_prefixed_with_one() {
        set_epoch(0);
        let mut out = Vec::new();
        push(&mut out, 42);
        assert_eq!(out, b"42");
        assert_eq!(parse(b"42"), Some(42));
        assert_eq!(parse(b"00000000000000ab.42"), Some(0), "an epoch we lack");
        set_epoch(0xab);
        out.clear();
        push(&mut out, 42);
        assert_eq!(out, b"00000000000000ab.42");
        assert_eq!(parse(b"00000000000000ab.42"), Some(42));
        assert_eq!(parse(b"00000000000000ac.42"), Some(0), "another epoch");
        assert_eq!(parse(b"42"), Some(0), "no epoch while we have one");
        for bad in [
            &b""[..],
            b"x",
            b"ab.1",
            b"00000000000000AB.1",
            b"1.",
            b"1.2.3",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        set_epoch(0);
    }
}
