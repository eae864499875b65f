//! The serializable view model of a report: every number already formatted, every figure already
//! drawn (as escaped SVG markup), every method named. Templates only lay it out. Only types and
//! the palette live here; [`super::build`] fills them and [`super::figures`] draws into them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::context::RunInfo;
use super::input::{CurveInput, EvaluationInput, ReportConfig};
use super::svg::Style;

/// Everything a report needs besides the templates.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    pub experiment: String,
    pub description: Option<String>,
    pub config: ReportConfig,
    pub evaluations: Vec<EvaluationInput>,
    pub curves: Vec<CurveInput>,
    /// The experiment's `paper:` block (`null` when absent).
    pub paper: Value,
    /// The run this report describes (absent for the `report` stage's own output).
    pub run: Option<RunInfo>,
}

/// A model's name and its colour, the same in every figure and table of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ModelKey {
    pub name: String,
    pub color: String,
    pub dash: String,
    /// Shown beside the name where the model is the evaluation's reference.
    pub reference: bool,
}

/// A drawn figure: SVG markup (text inside escaped) and a caption saying how it was computed.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub id: String,
    pub title: String,
    pub svg: String,
    pub caption: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CohortRow {
    pub name: String,
    pub n: usize,
    pub n_pos: usize,
    pub n_neg: usize,
    pub prevalence: String,
    pub bayes_auc: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SummaryView {
    /// One sentence: what was compared on what.
    pub compared: String,
    pub models: Vec<ModelKey>,
    pub cohorts: Vec<CohortRow>,
    /// The primary endpoint, as a sentence, with its result.
    pub primary: Option<String>,
    pub primary_result: Option<String>,
    pub secondary: Vec<String>,
    pub reference: Option<String>,
}

/// How each number was computed, in words, from results.json's `methods`.
#[derive(Debug, Clone, Serialize)]
pub struct MethodsView {
    pub level: String,
    pub auc: String,
    pub ensemble: String,
    pub delong: String,
    pub bootstrap: String,
    pub paired: String,
    pub unpaired: String,
    pub adjustment: String,
    pub seed_spread: String,
    pub calibration: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub model: String,
    pub color: String,
    pub reference: bool,
    pub auc: String,
    pub delong: String,
    pub bootstrap: String,
    pub seeds: String,
    pub seed_mean_sd: String,
    pub seed_range: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CohortResults {
    pub name: String,
    pub id: String,
    pub size: String,
    pub bayes_auc: Option<String>,
    pub rows: Vec<ResultRow>,
    pub roc: Figure,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComparisonRow {
    /// `primary`, `secondary` or `vs reference`.
    pub role: String,
    pub a: String,
    pub b: String,
    pub color: String,
    pub cohort: String,
    pub aucs: String,
    pub delta_delong: String,
    pub delta_bootstrap: String,
    pub p: String,
    /// Holm-adjusted p (secondary comparisons only).
    pub p_holm: Option<String>,
    pub p_bootstrap: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedRow {
    pub model: String,
    pub color: String,
    pub cohort: String,
    pub seeds: usize,
    pub per_seed: String,
    pub mean_sd: String,
    pub range: String,
    /// Width of the ensemble's DeLong interval: the test-sampling uncertainty.
    pub test_ci_width: String,
    /// Width of the per-seed range: the training uncertainty.
    pub seed_range_width: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalibrationRow {
    pub model: String,
    pub color: String,
    pub cohort: String,
    pub intercept: String,
    pub slope: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShiftRow {
    pub model: String,
    pub color: String,
    pub internal: String,
    pub external: String,
    pub delta: String,
    pub p: String,
}

/// The results of one evaluate stage (one sweep variant, or the only one).
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationView {
    pub id: String,
    /// The variant's label (`rho=0.5`), empty outside sweeps.
    pub label: String,
    pub stage: Option<String>,
    pub reference: Option<String>,
    pub cohorts: Vec<CohortResults>,
    pub comparisons: Vec<ComparisonRow>,
    pub forest: Option<Figure>,
    pub seeds: Vec<SeedRow>,
    pub seeds_figure: Option<Figure>,
    pub calibration: Vec<CalibrationRow>,
    pub shifts: Vec<ShiftRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    pub variant: String,
    pub model: String,
    pub color: String,
    pub cohort: String,
    pub auc: String,
    pub delta: String,
}

/// AUC (and ΔAUC vs the reference) against the swept value.
#[derive(Debug, Clone, Serialize)]
pub struct SweepView {
    pub axis: String,
    pub figures: Vec<Figure>,
    pub rows: Vec<SweepRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurveView {
    pub name: String,
    pub id: String,
    pub kind: String,
    pub summary: String,
    /// `collapsed`, `healthy` or `unknown` (JEPA curves only).
    pub collapse: Option<String>,
    pub collapse_text: Option<String>,
    pub figures: Vec<Figure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaperRow {
    pub model: String,
    pub color: String,
    pub published_label: String,
    pub published: String,
    pub ours: String,
    pub difference: String,
    /// Whether the published value lies inside our DeLong interval.
    pub inside: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaperCohort {
    pub cohort: String,
    pub rows: Vec<PaperRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaperView {
    pub citation: Option<String>,
    pub note: Option<String>,
    pub cohorts: Vec<PaperCohort>,
    /// The block as given, when it could not be read as published AUCs.
    pub raw: Option<String>,
    pub compared_with: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub name: String,
    pub kind: String,
    pub status: String,
    pub seed: u64,
    pub key: String,
    pub object: String,
    pub outs: Vec<KeyValue>,
    pub duration: String,
    pub attempts: String,
    pub reasons: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProvenanceView {
    pub run_id: String,
    pub experiment_file: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration: String,
    pub git: Vec<KeyValue>,
    pub dirty: bool,
    pub binary: Vec<KeyValue>,
    pub code_identity: Vec<KeyValue>,
    pub compute: Vec<KeyValue>,
    pub seeds: Vec<KeyValue>,
    pub machine: Vec<KeyValue>,
    pub stages: Vec<StageRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReproduceView {
    pub steps: Vec<KeyValue>,
    pub caveats: Vec<String>,
    /// `verification.html` when this run is a `reproduce` verified against a reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
}

/// Which sections the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Sections(pub BTreeMap<String, bool>);

/// The whole report, ready to render.
#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    pub title: String,
    pub experiment: String,
    pub description: Option<String>,
    pub notes: Vec<String>,
    /// "run 2026… of experiments/x.yaml" or "the `report` stage".
    pub source: String,
    pub show: Sections,
    pub summary: SummaryView,
    pub methods: MethodsView,
    pub evaluations: Vec<EvaluationView>,
    pub sweep: Option<SweepView>,
    /// The regime map of a sweep (built by `super::map`).
    pub map: Option<MapView>,
    pub curves: Vec<CurveView>,
    pub paper: Option<PaperView>,
    pub provenance: Option<ProvenanceView>,
    pub reproduce: ReproduceView,
    /// External sites imported into the run (`orchestrate import-site`).
    pub sites: Vec<SiteView>,
    pub warnings: Vec<String>,
    pub version: String,
}

/// Models in a stable order (sorted by name) with their palette styles.
pub struct Palette {
    order: Vec<String>,
}

impl Palette {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Palette {
        let set: BTreeSet<&str> = names.into_iter().collect();
        Palette {
            order: set.into_iter().map(str::to_string).collect(),
        }
    }

    pub fn style(&self, model: &str) -> Style {
        Style::nth(self.order.iter().position(|m| m == model).unwrap_or(0))
    }

    pub fn names(&self) -> &[String] {
        &self.order
    }
}

/// A slug usable as an HTML id (the ids never carry user text unescaped).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Cohorts in reading order: `internal`, then `external`, then the others by name.
pub fn cohort_order<T>(cohorts: &BTreeMap<String, T>) -> Vec<(&String, &T)> {
    let rank = |n: &str| match n {
        "internal" => 0,
        "external" => 1,
        _ => 2,
    };
    let mut v: Vec<(&String, &T)> = cohorts.iter().collect();
    v.sort_by(|a, b| (rank(a.0), a.0).cmp(&(rank(b.0), b.0)));
    v
}

/// One imported external site (`super::sites`).
#[derive(Debug, Clone, Serialize)]
pub struct SiteDropRow {
    pub model: String,
    pub color: String,
    pub internal: String,
    pub site: String,
    pub site_ci: String,
    pub delta: String,
    pub p: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteComparisonRow {
    pub a: String,
    pub b: String,
    pub delta: String,
    pub ci: String,
    pub p: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteView {
    pub name: String,
    /// "site NAME, n 1000, prevalence 0.378, computed on their machine with kit 301042d93394 …".
    pub line: String,
    pub drops: Vec<SiteDropRow>,
    pub comparisons: Vec<SiteComparisonRow>,
}

/// The regime map section of a sweep (built by `super::map`): one grid per comparison and facet, then the line plots.
#[derive(Debug, Clone, Serialize)]
pub struct MapView {
    /// The row axis (`n_finetune`) and the column axis (`rho`; empty for a one-axis sweep).
    pub rows_axis: String,
    pub cols_axis: String,
    pub grids: Vec<MapGrid>,
    pub figures: Vec<Figure>,
    /// How the cells were computed, in one sentence per method.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MapGrid {
    pub id: String,
    /// `jepa − scratch, internal cohort`.
    pub title: String,
    /// The further axes' values this grid holds (`clin_tokens=8, clin_width=32`), or empty.
    pub facet: String,
    pub cols: Vec<String>,
    pub rows: Vec<MapRow>,
    /// `Holm across 16 cells of jepa − scratch (internal): 5 of 16 significant at 0.05`.
    pub holm: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MapRow {
    pub label: String,
    pub cells: Vec<MapCell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MapCell {
    pub empty: bool,
    pub delta: String,
    pub interval: String,
    pub p_holm: String,
    /// Per-seed ΔAUC: mean (min to max) over the seeds both models have.
    pub seeds: String,
    /// `▲` (interval above 0), `▼` (below 0) or empty: readable without colour.
    pub mark: String,
    /// Holm-adjusted p below 1 − level.
    pub holm_significant: bool,
    /// Background and text colours (a diverging blue / vermillion scale on |Δ|).
    pub fill: String,
    pub ink: String,
}
