//! `evaluate` stages: AUCs with DeLong and bootstrap intervals, per model and cohort, the declared
//! comparisons (paired DeLong and paired bootstrap, Holm-adjusted secondaries), internal → external
//! drops (unpaired DeLong), calibration, ROC points, and the training-seed spread. Writes
//! `results.json`, where every number sits beside the method, level, resamples and seed that
//! produced it.
//!
//! Inputs: the `scores.csv` files of `predict` stages (any dep names; gather replicates with
//! `stage:predict[*]/scores`), with
//! columns `model,seed,cohort,id,label,score`, and optionally a synthetic environment's
//! `truth.json` for the Bayes AUC of each cohort.
//!
//! Seeds: for each model and cohort the scores of its training seeds are averaged per patient
//! (the seed ensemble); the ensemble gets the intervals and tests, which therefore describe
//! test-sampling variance. The spread of the per-seed AUCs (mean, sd, min, max) is reported
//! apart: it is training variance.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::StageError;
use super::config::{ConfigError, from_task, key_error, typed};
use crate::kinds::DepSpec;
use crate::results::{
    BootstrapDoc, BootstrapMethodDoc, CalibrationDoc, CohortDoc, ComparisonDoc, IntervalDoc,
    MethodsDoc, ModelDoc, PairedBootstrapDoc, PairedDelongDoc, RESULTS_FORMAT, ResultsDoc, SeedDoc,
    ShiftDoc, SpreadDoc,
};
use crate::stats::{self, BootstrapConfig, Direction, IntervalMethod};
use crate::task::TaskFile;

/// Every dep but `truth` is a `scores.csv` (or a gathered list of them): name them as you like,
/// e.g. `{jepa: "stage:predict_jepa[*]/scores", imaging: "stage:predict_imaging[*]/scores"}`.
pub const DEPS: DepSpec = DepSpec {
    required: &[],
    optional: &["truth", "*"],
};

/// Two models compared on the same patients of one cohort: ΔAUC = AUC(a) − AUC(b).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    pub cohort: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapSettings {
    /// Number of resamples.
    pub resamples: usize,
    /// Seed of the resample streams.
    pub seed: u64,
    /// Resample cases and controls separately (pROC's default).
    pub stratified: bool,
    /// `percentile` (pROC's method) or `bca`.
    pub method: IntervalMethod,
}

impl Default for BootstrapSettings {
    fn default() -> Self {
        BootstrapSettings {
            resamples: 2000,
            seed: 1,
            stratified: true,
            method: IntervalMethod::Percentile,
        }
    }
}

/// How to evaluate. Every key has a default; an empty `config:` reports every model and cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateConfig {
    /// The model every other model is compared with in the forest plot (unadjusted).
    pub reference: Option<String>,
    /// The primary comparison: reported first, never adjusted.
    pub primary: Option<Comparison>,
    /// Secondary comparisons: their p-values are Holm-adjusted together.
    pub secondary: Vec<Comparison>,
    /// Confidence level of every interval.
    pub level: f64,
    pub bootstrap: BootstrapSettings,
    /// At most this many points per ROC curve in results.json (evenly thinned, ends kept).
    pub roc_points: usize,
}

impl Default for EvaluateConfig {
    fn default() -> Self {
        EvaluateConfig {
            reference: None,
            primary: None,
            secondary: Vec::new(),
            level: 0.95,
            bootstrap: BootstrapSettings::default(),
            roc_points: 101,
        }
    }
}

pub fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    let (c, json) = typed::<EvaluateConfig>(raw)?;
    if !(c.level > 0.0 && c.level < 1.0) {
        return Err(key_error(
            "level",
            format!("level {} must be between 0 and 1 (e.g. 0.95)", c.level),
        ));
    }
    if c.bootstrap.resamples < 100 {
        return Err(ConfigError {
            path: vec!["bootstrap".into(), "resamples".into()],
            message: format!(
                "{} resamples are too few for an interval: use at least 100 (2000 is the default)",
                c.bootstrap.resamples
            ),
        });
    }
    Ok(json)
}

pub fn outputs(_config: &Value) -> Vec<(String, String)> {
    vec![("results".to_string(), "results.json".to_string())]
}

