//! Integration tests: each drives the real `orchestrate` binary in a temporary workspace.

mod cache_rules;
mod cli;
mod common;
mod faults;
mod malformed;
mod slurm;
