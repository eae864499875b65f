//! Faults: killed workers, corrupt objects, concurrent runs, Ctrl-C, failures and retries.

use std::time::{Duration, Instant};

use crate::common::{Workspace, in_mount_namespace, stages_with, stderr, wait_for};

fn records(ws: &Workspace) -> u64 {
    let out = ws.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    v["figures"]["records"].as_u64().expect("records")
}

fn pid_alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

const SLOW: &str = r#"
experiment: faults
stages:
  prep:
    kind: command
    cmd: "cp {deps.raw} {outs.table}"
    deps: {raw: data/raw.csv}
    outs: {table: table.csv}
  slow:
    kind: command
    # The first attempt records its worker's pid and its own, then hangs; later attempts finish.
    cmd: >-
      if [ ! -f {workspace}/first-attempt ]; then
        touch {workspace}/first-attempt; echo "$PPID $$" > {workspace}/pids.tmp;
        mv {workspace}/pids.tmp {workspace}/pids; sleep 30;
      fi; sort {deps.table} > {outs.sorted}
    deps: {table: "stage:prep/table"}
    outs: {sorted: sorted.csv}
"#;

fn slow_workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("experiments/faults.yaml", SLOW)
        .write("data/raw.csv", "b\na\nc\n");
    ws
}

fn pids(ws: &Workspace) -> (i32, i32) {
    let text = ws.read("pids");
    let mut it = text.split_whitespace().map(|p| p.parse::<i32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn killed_worker_fails_the_stage_and_the_next_run_completes() {
    let ws = slow_workspace();
    let running = ws.spawn(&["run", "experiments/faults.yaml"]);
    wait_for(&ws.join("pids"), "the stage to start");
    let (worker, _) = pids(&ws);
    unsafe { libc::kill(worker, libc::SIGKILL) };
    let out = running.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("killed by signal 9"),
        "{}",
        stderr(&out)
    );
    // prep committed, slow did not: exactly one record.
    assert_eq!(records(&ws), 1);
    let m = ws.run_ok("experiments/faults.yaml");
    assert_eq!(stages_with(&m, "fresh"), ["prep"]);
    assert_eq!(stages_with(&m, "ran"), ["slow"]);
    let obj = m["stages"][1]["object"].as_str().unwrap();
    let sorted = ws.read(&format!(
        "runs/.store/objects/{}/{obj}/sorted.csv",
        &obj[..2]
    ));
    assert_eq!(sorted, "a\nb\nc\n");
    assert_eq!(records(&ws), 2);
    // No scratch folder is left behind.
    assert_eq!(
        std::fs::read_dir(ws.join("runs/.store/scratch"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn interrupt_kills_running_stages_and_commits_nothing_partial() {
    let ws = slow_workspace();
    let running = ws.spawn(&["run", "experiments/faults.yaml"]);
    let dispatcher = running.id() as i32;
    wait_for(&ws.join("pids"), "the stage to start");
    let (worker, command) = pids(&ws);
    let started = Instant::now();
    unsafe { libc::kill(dispatcher, libc::SIGINT) };
    let out = running.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the interrupt took too long"
    );
    assert!(stderr(&out).contains("Interrupted"), "{}", stderr(&out));
    // The worker and the command it started are gone.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!pid_alive(worker), "worker {worker} survived");
    assert!(!pid_alive(command), "command {command} survived");
    assert_eq!(records(&ws), 1, "only the finished stage is committed");
    let m: serde_json::Value =
        serde_json::from_str(&ws.read("runs/faults/latest/manifest.json")).unwrap();
    assert_eq!(m["status"], "interrupted");
    assert_eq!(stages_with(&m, "not_run"), ["slow"]);
}

#[test]
fn flipped_byte_in_a_stored_object_is_detected_and_recomputed() {
    let ws = Workspace::new();
    ws.write("data/raw.csv", "b\na\nc\n").write(
        "experiments/x.yaml",
        r#"
experiment: x
stages:
  sort:
    kind: command
    cmd: "sort {deps.raw} > {outs.sorted}"
    deps: {raw: data/raw.csv}
    outs: {sorted: sorted.csv}
  count:
    kind: command
    cmd: "wc -l < {deps.sorted} > {outs.n}"
    deps: {sorted: "stage:sort/sorted"}
    outs: {n: n.txt}
"#,
    );
    let m = ws.run_ok("experiments/x.yaml");
    let obj = m["stages"][0]["object"].as_str().unwrap().to_string();
    let file = ws.join(&format!(
        "runs/.store/objects/{}/{obj}/sorted.csv",
        &obj[..2]
    ));
    // Flip one byte in place and put the modification time back: only the content differs.
    let meta = std::fs::metadata(&file).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0x01;
    let mut perms = meta.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&file, perms).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();

    let out = ws.run(&["plan", "--explain", "experiments/x.yaml"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("Run sort: stored output is corrupt"),
        "{text}"
    );
    let m = ws.run_ok("experiments/x.yaml");
    assert_eq!(stages_with(&m, "ran"), ["sort"]);
    // The recomputed output is identical to the original, so `count` is reused.
    assert_eq!(stages_with(&m, "fresh"), ["count"]);
    assert_eq!(m["stages"][0]["object"], obj.as_str());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "a\nb\nc\n");
}

#[test]
fn two_runs_at_once_both_succeed_without_duplicated_work() {
    let ws = Workspace::new();
    let mut yaml = String::from("experiment: twice\nstages:\n");
    for i in 0..4 {
        yaml.push_str(&format!(
            "  s{i}:\n    kind: command\n    cmd: \"echo {i} >> {{workspace}}/executions.log; sleep 0.3; echo {i} > {{outs.o}}\"\n    outs: {{o: o.txt}}\n"
        ));
    }
    ws.write("experiments/twice.yaml", &yaml);
    let a = ws.spawn(&["run", "experiments/twice.yaml", "--json"]);
    let b = ws.spawn(&["run", "experiments/twice.yaml", "--json"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let ma: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let mb: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    let ran = stages_with(&ma, "ran").len() + stages_with(&mb, "ran").len();
    assert_eq!(ran, 4, "each stage runs exactly once across both runs");
    assert_eq!(ws.read("executions.log").lines().count(), 4);
    let waited = format!("{}{}", stderr(&a), stderr(&b));
    assert!(
        waited.contains("Waiting"),
        "the second run says it waits: {waited}"
    );
    assert_eq!(records(&ws), 4);
}

#[test]
fn a_stage_computed_elsewhere_with_no_wait_exits_4() {
    let ws = slow_workspace();
    let mut running = ws.spawn(&["run", "experiments/faults.yaml"]);
    wait_for(&ws.join("pids"), "the stage to start");
    let out = ws.run(&["run", "experiments/faults.yaml", "--no-wait"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stage `slow` is being computed by")
            && stderr(&out).contains("(pid "),
        "{}",
        stderr(&out)
    );
    unsafe { libc::kill(running.id() as i32, libc::SIGINT) };
    running.wait().unwrap();
}

#[test]
fn missing_declared_output_fails_with_a_clear_message() {
    let ws = Workspace::new();
    ws.write(
        "experiments/x.yaml",
        "experiment: x\nstages:\n  a:\n    kind: command\n    cmd: \"echo hi\"\n    outs: {table: table.csv}\n",
    );
    let out = ws.run(&["run", "experiments/x.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("did not create its declared output `table` (`table.csv`)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(records(&ws), 0);
}

#[test]
fn failing_stage_shows_its_log_and_skips_downstream() {
    let ws = Workspace::new();
    ws.write(
        "experiments/x.yaml",
        r#"
experiment: x
stages:
  bad:
    kind: command
    cmd: "echo 'something broke' >&2; exit 7"
    outs: {o: o.txt}
  after:
    kind: command
    cmd: "cp {deps.o} {outs.o}"
    deps: {o: "stage:bad/o"}
    outs: {o: o.txt}
"#,
    );
    let out = ws.run(&["run", "experiments/x.yaml"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("Failed bad (the command exited with status 7)"),
        "{err}"
    );
    assert!(err.contains("| something broke"), "{err}");
    assert!(
        err.contains("Skipped after (upstream `bad` failed)"),
        "{err}"
    );
    let log = std::fs::read_dir(ws.join("runs/x/latest/logs"))
        .unwrap()
        .count();
    assert_eq!(log, 1);
    assert!(
        ws.read("runs/x/latest/logs/bad.log")
            .contains("something broke")
    );
}

#[test]
fn retries_rerun_a_failed_attempt() {
    let ws = Workspace::new();
    ws.write(
        "experiments/x.yaml",
        r#"
experiment: x
stages:
  flaky:
    kind: command
    retries: 2
    cmd: "if [ ! -f {workspace}/tried ]; then touch {workspace}/tried; exit 1; fi; echo ok > {outs.o}"
    outs: {o: o.txt}
"#,
    );
    let m = ws.run_ok("experiments/x.yaml");
    assert_eq!(m["stages"][0]["attempts"], 2);
}

#[test]
fn keep_going_runs_independent_stages_after_a_failure() {
    let ws = Workspace::new();
    let yaml = r#"
experiment: x
stages:
  bad:
    kind: command
    cmd: "exit 1"
    outs: {o: o.txt}
  good:
    kind: command
    cmd: "echo fine > {outs.o}"
    outs: {o: o.txt}
"#;
    ws.write("experiments/x.yaml", yaml);
    let out = ws.run(&["run", "experiments/x.yaml", "-j", "1", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stages_with(&m, "not_run"), ["good"]);
    let out = ws.run(&[
        "run",
        "experiments/x.yaml",
        "-j",
        "1",
        "--keep-going",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stages_with(&m, "ran"), ["good"]);
    assert_eq!(stages_with(&m, "failed"), ["bad"]);
}

/// `resources.time` is enforced locally: the task's whole process group (the command's children
/// included) is killed at the limit, the attempt fails saying so, and retries apply.
#[test]
fn a_stage_past_its_time_limit_is_killed_and_fails_saying_so() {
    let ws = Workspace::new();
    ws.write(
        "experiments/x.yaml",
        r#"
experiment: x
stages:
  hung:
    kind: command
    retries: 1
    resources: {time: "0:01"}
    cmd: "echo $$ >> {workspace}/pids; sleep 60 & echo $! >> {workspace}/pids; wait; echo done > {outs.o}"
    outs: {o: o.txt}
"#,
    );
    let start = Instant::now();
    let out = ws.run(&["run", "experiments/x.yaml"]);
    let elapsed = start.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("time limit 0:01 exceeded"), "{err}");
    assert!(err.contains("Retry"), "the retry applies: {err}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    // Nothing the command started outlives the attempt (two attempts, two pids each).
    std::thread::sleep(Duration::from_millis(300));
    let pids = ws.read("pids");
    assert_eq!(pids.lines().count(), 4, "{pids}");
    for p in pids.lines() {
        assert!(!pid_alive(p.trim().parse().unwrap()), "pid {p} survived");
    }
    // A limit that is not a time is refused at validation, with its place.
    ws.write(
        "experiments/x.yaml",
        &ws.read("experiments/x.yaml")
            .replace("time: \"0:01\"", "time: \"1h\""),
    );
    let out = ws.run(&["run", "experiments/x.yaml"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("experiments/x.yaml:7"), "{err}");
    assert!(err.contains("`1h` is not a time limit"), "{err}");
}

#[test]
fn a_full_disk_fails_the_stage_saying_so_and_the_store_works_once_space_is_back() {
    // The store on a 2 MiB tmpfs in a private mount namespace (as root, or as a user through a
    // user namespace); both runs happen inside it, their output goes to files outside it.
    let ws = Workspace::new();
    ws.write(
        "experiments/f.yaml",
        r#"
experiment: full
stages:
  big:
    kind: command
    cmd: "head -c $SIZE /dev/zero > {outs.data}"
    outs: {data: big.bin}
"#,
    );
    std::fs::create_dir_all(ws.join("small-disk")).expect("mkdir");
    let orch = assert_cmd::cargo::cargo_bin("orchestrate");
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs small-disk || exit 97; \
         SIZE=10000000 {o} --store small-disk/store run experiments/f.yaml >full.out 2>full.err; echo $? >full.rc; \
         SIZE=1000 {o} --store small-disk/store run experiments/f.yaml >again.out 2>again.err; echo $? >again.rc",
        o = orch.display()
    );
    if !in_mount_namespace(&ws, &script).is_some_and(|_| ws.join("full.rc").exists()) {
        eprintln!(
            "skipping a_full_disk_fails_the_stage_saying_so_and_the_store_works_once_space_is_back: \
             cannot mount a tmpfs in a private mount namespace here"
        );
        return;
    }
    let rc = |f: &str| ws.read(f).trim().to_string();
    let err = ws.read("full.err");
    assert_eq!(rc("full.rc"), "3", "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("nothing was committed"), "{err}");
    // Space is back (the failed attempt's scratch was removed): the next run completes.
    assert_eq!(rc("again.rc"), "0", "{}", ws.read("again.err"));
}

/// A workspace with `data/raw.csv` (`raw`) and `experiments/x.yaml`: one command stage `name`
/// running `cmd` on `{deps.raw}` into `{outs.out}` (file `out`).
fn one_stage(raw: &str, name: &str, cmd: &str, out: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("data/raw.csv", raw).write(
        "experiments/x.yaml",
        &format!(
            "experiment: x\nstages:\n  {name}:\n    kind: command\n    cmd: \"{cmd}\"\n    \
             deps: {{raw: data/raw.csv}}\n    outs: {{out: {out}}}\n"
        ),
    );
    ws
}

#[test]
fn an_object_path_that_is_no_object_folder_is_recomputed_and_healed() {
    let ws = one_stage(
        "b\na\nc\n",
        "sort",
        "sort {deps.raw} > {outs.out}",
        "sorted.csv",
    );
    let m = ws.run_ok("experiments/x.yaml");
    let obj = m["stages"][0]["object"].as_str().unwrap().to_string();
    let path = ws.join(&format!("runs/.store/objects/{}/{obj}", &obj[..2]));
    let replace = |with: &dyn Fn(&std::path::Path)| {
        let _ = std::process::Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(&path)
            .status();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path).unwrap(),
            Ok(_) => std::fs::remove_file(&path).unwrap(),
            Err(_) => {}
        }
        with(&path);
    };
    // A dangling symlink, then a plain file, where the object folder belongs: each time the
    // next run recomputes the stage and commits a real folder (it used to fail on every run).
    let cases: [&dyn Fn(&std::path::Path); 2] = [
        &|p| std::os::unix::fs::symlink("/nonexistent-object", p).unwrap(),
        &|p| std::fs::write(p, "junk").unwrap(),
    ];
    for (i, case) in cases.iter().enumerate() {
        replace(*case);
        let m = ws.run_ok("experiments/x.yaml");
        assert_eq!(stages_with(&m, "ran"), ["sort"], "case {i}");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_dir(), "case {i}: the object is a folder again");
        assert_eq!(
            ws.read(&format!(
                "runs/.store/objects/{}/{obj}/sorted.csv",
                &obj[..2]
            )),
            "a\nb\nc\n"
        );
    }
}

#[test]
fn a_store_with_an_empty_format_file_is_usable() {
    // What a full disk or a kill during the store's creation leaves behind.
    let ws = Workspace::new();
    ws.write("runs/.store/FORMAT", "");
    let out = ws.run(&["gc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ws.read("runs/.store/FORMAT"), "2\n");
    // A FORMAT that names another layout is still refused, not overwritten.
    ws.write("runs/.store/FORMAT", "9\n");
    let out = ws.run(&["status"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("layout format 9"), "{}", stderr(&out));
    assert_eq!(ws.read("runs/.store/FORMAT"), "9\n");
}

#[test]
fn an_output_hard_linked_to_an_input_leaves_the_users_file_alone() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let ws = one_stage("a\n", "link", "ln {deps.raw} {outs.out}", "copy.csv");
    let before = std::fs::metadata(ws.join("data/raw.csv")).unwrap();
    let m = ws.run_ok("experiments/x.yaml");
    let obj = m["stages"][0]["object"].as_str().unwrap().to_string();
    let stored =
        std::fs::metadata(ws.join(&format!("runs/.store/objects/{}/{obj}/copy.csv", &obj[..2])))
            .unwrap();
    let after = std::fs::metadata(ws.join("data/raw.csv")).unwrap();
    assert_eq!(
        after.permissions().mode(),
        before.permissions().mode(),
        "committing must not make the user's input read-only"
    );
    assert_ne!(
        stored.ino(),
        after.ino(),
        "the stored output has an inode of its own"
    );
    assert_eq!(
        stored.permissions().mode() & 0o222,
        0,
        "stored files are read-only"
    );
    // And the input is still the user's to edit.
    ws.write("data/raw.csv", "b\n");
}
