//! From an experiment and the store to a plan: each stage's key, and whether it is fresh or why
//! it must run. Owns keys and staleness explanations; reads records and pins the objects it will
//! use, but never writes records.

mod explain;
mod key;

pub use explain::{Reason, explain, explain_json};
pub use key::{
    KEY_FORMAT, KeyCode, KeyConfig, KeyDoc, KeyInput, PathInput, StageInput, StageKey, stage_key,
};

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use crate::dsl::{Dep, Experiment};
use crate::fingerprint::{self, FingerprintError, NoCache, StatCache};
use crate::store::{ObjectState, PinGuard, StageRecord, Store, StoreError};

/// Why a plan could not be made: an input that cannot be hashed, or the store.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Fingerprint(#[from] crate::fingerprint::FingerprintError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Which stages to re-run even when fresh.
#[derive(Debug, Clone, Default)]
pub enum Force {
    #[default]
    None,
    All,
    /// Declared names (`train`, every variant) or full variant names.
    Stages(Vec<String>),
}

impl Force {
    fn covers(&self, name: &str, base: &str) -> bool {
        match self {
            Force::None => false,
            Force::All => true,
            Force::Stages(list) => list.iter().any(|s| s == name || s == base),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Re-hash every input, ignoring the stat cache.
    pub verify_data: bool,
    /// Fully re-hash stored objects before trusting them.
    pub paranoid: bool,
    pub force: Force,
}

/// Where a stage stands.
#[derive(Debug, Clone)]
pub enum StageState {
    Fresh {
        key: StageKey,
        record: Box<StageRecord>,
    },
    /// Must run. The key is `None` while an upstream stage has still to run.
    Stale {
        key: Option<StageKey>,
        reasons: Vec<Reason>,
    },
}

impl StageState {
    pub fn is_fresh(&self) -> bool {
        matches!(self, StageState::Fresh { .. })
    }
}

/// Digests of every workspace path the experiment reads, by normalized relative path.
pub type InputDigests = HashMap<String, String>;

/// Hashes every dep and code path of the experiment, in parallel.
pub fn hash_inputs(
    exp: &Experiment,
    cache: &dyn StatCache,
    verify_data: bool,
) -> Result<InputDigests, FingerprintError> {
    let mut paths: BTreeSet<&str> = BTreeSet::new();
    for s in &exp.stages {
        for d in s.deps.values() {
            if let Dep::Path(p) = d {
                paths.insert(p);
            }
        }
        for c in &s.code {
            paths.insert(c);
        }
    }
    let paths: Vec<&str> = paths.into_iter().collect();
    let abs: Vec<PathBuf> = paths.iter().map(|p| exp.workspace.join(p)).collect();
    let cache: &dyn StatCache = if verify_data { &NoCache } else { cache };
    let digests = fingerprint::hash_paths_parallel(&abs, cache);
    paths
        .into_iter()
        .zip(digests)
        .map(|(p, d)| d.map(|d| (p.to_string(), d)))
        .collect()
}

/// The indices of the stages `idx` reads from.
pub fn upstream_of(exp: &Experiment, idx: usize) -> Vec<usize> {
    let mut ups: Vec<usize> = exp.stages[idx]
        .deps
        .values()
        .flat_map(|d| match d {
            Dep::Stage { stages, .. } => stages.clone(),
            Dep::Path(_) => Vec::new(),
        })
        .collect();
    ups.sort_unstable();
    ups.dedup();
    ups
}

/// Computes the key of stage `idx` once every upstream stage has a committed record.
pub fn key_for(
    exp: &Experiment,
    idx: usize,
    inputs: &InputDigests,
    committed: &[Option<StageRecord>],
) -> Option<StageKey> {
    if upstream_of(exp, idx)
        .iter()
        .any(|&u| committed[u].is_none())
    {
        return None;
    }
    Some(stage_key(
        exp,
        idx,
        &|p| inputs.get(p).cloned().unwrap_or_default(),
        &|u, out| {
            committed[u]
                .as_ref()
                .and_then(|r| r.outs.get(out))
                .map(|o| o.digest.clone())
                .unwrap_or_default()
        },
    ))
}

/// Decides whether a stage with a known key is fresh, and otherwise why it must run.
pub fn assess(
    exp: &Experiment,
    idx: usize,
    key: StageKey,
    store: &Store,
    guard: &PinGuard,
    opts: &PlanOptions,
) -> Result<StageState, StoreError> {
    let stage = &exp.stages[idx];
    if opts.force.covers(&stage.name, &stage.base) {
        return Ok(StageState::Stale {
            key: Some(key),
            reasons: vec![Reason::Forced],
        });
    }
    if let Some(record) = store.record(&key.hash)? {
        // Pinned before it is looked at: no gc takes it from under this process.
        store.pin(guard, &record.object)?;
        let reason = match store.verify_object(&record.object, opts.paranoid) {
            ObjectState::Intact => {
                return Ok(StageState::Fresh {
                    key,
                    record: Box::new(record),
                });
            }
            ObjectState::Missing => Reason::OutputMissing,
            ObjectState::Corrupt { found } => Reason::OutputCorrupt { found },
        };
        return Ok(StageState::Stale {
            key: Some(key),
            reasons: vec![reason],
        });
    }
    let reasons = match store.latest(&exp.name, &stage.name)? {
        None => vec![Reason::NeverRun],
        Some(prev) => {
            let r = explain_json(&prev, &key.json);
            if r.is_empty() {
                vec![Reason::RecordMissing]
            } else {
                r
            }
        }
    };
    Ok(StageState::Stale {
        key: Some(key),
        reasons,
    })
}

/// The whole plan: every stage's state, in experiment order.
pub struct Plan {
    pub states: Vec<StageState>,
    pub inputs: InputDigests,
}

impl Plan {
    pub fn build(exp: &Experiment, store: &Store, opts: &PlanOptions) -> Result<Plan, PlanError> {
        let guard = store.pin_guard()?;
        // A rerun of this experiment finds its files' digests without a stat-cache session.
        let file = exp.workspace.join(&exp.file);
        store.use_stat_snapshot(&format!("{}\0{}", exp.workspace.display(), file.display()));
        let inputs = hash_inputs(exp, store.stat_cache(), opts.verify_data)?;
        let mut committed: Vec<Option<StageRecord>> = vec![None; exp.stages.len()];
        let mut states = Vec::with_capacity(exp.stages.len());
        for idx in 0..exp.stages.len() {
            let state = match key_for(exp, idx, &inputs, &committed) {
                Some(key) => assess(exp, idx, key, store, &guard, opts)?,
                None => {
                    let pending = upstream_of(exp, idx)
                        .into_iter()
                        .find(|&u| committed[u].is_none())
                        .expect("key_for returned None because an upstream is pending");
                    StageState::Stale {
                        key: None,
                        reasons: vec![Reason::UpstreamWillRun {
                            stage: exp.stages[pending].name.clone(),
                        }],
                    }
                }
            };
            if let StageState::Fresh { record, .. } = &state {
                committed[idx] = Some((**record).clone());
            }
            states.push(state);
        }
        store.checkpoint();
        Ok(Plan { states, inputs })
    }
}
