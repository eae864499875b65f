//! ROC curve points for plots: one point per distinct score, from (0, 0) to (1, 1).

use super::StatsError;
use super::auc::{Direction, TieGroups};
use serde::Serialize;

/// One operating point: rows scoring at least `threshold` (for [`Direction::HigherIsPositive`];
/// at most, for [`Direction::LowerIsPositive`]) are called positive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    /// False-positive rate, 1 − specificity.
    pub fpr: f64,
    /// True-positive rate, sensitivity.
    pub tpr: f64,
    /// The score cut; the first point uses +∞ (−∞ for lower-is-positive) so that nothing is called
    /// positive. (JSON has no infinity: serde_json writes it as `null`.)
    pub threshold: f64,
}

/// ROC curve with every distinct score as a threshold, most stringent first (as scikit-learn's
/// `roc_curve(drop_intermediate=False)`). The trapezoidal area under these points equals [`auc`].
///
/// [`auc`]: super::auc::auc
pub fn roc_curve(
    scores: &[f64],
    labels: &[bool],
    direction: Direction,
) -> Result<Vec<RocPoint>, StatsError> {
    let groups = TieGroups::new(scores, labels, direction)?;
    let n_pos = groups.counts.n_pos as f64;
    let n_neg = groups.counts.n_neg as f64;
    let mut points = Vec::with_capacity(groups.len() + 1);
    points.push(RocPoint {
        fpr: 0.0,
        tpr: 0.0,
        threshold: match direction {
            Direction::HigherIsPositive => f64::INFINITY,
            Direction::LowerIsPositive => f64::NEG_INFINITY,
        },
    });
    let (mut tp, mut fp) = (0u64, 0u64);
    // Walk from the most positive-looking group down, adding one tie group per point.
    for g in (0..groups.len()).rev() {
        tp += u64::from(groups.pos_in_group[g]);
        fp += u64::from(groups.neg_in_group[g]);
        points.push(RocPoint {
            fpr: fp as f64 / n_neg,
            tpr: tp as f64 / n_pos,
            threshold: groups.group_score[g],
        });
    }
    Ok(points)
}

/// A pointwise bootstrap band of the ROC curve: at each false-positive rate of `grid`, the
/// `(1 ± level)/2` quantiles (R type 7) of the true-positive rate over stratified resamples
/// (cases and controls resampled separately, resample `b` drawn from stream `b` of `seed`, as
/// [`crate::stats::bootstrap_ci`]). The TPR at a given FPR is the step function's value: the
/// highest TPR reached while the FPR stays at or below it. O(n) per resample after one sort;
/// parallel over resamples and reduced in resample order, so threads never change a digit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocBandPoint {
    pub fpr: f64,
    pub tpr_lo: f64,
    pub tpr_hi: f64,
}

