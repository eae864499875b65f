//! The dispatcher: schedules stale stages over the DAG within the machine's budget (Slurm stages
//! within `--max-jobs` instead), runs each attempt through an executor (a local worker process
//! or a Slurm job), verifies and commits results, and is the only code that writes records.
//! Each stage's key is claimed before it starts (`crate::store::Claim`): a key that another stage
//! of the run or another process is computing is waited for and reused, never computed twice.
//!
//! Commit protocol (docs/design.md, "Non-negotiable 5: atomic commit"): a worker writes into
//! `scratch/<task>/out`, then its result file; the dispatcher re-hashes the folder, renames it to
//! `objects/<digest>`, and only then writes the record file. A crash at any point leaves either
//! no record (and a scratch folder that the next run deletes) or a complete one.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Instant, SystemTime};

use super::ExecError as Error;
use crate::dsl::template::render_command;
use crate::dsl::{Dep, Experiment};
use crate::kinds::StageKind;
use crate::plan::{self, Plan, PlanOptions, Reason, StageKey, StageState};
use crate::store::{Claim, ClaimGuard, Holder, ObjectState, OutRecord, StageRecord, Store};

use super::executor::{Executor, Launched, TaskEnd, WorkerExit};
use super::progress::{Progress, Verb};
use super::resources::Budget;
use crate::task::{
    ResultFile, TASK_FORMAT, TaskFile, TaskStatus, stderr_path, stdout_path, write_json_atomic,
};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// CPU slots (`-j`); at least 1.
    pub jobs: u32,
    /// GPU inventory.
    pub gpus: Vec<String>,
    pub keep_going: bool,
    pub plan: PlanOptions,
    /// Print every reason a stage runs, not only the first.
    pub verbose: bool,
    /// Stages that run on a cluster, by index (absent: local). They take no local CPU slot or
    /// GPU: the cluster queues them and gives them their devices.
    pub remote: Vec<bool>,
    /// At most this many remote stages submitted at once (`--max-jobs`); at least 1.
    pub max_remote: u32,
}

/// What happened to one stage in a run.
#[derive(Debug, Clone)]
pub enum StageOutcome {
    Fresh(Box<StageRecord>),
    Ran(Box<StageRecord>),
    Failed {
        message: String,
        attempts: u32,
        stdout: String,
        stderr: String,
    },
    /// Not run because an upstream stage failed.
    Skipped {
        because: String,
    },
    /// Not run: the run was interrupted, or stopped after a failure (no `--keep-going`).
    NotRun,
}

pub struct RunOutcome {
    pub stages: Vec<StageOutcome>,
    /// Why each stage that ran was stale.
    pub reasons: Vec<Vec<Reason>>,
    pub interrupted: bool,
}

enum Event {
    Finished(TaskEnd),
    Interrupt,
}

static INTERRUPT: Mutex<Option<Sender<Event>>> = Mutex::new(None);

/// Installs the Ctrl-C (and SIGTERM) handler once per process. A run in progress stops cleanly:
/// running tasks are killed and nothing partial is committed.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        let guard = INTERRUPT.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(tx) => {
                let _ = tx.send(Event::Interrupt);
            }
            None => std::process::exit(crate::exit::INTERRUPTED),
        }
    });
}

struct Running {
    launched: Launched,
    attempt: u32,
    scratch: PathBuf,
    cpus: u32,
    devices: Vec<String>,
    /// Holds local budget (false for a cluster job).
    local: bool,
    started: Instant,
    started_at: String,
    command: Option<String>,
    threads: u32,
    /// This process's claim on the key, released when the attempt is over.
    _claim: ClaimGuard,
}

/// Why a stage that could start waits for its key instead.
enum KeyWait {
    /// Another stage of this run computes the same key.
    InRun(usize),
    /// Another process computes it (shown once, re-tried every [`CLAIM_POLL`]).
    Elsewhere,
}

