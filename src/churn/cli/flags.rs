//! Arguments churn does not know: a missing or misspelt mode, a flag left over,
//! an output file that cannot be written. Each error names what was wrong and,
//! for a near miss, what was meant. The flags known are the ones `--help` lists.

use std::path::Path;

use super::HELP;
use crate::config::ConfigError;

/// The commands, as `churn MODE` takes them.
pub const MODES: [&str; 7] = [
    "join-leave",
    "steady",
    "fanout",
    "flood",
    "compare",
    "merge",
    "baseline-server",
];

/// The error for a command line with no mode first: a flag there is named.
pub fn no_mode(args: &mut pico_args::Arguments) -> ConfigError {
    let modes = "join-leave, steady, fanout, flood or compare";
    let rest = take_rest(args);
    match rest.first() {
        Some(first) if known_flag(flag_name(first)) => ConfigError::new(
            "MODE",
            format!("missing: churn MODE [OPTIONS], the mode first ({modes}; see --help)"),
        ),
        Some(first) => unknown_flag(first),
        None => ConfigError::new("MODE", format!("missing: {modes} (see --help)")),
    }
}

/// The error for a mode churn does not have.
pub fn unknown_mode(mode: &str) -> ConfigError {
    ConfigError::new(
        mode,
        format!(
            "unknown mode{}: use join-leave, steady, fanout, flood, compare, merge or baseline-server",
            did_you_mean(mode, MODES.iter().copied())
        ),
    )
}

/// Fails on any argument left after the known flags were taken.
pub fn no_more(args: &mut pico_args::Arguments) -> Result<(), ConfigError> {
    match take_rest(args).first() {
        Some(extra) => Err(unknown_flag(extra)),
        None => Ok(()),
    }
}

/// The arguments left, as operands (file names); a flag among them is an error.
pub fn operands(args: &mut pico_args::Arguments) -> Result<Vec<String>, ConfigError> {
    let rest = take_rest(args);
    if let Some(flag) = rest.iter().find(|a| a.starts_with('-') && a.len() > 1) {
        return Err(unknown_flag(flag));
    }
    Ok(rest)
}

/// Whether `path` can be written: checked before the run, so that a typo in a
/// directory does not throw away a run's figures at its end.
pub fn writable(flag: &str, path: &Path) -> Result<(), ConfigError> {
    let place = format!("{flag} {}", path.display());
    if path.is_dir() {
        return Err(ConfigError::new(place, "is a directory, not a file"));
    }
    let result = if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|_| std::fs::remove_file(path))
    };
    result.map_err(|e| ConfigError::new(place, format!("cannot be written: {e}")))
}

fn take_rest(args: &mut pico_args::Arguments) -> Vec<String> {
    std::mem::replace(args, pico_args::Arguments::from_vec(Vec::new()))
        .finish()
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// `--flag` of `--flag=VALUE`.
fn flag_name(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(name, _)| name)
}

fn unknown_flag(arg: &str) -> ConfigError {
    let name = flag_name(arg);
    if !name.starts_with('-') {
        return ConfigError::new(arg, "unexpected argument (see --help)");
    }
    if known_flag(name) {
        return ConfigError::new(name, "is not a flag of this mode (see --help)");
    }
    let near = did_you_mean(name, help_flags());
    ConfigError::new(name, format!("unknown flag{near} (see --help)"))
}

/// Every flag `--help` names (`--json`, `-c`, ...).
pub fn help_flags() -> impl Iterator<Item = &'static str> {
    HELP.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| {
            let long = w.len() > 2 && w.starts_with("--") && w.as_bytes()[2].is_ascii_lowercase();
            let short = w.len() == 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphabetic();
            long || short
        })
}

fn known_flag(name: &str) -> bool {
    help_flags().any(|f| f == name)
}

/// `" (did you mean X?)"` for the closest of `known` within a couple of edits.
fn did_you_mean<'a>(typed: &str, known: impl Iterator<Item = &'a str>) -> String {
    let best = known
        .map(|k| (distance(typed, k), k))
        .min_by_key(|&(d, _)| d)
        .filter(|&(d, k)| d <= 2.max(k.len() / 4) && d < k.len());
    best.map_or(String::new(), |(_, k)| format!(" (did you mean {k}?)"))
}

/// Levenshtein distance, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> pico_args::Arguments {
        pico_args::Arguments::from_vec(list.iter().map(Into::into).collect())
    }

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(distance("join-leav", "join-leave"), 1);
        assert!(unknown_mode("join-leav")
            .reason
            .contains("did you mean join-leave?"));
        assert!(!unknown_mode("xyz").reason.contains("did you mean"));
        let e = no_more(&mut args(&["--duraton", "5"])).unwrap_err();
        assert_eq!(e.place, "--duraton");
        assert!(e.reason.contains("did you mean --duration?"), "{e}");
        let e = no_more(&mut args(&["--bogus"])).unwrap_err();
        assert!(e.reason.starts_with("unknown flag"), "{e}");
    }

    #[test]
    fn a_flag_before_the_mode_is_named() {
        let e = no_mode(&mut args(&["--bogus"]));
        assert_eq!(e.place, "--bogus");
        let e = no_mode(&mut args(&["-c", "5", "join-leave"]));
        assert!(e.reason.contains("the mode first"), "{e}");
        assert!(no_mode(&mut args(&[])).reason.starts_with("missing"));
    }

    #[test]
    fn help_names_every_flag() {
        for f in [
            "--json",
            "--hdr",
            "--bind",
            "-c",
            "-t",
            "--stay",
            "--reply-bytes",
        ] {
            assert!(known_flag(f), "{f}");
        }
        assert!(!known_flag("--bogus"));
    }

    #[test]
    fn output_paths_are_checked() {
        let e = writable("--hdr", Path::new("/nonexistent/dir/x.hdr")).unwrap_err();
        assert!(e.place.contains("/nonexistent/dir/x.hdr"), "{e}");
        assert!(writable("--svg", Path::new("/")).is_err());
    }
}
