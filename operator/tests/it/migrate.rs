//! Cross-cloud migration (`operator::provider::migrate`): AWS → GCP through the multi-cloud
//! router over two in-memory clouds, with a failure injected at each step; after every run, the
//! only live instance is the one that serves (the target after a success, the source after a
//! rollback), and everything else is terminated.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{Market, Provider};
use futures::future::BoxFuture;
use operator::provider::memory::MemoryCloud;
use operator::provider::migrate::{MigrateError, Migrated, MigrationPlan, Step, Switch, migrate};
use operator::provider::multi::{Member, MultiCloud};
use operator::provider::{CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceState, ProviderError};

/// One cloud of the seed catalog: only `provider`'s region and offers.
fn cloud_of(provider: Provider, prefix: &str) -> Arc<MemoryCloud> {
    let seed = MemoryCloud::seed_catalog();
    let regions: Vec<_> = seed.regions.into_iter().filter(|r| r.provider == provider).collect();
    let names: Vec<String> = regions.iter().map(|r| r.name.clone()).collect();
    let offers: Vec<_> = seed.offers.into_iter().filter(|o| names.contains(&o.region)).collect();
    let types = seed.instance_types.into_iter().filter(|t| offers.iter().any(|o| o.instance_type == t.name)).collect();
    let c = Arc::new(MemoryCloud::new(CloudCatalog { regions, instance_types: types, offers }));
    c.set_id_prefix(prefix);
    c.set_boot_on_get(true);
    c
}

struct World {
    aws: Arc<MemoryCloud>,
    gcp: Arc<MemoryCloud>,
    multi: MultiCloud,
    source: String,
}

async fn world() -> World {
    let aws = cloud_of(Provider::Aws, "aws-");
    let gcp = cloud_of(Provider::Gcp, "gcp-");
    let multi = MultiCloud::new(vec![
        Member { name: "aws".into(), provider: Provider::Aws, cloud: aws.clone() },
        Member { name: "gcp".into(), provider: Provider::Gcp, cloud: gcp.clone() },
    ]);
    let source =
        multi.create(request("tok-source", "aws-us-east-1", "us-east-1a", "m5.large")).await.expect("source created");
    aws.boot_all();
    World { aws, gcp, multi, source: source.id }
}

fn request(token: &str, region: &str, zone: &str, itype: &str) -> CreateRequest {
    CreateRequest {
        client_token: token.into(),
        owner_uid: "uid-web".into(),
        slot: 0,
        region: region.into(),
        zone: zone.into(),
        instance_type: itype.into(),
        market: Market::OnDemand,
        tags: BTreeMap::new(),
    }
}

fn plan(source: &str) -> MigrationPlan {
    MigrationPlan {
        source_id: source.into(),
        target: request("tok-target", "gcp-us-central1", "a", "n2-standard-2"),
        poll_interval: Duration::from_secs(5),
        max_polls: 24,
    }
}

/// Records the switches; fails the first `fail_first` calls.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, String)>>,
    fail_first: usize,
}

impl Switch for Recorder {
    fn switch<'a>(&'a self, from: &'a CloudInstance, to: &'a CloudInstance) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut c = self.calls.lock().expect("lock");
            c.push((from.id.clone(), to.id.clone()));
            if c.len() <= self.fail_first { Err("load balancer refused".into()) } else { Ok(()) }
        })
    }
}

/// The ids of every instance not terminated, in both clouds.
fn live(w: &World) -> Vec<String> {
    let mut v: Vec<String> = w.aws.live_instances().into_iter().chain(w.gcp.live_instances()).map(|i| i.id).collect();
    v.sort();
    v
}

fn state(w: &World, id: &str) -> InstanceState {
    w.aws.all_instances().into_iter().chain(w.gcp.all_instances()).find(|i| i.id == id).expect("known").state
}

#[tokio::test(start_paused = true)]
async fn a_migration_creates_waits_switches_then_deletes_the_source() {
    let w = world().await;
    let sw = Recorder::default();
    let Migrated { target, polls } = migrate(&w.multi, &w.multi, &plan(&w.source), &sw).await.expect("migrates");
    assert_eq!(target.id, "gcp-i-00000001");
    assert_eq!(target.region, "gcp-us-central1");
    // Booted at the first poll (boot on get).
    assert_eq!((polls, state(&w, &target.id)), (1, InstanceState::Running));
    assert_eq!(*sw.calls.lock().expect("lock"), [(w.source.clone(), target.id.clone())]);
    assert_eq!(state(&w, &w.source), InstanceState::Terminated);
    assert_eq!(live(&w), [target.id]);
}

