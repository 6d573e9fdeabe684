//! The MultiCloudVM controller against a mocked API server and the in-memory cloud.

use std::sync::Arc;
use std::time::Duration;

use engine::{Market, SimDuration};
use kube::runtime::controller::Action;
use operator::controller::{backoff, error_policy, reconcile};
use operator::crd::multicloudvm::Trigger;
use operator::crd::{NumOrStr, ObjectRef};
use operator::provider::ProviderError;

use kube::ResourceExt;
use operator::crd::multicloudvm::FINALIZER;

use crate::common::{Fixture, Harness, T0, condition, mcvm, seed_spec};

#[tokio::test]
async fn a_new_object_gets_the_finalizer_before_anything_is_created() {
    let h = Harness::new();
    let obj = mcvm("web", seed_spec());
    h.keep(&obj);
    let action = reconcile(Arc::new(obj.clone()), h.ctx.clone()).await.expect("reconcile");
    assert_eq!(action, Action::await_change());
    assert_eq!(h.calls(), ["PATCH /apis/novacron.io/v1/namespaces/default/multicloudvms/web"]);
    let stored = h.stored("web").expect("stored");
    assert_eq!(stored.metadata.finalizers, Some(vec![FINALIZER.to_owned()]));
    assert!(h.vms().is_empty());
    assert_eq!(h.cloud.create_calls(), 0);
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
    // against $0.096 on demand. Each becomes a VirtualMachine the MultiCloudVM owns.
    let vms = h.vms();
    let names: Vec<String> = vms.iter().map(|v| v.name_any()).collect();
    assert_eq!(names, ["web-0-0", "web-1-0"]);
    for (slot, vm) in vms.iter().enumerate() {
        let owner = &vm.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("MultiCloudVM", "web", "uid-web"));
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        assert_eq!(vm.labels()["novacron.io/owner-uid"], "uid-web");
        assert_eq!(vm.labels()["novacron.io/slot"], slot.to_string());
        assert_eq!(vm.finalizers(), ["novacron.io/cloud-instance"]);
        assert_eq!(
            (vm.spec.provider.as_deref(), vm.spec.region.as_deref(), vm.spec.instance_type.as_deref(), vm.spec.spot),
            (Some("aws"), Some("aws-us-east-1"), Some("m5.large"), Some(true))
        );
        // The VirtualMachine controller created its cloud instance with the VM's UID as token.
        let st = vm.status.as_ref().expect("VM status");
        assert_eq!(st.phase.as_deref(), Some("Provisioning"));
        assert_eq!(st.client_token.as_deref(), vm.uid().as_deref());
    }
    let live = h.cloud.live_instances();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|i| i.region == "aws-us-east-1" && i.market == Market::Spot), "{live:?}");
    assert_eq!(s.cloud_deployments.len(), 2);
    assert!(s.cloud_deployments.iter().all(|c| c.state == "Provisioning" && c.provider == "aws"));
    let children: Vec<Option<&str>> = s.cloud_deployments.iter().map(|c| c.virtual_machine.as_deref()).collect();
    assert_eq!(children, [Some("web-0-0"), Some("web-1-0")]);
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
    // The children's status carried the cloud's instance ids up.
    let ids: Vec<String> = live.iter().map(|i| i.id.clone()).collect();
    let shown: Vec<String> = s.cloud_deployments.iter().map(|c| c.instance_id.clone()).collect();
    assert_eq!(shown, ids);
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
    assert!(h.vms().is_empty());
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

/// Per-object credentials are refused, not ignored: a VM created with the operator's own
/// credentials would land in another account than the one the object names. Nothing is created
/// and no Secret is read (the operator has no right to).
#[tokio::test]
async fn a_credentials_secret_in_the_spec_is_refused_and_no_secret_is_read() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.providers = vec![
        operator::crd::multicloudvm::ProviderSpec { name: "aws".into(), ..Default::default() },
        operator::crd::multicloudvm::ProviderSpec {
            name: "azure".into(),
            credentials_secret: Some("team-azure".into()),
            ..Default::default()
        },
    ];
    let mut obj = mcvm("web", spec).finalized();
    let (_, s) = h.apply(&mut obj).await;
    let valid = condition(&s, "SpecValid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "InvalidSpec"));
    assert!(
        valid.message.starts_with("spec.providers[1].credentialsSecret: per-object credentials are not supported"),
        "{}",
        valid.message
    );
    assert!(h.vms().is_empty());
    assert_eq!(h.cloud.create_calls(), 0);
    assert!(h.calls().iter().all(|c| !c.contains("/secrets")), "{:?}", h.calls());

    // Without it the same spec deploys, with the operator's credentials.
    obj.spec.providers[1].credentials_secret = None;
    let (_, s) = h.apply(&mut obj).await;
    assert_eq!(condition(&s, "SpecValid").status, "True");
    assert_eq!(h.vms().len(), 1);
}

