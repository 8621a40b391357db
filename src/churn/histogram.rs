//! A log-linear latency histogram in fixed memory, in the manner of HdrHistogram.
//!
//! Values below 256 get a bucket each; above that, every power of two is split
//! into 128 equal buckets, so any recorded value is reported within 1/128 (0.8 %)
//! of itself. 7,424 counters (58 KiB) cover every `u64`, so a run of any length
//! costs the same memory and recording is a shift and an add: no samples are kept.

/// Values below this are counted exactly.
const LINEAR: u64 = 256;
/// Buckets per power of two above `LINEAR`.
const HALF: u64 = LINEAR / 2;
const SUB_BITS: u32 = 8;
const BUCKETS: usize = (LINEAR + (64 - SUB_BITS as u64) * HALF) as usize;
/// The same layout in HdrHistogram's terms (2 significant digits, unit 1), for
/// the footer of its percentile-distribution format.
pub const HDR_SUB_BUCKETS: usize = LINEAR as usize;
pub const HDR_BUCKETS: usize = BUCKETS / HALF as usize - 1;

/// Counts of values (nanoseconds, in churn) in log-linear buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max)
            .finish()
    }
}

/// The bucket holding `v`.
fn bucket(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = msb - (SUB_BITS - 1); // >= 1
    let top = v >> shift; // in HALF..LINEAR
    (LINEAR + u64::from(shift - 1) * HALF + (top - HALF)) as usize
}

