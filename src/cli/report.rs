//! `orchestrate report RUN`: re-render a recorded run's HTML report from its folder (manifest,
//! results, report context) and the store's objects (training curves). Nothing is recomputed and
//! the store's index is not opened, so it works while another run holds the store.

use std::path::PathBuf;

use clap::Args;

use super::{Context, print_json};
use crate::error::{Error, exit};
use crate::report::{Templates, run};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run: a run folder, EXPERIMENT/RUN-ID, or an experiment name (its latest run)
    pub run: String,
    /// A folder of templates replacing the embedded ones of the same name (report.html,
    /// partials/style.html, …)
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Where to write the HTML [default: RUN/report.html]
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the report's view model (every number as shown) as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn report(ctx: &Context, args: &ReportArgs) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let dir = run::resolve_run(&ctx.runs, &cwd, &args.run)?;
    if !dir.join("results.json").is_file() {
        return Err(Error::Usage(format!(
            "run `{}` has no results.json: only runs with an evaluate stage have a report",
            args.run
        )));
    }
    let templates = match &args.templates {
        Some(d) if !d.is_dir() => {
            return Err(Error::Usage(format!(
                "--templates `{}` is not a folder",
                d.display()
            )));
        }
        Some(d) => Templates::from_dir(cwd.join(d)),
        None => Templates::embedded(),
    };
    let (view, html) = run::render_run(&dir, &ctx.store, &templates)?;
    let out = match &args.out {
        Some(o) => cwd.join(o),
        None => dir.join("report.html"),
    };
    std::fs::write(&out, html).map_err(|e| Error::io(&out, e))?;
    if args.json {
        print_json(&view)?;
    }
    for w in &view.warnings {
        eprintln!("{:>12} {w}", "Warning");
    }
    eprintln!(
        "{:>12} {}",
        "Report",
        out.strip_prefix(&ctx.workspace).unwrap_or(&out).display()
    );
    Ok(exit::OK)
}