/// One row of a `scores.csv`.
#[derive(Debug, Clone)]
struct ScoreRow {
    model: String,
    seed: u64,
    cohort: String,
    id: String,
    label: bool,
    score: f64,
}

/// Reads a predict stage's `scores.csv` (through [`crate::csv`]: its quoting rules and limits, and
/// the file's line in every error).
fn read_scores(path: &Path, rows: &mut Vec<ScoreRow>) -> Result<(), String> {
    let at = |line: usize| format!("`{}` line {line}", path.display());
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut records = crate::csv::Reader::new(file);
    let header = match records.next() {
        Some(Ok(h)) => h.fields,
        Some(Err(e)) => return Err(format!("`{}`: {e}", path.display())),
        None => Vec::new(),
    };
    let col = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            format!(
                "`{}` has no column `{name}` (columns: {})",
                path.display(),
                header.join(", ")
            )
        })
    };
    let (m, s, c, i, l, sc) = (
        col("model")?,
        col("seed")?,
        col("cohort")?,
        col("id")?,
        col("label")?,
        col("score")?,
    );
    for record in records {
        let r = record.map_err(|e| format!("`{}`: {e}", path.display()))?;
        let get = |k: usize| {
            r.fields.get(k).map(String::as_str).ok_or_else(|| {
                format!(
                    "{}: {} fields but the header has {}",
                    at(r.line),
                    r.fields.len(),
                    header.len()
                )
            })
        };
        let label = match get(l)? {
            "1" => true,
            "0" => false,
            other => {
                return Err(format!(
                    "{}, column `label`: `{}` is not 0 or 1",
                    at(r.line),
                    crate::csv::shown(other)
                ));
            }
        };
        let score: f64 = get(sc)?
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("{}, column `score`: not a finite number", at(r.line)))?;
        rows.push(ScoreRow {
            model: get(m)?.to_string(),
            seed: get(s)?
                .parse()
                .map_err(|_| format!("{}, column `seed`: not a whole number", at(r.line)))?,
            cohort: get(c)?.to_string(),
            id: get(i)?.to_string(),
            label,
            score,
        });
    }
    Ok(())
}

/// Seed → patient id → (label, score), for one model on one cohort.
type SeedScores = BTreeMap<u64, BTreeMap<String, (bool, f64)>>;

/// A model's seed-ensemble scores on one cohort, in patient-id order.
struct Scored {
    ids: Vec<String>,
    labels: Vec<bool>,
    ensemble: Vec<f64>,
    /// (seed, scores in the same order).
    seeds: Vec<(u64, Vec<f64>)>,
}

fn group(rows: &[ScoreRow]) -> Result<BTreeMap<(String, String), Scored>, String> {
    // (model, cohort) → seed → id → (label, score)
    let mut by: BTreeMap<(String, String), SeedScores> = BTreeMap::new();
    for r in rows {
        let seeds = by.entry((r.model.clone(), r.cohort.clone())).or_default();
        if seeds
            .entry(r.seed)
            .or_default()
            .insert(r.id.clone(), (r.label, r.score))
            .is_some()
        {
            return Err(format!(
                "model `{}` seed {} scores patient `{}` of cohort `{}` twice",
                r.model, r.seed, r.id, r.cohort
            ));
        }
    }
    let mut out = BTreeMap::new();
    for ((model, cohort), seeds) in by {
        let first = seeds.values().next().expect("a seed has rows");
        let ids: Vec<String> = first.keys().cloned().collect();
        let labels: Vec<bool> = first.values().map(|(l, _)| *l).collect();
        let mut per_seed = Vec::new();
        for (seed, patients) in &seeds {
            if patients.keys().ne(first.keys()) {
                return Err(format!(
                    "model `{model}` on cohort `{cohort}`: seed {seed} scored other patients than the first seed"
                ));
            }
            per_seed.push((
                *seed,
                patients.values().map(|(_, s)| *s).collect::<Vec<f64>>(),
            ));
        }
        let k = per_seed.len() as f64;
        let ensemble = (0..ids.len())
            .map(|i| per_seed.iter().map(|(_, s)| s[i]).sum::<f64>() / k)
            .collect();
        out.insert(
            (model, cohort),
            Scored {
                ids,
                labels,
                ensemble,
                seeds: per_seed,
            },
        );
    }
    Ok(out)
}

