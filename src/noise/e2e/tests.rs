use super::*;
use crate::wire::sealed::parse;

fn pair() -> (Keypair, Keypair) {
    (Keypair::generate().unwrap(), Keypair::generate().unwrap())
}

/// The `sealed` lines of `out`, without their endings.
fn lines(out: &[u8]) -> Vec<Vec<u8>> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn open(o: &mut Opener, line: &[u8]) -> Result<Opened, OpenError> {
    let mut scratch = Vec::new();
    let f = parse(line, &mut scratch).expect("a frame");
    o.open(&f, Instant::now(), |_| true)
}

#[test]
fn a_line_sealed_for_bob_opens_at_bob_as_from_alice_and_the_start_is_paid_once() {
    let (alice, bob) = pair();
    let (a_pub, b_pub) = (*alice.public(), *bob.public());
    let mut s = Sealer::new(alice);
    let mut o = Opener::new(bob);
    let now = Instant::now();
    let mut out = Vec::new();
    s.seal(&b_pub, b"hi bob", true, now, &mut out).unwrap();
    s.seal(&b_pub, b"again", false, now, &mut out).unwrap();
    let mut next = Vec::new();
    s.seal(&b_pub, b"a later batch", true, now, &mut next)
        .unwrap();
    let (first, later) = (lines(&out), lines(&next));
    assert_eq!((first.len(), later.len()), (3, 2), "one start per batch");
    assert_eq!(first[0], later[0], "the same session's start");
    assert!(
        !String::from_utf8_lossy(&out).contains("hi bob"),
        "no plaintext"
    );
    assert_eq!(open(&mut o, &first[0]), Ok((a_pub, None)));
    assert_eq!(
        open(&mut o, &first[1]),
        Ok((a_pub, Some(b"hi bob".to_vec())))
    );
    assert_eq!(open(&mut o, &later[0]), Ok((a_pub, None)), "skipped");
    // Out of order within the window is fine.
    assert_eq!(
        open(&mut o, &later[1]),
        Ok((a_pub, Some(b"a later batch".to_vec())))
    );
    assert_eq!(
        open(&mut o, &first[2]),
        Ok((a_pub, Some(b"again".to_vec())))
    );
}

#[test]
fn a_flipped_byte_anywhere_after_the_keys_is_tampering() {
    let (alice, bob) = pair();
    let b_pub = *bob.public();
    let mut s = Sealer::new(alice);
    let mut out = Vec::new();
    s.seal(&b_pub, b"pay carol 5", true, Instant::now(), &mut out)
        .unwrap();
    let ls = lines(&out);
    let mut scratch = Vec::new();
    for (which, line) in ls.iter().enumerate() {
        let raw = parse(line, &mut scratch).unwrap();
        let body_len = raw.body.len();
        for k in 0..body_len {
            let mut o = Opener::new(bob.clone());
            if which == 1 {
                open(&mut o, &ls[0]).unwrap();
            }
            let mut f = parse(line, &mut scratch).unwrap();
            let mut body = f.body.to_vec();
            body[k] ^= 1;
            f.body = &body;
            let got = o.open(&f, Instant::now(), |_| true);
            assert_eq!(got, Err(OpenError::Tampered), "frame {which}, byte {k}");
        }
    }
}

#[test]
fn replayed_frames_and_replayed_starts_are_refused() {
    let (alice, bob) = pair();
    let b_pub = *bob.public();
    let mut s = Sealer::new(alice);
    let mut o = Opener::new(bob);
    let t0 = Instant::now();
    let mut out = Vec::new();
    s.seal(&b_pub, b"one", true, t0, &mut out).unwrap();
    let old = lines(&out);
    open(&mut o, &old[0]).unwrap();
    open(&mut o, &old[1]).unwrap();
    assert_eq!(open(&mut o, &old[1]), Err(OpenError::Replayed));
    // A rekey: the new session's start is newer; the old start played again is not.
    let mut out = Vec::new();
    s.seal(&b_pub, b"two", false, t0 + REKEY_AFTER, &mut out)
        .unwrap();
    let new = lines(&out);
    assert_eq!(new.len(), 2, "a due session's start goes first");
    open(&mut o, &new[0]).unwrap();
    assert_eq!(open(&mut o, &old[0]), Err(OpenError::StaleStart));
    assert_eq!(open(&mut o, &new[1]).unwrap().1.unwrap(), b"two");
    assert_eq!(
        open(&mut o, &old[1]),
        Err(OpenError::Replayed),
        "the previous session's window holds"
    );
}

