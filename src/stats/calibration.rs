//! Calibration intercept and slope by logistic recalibration (Cox 1958; Van Calster et al. 2019).
//!
//! With `lp = logit(p)` the model's linear predictor:
//! * **slope**: logistic regression `y ~ a + b·lp`; the slope is `b` (1 = ideal, < 1 = predictions
//!   too extreme, i.e. overfitting);
//! * **intercept** ("calibration-in-the-large"): `y ~ a + offset(lp)`, i.e. the slope fixed at 1;
//!   the intercept is `a` (0 = ideal, > 0 = risks underestimated on average).
//!
//! Both are fitted by Newton–Raphson (for the canonical logit link this is IRLS, what R's `glm`
//! does), to convergence far tighter than `glm`'s default, and match `glm` estimates and standard
//! errors.

use super::StatsError;
use serde::Serialize;

/// Calibration of predicted probabilities against observed binary outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Calibration {
    /// Calibration-in-the-large: `a` in `y ~ a + offset(logit p)`.
    pub intercept: f64,
    pub intercept_se: f64,
    /// Calibration slope: `b` in `y ~ a + b·logit p`.
    pub slope: f64,
    pub slope_se: f64,
    /// The `a` of the slope model (reported by some papers; not the calibration intercept).
    pub slope_model_intercept: f64,
}

const MAX_ITERATIONS: usize = 100;

#[inline]
fn sigmoid(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

/// Binomial deviance of `y` under linear predictor `eta` (up to the saturated model's 0).
fn deviance(lp: &[f64], y: &[bool], a: f64, b: f64) -> f64 {
    lp.iter()
        .zip(y)
        .map(|(&x, &yi)| {
            let eta = a + b * x;
            // −2·log-likelihood with log(1 + e^η) computed stably.
            let log1pexp = if eta > 0.0 {
                eta + (-eta).exp().ln_1p()
            } else {
                eta.exp().ln_1p()
            };
            2.0 * (log1pexp - if yi { eta } else { 0.0 })
        })
        .sum()
}

/// Fits `y ~ a + b·lp` (`fit_slope`) or `y ~ a + offset(lp)` by damped Newton–Raphson. Returns the
/// coefficients and the inverse Fisher information's diagonal.
fn fit(lp: &[f64], y: &[bool], fit_slope: bool) -> Result<([f64; 2], [f64; 2]), StatsError> {
    let (mut a, mut b) = (0.0, 1.0);
    let mut dev = deviance(lp, y, a, b);
    for _ in 0..MAX_ITERATIONS {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &yi) in lp.iter().zip(y) {
            let mu = sigmoid(a + b * x);
            let w = mu * (1.0 - mu);
            let r = f64::from(u8::from(yi)) - mu;
            ga += r;
            gb += r * x;
            haa += w;
            hab += w * x;
            hbb += w * x * x;
        }
        let (da, db) = if fit_slope {
            let det = haa * hbb - hab * hab;
            if det.is_nan() || det <= 0.0 {
                return Err(StatsError::NoConvergence {
                    iterations: MAX_ITERATIONS,
                });
            }
            ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det)
        } else {
            if haa.is_nan() || haa <= 0.0 {
                return Err(StatsError::NoConvergence {
                    iterations: MAX_ITERATIONS,
                });
            }
            (ga / haa, 0.0)
        };
        // Step halving keeps the deviance from increasing (it never does near the optimum).
        let mut step = 1.0;
        let mut new_dev = deviance(lp, y, a + da, b + db);
        while new_dev > dev * (1.0 + 1e-12) && step > 1e-10 {
            step /= 2.0;
            new_dev = deviance(lp, y, a + step * da, b + step * db);
        }
        a += step * da;
        b += step * db;
        dev = new_dev;
        if !a.is_finite() || !b.is_finite() {
            break;
        }
        if (step * da).abs() < 1e-13 * (1.0 + a.abs())
            && (step * db).abs() < 1e-13 * (1.0 + b.abs())
        {
            // Standard errors from the information at the solution.
            let (mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0);
            for &x in lp {
                let mu = sigmoid(a + b * x);
                let w = mu * (1.0 - mu);
                haa += w;
                hab += w * x;
                hbb += w * x * x;
            }
            let var = if fit_slope {
                let det = haa * hbb - hab * hab;
                [hbb / det, haa / det]
            } else {
                [1.0 / haa, 0.0]
            };
            return Ok(([a, b], var));
        }
    }
    Err(StatsError::NoConvergence {
        iterations: MAX_ITERATIONS,
    })
}

