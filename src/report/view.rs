//! The serializable view model of a report: every number already formatted, every figure already
//! drawn (as escaped SVG markup), every method named. Templates only lay it out.
//!
//! [`build`] turns typed inputs (results, curves, config, the `paper:` block and, for a run,
//! its manifest and context) into a [`ReportView`]. It is a pure function: the same inputs give
//! the same view, byte for byte, which is what the snapshot tests rely on.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::figures;
use super::format as f;
use super::input::{
    ComparisonDoc, CurveInput, EvaluationInput, ModelDoc, ReportConfig, ResultsDoc, SECTIONS,
};
use super::run::RunInfo;
use super::svg::Style;
use crate::dsl::coord_text;

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
    pub curves: Vec<CurveView>,
    pub paper: Option<PaperView>,
    pub provenance: Option<ProvenanceView>,
    pub reproduce: ReproduceView,
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

fn coords_label(coords: &[(String, Value)]) -> String {
    coords
        .iter()
        .map(|(k, v)| format!("{k}={}", coord_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn text_or(s: &Option<String>, default: &str) -> String {
    s.clone().unwrap_or_else(|| default.to_string())
}

fn methods_view(r: &ResultsDoc) -> MethodsView {
    let m = &r.methods;
    let level = m.level.or(m.bootstrap.level);
    let b = &m.bootstrap;
    let bootstrap = format!(
        "{}{} bootstrap, {} resamples, seed {}, {} interval",
        match b.stratified {
            Some(true) => "stratified (cases and controls resampled separately) ",
            Some(false) => "",
            None => "",
        },
        b.method.as_deref().unwrap_or("percentile"),
        b.resamples.map_or("?".to_string(), |n| n.to_string()),
        b.seed.map_or("?".to_string(), |n| n.to_string()),
        f::level(level),
    );
    MethodsView {
        level: f::level(level),
        auc: text_or(&m.auc, "Mann–Whitney AUC"),
        ensemble: text_or(&m.ensemble, "scores averaged over training seeds"),
        delong: text_or(&m.delong, "DeLong variance, normal interval"),
        bootstrap,
        paired: text_or(&m.paired, "paired DeLong test and paired bootstrap"),
        unpaired: text_or(&m.unpaired, "unpaired DeLong test"),
        adjustment: text_or(&m.adjustment, "Holm across the secondary comparisons"),
        seed_spread: text_or(&m.seed_spread, "spread of the per-seed AUCs"),
        calibration: text_or(&m.calibration, "logistic recalibration"),
    }
}

fn comparison_row(c: &ComparisonDoc, role: &str, palette: &Palette) -> ComparisonRow {
    ComparisonRow {
        role: role.to_string(),
        a: c.a.clone(),
        b: c.b.clone(),
        color: palette.style(&c.a).color,
        cohort: c.cohort.clone(),
        aucs: format!("{} vs {}", f::auc(c.auc_a), f::auc(c.auc_b)),
        delta_delong: f::delta(c.delta, c.delong.lo, c.delong.hi),
        delta_bootstrap: f::delta(c.delta, c.bootstrap.lo, c.bootstrap.hi),
        p: f::p_value(c.delong.p),
        p_holm: (role == "secondary").then(|| f::p_value(c.delong.p_holm)),
        p_bootstrap: f::p_value(c.bootstrap.p),
    }
}

/// The comparisons of one evaluation, primary first, each (a, b, cohort) once.
fn comparisons(r: &ResultsDoc) -> Vec<(&'static str, &ComparisonDoc)> {
    let mut out: Vec<(&'static str, &ComparisonDoc)> = Vec::new();
    let mut seen = BTreeSet::new();
    let items = r
        .primary
        .iter()
        .map(|c| ("primary", c))
        .chain(r.secondary.iter().map(|c| ("secondary", c)))
        .chain(r.versus_reference.iter().map(|c| ("vs reference", c)));
    for (role, c) in items {
        if seen.insert((c.a.clone(), c.b.clone(), c.cohort.clone())) {
            out.push((role, c));
        }
    }
    out
}

fn model_row(m: &ModelDoc, palette: &Palette, reference: Option<&str>) -> ResultRow {
    let s = &m.seed_spread;
    ResultRow {
        model: m.model.clone(),
        color: palette.style(&m.model).color,
        reference: reference == Some(m.model.as_str()),
        auc: f::auc(m.auc),
        delong: f::interval(m.delong.lo, m.delong.hi, 3),
        bootstrap: f::interval(m.bootstrap.lo, m.bootstrap.hi, 3),
        seeds: m.seeds.unwrap_or(m.per_seed.len()).to_string(),
        seed_mean_sd: format!("{} ± {}", f::auc(s.mean), f::auc(s.sd)),
        seed_range: f::interval(s.min, s.max, 3),
    }
}

fn evaluation_view(
    index: usize,
    e: &EvaluationInput,
    palette: &Palette,
    methods: &MethodsView,
    config_reference: Option<&str>,
) -> EvaluationView {
    let r = &e.results;
    let reference = config_reference.or(r.reference.as_deref());
    let label = coords_label(&e.coords);
    let id = if label.is_empty() {
        format!("e{}", index + 1)
    } else {
        format!("e{}-{}", index + 1, slug(&label))
    };
    let mut cohorts = Vec::new();
    for (name, info) in cohort_order(&r.cohorts) {
        let models: Vec<&ModelDoc> = r.models.iter().filter(|m| &m.cohort == name).collect();
        let rows = models
            .iter()
            .map(|m| model_row(m, palette, reference))
            .collect();
        let cid = format!("{id}-{}", slug(name));
        cohorts.push(CohortResults {
            name: name.clone(),
            id: cid.clone(),
            size: format!(
                "n = {} ({} positive, {})",
                info.n,
                info.n_pos,
                f::percent(info.prevalence)
            ),
            bayes_auc: info.bayes_auc.map(|b| f::auc(Some(b))),
            rows,
            roc: figures::roc(&cid, name, &models, palette, info.bayes_auc, methods),
        });
    }
    let comps = comparisons(r);
    let comparisons_rows: Vec<ComparisonRow> = comps
        .iter()
        .map(|(role, c)| comparison_row(c, role, palette))
        .collect();
    let forest = (!comps.is_empty()).then(|| figures::forest(&id, &comps, palette, methods));
    let seeds: Vec<SeedRow> = r
        .models
        .iter()
        .map(|m| SeedRow {
            model: m.model.clone(),
            color: palette.style(&m.model).color,
            cohort: m.cohort.clone(),
            seeds: m.per_seed.len(),
            per_seed: m
                .per_seed
                .iter()
                .map(|s| format!("{}: {}", s.seed, f::auc(s.auc)))
                .collect::<Vec<_>>()
                .join(", "),
            mean_sd: format!(
                "{} ± {}",
                f::auc(m.seed_spread.mean),
                f::auc(m.seed_spread.sd)
            ),
            range: f::interval(m.seed_spread.min, m.seed_spread.max, 3),
            test_ci_width: f::auc(m.delong.hi.zip(m.delong.lo).map(|(h, l)| h - l)),
            seed_range_width: f::auc(m.seed_spread.max.zip(m.seed_spread.min).map(|(h, l)| h - l)),
        })
        .collect();
    let seeds_figure =
        (!r.models.is_empty()).then(|| figures::seed_spread(&id, &r.models, palette, methods));
    let calibration = r
        .models
        .iter()
        .map(|m| {
            let c = m.calibration.clone().unwrap_or_default();
            CalibrationRow {
                model: m.model.clone(),
                color: palette.style(&m.model).color,
                cohort: m.cohort.clone(),
                intercept: format!(
                    "{} (SE {})",
                    f::num(c.intercept, 2),
                    f::num(c.intercept_se, 2)
                ),
                slope: format!("{} (SE {})", f::num(c.slope, 2), f::num(c.slope_se, 2)),
            }
        })
        .collect();
    let shifts = r
        .external_shift
        .iter()
        .map(|s| ShiftRow {
            model: s.model.clone(),
            color: palette.style(&s.model).color,
            internal: f::auc(s.auc_internal),
            external: f::auc(s.auc_external),
            delta: f::signed(s.delta, 3),
            p: f::p_value(s.p),
        })
        .collect();
    EvaluationView {
        id,
        label,
        stage: e.stage.clone(),
        reference: reference.map(str::to_string),
        cohorts,
        comparisons: comparisons_rows,
        forest,
        seeds,
        seeds_figure,
        calibration,
        shifts,
    }
}

fn summary(first: Option<&EvaluationInput>, palette: &Palette, n_eval: usize) -> SummaryView {
    let r = first.map(|e| &e.results);
    let cohorts: Vec<CohortRow> = r
        .map(|r| {
            cohort_order(&r.cohorts)
                .into_iter()
                .map(|(name, c)| CohortRow {
                    name: name.clone(),
                    n: c.n,
                    n_pos: c.n_pos,
                    n_neg: c.n_neg.unwrap_or(c.n.saturating_sub(c.n_pos)),
                    prevalence: f::percent(c.prevalence),
                    bayes_auc: c.bayes_auc.map(|b| f::auc(Some(b))),
                })
                .collect()
        })
        .unwrap_or_default();
    let reference = r.and_then(|r| r.reference.clone());
    let models: Vec<ModelKey> = palette
        .names()
        .iter()
        .map(|m| {
            let s = palette.style(m);
            ModelKey {
                name: m.clone(),
                color: s.color,
                dash: s.dash,
                reference: reference.as_deref() == Some(m.as_str()),
            }
        })
        .collect();
    let compared = format!(
        "{} model{} on {} cohort{}{}",
        models.len(),
        if models.len() == 1 { "" } else { "s" },
        cohorts.len(),
        if cohorts.len() == 1 { "" } else { "s" },
        if n_eval > 1 {
            format!(", in {n_eval} variants")
        } else {
            String::new()
        }
    );
    let primary = r.and_then(|r| r.primary.as_ref());
    SummaryView {
        compared,
        models,
        cohorts,
        primary: primary.map(|p| {
            format!(
                "ΔAUC = AUC({}) − AUC({}) on the {} cohort (paired, not adjusted)",
                p.a, p.b, p.cohort
            )
        }),
        primary_result: primary.map(|p| {
            format!(
                "{}; DeLong p {}",
                f::delta(p.delta, p.delong.lo, p.delong.hi),
                f::p_value(p.delong.p)
            )
        }),
        secondary: r
            .map(|r| {
                r.secondary
                    .iter()
                    .map(|c| format!("{} − {} on {}", c.a, c.b, c.cohort))
                    .collect()
            })
            .unwrap_or_default(),
        reference,
    }
}

/// Reads the `paper:` block: `{citation, note, models: {ours: published label}, auc: {cohort:
/// {model: value | {auc, lo, hi}}}}`. Anything else is shown as given.
fn paper_view(paper: &Value, e: Option<&EvaluationInput>, palette: &Palette) -> Option<PaperView> {
    if paper.is_null() {
        return None;
    }
    let text = |k: &str| paper.get(k).and_then(Value::as_str).map(str::to_string);
    let labels = paper.get("models").and_then(Value::as_object);
    let table = paper
        .get("auc")
        .or_else(|| paper.get("results"))
        .and_then(Value::as_object);
    let raw = || serde_json::to_string_pretty(paper).ok();
    let Some(table) = table else {
        return Some(PaperView {
            citation: text("citation"),
            note: text("note"),
            cohorts: Vec::new(),
            raw: raw(),
            compared_with: String::new(),
        });
    };
    let mut cohorts = Vec::new();
    let mut understood = true;
    for (cohort, models) in table {
        let Some(models) = models.as_object() else {
            understood = false;
            continue;
        };
        let mut rows = Vec::new();
        for (model, v) in models {
            let published = v.as_f64().or_else(|| v.get("auc").and_then(Value::as_f64));
            if published.is_none() && !v.is_null() {
                understood = false;
            }
            let (plo, phi) = (
                v.get("lo").and_then(Value::as_f64),
                v.get("hi").and_then(Value::as_f64),
            );
            let ours = e.and_then(|e| {
                e.results
                    .models
                    .iter()
                    .find(|m| &m.model == model && &m.cohort == cohort)
            });
            let inside = match (published, ours) {
                (Some(p), Some(m)) => match (m.delong.lo, m.delong.hi) {
                    (Some(lo), Some(hi)) => {
                        if lo <= p && p <= hi {
                            "yes".to_string()
                        } else {
                            "no".to_string()
                        }
                    }
                    _ => "—".to_string(),
                },
                _ => "—".to_string(),
            };
            rows.push(PaperRow {
                model: model.clone(),
                color: palette.style(model).color,
                published_label: labels
                    .and_then(|l| l.get(model))
                    .and_then(Value::as_str)
                    .unwrap_or(model)
                    .to_string(),
                published: match (plo, phi) {
                    (Some(_), Some(_)) => f::estimate(published, plo, phi),
                    _ => published.map_or("—".to_string(), |p| format!("{p:.2}")),
                },
                ours: ours.map_or("not in this run".to_string(), |m| {
                    f::estimate(m.auc, m.delong.lo, m.delong.hi)
                }),
                difference: match (ours.and_then(|m| m.auc), published) {
                    (Some(o), Some(p)) => f::signed(Some(o - p), 3),
                    _ => "—".to_string(),
                },
                inside,
            });
        }
        cohorts.push(PaperCohort {
            cohort: cohort.clone(),
            rows,
        });
    }
    let rank = |c: &str| match c {
        "internal" => 0,
        "external" => 1,
        _ => 2,
    };
    cohorts.sort_by(|a, b| (rank(&a.cohort), &a.cohort).cmp(&(rank(&b.cohort), &b.cohort)));
    Some(PaperView {
        citation: text("citation"),
        note: text("note"),
        cohorts,
        raw: if understood { None } else { raw() },
        compared_with: e
            .map(|e| {
                let l = coords_label(&e.coords);
                if l.is_empty() {
                    String::new()
                } else {
                    format!("variant {l}")
                }
            })
            .unwrap_or_default(),
    })
}

fn sections(cfg: &ReportConfig) -> Sections {
    Sections(
        SECTIONS
            .iter()
            .map(|s| (s.to_string(), cfg.sections.iter().any(|c| c == s)))
            .collect(),
    )
}

/// Builds the view model of one report.
pub fn build(inputs: &ReportInputs) -> ReportView {
    let mut warnings = Vec::new();
    let palette = Palette::new(
        inputs
            .evaluations
            .iter()
            .flat_map(|e| e.results.models.iter().map(|m| m.model.as_str()))
            .chain(
                inputs
                    .evaluations
                    .iter()
                    .filter_map(|e| e.results.reference.as_deref()),
            ),
    );
    let first = inputs.evaluations.first();
    let methods = first.map_or_else(
        || methods_view(&ResultsDoc::default()),
        |e| methods_view(&e.results),
    );
    if let Some(cr) = &inputs.config.reference {
        for e in &inputs.evaluations {
            if let Some(er) = &e.results.reference
                && er != cr
            {
                warnings.push(format!(
                    "the report's reference `{cr}` differs from evaluate's `{er}`: ΔAUC figures show evaluate's comparisons (against `{er}`)"
                ));
            }
        }
    }
    if inputs.evaluations.is_empty() {
        warnings.push("no evaluation results: nothing to show but provenance".to_string());
    }
    let evaluations: Vec<EvaluationView> = inputs
        .evaluations
        .iter()
        .enumerate()
        .map(|(i, e)| evaluation_view(i, e, &palette, &methods, inputs.config.reference.as_deref()))
        .collect();
    let sweep = (inputs.evaluations.len() > 1)
        .then(|| figures::sweep(&inputs.evaluations, &palette, &methods))
        .map(|(axis, figures, rows)| SweepView {
            axis,
            figures,
            rows,
        });
    let curves = inputs
        .curves
        .iter()
        .enumerate()
        .map(|(i, c)| figures::curve(i, c))
        .collect();
    let title = inputs
        .config
        .title
        .clone()
        .unwrap_or_else(|| inputs.experiment.clone());
    let notes = inputs
        .config
        .notes
        .as_deref()
        .map(|n| {
            n.split("\n\n")
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (provenance, reproduce, source) = match &inputs.run {
        Some(run) => (
            Some(super::run::provenance_view(run, first)),
            super::run::reproduce_view(run),
            format!("run {} of {}", run.manifest.run_id, run.manifest.file),
        ),
        None => (
            None,
            ReproduceView {
                steps: vec![KeyValue {
                    key: "recompute every stage from scratch in an isolated store".to_string(),
                    value: format!("orchestrate reproduce experiments/{}.yaml", inputs.experiment),
                }],
                caveats: vec![
                    "this report was rendered by a `report` stage: the run's own report.html (runs/EXPERIMENT/RUN-ID/) adds provenance: git commit, keys, digests, timings".to_string(),
                ],
                verification: None,
            },
            "the `report` stage".to_string(),
        ),
    };
    ReportView {
        title,
        experiment: inputs.experiment.clone(),
        description: inputs.description.clone(),
        notes,
        source,
        show: sections(&inputs.config),
        summary: summary(first, &palette, inputs.evaluations.len()),
        methods,
        evaluations,
        sweep,
        curves,
        paper: paper_view(&inputs.paper, first, &palette),
        provenance,
        reproduce,
        warnings,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}
