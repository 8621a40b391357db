//! The documentation agrees with the binaries. Every long flag a `--help` lists is
//! documented where users read about that binary (README's option blocks,
//! docs/SERVANT.md's synopsis and table, docs/CHURN.md), every flag those places
//! list is one the binary takes, a default both state (`[default: ...]`) is the
//! same value, and every command the docs show (`connmgr --port 8585`, `churn
//! steady ...`) uses only flags its program has. Wording may differ; flags may not.
//! `--help` and `--version` are left out: every binary has them and no option
//! block repeats them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

/// The binaries whose commands the docs show, and whose `--help` is checked.
const BINS: [&str; 4] = ["connmgr", "servant", "churn", "p2pchat-demo"];
/// Everything a user reads about the binaries.
const DOCS: [&str; 7] = [
    "README.md",
    "docs/BENCHMARKS.md",
    "docs/CHURN.md",
    "docs/DEPLOY.md",
    "docs/PROTOCOL.md",
    "docs/RELAY.md",
    "docs/SERVANT.md",
];
/// The systemd units and drop-ins, whose `ExecStart=` lines are commands too.
const UNITS: [&str; 3] = [
    "conf/connmgr.service",
    "conf/servant@.service",
    "conf/connmgr.service.d/cluster.conf",
];
/// Flags every binary takes and no option block repeats.
const UNIVERSAL: [&str; 2] = ["--help", "--version"];

/// `name --help`'s output, within the tests' deadline (the child is killed past it).
fn help(name: &str) -> String {
    let mut child = Command::new(common::bin(name))
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let mut out = child.stdout.take().expect("a piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut text = String::new();
        let _ = tx.send(out.read_to_string(&mut text).map(|_| text));
    });
    let text = rx.recv_timeout(common::DEADLINE);
    if text.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().expect("the child's exit");
    let text = text
        .unwrap_or_else(|_| {
            panic!(
                "{name} --help gave no whole answer within {:?}",
                common::DEADLINE
            )
        })
        .unwrap_or_else(|e| panic!("{name} --help: {e}"));
    assert!(status.success(), "{name} --help exited with {status}");
    text
}

fn doc(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// One option as an options list shows it: its flags (long and short) and the
/// `[default: ...]` it states, if any.
#[derive(Debug, Default)]
struct Opt {
    longs: Vec<String>,
    shorts: Vec<String>,
    default: Option<String>,
}

/// The flags in `text`: `--long` and `-s` tokens (`-V` too), each preceded by
/// neither a letter, a digit nor a dash, with where each starts.
fn flags_in(text: &str) -> Vec<(usize, String)> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' && (i == 0 || !word(b[i - 1])) {
            let long = b.get(i + 1) == Some(&b'-');
            let start = if long { i + 2 } else { i + 1 };
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'-') {
                end += 1;
            }
            let name = &text[start..end];
            let first_ok = name.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
            let short_ok = !long && name.len() == 1 && (first_ok || name == "V");
            if (long && first_ok && name.len() > 1) || short_ok {
                out.push((i, text[i..end].to_string()));
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn longs(text: &str) -> Vec<String> {
    flags_in(text)
        .into_iter()
        .map(|(_, f)| f)
        .filter(|f| f.starts_with("--"))
        .collect()
}

/// The options of a help text or an option block: an option starts on a line
/// indented four spaces whose text starts with `-`; more deeply indented lines
/// continue it. The flags are those before the first run of two spaces (the
/// column the description starts in), so a flag named in a description is not
/// taken for one the entry documents.
fn options(block: &str) -> Vec<Opt> {
    let mut opts: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if indent == 4 && text.starts_with('-') {
            let (head, rest) = text.split_once("  ").unwrap_or((text, ""));
            opts.push((head.to_string(), rest.trim().to_string()));
        } else if indent > 4 && !text.is_empty() {
            if let Some((_, desc)) = opts.last_mut() {
                desc.push(' ');
                desc.push_str(text);
            }
        }
    }
    opts.into_iter()
        .map(|(head, desc)| {
            let flags = flags_in(&head);
            Opt {
                longs: flags
                    .iter()
                    .filter(|(_, f)| f.starts_with("--"))
                    .map(|(_, f)| f.clone())
                    .collect(),
                shorts: flags
                    .iter()
                    .filter(|(_, f)| !f.starts_with("--"))
                    .map(|(_, f)| f.clone())
                    .collect(),
                default: default_of(&desc),
            }
        })
        .collect()
}

