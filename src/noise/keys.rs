//! Static keys and the files that hold them.
//!
//! A key file is one line: the 32 raw bytes of an X25519 private key in standard
//! base64 (44 characters, as `wg genkey` writes them); a public key is shown the
//! same way (as `wg pubkey` prints it). A private key never reaches a log or a
//! `Debug` output, and is wiped when dropped.
//!
//! Like ssh, a private key file that its group or others may read is refused, with
//! the `chmod` that fixes it; a file under `$CREDENTIALS_DIRECTORY` (systemd's
//! `LoadCredential=`) is accepted as systemd left it, since systemd decides there.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use snow::params::DHChoice;
use snow::resolvers::CryptoResolver;

use super::resolver::Resolver;

/// Bytes in a Curve25519 key, public or private.
pub const KEY_LEN: usize = 32;
/// Characters in a key's base64 form.
pub const KEY_TEXT_LEN: usize = 44;

/// A peer's static public key: what identifies it on the private network.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A public key from its base64 form (`wg pubkey`'s output, say).
    pub fn parse(text: &str) -> Result<Self, String> {
        decode_key(text.trim()).map(PublicKey)
    }
}

/// Base64, as `wg pubkey` prints it: a public key is not a secret.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_key(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// This host's static key pair. The private half prints as `<redacted>`.
#[derive(Clone)]
pub struct Keypair {
    private: [u8; KEY_LEN],
    public: PublicKey,
}

impl Keypair {
    /// A new key pair from the kernel's random numbers.
    pub fn generate() -> Result<Self, String> {
        let mut private = [0u8; KEY_LEN];
        super::resolver::fill_random(&mut private)
            .map_err(|e| format!("no random numbers from the kernel: {e}"))?;
        let pair = Keypair::from_private(private);
        wipe(&mut private);
        Ok(pair)
    }

    /// The pair whose private half is `private` (clamped by X25519 when used).
    pub fn from_private(private: [u8; KEY_LEN]) -> Self {
        let mut dh = Resolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("the resolver has Curve25519");
        dh.set(&private);
        let mut public = [0u8; KEY_LEN];
        public.copy_from_slice(dh.pubkey());
        Keypair {
            private,
            public: PublicKey(public),
        }
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The private key's bytes, for the handshake alone.
    pub(super) fn private_bytes(&self) -> &[u8; KEY_LEN] {
        &self.private
    }

    /// Reads a key file: refuses one its group or others may read, then parses its
    /// one line. Errors name the file (and the line, for what is in it).
    pub fn load(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let meta = fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
        if meta.mode() & 0o077 != 0 && !under_credentials_dir(path) {
            return Err(format!(
                "{shown}: private key file is readable by others (mode {:04o}); \
                 run `chmod 600 {shown}`",
                meta.mode() & 0o7777
            ));
        }
        let mut text = fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
        let parsed = parse_key_file(&text);
        wipe(&mut text);
        parsed
            .map(Keypair::from_private)
            .map_err(|(line, why)| format!("{shown}:{line}: {why}"))
    }

    /// Writes the private key to a new file `path`, mode 0600. An existing file is
    /// refused and left as it was.
    pub fn save_new(&self, path: &Path) -> Result<(), String> {
        let shown = path.display();
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => {
                    format!("{shown}: already exists; not overwriting a key")
                }
                _ => format!("{shown}: {e}"),
            })?;
        let mut line = encode_key(&self.private).into_bytes();
        line.push(b'\n');
        let written = file.write_all(&line).and_then(|()| file.sync_all());
        wipe(&mut line);
        written.map_err(|e| format!("{shown}: {e}"))
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("private", &format_args!("<redacted>"))
            .field("public", &self.public)
            .finish()
    }
}

impl Drop for Keypair {
    fn drop(&mut self) {
        wipe(&mut self.private);
    }
}

/// Overwrites `bytes` with zeros in a way the optimiser keeps.
pub(super) fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// Whether `path` lies under `$CREDENTIALS_DIRECTORY`.
fn under_credentials_dir(path: &Path) -> bool {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return false;
    };
    let real = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p));
    real(path).starts_with(real(Path::new(&dir)))
}

/// The private key in a key file's text, or the line and what is wrong with it.
/// Blank lines after the key are allowed; anything else is not.
fn parse_key_file(text: &[u8]) -> Result<[u8; KEY_LEN], (usize, String)> {
    let mut key = None;
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            if key.is_none() && n == 0 {
                return Err((1, "empty; expected a base64 private key".into()));
            }
            continue;
        }
        if key.is_some() {
            return Err((n + 1, "more than one line; a key file holds one key".into()));
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| (n + 1, format!("not base64: \"{}\"", line.escape_ascii())))?;
        key = Some(decode_key(text).map_err(|why| (n + 1, why))?);
    }
    key.ok_or((1, "empty; expected a base64 private key".into()))
}

