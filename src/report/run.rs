//! The run-level report: `runs/<experiment>/<run-id>/report.html`, written by `orchestrate run`
//! whenever the run has `results.json`, and re-rendered by `orchestrate report RUN` from the run
//! folder alone (plus the store's objects for the curves).
//!
//! What only the run knows (the experiment's description, `paper:` block and report config, which
//! stored objects hold training curves, the stages' configs, backends and devices, the code
//! identity of each stage kind) is saved beside the manifest as `report-context.json`, so a
//! re-render never needs the experiment file, which may have changed since.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ReportError;
use super::context::{
    CONTEXT_FILE, CONTEXT_FORMAT, ComputeUse, CurveSource, RunContext, RunInfo, StageContext,
};
use super::input::{CurveInput, EvaluationInput, ReportConfig, split_results};
use super::render::Templates;
use super::view::ReportInputs;
use crate::dsl::{Dep, Experiment};
use crate::exec::{RunOutcome, StageOutcome};
use crate::kinds::StageKind;

fn record(o: &StageOutcome) -> Option<&crate::store::StageRecord> {
    match o {
        StageOutcome::Ran(r) | StageOutcome::Fresh(r) => Some(r),
        _ => None,
    }
}

/// The context of a finished run (see the module docs).
pub fn context(exp: &Experiment, outcome: &RunOutcome) -> RunContext {
    let report_stage = exp.stages.iter().find(|s| s.kind == StageKind::Report);
    let report: ReportConfig = report_stage
        .and_then(|s| serde_json::from_value(s.config.clone()).ok())
        .unwrap_or_default();
    let curve_of = |i: usize, out: &str, name: String| -> Option<CurveSource> {
        let s = &exp.stages[i];
        let r = record(outcome.stages.get(i)?)?;
        Some(CurveSource {
            name,
            stage: s.name.clone(),
            object: r.object.clone(),
            path: r.outs.get(out)?.path.clone(),
            collapsed: r.metrics.get("collapsed").and_then(Value::as_bool),
            collapse_std: s.config.get("collapse_std").and_then(Value::as_f64),
        })
    };
    let mut curves = Vec::new();
    match report_stage {
        Some(rs) => {
            for (dep, d) in &rs.deps {
                if dep == "results" {
                    continue;
                }
                if let Dep::Stage { stages, out, .. } = d {
                    for &i in stages {
                        curves.extend(curve_of(i, out, exp.stages[i].name.clone()));
                    }
                }
            }
        }
        None => {
            for (i, s) in exp.stages.iter().enumerate() {
                if matches!(s.kind, StageKind::Pretrain | StageKind::Train)
                    && s.outs.contains_key("curve")
                {
                    curves.extend(curve_of(i, "curve", s.name.clone()));
                }
            }
        }
    }
    let stages = exp
        .stages
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                StageContext {
                    base: s.base.clone(),
                    kind: s.kind.name().to_string(),
                    params: serde_json::to_value(&s.params).unwrap_or(Value::Null),
                    config: s.config.clone(),
                    seed: s.seed,
                    coords: s.coords.clone(),
                },
            )
        })
        .collect();
    let code_identity = StageKind::ALL
        .iter()
        .filter(|k| k.is_builtin())
        .map(|k| {
            (
                k.name().to_string(),
                crate::fingerprint::builtin_code_identity(*k).to_string(),
            )
        })
        .collect();
    let compute = exp
        .stages
        .iter()
        .zip(&outcome.stages)
        .filter_map(|(s, o)| {
            let r = record(o)?;
            let backend = r.metrics.get("backend").and_then(Value::as_str);
            (backend.is_some() || !r.devices.is_empty()).then(|| ComputeUse {
                stage: s.name.clone(),
                backend: backend.map(str::to_string),
                device: r
                    .metrics
                    .get("device")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                devices: r.devices.clone(),
                threads: r.threads,
                host: r.host.clone(),
            })
        })
        .collect();
    RunContext {
        format: CONTEXT_FORMAT,
        description: exp.description.clone(),
        seed: exp.seed,
        backend: serde_json::to_value(exp.backend)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        paper: exp.paper.clone(),
        report,
        curves,
        stages,
        code_identity,
        compute,
    }
}

