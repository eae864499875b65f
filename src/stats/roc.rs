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
