//! External validation at another site through the real CLI: `kit` → `validate` at the site →
//! `import-site` back home, and every refusal (another code identity, a cohort in the wrong
//! format, tampered results, another run's models).

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{Workspace, read_tar_gz, stderr, write_tar_gz};

const EXPERIMENT: &str = r#"
experiment: sitekit
seed: 3
seeds: [1, 2]
stages:
  world:
    kind: synth
    config: {n_unlabeled: 40, n_incomplete: 20, n_finetune: 80, n_internal: 60, n_external: 60, img_tokens: 3, img_width: 4, clin_tokens: 2, clin_width: 4}
  hospital:
    kind: synth
    config: {n_unlabeled: 20, n_incomplete: 20, n_finetune: 20, n_internal: 20, n_external: 80, img_tokens: 3, img_width: 4, clin_tokens: 2, clin_width: 4, shift: 2.0}
  other_shape:
    kind: synth
    config: {n_unlabeled: 20, n_incomplete: 20, n_finetune: 20, n_internal: 20, n_external: 20, img_tokens: 3, img_width: 5, clin_tokens: 2, clin_width: 4}
  train_imaging:
    kind: train
    replicate: true
    deps: {data: "stage:world/finetune"}
    config: {model_class: imaging, batch_size: 16, epochs: 2, patience: 2}
  train_multimodal:
    kind: train
    replicate: true
    deps: {data: "stage:world/finetune"}
    config: {model_class: multimodal, batch_size: 16, epochs: 2, patience: 2}
  predict_imaging:
    kind: predict
    deps: {model: "stage:train_imaging/model", internal: "stage:world/internal", external: "stage:world/external"}
    config: {label: imaging}
  predict_multimodal:
    kind: predict
    deps: {model: "stage:train_multimodal/model", internal: "stage:world/internal", external: "stage:world/external"}
    config: {label: multimodal}
  evaluate:
    kind: evaluate
    deps: {imaging: "stage:predict_imaging[*]/scores", multimodal: "stage:predict_multimodal[*]/scores"}
    config:
      reference: imaging
      primary: {a: multimodal, b: imaging, cohort: internal}
      secondary: [{a: imaging, b: multimodal, cohort: external}]
      bootstrap: {resamples: 200, seed: 1}
"#;

/// The folder of output `out` of stage `name` in the workspace's store.
fn output(ws: &Workspace, m: &serde_json::Value, name: &str, out: &str) -> std::path::PathBuf {
    let s = m["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name}"));
    let obj = s["object"].as_str().unwrap();
    ws.join(&format!("runs/.store/objects/{}/{obj}/{out}", &obj[..2]))
}

