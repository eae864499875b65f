//! The `evaluate` stage on predictions made by command stages, and `results.json` in the run.

use crate::common::{Workspace, stages_with};

const EXPERIMENT: &str = r#"
experiment: eval
seeds: [1, 2]
stages:
  perfect:
    kind: command
    replicate: true
    # score = label + a seed-dependent wobble smaller than the class gap: AUC 1 for every seed.
    cmd: >-
      awk -F, -v s={seed} 'BEGIN {print "model,seed,cohort,id,label,score"}
      NR > 1 {printf "perfect,%d,internal,%s,%d,%.6f\n", s, $1, $2, $2 + 0.01 * ((NR * s) % 7)}'
      {deps.data} > {outs.scores}
    deps: {data: data/patients.csv}
    outs: {scores: scores.csv}
  noisy:
    kind: command
    replicate: true
    cmd: >-
      awk -F, -v s={seed} 'BEGIN {print "model,seed,cohort,id,label,score"}
      NR > 1 {printf "noisy,%d,internal,%s,%d,%.6f\n", s, $1, $2, $3 + 0.001 * s}'
      {deps.data} > {outs.scores}
    deps: {data: data/patients.csv}
    outs: {scores: scores.csv}
  evaluate:
    kind: evaluate
    deps: {a: "stage:perfect[*]/scores", b: "stage:noisy[*]/scores"}
    config:
      reference: noisy
      primary: {a: perfect, b: noisy, cohort: internal}
      bootstrap: {resamples: 500, seed: 3}
"#;

fn workspace() -> Workspace {
    let ws = Workspace::new();
    let mut csv = String::from("id,label,x\n");
    for i in 0..60 {
        let label = (i * 7 % 10 < 4) as u8;
        // x is informative but imperfect.
        let x = (i * 37 % 17) as f64 / 17.0 + 0.4 * label as f64;
        csv.push_str(&format!("P{i:03},{label},{x:.4}\n"));
    }
    ws.write("data/patients.csv", &csv)
        .write("experiments/eval.yaml", EXPERIMENT);
    ws
}

#[test]
fn evaluate_writes_results_with_methods_beside_every_number() {
    let ws = workspace();
    let m = ws.run_ok("experiments/eval.yaml");
    assert_eq!(stages_with(&m, "ran").len(), 5);
    let r: serde_json::Value = serde_json::from_str(&ws.read(&format!(
        "runs/eval/{}/results.json",
        m["run_id"].as_str().unwrap()
    )))
    .unwrap();
    let models = r["models"].as_array().unwrap();
    let perfect = models.iter().find(|x| x["model"] == "perfect").unwrap();
    assert_eq!(perfect["auc"], 1.0);
    assert_eq!(perfect["seeds"], 2);
    assert_eq!(perfect["per_seed"].as_array().unwrap().len(), 2);
    let noisy = models.iter().find(|x| x["model"] == "noisy").unwrap();
    let auc = noisy["auc"].as_f64().unwrap();
    assert!(auc > 0.6 && auc < 1.0, "{auc}");
    assert!(
        noisy["delong"]["lo"].as_f64().unwrap() < auc
            && auc < noisy["delong"]["hi"].as_f64().unwrap()
    );
    assert_eq!(noisy["bootstrap"]["method"], "percentile");
    assert_eq!(r["methods"]["bootstrap"]["resamples"], 500);
    assert_eq!(r["methods"]["bootstrap"]["seed"], 3);
    assert_eq!(r["primary"]["a"], "perfect");
    assert!(r["primary"]["delta"].as_f64().unwrap() > 0.0);
    assert_eq!(r["cohorts"]["internal"]["n"], 60);

    // The standalone `stats` command gives the same AUC for the same scores.
    let rec = noisy["per_seed"][0]["auc"].as_f64().unwrap();
    let show = ws.run(&["show", "noisy[seed=1]", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let csv = format!("{}/scores.csv", v["object_dir"].as_str().unwrap());
    let out = ws.run(&[
        "stats", &csv, "--label", "label", "--score", "score", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["scores"][0]["auc"].as_f64().unwrap(), rec);

    // A second run reuses everything, and still records results.json.
    let again = ws.run_ok("experiments/eval.yaml");
    assert_eq!(stages_with(&again, "fresh").len(), 5);
    assert!(
        ws.join(&format!(
            "runs/eval/{}/results.json",
            again["run_id"].as_str().unwrap()
        ))
        .is_file()
    );
}

#[test]
fn a_comparison_with_an_unknown_model_fails_the_stage_clearly() {
    let ws = workspace();
    ws.write(
        "experiments/eval.yaml",
        &EXPERIMENT.replace("a: perfect, b: noisy", "a: jepa, b: noisy"),
    );
    let out = ws.run(&["run", "experiments/eval.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no scores of model `jepa`"), "{err}");
}

#[test]
fn an_evaluate_config_with_a_typo_is_refused_at_load() {
    let ws = workspace();
    ws.write(
        "experiments/eval.yaml",
        &EXPERIMENT.replace("reference: noisy", "referense: noisy"),
    );
    let out = ws.run(&["plan", "experiments/eval.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("experiments/eval.yaml:28:7: stages.evaluate.config.referense: unknown field `referense`"), "{err}");
}
