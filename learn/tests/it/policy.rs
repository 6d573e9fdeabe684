//! A trained model runs in the simulator as the `learned` policy of a scenario; bad model files
//! are refused with the file and the reason.

use std::path::Path;

use learn::classic::{self, Kind, Params};

use crate::common::{data, scenario_path};

/// `spot-storm.toml` with its `[policy]` replaced by `policy`, written into `dir`.
fn scenario_with(dir: &Path, policy: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(scenario_path("spot-storm.toml")).expect("reads");
    let start = text.find("[policy]").expect("has [policy]");
    let end = start + text[start..].find("\n\n").expect("blank line after [policy]");
    let text = format!("{}{}{}", &text[..start], policy, &text[end..]);
    let path = dir.join("s.toml");
    std::fs::write(&path, text).expect("writes");
    path
}

#[test]
fn a_learned_scenario_runs_the_same_twice() {
    let ds = data();
    let (train, test) = ds.split(0.2);
    let t =
        classic::train(ds, Kind::Tree, &Params { max_depth: 6, ..Params::default() }, &train, &test).expect("trains");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tree.json"), serde_json::to_string(&t.artifact).expect("json")).expect("writes");
    let path = scenario_with(dir.path(), "[policy]\nkind = \"learned\"\nmodel = \"tree.json\"");
    let mut s = sim::scenario::load(&path).expect("loads with the model");
    assert_eq!(s.engine.policy.name(), "learned");
    s.duration = engine::SimDuration::from_secs(1800);
    let a = sim::run(&s, &Default::default(), &mut ()).expect("runs");
    let b = sim::run(&s, &Default::default(), &mut ()).expect("runs");
    assert_eq!(a.summary.policy, "learned");
    assert!(a.summary.requests_served > 0);
    assert_eq!(a.vms, b.vms);
    assert_eq!(a.summary.total_cost_usd.to_bits(), b.summary.total_cost_usd.to_bits());
}

#[test]
fn bad_model_files_are_refused_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = engine::ModelArtifact::new(
        engine::policy::learned::Target::CostPerHour,
        engine::policy::learned::Model::Tree(engine::policy::learned::Tree {
            nodes: vec![engine::policy::learned::Node::Leaf { value: 1.0, class: None }],
        }),
    );
    let json = serde_json::to_string(&good).expect("json");
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing.json", String::new(), "cannot read model"),
        ("truncated.json", json[..json.len() / 2].to_string(), "EOF while parsing"),
        (
            "schema.json",
            json.replace(
                &format!("\"feature_schema_version\":{}", engine::policy::learned::FEATURE_SCHEMA_VERSION),
                "\"feature_schema_version\":7",
            ),
            "feature schema version 7",
        ),
        (
            "schema1.json",
            json.replace(
                &format!("\"feature_schema_version\":{}", engine::policy::learned::FEATURE_SCHEMA_VERSION),
                "\"feature_schema_version\":1",
            ),
            "feature schema version 1 does not match the engine's 2",
        ),
        ("kind.json", json.replace("\"type\":\"tree\"", "\"type\":\"xgboost\""), "unknown variant"),
    ];
    for (name, text, why) in cases {
        if !text.is_empty() {
            std::fs::write(dir.path().join(name), text).expect("writes");
        }
        let path = scenario_with(dir.path(), &format!("[policy]\nkind = \"learned\"\nmodel = \"{name}\""));
        let e = sim::scenario::load(&path).expect_err("bad model refused").to_string();
        assert!(e.contains("policy.model") && e.contains(name) && e.contains(why), "{name}: {e}");
    }
}