#[test]
fn a_member_forging_another_members_key_is_refused() {
    let (alice, bob) = pair();
    let mallory = Keypair::generate().unwrap();
    let b_pub = *bob.public();
    let mut s = Sealer::new(mallory);
    let mut out = Vec::new();
    s.seal(&b_pub, b"alice says hi", true, Instant::now(), &mut out)
        .unwrap();
    let mut o = Opener::new(bob);
    let mut scratch = Vec::new();
    for line in lines(&out) {
        let mut f = parse(&line, &mut scratch).unwrap();
        f.from = *alice.public().as_bytes();
        let got = o.open(&f, Instant::now(), |_| true);
        assert!(
            matches!(got, Err(OpenError::Tampered | OpenError::NoSession)),
            "{got:?}"
        );
    }
}

#[test]
fn frames_for_another_key_or_from_an_unlisted_one_are_not_opened() {
    let (alice, bob) = pair();
    let carol = Keypair::generate().unwrap();
    let mut s = Sealer::new(alice);
    let mut out = Vec::new();
    s.seal(carol.public(), b"x", true, Instant::now(), &mut out)
        .unwrap();
    let mut o = Opener::new(bob);
    assert_eq!(open(&mut o, &lines(&out)[0]), Err(OpenError::NotForUs));
    let mut o = Opener::new(carol);
    let mut scratch = Vec::new();
    let f = parse(&lines(&out)[0], &mut scratch).unwrap();
    assert_eq!(
        o.open(&f, Instant::now(), |_| false),
        Err(OpenError::NoSession)
    );
}

#[test]
fn the_window_takes_each_nonce_once_and_none_too_old() {
    let mut w = Window::default();
    for n in [5, 3, 2000, 1999, 1000] {
        assert!(w.fresh(n), "{n}");
        w.take(n);
        assert!(!w.fresh(n), "{n} again");
    }
    assert!(!w.fresh(5), "behind the window");
    assert!(w.fresh(1500) && w.fresh(2001));
    w.take(2000 + WINDOW + 10);
    assert!(!w.fresh(2000) && w.fresh(2000 + WINDOW));
}

#[test]
fn a_restarted_addressee_refuses_starts_older_than_any_live_session() {
    let (alice, bob) = pair();
    let b_pub = *bob.public();
    let mut s = Sealer::new(alice);
    let mut out = Vec::new();
    s.seal(&b_pub, b"recorded", true, Instant::now(), &mut out)
        .unwrap();
    let recorded = lines(&out);
    let now = SystemTime::now();
    // Bob restarts within a session's life: the origin's current start still opens.
    let mut soon = Opener::started_at(bob.clone(), now + REKEY_AFTER);
    assert_eq!(open(&mut soon, &recorded[0]).map(|o| o.1), Ok(None));
    assert_eq!(
        open(&mut soon, &recorded[1]).unwrap().1.unwrap(),
        b"recorded"
    );
    // Later than any session could still be in use: the recording is refused.
    let late = now + REKEY_AFTER + CLOCK_SKEW + Duration::from_secs(1);
    let mut later = Opener::started_at(bob, late);
    assert_eq!(open(&mut later, &recorded[0]), Err(OpenError::StaleStart));
    assert_eq!(open(&mut later, &recorded[1]), Err(OpenError::NoSession));
}
