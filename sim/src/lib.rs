//! # NovaCron simulator
//!
//! A discrete-event simulator that drives the [`engine`] against mock clouds. A [`Scenario`]
//! (TOML) describes regions, zones, offers and on-prem pools, how the clouds behave (provisioning
//! delays, API errors, spot prices and interruptions, outages), the workload (Poisson, diurnal,
//! bursty, or a replayed trace) and the faults to inject. [`run::run`] plays it to its end.
//!
//! ## The loop
//! Events sit in an [`queue::EventQueue`] ordered by `(time, sequence number)`, so ties resolve
//! the same way every run. Each component draws from its own seeded stream ([`rng::Streams`]),
//! so adding a component never shifts another's numbers. The clouds never call the engine; the
//! driver feeds the engine only what a real control plane would report (an instance is up, a
//! create call failed, a spot notice, a health change, a price change) and carries out the
//! engine's actions on the clouds. The engine runs unchanged, as it will in the operator.
//!
//! ## Results
//! A run produces per-VM records, a time series and the spot price changes ([`results`]), written
//! as Parquet through polars with a `summary.json` ([`output`]). The same scenario and seed give
//! byte-identical files.
//!
//! ## Caching
//! With a `[cache]` section, the control plane's reads (prices, health, VM state, metrics) go
//! through a modeled two-level cache run by the engine's cache policy ([`cache`]): the summary
//! then reports hit rates, API calls and throttling saved, and the cost of decisions made on
//! stale data.
//!
//! [`replay`] feeds an operator's decision log to fresh engines and checks each decides the same.

pub mod cache;
pub mod cloud;
pub mod dist;
#[cfg(feature = "parquet")]
pub mod output;
pub mod queue;
pub mod replay;
#[cfg(feature = "report")]
pub mod report;
pub mod results;
pub mod rng;
pub mod run;
pub mod scenario;
#[cfg(feature = "parquet")]
pub mod sweep;
pub mod trace;
pub mod workload;

pub use run::{RunOptions, run};
pub use scenario::{Scenario, ScenarioError};

/// Errors of the simulator library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scenario is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The engine refused its configuration.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// Writing results failed.
    #[error("{}: cannot write results: {message}", path.display())]
    Output {
        /// File or folder.
        path: std::path::PathBuf,
        /// Cause.
        message: String,
    },
}

/// Result with the simulator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