/// What follows `[default:` up to its `]`, whitespace collapsed.
fn default_of(desc: &str) -> Option<String> {
    let at = desc.find("[default:")?;
    let rest = &desc[at + "[default:".len()..];
    let end = rest.find(']').unwrap_or(rest.len());
    Some(rest[..end].split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A default's value, for comparing two ways of saying it: its first clause (up to
/// `;` or `,`), without backticks, in lower case.
fn value(default: &str) -> String {
    let first = default.split([';', ',']).next().unwrap_or("");
    first.replace('`', "").trim().to_lowercase()
}

/// The tokens of a default that are values rather than words: numbers, durations,
/// addresses, paths, variables. A table may word a default differently from
/// `--help`; these must still be there.
fn value_tokens(default: &str) -> Vec<String> {
    value(default)
        .split_whitespace()
        .map(|t| t.trim_matches(['(', ')']).to_string())
        .filter(|t| {
            t.chars().any(|c| c.is_ascii_digit())
                || t.starts_with('$')
                || t.starts_with("./")
                || t.starts_with('/')
        })
        .collect()
}

/// The fenced code block of `text` whose first line starts with `first`.
fn code_block<'a>(text: &'a str, first: &str) -> Option<&'a str> {
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let body_start = after.find('\n')? + 1;
        let body = &after[body_start..];
        let close = body.find("```")?;
        if body.trim_start().starts_with(first) {
            return Some(&body[..close]);
        }
        rest = &body[close + 3..];
    }
    None
}

/// The long flags of `opts`, less the universal ones.
fn long_set(opts: &[Opt]) -> BTreeSet<String> {
    opts.iter()
        .flat_map(|o| o.longs.iter().cloned())
        .filter(|f| !UNIVERSAL.contains(&f.as_str()))
        .collect()
}

/// Appends to `errors` every flag on one side only.
fn compare_sets(
    errors: &mut Vec<String>,
    bin: &str,
    help: &BTreeSet<String>,
    place: &str,
    docs: &BTreeSet<String>,
) {
    for f in help.difference(docs) {
        errors.push(format!("{place}: {f} is in `{bin} --help` but not here"));
    }
    for f in docs.difference(help) {
        errors.push(format!(
            "{place}: {f} is listed here but `{bin} --help` has no such flag"
        ));
    }
}

/// Appends to `errors` every default both lists state, and state differently.
fn compare_defaults(errors: &mut Vec<String>, bin: &str, help: &[Opt], place: &str, docs: &[Opt]) {
    let by_flag = |opts: &[Opt]| -> BTreeMap<String, String> {
        opts.iter()
            .filter(|o| o.longs.len() == 1)
            .filter_map(|o| Some((o.longs[0].clone(), o.default.clone()?)))
            .collect()
    };
    let (h, d) = (by_flag(help), by_flag(docs));
    for (flag, hd) in &h {
        if let Some(dd) = d.get(flag) {
            if value(hd) != value(dd) {
                errors.push(format!(
                    "{place}: {flag} [default: {dd}], but `{bin} --help` says [default: {hd}]"
                ));
            }
        }
    }
}

fn finish(errors: Vec<String>) {
    assert!(
        errors.is_empty(),
        "the docs and the binaries disagree:\n  {}",
        errors.join("\n  ")
    );
}

