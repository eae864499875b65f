//! One store shared by several workspaces and processes at once: no run waits for another's,
//! a key is computed once (claims), a dead claim holder is taken over, gc keeps what live runs
//! use, the stat cache heals, a stage cannot change a stored input, a read-only store can be
//! inspected.

use std::path::Path;

use crate::common::{Workspace, in_mount_namespace, stages_with, stderr, wait_for};

/// `orchestrate --store STORE ARGS…` in `ws`.
fn on(ws: &Workspace, store: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--store", store.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.run(&all)
}

fn spawn_on(ws: &Workspace, store: &Path, args: &[&str]) -> std::process::Child {
    let mut all = vec!["--store", store.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.spawn(&all)
}

fn manifest(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("manifest JSON")
}

/// A stage that says it started, then waits until `release` exists.
fn held_stage(name: &str, marker: &Path, release: &Path) -> String {
    format!(
        "  {name}:\n    kind: command\n    cmd: \"touch {m}; while [ ! -e {r} ]; do sleep 0.05; done; echo {name} > {{outs.o}}\"\n    outs: {{o: o.txt}}\n",
        m = marker.display(),
        r = release.display()
    )
}

#[test]
fn a_run_beside_a_long_run_on_the_same_store_does_not_wait_for_it() {
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("store");
    let (started, release) = (shared.path().join("started"), shared.path().join("release"));
    let a = Workspace::new();
    a.write(
        "experiments/long.yaml",
        &format!(
            "experiment: long\nstages:\n{}",
            held_stage("hold", &started, &release)
        ),
    );
    let mut long = spawn_on(&a, &store, &["run", "experiments/long.yaml"]);
    wait_for(&started, "the long stage to start");
    let b = Workspace::new();
    b.write(
        "experiments/short.yaml",
        "experiment: short\nstages:\n  one:\n    kind: command\n    cmd: \"echo one > {outs.o}\"\n    outs: {o: o.txt}\n",
    );
    let out = on(&b, &store, &["run", "experiments/short.yaml", "--json"]);
    assert_eq!(stages_with(&manifest(&out), "ran"), ["one"]);
    assert!(
        long.try_wait().unwrap().is_none(),
        "the short run finished while the long one still holds its stage"
    );
    // Readers answer during the run and say who is using the store.
    let status = on(&b, &store, &["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.contains("In use") && text.contains("run experiments/long.yaml"),
        "{text}"
    );
    let plan = on(&a, &store, &["plan", "experiments/long.yaml"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    std::fs::write(&release, "").unwrap();
    assert!(long.wait().unwrap().success());
}

#[test]
fn two_workspaces_running_at_once_compute_each_shared_stage_once() {
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("store");
    let log = shared.path().join("executions.log");
    let stage = |name: &str| {
        format!(
            "  {name}:\n    kind: command\n    cmd: \"echo {name} >> {log}; sleep 0.2; echo {name} > {{outs.o}}\"\n    outs: {{o: o.txt}}\n",
            log = log.display()
        )
    };
    let (a, b) = (Workspace::new(), Workspace::new());
    let mut ya = String::from("experiment: a\nstages:\n");
    let mut yb = String::from("experiment: b\nstages:\n");
    for i in 0..4 {
        ya.push_str(&stage(&format!("shared{i}")));
        yb.push_str(&stage(&format!("shared{i}")));
        ya.push_str(&stage(&format!("only_a{i}")));
        yb.push_str(&stage(&format!("only_b{i}")));
    }
    a.write("experiments/x.yaml", &ya);
    b.write("experiments/x.yaml", &yb);
    let pa = spawn_on(
        &a,
        &store,
        &["run", "experiments/x.yaml", "-j", "2", "--json"],
    );
    let pb = spawn_on(
        &b,
        &store,
        &["run", "experiments/x.yaml", "-j", "2", "--json"],
    );
    let (oa, ob) = (
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    );
    let (ma, mb) = (manifest(&oa), manifest(&ob));
    let mut lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    let mut distinct = lines.clone();
    distinct.dedup();
    assert_eq!(lines, distinct, "a stage was computed twice: {lines:?}");
    assert_eq!(lines.len(), 12, "{lines:?}");
    for i in 0..4 {
        let name = format!("shared{i}");
        let ran_a = stages_with(&ma, "ran").contains(&name);
        let ran_b = stages_with(&mb, "ran").contains(&name);
        assert!(ran_a ^ ran_b, "{name}: computed by exactly one run");
    }
    let waited = format!("{}{}", stderr(&oa), stderr(&ob));
    assert!(
        waited.contains("Waiting") && waited.contains("computed by"),
        "{waited}"
    );
}

#[test]
fn a_stage_whose_key_repeats_across_sweep_variants_is_computed_once() {
    let ws = Workspace::new();
    ws.write(
        "experiments/s.yaml",
        "experiment: s\nstages:\n  gen:\n    kind: command\n    cmd: \"echo same > {outs.u}; echo {params.n} > {outs.l}\"\n    outs: {u: u.txt, l: l.txt}\n    params: {n: 1}\n  pre:\n    kind: command\n    cmd: \"echo pre >> {workspace}/pre.log; cat {deps.u} > {outs.o}\"\n    deps: {u: \"stage:gen/u\"}\n    outs: {o: o.txt}\nsweep:\n  gen.params.n: [1, 2, 3]\n",
    );
    let plan =
        String::from_utf8_lossy(&ws.run(&["plan", "experiments/s.yaml"]).stdout).into_owned();
    assert!(
        plan.contains("6 to run (3 of them only if an upstream output changes"),
        "{plan}"
    );
    let out = ws.run(&["run", "experiments/s.yaml", "--json"]);
    let m = manifest(&out);
    assert_eq!(ws.read("pre.log"), "pre\n", "{}", stderr(&out));
    // With `gen` fresh, the plan knows the three `pre` variants share one key.
    ws.write(
        "experiments/s.yaml",
        &ws.read("experiments/s.yaml")
            .replace("echo pre >>", "echo pre2 >>"),
    );
    let plan =
        String::from_utf8_lossy(&ws.run(&["plan", "experiments/s.yaml"]).stdout).into_owned();
    assert!(
        plan.contains("3 to run (2 share a key with another and are computed once)"),
        "{plan}"
    );
    assert_eq!(
        stages_with(&m, "ran")
            .iter()
            .filter(|s| s.starts_with("pre"))
            .count(),
        1
    );
    assert_eq!(
        stages_with(&m, "fresh")
            .iter()
            .filter(|s| s.starts_with("pre"))
            .count(),
        2
    );
}

#[test]
fn a_killed_claim_holder_in_another_pid_and_uts_namespace_is_taken_over() {
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("store");
    let (started, release) = (shared.path().join("started"), shared.path().join("release"));
    let yaml = format!(
        "experiment: k\nstages:\n{}",
        held_stage("hold", &started, &release)
    );
    let (a, b) = (Workspace::new(), Workspace::new());
    a.write("experiments/k.yaml", &yaml);
    b.write("experiments/k.yaml", &yaml);
    let orch = assert_cmd::cargo::cargo_bin!("orchestrate");
    let script = format!(
        "hostname other-node && exec {} --store {} run experiments/k.yaml",
        orch.display(),
        store.display()
    );
    let mut unshare = std::process::Command::new("unshare");
    if unsafe { libc::geteuid() } != 0 {
        unshare.arg("--map-root-user");
    }
    let holder = unshare
        .args(["--pid", "--uts", "--fork", "sh", "-c", &script])
        .current_dir(a.path())
        .env("NO_COLOR", "1")
        .env_remove("ORCHESTRATE_STORE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut holder) = holder else {
        eprintln!("skipping a_killed_claim_holder…: `unshare` cannot be run here");
        return;
    };
    let t0 = std::time::Instant::now();
    while !started.exists() {
        if holder.try_wait().unwrap().is_some() || t0.elapsed().as_secs() > 30 {
            eprintln!("skipping a_killed_claim_holder…: cannot create pid and UTS namespaces here");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The dispatcher is the namespace's first process: the child of `unshare`.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", holder.id())).unwrap();
    let dispatcher: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    let mut waiter = spawn_on(&b, &store, &["run", "experiments/k.yaml", "--json"]);
    // The waiter sees the claim and waits, naming the other "node".
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "the second run waits for the claim"
    );
    unsafe { libc::kill(dispatcher, libc::SIGKILL) };
    let _ = holder.wait();
    std::fs::write(&release, "").unwrap();
    let out = waiter.wait_with_output().unwrap();
    let m = manifest(&out);
    assert!(
        stderr(&out).contains("computed by") && stderr(&out).contains("@other-node"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stages_with(&m, "ran"), ["hold"], "taken over and computed");
    let obj = m["stages"][0]["object"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(
            store
                .join("objects")
                .join(&obj[..2])
                .join(&obj)
                .join("o.txt")
        )
        .unwrap(),
        "hold\n"
    );
    // Nothing of the dead holder is left that a later run trips on: one record, no claim.
    let status: serde_json::Value =
        serde_json::from_slice(&on(&b, &store, &["status", "--json"]).stdout).unwrap();
    assert_eq!(status["figures"]["records"], 1);
    assert_eq!(std::fs::read_dir(store.join("claims")).unwrap().count(), 0);
    let again = manifest(&on(&a, &store, &["run", "experiments/k.yaml", "--json"]));
    assert_eq!(stages_with(&again, "fresh"), ["hold"]);
}

#[test]
fn gc_beside_a_live_run_keeps_the_objects_it_uses() {
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("store");
    let (started, release) = (shared.path().join("started"), shared.path().join("release"));
    let a = Workspace::new();
    a.write(
        "experiments/g.yaml",
        &format!(
            "experiment: g\nstages:\n  base:\n    kind: command\n    cmd: \"echo base > {{outs.o}}\"\n    outs: {{o: o.txt}}\n{}",
            held_stage("hold", &started, &release).replace(
                "    outs: {o: o.txt}\n",
                "    deps: {b: \"stage:base/o\"}\n    outs: {o: o.txt}\n"
            )
        ),
    );
    std::fs::write(&release, "").unwrap();
    let first = manifest(&on(&a, &store, &["run", "experiments/g.yaml", "--json"]));
    let base = first["stages"][0]["object"].as_str().unwrap().to_string();
    // The run folder goes: `base` is referenced by no root now, only by the live run below.
    std::fs::remove_dir_all(a.join("runs/g")).unwrap();
    std::fs::remove_file(&release).unwrap();
    std::fs::remove_file(&started).unwrap();
    let mut live = spawn_on(
        &a,
        &store,
        &["run", "experiments/g.yaml", "--force", "hold"],
    );
    wait_for(&started, "the forced stage to start");
    let b = Workspace::new();
    let out = on(&b, &store, &["gc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("in use by 1 running process"), "{text}");
    assert!(
        store.join("objects").join(&base[..2]).join(&base).is_dir(),
        "gc kept the object a live run uses: {text}"
    );
    std::fs::write(&release, "").unwrap();
    assert!(live.wait().unwrap().success());
    // Once that run has recorded its root, gc from elsewhere keeps it too.
    on(&b, &store, &["gc"]);
    assert!(store.join("objects").join(&base[..2]).join(&base).is_dir());
}

#[test]
fn a_deleted_truncated_or_garbled_index_is_rebuilt_and_nothing_is_recomputed() {
    let ws = Workspace::new();
    ws.write(
        "experiments/i.yaml",
        "experiment: i\nstages:\n  a:\n    kind: command\n    cmd: \"echo a > {outs.o}\"\n    outs: {o: o.txt}\n  b:\n    kind: command\n    cmd: \"cat {deps.a} > {outs.o}\"\n    deps: {a: \"stage:a/o\"}\n    outs: {o: o.txt}\n",
    );
    ws.run_ok("experiments/i.yaml");
    let index = ws.join("runs/.store/index");
    let damage: [(&str, &dyn Fn()); 4] = [
        ("deleted", &|| std::fs::remove_dir_all(&index).unwrap()),
        ("truncated", &|| {
            for f in std::fs::read_dir(&index).unwrap().flatten() {
                if f.path().is_file() {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(f.path())
                        .unwrap()
                        .set_len(7)
                        .unwrap();
                }
            }
        }),
        ("garbage", &|| {
            for f in std::fs::read_dir(&index).unwrap().flatten() {
                if f.path().is_file() {
                    std::fs::write(f.path(), vec![0xA5u8; 4096]).unwrap();
                }
            }
        }),
        ("a plain file", &|| {
            std::fs::remove_dir_all(&index).unwrap();
            std::fs::write(&index, "not a database").unwrap();
        }),
    ];
    for (what, f) in damage {
        f();
        // Without the stat snapshot, the run must read the damaged index itself.
        let _ = std::fs::remove_dir_all(ws.join("runs/.store/stat-snapshots"));
        let status = ws.run(&["status"]);
        assert!(status.status.success(), "{what}: {}", stderr(&status));
        let m = ws.run_ok("experiments/i.yaml");
        assert_eq!(
            stages_with(&m, "fresh"),
            ["a", "b"],
            "{what}: nothing recomputed"
        );
    }
    ws.write("runs/.store/FORMAT", "");
    let m = ws.run_ok("experiments/i.yaml");
    assert_eq!(
        stages_with(&m, "fresh"),
        ["a", "b"],
        "an empty FORMAT: nothing recomputed"
    );
}

#[test]
fn a_stage_that_modifies_a_stored_input_fails_and_the_input_is_recomputed() {
    let ws = Workspace::new();
    ws.write(
        "experiments/m.yaml",
        "experiment: m\nstages:\n  up:\n    kind: command\n    cmd: \"echo x > {outs.o}\"\n    outs: {o: o.txt}\n  down:\n    kind: command\n    cmd: \"sed -i s/x/y/ {deps.i} && cat {deps.i} > {outs.o}\"\n    deps: {i: \"stage:up/o\"}\n    outs: {o: o.txt}\n",
    );
    let out = ws.run(&["run", "experiments/m.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let up = m["stages"][0]["object"].as_str().unwrap().to_string();
    let err = stderr(&out);
    if unsafe { libc::geteuid() } == 0 {
        // Root writes through read-only modes: the dispatcher catches the change.
        assert!(
            err.contains("stage `down` modified its input `i` (stage:up/o)"),
            "{err}"
        );
        let out = ws.run(&["run", "experiments/m.yaml", "--json"]);
        let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            stages_with(&again, "ran")[0],
            "up",
            "the damaged input is recomputed"
        );
        assert_eq!(
            again["stages"][0]["object"],
            up.as_str(),
            "to the same bytes"
        );
    } else {
        // Anyone else cannot write into a stored object at all.
        assert!(err.contains("Permission denied"), "{err}");
    }
    let obj = ws.join(&format!("runs/.store/objects/{}/{up}", &up[..2]));
    assert!(!obj.is_dir() || std::fs::read_to_string(obj.join("o.txt")).unwrap() == "x\n");
}

#[test]
fn a_read_only_store_can_be_inspected_and_run_says_why_it_cannot_write() {
    let ws = Workspace::new();
    ws.write(
        "experiments/r.yaml",
        "experiment: r\nstages:\n  a:\n    kind: command\n    cmd: \"echo a > {outs.o}\"\n    outs: {o: o.txt}\n  b:\n    kind: command\n    cmd: \"echo b > {outs.o}\"\n    outs: {o: o.txt}\n",
    );
    ws.run_ok("experiments/r.yaml");
    ws.write(
        "experiments/r.yaml",
        &ws.read("experiments/r.yaml").replace("echo b", "echo B"),
    );
    let orch = assert_cmd::cargo::cargo_bin!("orchestrate");
    let script = format!(
        "mount --bind runs/.store runs/.store && mount -o remount,bind,ro runs/.store || exit 97; \
         {o} status > status.out 2>&1; echo $? > status.rc; \
         {o} plan experiments/r.yaml > plan.out 2>&1; echo $? > plan.rc; \
         {o} run experiments/r.yaml > run.out 2>&1; echo $? > run.rc",
        o = orch.display()
    );
    if !in_mount_namespace(&ws, &script).is_some_and(|_| ws.join("run.rc").exists()) {
        eprintln!(
            "skipping a_read_only_store…: cannot bind-mount read-only in a private mount \
             namespace here"
        );
        return;
    }
    let rc = |f: &str| ws.read(f).trim().to_string();
    assert_eq!(rc("status.rc"), "0", "{}", ws.read("status.out"));
    assert!(
        ws.read("status.out").contains("1 objects") || ws.read("status.out").contains("2 objects")
    );
    assert_eq!(rc("plan.rc"), "0", "{}", ws.read("plan.out"));
    assert!(
        ws.read("plan.out").contains("1 fresh, 1 to run"),
        "{}",
        ws.read("plan.out")
    );
    assert_ne!(rc("run.rc"), "0");
    assert!(
        ws.read("run.out").contains("is read-only"),
        "{}",
        ws.read("run.out")
    );
}

#[test]
fn gc_prune_before_forgets_other_workspaces_older_roots_only() {
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().join("store");
    let yaml = |tag: &str| {
        format!(
            "experiment: p\nstages:\n  a:\n    kind: command\n    cmd: \"echo {tag} > {{outs.o}}\"\n    outs: {{o: o.txt}}\n"
        )
    };
    let (a, b) = (Workspace::new(), Workspace::new());
    a.write("experiments/p.yaml", &yaml("a"));
    b.write("experiments/p.yaml", &yaml("b"));
    let ma = manifest(&on(&a, &store, &["run", "experiments/p.yaml", "--json"]));
    let mb = manifest(&on(&b, &store, &["run", "experiments/p.yaml", "--json"]));
    let obj = |m: &serde_json::Value| m["stages"][0]["object"].as_str().unwrap().to_string();
    let exists = |d: &str| store.join("objects").join(&d[..2]).join(d).is_dir();
    // A date before both runs forgets nothing; a bad date is refused.
    let out = on(&b, &store, &["gc", "--prune-before", "2000-01-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(exists(&obj(&ma)) && exists(&obj(&mb)));
    let out = on(&b, &store, &["gc", "--prune-before", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is no date"), "{}", stderr(&out));
    // A date after both: gc from B forgets A's root (A's object goes), keeps B's own run.
    let out = on(&b, &store, &["gc", "--prune-before", "2999-01-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("recorded before 2999-01-01T00:00:00Z"),
        "{text}"
    );
    assert!(!exists(&obj(&ma)), "{text}");
    assert!(exists(&obj(&mb)), "{text}");
}

#[test]
fn a_claim_whose_lease_ran_out_is_taken_over_though_its_lock_is_still_held() {
    // A node that vanished while the shared filesystem still holds its lock: stood in for by
    // `flock` holding the claim file, whose time is a few minutes old (no heartbeat).
    let ws = Workspace::new();
    ws.write(
        "experiments/l.yaml",
        "experiment: l\nstages:\n  a:\n    kind: command\n    cmd: \"echo a > {outs.o}\"\n    outs: {o: o.txt}\n",
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&ws.run(&["plan", "experiments/l.yaml", "--json"]).stdout).unwrap();
    let key = plan["stages"][0]["key"].as_str().unwrap().to_string();
    let claims = ws.join("runs/.store/claims");
    std::fs::create_dir_all(&claims).unwrap();
    let claim = claims.join(format!("{key}.lock"));
    std::fs::write(&claim, r#"{"owner":{"user":"ana","host":"lost-node","pid":7,"since":"2026-01-01T00:00:00Z"},"stage":"a"}"#).unwrap();
    let Ok(mut holder) = std::process::Command::new("flock")
        .arg(&claim)
        .args(["sleep", "30"])
        .spawn()
    else {
        eprintln!("skipping a_claim_whose_lease_ran_out…: no `flock` command here");
        return;
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    // While the lease is fresh, --no-wait names the holder and exits 4.
    let out = ws.run(&["run", "experiments/l.yaml", "--no-wait"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ana@lost-node (pid 7)"),
        "{}",
        stderr(&out)
    );
    // Five minutes without a heartbeat: the lease (60 s) is over.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(300);
    std::fs::File::options()
        .write(true)
        .open(&claim)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let m = manifest(&ws.run(&["run", "experiments/l.yaml", "--json"]));
    assert_eq!(stages_with(&m, "ran"), ["a"]);
    let _ = holder.kill();
    let _ = holder.wait();
}
