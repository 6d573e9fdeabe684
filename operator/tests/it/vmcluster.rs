//! The VMCluster controller against the mocked API server and the in-memory cloud (seed
//! catalog: one 2 vCPU / 8 GiB type per cloud; the cheapest on demand is aws-us-east-1's
//! m5.large at $0.096/h, tied with azure-eastus and first in catalog order).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::SimDuration;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use operator::clock::Clock;
use operator::crd::Condition;
use operator::crd::vmcluster::{FINALIZER, VMCluster, VMClusterSpec, VMClusterStatus};
use operator::provider::InstanceMetrics;
use operator::vmcluster_controller::{error_policy, reconcile};

use crate::common::{Harness, NOVACRON};

/// A VMCluster in namespace `default` with the controller's finalizer, from its spec's YAML.
fn cluster(name: &str, spec_yaml: &str) -> VMCluster {
    let spec: VMClusterSpec = serde_yaml_ng::from_str(spec_yaml).expect("a VMCluster spec");
    let mut o = VMCluster::new(name, spec);
    o.metadata.namespace = Some("default".into());
    o.metadata.uid = Some(format!("uid-{name}"));
    o.metadata.generation = Some(1);
    o.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    o
}

fn keep(h: &Harness, o: &VMCluster) {
    h.store().put(NOVACRON, "vmclusters", &serde_json::to_value(o).expect("json"));
}

fn stored(h: &Harness, name: &str) -> Option<VMCluster> {
    h.store().get(NOVACRON, "vmclusters", "default", name).map(|v| serde_json::from_value(v).expect("a VMCluster"))
}

/// One turn of the operator for `obj` (put in the API server as given, keeping the status the
/// server has): the VirtualMachine controller, the VMCluster controller, the VirtualMachine
/// controller again. Returns the action and the status written.
async fn turn(h: &Harness, obj: &mut VMCluster) -> (Action, VMClusterStatus) {
    obj.status = stored(h, &obj.name_any()).and_then(|o| o.status);
    keep(h, obj);
    h.vm_pass().await;
    let current = stored(h, &obj.name_any()).expect("stored");
    let action = reconcile(Arc::new(current), h.ctx.clone()).await.expect("reconcile succeeds");
    h.vm_pass().await;
    let status = stored(h, &obj.name_any()).and_then(|o| o.status).expect("a status written");
    obj.status = Some(status.clone());
    (action, status)
}

/// Boots what the cloud is creating, lets 30 s pass, and turns.
async fn boot_and_turn(h: &Harness, obj: &mut VMCluster) -> VMClusterStatus {
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    turn(h, obj).await.1
}

fn condition<'a>(s: &'a VMClusterStatus, type_: &str) -> &'a Condition {
    s.conditions.iter().find(|c| c.type_ == type_).expect("the condition is set")
}