/// Writes `report-context.json` and `report.html` into a finished run's folder, when the run has
/// `results.json`. Returns the report's path.
pub fn write_run_report(
    exp: &Experiment,
    outcome: &RunOutcome,
    run_dir: &Path,
    store_root: &Path,
) -> Result<Option<PathBuf>, ReportError> {
    if !run_dir.join("results.json").is_file() {
        return Ok(None);
    }
    let ctx = context(exp, outcome);
    let bytes =
        serde_json::to_vec_pretty(&ctx).map_err(|e| ReportError::Internal(e.to_string()))?;
    fs::write(run_dir.join(CONTEXT_FILE), bytes).map_err(|e| ReportError::io(run_dir, e))?;
    let (_, html) = render_run(run_dir, store_root, &Templates::embedded())?;
    let out = run_dir.join("report.html");
    fs::write(&out, html).map_err(|e| ReportError::io(&out, e))?;
    Ok(Some(out))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let bytes = fs::read(path).map_err(|e| ReportError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| ReportError::Input {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads a run folder: its manifest and (if present) its report context.
pub fn read_run(run_dir: &Path) -> Result<RunInfo, ReportError> {
    let path = run_dir.join("manifest.json");
    let bytes = fs::read(&path).map_err(|e| ReportError::io(&path, e))?;
    let manifest = crate::exec::manifest::parse(&bytes)
        .map_err(|message| ReportError::Input { path, message })?;
    let ctx_path = run_dir.join(CONTEXT_FILE);
    let context = if ctx_path.is_file() {
        Some(read_json(&ctx_path)?)
    } else {
        None
    };
    Ok(RunInfo {
        dir: run_dir.to_path_buf(),
        manifest,
        context,
    })
}

/// The evaluations of a run's `results.json`, with each variant's coordinates, ordered by their
/// coordinates' values (numbers numerically), whatever order the file keeps them in.
pub fn evaluations(run: &RunInfo) -> Result<Vec<EvaluationInput>, ReportError> {
    let mut list = evaluations_as_stored(run)?;
    list.sort_by(|a, b| crate::dsl::coords_order(&a.coords, &b.coords));
    Ok(list)
}

fn evaluations_as_stored(run: &RunInfo) -> Result<Vec<EvaluationInput>, ReportError> {
    let path = run.dir.join("results.json");
    let v: Value = read_json(&path)?;
    let single_stage = run
        .manifest
        .stages
        .iter()
        .find(|s| s.kind == "evaluate" && s.status.has_outputs())
        .map(|s| s.name.clone());
    split_results(&v)
        .into_iter()
        .map(|(stage, doc)| {
            let results = crate::results::parse(doc).map_err(|message| ReportError::Input {
                path: path.clone(),
                message,
            })?;
            let stage = stage.or_else(|| single_stage.clone());
            let coords = stage
                .as_deref()
                .map(|s| coords_of(run, s))
                .unwrap_or_default();
            Ok(EvaluationInput {
                stage,
                coords,
                results,
            })
        })
        .collect()
}

/// A stage's sweep coordinates, in declared order when the context knows it. An evaluation that
/// gathers its replicates has no `seed` coordinate; one that fans out per seed keeps it, so that
/// its cells stay distinct.
fn coords_of(run: &RunInfo, stage: &str) -> Vec<(String, Value)> {
    let from_ctx = run
        .context
        .as_ref()
        .and_then(|c| c.stages.get(stage))
        .map(|s| s.coords.clone());
    from_ctx.unwrap_or_else(|| {
        run.manifest
            .stages
            .iter()
            .find(|s| s.name == stage)
            .map(|s| s.coords.clone().into_iter().collect())
            .unwrap_or_default()
    })
}

/// Renders a run's report from its folder and the store; returns the view and the HTML.
pub fn render_run(
    run_dir: &Path,
    store_root: &Path,
    templates: &Templates,
) -> Result<(super::view::ReportView, String), ReportError> {
    let run = read_run(run_dir)?;
    let evaluations = evaluations(&run)?;
    let mut curves = Vec::new();
    let mut missing = Vec::new();
    let ctx = run.context.clone();
    for c in ctx.iter().flat_map(|c| &c.curves) {
        let path = store_root
            .join("objects")
            .join(c.object.get(..2).unwrap_or("00"))
            .join(&c.object)
            .join(&c.path);
        match fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            Some(curve) => curves.push(CurveInput {
                name: c.name.clone(),
                curve,
                collapsed: c.collapsed,
                collapse_std: c.collapse_std,
            }),
            None => missing.push(c.stage.clone()),
        }
    }
    let inputs = ReportInputs {
        experiment: run.manifest.experiment.clone(),
        description: ctx.as_ref().and_then(|c| c.description.clone()),
        config: ctx.as_ref().map(|c| c.report.clone()).unwrap_or_default(),
        evaluations,
        curves,
        paper: ctx.as_ref().map_or(Value::Null, |c| c.paper.clone()),
        run: Some(run),
    };
    let mut v = super::build::build(&inputs);
    let palette = super::view::Palette::new(
        inputs
            .evaluations
            .iter()
            .flat_map(|e| e.results.models.iter().map(|m| m.model.as_str())),
    );
    let (sites, problems) = super::sites::read_sites(
        run_dir,
        inputs.evaluations.first().map(|e| &e.results),
        &palette,
    );
    v.sites = sites;
    v.warnings.extend(problems);
    if !missing.is_empty() {
        v.warnings.push(format!(
            "training curves of {} are not in the store (collected by `gc`?): not shown",
            missing.join(", ")
        ));
    }
    if inputs.run.as_ref().is_some_and(|r| r.context.is_none()) {
        v.warnings.push(format!(
            "this run has no {CONTEXT_FILE} (recorded by an older orchestrate): no description, published numbers or training curves"
        ));
    }
    let html = super::render::report(&v, templates)?;
    Ok((v, html))
}

/// Finds a run folder from `RUN`: a path to a run folder, `EXPERIMENT/RUN_ID`, or an experiment
/// name (its latest run).
pub fn resolve_run(runs_dir: &Path, cwd: &Path, spec: &str) -> Result<PathBuf, ReportError> {
    let as_path = cwd.join(spec);
    if as_path.join("manifest.json").is_file() {
        return Ok(as_path);
    }
    if as_path.is_dir() && as_path.join("latest").join("manifest.json").is_file() {
        return Ok(as_path.join("latest"));
    }
    let under = runs_dir.join(spec);
    if under.join("manifest.json").is_file() {
        return Ok(under);
    }
    let latest = runs_dir.join(spec).join("latest");
    if latest.join("manifest.json").is_file() {
        return Ok(latest);
    }
    Err(ReportError::NoRun(spec.to_string()))
}
