//! orchestrate: reproducible machine-learning studies in medical imaging.
//!
//! A YAML experiment ([`dsl`]) becomes a DAG of stages with content-addressed keys ([`plan`],
//! [`fingerprint`]); the dispatcher ([`exec`]) runs what is stale as worker processes
//! ([`worker`], through the files of [`task`]) and commits outputs atomically into the store
//! ([`store`]); what stage kinds are lives in [`kinds`], how they run in [`stages`]; AUC
//! statistics in [`stats`]. The binary is a thin shell around [`cli::main`]. The layers, top to
//! bottom, are drawn in docs/design.md ("Layers") and checked by `tests/it/layers.rs`.

pub mod cli;
pub mod cohort;
pub mod csv;
pub mod dsl;
pub mod exec;
pub mod exit;
pub mod fingerprint;
pub mod kinds;
pub mod model;
pub mod multiplicity;
pub mod plan;
pub mod report;
pub mod results;
pub mod rng;
pub mod site;
pub mod stages;
pub mod stats;
pub mod store;
pub mod synth;
pub mod task;
pub mod verify;
pub mod worker;
