//! Multiplicity adjustment of p-values across the secondary comparisons of a study.

use super::StatsError;

/// Holm (1979) step-down adjusted p-values, in the input order; equal to R's
/// `p.adjust(p, method = "holm")` (the arithmetic is [`crate::multiplicity::holm`], shared with
/// the reports' regime map). The primary comparison is not passed here: the study names it and
/// reports it unadjusted. Errors on a NaN or a value outside [0, 1].
pub fn holm(p_values: &[f64]) -> Result<Vec<f64>, StatsError> {
    crate::multiplicity::holm(p_values).map_err(|e| StatsError::InvalidPValue {
        index: e.index,
        value: e.value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::proc_golden;

    fn floats(v: &serde_json::Value) -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    }

    #[test]
    fn holm_matches_r_p_adjust() {
        let g = proc_golden();
        for (input, expected) in [
            ("p", "adjusted"),
            ("paired_delong_p", "paired_delong_adjusted"),
        ] {
            let ours = holm(&floats(&g["holm"][input])).expect("valid");
            for (a, b) in ours.iter().zip(floats(&g["holm"][expected])) {
                assert!((a - b).abs() < 1e-15, "{input}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn holm_edge_cases() {
        assert_eq!(holm(&[]), Ok(vec![]));
        assert_eq!(holm(&[0.2]), Ok(vec![0.2]));
        assert_eq!(holm(&[0.6, 0.6]), Ok(vec![1.0, 1.0]));
        assert!(matches!(
            holm(&[0.1, f64::NAN]),
            Err(StatsError::InvalidPValue { index: 1, .. })
        ));
        assert!(matches!(
            holm(&[0.1, 1.5]),
            Err(StatsError::InvalidPValue { index: 1, .. })
        ));
    }
}
