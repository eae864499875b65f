//! The command line as a user meets it: sweeps and replicates, GPU pinning, inspection commands,
//! garbage collection, shared stores, help.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{Workspace, stages_with, stderr};

const SWEEP: &str = r#"
experiment: sweep
seed: 3
seeds: [1, 2]
stages:
  data:
    kind: command
    cmd: "echo {seed} > {outs.d}"
    outs: {d: d.txt}
  train:
    kind: command
    replicate: true
    cmd: "echo lr={params.lr} seed={seed} $(cat {deps.d}) > {outs.m}"
    deps: {d: "stage:data/d"}
    outs: {m: m.txt}
    params: {lr: 0.1}
  eval:
    kind: command
    cmd: "cat {deps.m} > {outs.e}"
    deps: {m: "stage:train/m"}
    outs: {e: e.txt}
  table:
    kind: command
    cmd: "cat {deps.all} > {outs.t}"
    deps: {all: "stage:eval[*]/e"}
    outs: {t: t.txt}
sweep:
  train.params.lr: [0.001, 0.01]
"#;

#[test]
fn sweeps_and_replicates_expand_into_named_variants() {
    let ws = Workspace::new();
    ws.write("experiments/sweep.yaml", SWEEP);
    let m = ws.run_ok("experiments/sweep.yaml");
    let names: Vec<&str> = m["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "data",
            "train[lr=0.001,seed=1]",
            "train[lr=0.001,seed=2]",
            "train[lr=0.01,seed=1]",
            "train[lr=0.01,seed=2]",
            "eval[lr=0.001,seed=1]",
            "eval[lr=0.001,seed=2]",
            "eval[lr=0.01,seed=1]",
            "eval[lr=0.01,seed=2]",
            "table",
        ]
    );
    // The unreplicated stage runs with the experiment seed, the replicates with theirs, and the
    // gathering stage sees every variant in order.
    let table = m["stages"][9]["object"].as_str().unwrap();
    let t = ws.read(&format!(
        "runs/.store/objects/{}/{table}/t.txt",
        &table[..2]
    ));
    assert_eq!(
        t,
        "lr=0.001 seed=1 3\nlr=0.001 seed=2 3\nlr=0.01 seed=1 3\nlr=0.01 seed=2 3\n"
    );
}

