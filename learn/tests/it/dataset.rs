//! Datasets: rows per candidate, hindsight outcomes, Parquet with the schema in its metadata.

use engine::policy::learned::{FEATURE_SCHEMA_VERSION, N_FEATURES};
use learn::dataset::{Dataset, parse_seeds};

use crate::common::data;

#[test]
fn every_decision_has_one_best_and_one_chosen_candidate() {
    let ds = data();
    assert!(ds.rows.len() > 1000, "{} rows", ds.rows.len());
    let mut decisions = std::collections::BTreeMap::new();
    for r in &ds.rows {
        let e = decisions.entry((r.seed, r.policy.clone(), r.decision)).or_insert((0, 0, 0));
        e.0 += 1;
        e.1 += usize::from(r.best);
        e.2 += usize::from(r.chosen);
        assert!(r.cost_usd >= 0.0 && r.cost_per_h.is_finite());
        assert!(r.features.iter().all(|f| f.is_finite()));
        // Penalties: $0.5 per interruption, $2 per outage.
        let expected = r.cost_usd + if r.interrupted { 0.5 } else { 0.0 } + if r.outage_hit { 2.0 } else { 0.0 };
        assert!((r.penalized_cost_usd - expected).abs() < 1e-12);
        if !r.spot {
            assert!(!r.interrupted && r.interruption_prob == 0.0);
        }
    }
    assert!(decisions.values().all(|&(_, best, chosen)| best == 1 && chosen <= 1));
    // Almost every first placement provisions at once (none is rejected in this hour).
    let chosen = decisions.values().filter(|d| d.2 == 1).count();
    assert!(chosen * 100 >= decisions.len() * 95, "{chosen} of {}", decisions.len());
    // Both behaviour policies were recorded, and the storm-free hour still has interruptions.
    assert!(ds.rows.iter().any(|r| r.policy == "cost-optimized"));
    assert!(ds.rows.iter().any(|r| r.policy == "price-capacity-optimized"));
    assert!(ds.rows.iter().any(|r| r.interrupted));
}

#[test]
fn on_demand_hindsight_cost_is_the_list_price_over_the_life() {
    // No on-demand price moves in spot-storm: an on-demand row costs its price × life rounded up
    // to the second (60 s minimum), plus no egress.
    for r in data().rows.iter().filter(|r| !r.spot).take(200) {
        let billed_h = ((r.life_h * 3600.0 - 1e-6).ceil() / 3600.0).max(60.0 / 3600.0);
        let expected = r.features[0] * billed_h;
        assert!((r.cost_usd - expected).abs() < 1e-9 * expected.max(1.0), "{} vs {}", r.cost_usd, expected);
    }
}

#[test]
fn parquet_round_trip_keeps_rows_and_schema() {
    let ds = data();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.parquet");
    ds.write(&path).expect("writes");
    let back = Dataset::read(&path).expect("reads");
    assert_eq!(back.rows, ds.rows);
    assert_eq!(back.meta.get("novacron.feature_schema_version"), Some(&FEATURE_SCHEMA_VERSION.to_string()));
    assert_eq!(back.meta.get("novacron.features").map(|f| f.split(',').count()), Some(N_FEATURES));
    // A file from another feature schema is refused, naming both versions.
    let mut old = ds.clone();
    old.rows.truncate(10);
    old.meta.insert("novacron.feature_schema_version".into(), "0".into());
    old.write(&path).expect("writes");
    let e = Dataset::read(&path).expect_err("old schema refused").to_string();
    assert!(
        e.contains("d.parquet") && e.contains("version 0") && e.contains(&format!("version {FEATURE_SCHEMA_VERSION}")),
        "{e}"
    );
}

#[test]
fn recording_is_deterministic() {
    let s = crate::common::short("spot-storm.toml", 20);
    let a = learn::dataset::record_run(&s, &Default::default(), Default::default()).expect("runs").0;
    let b = learn::dataset::record_run(&s, &Default::default(), Default::default()).expect("runs").0;
    assert_eq!(a, b);
}

#[test]
fn seeds_parse() {
    assert_eq!(parse_seeds("1..4").expect("range"), 1..4);
    assert_eq!(parse_seeds("7").expect("one"), 7..8);
    assert!(parse_seeds("4..1").is_err());
    assert!(parse_seeds("x").is_err());
}
