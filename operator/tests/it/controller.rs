//! The MultiCloudVM controller against a mocked API server and the in-memory cloud.

use std::sync::Arc;
use std::time::Duration;

use engine::{Market, SimDuration};
use kube::runtime::controller::Action;
use operator::controller::{backoff, error_policy, reconcile};
use operator::crd::multicloudvm::Trigger;
use operator::crd::{NumOrStr, ObjectRef};
use operator::provider::ProviderError;

use crate::common::{Fixture, Harness, T0, condition, mcvm, seed_spec};

#[tokio::test]
async fn a_new_object_gets_the_finalizer_before_anything_is_created() {
    let mut h = Harness::new();
    let obj = mcvm("web", seed_spec());
    let task = tokio::spawn(reconcile(Arc::new(obj.clone()), h.ctx.clone()));
    h.api.finalizer_added(&obj).await;
    assert_eq!(task.await.expect("task").expect("reconcile"), Action::await_change());
    assert_eq!(h.cloud.create_calls(), 0);
    h.api.silent().await;
}

#[tokio::test]
async fn reconcile_creates_instances_and_patches_status() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.replicas = Some(2);
    let mut obj = mcvm("web", spec).finalized();

    let (action, s) = h.apply(&mut obj).await;
    // Two replicas at the primary, aws-us-east (alias of aws-us-east-1), on spot: the default
    // cost-optimized policy weighs spot at $0.038 + 0.02 interruptions/h × $0.5 = $0.048/h
    // against $0.096 on demand.
    let live = h.cloud.live_instances();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|i| i.region == "aws-us-east-1" && i.market == Market::Spot), "{live:?}");
    assert_eq!(s.cloud_deployments.len(), 2);
    assert!(s.cloud_deployments.iter().all(|c| c.state == "Provisioning" && c.provider == "aws"));
    assert_eq!(s.primary_provider.as_deref(), Some("aws"));
    assert_eq!(s.active_region.as_deref(), Some("aws-us-east-1"));
    // 2 × $0.038/h.
    let cost = s.total_cost.as_ref().expect("cost");
    assert!((cost.hourly_cost - 0.076).abs() < 1e-12, "{cost:?}");
    assert_eq!(cost.currency, "USD");
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(condition(&s, "SpecValid").status, "True");
    let ready = condition(&s, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Progressing"));
    assert_eq!(ready.message, "0 of 2 replicas serving");
    assert_eq!(ready.last_transition_time, "2026-11-30T00:00:00Z");
    // The engine evaluates the deployment every 30 s: that is when it wants to be woken.
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));

    // The cloud boots them; the next reconcile sees them running.
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    let (_, s) = h.apply(&mut obj).await;
    let ready = condition(&s, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "AllReplicasServing"));
    assert_eq!(ready.last_transition_time, "2026-11-30T00:00:30Z");
    // SpecValid did not change: its transition time stays.
    assert_eq!(condition(&s, "SpecValid").last_transition_time, "2026-11-30T00:00:00Z");
    assert!(s.cloud_deployments.iter().all(|c| c.state == "Running"));
    assert_eq!(s.health.as_ref().map(|h| (h.replicas, h.serving)), Some((2, 2)));
    // Both billed 30 s, charged the 60 s minimum: 2 × $0.038 × 60/3600 h.
    let total = s.total_cost.as_ref().expect("cost").total_cost;
    assert!((total - 2.0 * 0.038 / 60.0).abs() < 1e-9, "{total}");
    assert_eq!(h.cloud.create_calls(), 2);
}

