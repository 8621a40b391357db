//! The private links' frame reader ([`p2pchat::noise::frame`]) on arbitrary bytes,
//! fed whole and in pieces: it must never panic, never hand out a frame outside
//! its limits, never hold more than one frame, and how TCP happened to split the
//! bytes must change nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::noise::frame::{FrameReader, HEADER, MAX_FRAME};

/// Every frame from `chunks`, and the error that stopped the reader, if any.
fn frames<'a>(
    min: usize,
    max: usize,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> (Vec<Vec<u8>>, Option<String>) {
    let mut r = FrameReader::new(min, max);
    let mut out = Vec::new();
    for mut chunk in chunks {
        loop {
            match r.feed(&mut chunk) {
                Ok(Some(f)) => {
                    assert!((min..=max).contains(&f.len()), "{} outside {min}..={max}", f.len());
                    out.push(f.to_vec());
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
            assert!(r.buffered() <= HEADER + max);
        }
        assert!(chunk.is_empty(), "a piece was not used up");
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b, split], stream)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max = usize::from(u16::from_be_bytes([a, b])).min(MAX_FRAME);
    let min = usize::from(split) % (max + 1);
    let whole = frames(min, max, std::iter::once(stream));
    let size = usize::from(split % 64) + 1;
    let pieces = frames(min, max, stream.chunks(size));
    assert_eq!(whole, pieces, "the split into reads of {size} changed the framing");
});
