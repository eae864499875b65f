//! The Slurm executor: each task attempt becomes one `sbatch` job running the same hidden
//! `orchestrate worker --task FILE` as the local executor, on a task file in the store's scratch
//! folder (so the store must sit on a filesystem the nodes share).
//!
//! It owns the job script (resources → `#SBATCH` options), submission, a poller thread that
//! watches `squeue` with back-off, and cancellation. It never reads results or touches the index:
//! when a job leaves the queue it sends a [`TaskEnd`] and the dispatcher reads the worker's result
//! file, which is the source of truth. `sacct` is not used (a minimal cluster has no
//! accounting); `scontrol show job` supplies a state note (CANCELLED, TIMEOUT, …) while Slurm
//! still remembers the job. Every Slurm command runs under a timeout: with the controller down,
//! each call blocks for seconds.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::ExecError as Error;
use super::executor::{Executor, Launched, TaskEnd, WorkerExit};
use crate::dsl::Experiment;
use crate::dsl::template::shell_quote;

/// The commands the executor calls; all must be on `PATH`.
pub const TOOLS: [&str; 3] = ["sbatch", "squeue", "scancel"];

/// Default `job_name_prefix`.
const DEFAULT_PREFIX: &str = "orchestrate";
/// Default seconds between `squeue` polls.
const DEFAULT_POLL_SECONDS: f64 = 2.0;
/// Polls back off up to this multiple of the base interval while nothing changes.
const MAX_BACKOFF: u32 = 10;
/// A submission that takes longer than this is given up.
const SBATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Queries (`squeue`, `scontrol`, `scancel`) that take longer than this are given up.
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);
/// A job that left the queue without a visible result file gets this long for the file to show
/// up (shared filesystems cache attributes) unless Slurm says it was killed.
const RESULT_GRACE: Duration = Duration::from_secs(5);
/// The same for a job `squeue` never listed: it may not be visible to queries yet.
const UNSEEN_GRACE: Duration = Duration::from_secs(30);
/// After Ctrl-C, jobs still listed are cancelled again this often.
const RECANCEL_EVERY: Duration = Duration::from_secs(5);
/// After Ctrl-C, an unreachable controller is waited for this long before giving up.
const CANCEL_PATIENCE: Duration = Duration::from_secs(60);

/// Why a Slurm command did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run `{tool}`: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{tool}` did not answer within {secs} s")]
    Timeout { tool: String, secs: u64 },
    #[error("`{tool}` exited with status {status}: {stderr}")]
    Failed {
        tool: String,
        status: String,
        stderr: String,
    },
    #[error("cannot read a job id from `sbatch` output `{0}`")]
    NoJobId(String),
    #[error("cannot write the job script `{path}`: {source}")]
    Script {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The tools in [`TOOLS`] that are not on `PATH`.
pub fn missing_tools() -> Vec<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    TOOLS
        .into_iter()
        .filter(|tool| {
            !std::env::split_paths(&path).any(|dir| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(dir.join(tool))
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        })
        .collect()
}

/// Cluster-wide options from the experiment's `slurm:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Extra `#SBATCH` lines, written as given.
    pub extra: Vec<String>,
}

/// What one stage asks of Slurm.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub name: String,
    pub cpus: u32,
    pub gpus: u32,
    pub mem_mb: Option<u64>,
    /// Slurm `--time` syntax.
    pub time: Option<String>,
}

