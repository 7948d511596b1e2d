//! Latency statistics: nearest-rank percentiles over measured samples.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl Latency {
    /// Statistics of `samples` (nearest rank: the smallest sample with at least p % at or below it).
    pub fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let Some(&max) = ms.last() else {
            return Self::default();
        };
        let rank = |p: f64| {
            let k = ((p / 100.0) * ms.len() as f64).ceil() as usize;
            ms[k.clamp(1, ms.len()) - 1]
        };
        Self {
            count: ms.len(),
            p50_ms: round(rank(50.0)),
            p90_ms: round(rank(90.0)),
            p99_ms: round(rank(99.0)),
            max_ms: round(max),
            mean_ms: round(ms.iter().sum::<f64>() / ms.len() as f64),
        }
    }
}

/// Rounds to three decimals (microseconds when the unit is milliseconds), to keep the JSON readable.
pub fn round(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(&samples);
        assert_eq!(
            (l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms),
            (100, 50.0, 90.0, 99.0, 100.0, 50.5)
        );
    }

    #[test]
    fn one_sample_is_every_percentile_and_none_is_zero() {
        let l = Latency::of(&[Duration::from_millis(7)]);
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (7.0, 7.0, 7.0));
        assert_eq!(Latency::of(&[]), Latency::default());
    }
}
