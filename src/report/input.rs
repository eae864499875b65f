//! What a report reads, typed: the evaluations (`results.json`, whose types live in
//! [`crate::results`], shared with the `evaluate` stage that writes them), training-curve JSON
//! files, the report config and the run context written beside the manifest. An undefined number
//! (`null`) is shown as "—".

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::results::{ComparisonDoc, ModelDoc, ResultsDoc};

/// Splits a run's `results.json` into its evaluations: one document, or `{"evaluations":
/// {stage: document}, "variants": […], "axes": […]}` when the run had several evaluate stages (a
/// sweep's variants; `variants` and `axes` say where each sits in the grid).
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
    "map",
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
    /// Sections to show (any of: summary, results, roc, forest, seeds, calibration, sweep, map,
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
