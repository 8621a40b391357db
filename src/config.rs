//! Reading settings: an XML config file into values, and errors that name the
//! file and line (or the flag) and the reason. Each daemon's own settings live
//! with it (`connmgr::config`, `servant::config`); this is what they share.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::xml::{self, Element};

/// A config value or file that cannot be used, and where it came from.
#[derive(Debug)]
pub struct ConfigError {
    /// `FILE:LINE`, `--flag` or `RUST_LOG`.
    pub place: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn new(place: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            place: place.into(),
            reason: reason.into(),
        }
    }
}

/// An XML config file, parsed, with its path kept for error messages.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    pub root: Element,
}

impl ConfigFile {
    /// Reads and parses `path`; the root element must be called `root`.
    pub fn load(path: &Path, root: &str) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&shown, format!("cannot read it: {e}")))?;
        Self::parse(&text, path, root)
    }

    /// Parses `text` as if read from `path` (which errors name); the root element
    /// must be called `root`. What [`ConfigFile::load`] does after reading the file,
    /// and what the fuzz targets call.
    pub fn parse(text: &str, path: &Path, root: &str) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let doc = xml::parse(text).map_err(|e| {
            ConfigError::new(
                format!("{shown}:{}", e.line),
                format!("column {}: {}", e.column, e.reason),
            )
        })?;
        if doc.name != root {
            return Err(ConfigError::new(
                format!("{shown}:{}", doc.line),
                format!("the root element must be <{root}>, not <{}>", doc.name),
            ));
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            root: doc,
        })
    }

    /// `FILE:LINE` of `el`.
    pub fn place(&self, el: &Element) -> String {
        format!("{}:{}", self.path.display(), el.line)
    }

    /// Rejects children of the root that are not in `known`, so typos do not pass silently.
    pub fn allow_only(&self, known: &[&str]) -> Result<(), ConfigError> {
        match self
            .root
            .children
            .iter()
            .find(|c| !known.contains(&c.name.as_str()))
        {
            Some(c) => Err(ConfigError::new(
                self.place(c),
                format!(
                    "unknown element <{}> in <{}> (known: {})",
                    c.name,
                    self.root.name,
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    /// The value of `<name>` under the root, parsed and checked by `check` (which
    /// says what is wrong), if present; errors name the file and line.
    pub fn checked<T: FromStr>(
        &self,
        name: &str,
        expected: &str,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(el) = self.root.child(name) else {
            return Ok(None);
        };
        parse_value(el.value(), expected)
            .and_then(|v| check(&v).map(|()| v))
            .map(Some)
            .map_err(|reason| ConfigError::new(self.place(el), format!("<{name}> {reason}")))
    }

    /// The value of `<name>` under the root, parsed, if present.
    pub fn value<T: FromStr>(&self, name: &str, expected: &str) -> Result<Option<T>, ConfigError> {
        let Some(el) = self.root.child(name) else {
            return Ok(None);
        };
        parse_value(el.value(), expected)
            .map(Some)
            .map_err(|reason| ConfigError::new(self.place(el), format!("<{name}> {reason}")))
    }
}

/// Parses `text` or says "must be EXPECTED, not TEXT".
pub fn parse_value<T: FromStr>(text: &str, expected: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("must be {expected}, not {:?}", xml::clip(text, 40)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_temp(name: &str, text: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("p2pchat-config-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn config_errors_name_file_line_and_reason() {
        let p = write_temp(
            "bad.xml",
            "<connmgr>\n  <port>eighty</port>\n  <colour>red</colour>\n</connmgr>\n",
        );
        let f = ConfigFile::load(&p, "connmgr").unwrap();
        let e = f.value::<u16>("port", "a port number").unwrap_err();
        assert_eq!(e.place, format!("{}:2", p.display()));
        assert!(e.reason.contains("\"eighty\""), "{e}");
        let e = f.allow_only(&["port"]).unwrap_err();
        assert!(
            e.to_string().contains(":3: unknown element <colour>"),
            "{e}"
        );
        assert!(ConfigFile::load(&p, "config")
            .unwrap_err()
            .reason
            .contains("root element must be <config>"));
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn malformed_and_missing_files_are_reported() {
        let p = write_temp("broken.xml", "<connmgr>\n<port>85</port>\n<port>\n");
        let e = ConfigFile::load(&p, "connmgr").unwrap_err();
        assert!(e.place.starts_with(&p.display().to_string()), "{e}");
        let _ = std::fs::remove_file(&p);
        let e = ConfigFile::load(&p, "connmgr").unwrap_err();
        assert!(e.reason.contains("cannot read it"), "{e}");
    }
}
