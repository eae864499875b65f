//! Running stages: the dispatcher (the only index owner), the local executor's worker processes,
//! the Slurm executor's jobs, the worker side itself, resources and progress. Stage kinds' own
//! logic lives in `stages`.

mod dispatcher;
pub mod executor;
pub mod local;
pub mod manifest;
pub mod progress;
pub mod resources;
pub mod routed;
pub mod slurm;
pub mod task;
pub mod worker;

pub use dispatcher::{RunOptions, RunOutcome, StageOutcome, install_interrupt_handler, run};

use std::process::Command;

/// Makes a child die when its parent dies (Linux `PR_SET_PDEATHSIG`), so that a killed
/// dispatcher or worker leaves no orphan writing into a scratch folder.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
