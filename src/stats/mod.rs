//! Statistics for evaluating binary classifiers: AUC, ROC curves, DeLong variance and tests,
//! bootstrap intervals (stratified, paired, patient-level), Holm adjustment, calibration, and
//! sensitivity/specificity at a threshold.
//!
//! Owns: the numbers a report prints and the method, resamples, seed and level behind each one.
//! Must never touch: files, the store, the clock or global RNGs. Every function here is pure: the
//! same inputs give the same bits on any machine and any thread count (the bootstrap draws from the
//! crate's own documented RNG, see [`crate::rng`]). Undefined quantities are [`StatsError`]s,
//! never NaN.
//!
//! Conventions: labels are `bool` (`true` = positive class); the score direction is the caller's
//! [`Direction`], never inferred; results match R's pROC 1.18 (and scikit-learn for the AUC), which
//! the tests check against stored reference values.

pub mod adjust;
pub mod auc;
pub mod bootstrap;
pub mod calibration;
pub mod delong;
mod error;
pub mod roc;
pub mod threshold;

pub use adjust::holm;
pub use auc::{ClassCounts, Direction, auc};
pub use bootstrap::{
    BootstrapCi, BootstrapConfig, BootstrapReplicates, IntervalMethod, PairedBootstrap,
    bca_interval, bootstrap_ci, bootstrap_replicates, jackknife_aucs, paired_bootstrap,
    percentile_interval, quantile_type7,
};
pub use calibration::{Calibration, calibration};
pub use delong::{
    DelongCi, DelongPlacements, PairedDelong, UnpairedDelong, delong_ci, delong_paired,
    delong_placements, delong_unpaired,
};
pub use error::StatsError;
pub use roc::{RocBandPoint, RocPoint, roc_band, roc_curve};
pub use threshold::{
    Proportion, ProportionInterval, ThresholdMetrics, proportion_interval, sens_spec_at_threshold,
};

/// Reference data shared by the tests: the aSAH cohort and pROC's golden values.
#[cfg(test)]
pub(crate) mod test_support {
    pub struct Asah {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
        /// Outcome "Poor" (the positive class).
        pub poor: Vec<bool>,
    }

    impl Asah {
        pub fn score(&self, column: &str) -> Vec<f64> {
            let c = self
                .header
                .iter()
                .position(|h| h == column)
                .expect("column exists");
            self.rows
                .iter()
                .map(|r| r[c].parse().expect("numeric"))
                .collect()
        }
    }

    pub fn asah() -> Asah {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/stats/aSAH.csv"
        ));
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .expect("header")
            .split(',')
            .map(str::to_owned)
            .collect();
        let rows: Vec<Vec<String>> = lines
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect();
        let outcome = header.iter().position(|h| h == "outcome").expect("outcome");
        let poor = rows.iter().map(|r| r[outcome] == "Poor").collect();
        Asah { header, rows, poor }
    }

    pub fn proc_golden() -> serde_json::Value {
        serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/stats/proc_golden.json"
        )))
        .expect("fixture parses")
    }
}
