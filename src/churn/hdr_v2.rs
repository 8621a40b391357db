//! HdrHistogram's compressed V2 encoding, base64: the form HdrHistogram's Java,
//! C and Rust libraries write with `encodeIntoCompressedByteBuffer` and read back
//! (and the one their interval logs carry), so churn's latencies can be merged
//! across runs and hosts (`churn merge`) and read by those tools.
//!
//! The layout, all integers big-endian:
//!
//! ```text
//! compressed:  cookie 0x1c849304|0x10 (i32), zlib length (i32), zlib(uncompressed)
//! uncompressed: cookie 0x1c849303|0x10 (i32), payload length (i32),
//!               normalizing index offset (i32), significant digits (i32),
//!               lowest discernible value (i64), highest trackable value (i64),
//!               integer-to-double ratio (f64), payload
//! payload:     each count of the counts array in turn, up to the max value's,
//!              as a zig-zag LEB128 (at most 9 bytes, the 9th holding 8 bits);
//!              a run of n > 1 zero counts as the single number -n
//! ```
//!
//! churn's [`Histogram`] has the layout of an HdrHistogram of 2 significant
//! digits and lowest value 1, so it writes its counts as they are (after scaling
//! nanoseconds to the unit asked for). It reads any geometry (0 to 5 digits, any
//! lowest value), putting each count at its bucket's middle value. What it reads
//! is a file a person hands it, so the reader bounds every length, never
//! allocates by what the data claims beyond those bounds, and names what is wrong.

use super::histogram::Histogram;

const COMPRESSED_COOKIE: u32 = 0x1c84_9304;
const V2_COOKIE: u32 = 0x1c84_9303;
/// The word-size nibble Java writes into both cookies (8-byte counts).
const WORD_SIZE: u32 = 0x10;
const HEADER: usize = 40;
/// The largest compressed histogram read: churn's own are a few KiB.
const MAX_COMPRESSED: usize = 1 << 20;
/// The largest uncompressed encoding read (a counts array of 2^20 entries at
/// most 8 bytes each would be less).
const MAX_RAW: usize = 8 << 20;
/// zlib's level: the default, as Java's `Deflater` uses.
const LEVEL: u8 = 6;

/// Encodes `h` (values in nanoseconds) with its values divided by `unit`
/// (1,000: microseconds), compressed, in base64.
pub fn encode(h: &Histogram, unit: u64) -> String {
    let scaled = h.rescaled(unit);
    let raw = uncompressed(&scaled);
    let z = miniz_oxide::deflate::compress_to_vec_zlib(&raw, LEVEL);
    let mut out = Vec::with_capacity(8 + z.len());
    out.extend_from_slice(&(COMPRESSED_COOKIE | WORD_SIZE).to_be_bytes());
    out.extend_from_slice(&(z.len() as u32).to_be_bytes());
    out.extend_from_slice(&z);
    base64(&out)
}