#[tokio::test]
async fn a_missing_vm_template_is_reported() {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.vm_template = Some(ObjectRef { name: "small".into(), namespace: None });
    let mut obj = mcvm("web", spec).finalized();
    let (_, s) = h.apply(&mut obj).await;
    assert!(h.calls().contains(&"GET /apis/novacron.io/v1/namespaces/default/vmtemplates/small".to_owned()));
    assert!(h.vms().is_empty());
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
    let mut obj = mcvm("web", spec).finalized();
    let template = serde_json::json!({
        "apiVersion": "novacron.io/v1", "kind": "VMTemplate",
        "metadata": { "name": "big", "namespace": "default" },
        "spec": { "config": { "resources": { "cpu": { "request": "4" }, "memory": { "request": "16Gi" } } } }
    });
    h.store().put("/apis/novacron.io/v1", "vmtemplates", &template);
    let (_, s) = h.apply(&mut obj).await;
    assert!(h.vms().is_empty());
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

    // At the moment the MultiCloudVM goes (its finalizer removed), neither a child nor a cloud
    // instance is left.
    let cloud = h.cloud.clone();
    let checked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = checked.clone();
    h.store().on_remove.push((
        "/multicloudvms/web".into(),
        Box::new(move |store| {
            assert!(cloud.live_instances().is_empty(), "instances left: {:?}", cloud.live_instances());
            assert!(store.all("/apis/novacron.io/v1", "virtualmachines").is_empty(), "children left");
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
        }),
    ));
    // First turn: the children are deleted (each keeps its finalizer until the VirtualMachine
    // controller has deleted its instance), so the owner waits; second turn: none left, it goes.
    let errors = h.delete(&obj, 3).await;
    assert_eq!(errors, ["children-remain"]);
    assert!(h.gone("web"));
    assert!(checked.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(h.cloud.delete_calls(), 3);
    assert!(!h.ctx.has_tracker("uid-web"));
}

#[tokio::test]
async fn deletion_keeps_the_finalizer_while_the_cloud_refuses() {
    let mut h = Harness::new();
    let mut obj = mcvm("web", seed_spec()).finalized();
    h.apply(&mut obj).await;
    h.cloud.fail_next_deletes(1);
    let errors = h.delete(&obj, 1).await;
    assert_eq!(errors, ["children-remain"]);
    // The VirtualMachine's cleanup failed: it keeps its finalizer, its owner keeps its own.
    assert_eq!(h.cloud.live_instances().len(), 1);
    let vms = h.vms();
    assert_eq!(vms.len(), 1);
    assert!(vms[0].metadata.deletion_timestamp.is_some());
    assert!(!h.gone("web"));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &h.registry).expect("metrics");
    assert!(
        text.contains("novacron_reconcile_errors_total{controller=\"virtualmachine\",error=\"provider\"} 1"),
        "{text}"
    );
    // The error policy backs off; the next attempt succeeds and only then the finalizers go:
    // the owner still waits once (its turn comes before the VirtualMachine controller's), then
    // the child has gone and so does the owner.
    let action = error_policy(Arc::new(obj.clone()), &operator::Error::ChildrenRemain(1), h.ctx.clone());
    assert_eq!(action, Action::requeue(backoff("uid-web", 2)));
    let errors = h.delete(&obj, 3).await;
    assert_eq!(errors, ["children-remain"]);
    assert!(h.gone("web"));
    assert!(h.vms().is_empty());
    assert!(h.cloud.live_instances().is_empty());
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
    let events = h.events();
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!((ev["type"].as_str(), ev["reason"].as_str()), (Some("Warning"), Some("FailedOver")));
    assert_eq!(ev["note"], "moving from aws-us-east-1 to azure-eastus (unhealthy)");
    assert_eq!(ev["regarding"]["name"], "web");
    assert_eq!(ev["reportingController"], "novacron-operator");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &h.registry).expect("metrics encode");
    for line in [
        "novacron_deployment_failovers_total{deployment=\"default/web\"} 1",
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
    h.apply(&mut obj).await;
    // The VirtualMachine controller's create failed with an API error: the child says so.
    let vm = &h.vms()[0];
    let st = vm.status.as_ref().expect("status");
    assert_eq!((st.phase.as_deref(), st.failure_cause.as_deref()), (Some("Failed"), Some("api-error")));
    assert_eq!(st.message.as_deref(), Some("API error: 500"));
    // The child's change reconciles its owner at once: the engine hears of the failure and
    // retries after its 10 s back-off; the failed child is deleted.
    let (action, s) = h.apply(&mut obj).await;
    assert!(s.cloud_deployments.is_empty());
    assert!(h.vms().is_empty());
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
    h.clock.advance(SimDuration::from_secs(10));
    h.apply(&mut obj).await;
    assert_eq!(h.vms()[0].status.as_ref().and_then(|s| s.failure_cause.clone()).as_deref(), Some("throttled"));
    let (action, _) = h.apply(&mut obj).await;
    // Throttled on the second attempt: the back-off doubles to 20 s.
    assert_eq!(action, Action::requeue(Duration::from_secs(20)));
    h.clock.advance(SimDuration::from_secs(20));
    let (_, s) = h.apply(&mut obj).await;
    assert_eq!(s.cloud_deployments.len(), 1);
    // A fresh child for each attempt (never a reused token): web-0-0, web-0-1, web-0-2.
    assert_eq!(s.cloud_deployments[0].virtual_machine.as_deref(), Some("web-0-2"));
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
    // The fresh engine asks for the same two placements; the VirtualMachines labelled with the
    // object's UID and slot are adopted instead of created.
    assert_eq!(h.cloud.create_calls(), 2);
    assert_eq!(h.cloud.live_instances().len(), 2);
    assert_eq!(h.vms().len(), 2);
    assert_eq!(condition(&s, "Ready").status, "True");
    let children: Vec<Option<&str>> = s.cloud_deployments.iter().map(|c| c.virtual_machine.as_deref()).collect();
    assert_eq!(children, [Some("web-0-0"), Some("web-1-0")]);
    // The cloud instances carry the VMs' UIDs as client tokens.
    let tokens: Vec<&str> = s.cloud_deployments.iter().map(|c| c.client_token.as_str()).collect();
    assert_eq!(tokens, ["uid-web-0-0", "uid-web-1-0"]);
}