pub fn roc_band(
    scores: &[f64],
    labels: &[bool],
    direction: Direction,
    resamples: usize,
    seed: u64,
    level: f64,
    grid: &[f64],
) -> Result<Vec<RocBandPoint>, StatsError> {
    use rayon::prelude::*;
    let groups = TieGroups::new(scores, labels, direction)?;
    // Rows in order of decreasing "positiveness", tie groups kept together.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let key = |i: usize| match direction {
        Direction::HigherIsPositive => -scores[i],
        Direction::LowerIsPositive => scores[i],
    };
    order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
    let positives: Vec<u32> = (0..scores.len())
        .filter(|&i| labels[i])
        .map(|i| i as u32)
        .collect();
    let negatives: Vec<u32> = (0..scores.len())
        .filter(|&i| !labels[i])
        .map(|i| i as u32)
        .collect();
    let (n_pos, n_neg) = (groups.counts.n_pos as f64, groups.counts.n_neg as f64);
    let curves: Vec<Vec<f64>> = (0..resamples)
        .into_par_iter()
        .map(|b| {
            let mut rng = crate::rng::Rng::indexed(seed, b as u64);
            let mut weight = vec![0u32; scores.len()];
            rng.draw_below(positives.len() as u32, positives.len(), |k| {
                weight[positives[k as usize] as usize] += 1
            });
            rng.draw_below(negatives.len() as u32, negatives.len(), |k| {
                weight[negatives[k as usize] as usize] += 1
            });
            let mut tpr_at = vec![0.0; grid.len()];
            let (mut tp, mut fp) = (0u64, 0u64);
            let mut g = 0;
            let mut i = 0;
            while i < order.len() {
                // One tie group at a time: its rows move the curve together.
                let mut j = i;
                let (mut dtp, mut dfp) = (0u64, 0u64);
                while j < order.len() && key(order[j]) == key(order[i]) {
                    let w = u64::from(weight[order[j]]);
                    if labels[order[j]] {
                        dtp += w
                    } else {
                        dfp += w
                    }
                    j += 1;
                }
                let fpr_before = fp as f64 / n_neg;
                let tpr_before = tp as f64 / n_pos;
                tp += dtp;
                fp += dfp;
                let fpr_after = fp as f64 / n_neg;
                while g < grid.len() && grid[g] < fpr_after {
                    if grid[g] >= fpr_before {
                        tpr_at[g] = tpr_before;
                    }
                    g += 1;
                }
                i = j;
            }
            for t in tpr_at.iter_mut().skip(g) {
                *t = 1.0;
            }
            tpr_at
        })
        .collect();
    let lo_p = (1.0 - level) / 2.0;
    let hi_p = (1.0 + level) / 2.0;
    Ok(grid
        .iter()
        .enumerate()
        .map(|(k, &fpr)| {
            let mut column: Vec<f64> = curves.iter().map(|c| c[k]).collect();
            column.sort_by(f64::total_cmp);
            RocBandPoint {
                fpr,
                tpr_lo: super::bootstrap::quantile_type7(&column, lo_p),
                tpr_hi: super::bootstrap::quantile_type7(&column, hi_p),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::auc::auc;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Curve {
        labels: Vec<u8>,
        scores: Vec<f64>,
        fpr: Vec<f64>,
        tpr: Vec<f64>,
        thresholds: Vec<f64>,
    }
    #[derive(Deserialize)]
    struct Golden {
        roc_curve: Curve,
    }

    #[test]
    fn roc_band_brackets_the_curve_and_is_reproducible() {
        let labels: Vec<bool> = (0..200).map(|i| i % 3 == 0).collect();
        let scores: Vec<f64> = (0..200)
            .map(|i| (i % 3 == 0) as u8 as f64 + ((i * 37 % 101) as f64) / 60.0)
            .collect();
        let grid: Vec<f64> = (0..=20).map(|k| k as f64 / 20.0).collect();
        let band = roc_band(
            &scores,
            &labels,
            Direction::HigherIsPositive,
            300,
            7,
            0.95,
            &grid,
        )
        .unwrap();
        let curve = roc_curve(&scores, &labels, Direction::HigherIsPositive).unwrap();
        for p in &band {
            assert!(p.tpr_lo <= p.tpr_hi && (0.0..=1.0).contains(&p.tpr_lo) && p.tpr_hi <= 1.0);
            // The full-sample curve at this FPR lies inside the band (for this well-behaved case).
            let tpr = curve
                .iter()
                .filter(|c| c.fpr <= p.fpr)
                .map(|c| c.tpr)
                .fold(0.0, f64::max);
            assert!(
                p.tpr_lo - 1e-9 <= tpr && tpr <= p.tpr_hi + 1e-9,
                "fpr {}: {tpr} not in {p:?}",
                p.fpr
            );
        }
        assert_eq!(band.last().unwrap().tpr_lo, 1.0);
        assert_eq!(
            band,
            roc_band(
                &scores,
                &labels,
                Direction::HigherIsPositive,
                300,
                7,
                0.95,
                &grid
            )
            .unwrap()
        );
    }

    #[test]
    fn roc_points_match_sklearn_roc_curve() {
        let golden: Golden = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/stats/sklearn_golden.json"
        )))
        .expect("fixture parses");
        let c = golden.roc_curve;
        let y: Vec<bool> = c.labels.iter().map(|&l| l == 1).collect();
        let pts = roc_curve(&c.scores, &y, Direction::HigherIsPositive).expect("valid");
        assert_eq!(pts.len(), c.fpr.len());
        for (i, p) in pts.iter().enumerate() {
            assert!((p.fpr - c.fpr[i]).abs() < 1e-15, "fpr {i}");
            assert!((p.tpr - c.tpr[i]).abs() < 1e-15, "tpr {i}");
            if i > 0 {
                assert_eq!(p.threshold, c.thresholds[i - 1]);
            }
        }
    }

    #[test]
    fn trapezoid_area_equals_auc_in_both_directions() {
        let s = [3.0, 1.0, 2.0, 2.0, 5.0, 0.5, 2.0, 4.0];
        let y = [true, false, true, false, true, false, false, true];
        for d in [Direction::HigherIsPositive, Direction::LowerIsPositive] {
            let pts = roc_curve(&s, &y, d).expect("valid");
            let area: f64 = pts
                .windows(2)
                .map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0)
                .sum();
            let a = auc(&s, &y, d).expect("valid");
            assert!((area - a).abs() < 1e-15, "{d:?}");
            let last = pts.last().expect("non-empty");
            assert_eq!((last.fpr, last.tpr), (1.0, 1.0));
        }
        let lower = roc_curve(&s, &y, Direction::LowerIsPositive).expect("valid");
        assert_eq!(lower[0].threshold, f64::NEG_INFINITY);
        assert_eq!(lower[1].threshold, 0.5);
    }
}
