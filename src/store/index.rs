//! The sled index: the only mutable state of the store besides objects.
//!
//! Trees: `records` (key → [`StageRecord`] JSON), `latest` (experiment + stage name → the key it
//! last ran or was found fresh with, for explanations), `stat` (absolute path → stat + digest).

use std::path::Path;

use crate::fingerprint::{FileStat, StatCache};

use super::{StageRecord, StoreError};

pub struct Index {
    db: sled::Db,
    records: sled::Tree,
    latest: sled::Tree,
    stat: sled::Tree,
    path: std::path::PathBuf,
}

fn latest_key(experiment: &str, stage: &str) -> Vec<u8> {
    let mut k = experiment.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(stage.as_bytes());
    k
}

impl Index {
    pub fn open(path: &Path) -> Result<Index, StoreError> {
        let err = |source| StoreError::Index {
            path: path.to_path_buf(),
            source,
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(err)?;
        Ok(Index {
            records: db.open_tree("records").map_err(err)?,
            latest: db.open_tree("latest").map_err(err)?,
            stat: db.open_tree("stat").map_err(err)?,
            db,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Index {
            path: self.path.clone(),
            source,
        }
    }

    pub fn record(&self, key: &str) -> Result<Option<StageRecord>, StoreError> {
        match self.records.get(key.as_bytes()).map_err(|e| self.err(e))? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Record(format!("record {key}: {e}"))),
            None => Ok(None),
        }
    }

    /// Writes a record durably. Callers commit the object first.
    pub fn put_record(&self, rec: &StageRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(rec).map_err(|e| StoreError::Record(e.to_string()))?;
        self.records
            .insert(rec.key.as_bytes(), bytes)
            .map_err(|e| self.err(e))?;
        self.set_latest(&rec.experiment, &rec.stage, &rec.key_json)?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn remove_record(&self, key: &str) -> Result<(), StoreError> {
        self.records
            .remove(key.as_bytes())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn records(&self) -> impl Iterator<Item = Result<StageRecord, StoreError>> + '_ {
        self.records.iter().map(|kv| {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            serde_json::from_slice(&v).map_err(|e| {
                StoreError::Record(format!("record {}: {e}", String::from_utf8_lossy(&k)))
            })
        })
    }

    /// Remembers the key JSON this stage last ran with (or was found fresh with), so that a later
    /// change can be explained even after its record was collected.
    pub fn set_latest(
        &self,
        experiment: &str,
        stage: &str,
        key_json: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(key_json).map_err(|e| StoreError::Record(e.to_string()))?;
        let k = latest_key(experiment, stage);
        if self.latest.get(&k).map_err(|e| self.err(e))?.as_deref() != Some(bytes.as_slice()) {
            self.latest.insert(k, bytes).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The key JSON this stage last ran with (or was found fresh with).
    pub fn latest(
        &self,
        experiment: &str,
        stage: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        match self
            .latest
            .get(latest_key(experiment, stage))
            .map_err(|e| self.err(e))?
        {
            Some(v) => Ok(serde_json::from_slice(&v).ok()),
            None => Ok(None),
        }
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn remove_stat_prefix(&self, prefix: &Path) -> Result<(), StoreError> {
        let p = prefix.as_os_str().as_encoded_bytes();
        for kv in self.stat.scan_prefix(p) {
            let (k, _) = kv.map_err(|e| self.err(e))?;
            self.stat.remove(k).map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

/// Encoding of a stat entry: five little-endian 64-bit fields, then the hex digest.
fn encode(stat: &FileStat, digest: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(40 + digest.len());
    for x in [
        stat.dev,
        stat.ino,
        stat.size,
        stat.mtime_ns as u64,
        stat.ctime_ns as u64,
    ] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(digest.as_bytes());
    v
}

fn decode(v: &[u8]) -> Option<(FileStat, String)> {
    if v.len() < 40 {
        return None;
    }
    let f = |i: usize| u64::from_le_bytes(v[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    Some((
        FileStat {
            dev: f(0),
            ino: f(1),
            size: f(2),
            mtime_ns: f(3) as i64,
            ctime_ns: f(4) as i64,
        },
        String::from_utf8(v[40..].to_vec()).ok()?,
    ))
}

impl StatCache for Index {
    fn get(&self, path: &Path, stat: &FileStat) -> Option<String> {
        let v = self.stat.get(path.as_os_str().as_encoded_bytes()).ok()??;
        let (cached, digest) = decode(&v)?;
        (cached == *stat).then_some(digest)
    }

    fn put(&self, path: &Path, stat: &FileStat, digest: &str) {
        // A failed cache write only costs a re-hash later.
        let _ = self
            .stat
            .insert(path.as_os_str().as_encoded_bytes(), encode(stat, digest));
    }
}
