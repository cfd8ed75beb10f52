//! Exact statistics over recorded samples: percentiles by nearest rank, minima, rates.

use std::time::Duration;

use serde::Serialize;

/// Latencies of one run, in nanoseconds, sorted once.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    sorted: Vec<u64>,
}

impl Latencies {
    /// Takes the samples in any order.
    pub fn new(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The `p`-th percentile (0 < p ≤ 100) by nearest rank: the smallest sample with at least
    /// p % of the samples at or below it. `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        percentile_sorted(&self.sorted, p)
    }

    /// The percentile in milliseconds (NaN without samples, which the report prints as "–").
    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.percentile(p).map_or(f64::NAN, nanos_to_ms)
    }

    /// The largest sample in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.sorted.last().copied().map_or(f64::NAN, nanos_to_ms)
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile_sorted(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let n = sorted.len();
    // rank = ceil(p/100 · n), 1-based; computed in integers to avoid 0.29·100 = 28.999…
    let per_mille = (p * 1000.0).round() as u128;
    let rank = (per_mille * n as u128).div_ceil(100_000);
    let index = usize::try_from(rank).unwrap_or(n).clamp(1, n) - 1;
    sorted.get(index).copied()
}

/// The smallest finite figure; NaN when there is none.
pub fn minimum(values: &[f64]) -> f64 {
    values
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .min_by(f64::total_cmp)
        .unwrap_or(f64::NAN)
}

/// Events per second.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        f64::NAN
    }
}

/// `a / b`, NaN when either is missing or b is zero.
pub fn ratio(a: f64, b: f64) -> f64 {
    if a.is_finite() && b.is_finite() && b != 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// Nanoseconds as milliseconds.
pub fn nanos_to_ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

/// What one load run measured, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// Requests answered as expected.
    pub ok: u64,
    /// Requests that failed (status, body, transport or timeout).
    pub errors: u64,
    /// Wall time from the first request to the last answer.
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub per_sec: f64,
    /// Latency percentiles of successful requests, ms.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Whether the run stopped at its time cap before its request count.
    pub hit_time_cap: bool,
    /// The first few error messages, for the log.
    pub first_errors: Vec<String>,
}

impl LoadSummary {
    /// Summarise a run.
    pub fn new(
        latencies: &Latencies,
        errors: u64,
        elapsed: Duration,
        hit_time_cap: bool,
        first_errors: Vec<String>,
    ) -> Self {
        let ok = latencies.len() as u64;
        Self {
            ok,
            errors,
            elapsed_s: elapsed.as_secs_f64(),
            per_sec: rate(ok, elapsed),
            p50_ms: latencies.percentile_ms(50.0),
            p90_ms: latencies.percentile_ms(90.0),
            p99_ms: latencies.percentile_ms(99.0),
            max_ms: latencies.max_ms(),
            hit_time_cap,
            first_errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let l = Latencies::new((1..=100).rev().collect());
        assert_eq!(l.percentile(50.0), Some(50));
        assert_eq!(l.percentile(99.0), Some(99));
        assert_eq!(l.percentile(100.0), Some(100));
        assert_eq!(l.percentile(1.0), Some(1));
        assert_eq!(l.percentile(0.5), Some(1));
        assert_eq!(l.percentile(29.0), Some(29));
    }

    #[test]
    fn percentiles_of_small_and_odd_sets() {
        assert_eq!(percentile_sorted(&[7], 50.0), Some(7));
        assert_eq!(percentile_sorted(&[7], 99.0), Some(7));
        // n = 10: p50 is the 5th, p99 the 10th (ceil(9.9)).
        let ten: Vec<u64> = (10..=100).step_by(10).collect();
        assert_eq!(percentile_sorted(&ten, 50.0), Some(50));
        assert_eq!(percentile_sorted(&ten, 90.0), Some(90));
        assert_eq!(percentile_sorted(&ten, 99.0), Some(100));
        // n = 3: p50 is the 2nd.
        assert_eq!(percentile_sorted(&[1, 2, 3], 50.0), Some(2));
        // 1000 samples: p99 is the 990th.
        let thousand: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile_sorted(&thousand, 99.0), Some(990));
        assert_eq!(percentile_sorted(&thousand, 99.9), Some(999));
    }

    #[test]
    fn no_percentile_without_samples_or_for_a_bad_p() {
        assert_eq!(percentile_sorted(&[], 50.0), None);
        assert_eq!(percentile_sorted(&[1, 2], 0.0), None);
        assert_eq!(percentile_sorted(&[1, 2], 101.0), None);
        assert_eq!(percentile_sorted(&[1, 2], f64::NAN), None);
        assert!(Latencies::default().percentile_ms(50.0).is_nan());
    }

    #[test]
    fn minima_rates_and_ratios() {
        assert_eq!(minimum(&[3.0, f64::NAN, 1.5, 2.0]), 1.5);
        assert!(minimum(&[]).is_nan());
        assert_eq!(rate(500, Duration::from_millis(250)), 2000.0);
        assert!(rate(1, Duration::ZERO).is_nan());
        assert_eq!(ratio(10.0, 4.0), 2.5);
        assert!(ratio(1.0, 0.0).is_nan());
        assert!(ratio(f64::NAN, 1.0).is_nan());
    }

    #[test]
    fn a_summary_counts_only_successes_in_the_rate() {
        let l = Latencies::new(vec![1_000_000, 2_000_000, 3_000_000, 4_000_000]);
        let s = LoadSummary::new(&l, 2, Duration::from_secs(2), false, Vec::new());
        assert_eq!(s.ok, 4);
        assert_eq!(s.errors, 2);
        assert_eq!(s.per_sec, 2.0);
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.p99_ms, 4.0);
        assert_eq!(s.max_ms, 4.0);
    }
}
