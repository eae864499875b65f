//! `lock`, `reproduce` against a lock, a run or a bundle, and `bundle`: the verification table,
//! root causes, provenance guards and exit codes.

use std::process::Output;

use crate::common::{Workspace, stderr, wait_for};

const EXPERIMENT: &str = r#"
experiment: rules
seed: 7
stages:
  prep:
    kind: command
    cmd: "awk -F, -v t={params.threshold} 'NR == 1 || $2 >= t' {deps.raw} > {outs.table}"
    deps: {raw: data/raw.csv}
    outs: {table: table.csv}
    params: {threshold: 0.5}
  train:
    kind: command
    cmd: "sh scripts/train.sh {deps.table} {outs.model} {seed}"
    deps: {table: "stage:prep/table"}
    code: [scripts/train.sh]
    outs: {model: model.txt}
  report:
    kind: command
    cmd: "wc -l < {deps.model} > {outs.summary}"
    deps: {model: "stage:train/model"}
    outs: {summary: summary.txt}
"#;

/// A workspace with the experiment locked (`lock` runs it, as it has never been run).
fn locked() -> Workspace {
    let ws = Workspace::new();
    ws.write("experiments/rules.yaml", EXPERIMENT)
        .write("data/raw.csv", "id,score\na,0.9\nb,0.2\nc,0.7\n")
        .write(
            "scripts/train.sh",
            "cat \"$1\" > \"$2\"\necho \"seed=$3\" >> \"$2\"\n",
        );
    let out = ws.run(&["lock", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("first: it has never been run"),
        "{}",
        stderr(&out)
    );
    ws
}

fn lock_json(ws: &Workspace) -> serde_json::Value {
    serde_json::from_str(&ws.read("experiments/rules.lock")).expect("lock JSON")
}

/// Filters for what changes between machines and runs: digests (keys embed the binary's code
/// identity), run ids, the platform, the temporary workspace.
fn settings(ws: &Workspace) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"\b[0-9a-f]{64}\b", "[DIGEST]");
    s.add_filter(r"\b[0-9a-f]{12}\b", "[SHORT-HASH]");
    s.add_filter(r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{4}", "[RUN-ID]");
    s.add_filter(
        &format!(r"\b{}/{}\b", std::env::consts::OS, std::env::consts::ARCH),
        "[OS]/[ARCH]",
    );
    s.add_filter(&regex_escape(&ws.path().display().to_string()), "[WS]");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// Exit code and stdout, as snapshot text.
fn outcome(out: &Output) -> String {
    format!(
        "exit code: {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    )
}

#[test]
fn reproducing_twice_is_identical_and_the_lock_is_stable() {
    let ws = locked();
    let before = ws.read("experiments/rules.lock");
    // Locking an unchanged run again leaves the file byte-identical, `created_at` included.
    let out = ws.run(&["lock", "experiments/rules.yaml"]);
    assert!(stderr(&out).contains("unchanged in"), "{}", stderr(&out));
    assert_eq!(ws.read("experiments/rules.lock"), before);
    let first = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let second = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(first.stdout, second.stdout);
    settings(&ws).bind(|| insta::assert_snapshot!("identical", outcome(&first)));
    // Each reproduction is an isolated store and a recorded run with its verification.
    let stores = std::fs::read_dir(ws.join("runs/.reproduce"))
        .unwrap()
        .count();
    assert_eq!(stores, 2);
    let latest = ws.join("runs/rules/latest");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(latest.join("verification.json")).unwrap())
            .unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["counts"]["different"], 0);
    assert!(latest.join("verification.html").is_file());
}

#[test]
fn an_edited_seed_in_the_lock_names_its_stage_as_root_cause() {
    let ws = locked();
    let mut lock = lock_json(&ws);
    assert_eq!(lock["stages"][1]["name"], "train");
    lock["stages"][1]["key_json"]["seed"] = serde_json::json!(8);
    ws.write(
        "experiments/rules.lock",
        &serde_json::to_string_pretty(&lock).unwrap(),
    );
    let out = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("error: the recomputation differs from lock `experiments/rules.lock`: 1 item(s) different, root cause `train`"),
        "{}",
        stderr(&out)
    );
    settings(&ws).bind(|| insta::assert_snapshot!("edited_seed", outcome(&out)));
    let json = ws.run(&["reproduce", "experiments/rules.yaml", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("verification JSON");
    assert_eq!(v["root_cause"], "train");
    assert_eq!(v["stages"][1]["role"], "root_cause");
    assert_eq!(v["stages"][1]["reasons"][0], "seed changed (8 → 7)");
    assert_eq!(v["stages"][2]["outcome"], "identical");
}

#[test]
fn changed_data_is_the_root_cause_and_downstream_stages_are_consequences() {
    let ws = locked();
    ws.write("data/raw.csv", "id,score\na,0.9\nb,0.6\nc,0.7\n");
    let out = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    settings(&ws).bind(|| insta::assert_snapshot!("changed_data", outcome(&out)));
}

#[test]
fn a_tampered_object_in_the_users_cache_does_not_affect_an_isolated_reproduce() {
    let ws = locked();
    // Overwrite every stored output of the user's store.
    let objects = ws.join("runs/.store/objects");
    let mut tampered = 0;
    for prefix in std::fs::read_dir(&objects).unwrap().flatten() {
        for object in std::fs::read_dir(prefix.path()).unwrap().flatten() {
            for f in std::fs::read_dir(object.path()).unwrap().flatten() {
                let p = f.path();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
                std::fs::write(&p, "tampered\n").unwrap();
                tampered += 1;
            }
        }
    }
    assert!(tampered >= 3);
    let out = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 different"));
}

#[test]
fn reproduce_a_recorded_run() {
    let ws = locked();
    let run_id = std::fs::read_link(ws.join("runs/rules/latest")).unwrap();
    let spec = format!("rules/{}", run_id.display());
    let out = ws.run(&["reproduce", &spec]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("against run `{spec}`")),
        "{stdout}"
    );
    assert!(stdout.contains("Reproduced: every item is within policy."));
}

