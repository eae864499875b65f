//! `orchestrate compare RUN|EXPERIMENT …`: one HTML page across runs, or across the variants of
//! one sweep run: every cell's AUC with intervals, its difference to a baseline cell, the table
//! pre-sorted several ways, and the declared settings that differ.

use std::path::PathBuf;

use clap::Args;

use super::Context;
use crate::cli::error::Error;
use crate::exit;
use crate::report::compare::{self, Baseline};
use crate::report::{render, run};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Runs to compare: run folders, EXPERIMENT/RUN-ID, or experiment names (their latest run);
    /// one sweep run compares its variants
    #[arg(required = true, value_name = "RUN|EXPERIMENT")]
    pub runs: Vec<String>,
    /// The model differences are taken against [default: each evaluation's reference model]
    #[arg(long, value_name = "MODEL")]
    pub baseline: Option<String>,
    /// Fix the baseline cell to one run or variant (a label or part of one, e.g. `rho=0` or a
    /// run id) instead of the same run or variant as each cell
    #[arg(long, value_name = "LABEL")]
    pub baseline_in: Option<String>,
    /// Pair the variants of two sweep runs: each variant's baseline cell is the variant with the
    /// same coordinates in this run (a run id, or part of EXPERIMENT/RUN-ID)
    #[arg(long, value_name = "RUN", conflicts_with = "baseline_in")]
    pub baseline_run: Option<String>,
    /// A folder of templates replacing the embedded ones of the same name
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Where to write the HTML [default: runs/compare.html, or RUN/compare.html for one run]
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the comparison's view model as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn compare(ctx: &Context, args: &CompareArgs) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let mut runs = Vec::new();
    for spec in &args.runs {
        let dir = run::resolve_run(&ctx.runs, &cwd, spec)?;
        let info = run::read_run(&dir)?;
        let evals = if dir.join("results.json").is_file() {
            let mut evals = run::evaluations(&info)?;
            // Imported external sites join a single evaluation as cohorts of their own.
            if let [one] = evals.as_mut_slice() {
                for w in crate::report::sites::merge_into(&dir, one) {
                    eprintln!("{:>12} {w}", "Warning");
                }
            }
            evals
        } else {
            eprintln!("{:>12} `{spec}` has no results.json: skipped", "Warning");
            Vec::new()
        };
        runs.push((info, evals));
    }
    let view = compare::build(
        &runs,
        &Baseline {
            model: args.baseline.clone(),
            unit: args.baseline_in.clone(),
            run: args.baseline_run.clone(),
        },
    )?;
    let templates = super::report::templates(&cwd, args.templates.as_deref())?;
    let html = render::compare(&view, &templates)?;
    let out = match (&args.out, &runs[..]) {
        (Some(o), _) => cwd.join(o),
        (None, [(one, _)]) => one.dir.join("compare.html"),
        (None, _) => ctx.runs.join("compare.html"),
    };
    super::report::write_rendered(
        ctx,
        &out,
        &html,
        &view,
        &view.warnings,
        args.json,
        "Compare",
    )?;
    Ok(exit::OK)
}
