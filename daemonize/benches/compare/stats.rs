//! Median and 90th percentile.

use std::time::Duration;

/// Median and 90th percentile of a series, in milliseconds.
pub struct Summary {
    pub median: f64,
    pub p90: f64,
}

/// The median (mean of the two middle values for an even count) and the nearest-rank 90th
/// percentile.
pub fn summarize(samples: &[Duration]) -> Summary {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
    let rank = (n * 9).div_ceil(10).max(1);
    Summary { median, p90: ms[rank - 1] }
}
