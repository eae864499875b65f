//! Data stages through the real CLI: `synth` writes cohort tables and is cached, the real-cohort
//! example loads, and a malformed lab CSV fails the stage with file, row and column.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use orchestrate::cohort::Cohort;

use crate::common::{Workspace, stages_with, stderr};

const SYNTH: &str = r#"
experiment: synth-small
seed: 3
stages:
  world:
    kind: synth
    config:
      n_unlabeled: 50
      n_incomplete: 50
      n_finetune: 40
      n_internal: 200
      n_external: 200
      img_width: 4
      clin_width: 4
"#;

/// The folder of output `out` of stage `stage` in the run manifest `m`.
fn output(ws: &Workspace, m: &serde_json::Value, stage: &str, out: &str) -> PathBuf {
    let entry = m["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["name"] == stage)
        .expect("stage in manifest");
    let digest = entry["object"].as_str().expect("object digest");
    ws.join("runs/.store/objects")
        .join(&digest[..2])
        .join(digest)
        .join(out)
}

#[test]
fn synth_stage_writes_disjoint_cohorts_and_is_cached() {
    let ws = Workspace::new();
    ws.write("experiments/synth.yaml", SYNTH);
    let first = ws.run_ok("experiments/synth.yaml");
    assert_eq!(stages_with(&first, "ran"), ["world"]);
    let second = ws.run_ok("experiments/synth.yaml");
    assert_eq!(stages_with(&second, "fresh"), ["world"]);

    let mut ids = HashSet::new();
    let mut total = 0;
    for (split, n) in [
        ("unlabeled", 50),
        ("incomplete", 50),
        ("finetune", 40),
        ("internal", 200),
        ("external", 200),
    ] {
        let c = Cohort::read(&output(&ws, &second, "world", split)).expect("a cohort table");
        assert_eq!(c.n, n, "split {split}");
        assert_eq!(c.labels.is_some(), split != "unlabeled");
        total += c.n;
        ids.extend(c.ids);
    }
    assert_eq!(ids.len(), total, "patient ids are disjoint across splits");
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(output(&ws, &second, "world", "truth.json")).expect("truth"),
    )
    .expect("truth JSON");
    for test in ["internal", "external"] {
        let auc = truth["bayes_auc"][test].as_f64().expect("a Bayes AUC");
        assert!(auc > 0.5 && auc < 1.0, "{test}: {auc}");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn the_real_cohort_example_runs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ws = Workspace::new();
    copy_tree(
        &repo.join("experiments/data/real-cohort"),
        &ws.join("experiments/data/real-cohort"),
    );
    std::fs::copy(
        repo.join("experiments/real-cohort-example.yaml"),
        ws.join("experiments/real-cohort-example.yaml"),
    )
    .expect("copy the experiment");
    let m = ws.run_ok("experiments/real-cohort-example.yaml");
    assert_eq!(
        stages_with(&m, "ran"),
        [
            "cohort",
            "sizes",
            "pretrain",
            "train_imaging",
            "train_multimodal",
            "predict_imaging",
            "predict_multimodal",
            "evaluate"
        ]
    );
    let results = ws.read(&format!(
        "runs/real-cohort-example/{}/results.json",
        m["run_id"].as_str().expect("run id")
    ));
    assert!(results.contains("\"model\": \"multimodal\""), "{results}");
    let sizes = std::fs::read_to_string(output(&ws, &m, "sizes", "sizes.txt")).expect("sizes");
    assert_eq!(
        sizes,
        "incomplete 60\nfinetune 60\ninternal 100\nexternal 100\n"
    );
    let incomplete =
        Cohort::read(&output(&ws, &m, "cohort", "incomplete")).expect("incomplete cohort");
    assert!(incomplete.imaging.present.iter().any(|p| !p));
    assert!(incomplete.clinical.present.iter().any(|p| !p));
    assert_eq!(
        (incomplete.clinical.tokens, incomplete.clinical.width),
        (4, 8)
    );
}

const LAB: &str = r#"
experiment: lab
stages:
  cohort:
    kind: cohort
    deps:
      int_clin: data/internal_clinical.csv
      int_img: data/internal_imaging.csv
      ext_clin: data/external_clinical.csv
      ext_img: data/external_imaging.csv
    config:
      splits:
        internal: {clinical: int_clin, imaging: int_img}
        external: {clinical: ext_clin, imaging: ext_img}
      lab: {img_tokens: 1}
"#;

const INTERNAL: &str = "pid,id,session,shifted_scan_date,Duration,lung_cancer,exp-000,exp-001\n\
                        p1,p1-a,0,2016-01-01,0,1,0.5,1.5\n\
                        p2,p2-a,0,2016-01-02,0,0,0.25,-1\n\
                        p3,p3-a,0,2016-01-03,0,1,0.75,2\n\
                        p4,p4-a,0,2016-01-04,0,0,0.5,-2\n";
const EXTERNAL: &str = "pid,id,session,shifted_scan_date,Duration,lung_cancer,exp-000,exp-001\n\
                        q1,q1-a,0,2016-01-01,0,1,0.5,1.5\n\
                        q2,q2-a,0,2016-01-01,0,0,0.5,1.5\n\
                        q3,q3-a,0,2016-01-01,0,1,0.5,1.5\n\
                        q4,q4-a,0,2016-01-01,0,0,0.5,1.5\n";
const IMAGING: &str = "id,nodule,f000\np1-a,0,1\np2-a,0,2\np3-a,0,3\np4-a,0,4\n";
const EXT_IMAGING: &str = "id,nodule,f000\nq1-a,0,1\nq2-a,0,1\nq3-a,0,1\nq4-a,0,1\n";

/// Runs the two-split lab experiment with `internal` and `external` clinical CSVs.
fn run_lab(internal: &str, external: &str) -> std::process::Output {
    run_lab_files(internal, IMAGING, external)
}

/// [`run_lab`] with the internal split's imaging file too.
fn run_lab_files(internal: &str, imaging: &str, external: &str) -> std::process::Output {
    let ws = Workspace::new();
    ws.write("experiments/lab.yaml", LAB)
        .write("data/internal_clinical.csv", internal)
        .write("data/internal_imaging.csv", imaging)
        .write("data/external_clinical.csv", external)
        .write("data/external_imaging.csv", EXT_IMAGING);
    ws.run(&["run", "experiments/lab.yaml"])
}

#[test]
fn the_well_formed_lab_files_load() {
    let out = run_lab(INTERNAL, EXTERNAL);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_malformed_lab_csv_fails_the_stage_naming_file_row_and_column() {
    let cases = [
        (
            "duplicate id",
            INTERNAL.replace("p2,p2-a", "p1,p2-a"),
            EXTERNAL.to_string(),
            "`data/internal_clinical.csv` line 3, column `session`: duplicate id: patient `p1` has session 0 on line 2 too",
        ),
        (
            "label 2",
            INTERNAL.replace(",0,0.25", ",2,0.25"),
            EXTERNAL.to_string(),
            "`data/internal_clinical.csv` line 3, column `lung_cancer`: label `2` is not 0 or 1",
        ),
        (
            "NaN",
            INTERNAL.replace("-1\n", "NaN\n"),
            EXTERNAL.to_string(),
            "`data/internal_clinical.csv` line 3, column `exp-001`: `NaN` is not a finite number",
        ),
        (
            "ragged row",
            INTERNAL.replace("1,0.5,1.5", "1,0.5"),
            EXTERNAL.to_string(),
            "`data/internal_clinical.csv` line 2, column `exp-001`: the row has 7 fields but the header has 8 (a ragged row)",
        ),
        (
            "id in two splits",
            INTERNAL.to_string(),
            EXTERNAL.replace("q1,q1-a", "p2,q1-a"),
            "`data/external_clinical.csv` line 2, column `pid`: split overlap: patient `p2` of split `external` is also in split `internal` (`data/internal_clinical.csv` line 3)",
        ),
    ];
    for (defect, internal, external, want) in cases {
        let out = run_lab(&internal, &external);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{defect}: {err}");
        assert!(err.contains(want), "{defect}: want `{want}` in\n{err}");
    }
}

/// The same table defects through the `cohort` stage and through `orchestrate stats`: both
/// refuse them, with the file and line.
#[test]
fn cohort_and_stats_refuse_the_same_degenerate_tables() {
    let header = "pid,id,session,shifted_scan_date,Duration,lung_cancer,exp-000,exp-001\n";
    let one_class = format!(
        "{header}p1,p1-a,0,2016-01-01,0,1,0.5,1.5\np2,p2-a,0,2016-01-02,0,1,0.25,-1\n\
         p3,p3-a,0,2016-01-03,0,1,0.75,2\np4,p4-a,0,2016-01-04,0,1,0.5,-2\n"
    );
    let one_row = format!("{header}p1,p1-a,0,2016-01-01,0,1,0.5,1.5\n");
    let cases = [
        (
            "header only",
            header.to_string(),
            "`data/internal_clinical.csv` line 1: the file has a header but no data rows",
            "has a header but no data rows",
        ),
        (
            "CR-only line ends",
            INTERNAL.replace('\n', "\r"),
            "`data/internal_clinical.csv` line 1: a carriage return without a line feed",
            "line 1: a carriage return without a line feed",
        ),
        (
            "one class",
            one_class,
            "split `internal` (`data/internal_clinical.csv`): only one class present (4 positive, 0 negative)",
            "only one class present (4 positive, 0 negative)",
        ),
        (
            "one row",
            one_row,
            "split `internal` (`data/internal_clinical.csv`): only one class present (1 positive, 0 negative)",
            "only one class present (1 positive, 0 negative)",
        ),
    ];
    for (defect, internal, want_stage, want_stats) in cases {
        // One row: its own imaging file, so that the row count is the only defect.
        let imaging = if defect == "one row" {
            "id,nodule,f000\np1-a,0,1\n"
        } else {
            IMAGING
        };
        let out = run_lab_files(&internal, imaging, EXTERNAL);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{defect}: {err}");
        assert!(
            err.contains(want_stage),
            "{defect}: want `{want_stage}` in\n{err}"
        );
        let ws = Workspace::new();
        ws.write("t.csv", &internal);
        let out = ws.run(&[
            "stats",
            "t.csv",
            "--label",
            "lung_cancer",
            "--score",
            "exp-000",
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{defect}: {err}");
        assert!(
            err.contains(want_stats),
            "{defect}: want `{want_stats}` in\n{err}"
        );
    }
}
