//! Garbage-collection roots kept in the store itself: one small file per recorded run, naming the
//! run folder it stands for and every object the run references. `gc` from any workspace reads
//! them all, so a store shared by several workspaces never loses what another workspace's kept
//! run references (a workspace only sees its own `runs/`).
//!
//! ```text
//! roots/<experiment>-<run-id>-<workspace digest>.json
//!     {"format":1, "run_dir", "workspace", "experiment", "run_id", "created_at", "objects": […]}
//! ```
//!
//! A root lives while its run folder does. The workspace that owns a run forgets the root when
//! the folder is gone; another workspace cannot tell a deleted folder from one on a machine it
//! cannot see, so it keeps such roots until `gc --prune-missing`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, io};

pub const ROOT_FORMAT: u32 = 1;

/// One run registered as a root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    pub format: u32,
    /// The run folder (absolute), whose existence keeps the root alive.
    pub run_dir: PathBuf,
    /// The workspace the run was made in (absolute).
    pub workspace: PathBuf,
    pub experiment: String,
    pub run_id: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Digests of every object the run references.
    pub objects: Vec<String>,
}

/// A root as found in the store, with the file it was read from.
#[derive(Debug, Clone)]
pub struct FoundRoot {
    pub file: PathBuf,
    pub root: Root,
}

impl Store {
    fn roots_dir(&self) -> PathBuf {
        self.root().join("roots")
    }

    /// Registers `root` (atomically: written to a temporary name, then renamed).
    pub fn add_root(&self, root: &Root) -> Result<PathBuf, StoreError> {
        let dir = self.roots_dir();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let ws = crate::fingerprint::hash_bytes(root.workspace.to_string_lossy().as_bytes());
        let name = format!("{}-{}-{}.json", root.experiment, root.run_id, &ws[..12]);
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut bytes = serde_json::to_vec_pretty(root).expect("a root serializes");
        bytes.push(b'\n');
        fs::write(&tmp, bytes).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(path)
    }

    /// Every root in the store. A file that cannot be read as a root is reported in the second
    /// list and never deleted: `gc` then keeps everything rather than guess.
    pub fn roots(&self) -> Result<(Vec<FoundRoot>, Vec<PathBuf>), StoreError> {
        let dir = self.roots_dir();
        let mut found = Vec::new();
        let mut unreadable = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((found, unreadable)),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        for file in files {
            let parsed = fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice::<Root>(&b).ok())
                .filter(|r| r.format == ROOT_FORMAT);
            match parsed {
                Some(root) => found.push(FoundRoot { file, root }),
                None => unreadable.push(file),
            }
        }
        Ok((found, unreadable))
    }

    /// Forgets a root (its run folder is gone).
    pub fn remove_root(&self, file: &Path) -> Result<(), StoreError> {
        match fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(file)(e)),
            _ => Ok(()),
        }
    }
}