#[test]
fn readme_connmgr_block_matches_its_help() {
    let help = options(&help("connmgr"));
    let readme = doc("README.md");
    let block =
        code_block(&readme, "connmgr [OPTIONS]").expect("README.md has a connmgr [OPTIONS] block");
    let listed = options(block);
    let mut errors = Vec::new();
    compare_sets(
        &mut errors,
        "connmgr",
        &long_set(&help),
        "README.md (connmgr block)",
        &long_set(&listed),
    );
    compare_defaults(
        &mut errors,
        "connmgr",
        &help,
        "README.md (connmgr block)",
        &listed,
    );
    finish(errors);
}

#[test]
fn servant_docs_match_its_help() {
    let help = options(&help("servant"));
    let help_set = long_set(&help);
    let mut errors = Vec::new();

    let readme = doc("README.md");
    let block =
        code_block(&readme, "servant [OPTIONS]").expect("README.md has a servant [OPTIONS] block");
    let listed = options(block);
    compare_sets(
        &mut errors,
        "servant",
        &help_set,
        "README.md (servant block)",
        &long_set(&listed),
    );
    compare_defaults(
        &mut errors,
        "servant",
        &help,
        "README.md (servant block)",
        &listed,
    );

    let guide = doc("docs/SERVANT.md");
    let synopsis =
        code_block(&guide, "servant [").expect("docs/SERVANT.md has a servant [...] synopsis");
    let bracketed: BTreeSet<String> = flags_in(synopsis)
        .into_iter()
        .filter(|(at, f)| f.starts_with("--") && synopsis[..*at].ends_with('['))
        .map(|(_, f)| f)
        .collect();
    compare_sets(
        &mut errors,
        "servant",
        &help_set,
        "docs/SERVANT.md (synopsis)",
        &bracketed,
    );

    // The options table: a row per option, `| `--flag ARG` | meaning | default |`.
    let section = guide
        .split("## Options")
        .nth(1)
        .expect("docs/SERVANT.md has ## Options");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut table = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `-")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for f in longs(cells[1]) {
            table.insert(f, cells.get(3).copied().unwrap_or("").to_string());
        }
    }
    let table_set: BTreeSet<String> = table.keys().cloned().collect();
    compare_sets(
        &mut errors,
        "servant",
        &help_set,
        "docs/SERVANT.md (options table)",
        &table_set,
    );
    for o in help.iter().filter(|o| o.longs.len() == 1) {
        let (Some(hd), Some(cell)) = (&o.default, table.get(&o.longs[0])) else {
            continue;
        };
        let cell = cell.replace('`', "").to_lowercase();
        for token in value_tokens(hd) {
            if !cell.contains(&token) {
                errors.push(format!(
                    "docs/SERVANT.md (options table): {}'s default says nothing of {token:?}, which `servant --help` gives ([default: {hd}])",
                    o.longs[0]
                ));
            }
        }
    }
    finish(errors);
}

/// churn's flags: its options, and those its USAGE shows in brackets for one mode
/// (`churn baseline-server [--bind ADDR] [--reply-bytes N | --reply STR]`).
fn churn_flags(help: &str) -> (BTreeSet<String>, BTreeMap<String, Vec<String>>) {
    let opts = options(help);
    let mut all = long_set(&opts);
    let aliases = opts
        .iter()
        .flat_map(|o| o.longs.iter().map(|l| (l.clone(), o.shorts.clone())))
        .collect();
    let usage = help
        .split("USAGE:")
        .nth(1)
        .and_then(|u| u.split("\n\n").next())
        .expect("churn --help has a USAGE section");
    for (at, f) in flags_in(usage) {
        let before = &usage[..at];
        if f.starts_with("--") && (before.ends_with('[') || before.ends_with("| ")) {
            all.insert(f);
        }
    }
    (all, aliases)
}

#[test]
fn churn_guide_names_every_flag_of_its_help() {
    let (flags, aliases) = churn_flags(&help("churn"));
    let guide = doc("docs/CHURN.md");
    let named: BTreeSet<String> = flags_in(&guide).into_iter().map(|(_, f)| f).collect();
    let mut errors = Vec::new();
    for f in &flags {
        let short_named = aliases
            .get(f)
            .is_some_and(|s| s.iter().any(|s| named.contains(s)));
        if !named.contains(f) && !short_named {
            errors.push(format!(
                "docs/CHURN.md: {f} is in `churn --help` but the guide never names it"
            ));
        }
    }
    finish(errors);
}

