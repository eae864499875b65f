//! The verdict of a reproduction: a recomputation compared with a lock, one row per data file,
//! key, artifact and metric, a verdict per stage, and the root cause.
//!
//! The root cause is a stage that differs although every stage it reads from was reproduced
//! (within policy): its own config, seed, code or data changed (its key JSON says which), or it
//! produced different outputs from the same inputs. A differing stage downstream of a differing
//! stage is a consequence, named with the root cause it follows from.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::lock::{Lock, LockStage, Platform, SamePlatformRule};
use crate::plan::{Reason, explain_json};

/// How one item compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Identical,
    WithinTolerance,
    Different,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Identical => "identical",
            Outcome::WithinTolerance => "within tolerance",
            Outcome::Different => "different",
        }
    }
}

/// One line of the verification table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The stage, or `inputs` for data files.
    pub stage: String,
    /// `key`, `object`, `out NAME`, `data PATH` or a metric name.
    pub item: String,
    /// The locked value (`None`: absent from the lock).
    pub expected: Option<String>,
    /// The reproduced value (`None`: not reproduced).
    pub actual: Option<String>,
    pub outcome: Outcome,
    /// The absolute tolerance applied, for metrics compared with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Reproduced minus locked, for numeric metrics that are not identical.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
}

/// Why a differing stage differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum StageRole {
    /// Its inputs were reproduced, yet it differs.
    RootCause { reasons: Vec<String> },
    /// It reads, directly or not, from these differing root causes.
    Consequence { of: Vec<String> },
}

/// A stage's overall outcome: the worst of its rows.
#[derive(Debug, Clone, Serialize)]
pub struct StageVerdict {
    pub stage: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub role: Option<StageRole>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub experiment: String,
    /// What was compared against: a lock file or a run.
    pub reference: String,
    pub expected_platform: Platform,
    pub actual_platform: Platform,
    /// `identical` (bit for bit) or `tolerance` (metrics within the lock's tolerances).
    pub mode: &'static str,
    /// The tolerance policy in force, in words.
    pub policy: String,
    /// Where the policy came from (the reference's, checked against the defaults), set by the
    /// caller that chose it.
    pub policy_source: String,
    pub counts: BTreeMap<&'static str, usize>,
    pub ok: bool,
    /// The first root cause, in topological order.
    pub root_cause: Option<String>,
    pub stages: Vec<StageVerdict>,
    pub rows: Vec<Row>,
}

impl Verification {
    pub fn verdict(&self, stage: &str) -> Option<&StageVerdict> {
        self.stages.iter().find(|v| v.stage == stage)
    }
}