#[test]
fn gpu_tasks_are_pinned_and_never_share_a_device() {
    let ws = Workspace::new();
    let mut yaml = String::from("experiment: gpus\nstages:\n");
    for i in 0..6 {
        let gpus = if i == 5 { 2 } else { 1 };
        yaml.push_str(&format!(
            "  g{i}:\n    kind: command\n    resources: {{gpus: {gpus}}}\n    cmd: \"a=$(date +%s%N); sleep 0.3; echo $CUDA_VISIBLE_DEVICES $a $(date +%s%N) > {{outs.o}}\"\n    outs: {{o: o.txt}}\n    params: {{n: {i}}}\n"
        ));
    }
    yaml.push_str("  cpu:\n    kind: command\n    cmd: \"echo \\\"[$CUDA_VISIBLE_DEVICES]\\\" > {outs.o}\"\n    outs: {o: o.txt}\n");
    ws.write("experiments/gpus.yaml", &yaml);
    let out = ws.run(&[
        "run",
        "experiments/gpus.yaml",
        "--gpus",
        "0,1,2",
        "-j",
        "8",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut by_device: BTreeMap<String, Vec<(u128, u128)>> = BTreeMap::new();
    for s in m["stages"].as_array().unwrap() {
        let obj = s["object"].as_str().unwrap();
        let text = ws.read(&format!("runs/.store/objects/{}/{obj}/o.txt", &obj[..2]));
        if s["name"] == "cpu" {
            assert_eq!(text.trim(), "[]", "CPU tasks see no GPU");
            continue;
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        let devices: Vec<&str> = parts[0].split(',').collect();
        let expected = if s["name"] == "g5" { 2 } else { 1 };
        assert_eq!(devices.len(), expected, "{}: {text}", s["name"]);
        let span = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        for d in devices {
            assert!(["0", "1", "2"].contains(&d));
            by_device.entry(d.to_string()).or_default().push(span);
        }
    }
    for (device, mut spans) in by_device {
        spans.sort();
        for w in spans.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "device {device} was double-booked: {spans:?}"
            );
        }
    }
}

#[test]
fn a_stage_needing_more_gpus_than_the_inventory_is_refused_up_front() {
    let ws = Workspace::new();
    ws.write(
        "experiments/x.yaml",
        "experiment: x\nstages:\n  a:\n    kind: command\n    resources: {gpus: 1}\n    cmd: \"echo > {outs.o}\"\n    outs: {o: o}\n",
    );
    let out = ws.run(&["run", "experiments/x.yaml", "--gpus", "none"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("stage `a` needs 1 GPU(s) but the inventory has 0"),
        "{}",
        stderr(&out)
    );
    assert!(!ws.join("runs").exists());
}

const SMALL: &str = r#"
experiment: small
stages:
  a:
    kind: command
    cmd: "echo out-{params.v}; echo err >&2; echo {params.v} > {outs.o}"
    outs: {o: o.txt}
    params: {v: 1}
"#;

#[test]
fn show_prints_record_key_outputs_and_log() {
    let ws = Workspace::new();
    ws.write("experiments/small.yaml", SMALL);
    ws.run_ok("experiments/small.yaml");
    let out = ws.run(&["show", "a", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["record"]["stdout"], "out-1\n");
    assert_eq!(v["record"]["stderr"], "err\n");
    assert_eq!(v["record"]["key_json"]["config"]["params"]["v"], 1);
    let key = v["record"]["key"].as_str().unwrap();
    // A key prefix finds the same stage.
    let by_key = ws.run(&["show", &key[..10]]);
    let text = String::from_utf8_lossy(&by_key.stdout);
    assert!(text.contains("stage      a"), "{text}");
    assert!(text.contains("--- stdout ---\nout-1"), "{text}");
    let missing = ws.run(&["show", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn ls_and_status_list_runs() {
    let ws = Workspace::new();
    ws.write("experiments/small.yaml", SMALL);
    ws.run_ok("experiments/small.yaml");
    ws.run_ok("experiments/small.yaml");
    let out = ws.run(&["ls", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(stages_with(&runs[1], "fresh"), ["a"]);
    let text = String::from_utf8_lossy(&ws.run(&["ls"]).stdout).into_owned();
    assert!(text.contains("ran      a"), "{text}");
    let status: serde_json::Value =
        serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["experiments"][0]["experiment"], "small");
    assert_eq!(status["figures"]["records"], 1);
}

#[test]
fn gc_drops_only_objects_no_kept_run_references() {
    let ws = Workspace::new();
    ws.write("experiments/small.yaml", SMALL);
    let first = ws.run_ok("experiments/small.yaml");
    ws.write("experiments/small.yaml", &SMALL.replace("v: 1", "v: 2"));
    let second = ws.run_ok("experiments/small.yaml");
    let old = first["stages"][0]["object"].as_str().unwrap();
    let new = second["stages"][0]["object"].as_str().unwrap();
    let objects = |ws: &Workspace| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_slice(&ws.run(&["gc", "--dry-run", "--json"]).stdout).unwrap();
        v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_string())
            .collect()
    };
    // Both runs are kept: nothing to collect.
    assert!(objects(&ws).is_empty());
    std::fs::remove_dir_all(ws.join(&format!("runs/small/{}", first["run_id"].as_str().unwrap())))
        .unwrap();
    assert_eq!(objects(&ws), [old]);
    // A dry run deleted nothing.
    assert!(
        ws.join(&format!("runs/.store/objects/{}/{old}", &old[..2]))
            .exists()
    );
    let out = ws.run(&["gc"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 1 object(s)"));
    assert!(
        !ws.join(&format!("runs/.store/objects/{}/{old}", &old[..2]))
            .exists()
    );
    assert!(
        ws.join(&format!("runs/.store/objects/{}/{new}", &new[..2]))
            .exists()
    );
    // The current experiment is still fresh; the collected one runs again when asked for.
    assert_eq!(
        stages_with(&ws.run_ok("experiments/small.yaml"), "fresh"),
        ["a"]
    );
    ws.write("experiments/small.yaml", SMALL);
    let again = ws.run_ok("experiments/small.yaml");
    assert_eq!(stages_with(&again, "ran"), ["a"]);
    assert_eq!(again["stages"][0]["object"], old);
}

#[test]
fn same_experiment_in_two_stores_gives_identical_digests() {
    let ws = Workspace::new();
    ws.write("experiments/sweep.yaml", SWEEP);
    let a = ws
        .cmd(&[
            "--store",
            "store-a",
            "run",
            "experiments/sweep.yaml",
            "--json",
        ])
        .output()
        .unwrap();
    let b = ws
        .cmd(&[
            "--store",
            "store-b",
            "run",
            "experiments/sweep.yaml",
            "--json",
        ])
        .output()
        .unwrap();
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&a.stdout).unwrap(),
        serde_json::from_slice(&b.stdout).unwrap(),
    );
    assert_eq!(
        stages_with(&b, "ran").len(),
        10,
        "the second store starts empty"
    );
    for (x, y) in a["stages"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["stages"].as_array().unwrap())
    {
        assert_eq!(x["key"], y["key"]);
        assert_eq!(x["object"], y["object"]);
    }
    assert!(ws.join("store-a/objects").is_dir() && ws.join("store-b/objects").is_dir());
}

#[test]
fn provenance_is_recorded() {
    let ws = Workspace::new();
    ws.write("experiments/small.yaml", SMALL);
    let m = ws.run_ok("experiments/small.yaml");
    let p = &m["provenance"];
    assert_eq!(p["orchestrate_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(p["binary_identity"].as_str().unwrap().len(), 64);
    // Not a git repository: no git provenance, and --require-clean has nothing to refuse.
    assert!(p["git"].is_null());
}

#[test]
fn require_clean_refuses_a_dirty_tree() {
    let ws = Workspace::new();
    ws.write("experiments/small.yaml", SMALL);
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(ws.path())
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "x",
    ]);
    ws.write(".gitignore", "runs/\n");
    let out = ws.run(&["run", "experiments/small.yaml", "--require-clean"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the git tree is dirty (.gitignore)"),
        "{}",
        stderr(&out)
    );
    let m = ws.run_ok("experiments/small.yaml");
    assert_eq!(m["provenance"]["git"]["dirty"], true);
    assert_eq!(
        m["provenance"]["git"]["diff_digest"].as_str().map(str::len),
        Some(64)
    );
}

#[test]
fn help_teaches_the_commands_and_exit_codes() {
    let ws = Workspace::new();
    let out = ws.run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "plan", "status", "ls", "show", "gc"] {
        assert!(
            text.contains(&format!("  {cmd} ")),
            "{cmd} missing from --help:\n{text}"
        );
    }
    assert!(!text.contains("worker"), "the worker command is hidden");
    assert!(text.contains("Exit codes"), "{text}");
    let bad = ws.run(&["run"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Two workspaces on one store: `gc` from either keeps what the other's kept runs reference, and
/// forgets a run only when its own workspace deleted it, or when asked (`--prune-missing`).
#[test]
fn gc_from_one_workspace_keeps_the_runs_of_another_on_the_same_store() {
    let store = tempfile::tempdir().unwrap();
    let store = store.path().to_str().unwrap().to_string();
    let (a, b) = (Workspace::new(), Workspace::new());
    a.write("experiments/small.yaml", SMALL);
    b.write("experiments/small.yaml", &SMALL.replace("v: 1", "v: 2"));
    let run_a = a.run_json(&["--store", &store, "run", "experiments/small.yaml", "--json"]);
    let run_b = b.run_json(&["--store", &store, "run", "experiments/small.yaml", "--json"]);
    let obj_b = run_b["stages"][0]["object"].as_str().unwrap().to_string();
    let gc = |ws: &Workspace, extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--store", &store, "gc", "--json"];
        args.extend_from_slice(extra);
        ws.run_json(&args)
    };
    // From A, B's run is a root: nothing to collect, and both workspaces are named.
    let v = gc(&a, &[]);
    assert_eq!(v["objects"], serde_json::json!([]), "{v}");
    assert_eq!(v["roots"].as_array().unwrap().len(), 2, "{v}");
    let obj_path = Path::new(&store).join(format!("objects/{}/{obj_b}", &obj_b[..2]));
    assert!(obj_path.exists());
    // B's run folder disappears (deleted, or on a machine A cannot see): A still keeps it …
    std::fs::remove_dir_all(b.join(&format!("runs/small/{}", run_b["run_id"].as_str().unwrap())))
        .unwrap();
    let v = gc(&a, &[]);
    assert_eq!(v["objects"], serde_json::json!([]), "{v}");
    assert!(obj_path.exists());
    let text = a.run(&["--store", &store, "gc", "--dry-run"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("not visible from here (kept; --prune-missing forgets them)"),
        "{text}"
    );
    // … until asked to forget it; A's own run is never touched.
    let v = gc(&a, &["--prune-missing"]);
    assert_eq!(v["objects"], serde_json::json!([obj_b]), "{v}");
    assert!(!obj_path.exists());
    let obj_a = run_a["stages"][0]["object"].as_str().unwrap();
    assert!(
        Path::new(&store)
            .join(format!("objects/{}/{obj_a}", &obj_a[..2]))
            .exists()
    );
    // A workspace forgets its own deleted run without being asked.
    std::fs::remove_dir_all(a.join(&format!("runs/small/{}", run_a["run_id"].as_str().unwrap())))
        .unwrap();
    let v = gc(&a, &[]);
    assert_eq!(v["objects"], serde_json::json!([obj_a]), "{v}");
}

#[test]
fn zipped_sweep_keys_move_together_one_variant_per_position() {
    let ws = Workspace::new();
    let zipped = SWEEP.replace(
        "    params: {lr: 0.1}\n",
        "    params: {lr: 0.1, wd: 0.0}\n",
    )
    .replace(
        "sweep:\n  train.params.lr: [0.001, 0.01]\n",
        "sweep:\n  zip:\n    train.params.lr: [0.001, 0.01, 0.1]\n    train.params.wd: [0.5, 0.6, 0.7]\n",
    );
    ws.write("experiments/sweep.yaml", &zipped);
    let plan = ws.run_json(&["plan", "experiments/sweep.yaml", "--json"]);
    let trains: Vec<&str> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .filter(|s| s.starts_with("train["))
        .collect();
    // Three positions × two seeds, not 3 × 3 × 2.
    assert_eq!(
        trains,
        [
            "train[lr=0.001,wd=0.5,seed=1]",
            "train[lr=0.001,wd=0.5,seed=2]",
            "train[lr=0.01,wd=0.6,seed=1]",
            "train[lr=0.01,wd=0.6,seed=2]",
            "train[lr=0.1,wd=0.7,seed=1]",
            "train[lr=0.1,wd=0.7,seed=2]",
        ]
    );

    // Lists of different lengths, and keys of two stages, are refused with the key's position.
    let uneven = zipped.replace("[0.5, 0.6, 0.7]", "[0.5, 0.6]");
    ws.write("experiments/uneven.yaml", &uneven);
    let out = ws.run(&["plan", "experiments/uneven.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("uneven.yaml:"), "{err}");
    assert!(
        err.contains("zipped sweep keys must list as many values each: `train.params.wd` lists 2, `train.params.lr` lists 3"),
        "{err}"
    );
}

#[test]
fn an_evaluate_that_gathers_across_a_sweep_axis_is_refused_at_validation() {
    let ws = Workspace::new();
    ws.write(
        "experiments/gather.yaml",
        r#"
experiment: gather
seeds: [1, 2]
stages:
  score:
    kind: command
    replicate: true
    cmd: "printf 'model,seed,cohort,id,label,score\nm,{seed},internal,p1,1,{params.s}\nm,{seed},internal,p2,0,0.1\nm,{seed},internal,p3,1,0.7\nm,{seed},internal,p4,0,0.2\n' > {outs.scores}"
    outs: {scores: scores.csv}
    params: {s: 0.9}
  evaluate:
    kind: evaluate
    deps: {m: "stage:score[*]/scores"}
    config: {reference: m}
sweep:
  score.params.s: [0.8, 0.9]
"#,
    );
    let out = ws.run(&["plan", "experiments/gather.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`evaluate` gathers `score` across the sweep axis `s`"),
        "{err}"
    );
    assert!(err.contains("may gather seeds only"), "{err}");
    assert!(err.contains("`stage:score[seed=*]/…`"), "{err}");
    assert!(!ws.join("runs").exists(), "nothing is written");

    // `[seed=*]` gathers the seeds and fans out over the sweep: one evaluation per value.
    let fixed = ws
        .read("experiments/gather.yaml")
        .replace("stage:score[*]/scores", "stage:score[seed=*]/scores");
    ws.write("experiments/gather.yaml", &fixed);
    let plan = ws.run_json(&["plan", "experiments/gather.yaml", "--json"]);
    let evals: Vec<&str> = plan["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .filter(|s| s.starts_with("evaluate"))
        .collect();
    assert_eq!(evals, ["evaluate[s=0.8]", "evaluate[s=0.9]"]);
    let m = ws.run_ok("experiments/gather.yaml");
    assert_eq!(stages_with(&m, "ran").len(), 6, "{m}");
}

#[test]
fn a_run_manifest_with_an_unknown_field_or_another_format_is_refused_by_its_readers() {
    let ws = Workspace::new();
    ws.write(
        "experiments/m.yaml",
        "experiment: m\nstages:\n  a:\n    kind: command\n    cmd: \"echo a > {outs.o}\"\n    outs: {o: o.txt}\n",
    );
    let m = ws.run_ok("experiments/m.yaml");
    let dir = format!("runs/m/{}", m["run_id"].as_str().unwrap());
    let path = format!("{dir}/manifest.json");
    let good: serde_json::Value = serde_json::from_str(&ws.read(&path)).unwrap();
    let mut unknown = good.clone();
    unknown["stages"][0]["colour"] = serde_json::json!("blue");
    let mut newer = good.clone();
    newer["format"] = serde_json::json!(99);
    for (doc, want) in [
        (unknown, "unknown field `colour`"),
        (newer, "manifest format 99 is not this binary's"),
    ] {
        ws.write(&path, &serde_json::to_string_pretty(&doc).unwrap());
        // `lock` and `gc` refuse (exit 2) and write nothing; `ls` lists the rest and warns.
        for args in [vec!["lock", "experiments/m.yaml"], vec!["gc"]] {
            let out = ws.run(&args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(want), "{args:?}: want `{want}` in:\n{err}");
            assert!(
                err.contains("manifest.json"),
                "{args:?} names the file:\n{err}"
            );
        }
        assert!(
            !ws.join("experiments/m.lock").exists(),
            "nothing was locked"
        );
        let obj = m["stages"][0]["object"].as_str().unwrap();
        assert!(
            ws.join(&format!("runs/.store/objects/{}/{obj}", &obj[..2]))
                .is_dir(),
            "gc deleted nothing"
        );
        let out = ws.run(&["ls"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("Warning") && err.contains(want), "{err}");
    }
}