/// How often a stage waiting for another process's claim tries again.
const CLAIM_POLL: std::time::Duration = std::time::Duration::from_millis(200);

enum Slot {
    /// Stale, upstream still running.
    Waiting,
    Ready {
        key: StageKey,
        attempt: u32,
    },
    Running(Box<Running>, StageKey),
    /// Ready, but its key is being computed by someone else: reused once that is done.
    KeyWait {
        key: StageKey,
        attempt: u32,
        on: KeyWait,
    },
    Finished,
}

struct Dispatcher<'a> {
    exp: &'a Experiment,
    store: &'a Store,
    opts: &'a RunOptions,
    progress: &'a Progress,
    inputs: plan::InputDigests,
    budget: Budget,
    slots: Vec<Slot>,
    committed: Vec<Option<StageRecord>>,
    outcomes: Vec<StageOutcome>,
    reasons: Vec<Vec<Reason>>,
    downstream: Vec<Vec<usize>>,
    ready: VecDeque<usize>,
    task_tx: Sender<TaskEnd>,
    executor: &'a mut dyn Executor,
    stopping: bool,
    interrupted: bool,
    /// Stages whose "Waiting" line was printed (once per stage).
    announced: Vec<bool>,
    /// Another process uses the store: ready stages start in key order rather than experiment
    /// order, so that dispatchers which share stages spread over them instead of all starting
    /// the same ones first and waiting for each other at the end.
    spread: bool,
}

/// Runs every stale stage of `plan`. Returns what happened to each stage; an `Err` is an
/// internal failure (the store could not be written).
pub fn run(
    exp: &Experiment,
    store: &Store,
    plan: Plan,
    opts: &RunOptions,
    progress: &Progress,
    executor: &mut dyn Executor,
) -> Result<RunOutcome, Error> {
    let (tx, rx) = channel();
    // Task ends arrive on their own channel and are forwarded into the event loop.
    let (task_tx, task_rx) = channel::<TaskEnd>();
    let forward = tx.clone();
    std::thread::spawn(move || {
        for end in task_rx {
            if forward.send(Event::Finished(end)).is_err() {
                break;
            }
        }
    });
    *INTERRUPT.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx.clone());
    let n = exp.stages.len();
    let mut downstream = vec![Vec::new(); n];
    for i in 0..n {
        for u in plan::upstream_of(exp, i) {
            downstream[u].push(i);
        }
    }
    let mut d = Dispatcher {
        exp,
        store,
        opts,
        progress,
        inputs: plan.inputs,
        budget: Budget::new(opts.jobs.max(1), opts.gpus.clone()),
        slots: Vec::with_capacity(n),
        committed: vec![None; n],
        outcomes: vec![StageOutcome::NotRun; n],
        reasons: vec![Vec::new(); n],
        downstream,
        ready: VecDeque::new(),
        task_tx,
        executor,
        stopping: false,
        interrupted: false,
        announced: vec![false; n],
        spread: !store.live_sessions()?.is_empty(),
    };
    for (idx, state) in plan.states.into_iter().enumerate() {
        match state {
            StageState::Fresh { key, record } => {
                d.mark_fresh(idx, &key, *record)?;
                d.slots.push(Slot::Finished);
            }
            StageState::Stale {
                key: Some(key),
                reasons,
            } => {
                d.reasons[idx] = reasons;
                d.slots.push(Slot::Ready { key, attempt: 1 });
                d.ready.push_back(idx);
            }
            StageState::Stale { key: None, reasons } => {
                d.reasons[idx] = reasons;
                d.slots.push(Slot::Waiting);
            }
        }
    }
    let result = d.main_loop(&rx);
    *INTERRUPT.lock().unwrap_or_else(|p| p.into_inner()) = None;
    result?;
    Ok(RunOutcome {
        stages: d.outcomes,
        reasons: d.reasons,
        interrupted: d.interrupted,
    })
}