/// The program and its flags in each command a doc shows: lines of code blocks,
/// and inline code spans, that run one of [`BINS`] (after `$`, `sudo`, `VAR=value`
/// and a directory), cut at pipes, `&&`, `;`, `&` and comments. In a systemd
/// unit, the `ExecStart=` lines.
fn commands(text: &str) -> Vec<(usize, String, Vec<String>)> {
    let unit = text.contains("\n[Service]");
    let mut found = Vec::new();
    let mut in_block = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let mut pieces: Vec<&str> = Vec::new();
        if unit {
            pieces.extend(line.strip_prefix("ExecStart="));
        } else if in_block {
            pieces.push(line.split(" #").next().unwrap_or(line));
        } else {
            pieces.extend(line.split('`').skip(1).step_by(2));
        }
        for piece in pieces {
            for segment in piece.split(['|', ';', '&']) {
                let mut words = segment.split_whitespace().skip_while(|w| {
                    *w == "$" || *w == "sudo" || (w.contains('=') && !w.starts_with('-'))
                });
                let Some(program) = words.next() else {
                    continue;
                };
                let program = program.rsplit('/').next().unwrap_or(program);
                if BINS.contains(&program) {
                    let rest: Vec<&str> = words.collect();
                    found.push((n + 1, program.to_string(), longs(&rest.join(" "))));
                }
            }
        }
    }
    found
}

#[test]
fn commands_in_the_docs_use_real_flags() {
    let mut known: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for bin in BINS {
        let text = help(bin);
        let mut set = if bin == "churn" {
            churn_flags(&text).0
        } else {
            long_set(&options(&text))
        };
        set.extend(UNIVERSAL.iter().map(|s| s.to_string()));
        known.insert(bin, set);
    }
    let mut errors = Vec::new();
    let mut checked = 0;
    for path in DOCS.iter().chain(&UNITS) {
        for (line, bin, flags) in commands(&doc(path)) {
            checked += 1;
            for f in flags.iter().filter(|f| !known[bin.as_str()].contains(*f)) {
                errors.push(format!(
                    "{path}:{line}: `{bin} ... {f}`, but `{bin} --help` has no {f}"
                ));
            }
        }
    }
    assert!(checked >= 20, "only {checked} commands found in the docs");
    finish(errors);
}

#[test]
fn the_parsers_find_what_they_should() {
    // Guards against a check that passes because it read nothing.
    let opts = options(
        "OPTIONS:\n    --port N               the port; 0 lets the OS choose [default: 85]\n    -t, --target HOST  the\n                           server, not --other [default:\n                           127.0.0.1:85]\n",
    );
    assert_eq!(opts.len(), 2);
    assert_eq!(opts[0].longs, ["--port"]);
    assert_eq!(opts[0].default.as_deref(), Some("85"));
    assert_eq!(opts[1].longs, ["--target"]);
    assert_eq!(opts[1].shorts, ["-t"]);
    assert_eq!(opts[1].default.as_deref(), Some("127.0.0.1:85"));
    assert_eq!(value("$RUST_LOG, else info"), "$rust_log");
    let cmds = commands("```sh\nsudo target/release/connmgr --port=8585 --xy & # --not\n```\nsee `churn steady -c 0 --steady 5 | jq` and `cargo --y`\n");
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert_eq!(cmds[0].2, ["--port", "--xy"]);
    assert_eq!(
        (cmds[1].1.as_str(), &cmds[1].2[..]),
        ("churn", &["--steady".to_string()][..])
    );
    for bin in ["connmgr", "servant", "churn"] {
        assert!(
            long_set(&options(&help(bin))).len() >= 8,
            "{bin} --help: too few options found"
        );
    }
}
