//! Typed configs of built-in stage kinds: parsed with unknown keys refused and defaults applied,
//! then turned back into JSON, so that the key holds the full config and an omitted default and an
//! explicit one hash the same.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::kinds::ConfigError;

use super::StageError;

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
pub fn from_task<T: DeserializeOwned + Serialize>(raw: &Value) -> Result<T, StageError> {
    typed::<T>(raw).map(|(t, _)| t).map_err(StageError::Config)
}

/// An error at config key `key`.
pub fn key_error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: vec![key.to_string()],
        message: message.into(),
    }
}

/// Each named size must be at least 1 (layer widths, depths, batch size, epochs).
pub fn check_sizes(sizes: &[(&str, usize)]) -> Result<(), ConfigError> {
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some((k, _)) => Err(key_error(k, "must be at least 1")),
        None => Ok(()),
    }
}

/// Each named rate, decay or threshold must be a finite number ≥ 0.
pub fn check_rates(rates: &[(&str, f64)]) -> Result<(), ConfigError> {
    match rates.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
        Some((k, _)) => Err(key_error(k, "must be a finite number ≥ 0")),
        None => Ok(()),
    }
}

/// `key` must lie in [0, 1) (a dropout probability) or, with `open`, in (0, 1) (a share).
pub fn check_unit(key: &str, v: f64, open: bool) -> Result<(), ConfigError> {
    match open {
        false if !(0.0..1.0).contains(&v) => Err(key_error(key, "must be in [0, 1)")),
        true if !(v > 0.0 && v < 1.0) => Err(key_error(key, "must be in (0, 1)")),
        _ => Ok(()),
    }
}
