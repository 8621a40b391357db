//! Two links talking over a `Vec`: the handshake, transport, and every way a
//! link must close.

use std::rc::Rc;

use super::frame::{write_frame, MAX_FRAME};
use super::link::{FIRST_LEN, MAX_PLAIN, SECOND_LEN, TAG_LEN};
use super::*;

fn pair(seed: u8) -> Keypair {
    Keypair::from_private([seed; 32])
}

/// An initiator and a responder, and what the initiator sent first.
fn start() -> (Link, Link, Vec<u8>) {
    let (client, server) = (pair(1), pair(2));
    let mut wire = Vec::new();
    let i = Link::initiator(&client, server.public(), &mut wire).unwrap();
    let r = Link::responder(Rc::new(server));
    (i, r, wire)
}

/// Feeds `input` to `to`, admitting any key; returns the step, the plaintext and
/// the answer.
fn feed(to: &mut Link, input: &[u8]) -> (Result<Step, LinkError>, Vec<u8>, Vec<u8>) {
    let (mut plain, mut wire) = (Vec::new(), Vec::new());
    let mut step = to.receive(input, &mut plain, &mut wire);
    if let Ok(Step::Admit(_)) = step {
        step = to.admit(&mut wire).map(|()| Step::More);
    }
    (step, plain, wire)
}

/// A handshake carried through: both links up.
fn established() -> (Link, Link) {
    let (mut i, mut r, first) = start();
    let (step, _, second) = feed(&mut r, &first);
    assert_eq!(step.unwrap(), Step::More);
    let (step, _, confirm) = feed(&mut i, &second);
    assert_eq!(step.unwrap(), Step::Up);
    let (step, plain, _) = feed(&mut r, &confirm);
    assert_eq!(step.unwrap(), Step::Up);
    assert!(plain.is_empty());
    (i, r)
}

#[test]
fn the_handshake_authenticates_both_ends_and_data_flows_both_ways() {
    let (mut i, mut r, first) = start();
    assert_eq!(first.len(), PREAMBLE.len() + 2 + FIRST_LEN);
    assert!(first.starts_with(b"\0p2pchat\x01"));
    // Fed one byte at a time, as a slow network might.
    let mut plain = Vec::new();
    let mut wire = Vec::new();
    let mut admitted = None;
    for b in &first {
        match r.receive(&[*b], &mut plain, &mut wire).unwrap() {
            Step::Admit(key) => admitted = Some(key),
            step => assert_eq!(step, Step::More),
        }
    }
    assert_eq!(admitted.as_ref(), Some(pair(1).public()));
    assert_eq!(
        r.peer_key(),
        None,
        "not authenticated before its first message"
    );
    r.admit(&mut wire).unwrap();
    assert_eq!(wire.len(), 2 + SECOND_LEN);
    r.seal(b"held until the initiator proves itself", &mut wire)
        .unwrap();
    assert_eq!(
        wire.len(),
        2 + SECOND_LEN,
        "nothing sealed to an unproven peer"
    );
    let (step, _, confirm) = feed(&mut i, &wire);
    assert_eq!(step.unwrap(), Step::Up);
    assert_eq!(i.peer_key(), Some(pair(2).public()));
    let mut to_r = confirm;
    i.seal(b"hello", &mut to_r).unwrap();
    let (step, plain, to_i) = feed(&mut r, &to_r);
    assert_eq!(step.unwrap(), Step::Up);
    assert_eq!(plain, b"hello");
    assert_eq!(r.peer_key(), Some(pair(1).public()));
    let (step, plain, _) = feed(&mut i, &to_i);
    assert_eq!(step.unwrap(), Step::More);
    assert_eq!(plain, b"held until the initiator proves itself");
}

