//! The peer document as a servant reads it ([`p2pchat::wire::peerdoc`]): framing by
//! `document_end`, then `parse`, then the servant's own keeping of the list; and the same
//! bytes as a versioned answer ([`p2pchat::wire::delta`]): framed, parsed, named and
//! applied to a list. Nothing panics; a document that parses renders back to the
//! same peers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::wire::delta;
use p2pchat::wire::peerdoc::{document_end, parse, PeerDoc};

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'<') {
        if let Some(end) = delta::answer_end(data) {
            assert!(end <= data.len());
        }
    }
    let answer_text = String::from_utf8_lossy(data);
    let _ = delta::names(&answer_text);
    if let Ok(answer) = delta::parse(&answer_text) {
        let mut list = Vec::new();
        let _ = delta::update(&mut list, Some(1.into()), answer);
    }
    if let Some(end) = document_end(data) {
        assert!(end <= data.len());
        assert!(data[..end].ends_with(b"</peers>") || data[..end].ends_with(b"<peers/>"));
    }
    let text = String::from_utf8_lossy(data);
    let Ok(peers) = parse(&text) else {
        return;
    };
    // The servant's own keeping of the list: capped, one entry per address, at
    // most one `me`, its invariants checked as it goes.
    if let Ok(list) = p2pchat::servant::replay([&*text], 64) {
        assert!(list.len() <= 64 && list.len() <= peers.len());
        for (k, p) in list.iter().enumerate() {
            assert!(
                !list[..k].iter().any(|q| q.addr() == p.addr()),
                "a duplicate survived"
            );
        }
        assert!(
            list.iter().filter(|p| p.me).count() <= 1,
            "two entries are me"
        );
    }
    // What parses renders back the same, through the manager's own renderer.
    let mut offsets: Vec<usize> = peers.iter().map(|p| p.offset).collect();
    offsets.sort_unstable();
    offsets.dedup();
    if offsets.len() != peers.len() || offsets.last().is_some_and(|&o| o > 4096) {
        return;
    }
    let mut doc = PeerDoc::new();
    for p in &peers {
        doc.add(p.ip, p.port, p.offset);
        doc.set_relay(p.offset, p.relay);
        doc.set_key(p.offset, p.key.as_ref());
    }
    let asker = peers.iter().find(|p| p.me).map_or(usize::MAX, |p| p.offset);
    let again = parse(std::str::from_utf8(&doc.render_for(asker)).unwrap()).unwrap();
    let key = |v: &[p2pchat::wire::peerdoc::Peer]| {
        v.iter()
            .map(|p| (p.ip, p.port, p.offset, p.relay, p.key))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&peers), key(&again));
});
