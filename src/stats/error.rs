//! The statistics module's error type: every way a computation can refuse its input.

/// Why a statistic could not be computed. Functions in `stats` return one of these instead of a
/// NaN, so a report never shows a number that silently means "undefined".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// Two inputs that must describe the same rows have different lengths.
    #[error("{what} has {found} entries but the labels have {expected}")]
    LengthMismatch {
        what: &'static str,
        found: usize,
        expected: usize,
    },
    /// A score is NaN: it has no place in the ranking.
    #[error("score at index {index} is NaN")]
    NanScore { index: usize },
    /// AUC needs at least one positive and one negative.
    #[error("only one class present ({n_pos} positives, {n_neg} negatives)")]
    OneClass { n_pos: usize, n_neg: usize },
    /// DeLong's variance divides by `n_pos - 1` and `n_neg - 1`.
    #[error(
        "delong variance needs at least 2 positives and 2 negatives ({n_pos} positives, {n_neg} negatives)"
    )]
    TooFewForVariance { n_pos: usize, n_neg: usize },
    /// A confidence level outside (0, 1).
    #[error("confidence level must lie strictly between 0 and 1, got {0}")]
    InvalidLevel(f64),
    /// Fewer bootstrap resamples than an interval can be read from.
    #[error("bootstrap needs at least 2 resamples, got {0}")]
    TooFewResamples(usize),
    /// Non-stratified resampling drew only one class in every resample.
    #[error("all {resamples} bootstrap resamples lacked one of the classes")]
    NoUsableResamples { resamples: usize },
    /// Cluster ids must cover every row.
    #[error("cluster ids have {found} entries but the labels have {expected}")]
    ClusterLengthMismatch { found: usize, expected: usize },
    /// The BCa correction cannot be computed (e.g. every resample on one side of the estimate).
    #[error("bca interval undefined: {0}")]
    BcaUndefined(&'static str),
    /// A p-value outside [0, 1] or NaN given to a multiplicity adjustment.
    #[error("p-value at index {index} is {value}, not in [0, 1]")]
    InvalidPValue { index: usize, value: f64 },
    /// A predicted probability that has no logit.
    #[error("probability at index {index} is {value}; calibration needs 0 < p < 1")]
    ProbabilityOutOfRange { index: usize, value: f64 },
    /// Newton–Raphson did not converge (typically complete separation).
    #[error("logistic recalibration did not converge after {iterations} iterations")]
    NoConvergence { iterations: usize },
    /// More rows than the 32-bit row indices can address.
    #[error("at most {limit} rows are supported, got {rows}")]
    TooManyRows { rows: usize, limit: usize },
    /// A threshold that is NaN.
    #[error("threshold is NaN")]
    NanThreshold,
    /// A proportion interval over zero trials.
    #[error("proportion interval needs at least one trial")]
    NoTrials,
}