/// The children not being deleted, and how many of them run.
fn children(h: &Harness) -> (usize, usize) {
    let live: Vec<_> = h.vms().into_iter().filter(|v| v.metadata.deletion_timestamp.is_none()).collect();
    let running = live.iter().filter(|v| v.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count();
    (live.len(), running)
}

const SMALL: &str = "{config: {resources: {cpu: {request: '2'}, memory: {request: 4Gi}}}}";

#[tokio::test]
async fn a_new_cluster_gets_the_finalizer_before_anything_is_created() {
    let h = Harness::new();
    let mut obj = cluster("workers", &format!("{{replicas: 2, template: {SMALL}}}"));
    obj.metadata.finalizers = None;
    keep(&h, &obj);
    let action = reconcile(Arc::new(obj), h.ctx.clone()).await.expect("reconcile");
    assert_eq!(action, Action::await_change());
    assert_eq!(h.calls(), ["PATCH /apis/novacron.io/v1/namespaces/default/vmclusters/workers"]);
    assert_eq!(stored(&h, "workers").expect("stored").finalizers(), [FINALIZER]);
    assert!(h.vms().is_empty());
}

#[tokio::test]
async fn a_cluster_creates_its_virtual_machines_and_reports_them_running() {
    let h = Harness::new();
    let mut obj = cluster("workers", &format!("{{replicas: 3, template: {SMALL}}}"));
    let (action, s) = turn(&h, &mut obj).await;
    // Three children, owned by the VMCluster, at the cheapest location on demand.
    let vms = h.vms();
    assert_eq!(vms.iter().map(|v| v.name_any()).collect::<Vec<_>>(), ["workers-0-0", "workers-1-0", "workers-2-0"]);
    for vm in &vms {
        let owner = &vm.owner_references()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("VMCluster", "workers", Some(true)));
        assert_eq!(vm.labels()["novacron.io/owner-uid"], "uid-workers");
        assert_eq!(
            (vm.spec.region.as_deref(), vm.spec.instance_type.as_deref(), vm.spec.spot),
            (Some("aws-us-east-1"), Some("m5.large"), Some(false))
        );
    }
    assert_eq!(h.cloud.live_instances().len(), 3);
    assert_eq!((s.replicas, s.ready_replicas, s.updated_replicas, s.desired_replicas), (3, 0, 3, 3));
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(condition(&s, "SpecValid").status, "True");
    let ready = condition(&s, "Ready");
    assert_eq!((ready.status.as_str(), ready.message.as_str()), ("False", "0 of 3 replicas ready"));
    assert_eq!(ready.observed_generation, Some(1));
    // The engine evaluates every 30 s.
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(30)));

    let s = boot_and_turn(&h, &mut obj).await;
    assert_eq!((s.replicas, s.ready_replicas, s.updated_replicas, s.desired_replicas), (3, 3, 3, 3));
    let ready = condition(&s, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "AllReplicasReady"));
    let progressing = condition(&s, "Progressing");
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", "Complete"));
    assert_eq!(h.cloud.create_calls(), 3);
    // The reconciles are counted under controller="vmcluster".
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &h.registry).expect("metrics");
    assert!(text.contains("novacron_reconciles_total{controller=\"vmcluster\"} 2"), "{text}");
}

#[tokio::test]
async fn changing_replicas_scales_up_and_down() {
    let h = Harness::new();
    let mut obj = cluster("workers", &format!("{{replicas: 2, template: {SMALL}}}"));
    turn(&h, &mut obj).await;
    boot_and_turn(&h, &mut obj).await;
    obj.spec.replicas = 5;
    obj.metadata.generation = Some(2);
    let (_, s) = turn(&h, &mut obj).await;
    assert_eq!((s.replicas, s.desired_replicas, s.observed_generation), (5, 5, Some(2)));
    assert_eq!(children(&h), (5, 2));
    let s = boot_and_turn(&h, &mut obj).await;
    assert_eq!(s.ready_replicas, 5);

    // Down to 1: the surplus children go, and their cloud instances with them.
    obj.spec.replicas = 1;
    obj.metadata.generation = Some(3);
    let (_, s) = turn(&h, &mut obj).await;
    assert_eq!((s.replicas, s.ready_replicas, s.desired_replicas), (1, 1, 1));
    assert_eq!(h.vms().len(), 1);
    assert_eq!(h.cloud.live_instances().len(), 1);
    assert_eq!(h.cloud.delete_calls(), 4);
}

/// Sets every live instance's CPU utilisation.
fn cpu(h: &Harness, percent: f64) {
    for i in h.cloud.live_instances() {
        h.cloud.set_metrics(&i.id, InstanceMetrics { cpu_percent: Some(percent), window_s: 300, ..Default::default() });
    }
}

#[tokio::test]
async fn the_autoscaler_follows_cpu_and_scales_down_only_after_the_stabilization_window() {
    let h = Harness::new();
    let spec = format!(
        "{{replicas: 2, template: {SMALL}, autoScaling: {{enabled: true, minReplicas: 2, maxReplicas: 6, targetCpuUtilization: 50}}}}"
    );
    let mut obj = cluster("workers", &spec);
    turn(&h, &mut obj).await;
    // Running, but the autoscaler decided before this step saw them run: no figure yet.
    let s = boot_and_turn(&h, &mut obj).await;
    assert_eq!((s.desired_replicas, s.current_cpu_utilization), (2, None));
    // Busy: 2 × 100 / 50 = 4.
    cpu(&h, 100.0);
    let s = boot_and_turn(&h, &mut obj).await;
    assert_eq!((s.desired_replicas, s.replicas, s.current_cpu_utilization), (4, 4, Some(100)));
    assert_eq!(s.last_scale_time.as_deref(), Some("2026-11-30T00:01:00Z"));
    let scaled: Vec<String> = h.events().iter().filter_map(|e| e["reason"].as_str().map(str::to_owned)).collect();
    assert_eq!(scaled, ["ScaledUp"]);
    // At target (4 × 52 / 50 = 4.16, within the 0.1 tolerance): nothing changes.
    cpu(&h, 52.0);
    let s = boot_and_turn(&h, &mut obj).await;
    assert_eq!((s.desired_replicas, s.ready_replicas), (4, 4));
    // Idle: 4 × 10 / 50 = 0.8 → 1, at least minReplicas 2; but 4 was recommended at 1:00 and
    // 1:30, so the count holds (2:00 to 6:30) until that is more than 300 s old.
    cpu(&h, 10.0);
    for _ in 0..10 {
        let s = boot_and_turn(&h, &mut obj).await;
        assert_eq!(s.desired_replicas, 4, "at {}", h.clock.now().0);
    }
    // At 7:00 the last 4 is 330 s old: down to 2.
    let s = boot_and_turn(&h, &mut obj).await;
    assert_eq!((s.desired_replicas, s.replicas), (2, 2));
    assert_eq!(s.last_scale_time.as_deref(), Some("2026-11-30T00:07:00Z"));
    assert_eq!(h.cloud.live_instances().len(), 2);
}

