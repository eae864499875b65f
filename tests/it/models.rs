//! Model stages through the real CLI: a tiny synthetic world → JEPA pretraining → finetuning from
//! it → per-patient scores, bit-identical across two stores; and a clear refusal of `--backend
//! cuda` where CUDA cannot be used.

use crate::common::{Workspace, stage_metrics, stderr};

/// Shared with `cpu_kernels.rs`, which runs the same pipeline on other CPUs.
pub const EXPERIMENT: &str = r#"
experiment: models-tiny
seed: 5
stages:
  world:
    kind: synth
    config:
      n_unlabeled: 96
      n_incomplete: 40
      n_finetune: 80
      n_internal: 60
      n_external: 60
      img_tokens: 3
      img_width: 4
      clin_tokens: 2
      clin_width: 4
  jepa:
    kind: pretrain
    deps: {data: "stage:world/unlabeled"}
    config: {embedding_dim: 16, depth: 1, heads: 2, dim_head: 8, mlp_dim: 32, pred_emb_dim: 8, batch_size: 32, epochs: 3, warmup: 1}
  finetune:
    kind: train
    deps: {data: "stage:world/finetune", init: "stage:jepa/model"}
    config: {model_class: multimodal, batch_size: 16, epochs: 3, patience: 2}
  scores:
    kind: predict
    deps: {model: "stage:finetune/model", internal: "stage:world/internal", external: "stage:world/external"}
    config: {label: jepa}
"#;

fn objects(m: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = m["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_string(),
                s["object"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn run_into(ws: &Workspace, store: &str) -> serde_json::Value {
    let out = ws.run(&["--store", store, "run", "experiments/m.yaml", "--json"]);
    assert!(
        out.status.success(),
        "run failed ({:?}):\n{}",
        out.status.code(),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("manifest JSON")
}

#[test]
fn pretrain_train_predict_is_bit_identical_across_stores() {
    let ws = Workspace::new();
    ws.write("experiments/m.yaml", EXPERIMENT);
    let a = run_into(&ws, "store-a");
    let b = run_into(&ws, "store-b");
    let (oa, ob) = (objects(&a), objects(&b));
    assert_eq!(oa.len(), 4);
    assert!(oa.iter().all(|(_, d)| !d.is_empty()), "{oa:?}");
    assert_eq!(oa, ob, "two stores got different objects");

    let digest = &oa.iter().find(|(n, _)| n == "scores").expect("scores").1;
    let csv = ws.read(&format!(
        "store-a/objects/{}/{digest}/scores.csv",
        &digest[..2]
    ));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("model,seed,cohort,id,label,score"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 120);
    assert!(rows[0].starts_with("jepa,5,external,"), "{}", rows[0]);
    assert!(rows[119].starts_with("jepa,5,internal,"), "{}", rows[119]);

    let pre = stage_metrics(&ws, "store-a", "jepa");
    assert_eq!(pre["backend"], "cpu", "{pre}");
    assert_eq!(pre["device"], "flex-cpu", "{pre}");
    assert_eq!(pre["collapsed"], false, "{pre}");
    assert!(pre["final_loss"].as_f64().is_some(), "{pre}");
    assert_eq!(
        stage_metrics(&ws, "store-a", "finetune")["pretrained"],
        true
    );
    assert_eq!(
        pre,
        stage_metrics(&ws, "store-b", "jepa"),
        "metrics differ across stores"
    );
}

#[test]
fn cuda_backend_without_a_usable_driver_exits_2_before_any_work() {
    let ws = Workspace::new();
    ws.write("experiments/m.yaml", EXPERIMENT);
    let out = ws.run(&["run", "experiments/m.yaml", "--backend", "cuda"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("backend `cuda`"), "{err}");
    assert!(
        !ws.join("runs/.store/objects").exists()
            || std::fs::read_dir(ws.join("runs/.store/objects"))
                .map(|d| d.count() == 0)
                .unwrap_or(true)
    );
}
