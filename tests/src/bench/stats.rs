//! Summary statistics of a benchmark's samples: the one place where medians, percentiles and
//! ranges are computed, so every table in BENCHMARKS.md means the same by "median" and "p90".
//!
//! * median: the middle sample; for an even count the mean of the two middle ones;
//! * percentile `q`: nearest rank, the smallest sample with at least `q` % of the samples at or
//!   below it (`sorted[ceil(q/100 * n) - 1]`): always a sample that was measured.

/// The samples of one figure, sorted. Never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    sorted: Vec<f64>,
}

impl Summary {
    /// `None` when there is no sample (NaN samples are left out).
    pub fn of(samples: impl IntoIterator<Item = f64>) -> Option<Summary> {
        let mut sorted: Vec<f64> = samples.into_iter().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Summary { sorted })
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Never true: a `Summary` has at least one sample (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn min(&self) -> f64 {
        self.sorted[0]
    }

    pub fn max(&self) -> f64 {
        self.sorted[self.sorted.len() - 1]
    }

    pub fn mean(&self) -> f64 {
        self.sorted.iter().sum::<f64>() / self.sorted.len() as f64
    }

    pub fn median(&self) -> f64 {
        let n = self.sorted.len();
        if n % 2 == 1 {
            self.sorted[n / 2]
        } else {
            (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0
        }
    }

    /// Nearest-rank percentile, `q` in (0, 100].
    pub fn percentile(&self, q: f64) -> f64 {
        let n = self.sorted.len();
        // The rank is computed in integer hundredths so that 90 % of 30 is rank 27, not 28
        // (0.9 * 30 is 27.000000000000004 in floating point).
        let q_hundredths = (q * 100.0).round() as usize;
        let rank = (q_hundredths * n).div_ceil(100 * 100).clamp(1, n);
        self.sorted[rank - 1]
    }

    pub fn sorted(&self) -> &[f64] {
        &self.sorted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Summary::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!(s.median(), 2.0);
        let s = Summary::of([4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median(), 2.5);
        assert_eq!((s.min(), s.max(), s.mean(), s.len()), (1.0, 4.0, 2.5, 4));
    }

    #[test]
    fn no_samples_no_summary_and_nan_is_left_out() {
        assert!(Summary::of([]).is_none());
        assert!(Summary::of([f64::NAN]).is_none());
        assert_eq!(Summary::of([f64::NAN, 5.0]).unwrap().sorted(), &[5.0]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Summary::of((1..=30).map(f64::from)).unwrap();
        assert_eq!(s.percentile(90.0), 27.0);
        assert_eq!(s.percentile(100.0), 30.0);
        assert_eq!(s.percentile(0.1), 1.0);
        let s = Summary::of((1..=40).map(f64::from)).unwrap();
        assert_eq!(s.percentile(90.0), 36.0);
        assert_eq!(s.percentile(50.0), 20.0);
        let s = Summary::of((1..=2000).map(f64::from)).unwrap();
        assert_eq!(s.percentile(99.0), 1980.0);
        let s = Summary::of([7.0]).unwrap();
        assert_eq!((s.percentile(1.0), s.percentile(99.0)), (7.0, 7.0));
    }
}