#[test]
fn a_bundle_is_deterministic_and_reproduce_accepts_it() {
    let ws = locked();
    let out = ws.run(&["bundle", "rules", "-o", "review.tar.gz"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = std::fs::read(ws.join("review.tar.gz")).unwrap();
    // In another second of the clock: nothing in a bundle may depend on when it was made.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ws.run(&["bundle", "rules", "-o", "review.tar.gz"]);
    assert_eq!(std::fs::read(ws.join("review.tar.gz")).unwrap(), first);
    let out = ws.run(&["reproduce", "review.tar.gz"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("against bundle `review.tar.gz`"));
    // With an edited experiment in the workspace, the workspace's is recomputed (a bundle runs
    // nothing the reviewer did not choose): the edit shows as a diff and as a difference.
    let text = ws.read("experiments/rules.yaml");
    ws.write(
        "experiments/rules.yaml",
        &text.replace("threshold: 0.5", "threshold: 0.1"),
    );
    let out = ws.run(&["reproduce", "review.tar.gz"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("differs from the bundle's"), "{err}");
    assert!(err.contains("-     params: {threshold: 0.1}"), "{err}");
    assert!(err.contains("+     params: {threshold: 0.5}"), "{err}");
    // Asked for, the bundle's own copy is recomputed and verifies.
    let out = ws.run(&["reproduce", "review.tar.gz", "--bundle-experiment"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bad = ws.run(&["bundle", "rules", "-o", "review.zip"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn changed_stage_code_is_reported_up_front_and_refused_with_require_clean() {
    let ws = locked();
    let mut lock = lock_json(&ws);
    lock["code_identity"]["command"] = serde_json::json!("0".repeat(64));
    ws.write(
        "experiments/rules.lock",
        &serde_json::to_string_pretty(&lock).unwrap(),
    );
    let out = ws.run(&["reproduce", "experiments/rules.yaml", "--require-clean"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("code differs from the lock's for stage kind(s) `command`"),
        "{err}"
    );
    assert!(err.contains("--require-clean"), "{err}");
    assert!(!ws.join("runs/.reproduce").exists(), "nothing recomputed");
    // Without it, the warning is printed and the comparison runs (the keys hold the real code).
    let out = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("Warning"));
}

#[test]
fn a_malformed_lock_is_a_usage_error() {
    let ws = locked();
    ws.write("experiments/rules.lock", "{\"format\": 1, \"stages\": 3}");
    let out = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`experiments/rules.lock` is not a lock file of format 1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_counts_the_isolated_reproduce_stores_and_gc_collects_those_not_in_use() {
    let ws = locked();
    let out = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let isolated: Vec<_> = std::fs::read_dir(ws.join("runs/.reproduce"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(isolated.len(), 2);
    let status = String::from_utf8_lossy(&ws.run(&["status"]).stdout).into_owned();
    assert!(
        status.contains("2 isolated reproduce store(s) under `runs/.reproduce`"),
        "{status}"
    );
    // One of them is in use: a run holds its lock while a slow stage sleeps.
    ws.write(
        "experiments/slow.yaml",
        "experiment: slow\nstages:\n  nap:\n    kind: command\n    cmd: \"touch started && sleep 3 && touch {outs.done}\"\n    outs: {done: done}\n",
    );
    let busy = isolated[0].to_str().unwrap().to_string();
    let mut holder = ws.spawn(&["--store", &busy, "run", "experiments/slow.yaml"]);
    wait_for(&ws.join("started"), "the slow stage to start");
    let out = ws.run(&["gc", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("would delete 1 isolated reproduce store(s)") && text.contains("1 in use"),
        "{text}"
    );
    assert!(isolated[1].exists(), "a dry run deletes nothing");
    let out = ws.run(&["gc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !isolated[1].exists(),
        "the idle isolated store is collected"
    );
    assert!(isolated[0].exists(), "the one in use is kept");
    assert!(holder.wait().unwrap().success());
    ws.run(&["gc"]);
    assert!(!isolated[0].exists(), "collected once its run is over");
}