#[tokio::test]
async fn a_bad_spec_gets_a_condition_naming_the_field_and_nothing_is_created() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.deployment_strategy.primary = Some("aws-us-wst".into());
    spec.deployment_strategy.failover_triggers[0].threshold = Some(NumOrStr::Str("lots".into()));
    let mut obj = mcvm("web", spec).finalized();
    let (action, s) = h.apply(&mut obj).await;
    let valid = condition(&s, "SpecValid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        valid.message.contains(
            "spec.deploymentStrategy.primary: no region named \"aws-us-wst\"; regions are: aws-us-east, aws-us-east-1, azure-eastus, gcp-us-central, gcp-us-central1"
        ),
        "{}",
        valid.message
    );
    let ready = condition(&s, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
    assert!(s.cloud_deployments.is_empty());
    assert_eq!(h.cloud.create_calls(), 0);
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));

    // Fixing the primary leaves the threshold, reported with what is allowed.
    obj.spec.deployment_strategy.primary = Some("aws-us-east".into());
    let (_, s) = h.apply(&mut obj).await;
    assert_eq!(
        condition(&s, "SpecValid").message,
        "spec.deploymentStrategy.failoverTriggers[0].threshold: must be a share such as 0.95 or \"95%\" (between 0 and 1)"
    );
    assert_eq!(h.cloud.create_calls(), 0);
}

#[tokio::test]
async fn a_missing_vm_template_is_reported() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.vm_template = Some(ObjectRef { name: "small".into(), namespace: None });
    let obj = mcvm("web", spec).finalized();
    let task = tokio::spawn(reconcile(Arc::new(obj.clone()), h.ctx.clone()));
    h.api.get("/apis/novacron.io/v1/namespaces/default/vmtemplates/small", None).await;
    let s = h.api.status_patch(&obj).await;
    task.await.expect("task").expect("reconcile");
    assert_eq!(
        condition(&s, "SpecValid").message,
        "spec.vmTemplate: no VMTemplate named \"small\" in namespace \"default\""
    );
}

#[tokio::test]
async fn a_vm_template_sizes_the_replicas() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.vm_template = Some(ObjectRef { name: "big".into(), namespace: None });
    let obj = mcvm("web", spec).finalized();
    let template = serde_json::json!({
        "apiVersion": "novacron.io/v1", "kind": "VMTemplate",
        "metadata": { "name": "big", "namespace": "default" },
        "spec": { "config": { "resources": { "cpu": { "request": "4" }, "memory": { "request": "16Gi" } } } }
    });
    let task = tokio::spawn(reconcile(Arc::new(obj.clone()), h.ctx.clone()));
    h.api.get("/apis/novacron.io/v1/namespaces/default/vmtemplates/big", Some(template)).await;
    let s = h.api.status_patch(&obj).await;
    task.await.expect("task").expect("reconcile");
    // No offer of the seed catalog has 4 vCPUs: the spec is valid, nothing can be placed.
    assert_eq!(condition(&s, "SpecValid").status, "True");
    assert!(s.cloud_deployments.is_empty());
    assert_eq!(h.cloud.create_calls(), 0);
}

#[tokio::test]
async fn deletion_deletes_every_instance_before_the_finalizer_goes() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.replicas = Some(3);
    let mut obj = mcvm("web", spec).finalized();
    h.apply(&mut obj).await;
    h.cloud.boot_all();
    assert_eq!(h.cloud.live_instances().len(), 3);

    let deleting = obj.clone().deleting();
    let task = tokio::spawn(reconcile(Arc::new(deleting.clone()), h.ctx.clone()));
    let cloud = h.cloud.clone();
    h.api
        .finalizer_removed(&deleting, move || {
            assert!(cloud.live_instances().is_empty(), "instances left: {:?}", cloud.live_instances());
        })
        .await;
    assert_eq!(task.await.expect("task").expect("cleanup"), Action::await_change());
    assert_eq!(h.cloud.delete_calls(), 3);
    assert!(!h.ctx.has_tracker("uid-web"));
}

