//! The cohort table: what data stages (`synth`, `cohort`) write and model stages read.
//!
//! A cohort is a folder:
//!
//! ```text
//! cohort.json   {"format":1, "name", "n", "ids", "labels" (0/1, absent when unlabeled),
//!                "imaging": {"tokens", "width", "present"}, "clinical": {…},
//!                "true_logit" (synthetic cohorts only: the label's true logit, for the Bayes AUC)}
//! imaging.f32   little-endian f32, [n, tokens, width], zeros where the modality is missing
//! clinical.f32  the same for the clinical modality
//! ```
//!
//! Owns reading, writing and validating that layout; knows nothing of how cohorts are made or
//! used. A missing modality is marked in `present` and must be masked by models, never imputed.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const COHORT_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CohortError {
    #[error("cannot read cohort `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cohort `{path}` is malformed: {message}")]
    Malformed { path: PathBuf, message: String },
}

/// The fewest patients of each class a labeled table may have: an AUC needs both classes and
/// DeLong's variance needs two of each. The `cohort` stage and `orchestrate stats` apply the
/// same rule, through [`check_classes`].
pub const MIN_PER_CLASS: usize = 2;

/// Refuses labels that no evaluation could use: one class only, or fewer than
/// [`MIN_PER_CLASS`] of either.
pub fn check_classes(n_pos: usize, n_neg: usize) -> Result<(), String> {
    if n_pos == 0 || n_neg == 0 {
        return Err(format!(
            "only one class present ({n_pos} positive, {n_neg} negative): an AUC needs both"
        ));
    }
    if n_pos < MIN_PER_CLASS || n_neg < MIN_PER_CLASS {
        return Err(format!(
            "too few of one class ({n_pos} positive, {n_neg} negative): DeLong intervals need at \
             least {MIN_PER_CLASS} of each"
        ));
    }
    Ok(())
}

/// One modality: `tokens` vectors of `width` features per patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Modality {
    pub tokens: usize,
    pub width: usize,
    /// Per patient: whether this modality was observed.
    pub present: Vec<bool>,
    /// `[n, tokens, width]`, row-major; zeros where not present.
    #[serde(skip)]
    pub values: Vec<f32>,
}

impl Modality {
    pub fn zeros(n: usize, tokens: usize, width: usize) -> Modality {
        Modality {
            tokens,
            width,
            present: vec![true; n],
            values: vec![0.0; n * tokens * width],
        }
    }

    /// The features of patient `i`: `tokens * width` values.
    pub fn patient(&self, i: usize) -> &[f32] {
        let k = self.tokens * self.width;
        &self.values[i * k..(i + 1) * k]
    }

    pub fn patient_mut(&mut self, i: usize) -> &mut [f32] {
        let k = self.tokens * self.width;
        &mut self.values[i * k..(i + 1) * k]
    }
}

/// A set of patients with both modalities (possibly missing) and optional binary labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    pub format: u32,
    pub name: String,
    pub n: usize,
    pub ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<u8>>,
    pub imaging: Modality,
    pub clinical: Modality,
    /// Synthetic cohorts: the true logit of each label (the Bayes-optimal score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_logit: Option<Vec<f64>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CohortError + '_ {
    move |source| CohortError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_f32(path: &Path, values: &[f32]) -> Result<(), CohortError> {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    fs::write(path, bytes).map_err(io_err(path))
}

