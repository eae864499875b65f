//! Multiplicity adjustment of p-values across the secondary comparisons of a study.

use super::StatsError;

/// Holm (1979) step-down adjusted p-values, in the input order; equal to R's
/// `p.adjust(p, method = "holm")`. The primary comparison is not passed here: the study names it
/// and reports it unadjusted.
///
/// Sorted ascending, the k-th smallest (1-based) of m p-values becomes
/// `min(1, max over j ≤ k of (m − j + 1)·p_(j))`. Ties keep their input order (stable sort, as R's
/// `order`). Errors on a NaN or a value outside [0, 1].
pub fn holm(p_values: &[f64]) -> Result<Vec<f64>, StatsError> {
    if let Some((index, &value)) = p_values
        .iter()
        .enumerate()
        .find(|(_, p)| !(0.0..=1.0).contains(*p))
    {
        return Err(StatsError::InvalidPValue { index, value });
    }
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running_max: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let scaled = (m - rank) as f64 * p_values[i];
        running_max = running_max.max(scaled);
        adjusted[i] = running_max.min(1.0);
    }
    Ok(adjusted)
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