/// `<prefix>-<experiment>-<stage>` with every character Slurm or a shell could trip on
/// replaced by `_`: `score[w=0.5,seed=1]` → `score_w_0.5_seed_1_`.
pub fn job_name(prefix: &str, experiment: &str, stage: &str) -> String {
    format!("{prefix}-{experiment}-{stage}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect()
}

/// The `#SBATCH` options of a job, in script order.
pub fn sbatch_options(cluster: &ClusterOptions, job: &JobSpec) -> Vec<String> {
    let mut o = vec![
        format!("--job-name={}", job.name),
        "--nodes=1".to_string(),
        "--ntasks=1".to_string(),
        format!("--cpus-per-task={}", job.cpus.max(1)),
    ];
    if job.gpus > 0 {
        o.push(format!("--gres=gpu:{}", job.gpus));
    }
    if let Some(mb) = job.mem_mb {
        o.push(format!("--mem={mb}M"));
    }
    if let Some(t) = &job.time {
        o.push(format!("--time={t}"));
    }
    if let Some(p) = &cluster.partition {
        o.push(format!("--partition={p}"));
    }
    if let Some(a) = &cluster.account {
        o.push(format!("--account={a}"));
    }
    if let Some(q) = &cluster.qos {
        o.push(format!("--qos={q}"));
    }
    // A preempted or node-failed job must not be requeued into the same scratch folder (a
    // half-written output would join the object): it ends, and the dispatcher retries it in a
    // fresh folder per the stage's `retries:`.
    o.push("--no-requeue".to_string());
    o.extend(cluster.extra.iter().cloned());
    o
}

/// The job script: `#SBATCH` lines, then the worker. Paths (log, working folder) are passed on
/// the `sbatch` command line instead, where they need no quoting.
pub fn sbatch_script(
    cluster: &ClusterOptions,
    job: &JobSpec,
    worker_exe: &Path,
    task: &Path,
) -> String {
    let mut s = String::from("#!/bin/sh\n");
    for o in sbatch_options(cluster, job) {
        s.push_str("#SBATCH ");
        s.push_str(&o);
        s.push('\n');
    }
    s.push_str(&format!(
        "exec {} worker --task {}\n",
        shell_quote(&worker_exe.to_string_lossy()),
        shell_quote(&task.to_string_lossy())
    ));
    s
}

/// Slurm expands `%j`-style patterns in `--output`; `%%` is a literal `%`.
fn slurm_path(p: &Path) -> String {
    p.to_string_lossy().replace('%', "%%")
}

/// The job id in `sbatch --parsable` output (`ID` or `ID;CLUSTER`).
pub fn parse_sbatch_id(stdout: &str) -> Option<String> {
    let id = stdout.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// Job id → state from `squeue -h -t all -o '%i|%T'`.
pub fn parse_squeue(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let (id, state) = l.trim().split_once('|')?;
            let state = state.split('|').next().unwrap_or_default().trim();
            Some((id.trim().to_string(), state.to_string()))
        })
        .filter(|(id, state)| !id.is_empty() && !state.is_empty())
        .collect()
}

/// Whether a job in this state may still run (or be running) the worker.
pub fn is_active(state: &str) -> bool {
    !matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "PREEMPTED"
            | "NODE_FAIL"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "OUT_OF_MEMORY"
            | "SPECIAL_EXIT"
            | "REVOKED"
    )
}

/// What `scontrol -o show job ID` says about a finished job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobInfo {
    pub state: Option<String>,
    pub reason: Option<String>,
    /// `ExitCode=CODE:SIGNAL`.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
}

pub fn parse_scontrol(stdout: &str) -> JobInfo {
    let mut info = JobInfo::default();
    for field in stdout.split_whitespace() {
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        match k {
            "JobState" => info.state = Some(v.to_string()),
            "Reason" if v != "None" => info.reason = Some(v.to_string()),
            "ExitCode" => {
                let (code, sig) = v.split_once(':').unwrap_or((v, "0"));
                info.exit_code = code.parse().ok();
                info.signal = sig.parse().ok().filter(|&s: &i32| s != 0);
            }
            _ => {}
        }
    }
    info
}

/// Runs a Slurm command, killing it after `timeout`.
fn run_tool(tool: &str, args: &[OsString], timeout: Duration) -> Result<String, SlurmError> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SlurmError::Spawn {
            tool: tool.to_string(),
            source,
        })?;
    // Read both pipes on threads so a chatty command cannot block on a full pipe.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read(child.stdout.take().map(|p| Box::new(p) as _));
    let err = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SlurmError::Timeout {
                    tool: tool.to_string(),
                    secs: timeout.as_secs(),
                });
            }
            Err(source) => {
                return Err(SlurmError::Spawn {
                    tool: tool.to_string(),
                    source,
                });
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(SlurmError::Failed {
            tool: tool.to_string(),
            status: status
                .code()
                .map_or_else(|| "unknown".to_string(), |c| c.to_string()),
            stderr: stderr.trim().to_string(),
        })
    }
}