/// Calibration intercept and slope of predicted `probabilities` (each strictly inside (0, 1)) for
/// binary `labels` (`true` = event). Errors on a probability of 0, 1 or NaN, a single class, or
/// non-convergence (complete separation by `logit p`).
pub fn calibration(probabilities: &[f64], labels: &[bool]) -> Result<Calibration, StatsError> {
    if probabilities.len() != labels.len() {
        return Err(StatsError::LengthMismatch {
            what: "probabilities",
            found: probabilities.len(),
            expected: labels.len(),
        });
    }
    if let Some((index, &value)) = probabilities
        .iter()
        .enumerate()
        .find(|(_, p)| !(**p > 0.0 && **p < 1.0))
    {
        return Err(StatsError::ProbabilityOutOfRange { index, value });
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(StatsError::OneClass { n_pos, n_neg });
    }
    let lp: Vec<f64> = probabilities
        .iter()
        .map(|&p| (p / (1.0 - p)).ln())
        .collect();
    let (slope_coef, slope_var) = fit(&lp, labels, true)?;
    let (int_coef, int_var) = fit(&lp, labels, false)?;
    Ok(Calibration {
        intercept: int_coef[0],
        intercept_se: int_var[0].sqrt(),
        slope: slope_coef[1],
        slope_se: slope_var[1].sqrt(),
        slope_model_intercept: slope_coef[0],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::proc_golden;

    #[test]
    fn calibration_matches_r_glm() {
        let g = proc_golden();
        let c = &g["calibration"];
        let probs: Vec<f64> = c["probabilities"]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_f64().expect("p"))
            .collect();
        let y: Vec<bool> = c["outcome"]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_f64().expect("y") == 1.0)
            .collect();
        let ours = calibration(&probs, &y).expect("converges");
        let close = |a: f64, key: &str| {
            let b = c[key].as_f64().expect("number");
            // The reference fits ran with glm.control(epsilon = 1e-15): both sides are converged.
            assert!(
                (a - b).abs() < 1e-9 * (1.0 + b.abs()),
                "{key}: ours {a} glm {b}"
            );
        };
        close(ours.slope, "slope");
        close(ours.slope_se, "slope_se");
        close(ours.slope_model_intercept, "slope_intercept");
        close(ours.intercept, "intercept");
        close(ours.intercept_se, "intercept_se");
    }

    #[test]
    fn perfectly_calibrated_data_give_slope_one_intercept_zero() {
        // Outcomes that match the probabilities exactly in frequency at each of two levels.
        let mut p = Vec::new();
        let mut y = Vec::new();
        for (prob, events, total) in [(0.2, 2, 10), (0.6, 6, 10)] {
            for k in 0..total {
                p.push(prob);
                y.push(k < events);
            }
        }
        let c = calibration(&p, &y).expect("converges");
        assert!(
            c.intercept.abs() < 1e-10 && (c.slope - 1.0).abs() < 1e-10,
            "{c:?}"
        );
    }

    #[test]
    fn bad_probabilities_and_separation_are_errors() {
        assert_eq!(
            calibration(&[0.2, 1.0], &[false, true]),
            Err(StatsError::ProbabilityOutOfRange {
                index: 1,
                value: 1.0
            })
        );
        assert!(matches!(
            calibration(&[0.2, f64::NAN], &[false, true]),
            Err(StatsError::ProbabilityOutOfRange { index: 1, .. })
        ));
        assert_eq!(
            calibration(&[0.2, 0.3], &[true, true]),
            Err(StatsError::OneClass { n_pos: 2, n_neg: 0 })
        );
        // Complete separation: the slope diverges.
        assert!(matches!(
            calibration(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Err(StatsError::NoConvergence { .. })
        ));
    }
}