/// The largest value that lands in bucket `b` (HdrHistogram's "highest equivalent value").
fn highest_in(b: usize) -> u64 {
    let b = b as u64;
    if b < LINEAR {
        return b;
    }
    let shift = (b - LINEAR) / HALF + 1;
    let top = (b - LINEAR) % HALF + HALF;
    let low = top << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Records `v` `n` times (a count read back from an encoding).
    pub fn record_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        let b = &mut self.counts[bucket(v)];
        *b = b.saturating_add(n);
        self.count = self.count.saturating_add(n);
        self.sum += u128::from(v) * u128::from(n);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds every value of `other` (another worker's, another run's).
    pub fn add(&mut self, other: &Histogram) {
        for (mine, &theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(theirs);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The same values divided by `unit` (nanoseconds to microseconds: 1,000),
    /// each bucket's count at its middle value, rounded.
    pub fn rescaled(&self, unit: u64) -> Histogram {
        let mut out = Histogram::new();
        for (b, &n) in self.counts.iter().enumerate().filter(|&(_, &n)| n > 0) {
            let low = if b == 0 { 0 } else { highest_in(b - 1) + 1 };
            let middle = low + (highest_in(b) - low) / 2;
            out.record_n(middle.saturating_add(unit / 2) / unit, n);
        }
        if self.count > 0 {
            // The extremes are known exactly: keep them so.
            out.min = (self.min + unit / 2) / unit;
            out.max = out.max.max((self.max + unit / 2) / unit);
            out.sum = self.sum / u128::from(unit);
        }
        out
    }

    /// What counts cannot say exactly, from the summary they came with: the
    /// least and greatest value, and the sum of all.
    pub fn set_exact(&mut self, min: u64, max: u64, sum: u128) {
        if self.count > 0 {
            self.min = min;
            self.max = max.max(self.min);
            self.sum = sum;
        }
    }

    /// The counts, one per bucket, in HdrHistogram's order for 2 significant
    /// digits and lowest value 1.
    pub fn bucket_counts(&self) -> &[u64] {
        &self.counts
    }

    /// The bucket (HdrHistogram's counts index) that holds `v`.
    pub fn bucket_of(v: u64) -> usize {
        bucket(v)
    }

    /// Empties it in place (interval histograms are cleared every second).
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.count = 0;
        self.sum = 0;
        self.min = u64::MAX;
        self.max = 0;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// 0 when empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// `(highest value of the bucket, count)` for every bucket holding values,
    /// lowest first: what HdrHistogram's iterators walk.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(b, &n)| (highest_in(b), n))
    }

    /// The standard deviation, from each bucket's middle value as HdrHistogram
    /// computes it (0 when empty).
    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let middle = |b: usize| {
            let low = if b == 0 { 0 } else { highest_in(b - 1) + 1 };
            low as f64 + (highest_in(b) - low) as f64 / 2.0
        };
        let nonzero = || self.counts.iter().enumerate().filter(|&(_, &n)| n > 0);
        let n = self.count as f64;
        let mean = nonzero().map(|(b, &c)| middle(b) * c as f64).sum::<f64>() / n;
        let var = nonzero()
            .map(|(b, &c)| (middle(b) - mean).powi(2) * c as f64)
            .sum::<f64>()
            / n;
        var.sqrt()
    }

    /// The value at or below which `q` percent of the values fall (0 when empty):
    /// the highest value of the bucket that holds the rank, but never above the max.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // The epsilon keeps 99.9 % of 10,000 at rank 9,990 despite binary fractions.
        let rank = ((q / 100.0) * self.count as f64 - 1e-6).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return highest_in(b).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        for b in 0..BUCKETS - 1 {
            assert_eq!(bucket(highest_in(b)), b, "bucket {b}");
            assert_eq!(bucket(highest_in(b) + 1), b + 1, "bucket {b}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(highest_in(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 0..LINEAR {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 127);
        assert_eq!(h.percentile(100.0), 255);
        assert_eq!(h.min(), 0);
        assert_eq!(h.mean(), 127.5);
    }

    #[test]
    fn percentiles_of_a_uniform_spread_are_within_one_percent() {
        let mut h = Histogram::new();
        for v in 1..=1_000_000u64 {
            h.record(v * 1000); // 1 us .. 1 s in ns
        }
        for (q, exact) in [
            (50.0, 500_000_000u64),
            (99.0, 990_000_000),
            (99.9, 999_000_000),
            (100.0, 1_000_000_000),
        ] {
            let got = h.percentile(q);
            let err = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(got >= exact && err < 0.008, "p{q}: {got} vs {exact}");
        }
        assert_eq!(h.max(), 1_000_000_000);
        assert!((1000..1008).contains(&h.percentile(0.0)));
    }

    #[test]
    fn a_rare_outlier_shows_in_the_tail_only() {
        let mut h = Histogram::new();
        for _ in 0..9_990 {
            h.record(100_000);
        }
        for _ in 0..10 {
            h.record(50_000_000);
        }
        assert!(h.percentile(99.0) < 101_000);
        assert!(h.percentile(99.9) < 101_000);
        assert!(h.percentile(99.91) >= 50_000_000);
        assert_eq!(h.max(), 50_000_000);
    }

    #[test]
    fn empty_and_cleared() {
        let mut a = Histogram::new();
        assert_eq!(
            (a.percentile(99.0), a.min(), a.max(), a.mean()),
            (0, 0, 0, 0.0)
        );
        a.record(10);
        a.record(1_000_000);
        assert_eq!((a.count(), a.min(), a.max()), (2, 10, 1_000_000));
        assert_eq!(a.percentile(50.0), 10);
        a.clear();
        assert_eq!(a.count(), 0);
        assert_eq!((a.min(), a.max(), a.buckets().count()), (0, 0, 0));
    }

    #[test]
    fn buckets_and_spread() {
        let mut h = Histogram::new();
        for v in [10, 10, 20, 1_000_000] {
            h.record(v);
        }
        let b: Vec<_> = h.buckets().collect();
        assert_eq!(b[..2], [(10, 2), (20, 1)]);
        assert_eq!(b[2].1, 1);
        assert!((1_000_000..1_008_000).contains(&b[2].0));
        let mut flat = Histogram::new();
        flat.record(100);
        flat.record(100);
        assert_eq!(flat.stddev(), 0.0);
        flat.record(200);
        flat.record(200);
        assert_eq!(flat.stddev(), 50.0);
        assert_eq!(HDR_BUCKETS, 57);
    }
}
