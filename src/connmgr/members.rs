//! A private network's members file: who may join, by name and public key.
//!
//! ```xml
//! <members>
//!   <member><name>alice</name><key>hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=</key></member>
//! </members>
//! ```
//!
//! Read like config.xml: errors name the file and line. Names follow the rules the
//! manager lists names by ([`crate::wire::name::admit`]: one word, at most 32
//! characters, nothing that could drive a terminal); a name (compared case-folded)
//! or a key listed twice is an error, so one key is one member and one member is
//! one name. The manager reads it at start and on SIGHUP, where a bad file changes
//! nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, ConfigFile};
use crate::noise::PublicKey;
use crate::wire::name;

/// The members, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    by_key: BTreeMap<PublicKey, Box<str>>,
}

impl Members {
    /// Reads and checks a members file.
    pub fn load(path: &Path) -> Result<Members, ConfigError> {
        Self::from_file(&ConfigFile::load(path, "members")?)
    }

    /// The members in a file's text, as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Members, ConfigError> {
        Self::from_file(&ConfigFile::parse(text, path, "members")?)
    }

    fn from_file(f: &ConfigFile) -> Result<Members, ConfigError> {
        f.allow_only(&["member"])?;
        let mut by_key = BTreeMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut lines: HashMap<PublicKey, usize> = HashMap::new();
        for m in f.root.children_named("member") {
            let bad = |reason: String| Err(ConfigError::new(f.place(m), reason));
            if let Some(other) = m
                .children
                .iter()
                .find(|c| c.name != "name" && c.name != "key")
            {
                return bad(format!(
                    "unknown element <{}> in <member> (known: name, key)",
                    other.name
                ));
            }
            let (Some(n), Some(k)) = (m.child("name"), m.child("key")) else {
                return bad("a <member> needs a <name> and a <key>".into());
            };
            let n = match name::admit(n.value().as_bytes()) {
                Ok(Some(n)) => n,
                Ok(None) => return Err(ConfigError::new(f.place(n), "<name> is empty")),
                Err(why) => {
                    return Err(ConfigError::new(
                        f.place(n),
                        format!(
                            "<name> {:?} is refused: {}",
                            crate::xml::clip(n.value(), 40),
                            why.reason()
                        ),
                    ))
                }
            };
            let key = PublicKey::parse(k.value()).map_err(|why| {
                ConfigError::new(f.place(k), format!("<key> is not a public key: {why}"))
            })?;
            if let Some(first) = names.insert(name::fold(n), m.line) {
                return bad(format!(
                    "the name {n:?} is listed twice (first on line {first})"
                ));
            }
            if let Some(first) = lines.insert(key, m.line) {
                return bad(format!(
                    "the key {key} is listed twice (first on line {first})"
                ));
            }
            by_key.insert(key, n.into());
        }
        Ok(Members { by_key })
    }

    /// The member name `key` is listed under.
    pub fn name(&self, key: &PublicKey) -> Option<&str> {
        self.by_key.get(key).map(|n| &**n)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// A hash of who the members are (FNV-1a over keys and names, in key
    /// order): two managers of one cluster with the same members agree on it.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (key, name) in &self.by_key {
            for &b in (key.as_bytes().iter()).chain(name.as_bytes()).chain(b"\n") {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// What makes a manager run a private network: its key file and its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Private {
    pub key: PathBuf,
    pub members_file: PathBuf,
    pub members: Members,
}

/// `--key FILE` and `--members FILE`, or `<key>` and `<members>` in the config file
/// (relative to its folder): both, or neither. The members file is read here, so
/// that a reload with a bad one changes nothing.
pub(super) fn settings(
    file: Option<&ConfigFile>,
    config: Option<&Path>,
    key: Option<&PathBuf>,
    members: Option<&PathBuf>,
) -> Result<Option<Private>, ConfigError> {
    let from_file = |element: &str| {
        let el = file?.root.child(element)?;
        let folder = config.and_then(Path::parent).unwrap_or(Path::new(""));
        Some((folder.join(el.value().trim()), file?.place(el)))
    };
    let key = key
        .map(|k| (k.clone(), "--key".to_string()))
        .or_else(|| from_file("key"));
    let members = members
        .map(|m| (m.clone(), "--members".to_string()))
        .or_else(|| from_file("members"));
    match (key, members) {
        (None, None) => Ok(None),
        (Some((_, place)), None) => Err(ConfigError::new(
            place,
            "a private network needs a members file too (--members FILE or <members>)",
        )),
        (None, Some((_, place))) => Err(ConfigError::new(
            place,
            "a private network needs the manager's key file too (--key FILE or <key>)",
        )),
        (Some((key, _)), Some((members_file, _))) => Ok(Some(Private {
            members: Members::load(&members_file)?,
            key,
            members_file,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
    const B: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn parse(text: &str) -> Result<Members, String> {
        Members::parse(text, Path::new("members.xml")).map_err(|e| e.to_string())
    }

    #[test]
    fn members_are_read_by_key() {
        let m = parse(&format!(
            "<members>\n<member><name>alice</name><key>{A}</key></member>\n<member><name>bob</name><key>{B}</key></member>\n</members>"
        ))
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.name(&PublicKey::parse(A).unwrap()), Some("alice"));
        assert_eq!(m.name(&PublicKey::parse(B).unwrap()), Some("bob"));
        assert!(parse("<members/>").unwrap().is_empty());
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let two = |a: &str, b: &str, ka: &str, kb: &str| {
            parse(&format!(
                "<members>\n<member><name>{a}</name><key>{ka}</key></member>\n<member><name>{b}</name><key>{kb}</key></member>\n</members>"
            ))
            .unwrap_err()
        };
        let e = two("alice", "bob", A, A);
        assert!(
            e.starts_with("members.xml:3: ") && e.contains("listed twice (first on line 2)"),
            "{e}"
        );
        let e = two("alice", "Alice", A, B);
        assert!(e.contains("name \"Alice\" is listed twice"), "{e}");
        let e = two("alice", "bob", A, "not!base64");
        assert!(
            e.starts_with("members.xml:3: <key> is not a public key"),
            "{e}"
        );
        let e = two("alice", "b o b", A, B);
        assert!(e.contains("whitespace"), "{e}");
        let e = parse("<members>\n<member><name>x</name></member></members>").unwrap_err();
        assert!(e.contains("needs a <name> and a <key>"), "{e}");
        let e = parse("<people/>").unwrap_err();
        assert!(e.contains("<members>"), "{e}");
    }
}