/// Job id → state of the given jobs; a job Slurm no longer knows is absent.
fn query_queue(ids: &[String]) -> Result<BTreeMap<String, String>, SlurmError> {
    let args: Vec<OsString> = ["-h", "-t", "all", "-o", "%i|%T", "-j"]
        .into_iter()
        .map(OsString::from)
        .chain([OsString::from(ids.join(","))])
        .collect();
    match run_tool("squeue", &args, QUERY_TIMEOUT) {
        Ok(out) => Ok(parse_squeue(&out)),
        // When every listed job has been purged, squeue fails instead of printing nothing.
        Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid job id") => {
            Ok(BTreeMap::new())
        }
        Err(e) => Err(e),
    }
}

fn job_info(id: &str) -> Option<JobInfo> {
    let args: Vec<OsString> = ["-o", "show", "job", id].map(OsString::from).to_vec();
    run_tool("scontrol", &args, QUERY_TIMEOUT)
        .ok()
        .map(|out| parse_scontrol(&out))
}

fn scancel(ids: &[String]) -> Result<(), SlurmError> {
    if ids.is_empty() {
        return Ok(());
    }
    let args: Vec<OsString> = ids.iter().map(OsString::from).collect();
    run_tool("scancel", &args, QUERY_TIMEOUT).map(|_| ())
}

/// A submitted job the poller watches.
struct Tracked {
    idx: usize,
    tx: Sender<TaskEnd>,
    result: PathBuf,
    /// Last state `squeue` reported.
    state: Option<String>,
    /// When it was first seen out of the queue without a result file.
    gone_since: Option<Instant>,
}

#[derive(Default)]
struct PollState {
    jobs: BTreeMap<String, Tracked>,
    /// Ctrl-C: every job was cancelled; wait for them to leave the queue.
    cancelling: Option<Instant>,
    last_cancel: Option<Instant>,
    /// Poll soon: a job was submitted or cancelled.
    hurry: bool,
    shutdown: bool,
}

