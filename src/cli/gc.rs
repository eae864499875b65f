//! `orchestrate gc`: delete objects (and their records) that no kept run references.
//!
//! A run is kept while its folder `runs/<experiment>/<run-id>/` exists: delete run folders you no
//! longer need, then collect. Every recorded run is also a root in the store itself
//! (`crate::store::Root`), so `gc` from one workspace keeps what the runs of every other
//! workspace sharing the store reference. A root whose folder is gone is forgotten by its own
//! workspace; another workspace keeps it (the folder may be on a machine it cannot see) until
//! `--prune-missing`, or `--prune-before DATE` for roots older than a date. Live processes'
//! pins are kept too (`crate::store::Session`): gc beside running dispatchers deletes nothing
//! they use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::inspect::{dir_size, human_bytes};
use super::{Context, open_store, print_json};
use crate::cli::error::Error;
use crate::exec::manifest;
use crate::exit;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only say what would be deleted
    #[arg(long)]
    pub dry_run: bool,
    /// Also forget the roots of other workspaces whose run folders are not visible from here
    /// (deleted, or on another machine): their objects are then collected
    #[arg(long)]
    pub prune_missing: bool,
    /// Also forget the roots of other workspaces' runs recorded before DATE (`2026-11-01` or
    /// RFC 3339), visible or not: their objects are then collected unless something else keeps
    /// them. This workspace's own run folders are kept while they exist
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub prune_before: Option<String>,
    /// Print as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// What `gc` keeps for one workspace.
#[derive(Debug, Default, serde::Serialize)]
struct Kept {
    runs: usize,
    /// Roots whose run folder is not visible here, kept (without `--prune-missing`).
    not_visible: usize,
    newest: Option<String>,
}

