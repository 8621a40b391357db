//! The servant's chat window as a user sees it: the servant under test runs in a
//! real terminal (a tmux pane, with bash for job control), its peers and the
//! manager are the real binaries on loopback, and the screen is read with
//! `tmux capture-pane -p`.
//!
//! Each test has its own tmux server (`tmux -L p2pchat-test-PID-NAME`), killed when
//! its guard drops, and its own `127.0.N.x` block. Every wait polls the screen
//! until a deadline. Without tmux or bash the build script marks the tests that
//! need them ignored, with that reason; run anyway, they fail saying which is missing.

mod common;
mod tmux;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{bin, connmgr, Daemon, DEADLINE};
use tmux::{input_is, peer, Tmux, SCREEN_DEADLINE};

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn the_half_typed_line_survives_joins_messages_leaves_and_the_manager_going() {
    let t = Tmux::start("survives", 80, 24);
    let (m, addr) = connmgr(&[]);
    t.servant(addr, "127.0.71.1", "--name alice");
    t.wait_for("-- you are alice (127.0.71.1:");
    let half = "half a line typed by b";
    t.text(half);
    t.wait_input(half);

    let (mut bob, _) = peer(addr, "127.0.71.2", "bob", &t.dir);
    let s = t.wait_for("-- bob (127.0.71.2:");
    assert!(
        s.iter()
            .any(|l| l.starts_with("-- bob (127.0.71.2:") && l.ends_with(") joined")),
        "{s:#?}"
    );
    t.wait_input(half);

    bob.type_line("hi alice");
    t.wait_for("bob: hi alice");
    t.wait_input(half);

    bob.stdin = None; // bob leaves
    t.wait("bob left", |s| s.iter().any(|l| l.contains(") left")));
    t.wait_input(half);

    // The manager goes away and comes back on the same port.
    m.signal(libc::SIGKILL);
    t.wait_for("-- lost the connection manager at");
    t.wait_input(half);
    drop(m);
    let port = addr.port().to_string();
    let back = Daemon::spawn(&bin("connmgr"), &["--bind", "127.0.0.1", "--port", &port]);
    back.listening_addr();
    t.wait_for("is back");
    let s = t.wait_input(half);
    assert!(
        !s.iter()
            .any(|l| l.contains(" INFO ") || l.contains(" WARN ")),
        "no raw log line on the screen:\n{}",
        s.join("\n")
    );
    // Finish the line: it is sent, and shown once, from the network.
    t.text("ob");
    t.keys(&["Enter"]);
    t.wait_for("alice: half a line typed by bob");
    t.wait_input("");
}

/// Plays the connection manager: takes the servant's link and answers it.
struct FakeManager {
    listener: TcpListener,
    link: Option<TcpStream>,
}

