//! Why a stage will run: the difference between its new key and the one it last ran with.

use std::fmt;

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::key::{KeyConfig, KeyDoc, KeyInput};

/// One reason for a stage to run. Displayed as a short lowercase phrase.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    NeverRun,
    Forced,
    ConfigChanged {
        field: String,
        old: String,
        new: String,
    },
    InputChanged {
        name: String,
        path: String,
    },
    UpstreamChanged {
        name: String,
        stage: String,
    },
    UpstreamWillRun {
        stage: String,
    },
    CodeChanged {
        what: String,
    },
    SeedChanged {
        old: String,
        new: String,
    },
    BackendChanged {
        old: String,
        new: String,
    },
    KeyFormatChanged,
    OutputMissing,
    OutputCorrupt {
        found: String,
    },
    /// The previous key is known but nothing specific differs (e.g. its record was collected).
    RecordMissing,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NeverRun => write!(f, "never run"),
            Reason::Forced => write!(f, "forced"),
            Reason::ConfigChanged { field, old, new } => {
                write!(f, "config field `{field}` changed ({old} → {new})")
            }
            Reason::InputChanged { name, path } => {
                write!(f, "input `{name}` (`{path}`) content changed")
            }
            Reason::UpstreamChanged { name, stage } => {
                write!(f, "input `{name}` from upstream `{stage}` changed")
            }
            Reason::UpstreamWillRun { stage } => write!(f, "upstream `{stage}` will run"),
            Reason::CodeChanged { what } => write!(f, "code changed: {what}"),
            Reason::SeedChanged { old, new } => write!(f, "seed changed ({old} → {new})"),
            Reason::BackendChanged { old, new } => write!(f, "backend changed ({old} → {new})"),
            Reason::KeyFormatChanged => write!(f, "key format of this binary changed"),
            Reason::OutputMissing => write!(f, "output missing from the store"),
            Reason::OutputCorrupt { found } => {
                write!(
                    f,
                    "stored output is corrupt (it now hashes to {})",
                    &found[..12.min(found.len())]
                )
            }
            Reason::RecordMissing => write!(f, "previous result no longer in the store"),
        }
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "unset".to_string(),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s
    }
}

/// Leaf-level differences between two JSON values, as dotted paths.
fn diff_leaves(prefix: &str, old: &Value, new: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                diff_leaves(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if old != new => out.push((prefix.to_string(), old.clone(), new.clone())),
        _ => {}
    }
}

/// Explains why the key JSON `new` differs from `old` (the key the same stage last ran with).
/// A recorded key of another layout (an older [`KEY_FORMAT`](super::KEY_FORMAT), or edited by
/// hand) is a key-format change.
pub fn explain_json(old: &Value, new: &Value) -> Vec<Reason> {
    match (KeyDoc::parse(old), KeyDoc::parse(new)) {
        (Some(o), Some(n)) => explain(&o, &n),
        _ => vec![Reason::KeyFormatChanged],
    }
}

/// Explains why `new` differs from `old`, field by field, as cargo's fingerprint comparison names
/// its dirty reasons.
pub fn explain(old: &KeyDoc, new: &KeyDoc) -> Vec<Reason> {
    if old.key_format != new.key_format {
        return vec![Reason::KeyFormatChanged];
    }
    let mut reasons = Vec::new();
    let json = |c: &KeyConfig| serde_json::to_value(c).unwrap_or(Value::Null);
    let mut config = Vec::new();
    diff_leaves("", &json(&old.config), &json(&new.config), &mut config);
    for (field, a, b) in config {
        // `params.lr` reads better than `params.lr` under a `config.` prefix; keep paths as declared.
        let field = field
            .strip_prefix("config.")
            .map(str::to_string)
            .unwrap_or(field);
        reasons.push(Reason::ConfigChanged {
            field,
            old: short(&a),
            new: short(&b),
        });
    }
    for (name, v) in &new.inputs {
        let before = old.inputs.get(name);
        if before == Some(v) {
            continue;
        }
        let stage = match v {
            KeyInput::Path(p) => {
                if let Some(KeyInput::Path(b)) = before
                    && b.path == p.path
                {
                    reasons.push(Reason::InputChanged {
                        name: name.clone(),
                        path: p.path.clone(),
                    });
                }
                // A changed path is already reported as a config change of `deps`.
                continue;
            }
            KeyInput::Stage(s) => s.stage.clone(),
            KeyInput::Gathered(all) => format!("{} gathered variants", all.len()),
        };
        reasons.push(Reason::UpstreamChanged {
            name: name.clone(),
            stage,
        });
    }
    if old.code.builtin != new.code.builtin {
        reasons.push(Reason::CodeChanged {
            what: format!("built-in code of `{}` stages", new.kind),
        });
    }
    if old.code.cmd != new.code.cmd {
        reasons.push(Reason::CodeChanged {
            what: "command text".to_string(),
        });
    }
    let files: BTreeSet<&String> = old.code.files.keys().chain(new.code.files.keys()).collect();
    for f in files {
        if old.code.files.get(f) != new.code.files.get(f) {
            reasons.push(Reason::CodeChanged {
                what: format!("`{f}`"),
            });
        }
    }
    if old.seed != new.seed {
        reasons.push(Reason::SeedChanged {
            old: old.seed.to_string(),
            new: new.seed.to_string(),
        });
    }
    if old.backend != new.backend {
        let name = |b: &Option<String>| short(&b.clone().map_or(Value::Null, Value::String));
        reasons.push(Reason::BackendChanged {
            old: name(&old.backend),
            new: name(&new.backend),
        });
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(lr: f64, digest: &str, cmd: &str, seed: u64) -> Value {
        json!({"key_format": 1, "kind": "command",
               "config": {"params": {"lr": lr}, "outs": {}, "config": null},
               "inputs": {"raw": {"path": "a.csv", "digest": digest}},
               "code": {"builtin": "b", "cmd": cmd, "files": {}}, "seed": seed, "backend": null})
    }

    #[test]
    fn config_and_input_changes_are_named() {
        let r: Vec<String> = explain_json(&key(0.1, "1", "x", 0), &key(0.2, "2", "y", 1))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            r,
            vec![
                "config field `params.lr` changed (0.1 → 0.2)",
                "input `raw` (`a.csv`) content changed",
                "code changed: command text",
                "seed changed (0 → 1)",
            ]
        );
    }

    #[test]
    fn a_recorded_key_of_another_layout_is_a_key_format_change() {
        let mut old = key(0.1, "1", "x", 0);
        old["extra"] = json!(1);
        assert_eq!(
            explain_json(&old, &key(0.1, "1", "x", 0)),
            vec![Reason::KeyFormatChanged]
        );
    }
}