fn thin<T: Clone>(points: &[T], max: usize) -> Vec<T> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    (0..max)
        .map(|k| points[k * (points.len() - 1) / (max - 1)].clone())
        .collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn err(e: stats::StatsError, what: &str) -> String {
    format!("{what}: {e}")
}

/// Everything `evaluate` computes, as the typed `results.json` document.
fn evaluate_doc(
    stage: &str,
    rows: &[ScoreRow],
    cfg: &EvaluateConfig,
    truth: Option<&Value>,
) -> Result<ResultsDoc, String> {
    let groups = group(rows)?;
    let boot = BootstrapConfig {
        resamples: cfg.bootstrap.resamples,
        seed: cfg.bootstrap.seed,
        level: cfg.level,
        stratified: cfg.bootstrap.stratified,
    };
    let dir = Direction::HigherIsPositive;
    let models: BTreeSet<&str> = groups.keys().map(|(m, _)| m.as_str()).collect();
    let cohorts: BTreeSet<&str> = groups.keys().map(|(_, c)| c.as_str()).collect();

    let mut cohort_info = BTreeMap::new();
    for c in &cohorts {
        let s = groups
            .iter()
            .find(|((_, gc), _)| gc == c)
            .map(|(_, s)| s)
            .expect("cohort has a model");
        let n_pos = s.labels.iter().filter(|&&l| l).count();
        let bayes_auc = truth
            .and_then(|t| t.get("bayes_auc"))
            .and_then(|b| b.get(*c))
            .and_then(Value::as_f64);
        cohort_info.insert(
            c.to_string(),
            CohortDoc {
                n: s.ids.len(),
                n_pos,
                n_neg: Some(s.ids.len() - n_pos),
                prevalence: Some(n_pos as f64 / s.ids.len().max(1) as f64),
                bayes_auc,
            },
        );
    }

    let mut results = Vec::new();
    for ((model, cohort), s) in &groups {
        let what = format!("model `{model}` on cohort `{cohort}`");
        let delong =
            stats::delong_ci(&s.ensemble, &s.labels, dir, cfg.level).map_err(|e| err(e, &what))?;
        let bootstrap = stats::bootstrap_ci(
            &s.ensemble,
            &s.labels,
            None,
            dir,
            &boot,
            cfg.bootstrap.method,
        )
        .map_err(|e| err(e, &what))?;
        let per_seed: Vec<SeedDoc> = s
            .seeds
            .iter()
            .map(|(seed, scores)| {
                let d = stats::delong_ci(scores, &s.labels, dir, cfg.level)
                    .map_err(|e| err(e, &what))?;
                Ok(SeedDoc {
                    seed: *seed,
                    auc: Some(d.auc),
                    delong: interval(d.lo, d.hi, d.se),
                })
            })
            .collect::<Result<_, String>>()?;
        let aucs: Vec<f64> = per_seed.iter().map(|v| v.auc.unwrap_or(f64::NAN)).collect();
        let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
        let sd = if aucs.len() > 1 {
            (aucs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (aucs.len() - 1) as f64).sqrt()
        } else {
            0.0
        };
        let roc = stats::roc_curve(&s.ensemble, &s.labels, dir).map_err(|e| err(e, &what))?;
        let roc = thin(&roc, cfg.roc_points)
            .iter()
            .map(|p| [finite(p.fpr), finite(p.tpr)])
            .collect();
        let grid: Vec<f64> = (0..=100).map(|k| k as f64 / 100.0).collect();
        let band = stats::roc_band(
            &s.ensemble,
            &s.labels,
            dir,
            cfg.bootstrap.resamples,
            cfg.bootstrap.seed,
            cfg.level,
            &grid,
        )
        .map_err(|e| err(e, &what))?;
        let roc_band = band
            .iter()
            .map(|p| [finite(p.fpr), finite(p.tpr_lo), finite(p.tpr_hi)])
            .collect();
        let probs: Vec<f64> = s.ensemble.iter().map(|&x| sigmoid(x)).collect();
        let calibration = stats::calibration(&probs, &s.labels)
            .ok()
            .map(|c| CalibrationDoc {
                intercept: finite(c.intercept),
                intercept_se: finite(c.intercept_se),
                slope: finite(c.slope),
                slope_se: finite(c.slope_se),
            });
        results.push(ModelDoc {
            model: model.clone(),
            cohort: cohort.clone(),
            n: Some(s.ids.len()),
            seeds: Some(s.seeds.len()),
            auc: finite(delong.auc),
            delong: interval(delong.lo, delong.hi, delong.se),
            bootstrap: BootstrapDoc {
                lo: finite(bootstrap.lo),
                hi: finite(bootstrap.hi),
                method: Some(bootstrap.method.name().to_string()),
                resamples: Some(bootstrap.resamples as u64),
                used: Some(bootstrap.used as u64),
            },
            per_seed,
            seed_spread: SpreadDoc {
                mean: finite(mean),
                sd: finite(sd),
                min: finite(aucs.iter().cloned().fold(f64::INFINITY, f64::min)),
                max: finite(aucs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
            },
            roc,
            roc_band,
            calibration,
        });
    }

    let compare = |c: &Comparison| -> Result<ComparisonDoc, String> {
        let get = |m: &str| {
            groups.get(&(m.to_string(), c.cohort.clone())).ok_or_else(|| {
                format!("comparison {} vs {} on `{}`: no scores of model `{m}` on that cohort (models: {}; cohorts: {})",
                    c.a, c.b, c.cohort, models.iter().copied().collect::<Vec<_>>().join(", "),
                    cohorts.iter().copied().collect::<Vec<_>>().join(", "))
            })
        };
        let (a, b) = (get(&c.a)?, get(&c.b)?);
        if a.ids != b.ids {
            return Err(format!(
                "comparison {} vs {} on `{}`: the models scored different patients",
                c.a, c.b, c.cohort
            ));
        }
        let what = format!("comparison {} vs {} on `{}`", c.a, c.b, c.cohort);
        let d = stats::delong_paired(&a.ensemble, &b.ensemble, &a.labels, dir, cfg.level)
            .map_err(|e| err(e, &what))?;
        let pb = stats::paired_bootstrap(&a.ensemble, &b.ensemble, &a.labels, None, dir, &boot)
            .map_err(|e| err(e, &what))?;
        Ok(ComparisonDoc {
            a: c.a.clone(),
            b: c.b.clone(),
            cohort: c.cohort.clone(),
            auc_a: finite(d.auc_a),
            auc_b: finite(d.auc_b),
            delta: finite(d.delta),
            delong: PairedDelongDoc {
                z: finite(d.z),
                p: finite(d.p),
                lo: finite(d.lo),
                hi: finite(d.hi),
                se: finite(d.se),
                p_holm: None,
            },
            bootstrap: PairedBootstrapDoc {
                lo: finite(pb.lo),
                hi: finite(pb.hi),
                p: finite(pb.p),
                resamples: Some(pb.resamples as u64),
                used: Some(pb.used as u64),
            },
        })
    };

    let primary = cfg.primary.as_ref().map(&compare).transpose()?;
    let mut secondary: Vec<ComparisonDoc> = cfg
        .secondary
        .iter()
        .map(&compare)
        .collect::<Result<_, _>>()?;
    if !secondary.is_empty() {
        let ps: Vec<f64> = secondary
            .iter()
            .map(|s| s.delong.p.unwrap_or(1.0))
            .collect();
        let adjusted = stats::holm(&ps).map_err(|e| err(e, "Holm adjustment"))?;
        for (s, p) in secondary.iter_mut().zip(adjusted) {
            // Written even when undefined (`null`): a secondary comparison always has the field.
            s.delong.p_holm = Some(p);
        }
    }
    let mut versus_reference = Vec::new();
    if let Some(r) = &cfg.reference {
        if !models.contains(r.as_str()) {
            return Err(format!(
                "reference model `{r}` has no scores (models: {})",
                models.iter().copied().collect::<Vec<_>>().join(", ")
            ));
        }
        for c in &cohorts {
            for m in models.iter().filter(|m| **m != r.as_str()) {
                if groups.contains_key(&(m.to_string(), c.to_string()))
                    && groups.contains_key(&(r.clone(), c.to_string()))
                {
                    versus_reference.push(compare(&Comparison {
                        a: m.to_string(),
                        b: r.clone(),
                        cohort: c.to_string(),
                    })?);
                }
            }
        }
    }

    // Internal → external: the same model on two cohorts of different patients (unpaired DeLong).
    let mut shifts = Vec::new();
    if cohorts.contains("internal") && cohorts.contains("external") {
        for m in &models {
            let (Some(i), Some(e)) = (
                groups.get(&(m.to_string(), "internal".to_string())),
                groups.get(&(m.to_string(), "external".to_string())),
            ) else {
                continue;
            };
            let u = stats::delong_unpaired(&i.ensemble, &i.labels, &e.ensemble, &e.labels, dir)
                .map_err(|e| err(e, &format!("model `{m}` internal vs external")))?;
            shifts.push(ShiftDoc {
                model: m.to_string(),
                auc_internal: finite(u.auc_a),
                auc_external: finite(u.auc_b),
                delta: finite(u.delta),
                se: finite(u.se),
                statistic: finite(u.statistic),
                df: finite(u.df),
                p: finite(u.p),
            });
        }
    }

    let text = |t: &str| Some(t.to_string());
    Ok(ResultsDoc {
        format: RESULTS_FORMAT,
        stage: stage.to_string(),
        methods: MethodsDoc {
            auc: text(
                "Mann–Whitney U / (n_pos·n_neg) with ties counted ½; higher score = positive class",
            ),
            ensemble: text(
                "per patient, the mean of the model's scores (logits) over its training seeds",
            ),
            delong: Some(format!(
                "DeLong variance by the fast mid-rank algorithm (Sun & Xu 2014); normal {:.0}% interval",
                cfg.level * 100.0
            )),
            bootstrap: BootstrapMethodDoc {
                method: Some(cfg.bootstrap.method.name().to_string()),
                resamples: Some(cfg.bootstrap.resamples as u64),
                seed: Some(cfg.bootstrap.seed),
                stratified: Some(cfg.bootstrap.stratified),
                level: finite(cfg.level),
            },
            paired: text(
                "paired DeLong z-test and paired bootstrap of ΔAUC (the same resampled patients for both models)",
            ),
            unpaired: text(
                "unpaired DeLong test between cohorts (Welch-type degrees of freedom, as pROC)",
            ),
            adjustment: text(
                "Holm across the declared secondary comparisons; the primary comparison is not adjusted",
            ),
            seed_spread: text(
                "mean, sample sd, min and max of the per-seed AUCs: training variance, apart from test sampling",
            ),
            calibration: text(
                "logistic recalibration of sigmoid(score): intercept with logit offset, slope",
            ),
            roc_band: Some(format!(
                "pointwise {:.0}% percentile band of the TPR at FPR 0, 0.01, …, 1 over the same stratified bootstrap resamples and seed",
                cfg.level * 100.0
            )),
            level: finite(cfg.level),
        },
        cohorts: cohort_info,
        models: results,
        primary,
        secondary,
        reference: cfg.reference.clone(),
        versus_reference,
        external_shift: shifts,
    })
}

/// A number as `results.json` holds it: `None` (written `null`) when undefined.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn interval(lo: f64, hi: f64, se: f64) -> IntervalDoc {
    IntervalDoc {
        lo: finite(lo),
        hi: finite(hi),
        se: finite(se),
    }
}

