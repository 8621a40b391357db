//! The harness against `sh` scripts: waits, kept lines, stdin, unread pipes.

use super::*;

fn sh(script: &str) -> Spawn {
    Spawn::new("/bin/sh").args(["-c", script]).name("sh")
}

#[test]
fn waits_see_each_line_once_in_order() {
    let p = sh("echo one >&2; echo listening on 127.0.0.1:9 >&2; echo two >&2; echo out")
        .start()
        .unwrap();
    let t = Duration::from_secs(10);
    assert_eq!(p.listening_addr(t).unwrap(), "127.0.0.1:9".parse().unwrap());
    assert_eq!(p.wait_for("two", t).unwrap(), "two");
    // "one" came before the lines already waited for.
    let e = p.wait_for("one", t).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert!(
        e.to_string().contains("sh was to log \"one\" but exited"),
        "{e}"
    );
    assert_eq!(p.count("t"), 2);
    assert_eq!(p.stdout_line(t).unwrap(), "out");
    assert!(p.log_ended());
}

#[test]
fn a_missing_line_times_out_with_the_log() {
    let mut p = sh("echo starting >&2; exec sleep 30").start().unwrap();
    let e = p.wait_for("ready", Duration::from_millis(50)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert!(e.to_string().contains("starting"), "{e}");
    p.signal(libc::SIGTERM).unwrap();
    let status = p.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!status.success());
}

#[test]
fn only_the_last_lines_are_kept_and_waits_skip_ahead() {
    let p = sh("for i in 1 2 3 4 5 6; do echo line $i >&2; done; echo end >&2")
        .keep(3)
        .start()
        .unwrap();
    let t = Duration::from_secs(10);
    p.wait_for("end", t).unwrap();
    assert_eq!(p.log_text(), "line 5\nline 6\nend");
    assert!(p.wait_for("line 1", Duration::ZERO).is_err());
}

#[test]
fn typed_lines_reach_stdin_and_invalid_utf8_does_not_stop_the_reader() {
    let mut p = sh("printf 'bad \\377\\n' >&2; read l; echo \"got $l\"")
        .start()
        .unwrap();
    let t = Duration::from_secs(10);
    p.type_line("hello").unwrap();
    assert_eq!(p.stdout_line(t).unwrap(), "got hello");
    assert_eq!(p.wait_for("bad", t).unwrap(), "bad \u{fffd}");
}

#[test]
fn wake_runs_on_matching_lines_and_at_the_end() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let p = sh("echo a >&2; echo ready >&2; echo b >&2")
        .wake_on("ready", move || {
            let _ = tx.lock().unwrap().send(());
        })
        .start()
        .unwrap();
    let t = Duration::from_secs(10);
    rx.recv_timeout(t).unwrap();
    rx.recv_timeout(t).unwrap();
    assert!(p.log_ended());
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
}

#[test]
fn an_unread_pipe_gives_its_readiness_line_then_is_followed_from_there() {
    let mut p = sh("echo a >&2; echo ready >&2; echo b >&2")
        .unread_stderr()
        .start()
        .unwrap();
    let t = Duration::from_secs(10);
    let log = p.child.stderr.as_mut().unwrap();
    assert_eq!(read_line_until(log, "ready", t).unwrap(), "ready");
    p.follow_stderr();
    assert_eq!(p.wait_for("", t).unwrap(), "b");
}

#[test]
fn a_missing_program_is_named() {
    let e = Spawn::new("/nonexistent/p2pchat-x").start().err().unwrap();
    assert!(
        e.to_string()
            .contains("cannot start /nonexistent/p2pchat-x"),
        "{e}"
    );
}
