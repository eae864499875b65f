//! `orchestrate reproduce EXPERIMENT | RUN | BUNDLE.tar.gz`: the reviewer's command.
//!
//! Recomputes everything in a new, empty store under `runs/.reproduce/` (the user's cache is
//! never trusted; `--reuse-cache` opts in), records the recomputation like any run, then compares
//! it with the reference: the experiment's lock file, a recorded run, or a bundle's lock. The
//! provenance guards (dirty tree, changed code identity) are printed before anything runs.

use std::path::{Path, PathBuf};

use clap::Args;

use super::lock::{describe_run, latest_run_dir, read_manifest};
use super::run::{RunArgs, run};
use super::{Context, print_json};
use crate::dsl::{self, StageKind};
use crate::error::{Error, exit};
use crate::exec::manifest;
use crate::fingerprint::{BINARY_IDENTITY, builtin_code_identity, git_provenance, hash_bytes};
use crate::verify::{self, Lock, bundle};

#[derive(Debug, Args)]
#[command(
    mut_arg("experiment", |a| a.value_name("TARGET").help(
        "What to reproduce: an experiment file (compared with its lock), a run (a run folder or \
         EXPERIMENT/RUN-ID, compared with its manifest) or a bundle made by `orchestrate bundle`"
    )),
    mut_arg("json", |a| a.help("Print the verification as JSON on stdout instead of the table")),
    mut_arg("require_clean", |a| a.help(
        "Refuse a git tree with uncommitted changes, or a binary whose code of a stage kind \
         differs from the reference's"
    ))
)]
pub struct ReproduceArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Reuse the workspace's store instead of recomputing everything in a fresh one
    #[arg(long)]
    pub reuse_cache: bool,
    /// Compare with this lock file [default: the experiment file with the extension `.lock`]
    #[arg(long, value_name = "FILE")]
    pub lock: Option<PathBuf>,
}

/// What the recomputation is compared with.
struct Reference {
    lock: Lock,
    /// For messages: ``lock `experiments/x.lock` `` or ``run `x/RUN-ID` ``.
    label: String,
}