/// Compares `actual` (a recomputation) with `expected` (a lock, or a recorded run as one),
/// under the expected side's tolerance policy.
pub fn verdict(expected: &Lock, actual: &Lock, reference: &str) -> Verification {
    let strict = expected.platform == actual.platform
        && expected.tolerance.same_platform == SamePlatformRule::Identical;
    let mut rows = Vec::new();
    // Data first: a changed input names itself before the stages that read it.
    let paths: BTreeSet<&String> = expected.data.keys().chain(actual.data.keys()).collect();
    for p in paths {
        let (e, a) = (expected.data.get(p), actual.data.get(p));
        rows.push(Row {
            stage: "inputs".to_string(),
            item: format!("data {p}"),
            expected: e.cloned(),
            actual: a.cloned(),
            outcome: if e.is_some() && e == a {
                Outcome::Identical
            } else {
                Outcome::Different
            },
            tolerance: None,
            delta: None,
        });
    }
    // Stages in topological order: the lock's, then any the recomputation added.
    let mut order: Vec<&str> = expected.stages.iter().map(|s| s.name.as_str()).collect();
    for s in &actual.stages {
        if expected.stage(&s.name).is_none() {
            order.push(&s.name);
        }
    }
    let upstream = |name: &str| -> Vec<String> {
        actual
            .stage(name)
            .or_else(|| expected.stage(name))
            .map(|s| s.upstream.clone())
            .unwrap_or_default()
    };
    // Stages whose artifacts may legitimately differ in tolerance mode: those on a tensor
    // backend and everything downstream of them.
    let mut on_backend: BTreeSet<&str> = BTreeSet::new();
    for name in &order {
        let kind = actual
            .stage(name)
            .or_else(|| expected.stage(name))
            .and_then(|s| crate::kinds::StageKind::parse(&s.kind));
        if kind.is_some_and(crate::kinds::uses_backend)
            || upstream(name)
                .iter()
                .any(|u| on_backend.contains(u.as_str()))
        {
            on_backend.insert(name);
        }
    }
    let mut verdicts: Vec<StageVerdict> = Vec::new();
    let mut roots_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in &order {
        let (e, a) = (expected.stage(name), actual.stage(name));
        let first_row = rows.len();
        let tolerant_artifacts = !strict && on_backend.contains(name);
        let mut own_reasons = Vec::new();
        match (e, a) {
            (Some(e), Some(a)) if a.key.is_some() => {
                own_reasons = stage_rows(e, a, strict, tolerant_artifacts, expected, &mut rows);
            }
            (e, a) => {
                let why = match (e, a) {
                    (None, _) => "not in the lock".to_string(),
                    (_, None) => "not in the recomputation".to_string(),
                    (_, Some(a)) => a
                        .missing
                        .clone()
                        .unwrap_or_else(|| "not reproduced".to_string()),
                };
                rows.push(Row {
                    stage: name.to_string(),
                    item: "stage".to_string(),
                    expected: e.and_then(|s| s.key.clone()),
                    actual: a.map(|_| why.clone()),
                    outcome: Outcome::Different,
                    tolerance: None,
                    delta: None,
                });
                own_reasons.push(why);
            }
        }
        let outcome = rows[first_row..]
            .iter()
            .map(|r| r.outcome)
            .max()
            .unwrap_or(Outcome::Identical);
        let role = (outcome == Outcome::Different).then(|| {
            let mut of: Vec<String> = upstream(name)
                .iter()
                .filter_map(|u| roots_of.get(u))
                .flatten()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if of.is_empty() {
                if own_reasons.is_empty() {
                    own_reasons.push(
                        "same inputs, different outputs: the stage is not deterministic here"
                            .to_string(),
                    );
                }
                roots_of.insert(name.to_string(), vec![name.to_string()]);
                StageRole::RootCause {
                    reasons: own_reasons,
                }
            } else {
                of.dedup();
                roots_of.insert(name.to_string(), of.clone());
                StageRole::Consequence { of }
            }
        });
        verdicts.push(StageVerdict {
            stage: name.to_string(),
            outcome,
            role,
        });
    }
    let mut counts = BTreeMap::new();
    for o in [
        Outcome::Identical,
        Outcome::WithinTolerance,
        Outcome::Different,
    ] {
        counts.insert(o.label(), rows.iter().filter(|r| r.outcome == o).count());
    }
    let root_cause = verdicts
        .iter()
        .find(|v| matches!(v.role, Some(StageRole::RootCause { .. })))
        .map(|v| v.stage.clone());
    Verification {
        experiment: expected.experiment.clone(),
        reference: reference.to_string(),
        expected_platform: expected.platform.clone(),
        actual_platform: actual.platform.clone(),
        mode: if strict { "identical" } else { "tolerance" },
        policy: expected.tolerance.describe(),
        policy_source: format!("the policy of {reference}"),
        ok: rows.iter().all(|r| r.outcome != Outcome::Different),
        counts,
        root_cause,
        stages: verdicts,
        rows,
    }
}

