use super::*;

use std::rc::Rc;

use chunks::CHUNK;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A document with servants at offsets 1, 2, 3 on ports 2224..2226.
fn doc3() -> PeerDoc {
    let mut d = PeerDoc::new();
    d.add(ip("127.0.0.1"), 2224, 1);
    d.add(ip("127.0.0.2"), 2225, 2);
    d.add(ip("::1"), 2226, 3);
    d
}

#[test]
fn renders_the_articles_shape() {
    let mut d = PeerDoc::new();
    d.add(ip("127.0.0.1"), 2224, 1);
    assert_eq!(
        String::from_utf8(d.render_for(99)).unwrap(),
        "<peers><peer><ip>127.0.0.1</ip><port>2224</port><offset>1</offset><me>FALSE</me></peer></peers>\r\n"
    );
    assert_eq!(
        d.entry(1).unwrap(),
        b"<peer><ip>127.0.0.1</ip><port>2224</port><offset>1</offset><me>FALSE</me></peer>"
    );
    assert_eq!(PeerDoc::new().render_for(1), b"<peers></peers>\r\n");
}

#[test]
fn personalising_marks_only_the_asker() {
    let d = doc3();
    for asker in 1..=3 {
        let peers = parse(std::str::from_utf8(&d.render_for(asker)).unwrap()).unwrap();
        let me: Vec<usize> = peers.iter().filter(|p| p.me).map(|p| p.offset).collect();
        assert_eq!(me, vec![asker]);
        assert_eq!(peers.len(), 3);
    }
    assert_eq!(d.byte_len(), d.render_for(7).len());
}

#[test]
fn remove_keeps_join_order_and_positions() {
    let mut d = doc3();
    assert!(d.remove(2));
    assert!(!d.remove(2));
    d.add(ip("127.0.0.9"), 2227, 2);
    let peers = parse(std::str::from_utf8(&d.render_for(3)).unwrap()).unwrap();
    let order: Vec<(usize, u16)> = peers.iter().map(|p| (p.offset, p.port)).collect();
    assert_eq!(order, vec![(1, 2224), (3, 2226), (2, 2227)]);
    assert!(peers[1].me && !peers[0].me && !peers[2].me);
    assert!(d.remove(1) && d.remove(3) && d.remove(2));
    assert!(d.is_empty());
    assert_eq!(d.render_for(1), b"<peers></peers>\r\n");
}

/// What a send in flight holds: this version's chunks, and their bytes now.
fn sending(d: &PeerDoc) -> (Chunks, Vec<u8>) {
    let chunks = d.entries.chunks().clone();
    let bytes = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    (chunks, bytes)
}

fn held_bytes(chunks: &Chunks) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.iter().copied()).collect()
}

#[test]
fn a_snapshot_still_being_sent_is_not_changed_under_it() {
    let mut d = doc3();
    let (held, before) = sending(&d);
    d.remove(1);
    d.add(ip("10.0.0.1"), 3000, 1);
    assert_eq!(
        held_bytes(&held),
        before,
        "copy on write kept the old bytes"
    );
    drop(held);
    let ptr = Rc::as_ptr(&d.entries.chunks()[0]);
    d.remove(1);
    assert_eq!(
        Rc::as_ptr(&d.entries.chunks()[0]),
        ptr,
        "no copy when nobody holds the old one"
    );
}

#[test]
fn a_change_copies_only_the_chunk_it_touches() {
    let mut d = PeerDoc::new();
    let n = 5 * CHUNK;
    for offset in 1..=n {
        d.add(ip("127.0.0.1"), 3000 + offset as u16, offset);
    }
    assert_eq!(d.entries.chunks().len(), 5);
    let (held, before) = sending(&d);
    d.set_name(CHUNK + 1, Some("ann")); // the second chunk's first entry
    d.add(ip("127.0.0.2"), 2224, n + 1); // a sixth chunk
    let now = d.entries.chunks();
    let same: Vec<bool> = (0..5).map(|k| Rc::ptr_eq(&held[k], &now[k])).collect();
    assert_eq!(same, [true, false, true, true, true]);
    assert_eq!(held_bytes(&held), before);
    d.check().unwrap();
}

