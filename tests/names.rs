//! The servant's name with the manager: `/nick` and `--name` shown as the
//! manager answers them (`name ok NAME`, `name refused: REASON`), and assumed, as
//! before answers existed, from a manager that never answers.

mod common;
mod fakemgr;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use common::{Daemon, DEADLINE};
use fakemgr::{entry, free_port, servant, Link};

/// How the fake manager answers `name NAME`.
#[derive(Clone, Copy)]
enum Answers {
    /// `name refused: in use` for this name, `name ok NAME` for any other.
    Refusing(&'static str),
    /// Nothing (a manager older than answers); the name is listed all the same.
    Never,
}

/// A p2pchat manager for one servant at `at`: versioned whole documents with the
/// servant's name in its entry, and `name` answered as `answers` says. Returns
/// what it was asked, line by line.
fn manager(fake: TcpListener, at: SocketAddr, answers: Answers) -> Arc<Mutex<Vec<String>>> {
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = asked.clone();
    std::thread::spawn(move || {
        let mut link = Link::accept(&fake);
        let (mut version, mut name) = (1, None::<String>);
        loop {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut link.reader, &mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_string();
            log.lock().unwrap().push(line.clone());
            if line.starts_with("needs peer list since") {
                link.send(&format!(
                    "<peers version=\"{version}\">{}</peers>\r\n",
                    entry(at, 1, true, name.as_deref())
                ));
            } else if let Some(wanted) = line.strip_prefix("name ") {
                match answers {
                    Answers::Refusing(taken) if wanted == taken => {
                        link.send("name refused: in use\r\n");
                        continue;
                    }
                    Answers::Refusing(_) => link.send(&format!("name ok {wanted}\r\n")),
                    Answers::Never => {}
                }
                name = Some(wanted.to_string());
                version += 1;
            }
        }
    });
    asked
}

/// A named servant on `net`.1 with a fake manager answering as `answers` says.
fn named(net: &str, name: &str, answers: Answers) -> (Daemon, Arc<Mutex<Vec<String>>>) {
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let ip = format!("{net}.1");
    let at = free_port(&ip);
    let s = servant(fake.local_addr().unwrap(), &ip, 200, &["--name", name]);
    let asked = manager(fake, at, answers);
    (s, asked)
}

/// Stdout lines until `want` (the servant's own line back through its listener).
fn shown(d: &Daemon, want: &str) -> Vec<String> {
    let end = std::time::Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while !got.iter().any(|l: &String| l == want) && std::time::Instant::now() < end {
        got.extend(d.stdout_line());
    }
    got
}

#[test]
fn a_name_in_use_at_start_runs_unnamed_and_says_so_once() {
    let (mut s, asked) = named("127.0.57", "bob", Answers::Refusing("bob"));
    // Typed before any list: held, and sent without the refused name.
    s.type_line("early");
    s.wait_for("refused the name bob (in use); running unnamed");
    assert_eq!(shown(&s, "early"), ["early"], "{}", s.log_text());
    s.type_line("later");
    assert_eq!(shown(&s, "later"), ["later"]);
    assert_eq!(s.count("running unnamed"), 1);
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.iter().filter(|l| l.starts_with("name")).count(), 1);
}

#[test]
fn nick_shows_the_answer_and_keeps_the_old_name_when_refused() {
    let (mut s, _) = named("127.0.58", "alice", Answers::Refusing("dave"));
    s.listening_addr();
    s.type_line("/nick dave");
    s.wait_for("dave refused: in use");
    s.type_line("still me");
    assert_eq!(shown(&s, "alice: still me"), ["alice: still me"]);
    s.type_line("/nick carol");
    s.wait_for("you are now carol");
    s.type_line("hi");
    assert_eq!(shown(&s, "carol: hi"), ["carol: hi"]);
}

#[test]
fn a_manager_that_never_answers_names_lists_the_new_one_and_it_is_assumed() {
    let (mut s, asked) = named("127.0.59", "alice", Answers::Never);
    s.listening_addr();
    s.type_line("/nick carol");
    s.wait_for("you are now carol");
    s.type_line("hi");
    assert_eq!(shown(&s, "carol: hi"), ["carol: hi"]);
    assert!(asked.lock().unwrap().iter().any(|l| l == "name carol"));
}
