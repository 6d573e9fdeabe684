//! A small dataset shared by the tests: the first 90 minutes of `spot-storm.toml` (before its
//! storm), two seeds, two behaviour policies.

use std::path::PathBuf;
use std::sync::OnceLock;

use engine::{PolicyConfig, SimDuration};
use learn::dataset::{self, Dataset, Penalties};
use sim::Scenario;

pub fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("scenarios").join(name)
}

/// A shipped scenario cut to its first `minutes`.
pub fn short(name: &str, minutes: u64) -> Scenario {
    let mut s = sim::scenario::load(&scenario_path(name)).expect("shipped scenario loads");
    s.duration = SimDuration::from_secs(minutes * 60);
    s
}

pub fn data() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let s = short("spot-storm.toml", 90);
        let policies = [None, PolicyConfig::default_for("cost-optimized")];
        dataset::build(&[("spot-storm".into(), s)], 1..3, &policies, Penalties::default()).expect("records")
    })
}
