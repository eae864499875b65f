//! Stage records and latest keys as files: `records/ab/<key>.json` and `latest/<id>.json`.
//!
//! A record is written (atomically, after its object is in place) by the process that computed
//! the stage and read by everyone; two processes that commit the same key write the same
//! object, so whichever rename lands last is as good as the other. Readers never wait.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{StageRecord, Store, StoreError, io, read_dir_or_empty, write_atomic};

/// What `latest/<id>.json` holds: the key a stage last ran or was found fresh with.
#[derive(Serialize, Deserialize)]
struct Latest {
    experiment: String,
    stage: String,
    key: serde_json::Value,
}

/// A key is a hex digest; anything else never names a file.
fn valid_key(key: &str) -> bool {
    key.len() >= 4 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Store {
    pub(super) fn record_path(&self, key: &str) -> PathBuf {
        self.root
            .join("records")
            .join(&key[..2])
            .join(format!("{key}.json"))
    }

    fn latest_path(&self, experiment: &str, stage: &str) -> PathBuf {
        let id = crate::fingerprint::hash_bytes(format!("{experiment}\0{stage}").as_bytes());
        self.root.join("latest").join(format!("{}.json", &id[..32]))
    }

    /// The record committed under `key`, if any. A record file that cannot be read as one
    /// (damaged by hand) counts as absent: the stage is recomputed and the record rewritten.
    pub fn record(&self, key: &str) -> Result<Option<StageRecord>, StoreError> {
        if !valid_key(key) {
            return Ok(None);
        }
        let path = self.record_path(key);
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice::<StageRecord>(&bytes)
                .ok()
                .filter(|r| r.key == key)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Writes a record durably. Callers commit the object first.
    pub fn put_record(&self, rec: &StageRecord) -> Result<(), StoreError> {
        if !valid_key(&rec.key) {
            return Err(StoreError::Record(format!("`{}` is no key", rec.key)));
        }
        let path = self.record_path(&rec.key);
        let dir = path.parent().expect("a record has a shard folder");
        fs::create_dir_all(dir).map_err(io(dir))?;
        let bytes = serde_json::to_vec(rec).map_err(|e| StoreError::Record(e.to_string()))?;
        write_atomic(&path, &bytes)?;
        self.set_latest(&rec.experiment, &rec.stage, &rec.key_json)
    }

    pub fn remove_record(&self, key: &str) -> Result<(), StoreError> {
        if !valid_key(key) {
            return Ok(());
        }
        let path = self.record_path(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Every readable record, in key order.
    pub fn records(&self) -> Result<Vec<StageRecord>, StoreError> {
        let mut out = Vec::new();
        for shard in read_dir_or_empty(&self.root.join("records"))? {
            if !shard.is_dir() {
                continue;
            }
            for file in read_dir_or_empty(&shard)? {
                let Some(key) = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".json"))
                else {
                    continue;
                };
                if let Some(r) = self.record(key)? {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Remembers the key JSON this stage last ran with (or was found fresh with), so that a later
    /// change can be explained even after its record was collected. Written only when it
    /// changed; a reader's store remembers nothing.
    pub fn set_latest(
        &self,
        experiment: &str,
        stage: &str,
        key_json: &serde_json::Value,
    ) -> Result<(), StoreError> {
        if self.session.is_none() {
            return Ok(());
        }
        if self.latest(experiment, stage)?.as_ref() == Some(key_json) {
            return Ok(());
        }
        let path = self.latest_path(experiment, stage);
        let dir = path.parent().expect("latest has a folder");
        fs::create_dir_all(dir).map_err(io(dir))?;
        let doc = Latest {
            experiment: experiment.to_string(),
            stage: stage.to_string(),
            key: key_json.clone(),
        };
        let bytes = serde_json::to_vec(&doc).map_err(|e| StoreError::Record(e.to_string()))?;
        write_atomic(&path, &bytes)
    }

    /// The key JSON this stage last ran with (or was found fresh with).
    pub fn latest(
        &self,
        experiment: &str,
        stage: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let path = self.latest_path(experiment, stage);
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice::<Latest>(&bytes)
                .ok()
                .filter(|l| l.experiment == experiment && l.stage == stage)
                .map(|l| l.key)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }
}
