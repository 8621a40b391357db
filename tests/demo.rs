//! The `p2pchat-demo` binary end to end: its help, and a whole conversation, open and private.

use std::process::Command;

const DEMO: &str = env!("CARGO_BIN_EXE_p2pchat-demo");

#[test]
fn help_exits_0_with_the_usage() {
    let out = Command::new(DEMO).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("USAGE:") && text.contains("alice"), "{text}");
    let out = Command::new(DEMO).arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn three_servants_chat_and_every_window_shows_the_conversation() {
    let text = conversation(&[]);
    assert!(text.ends_with("Done.\n"), "{text}");
}

#[test]
fn a_private_run_makes_its_keys_shows_every_line_under_its_senders_name_and_cleans_up() {
    let text = conversation(&["--private"]);
    assert!(text.contains("connmgr's public key: "), "{text}");
    let folder = text
        .lines()
        .find_map(|l| l.strip_prefix("Making keys in "))
        .and_then(|l| l.strip_suffix(" ..."))
        .unwrap_or_else(|| panic!("no key folder named: {text}"));
    assert!(!std::path::Path::new(folder).exists(), "{folder} is left");
    assert!(text.ends_with("Done.\n"), "{text}");
}

/// Runs the demo with `args`; checks every servant's window shows the three
/// lines in order under their senders' names, and returns what it printed.
fn conversation(args: &[&str]) -> String {
    // The demo bounds each of its own steps (10 s) and kills its children on failure.
    let out = Command::new(DEMO)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["alice", "bob", "carol"] {
        let window = text
            .split(&format!("=== {name}'s window ===\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no window for {name}: {text}"));
        let lines: Vec<&str> = window.lines().take(4).collect();
        assert_eq!(
            lines,
            [
                "  alice: hi everyone, this is alice",
                "  bob: hello alice, bob here",
                "  carol: hey both, carol too",
                "  user list (/peers, * = me):",
            ],
            "{text}"
        );
    }
    text
}
