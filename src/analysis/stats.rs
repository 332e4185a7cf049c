//! The small statistics the detectors and the scoring need, written out (pure, no allocation
//! beyond the ranks): Spearman's rank correlation with ties, median and MAD, and the Wilson
//! score interval of a proportion.

/// Ranks of `xs` from 1, ties sharing the mean of the ranks they span (the "fractional" ranking
/// Spearman's coefficient needs). NaNs rank last, in their order.
pub fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut out = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        // positions i..=j (0-based) hold equal values: each gets the mean rank
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Pearson's correlation of `xs` and `ys` (same length); `None` with fewer than 3 points or when
/// either is constant (the coefficient is undefined then, not 0).
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() || xs.len() < 3 {
        return None;
    }
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        let (dx, dy) = (x - mx, y - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let denom = (sxx * syy).sqrt();
    (denom > 1e-12 && denom.is_finite()).then(|| (sxy / denom).clamp(-1.0, 1.0))
}

/// Spearman's rank correlation of `xs` and `ys`: Pearson's on their fractional ranks, which is
/// exact with ties (the `1 − 6Σd²/(n(n²−1))` shortcut is not).
pub fn spearman(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() || xs.iter().chain(ys).any(|v| !v.is_finite()) {
        return None;
    }
    pearson(&ranks(xs), &ranks(ys))
}

/// The median of `xs` (the mean of the two middle values for an even count); `None` when empty
/// or when a value is not finite.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The median absolute deviation from the median (unscaled; ×1.4826 estimates σ of a normal).
pub fn mad(xs: &[f64]) -> Option<f64> {
    let m = median(xs)?;
    let dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    median(&dev)
}

/// The 95 % Wilson score interval of `hits` successes in `n` trials, `(low, high)`; `(0, 1)`
/// without trials.
pub fn wilson(hits: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (n, p) = (n as f64, hits.min(n) as f64 / n as f64);
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn ties_share_the_mean_of_their_ranks() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0, 20.0]), [2.0, 4.0, 4.0, 1.0, 4.0]);
        assert_eq!(ranks(&[]), Vec::<f64>::new());
    }

    #[test]
    fn spearman_with_ties_matches_known_values() {
        // by hand: y's ranks 1, 2, 3.5, 5, 3.5 against 1..5: Σd·d = 8, Σdx² = 10, Σdy² = 9.5,
        // ρ = 8/√95 (scipy.stats.spearmanr gives 0.8207826816681233)
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
        assert!(close(rho, 8.0 / 95f64.sqrt()), "{rho}");
        assert!(close(rho, 0.820_782_681_668_123_3));
        // a monotone but non-linear relation is a perfect rank correlation
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let ys: Vec<f64> = xs.iter().map(|x: &f64| x.powi(3)).collect();
        assert!(close(spearman(&xs, &ys).unwrap(), 1.0));
        let rev: Vec<f64> = ys.iter().rev().copied().collect();
        assert!(close(spearman(&xs, &rev).unwrap(), -1.0));
        // both tied: x ranks 1.5 1.5 3 4, y ranks 1 2.5 2.5 4 (means 2.5): Σdx·dy = 3.75,
        // Σdx² = Σdy² = 4.5, ρ = 3.75/4.5
        let rho = spearman(&[1.0, 1.0, 2.0, 3.0], &[1.0, 2.0, 2.0, 3.0]).unwrap();
        assert!(close(rho, 3.75 / 4.5), "{rho}");
    }

    #[test]
    fn undefined_correlations_are_none() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]), None, "a constant");
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None, "too few points");
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[1.0, 2.0]), None, "lengths differ");
        assert_eq!(spearman(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn median_and_mad() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        // deviations from 2: 1, 1, 0, 2, 98 → median 1
        assert_eq!(mad(&[1.0, 3.0, 2.0, 4.0, 100.0]), Some(1.0));
    }

    #[test]
    fn wilson_matches_known_intervals() {
        // 8 of 10: (0.4902, 0.9433) to four places
        let (lo, hi) = wilson(8, 10);
        assert!((lo - 0.4902).abs() < 1e-4 && (hi - 0.9433).abs() < 1e-4, "{lo} {hi}");
        let (lo, hi) = wilson(30, 30);
        assert!((hi - 1.0).abs() < 1e-12 && (lo - 0.8865).abs() < 1e-4, "{lo} {hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    proptest! {
        #[test]
        fn spearman_is_bounded_symmetric_and_rank_invariant(
            xs in proptest::collection::vec(-1e6..1e6f64, 3..40),
            seed in any::<u64>(),
        ) {
            let ys: Vec<f64> = xs.iter().enumerate().map(|(i, x)| (x * 0.5 + ((seed >> (i % 60)) & 7) as f64).round()).collect();
            if let Some(r) = spearman(&xs, &ys) {
                prop_assert!((-1.0..=1.0).contains(&r));
                prop_assert!(close(r, spearman(&ys, &xs).unwrap()));
                // a strictly increasing transform of x changes no rank
                let ex: Vec<f64> = xs.iter().map(|x| x * 3.0 + 7.0).collect();
                prop_assert!(close(r, spearman(&ex, &ys).unwrap()));
            }
        }

        #[test]
        fn wilson_contains_the_proportion(n in 1u64..2000, k in 0u64..2000) {
            let k = k.min(n);
            let (lo, hi) = wilson(k, n);
            let p = k as f64 / n as f64;
            prop_assert!(lo <= p + 1e-12 && p <= hi + 1e-12 && 0.0 <= lo && hi <= 1.0);
        }
    }
}
