//! The run-level report: `runs/<experiment>/<run-id>/report.html`, written by `orchestrate run`
//! whenever the run has `results.json`, and re-rendered by `orchestrate report RUN` from the run
//! folder alone (plus the store's objects for the curves).
//!
//! What only the run knows (the experiment's description, `paper:` block and report config, which
//! stored objects hold training curves, the stages' configs, backends and devices, the code
//! identity of each stage kind) is saved beside the manifest as `report-context.json`, so a
//! re-render never needs the experiment file, which may have changed since.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ReportError;
use super::format as f;
use super::input::{CurveInput, EvaluationInput, ReportConfig, ResultsDoc, split_results};
use super::render::Templates;
use super::view::{self, KeyValue, ProvenanceView, ReportInputs, ReproduceView, StageRow};
use crate::dsl::{Dep, Experiment, StageKind};
use crate::exec::manifest::RunManifest;
use crate::exec::{RunOutcome, StageOutcome};

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
    let manifest: RunManifest = read_json(&run_dir.join("manifest.json"))?;
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

/// The evaluations of a run's `results.json`, with each variant's coordinates.
pub fn evaluations(run: &RunInfo) -> Result<Vec<EvaluationInput>, ReportError> {
    let path = run.dir.join("results.json");
    let v: Value = read_json(&path)?;
    let single_stage = run
        .manifest
        .stages
        .iter()
        .find(|s| s.kind == "evaluate" && (s.status == "ran" || s.status == "fresh"))
        .map(|s| s.name.clone());
    split_results(&v)
        .into_iter()
        .map(|(stage, doc)| {
            let results: ResultsDoc =
                serde_json::from_value(doc).map_err(|e| ReportError::Input {
                    path: path.clone(),
                    message: e.to_string(),
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
) -> Result<(view::ReportView, String), ReportError> {
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
    let mut v = view::build(&inputs);
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

fn kv(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: v.into(),
    }
}

/// The provenance section: git, binary, code identity, compute, seeds, machine, every stage.
pub fn provenance_view(run: &RunInfo, first: Option<&EvaluationInput>) -> ProvenanceView {
    let m = &run.manifest;
    let p = &m.provenance;
    let mut git = Vec::new();
    let mut dirty = false;
    match &p.git {
        Some(g) => {
            git.push(kv(
                "commit",
                g.commit
                    .clone()
                    .unwrap_or_else(|| "none (no commit yet)".into()),
            ));
            git.push(kv(
                "branch",
                g.branch.clone().unwrap_or_else(|| "detached".into()),
            ));
            dirty = g.dirty;
            git.push(kv(
                "working tree",
                if g.dirty {
                    format!(
                        "dirty: {} changed path(s): {}{}",
                        g.changed.len(),
                        g.changed
                            .iter()
                            .take(10)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                        if g.changed.len() > 10 { ", …" } else { "" }
                    )
                } else {
                    "clean".to_string()
                },
            ));
            if let Some(d) = &g.diff_digest {
                git.push(kv(
                    "diff digest (SHA-256 of the patch against HEAD)",
                    d.clone(),
                ));
            }
        }
        None => git.push(kv("repository", "not a git repository")),
    }
    let binary = vec![
        kv("orchestrate version", p.orchestrate_version.clone()),
        kv(
            "binary identity (digest of its sources)",
            p.binary_identity.clone(),
        ),
    ];
    let ctx = run.context.as_ref();
    let kinds_used: std::collections::BTreeSet<&str> =
        m.stages.iter().map(|s| s.kind.as_str()).collect();
    let code_identity = ctx
        .map(|c| {
            c.code_identity
                .iter()
                .filter(|(k, _)| kinds_used.contains(k.as_str()))
                .map(|(k, v)| kv(k, v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut compute = Vec::new();
    if let Some(c) = ctx {
        compute.push(kv("backend (experiment)", c.backend.clone()));
        for u in &c.compute {
            compute.push(kv(
                &u.stage,
                format!(
                    "{}{}{}; {} thread(s)",
                    u.backend.clone().unwrap_or_else(|| "—".into()),
                    u.device
                        .as_ref()
                        .map_or(String::new(), |d| format!(" on {d}")),
                    if u.devices.is_empty() {
                        String::new()
                    } else {
                        format!(" (CUDA_VISIBLE_DEVICES={})", u.devices.join(","))
                    },
                    u.threads
                ),
            ));
        }
    }
    let mut seeds = Vec::new();
    if let Some(c) = ctx {
        seeds.push(kv("experiment seed", c.seed.to_string()));
    }
    let stage_seeds: std::collections::BTreeSet<u64> = m.stages.iter().map(|s| s.seed).collect();
    seeds.push(kv(
        "stage seeds",
        stage_seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    ));
    if let Some(e) = first {
        let b = &e.results.methods.bootstrap;
        seeds.push(kv(
            "bootstrap seed",
            b.seed.map_or("—".to_string(), |s| s.to_string()),
        ));
    }
    let hosts: std::collections::BTreeSet<&str> = ctx
        .map(|c| c.compute.iter().map(|u| u.host.as_str()).collect())
        .unwrap_or_default();
    let mut machine = vec![
        kv("dispatcher host", p.host.clone()),
        kv("operating system", format!("{} {}", p.os, p.arch)),
        kv("CPUs", p.cpus.to_string()),
        kv("command line", p.argv.join(" ")),
    ];
    let others: Vec<&str> = hosts.into_iter().filter(|h| *h != p.host).collect();
    if !others.is_empty() {
        machine.push(kv("worker hosts", others.join(", ")));
    }
    let stages = m
        .stages
        .iter()
        .map(|s| StageRow {
            name: s.name.clone(),
            kind: s.kind.clone(),
            status: s.status.clone(),
            seed: s.seed,
            key: s.key.clone().unwrap_or_else(|| "—".into()),
            object: s.object.clone().unwrap_or_else(|| "—".into()),
            outs: s.outs.iter().map(|(k, v)| kv(k, v.clone())).collect(),
            duration: s.duration_ms.map_or("—".to_string(), f::duration_ms),
            attempts: s.attempts.map_or("—".to_string(), |a| a.to_string()),
            reasons: if s.status == "fresh" {
                "reused from the store".to_string()
            } else if let Some(e) = &s.error {
                e.clone()
            } else {
                s.reasons.join("; ")
            },
        })
        .collect();
    ProvenanceView {
        run_id: m.run_id.clone(),
        experiment_file: m.file.clone(),
        status: m.status.clone(),
        started_at: m.started_at.clone(),
        finished_at: m.finished_at.clone(),
        duration: f::duration_ms(m.duration_ms),
        git,
        dirty,
        binary,
        code_identity,
        compute,
        seeds,
        machine,
        stages,
    }
}

/// "How to reproduce this": the exact commands.
pub fn reproduce_view(run: &RunInfo) -> ReproduceView {
    let m = &run.manifest;
    let mut steps = Vec::new();
    let mut caveats = Vec::new();
    if let Some(g) = &m.provenance.git {
        if let Some(c) = &g.commit {
            steps.push(kv(
                "check out the code of this run",
                format!("git checkout {c}"),
            ));
        }
        if g.dirty {
            caveats.push(format!(
                "the run was made from a working tree with uncommitted changes{}: the commit alone may not reproduce it",
                g.diff_digest
                    .as_ref()
                    .map_or(String::new(), |d| format!(" (diff digest {})", &d[..d.len().min(16)]))
            ));
        }
    }
    steps.push(kv(
        "recompute everything from scratch in an isolated store and compare",
        format!("orchestrate reproduce {}", m.file),
    ));
    steps.push(kv(
        "or re-run only what is stale in the shared store",
        format!("orchestrate run {}", m.file),
    ));
    steps.push(kv(
        "re-render this report (nothing is recomputed)",
        format!("orchestrate report {}/{}", m.experiment, m.run_id),
    ));
    if m.status != "ok" {
        caveats.push(format!(
            "this run finished with status `{}`: some stages did not complete",
            m.status
        ));
    }
    let verification = run
        .dir
        .join("verification.html")
        .is_file()
        .then(|| "verification.html".to_string());
    ReproduceView {
        steps,
        caveats,
        verification,
    }
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
