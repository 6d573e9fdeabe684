//! Every shipped scenario is valid; the small ones run, and show what their header promises.

use sim::run::RunOptions;

/// Scenarios too big to run in a debug-build test (measured in release, see the README).
const LARGE: [&str; 3] = ["scale-1m.toml", "onprem-binpack.toml", "onprem-binpack-10k.toml"];

fn shipped() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(crate::root().join("scenarios"))
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_scenario_is_valid() {
    let files = shipped();
    assert!(files.len() >= 7, "expected the shipped scenarios, found {files:?}");
    for p in files {
        if let Err(e) = sim::scenario::load(&p) {
            panic!("{}: {e}", p.display());
        }
    }
}

#[test]
fn small_scenarios_run_and_serve_most_requests() {
    for p in shipped() {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if LARGE.contains(&name.as_str()) {
            continue;
        }
        let s = sim::scenario::load(&p).expect("valid");
        let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
        let m = &r.summary;
        assert!(m.requests_total > 0, "{name}: no requests");
        assert!(m.requests_served as f64 >= 0.5 * m.requests_total as f64, "{name}: served {} of {}", m.requests_served, m.requests_total);
        assert!(m.availability > 0.5 && m.availability <= 1.0, "{name}: availability {}", m.availability);
        assert!(m.total_cost_usd > 0.0, "{name}: free?");
    }
}

#[test]
fn burst_spills_from_aws_into_the_other_clouds() {
    let s = sim::scenario::load(&crate::scenario_path("burst.toml")).expect("valid");
    let r = sim::run(&s, &RunOptions::default(), &mut ()).expect("runs");
    let m = &r.summary;
    let provider = |v: &sim::results::VmRecord| v.first_offer.map(|o| s.catalog.provider_of(o));
    // Front-ends (shape 0, on demand) are placed on AWS before the burst (reserved m5.large there,
    // then the cheapest on-demand price, tied with Azure and first in catalog order)…
    let front = |lo: f64, hi: f64| r.vms.iter().filter(move |v| v.shape == Some(0) && v.arrival_s >= lo && v.arrival_s < hi);
    let before: Vec<_> = front(0.0, 7200.0).map(provider).collect();
    assert!(!before.is_empty() && before.iter().all(|p| *p == Some(engine::Provider::Aws)), "{before:?}");
    // …and spill into Azure and GCP during it, when AWS's capacity (halved by the crunch) runs out.
    let spilled = front(7200.0, 9900.0).filter(|v| matches!(provider(v), Some(engine::Provider::Azure | engine::Provider::Gcp))).count();
    assert!(spilled > 20, "only {spilled} front-ends spilled over");
    assert!(m.cloud.insufficient_capacity > 0, "the capacity crunch makes AWS create calls fail");
    assert!(m.availability > 0.95, "{}", m.availability);
}
