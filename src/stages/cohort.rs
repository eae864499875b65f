//! `cohort` stages: a real cohort loaded from CSV files (the lab's layout or plain CSV with
//! declared columns), validated and written as cohort tables, one folder per split, under the
//! same split names as `synth` (`unlabeled`, `incomplete`, `finetune`, `internal`, `external`) so
//! that model stages read either.
//!
//! Owns the CSV layouts (reading, validating, and writing the lab layout for examples and tests);
//! knows nothing of models. Every validation error names the file, the row (the line where the
//! record starts, header = row 1) and the column.
//!
//! # The lab layout (`format: lab`)
//!
//! Per split, two files (the lab's public code uses the same names):
//!
//! ```text
//! clinical:  pid, id, session, shifted_scan_date, Duration, lung_cancer, exp-000, …, exp-NNNN
//!            pid: patient; id: scan (session-level id); session: 0, 1, 2… in time order;
//!            shifted_scan_date (YYYY-mm-dd) and Duration (days to the latest session) are
//!            carried but unused; lung_cancer: 0/1; exp-*: latent clinical signature expressions.
//! imaging:   id, nodule, f000, …, fNNN
//!            one row per nodule token of a scan: nodule = 0…img_tokens−1 (detector rank, the
//!            top 5 by default), f*: the nodule's embedding.
//! ```
//!
//! One row per patient is kept: with `session_policy: latest` (the default) the row with the
//! largest `session`, and that scan's nodules. All `exp-*` of the kept row empty marks the
//! clinical modality missing; a scan without nodule rows (or with every feature empty) marks
//! imaging missing. A modality is missing or complete: partly empty rows are refused.
//!
//! # The plain layout (`format: plain`)
//!
//! Per split one CSV with an id column, a label column and each modality's feature columns (a
//! list, or every column starting with a prefix), `tokens × width` of them in token-major order.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::StageError;
use super::config::{ConfigError, from_task, typed};
use crate::cohort::{COHORT_FORMAT, Cohort, Modality};
use crate::csv;
use crate::task::TaskFile;

/// The split names a cohort stage may declare (the `synth` stage's outputs).
pub const SPLIT_NAMES: [&str; 5] = super::synth::SPLITS;

/// Splits written without labels.
const UNLABELED: &str = "unlabeled";

/// Which CSV layout the files follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CsvFormat {
    /// The lab's layout: a clinical CSV and an imaging CSV per split.
    #[default]
    Lab,
    /// One CSV per split with declared columns.
    Plain,
}

/// Which row of a patient with several sessions is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionPolicy {
    /// The row with the largest `session` (the latest scan); two rows with the same patient and
    /// session are an error.
    #[default]
    Latest,
    /// Exactly one row per patient; a second one is an error.
    Single,
}

/// The input files of one split, by dep name (each must be declared in the stage's `deps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SplitFiles {
    /// `format: lab`: the clinical CSV (`pid, id, session, …, lung_cancer, exp-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinical: Option<String>,
    /// `format: lab`: the imaging features CSV (`id, nodule, f000…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imaging: Option<String>,
    /// `format: plain`: the split's one CSV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// Settings of the lab layout (`lab:`); every key has the lab's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabLayout {
    /// `latest` (default): keep each patient's latest session; `single`: one row per patient.
    pub session_policy: SessionPolicy,
    /// Prefix of the clinical signature columns. Default `exp-`.
    pub clin_prefix: String,
    /// Tokens the signatures are cut into (contiguous, equal widths; must divide the number of
    /// signature columns). Default 1: every signature in one token.
    pub clin_tokens: usize,
    /// Prefix of the imaging feature columns. Default `f`.
    pub img_prefix: String,
    /// Nodule tokens per scan: rows `nodule = 0…img_tokens−1`. Default 5.
    pub img_tokens: usize,
}

impl Default for LabLayout {
    fn default() -> Self {
        LabLayout {
            session_policy: SessionPolicy::Latest,
            clin_prefix: "exp-".to_string(),
            clin_tokens: 1,
            img_prefix: "f".to_string(),
            img_tokens: 5,
        }
    }
}

/// The feature columns of one modality in a plain CSV: `columns` or `prefix`, not both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSet {
    /// The columns, token-major (token 0's features first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Every column whose name starts with this, in header order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Tokens the columns are cut into (must divide their number). Default 1.
    #[serde(default = "one")]
    pub tokens: usize,
}

fn one() -> usize {
    1
}

/// Settings of the plain layout (`plain:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlainLayout {
    /// The patient id column. Default `id`.
    #[serde(default = "default_id")]
    pub id: String,
    pub imaging: ColumnSet,
    pub clinical: ColumnSet,
}

fn default_id() -> String {
    "id".to_string()
}

/// The `config:` of a `cohort` stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CohortConfig {
    /// `lab` (default) or `plain`.
    pub format: CsvFormat,
    /// Split name (`unlabeled`, `incomplete`, `finetune`, `internal`, `external`) → its files.
    /// Each split becomes an output folder of that name. The `unlabeled` split's labels are
    /// not read.
    pub splits: BTreeMap<String, SplitFiles>,
    /// The binary label column. Default `lung_cancer` (lab) or `label` (plain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Lab layout settings (`format: lab` only; defaults filled in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lab: Option<LabLayout>,
    /// Plain layout settings (`format: plain` only, required there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain: Option<PlainLayout>,
}

fn config_err(path: &[&str], message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.iter().map(|s| s.to_string()).collect(),
        message: message.into(),
    }
}

