//! The run-level documents a report reads besides `results.json`: `report-context.json`, which
//! `orchestrate run` writes beside the manifest ([`RunContext`]), and a run folder read as one
//! value ([`RunInfo`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::input::ReportConfig;
use crate::exec::manifest::RunManifest;

pub const CONTEXT_FILE: &str = "report-context.json";
pub const CONTEXT_FORMAT: u32 = 1;

/// A stored training curve: the object holding it and its path inside.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurveSource {
    pub name: String,
    pub stage: String,
    pub object: String,
    pub path: String,
    #[serde(default)]
    pub collapsed: Option<bool>,
    #[serde(default)]
    pub collapse_std: Option<f64>,
}

/// One stage as declared: what the comparison report diffs between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageContext {
    pub base: String,
    pub kind: String,
    pub params: Value,
    pub config: Value,
    pub seed: u64,
    /// Sweep/replicate coordinates in declared order.
    pub coords: Vec<(String, Value)>,
}

/// Where and how a stage computed: from its record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComputeUse {
    pub stage: String,
    pub backend: Option<String>,
    pub device: Option<String>,
    pub devices: Vec<String>,
    pub threads: u32,
    pub host: String,
}

/// `report-context.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunContext {
    pub format: u32,
    pub description: Option<String>,
    pub seed: u64,
    pub backend: String,
    pub paper: Value,
    pub report: ReportConfig,
    pub curves: Vec<CurveSource>,
    pub stages: BTreeMap<String, StageContext>,
    /// Stage kind → code identity of the binary that made the run.
    pub code_identity: BTreeMap<String, String>,
    pub compute: Vec<ComputeUse>,
}

/// A recorded run, as the report reads it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub dir: PathBuf,
    pub manifest: RunManifest,
    pub context: Option<RunContext>,
}
