//! The lock file: what one complete run of an experiment produced, pinned for reviewers.
//!
//! JSON, pretty-printed with sorted keys, so a lock diffs line by line in review. Nothing in it
//! depends on the machine's paths, host name or clock except `created_at`, which comparisons
//! ignore and which [`write_lock`] keeps when nothing else changed: locking an unchanged run
//! again leaves the file byte-identical.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::VerifyError;
use crate::exec::manifest::RunManifest;
use crate::store::StageRecord;

/// Bumped when the lock layout changes incompatibly.
pub const LOCK_FORMAT: u32 = 1;

/// A locked run. See the README's "For reviewers" section for every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub format: u32,
    pub experiment: String,
    /// The experiment file, workspace-relative.
    pub file: String,
    /// SHA-256 of the experiment file's bytes when the run was made (empty when unknown).
    pub experiment_digest: String,
    /// When the lock was written (RFC 3339 UTC); comparisons ignore it.
    pub created_at: String,
    /// Digest of every source file of the binary that made the run.
    pub binary_identity: String,
    /// Stage kind → code identity, for the kinds the experiment uses.
    pub code_identity: BTreeMap<String, String>,
    pub platform: Platform,
    pub tolerance: TolerancePolicy,
    /// Workspace input path → content digest (the data, never the data itself).
    pub data: BTreeMap<String, String>,
    /// In topological order (the run's order).
    pub stages: Vec<LockStage>,
}

/// Where the locked artifacts were produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    /// Tensor backend of the model stages: `cpu` or `cuda`.
    pub backend: String,
    /// The kernels the model stages ran (`model::backend::cpu_kernels`: SIMD level, gemm path,
    /// gemm's k-block); absent when no stage ran a model. On the same os/arch/backend, different
    /// kernels can change the last bits, so the comparison then uses the tolerances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}, backend {}", self.os, self.arch, self.backend)?;
        if let Some(k) = &self.kernels {
            write!(f, ", kernels {k}")?;
        }
        Ok(())
    }
}

/// The default absolute tolerances where bit-identity is not required (another platform,
/// backend or set of CPU kernels): every AUC and interval bound (`auc`) and the validation AUC
/// of a training run ±0.005; the training monitors (JEPA loss and its baseline, target spread,
/// validation loss) ±0.001, the last digit the reports print. Kernels that sum in another order
/// move these in the 8th digit (measured: JEPA final loss 0.4192997 → 0.4192998 between AVX2
/// and SSE4.2 kernels); a change of 0.001 is a different training curve. Other metrics (counts,
/// best epoch, whether training stopped early) must be identical.
pub const DEFAULT_METRIC_TOLERANCES: &[(&str, f64)] = &[
    ("auc", 0.005),
    ("baseline_loss", 0.001),
    ("best_val_auc", 0.005),
    ("best_val_loss", 0.001),
    ("final_loss", 0.001),
    ("target_std_last", 0.001),
    ("target_std_min", 0.001),
];

/// The widest tolerance a lock may declare for an AUC or an AUC interval bound.
pub const MAX_AUC_TOLERANCE: f64 = 0.05;

/// `auc` and every metric below it (`auc/jepa/internal/delong_lo`).
fn is_auc_metric(name: &str) -> bool {
    name == "auc" || name.starts_with("auc/") || name.ends_with("_auc")
}

/// A tolerance for messages: `0.005`, `1e308`.
fn tol(t: f64) -> String {
    if t != 0.0 && !(1e-4..1e6).contains(&t.abs()) {
        format!("{t:e}")
    } else {
        format!("{t}")
    }
}

/// What counts as reproduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TolerancePolicy {
    /// On the lock's own platform and backend: `identical` (every digest and metric bit for
    /// bit) or `tolerance` (as across backends; the default for CUDA, which is not bit-exact).
    pub same_platform: SamePlatformRule,
    /// Absolute tolerance per metric, applied across platforms or backends. A name covers the
    /// metric of that name and every metric below it: `auc` covers `auc/jepa/internal` and
    /// `auc/jepa/internal/delong_lo`. Metrics not covered must be identical.
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamePlatformRule {
    Identical,
    Tolerance,
}

