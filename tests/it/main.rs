//! Integration tests: each drives the real `orchestrate` binary in a temporary workspace.

mod cache_rules;
mod common;
mod faults;
