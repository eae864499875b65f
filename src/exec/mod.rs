//! Running stages: the dispatcher (the only index owner), the local executor's worker processes,
//! the Slurm executor's jobs, resources and progress. The worker side is `crate::worker`, the
//! files between the two `crate::task`; stage kinds' own logic lives in `stages`, which this
//! module never calls.

mod dispatcher;
pub mod executor;
pub mod local;
pub mod manifest;
pub mod progress;
pub mod resources;
pub mod routed;
pub mod slurm;

pub use dispatcher::{RunOptions, RunOutcome, StageOutcome, install_interrupt_handler, run};
