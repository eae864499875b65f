//! `orchestrate gc`: delete objects (and their records) that no kept run references.
//!
//! A run is kept while its folder `runs/<experiment>/<run-id>/` exists: delete run folders you no
//! longer need, then collect. Only the runs of this workspace are seen: a store shared between
//! workspaces should be collected from a workspace that holds every run worth keeping.

use std::collections::BTreeSet;

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
    /// Fail with exit code 4 instead of waiting when another orchestrate holds the store
    #[arg(long)]
    pub no_wait: bool,
    /// Print as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn gc(ctx: &Context, args: &GcArgs) -> Result<i32, Error> {
    let store = open_store(ctx, args.no_wait)?;
    let kept: BTreeSet<String> = manifest::list_runs(&ctx.runs)
        .iter()
        .flat_map(|m| m.stages.iter().filter_map(|s| s.object.clone()))
        .collect();
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
        .index()
        .records()
        .filter_map(Result::ok)
        .filter(|r| !kept.contains(&r.object))
        .map(|r| r.key)
        .collect();
    if !args.dry_run {
        // Records first: a record must never point at a deleted object.
        for k in &records {
            store.index().remove_record(k)?;
        }
        store.index().flush()?;
        for d in &unreferenced {
            store.index().remove_stat_prefix(&store.object_path(d))?;
            store.remove_object(d)?;
        }
        store.index().flush()?;
        store.clean_scratch()?;
    }
    if args.json {
        print_json(&json!({
            "dry_run": args.dry_run,
            "objects": unreferenced,
            "records": records.len(),
            "bytes": bytes,
            "kept_objects": kept.len(),
        }))?;
    } else {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        println!(
            "{verb} {} object(s) ({}) and {} record(s); {} object(s) referenced by kept runs",
            unreferenced.len(),
            human_bytes(bytes),
            records.len(),
            kept.len()
        );
    }
    Ok(exit::OK)
}
