//! The Slurm executor against a real (single-node) cluster: `tests/slurm/start-slurm.sh` starts
//! one and CI sets `ORCHESTRATE_TEST_SLURM=1`. Without it these tests print a notice and pass,
//! except the ones that need no cluster.

use std::process::Command as StdCommand;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::common::{Workspace, stages_with, stderr, wait_for};

/// The cluster has two CPUs: tests that time jobs run one at a time.
static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster, or `None` (with a notice) when `ORCHESTRATE_TEST_SLURM` is not `1`.
fn cluster(test: &str) -> Option<MutexGuard<'static, ()>> {
    if std::env::var("ORCHESTRATE_TEST_SLURM").as_deref() != Ok("1") {
        eprintln!("skipping {test}: set ORCHESTRATE_TEST_SLURM=1 after tests/slurm/start-slurm.sh");
        return None;
    }
    Some(CLUSTER.lock().unwrap_or_else(|p| p.into_inner()))
}

/// A job-name prefix no other test process uses, so queue checks only see our jobs.
fn prefix(test: &str) -> String {
    format!("it{}-{test}", std::process::id())
}

/// Names of the jobs in the queue (pending, running or completing).
fn queued_jobs() -> Vec<String> {
    let out = StdCommand::new("timeout")
        .args(["10", "squeue", "-h", "-o", "%j"])
        .output()
        .expect("run squeue");
    assert!(out.status.success(), "squeue failed: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Stage name → (key, object) of a run manifest.
fn results(m: &serde_json::Value) -> Vec<(String, String, String)> {
    m["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_string(),
                s["key"].as_str().expect("key").to_string(),
                s["object"].as_str().expect("object").to_string(),
            )
        })
        .collect()
}

const PIPELINE: &str = r#"
experiment: slurm-pipeline
slurm: {job_name_prefix: PREFIX, poll_seconds: 0.25, time: "00:05:00"}
stages:
  prep:
    kind: command
    cmd: "echo job=${SLURM_JOB_ID:-none} >&2; sort {deps.raw} > {outs.table}"
    deps: {raw: data/raw.csv}
    outs: {table: table.csv}
  score:
    kind: command
    cmd: "echo job=${SLURM_JOB_ID:-none} >&2; awk -v w={params.w} -v s={seed} '{print $1, w * s}' {deps.table} > {outs.scores}"
    deps: {table: "stage:prep/table"}
    params: {w: 1}
    outs: {scores: scores.txt}
    replicate: true
    resources: {cpus: 1, mem_mb: 100}
  summary:
    kind: command
    cmd: "echo job=${SLURM_JOB_ID:-none} >&2; cat {deps.all} | wc -l > {outs.n}; cat {deps.all} > {outs.all}"
    deps: {all: "stage:score[*]/scores"}
    outs: {n: n.txt, all: all.txt}
seeds: [1, 2]
sweep:
  score.params.w: [1, 3]
"#;

fn pipeline(test: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "experiments/p.yaml",
        &PIPELINE.replace("PREFIX", &prefix(test)),
    )
    .write("data/raw.csv", "b\na\nc\n");
    ws
}

#[test]
fn slurm_results_equal_local_results() {
    let Some(_cluster) = cluster("slurm_results_equal_local_results") else {
        return;
    };
    let local = pipeline("equal");
    let slurm = pipeline("equal");
    let l = local.run_json(&["run", "experiments/p.yaml", "--json"]);
    let s = slurm.run_json(&["run", "experiments/p.yaml", "--json", "--executor", "slurm"]);
    assert_eq!(stages_with(&s, "ran").len(), 6);
    assert_eq!(results(&l), results(&s), "keys and objects differ");
    // The stages really ran as Slurm jobs, and only there.
    for stage in ["prep", "score[w=3,seed=2]", "summary"] {
        let log = slurm.read(&format!("runs/slurm-pipeline/latest/logs/{stage}.log"));
        assert!(
            log.lines().any(|l| l
                .strip_prefix("job=")
                .is_some_and(|id| id.parse::<u64>().is_ok())),
            "{stage} did not run in a Slurm job:\n{log}"
        );
        let log = local.read(&format!("runs/slurm-pipeline/latest/logs/{stage}.log"));
        assert!(log.contains("job=none"), "{log}");
    }
    // A second Slurm run submits nothing.
    let again = slurm.run_json(&["run", "experiments/p.yaml", "--json", "--executor", "slurm"]);
    assert_eq!(stages_with(&again, "fresh").len(), 6);
}

const KILLED: &str = r#"
experiment: slurm-killed
slurm: {job_name_prefix: PREFIX, poll_seconds: 0.25}
stages:
  slow:
    kind: command
    # The first attempt records its job id and hangs; the retry finishes.
    cmd: >-
      if [ ! -f {workspace}/first-attempt ]; then
        echo "$SLURM_JOB_ID" > {workspace}/job.tmp; mv {workspace}/job.tmp {workspace}/first-attempt;
        sleep 60;
      fi; echo done > {outs.out}
    outs: {out: out.txt}
    retries: 1
"#;

#[test]
fn cancelled_job_is_retried() {
    let Some(_cluster) = cluster("cancelled_job_is_retried") else {
        return;
    };
    let ws = Workspace::new();
    ws.write(
        "experiments/k.yaml",
        &KILLED.replace("PREFIX", &prefix("killed")),
    );
    let running = ws.spawn(&["run", "experiments/k.yaml", "--executor", "slurm"]);
    wait_for(&ws.join("first-attempt"), "the first attempt to start");
    let job = ws.read("first-attempt").trim().to_string();
    let cancel = StdCommand::new("timeout")
        .args(["10", "scancel", &job])
        .status()
        .expect("run scancel");
    assert!(cancel.success());
    let out = running.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("Slurm job {job} CANCELLED")), "{err}");
    let m: serde_json::Value =
        serde_json::from_str(&ws.read("runs/slurm-killed/latest/manifest.json")).expect("JSON");
    assert_eq!(m["stages"][0]["attempts"], 2, "{m}");
    assert_eq!(m["stages"][0]["status"], "ran");
}

