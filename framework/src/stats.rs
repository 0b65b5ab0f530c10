//! A compact latency histogram for per-node statistics: log-scale buckets with 8 steps per
//! doubling (relative error under 9%), fixed memory, constant-time recording.

use std::time::Duration;

const SUB_BUCKETS: u32 = 8;
const BUCKETS: usize = 64 * SUB_BUCKETS as usize;

/// Records durations and answers percentile queries.
#[derive(Clone, Debug)]
pub(crate) struct LatencyHistogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max_ns: 0,
        }
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < SUB_BUCKETS as u64 {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros();
    let shift = exp - 3;
    let sub = ((ns >> shift) as u32) & (SUB_BUCKETS - 1);
    ((exp - 2) * SUB_BUCKETS + sub) as usize
}

/// The largest value that falls in bucket `b`.
fn bucket_upper(b: usize) -> u64 {
    if b < SUB_BUCKETS as usize {
        return b as u64;
    }
    let exp = b as u32 / SUB_BUCKETS + 2;
    let sub = b as u64 % SUB_BUCKETS as u64;
    let shift = exp - 3;
    let upper = ((SUB_BUCKETS as u128 + sub as u128 + 1) << shift) - 1;
    upper.min(u64::MAX as u128) as u64
}

impl LatencyHistogram {
    /// Adds one observation.
    pub(crate) fn record(&mut self, d: Duration) {
        let ns = d.as_nanos().min(u64::MAX as u128) as u64;
        self.counts[bucket_of(ns).min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// The value below which a fraction `q` (0..=1) of the observations fall (bucket upper
    /// bound, capped at the maximum seen); zero when empty.
    pub(crate) fn percentile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_nanos(bucket_upper(b).min(self.max_ns));
            }
        }
        Duration::from_nanos(self.max_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for ns in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            100,
            1_000,
            123_456,
            10_000_000_000,
        ] {
            let b = bucket_of(ns);
            assert!(b >= last);
            last = b;
            let upper = bucket_upper(b);
            assert!(upper >= ns, "{ns} -> bucket {b} upper {upper}");
            assert!(
                upper as f64 <= ns as f64 * 1.126 + 1.0,
                "{ns} -> upper {upper}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = LatencyHistogram::default();
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.percentile(0.5).as_secs_f64() * 1e6;
        let p99 = h.percentile(0.99).as_secs_f64() * 1e6;
        assert!((50.0..=55.0).contains(&p50), "{p50}");
        assert!((99.0..=100.0).contains(&p99), "{p99}");
        assert_eq!(h.percentile(1.0), Duration::from_micros(100));
        assert_eq!(LatencyHistogram::default().percentile(0.5), Duration::ZERO);
    }
}
