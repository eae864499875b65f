//! `orchestrate status`, `ls` and `show`: read-only views of runs and the store.

use clap::Args;
use serde_json::json;

use super::{Context, print_json, read_store};
use crate::cli::error::Error;
use crate::exec::manifest::{self, RunManifest};
use crate::exit;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this experiment (its name, as in `experiment:`)
    pub experiment: Option<String>,
    /// How many recent runs per experiment to list
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub last: usize,
    /// Print as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A stage name as listed by `ls` (e.g. `train[lr=0.1]`), or a key prefix
    pub stage: String,
    /// The experiment, when several have a stage of that name
    #[arg(short, long)]
    pub experiment: Option<String>,
    /// A run id [default: the latest run]
    #[arg(long)]
    pub run: Option<String>,
    /// Print as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

fn latest_per_experiment(runs: &[RunManifest]) -> Vec<&RunManifest> {
    let mut out: Vec<&RunManifest> = Vec::new();
    for r in runs {
        match out.iter_mut().find(|o| o.experiment == r.experiment) {
            Some(o) if o.run_id < r.run_id => *o = r,
            Some(_) => {}
            None => out.push(r),
        }
    }
    out
}

fn counts_text(m: &RunManifest) -> String {
    m.counts()
        .iter()
        .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The runs under `runs/`, warning on stderr about manifests this binary cannot read.
fn runs_warned(ctx: &Context) -> Vec<RunManifest> {
    let list = manifest::list_runs(&ctx.runs);
    for w in list.warnings() {
        eprintln!("{:>12} {w}", "Warning");
    }
    list.runs
}

pub fn status(ctx: &Context, args: &StatusArgs) -> Result<i32, Error> {
    let runs = runs_warned(ctx);
    let latest = latest_per_experiment(&runs);
    // Read without waiting for anybody: runs in progress are listed, not waited for.
    let store = read_store(ctx)?;
    let objects = store.object_digests()?;
    let bytes: u64 = objects
        .iter()
        .map(|d| dir_size(&store.object_path(d)))
        .sum();
    let records = store.records()?.len();
    let live: Vec<_> = store
        .live_sessions()?
        .into_iter()
        .filter_map(|s| s.owner)
        .collect();
    let isolated = super::reproduce::isolated_stores(ctx);
    let isolated_bytes: u64 = isolated.iter().map(|d| dir_size(d)).sum();
    if args.json {
        let exps: Vec<_> = latest
            .iter()
            .map(|m| json!({"experiment": m.experiment, "run_id": m.run_id, "status": m.status, "finished_at": m.finished_at, "counts": m.counts()}))
            .collect();
        print_json(&json!({"store": ctx.store,
            "figures": {"objects": objects.len(), "bytes": bytes, "records": records},
            "processes": live, "experiments": exps,
            "reproduce_stores": {"count": isolated.len(), "bytes": isolated_bytes}}))?;
        return Ok(exit::OK);
    }
    println!(
        "store `{}`: {} objects ({}), {} records",
        ctx.store.display(),
        objects.len(),
        human_bytes(bytes),
        records
    );
    for o in &live {
        println!(
            "{:>12} by {}@{} (pid {}) since {}: orchestrate {}",
            "In use", o.user, o.host, o.pid, o.since, o.command
        );
    }
    if !isolated.is_empty() {
        println!(
            "{} isolated reproduce store(s) under `runs/{}` ({}); `orchestrate gc` collects them",
            isolated.len(),
            super::reproduce::ISOLATED_STORES,
            human_bytes(isolated_bytes)
        );
    }
    if latest.is_empty() {
        println!("no runs yet: try `orchestrate run experiments/quickstart.yaml`");
    }
    for m in latest {
        println!(
            "{:<24} {:<12} {}  {}  ({})",
            m.experiment,
            m.status,
            m.run_id,
            m.finished_at,
            counts_text(m)
        );
    }
    Ok(exit::OK)
}

pub fn ls(ctx: &Context, args: &LsArgs) -> Result<i32, Error> {
    let mut runs = runs_warned(ctx);
    if let Some(e) = &args.experiment {
        runs.retain(|r| &r.experiment == e);
        if runs.is_empty() {
            return Err(Error::Usage(format!(
                "no runs of experiment `{e}` under `{}`",
                ctx.runs.display()
            )));
        }
    }
    // Keep the last N runs of each experiment (manifests come oldest first per experiment).
    let mut kept: Vec<&RunManifest> = Vec::new();
    for r in runs.iter().rev() {
        if kept.iter().filter(|k| k.experiment == r.experiment).count() < args.last {
            kept.push(r);
        }
    }
    kept.reverse();
    if args.json {
        print_json(&kept)?;
        return Ok(exit::OK);
    }
    for m in kept {
        println!(
            "{}/{}  {}  {:.2}s  ({})",
            m.experiment,
            m.run_id,
            m.status,
            m.duration_ms as f64 / 1000.0,
            counts_text(m)
        );
        for s in &m.stages {
            let key = s.key.as_deref().map_or("-", |k| &k[..12]);
            let dur = s
                .duration_ms
                .map_or(String::new(), |d| format!("{:.2}s", d as f64 / 1000.0));
            println!("    {:<8} {:<40} {key}  {dur}", s.status, s.name);
        }
    }
    Ok(exit::OK)
}

pub fn show(ctx: &Context, args: &ShowArgs) -> Result<i32, Error> {
    let runs = runs_warned(ctx);
    let candidates: Vec<&RunManifest> = match (&args.run, &args.experiment) {
        (Some(id), _) => runs.iter().filter(|r| &r.run_id == id).collect(),
        (None, Some(e)) => latest_per_experiment(&runs)
            .into_iter()
            .filter(|r| &r.experiment == e)
            .collect(),
        (None, None) => latest_per_experiment(&runs),
    };
    let is_key = args.stage.len() >= 8 && args.stage.chars().all(|c| c.is_ascii_hexdigit());
    let found: Vec<(&RunManifest, &manifest::StageEntry)> = candidates
        .iter()
        .flat_map(|m| m.stages.iter().map(move |s| (*m, s)))
        .filter(|(_, s)| {
            s.name == args.stage
                || (is_key && s.key.as_deref().is_some_and(|k| k.starts_with(&args.stage)))
        })
        .collect();
    let (run, entry) = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Usage(format!(
                "no stage `{}` in the latest runs (see `orchestrate ls`)",
                args.stage
            )));
        }
        many => {
            let exps: Vec<&str> = many.iter().map(|(m, _)| m.experiment.as_str()).collect();
            return Err(Error::Usage(format!(
                "stage `{}` is in several experiments ({}): pick one with --experiment",
                args.stage,
                exps.join(", ")
            )));
        }
    };
    let record = match &entry.key {
        Some(k) => read_store(ctx)?.record(k)?,
        None => None,
    };
    let log_file = ctx
        .runs
        .join(&run.experiment)
        .join(&run.run_id)
        .join("logs")
        .join(format!("{}.log", manifest::sanitize(&entry.name)));
    let object_dir = entry
        .object
        .as_ref()
        .map(|o| ctx.store.join("objects").join(&o[..2]).join(o));
    if args.json {
        print_json(&json!({
            "experiment": run.experiment,
            "run_id": run.run_id,
            "entry": entry,
            "record": record,
            "object_dir": object_dir,
            "log_file": log_file.is_file().then_some(&log_file),
        }))?;
        return Ok(exit::OK);
    }
    println!("stage      {}", entry.name);
    println!("experiment {} (run {})", run.experiment, run.run_id);
    println!("kind       {}", entry.kind);
    println!("status     {}", entry.status);
    if let Some(k) = &entry.key {
        println!("key        {k}");
    }
    if let Some(e) = &entry.error {
        println!("error      {e}");
    }
    if !entry.reasons.is_empty() {
        println!("ran        because {}", entry.reasons.join("; "));
    }
    if let Some(r) = &record {
        println!(
            "started    {} on {} ({} thread(s), {:.2}s, attempt {})",
            r.started_at,
            r.host,
            r.threads,
            r.duration_ms as f64 / 1000.0,
            r.attempts
        );
        if !r.devices.is_empty() {
            println!("devices    {}", r.devices.join(","));
        }
        if let Some(c) = &r.command {
            println!("command    {c}");
        }
        println!("\noutputs:");
        for (name, o) in &r.outs {
            let path = object_dir.as_ref().map(|d| d.join(&o.path));
            println!(
                "  {name:<12} {}  {}",
                &o.digest[..16],
                path.map(|p| p.display().to_string()).unwrap_or_default()
            );
        }
        println!(
            "\nkey:\n{}",
            serde_json::to_string_pretty(&r.key_json).unwrap_or_default()
        );
        println!(
            "\n--- stdout ---\n{}\n--- stderr ---\n{}",
            r.stdout.trim_end(),
            r.stderr.trim_end()
        );
    } else if let Ok(log) = std::fs::read_to_string(&log_file) {
        println!("\n{}", log.trim_end());
    }
    Ok(exit::OK)
}

pub(crate) fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
