//! Integration tests of the engine's state machine, one module per topic, plus property tests.

mod billing;
mod cache;
mod cache_props;
mod config;
mod deploy;
mod deploy_props;
mod failures;
mod fixture;
mod learned;
mod lifecycle;
mod migrate;
mod props;
mod queue;
mod spot;
