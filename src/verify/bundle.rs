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
        files: digests(&files),
    };
    write_indexed(out, INDEX, &index, files)
}

/// Member name → SHA-256 of its bytes.
pub(super) fn digests(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(n, b)| (n.clone(), crate::fingerprint::hash_bytes(b)))
        .collect()
}

/// Writes `files` with `index` (pretty JSON) as their first member `index_name`.
pub(super) fn write_indexed(
    out: &Path,
    index_name: &str,
    index: &impl Serialize,
    mut files: BTreeMap<String, Vec<u8>>,
) -> Result<(), VerifyError> {
    let mut idx = serde_json::to_vec_pretty(index).expect("an index serializes");
    idx.push(b'\n');
    files.insert(index_name.to_string(), idx);
    write_tar(out, index_name, &files)
}

/// Writes `files` as a deterministic `.tar.gz` (`first` first, then by name; no times, owners
/// or modes), through a temporary name.
pub(super) fn write_tar(
    out: &Path,
    first: &str,
    all: &BTreeMap<String, Vec<u8>>,
) -> Result<(), VerifyError> {
    let write_err = |source| VerifyError::Write {
        path: out.to_path_buf(),
        source,
    };
    let tmp = PathBuf::from(format!("{}.tmp", out.display()));
    let f = std::fs::File::create(&tmp).map_err(write_err)?;
    let gz = flate2::GzBuilder::new().write(f, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let order = all
        .get_key_value(first)
        .into_iter()
        .chain(all.iter().filter(|(n, _)| n.as_str() != first));
    for (name, bytes) in order {
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

/// Every file a bundle made by `orchestrate bundle` may hold; anything else is refused.
pub const KNOWN_FILES: &[&str] = &[
    INDEX,
    "data-digests.json",
    LOCK,
    EXPERIMENT,
    MANIFEST,
    "provenance.json",
    "report.html",
    "results.json",
    "verification.html",
    "verification.json",
];

/// The largest member read from a bundle, and the largest index; a bundle's experiment, lock
/// and report are kilobytes to a few megabytes.
pub const MAX_MEMBER_BYTES: u64 = 64 << 20;
pub const MAX_INDEX_BYTES: u64 = 1 << 20;

/// A bundle as read: its index and the bytes of the files a reviewer's machine uses
/// (`experiment.yaml`, `experiment.lock`, `manifest.json`); every other listed file was checked
/// against its digest while streamed, and dropped.
#[derive(Debug)]
pub struct Bundle {
    pub index: BundleIndex,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Files kept in memory by [`read_bundle`].
const KEPT: &[&str] = &[EXPERIMENT, LOCK, MANIFEST];

/// A run id as `orchestrate run` makes them (`20261128T120627.123Z-1a2b`): a name, never a path.
pub fn valid_run_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

/// A workspace-relative file path: relative, only plain components (no `..`, no `.`), at most
/// 1024 bytes.
pub fn valid_relative_file(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && !s.contains('\0')
        && !s.starts_with('/')
        && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Reads and checks a bundle, in bounded memory. The archive is untrusted: `bundle.json` must
/// come first; every other member must be a plain file listed in it, with a known name, at
/// most [`MAX_MEMBER_BYTES`], and match its digest (hashed while streamed); the index's
/// experiment name, run id and file are checked as names, never used as paths by this function.
/// Nothing is written anywhere.
pub fn read_bundle(path: &Path) -> Result<Bundle, VerifyError> {
    let bad = |message: String| VerifyError::BadBundle {
        path: path.to_path_buf(),
        message,
    };
    let f = std::fs::File::open(path).map_err(|source| VerifyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut index: Option<BundleIndex> = None;
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut files = BTreeMap::new();
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let shown = crate::csv::shown(&name);
        if !entry.header().entry_type().is_file() || !KNOWN_FILES.contains(&name.as_str()) {
            return Err(bad(format!(
                "unexpected entry `{shown}` (a bundle holds only the plain files {})",
                KNOWN_FILES.join(", ")
            )));
        }
        let size = entry.header().size().map_err(|e| bad(e.to_string()))?;
        let Some(idx) = &index else {
            if name != INDEX {
                return Err(bad(format!("the first entry is `{shown}`, not `{INDEX}`")));
            }
            if size > MAX_INDEX_BYTES {
                return Err(bad(format!(
                    "`{INDEX}` is {size} bytes (at most {MAX_INDEX_BYTES})"
                )));
            }
            let bytes =
                read_capped(entry, MAX_INDEX_BYTES).map_err(|e| bad(format!("`{INDEX}`: {e}")))?;
            let i: BundleIndex =
                serde_json::from_slice(&bytes).map_err(|e| bad(format!("`{INDEX}`: {e}")))?;
            check_index(&i).map_err(|m| bad(format!("`{INDEX}`: {m}")))?;
            index = Some(i);
            continue;
        };
        if !idx.files.contains_key(&name) {
            return Err(bad(format!(
                "`{shown}` is in the archive but not listed in `{INDEX}`"
            )));
        }
        if seen.contains_key(&name) {
            return Err(bad(format!("`{shown}` appears twice")));
        }
        if size > MAX_MEMBER_BYTES {
            return Err(bad(format!(
                "`{shown}` is {size} bytes (a bundle member may have at most {} MiB)",
                MAX_MEMBER_BYTES >> 20
            )));
        }
        let keep = KEPT.contains(&name.as_str());
        let (digest, bytes) = hash_capped(entry, MAX_MEMBER_BYTES, keep)
            .map_err(|e| bad(format!("`{shown}`: {e}")))?;
        seen.insert(name.clone(), digest);
        if let Some(b) = bytes {
            files.insert(name, b);
        }
    }
    let index = index.ok_or_else(|| bad(format!("no `{INDEX}`")))?;
    for (name, digest) in &index.files {
        match seen.get(name) {
            None => return Err(bad(format!("`{name}` is listed but missing"))),
            Some(d) if d != digest => {
                return Err(bad(format!("`{name}` does not match its digest")));
            }
            Some(_) => {}
        }
    }
    for required in KEPT {
        if !files.contains_key(*required) {
            return Err(bad(format!("no `{required}`")));
        }
    }
    Ok(Bundle { index, files })
}

/// The index's own checks: format, names that are names, only known files.
fn check_index(i: &BundleIndex) -> Result<(), String> {
    if i.format != BUNDLE_FORMAT {
        return Err(format!(
            "it has format {} (this binary reads {BUNDLE_FORMAT})",
            i.format
        ));
    }
    if !crate::dsl::valid_experiment_name(&i.experiment) {
        return Err(format!(
            "`experiment` is `{}`, not an experiment name (letters, digits, `_`, `-`, `.`; not starting with `.`)",
            crate::csv::shown(&i.experiment)
        ));
    }
    if !valid_run_id(&i.run_id) {
        return Err(format!(
            "`run_id` is `{}`, not a run id (letters, digits, `.`, `-`, `_`)",
            crate::csv::shown(&i.run_id)
        ));
    }
    if !valid_relative_file(&i.file) {
        return Err(format!(
            "`file` is `{}`, not a workspace-relative path",
            crate::csv::shown(&i.file)
        ));
    }
    if let Some(n) = i
        .files
        .keys()
        .find(|n| !KNOWN_FILES.contains(&n.as_str()) || *n == INDEX)
    {
        return Err(format!(
            "it lists `{}`, which no bundle holds",
            crate::csv::shown(n)
        ));
    }
    Ok(())
}

/// Reads at most `cap` bytes, refusing more.
pub(super) fn read_capped(r: impl Read, cap: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    r.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > cap {
        return Err(format!("longer than {cap} bytes"));
    }
    Ok(bytes)
}

/// SHA-256 of a stream of at most `cap` bytes, keeping the bytes when asked.
fn hash_capped(r: impl Read, cap: u64, keep: bool) -> Result<(String, Option<Vec<u8>>), String> {
    use sha2::Digest as _;
    let mut r = r.take(cap + 1);
    let mut hasher = sha2::Sha256::new();
    let mut kept = keep.then(Vec::new);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > cap {
            return Err(format!("longer than {cap} bytes"));
        }
        hasher.update(&buf[..n]);
        if let Some(k) = &mut kept {
            k.extend_from_slice(&buf[..n]);
        }
    }
    Ok((crate::fingerprint::hex(&hasher.finalize()), kept))
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
        let back = read_bundle(&a).unwrap();
        assert_eq!(back.index.run_id, "r");
        assert_eq!(back.files[EXPERIMENT], files[EXPERIMENT]);
        assert!(is_bundle(&a));
        std::fs::write(&b, b"not a bundle").unwrap();
        assert!(matches!(
            read_bundle(&b),
            Err(VerifyError::BadBundle { .. })
        ));
    }
}