#[test]
fn the_chunked_document_is_what_one_buffer_would_be() {
    // Joins, leaves from anywhere and re-rendered entries, with sends holding
    // old versions, against the document rendered whole from a plain list.
    let mut d = PeerDoc::new();
    let mut model: Vec<(usize, u16, Option<String>)> = Vec::new();
    let mut held = Vec::new();
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for step in 0..3000 {
        let roll = next() % 10;
        if roll < 5 || model.len() < 3 {
            let offset = (1..).find(|o| model.iter().all(|m| m.0 != *o)).unwrap();
            let port = 2224 + (next() % 60000) as u16;
            d.add(ip("127.0.0.1"), port, offset);
            model.push((offset, port, None));
        } else if roll < 8 {
            let k = next() % model.len();
            assert!(d.remove(model.remove(k).0));
        } else {
            let k = next() % model.len();
            let name = format!("n{step}");
            assert!(d.set_name(model[k].0, Some(&name)));
            model[k].2 = Some(name);
        }
        if next() % 4 == 0 {
            held.push(sending(&d));
        }
        d.check().unwrap_or_else(|e| panic!("step {step}: {e}"));
    }
    let asker = model[model.len() / 2].0;
    let mut want = String::from("<peers>");
    for (offset, port, name) in &model {
        let me = if *offset == asker { "TRUE" } else { "FALSE" };
        want += &format!(
            "<peer><ip>127.0.0.1</ip><port>{port}</port><offset>{offset}</offset><me>{me}</me>"
        );
        if let Some(n) = name {
            want += &format!("<name>{n}</name>");
        }
        want += "</peer>";
    }
    want += "</peers>\r\n";
    assert_eq!(String::from_utf8(d.render_for(asker)).unwrap(), want);
    assert_eq!(d.byte_len(), want.len() + 1, "FALSE for nobody");
    for (chunks, bytes) in &held {
        assert_eq!(&held_bytes(chunks), bytes, "a held version changed");
    }
}

#[test]
fn a_relay_element_rerenders_one_entry_and_clearing_it_restores_the_bytes() {
    let mut d = doc3();
    let bare = d.render_for(3);
    let relay: std::net::SocketAddr = "203.0.113.10:2224".parse().unwrap();
    let (held, before) = sending(&d);
    assert!(d.set_relay(2, Some(Relay::Via(relay))));
    assert!(d.set_relay(1, Some(Relay::Nobody)));
    assert!(!d.set_relay(9, Some(Relay::Nobody)));
    assert_eq!(
        held_bytes(&held),
        before,
        "the queued snapshot is untouched"
    );
    let text = String::from_utf8(d.render_for(3)).unwrap();
    assert!(text.contains("<offset>2</offset><me>FALSE</me><relay><ip>203.0.113.10</ip><port>2224</port></relay></peer>"), "{text}");
    assert!(
        text.contains("<offset>1</offset><me>FALSE</me><relay>none</relay></peer>"),
        "{text}"
    );
    let peers = parse(&text).unwrap();
    let relays: Vec<_> = peers.iter().map(|p| p.relay).collect();
    assert_eq!(relays, [Some(Relay::Nobody), Some(Relay::Via(relay)), None]);
    assert!(peers[2].me && peers[1].addr().port() == 2225);
    // Personalising still finds `me` in later entries after the lengths changed.
    let for2 = parse(std::str::from_utf8(&d.render_for(2)).unwrap()).unwrap();
    assert!(for2[1].me && !for2[0].me && !for2[2].me);
    assert!(
        !d.set_relay(1, Some(Relay::Nobody)),
        "the same element again"
    );
    assert!(d.set_relay(2, None));
    assert!(d.set_relay(1, None));
    assert_eq!(
        d.render_for(3),
        bare,
        "no relay state renders the article's bytes"
    );
    // Entries after a relayed one are still cut out correctly.
    d.set_relay(1, Some(Relay::Via(relay)));
    assert!(d.remove(2));
    let peers = parse(std::str::from_utf8(&d.render_for(3)).unwrap()).unwrap();
    assert_eq!(peers.len(), 2);
    assert!(peers[1].me && peers[0].relay == Some(Relay::Via(relay)));
}

#[test]
fn a_key_comes_last_and_clearing_it_restores_the_bytes() {
    let mut d = doc3();
    let bare = d.render_for(3);
    let key = PublicKey::from_bytes([7; 32]);
    assert!(d.set_key(2, Some(&key)));
    assert!(d.set_name(2, Some("bob")));
    assert!(d.set_relay(2, Some(Relay::Nobody)));
    assert!(!d.set_key(2, Some(&key)), "the same key again");
    let text = String::from_utf8(d.render_for(3)).unwrap();
    let want = format!(
        "<offset>2</offset><me>FALSE</me><relay>none</relay><name>bob</name><key>{key}</key></peer>"
    );
    assert!(text.contains(&want), "{text}");
    let peers = parse(&text).unwrap();
    assert_eq!(peers[1].key, Some(key));
    assert_eq!((peers[0].key, peers[2].key), (None, None));
    assert!(d.set_name(2, None) && d.set_relay(2, None));
    assert_eq!(d.entry(2).unwrap(), format!("<peer><ip>127.0.0.2</ip><port>2225</port><offset>2</offset><me>FALSE</me><key>{key}</key></peer>").as_bytes());
    assert!(d.set_key(2, None));
    assert_eq!(d.render_for(3), bare, "no key renders the article's bytes");
    let bad = String::from_utf8(d.render_for(3))
        .unwrap()
        .replace("</me></peer>", "</me><key>nope</key></peer>");
    assert!(parse(&bad).unwrap_err().reason.contains("<key>"));
}

