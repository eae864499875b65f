//! `synth` stages: the synthetic environment (docs/study.md, "The synthetic environment"), written
//! as cohort tables.
//!
//! Outputs one cohort folder per split (`unlabeled`, `incomplete`, `finetune`, `internal`,
//! `external`, disjoint patient ids) and `truth.json` with the Bayes AUC of each test cohort.
//! The generator itself lives in [`crate::synth`]; this file only reads the config, writes the
//! folders and reports metrics.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::StageError;
use super::config::{ConfigError, from_task, typed};
use crate::kinds::DepSpec;
pub use crate::synth::SynthConfig;
use crate::task::TaskFile;

/// A synth stage reads nothing.
pub const DEPS: DepSpec = DepSpec {
    required: &[],
    optional: &[],
};

pub const SPLITS: [&str; 5] = [
    "unlabeled",
    "incomplete",
    "finetune",
    "internal",
    "external",
];

pub fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    let (cfg, json) = typed::<SynthConfig>(raw)?;
    cfg.check().map_err(|(key, message)| ConfigError {
        path: vec![key.to_string()],
        message,
    })?;
    Ok(json)
}

pub fn outputs(_config: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = SPLITS
        .iter()
        .map(|s| (s.to_string(), s.to_string()))
        .collect();
    out.push(("truth".to_string(), "truth.json".to_string()));
    out
}

fn metric(v: Option<&Option<f64>>) -> Value {
    v.copied().flatten().map_or(Value::Null, |x| json!(x))
}

pub fn run(task: &TaskFile, log: &mut dyn Write) -> Result<Value, StageError> {
    let cfg: SynthConfig = from_task(&task.config)?;
    cfg.check().map_err(|(key, message)| {
        StageError::Config(ConfigError {
            path: vec![key.to_string()],
            message,
        })
    })?;
    let study = crate::synth::generate(&cfg, task.seed);
    for cohort in &study.cohorts {
        cohort
            .write(&task.out_dir.join(&cohort.name))
            .map_err(StageError::cohort)?;
    }
    let truth = &study.truth;
    let doc = json!({
        "bayes_auc": truth.bayes_auc,
        "prevalence": truth.prevalence,
        "n": truth.n,
        "seed": task.seed,
        "config": task.config,
    });
    let path = task.out_dir.join("truth.json");
    let bytes = serde_json::to_vec_pretty(&doc).expect("JSON values serialize");
    std::fs::write(&path, bytes).map_err(StageError::io("write", &path))?;

    let fmt = |v: Option<&Option<f64>>| match v.copied().flatten() {
        Some(x) => format!("{x:.3}"),
        None => "undefined".to_string(),
    };
    let sizes: Vec<String> = study
        .cohorts
        .iter()
        .map(|c| format!("{} {}", c.name, c.n))
        .collect();
    let summary = format!(
        "synth: seed {}, rho {}, leak {}, shift {}; {}\nbayes AUC internal {}, external {}; prevalence internal {}, external {}\n",
        task.seed,
        cfg.rho,
        cfg.leak,
        cfg.shift,
        sizes.join(", "),
        fmt(truth.bayes_auc.get("internal")),
        fmt(truth.bayes_auc.get("external")),
        fmt(truth.prevalence.get("internal")),
        fmt(truth.prevalence.get("external")),
    );
    log.write_all(summary.as_bytes())
        .map_err(StageError::io("write", Path::new("the log")))?;

    let mut metrics = serde_json::Map::new();
    for split in ["internal", "external"] {
        metrics.insert(
            format!("bayes_auc_{split}"),
            metric(truth.bayes_auc.get(split)),
        );
    }
    for (split, p) in &truth.prevalence {
        metrics.insert(format!("prevalence_{split}"), metric(Some(p)));
    }
    for (split, n) in &truth.n {
        metrics.insert(format!("n_{split}"), json!(n));
    }
    Ok(Value::Object(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohort::Cohort;
    use crate::kinds::StageKind;
    use std::collections::BTreeMap;

    fn task(dir: &std::path::Path, config: Value) -> TaskFile {
        TaskFile {
            format: crate::task::TASK_FORMAT,
            stage: "synth".into(),
            kind: StageKind::Synth,
            workspace: dir.to_path_buf(),
            scratch: dir.to_path_buf(),
            out_dir: dir.join("out"),
            outs: BTreeMap::new(),
            command: None,
            config: resolve(&config).expect("valid config"),
            inputs: BTreeMap::new(),
            seed: 3,
            threads: 1,
            devices: Vec::new(),
            pin_devices: true,
            backend: Default::default(),
        }
    }

    #[test]
    fn output_names_are_the_generated_splits() {
        let generated: Vec<&str> = crate::synth::SPLITS.iter().map(|s| s.name).collect();
        assert_eq!(generated, SPLITS);
    }

    #[test]
    fn defaults_are_filled_and_ranges_checked() {
        let full = resolve(&Value::Null).expect("defaults");
        assert_eq!(full["rho"], 0.5);
        assert_eq!(full["n_internal"], 1000);
        assert_eq!(resolve(&json!({"rho": 0.5})).expect("explicit"), full);
        let err = resolve(&json!({"rho": 2.0})).unwrap_err();
        assert_eq!(err.path, ["rho"]);
        let err = resolve(&json!({"rhoo": 0.5})).unwrap_err();
        assert!(err.message.contains("unknown field"), "{}", err.message);
    }

    #[test]
    fn run_writes_every_split_and_the_truth() {
        let d = tempfile::tempdir().expect("tmp");
        let t = task(
            d.path(),
            json!({"n_unlabeled": 20, "n_incomplete": 20, "n_finetune": 20, "n_internal": 200, "n_external": 200}),
        );
        let mut log = Vec::new();
        let metrics = run(&t, &mut log).expect("runs");
        for (name, rel) in outputs(&t.config) {
            assert!(t.out_dir.join(&rel).exists(), "output {name}");
        }
        let internal = Cohort::read(&t.out_dir.join("internal")).expect("cohort");
        assert_eq!(internal.n, 200);
        let truth: Value =
            serde_json::from_slice(&std::fs::read(t.out_dir.join("truth.json")).expect("truth"))
                .expect("json");
        assert_eq!(
            truth["bayes_auc"]["internal"],
            metrics["bayes_auc_internal"]
        );
        assert_eq!(truth["n"]["external"], 200);
        assert_eq!(truth["config"]["n_external"], 200);
        assert!(metrics["prevalence_internal"].is_number());
        assert!(
            String::from_utf8(log)
                .expect("utf8")
                .contains("bayes AUC internal")
        );
    }
}
