//! The terminal tests' tmux: a private server with one pane running bash, read
//! with `tmux capture-pane -p`, and the servant started in it. Shared by the
//! terminal and window tests, each using part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{bin, named_servant, Daemon};

/// Screens are read under load on 2 shared cores: waits get longer than elsewhere.
pub const SCREEN_DEADLINE: Duration = Duration::from_secs(20);

/// A private tmux server with one pane running bash, and a temp directory.
pub struct Tmux {
    socket: String,
    pub dir: PathBuf,
    /// The server's process, which reads what the pane's programs write.
    server: libc::pid_t,
}

impl Tmux {
    /// A `cols` x `rows` pane. The tests are ignored without tmux or bash
    /// (build.rs); one run anyway fails saying which is missing.
    pub fn start(test: &str, cols: u16, rows: u16) -> Tmux {
        for (tool, arg) in [("tmux", "-V"), ("bash", "--version")] {
            let found = Command::new(tool)
                .arg(arg)
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(found, "{tool} is not installed; the terminal tests need it");
        }
        let dir = std::env::temp_dir().join(format!("p2pchat-term-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.xml"), "<config/>\n").unwrap();
        // A history long enough to count a flood's lines in.
        let conf = dir.join("tmux.conf");
        std::fs::write(&conf, "set -g status off\nset -g history-limit 100000\n").unwrap();
        let mut t = Tmux {
            socket: format!("p2pchat-test-{}-{test}", std::process::id()),
            dir,
            server: 0,
        };
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let shell = "env PS1='$ ' bash --norc --noprofile";
        t.tmux(&[
            "-f",
            conf.to_str().unwrap(),
            "new-session",
            "-d",
            "-x",
            &cols,
            "-y",
            &rows,
            shell,
        ]);
        let pid = t.tmux(&["display-message", "-p", "#{pid}"]);
        t.server = String::from_utf8_lossy(&pid.stdout).trim().parse().unwrap();
        t.wait("the shell's prompt", |s| {
            s.iter().any(|l| l.starts_with('$'))
        });
        t
    }

    pub fn tmux(&self, args: &[&str]) -> Output {
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
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Text typed as it is.
    pub fn text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
    }

    /// A command line for the shell.
    pub fn run(&self, line: &str) {
        self.text(line);
        self.keys(&["Enter"]);
    }

    /// Starts the servant under test in the pane, its history kept in the test's
    /// folder (`state/p2pchat/`), without time stamps unless `extra` speaks of them.
    pub fn servant(&self, manager: SocketAddr, bind: &str, extra: &str) {
        let config = self.dir.join("config.xml");
        let servant = bin("servant");
        let stamps = if extra.contains("timestamps") {
            ""
        } else {
            "--no-timestamps"
        };
        self.run(&format!(
            "env -u RUST_LOG -u NO_COLOR XDG_STATE_HOME={} {servant} --config {} --connmgr {manager} --bind {bind} --poll-interval 200 {stamps} {extra}",
            self.dir.join("state").display(),
            config.display()
        ));
    }

    /// The screen's lines, rows the terminal wrapped joined (`-J`), trailing
    /// spaces trimmed.
    pub fn screen(&self) -> Vec<String> {
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
    pub fn wait(&self, what: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
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

    /// Polls the pane's rows ([`Tmux::rows`]) and the cursor until `ok` holds;
    /// panics with them at the deadline.
    pub fn wait_rows(&self, what: &str, ok: impl Fn(&[String], (usize, usize)) -> bool) {
        let end = Instant::now() + SCREEN_DEADLINE;
        loop {
            let (rows, cursor) = (self.rows(), self.cursor());
            if ok(&rows, cursor) {
                return;
            }
            if Instant::now() > end {
                panic!(
                    "the pane never showed {what}:\n{}\ncursor {cursor:?}",
                    rows.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a row contains `text`.
    pub fn wait_for(&self, text: &str) -> Vec<String> {
        self.wait(&format!("{text:?}"), |s| s.iter().any(|l| l.contains(text)))
    }

    /// Waits until the input, at the bottom, is `> ` and `typed`, whole and once.
    pub fn wait_input(&self, typed: &str) -> Vec<String> {
        self.wait(&format!("the input {typed:?} at the bottom"), |s| {
            input_is(s, typed)
        })
    }

    /// The pane's rows as they are, wrapped rows apart, trailing spaces trimmed.
    pub fn rows(&self) -> Vec<String> {
        let out = self.tmux(&["capture-pane", "-p", "-t", "0"]);
        (String::from_utf8_lossy(&out.stdout).lines())
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// Every line the pane holds, its history and its screen, rows the terminal
    /// wrapped joined, trailing spaces trimmed.
    pub fn history(&self) -> Vec<String> {
        let out = self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "0"]);
        let mut rows: Vec<String> = (String::from_utf8_lossy(&out.stdout).lines())
            .map(|l| l.trim_end().to_string())
            .collect();
        while rows.last().is_some_and(String::is_empty) {
            rows.pop();
        }
        rows
    }

    /// The rows scrolled off the top of the pane, wrapped rows apart.
    pub fn scrolled_off(&self) -> Vec<String> {
        let out = self.tmux(&["capture-pane", "-p", "-S", "-", "-E", "-1", "-t", "0"]);
        (String::from_utf8_lossy(&out.stdout).lines())
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// The cursor's column and row in the pane.
    pub fn cursor(&self) -> (usize, usize) {
        let out = self.tmux(&[
            "display-message",
            "-p",
            "-t",
            "0",
            "#{cursor_x} #{cursor_y}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut xy = text.split_whitespace().map(|n| n.parse().unwrap());
        (xy.next().unwrap(), xy.next().unwrap())
    }

    /// Stops the server: what the pane's programs write piles up in the terminal
    /// until it takes no more and their writes would block, as when a terminal is
    /// paused. No other method may be called until [`Tmux::resume`].
    pub fn stop(&self) {
        // SAFETY: signals the server this guard started.
        assert_eq!(unsafe { libc::kill(self.server, libc::SIGSTOP) }, 0);
    }

    /// The server runs again and reads what piled up.
    pub fn resume(&self) {
        // SAFETY: signals the server this guard started.
        unsafe { libc::kill(self.server, libc::SIGCONT) };
    }

    /// Resizes the window, and waits until the pane's terminal says so too: tmux
    /// rewraps its screen at once but tells the terminal (which sends SIGWINCH)
    /// a moment later, and a program drawing in between draws at the old width.
    pub fn resize(&self, cols: u16) {
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
        // A stopped server would never answer kill-server.
        self.resume();
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the screen ends with the prompt and `typed` (however many rows it wraps
/// to: [`Tmux::screen`] joins them), and shows the prompt nowhere else since the
/// shell's last command line (what was on screen before Ctrl-Z stays there).
pub fn input_is(screen: &[String], typed: &str) -> bool {
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
pub fn peer(
    manager: SocketAddr,
    bind: &str,
    name: &str,
    dir: &std::path::Path,
) -> (Daemon, SocketAddr) {
    let d = named_servant(&dir.join("config.xml"), manager, bind, name, &[]);
    let at = d.listening_addr();
    (d, at)
}
