//! One file per stage kind: how a stage of that kind becomes a task (dispatcher side) and how a
//! task of that kind runs (worker side). The scheduling, caching and committing around them live
//! in `exec`; stage kinds never touch the store.

pub mod command;
