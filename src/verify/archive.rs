//! Indexed archives that leave one institution for another: site kits and site results
//! ([`crate::site`]). A deterministic `.tar.gz` whose first member, `index.json`, names what the
//! archive is (`kind`) and lists every other member with its SHA-256.
//!
//! Reading trusts nothing: the index must come first and be small; every other member must be a
//! plain file, listed, named as a relative path without `..` (names are never used as paths
//! here: callers decide where, if anywhere, bytes go), at most [`MAX_MEMBER_BYTES`], in all at
//! most [`MAX_TOTAL_BYTES`], and match its digest. Nothing is written, nothing is executed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::VerifyError;
use super::bundle::{digests, read_capped, valid_relative_file, write_indexed};

pub const ARCHIVE_FORMAT: u32 = 1;
pub const INDEX: &str = "index.json";
pub const MAX_MEMBER_BYTES: u64 = 256 << 20;
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;
const MAX_INDEX_BYTES: u64 = 4 << 20;
const MAX_MEMBERS: usize = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveIndex {
    pub format: u32,
    /// `site-kit` or `site-results`.
    pub kind: String,
    /// Member name → SHA-256 of its bytes.
    pub files: BTreeMap<String, String>,
}

/// An archive as read: every member's bytes, checked.
#[derive(Debug)]
pub struct Archive {
    pub index: ArchiveIndex,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Archive {
    /// The SHA-256 of the index, which lists every member's digest: the archive's identity.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(&self.index).expect("an index serializes");
        crate::fingerprint::hash_bytes(&bytes)
    }
}

/// Writes `files` with their index as a deterministic archive of `kind`.
pub fn write_archive(
    out: &Path,
    kind: &str,
    files: BTreeMap<String, Vec<u8>>,
) -> Result<ArchiveIndex, VerifyError> {
    let index = ArchiveIndex {
        format: ARCHIVE_FORMAT,
        kind: kind.to_string(),
        files: digests(&files),
    };
    write_indexed(out, INDEX, &index, files)?;
    Ok(index)
}

/// Reads and checks an archive of `kind` (see the module doc).
pub fn read_archive(path: &Path, kind: &str) -> Result<Archive, VerifyError> {
    let bad = |message: String| VerifyError::BadArchive {
        path: path.to_path_buf(),
        kind: kind.to_string(),
        message,
    };
    let f = std::fs::File::open(path).map_err(|source| VerifyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut index: Option<ArchiveIndex> = None;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let shown = crate::csv::shown(&name);
        if !entry.header().entry_type().is_file() {
            return Err(bad(format!("`{shown}` is not a plain file")));
        }
        let size = entry.header().size().map_err(|e| bad(e.to_string()))?;
        let Some(idx) = &index else {
            if name != INDEX {
                return Err(bad(format!("the first entry is `{shown}`, not `{INDEX}`")));
            }
            let bytes =
                read_capped(entry, MAX_INDEX_BYTES).map_err(|e| bad(format!("`{INDEX}`: {e}")))?;
            let i: ArchiveIndex =
                serde_json::from_slice(&bytes).map_err(|e| bad(format!("`{INDEX}`: {e}")))?;
            if i.format != ARCHIVE_FORMAT {
                return Err(bad(format!(
                    "`{INDEX}` has format {} (this binary reads {ARCHIVE_FORMAT})",
                    i.format
                )));
            }
            if i.kind != kind {
                return Err(bad(format!("it is a `{}` archive, not a `{kind}`", i.kind)));
            }
            if i.files.len() > MAX_MEMBERS {
                return Err(bad(format!(
                    "it lists {} members (at most {MAX_MEMBERS})",
                    i.files.len()
                )));
            }
            if let Some(n) = i
                .files
                .keys()
                .find(|n| !valid_relative_file(n) || *n == INDEX)
            {
                return Err(bad(format!(
                    "`{}` is no member name (a relative path without `..`)",
                    crate::csv::shown(n)
                )));
            }
            index = Some(i);
            continue;
        };
        let Some(expected) = idx.files.get(&name) else {
            return Err(bad(format!(
                "`{shown}` is in the archive but not listed in `{INDEX}`"
            )));
        };
        if files.contains_key(&name) {
            return Err(bad(format!("`{shown}` appears twice")));
        }
        if size > MAX_MEMBER_BYTES || total + size > MAX_TOTAL_BYTES {
            return Err(bad(format!(
                "`{shown}` is {size} bytes (a member may have at most {} MiB, all together {} MiB)",
                MAX_MEMBER_BYTES >> 20,
                MAX_TOTAL_BYTES >> 20
            )));
        }
        let bytes = read_capped(entry.take(size), MAX_MEMBER_BYTES)
            .map_err(|e| bad(format!("`{shown}`: {e}")))?;
        total += bytes.len() as u64;
        if &crate::fingerprint::hash_bytes(&bytes) != expected {
            return Err(bad(format!(
                "`{shown}` does not match its digest in `{INDEX}`"
            )));
        }
        files.insert(name, bytes);
    }
    let index = index.ok_or_else(|| bad(format!("no `{INDEX}`")))?;
    if let Some(missing) = index.files.keys().find(|n| !files.contains_key(*n)) {
        return Err(bad(format!("`{missing}` is listed but missing")));
    }
    Ok(Archive { index, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_round_trips_and_a_changed_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.tar.gz");
        let mut files = BTreeMap::new();
        files.insert("models/m/model.bin".to_string(), vec![1u8, 2, 3]);
        files.insert("kit.json".to_string(), b"{}".to_vec());
        write_archive(&out, "site-kit", files.clone()).unwrap();
        let a = read_archive(&out, "site-kit").unwrap();
        assert_eq!(a.files, files);
        let again = dir.path().join("b.tar.gz");
        write_archive(&again, "site-kit", files).unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&again).unwrap(),
            "deterministic"
        );
        let err = read_archive(&out, "site-results").unwrap_err().to_string();
        assert!(err.contains("not a `site-results`"), "{err}");
    }
}