/// Runs a migration that fails at `step` and checks that only the source is left live.
async fn rolled_back(w: &World, sw: &Recorder, step: Step) -> MigrateError {
    let e = migrate(&w.multi, &w.multi, &plan(&w.source), sw).await.expect_err("fails");
    match &e {
        MigrateError::RolledBack { step: s, .. } => assert_eq!(*s, step, "{e}"),
        other => panic!("not rolled back: {other}"),
    }
    assert_eq!(live(w), std::slice::from_ref(&w.source), "{e}");
    assert_eq!(state(w, &w.source), InstanceState::Running);
    e
}

#[tokio::test(start_paused = true)]
async fn a_failed_create_leaves_only_the_source() {
    let w = world().await;
    w.gcp.fail_next_creates([ProviderError::InsufficientCapacity("n2-standard-2 in a".into())]);
    let sw = Recorder::default();
    let e = rolled_back(&w, &sw, Step::Create).await;
    assert!(e.to_string().contains("insufficient capacity: gcp: n2-standard-2 in a"), "{e}");
    assert!(sw.calls.lock().expect("lock").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_target_that_crashes_while_booting_is_deleted() {
    let w = world().await;
    w.gcp.fail_next_boots(1);
    let sw = Recorder::default();
    let e = rolled_back(&w, &sw, Step::WaitHealthy).await;
    assert!(e.to_string().contains("gcp-i-00000001 is Lost(Crashed)"), "{e}");
    assert_eq!(state(&w, "gcp-i-00000001"), InstanceState::Terminated);
    assert!(sw.calls.lock().expect("lock").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_target_that_never_runs_times_out_and_is_deleted() {
    let w = world().await;
    w.gcp.set_boot_on_get(false);
    let sw = Recorder::default();
    let start = tokio::time::Instant::now();
    let e = rolled_back(&w, &sw, Step::WaitHealthy).await;
    assert!(e.to_string().contains("did not run within 24 polls of 5s"), "{e}");
    // 24 polls, 5 s apart: 2 minutes of (paused) time.
    assert_eq!(start.elapsed(), Duration::from_secs(120));
    assert_eq!(state(&w, "gcp-i-00000001"), InstanceState::Terminated);
}

#[tokio::test(start_paused = true)]
async fn a_failed_switch_deletes_the_target() {
    let w = world().await;
    let sw = Recorder { fail_first: 1, ..Recorder::default() };
    let e = rolled_back(&w, &sw, Step::Switch).await;
    assert!(e.to_string().contains("switch: load balancer refused"), "{e}");
    assert_eq!(sw.calls.lock().expect("lock").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_source_that_cannot_be_deleted_switches_back_and_deletes_the_target() {
    let w = world().await;
    w.aws.fail_next_deletes(1);
    let sw = Recorder::default();
    let e = rolled_back(&w, &sw, Step::DeleteSource).await;
    assert!(e.to_string().contains(&format!("delete source {}", w.source)), "{e}");
    let t = "gcp-i-00000001".to_owned();
    assert_eq!(*sw.calls.lock().expect("lock"), [(w.source.clone(), t.clone()), (t, w.source.clone())]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_rollback_names_what_is_left() {
    let w = world().await;
    w.gcp.fail_next_deletes(1);
    let sw = Recorder { fail_first: 1, ..Recorder::default() };
    let e = migrate(&w.multi, &w.multi, &plan(&w.source), &sw).await.expect_err("fails");
    assert_eq!(
        e,
        MigrateError::RollbackFailed {
            step: Step::Switch,
            reason: "switch: load balancer refused".into(),
            rollback: "delete target gcp-i-00000001: API error: gcp: delete gcp-i-00000001 failed".into(),
            live: vec!["gcp-i-00000001".into()],
        }
    );
    // Retrying the delete the error names cleans up.
    w.multi.delete("gcp-i-00000001").await.expect("deleted");
    assert_eq!(live(&w), std::slice::from_ref(&w.source));
}

#[tokio::test(start_paused = true)]
async fn a_source_that_is_not_running_is_not_migrated() {
    let w = world().await;
    w.aws.crash(&w.source);
    let sw = Recorder::default();
    let e = migrate(&w.multi, &w.multi, &plan(&w.source), &sw).await.expect_err("refused");
    assert!(matches!(e, MigrateError::RolledBack { step: Step::Source, .. }), "{e}");
    assert!(w.gcp.all_instances().is_empty());
}