impl CohortConfig {
    /// Checks the config and fills the format's defaults (so omitted and explicit defaults hash
    /// the same).
    fn normalize(mut self) -> Result<CohortConfig, ConfigError> {
        if self.splits.is_empty() {
            return Err(config_err(
                &["splits"],
                "declare at least one split, e.g. `internal: {clinical: …, imaging: …}`",
            ));
        }
        for (name, files) in &self.splits {
            if !SPLIT_NAMES.contains(&name.as_str()) {
                return Err(config_err(
                    &["splits", name],
                    format!("unknown split `{name}` (known: {})", SPLIT_NAMES.join(", ")),
                ));
            }
            let (needed, refused): (&[&str], &[&str]) = match self.format {
                CsvFormat::Lab => (&["clinical", "imaging"], &["table"]),
                CsvFormat::Plain => (&["table"], &["clinical", "imaging"]),
            };
            let has = |k: &str| match k {
                "clinical" => files.clinical.is_some(),
                "imaging" => files.imaging.is_some(),
                _ => files.table.is_some(),
            };
            let format = match self.format {
                CsvFormat::Lab => "lab",
                CsvFormat::Plain => "plain",
            };
            if let Some(k) = needed.iter().find(|k| !has(k)) {
                return Err(config_err(
                    &["splits", name],
                    format!("a `{format}` split needs `{k}`: the dep name of its file"),
                ));
            }
            if let Some(k) = refused.iter().find(|k| has(k)) {
                return Err(config_err(
                    &["splits", name, k],
                    format!("`{k}` is not a file of the `{format}` layout"),
                ));
            }
        }
        match self.format {
            CsvFormat::Lab => {
                if self.plain.is_some() {
                    return Err(config_err(
                        &["plain"],
                        "`plain` settings need `format: plain`",
                    ));
                }
                let lab = self.lab.get_or_insert_with(LabLayout::default);
                for (key, v) in [
                    ("clin_tokens", lab.clin_tokens),
                    ("img_tokens", lab.img_tokens),
                ] {
                    if v == 0 {
                        return Err(config_err(&["lab", key], "must be at least 1"));
                    }
                }
                for (key, v) in [
                    ("clin_prefix", &lab.clin_prefix),
                    ("img_prefix", &lab.img_prefix),
                ] {
                    if v.is_empty() {
                        return Err(config_err(&["lab", key], "must not be empty"));
                    }
                }
                self.label.get_or_insert_with(|| "lung_cancer".to_string());
            }
            CsvFormat::Plain => {
                if self.lab.is_some() {
                    return Err(config_err(&["lab"], "`lab` settings need `format: lab`"));
                }
                let Some(plain) = &self.plain else {
                    return Err(config_err(
                        &[],
                        "`format: plain` needs `plain: {id, imaging: {prefix|columns, tokens}, clinical: {…}}`",
                    ));
                };
                for (key, set) in [("imaging", &plain.imaging), ("clinical", &plain.clinical)] {
                    match (&set.columns, &set.prefix) {
                        (Some(_), Some(_)) | (None, None) => {
                            return Err(config_err(
                                &["plain", key],
                                "give either `columns` or `prefix`",
                            ));
                        }
                        (Some(c), None) if c.is_empty() => {
                            return Err(config_err(&["plain", key, "columns"], "is empty"));
                        }
                        (None, Some(p)) if p.is_empty() => {
                            return Err(config_err(&["plain", key, "prefix"], "is empty"));
                        }
                        _ => {}
                    }
                    if set.tokens == 0 {
                        return Err(config_err(&["plain", key, "tokens"], "must be at least 1"));
                    }
                }
                self.label.get_or_insert_with(|| "label".to_string());
            }
        }
        Ok(self)
    }

    fn label_column(&self) -> &str {
        self.label.as_deref().unwrap_or("lung_cancer")
    }
}

pub fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    let (cfg, _) = typed::<CohortConfig>(raw)?;
    let cfg = cfg.normalize()?;
    serde_json::to_value(&cfg).map_err(|e| config_err(&[], e.to_string()))
}

/// One output folder per declared split.
pub fn outputs(config: &Value) -> Vec<(String, String)> {
    config
        .get("splits")
        .and_then(Value::as_object)
        .map(|splits| {
            splits
                .keys()
                .map(|name| (name.clone(), name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A validation error at a place in an input file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// The file as the user named it (relative to the workspace when inside it).
    pub file: String,
    /// 1-based line where the record starts; the header is line 1.
    pub line: Option<usize>,
    /// The column, by header name or, past the header, by 1-based position.
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.file)?;
        if let Some(r) = self.line {
            write!(f, " line {r}")?;
        }
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        write!(f, ": {}", self.message)
    }
}

// ---------------------------------------------------------------------------------------------
// CSV reading

/// A CSV file of the cohort: its validated header and, for the lab layout (whose two files
/// refer to each other), its rows; every row as wide as the header.
#[derive(Debug, Clone)]
struct Table {
    file: String,
    header: Vec<String>,
    data: csv::Table,
}

/// The rows of a CSV read once, in order, without keeping them (the plain layout).
struct RowStream {
    rows: csv::RowReader<std::fs::File>,
    seen: usize,
}

impl Table {
    fn error(
        file: &str,
        line: Option<usize>,
        column: Option<String>,
        message: String,
    ) -> LoadError {
        LoadError {
            file: file.to_string(),
            line,
            column,
            message,
        }
    }

    fn csv_error(file: &str, e: csv::CsvError) -> LoadError {
        match e {
            csv::CsvError::At { line, message } => Table::error(file, Some(line), None, message),
            csv::CsvError::Io(e) => Table::error(file, None, None, format!("cannot read: {e}")),
        }
    }

    /// Reads and validates the header; the rows stay in the stream.
    fn open(file: &str, input: std::fs::File) -> Result<(Table, RowStream), LoadError> {
        let mut rows = csv::RowReader::new(input);
        let Some(head) = rows.header().map_err(|e| Table::csv_error(file, e))? else {
            return Err(Table::empty(file));
        };
        Table::check_header(file, &head.fields, head.line)?;
        let table = Table {
            file: file.to_string(),
            header: head.fields,
            data: csv::Table::default(),
        };
        Ok((table, RowStream { rows, seen: 0 }))
    }

    /// Reads the whole file, keeping its rows compactly.
    fn read(file: &str, input: std::fs::File) -> Result<Table, LoadError> {
        let size = input.metadata().map_or(0, |m| m.len());
        let data = csv::Table::read_sized(input, size).map_err(|e| Table::csv_error(file, e))?;
        if data.no_header() {
            return Err(Table::empty(file));
        }
        Table::check_header(file, &data.header, data.header_line)?;
        let t = Table {
            file: file.to_string(),
            header: data.header.clone(),
            data,
        };
        for r in t.data.rows() {
            t.check_row(&r)?;
        }
        t.check_not_empty(t.data.len())?;
        Ok(t)
    }

    fn empty(file: &str) -> LoadError {
        Table::error(
            file,
            None,
            None,
            "the file is empty: expected a header row".into(),
        )
    }

    /// Column names are present and unique.
    fn check_header(file: &str, header: &[String], line: usize) -> Result<(), LoadError> {
        let err =
            |column: String, message: String| Table::error(file, Some(line), Some(column), message);
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, h) in header.iter().enumerate() {
            if h.is_empty() {
                return Err(err(
                    format!("{}", i + 1),
                    "empty column name in the header".into(),
                ));
            }
            if let Some(first) = seen.insert(h.as_str(), i) {
                return Err(err(
                    format!("`{}`", csv::shown(h)),
                    format!(
                        "the header names `{}` twice (columns {} and {})",
                        csv::shown(h),
                        first + 1,
                        i + 1
                    ),
                ));
            }
        }
        Ok(())
    }

    fn rows(&self) -> impl ExactSizeIterator<Item = csv::Row<'_>> + '_ {
        self.data.rows()
    }

    /// The next row of a stream of this table's file, checked like a stored one; after the
    /// last, the check that there was at least one.
    fn next_row<'s>(&self, s: &'s mut RowStream) -> Result<Option<csv::Row<'s>>, LoadError> {
        match s.rows.next_row() {
            None => {
                self.check_not_empty(s.seen)?;
                Ok(None)
            }
            Some(Err(e)) => Err(Table::csv_error(&self.file, e)),
            Some(Ok(r)) => {
                s.seen += 1;
                self.check_row(&r)?;
                Ok(Some(r))
            }
        }
    }

    fn check_not_empty(&self, rows: usize) -> Result<(), LoadError> {
        if rows == 0 {
            return Err(Table::error(
                &self.file,
                Some(1),
                None,
                "the file has a header but no data rows".into(),
            ));
        }
        Ok(())
    }

    /// Every row is as wide as the header.
    fn check_row(&self, r: &csv::Row<'_>) -> Result<(), LoadError> {
        let width = self.header.len();
        if r.len() == width {
            return Ok(());
        }
        let column = if r.len() < width {
            format!("`{}`", csv::shown(&self.header[r.len()]))
        } else {
            format!("{}", width + 1)
        };
        Err(Table::error(
            &self.file,
            Some(r.line),
            Some(column),
            format!(
                "the row has {} fields but the header has {width} (a ragged row)",
                r.len()
            ),
        ))
    }

    fn err(&self, row: usize, column: usize, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.file.clone(),
            line: Some(row),
            column: Some(format!("`{}`", self.header[column])),
            message: message.into(),
        }
    }

    /// The index of a column the layout needs.
    fn require(&self, name: &str, why: &str) -> Result<usize, LoadError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| LoadError {
                file: self.file.clone(),
                line: Some(1),
                column: Some(format!("`{name}`")),
                message: format!("no such column in the header ({why})"),
            })
    }

    /// Columns whose name starts with `prefix`, excluding `except`, in header order.
    fn with_prefix(&self, prefix: &str, except: &[usize]) -> Vec<usize> {
        (0..self.header.len())
            .filter(|i| !except.contains(i) && self.header[*i].starts_with(prefix))
            .collect()
    }
}

