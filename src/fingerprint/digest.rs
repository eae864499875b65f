//! SHA-256 of files and directories.
//!
//! A file's digest is the plain SHA-256 of its bytes (the same as `sha256sum`). A directory's
//! digest is a Merkle digest: SHA-256 over `orchestrate-tree-v1\n` and one line per entry, sorted
//! by name, `f <digest> <name>\n` for files and `d <digest> <name>\n` for directories. Names,
//! contents and structure count; timestamps and permissions do not.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use super::FingerprintError;

/// What the stat cache compares: if all of these are unchanged, so is the content.
/// `ctime` cannot be set from user space, so even a rewrite that restores `mtime` is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileStat {
    pub fn of(meta: &fs::Metadata) -> FileStat {
        FileStat {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }
}

/// A cache of file digests keyed by absolute path and validated by [`FileStat`].
pub trait StatCache: Sync {
    fn get(&self, path: &Path, stat: &FileStat) -> Option<String>;
    fn put(&self, path: &Path, stat: &FileStat, digest: &str);
}

/// No caching: every file is hashed (workers, `--verify-data`, `--paranoid`).
pub struct NoCache;

impl StatCache for NoCache {
    fn get(&self, _: &Path, _: &FileStat) -> Option<String> {
        None
    }
    fn put(&self, _: &Path, _: &FileStat, _: &str) {}
}

pub fn hash_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hexadecimal of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

