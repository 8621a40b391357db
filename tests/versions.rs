//! Versioned peer lists on the real `connmgr`: raw clients that say which version
//! they have get the whole document once, then `<unchanged/>` and deltas, answered
//! and pushed; clients that ask bare keep getting the article's document.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{client, connmgr, read_doc};
use p2pchat::wire::delta::{self, Answer, Op};

/// Reads one answer, through its closing `\r\n` (every answer is one line).
fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        s.read_exact(&mut byte).expect("reading an answer");
        out.push(byte[0]);
    }
    String::from_utf8(out).expect("answers are UTF-8")
}

fn ask(s: &mut TcpStream, since: impl std::fmt::Display) -> String {
    s.write_all(format!("needs peer list since {since}\n").as_bytes())
        .unwrap();
    read_line(s)
}

fn parse(text: &str) -> Answer {
    delta::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_versioned_client_gets_the_document_once_then_only_changes() {
    let (_m, addr) = connmgr(&["--push-interval", "50"]);
    let mut a = client(addr);
    let whole = ask(&mut a, 0);
    assert_eq!(
        whole,
        "<peers version=\"1\"><peer><ip>127.0.0.1</ip><port>2224</port><offset>1</offset><me>TRUE</me></peer></peers>\r\n"
    );
    assert_eq!(ask(&mut a, 1), "<unchanged version=\"1\"/>\r\n");

    // A bare client joins: a is pushed a delta; the bare one asks and gets today's bytes.
    let mut b = client(addr);
    let pushed = read_line(&mut a);
    assert_eq!(
        pushed,
        "<delta from=\"1\" to=\"2\"><peer><ip>127.0.0.1</ip><port>2225</port><offset>2</offset><me>FALSE</me></peer></delta>\r\n"
    );
    b.write_all(b"needs peer list\r\n").unwrap();
    let bare = read_doc(&mut b);
    assert!(
        bare.starts_with("<peers><peer>")
            && bare.ends_with("<offset>2</offset><me>TRUE</me></peer></peers>\r\n"),
        "{bare}"
    );

    // A third joins and leaves: a is pushed deltas that net to the same list, and
    // the bare client whole documents.
    let c = client(addr);
    let mut version = delta::Version::from(1);
    let mut list = match parse(&whole) {
        Answer::Whole { peers, .. } => peers,
        other => panic!("{other:?}"),
    };
    let mut apply = |text: &str, version: &mut delta::Version| {
        *version = delta::update(&mut list, Some(*version), parse(text))
            .unwrap_or_else(|e| panic!("{e}: {text}"))
            .unwrap();
        list.iter().map(|p| p.port).collect::<Vec<_>>()
    };
    apply(&pushed, &mut version);
    assert_eq!(apply(&read_line(&mut a), &mut version), [2224, 2225, 2226]);
    assert!(read_doc(&mut b).contains("<port>2226</port>"));
    drop(c);
    let left = read_line(&mut a);
    assert!(
        matches!(parse(&left), Answer::Delta(ref d) if d.ops == [Op::Left(3)]),
        "{left}"
    );
    assert_eq!(apply(&left, &mut version), [2224, 2225]);
    assert!(!read_doc(&mut b).contains("<port>2226</port>"));
    assert_eq!(
        ask(&mut a, version),
        format!("<unchanged version=\"{version}\"/>\r\n")
    );
}

#[test]
fn an_old_or_unknown_version_gets_the_whole_document_and_a_crossed_push_is_not_resent() {
    // No pushes: every change is seen by asking.
    let (_m, addr) = connmgr(&["--push-interval", "0"]);
    let mut a = client(addr);
    assert!(ask(&mut a, 0).starts_with("<peers version=\"1\">"));
    let others: Vec<TcpStream> = (0..3).map(|_| client(addr)).collect();
    // Joins are accepted as the loop turns: wait until all three have joined.
    let mut answer = ask(&mut a, 1);
    while !answer.starts_with("<delta from=\"1\" to=\"4\">") {
        answer = ask(&mut a, 1);
    }
    // A version the manager never had (a manager restarted, say): the whole list.
    let future = ask(&mut a, 999);
    assert!(
        future.starts_with("<peers version=\"4\"><peer>"),
        "{future}"
    );
    assert_eq!(future.matches("<peer>").count(), 4);
    // Having just been sent version 4 on this connection, an older "since" is
    // answered from 4: the client reads that first, so it has it.
    assert_eq!(ask(&mut a, 2), "<unchanged version=\"4\"/>\r\n");
    drop(others);
    // Garbage after the request is today's request and a logged line.
    a.write_all(b"needs peer list since soon\n").unwrap();
    let doc = read_doc(&mut a);
    assert!(doc.starts_with("<peers><peer>"), "{doc}");
}
