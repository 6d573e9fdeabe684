//! Integration tests of the simulator: one binary, a module per topic.

mod bad_input;
mod cache;
mod cli;
mod determinism;
mod exact;
mod notebooks;
mod pricing;
mod recovery;
mod replay;
mod report;
mod scenarios;
mod schema;
mod sim_props;
mod strategies;
mod sweep;

use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A shipped scenario file.
pub fn scenario_path(name: &str) -> PathBuf {
    root().join("scenarios").join(name)
}
