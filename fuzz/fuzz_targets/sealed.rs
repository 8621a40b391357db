//! The sealed frames a private relay routes ([`p2pchat::wire::sealed`]) and the
//! end-to-end sessions that open them ([`p2pchat::noise::e2e`]), on arbitrary
//! bytes: parsing never panics; a frame that parses encodes back to the same line
//! and names the same keys to the relay; opening it never panics and, the keys
//! being random to the input, never succeeds for data; a frame really sealed
//! with one byte of the input's choosing flipped never opens.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use p2pchat::noise::e2e::{Opener, Sealer};
use p2pchat::noise::Keypair;
use p2pchat::wire::sealed::{addressee, encode, parse, TAG};

fuzz_target!(|data: &[u8]| {
    let bob = Keypair::from_private([7; 32]);
    let line = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let tagged = [TAG, line].concat();
    let mut scratch = Vec::new();
    for l in [line, &tagged[..]] {
        if let Ok(f) = parse(l, &mut scratch) {
            let mut again = Vec::new();
            encode(&f, &mut again);
            assert_eq!(&again[..again.len() - 1], l, "a frame encodes to its own line");
            assert_eq!(addressee(l), Some((f.to, f.from)));
            let mut o = Opener::new(bob.clone());
            if let Ok((_, Some(_))) = o.open(&f, Instant::now(), |_| true) {
                panic!("data opened without its session");
            }
        }
    }
    // A real frame with a byte flipped where the input says: never opens.
    let alice = Keypair::from_private([9; 32]);
    let mut s = Sealer::new(alice);
    let mut out = Vec::new();
    let text = data.get(2..).unwrap_or(&[]);
    s.seal(bob.public(), text, true, Instant::now(), &mut out).unwrap();
    let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut o = Opener::new(bob.clone());
    let mut start = Vec::new();
    let f = parse(lines[0], &mut start).unwrap();
    o.open(&f, Instant::now(), |_| true).unwrap();
    let mut raw = Vec::new();
    let f = parse(lines[1], &mut raw).unwrap();
    let mut body = f.body.to_vec();
    let at = usize::from(u16::from_le_bytes([data.first().copied().unwrap_or(0), data.get(1).copied().unwrap_or(0)]));
    if !body.is_empty() {
        let k = at % body.len();
        body[k] ^= 1 | data.first().copied().unwrap_or(1);
        let mut bad = f;
        bad.body = &body;
        assert!(o.open(&bad, Instant::now(), |_| true).is_err(), "a flipped byte opened");
    }
    assert_eq!(o.open(&f, Instant::now(), |_| true).unwrap().1.as_deref(), Some(text.get(..p2pchat::wire::sealed::MAX_TEXT.min(text.len())).unwrap()));
});
