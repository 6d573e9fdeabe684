//! Distributions of durations (lifetimes, provisioning delays), as written in scenarios:
//! `{ dist = "exponential", mean = "1h" }`, `{ dist = "lognormal", median = "45s", sigma = 0.4 }`,
//! `{ dist = "fixed", value = "2h" }`, `{ dist = "uniform", min = "1m", max = "10m" }`,
//! `{ dist = "pareto", scale = "10m", shape = 1.5 }`, `{ dist = "weibull", scale = "1h", shape = 0.7 }`.

use engine::SimDuration;
use rand::RngExt;
use rand_distr::{Distribution, Exp, LogNormal, Pareto, Weibull};

use crate::rng::SimRng;

/// A validated duration distribution.
#[derive(Clone, Debug)]
pub enum DurationDist {
    /// Always the same.
    Fixed(SimDuration),
    /// Uniform between two bounds.
    Uniform(f64, f64),
    /// Exponential (seconds), with its mean.
    Exponential(Exp<f64>, f64),
    /// Log-normal (seconds).
    LogNormal(LogNormal<f64>),
    /// Pareto (seconds): heavy-tailed.
    Pareto(Pareto<f64>),
    /// Weibull (seconds).
    Weibull(Weibull<f64>),
}

impl DurationDist {
    /// Draws one duration.
    pub fn sample(&self, rng: &mut SimRng) -> SimDuration {
        let secs = match self {
            DurationDist::Fixed(d) => return *d,
            DurationDist::Uniform(lo, hi) => {
                if hi > lo {
                    rng.random_range(*lo..*hi)
                } else {
                    *lo
                }
            }
            DurationDist::Exponential(d, _) => d.sample(rng),
            DurationDist::LogNormal(d) => d.sample(rng),
            DurationDist::Pareto(d) => d.sample(rng),
            DurationDist::Weibull(d) => d.sample(rng),
        };
        SimDuration::from_secs_f64(secs)
    }

    /// The mean in seconds (infinite for Pareto with shape <= 1).
    pub fn mean_secs(&self) -> f64 {
        match self {
            DurationDist::Fixed(d) => d.as_secs_f64(),
            DurationDist::Uniform(lo, hi) => (lo + hi) / 2.0,
            DurationDist::Exponential(_, mean) => *mean,
            _ => f64::NAN,
        }
    }
}