#[tokio::test]
async fn deletion_keeps_the_finalizer_while_the_cloud_refuses() {
    let mut h = Harness::new();
    let mut obj = mcvm("web", seed_spec()).finalized();
    h.apply(&mut obj).await;
    h.cloud.fail_next_deletes(1);
    let deleting = obj.clone().deleting();
    let err = reconcile(Arc::new(deleting.clone()), h.ctx.clone()).await.expect_err("cleanup fails");
    assert_eq!(err.metric_label(), "provider");
    h.api.silent().await;
    assert_eq!(h.cloud.live_instances().len(), 1);
    // The error policy backs off; the next attempt succeeds and only then the finalizer goes.
    let action = error_policy(Arc::new(deleting.clone()), &err, h.ctx.clone());
    assert_eq!(action, Action::requeue(backoff("uid-web", 1)));
    let task = tokio::spawn(reconcile(Arc::new(deleting.clone()), h.ctx.clone()));
    let cloud = h.cloud.clone();
    h.api.finalizer_removed(&deleting, move || assert!(cloud.live_instances().is_empty())).await;
    task.await.expect("task").expect("cleanup");
}

#[tokio::test]
async fn outage_reported_by_the_provider_fails_over_to_the_secondary() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.replicas = Some(2);
    spec.cost_optimization.as_mut().expect("seed has costOptimization").use_spot_instances = Some(false);
    let mut obj = mcvm("web", spec).finalized();
    h.apply(&mut obj).await;
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    let (_, s) = h.apply(&mut obj).await;
    assert_eq!(condition(&s, "Ready").status, "True");

    // AWS us-east-1 goes down: the provider reports the region unhealthy and the instances lost.
    h.cloud.fail_region("aws-us-east-1");
    h.clock.advance(SimDuration::from_secs(30));
    let (_, s) = h.apply(&mut obj).await;
    // The engine evacuates a location known to be dead at its evaluation (due now): every
    // replica goes to the first secondary, azure-eastus, on demand ($0.096/h each).
    let mig = s.migration.as_ref().expect("migration status");
    assert_eq!(mig.failovers, 1);
    let last = mig.last_failover.as_ref().expect("a failover");
    assert_eq!(
        (last.from.as_str(), last.to.as_str(), last.reason.as_str()),
        ("aws-us-east-1", "azure-eastus", "unhealthy")
    );
    assert_eq!(last.at, "2026-11-30T00:01:00Z");
    assert_eq!(s.primary_provider.as_deref(), Some("azure"));
    assert_eq!(s.health.as_ref().map(|h| h.unhealthy_regions.clone()), Some(vec!["aws-us-east-1".to_owned()]));
    let live = h.cloud.live_instances();
    assert_eq!(live.len(), 2, "the lost AWS instances are deleted: {live:?}");
    assert!(live.iter().all(|i| i.region == "azure-eastus"));
    assert!((s.total_cost.as_ref().expect("cost").hourly_cost - 0.192).abs() < 1e-12);
    // The failover is also a Kubernetes Event on the object.
    assert_eq!(h.events.len(), 1);
    let ev = &h.events[0];
    assert_eq!((ev["type"].as_str(), ev["reason"].as_str()), (Some("Warning"), Some("FailedOver")));
    assert_eq!(ev["note"], "moving from aws-us-east-1 to azure-eastus (unhealthy)");
    assert_eq!(ev["regarding"]["name"], "web");
    assert_eq!(ev["reportingController"], "novacron-operator");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &h.registry).expect("metrics encode");
    for line in [
        "novacron_deployment_failovers{deployment=\"default/web\"} 1",
        "novacron_deployment_unhealthy_regions{deployment=\"default/web\"} 1",
        "novacron_events_published_total{action=\"FailedOver\"} 1",
        "novacron_vms{deployment=\"default/web\",provider=\"azure\",state=\"Provisioning\"} 2",
        "novacron_vms{deployment=\"default/web\",provider=\"aws\",state=\"Running\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }

    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    let (_, s) = h.apply(&mut obj).await;
    assert_eq!(condition(&s, "Ready").status, "True");
    assert!(s.cloud_deployments.iter().all(|c| c.region == "azure-eastus" && c.state == "Running"));
}

