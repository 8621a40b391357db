//! The RESP2 reply reader ([`p2pchat::redis::resp`]) on arbitrary bytes fed in
//! arbitrary splits: it never panics, nothing it returns breaks its small caps,
//! every whole reply re-encodes to exactly the bytes it was read from, and the
//! same bytes fed whole give the same replies and the same error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::redis::resp::{Limits, Reader, Reply, RespError};

const LIMITS: Limits = Limits {
    max_bulk: 1024,
    max_array: 64,
    max_depth: 4,
    max_line: 256,
};

/// Depth and lengths within the caps.
fn within(reply: &Reply, depth: usize) {
    match reply {
        Reply::Bulk(Some(b)) => assert!(b.len() <= LIMITS.max_bulk),
        Reply::Simple(l) | Reply::Error(l) => assert!(l.len() <= LIMITS.max_line),
        Reply::Array(Some(items)) => {
            assert!(depth < LIMITS.max_depth && items.len() <= LIMITS.max_array);
            items.iter().for_each(|i| within(i, depth + 1));
        }
        _ => {}
    }
}

fn read(data: &[u8], cuts: &[usize]) -> (Vec<Reply>, Option<RespError>, Vec<u8>) {
    let mut r = Reader::new(LIMITS);
    let (mut replies, mut encoded) = (Vec::new(), Vec::new());
    let mut from = 0;
    for &cut in cuts.iter().chain([data.len()].iter()) {
        r.feed(&data[from..cut.max(from)]);
        from = cut.max(from);
        while let Some(next) = r.next() {
            match next {
                Ok(reply) => {
                    within(&reply, 0);
                    reply.encode(&mut encoded);
                    replies.push(reply);
                }
                Err(e) => return (replies, Some(e), encoded),
            }
        }
    }
    (replies, None, encoded)
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks the split points; the rest is what the server sent.
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let step = usize::from(seed % 16) + 1;
    let cuts: Vec<usize> = (step..data.len()).step_by(step).collect();
    let (replies, error, encoded) = read(data, &cuts);
    assert_eq!(&data[..encoded.len()], &encoded[..], "re-encoding differs");
    let whole = read(data, &[]);
    assert_eq!((replies, error), (whole.0, whole.1), "the split changed the outcome");
});
