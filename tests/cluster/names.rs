//! Names are unique across the cluster: two servants on two managers asking
//! for one name at once get one `name ok` and one `name refused: in use`, and a
//! request sent right after `name` is answered after the name's line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{manager, manager_with, temp_dir, until, Redis};
use crate::common::{client, read_doc, DEADLINE};

/// One answer line, through its `\r\n`.
fn line(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        let n = s.read(&mut byte).expect("an answer line");
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&got));
        got.push(byte[0]);
    }
    String::from_utf8(got).unwrap()
}

/// Both ask for `name` at once; what each is answered.
fn both_ask(racers: &mut [TcpStream; 2], name: &str) -> Vec<String> {
    let ask = format!("name {name}\n");
    for s in racers.iter_mut() {
        s.write_all(ask.as_bytes()).unwrap();
    }
    racers.iter_mut().map(line).collect()
}

fn joined(a: SocketAddr, b: SocketAddr) -> [TcpStream; 2] {
    let racers = [client(a), client(b)];
    // Neither racer asks for the list, so nothing is pushed to it; a watcher
    // sees both joined.
    let mut watcher = client(a);
    until(&mut watcher, DEADLINE, |e| e.len() == 3);
    racers
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn one_name_asked_on_two_managers_at_once_is_granted_once() {
    let dir = temp_dir("names");
    let _redis = Redis::start(&dir);
    let (_a_daemon, a) = manager(&dir);
    let (_b_daemon, b) = manager(&dir);
    let mut racers = joined(a, b);
    for name in ["alice", "Bob", "carol"] {
        let answers = both_ask(&mut racers, name);
        let ok = answers
            .iter()
            .filter(|t| **t == format!("name ok {name}\r\n"))
            .count();
        let refused = answers
            .iter()
            .filter(|t| *t == "name refused: in use\r\n")
            .count();
        assert_eq!((ok, refused), (1, 1), "{answers:?}");
    }
    // A request right after `name` waits for the claim's answer.
    let loser = &mut racers[0];
    loser.write_all(b"name dave\nneeds peer list").unwrap();
    assert_eq!(line(loser), "name ok dave\r\n");
    assert!(read_doc(loser).contains("<peer>"));
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn a_request_after_name_is_answered_after_the_name() {
    let dir = temp_dir("names-order");
    let _redis = Redis::start(&dir);
    // Once a client has asked for the list, each rename would push it a new one,
    // which could come before the answer read next: pushes off.
    let no_pushes = ["--push-interval", "0"];
    let (_a_daemon, a) = manager_with(&dir, &no_pushes);
    let (_b_daemon, b) = manager_with(&dir, &no_pushes);
    let [mut on_a, mut on_b] = joined(a, b);
    on_a.write_all(b"name erin\n").unwrap();
    assert_eq!(line(&mut on_a), "name ok erin\r\n");
    // Both in one write: the list waits for the claim's answer.
    on_b.write_all(b"name ERIN\nneeds peer list").unwrap();
    assert_eq!(line(&mut on_b), "name refused: in use\r\n");
    assert!(read_doc(&mut on_b).contains("<peer>"));
    on_b.write_all(b"name frank\nneeds peer list").unwrap();
    assert_eq!(line(&mut on_b), "name ok frank\r\n");
    assert!(read_doc(&mut on_b).contains("<peer>"));
    // Freed when its holder takes another name.
    on_a.write_all(b"name gina\n").unwrap();
    assert_eq!(line(&mut on_a), "name ok gina\r\n");
    on_b.write_all(b"name Erin\n").unwrap();
    assert_eq!(line(&mut on_b), "name ok Erin\r\n");
}
