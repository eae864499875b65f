//! Area under the ROC curve as the Mann–Whitney statistic, and the tie-group ranking that the
//! ROC curve, DeLong placements and the bootstrap all share.
//!
//! AUC = P(score of a positive > score of a negative) + ½·P(tie), over all positive–negative pairs.
//! This equals scikit-learn's `roc_auc_score` and pROC's `auc` (trapezoidal area with ties).

use super::StatsError;
use serde::{Deserialize, Serialize};

/// Which end of the score scale indicates the positive class. Fixed by the caller (the experiment
/// config), never guessed from the data: guessing per bootstrap resample biases intervals upward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Higher scores mean positive (pROC `direction = "<"`: controls < cases). The default.
    #[default]
    HigherIsPositive,
    /// Lower scores mean positive (pROC `direction = ">"`).
    LowerIsPositive,
}

impl Direction {
    /// The score as seen on the "higher means positive" scale. Negation is exact, so ties stay ties.
    #[inline]
    pub(crate) fn orient(self, score: f64) -> f64 {
        match self {
            Direction::HigherIsPositive => score,
            Direction::LowerIsPositive => -score,
        }
    }
}

/// Counts of each class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClassCounts {
    pub n_pos: usize,
    pub n_neg: usize,
}

/// Checks that `scores` and `labels` describe the same rows, no score is NaN and both classes occur.
pub(crate) fn validate(scores: &[f64], labels: &[bool]) -> Result<ClassCounts, StatsError> {
    if scores.len() != labels.len() {
        return Err(StatsError::LengthMismatch {
            what: "scores",
            found: scores.len(),
            expected: labels.len(),
        });
    }
    if let Some(index) = scores.iter().position(|s| s.is_nan()) {
        return Err(StatsError::NanScore { index });
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(StatsError::OneClass { n_pos, n_neg });
    }
    Ok(ClassCounts { n_pos, n_neg })
}

/// Rows grouped into tie groups, ordered from least to most positive-looking.
///
/// Built with one sort; afterwards every rank-based quantity (AUC, placements, ROC points, a
/// bootstrap resample's AUC) is a linear pass over groups.
#[derive(Debug, Clone)]
pub(crate) struct TieGroups {
    /// Tie group of each row (input order); group 0 holds the least positive-looking scores.
    pub group_of_row: Vec<u32>,
    /// The original (un-oriented) score of each group.
    pub group_score: Vec<f64>,
    /// Positives in each group.
    pub pos_in_group: Vec<u32>,
    /// Negatives in each group.
    pub neg_in_group: Vec<u32>,
    pub counts: ClassCounts,
}

impl TieGroups {
    pub fn new(
        scores: &[f64],
        labels: &[bool],
        direction: Direction,
    ) -> Result<TieGroups, StatsError> {
        let counts = validate(scores, labels)?;
        if scores.len() > u32::MAX as usize {
            // Group indices are u32 to halve the bootstrap's memory traffic.
            return Err(StatsError::TooManyRows {
                rows: scores.len(),
                limit: u32::MAX as usize,
            });
        }
        let mut order: Vec<(f64, u32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (direction.orient(s), i as u32))
            .collect();
        // NaN was rejected above, so partial_cmp is total here; -0.0 and 0.0 compare equal and
        // therefore share a group, as they should.
        order.sort_unstable_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));

        let mut group_of_row = vec![0u32; scores.len()];
        let mut group_score = Vec::new();
        let mut pos_in_group: Vec<u32> = Vec::new();
        let mut neg_in_group: Vec<u32> = Vec::new();
        let mut previous: Option<f64> = None;
        for &(oriented, row) in &order {
            if previous != Some(oriented) {
                previous = Some(oriented);
                group_score.push(scores[row as usize]);
                pos_in_group.push(0);
                neg_in_group.push(0);
            }
            let g = group_score.len() - 1;
            group_of_row[row as usize] = g as u32;
            if labels[row as usize] {
                pos_in_group[g] += 1;
            } else {
                neg_in_group[g] += 1;
            }
        }
        Ok(TieGroups {
            group_of_row,
            group_score,
            pos_in_group,
            neg_in_group,
            counts,
        })
    }

    /// Number of tie groups.
    pub fn len(&self) -> usize {
        self.group_score.len()
    }

    /// Twice the Mann–Whitney U (ties count ½, so doubling keeps it an exact integer).
    pub fn twice_u(&self) -> u64 {
        twice_u_from_counts(&self.pos_in_group, &self.neg_in_group)
    }

    pub fn auc(&self) -> f64 {
        auc_from_twice_u(self.twice_u(), self.counts.n_pos, self.counts.n_neg)
    }
}

/// Twice the Mann–Whitney U from per-group counts in ascending order: each positive scores 1 per
/// negative below it and ½ per negative tied with it.
pub(crate) fn twice_u_from_counts(pos: &[u32], neg: &[u32]) -> u64 {
    let mut neg_below = 0u64;
    let mut twice_u = 0u64;
    for (&p, &q) in pos.iter().zip(neg) {
        twice_u += u64::from(p) * (2 * neg_below + u64::from(q));
        neg_below += u64::from(q);
    }
    twice_u
}

#[inline]
pub(crate) fn auc_from_twice_u(twice_u: u64, n_pos: usize, n_neg: usize) -> f64 {
    // Both factors are exact in f64 up to 2^53; one division gives the correctly rounded ratio.
    twice_u as f64 / (2.0 * n_pos as f64 * n_neg as f64)
}

