//! What a report reads, typed: `results.json` of an `evaluate` stage (format 1), training-curve
//! JSON files, the report config and the run context written beside the manifest.
//!
//! Parsing is lenient where evaluate writes `null` for an undefined number (NaN never reaches
//! JSON): every such field is an `Option`, shown as "—".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One `results.json` (see `stages::evaluate`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResultsDoc {
    pub methods: MethodsDoc,
    pub cohorts: BTreeMap<String, CohortDoc>,
    pub models: Vec<ModelDoc>,
    pub primary: Option<ComparisonDoc>,
    pub secondary: Vec<ComparisonDoc>,
    pub reference: Option<String>,
    pub versus_reference: Vec<ComparisonDoc>,
    pub external_shift: Vec<ShiftDoc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MethodsDoc {
    pub auc: Option<String>,
    pub ensemble: Option<String>,
    pub delong: Option<String>,
    pub bootstrap: BootstrapMethodDoc,
    pub paired: Option<String>,
    pub unpaired: Option<String>,
    pub adjustment: Option<String>,
    pub seed_spread: Option<String>,
    pub calibration: Option<String>,
    pub level: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BootstrapMethodDoc {
    pub method: Option<String>,
    pub resamples: Option<u64>,
    pub seed: Option<u64>,
    pub stratified: Option<bool>,
    pub level: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CohortDoc {
    pub n: usize,
    pub n_pos: usize,
    pub n_neg: Option<usize>,
    pub prevalence: Option<f64>,
    pub bayes_auc: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IntervalDoc {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub se: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BootstrapDoc {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub method: Option<String>,
    pub resamples: Option<u64>,
    pub used: Option<u64>,
    pub p: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SeedDoc {
    pub seed: u64,
    pub auc: Option<f64>,
    pub delong: IntervalDoc,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SpreadDoc {
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CalibrationDoc {
    pub intercept: Option<f64>,
    pub intercept_se: Option<f64>,
    pub slope: Option<f64>,
    pub slope_se: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ModelDoc {
    pub model: String,
    pub cohort: String,
    pub n: Option<usize>,
    pub seeds: Option<usize>,
    pub auc: Option<f64>,
    pub delong: IntervalDoc,
    pub bootstrap: BootstrapDoc,
    pub per_seed: Vec<SeedDoc>,
    pub seed_spread: SpreadDoc,
    /// `[fpr, tpr]` points of the seed ensemble's ROC curve.
    pub roc: Vec<[Option<f64>; 2]>,
    /// Optional pointwise band `[fpr, tpr_lo, tpr_hi]` (not written by evaluate format 1).
    pub roc_band: Vec<[Option<f64>; 3]>,
    pub calibration: Option<CalibrationDoc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PairedDelongDoc {
    pub z: Option<f64>,
    pub p: Option<f64>,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub se: Option<f64>,
    pub p_holm: Option<f64>,
}

/// ΔAUC = AUC(a) − AUC(b) on the same patients of one cohort.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ComparisonDoc {
    pub a: String,
    pub b: String,
    pub cohort: String,
    pub auc_a: Option<f64>,
    pub auc_b: Option<f64>,
    pub delta: Option<f64>,
    pub delong: PairedDelongDoc,
    pub bootstrap: BootstrapDoc,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ShiftDoc {
    pub model: String,
    pub auc_internal: Option<f64>,
    pub auc_external: Option<f64>,
    pub delta: Option<f64>,
    pub p: Option<f64>,
}

/// Splits a run's `results.json` into its evaluations: one document, or `{"evaluations":
/// {stage: document}}` when the run had several evaluate stages (a sweep's variants).
pub fn split_results(v: &Value) -> Vec<(Option<String>, Value)> {
    match v.get("evaluations").and_then(Value::as_object) {
        Some(all) => all
            .iter()
            .map(|(k, v)| (Some(k.clone()), v.clone()))
            .collect(),
        None => vec![(None, v.clone())],
    }
}

/// One evaluation to report: its results and, for a sweep variant, its coordinates.
#[derive(Debug, Clone)]
pub struct EvaluationInput {
    /// The evaluate stage's name (`evaluate[rho=0.5]`), when known.
    pub stage: Option<String>,
    /// Sweep coordinates, in declared order (empty outside sweeps).
    pub coords: Vec<(String, Value)>,
    pub results: ResultsDoc,
}

/// A training or pretraining curve: the `curve.json` of `pretrain`/`train` stages
/// (`{"epochs": [{"epoch": 1, "loss": …, …}, …]}`) or the generic form
/// `{"epochs": [1, 2, …], "series": {"loss": […], …}, "collapsed": bool, "collapse_std": x}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurveInput {
    /// Where it came from: the dep name (report stage) or the producing stage's name.
    pub name: String,
    pub curve: Value,
    /// The producing stage's collapse flag (`pretrain` metrics), when known.
    #[serde(default)]
    pub collapsed: Option<bool>,
    /// The producing stage's collapse threshold on the target std (`pretrain` config).
    #[serde(default)]
    pub collapse_std: Option<f64>,
}

/// Sections a report can show, in display order.
pub const SECTIONS: &[&str] = &[
    "summary",
    "results",
    "roc",
    "forest",
    "seeds",
    "calibration",
    "sweep",
    "curves",
    "paper",
    "provenance",
    "reproduce",
];

/// The `report` stage's config (and the run report's, taken from the experiment's report stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Heading of the report [default: the experiment's name].
    pub title: Option<String>,
    /// Free text shown under the title; blank lines separate paragraphs.
    pub notes: Option<String>,
    /// The model highlighted as the reference in tables. ΔAUC figures show evaluate's own
    /// comparisons (the report computes no statistics), so this must match evaluate's `reference`
    /// when both are set.
    pub reference: Option<String>,
    /// Sections to show (any of: summary, results, roc, forest, seeds, calibration, sweep,
    /// curves, paper, provenance, reproduce) [default: all].
    pub sections: Vec<String>,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            title: None,
            notes: None,
            reference: None,
            sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}
