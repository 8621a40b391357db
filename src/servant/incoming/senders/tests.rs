//! [`identify`] against a small list: who a line is shown as from.

use std::net::SocketAddr;

use super::*;
use crate::wire::delta::Answer;
use crate::wire::peerdoc::Peer;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// alice at .2 and mallory at .3, each alone on its address; bob and carol
/// sharing .4 (a NAT); two unnamed servants sharing .5; an unnamed one at .6.
fn list() -> Peers {
    let at = [
        ("127.0.0.2:1", Some("alice")),
        ("127.0.0.3:1", Some("mallory")),
        ("127.0.0.4:1", Some("bob")),
        ("127.0.0.4:2", Some("carol")),
        ("127.0.0.5:1", None),
        ("127.0.0.5:2", None),
        ("127.0.0.6:1", None),
    ];
    let peers = (at.iter().enumerate())
        .map(|(k, (a, _))| Peer {
            ip: addr(a).ip(),
            port: addr(a).port(),
            offset: k + 1,
            me: k == 0,
            relay: None,
            key: None,
        })
        .collect();
    let said = (at.iter())
        .map(|(a, n)| (addr(a), n.map(str::to_string)))
        .collect();
    let mut p = Peers::default();
    p.apply(
        Answer::Whole {
            version: Some(1.into()),
            peers,
        },
        said,
        100,
    )
    .unwrap();
    p
}

fn who(p: &Peers, origin: &str, text: &str) -> Option<Sender<'static>> {
    let origin = match origin.parse::<SocketAddr>() {
        Ok(a) => Origin::Listed(a),
        Err(_) => Origin::Ip(origin.parse().unwrap()),
    };
    identify(p, Some("alice"), origin, text.as_bytes()).map(|s| match s {
        Sender::Named(n) => Sender::Named(n.to_string().leak()),
        Sender::Unnamed => Sender::Unnamed,
        Sender::Unverified(ip) => Sender::Unverified(ip),
    })
}

#[test]
fn the_address_names_the_sender_not_the_text() {
    let p = list();
    assert_eq!(
        who(&p, "127.0.0.3", "alice: x"),
        Some(Sender::Named("mallory"))
    );
    // Our own line (alice is us) is shown as it was sent, prefix and all.
    assert_eq!(who(&p, "127.0.0.2", "alice: hi"), Some(Sender::Unnamed));
    assert_eq!(who(&p, "127.0.0.9", "alice: I owe you 100"), None);
}

#[test]
fn a_shared_address_is_unverified_unless_nobody_there_has_a_name() {
    let p = list();
    let nat = Some(Sender::Unverified("127.0.0.4".parse().unwrap()));
    assert_eq!(who(&p, "127.0.0.4", "bob: hi"), nat);
    // A relay that knows the puller says which entry sent it.
    assert_eq!(who(&p, "127.0.0.4:2", "hi"), Some(Sender::Named("carol")));
    assert_eq!(who(&p, "127.0.0.5", "plain"), Some(Sender::Unnamed));
    let five = Some(Sender::Unverified("127.0.0.5".parse().unwrap()));
    assert_eq!(who(&p, "127.0.0.5", "bob: hi"), five);
}

#[test]
fn an_unnamed_sender_cannot_borrow_a_name_or_the_marker() {
    let p = list();
    let six = Some(Sender::Unverified("127.0.0.6".parse().unwrap()));
    assert_eq!(
        who(&p, "127.0.0.6", "vb text with no prefix"),
        Some(Sender::Unnamed)
    );
    assert_eq!(
        who(&p, "127.0.0.6", "note: not a name"),
        Some(Sender::Unnamed)
    );
    assert_eq!(who(&p, "127.0.0.6", "bob: hi"), six);
    assert_eq!(who(&p, "127.0.0.6", "* carol waves"), six);
    assert_eq!(who(&p, "127.0.0.6", "[127.0.0.4?] hi"), six);
    // Nor look like a private line, to us or from us.
    assert_eq!(who(&p, "127.0.0.6", "bob (private): hi"), six);
    assert_eq!(who(&p, "127.0.0.6", "(private) hi"), six);
    assert_eq!(who(&p, "127.0.0.6", "-> bob: hi"), six);
    // A listed entry unknown to this list falls back to its address.
    assert_eq!(who(&p, "127.0.0.6:9", "x"), Some(Sender::Unnamed));
}
