//! Artifacts across x86-64 CPU models: the experiment synth → JEPA pretraining → finetuning →
//! predict → evaluate, run natively and with its workers under `qemu-x86_64 -cpu Haswell`
//! (AVX2 + FMA) and `-cpu Nehalem` (SSE4.2, no FMA) through `ORCHESTRATE_WORKER_WRAPPER`. Runs
//! whose workers report the same CPU kernels must give the same bits; a lock made natively and
//! reproduced on other kernels must be "reproduced" with its metrics within tolerance, naming
//! both kernel sets. CI installs Debian's `qemu-user` and sets `ORCHESTRATE_TEST_QEMU=1`; without
//! it the test prints a notice and passes.

use std::collections::BTreeMap;

use crate::common::{Workspace, stage_metrics, stderr};

/// The models test's pipeline with an evaluate stage at its end.
fn experiment() -> String {
    format!(
        "{}{}",
        crate::models::EXPERIMENT.replace("experiment: models-tiny", "experiment: kernels-tiny"),
        r#"  auc:
    kind: evaluate
    deps: {jepa: "stage:scores/scores", truth: "stage:world/truth"}
    config: {reference: jepa, bootstrap: {resamples: 200, seed: 1}}
"#
    )
}

/// (stage → output object digest, the kernels its model stages reported) of one run.
fn run_under(ws: &Workspace, store: &str, cpu: Option<&str>) -> (BTreeMap<String, String>, String) {
    let mut cmd = ws.cmd(&["--store", store, "run", "experiments/k.yaml", "--json"]);
    if let Some(cpu) = cpu {
        cmd.env(
            "ORCHESTRATE_WORKER_WRAPPER",
            format!("qemu-x86_64 -cpu {cpu}"),
        );
    }
    let out = cmd.output().expect("spawn orchestrate");
    assert!(
        out.status.success(),
        "run ({cpu:?}) failed:\n{}",
        stderr(&out)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest JSON");
    let objects = m["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            let name = s["name"].as_str().expect("name").to_string();
            (name, s["object"].as_str().unwrap_or("").to_string())
        })
        .collect();
    let kernels = stage_metrics(ws, store, "jepa")["kernels"]
        .as_str()
        .expect("the pretraining record names its kernels")
        .to_string();
    (objects, kernels)
}

#[test]
fn same_kernels_give_the_same_bits_and_other_kernels_reproduce_within_tolerance() {
    if std::env::var("ORCHESTRATE_TEST_QEMU").as_deref() != Ok("1") {
        eprintln!(
            "skipping same_kernels_give_the_same_bits_and_other_kernels_reproduce_within_tolerance: \
             install qemu-user and set ORCHESTRATE_TEST_QEMU=1"
        );
        return;
    }
    let ws = Workspace::new();
    ws.write("experiments/k.yaml", &experiment());
    let runs = [
        ("native", run_under(&ws, "s-native", None)),
        ("Haswell", run_under(&ws, "s-haswell", Some("Haswell"))),
        ("Nehalem", run_under(&ws, "s-nehalem", Some("Nehalem"))),
    ];
    for (name, (objects, kernels)) in &runs {
        eprintln!("{name}: kernels {kernels}; objects {objects:?}");
    }
    let (_, (haswell, haswell_kernels)) = &runs[1];
    let (_, (nehalem, nehalem_kernels)) = &runs[2];
    assert!(
        haswell_kernels.starts_with("simd V3, gemm fma"),
        "{haswell_kernels}"
    );
    assert!(
        nehalem_kernels.starts_with("simd V2, gemm scalar"),
        "{nehalem_kernels}"
    );
    for (a, (oa, ka)) in &runs {
        for (b, (ob, kb)) in &runs {
            // The synthetic data never touch a tensor kernel: the same everywhere.
            assert_eq!(
                oa["world"], ob["world"],
                "synth differs between {a} and {b}"
            );
            if ka == kb {
                assert_eq!(oa, ob, "{a} and {b} ran the same kernels ({ka}) but differ");
            }
        }
    }
    assert_ne!(
        haswell["jepa"], nehalem["jepa"],
        "FMA and non-FMA kernels round differently"
    );

    // Locked on Haswell kernels, reproduced on Nehalem's: reproduced within tolerance, saying why.
    let lock = ws
        .cmd(&["--store", "s-haswell", "lock", "experiments/k.yaml"])
        .env("ORCHESTRATE_WORKER_WRAPPER", "qemu-x86_64 -cpu Haswell")
        .output()
        .expect("lock");
    assert!(lock.status.success(), "{}", stderr(&lock));
    let out = ws
        .cmd(&["reproduce", "experiments/k.yaml"])
        .env("ORCHESTRATE_WORKER_WRAPPER", "qemu-x86_64 -cpu Nehalem")
        .output()
        .expect("reproduce");
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}\n{}", stderr(&out));
    assert!(
        table.contains(&format!("kernels {haswell_kernels}")),
        "{table}"
    );
    assert!(
        table.contains(&format!("kernels {nehalem_kernels}")),
        "{table}"
    );
    assert!(table.contains("within tolerance"), "{table}");
    assert!(table.contains("Reproduced"), "{table}");
}