/// A feature value: empty → `None`; otherwise a finite number that fits an f32.
fn parse_feature(cell: &str) -> Result<Option<f32>, String> {
    if cell.is_empty() {
        return Ok(None);
    }
    let shown = || csv::shown(cell);
    let v: f64 = cell
        .parse()
        .map_err(|_| format!("`{}` is not a number", shown()))?;
    if !v.is_finite() {
        return Err(format!(
            "`{}` is not a finite number (NaN and infinities are refused)",
            shown()
        ));
    }
    let x = v as f32;
    if !x.is_finite() {
        return Err(format!("`{}` does not fit a 32-bit float", shown()));
    }
    Ok(Some(x))
}

fn parse_label(cell: &str) -> Result<u8, String> {
    if cell.is_empty() {
        return Err("the label is empty".to_string());
    }
    let bad = || format!("label `{}` is not 0 or 1", csv::shown(cell));
    let v: f64 = cell.parse().map_err(|_| bad())?;
    if v == 0.0 {
        Ok(0)
    } else if v == 1.0 {
        Ok(1)
    } else {
        Err(bad())
    }
}

/// The features of one record, appended to `out`: all present (returns `true`), all empty (the
/// modality is missing: zeros are appended, returns `false`), or an error at the first offending
/// column.
fn parse_features_into(
    t: &Table,
    r: &csv::Row<'_>,
    cols: &[usize],
    out: &mut Vec<f32>,
) -> Result<bool, LoadError> {
    let start = out.len();
    let mut first_empty = None;
    for &c in cols {
        match parse_feature(r.get(c)).map_err(|m| t.err(r.line, c, m))? {
            Some(v) => out.push(v),
            None => {
                first_empty.get_or_insert(c);
            }
        }
    }
    match first_empty {
        None => Ok(true),
        Some(_) if out.len() == start => {
            out.resize(start + cols.len(), 0.0);
            Ok(false)
        }
        Some(c) => Err(t.err(
            r.line,
            c,
            "empty value: leave every feature of a modality empty to mark it missing, or fill them all",
        )),
    }
}

