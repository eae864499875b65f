//! The Bayes ceiling of a labeled synthetic cohort: the AUC of its true logit against the
//! recorded labels (Mann–Whitney, ties ½, through [`mod@crate::stats::auc`]).

use crate::cohort::Cohort;
use crate::stats::{Direction, auc};

/// AUC of `true_logit` against the labels; `None` for an unlabeled cohort or one with a single
/// class (the AUC is undefined there).
pub fn bayes_auc(cohort: &Cohort) -> Option<f64> {
    let logits = cohort.true_logit.as_ref()?;
    let labels: Vec<bool> = cohort.labels.as_ref()?.iter().map(|&y| y == 1).collect();
    auc(logits, &labels, Direction::HigherIsPositive).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohort::{COHORT_FORMAT, Modality};

    fn cohort(logits: Vec<f64>, labels: Vec<u8>) -> Cohort {
        let n = labels.len();
        Cohort {
            format: COHORT_FORMAT,
            name: "t".into(),
            n,
            ids: (0..n).map(|i| i.to_string()).collect(),
            labels: Some(labels),
            imaging: Modality::zeros(n, 1, 1),
            clinical: Modality::zeros(n, 1, 1),
            true_logit: Some(logits),
        }
    }

    #[test]
    fn ties_count_half_and_one_class_is_undefined() {
        // Pairs (pos, neg): (2 vs 1) win, (2 vs 2) tie, (1 vs 1) tie, (1 vs 2) loss → (1 + ½ + ½) / 4.
        let c = cohort(vec![1.0, 2.0, 1.0, 2.0], vec![0, 0, 1, 1]);
        assert_eq!(bayes_auc(&c), Some(0.5));
        let c = cohort(vec![0.0, 1.0, 2.0], vec![0, 1, 1]);
        assert_eq!(bayes_auc(&c), Some(1.0));
        assert_eq!(bayes_auc(&cohort(vec![0.0, 1.0], vec![1, 1])), None);
    }
}