pub fn gc(ctx: &Context, args: &GcArgs) -> Result<i32, Error> {
    let store = open_store(ctx)?;
    // While gc marks and sweeps, no process pins anything: what a live process uses is in its
    // pins (read below), and what it pins after the sweep it finds missing and recomputes.
    let _sweep = store.collect_guard()?;
    // This workspace's run folders (also runs recorded before the store kept roots) …
    let runs = manifest::list_runs(&ctx.runs);
    if let Some((first, why)) = runs.unreadable.first() {
        return Err(Error::Usage(format!(
            "{} run manifest(s) of this workspace cannot be read (first: `{}`: {why}): gc \
             deletes nothing rather than guess what they keep; repair or remove them",
            runs.unreadable.len(),
            first.display()
        )));
    }
    let mut kept: BTreeSet<String> = runs
        .runs
        .iter()
        .flat_map(|m| m.stages.iter().filter_map(|s| s.object.clone()))
        .collect();
    // … and the runs of every workspace that shares the store.
    let (roots, unreadable) = store.roots()?;
    if let Some(first) = unreadable.first() {
        return Err(Error::Usage(format!(
            "{} root file(s) of the store cannot be read (first: `{}`): gc deletes nothing \
             rather than guess what they keep; repair or remove them",
            unreadable.len(),
            first.display()
        )));
    }
    let mut by_workspace: BTreeMap<PathBuf, Kept> = BTreeMap::new();
    let mut forget = Vec::new();
    for r in roots {
        let visible = r.root.run_dir.join("manifest.json").is_file();
        let ours = r.root.workspace == ctx.workspace || r.root.run_dir.starts_with(&ctx.runs);
        let old = args
            .prune_before
            .as_deref()
            .is_some_and(|d| r.root.created_at.as_str() < d);
        if (!visible && (ours || args.prune_missing)) || (old && !ours) {
            forget.push(r);
            continue;
        }
        let k = by_workspace.entry(r.root.workspace.clone()).or_default();
        k.runs += 1;
        if !visible {
            k.not_visible += 1;
        }
        if k.newest.as_deref() < Some(r.root.created_at.as_str()) {
            k.newest = Some(r.root.created_at.clone());
        }
        kept.extend(r.root.objects.iter().cloned());
    }
    // What live processes (runs in progress, anywhere) have read or committed.
    let (mut live, mut in_flight) = (0, BTreeSet::new());
    for session in store.live_sessions()? {
        live += 1;
        in_flight.extend(session.pins());
    }
    let in_flight_only = in_flight.difference(&kept).count();
    kept.extend(in_flight);
    let unreferenced: Vec<String> = store
        .object_digests()?
        .into_iter()
        .filter(|d| !kept.contains(d))
        .collect();
    let bytes: u64 = unreferenced
        .iter()
        .map(|d| dir_size(&store.object_path(d)))
        .sum();
    let records: Vec<String> = store
        .records()?
        .into_iter()
        .filter(|r| !kept.contains(&r.object))
        .map(|r| r.key)
        .collect();
    if !args.dry_run {
        for r in &forget {
            store.remove_root(&r.file)?;
        }
        // Records first: a record must never point at a deleted object.
        for k in &records {
            store.remove_record(k)?;
        }
        for d in &unreferenced {
            store.forget_stats(&store.object_path(d));
            store.remove_object(d)?;
        }
        if !unreferenced.is_empty() {
            store.drop_stat_snapshots();
        }
        store.checkpoint();
        store.clean_scratch()?;
    }
    let (isolated, isolated_bytes, in_use) = collect_isolated_stores(ctx, args.dry_run)?;
    if args.json {
        print_json(&json!({
            "dry_run": args.dry_run,
            "objects": unreferenced,
            "records": records.len(),
            "bytes": bytes,
            "kept_objects": kept.len(),
            "running": {"processes": live, "objects_only_they_use": in_flight_only},
            "roots": by_workspace
                .iter()
                .map(|(w, k)| json!({"workspace": w, "runs": k.runs, "not_visible": k.not_visible, "newest": k.newest}))
                .collect::<Vec<_>>(),
            "forgotten_roots": forget
                .iter()
                .map(|r| json!({"workspace": r.root.workspace, "run_dir": r.root.run_dir}))
                .collect::<Vec<_>>(),
            "reproduce_stores": {"collected": isolated, "bytes": isolated_bytes, "in_use": in_use},
        }))?;
    } else {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        println!(
            "{verb} {} object(s) ({}) and {} record(s); {} object(s) kept",
            unreferenced.len(),
            human_bytes(bytes),
            records.len(),
            kept.len()
        );
        if live > 0 {
            println!(
                "  keeps {in_flight_only} more object(s) in use by {live} running process(es) \
                 (see `orchestrate status`)"
            );
        }
        for (w, k) in &by_workspace {
            println!(
                "  keeps {} run(s) of workspace `{}`{}{}",
                k.runs,
                w.display(),
                k.newest
                    .as_deref()
                    .map_or(String::new(), |n| format!(" (newest {})", age(n))),
                if k.not_visible > 0 {
                    format!(
                        "; {} of them not visible from here (kept; --prune-missing forgets them)",
                        k.not_visible
                    )
                } else {
                    String::new()
                }
            );
        }
        if !forget.is_empty() {
            println!(
                "  {} {} root(s) whose run folder is gone{}",
                if args.dry_run {
                    "would forget"
                } else {
                    "forgot"
                },
                forget.len(),
                match &args.prune_before {
                    Some(d) => format!(" or that were recorded before {d}"),
                    None => String::new(),
                }
            );
        }
        if !isolated.is_empty() || in_use > 0 {
            println!(
                "  {verb} {} isolated reproduce store(s) under `runs/{}` ({}){}",
                isolated.len(),
                super::reproduce::ISOLATED_STORES,
                human_bytes(isolated_bytes),
                if in_use > 0 {
                    format!("; {in_use} in use by a running reproduce, kept")
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(exit::OK)
}

/// `2026-11-01` or an RFC 3339 time → the RFC 3339 UTC seconds form roots are written in, so
/// that the two compare as strings.
fn parse_date(s: &str) -> Result<String, String> {
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    humantime::parse_rfc3339_weak(full.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(&full))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .map_err(|e| format!("`{s}` is no date (write 2026-11-01 or 2026-11-01T12:00:00Z): {e}"))
}

/// `2026-12-01T10:00:00Z` → `3h 12m ago`.
fn age(rfc3339: &str) -> String {
    let Ok(t) = humantime::parse_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h) {
        (0, 0) => format!("{m}m ago"),
        (0, _) => format!("{h}h {m}m ago"),
        _ => format!("{d}d {h}h ago"),
    }
}

/// Deletes (or, on a dry run, sizes) the isolated stores `reproduce` left under `runs/`, except
/// those a running reproduce holds. Returns their ids, their size and how many were in use.
fn collect_isolated_stores(
    ctx: &Context,
    dry_run: bool,
) -> Result<(Vec<String>, u64, usize), Error> {
    let (mut collected, mut bytes, mut in_use) = (Vec::new(), 0, 0);
    for dir in super::reproduce::isolated_stores(ctx) {
        // A store that is one: its sessions say whether a reproduce still uses it. A folder
        // without FORMAT is a bundle's experiment copy whose reproduce never opened its store.
        if dir.join("FORMAT").is_file()
            && !crate::store::Store::open_read(&dir)?
                .live_sessions()?
                .is_empty()
        {
            in_use += 1;
            continue;
        }
        bytes += dir_size(&dir);
        if !dry_run {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        collected.push(
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok((collected, bytes, in_use))
}
