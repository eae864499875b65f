//! `orchestrate stats`: AUC of one or more score columns of a CSV file, with DeLong and bootstrap
//! intervals, and every pair of scores compared on the same rows.
//!
//! Owns: reading and validating the CSV (a small reader: comma separated, optional double quotes
//! with `""` escapes, a header row), turning it into labels, scores and patient ids, and shaping the
//! result as JSON or a short table. All statistics come from `crate::stats`; nothing here computes
//! one. Errors name the file, column and row; the caller maps them to exit code 2.

use crate::csv;
use crate::stats::{self, BootstrapConfig, Direction, StatsError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// AUCs with DeLong and bootstrap confidence intervals, and paired comparisons of the scores.
#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// CSV file with a header row (comma separated, optional double quotes).
    pub file: PathBuf,
    /// Column holding the binary outcome.
    #[arg(long, value_name = "COL")]
    pub label: String,
    /// Score column (higher = more likely positive); repeat to compare models on the same rows.
    #[arg(long = "score", value_name = "COL", required = true)]
    pub scores: Vec<String>,
    /// Label value of the positive class; without it labels must be 0/1 or true/false.
    #[arg(long, value_name = "VALUE")]
    pub positive: Option<String>,
    /// Patient id column: the bootstrap resamples patients with all their rows (DeLong intervals
    /// still treat rows as independent).
    #[arg(long, value_name = "COL")]
    pub id: Option<String>,
    /// Bootstrap resamples.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub boot: usize,
    /// Seed of the bootstrap resamples.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Confidence level of every interval.
    #[arg(long, value_name = "L", default_value_t = 0.95)]
    pub level: f64,
    /// Resample positives and negatives separately.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub stratified: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Why `orchestrate stats` refused its input.
#[derive(Debug, thiserror::Error)]
pub enum StatsCmdError {
    #[error("cannot read `{path}`: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("`{path}` is empty: expected a header row")]
    Empty { path: String },
    #[error("`{path}` has a header but no data rows")]
    NoRows { path: String },
    #[error("`{path}`, line {line}: {message}")]
    Csv {
        path: String,
        line: usize,
        message: String,
    },
    #[error("`{path}`, row {row} (line {line}): {found} fields but the header has {expected}")]
    FieldCount {
        path: String,
        row: usize,
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("`{path}` has no column `{column}`; available columns: {available}")]
    MissingColumn {
        path: String,
        column: String,
        available: String,
    },
    #[error("`{path}`: column `{column}` appears more than once in the header")]
    DuplicateColumn { path: String, column: String },
    #[error(
        "`{path}`, row {row} (line {line}), column `{column}`: label `{value}` is not 0/1 or true/false; pass --positive VALUE to name the positive class"
    )]
    LabelNeedsPositive {
        path: String,
        row: usize,
        line: usize,
        column: String,
        value: String,
    },
    #[error(
        "`{path}`, row {row} (line {line}), column `{column}`: label `{value}` is a third class (already saw {seen}); labels must be binary"
    )]
    NonBinaryLabel {
        path: String,
        row: usize,
        line: usize,
        column: String,
        value: String,
        /// The two classes seen before, formatted for the message.
        seen: String,
    },
    #[error("`{path}`, row {row} (line {line}), column `{column}`: label is empty")]
    EmptyLabel {
        path: String,
        row: usize,
        line: usize,
        column: String,
    },
    #[error("`{path}`, row {row} (line {line}), column `{column}`: score is empty")]
    EmptyScore {
        path: String,
        row: usize,
        line: usize,
        column: String,
    },
    #[error(
        "`{path}`, row {row} (line {line}), column `{column}`: score `{value}` is not a finite number"
    )]
    BadScore {
        path: String,
        row: usize,
        line: usize,
        column: String,
        value: String,
    },
    #[error("`{path}`, row {row} (line {line}), column `{column}`: patient id is empty")]
    EmptyId {
        path: String,
        row: usize,
        line: usize,
        column: String,
    },
    #[error("`{path}`, column `{column}` (positive label `{positive}`): {message}")]
    Classes {
        path: String,
        column: String,
        positive: String,
        message: String,
    },
    #[error("--level must lie strictly between 0 and 1, got {0}")]
    InvalidLevel(f64),
    #[error("--boot must be at least 2, got {0}")]
    TooFewResamples(usize),
    #[error("`{path}`, score column `{column}`: {error}")]
    Stats {
        path: String,
        column: String,
        error: StatsError,
    },
}

