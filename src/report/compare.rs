//! `orchestrate compare`: one page across runs, or across a sweep's variants within a run. Every
//! cell (run × variant × model × cohort) with its AUC and intervals, the difference to a chosen
//! baseline cell, the same table pre-sorted several ways (sortable without JavaScript: each order
//! is its own section), and the parameters that differ between the compared units.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use statrs::distribution::{ContinuousCDF, Normal};

use super::ReportError;
use super::context::RunInfo;
use super::format as f;
use super::input::{EvaluationInput, ModelDoc};
use super::view::{ModelKey, Palette};
use crate::dsl::coord_text;

/// Which cell the differences are taken against.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    /// The baseline model [default: each evaluation's reference model].
    pub model: Option<String>,
    /// A unit label (or part of one: a run id, `rho=0`) fixing the baseline cell to that run or
    /// variant; otherwise each cell is compared with the baseline model of its own unit.
    pub unit: Option<String>,
    /// A run (its label or part of one) whose variants are the baselines of the variants with
    /// the same coordinates in every other run: two sweeps compared cell by cell.
    pub run: Option<String>,
}

/// One compared unit: an evaluation of one run (a sweep variant, or the run's only one).
#[derive(Debug, Clone, Serialize)]
pub struct UnitView {
    pub label: String,
    pub run: String,
    pub variant: String,
    pub experiment: String,
    pub file: String,
    pub status: String,
    pub started_at: String,
    pub git: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CellRow {
    pub unit: String,
    pub model: String,
    pub color: String,
    pub cohort: String,
    pub n: String,
    pub auc: String,
    pub delong: String,
    pub bootstrap: String,
    pub seeds: String,
    pub delta: String,
    /// `paired` (paired DeLong from evaluate), `approx` (independent-samples approximation) or
    /// empty (the baseline itself, or no baseline on that cohort).
    pub delta_method: String,
    pub baseline: bool,
}

/// The cell table in one order.
#[derive(Debug, Clone, Serialize)]
pub struct SortedTable {
    pub id: String,
    pub label: String,
    pub rows: Vec<CellRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParamRow {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompareView {
    pub title: String,
    pub units: Vec<UnitView>,
    pub models: Vec<ModelKey>,
    pub baseline: String,
    pub level: String,
    pub methods: Vec<String>,
    pub tables: Vec<SortedTable>,
    pub params: Vec<ParamRow>,
    pub params_note: String,
    /// The regime map when one sweep run's variants are compared (`super::map`).
    pub map: Option<super::view::MapView>,
    pub warnings: Vec<String>,
    pub version: String,
}

/// A cell with its sort keys: unit index, AUC, ΔAUC.
type SortRow = (usize, f64, f64, CellRow);

struct Unit<'a> {
    label: String,
    run: &'a RunInfo,
    eval: &'a EvaluationInput,
}

/// Sort key numbers: undefined values last.
fn key(x: Option<f64>) -> f64 {
    x.filter(|v| v.is_finite()).unwrap_or(f64::NEG_INFINITY)
}

/// Flattens a JSON value into `path → text` (objects by key; arrays and scalars as JSON text).
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_string(), coord_text(other));
        }
    }
}

/// The declared settings of a unit: each stage's params and config by `BASE.params.x` /
/// `BASE.config.a.b`, over the stages that belong to the unit (not another sweep variant).
/// Replicates of one stage differ only in their seed, which is left out.
fn settings(u: &Unit) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let coords: BTreeMap<&str, &Value> =
        u.eval.coords.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let Some(ctx) = &u.run.context else {
        return BTreeMap::new();
    };
    for s in ctx.stages.values() {
        let belongs = s
            .coords
            .iter()
            .filter(|(k, _)| k != "seed")
            .all(|(k, v)| coords.get(k.as_str()).is_none_or(|c| *c == v));
        if !belongs {
            continue;
        }
        let mut flat = BTreeMap::new();
        flatten(&format!("{}.params", s.base), &s.params, &mut flat);
        flatten(&format!("{}.config", s.base), &s.config, &mut flat);
        for (k, v) in flat {
            values.entry(k).or_default().insert(v);
        }
    }
    for (k, v) in &u.eval.coords {
        values
            .entry(format!("sweep: {k}"))
            .or_default()
            .insert(coord_text(v));
    }
    values
        .into_iter()
        .map(|(k, vs)| {
            let text = if vs.len() == 1 {
                vs.into_iter().next().unwrap_or_default()
            } else {
                format!(
                    "several: {}",
                    vs.into_iter().collect::<Vec<_>>().join(" | ")
                )
            };
            (k, text)
        })
        .collect()
}