/// [`parse_features_into`] as a value: `None` when the modality is missing.
fn parse_features(
    t: &Table,
    r: &csv::Row<'_>,
    cols: &[usize],
) -> Result<Option<Vec<f32>>, LoadError> {
    let mut values = Vec::with_capacity(cols.len());
    Ok(parse_features_into(t, r, cols, &mut values)?.then_some(values))
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Per nodule rank of a scan: the row it came from and its features (`None`: all empty).
type NoduleSlots = Vec<Option<(usize, Option<Vec<f32>>)>>;

/// A loaded split with where each patient's id came from (for the overlap check).
struct LoadedSplit {
    cohort: Cohort,
    /// Per patient: the row of the file its id was read from.
    origin: Vec<usize>,
    /// The file and column every id of the split was read from.
    id_origin: (String, String),
    /// Rows of earlier sessions that were skipped.
    skipped_sessions: usize,
    /// Per modality, the file and header column of its first feature (for width errors).
    width_origin: [(String, String); 2],
}

/// A modality filled row by row: values appended flat, zeros where missing.
struct ModalityRows {
    values: Vec<f32>,
    present: Vec<bool>,
}

impl ModalityRows {
    fn new() -> ModalityRows {
        ModalityRows {
            values: Vec::new(),
            present: Vec::new(),
        }
    }

    /// Parses one record's columns into the modality (see [`parse_features_into`]).
    fn push(&mut self, t: &Table, r: &csv::Row<'_>, cols: &[usize]) -> Result<(), LoadError> {
        let present = parse_features_into(t, r, cols, &mut self.values)?;
        self.present.push(present);
        Ok(())
    }

    fn into_modality(self, tokens: usize, width: usize) -> Modality {
        Modality {
            tokens,
            width,
            present: self.present,
            values: self.values,
        }
    }
}

fn modality(tokens: usize, width: usize, rows: &[Option<Vec<f32>>]) -> Modality {
    let mut m = Modality::zeros(rows.len(), tokens, width);
    for (i, r) in rows.iter().enumerate() {
        match r {
            Some(v) => m.patient_mut(i).copy_from_slice(v),
            None => m.present[i] = false,
        }
    }
    m
}

fn check_split_width(t: &Table, cols: &[usize], tokens: usize, key: &str) -> Result<(), LoadError> {
    if !cols.len().is_multiple_of(tokens) {
        return Err(LoadError {
            file: t.file.clone(),
            line: Some(1),
            column: Some(format!("`{}`", t.header[cols[0]])),
            message: format!(
                "{} feature columns do not split into {tokens} tokens of equal width (set `{key}` to a divisor of {})",
                cols.len(),
                cols.len()
            ),
        });
    }
    Ok(())
}

fn refuse_empty_patients(
    ids: &[String],
    imaging: &[bool],
    clinical: &[bool],
    origin: &[usize],
    (file, col): &(String, String),
) -> Result<(), LoadError> {
    if let Some(i) = (0..ids.len()).find(|&i| !imaging[i] && !clinical[i]) {
        return Err(LoadError {
            file: file.clone(),
            line: Some(origin[i]),
            column: Some(format!("`{col}`")),
            message: format!(
                "patient `{}` has neither imaging nor clinical features",
                ids[i]
            ),
        });
    }
    Ok(())
}

fn load_lab(
    split: &str,
    clin: &Table,
    img: &Table,
    lab: &LabLayout,
    label_col: &str,
) -> Result<LoadedSplit, LoadError> {
    let labeled = split != UNLABELED;
    let c_pid = clin.require("pid", "the patient id of the lab layout")?;
    let c_id = clin.require("id", "the scan id that links the imaging file")?;
    let c_session = clin.require("session", "the order of the patient's scans")?;
    let c_label = if labeled {
        Some(clin.require(label_col, "the label")?)
    } else {
        None
    };
    let clin_cols = clin.with_prefix(&lab.clin_prefix, &[c_pid, c_id, c_session]);
    if clin_cols.is_empty() {
        return Err(LoadError {
            file: clin.file.clone(),
            line: Some(1),
            column: None,
            message: format!(
                "no column starts with `{}` (`lab.clin_prefix`)",
                lab.clin_prefix
            ),
        });
    }
    check_split_width(clin, &clin_cols, lab.clin_tokens, "lab.clin_tokens")?;

    // Every row is validated, then one row per patient kept.
    struct Row {
        row: usize,
        scan: String,
        session: u64,
        label: u8,
        features: Option<Vec<f32>>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut kept: HashMap<String, Row> = HashMap::new();
    let mut scans: HashMap<String, usize> = HashMap::new();
    let mut skipped = 0;
    for r in clin.rows() {
        let pid = r.get(c_pid).to_string();
        if pid.is_empty() {
            return Err(clin.err(r.line, c_pid, "empty patient id"));
        }
        let scan = r.get(c_id).to_string();
        if scan.is_empty() {
            return Err(clin.err(r.line, c_id, "empty scan id"));
        }
        if let Some(first) = scans.insert(scan.clone(), r.line) {
            return Err(clin.err(
                r.line,
                c_id,
                format!(
                    "duplicate id: scan `{}` is also on line {first}",
                    csv::shown(&scan)
                ),
            ));
        }
        let session: u64 = r.get(c_session).parse().map_err(|_| {
            clin.err(
                r.line,
                c_session,
                format!(
                    "session `{}` is not a whole number ≥ 0",
                    csv::shown(r.get(c_session))
                ),
            )
        })?;
        let label = match c_label {
            Some(c) => parse_label(r.get(c)).map_err(|m| clin.err(r.line, c, m))?,
            None => 0,
        };
        let features = parse_features(clin, &r, &clin_cols)?;
        let row = Row {
            row: r.line,
            scan,
            session,
            label,
            features,
        };
        match kept.get(&pid) {
            None => {
                order.push(pid.clone());
                kept.insert(pid, row);
            }
            Some(prev) => match lab.session_policy {
                SessionPolicy::Single => {
                    return Err(clin.err(
                        r.line,
                        c_pid,
                        format!(
                            "duplicate id: patient `{pid}` is also on line {} (`session_policy: single` wants one row per patient; `latest` keeps the latest session)",
                            prev.row
                        ),
                    ));
                }
                SessionPolicy::Latest if prev.session == session => {
                    return Err(clin.err(
                        r.line,
                        c_session,
                        format!(
                            "duplicate id: patient `{pid}` has session {session} on line {} too",
                            prev.row
                        ),
                    ));
                }
                SessionPolicy::Latest => {
                    skipped += 1;
                    if session > prev.session {
                        kept.insert(pid, row);
                    }
                }
            },
        }
    }

    // Imaging: one row per (scan, nodule).
    let i_id = img.require("id", "the scan id of the clinical file")?;
    let i_nodule = img.require("nodule", "the nodule's rank 0…img_tokens−1")?;
    let img_cols = img.with_prefix(&lab.img_prefix, &[i_id, i_nodule]);
    if img_cols.is_empty() {
        return Err(LoadError {
            file: img.file.clone(),
            line: Some(1),
            column: None,
            message: format!(
                "no column starts with `{}` (`lab.img_prefix`)",
                lab.img_prefix
            ),
        });
    }
    let width = img_cols.len();
    let mut nodules: HashMap<String, NoduleSlots> = HashMap::new();
    for r in img.rows() {
        let scan = r.get(i_id);
        if !scans.contains_key(scan) {
            return Err(img.err(
                r.line,
                i_id,
                format!(
                    "scan `{}` is not in `{}` (column `id`)",
                    csv::shown(scan),
                    clin.file
                ),
            ));
        }
        let k: usize = r
            .get(i_nodule)
            .parse()
            .ok()
            .filter(|&k| k < lab.img_tokens)
            .ok_or_else(|| {
                img.err(
                    r.line,
                    i_nodule,
                    format!(
                        "nodule `{}` is not a rank in 0…{} (`lab.img_tokens` = {})",
                        csv::shown(r.get(i_nodule)),
                        lab.img_tokens - 1,
                        lab.img_tokens
                    ),
                )
            })?;
        let slots = nodules
            .entry(scan.to_string())
            .or_insert_with(|| vec![None; lab.img_tokens]);
        if let Some((first, _)) = &slots[k] {
            return Err(img.err(
                r.line,
                i_nodule,
                format!("duplicate id: scan `{scan}` nodule {k} is also on line {first}"),
            ));
        }
        slots[k] = Some((r.line, parse_features(img, &r, &img_cols)?));
    }

    let mut ids = Vec::with_capacity(order.len());
    let mut labels = Vec::with_capacity(order.len());
    let mut clinical = Vec::with_capacity(order.len());
    let mut imaging = Vec::with_capacity(order.len());
    let mut origin = Vec::with_capacity(order.len());
    for pid in order {
        let row = kept.remove(&pid).expect("every ordered patient was kept");
        let scan_img = match nodules.get(&row.scan) {
            None => None,
            Some(slots) => {
                let filled = slots
                    .iter()
                    .filter(|s| matches!(s, Some((_, Some(_)))))
                    .count();
                let first_row = slots.iter().flatten().map(|(r, _)| *r).min().unwrap_or(1);
                if filled == 0 {
                    None
                } else if filled < lab.img_tokens {
                    let lacking: Vec<String> = slots
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| !matches!(s, Some((_, Some(_)))))
                        .map(|(k, _)| k.to_string())
                        .collect();
                    return Err(img.err(
                        first_row,
                        i_nodule,
                        format!(
                            "inconsistent widths: scan `{}` has features for {filled} of {} nodules (none for {}): give every nodule or none",
                            row.scan,
                            lab.img_tokens,
                            lacking.join(", ")
                        ),
                    ));
                } else {
                    Some(
                        slots
                            .iter()
                            .flatten()
                            .flat_map(|(_, v)| v.iter().flatten().copied())
                            .collect(),
                    )
                }
            }
        };
        origin.push(row.row);
        ids.push(pid);
        labels.push(row.label);
        clinical.push(row.features);
        imaging.push(scan_img);
    }
    let id_origin = (clin.file.clone(), "pid".to_string());
    let imaging = modality(lab.img_tokens, width, &imaging);
    let clinical = modality(
        lab.clin_tokens,
        clin_cols.len() / lab.clin_tokens,
        &clinical,
    );
    refuse_empty_patients(
        &ids,
        &imaging.present,
        &clinical.present,
        &origin,
        &id_origin,
    )?;
    let n = ids.len();
    Ok(LoadedSplit {
        cohort: Cohort {
            format: COHORT_FORMAT,
            name: split.to_string(),
            n,
            ids,
            labels: labeled.then_some(labels),
            imaging,
            clinical,
            true_logit: None,
        },
        origin,
        id_origin,
        skipped_sessions: skipped,
        width_origin: [
            (img.file.clone(), img.header[img_cols[0]].clone()),
            (clin.file.clone(), clin.header[clin_cols[0]].clone()),
        ],
    })
}

/// The first repeated id in file order (the earliest row that repeats an id, with the row it
/// first appeared on), found by sorting row indices: 4 bytes a patient instead of a hash map.
fn refuse_duplicate_ids(
    t: &Table,
    c_id: usize,
    ids: &[String],
    rows: &[usize],
) -> Result<(), LoadError> {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| ids[a as usize].cmp(&ids[b as usize]).then(a.cmp(&b)));
    let repeat = order
        .windows(2)
        .filter(|w| ids[w[0] as usize] == ids[w[1] as usize])
        .map(|w| w[1] as usize)
        .min();
    if let Some(i) = repeat {
        let first = order
            .iter()
            .map(|&j| j as usize)
            .find(|&j| ids[j] == ids[i])
            .expect("the id occurs before");
        return Err(t.err(
            rows[i],
            c_id,
            format!(
                "duplicate id: patient `{}` is also on line {}",
                csv::shown(&ids[i]),
                rows[first]
            ),
        ));
    }
    Ok(())
}

