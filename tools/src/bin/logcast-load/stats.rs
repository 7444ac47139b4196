//! Counters and a fixed-bucket log-linear latency histogram.
//!
//! Every worker process records into the same bucket layout, so merging is a
//! bucket-wise sum and percentiles of the merged histogram are exactly the
//! percentiles of all samples taken together (to the bucket's precision).

/// Sub-buckets per power of two: a bucket is at most 1/64 of its value wide.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Largest recordable value (µs, about 12.7 days); larger values are clamped.
pub const MAX_VALUE: u64 = (1 << 40) - 1;
/// Number of buckets.
pub const BUCKETS: usize = bucket_index(MAX_VALUE) + 1;

/// Bucket of value `v`: values below 128 have a bucket each; above, each power
/// of two is split into 64 equal buckets.
pub const fn bucket_index(v: u64) -> usize {
    let v = if v > MAX_VALUE { MAX_VALUE } else { v };
    if v < 2 * SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let mantissa = v >> shift;
    (2 * SUB + (shift as u64 - 1) * SUB + (mantissa - SUB)) as usize
}

/// Smallest and largest value (inclusive) that land in bucket `i`.
pub const fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < 2 * SUB {
        return (i, i);
    }
    let j = i - 2 * SUB;
    let shift = j / SUB + 1;
    let lo = (SUB + j % SUB) << shift;
    (lo, lo + (1 << shift) - 1)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        let v = v.min(MAX_VALUE);
        self.counts[bucket_index(v)] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at percentile `p` (0..=100): the upper bound of the bucket
    /// holding the sample of rank ceil(p/100 * count), never above the exact
    /// maximum (and never below the exact minimum). 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let p = p.clamp(0.0, 100.0);
        let rank = ((p / 100.0) * self.count as f64).ceil() as u64;
        let rank = rank.clamp(1, self.count);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_range(i).1.clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Compact text form without spaces: `count/sum/min/max/i:c,i:c,...`.
    pub fn encode(&self) -> String {
        let mut s = format!("{}/{}/{}/{}/", self.count, self.sum, self.min(), self.max);
        let mut first = true;
        for (i, &c) in self.counts.iter().enumerate() {
            if c != 0 {
                if !first {
                    s.push(',');
                }
                first = false;
                s.push_str(&format!("{i}:{c}"));
            }
        }
        s
    }

    pub fn decode(s: &str) -> Result<Histogram, String> {
        let bad = || format!("bad histogram '{s}'");
        let mut parts = s.splitn(5, '/');
        let mut num = || -> Result<u64, String> {
            parts
                .next()
                .and_then(|p| p.parse::<u64>().ok())
                .ok_or_else(bad)
        };
        let count = num()?;
        let sum = num()?;
        let min = num()?;
        let max = num()?;
        let mut h = Histogram::new();
        h.count = count;
        h.sum = sum;
        h.min = if count == 0 { u64::MAX } else { min };
        h.max = max;
        let rest = parts.next().ok_or_else(bad)?;
        let mut total = 0u64;
        for item in rest.split(',').filter(|x| !x.is_empty()) {
            let (i, c) = item.split_once(':').ok_or_else(bad)?;
            let i: usize = i.parse().map_err(|_| bad())?;
            let c: u64 = c.parse().map_err(|_| bad())?;
            if i >= BUCKETS {
                return Err(bad());
            }
            h.counts[i] += c;
            total += c;
        }
        if total != count {
            return Err(bad());
        }
        Ok(h)
    }
}

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Per-process counters, summed across processes by the parent.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Totals {
            $(pub $name: u64,)*
        }

        impl Totals {
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }

            /// Sets a counter by name; false if there is no such counter.
            pub fn set(&mut self, name: &str, v: u64) -> bool {
                match name {
                    $(stringify!($name) => { self.$name = v; true })*
                    _ => false,
                }
            }

            pub fn add(&mut self, o: &Totals) {
                $(self.$name += o.$name;)*
            }
        }
    };
}

