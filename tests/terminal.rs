//! The servant's chat window as a user sees it: the servant under test runs in a
//! real terminal (a tmux pane, with bash for job control), its peers and the
//! manager are the real binaries on loopback, and the screen is read with
//! `tmux capture-pane -p`.
//!
//! Each test has its own tmux server (`tmux -L p2pchat-test-PID-NAME`), killed when
//! its guard drops, and its own `127.0.N.x` block. Every wait polls the screen
//! until a deadline. Without tmux or bash the tests say so and pass, unless
//! `P2PCHAT_REQUIRE_NETNS=1` (CI), which makes that a failure.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{bin, connmgr, Daemon, DEADLINE};

/// Screens are read under load on 2 shared cores: waits get longer than elsewhere.
const SCREEN_DEADLINE: Duration = Duration::from_secs(20);

/// A private tmux server with one pane running bash, and a temp directory.
struct Tmux {
    socket: String,
    dir: PathBuf,
}

impl Tmux {
    /// A `cols` x `rows` pane, or `None` (and a printed reason) without tmux or bash.
    fn start(test: &str, cols: u16, rows: u16) -> Option<Tmux> {
        for (tool, arg) in [("tmux", "-V"), ("bash", "--version")] {
            let found = Command::new(tool)
                .arg(arg)
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                let why = format!("{tool} is not installed; the terminal tests need it");
                if std::env::var("P2PCHAT_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
                    panic!("{why}");
                }
                // Past the output capture, so a skip is seen.
                let _ = writeln!(std::io::stderr(), "skipping {test}: {why}");
                return None;
            }
        }
        let dir = std::env::temp_dir().join(format!("p2pchat-term-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.xml"), "<config/>\n").unwrap();
        let t = Tmux {
            socket: format!("p2pchat-test-{}-{test}", std::process::id()),
            dir,
        };
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let shell = "env PS1='$ ' bash --norc --noprofile";
        t.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &cols,
            "-y",
            &rows,
            shell,
        ]);
        t.tmux(&["set-option", "-g", "status", "off"]);
        t.wait("the shell's prompt", |s| {
            s.iter().any(|l| l.starts_with('$'))
        });
        Some(t)
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e}"));
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Keys by tmux's names (`Enter`, `C-z`, `BSpace`, `Left`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Text typed as it is.
    fn text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
    }

    /// A command line for the shell.
    fn run(&self, line: &str) {
        self.text(line);
        self.keys(&["Enter"]);
    }

    /// Starts the servant under test in the pane.
    fn servant(&self, manager: SocketAddr, bind: &str, extra: &str) {
        let config = self.dir.join("config.xml");
        let servant = bin("servant");
        self.run(&format!(
            "env -u RUST_LOG -u NO_COLOR {servant} --config {} --connmgr {manager} --bind {bind} --poll-interval 200 {extra}",
            config.display()
        ));
    }

    /// The screen's lines, rows the terminal wrapped joined (`-J`), trailing
    /// spaces trimmed.
    fn screen(&self) -> Vec<String> {
        let out = self.tmux(&["capture-pane", "-p", "-J", "-t", "0"]);
        let mut rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect();
        while rows.last().is_some_and(String::is_empty) {
            rows.pop();
        }
        rows
    }

    /// Polls the screen until `ok` holds; panics with the screen at the deadline.
    fn wait(&self, what: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        let end = Instant::now() + SCREEN_DEADLINE;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if Instant::now() > end {
                panic!("the screen never showed {what}:\n{}", s.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a row contains `text`.
    fn wait_for(&self, text: &str) -> Vec<String> {
        self.wait(&format!("{text:?}"), |s| s.iter().any(|l| l.contains(text)))
    }

    /// Waits until the input, at the bottom, is `> ` and `typed`, whole and once.
    fn wait_input(&self, typed: &str) -> Vec<String> {
        self.wait(&format!("the input {typed:?} at the bottom"), |s| {
            input_is(s, typed)
        })
    }

    /// Resizes the window, and waits until the pane's terminal says so too: tmux
    /// rewraps its screen at once but tells the terminal (which sends SIGWINCH)
    /// a moment later, and a program drawing in between draws at the old width.
    fn resize(&self, cols: u16) {
        self.tmux(&["resize-window", "-t", "0", "-x", &cols.to_string()]);
        let out = self.tmux(&["display-message", "-p", "-t", "0", "#{pane_tty}"]);
        let tty = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let pty = std::os::unix::fs::OpenOptionsExt::custom_flags(
            std::fs::OpenOptions::new().read(true),
            libc::O_NOCTTY,
        )
        .open(&tty)
        .unwrap_or_else(|e| panic!("{tty}: {e}"));
        let end = Instant::now() + SCREEN_DEADLINE;
        loop {
            let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
            // SAFETY: TIOCGWINSZ fills the winsize we own, on a descriptor we opened.
            let rc = unsafe {
                libc::ioctl(
                    std::os::fd::AsRawFd::as_raw_fd(&pty),
                    libc::TIOCGWINSZ,
                    &mut ws,
                )
            };
            if rc == 0 && ws.ws_col == cols {
                return;
            }
            assert!(
                Instant::now() < end,
                "{tty} never became {cols} columns wide"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the screen ends with the prompt and `typed` (however many rows it wraps
/// to: [`Tmux::screen`] joins them), and shows the prompt nowhere else since the
/// shell's last command line (what was on screen before Ctrl-Z stays there).
fn input_is(screen: &[String], typed: &str) -> bool {
    let want = format!("> {typed}");
    let since = screen
        .iter()
        .rposition(|l| l.starts_with("$ "))
        .map_or(0, |k| k + 1);
    let prompts = screen[since..]
        .iter()
        .filter(|l| l.starts_with('>'))
        .count();
    screen.last().is_some_and(|l| *l == want.trim_end()) && prompts == 1
}

/// A peer in pipe mode, named `name` on `bind`, and the address it listens on.
fn peer(
    manager: SocketAddr,
    bind: &str,
    name: &str,
    dir: &std::path::Path,
) -> (Daemon, SocketAddr) {
    let config = dir.join("config.xml");
    let manager = manager.to_string();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--connmgr",
        &manager,
        "--bind",
        bind,
        "--name",
        name,
        "--poll-interval",
        "200",
    ];
    let d = Daemon::spawn(&bin("servant"), &args);
    let at = d.listening_addr();
    (d, at)
}

#[test]
fn the_half_typed_line_survives_joins_messages_leaves_and_the_manager_going() {
    let Some(t) = Tmux::start("survives", 80, 24) else {
        return;
    };
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
fn warnings_and_an_unreachable_peer_are_lines_above_the_input() {
    let Some(t) = Tmux::start("warnings", 80, 24) else {
        return;
    };
    let mut fake = FakeManager::new();
    t.servant(fake.addr(), "127.0.72.1", "--name alice");
    fake.accept();
    let me = free_addr("127.0.72.1");
    fake.say(&doc(me, &[]));
    t.wait_for("-- you are alice (127.0.72.1:");
    let half = "still typing";
    t.text(half);
    t.wait_input(half);

    fake.say("mind the gap \x1b[2J\n");
    t.wait_for("-- warning: connection manager says: mind the gap \\x1b[2J");
    t.wait_input(half);

    // A peer's escape sequences are shown, not obeyed.
    let mut mallory = TcpStream::connect(me).unwrap();
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
fn a_long_line_in_a_narrow_window_is_edited_and_redrawn_in_place() {
    let Some(t) = Tmux::start("narrow", 30, 20) else {
        return;
    };
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
fn your_own_line_appears_once_and_peers_are_listed_in_columns() {
    let Some(t) = Tmux::start("once", 80, 24) else {
        return;
    };
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
fn ctrl_z_and_fg_keep_raw_mode_and_quit_leaves_the_terminal_as_it_was() {
    let Some(t) = Tmux::start("suspend", 80, 24) else {
        return;
    };
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

#[test]
fn routine_log_lines_go_to_the_log_file_not_the_screen() {
    let Some(t) = Tmux::start("logfile", 80, 24) else {
        return;
    };
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
    let mut mallory = TcpStream::connect(at).unwrap();
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
