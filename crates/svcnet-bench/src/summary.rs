//! Latency summaries: nearest-rank percentiles over the recorded samples.

use std::fmt;
use std::time::Duration;

/// Order statistics of one set of latency samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub count: usize,
    pub min: Duration,
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// Summarises `samples` (in any order); all zero when there are none.
    pub fn from_samples(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        Summary {
            count: samples.len(),
            min: samples[0],
            mean: total / samples.len() as u32,
            p50: percentile(&samples, 0.50),
            p90: percentile(&samples, 0.90),
            p99: percentile(&samples, 0.99),
            max: samples[samples.len() - 1],
        }
    }
}

/// The nearest-rank percentile `q` (0..=1) of ascending `sorted` samples: the smallest sample
/// that at least `q` of all samples do not exceed.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration in milliseconds with a precision that suits its size (`0.84 ms`, `12.3 ms`, `250 ms`).
pub struct Millis(pub Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1e3;
        if ms < 10.0 {
            write!(f, "{ms:.2} ms")
        } else if ms < 100.0 {
            write!(f, "{ms:.1} ms")
        } else {
            write!(f, "{ms:.0} ms")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let summary = Summary::from_samples(samples);
        assert_eq!(summary.count, 100);
        assert_eq!(summary.min, ms(1));
        assert_eq!(summary.p50, ms(50));
        assert_eq!(summary.p90, ms(90));
        assert_eq!(summary.p99, ms(99));
        assert_eq!(summary.max, ms(100));
        assert_eq!(summary.mean, Duration::from_micros(50_500));
    }

    #[test]
    fn small_sets_pick_real_samples() {
        let sorted = [ms(3), ms(7), ms(20)];
        assert_eq!(percentile(&sorted, 0.0), ms(3));
        assert_eq!(percentile(&sorted, 0.5), ms(7));
        assert_eq!(percentile(&sorted, 0.99), ms(20));
        assert_eq!(percentile(&sorted, 1.0), ms(20));
        assert_eq!(Summary::from_samples(vec![ms(5)]).p99, ms(5));
    }

    #[test]
    fn no_samples_give_zeros() {
        assert_eq!(Summary::from_samples(Vec::new()), Summary::default());
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn millis_precision_follows_size() {
        assert_eq!(Millis(Duration::from_micros(840)).to_string(), "0.84 ms");
        assert_eq!(Millis(Duration::from_micros(12_345)).to_string(), "12.3 ms");
        assert_eq!(Millis(Duration::from_millis(250)).to_string(), "250 ms");
    }
}
