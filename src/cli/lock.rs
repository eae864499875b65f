//! `orchestrate lock EXPERIMENT`: pin the latest complete run of an experiment into
//! `experiments/<name>.lock` (running it first when it has no up-to-date run), and the helper
//! that describes any recorded run as a lock (shared with `reproduce` and `bundle`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

use super::{Context, print_json, read_store};
use crate::cli::error::Error;
use crate::dsl::{self, Experiment};
use crate::exec::manifest::{self, RunManifest, RunStatus};
use crate::exit;
use crate::kinds::StageKind;
use crate::plan::{Plan, PlanOptions, StageState};
use crate::verify::{self, Lock, RunParts, TolerancePolicy};

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The experiment file, e.g. experiments/paper.yaml
    pub experiment: PathBuf,
    /// Lock this run instead of the latest one: a run folder or EXPERIMENT/RUN-ID
    #[arg(long, value_name = "RUN")]
    pub from_run: Option<String>,
    /// Where to write the lock [default: the experiment file with the extension `.lock`]
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Fail instead of running the experiment when it has no complete, up-to-date run
    #[arg(long)]
    pub no_run: bool,
    /// Fail with exit code 4 instead of waiting when a stage to run is being computed by another
    /// orchestrate process (on this store, from any workspace)
    #[arg(long)]
    pub no_wait: bool,
    /// Print the lock as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn lock(ctx: &Context, args: &LockArgs) -> Result<i32, Error> {
    let file = ctx.experiment_path(&args.experiment);
    let exp = dsl::load(&file, &ctx.workspace, &crate::stages::Builtin)?;
    let out = match &args.out {
        Some(o) => std::env::current_dir()
            .map_err(|e| Error::io(".", e))?
            .join(o),
        None => ctx.workspace.join(verify::lock_path_for(&file)),
    };
    let run_dir = match &args.from_run {
        Some(spec) => {
            let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
            crate::report::run::resolve_run(&ctx.runs, &cwd, spec)?
        }
        None => match stale_reason(ctx, &exp)? {
            None => latest_run_dir(ctx, &exp.name).expect("checked by stale_reason"),
            Some(why) if args.no_run => {
                return Err(Error::Usage(format!(
                    "`{}` has no run to lock: {why}; run it first, or drop --no-run",
                    exp.name
                )));
            }
            Some(why) => {
                eprintln!("{:>12} `{}` first: {why}", "Run", exp.name);
                let mut run_args = super::run::RunArgs::defaults(file.clone());
                run_args.no_wait = args.no_wait;
                let record = super::run::run_experiment(ctx, exp.clone(), &run_args)?;
                super::run::finish(ctx, &record)?;
                record.dir
            }
        },
    };
    let manifest = read_manifest(&run_dir)?;
    if manifest.status != RunStatus::Ok {
        return Err(Error::Usage(format!(
            "run `{}/{}` finished with status `{}`: only a complete run can be locked",
            manifest.experiment, manifest.run_id, manifest.status
        )));
    }
    if manifest.experiment != exp.name {
        return Err(Error::Usage(format!(
            "run `{}` is of experiment `{}`, not `{}`",
            manifest.run_id, manifest.experiment, exp.name
        )));
    }
    // An edited tolerance policy survives re-locking.
    let tolerance = verify::read_lock(&out).ok().map(|l| l.tolerance);
    let lock = describe_run(ctx, &run_dir, &exp, tolerance)?;
    let written = verify::write_lock(&out, &lock)?;
    if args.json {
        print_json(&lock)?;
    }
    let rel = out.strip_prefix(&ctx.workspace).unwrap_or(&out).display();
    eprintln!(
        "{:>12} `{}` run {} ({} stage(s)) {} `{rel}`",
        "Locked",
        exp.name,
        manifest.run_id,
        lock.stages.len(),
        if written { "into" } else { "unchanged in" }
    );
    Ok(exit::OK)
}