fn plain_columns(
    t: &Table,
    set: &ColumnSet,
    key: &str,
    except: &[usize],
) -> Result<Vec<usize>, LoadError> {
    let cols = match (&set.columns, &set.prefix) {
        (Some(names), _) => names
            .iter()
            .map(|n| t.require(n, &format!("listed in `plain.{key}.columns`")))
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(p)) => t.with_prefix(p, except),
        (None, None) => Vec::new(),
    };
    if cols.is_empty() {
        return Err(LoadError {
            file: t.file.clone(),
            line: Some(1),
            column: None,
            message: format!("no feature column for `plain.{key}`"),
        });
    }
    check_split_width(t, &cols, set.tokens, &format!("plain.{key}.tokens"))?;
    Ok(cols)
}

fn load_plain(
    split: &str,
    (t, mut stream): (Table, RowStream),
    plain: &PlainLayout,
    label_col: &str,
) -> Result<LoadedSplit, LoadError> {
    let t = &t;
    let labeled = split != UNLABELED;
    let c_id = t.require(&plain.id, "`plain.id`")?;
    let c_label = if labeled {
        Some(t.require(label_col, "the label")?)
    } else {
        None
    };
    let except: Vec<usize> = std::iter::once(c_id).chain(c_label).collect();
    let img_cols = plain_columns(t, &plain.imaging, "imaging", &except)?;
    let clin_cols = plain_columns(t, &plain.clinical, "clinical", &except)?;
    if let Some(&c) = img_cols.iter().find(|c| clin_cols.contains(c)) {
        return Err(LoadError {
            file: t.file.clone(),
            line: Some(1),
            column: Some(format!("`{}`", t.header[c])),
            message: "the column is declared for both imaging and clinical".to_string(),
        });
    }
    // Rows are parsed straight into flat modality buffers: memory stays a few bytes per value.
    let (mut ids, mut labels, mut origin) = (Vec::new(), Vec::new(), Vec::new());
    let (mut imaging, mut clinical) = (ModalityRows::new(), ModalityRows::new());
    while let Some(r) = t.next_row(&mut stream)? {
        let id = r.get(c_id);
        if id.is_empty() {
            return Err(t.err(r.line, c_id, "empty patient id"));
        }
        if let Some(c) = c_label {
            labels.push(parse_label(r.get(c)).map_err(|m| t.err(r.line, c, m))?);
        }
        imaging.push(t, &r, &img_cols)?;
        clinical.push(t, &r, &clin_cols)?;
        origin.push(r.line);
        ids.push(id.to_string());
    }
    refuse_duplicate_ids(t, c_id, &ids, &origin)?;
    let id_origin = (t.file.clone(), plain.id.clone());
    refuse_empty_patients(
        &ids,
        &imaging.present,
        &clinical.present,
        &origin,
        &id_origin,
    )?;
    let n = ids.len();
    Ok(LoadedSplit {
        cohort: Cohort {
            format: COHORT_FORMAT,
            name: split.to_string(),
            n,
            ids,
            labels: labeled.then_some(labels),
            imaging: imaging
                .into_modality(plain.imaging.tokens, img_cols.len() / plain.imaging.tokens),
            clinical: clinical.into_modality(
                plain.clinical.tokens,
                clin_cols.len() / plain.clinical.tokens,
            ),
            true_logit: None,
        },
        origin,
        id_origin,
        skipped_sessions: 0,
        width_origin: [
            (t.file.clone(), t.header[img_cols[0]].clone()),
            (t.file.clone(), t.header[clin_cols[0]].clone()),
        ],
    })
}

