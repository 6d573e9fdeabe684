//! # NovaCron learned scheduling
//!
//! Models trained on simulated experience, exported to the engine's own model format and run
//! unchanged by the engine's `learned` placement policy.
//!
//! ## Data
//! [`dataset`] runs scenarios in the simulator and watches the engine through
//! [`sim::run::Observer`]. At every first placement of a request it asks the engine for the
//! feasible candidates and their features ([`engine::policy::learned::candidate_features`], the
//! very function the learned policy calls), one row per candidate. After the run, each row gets the
//! outcome known in hindsight: what serving the VM's life from that candidate would have cost
//! (the price path the run really took, billing rules, egress), whether a spot candidate would have
//! been interrupted (the chosen one: whether it was; the others: drawn from the hazard the cloud
//! really applied, storms included), whether an outage hit its location, and penalties for both.
//! Rows go to Parquet with the feature schema in the file's metadata.
//!
//! ## Models
//! [`classic`] trains linfa models (a decision tree and a random forest on cost classes, a linear
//! regression of cost, a logistic regression of spot interruption); [`mlp`] trains a burn
//! multi-layer perceptron on the flex CPU backend in `f64`, with a validation split, early stopping
//! and training curves; [`bandit`] trains a contextual bandit over the candidates with REINFORCE
//! (burn), its reward built from the multi-objective weights; [`boosted`] trains gradient-boosted
//! trees with perpetual. Every trainer writes an [`engine::ModelArtifact`]; tests check that the
//! engine's evaluation of it matches the library's own predictions on held-out rows.
//!
//! ## Online learning
//! [`online`] runs a drift scenario with a logistic interruption model, tracks its accuracy over a
//! sliding window of outcomes as they become known, retrains it on recent outcomes when the
//! accuracy falls under the threshold (the `AISchedulingPolicy`'s `learningConfig`), and replays
//! the run with the new model from then on ([`engine::ModelSource::Schedule`]); [`plots`] draws
//! the training curves and the drift figures.
//!
//! ## Evaluation
//! [`evaluate`] runs hand-written and learned policies on scenarios and seeds not trained on and
//! reports cost, availability, rejections, interruptions and regret against the hindsight oracle
//! (the cheapest candidate of each decision, knowing the future).

pub mod bandit;
pub mod boosted;
pub mod classic;
pub mod dataset;
pub mod evaluate;
pub mod mlp;
pub mod online;
pub mod plots;

/// Errors of the learning library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A simulation failed.
    #[error(transparent)]
    Sim(#[from] sim::Error),
    /// A scenario could not be read.
    #[error(transparent)]
    Scenario(#[from] sim::ScenarioError),
    /// A dataset could not be read or written.
    #[error("{path}: {message}")]
    Data {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Training failed.
    #[error("training {model}: {message}")]
    Training {
        /// Which model.
        model: String,
        /// What went wrong.
        message: String,
    },
    /// Bad input (an option, a model file).
    #[error("{0}")]
    Input(String),
}

/// Result with the learning library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A 64-bit mix (SplitMix64's finaliser): deterministic pseudo-random numbers from keys.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in `[0, 1)` from keys.
pub fn unit(keys: &[u64]) -> f64 {
    let mut h = 0x5EED_u64;
    for k in keys {
        h = mix64(h ^ k);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}