#[test]
fn a_new_port_rerenders_one_entry_as_one_change() {
    let mut d = doc3();
    let v = d.version();
    assert!(d.set_port(2, 31000));
    assert!(!d.set_port(2, 31000), "the same port again");
    assert!(!d.set_port(9, 31000), "no such entry");
    assert_eq!(d.version(), v + 1);
    let want = String::from_utf8(doc3().render_for(3))
        .unwrap()
        .replace("<port>2225</port>", "<port>31000</port>");
    assert_eq!(String::from_utf8(d.render_for(3)).unwrap(), want);
    assert!(d.set_port(2, 9));
    let text = String::from_utf8(d.render_for(2)).unwrap();
    assert!(
        text.contains("<port>9</port><offset>2</offset><me>TRUE</me>"),
        "{text}"
    );
    assert_eq!(parse(&text).unwrap()[2].port, 2226);
}

#[test]
fn a_delta_longer_than_the_document_is_the_whole_document() {
    let mut d = PeerDoc::new();
    let ip = "127.0.0.1".parse().unwrap();
    for offset in 1..=3 {
        d.add(ip, 2223 + offset as u16, offset);
    }
    for offset in 1..=3 {
        d.remove(offset);
    }
    d.add(ip, 2227, 1); // version 7
    assert_eq!(d.since(3), Since::Whole, "4 changes for a document of 1");
    assert!(matches!(d.since(6), Since::Delta(_)));
}

#[test]
fn the_versioned_document_is_the_articles_with_a_version() {
    let mut d = PeerDoc::new();
    d.add("127.0.0.1".parse().unwrap(), 2224, 1);
    d.add("127.0.0.2".parse().unwrap(), 2225, 2);
    d.add("::1".parse().unwrap(), 2226, 3);
    for asker in [2, 9] {
        let bare = d.render_for(asker);
        let versioned = d.render_versioned_for(asker);
        assert_eq!(versioned[..19], *b"<peers version=\"3\">");
        assert_eq!(versioned[19..], bare[7..]);
    }
    d.set_relay(1, Some(crate::wire::relay::Relay::Nobody));
    d.remove(3);
    let text = String::from_utf8(d.render_versioned_for(2)).unwrap();
    assert!(text.starts_with("<peers version=\"5\"><peer>"), "{text}");
    assert!(text.ends_with("<me>TRUE</me></peer></peers>\r\n"), "{text}");
    assert_eq!(d.byte_len(), d.render_for(9).len());
}

#[test]
fn a_document_that_holds_still_is_answered_from_one_buffer_queued_as_chunks() {
    let mut d = PeerDoc::new();
    let n = 2 * CHUNK + 5;
    for offset in 1..=n {
        d.add(ip("127.0.0.1"), 3000 + offset as u16, offset);
    }
    let mirrored = |p: &[Piece<'_>]| p.iter().any(|p| matches!(p, Piece::Mirrored(..)));
    let chunked = d.personalised(CHUNK + 1);
    assert!(!mirrored(&chunked), "made on the second answer");
    let first = concat(&chunked);
    for asker in [1, CHUNK, CHUNK + 1, n, n + 7] {
        let pieces = d.personalised(asker);
        assert!(mirrored(&pieces));
        for p in pieces {
            if let Piece::Mirrored(bytes, chunks, from, to) = p {
                let run = concat(&[Piece::Chunks(chunks, from, to)]);
                assert_eq!(bytes, run, "what a queue keeps is what was written");
            }
        }
        let whole = concat(&pieces);
        let unflat: Vec<Piece<'_>> = pieces
            .iter()
            .map(|&p| match p {
                Piece::Mirrored(_, c, from, to) => Piece::Chunks(c, from, to),
                p => p,
            })
            .collect();
        assert_eq!(whole, concat(&unflat), "asker {asker}");
    }
    assert_eq!(d.render_for(CHUNK + 1), first);
    d.remove(3);
    assert!(!mirrored(&d.personalised(1)), "a change drops it");
    assert!(mirrored(&d.personalised_versioned(1)));
    assert_eq!(d.render_versioned_for(1), d.render_versioned_for(1));
}
