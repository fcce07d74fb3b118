//! Quantiles from cumulative histogram buckets, the way Prometheus' `histogram_quantile` does.

/// Estimates the `q` quantile of a histogram from its cumulative bucket counts.
///
/// `upper_bounds` are the finite bucket bounds in increasing order; `cumulative` holds one
/// count per finite bound plus a last one for `+Inf` (so `cumulative.len() ==
/// upper_bounds.len() + 1`), as in the `_bucket{le=…}` series. The estimate follows
/// Prometheus' `histogram_quantile`:
///
/// - the rank is `q × total`, and the bucket is the first whose cumulative count reaches it;
/// - inside that bucket the value is interpolated linearly between its lower and upper bound
///   (the lower bound of the first bucket is 0);
/// - a rank that falls in the `+Inf` bucket returns the highest finite bound, since nothing
///   is known about how far above it those observations were;
/// - `q < 0` gives `-∞`, `q > 1` gives `+∞`, and an empty histogram or a NaN `q` gives NaN;
/// - counts that decrease (torn reads) are treated as flat, as Prometheus does.
///
/// One deliberate difference: for `q = 0` with an empty first bucket Prometheus divides 0 by
/// 0 and returns NaN; this returns the bucket's lower bound, 0.
///
/// ```
/// use observe_core::status::histogram_quantile;
/// let bounds = [0.1, 0.5, 1.0];
/// // 10 observations ≤ 0.1 s, 10 more in (0.1, 0.5], none above.
/// let cumulative = [10, 20, 20, 20];
/// assert_eq!(histogram_quantile(0.5, &bounds, &cumulative), 0.1);
/// assert!((histogram_quantile(0.75, &bounds, &cumulative) - 0.3).abs() < 1e-12);
/// assert!(histogram_quantile(0.5, &bounds, &[0, 0, 0, 0]).is_nan());
/// ```
pub fn histogram_quantile(q: f64, upper_bounds: &[f64], cumulative: &[u64]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Without a +Inf bucket and one finite bound there is nothing to interpolate in.
    if upper_bounds.is_empty() || cumulative.len() != upper_bounds.len() + 1 {
        return f64::NAN;
    }
    // Monotonic view of the counts: a torn read may show a later bucket smaller.
    let mut running = 0u64;
    let count_at = |i: usize, running: &mut u64| {
        *running = (*running).max(cumulative[i]);
        *running
    };
    let total = cumulative.iter().copied().max().unwrap_or(0);
    if total == 0 {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let mut below = 0u64; // cumulative count of the bucket before the current one
    for (i, &upper) in upper_bounds.iter().enumerate() {
        let at = count_at(i, &mut running);
        if at as f64 >= rank {
            if i == 0 && upper <= 0.0 {
                return upper;
            }
            let lower = if i == 0 { 0.0 } else { upper_bounds[i - 1] };
            let in_bucket = (at - below) as f64;
            if in_bucket == 0.0 {
                return lower;
            }
            return lower + (upper - lower) * ((rank - below as f64) / in_bucket);
        }
        below = at;
    }
    // The rank lies in the +Inf bucket.
    upper_bounds[upper_bounds.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::histogram_quantile as hq;

    const B: [f64; 4] = [0.005, 0.01, 0.025, 0.05];

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn interpolates_linearly_inside_the_bucket() {
        // 4 in (0, 0.005], 4 in (0.005, 0.01], 2 in (0.01, 0.025].
        let c = [4, 8, 10, 10, 10];
        assert!(close(hq(0.2, &B, &c), 0.0025)); // rank 2 of 4 in the first bucket
        assert!(close(hq(0.4, &B, &c), 0.005)); // exactly the first bound
        assert!(close(hq(0.6, &B, &c), 0.0075)); // rank 6: 2 of 4 into (0.005, 0.01]
        assert!(close(hq(0.9, &B, &c), 0.0175)); // rank 9: 1 of 2 into (0.01, 0.025]
        assert!(close(hq(1.0, &B, &c), 0.025));
    }

    #[test]
    fn empty_buckets_before_the_rank_are_skipped() {
        // Everything in (0.025, 0.05].
        let c = [0, 0, 0, 10, 10];
        assert!(close(hq(0.5, &B, &c), 0.0375));
        assert!(close(hq(0.99, &B, &c), 0.025 + 0.025 * 0.99));
    }

    #[test]
    fn rank_in_the_inf_bucket_returns_the_highest_finite_bound() {
        let c = [1, 1, 1, 1, 10];
        assert_eq!(hq(0.5, &B, &c), 0.05);
        assert_eq!(hq(0.99, &B, &c), 0.05);
        // ... but a rank still inside the finite buckets interpolates normally.
        assert!(close(hq(0.1, &B, &c), 0.005));
    }

    #[test]
    fn out_of_range_and_empty_follow_prometheus() {
        let c = [1, 2, 3, 4, 4];
        assert_eq!(hq(-0.1, &B, &c), f64::NEG_INFINITY);
        assert_eq!(hq(1.1, &B, &c), f64::INFINITY);
        assert!(hq(f64::NAN, &B, &c).is_nan());
        assert!(hq(0.5, &B, &[0, 0, 0, 0, 0]).is_nan());
        // Wrong shape: no +Inf count, or no finite bound.
        assert!(hq(0.5, &B, &[1, 2, 3, 4]).is_nan());
        assert!(hq(0.5, &[], &[4]).is_nan());
    }

    #[test]
    fn q_zero_is_the_lower_bound_not_nan() {
        assert_eq!(hq(0.0, &B, &[0, 0, 5, 5, 5]), 0.0);
        assert_eq!(hq(0.0, &B, &[0, 5, 5, 5, 5]), 0.0);
    }

    #[test]
    fn non_monotonic_counts_are_treated_as_flat() {
        // A torn read: the third bucket reads lower than the second.
        let c = [5, 10, 9, 10, 10];
        // rank 7.5 lies in the second bucket: 2.5 of 5 into (0.005, 0.01].
        assert!(close(hq(0.75, &B, &c), 0.0075));
        // Flat third bucket: rank 10 is reached at the second bound already.
        assert!(close(hq(1.0, &B, &c), 0.01));
    }

    #[test]
    fn a_non_positive_first_bound_is_returned_as_is() {
        assert_eq!(hq(0.5, &[-1.0, 1.0], &[4, 8, 8]), -1.0);
    }

    #[test]
    fn matches_the_metrics_module_on_its_default_buckets() {
        use crate::metrics::{HistogramSnapshot, BUCKETS, DURATION_BUCKETS};
        let mut buckets = [0u64; BUCKETS];
        buckets[2] = 7;
        buckets[6] = 3;
        buckets[BUCKETS - 1] = 1;
        let snap = HistogramSnapshot {
            buckets,
            sum: 0.0,
            count: 11,
            exemplars: [None; BUCKETS],
        };
        for q in [0.1, 0.5, 0.9, 0.95, 0.99] {
            let ours = hq(q, &DURATION_BUCKETS, &snap.cumulative());
            let theirs = snap.quantile(q).unwrap();
            assert!(close(ours, theirs), "q={q}: {ours} vs {theirs}");
        }
    }
}