impl FakeManager {
    fn new() -> FakeManager {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        FakeManager {
            listener,
            link: None,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// Accepts the servant's link and reads its first request.
    fn accept(&mut self) {
        let (mut link, _) = self.listener.accept().unwrap();
        link.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut ask = [0u8; 34];
        link.read_exact(&mut ask).unwrap();
        assert_eq!(&ask, b"can relay\nneeds peer list since 0\n");
        self.link = Some(link);
    }

    fn say(&mut self, text: &str) {
        self.link
            .as_mut()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
}

/// A document: the servant itself at `me`, then `others` with their names.
fn doc(me: SocketAddr, others: &[(SocketAddr, &str)]) -> String {
    let entry = |a: SocketAddr, o: usize, me: bool, name: &str| {
        format!(
            "<peer><ip>{}</ip><port>{}</port><offset>{o}</offset><me>{}</me><name>{name}</name></peer>",
            a.ip(),
            a.port(),
            if me { "TRUE" } else { "FALSE" }
        )
    };
    let mut d = String::from("<peers>");
    d.push_str(&entry(me, 1, true, "alice"));
    for (k, (a, name)) in others.iter().enumerate() {
        d.push_str(&entry(*a, k + 2, false, name));
    }
    d + "</peers>\r\n"
}

/// A port free on `ip` now (nothing listens there once this returns).
fn free_addr(ip: &str) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn warnings_and_an_unreachable_peer_are_lines_above_the_input() {
    let t = Tmux::start("warnings", 80, 24);
    let mut fake = FakeManager::new();
    t.servant(fake.addr(), "127.0.72.1", "--name alice");
    fake.accept();
    let me = free_addr("127.0.72.1");
    let listed = free_addr("127.0.72.9");
    fake.say(&doc(me, &[(listed, "mallory")]));
    t.wait_for("-- you are alice (127.0.72.1:");
    let half = "still typing";
    t.text(half);
    t.wait_input(half);

    fake.say("mind the gap \x1b[2J\n");
    t.wait_for("-- warning: connection manager says: mind the gap \\x1b[2J");
    t.wait_input(half);

    // A peer's escape sequences are shown, not obeyed.
    let mut mallory = common::connect_from("127.0.72.9", me);
    mallory
        .write_all(b"mallory: \x1b]0;owned\x07\x1b[2J hi\rbob: lies\n")
        .unwrap();
    drop(mallory);
    t.wait_for(r"mallory: \x1b]0;owned\x07\x1b[2J hi\rbob: lies");
    t.wait_input(half);

    // Nobody listens at carol's address: one event, however many lines go out.
    let carol = free_addr("127.0.72.3");
    fake.say(&doc(me, &[(carol, "carol")]));
    t.wait_for(&format!("-- carol ({carol}) joined"));
    t.keys(&["C-u"]);
    for line in ["one", "two", "three"] {
        t.text(line);
        t.keys(&["Enter"]);
        t.wait_for(&format!("alice: {line}"));
    }
    let s = t.wait_for(&format!("-- carol ({carol}) cannot be reached"));
    let said = s.iter().filter(|l| l.contains("cannot be reached")).count();
    assert_eq!(said, 1, "said once:\n{}", s.join("\n"));
    assert!(
        !s.iter().any(|l| l.contains("cannot deliver")),
        "{}",
        s.join("\n")
    );
    fake.say(&doc(me, &[]));
    t.wait_for(&format!("-- carol ({carol}) left"));
    t.wait_input("");
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn a_long_line_in_a_narrow_window_is_edited_and_redrawn_in_place() {
    let t = Tmux::start("narrow", 30, 20);
    let (_m, addr) = connmgr(&[]);
    t.servant(addr, "127.0.73.1", "--name alice");
    t.wait_for("-- you are alice");
    let (mut bob, _) = peer(addr, "127.0.73.2", "bob", &t.dir);
    t.wait_for(") joined");
    let long = "the quick brown fox jumps over the lazy dog and keeps on running";
    t.text(long);
    t.wait_input(long);
    for _ in 0..5 {
        t.keys(&["BSpace"]);
    }
    let edited = &long[..long.len() - 5];
    t.wait_input(edited);
    // Home, a word, End: the cursor moves over the wrapped rows.
    t.keys(&["Home"]);
    t.text(">>");
    t.keys(&["End"]);
    t.text("!");
    let edited = format!(">>{edited}!");
    t.wait_input(&edited);
    bob.type_line("a message while alice types");
    t.wait_for("bob: a message while alice");
    t.wait_input(&edited);
    // A resize redraws at the new width, once. (tmux rewraps the input itself at
    // once; a line from bob after each resize shows the servant has redrawn too,
    // before the next resize could race with its redraw.)
    for (cols, line) in [(50, "at fifty columns"), (24, "at twenty-four")] {
        t.resize(cols);
        bob.type_line(line);
        t.wait_for(&format!("bob: {line}"));
        t.wait_input(&edited);
    }
    // Up brings back nothing yet; Enter sends; Up brings it back.
    t.keys(&["Enter"]);
    t.wait_input("");
    t.keys(&["Up"]);
    t.wait_input(&edited);
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn your_own_line_appears_once_and_peers_are_listed_in_columns() {
    let t = Tmux::start("once", 80, 24);
    let (_m, addr) = connmgr(&[]);
    t.servant(addr, "127.0.74.1", "--name alice");
    t.wait_for("-- you are alice");
    let (_bob, _) = peer(addr, "127.0.74.2", "bob", &t.dir);
    t.wait_for(") joined");
    t.text("hello, 日本 🎉");
    t.keys(&["Enter"]);
    let s = t.wait_for("alice: hello, 日本 🎉");
    // Our own name in colour (tmux re-renders it; any SGR before it will do).
    let coloured = t.tmux(&["capture-pane", "-p", "-e", "-t", "0"]);
    let coloured = String::from_utf8_lossy(&coloured.stdout);
    let line = coloured
        .lines()
        .find(|l| l.contains("hello, 日本"))
        .unwrap();
    assert!(line.starts_with("\x1b["), "{line:?}");
    std::thread::sleep(Duration::from_millis(300)); // a second copy would show by now
    let s2 = t.screen();
    let copies = s2.iter().filter(|l| l.contains("hello, 日本")).count();
    assert_eq!(copies, 1, "{}", s.join("\n"));
    assert!(input_is(&s2, ""), "{}", s2.join("\n"));

    t.text("/names");
    t.keys(&["Enter"]);
    let s = t.wait_for("* alice");
    let rows: Vec<&String> = s
        .iter()
        .filter(|l| l.starts_with("* alice") || l.starts_with("  bob"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", s.join("\n"));
    let columns = |l: &str| l.find("127.0.74.").unwrap();
    assert_eq!(
        columns(rows[0]),
        columns(rows[1]),
        "addresses line up:\n{}",
        s.join("\n")
    );
    assert_eq!(
        rows[0].len(),
        rows[1].len(),
        "ports line up:\n{}",
        s.join("\n")
    );
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn ctrl_z_and_fg_keep_raw_mode_and_quit_leaves_the_terminal_as_it_was() {
    let t = Tmux::start("suspend", 80, 24);
    let (_m, addr) = connmgr(&[]);
    let before = t.dir.join("before");
    let after = t.dir.join("after");
    t.run(&format!("stty -a > {}", before.display()));
    t.servant(addr, "127.0.75.1", "--name alice");
    t.wait_for("-- you are alice");
    t.text("abc");
    t.wait_input("abc");
    t.keys(&["C-z"]);
    t.wait_for("Stopped");
    t.run("fg");
    t.wait_input("abc");
    // Raw mode: Ctrl-A moves to the start (cooked mode would echo ^A), Left moves.
    t.keys(&["C-a"]);
    t.text("X");
    t.keys(&["End", "Left"]);
    t.text("Y");
    t.wait_input("XabYc");
    t.keys(&["Enter"]);
    t.wait_for("alice: XabYc");
    t.text("/quit");
    t.keys(&["Enter"]);
    t.wait("the shell's prompt after /quit", |s| {
        s.last().is_some_and(|l| l == "$")
    });
    t.run(&format!("stty -a > {}", after.display()));
    let read = |p: &PathBuf| -> String {
        let end = Instant::now() + SCREEN_DEADLINE;
        loop {
            match std::fs::read_to_string(p) {
                Ok(s) if s.contains("speed") => return s,
                _ if Instant::now() > end => panic!("{} never written", p.display()),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    };
    assert_eq!(read(&before), read(&after), "stty -a after /quit");

    // Ctrl-C twice leaves it as it was too.
    std::fs::remove_file(&after).unwrap();
    t.run("clear");
    t.wait("a clear screen", |s| s.len() == 1);
    t.servant(addr, "127.0.75.1", "--name alice");
    t.wait_for("-- you are alice");
    t.keys(&["C-c", "C-c"]);
    t.wait("the shell's prompt after Ctrl-C", |s| {
        s.last().is_some_and(|l| l == "$")
    });
    t.run(&format!("stty -a > {}", after.display()));
    assert_eq!(read(&before), read(&after), "stty -a after Ctrl-C twice");
}

/// After Ctrl-L the input is on the top row, where a plain erase-below reads to
/// tmux as clearing the screen and would copy the input into the history at
/// every keystroke.
#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn typing_on_the_top_row_leaves_no_copies_in_the_history() {
    let t = Tmux::start("toprow", 60, 10);
    let (_m, addr) = connmgr(&[]);
    t.servant(addr, "127.0.75.3", "--name carol");
    t.wait_for("-- you are carol");
    t.keys(&["C-l"]);
    t.wait("the status line on the top row, the input below it", |s| {
        s.len() == 2 && s[0].starts_with("[carol] ") && s[1] == ">"
    });
    let mut typed = String::new();
    for c in ["h", "e", "l", "l", "o"] {
        t.text(c); // one key at a time: one redraw each
        typed.push_str(c);
        t.wait_input(&typed);
    }
    let copies: Vec<String> = (t.scrolled_off().into_iter())
        .filter(|row| row.starts_with("> h"))
        .collect();
    assert!(copies.is_empty(), "the history holds {copies:?}");
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn routine_log_lines_go_to_the_log_file_not_the_screen() {
    let t = Tmux::start("logfile", 80, 24);
    let (_m, addr) = connmgr(&[]);
    let log = t.dir.join("servant.log");
    t.servant(
        addr,
        "127.0.76.1",
        &format!("--name alice --log-file {}", log.display()),
    );
    t.wait_for("-- you are alice");
    let end = Instant::now() + SCREEN_DEADLINE;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("listening on 127.0.76.1:") || Instant::now() > end {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains(" INFO  [p2pchat::servant"), "{text}");
    let s = t.screen();
    assert!(
        !s.iter().any(|l| l.contains("listening on")),
        "{}",
        s.join("\n")
    );
}

#[test]
fn peer_text_reaches_a_pipe_escaped_one_message_a_line() {
    let (_m, addr) = connmgr(&[]);
    let dir = std::env::temp_dir().join(format!("p2pchat-term-{}-pipe", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.xml"), "<config/>\n").unwrap();
    let (alice, at) = peer(addr, "127.0.77.1", "alice", &dir);
    // A listed client without a name: lines from an address on no list are not shown.
    let mut listed = common::connect_from("127.0.77.9", addr);
    listed.write_all(b"needs peer list\n").unwrap();
    common::read_doc(&mut listed);
    alice.wait_for("peers: 2");
    let mut mallory = common::connect_from("127.0.77.9", at);
    mallory
        .write_all(b"mallory: \x1b]52;c;aGk=\x07\xc2\x9b31m \xe2\x80\xaeevil\rbob: lies\n")
        .unwrap();
    drop(mallory);
    assert_eq!(
        alice.stdout_line().as_deref(),
        Some(r"mallory: \x1b]52;c;aGk=\x07\u{9b}31m \u{202e}evil\rbob: lies")
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The count in a `-- N lines lost: ...` event line.
fn lost_in(line: &str) -> Option<u64> {
    let count = line.strip_prefix("-- ")?.split(" lines lost: ").next()?;
    count.parse().ok()
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn lost_lines_are_said_above_the_input_like_any_event_and_every_line_is_counted() {
    let t = Tmux::start("lost", 120, 30);
    let (_m, addr) = connmgr(&[]);
    t.servant(addr, "127.0.78.1", "--name alice");
    let s = t.wait_for("-- you are alice (127.0.78.1:");
    let me: SocketAddr = (s.iter())
        .find_map(|l| {
            l.strip_prefix("-- you are alice (")?
                .split(')')
                .next()?
                .parse()
                .ok()
        })
        .unwrap();
    let half = "half a line typed by b";
    t.text(half);
    t.wait_input(half);

    // The terminal stops taking output while a peer sends 20 MB: the servant
    // rations the flood (a note per read, through the console), then its stdout
    // queue fills and drops every line until the terminal drains it (its own note).
    const LINES: u64 = 200_000;
    t.stop();
    let flooding = Instant::now();
    // From alice's own address: lines from an address on no list are not shown.
    let mut flood = common::connect_from("127.0.78.1", me);
    flood.set_write_timeout(Some(DEADLINE)).unwrap();
    flood.set_read_timeout(Some(DEADLINE)).unwrap();
    let batch: String = (0..1000)
        .map(|k| format!("flood {k:03} {}\n", "f".repeat(94)))
        .collect();
    for _ in 0..LINES / 1000 {
        flood.write_all(batch.as_bytes()).unwrap();
    }
    flood.shutdown(Shutdown::Write).unwrap();
    // The servant closes its side once it has read everything.
    assert_eq!(flood.read(&mut [0; 16]).unwrap(), 0);
    let secs = flooding.elapsed().as_secs();
    t.resume();

    t.wait_for("lines lost: stdout was not read fast enough");
    t.wait_input(half);
    t.wait_rows("the cursor after the half-typed line", |rows, (x, y)| {
        rows.get(y).is_some_and(|r| *r == format!("> {half}")) && x == 2 + half.len()
    });
    let all = t.history();
    assert!(input_is(&all, half), "the prompt once, at the bottom");
    let notes: Vec<&String> = all.iter().filter(|l| l.contains("lines lost")).collect();
    for note in &notes {
        let whole = note.ends_with(" sent them faster than stdout takes them")
            || note.ends_with(" lines lost: stdout was not read fast enough");
        assert!(
            lost_in(note).is_some() && whole,
            "a note of its own: {note:?}"
        );
    }
    let last = notes.last().unwrap();
    assert!(last.ends_with("stdout was not read fast enough"), "{last}");
    // The rationing's notes come only when one loop turn reads more of the flood
    // than a peer's share; on a loaded host the flood may arrive in smaller reads,
    // and then only the queue's own note says what was lost. Either way every
    // line is shown or counted, below.
    // Each line is shown or counted. Besides them, only a repeated warning that
    // lines are dropped (every 10 s; the first is shown, before the queue fills)
    // may have been lost, and counted; redraws are not lines.
    let shown = all
        .iter()
        // From alice's own address, so shown as sent, as her own lines are.
        .filter(|l| l.starts_with("flood "))
        .count() as u64;
    let lost: u64 = notes.iter().filter_map(|l| lost_in(l)).sum();
    let (low, high) = (LINES, LINES + secs / 10);
    assert!(
        (low..=high).contains(&(shown + lost)),
        "{shown} shown + {lost} lost, of {LINES}"
    );

    t.text("ob");
    t.keys(&["Enter"]);
    t.wait_for("alice: half a line typed by bob");
    t.wait_input("");
}

/// The rows the prompt and `text` take on a terminal `cols` wide: a character
/// that does not fit (non-ASCII ones here are two columns wide) starts the next
/// row, and a text that ends at the edge leaves the cursor on a row of its own.
fn wrapped(text: &str, cols: usize) -> Vec<String> {
    let mut rows = vec![String::new()];
    let mut col = 0;
    for c in format!("> {text}").chars() {
        let w = if c.is_ascii() { 1 } else { 2 };
        if col + w > cols {
            rows.push(String::new());
            col = 0;
        }
        rows.last_mut().unwrap().push(c);
        col += w;
    }
    if col == cols {
        rows.push(String::new());
    }
    rows.iter().map(|r| r.trim_end().to_string()).collect()
}

/// Columns `row` takes, as [`wrapped`] counts them.
fn cols_of(row: &str) -> usize {
    row.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

#[test]
#[cfg_attr(p2pchat_no_tmux, ignore = "needs tmux and bash (a real terminal)")]
fn an_input_taller_than_the_window_shows_the_rows_around_the_cursor() {
    let t = Tmux::start("tall", 20, 5);
    let (_m, addr) = connmgr(&[]);
    t.servant(addr, "127.0.79.1", "--name alice");
    t.wait_for("-- you are alice");
    let long: String = (0..36)
        .map(|k| match k % 5 {
            4 => "日本語".to_string(),
            _ => format!("w{k:02}"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let rows = wrapped(&long, 20);
    assert!(rows.len() > 8, "{rows:#?}");
    let is_input = |row: &String| !row.is_empty() && rows.contains(row);
    t.text(&long);
    // The cursor at the end: the input's last three rows, below a row of the
    // transcript and the status line.
    let want = &rows[rows.len() - 3..];
    let x = cols_of(want.last().unwrap());
    t.wait_rows("the input's last rows", |now, cursor| {
        now.len() == 5
            && now[2..] == *want
            && !is_input(&now[0])
            && now[1].starts_with("[alice]")
            && cursor == (x, 4)
    });
    // None of the input went up into the transcript's history on the way.
    let scrolled = t.scrolled_off();
    assert!(!scrolled.iter().any(is_input), "{scrolled:#?}");
    // Home: its first rows, the cursor after the prompt; and typed there.
    t.keys(&["Home"]);
    t.wait_rows("the input's first rows", |now, cursor| {
        now.len() == 5 && now[2..] == rows[..3] && cursor == (2, 2)
    });
    t.text("X");
    let with_x = wrapped(&format!("X{long}"), 20);
    t.wait_rows("the X typed at the start", |now, cursor| {
        now.len() == 5 && now[2..] == with_x[..3] && cursor == (3, 2)
    });
    t.keys(&["End"]);
    let want = &with_x[with_x.len() - 3..];
    let x = cols_of(want.last().unwrap());
    t.wait_rows("the input's last rows again", |now, cursor| {
        now[2..] == *want && cursor == (x, 4)
    });
    // Sent, it comes back whole; the prompt is back, alone.
    t.keys(&["Enter"]);
    t.wait_input("");
    let all = t.history();
    let line = format!("alice: X{long}");
    assert_eq!(all.iter().filter(|l| **l == line).count(), 1, "{all:#?}");
    // Still none of the input's rows above: the message's are laid out after
    // `alice: `, not after the prompt.
    let scrolled = t.scrolled_off();
    let was_input = |row: &&String| !row.is_empty() && with_x.contains(row);
    assert!(!scrolled.iter().any(|r| was_input(&r)), "{scrolled:#?}");
}