fn find<'a>(e: &'a EvaluationInput, model: &str, cohort: &str) -> Option<&'a ModelDoc> {
    e.results
        .models
        .iter()
        .find(|m| m.model == model && m.cohort == cohort)
}

/// Builds the comparison of `runs` (each with its evaluations).
pub fn build(
    runs: &[(RunInfo, Vec<EvaluationInput>)],
    baseline: &Baseline,
) -> Result<CompareView, ReportError> {
    let mut units = Vec::new();
    let single_run = runs.len() == 1;
    for (run, evals) in runs {
        for e in evals {
            let variant = e
                .coords
                .iter()
                .map(|(k, v)| format!("{k}={}", coord_text(v)))
                .collect::<Vec<_>>()
                .join(", ");
            let run_label = format!("{}/{}", run.manifest.experiment, run.manifest.run_id);
            let label = match (single_run, variant.is_empty()) {
                (true, false) => variant.clone(),
                (_, true) => run_label,
                (false, false) => format!("{run_label} [{variant}]"),
            };
            units.push(Unit {
                label,
                run,
                eval: e,
            });
        }
    }
    if units.is_empty() {
        return Err(ReportError::Usage(
            "nothing to compare: none of the runs has results.json".to_string(),
        ));
    }
    let mut warnings = Vec::new();
    let palette = Palette::new(
        units
            .iter()
            .flat_map(|u| u.eval.results.models.iter().map(|m| m.model.as_str())),
    );
    let level = units[0].eval.results.methods.level.unwrap_or(0.95);
    let z = Normal::new(0.0, 1.0)
        .map(|n| n.inverse_cdf(0.5 + level / 2.0))
        .unwrap_or(1.959_963_984_540_054);
    let fixed_unit = match &baseline.unit {
        Some(s) => {
            let hits: Vec<usize> = (0..units.len())
                .filter(|&i| units[i].label.contains(s.as_str()))
                .collect();
            match hits[..] {
                [i] => Some(i),
                [] => {
                    return Err(ReportError::Usage(format!(
                        "--baseline-in `{s}` matches no compared run or variant (have: {})",
                        units
                            .iter()
                            .map(|u| u.label.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )));
                }
                _ => {
                    return Err(ReportError::Usage(format!(
                        "--baseline-in `{s}` matches several runs or variants: {}",
                        hits.iter()
                            .map(|&i| units[i].label.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )));
                }
            }
        }
        None => None,
    };
    if baseline.unit.is_some() && baseline.run.is_some() {
        return Err(ReportError::Usage(
            "--baseline-in fixes one baseline cell and --baseline-run pairs variants by their \
             coordinates: give one of them"
                .to_string(),
        ));
    }
    // Per unit: the unit its baseline cell is taken from (`None`: no counterpart).
    let base_of: Vec<Option<usize>> = match &baseline.run {
        None => (0..units.len())
            .map(|ui| Some(fixed_unit.unwrap_or(ui)))
            .collect(),
        Some(s) => {
            let run_label =
                |u: &Unit| format!("{}/{}", u.run.manifest.experiment, u.run.manifest.run_id);
            let runs_hit: BTreeSet<String> = units
                .iter()
                .map(run_label)
                .filter(|l| l.contains(s.as_str()))
                .collect();
            if runs_hit.len() != 1 {
                let all: BTreeSet<String> = units.iter().map(run_label).collect();
                return Err(ReportError::Usage(format!(
                    "--baseline-run `{s}` must match one compared run; it matches {} (runs: {})",
                    runs_hit.len(),
                    all.into_iter().collect::<Vec<_>>().join("; ")
                )));
            }
            let target = runs_hit.into_iter().next().unwrap_or_default();
            let same = |a: &[(String, Value)], b: &[(String, Value)]| {
                a.len() == b.len() && a.iter().all(|x| b.contains(x))
            };
            let base_of: Vec<Option<usize>> = units
                .iter()
                .map(|u| {
                    units.iter().position(|b| {
                        run_label(b) == target && same(&b.eval.coords, &u.eval.coords)
                    })
                })
                .collect();
            let unpaired = base_of.iter().filter(|b| b.is_none()).count();
            if unpaired > 0 {
                warnings.push(format!(
                    "{unpaired} of {} compared variants have no variant with the same coordinates \
                     in {target}: their ΔAUC is —",
                    units.len()
                ));
            }
            base_of
        }
    };
    if let Some(m) = &baseline.model
        && !palette.names().contains(m)
    {
        return Err(ReportError::Usage(format!(
            "--baseline `{m}` is not a model of the compared runs (models: {})",
            palette.names().join(", ")
        )));
    }
    let baseline_text = match (&baseline.model, fixed_unit) {
        _ if baseline.run.is_some() => format!(
            "{} in the variant with the same coordinates of the run matching `{}`",
            baseline.model.as_deref().unwrap_or("the reference model"),
            baseline.run.as_deref().unwrap_or_default()
        ),
        (Some(m), Some(i)) => format!("{m} in {}", units[i].label),
        (Some(m), None) => format!("{m} in the same run or variant"),
        (None, Some(i)) => format!("the reference model of {}", units[i].label),
        (None, None) => "each evaluation's reference model, in the same run or variant".to_string(),
    };
    let mut rows = Vec::new();
    for (ui, u) in units.iter().enumerate() {
        let bu = base_of[ui].unwrap_or(ui);
        let paired_unit = base_of[ui].is_some();
        let bmodel = baseline
            .model
            .clone()
            .or_else(|| units[bu].eval.results.reference.clone());
        for m in &u.eval.results.models {
            let base = bmodel
                .as_deref()
                .filter(|_| paired_unit)
                .and_then(|b| find(units[bu].eval, b, &m.cohort));
            let is_base = bu == ui && bmodel.as_deref() == Some(m.model.as_str());
            let (delta, method) = match base {
                _ if is_base => ("baseline".to_string(), String::new()),
                None => ("—".to_string(), String::new()),
                Some(b) => {
                    let paired = (bu == ui)
                        .then(|| {
                            let r = &u.eval.results;
                            r.primary
                                .iter()
                                .chain(&r.secondary)
                                .chain(&r.versus_reference)
                                .find(|c| c.a == m.model && c.b == b.model && c.cohort == m.cohort)
                        })
                        .flatten();
                    match paired {
                        Some(c) => (
                            f::delta(c.delta, c.delong.lo, c.delong.hi),
                            "paired".to_string(),
                        ),
                        None => {
                            let d = m.auc.zip(b.auc).map(|(a, b)| a - b);
                            let se = m
                                .delong
                                .se
                                .zip(b.delong.se)
                                .map(|(a, b)| (a * a + b * b).sqrt());
                            let (lo, hi) = match (d, se) {
                                (Some(d), Some(se)) => (Some(d - z * se), Some(d + z * se)),
                                _ => (None, None),
                            };
                            (f::delta(d, lo, hi), "approx".to_string())
                        }
                    }
                }
            };
            let sort_delta = if is_base {
                Some(0.0)
            } else {
                base.and_then(|b| m.auc.zip(b.auc).map(|(a, b)| a - b))
            };
            rows.push((
                ui,
                key(m.auc),
                key(sort_delta),
                CellRow {
                    unit: u.label.clone(),
                    model: m.model.clone(),
                    color: palette.style(&m.model).color,
                    cohort: m.cohort.clone(),
                    n: m.n.map_or("—".to_string(), |n| n.to_string()),
                    auc: f::auc(m.auc),
                    delong: f::interval(m.delong.lo, m.delong.hi, 3),
                    bootstrap: f::interval(m.bootstrap.lo, m.bootstrap.hi, 3),
                    seeds: m.seeds.unwrap_or(m.per_seed.len()).to_string(),
                    delta,
                    delta_method: method,
                    baseline: is_base,
                },
            ));
        }
    }
    if rows.iter().all(|r| r.3.delta == "—") {
        warnings.push(
            "no baseline: the runs declare no reference model; pass --baseline MODEL".to_string(),
        );
    }
    let by = |label: &str, id: &str, cmp: &dyn Fn(&SortRow, &SortRow) -> std::cmp::Ordering| {
        let mut v = rows.clone();
        v.sort_by(|a, b| cmp(a, b));
        SortedTable {
            id: id.to_string(),
            label: label.to_string(),
            rows: v.into_iter().map(|r| r.3).collect(),
        }
    };
    let tables = vec![
        by("run and variant", "by-run", &|a, b| {
            (a.0, &a.3.cohort, &a.3.model).cmp(&(b.0, &b.3.cohort, &b.3.model))
        }),
        by("cohort, then AUC (highest first)", "by-auc", &|a, b| {
            a.3.cohort
                .cmp(&b.3.cohort)
                .then(b.1.total_cmp(&a.1))
                .then(a.0.cmp(&b.0))
        }),
        by("cohort, then ΔAUC (largest first)", "by-delta", &|a, b| {
            a.3.cohort
                .cmp(&b.3.cohort)
                .then(b.2.total_cmp(&a.2))
                .then(a.0.cmp(&b.0))
        }),
        by("model, then cohort", "by-model", &|a, b| {
            (&a.3.model, &a.3.cohort, a.0).cmp(&(&b.3.model, &b.3.cohort, b.0))
        }),
    ];
    // Parameters that differ between units.
    let all: Vec<BTreeMap<String, String>> = units.iter().map(settings).collect();
    let names: BTreeSet<&String> = all.iter().flat_map(|m| m.keys()).collect();
    let params = names
        .into_iter()
        .filter_map(|n| {
            let vals: Vec<String> = all
                .iter()
                .map(|m| m.get(n).cloned().unwrap_or_else(|| "—".to_string()))
                .collect();
            let distinct: BTreeSet<&String> = vals.iter().collect();
            (distinct.len() > 1).then(|| ParamRow {
                name: n.clone(),
                values: vals,
            })
        })
        .collect::<Vec<_>>();
    let params_note = if units.iter().any(|u| u.run.context.is_none()) {
        "some runs have no report-context.json (older orchestrate): their declared settings are unknown".to_string()
    } else if params.is_empty() {
        "every declared setting is the same in all compared runs and variants".to_string()
    } else {
        "declared stage settings (params and config) that differ; all others are equal".to_string()
    };
    let m0 = &units[0].eval.results.methods;
    let b = &m0.bootstrap;
    let methods = vec![
        format!("AUC: {}", m0.auc.clone().unwrap_or_default()),
        format!("DeLong: {}", m0.delong.clone().unwrap_or_default()),
        format!(
            "bootstrap: {} {}, {} resamples, seed {}",
            if b.stratified == Some(true) {
                "stratified"
            } else {
                ""
            },
            b.method.clone().unwrap_or_default(),
            b.resamples.map_or("?".into(), |r| r.to_string()),
            b.seed.map_or("?".into(), |r| r.to_string())
        ),
        format!(
            "ΔAUC marked paired: evaluate's paired DeLong interval (same patients, same run). Marked approx: Δ ± z·√(SE₁² + SE₂²) from the two DeLong SEs, z for {}, which treats the cells as independent samples: conservative when they share patients.",
            f::level(Some(level))
        ),
    ];
    let models = palette
        .names()
        .iter()
        .map(|m| {
            let s = palette.style(m);
            ModelKey {
                name: m.clone(),
                color: s.color,
                dash: s.dash,
                reference: baseline.model.as_deref() == Some(m.as_str()),
            }
        })
        .collect();
    let experiments: BTreeSet<&str> = runs
        .iter()
        .map(|(r, _)| r.manifest.experiment.as_str())
        .collect();
    Ok(CompareView {
        title: format!(
            "Comparison: {}",
            experiments.into_iter().collect::<Vec<_>>().join(", ")
        ),
        units: units
            .iter()
            .map(|u| {
                let m = &u.run.manifest;
                UnitView {
                    label: u.label.clone(),
                    run: m.run_id.clone(),
                    variant: u
                        .eval
                        .coords
                        .iter()
                        .map(|(k, v)| format!("{k}={}", coord_text(v)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    experiment: m.experiment.clone(),
                    file: m.file.clone(),
                    status: m.status.to_string(),
                    started_at: m.started_at.clone(),
                    git: m.provenance.git.as_ref().map_or("no git".to_string(), |g| {
                        format!(
                            "{}{}",
                            g.commit
                                .as_deref()
                                .map_or("no commit", |c| &c[..c.len().min(12)]),
                            if g.dirty { " (dirty)" } else { "" }
                        )
                    }),
                }
            })
            .collect(),
        models,
        baseline: baseline_text,
        level: f::level(Some(level)),
        methods,
        tables,
        params,
        params_note,
        map: match runs {
            [(_, evals)] => super::map::build(evals, level),
            _ => None,
        },
        warnings,
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}
