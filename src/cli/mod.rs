//! The command line: argument parsing (clap derive; doc comments are the help text), error
//! printing and exit codes. Each subcommand lives in its own file and calls into the library;
//! no pipeline logic lives here.

mod bundle;
mod compare;
pub mod error;
mod gc;
mod inspect;
mod lock;
mod report;
mod reproduce;
mod run;
mod site;
pub mod stats_cmd;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::cli::error::Error;
use crate::exit;

/// Reproducible machine-learning studies: a YAML experiment becomes a DAG of cached stages.
///
/// Every stage's config, input data, code and seed are hashed into a key; outputs are stored
/// under that key, so nothing unchanged is ever recomputed, and `plan --explain` says why
/// anything will run.
///
/// Exit codes: 0 ok, 1 internal error, 2 experiment or usage error (nothing written),
/// 3 a stage failed, 4 a stage is being computed by another process (with --no-wait), 5 `reproduce` found a difference beyond the
/// lock's tolerance policy, 130 interrupted.
#[derive(Debug, Parser)]
#[command(
    name = "orchestrate",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Workspace root: the experiment's relative paths resolve against it [default: current directory]
    #[arg(short = 'C', long, global = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Store folder, shared by every experiment that names it [default: WORKSPACE/runs/.store]
    #[arg(long, global = true, value_name = "DIR", env = "ORCHESTRATE_STORE")]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every stale stage of an experiment and record the run under runs/EXPERIMENT/
    Run(run::RunArgs),
    /// Recompute an experiment in an isolated store and compare it with its lock, a run or a bundle
    ///
    /// The reviewer's command. Prints a table of every data file, key, artifact and metric as
    /// identical, within tolerance or different, names the root cause and its consequences, and
    /// writes verification.json and verification.html into the new run's folder. Exit 0 when
    /// everything is within the lock's policy, 5 when something differs, 3 when a stage failed.
    Reproduce(reproduce::ReproduceArgs),
    /// Pin the latest complete run of an experiment into EXPERIMENT.lock (running it first if needed)
    Lock(lock::LockArgs),
    /// Pack a run for reviewers into one .tar.gz: experiment, lock, results, report, provenance, data digests
    Bundle(bundle::BundleArgs),
    /// Show what `run` would do, and with --explain why each stage would run
    Plan(run::PlanArgs),
    /// Summarize the store and the latest run of each experiment
    Status(inspect::StatusArgs),
    /// List runs and their stages
    Ls(inspect::LsArgs),
    /// Show one stage: its record, key, outputs and log
    Show(inspect::ShowArgs),
    /// Delete stored objects that no kept run references
    Gc(gc::GcArgs),
    /// AUCs with DeLong and bootstrap intervals, and paired comparisons, for any predictions CSV
    Stats(stats_cmd::StatsArgs),
    /// Re-render a run's HTML report from its folder, recomputing nothing
    Report(report::ReportArgs),
    /// One HTML report across runs or a sweep's variants: every cell's AUC and its difference to a baseline
    Compare(compare::CompareArgs),
    /// Pack a run's models for external validation at another site (no patient data)
    Kit(site::KitArgs),
    /// At a site: evaluate a kit's models on the site's own cohort and write results to send back
    Validate(site::ValidateArgs),
    /// Back home: check a site's results against the run's models and code, and add the site to the run
    ImportSite(site::ImportArgs),
}

/// Where things live for one invocation.
pub struct Context {
    pub workspace: PathBuf,
    pub store: PathBuf,
    pub runs: PathBuf,
}

impl Context {
    fn new(cli: &Cli) -> Result<Context, Error> {
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        let workspace = match &cli.workspace {
            Some(w) => cwd.join(w),
            None => cwd,
        };
        let workspace = workspace.canonicalize().map_err(|_| {
            Error::Usage(format!(
                "workspace `{}` does not exist",
                workspace.display()
            ))
        })?;
        let runs = workspace.join("runs");
        let store = match &cli.store {
            Some(s) => workspace.join(s),
            None => runs.join(".store"),
        };
        Ok(Context {
            workspace,
            store,
            runs,
        })
    }

    /// The experiment path as the user wrote it, relative to the workspace when possible.
    pub fn experiment_path(&self, p: &Path) -> PathBuf {
        let cwd = std::env::current_dir().unwrap_or_default();
        let abs = cwd.join(p);
        abs.strip_prefix(&self.workspace)
            .map(Path::to_path_buf)
            .unwrap_or(abs)
    }
}

/// Entry point of the binary: parses arguments, runs the command, prints errors, returns the
/// exit code.
pub fn main() -> i32 {
    quiet_broken_pipes();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
        }
    };
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            e.exit_code()
        }
    }
}

/// `orchestrate status | head -1`: when the reader of stdout goes away, the output is no longer
/// wanted, so the process ends quietly with exit 0 instead of panicking the way `println!` does
/// on a closed pipe. Stdout carries a command's answer, printed last (a run's `--json` manifest
/// after the run is recorded). A closed stderr is not treated so: it carries a run's progress,
/// and exit 0 in the middle of a run would claim a success. Every other panic keeps the default
/// report.
fn quiet_broken_pipes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(exit::OK);
        }
        default(info);
    }));
}

fn dispatch(cli: &Cli) -> Result<i32, Error> {
    let ctx = Context::new(cli)?;
    match &cli.command {
        Command::Run(a) => run::run(&ctx, a),
        Command::Plan(a) => run::plan(&ctx, a),
        Command::Reproduce(a) => reproduce::reproduce(&ctx, a),
        Command::Lock(a) => lock::lock(&ctx, a),
        Command::Bundle(a) => bundle::bundle(&ctx, a),
        Command::Status(a) => inspect::status(&ctx, a),
        Command::Ls(a) => inspect::ls(&ctx, a),
        Command::Show(a) => inspect::show(&ctx, a),
        Command::Gc(a) => gc::gc(&ctx, a),
        Command::Report(a) => report::report(&ctx, a),
        Command::Compare(a) => compare::compare(&ctx, a),
        Command::Kit(a) => site::kit(&ctx, a),
        Command::Validate(a) => site::validate(&ctx, a),
        Command::ImportSite(a) => site::import_site(&ctx, a),
        Command::Stats(a) => {
            print!("{}", stats_cmd::execute(a)?);
            Ok(exit::OK)
        }
    }
}

fn print_error(e: &Error) {
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let label = if color {
        "\x1b[1;31merror\x1b[0m"
    } else {
        "error"
    };
    eprintln!("{label}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
}

/// Prints a value as pretty JSON on stdout.
pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<(), Error> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Internal(e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// Opens the store for writing (a run, gc): no other process waits for this one.
pub(crate) fn open_store(ctx: &Context) -> Result<crate::store::Store, Error> {
    Ok(crate::store::Store::open(&ctx.store)?)
}

/// Opens the store for reading (`status`, `show`, `plan`, …): writes nothing, waits for
/// nobody, works on a read-only store.
pub(crate) fn read_store(ctx: &Context) -> Result<crate::store::Store, Error> {
    Ok(crate::store::Store::open_read(&ctx.store)?)
}