#[tokio::test]
async fn availability_trigger_fails_over_when_instances_are_lost_and_cannot_be_replaced() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.replicas = Some(2);
    spec.cost_optimization.as_mut().expect("seed has costOptimization").use_spot_instances = Some(false);
    spec.deployment_strategy.failover_triggers = vec![Trigger {
        kind: "availability".into(),
        threshold: Some(NumOrStr::Str("95%".into())),
        duration: Some("2m".into()),
    }];
    let mut obj = mcvm("web", spec).finalized();
    h.apply(&mut obj).await;
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    h.apply(&mut obj).await;

    // The instances crash and AWS has no capacity left; the region itself stays healthy, so only
    // the availability trigger can move the deployment.
    h.cloud.set_capacity("aws-us-east-1", 0);
    for i in h.cloud.live_instances() {
        h.cloud.crash(&i.id);
    }
    let mut failed_over_at = None;
    for step in 2..=12 {
        h.clock.advance(SimDuration::from_secs(30));
        let (_, s) = h.apply(&mut obj).await;
        if s.migration.as_ref().is_some_and(|m| m.failovers > 0) {
            failed_over_at = Some(step * 30);
            let last = s.migration.as_ref().and_then(|m| m.last_failover.clone()).expect("failover");
            assert_eq!((last.to.as_str(), last.reason.as_str()), ("azure-eastus", "trigger:availability"));
            break;
        }
    }
    // The trigger samples availability at each 30 s evaluation once the deployment has settled
    // (fully up at 30 s: the first sample, 1.0). Its 2 min window is covered at 150 s, when the
    // average of the samples at 30, 60, ..., 150 s is (1 + 0 + 0 + 0 + 0) / 5 = 0.2 < 0.95.
    assert_eq!(failed_over_at, Some(150));
    assert!(h.cloud.live_instances().iter().all(|i| i.region == "azure-eastus"));
    assert_eq!(h.cloud.live_instances().len(), 2);
}

#[tokio::test]
async fn a_provider_error_is_retried_with_the_engines_backoff() {
    let mut h = Harness::new();
    let mut obj = mcvm("web", seed_spec()).finalized();
    h.cloud.fail_next_creates([ProviderError::Api("500".into()), ProviderError::Throttled("slow down".into())]);
    let (action, s) = h.apply(&mut obj).await;
    // The create failed with an API error: the engine retries after its 10 s back-off.
    assert!(s.cloud_deployments.is_empty());
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
    h.clock.advance(SimDuration::from_secs(10));
    let (action, _) = h.apply(&mut obj).await;
    // Throttled on the second attempt: the back-off doubles to 20 s.
    assert_eq!(action, Action::requeue(Duration::from_secs(20)));
    h.clock.advance(SimDuration::from_secs(20));
    let (_, s) = h.apply(&mut obj).await;
    assert_eq!(s.cloud_deployments.len(), 1);
    assert_eq!(h.cloud.create_calls(), 3);
    assert_eq!(h.cloud.live_instances().len(), 1);
}

#[tokio::test]
async fn an_operator_restart_mid_create_does_not_create_a_second_vm() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.replicas = Some(2);
    let mut obj = mcvm("web", spec).finalized();
    h.apply(&mut obj).await;
    assert_eq!(h.cloud.create_calls(), 2);
    // The operator restarts: its engines are gone, the cloud instances are not.
    h.ctx.forget_all();
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(5));
    let (_, s) = h.apply(&mut obj).await;
    // The fresh engine asks for the same two placements; the instances tagged with the object's
    // UID and slot are adopted instead of created.
    assert_eq!(h.cloud.create_calls(), 2);
    assert_eq!(h.cloud.live_instances().len(), 2);
    assert_eq!(condition(&s, "Ready").status, "True");
    let tokens: Vec<&str> = s.cloud_deployments.iter().map(|c| c.client_token.as_str()).collect();
    assert_eq!(tokens, ["uid-web-0-0", "uid-web-1-0"]);
}