#[test]
fn a_large_record_is_split_into_frames_and_joined_again() {
    let (mut i, mut r) = established();
    let big: Vec<u8> = (0..200_000u32).map(|n| (n % 253) as u8).collect();
    let mut wire = Vec::new();
    i.seal(&big, &mut wire).unwrap();
    let frames = big.len().div_ceil(MAX_PLAIN);
    assert_eq!(wire.len(), big.len() + frames * (2 + TAG_LEN));
    let mut got = Vec::new();
    for piece in wire.chunks(4096) {
        let (step, plain, _) = feed(&mut r, piece);
        assert_eq!(step.unwrap(), Step::More);
        got.extend_from_slice(&plain);
    }
    assert_eq!(got, big);
}

#[test]
fn a_tampered_byte_anywhere_closes_the_link() {
    let (mut i, mut r) = established();
    let mut wire = Vec::new();
    i.seal(b"pay 10 to bob", &mut wire).unwrap();
    for k in 0..wire.len() {
        let (mut i2, mut r2) = established();
        let mut fresh = Vec::new();
        i2.seal(b"pay 10 to bob", &mut fresh).unwrap();
        fresh[k] ^= 0x40;
        let (step, plain, _) = feed(&mut r2, &fresh);
        if k < 2 {
            // The length changed: a frame error or a wait for bytes never sent.
            assert!(plain.is_empty());
            continue;
        }
        assert!(
            matches!(step, Err(LinkError::Decrypt)),
            "byte {k}: {step:?}"
        );
        assert!(plain.is_empty());
        assert_eq!(r2.phase(), "closing");
        assert!(matches!(feed(&mut r2, b"x").0, Err(LinkError::Closed)));
    }
    let (step, plain, _) = feed(&mut r, &wire);
    assert_eq!(
        (step.unwrap(), plain.as_slice()),
        (Step::More, &b"pay 10 to bob"[..])
    );
}

#[test]
fn a_replayed_first_message_never_authenticates() {
    let (mut i, mut r, first) = start();
    let (_, _, second) = feed(&mut r, &first);
    let (_, _, confirm) = feed(&mut i, &second);
    // The attacker replays the recorded opening, then the recorded confirmation.
    let mut victim = Link::responder(Rc::new(pair(2)));
    let (step, _, answer) = feed(&mut victim, &first);
    assert_eq!(step.unwrap(), Step::More);
    assert_eq!(answer.len(), 2 + SECOND_LEN, "a replay gets an answer...");
    assert_eq!(victim.peer_key(), None, "...but no authenticated peer");
    let (step, plain, _) = feed(&mut victim, &confirm);
    assert!(matches!(step, Err(LinkError::Decrypt)), "{step:?}");
    assert!(plain.is_empty());
    assert_eq!(victim.peer_key(), None);
}

#[test]
fn the_wrong_responder_key_fails_the_handshake() {
    let mut wire = Vec::new();
    let _i = Link::initiator(&pair(1), pair(3).public(), &mut wire).unwrap();
    let mut r = Link::responder(Rc::new(pair(2)));
    let (step, _, answer) = feed(&mut r, &wire);
    assert!(matches!(step, Err(LinkError::Handshake(_))), "{step:?}");
    assert!(answer.is_empty());
    assert_eq!(r.phase(), "closing");
}

#[test]
fn a_refused_key_closes_and_answers_nothing() {
    let (_i, mut r, first) = start();
    let (mut plain, mut wire) = (Vec::new(), Vec::new());
    let Ok(Step::Admit(key)) = r.receive(&first, &mut plain, &mut wire) else {
        panic!("expected a key to admit");
    };
    let e = r.refuse();
    assert_eq!(e.to_string(), format!("key {key} is not admitted"));
    assert!(wire.is_empty());
    assert!(r.receive(b"x", &mut plain, &mut wire).is_err());
}

#[test]
fn plaintext_and_bad_preambles_are_refused_with_the_byte_escaped() {
    let mut r = Link::responder(Rc::new(pair(2)));
    let e = feed(&mut r, b"needs peer list\r\n").0.unwrap_err();
    assert_eq!(
        e.to_string(),
        "not a private link: got \"n\" as byte 0 of the preamble \"\\x00p2pchat\\x01\""
    );
    let mut r = Link::responder(Rc::new(pair(2)));
    let e = feed(&mut r, b"\0p2pchat\x02").0.unwrap_err();
    assert!(e.to_string().contains("got \"\\x02\" as byte 8"), "{e}");
}

