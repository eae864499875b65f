//! Git provenance of the workspace: commit, branch, dirty state and a digest of the diff.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where the experiment's workspace stood in git when a run started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GitProvenance {
    pub commit: Option<String>,
    pub branch: Option<String>,
    /// Tracked files modified, or untracked files present (ignored files do not count).
    pub dirty: bool,
    /// Paths that make the tree dirty (first 50).
    pub changed: Vec<String>,
    /// SHA-256 of the patch of the working tree against HEAD (tracked files), when dirty.
    pub diff_digest: Option<String>,
}

/// `None` when the workspace is not inside a git repository.
pub fn git_provenance(workspace: &Path) -> Option<GitProvenance> {
    let repo = git2::Repository::discover(workspace).ok()?;
    let head = repo.head().ok();
    let commit = head
        .as_ref()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string());
    let branch = head
        .as_ref()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok().map(str::to_string));
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .include_ignored(false)
        .recurse_untracked_dirs(true);
    let changed: Vec<String> = repo
        .statuses(Some(&mut opts))
        .map(|s| {
            s.iter()
                .filter(|e| e.status() != git2::Status::CURRENT)
                .filter_map(|e| e.path().ok().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let dirty = !changed.is_empty();
    let diff_digest = if dirty {
        let tree = head.as_ref().and_then(|h| h.peel_to_tree().ok());
        repo.diff_tree_to_workdir_with_index(tree.as_ref(), None)
            .ok()
            .and_then(|diff| {
                let mut patch = Vec::new();
                diff.print(git2::DiffFormat::Patch, |_, _, line| {
                    patch.push(line.origin() as u8);
                    patch.extend_from_slice(line.content());
                    true
                })
                .ok()?;
                Some(super::hash_bytes(&patch))
            })
    } else {
        None
    };
    Some(GitProvenance {
        commit,
        branch,
        dirty,
        changed: changed.into_iter().take(50).collect(),
        diff_digest,
    })
}