/// AUC of `scores` for the binary `labels` (`true` = positive), ties counted ½.
///
/// O(n log n). Errors on length mismatch, NaN scores or a single class.
pub fn auc(scores: &[f64], labels: &[bool], direction: Direction) -> Result<f64, StatsError> {
    Ok(TieGroups::new(scores, labels, direction)?.auc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    /// The O(n·m) definition: every positive–negative pair, ties ½.
    fn auc_by_pairs(scores: &[f64], labels: &[bool]) -> f64 {
        let mut sum = 0.0;
        let mut pairs = 0.0;
        for (i, &si) in scores.iter().enumerate() {
            if !labels[i] {
                continue;
            }
            for (j, &sj) in scores.iter().enumerate() {
                if labels[j] {
                    continue;
                }
                pairs += 1.0;
                if si > sj {
                    sum += 1.0;
                } else if si == sj {
                    sum += 0.5;
                }
            }
        }
        sum / pairs
    }

    #[derive(Deserialize)]
    struct SklearnCase {
        name: String,
        labels: Vec<u8>,
        scores: Vec<f64>,
        auc: f64,
    }
    #[derive(Deserialize)]
    struct SklearnGolden {
        auc_cases: Vec<SklearnCase>,
    }

    #[test]
    fn auc_matches_sklearn_roc_auc_score_on_tie_heavy_data() {
        let golden: SklearnGolden = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/stats/sklearn_golden.json"
        )))
        .expect("fixture parses");
        assert!(golden.auc_cases.len() >= 20);
        for case in &golden.auc_cases {
            let labels: Vec<bool> = case.labels.iter().map(|&l| l == 1).collect();
            let ours = auc(&case.scores, &labels, Direction::HigherIsPositive).expect("valid");
            assert!(
                (ours - case.auc).abs() <= 1e-12,
                "{}: ours {ours} sklearn {}",
                case.name,
                case.auc
            );
        }
    }

    #[test]
    fn lower_is_positive_mirrors_higher_is_positive() {
        let s = [0.1, 0.4, 0.35, 0.8, 0.4];
        let y = [false, false, true, true, true];
        let hi = auc(&s, &y, Direction::HigherIsPositive).expect("valid");
        let lo = auc(&s, &y, Direction::LowerIsPositive).expect("valid");
        assert!((hi + lo - 1.0).abs() < 1e-15);
        assert!((hi - auc_by_pairs(&s, &y)).abs() < 1e-15);
    }

    #[test]
    fn single_class_nan_and_length_mismatch_are_errors() {
        assert_eq!(
            auc(&[1.0, 2.0], &[true, true], Direction::default()),
            Err(StatsError::OneClass { n_pos: 2, n_neg: 0 })
        );
        assert_eq!(
            auc(&[1.0, f64::NAN], &[true, false], Direction::default()),
            Err(StatsError::NanScore { index: 1 })
        );
        assert!(matches!(
            auc(&[1.0], &[true, false], Direction::default()),
            Err(StatsError::LengthMismatch { .. })
        ));
        assert_eq!(
            auc(&[], &[], Direction::default()),
            Err(StatsError::OneClass { n_pos: 0, n_neg: 0 })
        );
    }

    #[test]
    fn infinities_and_signed_zeros_rank_correctly() {
        let s = [f64::NEG_INFINITY, -0.0, 0.0, f64::INFINITY];
        let y = [false, true, false, true];
        // -0.0 and 0.0 tie: pairs (−0,−inf)=1, (−0,0)=½, (inf,·)=1+1 → 3.5/4
        assert_eq!(auc(&s, &y, Direction::default()), Ok(0.875));
    }

    fn scored_sample() -> impl Strategy<Value = (Vec<f64>, Vec<bool>)> {
        (2usize..60).prop_flat_map(|n| {
            (
                proptest::collection::vec((-20i32..20).prop_map(|v| f64::from(v) / 4.0), n),
                proptest::collection::vec(any::<bool>(), n),
            )
                .prop_filter("both classes", |(_, y)| {
                    y.iter().any(|&l| l) && y.iter().any(|&l| !l)
                })
        })
    }

    proptest! {
        #[test]
        fn auc_lies_in_unit_interval((s, y) in scored_sample()) {
            let a = auc(&s, &y, Direction::default()).expect("valid");
            prop_assert!((0.0..=1.0).contains(&a));
        }

        #[test]
        fn auc_equals_pair_counting((s, y) in scored_sample()) {
            let a = auc(&s, &y, Direction::default()).expect("valid");
            prop_assert!((a - auc_by_pairs(&s, &y)).abs() < 1e-12);
        }

        #[test]
        fn auc_is_invariant_under_strictly_increasing_transforms((s, y) in scored_sample()) {
            let a = auc(&s, &y, Direction::default()).expect("valid");
            let t: Vec<f64> = s.iter().map(|v| (v / 3.0).exp() * 7.0 - 2.0).collect();
            let b = auc(&t, &y, Direction::default()).expect("valid");
            prop_assert_eq!(a, b);
            // A decreasing transform with the direction flipped gives the same AUC too.
            let d: Vec<f64> = s.iter().map(|v| -v * 5.0 + 1.0).collect();
            let c = auc(&d, &y, Direction::LowerIsPositive).expect("valid");
            prop_assert_eq!(a, c);
        }

        #[test]
        fn flipping_labels_gives_one_minus_auc((s, y) in scored_sample()) {
            let a = auc(&s, &y, Direction::default()).expect("valid");
            let flipped: Vec<bool> = y.iter().map(|l| !l).collect();
            let b = auc(&s, &flipped, Direction::default()).expect("valid");
            prop_assert!((a + b - 1.0).abs() < 1e-12);
        }
    }
}