#[test]
fn a_first_message_of_the_wrong_length_is_refused_before_any_dh() {
    for len in [0usize, 95, 97, MAX_FRAME] {
        let mut r = Link::responder(Rc::new(pair(2)));
        let mut wire = PREAMBLE.to_vec();
        wire.extend_from_slice(&(len as u16).to_be_bytes());
        let e = feed(&mut r, &wire).0.unwrap_err();
        assert!(
            e.to_string().contains("exactly 96 bytes are allowed"),
            "{len}: {e}"
        );
    }
}

#[test]
fn oversize_and_truncated_transport_frames() {
    let (_i, mut r) = established();
    // Shorter than a tag: cannot be a transport message.
    let e = feed(&mut r, &[0, 5, 1, 2, 3, 4, 5]).0.unwrap_err();
    assert!(e.to_string().contains("16 to 65535"), "{e}");
    // A truncated frame is held, never delivered, and a close drops it.
    let (mut i, mut r) = established();
    let mut wire = Vec::new();
    i.seal(b"an unterminated tail", &mut wire).unwrap();
    let (step, plain, _) = feed(&mut r, &wire[..wire.len() - 1]);
    assert_eq!((step.unwrap(), plain.len()), (Step::More, 0));
    assert_eq!(r.partial(), wire.len() - 1);
}

#[test]
fn bytes_after_the_first_message_before_the_answer_close_the_link() {
    let (_i, mut r, mut first) = start();
    first.extend_from_slice(b"too soon");
    let e = feed(&mut r, &first).0.unwrap_err();
    assert!(matches!(e, LinkError::Early(8)), "{e}");
}

#[test]
fn a_handshake_message_with_a_payload_is_refused() {
    // Message 1 made by hand with a payload, framed to the exact length: the
    // responder's frame reader refuses the length before any DH.
    let hs =
        snow::Builder::with_resolver(link::PATTERN.parse().unwrap(), Box::new(resolver::Resolver));
    let hs = hs.local_private_key(&[1; 32]).unwrap();
    let server = pair(2);
    let mut hs = hs
        .remote_public_key(server.public().as_bytes())
        .unwrap()
        .prologue(&PREAMBLE)
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut msg = [0u8; 200];
    let n = hs.write_message(b"payload", &mut msg).unwrap();
    let mut wire = PREAMBLE.to_vec();
    write_frame(&mut wire, &msg[..n]);
    let mut r = Link::responder(Rc::new(server));
    assert!(feed(&mut r, &wire).0.is_err());
}

#[test]
fn rekeys_either_way_keep_both_ends_in_step_and_data_is_never_an_empty_record() {
    let (mut i, mut r) = established();
    let mut nothing = Vec::new();
    i.seal(b"", &mut nothing).unwrap();
    assert!(nothing.is_empty(), "an empty seal sends nothing");
    for round in 0..5u8 {
        let mut to_r = Vec::new();
        i.seal(&[b'a' + round; 3], &mut to_r).unwrap();
        i.rekey(&mut to_r).unwrap();
        i.seal(b"after", &mut to_r).unwrap();
        let (step, plain, _) = feed(&mut r, &to_r);
        assert_eq!(step.unwrap(), Step::More);
        assert_eq!(plain, [&[b'a' + round; 3][..], b"after"].concat());
        let mut to_i = Vec::new();
        r.rekey(&mut to_i).unwrap();
        r.rekey(&mut to_i).unwrap();
        r.seal(b"back", &mut to_i).unwrap();
        let (step, plain, _) = feed(&mut i, &to_i);
        assert_eq!(step.unwrap(), Step::More);
        assert_eq!(plain, b"back");
    }
    assert_eq!(i.rekeys(), (5, 10));
    assert_eq!(r.rekeys(), (10, 5));
}
