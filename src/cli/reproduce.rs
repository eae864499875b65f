//! `orchestrate reproduce EXPERIMENT | RUN | BUNDLE.tar.gz`: the reviewer's command.
//!
//! Recomputes everything in a new, empty store under `runs/.reproduce/` (the user's cache is
//! never trusted; `--reuse-cache` opts in), records the recomputation like any run, then compares
//! it with the reference: the experiment's lock file, a recorded run, or a bundle's lock. The
//! provenance guards (dirty tree, changed code identity) are printed before anything runs.

use std::path::{Path, PathBuf};

use clap::Args;

use super::lock::{describe_run, latest_run_dir, read_manifest};
use super::run::RunArgs;
use super::{Context, print_json};
use crate::cli::error::Error;
use crate::dsl;
use crate::exec::manifest;
use crate::exit;
use crate::fingerprint::{BINARY_IDENTITY, builtin_code_identity, git_provenance, hash_bytes};
use crate::kinds::StageKind;
use crate::verify::{self, Lock, bundle};

/// The folder under `runs/` that holds one isolated store per recomputation (`status` counts
/// them, `gc` collects the ones no reproduce is using).
pub(crate) const ISOLATED_STORES: &str = ".reproduce";

/// The isolated stores `reproduce` left under `runs/`, oldest first.
pub(crate) fn isolated_stores(ctx: &Context) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(ctx.runs.join(ISOLATED_STORES))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .collect();
    v.sort();
    v
}

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
    /// With a bundle: recompute the bundle's own experiment file instead of the workspace's;
    /// its `command` stages run shell commands chosen by the bundle's author (they are listed
    /// before anything runs)
    #[arg(long)]
    pub bundle_experiment: bool,
    /// Use the reference's tolerance policy even where it is looser than the defaults
    /// (identical on the same platform and CPU kernels; elsewhere AUCs ±0.005, training losses ±0.001)
    #[arg(long)]
    pub accept_lock_policy: bool,
}

/// What the recomputation is compared with.
struct Reference {
    lock: Lock,
    /// For messages: ``lock `experiments/x.lock` `` or ``run `x/RUN-ID` ``.
    label: String,
}

/// What `reproduce` was asked to recompute.
struct Target {
    /// The experiment file (workspace-relative or absolute).
    file: PathBuf,
    reference: Option<Reference>,
    /// `--bundle-experiment`: the bundle's experiment file, validated, to be written into the
    /// isolated store's folder once everything else is checked.
    bundled: Option<Vec<u8>>,
}

