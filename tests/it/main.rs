//! Integration tests: each drives the real `orchestrate` binary in a temporary workspace.

mod cache_rules;
mod cli;
mod common;
mod cpu_kernels;
mod data_stages;
mod evaluate;
mod faults;
mod hostile;
mod layers;
mod malformed;
mod models;
mod report;
mod science;
mod shared_store;
mod site;
mod slurm;
mod verify;
