//! Input from strangers: bundles, locks, run folders, tables and sweeps built by an attacker or a
//! tired user. Each is refused with a precise message and a documented exit code, writes
//! nothing, runs nothing the reviewer did not choose, and stays within bounded memory.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{Workspace, read_tar_gz, stderr, write_tar_gz};

const EXPERIMENT: &str = r#"
experiment: rules
seed: 7
stages:
  prep:
    kind: command
    cmd: "awk -F, 'NR == 1 || $2 >= {params.threshold}' {deps.raw} > {outs.table}"
    deps: {raw: data/raw.csv}
    outs: {table: table.csv}
    params: {threshold: 0.5}
  count:
    kind: command
    cmd: "wc -l < {deps.table} > {outs.n}"
    deps: {table: "stage:prep/table"}
    outs: {n: n.txt}
"#;

/// A workspace with `experiments/rules.yaml` run and locked.
fn locked() -> Workspace {
    let ws = Workspace::new();
    ws.write("experiments/rules.yaml", EXPERIMENT)
        .write("experiments/quickstart.yaml", "experiment: mine\n")
        .write("data/raw.csv", "id,score\na,0.9\nb,0.2\nc,0.7\n");
    let out = ws.run(&["lock", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    ws
}

/// Every file under the workspace (relative path → bytes), to prove nothing was written.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if meta.is_dir() {
                pending.push(p);
            } else if meta.is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The members of an honest bundle of the workspace's latest `rules` run.
fn honest_members(ws: &Workspace) -> BTreeMap<String, Vec<u8>> {
    let out = ws.run(&["bundle", "rules", "-o", "honest.tar.gz"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let members = read_tar_gz(&ws.join("honest.tar.gz"));
    std::fs::remove_file(ws.join("honest.tar.gz")).unwrap();
    members
}

/// Rebuilds a bundle from members, re-indexing them with their digests after `edit_index`
/// changes the index JSON (as an attacker can: the digests protect nothing against the author).
fn forged(
    ws: &Workspace,
    name: &str,
    mut members: BTreeMap<String, Vec<u8>>,
    edit_index: impl FnOnce(&mut serde_json::Value),
) {
    let mut index: serde_json::Value = serde_json::from_slice(&members["bundle.json"]).unwrap();
    let files: BTreeMap<String, String> = members
        .iter()
        .filter(|(n, _)| *n != "bundle.json")
        .map(|(n, b)| (n.clone(), orchestrate::fingerprint::hash_bytes(b)))
        .collect();
    index["files"] = serde_json::to_value(files).unwrap();
    edit_index(&mut index);
    members.insert(
        "bundle.json".to_string(),
        serde_json::to_vec_pretty(&index).unwrap(),
    );
    let list: Vec<(&str, Vec<u8>)> =
        std::iter::once(("bundle.json", members["bundle.json"].clone()))
            .chain(
                members
                    .iter()
                    .filter(|(n, _)| *n != "bundle.json")
                    .map(|(n, b)| (n.as_str(), b.clone())),
            )
            .collect();
    write_tar_gz(&ws.join(name), &list);
}

/// Runs `args` and asserts exit 2, that the workspace is byte-for-byte unchanged and that no
/// isolated store appeared; returns stderr.
fn refused_writing_nothing(ws: &Workspace, args: &[&str]) -> String {
    let before = snapshot(ws.path());
    let out = ws.run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(
        snapshot(ws.path()),
        before,
        "{args:?} wrote something: {err}"
    );
    err
}

#[test]
fn a_bundle_naming_paths_instead_of_names_is_refused_and_writes_nothing() {
    let ws = locked();
    let members = honest_members(&ws);
    let mut changed = members.clone();
    changed.insert(
        "experiment.yaml".to_string(),
        b"experiment: pwned\nstages: {}\n".to_vec(),
    );
    let cases: [(&str, &str, serde_json::Value, &str); 5] = [
        (
            "experiment",
            "up.tar.gz",
            "../../experiments/quickstart".into(),
            "`experiment` is `../../experiments/quickstart`, not an experiment name",
        ),
        (
            "run_id",
            "abs.tar.gz",
            "/tmp/owned".into(),
            "`run_id` is `/tmp/owned`, not a run id",
        ),
        ("run_id", "dots.tar.gz", "../../../x".into(), "not a run id"),
        (
            "file",
            "file.tar.gz",
            "/etc/passwd".into(),
            "`file` is `/etc/passwd`, not a workspace-relative path",
        ),
        (
            "file",
            "up-file.tar.gz",
            "../outside.yaml".into(),
            "not a workspace-relative path",
        ),
    ];
    for (field, name, value, want) in cases {
        forged(&ws, name, changed.clone(), |i| i[field] = value);
        for extra in [
            &[][..],
            &["--require-clean"][..],
            &["--bundle-experiment"][..],
        ] {
            let mut args = vec!["reproduce", name];
            args.extend_from_slice(extra);
            let err = refused_writing_nothing(&ws, &args);
            assert!(err.contains(want), "{field}: want `{want}` in {err}");
        }
    }
    assert_eq!(ws.read("experiments/quickstart.yaml"), "experiment: mine\n");
}

#[test]
fn malformed_archives_are_refused_before_anything_is_read_into_memory() {
    let ws = locked();
    let members = honest_members(&ws);
    let index = members["bundle.json"].clone();
    // An unlisted member, a member before the index, an unknown name, a listed-but-missing file.
    write_tar_gz(
        &ws.join("extra.tar.gz"),
        &[
            ("bundle.json", index.clone()),
            ("payload.bin", vec![0; 1024]),
        ],
    );
    let err = refused_writing_nothing(&ws, &["reproduce", "extra.tar.gz"]);
    assert!(err.contains("unexpected entry `payload.bin`"), "{err}");
    write_tar_gz(
        &ws.join("late.tar.gz"),
        &[
            ("experiment.yaml", members["experiment.yaml"].clone()),
            ("bundle.json", index.clone()),
        ],
    );
    let err = refused_writing_nothing(&ws, &["reproduce", "late.tar.gz"]);
    assert!(
        err.contains("the first entry is `experiment.yaml`, not `bundle.json`"),
        "{err}"
    );
    write_tar_gz(&ws.join("short.tar.gz"), &[("bundle.json", index.clone())]);
    let err = refused_writing_nothing(&ws, &["reproduce", "short.tar.gz"]);
    assert!(err.contains("is listed but missing"), "{err}");
    // A listed member far larger than any real one (65 MiB of zeros, 65 KB compressed) is
    // refused from its header, before it is read.
    let mut big = members.clone();
    big.insert("report.html".to_string(), vec![0; 65 << 20]);
    forged(&ws, "big.tar.gz", big, |_| {});
    let err = refused_writing_nothing(&ws, &["reproduce", "big.tar.gz"]);
    assert!(
        err.contains("`report.html` is 68157440 bytes (a bundle member may have at most 64 MiB)"),
        "{err}"
    );
    // Edited bytes no longer match the index.
    let mut list: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    list.sort_by_key(|(n, _)| *n != "bundle.json");
    for (n, b) in &mut list {
        if *n == "results.json" || *n == "manifest.json" {
            b.extend_from_slice(b" ");
        }
    }
    write_tar_gz(&ws.join("edited.tar.gz"), &list);
    let err = refused_writing_nothing(&ws, &["reproduce", "edited.tar.gz"]);
    assert!(err.contains("does not match its digest"), "{err}");
}

#[test]
fn a_bundle_never_runs_its_own_commands_unless_asked_and_then_lists_them() {
    let ws = locked();
    let mut members = honest_members(&ws);
    let evil = EXPERIMENT.replace(
        "wc -l < {deps.table} > {outs.n}",
        "touch pwned && wc -l < {deps.table} > {outs.n}",
    );
    members.insert("experiment.yaml".to_string(), evil.into_bytes());
    forged(&ws, "evil.tar.gz", members, |_| {});
    // By default the workspace's own experiment is recomputed, and the difference shown.
    let out = ws.run(&["reproduce", "evil.tar.gz"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !ws.join("pwned").exists(),
        "the bundle's command ran: {err}"
    );
    assert!(err.contains("recomputing the workspace's"), "{err}");
    assert!(err.contains("+     cmd: \"touch pwned && wc -l"), "{err}");
    assert!(err.contains("-     cmd: \"wc -l"), "{err}");
    // Nothing outside the isolated store and the new run folder: the bundle's copy is not
    // written when it is not used.
    assert!(
        !ws.join("runs/.reproduce")
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().path().extension().is_some_and(|x| x == "yaml") })
    );
    // --require-clean cannot be combined with running the bundle's code.
    let err = refused_writing_nothing(
        &ws,
        &[
            "reproduce",
            "evil.tar.gz",
            "--bundle-experiment",
            "--require-clean",
        ],
    );
    assert!(
        err.contains("cannot be combined with --bundle-experiment"),
        "{err}"
    );
    // Asked explicitly: every command is listed before anything runs, and the copy lives in
    // the isolated folder only.
    let out = ws.run(&["reproduce", "evil.tar.gz", "--bundle-experiment"]);
    let err = stderr(&out);
    let listed = err.find("Command count: touch pwned").expect(&err);
    let started = err.find("Reproduce").expect(&err);
    assert!(listed < started, "listed after the start: {err}");
    assert!(err.contains("runs 2 shell command(s)"), "{err}");
    assert!(ws.join("pwned").exists());
    // The workspace's `count` is different from the bundle's edited one: exit 5, not 0.
    assert_eq!(out.status.code(), Some(5), "{err}");
}

#[test]
fn the_reviewer_decides_the_tolerance_policy() {
    let ws = locked();
    let lock: serde_json::Value = serde_json::from_str(&ws.read("experiments/rules.lock")).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut l = lock.clone();
        f(&mut l);
        ws.write(
            "experiments/rules.lock",
            &serde_json::to_string_pretty(&l).unwrap(),
        );
    };
    // Absurd, negative or huge tolerances are no policy at all: refused at any flag.
    for (value, want) in [
        (
            serde_json::json!({"auc": 0.5}),
            "an AUC tolerance above 0.05",
        ),
        (
            serde_json::json!({"auc": -1.0}),
            "a tolerance is a finite number ≥ 0",
        ),
        (
            serde_json::json!({"auc/jepa": 1e308}),
            "an AUC tolerance above 0.05",
        ),
    ] {
        with(&|l| l["tolerance"]["metrics"] = value.clone());
        let err = refused_writing_nothing(
            &ws,
            &[
                "reproduce",
                "experiments/rules.yaml",
                "--accept-lock-policy",
            ],
        );
        assert!(err.contains(want), "{value}: {err}");
    }
    // Looser than the defaults: refused unless the reviewer accepts it.
    with(&|l| {
        l["tolerance"]["same_platform"] = "tolerance".into();
        l["tolerance"]["metrics"] = serde_json::json!({"auc": 0.01, "final_loss": 1e308});
    });
    let err = refused_writing_nothing(&ws, &["reproduce", "experiments/rules.yaml"]);
    assert!(
        err.contains("looser than the defaults: `same_platform: tolerance`"),
        "{err}"
    );
    assert!(err.contains("`auc` ±0.01 (the default: ±0.005)"), "{err}");
    assert!(
        err.contains("`final_loss` ±1e308 (the default: ±0.001)"),
        "{err}"
    );
    let out = ws.run(&[
        "reproduce",
        "experiments/rules.yaml",
        "--accept-lock-policy",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accepted with --accept-lock-policy"),
        "{stdout}"
    );
    // The default policy is stated with its source.
    with(&|_| {});
    let out = ws.run(&["reproduce", "experiments/rules.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Policy: every item identical on the lock's platform and CPU kernels; elsewhere auc ±0.005, baseline_loss ±0.001, best_val_auc ±0.005, best_val_loss ±0.001, final_loss ±0.001, target_std_last ±0.001, target_std_min ±0.001, other metrics identical (the policy of lock `experiments/rules.lock`, no looser than the defaults)."),
        "{stdout}"
    );
}

#[test]
fn a_lock_of_another_experiment_or_a_folder_is_refused_before_any_work() {
    let ws = locked();
    let mut other: serde_json::Value =
        serde_json::from_str(&ws.read("experiments/rules.lock")).unwrap();
    other["experiment"] = "other".into();
    ws.write("other.lock", &serde_json::to_string_pretty(&other).unwrap());
    let err = refused_writing_nothing(
        &ws,
        &[
            "reproduce",
            "experiments/rules.yaml",
            "--lock",
            "other.lock",
        ],
    );
    assert!(
        err.contains("lock `other.lock` is of experiment `other`, not `rules`"),
        "{err}"
    );
    let err = refused_writing_nothing(
        &ws,
        &[
            "reproduce",
            "experiments/rules.yaml",
            "--lock",
            "experiments",
        ],
    );
    assert!(err.contains("--lock `experiments` is a folder"), "{err}");
}

#[test]
fn a_run_manifest_pointing_outside_the_workspace_is_not_opened() {
    let ws = locked();
    let run = std::fs::read_link(ws.join("runs/rules/latest")).unwrap();
    let manifest = ws.join("runs/rules").join(&run).join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["file"] = "/etc/passwd".into();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let target = format!("rules/{}", run.display());
    let err = refused_writing_nothing(&ws, &["reproduce", &target]);
    assert!(
        err.contains("`file` is `/etc/passwd`, not a workspace-relative path"),
        "{err}"
    );
    assert!(!err.contains("root:"), "{err}");
}

#[test]
fn a_sweep_too_large_to_plan_is_refused_with_its_size_before_allocating() {
    let ws = Workspace::new();
    let mut yaml = String::from(
        "experiment: grid\nstages:\n  s:\n    kind: command\n    cmd: \"touch {outs.o} # {params.p0}\"\n    outs: {o: o.txt}\n    params:\n",
    );
    for a in 0..10 {
        yaml.push_str(&format!("      p{a}: 0\n"));
    }
    yaml.push_str("sweep:\n");
    for a in 0..10 {
        yaml.push_str(&format!(
            "  s.params.p{a}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
        ));
    }
    ws.write("grid.yaml", &yaml);
    let start = std::time::Instant::now();
    let err = refused_writing_nothing(&ws, &["plan", "grid.yaml"]);
    assert!(
        err.contains("the sweep expands stage `s` into 10000000000 variants (p0 (10) × p1 (10)"),
        "{err}"
    );
    assert!(err.contains("at most 100000"), "{err}");
    // Refused from the product, not after trying: well under the seconds an allocation takes.
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn deps_with_links_inside_or_on_the_store_are_refused_at_validation() {
    let ws = Workspace::new();
    ws.write("data/dir/a.csv", "x\n1\n");
    std::os::unix::fs::symlink("a.csv", ws.join("data/dir/link.csv")).unwrap();
    ws.write(
        "exp.yaml",
        "experiment: links\nstages:\n  s:\n    kind: command\n    cmd: \"ls {deps.d} > {outs.o}\"\n    deps: {d: data/dir}\n    outs: {o: o.txt}\n",
    );
    let err = refused_writing_nothing(&ws, &["run", "exp.yaml"]);
    assert!(err.contains("exp.yaml:6"), "file and line: {err}");
    assert!(
        err.contains("`link.csv` inside it is a symbolic link"),
        "{err}"
    );
    std::fs::create_dir_all(ws.join("runs")).unwrap();
    ws.write(
        "exp.yaml",
        "experiment: store\nstages:\n  s:\n    kind: command\n    cmd: \"ls {deps.d} > {outs.o}\"\n    deps: {d: runs}\n    outs: {o: o.txt}\n",
    );
    let err = refused_writing_nothing(&ws, &["run", "exp.yaml"]);
    assert!(err.contains("dep `runs` is inside `runs/`"), "{err}");
}

#[test]
fn stats_refuses_endless_or_huge_input_with_short_messages_printed_once() {
    let ws = Workspace::new();
    // /dev/zero never ends: refused after one capped record.
    let out = ws.run(&["stats", "/dev/zero", "--label", "y", "--score", "s"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 1: the record is longer than 1 MiB"),
        "{err}"
    );
    // A 500 KB score: the message shows its first 80 characters and its length.
    let huge = "9".repeat(500_000);
    ws.write("big.csv", &format!("y,s\n1,0.5\n0,{huge}x\n1,0.7\n0,0.1\n"));
    let out = ws.run(&["stats", "big.csv", "--label", "y", "--score", "s"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.len() < 400, "{} bytes of error", err.len());
    assert!(
        err.contains("… (500001 bytes)` is not a finite number"),
        "{err}"
    );
    // A missing file: the cause once, not again as `caused by`.
    let out = ws.run(&["stats", "nope.csv", "--label", "y", "--score", "s"]);
    let err = stderr(&out);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let ws = locked();
    for cmd in ["status", "show prep", "ls", "--help"] {
        let out = std::process::Command::new("sh")
            .current_dir(ws.path())
            .arg("-c")
            .arg(format!(
                "'{}' {cmd} | head -c1 >/dev/null; echo \"exit=${{PIPESTATUS:-$?}}\"",
                assert_cmd::cargo::cargo_bin!("orchestrate").display()
            ))
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{cmd}: {err}");
    }
    // The exit status itself, without a shell in between.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orchestrate"))
        .current_dir(ws.path())
        .args(["ls"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}