counters! {
    attempted,
    connected,
    failed_refused,
    failed_timeout,
    failed_status,
    failed_reset,
    failed_other,
    closed_early_eof,
    closed_early_reset,
    open_at_end,
    events,
    bytes,
    end_events,
    shutdown_events,
    reset_events,
    marks_received,
    marks_stale,
    marks_duplicate,
    marks_expected,
    marks_missing,
    streams_missing_marks,
    self_cpu_ticks,
    ramp_ms,
}

impl Totals {
    pub fn failed(&self) -> u64 {
        self.failed_refused
            + self.failed_timeout
            + self.failed_status
            + self.failed_reset
            + self.failed_other
    }

    pub fn closed_early(&self) -> u64 {
        self.closed_early_eof + self.closed_early_reset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once_and_in_order() {
        let mut prev_hi = None;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_range(i);
            assert!(lo <= hi);
            if let Some(p) = prev_hi {
                assert_eq!(lo, p + 1, "gap before bucket {i}");
            }
            prev_hi = Some(hi);
            assert_eq!(bucket_index(lo), i);
            assert_eq!(bucket_index(hi), i);
            // relative width bound
            if lo >= 2 * SUB {
                assert!((hi - lo + 1) * SUB <= lo, "bucket {i} too wide");
            }
        }
        assert_eq!(prev_hi, Some(MAX_VALUE));
        for v in (0..200_000u64).chain([u64::MAX, MAX_VALUE + 1, 1 << 39]) {
            let (lo, hi) = bucket_range(bucket_index(v));
            let c = v.min(MAX_VALUE);
            assert!(lo <= c && c <= hi, "{v} not in its bucket");
        }
    }

    #[test]
    fn percentiles_of_small_exact_values() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(90.0), 90);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(100.0), 100);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!(h.max(), 100);
        assert_eq!(h.min(), 1);
        assert!((h.mean() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn percentiles_within_bucket_precision() {
        let mut h = Histogram::new();
        for v in 1..=1_000_000u64 {
            h.record(v);
        }
        for p in [50.0, 90.0, 99.0, 99.9] {
            let exact = (p / 100.0 * 1_000_000.0) as u64;
            let got = h.percentile(p);
            assert!(got >= exact, "p{p}: {got} < {exact}");
            assert!(got - exact <= exact / 64 + 1, "p{p}: {got} vs {exact}");
        }
        assert_eq!(h.percentile(100.0), 1_000_000);
    }

    #[test]
    fn empty_histogram() {
        let h = Histogram::new();
        assert_eq!(h.percentile(99.0), 0);
        assert_eq!(h.min(), 0);
        assert_eq!(h.max(), 0);
        assert_eq!(Histogram::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut all = Histogram::new();
        let mut parts = vec![Histogram::new(), Histogram::new(), Histogram::new()];
        let mut x: u64 = 12345;
        for k in 0..50_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = (x >> 33) % 5_000_000;
            all.record(v);
            parts[k % 3].record(v);
        }
        let mut merged = Histogram::new();
        for p in &parts {
            // through the text form, as between processes
            merged.merge(&Histogram::decode(&p.encode()).unwrap());
        }
        assert_eq!(merged, all);
        for p in [50.0, 90.0, 99.0, 100.0] {
            assert_eq!(merged.percentile(p), all.percentile(p));
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(Histogram::decode("").is_err());
        assert!(Histogram::decode("1/2/3").is_err());
        assert!(Histogram::decode("2/2/1/1/1:1").is_err()); // count mismatch
        assert!(Histogram::decode("1/1/1/1/999999:1").is_err());
    }

    #[test]
    fn totals_set_add_fields() {
        let mut a = Totals::default();
        assert!(a.set("connected", 3));
        assert!(!a.set("nope", 1));
        let mut b = Totals::default();
        b.set("connected", 4);
        b.set("failed_reset", 1);
        a.add(&b);
        assert_eq!(a.connected, 7);
        assert_eq!(a.failed(), 1);
        assert!(a.fields().iter().any(|&(n, v)| n == "connected" && v == 7));
    }
}