const HANGING: &str = r#"
experiment: slurm-interrupt
slurm: {job_name_prefix: PREFIX, poll_seconds: 0.25}
stages:
  a:
    kind: command
    cmd: "touch {workspace}/a-started; sleep 60; touch {outs.o}"
    outs: {o: o}
  b:
    kind: command
    cmd: "sleep 60; touch {outs.o}"
    outs: {o: o}
  # Needs the whole node: stays pending while a and b run. (Its command differs from b's: the
  # same command would be the same key, computed once.)
  c:
    kind: command
    cmd: "sleep 60; touch {outs.o} {outs.o}"
    outs: {o: o}
    resources: {cpus: 2}
"#;

#[test]
fn interrupt_cancels_every_job() {
    let Some(_cluster) = cluster("interrupt_cancels_every_job") else {
        return;
    };
    let ws = Workspace::new();
    let prefix = prefix("interrupt");
    ws.write("experiments/i.yaml", &HANGING.replace("PREFIX", &prefix));
    let running = ws.spawn(&["run", "experiments/i.yaml", "--executor", "slurm"]);
    wait_for(&ws.join("a-started"), "a job to start");
    let ours = |jobs: Vec<String>| -> Vec<String> {
        jobs.into_iter()
            .filter(|j| j.starts_with(&prefix))
            .collect()
    };
    assert_eq!(ours(queued_jobs()).len(), 3, "a, b and c are queued");
    let started = Instant::now();
    unsafe { libc::kill(running.id() as i32, libc::SIGINT) };
    let out = running.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the interrupt took {:?}",
        started.elapsed()
    );
    assert_eq!(ours(queued_jobs()), Vec::<String>::new(), "jobs survived");
    let m: serde_json::Value =
        serde_json::from_str(&ws.read("runs/slurm-interrupt/latest/manifest.json")).expect("JSON");
    assert_eq!(m["status"], "interrupted");
    assert_eq!(stages_with(&m, "not_run").len(), 3);
}

const MIXED: &str = r#"
experiment: slurm-mixed
slurm: {job_name_prefix: PREFIX, poll_seconds: 0.25}
stages:
  remote:
    kind: command
    cmd: "echo ${SLURM_JOB_ID:-unset} > {outs.id}"
    outs: {id: id.txt}
  here:
    kind: command
    executor: local
    cmd: "echo ${SLURM_JOB_ID:-unset} > {outs.id}; cat {deps.remote} > {outs.remote}"
    deps: {remote: "stage:remote/id"}
    outs: {id: id.txt, remote: remote.txt}
"#;

#[test]
fn local_stage_in_a_slurm_experiment_runs_here() {
    let Some(_cluster) = cluster("local_stage_in_a_slurm_experiment_runs_here") else {
        return;
    };
    let ws = Workspace::new();
    ws.write(
        "experiments/m.yaml",
        &MIXED.replace("PREFIX", &prefix("mixed")),
    );
    let m = ws.run_json(&["run", "experiments/m.yaml", "--json", "--executor", "slurm"]);
    let obj = m["stages"][1]["object"].as_str().expect("object");
    let dir = format!("runs/.store/objects/{}/{obj}", &obj[..2]);
    assert_eq!(ws.read(&format!("{dir}/id.txt")), "unset\n");
    let remote = ws.read(&format!("{dir}/remote.txt"));
    assert!(
        remote.trim().parse::<u64>().is_ok(),
        "remote job id {remote}"
    );
}

#[test]
fn slurm_without_sbatch_is_a_usage_error() {
    let ws = Workspace::new();
    ws.write(
        "experiments/m.yaml",
        &MIXED.replace("PREFIX", &prefix("nosbatch")),
    );
    let out = ws
        .cmd(&["run", "experiments/m.yaml", "--executor", "slurm"])
        .env("PATH", ws.join("no-such-dir"))
        .output()
        .expect("spawn orchestrate");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "--executor slurm was given but `sbatch`, `squeue`, `scancel` are not on PATH"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!ws.join("runs").exists(), "nothing is written");
}

const CAPPED: &str = r#"
experiment: slurm-capped
slurm: {job_name_prefix: PREFIX, poll_seconds: 0.25}
stages:
  count:
    kind: command
    # How many of this run's jobs the queue holds while this one runs.
    cmd: "squeue -h -o %j | grep -c '^PREFIX-' > {outs.n}"
    params: {i: 0}
    outs: {n: n.txt}
sweep:
  count.params.i: [1, 2, 3]
"#;

#[test]
fn max_jobs_caps_what_is_submitted() {
    let Some(_cluster) = cluster("max_jobs_caps_what_is_submitted") else {
        return;
    };
    let ws = Workspace::new();
    ws.write(
        "experiments/c.yaml",
        &CAPPED.replace("PREFIX", &prefix("capped")),
    );
    let m = ws.run_json(&[
        "run",
        "experiments/c.yaml",
        "--json",
        "--executor",
        "slurm",
        "--max-jobs",
        "1",
    ]);
    for s in m["stages"].as_array().expect("stages") {
        let obj = s["object"].as_str().expect("object");
        let n = ws.read(&format!("runs/.store/objects/{}/{obj}/n.txt", &obj[..2]));
        assert_eq!(n.trim(), "1", "{} saw {n} jobs", s["name"]);
    }
}
