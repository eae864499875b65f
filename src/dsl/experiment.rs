//! The validated, expanded experiment: what every later box (plan, exec, report) reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

pub use super::schema::{ExecutorKind, SlurmSpec};
use crate::kinds::{Backend, StageKind};

/// A loaded experiment: every sweep and replicate expanded, stages in topological order.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub description: Option<String>,
    /// The experiment file as the user named it (for messages).
    pub file: PathBuf,
    /// Absolute workspace root: every relative path of the experiment is resolved against it.
    pub workspace: PathBuf,
    pub seed: u64,
    /// Topologically ordered: a stage's upstream stages all have smaller indices.
    pub stages: Vec<Stage>,
    /// The experiment's executor (`local` unless the file says otherwise).
    pub executor: ExecutorKind,
    pub slurm: SlurmSpec,
    pub backend: Backend,
    /// The `paper:` block, as JSON (`null` when absent).
    pub paper: Value,
}

impl Experiment {
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }
}

/// One concrete stage (a variant of a declared stage when it is swept or replicated).
#[derive(Debug, Clone)]
pub struct Stage {
    /// Unique name: the declared name plus its coordinates, e.g. `train[lr=0.001,seed=2]`.
    pub name: String,
    /// The declared name (`train`).
    pub base: String,
    pub kind: StageKind,
    /// Command template (`command` stages).
    pub cmd: Option<String>,
    pub deps: BTreeMap<String, Dep>,
    /// Declared code files, workspace-relative.
    pub code: Vec<String>,
    /// Outputs, relative to the stage's output directory.
    pub outs: BTreeMap<String, String>,
    pub params: BTreeMap<String, Value>,
    /// Built-in kinds' typed config, as JSON (`null` for `command`).
    pub config: Value,
    pub resources: Resources,
    pub retries: u32,
    /// The seed this stage runs with (its replicate seed, or the experiment seed).
    pub seed: u64,
    /// Sweep/replicate coordinates, in display order: `[("lr", 0.001), ("seed", 2)]`.
    pub coords: Vec<(String, Value)>,
    /// A per-stage executor override.
    pub executor: Option<ExecutorKind>,
}

/// An input of a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Dep {
    /// A workspace file or directory, workspace-relative and normalized.
    Path(String),
    /// Output `out` of upstream stages (one, or every gathered variant, sorted by name).
    Stage {
        stages: Vec<usize>,
        out: String,
        gather: bool,
    },
}

/// What a stage needs from the machine. Not part of the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resources {
    pub cpus: u32,
    pub gpus: u32,
    pub mem_mb: Option<u64>,
    /// Wall-time limit (Slurm `--time` syntax, see [`parse_time_limit`]): passed to Slurm as
    /// `--time`, enforced by the local executor, which kills the task's process group.
    pub time: Option<String>,
}

/// A wall-time limit in Slurm's `--time` syntax: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`
/// or `D-HH:MM:SS`. `0` (Slurm's "no limit") is refused: leave `time` out instead.
pub fn parse_time_limit(s: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "`{s}` is not a time limit: write MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS \
             (Slurm's `--time` syntax), e.g. `00:30:00`"
        )
    };
    let num = |p: &str| -> Result<u64, String> {
        if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse().map_err(|_| bad())
    };
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Result<_, _>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86_400 + h * 3600,
        (Some(d), [h, m]) => d * 86_400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86_400 + h * 3600 + m * 60 + s,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(format!(
            "`{s}` is no time at all: leave `time` out for no limit"
        ));
    }
    Ok(std::time::Duration::from_secs(secs))
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: 1,
            gpus: 0,
            mem_mb: None,
            time: None,
        }
    }
}

/// Formats a coordinate value the way it appears in a variant name.
pub fn coord_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How sweep values sort wherever variants are listed: numbers by value (60 < 150 < 1000), before
/// any other value; other values by their text.
pub fn coord_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => coord_text(a).cmp(&coord_text(b)),
    }
}

/// Orders two variants' coordinates (`name → value`, in declared axis order) axis by axis with
/// [`coord_order`]; a coordinate the other lacks sorts last.
pub fn coords_order(a: &[(String, Value)], b: &[(String, Value)]) -> std::cmp::Ordering {
    for (k, va) in a {
        let Some((_, vb)) = b.iter().find(|(kb, _)| kb == k) else {
            return std::cmp::Ordering::Less;
        };
        let o = coord_order(va, vb);
        if o.is_ne() {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::{coords_order, parse_time_limit};
    use serde_json::json;

    #[test]
    fn variants_sort_by_value_numbers_numerically() {
        let v =
            |n: u64, rho: f64| vec![("n".to_string(), json!(n)), ("rho".to_string(), json!(rho))];
        let mut list = [
            v(300, 0.5),
            v(60, 1.0),
            v(1000, 0.0),
            v(150, 0.25),
            v(60, 0.0),
        ];
        list.sort_by(|a, b| coords_order(a, b));
        let got: Vec<(u64, f64)> = list
            .iter()
            .map(|c| (c[0].1.as_u64().unwrap(), c[1].1.as_f64().unwrap()))
            .collect();
        assert_eq!(
            got,
            [(60, 0.0), (60, 1.0), (150, 0.25), (300, 0.5), (1000, 0.0)]
        );
    }
    use std::time::Duration;

    #[test]
    fn time_limits_read_every_slurm_form_and_refuse_the_rest() {
        let s = |t: &str| parse_time_limit(t).map(|d| d.as_secs());
        assert_eq!(s("30"), Ok(1800));
        assert_eq!(s("0:02"), Ok(2));
        assert_eq!(s("01:30:00"), Ok(5400));
        assert_eq!(s("2-12"), Ok(2 * 86_400 + 12 * 3600));
        assert_eq!(s("1-00:10"), Ok(86_400 + 600));
        assert_eq!(s("1-00:00:05"), Ok(86_405));
        for bad in ["", "abc", "1:2:3:4", "-5", "1-", "1h", "00:00:00", " 5"] {
            assert!(parse_time_limit(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_time_limit("1:30").unwrap() == Duration::from_secs(90));
    }
}