/// Refuses a patient id in two splits and splits with different modality shapes.
fn check_across_splits(loaded: &[LoadedSplit]) -> Result<(), LoadError> {
    // Sorted (id, split, patient) triples instead of a hash map: 16 bytes a patient. Within a
    // split ids are unique, so the overlap reported is the earliest patient, in split and row
    // order, whose id an earlier split already has.
    let mut all: Vec<(&str, u32, u32)> = loaded
        .iter()
        .enumerate()
        .flat_map(|(k, s)| {
            s.cohort
                .ids
                .iter()
                .enumerate()
                .map(move |(i, id)| (id.as_str(), k as u32, i as u32))
        })
        .collect();
    all.sort_unstable();
    let overlap = all
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| (w[1].1, w[1].2, w[0].1, w[0].2))
        .min();
    drop(all);
    if let Some((k, i, k0, i0)) = overlap {
        let (s, first) = (&loaded[k as usize], &loaded[k0 as usize]);
        let (file, column) = &s.id_origin;
        let id = &s.cohort.ids[i as usize];
        return Err(LoadError {
            file: file.clone(),
            line: Some(s.origin[i as usize]),
            column: Some(format!("`{column}`")),
            message: format!(
                "split overlap: patient `{}` of split `{}` is also in split `{}` (`{}` line {})",
                csv::shown(id),
                s.cohort.name,
                first.cohort.name,
                first.id_origin.0,
                first.origin[i0 as usize]
            ),
        });
    }
    if let Some(first) = loaded.first() {
        for s in &loaded[1..] {
            for (k, (name, a, b)) in [
                ("imaging", &first.cohort.imaging, &s.cohort.imaging),
                ("clinical", &first.cohort.clinical, &s.cohort.clinical),
            ]
            .into_iter()
            .enumerate()
            {
                if (a.tokens, a.width) != (b.tokens, b.width) {
                    let (file, col) = &s.width_origin[k];
                    return Err(LoadError {
                        file: file.clone(),
                        line: Some(1),
                        column: Some(format!("`{col}`")),
                        message: format!(
                            "inconsistent widths: {name} is {} tokens × {} features here but {} × {} in split `{}` (`{}`)",
                            b.tokens,
                            b.width,
                            a.tokens,
                            a.width,
                            first.cohort.name,
                            first.width_origin[k].0
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Reads the file behind dep `dep`; the name shown in errors is relative to the workspace.
fn read_dep(task: &TaskFile, split: &str, key: &str, dep: &str) -> Result<Table, StageError> {
    let (shown, file) = open_dep(task, split, key, dep)?;
    Table::read(&shown, file).map_err(|e| StageError::Input(e.to_string()))
}

/// The file behind dep `dep`, opened, with its name as shown in errors (relative to the
/// workspace).
fn open_dep(
    task: &TaskFile,
    split: &str,
    key: &str,
    dep: &str,
) -> Result<(String, std::fs::File), StageError> {
    let paths = task.inputs.get(dep).ok_or_else(|| {
        let declared: Vec<String> = task.inputs.keys().map(|k| format!("`{k}`")).collect();
        StageError::Dependency(format!(
            "config splits.{split}.{key}: `{dep}` is not a dep of this stage (declared: {}); add it under `deps:`",
            if declared.is_empty() { "none".to_string() } else { declared.join(", ") }
        ))
    })?;
    let [path] = paths.as_slice() else {
        return Err(StageError::Dependency(format!(
            "config splits.{split}.{key}: dep `{dep}` names {} files; a split reads exactly one",
            paths.len()
        )));
    };
    let shown = path
        .strip_prefix(&task.workspace)
        .unwrap_or(path)
        .display()
        .to_string();
    let file = std::fs::File::open(path).map_err(StageError::io("read", Path::new(&shown)))?;
    Ok((shown, file))
}

pub fn run(task: &TaskFile, log: &mut dyn Write) -> Result<Value, StageError> {
    let cfg: CohortConfig = from_task(&task.config)?;
    let cfg = cfg.normalize().map_err(StageError::Config)?;
    let label = cfg.label_column().to_string();
    // A declared dep no split reads is most likely a typo in `splits`: refuse it.
    let referenced: Vec<&String> = cfg
        .splits
        .values()
        .flat_map(|f| [&f.clinical, &f.imaging, &f.table])
        .flatten()
        .collect();
    if let Some(unused) = task.inputs.keys().find(|d| !referenced.contains(d)) {
        return Err(StageError::Dependency(format!(
            "dep `{unused}` is not read by any split: reference it under `config.splits` or remove it"
        )));
    }
    let mut loaded = Vec::with_capacity(cfg.splits.len());
    // Splits in the fixed order of SPLIT_NAMES, so messages and logs never depend on map order.
    for split in SPLIT_NAMES {
        let Some(files) = cfg.splits.get(split) else {
            continue;
        };
        let one = match (cfg.format, &files.clinical, &files.imaging, &files.table) {
            (CsvFormat::Lab, Some(c), Some(i), _) => {
                let clin = read_dep(task, split, "clinical", c)?;
                let img = read_dep(task, split, "imaging", i)?;
                let lab = cfg.lab.clone().unwrap_or_default();
                load_lab(split, &clin, &img, &lab, &label)
            }
            (CsvFormat::Plain, _, _, Some(t)) => {
                let (shown, file) = open_dep(task, split, "table", t)?;
                let table =
                    Table::open(&shown, file).map_err(|e| StageError::Input(e.to_string()))?;
                let plain = cfg.plain.as_ref().ok_or_else(|| {
                    StageError::Config(ConfigError {
                        path: vec!["plain".to_string()],
                        message: "`format: plain` needs `plain:`".to_string(),
                    })
                })?;
                load_plain(split, table, plain, &label)
            }
            _ => {
                return Err(StageError::Config(ConfigError {
                    path: vec!["splits".to_string(), split.to_string()],
                    message: "files do not match the format".to_string(),
                }));
            }
        };
        loaded.push(one.map_err(|e| StageError::Input(e.to_string()))?);
    }
    check_across_splits(&loaded).map_err(|e| StageError::Input(e.to_string()))?;
    // The same rule as `orchestrate stats`: a labeled split must be one an AUC can be computed on.
    for s in &loaded {
        if let Some(labels) = &s.cohort.labels {
            let n_pos = labels.iter().filter(|l| **l == 1).count();
            crate::cohort::check_classes(n_pos, labels.len() - n_pos).map_err(|m| {
                StageError::Input(format!(
                    "split `{}` (`{}`): {m}",
                    s.cohort.name, s.width_origin[1].0
                ))
            })?;
        }
    }

    let mut metrics = serde_json::Map::new();
    let mut summary = String::new();
    for s in &loaded {
        let c = &s.cohort;
        c.write(&task.out_dir.join(&c.name))
            .map_err(StageError::cohort)?;
        let no_img = c.imaging.present.iter().filter(|p| !**p).count();
        let no_clin = c.clinical.present.iter().filter(|p| !**p).count();
        let prevalence = c.prevalence();
        let _ = writeln!(
            summary,
            "{}: {} patients, prevalence {}, imaging {}×{} ({} missing), clinical {}×{} ({} missing), {} earlier sessions skipped",
            c.name,
            c.n,
            prevalence.map_or("n/a".to_string(), |p| format!("{p:.3}")),
            c.imaging.tokens,
            c.imaging.width,
            no_img,
            c.clinical.tokens,
            c.clinical.width,
            no_clin,
            s.skipped_sessions
        );
        metrics.insert(format!("n_{}", c.name), json!(c.n));
        if let Some(p) = prevalence {
            metrics.insert(format!("prevalence_{}", c.name), json!(p));
        }
        metrics.insert(format!("missing_imaging_{}", c.name), json!(no_img));
        metrics.insert(format!("missing_clinical_{}", c.name), json!(no_clin));
    }
    log.write_all(summary.as_bytes())
        .map_err(StageError::io("write", Path::new("the log")))?;
    Ok(Value::Object(metrics))
}

// ---------------------------------------------------------------------------------------------
// Writing the lab layout (examples and tests)

/// A cohort in the lab layout: the clinical CSV and the imaging features CSV, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabFiles {
    pub clinical: String,
    pub imaging: String,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn fmt_value(out: &mut String, v: f32, decimals: Option<usize>) {
    let _ = match decimals {
        Some(d) => write!(out, ",{v:.d$}"),
        None => write!(out, ",{v}"),
    };
}

/// Writes `cohort` in the lab layout with the default column names (`lung_cancer`, `exp-`,
/// `f`): patient `i` gets `earlier_sessions[i]` (0 if absent) earlier sessions before its latest
/// one, a year apart, whose clinical and imaging values are the latest ones scaled by 0.8 (a
/// loader keeping the latest session must skip them). A missing modality is written as empty
/// `exp-*` cells or no nodule rows. `decimals` rounds features (`None`: exact round trip).
pub fn lab_layout(cohort: &Cohort, earlier_sessions: &[u32], decimals: Option<usize>) -> LabFiles {
    let clin_width = cohort.clinical.tokens * cohort.clinical.width;
    let mut clinical = String::from("pid,id,session,shifted_scan_date,Duration,lung_cancer");
    for j in 0..clin_width {
        let _ = write!(clinical, ",exp-{j:03}");
    }
    clinical.push('\n');
    let mut imaging = String::from("id,nodule");
    for j in 0..cohort.imaging.width {
        let _ = write!(imaging, ",f{j:03}");
    }
    imaging.push('\n');
    for (i, pid) in cohort.ids.iter().enumerate() {
        let extra = earlier_sessions.get(i).copied().unwrap_or(0);
        // The latest scan falls in 2016, on a date that varies by patient.
        let (month, day) = (1 + (i % 12) as i64, 1 + (i % 28) as i64);
        let latest = days_from_civil(2016, month, day);
        for s in 0..=extra {
            let years_before = i64::from(extra - s);
            let date_days = days_from_civil(2016 - years_before, month, day);
            let scale = if s == extra { 1.0 } else { 0.8 };
            let scan = format!("{pid}-s{s}");
            let label = cohort
                .labels
                .as_ref()
                .map_or(String::new(), |l| l[i].to_string());
            let _ = write!(
                clinical,
                "{pid},{scan},{s},{:04}-{month:02}-{day:02},{},{label}",
                2016 - years_before,
                latest - date_days
            );
            if cohort.clinical.present[i] {
                for &v in cohort.clinical.patient(i) {
                    fmt_value(&mut clinical, scale * v, decimals);
                }
            } else {
                clinical.push_str(&",".repeat(clin_width));
            }
            clinical.push('\n');
            if cohort.imaging.present[i] {
                for (k, token) in cohort
                    .imaging
                    .patient(i)
                    .chunks_exact(cohort.imaging.width.max(1))
                    .enumerate()
                {
                    let _ = write!(imaging, "{scan},{k}");
                    for &v in token {
                        fmt_value(&mut imaging, scale * v, decimals);
                    }
                    imaging.push('\n');
                }
            }
        }
    }
    LabFiles { clinical, imaging }
}

/// Writes [`lab_layout`] of `cohort` as `<dir>/<name>_clinical.csv` and `<dir>/<name>_imaging.csv`.
pub fn write_lab_layout(
    dir: &Path,
    name: &str,
    cohort: &Cohort,
    earlier_sessions: &[u32],
    decimals: Option<usize>,
) -> std::io::Result<()> {
    let files = lab_layout(cohort, earlier_sessions, decimals);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{name}_clinical.csv")), files.clinical)?;
    std::fs::write(dir.join(format!("{name}_imaging.csv")), files.imaging)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::StageKind;
    use crate::synth::{SynthConfig, generate};

    fn study() -> Vec<Cohort> {
        let cfg = SynthConfig {
            n_unlabeled: 10,
            n_incomplete: 40,
            n_finetune: 10,
            n_internal: 30,
            n_external: 30,
            img_width: 3,
            clin_tokens: 2,
            clin_width: 3,
            ..SynthConfig::default()
        };
        generate(&cfg, 5).cohorts
    }

    fn lab_config(splits: &[&str]) -> Value {
        let splits: serde_json::Map<String, Value> = splits
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    json!({"clinical": format!("{s}_clin"), "imaging": format!("{s}_img")}),
                )
            })
            .collect();
        resolve(&json!({"format": "lab", "splits": splits, "lab": {"clin_tokens": 2}}))
            .expect("valid")
    }

    fn task(dir: &Path, config: Value, files: &[(&str, &str)]) -> TaskFile {
        let mut inputs = BTreeMap::new();
        for (dep, text) in files {
            let p = dir.join(format!("{dep}.csv"));
            std::fs::write(&p, text).expect("write input");
            inputs.insert(dep.to_string(), vec![p]);
        }
        TaskFile {
            format: crate::task::TASK_FORMAT,
            stage: "cohort".into(),
            kind: StageKind::Cohort,
            workspace: dir.to_path_buf(),
            scratch: dir.to_path_buf(),
            out_dir: dir.join("out"),
            outs: BTreeMap::new(),
            command: None,
            config,
            inputs,
            seed: 0,
            threads: 1,
            devices: Vec::new(),
            pin_devices: true,
            backend: Default::default(),
        }
    }

    /// Runs a one-split lab task on the given texts; returns the error message.
    fn lab_error(clinical: &str, imaging: &str) -> String {
        let d = tempfile::tempdir().expect("tmp");
        let t = task(
            d.path(),
            lab_config(&["internal"]),
            &[("internal_clin", clinical), ("internal_img", imaging)],
        );
        run(&t, &mut Vec::new()).unwrap_err().to_string()
    }

    const CLIN: &str = "pid,id,session,shifted_scan_date,Duration,lung_cancer,exp-000,exp-001\n\
                        p1,p1-s0,0,2016-01-01,0,1,0.5,1.5\n\
                        p2,p2-s0,0,2016-01-02,0,0,0.25,-1\n";
    const IMG: &str = "id,nodule,f000\np1-s0,0,1\n";

    #[test]
    fn config_defaults_are_filled_and_mistakes_named() {
        let full = lab_config(&["internal"]);
        assert_eq!(full["label"], "lung_cancer");
        assert_eq!(full["lab"]["session_policy"], "latest");
        assert_eq!(full["lab"]["img_tokens"], 5);
        assert_eq!(
            outputs(&full),
            [("internal".to_string(), "internal".to_string())]
        );
        let e =
            resolve(&json!({"splits": {"test": {"clinical": "a", "imaging": "b"}}})).unwrap_err();
        assert_eq!(e.path, ["splits", "test"]);
        let e = resolve(&json!({"splits": {"internal": {"clinical": "a"}}})).unwrap_err();
        assert!(e.message.contains("`imaging`"), "{}", e.message);
        let e = resolve(&json!({"format": "plain", "splits": {"internal": {"table": "t"}}}))
            .unwrap_err();
        assert!(e.message.contains("plain"), "{}", e.message);
        let e = resolve(&json!({"splits": {}})).unwrap_err();
        assert_eq!(e.path, ["splits"]);
        let e = resolve(&json!({"splits": {"internal": {"clinical": "a", "imaging": "b"}}, "lab": {"img_tokens": 0}})).unwrap_err();
        assert_eq!(e.path, ["lab", "img_tokens"]);
    }

    #[test]
    fn lab_layout_round_trips_every_split_with_sessions_and_missing_modalities() {
        let cohorts = study();
        let d = tempfile::tempdir().expect("tmp");
        let names = ["incomplete", "finetune", "internal", "external"];
        let mut files = Vec::new();
        let mut texts = Vec::new();
        for c in cohorts.iter().filter(|c| names.contains(&c.name.as_str())) {
            // Every third patient has two earlier sessions.
            let sessions: Vec<u32> = (0..c.n).map(|i| if i % 3 == 0 { 2 } else { 0 }).collect();
            let f = lab_layout(c, &sessions, None);
            texts.push((format!("{}_clin", c.name), f.clinical));
            texts.push((format!("{}_img", c.name), f.imaging));
        }
        for (dep, text) in &texts {
            files.push((dep.as_str(), text.as_str()));
        }
        let t = task(d.path(), lab_config(&names), &files);
        let mut log = Vec::new();
        let metrics = run(&t, &mut log).expect("loads");
        for c in cohorts.iter().filter(|c| names.contains(&c.name.as_str())) {
            let back = Cohort::read(&t.out_dir.join(&c.name)).expect("cohort");
            let want = Cohort {
                true_logit: None,
                ..c.clone()
            };
            assert_eq!(back, want, "split {}", c.name);
        }
        let incomplete = Cohort::read(&t.out_dir.join("incomplete")).expect("cohort");
        assert!(incomplete.imaging.present.iter().any(|p| !p));
        assert!(incomplete.clinical.present.iter().any(|p| !p));
        assert_eq!(metrics["n_internal"], 30);
        let log = String::from_utf8(log).expect("utf8");
        assert!(log.contains("internal: 30 patients"), "{log}");
        assert!(log.contains("20 earlier sessions skipped"), "{log}");
    }

    #[test]
    fn plain_layout_loads_declared_columns() {
        let d = tempfile::tempdir().expect("tmp");
        let csv = "id,label,img_a,img_b,age,smoker\nx,1,0.5,1,60,1\ny,0,,,70,0\nz,1,1,1,50,0\nw,0,2,2,40,1\n";
        let config = resolve(&json!({
            "format": "plain",
            "splits": {"internal": {"table": "t"}},
            "plain": {"imaging": {"prefix": "img_", "tokens": 2}, "clinical": {"columns": ["age", "smoker"]}}
        }))
        .expect("valid");
        assert_eq!(config["plain"]["id"], "id");
        let t = task(d.path(), config, &[("t", csv)]);
        run(&t, &mut Vec::new()).expect("loads");
        let c = Cohort::read(&t.out_dir.join("internal")).expect("cohort");
        assert_eq!(c.ids, ["x", "y", "z", "w"]);
        assert_eq!(c.labels, Some(vec![1, 0, 1, 0]));
        assert_eq!((c.imaging.tokens, c.imaging.width), (2, 1));
        assert_eq!(c.imaging.present, [true, false, true, true]);
        assert_eq!(c.clinical.patient(1), [70.0, 0.0]);
    }

    #[test]
    fn the_latest_session_is_kept() {
        let d = tempfile::tempdir().expect("tmp");
        let clin = "pid,id,session,lung_cancer,exp-000,exp-001\n\
                    p1,p1-s1,1,1,2,2\n\
                    p1,p1-s0,0,0,1,1\n\
                    p2,p2-s0,0,0,1,1\n\
                    p3,p3-s0,0,1,1,1\n\
                    p4,p4-s0,0,0,1,1\n";
        let img = "id,nodule,f000\np1-s1,0,7\np1-s0,0,3\np2-s0,0,1\np3-s0,0,1\np4-s0,0,1\n";
        let config = resolve(&json!({
            "splits": {"internal": {"clinical": "c", "imaging": "i"}},
            "lab": {"img_tokens": 1}
        }))
        .expect("valid");
        let t = task(d.path(), config, &[("c", clin), ("i", img)]);
        run(&t, &mut Vec::new()).expect("loads");
        let c = Cohort::read(&t.out_dir.join("internal")).expect("cohort");
        assert_eq!(c.labels, Some(vec![1, 0, 1, 0]));
        assert_eq!(c.clinical.patient(0), [2.0, 2.0]);
        assert_eq!(c.imaging.patient(0), [7.0]);
    }

    #[test]
    fn every_error_names_file_line_and_column() {
        let cases = [
            (
                CLIN.replace("p2,p2-s0,0", "p1,p1-s1,0"),
                IMG.to_string(),
                "`internal_clin.csv` line 3, column `session`: duplicate id",
            ),
            (
                CLIN.replace(",0,0.25", ",2,0.25"),
                IMG.to_string(),
                "`internal_clin.csv` line 3, column `lung_cancer`: label `2` is not 0 or 1",
            ),
            (
                CLIN.replace("0.25", "NaN"),
                IMG.to_string(),
                "`internal_clin.csv` line 3, column `exp-000`: `NaN` is not a finite number",
            ),
            (
                CLIN.replace("0.25", "abc"),
                IMG.to_string(),
                "`internal_clin.csv` line 3, column `exp-000`: `abc` is not a number",
            ),
            (
                CLIN.replace("0.25,-1", "0.25"),
                IMG.to_string(),
                "`internal_clin.csv` line 3, column `exp-001`: the row has 7 fields but the header has 8",
            ),
            (
                CLIN.replace("0.25,-1", "0.25,"),
                IMG.to_string(),
                "`internal_clin.csv` line 3, column `exp-001`: empty value",
            ),
            (
                CLIN.to_string(),
                "id,nodule,f000\np1-s0,0,1\np9-s0,0,1\n".to_string(),
                "`internal_img.csv` line 3, column `id`: scan `p9-s0` is not in `internal_clin.csv`",
            ),
            (
                CLIN.to_string(),
                "id,nodule,f000\np1-s0,0,1\np1-s0,0,2\n".to_string(),
                "`internal_img.csv` line 3, column `nodule`: duplicate id",
            ),
            (
                CLIN.replace(",lung_cancer", ",outcome"),
                IMG.to_string(),
                "`internal_clin.csv` line 1, column `lung_cancer`: no such column",
            ),
        ];
        for (clin, img, want) in cases {
            // One nodule token, so `IMG`'s single row per scan is complete.
            let d = tempfile::tempdir().expect("tmp");
            let config = resolve(&json!({
                "splits": {"internal": {"clinical": "internal_clin", "imaging": "internal_img"}},
                "lab": {"img_tokens": 1}
            }))
            .expect("valid");
            let t = task(
                d.path(),
                config,
                &[("internal_clin", &clin), ("internal_img", &img)],
            );
            let err = run(&t, &mut Vec::new()).unwrap_err().to_string();
            assert!(err.starts_with(want), "want `{want}`\n got `{err}`");
        }
        // Five nodule tokens wanted, one given.
        let err = lab_error(CLIN, IMG);
        assert!(
            err.starts_with("`internal_img.csv` line 2, column `nodule`: inconsistent widths"),
            "{err}"
        );
    }

    #[test]
    fn a_patient_in_two_splits_is_refused() {
        let d = tempfile::tempdir().expect("tmp");
        let ext = CLIN
            .replace("p1,p1-s0", "q1,q1-s0")
            .replace("p2-s0", "p2-x");
        let img_ext = "id,nodule,f000\nq1-s0,0,1\n";
        let config = resolve(&json!({
            "splits": {
                "internal": {"clinical": "ic", "imaging": "ii"},
                "external": {"clinical": "ec", "imaging": "ei"}
            },
            "lab": {"img_tokens": 1}
        }))
        .expect("valid");
        let t = task(
            d.path(),
            config,
            &[("ic", CLIN), ("ii", IMG), ("ec", &ext), ("ei", img_ext)],
        );
        let err = run(&t, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.starts_with("`ec.csv` line 3, column `pid`: split overlap: patient `p2` of split `external` is also in split `internal` (`ic.csv` line 3)"),
            "{err}"
        );
    }

    #[test]
    fn an_undeclared_dep_is_named() {
        let d = tempfile::tempdir().expect("tmp");
        let t = task(
            d.path(),
            lab_config(&["internal"]),
            &[("internal_clin", CLIN)],
        );
        let err = run(&t, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains("`internal_img` is not a dep of this stage"),
            "{err}"
        );
    }

    #[test]
    fn an_unused_dep_is_refused() {
        let d = tempfile::tempdir().expect("tmp");
        let t = task(
            d.path(),
            lab_config(&["internal"]),
            &[
                ("internal_clin", CLIN),
                ("internal_img", IMG),
                ("extra", CLIN),
            ],
        );
        let err = run(&t, &mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains("dep `extra` is not read by any split"),
            "{err}"
        );
    }

    #[test]
    fn dates_count_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            days_from_civil(2016, 3, 1) - days_from_civil(2016, 2, 1),
            29
        );
        assert_eq!(
            days_from_civil(2016, 1, 1) - days_from_civil(2015, 1, 1),
            365
        );
    }
}
