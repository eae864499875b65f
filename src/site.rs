//! External validation at another site: the documents of a site kit (`kit.json`) and of the
//! results a site sends back (`site.json`), both inside archives (`crate::verify::archive`).
//!
//! A kit carries trained models (their files, and the digests and keys they had in the run),
//! the evaluate configuration, the cohort shape the models expect with a small synthetic example,
//! and the code identity of the `predict` and `evaluate` kinds that must run it. Site results
//! carry `results.json`, the digests that tie it to the kit, the models and the site's data (never
//! the data, never per-patient scores unless the site chooses), and provenance.

use serde::{Deserialize, Serialize};

pub const KIT_FORMAT: u32 = 1;
pub const SITE_FORMAT: u32 = 1;
pub const KIT_KIND: &str = "site-kit";
pub const RESULTS_KIND: &str = "site-results";

/// One trained model in a kit: a `predict` stage's model, for one label and training seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KitModel {
    /// The model's name in results (`jepa`), a predict stage's `label`.
    pub label: String,
    pub seed: u64,
    /// The train stage that made it, its key, and the digest of its `model` output.
    pub train_stage: String,
    pub train_key: String,
    pub digest: String,
    /// The folder in the kit that holds its files: `models/<label>-seed<seed>/`.
    pub dir: String,
}

/// The cohort layout the models expect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortShape {
    pub imaging_tokens: usize,
    pub imaging_width: usize,
    pub clinical_tokens: usize,
    pub clinical_width: usize,
}

/// `kit.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KitDoc {
    pub format: u32,
    pub experiment: String,
    pub run_id: String,
    /// When the run finished (so that packing one run twice gives the same bytes).
    pub created_at: String,
    pub orchestrate_version: String,
    pub binary_identity: String,
    /// Code identity of the `predict` and `evaluate` kinds that made the run's results.
    pub predict_code: String,
    pub evaluate_code: String,
    pub backend: String,
    pub models: Vec<KitModel>,
    /// The run's evaluate configuration (comparisons, bootstrap settings, seed, level), as
    /// resolved; at the site every comparison is computed on the site's cohort.
    pub evaluate: serde_json::Value,
    pub cohort: CohortShape,
    /// Folder of a small synthetic cohort in the expected layout (no patient of the run).
    pub example: String,
}

/// One model as the site used it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteModel {
    pub label: String,
    pub seed: u64,
    /// Digest of the model folder the site's predict stage read (recomputed there).
    pub digest: String,
}

/// The site's cohort, described without its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteCohort {
    /// Merkle digest of the cohort folder.
    pub digest: String,
    pub n: usize,
    pub n_pos: usize,
    pub prevalence: f64,
}

/// `site.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteDoc {
    pub format: u32,
    pub site: String,
    /// Digest of the kit's index (which lists every kit file's digest).
    pub kit: String,
    pub experiment: String,
    pub run_id: String,
    pub models: Vec<SiteModel>,
    pub cohort: SiteCohort,
    /// SHA-256 of `results.json` in the same archive.
    pub results: String,
    /// Whether per-patient scores are in the archive (`scores.csv`).
    pub scores_shared: bool,
    pub orchestrate_version: String,
    pub binary_identity: String,
    pub predict_code: String,
    pub evaluate_code: String,
    pub os: String,
    pub arch: String,
    pub backend: String,
    /// RFC 3339 UTC.
    pub computed_at: String,
}

/// A site or model name: letters, digits, `-` and `_`, at most 64 (it names folders and stages).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