impl TolerancePolicy {
    /// The defaults: identical on the same platform and kernels (with tolerances on CUDA);
    /// elsewhere AUCs and their interval bounds within ±0.005 ([`DEFAULT_METRIC_TOLERANCES`]).
    pub fn default_for(backend: &str) -> TolerancePolicy {
        TolerancePolicy {
            same_platform: if backend == "cuda" {
                SamePlatformRule::Tolerance
            } else {
                SamePlatformRule::Identical
            },
            metrics: DEFAULT_METRIC_TOLERANCES
                .iter()
                .map(|(n, t)| (n.to_string(), *t))
                .collect(),
        }
    }

    /// Refuses what is no policy at all: a negative or non-finite tolerance, or one wider than
    /// [`MAX_AUC_TOLERANCE`] on an AUC (which would call another model "reproduced").
    pub fn check(&self) -> Result<(), String> {
        for (name, t) in &self.metrics {
            if !t.is_finite() || *t < 0.0 {
                return Err(format!(
                    "`tolerance.metrics.{name}` is {}: a tolerance is a finite number ≥ 0",
                    tol(*t)
                ));
            }
            if is_auc_metric(name) && *t > MAX_AUC_TOLERANCE {
                return Err(format!(
                    "`tolerance.metrics.{name}` is {}: an AUC tolerance above {MAX_AUC_TOLERANCE} \
                     would accept a different model as reproduced",
                    tol(*t)
                ));
            }
        }
        Ok(())
    }

    /// What in this policy is looser than `defaults`, one phrase each; empty when it is as
    /// strict or stricter everywhere.
    pub fn looser_than(&self, defaults: &TolerancePolicy) -> Vec<String> {
        let mut looser = Vec::new();
        if self.same_platform == SamePlatformRule::Tolerance
            && defaults.same_platform == SamePlatformRule::Identical
        {
            looser.push(
                "`same_platform: tolerance` (the default: every item identical on the lock's platform)"
                    .to_string(),
            );
        }
        for (name, t) in &self.metrics {
            match defaults.tolerance_for(name) {
                Some(d) if *t <= d => {}
                Some(d) => looser.push(format!("`{name}` ±{} (the default: ±{})", tol(*t), tol(d))),
                None if *t == 0.0 => {}
                None => looser.push(format!("`{name}` ±{} (the default: identical)", tol(*t))),
            }
        }
        looser
    }

    /// The policy in words, for the verdict line.
    pub fn describe(&self) -> String {
        let same = match self.same_platform {
            SamePlatformRule::Identical => {
                "every item identical on the lock's platform and CPU kernels"
            }
            SamePlatformRule::Tolerance => "metrics within tolerance even on the lock's platform",
        };
        let metrics: Vec<String> = self
            .metrics
            .iter()
            .map(|(n, t)| format!("{n} ±{}", tol(*t)))
            .collect();
        format!(
            "{same}; elsewhere {}, other metrics identical",
            if metrics.is_empty() {
                "no tolerances".to_string()
            } else {
                metrics.join(", ")
            }
        )
    }

    /// The absolute tolerance of `metric`: the most specific declared name covering it.
    pub fn tolerance_for(&self, metric: &str) -> Option<f64> {
        let mut name = metric;
        loop {
            if let Some(t) = self.metrics.get(name) {
                return Some(*t);
            }
            name = &name[..name.rfind('/')?];
        }
    }
}

/// One locked stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockStage {
    pub name: String,
    pub kind: String,
    /// `None` when the stage did not complete (only in a failed recomputation, never in a lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Merkle digest of the stage's whole output folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Output name → digest.
    pub outs: BTreeMap<String, String>,
    /// Scalar metrics: the stage record's numbers, flattened with `/`, and for evaluate stages
    /// `auc/MODEL/COHORT` with `/delong_lo`, `/delong_hi`, `/bootstrap_lo`, `/bootstrap_hi`.
    pub metrics: BTreeMap<String, Value>,
    /// The stages whose outputs this one reads.
    pub upstream: Vec<String>,
    /// The canonical JSON the key is the hash of: differences explain themselves
    /// (`config field params.lr changed`, `seed changed`, `input raw content changed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_json: Option<Value>,
    /// Why the stage has no key (`failed: …`, `skipped`), in a recomputation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// Everything a lock is made from: a run's manifest and what the store and the run folder