#[tokio::test]
async fn a_virtual_machine_whose_status_write_was_lost_does_not_create_a_second_instance() {
    let mut h = Harness::new();
    let mut obj = mcvm("web", seed_spec()).finalized();
    // The VirtualMachine controller creates the instance, then its status write fails (an
    // operator that dies between the two does the same).
    h.store().failures.push_back(("PATCH".into(), "/virtualmachines/web-0-0/status".into(), 500));
    h.apply(&mut obj).await;
    assert_eq!(h.cloud.create_calls(), 1);
    assert!(h.vms()[0].status.is_none());
    // The next reconcile finds the instance by the VM's UID tag: no second create.
    assert!(h.vm_pass().await.is_empty());
    assert_eq!(h.cloud.create_calls(), 1);
    assert_eq!(h.cloud.live_instances().len(), 1);
    let st = h.vms()[0].status.clone().expect("status");
    assert_eq!(st.instance_id.as_deref(), Some(h.cloud.live_instances()[0].id.as_str()));
    // And a create repeated with the same token is answered with the same instance.
    h.vm_pass().await;
    assert_eq!(h.cloud.live_instances().len(), 1);
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

/// The real `run`: the CRD check, the watchers' lists and watches, and reconciles through
/// kube-runtime's Controllers, against the API server: the MultiCloudVM controller makes a
/// child, the VirtualMachine controller (which hears of it by its watch) creates the cloud
/// instance and writes the child's status, and that change (the `owns` watch) reconciles the
/// owner, whose status then shows the instance.
#[tokio::test]
async fn run_watches_and_reconciles_through_the_controllers() {
    let h = Harness::new();
    let obj = mcvm("web", seed_spec()).finalized();
    h.keep(&obj);
    let runner = tokio::spawn(operator::controller::run(h.ctx.clone()));
    let shown = async {
        loop {
            let id = h
                .stored("web")
                .and_then(|o| o.status)
                .and_then(|s| s.cloud_deployments.first().map(|c| c.instance_id.clone()))
                .unwrap_or_default();
            if !id.is_empty() {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let id = tokio::time::timeout(Duration::from_secs(20), shown).await.expect("the owner's status shows the instance");
    assert!(h.ctx.ready.load(std::sync::atomic::Ordering::SeqCst));
    let live = h.cloud.live_instances();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, id);
    let vms = h.vms();
    assert_eq!(vms.len(), 1);
    assert_eq!(vms[0].status.as_ref().and_then(|s| s.instance_id.clone()), Some(id));
    let watches: Vec<String> = h.store().calls.iter().filter(|c| c.is_watch()).map(|c| c.path.clone()).collect();
    for path in ["/apis/novacron.io/v1/multicloudvms", "/apis/novacron.io/v1/virtualmachines"] {
        assert!(watches.iter().any(|w| w == path), "no watch of {path}: {watches:?}");
    }
    runner.abort();
}