pub(crate) const ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A 32-byte key in standard base64 with its one `=` of padding.
pub fn encode_key(key: &[u8; KEY_LEN]) -> String {
    let mut out = String::with_capacity(KEY_TEXT_LEN);
    for chunk in key.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * k) & 63) as usize]));
        }
    }
    out.push('=');
    out
}

/// A 32-byte key from exactly 44 base64 characters, strictly: the one `=` last,
/// no spaces, and no stray bits in the last character (one text per key).
pub fn decode_key(text: &str) -> Result<[u8; KEY_LEN], String> {
    let bytes = text.as_bytes();
    if bytes.len() != KEY_TEXT_LEN || bytes[KEY_TEXT_LEN - 1] != b'=' {
        return Err(format!(
            "expected {KEY_TEXT_LEN} base64 characters ending in '=', got {} characters",
            bytes.len()
        ));
    }
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = [0u8; KEY_LEN];
    let mut at = 0;
    for (col, &c) in bytes[..KEY_TEXT_LEN - 1].iter().enumerate() {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            return Err(format!(
                "\"{}\" at column {} is not a base64 character",
                [c].escape_ascii(),
                col + 1
            ));
        };
        bits = bits << 6 | v as u32;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out[at] = (bits >> nbits) as u8;
            at += 1;
            bits &= (1 << nbits) - 1;
        }
    }
    if bits != 0 {
        return Err(format!(
            "column {} has bits past the key's end; not a key's base64",
            KEY_TEXT_LEN - 1
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7748's Alice, section 6.1.
    const ALICE_PRIVATE: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

    fn hex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (k, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * k..2 * k + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn the_public_key_is_x25519_of_the_private_one() {
        let pair = Keypair::from_private(hex(ALICE_PRIVATE));
        assert_eq!(pair.public().as_bytes(), &hex(ALICE_PUBLIC));
    }

    #[test]
    fn base64_round_trips_and_matches_the_standard_alphabet() {
        let key = hex(ALICE_PUBLIC);
        let text = encode_key(&key);
        assert_eq!(text, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
        assert_eq!(decode_key(&text).unwrap(), key);
        for k in [[0u8; 32], [255u8; 32]] {
            assert_eq!(decode_key(&encode_key(&k)).unwrap(), k);
        }
    }

    #[test]
    fn malformed_base64_says_what_and_where() {
        let e = decode_key("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo").unwrap_err();
        assert!(e.contains("44 base64 characters"), "{e}");
        let e = decode_key("hSDw\x01Ykwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=").unwrap_err();
        assert!(e.contains("\"\\x01\" at column 5"), "{e}");
        // 'p' leaves bits set past the 32nd byte: another text for the same key.
        let e = decode_key("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmp=").unwrap_err();
        assert!(e.contains("bits past"), "{e}");
    }

    #[test]
    fn a_key_file_is_one_line_of_base64() {
        let line = encode_key(&hex(ALICE_PRIVATE));
        assert_eq!(parse_key_file(line.as_bytes()).unwrap(), hex(ALICE_PRIVATE));
        let with_newlines = format!("{line}\r\n\n");
        assert!(parse_key_file(with_newlines.as_bytes()).is_ok());
        let two = format!("{line}\n{line}\n");
        let (n, why) = parse_key_file(two.as_bytes()).unwrap_err();
        assert_eq!(n, 2, "{why}");
        assert_eq!(parse_key_file(b"").unwrap_err().0, 1);
        assert_eq!(parse_key_file(b"\n").unwrap_err().0, 1);
        let (n, why) = parse_key_file(b"\xff\xfe").unwrap_err();
        assert!(n == 1 && why.contains("\\xff"), "{why}");
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let pair = Keypair::from_private(hex(ALICE_PRIVATE));
        let shown = format!("{pair:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(&encode_key(&hex(ALICE_PRIVATE))), "{shown}");
        assert!(shown.contains(&pair.public().to_string()), "{shown}");
    }

    #[test]
    fn key_files_are_written_0600_read_back_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("p2pchat-keys-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let path = dir.join("host.key");
        let _ = fs::remove_file(&path);
        let pair = Keypair::generate().unwrap();
        pair.save_new(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(Keypair::load(&path).unwrap().public(), pair.public());
        let again = Keypair::generate().unwrap();
        let e = again.save_new(&path).unwrap_err();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(Keypair::load(&path).unwrap().public(), pair.public());
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = Keypair::load(&path).unwrap_err();
        assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }
}
