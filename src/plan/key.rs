//! The stage key: SHA-256 over a canonical JSON of everything that determines a stage's outputs.
//!
//! Canonical means: serde_json objects with sorted keys (no `preserve_order`), numbers in their
//! shortest round-trip form, the typed config with defaults applied (never the YAML text), digests
//! of inputs by dependency name, never an absolute path, a time or a host name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dsl::{Dep, Experiment};
use crate::fingerprint::{builtin_code_identity, hash_bytes};

/// Bumped when the key layout changes: every stage then re-runs once, with that reason.
pub const KEY_FORMAT: u32 = 1;

/// A computed key: its hash and the JSON it is the hash of.
#[derive(Debug, Clone, PartialEq)]
pub struct StageKey {
    pub hash: String,
    pub json: Value,
}

/// The key document: everything that determines a stage's outputs. Its canonical JSON (sorted
/// keys) is what the key hashes, what the store records and what `plan --explain` and `reproduce`
/// read back to say what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDoc {
    /// [`KEY_FORMAT`].
    pub key_format: u32,
    /// The stage kind's name.
    pub kind: String,
    pub config: KeyConfig,
    /// Dependency name → what it reads.
    pub inputs: BTreeMap<String, KeyInput>,
    pub code: KeyCode,
    pub seed: u64,
    /// The tensor backend of a model stage; `None` (`null`) for kinds that run on none.
    pub backend: Option<String>,
}

/// The declared parts of a stage, with defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub params: BTreeMap<String, Value>,
    pub outs: BTreeMap<String, String>,
    /// The built-in kind's typed config (`null` for commands).
    pub config: Value,
}

/// One dependency in a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyInput {
    /// A workspace file or folder and its content digest.
    Path(PathInput),
    /// One upstream output.
    Stage(StageInput),
    /// The same output of every variant of a swept stage (`stage:x[*]/out`).
    Gathered(Vec<StageInput>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathInput {
    pub path: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageInput {
    /// The upstream stage (its base name for a single dependency, its variant's for a gather).
    pub stage: String,
    pub out: String,
    pub digest: String,
}

/// What code a stage runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCode {
    /// The built-in kind's code identity (for `command` stages, the worker's).
    pub builtin: String,
    /// A command stage's command text.
    pub cmd: Option<String>,
    /// Declared `code:` files → content digest.
    pub files: BTreeMap<String, String>,
}

impl KeyDoc {
    /// Reads a recorded key JSON; `None` when it is not a key of this binary's layout (an older
    /// [`KEY_FORMAT`], or a document edited by hand).
    pub fn parse(v: &Value) -> Option<KeyDoc> {
        serde_json::from_value(v.clone()).ok()
    }
}

/// Computes the key of stage `idx`.
///
/// `input` gives the digest of a workspace path (deps and code files); `upstream` the digest of
/// output `out` of concrete stage `i`. Both must be known: callers only ask once every upstream
/// stage is committed.
pub fn stage_key(
    exp: &Experiment,
    idx: usize,
    input: &dyn Fn(&str) -> String,
    upstream: &dyn Fn(usize, &str) -> String,
) -> StageKey {
    let stage = &exp.stages[idx];
    let mut inputs = BTreeMap::new();
    for (name, dep) in &stage.deps {
        let v = match dep {
            Dep::Path(p) => KeyInput::Path(PathInput {
                path: p.clone(),
                digest: input(p),
            }),
            Dep::Stage {
                stages,
                out,
                gather: false,
            } => {
                let u = stages[0];
                KeyInput::Stage(StageInput {
                    stage: exp.stages[u].base.clone(),
                    out: out.clone(),
                    digest: upstream(u, out),
                })
            }
            Dep::Stage {
                stages,
                out,
                gather: true,
            } => KeyInput::Gathered(
                stages
                    .iter()
                    .map(|&u| StageInput {
                        stage: exp.stages[u].name.clone(),
                        out: out.clone(),
                        digest: upstream(u, out),
                    })
                    .collect(),
            ),
        };
        inputs.insert(name.clone(), v);
    }
    let doc = KeyDoc {
        key_format: KEY_FORMAT,
        kind: stage.kind.name().to_string(),
        config: KeyConfig {
            params: stage.params.clone(),
            outs: stage.outs.clone(),
            config: stage.config.clone(),
        },
        inputs,
        code: KeyCode {
            builtin: builtin_code_identity(stage.kind).to_string(),
            cmd: stage.cmd.clone(),
            files: stage.code.iter().map(|c| (c.clone(), input(c))).collect(),
        },
        seed: stage.seed,
        // The tensor backend a stage runs on. A shell command runs on none: `null`.
        backend: crate::kinds::uses_backend(stage.kind).then(|| exp.backend.name().to_string()),
    };
    // Through a `Value`: serde_json's map sorts keys, so the bytes are canonical.
    let key = serde_json::to_value(&doc).expect("a key document serializes");
    let bytes = serde_json::to_vec(&key).expect("a JSON value serializes");
    StageKey {
        hash: hash_bytes(&bytes),
        json: key,
    }
}
