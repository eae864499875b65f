//! `report` stages: render `results.json` (and any training curves) into one self-contained
//! `report.html`, through the same renderer as the run report (`crate::report`).
//!
//! Deps: `results` (an evaluate stage's `results`; gather variants with
//! `stage:evaluate[*]/results`); every other dep is a training curve: the `curve` output of
//! `pretrain`/`train` stages, or any JSON `{"epochs": [1, 2, …], "series": {"loss": […], …},
//! "collapsed": bool, "collapse_std": x}`. Output: `report` (`report.html`).
//!
//! Inside a stage the run's provenance and the experiment's `paper:` block are unknown; the run
//! report that `orchestrate run` writes beside the manifest adds them. This kind's code identity
//! covers `src/report` and `templates/` only: editing a template re-renders, retrains nothing.

use std::io::Write;

use serde_json::{Value, json};

use super::StageError;
use super::config::{ConfigError, from_task, typed};
use crate::kinds::DepSpec;
use crate::report::input::{CurveInput, EvaluationInput, ReportConfig, SECTIONS, split_results};
use crate::report::{ReportInputs, Templates, render_report};
use crate::task::TaskFile;

pub const DEPS: DepSpec = DepSpec {
    required: &["results"],
    optional: &["*"],
};

pub fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    let (c, json) = typed::<ReportConfig>(raw)?;
    for (i, s) in c.sections.iter().enumerate() {
        if !SECTIONS.contains(&s.as_str()) {
            return Err(ConfigError {
                path: vec!["sections".into(), format!("[{i}]")],
                message: format!("unknown section `{s}` (sections: {})", SECTIONS.join(", ")),
            });
        }
    }
    Ok(json)
}

pub fn outputs(_config: &Value) -> Vec<(String, String)> {
    vec![("report".to_string(), "report.html".to_string())]
}

fn read_json(path: &std::path::Path) -> Result<Value, StageError> {
    let bytes = std::fs::read(path).map_err(StageError::io("read", path))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| StageError::Input(format!("`{}` is not JSON: {e}", path.display())))
}

pub fn run(task: &TaskFile, log: &mut dyn Write) -> Result<Value, StageError> {
    let config: ReportConfig = from_task(&task.config)?;
    let mut evaluations = Vec::new();
    let results = task
        .inputs
        .get("results")
        .ok_or_else(|| super::pretrain::missing("results"))?;
    for (k, path) in results.iter().enumerate() {
        for (stage, doc) in split_results(&read_json(path)?) {
            let doc = crate::results::parse(doc).map_err(|e| {
                StageError::Input(format!(
                    "`{}` is not an evaluate results file: {e}",
                    path.display()
                ))
            })?;
            evaluations.push(EvaluationInput {
                stage: stage.or_else(|| (results.len() > 1).then(|| format!("results #{}", k + 1))),
                coords: Vec::new(),
                results: doc,
            });
        }
    }
    let mut curves = Vec::new();
    for (name, paths) in task.inputs.iter().filter(|(n, _)| *n != "results") {
        for (k, path) in paths.iter().enumerate() {
            curves.push(CurveInput {
                name: if paths.len() == 1 {
                    name.clone()
                } else {
                    format!("{name} #{}", k + 1)
                },
                curve: read_json(path)?,
                collapsed: None,
                collapse_std: None,
            });
        }
    }
    let inputs = ReportInputs {
        experiment: config.title.clone().unwrap_or_else(|| task.stage.clone()),
        description: None,
        config,
        evaluations,
        curves,
        paper: Value::Null,
        run: None,
    };
    let (view, html) =
        render_report(&inputs, &Templates::embedded()).map_err(StageError::report)?;
    let out = task.out_dir.join("report.html");
    std::fs::write(&out, &html).map_err(StageError::io("write", &out))?;
    let _ = writeln!(
        log,
        "report: {} evaluation(s), {} curve(s), {} bytes",
        view.evaluations.len(),
        view.curves.len(),
        html.len()
    );
    for w in &view.warnings {
        let _ = writeln!(log, "warning: {w}");
    }
    Ok(json!({
        "evaluations": view.evaluations.len(),
        "curves": view.curves.len(),
        "bytes": html.len(),
        "warnings": view.warnings.len(),
    }))
}
