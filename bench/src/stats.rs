//! The arithmetic of a run: exact percentiles over every recorded latency, rates, and CPU
//! per 1,000 requests. Kept free of I/O so that it can be tested on known inputs.

use serde::Serialize;

/// The nearest-rank percentile `p` (0 < p <= 100) of `sorted` (ascending): the smallest
/// value such that at least p% of the values are at or below it. `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let n = sorted.len();
    // ceil(p/100 * n), computed in integers of a millionth of a percent so that 99.9% of
    // 1,000 is exactly 999 (floating point would make it 999.0000000000001 -> 1,000).
    let scaled = (p * 1_000_000.0).round() as u128;
    let rank = (scaled * n as u128).div_ceil(100_000_000).max(1) as usize;
    Some(sorted[rank.min(n) - 1])
}

/// Requests per second.
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// CPU seconds spent per 1,000 requests, `None` when no request completed.
pub fn cpu_seconds_per_1000(cpu_seconds: f64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| cpu_seconds * 1_000.0 / requests as f64)
}

/// Latency percentiles of one run, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest request.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1_000_000.0
}

impl LatencySummary {
    /// The summary of `latencies_ns` (sorted here); `None` when there are none.
    pub fn of(mut latencies_ns: Vec<u64>) -> Option<Self> {
        if latencies_ns.is_empty() {
            return None;
        }
        latencies_ns.sort_unstable();
        let sum: u128 = latencies_ns.iter().map(|&v| u128::from(v)).sum();
        let mean = sum as f64 / latencies_ns.len() as f64;
        Some(Self {
            p50_ms: ms(percentile(&latencies_ns, 50.0)?),
            p99_ms: ms(percentile(&latencies_ns, 99.0)?),
            p999_ms: ms(percentile(&latencies_ns, 99.9)?),
            max_ms: ms(*latencies_ns.last()?),
            mean_ms: mean / 1_000_000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let values: Vec<u64> = (1..=1_000).collect();
        assert_eq!(percentile(&values, 50.0), Some(500));
        assert_eq!(percentile(&values, 99.0), Some(990));
        assert_eq!(percentile(&values, 99.9), Some(999));
        assert_eq!(percentile(&values, 100.0), Some(1_000));
        assert_eq!(percentile(&values, 0.01), Some(1));
    }

    #[test]
    fn percentiles_of_small_and_empty_inputs() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 99.9), Some(7));
        // Nearest rank: the median of 1..=4 is 2, p75 is 3, p76 is 4.
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 75.0), Some(3));
        assert_eq!(percentile(&[1, 2, 3, 4], 76.0), Some(4));
        assert_eq!(percentile(&[1, 2], 0.0), None);
        assert_eq!(percentile(&[1, 2], 101.0), None);
    }

    #[test]
    fn one_slow_request_in_a_thousand_shows_at_p999_only() {
        let mut values = vec![1_000_000u64; 999];
        values.push(50_000_000);
        let summary = LatencySummary::of(values).expect("non-empty");
        assert_eq!(summary.p50_ms, 1.0);
        assert_eq!(summary.p99_ms, 1.0);
        assert_eq!(summary.p999_ms, 1.0);
        assert_eq!(summary.max_ms, 50.0);
        assert!((summary.mean_ms - 1.049).abs() < 1e-9);

        let mut values = vec![1_000_000u64; 998];
        values.extend([50_000_000, 60_000_000]);
        let summary = LatencySummary::of(values).expect("non-empty");
        assert_eq!(summary.p999_ms, 50.0);
    }

    #[test]
    fn summary_sorts_its_input() {
        let summary = LatencySummary::of(vec![3_000_000, 1_000_000, 2_000_000]).expect("some");
        assert_eq!(summary.p50_ms, 2.0);
        assert_eq!(summary.max_ms, 3.0);
        assert_eq!(LatencySummary::of(Vec::new()), None);
    }

    #[test]
    fn rates_and_cpu_per_thousand() {
        assert_eq!(rate(20_000, 10.0), 2_000.0);
        assert_eq!(rate(5, 0.0), 0.0);
        // 1.5 CPU seconds for 30,000 requests: 0.05 s per 1,000 (50 µs each).
        let per_1000 = cpu_seconds_per_1000(1.5, 30_000).expect("requests");
        assert!((per_1000 - 0.05).abs() < 1e-12);
        assert_eq!(cpu_seconds_per_1000(1.0, 0), None);
    }
}
