//! The stage key: SHA-256 over a canonical JSON of everything that determines a stage's outputs.
//!
//! Canonical means: serde_json objects with sorted keys (no `preserve_order`), numbers in their
//! shortest round-trip form, the typed config with defaults applied (never the YAML text), digests
//! of inputs by dependency name, never an absolute path, a time or a host name.

use std::collections::BTreeMap;

use serde_json::{Value, json};

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
    let mut inputs = serde_json::Map::new();
    for (name, dep) in &stage.deps {
        let v = match dep {
            Dep::Path(p) => json!({"path": p, "digest": input(p)}),
            Dep::Stage {
                stages,
                out,
                gather: false,
            } => {
                let u = stages[0];
                json!({"stage": exp.stages[u].base, "out": out, "digest": upstream(u, out)})
            }
            Dep::Stage {
                stages,
                out,
                gather: true,
            } => Value::Array(
                stages
                    .iter()
                    .map(|&u| json!({"stage": exp.stages[u].name, "out": out, "digest": upstream(u, out)}))
                    .collect(),
            ),
        };
        inputs.insert(name.clone(), v);
    }
    let files: BTreeMap<&str, String> = stage.code.iter().map(|c| (c.as_str(), input(c))).collect();
    let code = json!({
        "builtin": builtin_code_identity(stage.kind),
        "cmd": stage.cmd,
        "files": files,
    });
    let config = json!({
        "params": stage.params,
        "outs": stage.outs,
        "config": stage.config,
    });
    // The tensor backend a stage runs on. A shell command runs on none: `null`.
    let backend = if crate::kinds::uses_backend(stage.kind) {
        Value::String(exp.backend.name().to_string())
    } else {
        Value::Null
    };
    let key = json!({
        "key_format": KEY_FORMAT,
        "kind": stage.kind.name(),
        "config": config,
        "inputs": inputs,
        "code": code,
        "seed": stage.seed,
        "backend": backend,
    });
    let bytes = serde_json::to_vec(&key).expect("a JSON value serializes");
    StageKey {
        hash: hash_bytes(&bytes),
        json: key,
    }
}