/// Re-packs an archive after `edit`, with an index whose digests match again (an attacker can).
fn repack(from: &Path, to: &Path, edit: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) {
    let mut files = read_tar_gz(from);
    let mut index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    files.remove("index.json");
    edit(&mut files);
    let digests: BTreeMap<String, String> = files
        .iter()
        .map(|(n, b)| (n.clone(), orchestrate::fingerprint::hash_bytes(b)))
        .collect();
    index["files"] = serde_json::to_value(digests).unwrap();
    let mut all = vec![("index.json", serde_json::to_vec(&index).unwrap())];
    all.extend(files.iter().map(|(n, b)| (n.as_str(), b.clone())));
    write_tar_gz(to, &all);
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        stderr(out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_kit_validated_at_a_site_comes_back_with_the_runs_own_numbers() {
    let ws = Workspace::new();
    ws.write("experiments/s.yaml", EXPERIMENT);
    let m = ws.run_ok("experiments/s.yaml");
    let text = ok(&ws.run(&["kit", "sitekit", "-o", "kit.tar.gz"]));
    assert!(
        text.contains("4 model(s)") && text.contains("no training or test data"),
        "{text}"
    );
    ok(&ws.run(&["kit", "sitekit", "-o", "kit2.tar.gz"]));
    assert_eq!(
        std::fs::read(ws.join("kit.tar.gz")).unwrap(),
        std::fs::read(ws.join("kit2.tar.gz")).unwrap(),
        "a kit is deterministic"
    );
    let kit = read_tar_gz(&ws.join("kit.tar.gz"));
    assert!(
        kit.keys().all(|k| k == "index.json"
            || k == "kit.json"
            || k.starts_with("models/")
            || k.starts_with("example/")),
        "{:?}",
        kit.keys()
    );

    // The site: its own workspace, the run's external cohort as its data (so the numbers can be
    // compared with the run's own), nothing else of the lab's.
    let site = Workspace::new();
    let cohort = output(&ws, &m, "world", "external");
    let out = site.run(&[
        "validate",
        ws.join("kit.tar.gz").to_str().unwrap(),
        "--cohort",
        cohort.to_str().unwrap(),
        "--site",
        "demo",
        "-o",
        "results.tar.gz",
    ]);
    let text = ok(&out);
    assert!(
        text.contains("no patient data and no per-patient scores"),
        "{text}"
    );
    let back = read_tar_gz(&site.join("results.tar.gz"));
    assert_eq!(
        back.keys().cloned().collect::<Vec<_>>(),
        ["index.json", "report.html", "results.json", "site.json"]
    );
    let at_site: serde_json::Value = serde_json::from_slice(&back["results.json"]).unwrap();
    let home: serde_json::Value = serde_json::from_slice(
        &std::fs::read(ws.join("runs/sitekit/latest/results.json")).unwrap(),
    )
    .unwrap();
    for model in ["imaging", "multimodal"] {
        let pick = |r: &serde_json::Value, cohort: &str| {
            r["models"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["model"] == model && x["cohort"] == cohort)
                .cloned()
                .unwrap()
        };
        let (s, h) = (pick(&at_site, "test"), pick(&home, "external"));
        assert_eq!(s["auc"], h["auc"], "{model}: bit-identical AUC");
        assert_eq!(
            s["delong"], h["delong"],
            "{model}: identical DeLong interval"
        );
        assert_eq!(
            s["bootstrap"], h["bootstrap"],
            "{model}: identical bootstrap interval"
        );
    }

    // Back home.
    let results = site.join("results.tar.gz");
    let text = ok(&ws.run(&["import-site", "sitekit", results.to_str().unwrap()]));
    assert!(
        text.contains("Imported site `demo`") && text.contains("60 patients"),
        "{text}"
    );
    let text = ok(&ws.run(&["import-site", "sitekit", results.to_str().unwrap()]));
    assert!(
        text.contains("already imported"),
        "importing twice changes nothing: {text}"
    );
    let report = ws.read("runs/sitekit/latest/report.html");
    assert!(
        report.contains("External sites") && report.contains("site demo, n 60"),
        "the report shows the site"
    );
    ok(&ws.run(&["compare", "sitekit", "-o", "compare.html"]));
    assert!(
        ws.read("compare.html").contains("site demo"),
        "compare shows the site's cells"
    );
    // Results of another run's kit.
    let foreign = ws.join("foreign-run.tar.gz");
    repack(&results, &foreign, |f| {
        let mut s: serde_json::Value = serde_json::from_slice(&f["site.json"]).unwrap();
        s["run_id"] = serde_json::Value::from("20260101T000000.000Z-0000");
        f.insert("site.json".into(), serde_json::to_vec(&s).unwrap());
    });
    let out = ws.run(&["import-site", "sitekit", foreign.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("computed with a kit of run `sitekit/20260101T000000.000Z-0000`"),
        "{}",
        stderr(&out)
    );

    // Tampered numbers: the digest in site.json no longer matches (exit 2).
    let bad = ws.join("tampered.tar.gz");
    repack(&results, &bad, |f| {
        let text = String::from_utf8(f["results.json"].clone()).unwrap();
        f.insert(
            "results.json".into(),
            text.replacen("\"auc\": 0.", "\"auc\": 0.9", 1).into_bytes(),
        );
    });
    let out = ws.run(&["import-site", "sitekit", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not match the digest"),
        "{}",
        stderr(&out)
    );
    // Another run's models: site.json says this run, but the models' digests are others.
    let other = ws.join("other.tar.gz");
    repack(&results, &other, |f| {
        let mut s: serde_json::Value = serde_json::from_slice(&f["site.json"]).unwrap();
        s["models"][0]["digest"] = serde_json::Value::from("ab".repeat(32));
        f.insert("site.json".into(), serde_json::to_vec(&s).unwrap());
    });
    let out = ws.run(&["import-site", "sitekit", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("another run's models"),
        "{}",
        stderr(&out)
    );
    // A kit is not a results archive.
    let out = ws.run(&[
        "import-site",
        "sitekit",
        ws.join("kit.tar.gz").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a `site-results`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_refuses_other_code_and_cohorts_the_models_cannot_read() {
    let ws = Workspace::new();
    ws.write("experiments/s.yaml", EXPERIMENT);
    let m = ws.run_ok("experiments/s.yaml");
    ok(&ws.run(&["kit", "sitekit", "-o", "kit.tar.gz", "--models", "imaging"]));
    let kit = ws.join("kit.tar.gz");
    let site = Workspace::new();
    let validate = |kit: &Path, cohort: &Path| {
        site.run(&[
            "validate",
            kit.to_str().unwrap(),
            "--cohort",
            cohort.to_str().unwrap(),
        ])
    };
    // Another code identity: refused before anything runs.
    let foreign = ws.join("foreign.tar.gz");
    repack(&kit, &foreign, |f| {
        let mut k: serde_json::Value = serde_json::from_slice(&f["kit.json"]).unwrap();
        k["predict_code"] = serde_json::Value::from("0".repeat(64));
        f.insert("kit.json".into(), serde_json::to_vec(&k).unwrap());
    });
    let out = validate(&foreign, &output(&ws, &m, "hospital", "external"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("other predict/evaluate code"),
        "{}",
        stderr(&out)
    );
    assert!(!site.join("runs").exists(), "nothing was written");
    // An unlabeled cohort, a cohort of another shape, no cohort at all.
    let out = validate(&kit, &output(&ws, &m, "world", "unlabeled"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has no labels"), "{}", stderr(&out));
    let out = validate(&kit, &output(&ws, &m, "other_shape", "external"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expect imaging 3×4"),
        "{}",
        stderr(&out)
    );
    let out = validate(&kit, &site.join("nowhere"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nowhere"), "{}", stderr(&out));
    // The kit's own synthetic example passes validation.
    for (name, bytes) in read_tar_gz(&kit) {
        if let Some(rel) = name.strip_prefix("example/") {
            site.write(&format!("example/{rel}"), "");
            std::fs::write(site.join(&format!("example/{rel}")), bytes).unwrap();
        }
    }
    let out = site.run(&[
        "validate",
        kit.to_str().unwrap(),
        "--cohort",
        site.join("example").to_str().unwrap(),
        "--site",
        "example",
        "-o",
        "example.tar.gz",
    ]);
    assert!(ok(&out).contains("8 patients (4 cases)"));
    // The stand-in hospital: another shift, its own cohort; --models kept only imaging.
    let out = site.run(&[
        "validate",
        kit.to_str().unwrap(),
        "--cohort",
        output(&ws, &m, "hospital", "external").to_str().unwrap(),
        "--site",
        "hospital-b",
        "--share-scores",
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(doc["cohort"]["n"], 80);
    assert_eq!(
        doc["models"].as_array().unwrap().len(),
        2,
        "imaging × 2 seeds"
    );
    let back = read_tar_gz(&site.join("site-results.tar.gz"));
    assert!(
        back.contains_key("scores.csv"),
        "--share-scores adds the scores"
    );
}