/// Why the latest run cannot be locked as it is (`None`: it can): missing, incomplete, or
/// made with other keys than the experiment and the binary give now.
fn stale_reason(ctx: &Context, exp: &Experiment) -> Result<Option<String>, Error> {
    let Some(dir) = latest_run_dir(ctx, &exp.name) else {
        return Ok(Some("it has never been run".to_string()));
    };
    let m = read_manifest(&dir)?;
    if m.status != RunStatus::Ok {
        return Ok(Some(format!(
            "its latest run `{}` finished with status `{}`",
            m.run_id, m.status
        )));
    }
    let store = read_store(ctx)?;
    let plan = Plan::build(exp, &store, &PlanOptions::default())?;
    for (i, (s, state)) in exp.stages.iter().zip(&plan.states).enumerate() {
        let why = match state {
            StageState::Fresh { key, .. } => match m.stages.get(i).filter(|e| e.name == s.name) {
                Some(e) if e.key.as_deref() == Some(key.hash.as_str()) => continue,
                _ => "the latest run was made with another key".to_string(),
            },
            StageState::Stale { reasons, .. } => reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        };
        return Ok(Some(format!(
            "its latest run `{}` is out of date (stage `{}`: {why})",
            m.run_id, s.name
        )));
    }
    Ok(None)
}

/// The folder of the newest run of `experiment` (through its `latest` link).
pub(super) fn latest_run_dir(ctx: &Context, experiment: &str) -> Option<PathBuf> {
    let latest = ctx.runs.join(experiment).join("latest");
    let target = std::fs::read_link(&latest).ok()?;
    let dir = ctx.runs.join(experiment).join(target);
    dir.join("manifest.json").is_file().then_some(dir)
}

pub(super) fn read_manifest(run_dir: &Path) -> Result<RunManifest, Error> {
    let p = run_dir.join("manifest.json");
    let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
    let m: RunManifest = manifest::parse(&bytes)
        .map_err(|e| Error::Usage(format!("`{}` is not a run manifest: {e}", p.display())))?;
    // A run folder may come from elsewhere (a copied `runs/`): its names are names, and its
    // experiment file a path inside the workspace, before anything opens it.
    let bad = |what: &str, value: &str| {
        Error::Usage(format!(
            "`{}` is not a run manifest: `{what}` is `{}`, not {}",
            p.display(),
            crate::csv::shown(value),
            if what == "file" {
                "a workspace-relative path"
            } else {
                "a name"
            }
        ))
    };
    if !crate::dsl::valid_experiment_name(&m.experiment) {
        return Err(bad("experiment", &m.experiment));
    }
    if !crate::verify::bundle::valid_run_id(&m.run_id) {
        return Err(bad("run_id", &m.run_id));
    }
    if !crate::verify::bundle::valid_relative_file(&m.file) {
        return Err(bad("file", &m.file));
    }
    Ok(m)
}

/// Describes the run in `run_dir` as a lock, with the records of `ctx`'s store (metrics and key
/// JSON) and the run's `results.json`. `exp` gives the stage graph.
pub(super) fn describe_run(
    ctx: &Context,
    run_dir: &Path,
    exp: &Experiment,
    tolerance: Option<TolerancePolicy>,
) -> Result<Lock, Error> {
    let manifest = read_manifest(run_dir)?;
    let store = read_store(ctx)?;
    let mut records = Vec::with_capacity(manifest.stages.len());
    for s in &manifest.stages {
        records.push(match &s.key {
            Some(k) => store.record(k)?,
            None => None,
        });
    }
    let run_results: Option<Value> = std::fs::read(run_dir.join("results.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let evaluate_count = manifest
        .stages
        .iter()
        .filter(|s| s.kind == StageKind::Evaluate.name())
        .count();
    let mut results = BTreeMap::new();
    for (s, r) in manifest.stages.iter().zip(&records) {
        if s.kind != StageKind::Evaluate.name() {
            continue;
        }
        // The stored object first; the run folder's copy when the object was collected.
        let stored = r.as_ref().and_then(|r| {
            let out = r.outs.get("results")?;
            let bytes = std::fs::read(store.object_path(&r.object).join(&out.path)).ok()?;
            serde_json::from_slice::<Value>(&bytes).ok()
        });
        let from_run = run_results
            .as_ref()
            .and_then(|v| match v.get("evaluations") {
                Some(all) => all.get(&s.name).cloned(),
                None if evaluate_count == 1 => Some(v.clone()),
                None => None,
            });
        if let Some(v) = stored.or(from_run) {
            results.insert(s.name.clone(), v);
        }
    }
    let upstream = exp
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ups = crate::plan::upstream_of(exp, i)
                .into_iter()
                .map(|u| exp.stages[u].name.clone())
                .collect();
            (s.name.clone(), ups)
        })
        .collect();
    let experiment_digest =
        crate::fingerprint::hash_file(&ctx.workspace.join(&manifest.file)).unwrap_or_default();
    let parts = RunParts {
        manifest: &manifest,
        records,
        results,
        upstream,
        experiment_digest,
        backend: exp.backend.name().to_string(),
    };
    Ok(Lock::from_run(&parts, tolerance))
}
