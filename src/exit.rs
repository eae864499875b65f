//! The process exit codes, documented in the README: scripts rely on them. A leaf, so that the
//! CLI, the dispatcher and the worker name the same numbers.

/// Everything went as asked.
pub const OK: i32 = 0;
/// A bug or an environment failure (I/O error on the store, a panic).
pub const INTERNAL: i32 = 1;
/// The experiment or the command line is wrong; nothing was written.
pub const USAGE: i32 = 2;
/// At least one stage failed; what succeeded is committed.
pub const STAGE_FAILED: i32 = 3;
/// `--no-wait`: a stage to run is being computed by another `orchestrate` process.
pub const STORE_BUSY: i32 = 4;
/// `reproduce`: the recomputation differs from its reference beyond the tolerance policy.
pub const NOT_REPRODUCED: i32 = 5;
/// Interrupted by Ctrl-C (128 + SIGINT); running stages were killed, nothing partial committed.
pub const INTERRUPTED: i32 = 130;