pub fn run(task: &TaskFile, log: &mut dyn Write) -> Result<Value, StageError> {
    let cfg: EvaluateConfig = from_task(&task.config)?;
    let mut rows = Vec::new();
    for (name, paths) in &task.inputs {
        if name != "truth" {
            for path in paths {
                read_scores(path, &mut rows).map_err(StageError::Input)?;
            }
        }
    }
    if rows.is_empty() {
        return Err(StageError::Dependency(
            "no scores to evaluate: declare the predictions as deps".to_string(),
        ));
    }
    let truth = match task.inputs.get("truth").and_then(|p| p.first()) {
        Some(p) => Some(
            std::fs::read(p)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .ok_or_else(|| {
                    StageError::Input(format!("cannot read `{}` as JSON", p.display()))
                })?,
        ),
        None => None,
    };
    let results =
        evaluate_doc(&task.stage, &rows, &cfg, truth.as_ref()).map_err(StageError::Input)?;
    let out = task.out_dir.join("results.json");
    // Through a `Value`, as every JSON document here: sorted keys, canonical bytes.
    let bytes = serde_json::to_value(&results)
        .and_then(|v| serde_json::to_vec_pretty(&v))
        .expect("results serialize");
    std::fs::write(&out, bytes).map_err(StageError::io("write", &out))?;
    let nan = |x: Option<f64>| x.unwrap_or(f64::NAN);
    let mut summary = serde_json::Map::new();
    for m in &results.models {
        let line = format!(
            "{:<24} {:<10} AUC {:.3} (DeLong {:.3}–{:.3}; bootstrap {:.3}–{:.3}; {} seed(s), sd {:.3})",
            m.model,
            m.cohort,
            nan(m.auc),
            nan(m.delong.lo),
            nan(m.delong.hi),
            nan(m.bootstrap.lo),
            nan(m.bootstrap.hi),
            m.seeds.map_or("?".to_string(), |n| n.to_string()),
            nan(m.seed_spread.sd),
        );
        let _ = writeln!(log, "{line}");
        summary.insert(format!("auc/{}/{}", m.model, m.cohort), json!(m.auc));
    }
    if let Some(p) = &results.primary {
        let _ = writeln!(
            log,
            "primary: {} − {} on {}: ΔAUC {:.3} (DeLong p = {:.4})",
            p.a,
            p.b,
            p.cohort,
            nan(p.delta),
            nan(p.delong.p)
        );
    }
    Ok(Value::Object(summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The results as the JSON written to `results.json`.
    fn evaluate(
        stage: &str,
        rows: &[ScoreRow],
        cfg: &EvaluateConfig,
        truth: Option<&Value>,
    ) -> Result<Value, String> {
        evaluate_doc(stage, rows, cfg, truth).map(|d| serde_json::to_value(d).unwrap())
    }

    fn rows() -> Vec<ScoreRow> {
        // Two models, two seeds, one cohort of 8 patients; model `good` ranks perfectly.
        let labels = [1, 1, 1, 0, 0, 0, 0, 1];
        let mut out = Vec::new();
        for seed in [1u64, 2] {
            for (i, &l) in labels.iter().enumerate() {
                let noise = (i as f64 * 0.37 + seed as f64).sin() * 0.1;
                for (model, score) in [("good", l as f64 + noise), ("weak", (i % 3) as f64 + noise)]
                {
                    out.push(ScoreRow {
                        model: model.into(),
                        seed,
                        cohort: "internal".into(),
                        id: format!("P{i}"),
                        label: l == 1,
                        score,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn results_carry_methods_and_comparisons() {
        let cfg = EvaluateConfig {
            reference: Some("weak".into()),
            primary: Some(Comparison {
                a: "good".into(),
                b: "weak".into(),
                cohort: "internal".into(),
            }),
            bootstrap: BootstrapSettings {
                resamples: 200,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = evaluate("e", &rows(), &cfg, None).unwrap();
        let good = r["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == "good")
            .unwrap();
        assert_eq!(good["auc"], 1.0);
        assert_eq!(good["seeds"], 2);
        assert_eq!(r["primary"]["a"], "good");
        assert!(r["primary"]["delta"].as_f64().unwrap() > 0.0);
        assert_eq!(r["methods"]["bootstrap"]["resamples"], 200);
        assert_eq!(r["versus_reference"].as_array().unwrap().len(), 1);
        // Same inputs, same seed: the same bytes.
        assert_eq!(r, evaluate("e", &rows(), &cfg, None).unwrap());
    }

    #[test]
    fn a_comparison_naming_a_missing_model_is_an_error() {
        let cfg = EvaluateConfig {
            primary: Some(Comparison {
                a: "jepa".into(),
                b: "weak".into(),
                cohort: "internal".into(),
            }),
            ..Default::default()
        };
        let e = evaluate("e", &rows(), &cfg, None).unwrap_err();
        assert!(e.contains("no scores of model `jepa`"), "{e}");
    }

    #[test]
    fn seeds_must_score_the_same_patients() {
        let mut r = rows();
        r.retain(|x| !(x.seed == 2 && x.id == "P0" && x.model == "good"));
        assert!(
            evaluate("e", &r, &EvaluateConfig::default(), None)
                .unwrap_err()
                .contains("other patients")
        );
    }
}
