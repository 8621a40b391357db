//! A list's version as the servant keeps it: an opaque token, compared for
//! equality. A single manager says `N`; a cluster of managers says `E.N`, its epoch
//! (16 hex digits) and the cluster-wide count. A servant never needs to know which:
//! it only asks `since` the token it has and checks that a delta's `from` is it.

use std::fmt;

/// The longest version accepted, in bytes (`E.N`: 16 + 1 + 20, with room).
pub const MAX_LEN: usize = 40;

/// A version token: at most [`MAX_LEN`] bytes of `[0-9a-f.]`. Kept inline so that it
/// is `Copy`, as the plain number it replaces was.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl Version {
    /// Reads a token, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Version, String> {
        let ok = |b: &u8| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'.');
        if text.is_empty() || text.len() > MAX_LEN || !text.bytes().all(|b| ok(&b)) {
            return Err(format!(
                "a version is 1 to {MAX_LEN} of 0-9, a-f and '.', not {:?}",
                crate::xml::clip(text, 20)
            ));
        }
        let mut bytes = [0; MAX_LEN];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Version {
            len: text.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII ever goes in (`parse`, `From<u64>`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("0")
    }

    /// A cluster's version (`E.N`): a new link to another manager of the same
    /// cluster may be answered with a delta from it. A single manager's `N` is
    /// private to that process: a new link to it is a new entry.
    pub fn has_epoch(&self) -> bool {
        self.as_str().contains('.')
    }

    /// `(epoch, N)` when the token reads as `N` or `E.N`: only for the sanity check
    /// that a delta goes forward within one history.
    pub fn count(&self) -> Option<(&str, u64)> {
        let (epoch, n) = self
            .as_str()
            .rsplit_once('.')
            .unwrap_or(("", self.as_str()));
        Some((epoch, n.parse().ok()?))
    }
}

impl From<u64> for Version {
    fn from(n: u64) -> Version {
        let mut v = Version {
            len: 0,
            bytes: [0; MAX_LEN],
        };
        let s = n.to_string();
        v.bytes[..s.len()].copy_from_slice(s.as_bytes());
        v.len = s.len() as u8;
        v
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_opaque_and_checked() {
        let v = Version::parse("00c0ffee12345678.42").unwrap();
        assert_eq!(v.to_string(), "00c0ffee12345678.42");
        assert!(v.has_epoch() && !Version::from(42).has_epoch());
        assert_eq!(v.count(), Some(("00c0ffee12345678", 42)));
        assert_eq!(Version::parse("42").unwrap(), Version::from(42));
        assert_ne!(Version::parse("042").unwrap(), Version::from(42));
        for bad in ["", "x", "1 2", "-1", "ABC", &"1".repeat(41)] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Version::parse(&"f".repeat(40)).is_ok());
    }
}