pub fn reproduce(ctx: &Context, args: &ReproduceArgs) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let target = &args.run.experiment;
    let (file, reference) = resolve_target(ctx, &cwd, target, args)?;
    // Validate first: a rejected experiment must not create the isolated store.
    let mut exp = dsl::load(&ctx.experiment_path(&file), &ctx.workspace)?;
    if let Some(b) = args.run.backend {
        exp.backend = b;
    }
    let reference = match reference {
        Some(r) => Some(r),
        None => default_reference(ctx, &file, &exp, args)?,
    };
    if let Some(r) = &reference {
        guards(ctx, &file, r, args.run.require_clean)?;
    } else {
        eprintln!(
            "{:>12} no lock `{}` and no recorded run of `{}`: recomputing without a comparison \
             (create a lock with `orchestrate lock {}`)",
            "Warning",
            verify::lock_path_for(&ctx.experiment_path(&file)).display(),
            exp.name,
            ctx.experiment_path(&file).display()
        );
    }
    let run_ctx = if args.reuse_cache {
        Context {
            workspace: ctx.workspace.clone(),
            store: ctx.store.clone(),
            runs: ctx.runs.clone(),
        }
    } else {
        let store = ctx.runs.join(".reproduce").join(manifest::new_run_id());
        eprintln!(
            "{:>12} everything from scratch in an isolated store `{}`",
            "Reproduce",
            store
                .strip_prefix(&ctx.workspace)
                .unwrap_or(&store)
                .display()
        );
        Context {
            workspace: ctx.workspace.clone(),
            store,
            runs: ctx.runs.clone(),
        }
    };
    let mut run_args = args.run.clone();
    run_args.experiment = file.clone();
    // `--json` prints the verification, not the run manifest.
    run_args.json = args.run.json && reference.is_none();
    let failed = match run(&run_ctx, &run_args) {
        Ok(_) => None,
        Err(e @ Error::StagesFailed { .. }) => Some(e),
        Err(e) => return Err(e),
    };
    let Some(reference) = reference else {
        return failed.map_or(Ok(exit::OK), Err);
    };
    let run_dir = latest_run_dir(&run_ctx, &exp.name).ok_or_else(|| {
        Error::Internal(format!(
            "the recomputation of `{}` left no record",
            exp.name
        ))
    })?;
    let actual = describe_run(&run_ctx, &run_dir, &exp, None, args.run.no_wait)?;
    let v = verify::compare(&reference.lock, &actual, &reference.label);
    let json_path = run_dir.join("verification.json");
    crate::exec::task::write_json_atomic(&json_path, &v).map_err(|e| Error::io(&json_path, e))?;
    let html_path = run_dir.join("verification.html");
    std::fs::write(&html_path, verify::render_html(&v)).map_err(|e| Error::io(&html_path, e))?;
    // The reproduction's report links the table: render it again now that the table exists.
    if run_dir.join("report.html").is_file() {
        let rendered = crate::report::run::render_run(
            &run_dir,
            &run_ctx.store,
            &crate::report::Templates::embedded(),
        );
        match rendered {
            Ok((_, html)) => {
                let p = run_dir.join("report.html");
                std::fs::write(&p, html).map_err(|e| Error::io(&p, e))?;
            }
            Err(e) => eprintln!(
                "{:>12} the report does not link the verification: {e}",
                "Warning"
            ),
        }
    }
    if args.run.json {
        print_json(&v)?;
    } else {
        print!("{}", verify::render_table(&v));
    }
    eprintln!(
        "{:>12} {}",
        "Verification",
        html_path
            .strip_prefix(&ctx.workspace)
            .unwrap_or(&html_path)
            .display()
    );
    if let Some(e) = failed {
        return Err(e);
    }
    if !v.ok {
        return Err(Error::NotReproduced {
            different: v.counts.get("different").copied().unwrap_or(0),
            reference: reference.label,
            root_cause: v.root_cause,
        });
    }
    Ok(exit::OK)
}

