//! Integration tests of the learning crate, one module per topic.

mod cli;
mod common;
mod dataset;
mod exact;
mod online;
mod policy;
