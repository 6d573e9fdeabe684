//! Cross-cloud migration as the controller carries it out: through the children layering. The
//! engine decides to move a serving replica (here: its MultiCloudVM's primary changes from AWS to
//! GCP); its make-before-break relocation becomes the steps of a migration, each a
//! level-triggered reconcile of Kubernetes objects rather than one long call:
//!
//! 1. **create the target**: a new `VirtualMachine` child at GCP, whose controller creates the
//!    cloud instance (idempotent on the child's UID);
//! 2. **wait healthy**: the child's status reports `Running`, and only then does the engine make
//!    it serve (a target that fails or is lost is deleted and placed again; the source serves
//!    meanwhile);
//! 3. **switch**: the engine's slot now serves from the target (there is no external switch to
//!    fail: what serves is the engine's state, written to the status);
//! 4. **delete the source**: the engine terminates it, the tracker deletes its child, whose
//!    finalizer keeps it until the cloud instance is gone (a refused delete is retried).
//!
//! A failure is injected at each step, and after every reconcile the no-leak invariant is checked:
//! every live cloud instance belongs to a `VirtualMachine` that still exists. At the end only the
//! serving instance is left, with its one child.

use engine::SimDuration;
use kube::ResourceExt;
use operator::crd::MultiCloudVM;
use operator::provider::ProviderError;

use crate::common::{Fixture, Harness, condition, mcvm, seed_spec};

/// Every live cloud instance belongs to a VirtualMachine that still exists (the VirtualMachine
/// controller creates with the child's UID as client token).
fn assert_no_leak(h: &Harness, when: &str) {
    let vms = h.vms();
    for i in h.cloud.live_instances() {
        assert!(
            vms.iter().any(|v| v.uid().as_deref() == Some(i.client_token.as_str())),
            "{when}: instance {} ({}) has no VirtualMachine; children: {:?}",
            i.id,
            i.region,
            vms.iter().map(|v| v.name_any()).collect::<Vec<_>>()
        );
    }
}

/// Regions of the live cloud instances, sorted.
fn live_regions(h: &Harness) -> Vec<String> {
    let mut v: Vec<String> = h.cloud.live_instances().into_iter().map(|i| i.region).collect();
    v.sort();
    v
}

/// One replica of the seed spec, on demand, running at AWS.
async fn serving_at_aws() -> (Harness, MultiCloudVM) {
    let mut h = Harness::new();
    let mut spec = seed_spec();
    spec.cost_optimization.as_mut().expect("seed has costOptimization").use_spot_instances = Some(false);
    let mut obj = mcvm("web", spec).finalized();
    h.apply(&mut obj).await;
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    let (_, s) = h.apply(&mut obj).await;
    assert_eq!(condition(&s, "Ready").status, "True");
    assert_eq!(live_regions(&h), ["aws-us-east-1"]);
    (h, obj)
}

/// The spec now puts the replica at GCP first: the engine moves it.
fn move_to_gcp(obj: &mut MultiCloudVM) {
    let s = &mut obj.spec.deployment_strategy;
    s.primary = Some("gcp-us-central".into());
    s.secondary = vec!["azure-eastus".into(), "aws-us-east".into()];
    obj.metadata.generation = Some(obj.metadata.generation.unwrap_or(1) + 1);
}

/// Turns until the replica serves from GCP alone (at most `turns`), checking the invariant and
/// that something serves at every turn. Returns the turns it took.
async fn settle(h: &mut Harness, obj: &mut MultiCloudVM, turns: usize) -> usize {
    for n in 1..=turns {
        h.cloud.boot_all();
        h.clock.advance(SimDuration::from_secs(30));
        let (_, s) = h.apply(obj).await;
        assert_no_leak(h, &format!("turn {n}"));
        if live_regions(h) == ["gcp-us-central1"] && h.vms().len() == 1 {
            assert_eq!(s.health.as_ref().map(|x| x.serving), Some(1));
            assert_eq!(s.active_region.as_deref(), Some("gcp-us-central1"));
            return n;
        }
    }
    panic!("not settled at GCP after {turns} turns: {:?}, children {:?}", live_regions(h), h.vms().len());
}

#[tokio::test]
async fn a_move_creates_the_target_waits_for_it_then_deletes_the_source() {
    let (mut h, mut obj) = serving_at_aws().await;
    move_to_gcp(&mut obj);
    let (_, s) = h.apply(&mut obj).await;
    // 1. The target is created as a second child; the source still serves.
    assert_eq!(live_regions(&h), ["aws-us-east-1", "gcp-us-central1"]);
    assert_eq!(h.vms().len(), 2);
    assert_eq!(s.health.as_ref().map(|x| x.serving), Some(1), "make before break");
    assert_no_leak(&h, "target created");
    // 2.–4. It runs; the source is deleted with its child.
    assert_eq!(settle(&mut h, &mut obj, 3).await, 1);
}

#[tokio::test]
async fn a_refused_target_create_leaves_the_source_serving() {
    let (mut h, mut obj) = serving_at_aws().await;
    h.cloud.fail_next_creates([ProviderError::InsufficientCapacity("n2-standard-2 in a".into())]);
    move_to_gcp(&mut obj);
    let (_, s) = h.apply(&mut obj).await;
    assert_eq!(live_regions(&h), ["aws-us-east-1"], "nothing made at GCP");
    assert_eq!(s.health.as_ref().map(|x| x.serving), Some(1), "the source serves");
    assert_no_leak(&h, "create refused");
    settle(&mut h, &mut obj, 6).await;
}

#[tokio::test]
async fn a_target_that_crashes_while_booting_is_deleted_and_replaced() {
    let (mut h, mut obj) = serving_at_aws().await;
    move_to_gcp(&mut obj);
    h.apply(&mut obj).await;
    h.cloud.fail_next_boots(1);
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    let (_, s) = h.apply(&mut obj).await;
    assert_eq!(s.health.as_ref().map(|x| x.serving), Some(1), "the source serves");
    assert!(h.cloud.live_instances().iter().any(|i| i.region == "aws-us-east-1"));
    assert_no_leak(&h, "target lost");
    settle(&mut h, &mut obj, 6).await;
    // The crashed target was deleted in the cloud, not only forgotten.
    assert!(h.cloud.all_instances().iter().filter(|i| i.region == "gcp-us-central1").count() >= 2);
}

#[tokio::test]
async fn a_source_the_cloud_will_not_delete_is_retried_until_gone() {
    let (mut h, mut obj) = serving_at_aws().await;
    move_to_gcp(&mut obj);
    h.apply(&mut obj).await;
    h.cloud.fail_next_deletes(1);
    let turns = settle(&mut h, &mut obj, 4).await;
    assert!(turns >= 2, "the refused delete took a retry ({turns} turns)");
    assert!(h.cloud.delete_calls() >= 2);
}

#[tokio::test]
async fn an_operator_restart_mid_move_adopts_the_target_and_deletes_the_source() {
    let (mut h, mut obj) = serving_at_aws().await;
    move_to_gcp(&mut obj);
    h.apply(&mut obj).await;
    // The operator restarts while the target boots: a fresh engine, the children and the cloud
    // as they are.
    h.ctx.forget_all();
    settle(&mut h, &mut obj, 4).await;
    assert_eq!(h.cloud.create_calls(), 2, "the target is adopted, not made twice");
}
