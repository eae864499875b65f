//! Reviewer bundles: one `.tar.gz` with everything needed to check a run offline, except the
//! data (its digests are inside).
//!
//! Layout, flat: `bundle.json` (index: format, experiment, run id, experiment path, SHA-256 of
//! every other file), `experiment.yaml`, `experiment.lock` (the run as a lock), `manifest.json`,
//! `provenance.json`, `data-digests.json`, and when the run has them `results.json`,
//! `report.html`, `verification.json`, `verification.html`. Archives are deterministic: sorted
//! entries, fixed times, owners and modes, so bundling the same run twice gives the same bytes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::VerifyError;

pub const BUNDLE_FORMAT: u32 = 1;
pub const INDEX: &str = "bundle.json";
pub const EXPERIMENT: &str = "experiment.yaml";
pub const LOCK: &str = "experiment.lock";
pub const MANIFEST: &str = "manifest.json";

/// `bundle.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleIndex {
    pub format: u32,
    pub experiment: String,
    pub run_id: String,
    /// Where the experiment file lives in the workspace it was run from.
    pub file: String,
    /// File name in the bundle → SHA-256 of its bytes.
    pub files: BTreeMap<String, String>,
}

/// Whether `path` names a bundle rather than an experiment or a run.
pub fn is_bundle(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s.ends_with(".tar.gz") || s.ends_with(".tgz")
}

/// Writes the bundle: `files` (name → bytes) plus the index.
pub fn write_bundle(
    out: &Path,
    experiment: &str,
    run_id: &str,
    file: &str,
    files: BTreeMap<String, Vec<u8>>,
) -> Result<(), VerifyError> {
    let index = BundleIndex {
        format: BUNDLE_FORMAT,
        experiment: experiment.to_string(),
        run_id: run_id.to_string(),
        file: file.to_string(),
        files: files
            .iter()
            .map(|(n, b)| (n.clone(), crate::fingerprint::hash_bytes(b)))
            .collect(),
    };
    let mut all = files;
    let mut idx = serde_json::to_vec_pretty(&index).expect("the index serializes");
    idx.push(b'\n');
    all.insert(INDEX.to_string(), idx);
    let write_err = |source| VerifyError::Write {
        path: out.to_path_buf(),
        source,
    };
    let tmp = PathBuf::from(format!("{}.tmp", out.display()));
    let f = std::fs::File::create(&tmp).map_err(write_err)?;
    let gz = flate2::GzBuilder::new().write(f, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, bytes) in &all {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes.as_slice())
            .map_err(write_err)?;
    }
    let gz = tar.into_inner().map_err(write_err)?;
    gz.finish().map_err(write_err)?;
    std::fs::rename(&tmp, out).map_err(write_err)
}

/// Reads a bundle into memory, checking every file against the index. Only plain files with
/// plain names are accepted: nothing is ever written outside the caller's folder.
pub fn read_bundle(path: &Path) -> Result<(BundleIndex, BTreeMap<String, Vec<u8>>), VerifyError> {
    let bad = |message: String| VerifyError::BadBundle {
        path: path.to_path_buf(),
        message,
    };
    let f = std::fs::File::open(path).map_err(|source| VerifyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut files = BTreeMap::new();
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if !entry.header().entry_type().is_file() || name.contains('/') || name.starts_with('.') {
            return Err(bad(format!("unexpected entry `{name}`")));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(e.to_string()))?;
        files.insert(name, bytes);
    }
    let index: BundleIndex = files
        .get(INDEX)
        .ok_or_else(|| bad(format!("no `{INDEX}`")))
        .and_then(|b| serde_json::from_slice(b).map_err(|e| bad(format!("`{INDEX}`: {e}"))))?;
    if index.format != BUNDLE_FORMAT {
        return Err(bad(format!("it has format {}", index.format)));
    }
    for (name, digest) in &index.files {
        match files.get(name) {
            None => return Err(bad(format!("`{name}` is listed but missing"))),
            Some(b) if crate::fingerprint::hash_bytes(b) != *digest => {
                return Err(bad(format!("`{name}` does not match its digest")));
            }
            Some(_) => {}
        }
    }
    for required in [EXPERIMENT, LOCK, MANIFEST] {
        if !index.files.contains_key(required) {
            return Err(bad(format!("no `{required}`")));
        }
    }
    files.retain(|n, _| n == INDEX || index.files.contains_key(n));
    Ok((index, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_are_deterministic_and_checked() {
        let d = tempfile::tempdir().unwrap();
        let files = BTreeMap::from([
            (EXPERIMENT.to_string(), b"experiment: x\n".to_vec()),
            (LOCK.to_string(), b"{}\n".to_vec()),
            (MANIFEST.to_string(), b"{}\n".to_vec()),
        ]);
        let (a, b) = (d.path().join("a.tar.gz"), d.path().join("b.tar.gz"));
        write_bundle(&a, "x", "r", "experiments/x.yaml", files.clone()).unwrap();
        write_bundle(&b, "x", "r", "experiments/x.yaml", files.clone()).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let (index, back) = read_bundle(&a).unwrap();
        assert_eq!(index.run_id, "r");
        assert_eq!(back[EXPERIMENT], files[EXPERIMENT]);
        assert!(is_bundle(&a));
        std::fs::write(&b, b"not a bundle").unwrap();
        assert!(matches!(
            read_bundle(&b),
            Err(VerifyError::BadBundle { .. })
        ));
    }
}