/// The experiment file to recompute and, for runs and bundles, the reference.
fn resolve_target(
    ctx: &Context,
    cwd: &Path,
    target: &Path,
    args: &ReproduceArgs,
) -> Result<(PathBuf, Option<Reference>), Error> {
    let abs = cwd.join(target);
    if bundle::is_bundle(target) {
        let (index, files) = bundle::read_bundle(&abs)?;
        let lock_bytes = &files[bundle::LOCK];
        let lock = verify::parse_lock(lock_bytes, &target.join(bundle::LOCK))?;
        let bundled = &files[bundle::EXPERIMENT];
        let here = ctx.workspace.join(&index.file);
        let file = if std::fs::read(&here).is_ok_and(|b| hash_bytes(&b) == hash_bytes(bundled)) {
            here
        } else {
            // The workspace has another version (or none): recompute the bundle's own.
            let copy = ctx
                .runs
                .join(".reproduce")
                .join(format!("{}-{}.yaml", index.experiment, index.run_id));
            std::fs::create_dir_all(copy.parent().expect("has a parent"))
                .and_then(|()| std::fs::write(&copy, bundled))
                .map_err(|e| Error::io(&copy, e))?;
            eprintln!(
                "{:>12} `{}` in the workspace differs from the bundle's: recomputing the bundle's copy",
                "Warning", index.file
            );
            copy
        };
        let label = format!("bundle `{}` (run {})", target.display(), index.run_id);
        return Ok((file, Some(Reference { lock, label })));
    }
    let looks_like_experiment = abs.is_file()
        || matches!(
            target.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
    if !looks_like_experiment {
        let run_dir = crate::report::run::resolve_run(&ctx.runs, cwd, &target.to_string_lossy())?;
        let m = read_manifest(&run_dir)?;
        let file = ctx.workspace.join(&m.file);
        let exp = dsl::load(&ctx.experiment_path(&file), &ctx.workspace)?;
        let lock = describe_run(ctx, &run_dir, &exp, None, args.run.no_wait)?;
        let label = format!("run `{}/{}`", m.experiment, m.run_id);
        return Ok((file, Some(Reference { lock, label })));
    }
    match &args.lock {
        Some(l) => {
            let p = cwd.join(l);
            let lock = verify::read_lock(&p)?;
            let label = format!("lock `{}`", l.display());
            Ok((target.to_path_buf(), Some(Reference { lock, label })))
        }
        None => Ok((target.to_path_buf(), None)),
    }
}

/// The experiment's lock file, else its latest recorded run, else nothing.
fn default_reference(
    ctx: &Context,
    file: &Path,
    exp: &dsl::Experiment,
    args: &ReproduceArgs,
) -> Result<Option<Reference>, Error> {
    let rel = verify::lock_path_for(&ctx.experiment_path(file));
    let abs = ctx.workspace.join(&rel);
    if abs.is_file() {
        let bytes = std::fs::read(&abs).map_err(|e| Error::io(&abs, e))?;
        let lock = verify::parse_lock(&bytes, &rel)?;
        if lock.experiment != exp.name {
            return Err(Error::Usage(format!(
                "lock `{}` is of experiment `{}`, not `{}`",
                rel.display(),
                lock.experiment,
                exp.name
            )));
        }
        let label = format!("lock `{}`", rel.display());
        return Ok(Some(Reference { lock, label }));
    }
    let Some(run_dir) = latest_run_dir(ctx, &exp.name) else {
        return Ok(None);
    };
    let m = read_manifest(&run_dir)?;
    eprintln!(
        "{:>12} no lock `{}`: comparing with the latest run `{}/{}`",
        "Note",
        rel.display(),
        m.experiment,
        m.run_id
    );
    let lock = describe_run(ctx, &run_dir, exp, None, args.run.no_wait)?;
    let label = format!("run `{}/{}`", m.experiment, m.run_id);
    Ok(Some(Reference { lock, label }))
}

/// The provenance guards, printed before anything runs: a dirty tree, stage kinds whose code
/// differs from the reference's, another binary, another experiment file. `--require-clean`
/// refuses a dirty tree or changed stage code.
fn guards(ctx: &Context, file: &Path, r: &Reference, require_clean: bool) -> Result<(), Error> {
    let mut warnings = Vec::new();
    let git = git_provenance(&ctx.workspace).filter(|g| g.dirty);
    if let Some(g) = &git {
        let shown: Vec<&str> = g.changed.iter().take(5).map(String::as_str).collect();
        let more = g.changed.len().saturating_sub(shown.len());
        warnings.push(format!(
            "the git tree is dirty: {}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    let changed: Vec<&str> = r
        .lock
        .code_identity
        .iter()
        .filter(|(kind, id)| {
            StageKind::parse(kind).is_some_and(|k| builtin_code_identity(k) != id.as_str())
        })
        .map(|(kind, _)| kind.as_str())
        .collect();
    if !changed.is_empty() {
        warnings.push(format!(
            "this binary's code differs from the {}'s for stage kind(s) {}: their keys (and maybe results) will differ",
            if r.label.starts_with("lock") { "lock" } else { "reference" },
            changed
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else if r.lock.binary_identity != BINARY_IDENTITY {
        warnings.push(
            "this binary was built from other sources than the reference's, but no stage kind's code changed"
                .to_string(),
        );
    }
    let digest = crate::fingerprint::hash_file(&ctx.workspace.join(ctx.experiment_path(file)))
        .unwrap_or_default();
    if !r.lock.experiment_digest.is_empty() && digest != r.lock.experiment_digest {
        warnings.push(format!(
            "the experiment file differs from the one the reference was made from (`{}`)",
            r.lock.file
        ));
    }
    eprintln!("{:>12} against {}", "Verify", r.label);
    for w in &warnings {
        eprintln!("{:>12} {w}", "Warning");
    }
    if require_clean && (git.is_some() || !changed.is_empty()) {
        return Err(Error::Usage(
            "--require-clean was given and the provenance differs from the reference (see the warnings above): commit or stash, or build the reference's code".to_string(),
        ));
    }
    Ok(())
}
