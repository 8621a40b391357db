//! A Lua script called by its SHA-1 (`EVALSHA`), so its source crosses the network
//! only when the server has forgotten it: after a restart or `SCRIPT FLUSH` the
//! server answers `NOSCRIPT`, and [`super::Client`] sends the same call again as
//! `EVAL` with the source, which also puts it back in the server's cache.
//!
//! SHA-1 is computed here (about forty lines) rather than taken from a crate: the
//! digest only names the script to the server, which computes the same one.

use std::rc::Rc;

/// A script and the name the server's cache knows it by. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Script {
    source: Rc<[u8]>,
    sha: [u8; 40],
}

impl Script {
    pub fn new(source: &str) -> Script {
        let digest = sha1(source.as_bytes());
        let mut sha = [0u8; 40];
        for (k, b) in digest.iter().enumerate() {
            sha[2 * k] = HEX[usize::from(b >> 4)];
            sha[2 * k + 1] = HEX[usize::from(b & 15)];
        }
        Script {
            source: source.as_bytes().into(),
            sha,
        }
    }

    pub fn source(&self) -> &[u8] {
        &self.source
    }

    /// The SHA-1 in lowercase hex, as `SCRIPT LOAD` returns it.
    pub fn sha(&self) -> &str {
        std::str::from_utf8(&self.sha).expect("hex digits")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// SHA-1 (FIPS 180-4, section 6.1).
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    // The message, a 1 bit, zeros to 56 mod 64 bytes, then its length in bits.
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (t, word) in block.chunks_exact(4).enumerate() {
            w[t] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (t, &wt) in w.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wt);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (x, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (k, x) in h.iter().enumerate() {
        out[4 * k..4 * k + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_the_standard_vectors() {
        assert_eq!(
            Script::new("abc").sha(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            Script::new("").sha(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        let two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            Script::new(two_blocks).sha(),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }
}