/// know about each of its stages.
pub struct RunParts<'a> {
    pub manifest: &'a RunManifest,
    /// The store record of each manifest stage, in manifest order (`None` when unavailable,
    /// e.g. collected by `gc`: the lock then has digests but no metrics for it).
    pub records: Vec<Option<StageRecord>>,
    /// `results.json` of evaluate stages, by stage name.
    pub results: BTreeMap<String, Value>,
    /// Stage name → the names of the stages it reads from.
    pub upstream: BTreeMap<String, Vec<String>>,
    /// SHA-256 of the experiment file (empty when unknown).
    pub experiment_digest: String,
    /// The backend the run used, when known from outside the records (`--backend`, the
    /// experiment's `backend:`).
    pub backend: String,
}

impl Lock {
    /// Describes a run as a lock. Stages that did not complete keep their name and kind, with
    /// `missing` saying why.
    pub fn from_run(parts: &RunParts<'_>, tolerance: Option<TolerancePolicy>) -> Lock {
        let m = parts.manifest;
        let mut code_identity = BTreeMap::new();
        let mut data = BTreeMap::new();
        let mut backend = None;
        let mut kernels = BTreeSet::new();
        let mut stages = Vec::with_capacity(m.stages.len());
        for (i, s) in m.stages.iter().enumerate() {
            let record = parts.records.get(i).and_then(Option::as_ref);
            let key_json = record.map(|r| r.key_json.clone());
            if let Some(k) = key_json.as_ref().and_then(crate::plan::KeyDoc::parse) {
                code_identity.insert(s.kind.clone(), k.code.builtin.clone());
                if let Some(b) = &k.backend {
                    backend.get_or_insert_with(|| b.clone());
                }
                for input in k.inputs.values() {
                    if let crate::plan::KeyInput::Path(p) = input {
                        data.insert(p.path.clone(), p.digest.clone());
                    }
                }
            }
            if !code_identity.contains_key(&s.kind)
                && let Some(kind) = crate::kinds::StageKind::parse(&s.kind)
            {
                code_identity.insert(
                    s.kind.clone(),
                    crate::fingerprint::builtin_code_identity(kind).to_string(),
                );
            }
            let mut metrics = BTreeMap::new();
            if let Some(r) = record {
                flatten_metrics("", &r.metrics, &mut metrics);
                if let Some(k) = r.metrics.get("kernels").and_then(Value::as_str) {
                    kernels.insert(k.to_string());
                }
            }
            if let Some(results) = parts.results.get(&s.name) {
                evaluation_metrics(results, &mut metrics);
            }
            let missing = match s.status.as_str() {
                "ran" | "fresh" => None,
                other => Some(match &s.error {
                    Some(e) => format!("{}: {e}", other.replace('_', " ")),
                    None => other.replace('_', " "),
                }),
            };
            stages.push(LockStage {
                name: s.name.clone(),
                kind: s.kind.clone(),
                key: s.key.clone(),
                object: s.object.clone(),
                outs: s.outs.clone(),
                metrics,
                upstream: parts.upstream.get(&s.name).cloned().unwrap_or_default(),
                key_json,
                missing,
            });
        }
        let backend = backend.unwrap_or_else(|| parts.backend.clone());
        Lock {
            format: LOCK_FORMAT,
            experiment: m.experiment.clone(),
            file: m.file.clone(),
            experiment_digest: parts.experiment_digest.clone(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            binary_identity: m.provenance.binary_identity.clone(),
            code_identity,
            platform: Platform {
                os: m.provenance.os.clone(),
                arch: m.provenance.arch.clone(),
                backend: backend.clone(),
                // Stages on machines with different kernels (a mixed cluster) name them all.
                kernels: (!kernels.is_empty())
                    .then(|| kernels.into_iter().collect::<Vec<_>>().join(" | ")),
            },
            tolerance: tolerance.unwrap_or_else(|| TolerancePolicy::default_for(&backend)),
            data,
            stages,
        }
    }

    /// The stage of that name.
    pub fn stage(&self, name: &str) -> Option<&LockStage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Equal in everything comparisons look at (all but `created_at`).
    pub fn same_content(&self, other: &Lock) -> bool {
        let mut a = self.clone();
        a.created_at = other.created_at.clone();
        a == *other
    }
}

/// Metric names whose values describe the machine, not the result: the device index a task was
/// pinned to may differ between two runs on the same platform, and the backend is in the key.
const MACHINE_METRICS: &[&str] = &["device", "backend", "kernels"];

/// Scalar leaves of a stage record's metrics, named by their path joined with `/`. Arrays
/// (curves) are left out: the artifacts they come from are compared by digest.
fn flatten_metrics(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if prefix.is_empty() && MACHINE_METRICS.contains(&k.as_str()) {
                    continue;
                }
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}/{k}")
                };
                flatten_metrics(&name, child, out);
            }
        }
        Value::Array(_) => {}
        scalar if !prefix.is_empty() => {
            out.insert(prefix.to_string(), scalar.clone());
        }
        _ => {}
    }
}

