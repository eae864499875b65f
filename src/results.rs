//! `results.json`, format [`RESULTS_FORMAT`]: what an `evaluate` stage writes and what every
//! reader of it (the report stage, run reports, `compare`) reads, as one set of types. The writer
//! builds these structs; readers refuse a document with another format, a missing field or a
//! field they do not know, so a mismatch is an error naming the field, never a silent "—".
//!
//! Numbers that are undefined (an AUC of a cohort without both classes, a NaN p) are written as
//! `null` and read as `None`; every such field is an `Option`, and may also be absent (results
//! written by earlier builds of format 1 lack `methods.roc_band`, `models[].roc_band` and the
//! shift's `se`, `statistic`, `df`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The layout version of `results.json`; bumped when a field changes meaning or goes away.
pub const RESULTS_FORMAT: u32 = 1;

/// Parses one evaluation's `results.json` document, checking its format.
pub fn parse(v: serde_json::Value) -> Result<ResultsDoc, String> {
    let found = v.get("format").cloned();
    if found != Some(serde_json::Value::from(RESULTS_FORMAT)) {
        return Err(format!(
            "results format {} is not format {RESULTS_FORMAT}, the one this binary reads",
            found.map_or("(none)".to_string(), |f| f.to_string())
        ));
    }
    serde_path_to_error::deserialize(v).map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))
}

/// One `results.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsDoc {
    /// [`RESULTS_FORMAT`]; a reader refuses any other.
    pub format: u32,
    /// The evaluate stage that wrote it.
    pub stage: String,
    pub methods: MethodsDoc,
    pub cohorts: BTreeMap<String, CohortDoc>,
    pub models: Vec<ModelDoc>,
    pub primary: Option<ComparisonDoc>,
    pub secondary: Vec<ComparisonDoc>,
    pub reference: Option<String>,
    pub versus_reference: Vec<ComparisonDoc>,
    pub external_shift: Vec<ShiftDoc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    pub roc_band: Option<String>,
    pub level: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapMethodDoc {
    pub method: Option<String>,
    pub resamples: Option<u64>,
    pub seed: Option<u64>,
    pub stratified: Option<bool>,
    pub level: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortDoc {
    pub n: usize,
    pub n_pos: usize,
    pub n_neg: Option<usize>,
    pub prevalence: Option<f64>,
    pub bayes_auc: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalDoc {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub se: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapDoc {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub method: Option<String>,
    pub resamples: Option<u64>,
    pub used: Option<u64>,
}

/// The paired bootstrap of ΔAUC: its interval and two-sided p.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairedBootstrapDoc {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub p: Option<f64>,
    pub resamples: Option<u64>,
    pub used: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDoc {
    pub seed: u64,
    pub auc: Option<f64>,
    pub delong: IntervalDoc,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpreadDoc {
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationDoc {
    pub intercept: Option<f64>,
    pub intercept_se: Option<f64>,
    pub slope: Option<f64>,
    pub slope_se: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Pointwise band `[fpr, tpr_lo, tpr_hi]` of the ROC curve (`methods.roc_band`); empty in
    /// results written before the band was added (still format 1).
    #[serde(default)]
    pub roc_band: Vec<[Option<f64>; 3]>,
    pub calibration: Option<CalibrationDoc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairedDelongDoc {
    pub z: Option<f64>,
    pub p: Option<f64>,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub se: Option<f64>,
    /// Holm-adjusted p, for the secondary comparisons only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_holm: Option<f64>,
}

/// ΔAUC = AUC(a) − AUC(b) on the same patients of one cohort.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonDoc {
    pub a: String,
    pub b: String,
    pub cohort: String,
    pub auc_a: Option<f64>,
    pub auc_b: Option<f64>,
    pub delta: Option<f64>,
    pub delong: PairedDelongDoc,
    pub bootstrap: PairedBootstrapDoc,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftDoc {
    pub model: String,
    pub auc_internal: Option<f64>,
    pub auc_external: Option<f64>,
    pub delta: Option<f64>,
    pub se: Option<f64>,
    pub statistic: Option<f64>,
    pub df: Option<f64>,
    pub p: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> serde_json::Value {
        json!({"format": 1, "stage": "evaluate", "methods": {"bootstrap": {}}, "cohorts": {},
               "models": [], "primary": null, "secondary": [], "reference": null,
               "versus_reference": [], "external_shift": []})
    }

    #[test]
    fn a_document_of_format_1_parses_and_round_trips() {
        let doc = parse(minimal()).expect("parses");
        assert_eq!(doc.stage, "evaluate");
        assert_eq!(parse(serde_json::to_value(&doc).unwrap()).unwrap(), doc);
    }

    #[test]
    fn another_format_a_missing_field_or_an_unknown_one_is_refused_by_name() {
        let mut v = minimal();
        v["format"] = json!(2);
        assert!(parse(v).unwrap_err().contains("results format 2"));
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("models");
        assert!(parse(v).unwrap_err().contains("models"));
        let mut v = minimal();
        v["methods"]["colour"] = json!("red");
        let e = parse(v).unwrap_err();
        assert!(e.contains("methods") && e.contains("colour"), "{e}");
    }
}
