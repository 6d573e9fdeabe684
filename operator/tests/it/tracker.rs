//! The tracker without Kubernetes: restarts adopt instead of creating, orphans are deleted only
//! once their slot is served elsewhere, and the decision log replays to the same decisions.

use std::sync::Arc;

use engine::{Engine, EngineConfig, Event, SimDuration, SimTime};
use operator::catalog::CatalogIndex;
use operator::provider::memory::MemoryCloud;
use operator::tracker::{GROUP, Record, Tracker};
use operator::translate::deployment_spec;

use crate::common::{T0, seed_spec};

fn setup(replicas: u32, spot: bool) -> (Arc<MemoryCloud>, Arc<CatalogIndex>, engine::DeploymentSpec) {
    let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
    let index = Arc::new(CatalogIndex::new(&MemoryCloud::seed_catalog()).expect("catalog"));
    let mut spec = seed_spec();
    spec.replicas = Some(replicas);
    spec.cost_optimization.as_mut().expect("seed has costOptimization").use_spot_instances = Some(spot);
    let d = deployment_spec(GROUP, "web", &spec, None, &index.regions, index.catalog.regions.len()).expect("valid");
    (cloud, index, d)
}

fn at(secs: u64) -> SimTime {
    T0 + SimDuration::from_secs(secs)
}

#[tokio::test]
async fn a_restart_after_a_failover_keeps_serving_and_leaks_nothing() {
    let (cloud, index, spec) = setup(2, false);
    let mut a = Tracker::new("uid-web", index.clone(), EngineConfig::default()).expect("tracker");
    a.step(at(0), Some(&spec), cloud.as_ref()).await.expect("step");
    cloud.boot_all();
    a.step(at(30), Some(&spec), cloud.as_ref()).await.expect("step");
    cloud.fail_region("aws-us-east-1");
    a.step(at(60), Some(&spec), cloud.as_ref()).await.expect("step");
    cloud.boot_all();
    a.step(at(90), Some(&spec), cloud.as_ref()).await.expect("step");
    let azure: Vec<String> = cloud.live_instances().iter().map(|i| i.id.clone()).collect();
    assert_eq!(azure.len(), 2);
    assert!(cloud.live_instances().iter().all(|i| i.region == "azure-eastus"));

    // AWS comes back and the operator restarts: the fresh engine knows nothing of the failover
    // and places the replicas at the primary again. The Azure instances keep serving until the
    // AWS ones run (make-before-break), then they go.
    cloud.restore_region("aws-us-east-1");
    drop(a);
    let mut b = Tracker::new("uid-web", index, EngineConfig::default()).expect("tracker");
    let r = b.step(at(120), Some(&spec), cloud.as_ref()).await.expect("step");
    assert_eq!((r.creates, r.adopted, r.deletes), (2, 0, 0));
    assert_eq!(cloud.live_instances().len(), 4);
    let unadopted = b.cloud_deployments().iter().filter(|c| c.state == "Unadopted").count();
    assert_eq!(unadopted, 2);
    cloud.boot_all();
    let r = b.step(at(150), Some(&spec), cloud.as_ref()).await.expect("step");
    assert_eq!(r.deletes, 2);
    let live = cloud.live_instances();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|i| i.region == "aws-us-east-1" && !azure.contains(&i.id)));
    // New tokens never reuse old ones: slot 0 used n = 0 (first AWS) and 1 (Azure) before.
    let mut tokens: Vec<String> = live.iter().map(|i| i.client_token.clone()).collect();
    tokens.sort();
    assert_eq!(tokens, ["uid-web-0-2", "uid-web-1-2"]);
}

#[tokio::test]
async fn the_decision_log_replays_to_the_same_decisions() {
    let (cloud, index, spec) = setup(3, true);
    let mut t = Tracker::new("uid-web", index.clone(), EngineConfig::default()).expect("tracker");
    let mut records: Vec<Record> = Vec::new();
    for (i, s) in [0u64, 30, 60, 90, 120, 150].into_iter().enumerate() {
        match i {
            1 => cloud.boot_all(),
            2 => cloud.fail_region("aws-us-east-1"),
            3 | 5 => cloud.boot_all(),
            4 => {
                let victim = cloud.live_instances()[0].id.clone();
                cloud.interrupt(&victim, at(s + 120).as_millis());
            }
            _ => {}
        }
        t.step(at(s), Some(&spec), cloud.as_ref()).await.expect("step");
        records.extend(t.take_records());
    }
    assert!(records.iter().any(|r| r.actions.iter().any(|a| matches!(a, engine::Action::FailOver { .. }))));
    assert!(records.iter().any(|r| matches!(r.event, Event::InterruptionNotice { .. })));
    // The log as JSON lines, read back, fed to a fresh engine over the same catalog.
    let lines: Vec<String> = records.iter().map(|r| serde_json::to_string(r).expect("json")).collect();
    let mut replay =
        Engine::new(index.catalog.clone(), engine::CostModel::default(), EngineConfig::default()).expect("engine");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("a line");
        let at = SimTime(v["at"].as_u64().expect("at"));
        let event: Event = serde_json::from_value(v["event"].clone()).expect("an event");
        let mut out = Vec::new();
        replay.handle(at, event, &mut out);
        assert_eq!(serde_json::to_value(&out).expect("json"), v["actions"], "{line}");
    }
}

#[tokio::test]
async fn a_spot_interruption_notice_starts_a_replacement_before_the_reclaim() {
    let (cloud, index, spec) = setup(1, true);
    let mut t = Tracker::new("uid-web", index, EngineConfig::default()).expect("tracker");
    t.step(at(0), Some(&spec), cloud.as_ref()).await.expect("step");
    cloud.boot_all();
    t.step(at(30), Some(&spec), cloud.as_ref()).await.expect("step");
    let first = cloud.live_instances()[0].clone();
    cloud.interrupt(&first.id, at(150).as_millis());
    let r = t.step(at(35), Some(&spec), cloud.as_ref()).await.expect("step");
    // The replacement is asked for at once, elsewhere (the preempted spot market is blocked).
    assert_eq!(r.creates, 1);
    let live = cloud.live_instances();
    assert_eq!(live.len(), 2);
    let replacement = live.iter().find(|i| i.id != first.id).expect("a replacement");
    assert!(replacement.market != first.market || replacement.zone != first.zone, "{replacement:?} vs {first:?}");
    cloud.boot_all();
    let r = t.step(at(40), Some(&spec), cloud.as_ref()).await.expect("step");
    // It runs: the doomed instance is deleted before its reclaim.
    assert_eq!(r.deletes, 1);
    assert_eq!(cloud.live_instances().len(), 1);
}