/// The columns `stats` needs, read and validated.
struct StudyTable {
    path: String,
    positive: String,
    labels: Vec<bool>,
    /// One vector per `--score`, in order.
    scores: Vec<Vec<f64>>,
    /// Dense patient index per row when `--id` is given.
    clusters: Option<Vec<u64>>,
}

fn column_index(path: &str, header: &[String], column: &str) -> Result<usize, StatsCmdError> {
    let mut hits = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.trim() == column);
    match (hits.next(), hits.next()) {
        (Some((i, _)), None) => Ok(i),
        (Some(_), Some(_)) => Err(StatsCmdError::DuplicateColumn {
            path: path.to_owned(),
            column: column.to_owned(),
        }),
        (None, _) => Err(StatsCmdError::MissingColumn {
            path: path.to_owned(),
            column: column.to_owned(),
            available: header
                .iter()
                .map(|h| format!("`{}`", h.trim()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The label's class under the default rule (no `--positive`): 0/1 or true/false.
fn default_label(value: &str) -> Option<(bool, &'static str)> {
    match value {
        "1" => Some((true, "1")),
        "0" => Some((false, "1")),
        v if v.eq_ignore_ascii_case("true") => Some((true, "true")),
        v if v.eq_ignore_ascii_case("false") => Some((false, "true")),
        _ => None,
    }
}

fn read_table(args: &StatsArgs) -> Result<StudyTable, StatsCmdError> {
    let path = args.file.display().to_string();
    // Streamed and capped per record (`crate::csv`): `stats /dev/zero` is refused, not read.
    let file = std::fs::File::open(&args.file).map_err(|error| StatsCmdError::Read {
        path: path.clone(),
        error,
    })?;
    let table = csv::Table::read(file).map_err(|e| match e {
        csv::CsvError::Io(error) => StatsCmdError::Read {
            path: path.clone(),
            error,
        },
        csv::CsvError::At { line, message } => StatsCmdError::Csv {
            path: path.clone(),
            line,
            message,
        },
    })?;
    if table.no_header() {
        return Err(StatsCmdError::Empty { path });
    }
    if table.is_empty() {
        return Err(StatsCmdError::NoRows { path });
    }
    let header = &table.header;
    let rows = table.rows();
    let label_col = column_index(&path, header, &args.label)?;
    let score_cols: Vec<usize> = args
        .scores
        .iter()
        .map(|c| column_index(&path, header, c))
        .collect::<Result<_, _>>()?;
    let id_col = args
        .id
        .as_deref()
        .map(|c| column_index(&path, header, c))
        .transpose()?;

    let mut labels = Vec::with_capacity(rows.len());
    let mut scores: Vec<Vec<f64>> = vec![Vec::with_capacity(rows.len()); score_cols.len()];
    let mut cluster_of: HashMap<String, u64> = HashMap::new();
    let mut clusters = Vec::new();
    let mut classes_seen: Vec<String> = Vec::new();
    let mut default_positive: Option<&'static str> = None;
    for (i, rec) in rows.enumerate() {
        let row = i + 1;
        let line = rec.line;
        if rec.len() != header.len() {
            return Err(StatsCmdError::FieldCount {
                path,
                row,
                line,
                found: rec.len(),
                expected: header.len(),
            });
        }
        let value = rec.get(label_col).trim();
        if value.is_empty() {
            return Err(StatsCmdError::EmptyLabel {
                path,
                row,
                line,
                column: args.label.clone(),
            });
        }
        let is_positive = match &args.positive {
            Some(positive) => {
                if !classes_seen.iter().any(|c| c == value) {
                    if classes_seen.len() == 2 {
                        return Err(StatsCmdError::NonBinaryLabel {
                            path,
                            row,
                            line,
                            column: args.label.clone(),
                            value: csv::shown(value),
                            seen: format!(
                                "`{}` and `{}`",
                                csv::shown(&classes_seen[0]),
                                csv::shown(&classes_seen[1])
                            ),
                        });
                    }
                    classes_seen.push(value.to_owned());
                }
                value == positive.trim()
            }
            None => match default_label(value) {
                Some((class, name)) => {
                    default_positive.get_or_insert(name);
                    class
                }
                None => {
                    return Err(StatsCmdError::LabelNeedsPositive {
                        path,
                        row,
                        line,
                        column: args.label.clone(),
                        value: csv::shown(value),
                    });
                }
            },
        };
        labels.push(is_positive);
        for ((&col, name), out) in score_cols.iter().zip(&args.scores).zip(&mut scores) {
            let raw = rec.get(col).trim();
            if raw.is_empty() {
                return Err(StatsCmdError::EmptyScore {
                    path,
                    row,
                    line,
                    column: name.clone(),
                });
            }
            match raw.parse::<f64>() {
                Ok(v) if v.is_finite() => out.push(v),
                _ => {
                    return Err(StatsCmdError::BadScore {
                        path,
                        row,
                        line,
                        column: name.clone(),
                        value: csv::shown(raw),
                    });
                }
            }
        }
        if let (Some(col), Some(name)) = (id_col, &args.id) {
            let id = rec.get(col).trim();
            if id.is_empty() {
                return Err(StatsCmdError::EmptyId {
                    path,
                    row,
                    line,
                    column: name.clone(),
                });
            }
            let next = cluster_of.len() as u64;
            clusters.push(*cluster_of.entry(id.to_owned()).or_insert(next));
        }
    }
    let positive = match &args.positive {
        Some(p) => p.trim().to_owned(),
        None => default_positive.unwrap_or("1").to_owned(),
    };
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    crate::cohort::check_classes(n_pos, n_neg).map_err(|message| StatsCmdError::Classes {
        path: path.clone(),
        column: args.label.clone(),
        positive: positive.clone(),
        message,
    })?;
    Ok(StudyTable {
        path,
        positive,
        labels,
        scores,
        clusters: id_col.map(|_| clusters),
    })
}

/// Runs the command and returns its result as one JSON object (see the module docs of
/// `crate::stats` for the methods). Pairs cover every pair of `--score` columns, `delta = a − b`.
pub fn run(args: &StatsArgs) -> Result<Value, StatsCmdError> {
    if !(args.level > 0.0 && args.level < 1.0) {
        return Err(StatsCmdError::InvalidLevel(args.level));
    }
    if args.boot < 2 {
        return Err(StatsCmdError::TooFewResamples(args.boot));
    }
    let table = read_table(args)?;
    let direction = Direction::HigherIsPositive;
    let stats_err = |column: &str| {
        let path = table.path.clone();
        let column = column.to_owned();
        move |error| StatsCmdError::Stats {
            path,
            column,
            error,
        }
    };
    let config = BootstrapConfig {
        resamples: args.boot,
        seed: args.seed,
        level: args.level,
        stratified: args.stratified,
    };
    let models: Vec<&[f64]> = table.scores.iter().map(Vec::as_slice).collect();
    // One set of resamples for all scores: each score's interval is what a single-score bootstrap
    // with this seed gives, and pairs are paired by construction.
    let reps = stats::bootstrap_replicates(
        &models,
        &table.labels,
        table.clusters.as_deref(),
        direction,
        &config,
    )
    .map_err(stats_err(&args.scores[0]))?;

    let n_pos = table.labels.iter().filter(|&&l| l).count();
    let n_neg = table.labels.len() - n_pos;
    let mut scores = Vec::with_capacity(models.len());
    for (m, name) in args.scores.iter().enumerate() {
        let delong = stats::delong_ci(&table.scores[m], &table.labels, direction, args.level)
            .map_err(stats_err(name))?;
        let boot = reps.percentile_ci(m);
        scores.push(json!({
            "name": name,
            "n_pos": n_pos,
            "n_neg": n_neg,
            "auc": delong.auc,
            "delong": { "lo": delong.lo, "hi": delong.hi, "se": delong.se },
            "bootstrap": {
                "lo": boot.lo,
                "hi": boot.hi,
                "method": boot.method.name(),
                "resamples": boot.resamples,
                "used": boot.used,
            },
        }));
    }
    let mut pairs = Vec::new();
    for a in 0..models.len() {
        for b in a + 1..models.len() {
            let name_a = &args.scores[a];
            let d = stats::delong_paired(
                &table.scores[a],
                &table.scores[b],
                &table.labels,
                direction,
                args.level,
            )
            .map_err(stats_err(name_a))?;
            let boot = reps.paired(a, b);
            pairs.push(json!({
                "a": name_a,
                "b": &args.scores[b],
                "delta": d.delta,
                "delong": { "z": d.z, "p": d.p, "lo": d.lo, "hi": d.hi },
                "bootstrap": {
                    "lo": boot.lo,
                    "hi": boot.hi,
                    "p": boot.p,
                    "resamples": boot.resamples,
                    "used": boot.used,
                },
            }));
        }
    }
    Ok(json!({
        "file": table.path,
        "label": args.label,
        "positive": table.positive,
        "n": table.labels.len(),
        "level": args.level,
        "seed": args.seed,
        "boot": args.boot,
        "stratified": args.stratified,
        "id": args.id,
        "clustered": reps.clustered,
        "direction": "higher-is-positive",
        "scores": scores,
        "pairs": pairs,
    }))
}

/// Runs the command and returns what it prints: pretty JSON with `--json`, else [`render_table`].
pub fn execute(args: &StatsArgs) -> Result<String, StatsCmdError> {
    let report = run(args)?;
    Ok(if args.json {
        let mut s = serde_json::to_string_pretty(&report).unwrap_or_else(|_| report.to_string());
        s.push('\n');
        s
    } else {
        render_table(&report)
    })
}

fn num(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "—".to_owned(), |x| format!("{x:.4}"))
}

fn p_value(v: &Value) -> String {
    match v.as_f64() {
        Some(p) if p < 1e-4 => "<0.0001".to_owned(),
        Some(p) => format!("{p:.4}"),
        None => "—".to_owned(),
    }
}

/// A short human-readable table of [`run`]'s result.
pub fn render_table(report: &Value) -> String {
    let pct = report["level"].as_f64().unwrap_or(0.95) * 100.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} rows, positive `{}`; {}% intervals; {} {}bootstrap resamples{}, seed {}",
        report["file"].as_str().unwrap_or(""),
        report["n"],
        report["positive"].as_str().unwrap_or(""),
        pct,
        report["boot"],
        if report["stratified"].as_bool() == Some(true) {
            "stratified "
        } else {
            ""
        },
        if report["clustered"].as_bool() == Some(true) {
            " by patient"
        } else {
            ""
        },
        report["seed"],
    );
    let empty = Vec::new();
    let scores = report["scores"].as_array().unwrap_or(&empty);
    let width = scores
        .iter()
        .filter_map(|s| s["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "\n{:width$}  {:>5} {:>5}  {:>6}  {:>18}  {:>18}",
        "score", "pos", "neg", "AUC", "DeLong CI", "bootstrap CI"
    );
    for s in scores {
        let _ = writeln!(
            out,
            "{:width$}  {:>5} {:>5}  {:>6}  {:>18}  {:>18}",
            s["name"].as_str().unwrap_or(""),
            s["n_pos"].to_string(),
            s["n_neg"].to_string(),
            num(&s["auc"]),
            format!("[{}, {}]", num(&s["delong"]["lo"]), num(&s["delong"]["hi"])),
            format!(
                "[{}, {}]",
                num(&s["bootstrap"]["lo"]),
                num(&s["bootstrap"]["hi"])
            ),
        );
    }
    let pairs = report["pairs"].as_array().unwrap_or(&empty);
    if !pairs.is_empty() {
        let _ = writeln!(
            out,
            "\n{:w2$}  {:>7}  {:>20} {:>8}  {:>20} {:>8}",
            "pair (a − b)",
            "ΔAUC",
            "DeLong CI",
            "p",
            "bootstrap CI",
            "p",
            w2 = 2 * width + 3
        );
        for p in pairs {
            let _ = writeln!(
                out,
                "{:w2$}  {:>7}  {:>20} {:>8}  {:>20} {:>8}",
                format!(
                    "{} − {}",
                    p["a"].as_str().unwrap_or(""),
                    p["b"].as_str().unwrap_or("")
                ),
                num(&p["delta"]),
                format!("[{}, {}]", num(&p["delong"]["lo"]), num(&p["delong"]["hi"])),
                p_value(&p["delong"]["p"]),
                format!(
                    "[{}, {}]",
                    num(&p["bootstrap"]["lo"]),
                    num(&p["bootstrap"]["hi"])
                ),
                p_value(&p["bootstrap"]["p"]),
                w2 = 2 * width + 3
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: StatsArgs,
    }

    fn args(argv: &[&str]) -> StatsArgs {
        let mut full = vec!["stats"];
        full.extend_from_slice(argv);
        Wrapper::try_parse_from(full).expect("valid arguments").args
    }

    fn asah_path() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/stats/aSAH.csv").to_owned()
    }

    /// A temporary CSV file removed on drop (no tempfile dependency in this module).
    struct TempCsv(PathBuf);
    impl TempCsv {
        fn new(name: &str, content: &str) -> TempCsv {
            let dir =
                std::env::temp_dir().join(format!("orchestrate-stats-cmd-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join(name);
            std::fs::write(&path, content).expect("write csv");
            TempCsv(path)
        }
        fn path(&self) -> &str {
            self.0.to_str().expect("utf-8 path")
        }
    }
    impl Drop for TempCsv {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn err(argv: &[&str]) -> String {
        run(&args(argv)).expect_err("should fail").to_string()
    }

    #[test]
    fn asah_report_matches_proc_delong_and_has_every_pair() {
        let path = asah_path();
        let report = run(&args(&[
            &path,
            "--label",
            "outcome",
            "--positive",
            "Poor",
            "--score",
            "s100b",
            "--score",
            "ndka",
            "--score",
            "wfns",
            "--boot",
            "500",
        ]))
        .expect("runs");
        assert_eq!(report["n"], 113);
        assert_eq!(report["positive"], "Poor");
        assert_eq!(report["level"], 0.95);
        assert_eq!(report["seed"], 1);
        let ndka = &report["scores"][1];
        assert_eq!(ndka["name"], "ndka");
        assert_eq!(
            (ndka["n_pos"].as_u64(), ndka["n_neg"].as_u64()),
            (Some(41), Some(72))
        );
        assert!((ndka["delong"]["lo"].as_f64().expect("lo") - 0.501244999271703).abs() < 1e-12);
        assert!((ndka["delong"]["hi"].as_f64().expect("hi") - 0.722670989888189).abs() < 1e-12);
        assert_eq!(ndka["bootstrap"]["method"], "percentile");
        assert_eq!(ndka["bootstrap"]["resamples"], 500);
        assert_eq!(ndka["bootstrap"]["used"], 500);
        let pairs = report["pairs"].as_array().expect("pairs");
        assert_eq!(pairs.len(), 3);
        assert_eq!(
            (pairs[0]["a"].as_str(), pairs[0]["b"].as_str()),
            (Some("s100b"), Some("ndka"))
        );
        assert!((pairs[0]["delong"]["p"].as_f64().expect("p") - 0.16429517522305448).abs() < 1e-9);
        // The per-score bootstrap equals the library's single-score bootstrap with the same seed.
        let d = crate::stats::test_support::asah();
        let single = stats::bootstrap_ci(
            &d.score("ndka"),
            &d.poor,
            None,
            Direction::HigherIsPositive,
            &BootstrapConfig {
                resamples: 500,
                ..BootstrapConfig::default()
            },
            stats::IntervalMethod::Percentile,
        )
        .expect("valid");
        assert_eq!(ndka["bootstrap"]["lo"].as_f64(), Some(single.lo));
        let table = render_table(&report);
        assert!(table.contains("s100b − ndka"), "{table}");
        assert!(table.contains("0.6120"), "{table}");
    }

    #[test]
    fn default_labels_are_zero_one_or_true_false() {
        let csv = TempCsv::new(
            "bool.csv",
            "y,\"s, quoted\",id\nTRUE,0.9,a\nfalse,0.1,a\ntrue,0.4,b\nFALSE,0.5,c\n",
        );
        let report = run(&args(&[
            csv.path(),
            "--label",
            "y",
            "--score",
            "s, quoted",
            "--id",
            "id",
            "--json",
        ]))
        .expect("runs");
        assert_eq!(report["positive"], "true");
        assert_eq!(report["clustered"], true);
        assert_eq!(report["scores"][0]["auc"], 0.75);
        let csv01 = TempCsv::new("01.csv", "y,s\r\n1,0.9\r\n0,0.1\r\n\r\n1,0.4\r\n0,0.5\r\n");
        let report = run(&args(&[csv01.path(), "--label", "y", "--score", "s"])).expect("runs");
        assert_eq!(
            (report["positive"].as_str(), report["n"].as_u64()),
            (Some("1"), Some(4))
        );
    }

    #[test]
    fn missing_file_and_missing_column_are_named() {
        let e = err(&["no/such.csv", "--label", "y", "--score", "s"]);
        assert!(e.starts_with("cannot read `no/such.csv`"), "{e}");
        let path = asah_path();
        let e = err(&[
            &path,
            "--label",
            "outcome",
            "--positive",
            "Poor",
            "--score",
            "s100",
        ]);
        assert!(e.contains("has no column `s100`; available columns: `gos6`, `outcome`, `gender`, `age`, `wfns`, `s100b`, `ndka`"), "{e}");
    }

    #[test]
    fn non_binary_labels_name_row_and_value() {
        let path = asah_path();
        let e = err(&[&path, "--label", "outcome", "--score", "s100b"]);
        assert!(e.contains("row 1 (line 2), column `outcome`: label `Good` is not 0/1 or true/false; pass --positive VALUE"), "{e}");
        let csv = TempCsv::new("three.csv", "y,s\na,1\nb,2\na,3\nc,4\n");
        let e = err(&[
            csv.path(),
            "--label",
            "y",
            "--positive",
            "a",
            "--score",
            "s",
        ]);
        assert!(
            e.contains(
                "row 4 (line 5), column `y`: label `c` is a third class (already saw `a` and `b`)"
            ),
            "{e}"
        );
        let csv = TempCsv::new("two.csv", "y,s\n1,1\n2,2\n");
        let e = err(&[csv.path(), "--label", "y", "--score", "s"]);
        assert!(
            e.contains("row 2 (line 3), column `y`: label `2` is not 0/1"),
            "{e}"
        );
    }

    #[test]
    fn bad_scores_name_row_and_column() {
        for (bad, what) in [
            ("NaN", "score `NaN` is not a finite number"),
            ("", "score is empty"),
            ("abc", "score `abc` is not a finite number"),
            ("inf", "score `inf` is not a finite number"),
        ] {
            let csv = TempCsv::new("bad.csv", &format!("y,s\n1,0.5\n0,{bad}\n1,0.7\n"));
            let e = err(&[csv.path(), "--label", "y", "--score", "s"]);
            assert!(
                e.contains(&format!("row 2 (line 3), column `s`: {what}")),
                "{e}"
            );
        }
    }

    #[test]
    fn one_class_short_rows_and_bad_options_are_errors() {
        let csv = TempCsv::new("one.csv", "y,s\n1,0.5\n1,0.7\n");
        let e = err(&[csv.path(), "--label", "y", "--score", "s"]);
        assert!(
            e.contains(
                "column `y` (positive label `1`): only one class present (2 positive, 0 negative)"
            ),
            "{e}"
        );
        let csv = TempCsv::new("short.csv", "y,s\n1,0.5\n0\n");
        let e = err(&[csv.path(), "--label", "y", "--score", "s"]);
        assert!(
            e.contains("row 2 (line 3): 1 fields but the header has 2"),
            "{e}"
        );
        let csv = TempCsv::new("quote.csv", "y,s\n1,\"0.5\n");
        let e = err(&[csv.path(), "--label", "y", "--score", "s"]);
        assert!(e.contains("line 2: a quoted field is never closed"), "{e}");
        let csv = TempCsv::new("dup.csv", "y,s,s\n1,0.5,0.5\n");
        let e = err(&[csv.path(), "--label", "y", "--score", "s"]);
        assert!(e.contains("column `s` appears more than once"), "{e}");
        let path = asah_path();
        let e = err(&[
            &path,
            "--label",
            "outcome",
            "--positive",
            "Poor",
            "--score",
            "s100b",
            "--level",
            "95",
        ]);
        assert_eq!(e, "--level must lie strictly between 0 and 1, got 95");
        // One positive row: DeLong's variance is undefined; the same rule as the cohort stage.
        let csv = TempCsv::new("onepos.csv", "y,s\n1,0.5\n0,0.7\n0,0.1\n");
        let e = err(&[csv.path(), "--label", "y", "--score", "s"]);
        assert!(
            e.contains("too few of one class (1 positive, 2 negative): DeLong intervals need at least 2 of each"),
            "{e}"
        );
    }

    #[test]
    fn stratified_flag_takes_a_value() {
        let a = args(&[
            "f.csv",
            "--label",
            "y",
            "--score",
            "s",
            "--stratified",
            "false",
        ]);
        assert!(!a.stratified);
        let a = args(&["f.csv", "--label", "y", "--score", "s"]);
        assert!(a.stratified && a.boot == 2000 && a.seed == 1 && a.level == 0.95 && !a.json);
    }
}