struct Shared {
    state: Mutex<PollState>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PollState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct SlurmExecutor {
    worker_exe: PathBuf,
    cluster: ClusterOptions,
    /// Per stage index.
    jobs: Vec<JobSpec>,
    shared: Arc<Shared>,
}

/// Refuses a value that would break out of its `#SBATCH` line.
fn one_line(what: &str, v: &str) -> Result<(), Error> {
    if v.contains(['\n', '\r']) {
        return Err(Error::Usage(format!(
            "slurm.{what} `{}` must be a single line",
            v.escape_debug()
        )));
    }
    Ok(())
}

impl SlurmExecutor {
    /// Prepares the jobs of every stage of `exp` and starts the poller.
    pub fn new(exp: &Experiment) -> Result<SlurmExecutor, Error> {
        let worker_exe = std::env::current_exe()
            .map_err(|e| Error::Internal(format!("cannot locate the orchestrate binary: {e}")))?;
        let spec = &exp.slurm;
        for (what, v) in [
            ("partition", &spec.partition),
            ("account", &spec.account),
            ("qos", &spec.qos),
            ("time", &spec.time),
            ("job_name_prefix", &spec.job_name_prefix),
        ] {
            if let Some(v) = v {
                one_line(what, v)?;
            }
        }
        for e in &spec.extra {
            one_line("extra", e)?;
            if !e.starts_with('-') {
                return Err(Error::Usage(format!(
                    "slurm.extra `{e}` is not an sbatch option (options start with `-`, e.g. `--constraint=a100`)"
                )));
            }
        }
        let poll = spec.poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS);
        if !(poll.is_finite() && poll > 0.0) {
            return Err(Error::Usage(format!(
                "slurm.poll_seconds must be a positive number of seconds, not {poll}"
            )));
        }
        let prefix = spec.job_name_prefix.as_deref().unwrap_or(DEFAULT_PREFIX);
        let jobs = exp
            .stages
            .iter()
            .map(|s| {
                let time = s.resources.time.clone().or_else(|| spec.time.clone());
                if let Some(t) = &time {
                    one_line("time", t)?;
                }
                Ok(JobSpec {
                    name: job_name(prefix, &exp.name, &s.name),
                    cpus: s.resources.cpus.max(1),
                    gpus: s.resources.gpus,
                    mem_mb: s.resources.mem_mb,
                    time,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(PollState::default()),
            wake: Condvar::new(),
        });
        let base = Duration::from_secs_f64(poll.max(0.05));
        let poller = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("slurm-poller".into())
            .spawn(move || poll_loop(&poller, base))
            .map_err(|e| Error::Internal(format!("cannot start the Slurm poller: {e}")))?;
        Ok(SlurmExecutor {
            worker_exe,
            cluster: ClusterOptions {
                partition: spec.partition.clone(),
                account: spec.account.clone(),
                qos: spec.qos.clone(),
                extra: spec.extra.clone(),
            },
            jobs,
            shared,
        })
    }

    fn submit(&self, idx: usize, task: &Path, scratch: &Path) -> Result<String, SlurmError> {
        let job = &self.jobs[idx];
        let script = scratch.join("job.sh");
        std::fs::write(
            &script,
            sbatch_script(&self.cluster, job, &self.worker_exe, task),
        )
        .map_err(|source| SlurmError::Script {
            path: script.clone(),
            source,
        })?;
        let mut output = OsString::from("--output=");
        output.push(slurm_path(&scratch.join("worker.log")));
        let mut chdir = OsString::from("--chdir=");
        chdir.push(scratch);
        let args = vec![
            OsString::from("--parsable"),
            output,
            chdir,
            script.into_os_string(),
        ];
        let out = run_tool("sbatch", &args, SBATCH_TIMEOUT)?;
        parse_sbatch_id(&out).ok_or_else(|| SlurmError::NoJobId(out.trim().to_string()))
    }
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn launch(
        &mut self,
        idx: usize,
        task: &Path,
        scratch: &Path,
        tx: Sender<TaskEnd>,
    ) -> Result<Launched, Error> {
        match self.submit(idx, task, scratch) {
            Ok(id) => {
                let mut st = self.shared.lock();
                st.jobs.insert(
                    id.clone(),
                    Tracked {
                        idx,
                        tx,
                        result: scratch.join("result.json"),
                        state: None,
                        gone_since: None,
                    },
                );
                st.hurry = true;
                self.shared.wake.notify_all();
                Ok(Launched { id })
            }
            // A refused submission is a failed attempt (retried per the stage's policy), not
            // the end of the run: other jobs may be running.
            Err(e) => {
                let _ = tx.send(TaskEnd {
                    idx,
                    exit: WorkerExit {
                        code: None,
                        signal: None,
                        note: Some(format!("not submitted: {e}")),
                    },
                });
                Ok(Launched {
                    id: "unsubmitted".to_string(),
                })
            }
        }
    }

    /// Cancels every job this executor submitted; their `TaskEnd`s arrive once `squeue` no
    /// longer lists them as pending or running.
    fn cancel(&mut self, _running: &[Launched]) {
        let ids: Vec<String> = {
            let mut st = self.shared.lock();
            let now = Instant::now();
            st.cancelling.get_or_insert(now);
            st.last_cancel = Some(now);
            st.jobs.keys().cloned().collect()
        };
        if let Err(e) = scancel(&ids) {
            eprintln!("warning: cannot cancel Slurm jobs {}: {e}", ids.join(","));
        }
        self.shared.lock().hurry = true;
        self.shared.wake.notify_all();
    }

    fn reap(&mut self, _launched: &Launched) {
        // A job's TaskEnd is sent only once it has left the queue: nothing is left to clean up.
    }
}

impl Drop for SlurmExecutor {
    /// On an early return (an internal error), no job of ours may keep running unwatched.
    fn drop(&mut self) {
        let ids: Vec<String> = {
            let mut st = self.shared.lock();
            st.shutdown = true;
            st.jobs.keys().cloned().collect()
        };
        self.shared.wake.notify_all();
        let _ = scancel(&ids);
    }
}

/// Watches the submitted jobs until the executor is dropped.
fn poll_loop(shared: &Shared, base: Duration) {
    let max = base * MAX_BACKOFF;
    let mut interval = base;
    let mut failing_since: Option<Instant> = None;
    loop {
        let ids: Vec<String> = {
            let mut st = shared.lock();
            while !st.shutdown && st.jobs.is_empty() {
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if !st.hurry && !st.shutdown {
                st = shared
                    .wake
                    .wait_timeout(st, interval)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            if st.shutdown {
                return;
            }
            if std::mem::take(&mut st.hurry) {
                interval = base;
            }
            st.jobs.keys().cloned().collect()
        };
        if ids.is_empty() {
            continue;
        }
        let queue = query_queue(&ids);
        let mut st = shared.lock();
        let mut ended = Vec::new();
        match queue {
            Ok(states) => {
                if failing_since.take().is_some() {
                    eprintln!("note: the Slurm controller answers again");
                }
                let now = Instant::now();
                let cancelling = st.cancelling.is_some();
                let mut still = Vec::new();
                for id in &ids {
                    let Some(job) = st.jobs.get_mut(id) else {
                        continue;
                    };
                    let state = states.get(id);
                    if let Some(s) = state {
                        job.state = Some(s.clone());
                    }
                    if state.is_some_and(|s| is_active(s)) {
                        still.push(id.clone());
                        continue;
                    }
                    // Out of the queue. Without a result file, and unless Slurm says the job was
                    // killed, give a shared filesystem a moment to show the file.
                    let killed = state.is_some_and(|s| s != "COMPLETED");
                    if !cancelling && !killed && !job.result.exists() {
                        let grace = if job.state.is_some() {
                            RESULT_GRACE
                        } else {
                            UNSEEN_GRACE
                        };
                        let since = *job.gone_since.get_or_insert(now);
                        if now.duration_since(since) < grace {
                            continue;
                        }
                    }
                    ended.push(id.clone());
                }
                let recancel = cancelling
                    && !still.is_empty()
                    && st
                        .last_cancel
                        .is_none_or(|t| now.duration_since(t) >= RECANCEL_EVERY);
                if recancel {
                    st.last_cancel = Some(now);
                    drop(st);
                    let _ = scancel(&still);
                    st = shared.lock();
                }
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(|| {
                    eprintln!("warning: cannot query the Slurm queue ({e}); retrying");
                    Instant::now()
                });
                // After Ctrl-C, an unreachable controller is not waited for forever.
                if st.cancelling.is_some() && since.elapsed() >= CANCEL_PATIENCE {
                    eprintln!(
                        "warning: giving up on Slurm jobs {} (cancelled, but the controller does not answer: {e})",
                        ids.join(",")
                    );
                    ended = ids.clone();
                }
            }
        }
        if ended.is_empty() {
            interval = (interval.mul_f64(1.5)).min(max);
            continue;
        }
        interval = base;
        let finished: Vec<(String, Tracked)> = ended
            .into_iter()
            .filter_map(|id| st.jobs.remove(&id).map(|t| (id, t)))
            .collect();
        drop(st);
        for (id, job) in finished {
            let exit = describe_end(&id, job.state.as_deref(), job_info(&id));
            let _ = job.tx.send(TaskEnd { idx: job.idx, exit });
        }
    }
}

/// How a job ended, from what `scontrol` (or failing that, the last `squeue`) said.
fn describe_end(id: &str, last_state: Option<&str>, info: Option<JobInfo>) -> WorkerExit {
    let info = info.unwrap_or_default();
    let state = info.state.as_deref().or(last_state);
    let note = match (state, &info.reason) {
        (Some(s), Some(r)) => format!("Slurm job {id} {s}, reason {r}"),
        (Some(s), None) => format!("Slurm job {id} {s}"),
        (None, _) => format!("Slurm job {id} left the queue"),
    };
    // Slurm reports `0:0` for a job it killed on a time limit or a node failure: no status.
    let killed = state.is_some_and(|s| !matches!(s, "COMPLETED" | "FAILED"));
    WorkerExit {
        code: if info.signal.is_some() || (killed && info.exit_code == Some(0)) {
            None
        } else {
            info.exit_code
        },
        signal: info.signal,
        note: Some(note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobSpec {
        JobSpec {
            name: job_name("lab", "paper", "train[lr=0.1,seed=2]"),
            cpus: 4,
            gpus: 0,
            mem_mb: None,
            time: None,
        }
    }

    fn cluster() -> ClusterOptions {
        ClusterOptions {
            partition: None,
            account: None,
            qos: None,
            extra: vec![],
        }
    }

    #[test]
    fn job_names_are_sanitized() {
        assert_eq!(
            job_name("lab", "paper", "train[lr=0.1,seed=2]"),
            "lab-paper-train_lr_0.1_seed_2_"
        );
        assert_eq!(job_name("p", "e", "a b/c;$(x)"), "p-e-a_b_c___x_");
    }

    #[test]
    fn cpu_job_options() {
        assert_eq!(
            sbatch_options(&cluster(), &job()),
            [
                "--job-name=lab-paper-train_lr_0.1_seed_2_",
                "--nodes=1",
                "--ntasks=1",
                "--cpus-per-task=4",
                "--no-requeue",
            ]
        );
    }

    #[test]
    fn gpus_memory_time_and_cluster_options() {
        let j = JobSpec {
            gpus: 2,
            mem_mb: Some(16000),
            time: Some("02:00:00".into()),
            cpus: 0,
            ..job()
        };
        let c = ClusterOptions {
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            qos: Some("high".into()),
            extra: vec!["--constraint=a100".into(), "--exclusive".into()],
        };
        let o = sbatch_options(&c, &j);
        assert_eq!(
            &o[3..],
            [
                "--cpus-per-task=1",
                "--gres=gpu:2",
                "--mem=16000M",
                "--time=02:00:00",
                "--partition=gpu",
                "--account=lab",
                "--qos=high",
                "--no-requeue",
                "--constraint=a100",
                "--exclusive",
            ]
        );
    }

    #[test]
    fn script_has_options_then_the_quoted_worker() {
        let s = sbatch_script(
            &cluster(),
            &job(),
            Path::new("/opt/my tools/orchestrate"),
            Path::new("/store/scratch/t-1/task.json"),
        );
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "#!/bin/sh");
        assert_eq!(
            lines[1],
            "#SBATCH --job-name=lab-paper-train_lr_0.1_seed_2_"
        );
        assert_eq!(lines[4], "#SBATCH --cpus-per-task=4");
        assert_eq!(
            lines.last().copied(),
            Some("exec '/opt/my tools/orchestrate' worker --task /store/scratch/t-1/task.json")
        );
        assert!(!s.contains("--gres"), "no GPU option for a CPU job");
    }

    #[test]
    fn output_paths_escape_slurm_patterns() {
        assert_eq!(slurm_path(Path::new("/s/100%/w.log")), "/s/100%%/w.log");
    }

    #[test]
    fn sbatch_ids() {
        assert_eq!(parse_sbatch_id("1234\n").as_deref(), Some("1234"));
        assert_eq!(parse_sbatch_id("77;cluster2\n").as_deref(), Some("77"));
        assert_eq!(parse_sbatch_id("Submitted batch job 5"), None);
        assert_eq!(parse_sbatch_id(""), None);
    }

    #[test]
    fn squeue_output() {
        let q = parse_squeue("12|RUNNING\n13|PENDING\n 14|CANCELLED \n\ngarbage\n15|\n");
        assert_eq!(q.len(), 3);
        assert_eq!(q["12"], "RUNNING");
        assert_eq!(q["13"], "PENDING");
        assert_eq!(q["14"], "CANCELLED");
        assert!(is_active(&q["12"]) && is_active(&q["13"]) && !is_active(&q["14"]));
        assert!(is_active("COMPLETING") && is_active("CONFIGURING") && is_active("SUSPENDED"));
        for s in ["COMPLETED", "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL"] {
            assert!(!is_active(s), "{s}");
        }
    }

    #[test]
    fn scontrol_output() {
        let text = "JobId=12 JobName=lab-x-y UserId=me(1) JobState=CANCELLED Reason=None \
                    Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 ExitCode=0:15\n";
        let info = parse_scontrol(text);
        assert_eq!(info.state.as_deref(), Some("CANCELLED"));
        assert_eq!(info.reason, None);
        assert_eq!(info.signal, Some(15));
        let exit = describe_end("12", None, Some(info));
        assert_eq!(exit.signal, Some(15));
        assert_eq!(exit.code, None);
        assert_eq!(
            exit.describe(),
            "was killed by signal 15 (Slurm job 12 CANCELLED)"
        );
        let t = parse_scontrol("JobState=TIMEOUT Reason=TimeLimit ExitCode=0:0");
        assert_eq!(
            describe_end("9", None, Some(t)).describe(),
            "ended (Slurm job 9 TIMEOUT, reason TimeLimit)"
        );
        assert_eq!(
            describe_end("9", Some("PREEMPTED"), None).describe(),
            "ended (Slurm job 9 PREEMPTED)"
        );
        assert_eq!(
            describe_end("9", None, None).describe(),
            "ended (Slurm job 9 left the queue)"
        );
    }
}
