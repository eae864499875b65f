//! Sensitivity and specificity at a fixed score threshold, with binomial confidence intervals.
//!
//! The default interval is **Wilson's score interval** without continuity correction (R's
//! `prop.test(x, n, correct = FALSE)`): it stays inside [0, 1] and keeps close to nominal coverage
//! for small n and proportions near 0 or 1, where the Wald interval fails. The exact
//! **Clopper–Pearson** interval (R's `binom.test`) is available for reports that ask for it.

use super::StatsError;
use super::auc::{Direction, validate};
use super::delong::{check_level, normal_critical};
use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta, ContinuousCDF};

/// Which binomial interval to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProportionInterval {
    /// Wilson score interval, no continuity correction. The default.
    #[default]
    Wilson,
    /// Exact (conservative) interval from beta quantiles.
    ClopperPearson,
}

/// A proportion `successes / trials` with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    pub successes: usize,
    pub trials: usize,
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
    pub level: f64,
    pub method: ProportionInterval,
}

/// Interval for a binomial proportion. Errors on zero trials or an invalid level.
pub fn proportion_interval(
    successes: usize,
    trials: usize,
    level: f64,
    method: ProportionInterval,
) -> Result<Proportion, StatsError> {
    check_level(level)?;
    if trials == 0 {
        return Err(StatsError::NoTrials);
    }
    let x = successes.min(trials) as f64;
    let n = trials as f64;
    let estimate = x / n;
    let (lo, hi) = match method {
        ProportionInterval::Wilson => {
            let z = normal_critical(level);
            let z2 = z * z;
            let center = (x + z2 / 2.0) / (n + z2);
            let half = z / (n + z2) * (x * (n - x) / n + z2 / 4.0).sqrt();
            ((center - half).max(0.0), (center + half).min(1.0))
        }
        ProportionInterval::ClopperPearson => {
            let alpha = 1.0 - level;
            // Beta(x, n − x + 1) and Beta(x + 1, n − x) quantiles; the shape parameters are > 0 in
            // the branches that use them, so construction cannot fail there.
            let lo = if x == 0.0 {
                0.0
            } else {
                Beta::new(x, n - x + 1.0)
                    .map(|b| b.inverse_cdf(alpha / 2.0))
                    .unwrap_or(0.0)
            };
            let hi = if x == n {
                1.0
            } else {
                Beta::new(x + 1.0, n - x)
                    .map(|b| b.inverse_cdf(1.0 - alpha / 2.0))
                    .unwrap_or(1.0)
            };
            (lo, hi)
        }
    };
    Ok(Proportion {
        successes: successes.min(trials),
        trials,
        estimate,
        lo,
        hi,
        level,
        method,
    })
}

/// Sensitivity and specificity when rows scoring at least `threshold` are called positive (at most
/// `threshold` for [`Direction::LowerIsPositive`]) — the same rule as the ROC curve points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThresholdMetrics {
    pub threshold: f64,
    /// True positives / positives.
    pub sensitivity: Proportion,
    /// True negatives / negatives.
    pub specificity: Proportion,
}

/// Sensitivity and specificity at `threshold` with intervals at `level`.
pub fn sens_spec_at_threshold(
    scores: &[f64],
    labels: &[bool],
    threshold: f64,
    direction: Direction,
    level: f64,
    method: ProportionInterval,
) -> Result<ThresholdMetrics, StatsError> {
    if threshold.is_nan() {
        return Err(StatsError::NanThreshold);
    }
    let counts = validate(scores, labels)?;
    let cut = direction.orient(threshold);
    let (mut tp, mut tn) = (0usize, 0usize);
    for (&s, &positive) in scores.iter().zip(labels) {
        let called_positive = direction.orient(s) >= cut;
        match (positive, called_positive) {
            (true, true) => tp += 1,
            (false, false) => tn += 1,
            _ => {}
        }
    }
    Ok(ThresholdMetrics {
        threshold,
        sensitivity: proportion_interval(tp, counts.n_pos, level, method)?,
        specificity: proportion_interval(tn, counts.n_neg, level, method)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::{asah, proc_golden};

    #[test]
    fn wilson_and_clopper_pearson_match_r() {
        let d = asah();
        let g = proc_golden();
        let t = &g["threshold"];
        let thr = t["threshold"].as_f64().expect("thr");
        for (method, suffix, tol) in [
            (ProportionInterval::Wilson, "wilson95", 1e-12),
            (
                ProportionInterval::ClopperPearson,
                "clopper_pearson95",
                1e-9,
            ),
        ] {
            let m = sens_spec_at_threshold(
                &d.score("s100b"),
                &d.poor,
                thr,
                Direction::HigherIsPositive,
                0.95,
                method,
            )
            .expect("valid");
            assert_eq!(
                m.sensitivity.successes as f64,
                t["tp"].as_f64().expect("tp")
            );
            assert_eq!(
                m.specificity.successes as f64,
                t["tn"].as_f64().expect("tn")
            );
            for (p, key) in [
                (m.sensitivity, "sensitivity_"),
                (m.specificity, "specificity_"),
            ] {
                let r = &t[format!("{key}{suffix}")];
                let (lo, hi) = (r[0].as_f64().expect("lo"), r[1].as_f64().expect("hi"));
                assert!(
                    (p.lo - lo).abs() < tol,
                    "{key}{suffix} lo ours {} R {lo}",
                    p.lo
                );
                assert!(
                    (p.hi - hi).abs() < tol,
                    "{key}{suffix} hi ours {} R {hi}",
                    p.hi
                );
            }
        }
    }

    #[test]
    fn extreme_proportions_stay_in_unit_interval() {
        for method in [
            ProportionInterval::Wilson,
            ProportionInterval::ClopperPearson,
        ] {
            let zero = proportion_interval(0, 10, 0.95, method).expect("valid");
            assert_eq!(zero.lo, 0.0);
            assert!(zero.hi > 0.0 && zero.hi < 0.4);
            let all = proportion_interval(10, 10, 0.95, method).expect("valid");
            assert_eq!(all.hi, 1.0);
            assert!(all.lo > 0.6 && all.lo < 1.0);
        }
        assert_eq!(
            proportion_interval(0, 0, 0.95, ProportionInterval::Wilson),
            Err(StatsError::NoTrials)
        );
    }

    #[test]
    fn threshold_rule_includes_ties_and_follows_direction() {
        let s = [1.0, 2.0, 2.0, 3.0];
        let y = [false, false, true, true];
        let hi = sens_spec_at_threshold(
            &s,
            &y,
            2.0,
            Direction::HigherIsPositive,
            0.95,
            ProportionInterval::Wilson,
        )
        .expect("valid");
        assert_eq!((hi.sensitivity.successes, hi.specificity.successes), (2, 1));
        let lo = sens_spec_at_threshold(
            &s,
            &y,
            2.0,
            Direction::LowerIsPositive,
            0.95,
            ProportionInterval::Wilson,
        )
        .expect("valid");
        // Lower is positive: rows ≤ 2 called positive → positive 2.0 caught, negative 1.0/2.0 missed.
        assert_eq!((lo.sensitivity.successes, lo.specificity.successes), (1, 0));
        assert_eq!(
            sens_spec_at_threshold(
                &s,
                &y,
                f64::NAN,
                Direction::HigherIsPositive,
                0.95,
                ProportionInterval::Wilson
            ),
            Err(StatsError::NanThreshold)
        );
    }
}