/// Rolls a four-replica cluster from 4Gi to 8Gi replicas under `strategy`, checking after every
/// turn that the children (and the cloud instances) never exceed `4 + surge` and that at least
/// `4 - unavailable` run. Returns the turns it took.
async fn roll(strategy: &str, surge: usize, unavailable: usize) -> usize {
    let h = Harness::new();
    let mut obj = cluster("workers", &format!("{{replicas: 4, template: {SMALL}, updateStrategy: {strategy}}}"));
    turn(&h, &mut obj).await;
    let s = boot_and_turn(&h, &mut obj).await;
    assert_eq!((s.ready_replicas, s.updated_replicas), (4, 4));
    let before: Vec<String> = h.vms().iter().map(|v| v.name_any()).collect();

    obj.spec.template = Some(serde_yaml_ng::from_str(&SMALL.replace("4Gi", "8Gi")).expect("template"));
    obj.metadata.generation = Some(2);
    let (_, s) = turn(&h, &mut obj).await;
    // Under way: fewer replicas of the new template than wanted, or not all of them ready yet
    // (Recreate replaced all four at once).
    let progressing = condition(&s, "Progressing");
    match strategy {
        "{type: Recreate}" => {
            assert_eq!((s.updated_replicas, s.ready_replicas), (4, 0));
            assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "Starting"));
        }
        _ => {
            assert!(s.updated_replicas < 4, "{s:?}");
            assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "RollingOut"));
        }
    }
    for n in 1..=20 {
        let (live, running) = children(&h);
        assert!(live <= 4 + surge, "{live} children after turn {n}");
        assert!(h.cloud.live_instances().len() <= 4 + surge, "{:?}", h.cloud.live_instances());
        assert!(running + unavailable >= 4, "{running} running after turn {n}");
        let s = boot_and_turn(&h, &mut obj).await;
        if s.updated_replicas == 4 && s.replicas == 4 && s.ready_replicas == 4 {
            assert_eq!(condition(&s, "Progressing").reason, "Complete");
            // Every VM was replaced, and each old cloud instance deleted.
            let after: Vec<String> = h.vms().iter().map(|v| v.name_any()).collect();
            assert!(after.iter().all(|a| !before.contains(a)), "{before:?} -> {after:?}");
            assert_eq!(h.cloud.live_instances().len(), 4);
            assert_eq!(h.cloud.delete_calls(), 4);
            return n;
        }
    }
    panic!("the rollout did not finish in 20 turns");
}

#[tokio::test]
async fn a_rolling_update_stays_within_max_surge_and_max_unavailable() {
    // Make-before-break, one at a time: a replacement per turn.
    assert_eq!(roll("{type: RollingUpdate, maxSurge: 1, maxUnavailable: 0}", 1, 0).await, 4);
    // Break-before-make, one at a time.
    assert_eq!(roll("{type: RollingUpdate, maxSurge: 0, maxUnavailable: 1}", 0, 1).await, 4);
    // The example's: 25 % of 4 = 1 beside, 1 down: two per turn.
    assert_eq!(roll("{type: RollingUpdate, maxUnavailable: 1, maxSurge: '25%'}", 1, 1).await, 2);
    // Recreate: all down at once, all back at once.
    assert_eq!(roll("{type: Recreate}", 0, 4).await, 1);
}

