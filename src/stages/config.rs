//! Typed configs of built-in stage kinds: parsed with unknown keys refused and defaults applied,
//! then turned back into JSON, so that the key holds the full config and an omitted default and an
//! explicit one hash the same.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::kinds::ConfigError;

/// Parses `raw` (`null` means all defaults) as `T`; returns it and its canonical JSON.
pub fn typed<T: DeserializeOwned + Serialize>(raw: &Value) -> Result<(T, Value), ConfigError> {
    let raw = if raw.is_null() {
        Value::Object(Default::default())
    } else {
        raw.clone()
    };
    let value: T = serde_path_to_error::deserialize(raw).map_err(|e| {
        let path: Vec<String> = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(format!("[{index}]")),
                serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        ConfigError {
            path,
            message: e.into_inner().to_string(),
        }
    })?;
    let json = serde_json::to_value(&value).map_err(|e| ConfigError {
        path: Vec::new(),
        message: e.to_string(),
    })?;
    Ok((value, json))
}

/// Reads a task's config back into its typed form (already validated at load time).
pub fn from_task<T: DeserializeOwned + Serialize>(raw: &Value) -> Result<T, String> {
    typed::<T>(raw)
        .map(|(t, _)| t)
        .map_err(|e| format!("config {}: {}", e.path.join("."), e.message))
}