/// The rows of one stage present on both sides; returns the reasons that make it differ on
/// its own account (its key JSON's differences other than upstream outputs, or its metrics).
fn stage_rows(
    e: &LockStage,
    a: &LockStage,
    strict: bool,
    tolerant_artifacts: bool,
    expected: &Lock,
    rows: &mut Vec<Row>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let row = |item: String, ev: Option<String>, av: Option<String>, outcome| Row {
        stage: e.name.clone(),
        item,
        expected: ev,
        actual: av,
        outcome,
        tolerance: None,
        delta: None,
    };
    // The key: its JSON says why it differs. Upstream outputs are judged on their own rows,
    // and across backends the backend itself is expected to differ.
    // The key JSON is compared too: a lock edited by hand keeps its hash but not its JSON.
    let same_json = match (&e.key_json, &a.key_json) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    let key_outcome = if e.key == a.key && same_json {
        Outcome::Identical
    } else {
        let why: Vec<Reason> = match (&e.key_json, &a.key_json) {
            (Some(ej), Some(aj)) => explain_json(ej, aj),
            _ => vec![Reason::RecordMissing],
        };
        let own: Vec<String> = why
            .iter()
            .filter(|r| !matches!(r, Reason::UpstreamChanged { .. }))
            .filter(|r| strict || !matches!(r, Reason::BackendChanged { .. }))
            .map(|r| match r {
                Reason::RecordMissing => "key differs".to_string(),
                Reason::KeyFormatChanged => {
                    "key differs (a key JSON that is not this binary's key layout)".to_string()
                }
                other => other.to_string(),
            })
            .collect();
        let upstream_only = own.is_empty();
        reasons.extend(own);
        if upstream_only && tolerant_artifacts {
            Outcome::WithinTolerance
        } else {
            Outcome::Different
        }
    };
    rows.push(row(
        "key".to_string(),
        e.key.clone(),
        a.key.clone(),
        key_outcome,
    ));
    let artifact = |ev: Option<&String>, av: Option<&String>| match (ev, av) {
        (Some(x), Some(y)) if x == y => Outcome::Identical,
        (Some(_), Some(_)) if tolerant_artifacts => Outcome::WithinTolerance,
        _ => Outcome::Different,
    };
    let outs: BTreeSet<&String> = e.outs.keys().chain(a.outs.keys()).collect();
    for o in outs {
        let (ev, av) = (e.outs.get(o), a.outs.get(o));
        rows.push(row(
            format!("out {o}"),
            ev.cloned(),
            av.cloned(),
            artifact(ev, av),
        ));
    }
    rows.push(row(
        "object".to_string(),
        e.object.clone(),
        a.object.clone(),
        artifact(e.object.as_ref(), a.object.as_ref()),
    ));
    let metrics: BTreeSet<&String> = e.metrics.keys().chain(a.metrics.keys()).collect();
    for m in metrics {
        let (ev, av) = (e.metrics.get(m), a.metrics.get(m));
        let tolerance = if strict {
            None
        } else {
            expected.tolerance.tolerance_for(m)
        };
        let outcome = metric_outcome(ev, av, tolerance);
        let delta = match (ev.and_then(Value::as_f64), av.and_then(Value::as_f64)) {
            (Some(x), Some(y)) if outcome != Outcome::Identical => Some(y - x),
            _ => None,
        };
        if outcome == Outcome::Different {
            let mut why = format!("{} → {}", show(ev), show(av));
            if let Some(d) = delta {
                let _ = write!(why, ", Δ {}", delta_text(d));
            }
            if let Some(t) = tolerance {
                let _ = write!(why, ", tolerance ±{t}");
            }
            reasons.push(format!("metric `{m}` differs ({why})"));
        }
        rows.push(Row {
            tolerance: tolerance.filter(|_| outcome == Outcome::WithinTolerance),
            delta,
            ..row(m.clone(), ev.map(value_text), av.map(value_text), outcome)
        });
    }
    reasons
}

fn metric_outcome(e: Option<&Value>, a: Option<&Value>, tolerance: Option<f64>) -> Outcome {
    match (e, a) {
        (Some(x), Some(y)) if x == y => Outcome::Identical,
        (Some(x), Some(y)) => match (x.as_f64(), y.as_f64(), tolerance) {
            (Some(x), Some(y), Some(t)) if (x - y).abs() <= t * (1.0 + 1e-9) => {
                Outcome::WithinTolerance
            }
            _ => Outcome::Different,
        },
        _ => Outcome::Different,
    }
}

