//! The servant's chat reader ([`p2pchat::servant::chat`]) on arbitrary bytes, fed
//! whole and in pieces: it never panics, never holds more than one message's cap,
//! every message is one line within the cap, and the split changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::servant::chat::{ChatReader, MAX_MESSAGE};

fn frame<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Vec<(Vec<u8>, bool)> {
    let mut reader = ChatReader::default();
    let mut out = Vec::new();
    let mut check = |msg: &[u8], truncated: bool| {
        assert!(msg.len() <= MAX_MESSAGE);
        assert!(!msg.contains(&b'\n'));
        out.push((msg.to_vec(), truncated));
    };
    for chunk in chunks {
        reader.feed(chunk, &mut check);
        assert!(reader.buffered() <= MAX_MESSAGE, "{}", reader.buffered());
    }
    reader.finish(&mut check);
    assert_eq!(reader.buffered(), 0);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    // Long lines matter here: repeat the input so the cap is reached from small inputs.
    let times = usize::from(split >> 5) * 9000 / stream.len().max(1) + 1;
    let stream = stream.repeat(times.min(1 << 17));
    let size = usize::from(split & 31) * 97 + 1;
    let whole = frame(std::iter::once(&stream[..]));
    let pieces = frame(stream.chunks(size));
    assert_eq!(whole, pieces, "reads of {size} bytes framed differently");
});