fn io_err(path: &Path, source: std::io::Error) -> FingerprintError {
    if source.kind() == std::io::ErrorKind::NotFound {
        FingerprintError::Missing {
            path: path.to_path_buf(),
        }
    } else {
        FingerprintError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// SHA-256 of one file's bytes, bypassing any cache.
pub fn hash_file(path: &Path) -> Result<String, FingerprintError> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut h = Sha256::new();
    // 256 KiB: large enough to amortize syscalls, small enough to stay in L2.
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hash_file_cached(
    path: &Path,
    meta: &fs::Metadata,
    cache: &dyn StatCache,
) -> Result<String, FingerprintError> {
    let stat = FileStat::of(meta);
    if let Some(d) = cache.get(path, &stat) {
        return Ok(d);
    }
    let d = hash_file(path)?;
    // Only trust the stat if the file did not change while it was read.
    if let Ok(after) = fs::metadata(path)
        && FileStat::of(&after) == stat
    {
        cache.put(path, &stat, &d);
    }
    Ok(d)
}

/// The digest of a file or directory (Merkle), using `cache` for unchanged files.
pub fn hash_path(path: &Path, cache: &dyn StatCache) -> Result<String, FingerprintError> {
    let meta = fs::metadata(path).map_err(|e| io_err(path, e))?;
    if meta.is_file() {
        return hash_file_cached(path, &meta, cache);
    }
    if !meta.is_dir() {
        return Err(FingerprintError::Unsupported {
            path: path.to_path_buf(),
        });
    }
    // Collect every file first so that the misses can be hashed in parallel, then fold the tree.
    let mut files = Vec::new();
    let tree = walk(path, &mut files)?;
    let digests = hash_files(&files, cache)?;
    Ok(fold(&tree, &digests))
}

/// Digests of many files: stat-cache hits are looked up in order on this thread (a lookup costs
/// far less than a hand-off to another thread), only the misses are hashed in parallel.
fn hash_files(
    files: &[(PathBuf, fs::Metadata)],
    cache: &dyn StatCache,
) -> Result<Vec<String>, FingerprintError> {
    let mut digests: Vec<Option<String>> = files
        .iter()
        .map(|(p, m)| cache.get(p, &FileStat::of(m)))
        .collect();
    let misses: Vec<usize> = (0..files.len()).filter(|&i| digests[i].is_none()).collect();
    let hash_one = |&i: &usize| hash_file_cached(&files[i].0, &files[i].1, cache).map(|d| (i, d));
    let hashed: Vec<(usize, String)> = if misses.len() > 1 {
        misses.par_iter().map(hash_one).collect::<Result<_, _>>()?
    } else {
        misses.iter().map(hash_one).collect::<Result<_, _>>()?
    };
    for (i, d) in hashed {
        digests[i] = Some(d);
    }
    Ok(digests
        .into_iter()
        .map(|d| d.expect("every file was looked up or hashed"))
        .collect())
}

enum Node {
    File(String, usize),
    Dir(String, Vec<Node>),
}

fn walk(
    dir: &Path,
    files: &mut Vec<(PathBuf, fs::Metadata)>,
) -> Result<Vec<Node>, FingerprintError> {
    let mut entries: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .map(|e| {
            let e = e.map_err(|err| io_err(dir, err))?;
            Ok((e.file_name().to_string_lossy().into_owned(), e.path()))
        })
        .collect::<Result<_, FingerprintError>>()?;
    entries.sort();
    let mut nodes = Vec::with_capacity(entries.len());
    for (name, p) in entries {
        let meta = fs::symlink_metadata(&p).map_err(|e| io_err(&p, e))?;
        if meta.is_file() {
            nodes.push(Node::File(name, files.len()));
            files.push((p, meta));
        } else if meta.is_dir() {
            nodes.push(Node::Dir(name, walk(&p, files)?));
        } else {
            return Err(FingerprintError::Unsupported { path: p });
        }
    }
    Ok(nodes)
}

fn fold(nodes: &[Node], digests: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(b"orchestrate-tree-v1\n");
    for n in nodes {
        match n {
            Node::File(name, i) => h.update(format!("f {} {name}\n", digests[*i])),
            Node::Dir(name, children) => {
                h.update(format!("d {} {name}\n", fold(children, digests)))
            }
        }
    }
    hex(&h.finalize())
}

/// Digests of many paths at once, in parallel; results in input order.
///
/// Files whose stat-cache entry is valid are answered on this thread; directories and files that
/// must be read are hashed in parallel.
pub fn hash_paths_parallel(
    paths: &[PathBuf],
    cache: &dyn StatCache,
) -> Vec<Result<String, FingerprintError>> {
    let mut out: Vec<Option<Result<String, FingerprintError>>> = paths
        .iter()
        .map(|p| {
            let meta = fs::metadata(p).ok().filter(fs::Metadata::is_file)?;
            cache.get(p, &FileStat::of(&meta)).map(Ok)
        })
        .collect();
    let rest: Vec<usize> = (0..paths.len()).filter(|&i| out[i].is_none()).collect();
    let done: Vec<(usize, Result<String, FingerprintError>)> = rest
        .par_iter()
        .map(|&i| (i, hash_path(&paths[i], cache)))
        .collect();
    for (i, r) in done {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every path was looked up or hashed"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_digest_is_plain_sha256() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            hash_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn directory_digest_depends_on_names_and_contents_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for root in [a.path(), b.path()] {
            fs::create_dir_all(root.join("sub")).unwrap();
            fs::write(root.join("x"), b"1").unwrap();
            fs::write(root.join("sub/y"), b"2").unwrap();
        }
        let da = hash_path(a.path(), &NoCache).unwrap();
        assert_eq!(da, hash_path(b.path(), &NoCache).unwrap());
        fs::write(b.path().join("sub/y"), b"3").unwrap();
        assert_ne!(da, hash_path(b.path(), &NoCache).unwrap());
        fs::write(b.path().join("sub/y"), b"2").unwrap();
        fs::rename(b.path().join("x"), b.path().join("z")).unwrap();
        assert_ne!(da, hash_path(b.path(), &NoCache).unwrap());
    }

    #[test]
    fn missing_path_is_named() {
        let err = hash_path(Path::new("/nonexistent/orchestrate"), &NoCache).unwrap_err();
        assert!(matches!(err, FingerprintError::Missing { .. }));
    }
}
