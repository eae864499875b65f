//! Multiplicity adjustment of p-values that are already computed: arithmetic on p-values alone,
//! below both the statistics (`evaluate` adjusts its secondary comparisons) and the reports (the
//! regime map adjusts a sweep's cells together, which no single evaluation can).
//!
//! Must never read data, fit or test anything: the p-values come from `crate::stats`.

/// A p-value that is NaN or outside [0, 1], at its index in the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidPValue {
    pub index: usize,
    pub value: f64,
}

/// Holm (1979) step-down adjusted p-values, in the input order; equal to R's
/// `p.adjust(p, method = "holm")`.
///
/// Sorted ascending, the k-th smallest (1-based) of m p-values becomes
/// `min(1, max over j ≤ k of (m − j + 1)·p_(j))`. Ties keep their input order (stable sort, as R's
/// `order`).
pub fn holm(p_values: &[f64]) -> Result<Vec<f64>, InvalidPValue> {
    if let Some((index, &value)) = p_values
        .iter()
        .enumerate()
        .find(|(_, p)| !(0.0..=1.0).contains(*p))
    {
        return Err(InvalidPValue { index, value });
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