pub fn reproduce(ctx: &Context, args: &ReproduceArgs) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let target = &args.run.experiment;
    if args.bundle_experiment && !bundle::is_bundle(target) {
        return Err(Error::Usage(format!(
            "--bundle-experiment applies to a bundle (`*.tar.gz`), not to `{}`",
            target.display()
        )));
    }
    let Target {
        file,
        reference,
        bundled,
    } = resolve_target(ctx, &cwd, target, args)?;
    // Validate everything first: a refused experiment, lock or bundle writes nothing.
    let mut exp = match &bundled {
        Some(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                Error::Usage(format!(
                    "`{}`: the bundle's `{}` is not UTF-8 text",
                    target.display(),
                    bundle::EXPERIMENT
                ))
            })?;
            let shown = PathBuf::from(format!("{}:{}", target.display(), bundle::EXPERIMENT));
            dsl::parse(&shown, text, &ctx.workspace, &crate::stages::Builtin)?
        }
        None => dsl::load(
            &ctx.experiment_path(&file),
            &ctx.workspace,
            &crate::stages::Builtin,
        )?,
    };
    if let Some(b) = args.run.backend {
        exp.backend = b;
    }
    let reference = match reference {
        Some(r) => Some(r),
        None => default_reference(ctx, &file, &exp)?,
    };
    let mut policy_source = None;
    if let Some(r) = &reference {
        if r.lock.experiment != exp.name {
            return Err(Error::Usage(format!(
                "{} is of experiment `{}`, not `{}`: compare an experiment with its own lock",
                r.label,
                crate::csv::shown(&r.lock.experiment),
                exp.name
            )));
        }
        policy_source = Some(choose_policy(r, args.accept_lock_policy)?);
        if bundled.is_none() {
            guards(ctx, &file, r, args.run.require_clean)?;
        } else if args.run.require_clean {
            return Err(Error::Usage(
                "--require-clean recomputes the workspace's own code and experiment; it cannot be \
                 combined with --bundle-experiment"
                    .to_string(),
            ));
        }
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
    if bundled.is_some() {
        announce_commands(&exp);
    }
    let id = manifest::new_run_id();
    let isolated = ctx.runs.join(ISOLATED_STORES).join(&id);
    if let Some(bytes) = &bundled {
        // The only file a bundle ever writes: its experiment, inside the new isolated folder.
        let copy = isolated.join(bundle::EXPERIMENT);
        std::fs::create_dir_all(&isolated)
            .and_then(|()| std::fs::write(&copy, bytes))
            .map_err(|e| Error::io(&copy, e))?;
        // The experiment validated above runs; its record names the copy.
        exp.file = ctx.experiment_path(&copy);
    }
    let run_ctx = if args.reuse_cache {
        Context {
            workspace: ctx.workspace.clone(),
            store: ctx.store.clone(),
            runs: ctx.runs.clone(),
        }
    } else {
        eprintln!(
            "{:>12} everything from scratch in an isolated store `{}`",
            "Reproduce",
            isolated
                .strip_prefix(&ctx.workspace)
                .unwrap_or(&isolated)
                .display()
        );
        Context {
            workspace: ctx.workspace.clone(),
            store: isolated,
            runs: ctx.runs.clone(),
        }
    };
    let record = super::run::run_experiment(&run_ctx, exp.clone(), &args.run)?;
    if args.run.json && reference.is_none() {
        print_json(&record.manifest)?;
    }
    let failed = match super::run::finish(&run_ctx, &record) {
        Ok(_) => None,
        Err(e @ Error::StagesFailed { .. }) => Some(e),
        Err(e) => return Err(e),
    };
    let Some(reference) = reference else {
        return failed.map_or(Ok(exit::OK), Err);
    };
    let run_dir = record.dir;
    let actual = describe_run(&run_ctx, &run_dir, &exp, None)?;
    let mut v = verify::verdict(&reference.lock, &actual, &reference.label);
    if let Some(source) = policy_source {
        v.policy_source = source;
    }
    let json_path = run_dir.join("verification.json");
    crate::task::write_json_atomic(&json_path, &v).map_err(|e| Error::io(&json_path, e))?;
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
) -> Result<Target, Error> {
    let abs = cwd.join(target);
    if bundle::is_bundle(target) {
        return resolve_bundle(ctx, target, args);
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
        let exp = dsl::load(
            &ctx.experiment_path(&file),
            &ctx.workspace,
            &crate::stages::Builtin,
        )?;
        let lock = describe_run(ctx, &run_dir, &exp, None)?;
        let label = format!("run `{}/{}`", m.experiment, m.run_id);
        return Ok(Target {
            file,
            reference: Some(Reference { lock, label }),
            bundled: None,
        });
    }
    let reference = match &args.lock {
        Some(l) => {
            let p = cwd.join(l);
            if p.is_dir() {
                return Err(Error::Usage(format!(
                    "--lock `{}` is a folder: give a lock file such as `experiments/paper.lock`",
                    l.display()
                )));
            }
            let lock = verify::read_lock(&p)?;
            let label = format!("lock `{}`", l.display());
            Some(Reference { lock, label })
        }
        None => None,
    };
    Ok(Target {
        file: target.to_path_buf(),
        reference,
        bundled: None,
    })
}

