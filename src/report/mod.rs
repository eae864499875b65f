//! Reports: self-contained HTML pages (inline CSS and SVG, no scripts, no network) that show an
//! evaluation's results with the method behind every number, training curves, the published
//! numbers beside ours, and the run's provenance.
//!
//! Flow: typed inputs ([`input`]) → a serializable view model ([`view`], with figures drawn by
//! [`figures`] on the small SVG kit [`svg`], numbers formatted by [`format`](mod@format)) → minijinja
//! templates ([`render`]). The `report` stage, the run-level report written by `orchestrate run`
//! ([`run`]) and `orchestrate report` share this one path; `orchestrate compare` builds its own
//! view ([`compare`]) and renders it the same way.
//!
//! Owns: presentation. Must never compute statistics from data (it shows what `evaluate`
//! computed; the one exception is [`map`]'s Holm adjustment of evaluate's p-values across a
//! sweep's grid, which no single evaluation can do), open the store's index, or write anywhere
//! but the report file and its context beside a run.

pub mod build;
pub mod compare;
pub mod context;
pub mod figures;
pub mod format;
pub mod input;
pub mod map;
pub mod render;
pub mod run;
pub mod sites;
pub mod svg;
pub mod view;

use std::path::{Path, PathBuf};

pub use input::{CurveInput, EvaluationInput, ReportConfig, ResultsDoc};
pub use render::Templates;
pub use view::{ReportInputs, ReportView};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "no run `{0}`: give a run folder, EXPERIMENT/RUN-ID, or an experiment name (its latest run)"
    )]
    NoRun(String),
    #[error("cannot read `{path}`: {message}")]
    Input { path: PathBuf, message: String },
    #[error("i/o error on `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("template error: {0}")]
    Template(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Internal(String),
}

impl ReportError {
    pub fn io(path: &Path, source: std::io::Error) -> ReportError {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Builds and renders a report in one call (the `report` stage's path).
pub fn render_report(
    inputs: &ReportInputs,
    templates: &Templates,
) -> Result<(ReportView, String), ReportError> {
    let v = build::build(inputs);
    let html = render::report(&v, templates)?;
    Ok((v, html))
}
