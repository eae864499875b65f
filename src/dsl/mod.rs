//! The experiment language: YAML in, a validated [`Experiment`] with every sweep and replicate
//! expanded out. Owns parsing, schema checks, path confinement, placeholders and the stage graph.
//! Never touches the store or the file system beyond reading the experiment and checking that
//! declared paths exist.

mod error;
mod expand;
mod experiment;
mod load;
mod schema;
mod span;
pub mod template;

pub use error::DslError;
pub use experiment::{
    Dep, ExecutorKind, Experiment, Resources, SlurmSpec, Stage, coord_order, coord_text,
    coords_order, parse_time_limit,
};
pub use load::{load, parse, valid_experiment_name};
