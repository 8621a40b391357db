//! Names are unique and one word: real `connmgr`, raw clients playing servants.
//! Each test tries to take a name someone else holds, or one that breaks the
//! grammar, and fails if the manager lists it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{client, connmgr, read_doc};

/// Reads one line, through `\n`, byte by byte so nothing after it is taken.
fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\n") {
        let n = s.read(&mut byte).expect("an answer line");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&line));
        line.push(byte[0]);
    }
    String::from_utf8(line).expect("UTF-8")
}

/// Sends `name TEXT` and returns the answer line.
fn ask(s: &mut TcpStream, text: &str) -> String {
    s.write_all(format!("name {text}\n").as_bytes()).unwrap();
    read_line(s)
}

/// Every `<name>` in a document, in order.
fn names(doc: &str) -> Vec<String> {
    let (_, names) = p2pchat::wire::peerdoc::parse_named(doc).unwrap();
    names.into_iter().flatten().collect()
}

#[test]
fn a_name_someone_holds_is_refused_in_any_case_and_freed_when_they_go() {
    let (_m, addr) = connmgr(&[]);
    let mut alice = client(addr);
    let mut eve = client(addr);
    assert_eq!(ask(&mut alice, "alice"), "name ok alice\r\n");
    // The attack: a second servant listed as alice, by case or by padding.
    assert_eq!(ask(&mut eve, "Alice "), "name refused: in use\r\n");
    assert_eq!(ask(&mut eve, "ALICE"), "name refused: in use\r\n");
    assert_eq!(ask(&mut eve, "bob smith"), "name refused: whitespace\r\n");
    assert_eq!(ask(&mut eve, "eve"), "name ok eve\r\n");
    assert_eq!(
        ask(&mut alice, " alice"),
        "name ok alice\r\n",
        "its own name"
    );
    eve.write_all(b"needs peer list\n").unwrap();
    let doc = read_doc(&mut eve);
    assert_eq!(names(&doc), ["alice", "eve"], "{doc}");
    // A rename frees the old name, and so does a leave.
    assert_eq!(ask(&mut alice, "Ally"), "name ok Ally\r\n");
    assert_eq!(ask(&mut eve, "Alice"), "name ok Alice\r\n");
    drop(alice);
    let mut third = client(addr);
    let end = std::time::Instant::now() + common::DEADLINE;
    loop {
        match ask(&mut third, "ally").as_str() {
            "name ok ally\r\n" => break,
            // Until the manager has seen alice's connection close.
            "name refused: in use\r\n" if std::time::Instant::now() < end => {}
            other => panic!("{other}"),
        }
    }
}

#[test]
fn every_name_request_gets_one_line_that_never_ends_a_document() {
    let (_m, addr) = connmgr(&[]);
    let mut s = client(addr);
    let long = "x".repeat(33);
    for (text, answer) in [
        ("", "name ok\r\n"),
        ("  ", "name ok\r\n"),
        ("x</peers>", "name refused: invalid\r\n"),
        ("bell\x07", "name refused: invalid\r\n"),
        ("rtl\u{202e}", "name refused: invalid\r\n"),
        (&long, "name refused: too long\r\n"),
        ("tab\there", "name refused: whitespace\r\n"),
        ("bob&<co>", "name ok bob&<co>\r\n"),
    ] {
        assert_eq!(ask(&mut s, text), answer, "{text:?}");
    }
    // Answers come in order with the documents on the same connection.
    s.write_all(b"needs peer list\nname zed\nneeds peer list\n")
        .unwrap();
    let first = read_doc(&mut s);
    assert_eq!(names(&first), ["bob&<co>"]);
    assert_eq!(read_line(&mut s), "name ok zed\r\n");
    let second = read_doc(&mut s);
    assert_eq!(names(&second), ["zed"], "{second}");
}
