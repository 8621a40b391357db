//! The lines typed in earlier runs, kept for Up and Ctrl-R: one file per name in
//! `$XDG_STATE_HOME/p2pchat/` (else `~/.local/state/p2pchat/`), `history-NAME`
//! (`history` unnamed), mode 0600, the last [`HISTORY`] lines.
//!
//! Several servants may run for one user, under one name or not: each appends
//! whole lines with `O_APPEND`, so their lines interleave but never tear, and the
//! file is cut back to its last lines only at start, by writing the kept lines to
//! a temporary file and renaming it over the old one, so that nobody ever reads a
//! half-written file. `/msg` lines are private and are not written (this
//! session's history keeps them). A folder that cannot be written means no file:
//! said once, and the history lives for this session only.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::editor::HISTORY;

/// The history file of this run, open for appending.
#[derive(Debug)]
pub struct HistoryFile {
    file: File,
}

/// The folder the files go in, from the environment.
fn folder() -> Option<PathBuf> {
    let var = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let state = var("XDG_STATE_HOME").or_else(|| var("HOME").map(|h| h.join(".local/state")));
    state.map(|s| s.join("p2pchat"))
}

/// `history-NAME`, with whatever a file name should not hold made `_`.
pub fn file_name(name: Option<&str>) -> String {
    let Some(name) = name else {
        return "history".into();
    };
    let safe: String = (name.chars())
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    format!("history-{safe}")
}

impl HistoryFile {
    /// Opens (or creates) the history file for `name`: the lines it holds, oldest
    /// first, and the file to append to; or why there is none.
    pub fn open(name: Option<&str>) -> Result<(HistoryFile, Vec<String>), String> {
        let dir = folder().ok_or("neither XDG_STATE_HOME nor HOME is set")?;
        Self::open_in(&dir, name)
    }

    fn open_in(dir: &Path, name: Option<&str>) -> Result<(HistoryFile, Vec<String>), String> {
        let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", dir.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail("cannot create", e))?;
        let path = dir.join(file_name(name));
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(fail("cannot read the history in", e)),
        };
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let kept: Vec<String> = all[all.len().saturating_sub(HISTORY)..]
            .iter()
            .map(|l| l.to_string())
            .collect();
        if kept.len() < all.len() {
            trim(&path, &kept).map_err(|e| fail("cannot write the history in", e))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| fail("cannot write the history in", e))?;
        // A file made by hand, or by an older umask, is private from now on.
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        Ok((HistoryFile { file }, kept))
    }

    /// Appends a line typed, unless it is a private `/msg`. One write per line, so
    /// lines of servants sharing the file never tear.
    pub fn append(&mut self, line: &str) {
        if line.trim().is_empty() || line.starts_with("/msg ") {
            return;
        }
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        let _ = self.file.write_all(&bytes);
    }
}

/// Replaces the file at `path` with `kept`, atomically: written beside it, then
/// renamed over it.
fn trim(path: &Path, kept: &[String]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut text = kept.join("\n");
    text.push('\n');
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("p2pchat-hist-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn names_become_safe_file_names() {
        assert_eq!(file_name(None), "history");
        assert_eq!(file_name(Some("alice")), "history-alice");
        assert_eq!(file_name(Some("../é x/")), "history-..___x_");
    }

    #[test]
    fn lines_are_kept_private_bounded_and_without_msg() {
        let d = dir("kept");
        let (mut f, old) = HistoryFile::open_in(&d, Some("bob")).unwrap();
        assert!(old.is_empty());
        for k in 0..HISTORY + 10 {
            f.append(&format!("line {k}"));
        }
        f.append("/msg carol secret");
        f.append("/peers");
        drop(f);
        let path = d.join("history-bob");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (_, lines) = HistoryFile::open_in(&d, Some("bob")).unwrap();
        assert_eq!(lines.len(), HISTORY);
        assert_eq!(lines.last().unwrap(), "/peers");
        assert_eq!(lines[0], "line 11");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), HISTORY, "cut back on disk too");
        let _ = std::fs::remove_dir_all(&d);
    }
}
