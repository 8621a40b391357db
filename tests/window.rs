//! What the chat window tells and offers, in a real terminal (a tmux pane, as in
//! `tests/terminal.rs`): only true joins and leaves across a manager restart, a
//! helpful first line when there is no manager, time stamps and the status line,
//! Page Up over a long backlog (also in a narrow, resized window), Tab completion,
//! Ctrl-R, and the history kept for the next run. Each test has its own tmux
//! server and its own `127.0.9N.x` block.

mod common;
mod tmux;

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use common::{bin, connmgr, named_servant, Daemon};
use tmux::{peer, Tmux, SCREEN_DEADLINE};

/// Whether `line` starts with a time stamp, `HH:MM `.
fn stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 6
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b':'
        && b[3..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' '
}

/// Waits until a file holds `text`.
fn wait_file(path: &std::path::Path, text: &str) {
    let end = Instant::now() + SCREEN_DEADLINE;
    loop {
        let now = std::fs::read_to_string(path).unwrap_or_default();
        if now.contains(text) {
            return;
        }
        assert!(
            Instant::now() < end,
            "{} never held {text:?}:\n{now}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn a_manager_restart_with_no_change_shows_only_lost_and_back() {
    let t = Tmux::start("restart", 100, 30);
    let (m, addr) = connmgr(&["--first-port", "31200"]);
    let log = t.dir.join("alice.log");
    let extra = format!("--name alice --log-level info --log-file {}", log.display());
    t.servant(addr, "127.0.96.1", &extra);
    t.wait_for("-- you are alice (127.0.96.1:31200)");
    let (bob, _) = peer(addr, "127.0.96.2", "bob", &t.dir);
    let (carol, _) = peer(addr, "127.0.96.3", "carol", &t.dir);
    t.wait_for("-- carol (127.0.96.3:");
    t.wait_for("[alice] 3 peers, connected");

    // The manager restarts on its port, numbering ports from elsewhere: every
    // servant reconnects (each within its backoff) and is given a new port.
    m.signal(libc::SIGKILL);
    drop(m);
    t.wait_for("-- lost the connection manager at");
    t.wait_for(", reconnecting");
    let port = addr.port().to_string();
    let args = [
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--first-port",
        "31300",
    ];
    let back = Daemon::spawn(&bin("connmgr"), &args);
    back.listening_addr();
    t.wait_for("is back");
    bob.wait_for("listening on 127.0.96.2:313"); // its new port
    carol.wait_for("listening on 127.0.96.3:313");
    // Settled, and longer than any grace given to a missing peer.
    wait_file(&log, "peer list settled after reconnecting: 3 peers");
    std::thread::sleep(Duration::from_secs(2));
    t.wait_for("[alice] 3 peers, connected");
    let all = t.history();
    let lost = all
        .iter()
        .position(|l| l.contains("lost the connection"))
        .unwrap();
    let after: Vec<&String> = all[lost..]
        .iter()
        .filter(|l| l.starts_with("-- "))
        .collect();
    assert!(after.len() <= 2, "at most lost and back: {after:#?}");
    for word in [" left", " joined", "known as", "has no name"] {
        assert!(
            !after.iter().any(|l| l.contains(word)),
            "{word:?}: {after:#?}"
        );
    }
    // A real leave is still told, after its join.
    drop(carol);
    t.wait_for("-- carol (127.0.96.3:31");
    let s = t.wait("carol left", |s| s.iter().any(|l| l.contains(") left")));
    assert!(s
        .iter()
        .any(|l| l.starts_with("-- carol (") && l.ends_with(") left")));
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn no_manager_at_start_says_where_and_why_once_then_retries_quietly() {
    let t = Tmux::start("nomgr", 100, 30);
    // A port where nothing listens yet.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    t.servant(free, "127.0.97.1", "--name alice");
    let s = t.wait_for("cannot reach the connection manager at");
    let line = s.iter().find(|l| l.contains("cannot reach")).unwrap();
    for part in [
        &free.to_string(),
        "refused",
        "--connmgr",
        "--port",
        "85",
        "8585",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    t.wait_for("[alice] no list yet, connecting");
    // Several retries later: still the one line, and no "lost".
    std::thread::sleep(Duration::from_secs(2));
    let s = t.screen();
    let said = s.iter().filter(|l| l.contains("cannot reach")).count();
    assert_eq!(said, 1, "{}", s.join("\n"));
    assert!(!s.iter().any(|l| l.contains("lost")), "{}", s.join("\n"));
    let port = free.port().to_string();
    let m = Daemon::spawn(&bin("connmgr"), &["--bind", "127.0.0.1", "--port", &port]);
    m.listening_addr();
    t.wait_for("-- reached the connection manager at");
    t.wait_for("-- you are alice (127.0.97.1:");
    t.wait_for("[alice] 1 peer, connected");
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn stamps_the_status_line_and_page_up_over_a_long_backlog_in_a_narrow_window() {
    let t = Tmux::start("paging", 60, 20);
    let (_m, addr) = connmgr(&[]);
    t.servant(addr, "127.0.98.1", "--name alice --timestamps");
    t.wait_for("you are alice (127.0.98.1:");
    let (mut bob, _) = peer(addr, "127.0.98.2", "bob", &t.dir);
    t.wait_for("bob (127.0.98.2:");
    let backlog: Vec<String> = (0..1000).map(|k| format!("line {k:04}")).collect();
    bob.type_line(&backlog.join("\n"));
    let s = t.wait_for("bob: line 0999");
    let shown: Vec<&String> = s.iter().filter(|l| l.contains("bob: line")).collect();
    assert!(shown.iter().all(|l| stamped(l)), "{shown:#?}");
    assert!(
        s.iter()
            .any(|l| l.starts_with("[alice] 2 peers, connected")),
        "{s:#?}"
    );

    // Up by pages to the very start of the backlog.
    let ups = vec!["PPage"; 80];
    t.keys(&ups);
    t.wait_for("bob: line 0000");
    let below = |s: &[String]| {
        let status = s.iter().find(|l| l.starts_with("[alice]"))?;
        let (_, count) = status.split_once("connected, ")?;
        count
            .strip_suffix(" more below (PgDn)")?
            .parse::<usize>()
            .ok()
    };
    let s = t.wait("the lines below counted", |s| below(s).is_some());
    let before = below(&s).unwrap();
    assert!(before > 900, "{s:#?}");
    assert!(!s.iter().any(|l| l.contains("line 0999")), "{s:#?}");
    // A new line does not move the view; the status line counts it.
    bob.type_line("late news");
    let s = t.wait("one more below", |s| below(s) == Some(before + 1));
    assert!(s.iter().any(|l| l.contains("bob: line 0000")), "{s:#?}");
    assert!(!s.iter().any(|l| l.contains("late news")));
    // Narrow, while scrolled: painted again at the new width, still scrolled.
    t.resize(20);
    let s = t.wait("the narrow view", |s| {
        s.iter().any(|l| l.contains("line 0")) && s.iter().any(|l| l.starts_with("[alice]"))
    });
    assert!(!s.iter().any(|l| l.contains("late news")), "{s:#?}");
    let rows = t.rows();
    assert!(rows.iter().all(|l| l.chars().count() <= 20), "{rows:#?}");
    t.text("typed");
    t.wait_input("typed");
    // Down to the bottom: the new line, and the status line without a count.
    let downs = vec!["NPage"; 400];
    t.keys(&downs);
    let s = t.wait_for("late news");
    t.wait("the status line at the bottom", |s| {
        s.iter()
            .any(|l| l.starts_with("[alice]") && !l.contains("PgDn"))
    });
    assert!(
        s.iter().rev().take(5).any(|l| l.contains("late news")),
        "{s:#?}"
    );
    t.resize(60);
    t.keys(&["Enter"]);
    t.wait_for("alice: typed");
    t.wait_input("");
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn tab_completes_ctrl_r_searches_and_history_is_kept_for_the_next_run() {
    let t = Tmux::start("recall", 80, 24);
    let (_m, addr) = connmgr(&[]);
    t.servant(addr, "127.0.99.1", "--name alice");
    t.wait_for("-- you are alice (127.0.99.1:");
    let (_bob, _) = peer(addr, "127.0.99.2", "bobby", &t.dir);
    t.wait_for("-- bobby (127.0.99.2:");

    t.text("bo");
    t.keys(&["Tab"]);
    t.wait_input("bobby:");
    t.text("hi there");
    t.keys(&["Enter"]);
    t.wait_for("alice: bobby: hi there");
    t.text("second line");
    t.keys(&["Enter"]);
    t.wait_for("alice: second line");

    // Ctrl-R: type to narrow, Ctrl-R for an older one, Esc gives the line back.
    t.text("draft");
    t.keys(&["C-r"]);
    t.text("i");
    t.wait_for("(search 'i'): second line");
    t.keys(&["C-r"]);
    t.wait_for("(search 'i'): bobby: hi there");
    t.keys(&["Escape"]);
    t.wait_input("draft");
    t.keys(&["C-u", "C-r"]);
    t.text("sec");
    t.wait_for("(search 'sec'): second line");
    t.keys(&["Enter"]);
    t.wait("the line found sent again", |s| {
        s.iter().filter(|l| *l == "alice: second line").count() == 2
    });

    t.text("/quit");
    t.keys(&["Enter"]);
    t.wait("the shell", |s| s.last().is_some_and(|l| l == "$"));
    let file = t.dir.join("state/p2pchat/history-alice");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, "bobby: hi there\nsecond line\nsecond line\n/quit\n");

    // The next run: Up brings back the last runs' lines.
    t.run("clear");
    t.servant(addr, "127.0.99.1", "--name alice");
    t.wait_for("-- you are alice (127.0.99.1:");
    t.keys(&["Up", "Up"]);
    t.wait_input("second line");
}

#[test]
fn a_pipe_is_stamped_only_when_asked() {
    let dir = std::env::temp_dir().join(format!("p2pchat-window-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.xml");
    std::fs::write(&config, "<config/>\n").unwrap();
    let (_m, addr) = connmgr(&[]);
    let mut plain = named_servant(&config, addr, "127.0.99.10", "plain", &[]);
    plain.listening_addr();
    let stamps = named_servant(&config, addr, "127.0.99.11", "stamps", &["--timestamps"]);
    stamps.listening_addr();
    plain.wait_for("peers: 2");
    plain.type_line("hello");
    let line = plain.stdout_line().unwrap();
    assert_eq!(line, "plain: hello");
    let line = stamps.stdout_line().unwrap();
    assert!(
        stamped(&line) && line.ends_with(" plain: hello"),
        "{line:?}"
    );
    assert!(!line.contains('\x1b'), "{line:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
