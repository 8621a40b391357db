//! A list's version as churn follows it: `N` from a manager alone, `E.N` from one
//! in a cluster (docs/CLUSTER.md, `src/wire/version.rs`), E being 16 hex digits
//! naming the history N counts in. Churn sends back exactly what it was sent, so
//! it follows either without knowing the manager's epoch, and reads only an
//! answer's opening tag (ten thousand servants read every answer).

use std::fmt;

/// A version as the wire writes it; the default (`0`) is none yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Version {
    epoch: Option<u64>,
    n: u64,
}

impl Version {
    /// `N` or `E.N`, as it stands in an attribute; None: neither.
    fn parse(text: &[u8]) -> Option<Version> {
        let digits = |t: &[u8]| {
            let ok = !t.is_empty() && t.len() <= 20 && t.iter().all(u8::is_ascii_digit);
            std::str::from_utf8(t).ok().filter(|_| ok)?.parse().ok()
        };
        match text.iter().position(|&b| b == b'.') {
            Some(dot) => {
                let e = &text[..dot];
                let hex = e.len() == 16 && e.iter().all(u8::is_ascii_hexdigit);
                let e = std::str::from_utf8(e).ok().filter(|_| hex)?;
                Some(Version {
                    epoch: Some(u64::from_str_radix(e, 16).ok()?),
                    n: digits(&text[dot + 1..])?,
                })
            }
            None => Some(Version {
                epoch: None,
                n: digits(text)?,
            }),
        }
    }

    /// What a connection at this version asks.
    pub(super) fn request(self) -> Vec<u8> {
        format!("needs peer list since {self}\n").into_bytes()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.epoch {
            Some(e) => write!(f, "{e:016x}.{}", self.n),
            None => write!(f, "{}", self.n),
        }
    }
}

/// An answer's opening tag, as far as following versions needs it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// The whole document, with its version when it has one.
    Whole(Option<Version>),
    Unchanged(Version),
    Delta {
        from: Version,
        to: Version,
    },
}

/// Reads an answer's opening tag only. None: not an answer.
pub(super) fn read_head(answer: &[u8]) -> Option<Head> {
    let answer = answer.trim_ascii_start();
    let tag = &answer[..memchr::memchr(b'>', answer)?];
    let attr = |name: &[u8]| {
        let at = memchr::memmem::find(tag, name)? + name.len();
        let end = memchr::memchr(b'"', &tag[at..])?;
        Version::parse(&tag[at..at + end])
    };
    if tag.starts_with(b"<peers") {
        Some(Head::Whole(attr(b" version=\"")))
    } else if tag.starts_with(b"<unchanged") {
        attr(b" version=\"").map(Head::Unchanged)
    } else if tag.starts_with(b"<delta") {
        let (from, to) = (attr(b" from=\"")?, attr(b" to=\"")?);
        Some(Head::Delta { from, to })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn plain_and_cluster_versions_are_followed_and_sent_back_as_they_came() {
        assert_eq!(
            read_head(b"<unchanged version=\"42\"/>\r\n"),
            Some(Head::Unchanged(v("42")))
        );
        let head = read_head(
            b"<delta from=\"00000000000000ab.7\" to=\"00000000000000ab.9\"><left>1</left></delta>",
        );
        assert_eq!(
            head,
            Some(Head::Delta {
                from: v("00000000000000ab.7"),
                to: v("00000000000000ab.9")
            })
        );
        assert_eq!(
            v("00000000000000ab.9").request(),
            b"needs peer list since 00000000000000ab.9\n"
        );
        assert_eq!(Version::default().request(), b"needs peer list since 0\n");
        assert_ne!(v("00000000000000ab.9"), v("00000000000000ac.9"));
        assert_eq!(read_head(b"<peers><peer>"), Some(Head::Whole(None)));
        assert_eq!(
            read_head(b"<peers version=\"ff00000000000001.3\"><peer>"),
            Some(Head::Whole(Some(v("ff00000000000001.3"))))
        );
        assert_eq!(read_head(b"<unchanged version=\"ab.1\"/>"), None);
        assert_eq!(read_head(b"hello"), None);
    }
}
