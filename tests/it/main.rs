//! Integration tests: each drives the real `orchestrate` binary in a temporary workspace.

mod common;