#[test]
fn backoff_grows_to_five_minutes_with_bounded_jitter() {
    for attempt in 1..=12u32 {
        let base = Duration::from_secs(5 * (1u64 << (attempt - 1).min(10))).min(Duration::from_secs(300));
        let d = backoff("uid", attempt);
        assert!(d >= base && d <= base.mul_f64(1.25), "{attempt}: {d:?}");
    }
    assert_eq!(backoff("a", 3), backoff("a", 3));
}

#[tokio::test]
async fn every_engine_event_goes_to_the_decision_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.jsonl");
    let config = operator::controller::Config { decision_log: Some(log.clone()), ..Default::default() };
    let mut h = Harness::with_config(config);
    let mut obj = mcvm("web", seed_spec()).finalized();
    h.apply(&mut obj).await;
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    h.apply(&mut obj).await;
    let text = std::fs::read_to_string(&log).expect("the log");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(kinds, ["header", "engine", "decision", "decision", "decision"]);
    // The header holds the engine's inputs: the catalog the provider sells, cost model, settings.
    assert_eq!(lines[0]["format"], "novacron-decision-log");
    assert_eq!(lines[0]["catalog"]["regions"][0]["name"], "aws-us-east-1");
    assert_eq!(lines[0]["engine"]["max_attempts"], 5);
    assert_eq!((lines[1]["deployment"].as_str(), lines[1]["object"].as_str()), (Some("uid-web"), Some("default/web")));
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"]["event"].as_str()).collect();
    // Apply at 0 s; at 30 s the instance runs, then the evaluation timer fires.
    assert_eq!(events, ["deployment-applied", "instance-running", "timer-fired"]);
    assert!(lines[1..].iter().all(|l| l["deployment"] == "uid-web"));
    assert_eq!(lines[2]["at"], T0.as_millis());
    assert_eq!(lines[2]["actions"][0]["action"], "provision");
}

/// The real `run`: the CRD check, the watcher's list and watch, and a reconcile through
/// kube-runtime's Controller, against the mocked API server.
#[tokio::test]
async fn run_watches_and_reconciles_through_the_controller() {
    let mut h = Harness::new();
    let obj = mcvm("web", seed_spec()).finalized();
    let ctx = h.ctx.clone();
    let runner = tokio::spawn(operator::controller::run(ctx));
    let list = serde_json::json!({
        "apiVersion": "novacron.io/v1", "kind": "MultiCloudVMList",
        "metadata": { "resourceVersion": "7" }, "items": [obj]
    });
    let mut watches = Vec::new();
    let mut status = None;
    for _ in 0..10 {
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), h.api.0.next_request())
            .await
            .expect("a request in time")
            .expect("a request");
        let query = req.uri().query().unwrap_or_default().to_owned();
        match (req.method().as_str(), req.uri().path()) {
            ("GET", "/apis/novacron.io/v1/multicloudvms") if query.contains("watch=true") => watches.push(send),
            ("GET", "/apis/novacron.io/v1/multicloudvms") => {
                send.send_response(http::Response::new(kube::client::Body::from(
                    serde_json::to_vec(&list).expect("json"),
                )));
            }
            ("PATCH", "/apis/novacron.io/v1/namespaces/default/multicloudvms/web/status") => {
                let body = req.into_body().collect_bytes().await.expect("body");
                let patch: serde_json::Value = serde_json::from_slice(&body).expect("json");
                let s: operator::crd::MultiCloudVMStatus =
                    serde_json::from_value(patch["status"].clone()).expect("status");
                let answer = obj.clone().with_status(s.clone());
                send.send_response(http::Response::new(kube::client::Body::from(
                    serde_json::to_vec(&answer).expect("json"),
                )));
                status = Some(s);
                break;
            }
            (m, p) => panic!("unexpected {m} {p}?{query}"),
        }
    }
    assert!(h.ctx.ready.load(std::sync::atomic::Ordering::SeqCst));
    let s = status.expect("the controller reconciled the listed object");
    assert_eq!(s.cloud_deployments.len(), 1);
    assert_eq!(h.cloud.live_instances().len(), 1);
    runner.abort();
    drop(watches);
}
