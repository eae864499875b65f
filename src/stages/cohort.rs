//! `cohort` stages: a real cohort loaded from CSV files (the lab's layout or plain CSV with
//! declared columns), validated and written as cohort tables.

use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DepSpec;
use super::config::{ConfigError, typed};
use crate::exec::task::TaskFile;

/// Input files are named in the config and declared as deps by the user.
pub const DEPS: DepSpec = DepSpec {
    required: &[],
    optional: &[],
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CohortConfig {}

pub fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    typed::<CohortConfig>(raw).map(|(_, json)| json)
}

pub fn outputs(_config: &Value) -> Vec<(String, String)> {
    Vec::new()
}

pub fn run(_task: &TaskFile, _log: &mut dyn Write) -> Result<Value, String> {
    Err("the cohort loader is being built (issue 3)".to_string())
}
