//! Median and MAD: the centre and spread that a few wild points cannot drag, which is what a
//! baseline learned from history that itself holds incidents needs.

/// Scales the raw median absolute deviation so that it estimates the standard deviation of
/// normally distributed data (1 / Φ⁻¹(3/4)).
pub const MAD_SCALE: f64 = 1.4826;

/// Median of `values`, sorting them in place (total order, so the result never depends on
/// input order). `None` when empty. Callers pass finite values only.
pub fn median_in_place(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    let upper = values[n / 2];
    if n % 2 == 1 {
        Some(upper)
    } else {
        // Halves first: the sum of two huge finite values would overflow to infinity.
        Some(values[n / 2 - 1] / 2.0 + upper / 2.0)
    }
}

/// Median and scaled MAD (`1.4826 × median |x − median|`) of `values`, reordering them.
/// `None` when empty.
pub fn median_mad_in_place(values: &mut [f64]) -> Option<(f64, f64)> {
    let median = median_in_place(values)?;
    for v in values.iter_mut() {
        *v = (*v - median).abs();
    }
    let mad = median_in_place(values)?;
    Some((median, MAD_SCALE * mad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts_in_any_order() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median_in_place(&mut [7.0]), Some(7.0));
        assert_eq!(median_in_place(&mut []), None);
    }

    #[test]
    fn median_of_two_huge_values_does_not_overflow() {
        let m = median_in_place(&mut [f64::MAX, f64::MAX]);
        assert_eq!(m, Some(f64::MAX));
    }

    #[test]
    fn mad_is_scaled_and_ignores_a_wild_minority() {
        // |x - 3| = 2, 1, 0, 1, 997 -> median 1 -> scaled 1.4826.
        let (median, mad) =
            median_mad_in_place(&mut [1.0, 2.0, 3.0, 4.0, 1000.0]).unwrap_or_default();
        assert_eq!(median, 3.0);
        assert!((mad - MAD_SCALE).abs() < 1e-12, "{mad}");
    }

    #[test]
    fn mad_estimates_sigma_of_normal_data() {
        // Evenly spaced quantiles of N(0, 2): the scaled MAD should be close to 2.
        let mut values: Vec<f64> = (1..1000)
            .map(|i| 2.0 * inverse_normal_cdf(f64::from(i) / 1000.0))
            .collect();
        let (_, mad) = median_mad_in_place(&mut values).unwrap_or_default();
        assert!((mad - 2.0).abs() < 0.01, "{mad}");
    }

    #[test]
    fn constant_values_have_zero_mad() {
        assert_eq!(median_mad_in_place(&mut [5.0; 9]), Some((5.0, 0.0)));
    }

    /// Standard normal quantile by bisection on the density integrated with Simpson's rule:
    /// slow, but independent of the code under test and exact to well under 1e-4.
    fn inverse_normal_cdf(p: f64) -> f64 {
        let cdf = |x: f64| {
            let steps = 400;
            let a = -8.0;
            let h = (x - a) / f64::from(steps);
            let pdf = |t: f64| (-t * t / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let mut sum = pdf(a) + pdf(x);
            for k in 1..steps {
                let w = if k % 2 == 1 { 4.0 } else { 2.0 };
                sum += w * pdf(a + f64::from(k) * h);
            }
            sum * h / 3.0
        };
        let (mut lo, mut hi) = (-8.0, 8.0);
        for _ in 0..40 {
            let mid = (lo + hi) / 2.0;
            if cdf(mid) < p {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (lo + hi) / 2.0
    }
}
