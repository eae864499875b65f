//! One test per cache rule: what re-runs after which change, and what does not.

use crate::common::{Workspace, stages_with};

const EXPERIMENT: &str = r#"
experiment: rules
stages:
  prep:
    kind: command
    cmd: "awk -F, -v t={params.threshold} 'NR == 1 || $2 >= t' {deps.raw} > {outs.table}"
    deps: {raw: data/raw.csv}
    outs: {table: table.csv}
    params: {threshold: 0.5}
  train:
    kind: command
    cmd: "sh scripts/train.sh {deps.table} {outs.model} {params.lr}"
    deps: {table: "stage:prep/table"}
    code: [scripts/train.sh]
    outs: {model: model.txt}
    params: {lr: 0.1}
  report:
    kind: command
    cmd: "wc -l < {deps.model} > {outs.summary}"
    deps: {model: "stage:train/model"}
    outs: {summary: summary.txt}
"#;

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("experiments/rules.yaml", EXPERIMENT)
        .write("data/raw.csv", "id,score\na,0.9\nb,0.2\nc,0.7\n")
        .write("scripts/train.sh", "# train: copy the table and append the learning rate\ncat \"$1\" > \"$2\"\necho \"lr=$3\" >> \"$2\"\n");
    let first = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&first, "ran"), ["prep", "train", "report"]);
    ws
}

fn edit(ws: &Workspace, from: &str, to: &str) {
    let text = ws.read("experiments/rules.yaml");
    assert!(text.contains(from), "`{from}` not in the experiment");
    ws.write("experiments/rules.yaml", &text.replacen(from, to, 1));
}

#[test]
fn unchanged_experiment_reruns_nothing() {
    let ws = workspace();
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "fresh"), ["prep", "train", "report"]);
}

#[test]
fn param_change_reruns_the_stage_and_downstream_only() {
    let ws = workspace();
    edit(&ws, "lr: 0.1", "lr: 0.2");
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "fresh"), ["prep"]);
    assert_eq!(stages_with(&m, "ran"), ["train", "report"]);
    let reasons = &m["stages"][1]["reasons"];
    assert_eq!(reasons[0], "config field `params.lr` changed (0.1 → 0.2)");
}

#[test]
fn reverting_a_param_finds_the_earlier_result() {
    let ws = workspace();
    edit(&ws, "lr: 0.1", "lr: 0.2");
    ws.run_ok("experiments/rules.yaml");
    edit(&ws, "lr: 0.2", "lr: 0.1");
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "fresh"), ["prep", "train", "report"]);
}

#[test]
fn editing_a_comment_or_key_order_changes_nothing() {
    let ws = workspace();
    let reordered = r#"
# A comment that was not there before.
stages:
  report:
    outs: {summary: summary.txt}     # outputs first this time
    deps: {model: "stage:train/model"}
    cmd: "wc -l < {deps.model} > {outs.summary}"
    kind: command
  train:
    params: {lr: 0.10}
    outs: {model: model.txt}
    code: [scripts/train.sh]
    kind: command
    deps: {table: "stage:prep/table"}
    cmd: "sh scripts/train.sh {deps.table} {outs.model} {params.lr}"
  prep:
    params:
      threshold: 0.5
    kind: command
    deps:
      raw: data/raw.csv
    outs:
      table: table.csv
    cmd: "awk -F, -v t={params.threshold} 'NR == 1 || $2 >= t' {deps.raw} > {outs.table}"
experiment: rules
"#;
    ws.write("experiments/rules.yaml", reordered);
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "fresh"), ["prep", "train", "report"]);
}

#[test]
fn data_content_change_reruns() {
    let ws = workspace();
    ws.write("data/raw.csv", "id,score\na,0.9\nb,0.6\nc,0.7\n");
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "ran"), ["prep", "train", "report"]);
    assert_eq!(
        m["stages"][0]["reasons"][0],
        "input `raw` (`data/raw.csv`) content changed"
    );
}

#[test]
fn touch_alone_reruns_nothing() {
    let ws = workspace();
    let f = std::fs::File::options()
        .append(true)
        .open(ws.join("data/raw.csv"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    drop(f);
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "fresh"), ["prep", "train", "report"]);
}

#[test]
fn editing_declared_code_reruns() {
    let ws = workspace();
    let script = ws.read("scripts/train.sh");
    ws.write("scripts/train.sh", &script.replace("lr=", "learning_rate="));
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "fresh"), ["prep"]);
    assert_eq!(stages_with(&m, "ran"), ["train", "report"]);
    assert_eq!(
        m["stages"][1]["reasons"][0],
        "code changed: `scripts/train.sh`"
    );
}

#[test]
fn editing_the_command_text_reruns() {
    let ws = workspace();
    edit(&ws, "wc -l <", "wc -c <");
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "ran"), ["report"]);
    assert_eq!(m["stages"][2]["reasons"][0], "code changed: command text");
}

#[test]
fn upstream_output_change_propagates() {
    let ws = workspace();
    edit(&ws, "threshold: 0.5", "threshold: 0.8");
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "ran"), ["prep", "train", "report"]);
    assert_eq!(
        m["stages"][1]["reasons"][0],
        "input `table` from upstream `prep` changed"
    );
}

#[test]
fn unchanged_upstream_output_stops_propagation() {
    let ws = workspace();
    // 0.6 selects the same rows as 0.5: prep re-runs, its output is identical, train is fresh.
    edit(&ws, "threshold: 0.5", "threshold: 0.6");
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "ran"), ["prep"]);
    assert_eq!(stages_with(&m, "fresh"), ["train", "report"]);
}

#[test]
fn plan_explains_without_running() {
    let ws = workspace();
    edit(&ws, "lr: 0.1", "lr: 0.3");
    let out = ws.run(&["plan", "--explain", "experiments/rules.yaml"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3 stage(s) in `rules`: 1 fresh, 2 to run"),
        "{text}"
    );
    assert!(
        text.contains("Run train: config field `params.lr` changed (0.1 → 0.3)"),
        "{text}"
    );
    assert!(
        text.contains("Run report: upstream `train` will run"),
        "{text}"
    );
    // Planning ran nothing: the same change still has to run.
    let m = ws.run_ok("experiments/rules.yaml");
    assert_eq!(stages_with(&m, "ran"), ["train", "report"]);
}

#[test]
fn forcing_a_stage_reruns_it_and_keeps_identical_downstream() {
    let ws = workspace();
    let out = ws.run(&[
        "run",
        "experiments/rules.yaml",
        "--force",
        "train",
        "--json",
    ]);
    assert!(out.status.success());
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stages_with(&m, "ran"), ["train"]);
    assert_eq!(m["stages"][1]["reasons"][0], "forced");
    // Its output did not change, so report stays fresh.
    assert_eq!(stages_with(&m, "fresh"), ["prep", "report"]);
}

#[test]
fn outputs_are_stored_under_their_digest_and_read_only() {
    let ws = workspace();
    let m = ws.run_ok("experiments/rules.yaml");
    let object = m["stages"][0]["object"].as_str().unwrap();
    let path = ws.join(&format!(
        "runs/.store/objects/{}/{object}/table.csv",
        &object[..2]
    ));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "id,score\na,0.9\nc,0.7\n"
    );
    assert!(std::fs::metadata(&path).unwrap().permissions().readonly());
}
