//! Sweeps: one scenario file is one point; a sweep is a grid of them.
//!
//! A sweep file ([`spec`], TOML, parsed as strictly as a scenario) names scenario files, the
//! placement policies to try, scenario keys to vary (`[params]`, by dotted path such as
//! `"engine.retry_backoff"`) and to fix (`set`), and the seeds. [`grid::Grid`] expands it into
//! runs in a fixed order — scenario, then parameter values (first key slowest), then policy, then
//! seed — and checks every point before anything runs: each override is written into the scenario's
//! TOML document and the result goes through the scenario checker, so an override is validated
//! exactly like a hand-edited file.
//!
//! [`exec`] runs the grid (or a deterministic shard of it: runs `i` with `i % N == I`) on a rayon
//! pool. Each run's [`crate::results::Summary`] is flattened generically into one row
//! ([`table::flatten`]: numbers, booleans and strings as they are, maps as `name.key`, lists of named
//! objects as `name.<entry name>.key`), appended to a journal as it finishes, and the table is
//! written to `runs.parquet` in grid order at the end. Nothing in a row depends on the wall clock
//! or on which thread ran it, so the table is byte-identical across runs and thread counts, and
//! [`merge`] rebuilds exactly the same table from the shards of a grid.
//!
//! [`stats`] gives means with Student-t 95 % confidence intervals over seeds, the ranking a sweep
//! prints, and [`compare`] sets two results folders or two sweeps side by side. [`cli`] holds the
//! `sweep`, `merge` and `compare` commands of the `sim` binary.

pub mod cli;
pub mod compare;
pub mod exec;
pub mod grid;
pub mod merge;
pub mod spec;
pub mod stats;
pub mod table;

use std::path::PathBuf;

use crate::ScenarioError;

/// Errors of sweeps, merges and comparisons.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad sweep file, a bad scenario it names, or an override the scenario rejects.
    #[error(transparent)]
    Input(#[from] ScenarioError),
    /// A bad command-line value or an input folder that is not what it should be.
    #[error("{0}")]
    Usage(String),
    /// One run of the grid failed.
    #[error("run {run} ({what}): {source}")]
    Run {
        /// Grid index.
        run: usize,
        /// Scenario, policy and seed.
        what: String,
        /// Cause.
        source: Box<crate::Error>,
    },
    /// Reading or writing a file failed.
    #[error("{}: {message}", path.display())]
    Io {
        /// File or folder.
        path: PathBuf,
        /// Cause.
        message: String,
    },
}

impl Error {
    /// The process exit status for this error: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) | Error::Usage(_) => 2,
            Error::Run { source, .. } => match **source {
                crate::Error::Scenario(_) | crate::Error::Engine(_) => 2,
                _ => 1,
            },
            Error::Io { .. } => 1,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Error::Io { path: path.into(), message: e.to_string() }
    }
}

/// Result with the sweep [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// 64-bit FNV-1a: a stable fingerprint (not `DefaultHasher`, whose output may change between Rust
/// releases), used to tell grids apart.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }
    pub(crate) fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}
