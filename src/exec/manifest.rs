//! Run records: `runs/<experiment>/<run-id>/manifest.json` (every stage's key, output digests,
//! timings, provenance), `logs/<stage>.log` for the stages that ran or failed, and the
//! `runs/<experiment>/latest` link to the newest run.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fingerprint::GitProvenance;

use super::dispatcher::{RunOutcome, StageOutcome};
use crate::dsl::Experiment;

pub const MANIFEST_FORMAT: u32 = 1;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every stage fresh or ran.
    Ok,
    /// A stage failed (and its dependents were skipped).
    Failed,
    /// Ctrl-C or a signal stopped the run.
    Interrupted,
}

/// What became of one stage in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Reused from the store.
    Fresh,
    Ran,
    Failed,
    /// Not started because an upstream stage failed.
    Skipped,
    /// Not reached (the run was interrupted).
    NotRun,
}

macro_rules! status_words {
    ($t:ty { $($v:ident => $w:literal),* $(,)? }) => {
        impl $t {
            /// The word the manifest stores.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $w),* }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}
status_words!(RunStatus { Ok => "ok", Failed => "failed", Interrupted => "interrupted" });
status_words!(StageStatus {
    Fresh => "fresh",
    Ran => "ran",
    Failed => "failed",
    Skipped => "skipped",
    NotRun => "not_run",
});

impl StageStatus {
    /// Whether the stage's outputs are in the store (it ran or was fresh).
    pub fn has_outputs(self) -> bool {
        matches!(self, StageStatus::Fresh | StageStatus::Ran)
    }
}

/// A run's `manifest.json`. Readers refuse another format and unknown fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunManifest {
    pub format: u32,
    pub experiment: String,
    pub run_id: String,
    /// The experiment file, relative to the workspace.
    pub file: String,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub provenance: Provenance,
    pub stages: Vec<StageEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    pub orchestrate_version: String,
    /// Digest of the sources this binary was built from.
    pub binary_identity: String,
    pub git: Option<GitProvenance>,
    pub host: String,
    pub os: String,
    pub arch: String,
    pub cpus: usize,
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageEntry {
    pub name: String,
    pub base: String,
    pub kind: String,
    pub status: StageStatus,
    pub key: Option<String>,
    pub object: Option<String>,
    /// Output name → digest.
    pub outs: BTreeMap<String, String>,
    pub seed: u64,
    /// Sweep coordinates in declared axis order (`seed` last).
    pub coords: indexmap::IndexMap<String, serde_json::Value>,
    pub duration_ms: Option<u64>,
    pub attempts: Option<u32>,
    /// Why the stage ran (empty when fresh).
    pub reasons: Vec<String>,
    pub error: Option<String>,
}

impl RunManifest {
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in &self.stages {
            *m.entry(s.status.as_str().to_string()).or_default() += 1;
        }
        m
    }
}

/// Parses a `manifest.json`: the format must be this binary's, and every field known.
pub fn parse(bytes: &[u8]) -> Result<RunManifest, String> {
    #[derive(Deserialize)]
    struct Format {
        format: Option<serde_json::Value>,
    }
    let head: Format = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    match head.format {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(MANIFEST_FORMAT as u64) => {}
        Some(other) => {
            return Err(format!(
                "manifest format {other} is not this binary's ({MANIFEST_FORMAT})"
            ));
        }
        None => return Err("no `format` field: not a run manifest".to_string()),
    }
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// A new run id: UTC time to the millisecond and a short random suffix, so ids sort by time.
pub fn new_run_id() -> String {
    let now = SystemTime::now();
    let t = humantime::format_rfc3339_millis(now).to_string();
    // 2026-11-28T12:06:27.123Z → 20261128T120627.123Z
    let compact: String = t.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{compact}-{:04x}", (nanos ^ std::process::id()) & 0xffff)
}

pub fn provenance(git: Option<GitProvenance>) -> Provenance {
    Provenance {
        orchestrate_version: env!("CARGO_PKG_VERSION").to_string(),
        binary_identity: crate::fingerprint::BINARY_IDENTITY.to_string(),
        git,
        host: crate::task::host_name(),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        argv: std::env::args().collect(),
    }
}

/// Builds the manifest of a finished (or interrupted) run.
pub fn build(
    exp: &Experiment,
    run_id: &str,
    started: SystemTime,
    outcome: &RunOutcome,
    provenance: Provenance,
) -> RunManifest {
    let stages = exp
        .stages
        .iter()
        .zip(&outcome.stages)
        .zip(&outcome.reasons)
        .map(|((s, o), reasons)| {
            let (status, record, error, attempts) = match o {
                StageOutcome::Fresh(r) => (StageStatus::Fresh, Some(r), None, None),
                StageOutcome::Ran(r) => (StageStatus::Ran, Some(r), None, Some(r.attempts)),
                StageOutcome::Failed {
                    message, attempts, ..
                } => (
                    StageStatus::Failed,
                    None,
                    Some(message.clone()),
                    Some(*attempts),
                ),
                StageOutcome::Skipped { because } => (
                    StageStatus::Skipped,
                    None,
                    Some(format!("upstream `{because}` failed")),
                    None,
                ),
                StageOutcome::NotRun => (StageStatus::NotRun, None, None, None),
            };
            StageEntry {
                name: s.name.clone(),
                base: s.base.clone(),
                kind: s.kind.name().to_string(),
                status,
                key: record.map(|r| r.key.clone()),
                object: record.map(|r| r.object.clone()),
                outs: record
                    .map(|r| {
                        r.outs
                            .iter()
                            .map(|(k, v)| (k.clone(), v.digest.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                seed: s.seed,
                coords: s.coords.iter().cloned().collect(),
                duration_ms: record.map(|r| r.duration_ms),
                attempts,
                reasons: if status == StageStatus::Fresh {
                    Vec::new()
                } else {
                    reasons.iter().map(ToString::to_string).collect()
                },
                error,
            }
        })
        .collect::<Vec<_>>();
    let status = if outcome.interrupted {
        RunStatus::Interrupted
    } else if stages
        .iter()
        .any(|s| matches!(s.status, StageStatus::Failed | StageStatus::Skipped))
    {
        RunStatus::Failed
    } else {
        RunStatus::Ok
    };
    let finished = SystemTime::now();
    RunManifest {
        format: MANIFEST_FORMAT,
        experiment: exp.name.clone(),
        run_id: run_id.to_string(),
        file: exp.file.to_string_lossy().into_owned(),
        status,
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        finished_at: humantime::format_rfc3339_seconds(finished).to_string(),
        duration_ms: finished
            .duration_since(started)
            .map_or(0, |d| d.as_millis() as u64),
        provenance,
        stages,
    }
}

/// Writes the run folder: manifest, logs of stages that ran or failed, and the `latest` link.
///
/// `results` are the results files of the run's `evaluate` stages (stage name → path in the
/// store): one is copied as `results.json`; several are gathered into one `results.json` keyed by
/// stage name.
pub fn write(
    runs_dir: &Path,
    manifest: &RunManifest,
    outcome: &RunOutcome,
    results: &[(String, PathBuf)],
) -> std::io::Result<PathBuf> {
    let exp_dir = runs_dir.join(&manifest.experiment);
    let dir = exp_dir.join(&manifest.run_id);
    fs::create_dir_all(&dir)?;
    for (entry, o) in manifest.stages.iter().zip(&outcome.stages) {
        let (stdout, stderr) = match o {
            StageOutcome::Ran(r) => (&r.stdout, &r.stderr),
            StageOutcome::Failed { stdout, stderr, .. } => (stdout, stderr),
            _ => continue,
        };
        let logs = dir.join("logs");
        fs::create_dir_all(&logs)?;
        let file = logs.join(format!("{}.log", sanitize(&entry.name)));
        fs::write(
            file,
            format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"),
        )?;
    }
    match results {
        [] => {}
        [(_, one)] => {
            fs::copy(one, dir.join("results.json"))?;
        }
        many => {
            let mut all = serde_json::Map::new();
            for (stage, path) in many {
                let v: serde_json::Value =
                    serde_json::from_slice(&fs::read(path)?).map_err(std::io::Error::other)?;
                all.insert(stage.clone(), v);
            }
            let (variants, axes) = grid_of(manifest, many);
            crate::task::write_json_atomic(
                &dir.join("results.json"),
                &serde_json::json!({"evaluations": all, "variants": variants, "axes": axes}),
            )?;
        }
    }
    crate::task::write_json_atomic(&dir.join("manifest.json"), manifest)?;
    // Replace the `latest` link atomically: a reader never finds it missing.
    let tmp = exp_dir.join(format!(".latest-{}", manifest.run_id));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&manifest.run_id, &tmp)?;
    fs::rename(&tmp, exp_dir.join("latest"))?;
    Ok(dir)
}

/// Where each evaluation sits in the sweep's grid: the variants ordered by their coordinates'
/// values (numbers numerically), and each axis with its values in that order. The evaluations
/// themselves are keyed by stage name, which sorts as text (`n=1000` before `n=150`).
fn grid_of(
    manifest: &RunManifest,
    results: &[(String, PathBuf)],
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let mut variants: Vec<(&str, Vec<(String, serde_json::Value)>)> = results
        .iter()
        .map(|(stage, _)| {
            let coords = manifest
                .stages
                .iter()
                .find(|s| &s.name == stage)
                .map(|s| s.coords.clone().into_iter().collect())
                .unwrap_or_default();
            (stage.as_str(), coords)
        })
        .collect();
    variants.sort_by(|a, b| crate::dsl::coords_order(&a.1, &b.1));
    let mut axes: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for (_, coords) in &variants {
        for (k, v) in coords {
            let i = match axes.iter().position(|(n, _)| n == k) {
                Some(i) => i,
                None => {
                    axes.push((k.clone(), Vec::new()));
                    axes.len() - 1
                }
            };
            if !axes[i].1.contains(v) {
                axes[i].1.push(v.clone());
            }
        }
    }
    for (_, values) in &mut axes {
        values.sort_by(crate::dsl::coord_order);
    }
    (
        variants
            .into_iter()
            .map(|(stage, coords)| {
                serde_json::json!({"stage": stage, "coords": coords.into_iter().collect::<serde_json::Map<_, _>>()})
            })
            .collect(),
        axes.into_iter()
            .map(|(name, values)| serde_json::json!({"name": name, "values": values}))
            .collect(),
    )
}

/// A stage name as a file name: brackets and commas are fine, slashes are not.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect()
}

/// The runs recorded under a `runs/` folder.
#[derive(Debug, Default)]
pub struct RunList {
    /// Every readable run manifest, oldest first per experiment.
    pub runs: Vec<RunManifest>,
    /// Manifests that exist but cannot be read (another format, damaged), with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl RunList {
    /// One line per unreadable manifest, for a command to print as a warning.
    pub fn warnings(&self) -> Vec<String> {
        self.unreadable
            .iter()
            .map(|(p, why)| {
                format!(
                    "skipped `{}`: not a run manifest this binary reads ({why})",
                    p.display()
                )
            })
            .collect()
    }
}

/// Every run manifest under `runs_dir`.
pub fn list_runs(runs_dir: &Path) -> RunList {
    let mut out = RunList::default();
    let Ok(exps) = fs::read_dir(runs_dir) else {
        return out;
    };
    let mut exps: Vec<PathBuf> = exps
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    exps.sort();
    for exp in exps {
        if exp
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let Ok(runs) = fs::read_dir(&exp) else {
            continue;
        };
        let mut runs: Vec<PathBuf> = runs
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.is_symlink() && p.join("manifest.json").is_file())
            .collect();
        runs.sort();
        for r in runs {
            let path = r.join("manifest.json");
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| parse(&b))
            {
                Ok(m) => out.runs.push(m),
                Err(why) => out.unreadable.push((path, why)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> RunManifest {
        RunManifest {
            format: MANIFEST_FORMAT,
            experiment: "e".into(),
            run_id: "r".into(),
            file: "experiments/e.yaml".into(),
            status: RunStatus::Failed,
            started_at: "2026-12-02T00:00:00Z".into(),
            finished_at: "2026-12-02T00:00:01Z".into(),
            duration_ms: 1000,
            provenance: provenance(None),
            stages: vec![StageEntry {
                name: "s".into(),
                base: "s".into(),
                kind: "command".into(),
                status: StageStatus::NotRun,
                key: None,
                object: None,
                outs: BTreeMap::new(),
                seed: 1,
                coords: Default::default(),
                duration_ms: None,
                attempts: None,
                reasons: Vec::new(),
                error: None,
            }],
        }
    }

    #[test]
    fn a_manifest_round_trips_and_a_reader_refuses_another_format_or_an_unknown_field() {
        let bytes = serde_json::to_vec(&manifest()).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(r#""status":"failed""#), "{text}");
        assert!(text.contains(r#""status":"not_run""#), "{text}");
        let back = parse(&bytes).unwrap();
        assert_eq!(back.status, RunStatus::Failed);
        assert_eq!(back.stages[0].status, StageStatus::NotRun);
        assert_eq!(back.counts().get("not_run"), Some(&1));

        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["format"] = serde_json::json!(2);
        let e = parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            e.contains("manifest format 2 is not this binary's (1)"),
            "{e}"
        );

        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["stages"][0]["colour"] = serde_json::json!("blue");
        let e = parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");

        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["stages"][0]["status"] = serde_json::json!("half-done");
        let e = parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.contains("unknown variant `half-done`"), "{e}");

        let e = parse(br#"{"experiment": "e"}"#).unwrap_err();
        assert!(e.contains("no `format` field"), "{e}");
    }
}
