//! # NovaCron operator (placeholder)
//!
//! The Kubernetes operator will run the same [`engine`] against real clouds from `novacron.io/v1`
//! resources. This crate is a placeholder until that work lands: it only proves the engine links
//! without the simulator.

/// The engine the operator will drive, re-exported so that the dependency is real.
pub use engine;

#[cfg(test)]
mod tests {
    #[test]
    fn engine_links_without_the_simulator() {
        assert!(engine::PolicyConfig::default_for("cost-optimized").is_some());
    }
}
