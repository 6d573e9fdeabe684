//! The operator's integration tests: one binary, a module per topic.

mod apiserver;
mod aws;
mod azure;
mod cache;
mod cache_controller;
mod common;
mod conformance;
mod controller;
mod crds;
mod decision_log;
mod e2e_script;
mod equivalence;
mod federation;
mod gcp;
mod http;
mod leader;
mod metrics;
mod migrate;
mod policy;
mod tracker;
mod translate;
mod vmcluster;