/// The uncompressed V2 encoding of `h`, whose values are already in the unit.
fn uncompressed(h: &Histogram) -> Vec<u8> {
    let counts = h.bucket_counts();
    let limit = Histogram::bucket_of(h.max()) + 1;
    let mut payload = Vec::new();
    let mut at = 0;
    while at < limit {
        let n = counts[at];
        at += 1;
        if n == 0 {
            let mut zeros = 1i64;
            while at < limit && counts[at] == 0 {
                zeros += 1;
                at += 1;
            }
            put_zigzag(&mut payload, if zeros > 1 { -zeros } else { 0 });
        } else {
            put_zigzag(&mut payload, n.min(i64::MAX as u64) as i64);
        }
    }
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(V2_COOKIE | WORD_SIZE).to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // normalizing index offset
    out.extend_from_slice(&2u32.to_be_bytes()); // significant digits
    out.extend_from_slice(&1u64.to_be_bytes()); // lowest discernible value
    let highest = h.max().clamp(2, i64::MAX as u64);
    out.extend_from_slice(&highest.to_be_bytes());
    out.extend_from_slice(&1f64.to_bits().to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Reads a base64 compressed V2 histogram, its values multiplied by `unit`
/// (1,000: microseconds into churn's nanoseconds).
pub fn decode(text: &str, unit: u64) -> Result<Histogram, String> {
    if text.len() > MAX_COMPRESSED * 4 / 3 + 4 {
        return Err(format!("longer than {} KiB", MAX_COMPRESSED >> 10));
    }
    let bytes = unbase64(text)?;
    if bytes.len() < 8 {
        return Err("shorter than its 8-byte header".into());
    }
    check_cookie(be32(&bytes[0..4]), COMPRESSED_COOKIE)?;
    let len = be32(&bytes[4..8]) as usize;
    let z = bytes
        .get(8..8 + len)
        .ok_or_else(|| format!("says {len} compressed bytes but holds {}", bytes.len() - 8))?;
    let raw = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(z, MAX_RAW).map_err(|e| {
        format!(
            "not zlib data, or inflating past {} MiB ({e:?})",
            MAX_RAW >> 20
        )
    })?;
    read_uncompressed(&raw, unit)
}

fn read_uncompressed(raw: &[u8], unit: u64) -> Result<Histogram, String> {
    if raw.len() < HEADER {
        return Err(format!(
            "inflated to {} bytes, less than a V2 header",
            raw.len()
        ));
    }
    check_cookie(be32(&raw[0..4]), V2_COOKIE)?;
    let len = be32(&raw[4..8]) as usize;
    let offset = be32(&raw[8..12]);
    let digits = be32(&raw[12..16]);
    let lowest = be64(&raw[16..24]);
    let highest = be64(&raw[24..32]);
    if offset != 0 {
        return Err(format!(
            "normalizing index offset {offset} (a shifted histogram) is not read"
        ));
    }
    if digits > 5 {
        return Err(format!("{digits} significant digits (at most 5)"));
    }
    if lowest == 0 || lowest > 1 << 40 || highest < 2 * lowest {
        return Err(format!(
            "lowest value {lowest} and highest {highest} do not make a histogram"
        ));
    }
    let payload = raw
        .get(HEADER..HEADER + len)
        .ok_or_else(|| format!("says {len} payload bytes but holds {}", raw.len() - HEADER))?;
    let geometry = Geometry::new(digits, lowest);
    let mut h = Histogram::new();
    let mut at = 0usize;
    let mut index = 0u64;
    while at < payload.len() {
        let v = get_zigzag(payload, &mut at)?;
        if v < 0 {
            index = index
                .checked_add(v.unsigned_abs())
                .filter(|&i| i < 1 << 32)
                .ok_or("a run of zeros past any histogram's end")?;
            continue;
        }
        if v > 0 {
            let (lo, hi) = geometry
                .range(index)
                .ok_or_else(|| format!("a count at index {index}, beyond 2^63"))?;
            let middle = lo + (hi - lo) / 2;
            let ns = middle
                .checked_mul(unit)
                .ok_or_else(|| format!("value {middle} overflows in nanoseconds"))?;
            h.record_n(ns, v as u64);
        }
        index += 1;
    }
    Ok(h)
}

/// Accepts `base` with any word-size nibble; names the other HdrHistogram forms.
fn check_cookie(cookie: u32, base: u32) -> Result<(), String> {
    match cookie & !0xf0 {
        b if b == base => Ok(()),
        0x1c84_9301 | 0x1c84_9302 => Err("HdrHistogram's V1 encoding, not V2".into()),
        0x1c84_9303 => Err("an uncompressed V2 histogram where a compressed one belongs".into()),
        0x1c84_9304 => Err("a compressed histogram inside a compressed one".into()),
        _ => Err(format!("not an HdrHistogram (cookie {cookie:#010x})")),
    }
}

/// An HdrHistogram's bucket layout, from its significant digits and lowest value.
struct Geometry {
    half_magnitude: u32,
    unit_magnitude: u32,
}

impl Geometry {
    fn new(digits: u32, lowest: u64) -> Geometry {
        let single_unit = 2 * 10u64.pow(digits);
        let magnitude = 64 - (single_unit - 1).leading_zeros(); // ceil(log2)
        Geometry {
            half_magnitude: magnitude.max(1) - 1,
            unit_magnitude: 63 - lowest.leading_zeros(),
        }
    }

    /// The lowest and highest value counted at `index`, if below 2^63.
    fn range(&self, index: u64) -> Option<(u64, u64)> {
        let half = 1u64 << self.half_magnitude;
        let mut bucket = (index >> self.half_magnitude) as i64 - 1;
        let mut sub = (index & (half - 1)) + half;
        if bucket < 0 {
            sub -= half;
            bucket = 0;
        }
        let shift = bucket as u64 + u64::from(self.unit_magnitude);
        if shift >= 63 || sub.leading_zeros() as u64 <= shift {
            return None;
        }
        let lo = sub << shift;
        Some((lo, lo + ((1u64 << shift) - 1)))
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().expect("4 bytes"))
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().expect("8 bytes"))
}

/// Zig-zag LEB128 as HdrHistogram writes it: 7 bits a byte for 8 bytes, then a
/// 9th byte of 8 bits.
fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    for _ in 0..8 {
        if z >> 7 == 0 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn get_zigzag(b: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut z = 0u64;
    for k in 0..9 {
        let &byte = b.get(*at).ok_or("the payload ends inside a number")?;
        *at += 1;
        if k == 8 {
            z |= u64::from(byte) << 56;
            break;
        }
        z |= u64::from(byte & 0x7f) << (7 * k);
        if byte & 0x80 == 0 {
            break;
        }
    }
    Ok((z >> 1) as i64 ^ -((z & 1) as i64))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as HdrHistogram's logs write it.
pub fn base64(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, &c)| n | u32::from(c) << (16 - 8 * k));
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut n, mut bits) = (0u32, 0);
    for (at, c) in text.bytes().enumerate() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or_else(|| format!("not base64: {:?} at character {at}", c as char))?;
        n = n << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((n >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_leb128_round_trips_to_nine_bytes() {
        for v in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            1 << 20,
            -(1 << 40),
            i64::MAX,
            i64::MIN,
        ] {
            let mut b = Vec::new();
            put_zigzag(&mut b, v);
            assert!(b.len() <= 9);
            let mut at = 0;
            assert_eq!(get_zigzag(&b, &mut at), Ok(v));
            assert_eq!(at, b.len());
        }
        let mut b = Vec::new();
        put_zigzag(&mut b, -276);
        assert_eq!(b, [0xa7, 0x04]);
    }

    #[test]
    fn base64_round_trips() {
        for s in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\x1c\x84\x93\x14"] {
            assert_eq!(unbase64(&base64(s)).unwrap(), s);
        }
        assert_eq!(base64(b"\x1c\x84\x93\x14\0\0"), "HISTFAAA");
        assert!(unbase64("HIST*")
            .unwrap_err()
            .contains("'*' at character 4"));
    }

    /// Worked by hand from the layout above: values 1 us twice and 300 us once.
    #[test]
    fn the_uncompressed_encoding_is_hdrhistograms() {
        let mut h = Histogram::new();
        h.record_n(1, 2);
        h.record(300); // index 256 + (300 >> 1) - 128 = 278
        let raw = uncompressed(&h);
        let mut want = vec![0x1c, 0x84, 0x93, 0x13, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2];
        want.extend_from_slice(&1u64.to_be_bytes());
        want.extend_from_slice(&300u64.to_be_bytes());
        want.extend_from_slice(&[0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        // index 0: one zero; index 1: 2; indices 2..=277: 276 zeros; 278: 1.
        want.extend_from_slice(&[0x00, 0x04, 0xa7, 0x04, 0x02]);
        assert_eq!(raw, want);
    }

    /// Published in the test suite of a Vala port of HdrHistogram:
    /// `Histogram(1, 300, 3)` holding 100, 200 and 250.
    #[test]
    fn reads_another_librarys_encoding() {
        let h = decode(
            "HISTFAAAACV4nJNpmSzMwMDAwQABzFCaEUrp2H+AsI4zMh1lZEpkAgBdIQSk",
            1,
        )
        .unwrap();
        let b: Vec<_> = h.buckets().collect();
        assert_eq!(b, [(100, 1), (200, 1), (250, 1)]);
    }

    #[test]
    fn round_trips_within_the_layouts_precision() {
        let mut h = Histogram::new();
        for k in 1..=10_000u64 {
            h.record(k * 997); // 1 us to 10 ms, in ns
        }
        let back = decode(&encode(&h, 1000), 1000).unwrap();
        assert_eq!(back.count(), h.count());
        for q in [0.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            let (a, b) = (h.percentile(q) as f64, back.percentile(q) as f64);
            assert!((a - b).abs() / a < 0.02, "p{q}: {a} vs {b}");
        }
        let empty = decode(&encode(&Histogram::new(), 1000), 1000).unwrap();
        assert_eq!(empty.count(), 0);
    }

    #[test]
    fn garbage_is_named_not_panicked_on() {
        let good = encode(&Histogram::new(), 1000);
        let raw = |r: &[u8]| {
            let z = miniz_oxide::deflate::compress_to_vec_zlib(r, 1);
            let mut b = (COMPRESSED_COOKIE | WORD_SIZE).to_be_bytes().to_vec();
            b.extend_from_slice(&(z.len() as u32).to_be_bytes());
            b.extend_from_slice(&z);
            base64(&b)
        };
        let mut header = uncompressed(&Histogram::new());
        header[8..12].copy_from_slice(&7u32.to_be_bytes());
        let mut runaway = uncompressed(&Histogram::new());
        runaway.truncate(HEADER);
        runaway[4..8].copy_from_slice(&5u32.to_be_bytes());
        runaway.extend_from_slice(&[0xff; 5]);
        let mut far = runaway.clone();
        far.truncate(HEADER);
        far[4..8].copy_from_slice(&9u32.to_be_bytes());
        far.extend_from_slice(&[0xff; 9]);
        let cases = [
            ("", "shorter than"),
            ("!!!!", "not base64"),
            ("HISTEAAA", "shorter than"),
            ("AAAAAAAAAAAA", "not an HdrHistogram"),
            ("HISTEQAAAAAA", "V1 encoding"),
            (&good[..good.len() - 8], "compressed bytes but holds"),
            (&raw(b"short"), "less than a V2 header"),
            (&raw(&header), "normalizing index offset 7"),
            (&raw(&runaway), "ends inside a number"),
            (&raw(&far), "past any histogram's end"),
        ];
        for (text, why) in cases {
            let e = decode(text, 1000).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let huge = "A".repeat(MAX_COMPRESSED * 2);
        assert!(decode(&huge, 1000).unwrap_err().contains("longer than"));
        let bad_zlib = base64(&[0x1c, 0x84, 0x93, 0x14, 0, 0, 0, 4, 1, 2, 3, 4]);
        assert!(decode(&bad_zlib, 1).unwrap_err().contains("not zlib"));
    }
}
