//! The manager's request framer ([`p2pchat::wire::request`]) on arbitrary bytes,
//! fed whole and in pieces: it must never panic, every line it passes on is one
//! line within the limit, and how TCP happened to split the bytes changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::wire::request::{Line, RequestReader};

const MAX_LINE: usize = 64;

#[derive(Debug, PartialEq)]
enum Framed {
    Request,
    RequestSince(u64),
    Complaint(std::net::SocketAddr),
    Offer,
    Name(Vec<u8>),
    Probed(Vec<u8>),
    Listen(u16),
    Tampered(std::net::SocketAddr),
    Resume(usize, Vec<u8>),
    Other(Vec<u8>),
}

/// Feeds `chunks` in order; the framed items, whether a line was too long, the tail.
fn frame<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> (Vec<Framed>, bool, Option<Vec<u8>>) {
    let mut reader = RequestReader::default();
    let mut out = Vec::new();
    for chunk in chunks {
        let fed = reader.feed(chunk, MAX_LINE, |line| {
            out.push(match line {
                Line::NeedsPeerList => Framed::Request,
                Line::NeedsPeerListSince(v) => Framed::RequestSince(v),
                Line::CannotReach(peer) => Framed::Complaint(peer),
                Line::CanRelay => Framed::Offer,
                Line::Name(name) => {
                    assert!(name.len() <= MAX_LINE && !name.contains(&b'\n'), "{name:?}");
                    Framed::Name(name.to_vec())
                }
                Line::Probed(text) => {
                    assert!(!text.is_empty() && text.len() <= 64, "{text:?}");
                    Framed::Probed(text.to_vec())
                }
                Line::CannotListen(port) => {
                    assert!(port > 0);
                    Framed::Listen(port)
                }
                Line::Tampered(relay) => Framed::Tampered(relay),
                Line::Resume(offset, token) => {
                    assert!(!token.is_empty() && token.len() <= MAX_LINE, "{token:?}");
                    assert!(!token.contains(&b'\n'), "{token:?}");
                    Framed::Resume(offset, token.to_vec())
                }
                Line::Other(text) => {
                    assert!(!text.is_empty() && text.len() <= MAX_LINE, "{text:?}");
                    assert!(!text.contains(&b'\n'), "{text:?}");
                    assert!(!text.ends_with(b"\r"), "{text:?}");
                    Framed::Other(text.to_vec())
                }
            })
        });
        if fed.is_err() {
            return (out, true, None);
        }
    }
    let tail = reader.take_tail();
    (out, false, tail)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let whole = frame(std::iter::once(stream));
    let size = usize::from(split % 32) + 1;
    let pieces = frame(stream.chunks(size));
    // A read that ends just after `needs peer list` is a bare request, answered at
    // once: the VB servant sends nothing after it, so the framer cannot wait to
    // see whether ` since N` follows (see `wire::request`). Other splits must not
    // change the framing.
    let ambiguous = (size..stream.len())
        .step_by(size)
        .any(|k| stream[..k].ends_with(b"needs peer list"));
    if !whole.1 && !pieces.1 && !ambiguous {
        assert_eq!(
            whole, pieces,
            "the split into reads of {size} changed the framing"
        );
    }
});