/// A metric's difference, signed, readable at the scale of AUCs and of losses alike.
pub fn delta_text(d: f64) -> String {
    if d == 0.0 || d.abs() >= 1e-3 {
        format!("{d:+.4}")
    } else {
        format!("{d:+.1e}")
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "absent".to_string(), value_text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::lock::TolerancePolicy;
    use serde_json::json;

    /// A key JSON of this binary's layout.
    fn key_json(kind: &str, seed: u64) -> Value {
        json!({"key_format": 1, "kind": kind,
               "config": {"params": {}, "outs": {}, "config": null}, "inputs": {},
               "code": {"builtin": "b", "cmd": null, "files": {}}, "seed": seed, "backend": null})
    }

    fn stage(name: &str, kind: &str, up: &[&str], out: &str, metrics: Value) -> LockStage {
        LockStage {
            name: name.to_string(),
            kind: kind.to_string(),
            key: Some(format!("key-{name}")),
            object: Some(format!("obj-{name}-{out}")),
            outs: BTreeMap::from([("out".to_string(), out.to_string())]),
            metrics: serde_json::from_value(metrics).unwrap(),
            upstream: up.iter().map(|s| s.to_string()).collect(),
            key_json: Some(key_json(kind, 1)),
            missing: None,
        }
    }

    fn lock(backend: &str, stages: Vec<LockStage>) -> Lock {
        Lock {
            format: 1,
            experiment: "x".to_string(),
            file: "experiments/x.yaml".to_string(),
            experiment_digest: String::new(),
            created_at: String::new(),
            binary_identity: String::new(),
            code_identity: BTreeMap::new(),
            platform: Platform {
                os: "linux".to_string(),
                arch: "x86_64".to_string(),
                backend: backend.to_string(),
                kernels: Some("simd V3, gemm fma k-block 512".to_string()),
            },
            tolerance: TolerancePolicy::default_for("cpu"),
            data: BTreeMap::from([("data/a.csv".to_string(), "d1".to_string())]),
            stages,
        }
    }

    fn pipeline(train_out: &str, auc: f64) -> Vec<LockStage> {
        vec![
            stage("prep", "command", &[], "p", json!({})),
            stage(
                "train",
                "train",
                &["prep"],
                train_out,
                json!({"n_train": 10}),
            ),
            stage("eval", "evaluate", &["train"], "e", json!({"auc/m/c": auc})),
        ]
    }

    #[test]
    fn identical_runs_verify_identical() {
        let v = verdict(
            &lock("cpu", pipeline("t", 0.8)),
            &lock("cpu", pipeline("t", 0.8)),
            "l",
        );
        assert!(v.ok);
        assert_eq!(v.mode, "identical");
        assert_eq!(v.counts["different"], 0);
        assert_eq!(v.root_cause, None);
    }

    #[test]
    fn the_first_differing_stage_is_the_root_and_downstream_are_consequences() {
        let v = verdict(
            &lock("cpu", pipeline("t", 0.8)),
            &lock("cpu", pipeline("t2", 0.81)),
            "l",
        );
        assert!(!v.ok);
        assert_eq!(v.root_cause.as_deref(), Some("train"));
        assert_eq!(
            v.verdict("eval").unwrap().role,
            Some(StageRole::Consequence {
                of: vec!["train".to_string()]
            })
        );
        assert_eq!(v.verdict("prep").unwrap().outcome, Outcome::Identical);
    }

    #[test]
    fn across_backends_metrics_within_tolerance_pass() {
        let v = verdict(
            &lock("cpu", pipeline("t", 0.8)),
            &lock("cuda", pipeline("t2", 0.804)),
            "l",
        );
        assert_eq!(v.mode, "tolerance");
        assert!(v.ok, "{:#?}", v.rows);
        assert_eq!(v.verdict("eval").unwrap().outcome, Outcome::WithinTolerance);
        let beyond = verdict(
            &lock("cpu", pipeline("t", 0.8)),
            &lock("cuda", pipeline("t2", 0.81)),
            "l",
        );
        assert!(!beyond.ok);
        assert_eq!(beyond.root_cause.as_deref(), Some("eval"));
        // Both say by how much: the table's RESULT cell and the root cause's reason.
        let table = crate::verify::render_table(&v);
        assert!(
            table.contains("within tolerance (±0.005, Δ +0.0040)"),
            "{table}"
        );
        let table = crate::verify::render_table(&beyond);
        assert!(
            table.contains("different (Δ +0.0100) (root cause)"),
            "{table}"
        );
        assert!(
            table.contains("(0.8 → 0.81, Δ +0.0100, tolerance ±0.005)"),
            "{table}"
        );
    }

    #[test]
    fn deltas_read_at_the_scale_of_aucs_and_of_losses() {
        assert_eq!(delta_text(0.0071), "+0.0071");
        assert_eq!(delta_text(-0.0123456), "-0.0123");
        assert_eq!(delta_text(1.9e-8), "+1.9e-8");
        assert_eq!(delta_text(-4.0e-4), "-4.0e-4");
    }

    #[test]
    fn a_stage_off_the_backend_must_stay_identical_across_backends() {
        let mut other = pipeline("t", 0.8);
        other[0]
            .outs
            .insert("out".to_string(), "changed".to_string());
        let v = verdict(&lock("cpu", pipeline("t", 0.8)), &lock("cuda", other), "l");
        assert_eq!(v.root_cause.as_deref(), Some("prep"));
    }

    #[test]
    fn a_changed_seed_is_named_as_the_reason() {
        let mut other = pipeline("t", 0.8);
        other[1].key = Some("other".to_string());
        other[1].key_json = Some(key_json("train", 2));
        let v = verdict(&lock("cpu", pipeline("t", 0.8)), &lock("cpu", other), "l");
        assert_eq!(
            v.verdict("train").unwrap().role,
            Some(StageRole::RootCause {
                reasons: vec!["seed changed (1 → 2)".to_string()]
            })
        );
    }

    #[test]
    fn other_cpu_kernels_on_the_same_platform_compare_metrics_within_tolerance() {
        let mut here = lock("cpu", pipeline("t2", 0.803));
        here.platform.kernels = Some("simd V2, gemm scalar".to_string());
        let v = verdict(&lock("cpu", pipeline("t", 0.8)), &here, "l");
        assert_eq!(v.mode, "tolerance");
        assert!(v.ok, "{:#?}", v.rows);
        assert_eq!(v.verdict("eval").unwrap().outcome, Outcome::WithinTolerance);
        let line = crate::verify::render_table(&v);
        assert!(line.contains("kernels simd V3"), "{line}");
        assert!(line.contains("kernels simd V2"), "{line}");
        // The same kernels: the same bits are required.
        let same = verdict(
            &lock("cpu", pipeline("t", 0.8)),
            &lock("cpu", pipeline("t2", 0.803)),
            "l",
        );
        assert_eq!(same.mode, "identical");
        assert!(!same.ok);
    }
}
