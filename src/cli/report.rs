//! `orchestrate report RUN`: re-render a recorded run's HTML report from its folder (manifest,
//! results, report context) and the store's objects (training curves). Nothing is recomputed and
//! the store's index is not opened, so it works while another run holds the store.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Context, print_json};
use crate::cli::error::Error;
use crate::exit;
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
    let templates = templates(&cwd, args.templates.as_deref())?;
    let (view, html) = run::render_run(&dir, &ctx.store, &templates)?;
    let out = match &args.out {
        Some(o) => cwd.join(o),
        None => dir.join("report.html"),
    };
    write_rendered(ctx, &out, &html, &view, &view.warnings, args.json, "Report")?;
    Ok(exit::OK)
}

/// The templates to render with: an override folder (checked to be one), or the embedded ones.
pub(crate) fn templates(cwd: &Path, dir: Option<&Path>) -> Result<Templates, Error> {
    match dir {
        Some(d) if !cwd.join(d).is_dir() => Err(Error::Usage(format!(
            "--templates `{}` is not a folder",
            d.display()
        ))),
        Some(d) => Ok(Templates::from_dir(cwd.join(d))),
        None => Ok(Templates::embedded()),
    }
}

/// Writes a rendered page, prints its view model with `--json`, its warnings, and where it went.
pub(crate) fn write_rendered(
    ctx: &Context,
    out: &Path,
    html: &str,
    view: &impl serde::Serialize,
    warnings: &[String],
    json: bool,
    verb: &str,
) -> Result<(), Error> {
    std::fs::write(out, html).map_err(|e| Error::io(out, e))?;
    if json {
        print_json(view)?;
    }
    for w in warnings {
        eprintln!("{:>12} {w}", "Warning");
    }
    eprintln!(
        "{verb:>12} {}",
        out.strip_prefix(&ctx.workspace).unwrap_or(out).display()
    );
    Ok(())
}