#[tokio::test]
async fn deletion_goes_through_the_finalizer_and_leaves_no_cloud_vm() {
    let h = Harness::new();
    let mut obj = cluster("workers", &format!("{{replicas: 3, template: {SMALL}}}"));
    turn(&h, &mut obj).await;
    boot_and_turn(&h, &mut obj).await;
    assert_eq!(h.cloud.live_instances().len(), 3);
    let cloud = h.cloud.clone();
    let checked = Arc::new(AtomicBool::new(false));
    let seen = checked.clone();
    h.store().on_remove.push((
        "/vmclusters/workers".into(),
        Box::new(move |store| {
            assert!(cloud.live_instances().is_empty(), "instances left: {:?}", cloud.live_instances());
            assert!(store.all(NOVACRON, "virtualmachines").is_empty(), "children left");
            seen.store(true, Ordering::SeqCst);
        }),
    ));
    let mut going = stored(&h, "workers").expect("stored");
    going.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-30T01:00:00Z".parse().expect("a timestamp"),
    ));
    keep(&h, &going);
    let mut errors = Vec::new();
    for _ in 0..3 {
        let Some(current) = stored(&h, "workers") else { break };
        let current = Arc::new(current);
        if let Err(e) = reconcile(current.clone(), h.ctx.clone()).await {
            error_policy(current, &e, h.ctx.clone());
            errors.push(e.metric_label());
        }
        h.vm_pass().await;
    }
    // First turn: the children are asked to go and the cluster waits; second: it goes.
    assert_eq!(errors, ["children-remain"]);
    assert!(stored(&h, "workers").is_none());
    assert!(checked.load(Ordering::SeqCst));
    assert_eq!(h.cloud.delete_calls(), 3);
    assert!(!h.ctx.has_tracker("uid-workers"));
}

#[tokio::test]
async fn a_bad_spec_is_reported_field_by_field_and_nothing_is_created() {
    let h = Harness::new();
    let spec = "{replicas: 2, template: {name: nope}, updateStrategy: {type: Rolling}, autoScaling: {minReplicas: 5, maxReplicas: 3}}";
    let mut obj = cluster("workers", spec);
    let (_, s) = turn(&h, &mut obj).await;
    let valid = condition(&s, "SpecValid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "InvalidSpec"));
    assert_eq!(
        valid.message,
        "spec.template.name: no VMTemplate named \"nope\" in namespace \"default\"; spec.autoScaling.minReplicas: must not exceed maxReplicas (5 > 3)"
    );
    assert_eq!(condition(&s, "Ready").reason, "InvalidSpec");
    assert!(h.vms().is_empty());
    assert_eq!(h.cloud.create_calls(), 0);

    // The template exists now, and the bounds are fixed: the update strategy is what is left.
    let template = serde_json::json!({
        "apiVersion": "novacron.io/v1", "kind": "VMTemplate",
        "metadata": { "name": "nope", "namespace": "default" },
        "spec": { "config": { "resources": { "cpu": { "request": "2" }, "memory": { "request": "lots" } } } }
    });
    h.store().put(NOVACRON, "vmtemplates", &template);
    obj.spec.auto_scaling = None;
    let (_, s) = turn(&h, &mut obj).await;
    assert_eq!(
        condition(&s, "SpecValid").message,
        "VMTemplate default/nope: spec.config.resources.memory: must be a memory quantity such as \"4Gi\" or \"4096Mi\", above 0; spec.updateStrategy.type: unknown update strategy \"Rolling\"; types are: RollingUpdate, Recreate"
    );
    // Both surge and unavailability 0 could never progress.
    obj.spec.update_strategy = Some(serde_yaml_ng::from_str("{maxSurge: 0, maxUnavailable: 0}").expect("yaml"));
    obj.spec.template = Some(serde_yaml_ng::from_str(SMALL).expect("template"));
    let (_, s) = turn(&h, &mut obj).await;
    assert_eq!(
        condition(&s, "SpecValid").message,
        "spec.updateStrategy: maxSurge and maxUnavailable must not both be 0: the update could never start"
    );
    assert_eq!(h.cloud.create_calls(), 0);
    // Fixed: it runs.
    obj.spec.update_strategy = None;
    let (_, s) = turn(&h, &mut obj).await;
    assert_eq!(condition(&s, "SpecValid").status, "True");
    assert_eq!(s.replicas, 2);
}
