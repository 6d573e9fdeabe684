//! The decision log replays in the simulator: a log the controller writes through a busy
//! timeline (two objects, spot prices, an outage and failover, an operator restart, deletion)
//! is replayed by `sim::replay` on fresh engines with every decision equal, and it is the log
//! committed as `sim/tests/fixtures/operator-decisions.jsonl`, which `sim replay` replays in sim's
//! own tests (set `NOVACRON_UPDATE_FIXTURES=1` to rewrite it after a deliberate change).

use std::path::{Path, PathBuf};

use engine::{Market, SimDuration};
use operator::controller::Config;
use serde_json::Value;

use crate::common::{Fixture, Harness, mcvm, seed_spec};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/tests/fixtures/operator-decisions.jsonl")
}

/// Runs the timeline and returns the log's text.
async fn busy_timeline() -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.jsonl");
    let mut h = Harness::with_config(Config { decision_log: Some(log.clone()), ..Config::default() });
    let mut web_spec = seed_spec();
    web_spec.replicas = Some(2);
    let mut web = mcvm("web", web_spec).finalized();
    let mut api_spec = seed_spec();
    api_spec.cost_optimization.as_mut().expect("seed has costOptimization").use_spot_instances = Some(false);
    let mut api = mcvm("api", api_spec).finalized();
    let step = |h: &mut Harness| h.clock.advance(SimDuration::from_secs(30));

    h.apply(&mut web).await;
    h.apply(&mut api).await;
    h.cloud.boot_all();
    step(&mut h);
    h.apply(&mut web).await;
    h.apply(&mut api).await;
    // The spot price of aws-us-east-1a doubles; then the region goes down.
    h.cloud.set_price("aws-us-east-1", "us-east-1a", "m5.large", Market::Spot, 0.076);
    step(&mut h);
    h.apply(&mut web).await;
    h.cloud.fail_region("aws-us-east-1");
    step(&mut h);
    h.apply(&mut web).await;
    h.apply(&mut api).await;
    h.cloud.boot_all();
    step(&mut h);
    h.apply(&mut web).await;
    h.apply(&mut api).await;
    // The operator restarts: fresh engines, which adopt or replace what they find.
    h.ctx.forget_all();
    h.cloud.restore_region("aws-us-east-1");
    step(&mut h);
    h.apply(&mut web).await;
    h.apply(&mut api).await;
    h.cloud.boot_all();
    step(&mut h);
    h.apply(&mut web).await;
    h.apply(&mut api).await;
    // web is deleted: its engine's last records are written at cleanup.
    h.delete(&web, 3).await;
    assert!(h.gone("web"));
    std::fs::read_to_string(&log).expect("the log")
}

#[tokio::test]
async fn the_controllers_decision_log_replays_identically_in_the_simulator() {
    let text = busy_timeline().await;
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let count = |k: &str| lines.iter().filter(|l| l["kind"] == k).count();
    // One header (both engines and both restarted engines share the inputs), four engine starts.
    assert_eq!((count("header"), count("engine")), (1, 4));
    assert_eq!(lines[0]["kind"], "header");
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"]["event"].as_str()).collect();
    for e in ["deployment-applied", "instance-running", "timer-fired", "price-changed", "region-health"] {
        assert!(events.contains(&e), "no {e} in {events:?}");
    }
    let failovers =
        lines.iter().flat_map(|l| l["actions"].as_array().into_iter().flatten()).filter(|a| a["action"] == "fail-over");
    assert_eq!(failovers.count(), 2, "web and api fail over once each");

    let summary = sim::replay::replay_str(Path::new("decisions.jsonl"), &text).expect("a valid log");
    assert!(
        summary.all_match(),
        "{}",
        summary.mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    );
    assert_eq!((summary.headers, summary.engines, summary.deployments), (1, 4, 2));
    assert_eq!(summary.decisions, count("decision"));
    assert!(summary.actions > 20, "{summary:?}");

    // The same log, byte for byte, is the fixture sim's tests replay through the CLI.
    let path = fixture();
    if std::env::var_os("NOVACRON_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &text).expect("write the fixture");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is not the log this operator writes; rerun with NOVACRON_UPDATE_FIXTURES=1 if the change is deliberate",
        path.display()
    );
}

#[tokio::test]
async fn a_log_whose_decision_was_altered_does_not_replay() {
    let text = busy_timeline().await;
    // Move the first provision of the log to another offer.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let at = lines.iter().position(|l| l.contains("\"action\":\"provision\"")).expect("a provision");
    let mut v: Value = serde_json::from_str(&lines[at]).expect("json");
    let offer = &mut v["actions"][0]["placement"]["offer"];
    *offer = Value::from(offer.as_u64().expect("an offer id") + 1);
    lines[at] = v.to_string();
    let summary = sim::replay::replay_str(Path::new("d.jsonl"), &lines.join("\n")).expect("still a valid log");
    assert_eq!(summary.mismatches.len(), 1);
    let m = &summary.mismatches[0];
    assert_eq!((m.line, m.event.as_str()), (at + 1, "deployment-applied"));
    assert!(m.to_string().contains("action 1 differs (3 recorded, 3 replayed)"), "{m}");
    // That deployment is not replayed further; the other one still is, and matches.
    assert!(summary.skipped > 0);
}