impl Dispatcher<'_> {
    fn mark_fresh(&mut self, idx: usize, key: &StageKey, record: StageRecord) -> Result<(), Error> {
        let stage = &self.exp.stages[idx];
        self.store
            .set_latest(&self.exp.name, &stage.name, &key.json)?;
        self.progress.line(Verb::Fresh, &stage.name, "");
        self.progress.advance(&self.running_names());
        self.outcomes[idx] = StageOutcome::Fresh(Box::new(record.clone()));
        self.committed[idx] = Some(record);
        Ok(())
    }

    fn running_names(&self) -> Vec<String> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Slot::Running(..)))
            .map(|(i, _)| self.exp.stages[i].name.clone())
            .collect()
    }

    fn any_running(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::Running(..)))
    }

    fn main_loop(&mut self, rx: &Receiver<Event>) -> Result<(), Error> {
        loop {
            if !self.stopping && !self.interrupted {
                self.schedule()?;
            }
            self.store.checkpoint();
            let elsewhere = self.slots.iter().any(|s| {
                matches!(
                    s,
                    Slot::KeyWait {
                        on: KeyWait::Elsewhere,
                        ..
                    }
                )
            });
            let polling = elsewhere && !self.stopping && !self.interrupted;
            if !self.any_running() && !polling {
                return Ok(());
            }
            let event = if elsewhere {
                match rx.recv_timeout(CLAIM_POLL) {
                    Ok(e) => Some(e),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(_) => return Err(Error::Internal("event channel closed".into())),
                }
            } else {
                Some(
                    rx.recv()
                        .map_err(|_| Error::Internal("event channel closed".into()))?,
                )
            };
            match event {
                Some(Event::Finished(end)) => self.finished(end.idx, end.exit)?,
                Some(Event::Interrupt) => self.interrupt(),
                None => self.requeue(|on| matches!(on, KeyWait::Elsewhere)),
            }
        }
    }

    /// Starts every ready stage the budget allows, in experiment order (in key order once another
    /// process uses the store: see `spread`).
    fn schedule(&mut self) -> Result<(), Error> {
        if self.spread {
            let key = |s: &Slot| match s {
                Slot::Ready { key, .. } => key.hash.clone(),
                _ => String::new(),
            };
            let mut ready: Vec<usize> = self.ready.drain(..).collect();
            ready.sort_by_cached_key(|&i| key(&self.slots[i]));
            self.ready = ready.into();
        }
        let mut deferred = VecDeque::new();
        while let Some(idx) = self.ready.pop_front() {
            if self.is_remote(idx) {
                let submitted = (0..self.slots.len())
                    .filter(|&i| self.is_remote(i) && matches!(self.slots[i], Slot::Running(..)))
                    .count();
                if submitted < self.opts.max_remote.max(1) as usize {
                    self.start(idx, Vec::new())?;
                } else {
                    deferred.push_back(idx);
                }
                continue;
            }
            let r = &self.exp.stages[idx].resources;
            match self.budget.try_take(r.cpus, r.gpus) {
                Some(devices) => {
                    let (cpus, gpus) = (r.cpus, devices.clone());
                    if !self.start(idx, devices)? {
                        self.budget.give_back(cpus, gpus);
                    }
                }
                None => deferred.push_back(idx),
            }
        }
        self.ready = deferred;
        self.progress.set_running(&self.running_names());
        Ok(())
    }

    fn is_remote(&self, idx: usize) -> bool {
        self.opts.remote.get(idx).copied().unwrap_or(false)
    }

    fn resolve_inputs(&self, idx: usize) -> BTreeMap<String, Vec<PathBuf>> {
        let stage = &self.exp.stages[idx];
        stage
            .deps
            .iter()
            .map(|(name, dep)| {
                let paths = match dep {
                    Dep::Path(p) => vec![self.exp.workspace.join(p)],
                    Dep::Stage { stages, out, .. } => stages
                        .iter()
                        .map(|&u| {
                            let rec = self.committed[u]
                                .as_ref()
                                .expect("upstream committed before start");
                            self.store
                                .object_path(&rec.object)
                                .join(&rec.outs[out].path)
                        })
                        .collect(),
                };
                (name.clone(), paths)
            })
            .collect()
    }

    /// Moves the stages waiting for a key that `waits_on` selects back to the ready queue: they
    /// find the key fresh now, or compute it themselves (its holder failed or died).
    fn requeue(&mut self, waits_on: impl Fn(&KeyWait) -> bool) {
        for idx in 0..self.slots.len() {
            if matches!(&self.slots[idx], Slot::KeyWait { on, .. } if waits_on(on)) {
                let Slot::KeyWait { key, attempt, .. } =
                    std::mem::replace(&mut self.slots[idx], Slot::Finished)
                else {
                    unreachable!()
                };
                self.slots[idx] = Slot::Ready { key, attempt };
                self.ready.push_back(idx);
            }
        }
    }

    /// Stages that waited for stage `idx` of this run to compute their key try again.
    fn release_key_waiters(&mut self, idx: usize) {
        self.requeue(|on| matches!(on, KeyWait::InRun(i) if *i == idx));
    }

    /// Claims the key of a ready stage. `None`: the stage does not start now (its key is
    /// computed elsewhere and it waits, or it was just found fresh).
    fn claim(
        &mut self,
        idx: usize,
        key: &StageKey,
        attempt: u32,
    ) -> Result<Option<ClaimGuard>, Error> {
        let name = self.exp.stages[idx].name.clone();
        let in_run = self.slots.iter().enumerate().find_map(|(i, s)| match s {
            Slot::Running(_, k) if k.hash == key.hash => Some(i),
            _ => None,
        });
        let wait = |on| Slot::KeyWait {
            key: key.clone(),
            attempt,
            on,
        };
        if let Some(other) = in_run {
            let detail = format!(
                "same key as `{}`, computed once",
                self.exp.stages[other].name
            );
            self.progress.line(Verb::Waiting, &name, &detail);
            self.slots[idx] = wait(KeyWait::InRun(other));
            return Ok(None);
        }
        match self.store.try_claim(&key.hash, &name)? {
            Claim::Busy(holder) => {
                self.spread = true;
                self.announce_wait(idx, &holder);
                self.slots[idx] = wait(KeyWait::Elsewhere);
                Ok(None)
            }
            Claim::Held(guard) => {
                // Whoever held it may have just committed it: reused, not computed again.
                let pin = self.store.pin_guard()?;
                let state = plan::assess(
                    self.exp,
                    idx,
                    key.clone(),
                    self.store,
                    &pin,
                    &self.opts.plan,
                )?;
                drop(pin);
                if let StageState::Fresh { key, record } = state {
                    self.reasons[idx].clear();
                    self.mark_fresh(idx, &key, *record)?;
                    self.release_downstream(idx)?;
                    return Ok(None);
                }
                Ok(Some(guard))
            }
        }
    }

    fn announce_wait(&mut self, idx: usize, holder: &Holder) {
        if !std::mem::replace(&mut self.announced[idx], true) {
            let name = &self.exp.stages[idx].name;
            self.progress
                .line(Verb::Waiting, name, &format!("computed by {holder}"));
        }
    }

    /// Starts a ready stage; `false` when it did not start (see [`Dispatcher::claim`]).
    fn start(&mut self, idx: usize, devices: Vec<String>) -> Result<bool, Error> {
        let Slot::Ready { key, attempt } = std::mem::replace(&mut self.slots[idx], Slot::Finished)
        else {
            unreachable!("only ready stages are started");
        };
        let Some(claim) = self.claim(idx, &key, attempt)? else {
            return Ok(false);
        };
        let stage = &self.exp.stages[idx];
        let remote = self.is_remote(idx);
        // A cluster job gets the CPUs it asks for, whatever this machine has.
        let threads = if remote {
            stage.resources.cpus.max(1)
        } else {
            self.budget.clamp_cpus(stage.resources.cpus)
        };
        let scratch = self.store.new_scratch(&stage.name)?;
        let out_dir = scratch.join("out");
        let inputs = self.resolve_inputs(idx);
        let command = (stage.kind == StageKind::Command)
            .then(|| render_command(stage, &self.exp.workspace, &inputs, &out_dir, threads));
        let task = TaskFile {
            format: TASK_FORMAT,
            stage: stage.name.clone(),
            kind: stage.kind,
            workspace: self.exp.workspace.clone(),
            scratch: scratch.clone(),
            out_dir,
            outs: stage.outs.clone(),
            command: command.clone(),
            config: stage.config.clone(),
            inputs,
            seed: stage.seed,
            threads,
            devices: devices.clone(),
            // A cluster job with GPUs keeps the devices the cluster set for it.
            pin_devices: !(remote && stage.resources.gpus > 0),
            backend: self.exp.backend,
        };
        let task_path = scratch.join("task.json");
        write_json_atomic(&task_path, &task).map_err(|e| Error::io(&task_path, e))?;
        let launched = self
            .executor
            .launch(idx, &task_path, &scratch, self.task_tx.clone())?;
        let detail = match (self.opts.verbose, self.reasons[idx].as_slice()) {
            (_, []) => String::new(),
            (true, all) => all
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            (false, [first, ..]) => first.to_string(),
        };
        let verb = if attempt > 1 { Verb::Retry } else { Verb::Run };
        let detail = if attempt > 1 {
            format!("attempt {attempt}")
        } else {
            detail
        };
        self.progress.line(verb, &stage.name, &detail);
        self.slots[idx] = Slot::Running(
            Box::new(Running {
                launched,
                attempt,
                scratch,
                cpus: stage.resources.cpus,
                devices,
                local: !remote,
                started: Instant::now(),
                started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                command,
                threads,
                _claim: claim,
            }),
            key,
        );
        Ok(true)
    }

    fn finished(&mut self, idx: usize, exit: WorkerExit) -> Result<(), Error> {
        let Slot::Running(run, key) = std::mem::replace(&mut self.slots[idx], Slot::Finished)
        else {
            return Ok(());
        };
        self.executor.reap(&run.launched);
        if run.local {
            self.budget.give_back(run.cpus, run.devices.clone());
        }
        if self.interrupted {
            remove_scratch(&run.scratch);
            return Ok(());
        }
        let stage = &self.exp.stages[idx];
        let result: Option<ResultFile> = fs::read(run.scratch.join("result.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let stdout = tail(&stdout_path(&run.scratch));
        let stderr = tail(&stderr_path(&run.scratch));
        // A stage that changed a stored input (root ignores read-only modes) fails, and the
        // damaged object goes, so that nothing is computed from it again.
        if let Some(failure) = self.modified_input(idx) {
            remove_scratch(&run.scratch);
            self.release_key_waiters(idx);
            return self.fail(idx, failure, run.attempt, stdout, stderr);
        }
        let failure = match &result {
            Some(r) if r.status == TaskStatus::Ok => {
                match self.commit(idx, &run, &key, r, stdout.clone(), stderr.clone()) {
                    Ok(record) => {
                        remove_scratch(&run.scratch);
                        let secs = run.started.elapsed().as_secs_f64();
                        self.progress
                            .line(Verb::Done, &stage.name, &format!("{secs:.2}s"));
                        self.progress.advance(&self.running_names());
                        self.outcomes[idx] = StageOutcome::Ran(Box::new(record.clone()));
                        self.committed[idx] = Some(record);
                        self.release_key_waiters(idx);
                        return self.release_downstream(idx);
                    }
                    Err(e) => format!("the result could not be committed: {}", with_causes(&e)),
                }
            }
            Some(r) => {
                let message = r
                    .message
                    .clone()
                    .unwrap_or_else(|| "the stage failed".to_string());
                // The executor may know why, e.g. a Slurm job cancelled or out of time.
                match &exit.note {
                    Some(note) => format!("{message} ({note})"),
                    None => message,
                }
            }
            None if exit.code == Some(crate::task::EXIT_DISK_FULL) => format!(
                "No space left on device: the worker could not write its result into `{}`; \
                 nothing was committed, free space on the store's filesystem and run again",
                run.scratch.display()
            ),
            None => {
                let how = exit.describe();
                let log = tail(&run.scratch.join("worker.log"));
                let log = log.trim();
                if log.is_empty() {
                    format!("the worker {how} before writing a result")
                } else {
                    format!("the worker {how} before writing a result: {log}")
                }
            }
        };
        remove_scratch(&run.scratch);
        if run.attempt <= stage.retries {
            self.progress.line(Verb::Retry, &stage.name, &failure);
            self.slots[idx] = Slot::Ready {
                key,
                attempt: run.attempt + 1,
            };
            self.ready.push_back(idx);
            return Ok(());
        }
        self.release_key_waiters(idx);
        self.fail(idx, failure, run.attempt, stdout, stderr)
    }

    /// The first stored input of stage `idx` that no longer hashes to its name, as a failure
    /// message; the damaged object and its record are removed.
    fn modified_input(&mut self, idx: usize) -> Option<String> {
        let stage = &self.exp.stages[idx];
        for (name, dep) in &stage.deps {
            let Dep::Stage { stages, out, .. } = dep else {
                continue;
            };
            for &u in stages {
                let rec = self.committed[u].as_ref()?;
                if self.store.verify_object(&rec.object, false) == ObjectState::Intact {
                    continue;
                }
                let _ = self.store.remove_record(&rec.key);
                let _ = self.store.remove_object(&rec.object);
                return Some(format!(
                    "stage `{}` modified its input `{name}` (stage:{}/{out}); the damaged \
                     output of `{}` was removed and is recomputed by the next run",
                    stage.name, self.exp.stages[u].name, self.exp.stages[u].name
                ));
            }
        }
        None
    }

    fn fail(
        &mut self,
        idx: usize,
        failure: String,
        attempts: u32,
        stdout: String,
        stderr: String,
    ) -> Result<(), Error> {
        let stage = &self.exp.stages[idx];
        self.progress.line(Verb::Failed, &stage.name, &failure);
        let shown = if stderr.trim().is_empty() {
            &stdout
        } else {
            &stderr
        };
        for line in last_lines(shown, 10) {
            self.progress.note(&format!("{:>12} {line}", "|"));
        }
        self.progress.advance(&self.running_names());
        self.outcomes[idx] = StageOutcome::Failed {
            message: failure,
            attempts,
            stdout,
            stderr,
        };
        self.skip_downstream(idx);
        if !self.opts.keep_going {
            self.stopping = true;
        }
        Ok(())
    }

    /// Verifies and commits a successful attempt: object first, then the record.
    fn commit(
        &self,
        idx: usize,
        run: &Running,
        key: &StageKey,
        result: &ResultFile,
        stdout: String,
        stderr: String,
    ) -> Result<StageRecord, Error> {
        let stage = &self.exp.stages[idx];
        let claimed = result
            .object
            .as_deref()
            .ok_or_else(|| Error::Internal("the worker reported no object digest".into()))?;
        let out_dir = run.scratch.join("out");
        let pin = self.store.pin_guard()?;
        self.store.commit_object(&pin, &out_dir, claimed)?;
        let outs = stage
            .outs
            .iter()
            .map(|(name, rel)| {
                let digest = result.outs.get(name).cloned().unwrap_or_default();
                (
                    name.clone(),
                    OutRecord {
                        path: rel.clone(),
                        digest,
                    },
                )
            })
            .collect();
        let record = StageRecord {
            key: key.hash.clone(),
            key_json: key.json.clone(),
            experiment: self.exp.name.clone(),
            stage: stage.name.clone(),
            kind: stage.kind.name().to_string(),
            object: claimed.to_string(),
            outs,
            started_at: run.started_at.clone(),
            duration_ms: run.started.elapsed().as_millis() as u64,
            attempts: run.attempt,
            host: result.host.clone(),
            threads: run.threads,
            devices: run.devices.clone(),
            command: run.command.clone(),
            stdout,
            stderr,
            metrics: result.metrics.clone(),
        };
        self.store.put_record(&record)?;
        Ok(record)
    }

    /// Computes the keys of stages whose upstream stages are now all committed; they are fresh
    /// (an unchanged upstream output: early cut-off) or become ready.
    fn release_downstream(&mut self, idx: usize) -> Result<(), Error> {
        let pin = self.store.pin_guard()?;
        let mut queue = vec![idx];
        while let Some(u) = queue.pop() {
            for d in self.downstream[u].clone() {
                if !matches!(self.slots[d], Slot::Waiting) {
                    continue;
                }
                let Some(key) = plan::key_for(self.exp, d, &self.inputs, &self.committed) else {
                    continue;
                };
                match plan::assess(self.exp, d, key, self.store, &pin, &self.opts.plan)? {
                    StageState::Fresh { key, record } => {
                        self.slots[d] = Slot::Finished;
                        self.reasons[d].clear();
                        self.mark_fresh(d, &key, *record)?;
                        queue.push(d);
                    }
                    StageState::Stale { key, reasons } => {
                        let key = key.expect("assess always returns the key it was given");
                        // Keep the more telling reason: what changed upstream, not "will run".
                        self.reasons[d] = reasons;
                        self.slots[d] = Slot::Ready { key, attempt: 1 };
                        self.ready.push_back(d);
                    }
                }
            }
        }
        Ok(())
    }

    fn skip_downstream(&mut self, idx: usize) {
        let failed = self.exp.stages[idx].name.clone();
        let mut queue = self.downstream[idx].clone();
        while let Some(d) = queue.pop() {
            if matches!(
                self.slots[d],
                Slot::Waiting | Slot::Ready { .. } | Slot::KeyWait { .. }
            ) {
                self.slots[d] = Slot::Finished;
                self.ready.retain(|&r| r != d);
                self.progress.line(
                    Verb::Skipped,
                    &self.exp.stages[d].name,
                    &format!("upstream `{failed}` failed"),
                );
                self.outcomes[d] = StageOutcome::Skipped {
                    because: failed.clone(),
                };
                queue.extend(self.downstream[d].iter().copied());
            }
        }
    }

    /// Ctrl-C: stop every running task; their ends are awaited but nothing is committed.
    fn interrupt(&mut self) {
        if self.interrupted {
            return;
        }
        self.interrupted = true;
        let running: Vec<Launched> = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Running(r, _) => Some(r.launched.clone()),
                _ => None,
            })
            .collect();
        if !running.is_empty() {
            self.progress.note("interrupted: stopping running stages");
        }
        self.executor.cancel(&running);
    }
}

fn remove_scratch(p: &Path) {
    let _ = fs::remove_dir_all(p);
}

/// The last 64 KiB of a log file.
fn tail(p: &Path) -> String {
    const MAX: u64 = 64 * 1024;
    let Ok(mut f) = fs::File::open(p) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX {
        let _ = f.seek(SeekFrom::Start(len - MAX));
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn last_lines(s: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// An error and its causes on one line (`store i/o error on `…`: Not a directory (os error 20)`),
/// for a stage's failure message.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(&format!(": {c}"));
        source = c.source();
    }
    s
}