fn read_f32(path: &Path, expected: usize) -> Result<Vec<f32>, CohortError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    if bytes.len() != expected * 4 {
        return Err(CohortError::Malformed {
            path: path.to_path_buf(),
            message: format!(
                "holds {} bytes, expected {} ({} f32 values)",
                bytes.len(),
                expected * 4,
                expected
            ),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

impl Cohort {
    pub fn prevalence(&self) -> Option<f64> {
        self.labels
            .as_ref()
            .filter(|l| !l.is_empty())
            .map(|l| l.iter().map(|&y| y as f64).sum::<f64>() / l.len() as f64)
    }

    /// Checks the invariants every reader relies on.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.n;
        if self.ids.len() != n {
            return Err(format!("{} ids for n = {n}", self.ids.len()));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(format!("patient id `{dup}` appears twice"));
        }
        if let Some(l) = &self.labels {
            if l.len() != n {
                return Err(format!("{} labels for n = {n}", l.len()));
            }
            if let Some(bad) = l.iter().find(|&&y| y > 1) {
                return Err(format!("label {bad} is not 0 or 1"));
            }
        }
        for (name, m) in [("imaging", &self.imaging), ("clinical", &self.clinical)] {
            if m.present.len() != n {
                return Err(format!(
                    "{name}: {} presence flags for n = {n}",
                    m.present.len()
                ));
            }
            if m.values.len() != n * m.tokens * m.width {
                return Err(format!(
                    "{name}: {} values for [{n}, {}, {}]",
                    m.values.len(),
                    m.tokens,
                    m.width
                ));
            }
            if let Some(i) = m.values.iter().position(|v| !v.is_finite()) {
                let k = (m.tokens * m.width).max(1);
                return Err(format!(
                    "{name}: patient `{}` has a NaN or infinite feature",
                    self.ids[i / k]
                ));
            }
        }
        if let Some(t) = &self.true_logit
            && t.len() != n
        {
            return Err(format!("{} true logits for n = {n}", t.len()));
        }
        Ok(())
    }

    /// Writes the cohort into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> Result<(), CohortError> {
        self.validate().map_err(|message| CohortError::Malformed {
            path: dir.to_path_buf(),
            message,
        })?;
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let meta = dir.join("cohort.json");
        // Streamed: a cohort of a million ids never exists twice in memory.
        let mut out = std::io::BufWriter::new(fs::File::create(&meta).map_err(io_err(&meta))?);
        serde_json::to_writer(&mut out, self).map_err(|e| CohortError::Malformed {
            path: meta.clone(),
            message: e.to_string(),
        })?;
        std::io::Write::flush(&mut out).map_err(io_err(&meta))?;
        write_f32(&dir.join("imaging.f32"), &self.imaging.values)?;
        write_f32(&dir.join("clinical.f32"), &self.clinical.values)?;
        Ok(())
    }

    /// Reads and validates a cohort folder.
    pub fn read(dir: &Path) -> Result<Cohort, CohortError> {
        let meta = dir.join("cohort.json");
        let bytes = fs::read(&meta).map_err(io_err(&meta))?;
        let mut c: Cohort = serde_json::from_slice(&bytes).map_err(|e| CohortError::Malformed {
            path: meta.clone(),
            message: e.to_string(),
        })?;
        if c.format != COHORT_FORMAT {
            return Err(CohortError::Malformed {
                path: meta,
                message: format!("format {} (this binary reads {COHORT_FORMAT})", c.format),
            });
        }
        c.imaging.values = read_f32(
            &dir.join("imaging.f32"),
            c.n * c.imaging.tokens * c.imaging.width,
        )?;
        c.clinical.values = read_f32(
            &dir.join("clinical.f32"),
            c.n * c.clinical.tokens * c.clinical.width,
        )?;
        c.validate().map_err(|message| CohortError::Malformed {
            path: dir.to_path_buf(),
            message,
        })?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Cohort {
        let mut imaging = Modality::zeros(2, 2, 3);
        imaging.values[0] = 1.5;
        let mut clinical = Modality::zeros(2, 1, 2);
        clinical.present[1] = false;
        Cohort {
            format: COHORT_FORMAT,
            name: "t".into(),
            n: 2,
            ids: vec!["a".into(), "b".into()],
            labels: Some(vec![0, 1]),
            imaging,
            clinical,
            true_logit: None,
        }
    }

    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let c = tiny();
        c.write(d.path()).unwrap();
        assert_eq!(Cohort::read(d.path()).unwrap(), c);
    }

    #[test]
    fn invariants_are_checked() {
        let mut c = tiny();
        c.ids[1] = "a".into();
        assert!(c.validate().unwrap_err().contains("appears twice"));
        let mut c = tiny();
        c.labels = Some(vec![0, 2]);
        assert!(c.validate().is_err());
        let mut c = tiny();
        c.imaging.values[3] = f32::NAN;
        assert!(c.validate().unwrap_err().contains("patient `a`"));
    }
}
