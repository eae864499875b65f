//! `orchestrate run` and `orchestrate plan`, and [`run_experiment`], the one way a run is made:
//! `run`, `lock` and `reproduce` compose it and get the run's record back.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::Args;
use serde_json::json;

use super::{Context, open_store, print_json, read_store};
use crate::cli::error::Error;
use crate::dsl::{self, ExecutorKind, Experiment};
use crate::exec::{self, RunOptions, manifest, progress::Progress, resources};
use crate::exit;
use crate::fingerprint::git_provenance;
use crate::plan::{Force, Plan, PlanOptions, StageState};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The experiment file, e.g. experiments/quickstart.yaml
    pub experiment: PathBuf,
    /// CPU slots to fill at once [default: number of cores]
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<u32>,
    /// GPUs to schedule on, e.g. `0,1` [default: CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`]
    #[arg(long, value_name = "LIST")]
    pub gpus: Option<String>,
    /// Where stages run: `local` or `slurm` [default: the experiment's `executor:`]; with
    /// `slurm`, stages marked `executor: local` still run here
    #[arg(long, value_name = "KIND", value_parser = parse_executor)]
    pub executor: Option<ExecutorKind>,
    /// Tensor backend of training stages: `cpu` or `cuda` [default: the experiment's `backend:`]
    #[arg(long, value_name = "KIND", value_parser = parse_backend)]
    pub backend: Option<crate::kinds::Backend>,
    /// At most this many Slurm jobs submitted at once
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_JOBS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_jobs: u32,
    /// Keep running independent stages after a stage fails
    #[arg(short, long)]
    pub keep_going: bool,
    /// Re-run this stage even if fresh (a declared name covers every variant); repeatable
    #[arg(long, value_name = "STAGE")]
    pub force: Vec<String>,
    /// Re-run every stage
    #[arg(long)]
    pub force_all: bool,
    #[command(flatten)]
    pub check: CheckArgs,
    /// Refuse to run from a git tree with uncommitted changes
    #[arg(long)]
    pub require_clean: bool,
    /// Fail with exit code 4 instead of waiting when a stage to run is being computed by another
    /// orchestrate process (on this store, from any workspace)
    #[arg(long)]
    pub no_wait: bool,
    /// Print every reason a stage runs
    #[arg(short, long)]
    pub verbose: bool,
    /// Print only failures and the summary
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the run manifest as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct CheckArgs {
    /// Re-hash every input file, ignoring the stat cache
    #[arg(long)]
    pub verify_data: bool,
    /// Fully re-hash stored outputs before reusing them (default: size, inode and times)
    #[arg(long)]
    pub paranoid: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The experiment file
    pub experiment: PathBuf,
    /// Say why each stage will run
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub check: CheckArgs,
    /// Print the plan as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

fn parse_backend(s: &str) -> Result<crate::kinds::Backend, String> {
    match s {
        "cpu" => Ok(crate::kinds::Backend::Cpu),
        "cuda" => Ok(crate::kinds::Backend::Cuda),
        _ => Err("expected `cpu` or `cuda`".to_string()),
    }
}

fn parse_executor(s: &str) -> Result<ExecutorKind, String> {
    match s {
        "local" => Ok(ExecutorKind::Local),
        "slurm" => Ok(ExecutorKind::Slurm),
        _ => Err("expected `local` or `slurm`".to_string()),
    }
}

pub(super) fn load(ctx: &Context, file: &Path) -> Result<Experiment, Error> {
    Ok(dsl::load(
        &ctx.experiment_path(file),
        &ctx.workspace,
        &crate::stages::Builtin,
    )?)
}

/// `--max-jobs` when not given.
const DEFAULT_MAX_JOBS: u32 = 100;

impl RunArgs {
    /// `orchestrate run EXPERIMENT` with every option at its default (those of `--help`).
    pub fn defaults(experiment: PathBuf) -> RunArgs {
        RunArgs {
            experiment,
            jobs: None,
            gpus: None,
            executor: None,
            backend: None,
            max_jobs: DEFAULT_MAX_JOBS,
            keep_going: false,
            force: Vec::new(),
            force_all: false,
            check: CheckArgs::default(),
            require_clean: false,
            no_wait: false,
            verbose: false,
            quiet: false,
            json: false,
        }
    }
}

/// What one run left: its folder under `runs/` and its manifest. Failed stages and an
/// interruption are recorded in it (`manifest.status`), not returned as errors.
#[derive(Debug)]
pub struct RunRecord {
    pub dir: PathBuf,
    pub manifest: manifest::RunManifest,
    pub interrupted: bool,
}

pub fn run(ctx: &Context, args: &RunArgs) -> Result<i32, Error> {
    let exp = load(ctx, &args.experiment)?;
    let record = run_experiment(ctx, exp, args)?;
    if args.json {
        print_json(&record.manifest)?;
    }
    finish(ctx, &record)
}

/// The closing line of a run, and its outcome as the CLI reports it: `Ok(0)`, or the error
/// for failed stages or an interruption.
pub fn finish(ctx: &Context, record: &RunRecord) -> Result<i32, Error> {
    let m = &record.manifest;
    let counts = m.counts();
    let summary: Vec<String> = ["ran", "fresh", "failed", "skipped", "not_run"]
        .iter()
        .filter_map(|k| {
            counts
                .get(*k)
                .map(|n| format!("{n} {}", k.replace('_', " ")))
        })
        .collect();
    let dir = &record.dir;
    let rel = dir
        .strip_prefix(&ctx.workspace)
        .unwrap_or(dir)
        .display()
        .to_string();
    if record.interrupted {
        eprintln!(
            "{:>12} `{}`: {} (record in {rel})",
            "Interrupted",
            m.experiment,
            summary.join(", ")
        );
        return Err(Error::Interrupted);
    }
    let secs = m.duration_ms as f64 / 1000.0;
    if m.status == manifest::RunStatus::Ok {
        eprintln!(
            "{:>12} `{}` in {secs:.2}s: {} (record in {rel})",
            "Finished",
            m.experiment,
            summary.join(", ")
        );
        Ok(exit::OK)
    } else {
        eprintln!(
            "{:>12} `{}` in {secs:.2}s: {} (logs in {rel}/logs)",
            "Failed",
            m.experiment,
            summary.join(", ")
        );
        Err(Error::StagesFailed {
            failed: counts.get("failed").copied().unwrap_or(0),
            total: m.stages.len(),
        })
    }
}

/// Runs every stale stage of `exp` on `ctx`'s store with `args`'s options (its `experiment`
/// and `json` are not read) and records the run under `ctx.runs`. Errors are what prevents a
/// run (usage, the store, the environment); what the stages did is in the record.
pub fn run_experiment(
    ctx: &Context,
    mut exp: Experiment,
    args: &RunArgs,
) -> Result<RunRecord, Error> {
    let started = SystemTime::now();
    if let Some(b) = args.backend {
        exp.backend = b;
    }
    // A CUDA request fails here, before any work, rather than as a panic inside a worker.
    crate::model::backend::check_backend(exp.backend).map_err(|e| Error::Usage(e.to_string()))?;
    let git = git_provenance(&ctx.workspace);
    if args.require_clean
        && let Some(g) = git.as_ref().filter(|g| g.dirty)
    {
        return Err(Error::Usage(format!(
            "the git tree is dirty ({}) and --require-clean was given: commit or stash first",
            g.changed
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let routes = exec::routed::routes(&exp, args.executor);
    let remote: Vec<bool> = routes.iter().map(|r| *r == ExecutorKind::Slurm).collect();
    let uses_slurm = remote.contains(&true);
    if uses_slurm {
        let missing = exec::slurm::missing_tools();
        if !missing.is_empty() {
            let why = if args.executor.is_some() {
                "--executor slurm was given"
            } else {
                "the experiment runs stages on Slurm"
            };
            let list: Vec<String> = missing.iter().map(|t| format!("`{t}`")).collect();
            return Err(Error::Usage(format!(
                "{why} but {} not on PATH: run from a machine that can submit Slurm jobs, or pass --executor local",
                if list.len() == 1 {
                    format!("{} is", list[0])
                } else {
                    format!("{} are", list.join(", "))
                }
            )));
        }
    }
    // Slurm jobs get their GPUs from Slurm: only local stages need local devices.
    let gpus = resources::gpu_inventory(args.gpus.as_deref());
    if let Some(s) = exp
        .stages
        .iter()
        .zip(&remote)
        .find(|(s, remote)| !**remote && s.resources.gpus as usize > gpus.len())
        .map(|(s, _)| s)
    {
        return Err(Error::Usage(format!(
            "stage `{}` needs {} GPU(s) but the inventory has {} (set --gpus or CUDA_VISIBLE_DEVICES)",
            s.name,
            s.resources.gpus,
            gpus.len()
        )));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32))
        .max(1);
    let force = if args.force_all {
        Force::All
    } else if args.force.is_empty() {
        Force::None
    } else {
        for f in &args.force {
            if !exp.stages.iter().any(|s| &s.name == f || &s.base == f) {
                return Err(Error::Usage(format!(
                    "--force `{f}`: the experiment has no such stage"
                )));
            }
        }
        Force::Stages(args.force.clone())
    };
    // Time limits for the local executor (Slurm enforces its own through `--time`).
    let limits = exp
        .stages
        .iter()
        .map(|s| {
            let t = s.resources.time.as_ref()?;
            let d = dsl::parse_time_limit(t).expect("validated when the experiment was loaded");
            Some((d, t.clone()))
        })
        .collect::<Vec<_>>();
    let mut executor: Box<dyn exec::executor::Executor> = if uses_slurm {
        Box::new(exec::routed::RoutedExecutor::new(
            exec::local::LocalExecutor::new(limits)?,
            exec::slurm::SlurmExecutor::new(&exp)?,
            routes,
        ))
    } else {
        Box::new(exec::local::LocalExecutor::new(limits)?)
    };
    let store = open_store(ctx)?;
    let opts = RunOptions {
        jobs,
        gpus,
        keep_going: args.keep_going,
        plan: PlanOptions {
            verify_data: args.check.verify_data,
            paranoid: args.check.paranoid,
            force,
        },
        verbose: args.verbose,
        remote,
        max_remote: args.max_jobs,
    };
    let plan = Plan::build(&exp, &store, &opts.plan)?;
    if args.no_wait {
        refuse_claimed(&exp, &store, &plan)?;
    }
    let progress = Progress::new(exp.stages.len(), args.quiet);
    exec::install_interrupt_handler();
    let outcome = exec::run(&exp, &store, plan, &opts, &progress, executor.as_mut());
    progress.finish();
    let outcome = outcome?;
    let run_id = manifest::new_run_id();
    let m = manifest::build(&exp, &run_id, started, &outcome, manifest::provenance(git));
    let results = evaluation_results(&exp, &store, &outcome);
    let dir =
        manifest::write(&ctx.runs, &m, &outcome, &results).map_err(|e| Error::io(&ctx.runs, e))?;
    // The run is a root of the store, seen by `gc` from every workspace that shares it.
    store.add_root(&crate::store::Root {
        format: crate::store::ROOT_FORMAT,
        run_dir: dir.clone(),
        workspace: ctx.workspace.clone(),
        experiment: m.experiment.clone(),
        run_id: m.run_id.clone(),
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        objects: m.stages.iter().filter_map(|s| s.object.clone()).collect(),
    })?;
    // The run report: results with the run's provenance; a failure to render fails nothing.
    if let Err(e) = crate::report::run::write_run_report(&exp, &outcome, &dir, &ctx.store) {
        eprintln!("{:>12} no report.html: {e}", "Warning");
    }
    Ok(RunRecord {
        dir,
        manifest: m,
        interrupted: outcome.interrupted,
    })
}

/// `--no-wait`: exit 4 at once when a stage this run would compute is being computed by another
/// process (instead of waiting for it and reusing its result).
fn refuse_claimed(exp: &Experiment, store: &crate::store::Store, plan: &Plan) -> Result<(), Error> {
    for (stage, state) in exp.stages.iter().zip(&plan.states) {
        if let StageState::Stale { key: Some(key), .. } = state
            && let crate::store::Claim::Busy(holder) = store.try_claim(&key.hash, &stage.name)?
        {
            return Err(crate::store::StoreError::Claimed {
                stage: stage.name.clone(),
                holder: holder.to_string(),
            }
            .into());
        }
    }
    Ok(())
}

pub fn plan(ctx: &Context, args: &PlanArgs) -> Result<i32, Error> {
    let exp = load(ctx, &args.experiment)?;
    let store = read_store(ctx)?;
    let opts = PlanOptions {
        verify_data: args.check.verify_data,
        paranoid: args.check.paranoid,
        force: Force::None,
    };
    let plan = Plan::build(&exp, &store, &opts)?;
    let to_run = plan.states.iter().filter(|s| !s.is_fresh()).count();
    // Stages whose key waits for an upstream stage that runs: early cut-off finds them fresh
    // if that upstream's output comes out unchanged.
    let after_upstream = plan
        .states
        .iter()
        .filter(|s| matches!(s, StageState::Stale { key: None, .. }))
        .count();
    // Stages that share a key (sweep variants that read the same inputs) are computed once.
    let keys: std::collections::BTreeSet<&str> = plan
        .states
        .iter()
        .filter_map(|s| match s {
            StageState::Stale { key: Some(k), .. } => Some(k.hash.as_str()),
            _ => None,
        })
        .collect();
    let repeated = to_run - after_upstream - keys.len();
    if args.json {
        let stages: Vec<_> = exp
            .stages
            .iter()
            .zip(&plan.states)
            .map(|(s, st)| match st {
                StageState::Fresh { key, .. } => {
                    json!({"stage": s.name, "state": "fresh", "key": key.hash, "reasons": []})
                }
                StageState::Stale { key, reasons } => json!({
                    "stage": s.name,
                    "state": "run",
                    "key": key.as_ref().map(|k| k.hash.clone()),
                    "reasons": reasons,
                    "explanation": reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            })
            .collect();
        print_json(
            &json!({"experiment": exp.name, "to_run": to_run, "fresh": exp.stages.len() - to_run,
                    "after_upstream": after_upstream, "same_key_as_another": repeated, "stages": stages}),
        )?;
        return Ok(exit::OK);
    }
    let mut notes = Vec::new();
    if after_upstream > 0 {
        notes.push(format!(
            "{after_upstream} of them only if an upstream output changes (early cut-off reuses the rest)"
        ));
    }
    if repeated > 0 {
        notes.push(format!(
            "{repeated} share a key with another and are computed once"
        ));
    }
    println!(
        "{} stage(s) in `{}`: {} fresh, {} to run{}",
        exp.stages.len(),
        exp.name,
        exp.stages.len() - to_run,
        to_run,
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        }
    );
    for (s, st) in exp.stages.iter().zip(&plan.states) {
        match st {
            StageState::Fresh { .. } => {
                if args.explain {
                    println!("{:>12} {}", "Fresh", s.name);
                }
            }
            StageState::Stale { reasons, .. } => {
                if args.explain {
                    let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                    println!("{:>12} {}: {}", "Run", s.name, why.join("; "));
                } else {
                    println!("{:>12} {}", "Run", s.name);
                }
            }
        }
    }
    Ok(exit::OK)
}

/// The `results.json` of every evaluate stage that ran or was fresh, by stage name.
fn evaluation_results(
    exp: &Experiment,
    store: &crate::store::Store,
    outcome: &exec::RunOutcome,
) -> Vec<(String, PathBuf)> {
    exp.stages
        .iter()
        .zip(&outcome.stages)
        .filter(|(s, _)| s.kind == crate::kinds::StageKind::Evaluate)
        .filter_map(|(s, o)| match o {
            exec::StageOutcome::Ran(r) | exec::StageOutcome::Fresh(r) => {
                let out = r.outs.get("results")?;
                Some((s.name.clone(), store.object_path(&r.object).join(&out.path)))
            }
            _ => None,
        })
        .collect()
}
