//! `orchestrate bundle RUN -o FILE.tar.gz`: everything a reviewer needs to check a run offline
//! (the experiment, the run as a lock, results, report, provenance and the data's digests, never
//! the data), in the layout described in [`crate::verify::bundle`]. `reproduce` accepts the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use super::Context;
use super::lock::{describe_run, read_manifest};
use crate::cli::error::Error;
use crate::dsl;
use crate::exec::manifest::RunStatus;
use crate::exit;
use crate::verify::{self, bundle};

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The run: a run folder, EXPERIMENT/RUN-ID, or an experiment name (its latest run)
    pub run: String,
    /// The archive to write, e.g. paper-bundle.tar.gz
    #[arg(short, long, value_name = "FILE.tar.gz")]
    pub out: PathBuf,
}

pub fn bundle(ctx: &Context, args: &BundleArgs) -> Result<i32, Error> {
    if !bundle::is_bundle(&args.out) {
        return Err(Error::Usage(format!(
            "-o `{}`: a bundle's name ends in `.tar.gz` (or `.tgz`), which is how `reproduce` recognizes it",
            args.out.display()
        )));
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let dir = crate::report::run::resolve_run(&ctx.runs, &cwd, &args.run)?;
    let m = read_manifest(&dir)?;
    if m.status != RunStatus::Ok {
        return Err(Error::Usage(format!(
            "run `{}/{}` finished with status `{}`: only a complete run can be bundled",
            m.experiment, m.run_id, m.status
        )));
    }
    let exp_file = ctx.workspace.join(&m.file);
    let experiment = std::fs::read(&exp_file).map_err(|e| Error::io(&exp_file, e))?;
    let exp = dsl::load(
        &ctx.experiment_path(&exp_file),
        &ctx.workspace,
        &crate::stages::Builtin,
    )?;
    // A committed lock's tolerance policy is the study's: keep it.
    let tolerance = verify::read_lock(
        &ctx.workspace
            .join(verify::lock_path_for(&ctx.experiment_path(&exp_file))),
    )
    .ok()
    .map(|l| l.tolerance);
    let mut lock = describe_run(ctx, &dir, &exp, tolerance)?;
    // The run's own end, not the clock: the same run bundles to the same bytes in any second.
    lock.created_at = m.finished_at.clone();
    let mut files = BTreeMap::new();
    files.insert(bundle::EXPERIMENT.to_string(), experiment);
    files.insert(bundle::LOCK.to_string(), verify::lock_bytes(&lock));
    files.insert("provenance.json".to_string(), pretty(&m.provenance));
    files.insert("data-digests.json".to_string(), pretty(&lock.data));
    for name in [
        bundle::MANIFEST,
        "results.json",
        "report.html",
        "verification.json",
        "verification.html",
    ] {
        let p = dir.join(name);
        match std::fs::read(&p) {
            Ok(b) => {
                files.insert(name.to_string(), b);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    let out = cwd.join(&args.out);
    bundle::write_bundle(&out, &m.experiment, &m.run_id, &m.file, files)?;
    eprintln!(
        "{:>12} `{}/{}` into `{}` (check it with `orchestrate reproduce {}`)",
        "Bundled",
        m.experiment,
        m.run_id,
        args.out.display(),
        args.out.display()
    );
    Ok(exit::OK)
}

/// Pretty JSON with a final newline.
fn pretty(v: &impl serde::Serialize) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("plain data serializes");
    b.push(b'\n');
    b
}