/// The AUC and interval bounds of every model and cohort of an evaluate stage's
/// `results.json`, as `auc/MODEL/COHORT[/delong_lo|/delong_hi|/bootstrap_lo|/bootstrap_hi]`.
fn evaluation_metrics(results: &Value, out: &mut BTreeMap<String, Value>) {
    for m in results["models"].as_array().into_iter().flatten() {
        let (Some(model), Some(cohort)) = (m["model"].as_str(), m["cohort"].as_str()) else {
            continue;
        };
        let base = format!("auc/{model}/{cohort}");
        for (suffix, ptr) in [
            ("", "/auc"),
            ("/delong_lo", "/delong/lo"),
            ("/delong_hi", "/delong/hi"),
            ("/bootstrap_lo", "/bootstrap/lo"),
            ("/bootstrap_hi", "/bootstrap/hi"),
        ] {
            if let Some(v) = m.pointer(ptr) {
                out.insert(format!("{base}{suffix}"), v.clone());
            }
        }
    }
}

/// The lock of an experiment file: `experiments/paper.yaml` → `experiments/paper.lock`.
pub fn lock_path_for(experiment_file: &Path) -> PathBuf {
    experiment_file.with_extension("lock")
}

/// Reads and checks a lock file.
pub fn read_lock(path: &Path) -> Result<Lock, VerifyError> {
    let bytes = std::fs::read(path).map_err(|source| VerifyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_lock(&bytes, path)
}

/// Parses and checks the bytes of a lock file; `path` names it in errors.
pub fn parse_lock(bytes: &[u8], path: &Path) -> Result<Lock, VerifyError> {
    let bad = |message: String| VerifyError::BadLock {
        path: path.to_path_buf(),
        message,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    match v.get("format").and_then(Value::as_u64) {
        Some(f) if f == u64::from(LOCK_FORMAT) => {}
        Some(f) => return Err(bad(format!("it has format {f}"))),
        None => return Err(bad("it has no `format`".to_string())),
    }
    let lock: Lock = serde_path_to_error::deserialize(v).map_err(|e| {
        let at = e.path().to_string();
        bad(format!("at `{at}`: {}", e.inner()))
    })?;
    // A lock may come from a stranger's bundle: its names are names, its policy a policy.
    if !crate::dsl::valid_experiment_name(&lock.experiment) {
        return Err(bad(format!(
            "`experiment` is `{}`, not an experiment name",
            crate::csv::shown(&lock.experiment)
        )));
    }
    if !super::bundle::valid_relative_file(&lock.file) {
        return Err(bad(format!(
            "`file` is `{}`, not a workspace-relative path",
            crate::csv::shown(&lock.file)
        )));
    }
    lock.tolerance.check().map_err(bad)?;
    let names: BTreeSet<&str> = lock.stages.iter().map(|s| s.name.as_str()).collect();
    if names.len() != lock.stages.len() {
        return Err(bad("a stage name appears twice".to_string()));
    }
    Ok(lock)
}

/// The exact bytes of a lock file: pretty JSON (sorted keys) and a final newline.
pub fn lock_bytes(lock: &Lock) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(lock).expect("a lock serializes");
    bytes.push(b'\n');
    bytes
}

/// Writes `lock` to `path` atomically, unless the file already holds the same content (apart
/// from `created_at`): then it is left untouched. Returns whether the file was written.
pub fn write_lock(path: &Path, lock: &Lock) -> Result<bool, VerifyError> {
    if let Ok(old) = read_lock(path)
        && old.same_content(lock)
    {
        return Ok(false);
    }
    let write_err = |source| VerifyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("lock.tmp");
    std::fs::write(&tmp, lock_bytes(lock)).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tolerance_applies_to_a_name_and_everything_below_it() {
        let mut p = TolerancePolicy::default_for("cpu");
        p.metrics.insert("auc/jepa".to_string(), 0.01);
        assert_eq!(p.tolerance_for("auc/imaging/internal"), Some(0.005));
        assert_eq!(p.tolerance_for("auc/jepa/internal/delong_lo"), Some(0.01));
        assert_eq!(p.tolerance_for("aucx"), None);
        assert_eq!(p.tolerance_for("final_loss"), Some(0.001));
        assert_eq!(p.tolerance_for("best_epoch"), None);
    }

    #[test]
    fn policies_that_are_no_policy_are_refused_and_looser_ones_named() {
        let defaults = TolerancePolicy::default_for("cpu");
        let mut p = defaults.clone();
        assert!(p.check().is_ok() && p.looser_than(&defaults).is_empty());
        p.metrics.insert("auc/jepa".to_string(), 0.001);
        assert!(p.looser_than(&defaults).is_empty(), "stricter is fine");
        p.metrics.insert("auc".to_string(), 0.5);
        assert!(p.check().unwrap_err().contains("above 0.05"));
        p.metrics.insert("auc".to_string(), 0.01);
        p.metrics.insert("steps".to_string(), 1e308);
        p.same_platform = SamePlatformRule::Tolerance;
        assert!(p.check().is_ok());
        let looser = p.looser_than(&defaults);
        assert_eq!(looser.len(), 3, "{looser:?}");
        assert!(looser[1].contains("`auc` ±0.01 (the default: ±0.005)"));
        assert!(looser[2].contains("`steps` ±1e308 (the default: identical)"));
        p.metrics.insert("steps".to_string(), -1.0);
        assert!(p.check().unwrap_err().contains("finite number ≥ 0"));
    }

    #[test]
    fn cuda_locks_default_to_tolerances_even_on_the_same_platform() {
        assert_eq!(
            TolerancePolicy::default_for("cuda").same_platform,
            SamePlatformRule::Tolerance
        );
        assert_eq!(
            TolerancePolicy::default_for("cpu").same_platform,
            SamePlatformRule::Identical
        );
    }

    #[test]
    fn metrics_are_flattened_scalars_without_machine_details() {
        let mut out = BTreeMap::new();
        flatten_metrics(
            "",
            &json!({"final_loss": 0.25, "device": "cuda:1", "backend": "cuda",
                    "patients": {"internal": 120}, "curve": [1, 2], "collapsed": false}),
            &mut out,
        );
        assert_eq!(
            out,
            BTreeMap::from([
                ("collapsed".to_string(), json!(false)),
                ("final_loss".to_string(), json!(0.25)),
                ("patients/internal".to_string(), json!(120)),
            ])
        );
    }

    #[test]
    fn evaluation_metrics_name_model_and_cohort() {
        let mut out = BTreeMap::new();
        evaluation_metrics(
            &json!({"models": [{"model": "jepa", "cohort": "internal", "auc": 0.81,
                "delong": {"lo": 0.75, "hi": 0.87, "se": 0.03},
                "bootstrap": {"lo": 0.74, "hi": 0.86}}]}),
            &mut out,
        );
        assert_eq!(out["auc/jepa/internal"], json!(0.81));
        assert_eq!(out["auc/jepa/internal/delong_hi"], json!(0.87));
        assert_eq!(out["auc/jepa/internal/bootstrap_lo"], json!(0.74));
        assert_eq!(out.len(), 5);
    }
}
