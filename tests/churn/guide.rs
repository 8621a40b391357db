//! Every `churn` command in docs/CHURN.md, run as written against real servers:
//! each `connmgr` line of the guide is started (on a port the OS chooses, put in
//! place of the guide's), the redis and HTTP examples get a `churn
//! baseline-server` that answers as those would, `$!` and `$PID` are the last
//! manager's pid, and runs are cut short (`-d 0.3`, `-n 200`).

use std::collections::HashMap;

use super::common::{bin, Daemon};

/// The guide's shell lines: `(text, in a code block)`, comments removed.
fn commands(guide: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in guide.lines().map(str::trim) {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if in_sh && (line.starts_with("churn ") || line.starts_with("connmgr ")) {
            out.push(line.to_string());
        }
    }
    out
}

/// Shell words: single quotes kept literal, a `#` comment and a trailing `&` dropped.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    w.push(q);
                }
            }
            '#' if word.is_none() => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    if words.last().is_some_and(|w| w == "&") {
        words.pop();
    }
    words
}

#[test]
fn every_example_in_the_guide_runs_as_written() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CHURN.md"))
        .expect("docs/CHURN.md");
    let redis = Daemon::spawn(
        env!("CARGO_BIN_EXE_churn"),
        &["baseline-server", "--reply", "+PONG\\r\\n"],
    );
    let http = Daemon::spawn(
        env!("CARGO_BIN_EXE_churn"),
        &[
            "baseline-server",
            "--request-end",
            "\\r\\n\\r\\n",
            "--reply",
            "HTTP/1.0 200 OK\\r\\n\\r\\nhello",
            "--close",
        ],
    );
    let mut ports: HashMap<String, String> = HashMap::new();
    ports.insert("6379".into(), redis.listening_addr().port().to_string());
    ports.insert("8080".into(), http.listening_addr().port().to_string());
    let dir = std::env::temp_dir().join(format!("p2pchat-guide-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut managers = Vec::new();
    let mut pid = String::new();
    let mut ran = 0;
    for line in commands(&guide) {
        let mut words = shell_words(&line);
        if words[0] == "connmgr" {
            let at = words.iter().position(|w| w == "--port").expect("--port");
            let port = std::mem::replace(&mut words[at + 1], "0".into());
            let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
            args.extend(["--bind", "127.0.0.1"]);
            let m = Daemon::spawn(&bin("connmgr"), &args);
            ports.insert(port, m.listening_addr().port().to_string());
            pid = m.pid().to_string();
            managers.push(m);
            continue;
        }
        let mut stdout_to = None;
        if let Some(at) = words.iter().position(|w| w == ">") {
            stdout_to = Some(dir.join(&words[at + 1]));
            words.truncate(at);
        }
        let timed = words.iter().any(|w| w == "-d" || w == "-n");
        let mut args: Vec<String> = Vec::new();
        let mut prev = String::new();
        for w in &words[1..] {
            let w = match (prev.as_str(), w.as_str()) {
                ("-d", _) => "0.3".to_string(),
                ("-n", _) => "200".to_string(),
                (_, "$!" | "$PID") => pid.clone(),
                ("-t", t) => match t.rsplit_once(':') {
                    Some((host, port)) => format!("{host}:{}", ports[port]),
                    None => t.to_string(),
                },
                (_, f) if f.ends_with(".json") => dir.join(f).display().to_string(),
                (_, w) => w.to_string(),
            };
            prev = w.clone();
            args.push(w);
        }
        if !timed && !matches!(words[1].as_str(), "compare" | "merge") {
            args.extend(["-d".into(), "0.3".into()]);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_churn"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("churn runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{line}\nas {args:?}:\n{err}");
        if let Some(path) = stdout_to {
            std::fs::write(path, &out.stdout).unwrap();
        }
        ran += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ran >= 12, "only {ran} examples found in the guide");
    drop(managers);
}
