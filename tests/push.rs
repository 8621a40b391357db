//! The manager pushes a servant the list only when its view changed since the last
//! document it was sent, answered or pushed: raw clients on the real `connmgr`.

mod common;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{client, connmgr, entries, read_doc, Daemon, DEADLINE};

/// Asks for the list and returns the answer.
fn ask(s: &mut TcpStream) -> String {
    s.write_all(b"needs peer list\r\n").unwrap();
    read_doc(s)
}

/// The ports in a document, and whose entry is `me`.
fn view(doc: &str) -> (Vec<u16>, Option<u16>) {
    let e = entries(doc);
    let me: Vec<u16> = e.iter().filter(|p| p.2).map(|p| p.0).collect();
    assert!(me.len() <= 1, "more than one entry is me: {doc}");
    (e.iter().map(|p| p.0).collect(), me.first().copied())
}

/// Fails if a byte arrives on `s` within `limit`; shows the document if one did.
fn assert_nothing_within(s: &mut TcpStream, limit: Duration, who: &str, m: &Daemon) {
    s.set_read_timeout(Some(limit)).unwrap();
    let got = s.peek(&mut [0u8; 1]);
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    match got {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Ok(0) => panic!("the manager closed {who}'s connection"),
        Ok(_) => panic!(
            "{who} was pushed a document it already had: {}\nmanager log:\n{}",
            read_doc(s),
            m.log_text()
        ),
        Err(e) => panic!("reading {who}'s connection: {e}"),
    }
}

#[test]
fn a_newcomer_is_not_pushed_the_list_it_was_just_answered() {
    // Pushes at most every 300 ms: b joins inside the window opened by a's join,
    // so the round for b's join goes out after b has asked and been answered.
    let push = Duration::from_millis(300);
    let (m, addr) = connmgr(&["--push-interval", "300"]);
    let mut a = client(addr);
    assert_eq!(view(&ask(&mut a)), (vec![2224], Some(2224)));
    let mut b = client(addr);
    assert_eq!(view(&ask(&mut b)), (vec![2224, 2225], Some(2225)));

    // a has not seen b's join: it is pushed the new list. b has: nothing comes.
    assert_eq!(view(&read_doc(&mut a)), (vec![2224, 2225], Some(2224)));
    assert_nothing_within(&mut b, push * 3, "b", &m);

    // A third servant changes both views: each is pushed exactly one document.
    let mut c = client(addr);
    assert_eq!(view(&ask(&mut c)), (vec![2224, 2225, 2226], Some(2226)));
    assert_eq!(
        view(&read_doc(&mut a)),
        (vec![2224, 2225, 2226], Some(2224))
    );
    assert_eq!(
        view(&read_doc(&mut b)),
        (vec![2224, 2225, 2226], Some(2225))
    );
    assert_nothing_within(&mut a, push * 3, "a", &m);
    // a's wait covered b's and c's: anything pushed to them would be here by now.
    let short = Duration::from_millis(10);
    assert_nothing_within(&mut b, short, "b", &m);
    assert_nothing_within(&mut c, short, "c", &m);
}

/// Entries in a document and how many are marked `me`, without parsing it: the
/// mid-round test reads hundreds of 25 KB documents.
fn count(doc: &str) -> (usize, usize) {
    (
        doc.matches("<peer>").count(),
        doc.matches("<me>TRUE</me>").count(),
    )
}

#[test]
fn a_change_mid_round_still_reaches_everyone() {
    // 500 subscribers x 42 KB documents is 21 MB a round, spread over about 40
    // loop turns, so a join made as soon as the first subscriber's push starts to
    // arrive usually lands mid-round. If it does not, the test tries again; the
    // manager's debug line says when one did.
    const SUBSCRIBERS: usize = 500;
    const TRIES: usize = 12;
    let (m, addr) = connmgr(&[
        "--push-interval",
        "20",
        "--log-level",
        "debug",
        "--max-per-address",
        "1000",
    ]);
    let mut subs: Vec<TcpStream> = (0..SUBSCRIBERS).map(|_| client(addr)).collect();
    m.wait_for(&format!("({SUBSCRIBERS} servants)"));
    for s in &mut subs {
        s.write_all(b"needs peer list\n").unwrap();
    }
    for s in &mut subs {
        assert_eq!(count(&read_doc(s)), (SUBSCRIBERS, 1));
    }

    let mut joined = Vec::new();
    for _ in 0..TRIES {
        let before = m.count("the list changed mid-round");
        // A join starts a round, whose first push goes to the first subscriber;
        // a second join then, while the others are still being pushed.
        joined.push(client(addr));
        let first = SUBSCRIBERS + joined.len();
        subs[0]
            .peek(&mut [0u8; 1])
            .expect("a push for the first join");
        joined.push(client(addr));
        let last = first + 1;
        assert_eq!(count(&read_doc(&mut subs[0])), (first, 1));
        for (k, s) in subs.iter_mut().enumerate() {
            loop {
                let (peers, me) = count(&read_doc(s));
                assert_eq!(me, 1, "subscriber {k}: one entry is me");
                assert!(peers <= last, "subscriber {k}: {peers} entries");
                if peers == last {
                    break;
                }
            }
        }
        if m.count("the list changed mid-round") > before {
            return;
        }
    }
    panic!(
        "in {TRIES} tries no join landed mid-round; log:\n{}",
        m.log_text()
    );
}
