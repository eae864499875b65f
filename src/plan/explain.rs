//! Why a stage will run: the difference between its new key and the one it last ran with.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

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

/// Explains why `new` differs from `old` (both key JSONs of the same stage).
pub fn explain(old: &Value, new: &Value) -> Vec<Reason> {
    let get = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let mut reasons = Vec::new();
    if get(old, "key_format") != get(new, "key_format") {
        return vec![Reason::KeyFormatChanged];
    }
    let mut config = Vec::new();
    diff_leaves("", &get(old, "config"), &get(new, "config"), &mut config);
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
    let (old_in, new_in) = (get(old, "inputs"), get(new, "inputs"));
    if let Some(new_map) = new_in.as_object() {
        for (name, v) in new_map {
            let before = old_in.get(name);
            if before == Some(v) {
                continue;
            }
            if let Some(path) = v.get("path").and_then(Value::as_str) {
                let same_path = before.and_then(|b| b.get("path")) == v.get("path");
                if same_path {
                    reasons.push(Reason::InputChanged {
                        name: name.clone(),
                        path: path.to_string(),
                    });
                }
                // A changed path is already reported as a config change of `deps`.
                continue;
            }
            let stage = v
                .get("stage")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!("{} gathered variants", v.as_array().map_or(0, Vec::len))
                });
            reasons.push(Reason::UpstreamChanged {
                name: name.clone(),
                stage,
            });
        }
    }
    let (oc, nc) = (get(old, "code"), get(new, "code"));
    if oc.get("builtin") != nc.get("builtin") {
        let kind = new.get("kind").and_then(Value::as_str).unwrap_or("?");
        reasons.push(Reason::CodeChanged {
            what: format!("built-in code of `{kind}` stages"),
        });
    }
    if oc.get("cmd") != nc.get("cmd") {
        reasons.push(Reason::CodeChanged {
            what: "command text".to_string(),
        });
    }
    let mut files = Vec::new();
    diff_leaves("", &get(&oc, "files"), &get(&nc, "files"), &mut files);
    for (f, _, _) in files {
        reasons.push(Reason::CodeChanged {
            what: format!("`{f}`"),
        });
    }
    if get(old, "seed") != get(new, "seed") {
        reasons.push(Reason::SeedChanged {
            old: get(old, "seed").to_string(),
            new: get(new, "seed").to_string(),
        });
    }
    if get(old, "backend") != get(new, "backend") {
        reasons.push(Reason::BackendChanged {
            old: short(&get(old, "backend")),
            new: short(&get(new, "backend")),
        });
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_and_input_changes_are_named() {
        let old = json!({"key_format": 1, "config": {"params": {"lr": 0.1}}, "inputs": {"raw": {"path": "a.csv", "digest": "1"}}, "code": {"cmd": "x"}, "seed": 0});
        let new = json!({"key_format": 1, "config": {"params": {"lr": 0.2}}, "inputs": {"raw": {"path": "a.csv", "digest": "2"}}, "code": {"cmd": "y"}, "seed": 1});
        let r: Vec<String> = explain(&old, &new)
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
}