/// A bundle: by default the workspace's own experiment is recomputed and compared with the
/// bundle's lock (a bundle never runs code the reviewer did not choose); the bundle's
/// experiment file only with `--bundle-experiment`.
fn resolve_bundle(ctx: &Context, target: &Path, args: &ReproduceArgs) -> Result<Target, Error> {
    if args.lock.is_some() {
        return Err(Error::Usage(
            "--lock does not apply to a bundle: the bundle's own lock is the reference".to_string(),
        ));
    }
    // Opened as the user named it (relative to the current directory), so errors name it so too.
    let b = bundle::read_bundle(target)?;
    let lock = verify::parse_lock(&b.files[bundle::LOCK], &target.join(bundle::LOCK))?;
    if lock.experiment != b.index.experiment {
        return Err(Error::Verify(verify::VerifyError::BadBundle {
            path: target.to_path_buf(),
            message: format!(
                "its index names experiment `{}` but its lock `{}`",
                b.index.experiment, lock.experiment
            ),
        }));
    }
    let label = format!("bundle `{}` (run {})", target.display(), b.index.run_id);
    let reference = Some(Reference { lock, label });
    let bundled = b.files[bundle::EXPERIMENT].clone();
    if args.bundle_experiment {
        return Ok(Target {
            file: PathBuf::from(&b.index.file),
            reference,
            bundled: Some(bundled),
        });
    }
    // `file` was checked as a workspace-relative path with plain components only.
    let here = ctx.workspace.join(&b.index.file);
    let Ok(ours) = std::fs::read(&here) else {
        return Err(Error::Usage(format!(
            "the bundle was made from `{}`, which this workspace does not have: run `reproduce` \
             in a checkout of the study, or pass --bundle-experiment to recompute the bundle's \
             own experiment file (its commands run on this machine)",
            b.index.file
        )));
    };
    if hash_bytes(&ours) != hash_bytes(&bundled) {
        eprintln!(
            "{:>12} `{}` in the workspace differs from the bundle's; recomputing the workspace's \
             (--bundle-experiment recomputes the bundle's). The bundle's differs by:",
            "Note", b.index.file
        );
        for line in line_diff(&ours, &bundled, 40) {
            eprintln!("{:>12} {line}", "");
        }
    }
    Ok(Target {
        file: PathBuf::from(&b.index.file),
        reference,
        bundled: None,
    })
}

/// The policy the verdict is given under, and where it came from. A reference's policy that is
/// looser than the defaults is refused unless the reviewer accepts it.
fn choose_policy(r: &Reference, accept: bool) -> Result<String, Error> {
    let defaults = verify::TolerancePolicy::default_for(&r.lock.platform.backend);
    let looser = r.lock.tolerance.looser_than(&defaults);
    if looser.is_empty() {
        return Ok(format!(
            "the policy of {}, no looser than the defaults",
            r.label
        ));
    }
    if !accept {
        return Err(Error::Usage(format!(
            "{} declares a tolerance policy looser than the defaults: {}. The reviewer decides \
             what counts as reproduced: pass --accept-lock-policy to use it anyway",
            r.label,
            looser.join(", ")
        )));
    }
    eprintln!(
        "{:>12} using {}'s policy, looser than the defaults: {}",
        "Warning",
        r.label,
        looser.join(", ")
    );
    Ok(format!(
        "the policy of {}, looser than the defaults ({}), accepted with --accept-lock-policy",
        r.label,
        looser.join(", ")
    ))
}

/// Before a bundle's own experiment runs: every shell command it will run.
fn announce_commands(exp: &dsl::Experiment) {
    let commands: Vec<&dsl::Stage> = exp
        .stages
        .iter()
        .filter(|s| s.kind == StageKind::Command)
        .collect();
    if commands.is_empty() {
        eprintln!(
            "{:>12} the bundle's experiment has no `command` stage: only built-in stage kinds run",
            "Note"
        );
        return;
    }
    eprintln!(
        "{:>12} the bundle's experiment runs {} shell command(s) on this machine:",
        "Warning",
        commands.len()
    );
    for s in commands {
        eprintln!(
            "{:>12} {}: {}",
            "Command",
            s.name,
            s.cmd.as_deref().unwrap_or("")
        );
    }
}

/// A line diff of two small texts (`-` only in `a`, `+` only in `b`), at most `max` lines.
fn line_diff(a: &[u8], b: &[u8], max: usize) -> Vec<String> {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    if a.len() * b.len() > 4_000_000 {
        return vec![format!("({} lines against {} lines)", a.len(), b.len())];
    }
    // Longest common subsequence, from the end.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", crate::csv::shown(b[j])));
            j += 1;
        } else {
            out.push(format!("- {}", crate::csv::shown(a[i])));
            i += 1;
        }
    }
    if out.len() > max {
        let more = out.len() - max;
        out.truncate(max);
        out.push(format!("… and {more} more line(s)"));
    }
    out
}

/// The experiment's lock file, else its latest recorded run, else nothing.
fn default_reference(
    ctx: &Context,
    file: &Path,
    exp: &dsl::Experiment,
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
    let lock = describe_run(ctx, &run_dir, exp, None)?;
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
