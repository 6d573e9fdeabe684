//! Migration and disaster recovery, example by example: a deployment with a `migrationPolicy`
//! moves serving replicas live, warm or cold, as the models in `engine::migration` plan; one with
//! `disasterRecovery` backs up on its schedule and restores replicas lost with their location.
//!
//! Deployment `D` is active-passive from AWS to Azure (two small replicas, `lowest-price`, so
//! each lands on the cheapest offer of its region: O0 at AWS, O2 at Azure), evaluated every 60 s.

use engine::deploy::{ActivePassiveConfig, CostOptimizedConfig, SpotRecovery, slot_vm};
use engine::dr::{BackupKind, BackupPolicy, Schedule};
use engine::migration::{MigrationKind, MigrationPolicy};
use engine::{
    Action, DeploymentSpec, Event, FailureCause, GroupId, InstanceId, Market, OfferId, ProvisionReason, SimDuration,
    SimTime, Strategy, TimerKind, VmId, VmRequest,
};

use crate::fixture::*;

const D: GroupId = GroupId(7);

fn vm(slot: u32) -> VmId {
    slot_vm(D, slot)
}

fn spec(strategy: Strategy, migration: Option<MigrationPolicy>, dr: Option<BackupPolicy>) -> DeploymentSpec {
    DeploymentSpec {
        id: D,
        name: "db".into(),
        replicas: 2,
        template: VmRequest::new(VmId(0), engine::Resources { vcpu: 2, memory_mib: 4096, gpu: 0 }),
        strategy,
        triggers: Vec::new(),
        cooldown: SimDuration::from_secs(300),
        evaluate_every: SimDuration::from_secs(60),
        max_cost_per_h: None,
        spot: SpotRecovery::default(),
        migration,
        disaster_recovery: dr,
        rollout: None,
    }
}

fn aws_to_azure() -> Strategy {
    Strategy::ActivePassive(ActivePassiveConfig {
        primary: AWS,
        secondary: vec![AZURE],
        failback: false,
        hold_down: SimDuration::from_secs(600),
    })
}

/// 4 GiB memory, 10 GiB disk, dirtying 0.01 GiB/s; 1 GiB/s inside a cloud, 0.1 GiB/s across.
fn policy(kind: MigrationKind) -> MigrationPolicy {
    let mut p = MigrationPolicy::new(kind);
    p.params.memory_gib = 4.0;
    p.params.disk_gib = 10.0;
    p.params.dirty_rate_gib_per_s = 0.01;
    p.params.bandwidth_gib_per_s = 1.0;
    p.params.stop_copy_threshold_gib = 0.03;
    p.params.snapshot_rate_gib_per_s = 0.5;
    p.cross_cloud_bandwidth_gib_per_s = 0.1;
    p
}

fn provisions(actions: &[Action]) -> Vec<(u64, VmId, OfferId, ProvisionReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Provision { instance, vm, placement, reason, .. } => {
                Some((instance.0, *vm, placement.offer, *reason))
            }
            _ => None,
        })
        .collect()
}

fn terminates(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Terminate { instance, .. } => Some(instance.0),
            _ => None,
        })
        .collect()
}

fn timers(actions: &[Action]) -> Vec<(SimTime, TimerKind)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetTimer { timer } => Some((timer.at, timer.kind)),
            _ => None,
        })
        .collect()
}

fn fire(run: &mut Run, at: SimTime, kind: TimerKind) -> Vec<Action> {
    run.at(at, Event::TimerFired { timer: kind })
}

/// Applies the deployment at 0 s and reports its two AWS instances (0 and 1) running at 40 s.
fn started(migration: Option<MigrationPolicy>, dr: Option<BackupPolicy>) -> Run {
    let mut run = Run::new(config("lowest-price"));
    let actions =
        run.at(SimTime::ZERO, Event::DeploymentApplied { spec: Box::new(spec(aws_to_azure(), migration, dr)) });
    let placed = provisions(&actions);
    assert_eq!(placed.iter().map(|p| (p.0, p.2)).collect::<Vec<_>>(), [(0, AWS_A_SMALL), (1, AWS_A_SMALL)]);
    run.running(secs(40), 0);
    run.running(secs(40), 1);
    run
}

fn manual_to_azure(run: &mut Run, at: u64) -> Vec<Action> {
    run.at(secs(at), Event::ManualFailover { deployment: D, to: Some(AZURE) })
}

#[test]
fn warm_migration_boots_the_standby_syncs_then_cuts_over() {
    let mut run = started(Some(policy(MigrationKind::Warm)), None);
    // The operator moves the deployment to Azure while it serves: the standbys are provisioned
    // first (O2), the sources keep serving.
    let actions = manual_to_azure(&mut run, 100);
    let placed = provisions(&actions);
    assert_eq!(
        placed,
        [(2, vm(0), AZ_1_SMALL, ProvisionReason::Relocation), (3, vm(1), AZ_1_SMALL, ProvisionReason::Relocation)]
    );
    assert!(terminates(&actions).is_empty());
    // Standby 2 runs at 190 s: now the data moves across clouds at 0.1 GiB/s: 10 GiB of disk and
    // 4 GiB of memory = 140 s, then the cut-over (2 s switch-over + the delta dirtied meanwhile,
    // 0.02 GiB at 0.1 GiB/s = 0.2 s).
    let actions = run.running(secs(190), 2);
    let sync = SimDuration::from_secs(140) + SimDuration::from_millis(2200);
    assert_eq!(timers(&actions), [(secs(190) + sync, TimerKind::Transfer(vm(0)))]);
    assert_eq!(run.engine.vm_serving_region(vm(0)), Some(AWS), "the source serves until the cut-over");
    let actions = fire(&mut run, secs(190) + sync, TimerKind::Transfer(vm(0)));
    assert_eq!(terminates(&actions), [0], "the source goes at the cut-over");
    let migrated = actions.iter().find_map(|a| match a {
        Action::Migrated { vm, kind, from, to, downtime, transferred_gib, egress_usd, .. } => {
            Some((*vm, *kind, *from, *to, *downtime, *transferred_gib, *egress_usd))
        }
        _ => None,
    });
    let (v, kind, from, to, downtime, gib, egress) = migrated.expect("a Migrated action");
    assert_eq!((v, kind, from, to), (vm(0), MigrationKind::Warm, AWS, AZURE));
    assert_eq!(downtime, SimDuration::from_millis(2200));
    assert_close(gib, 14.02);
    assert_close(egress, 14.02 * 0.09);
    assert_eq!(run.engine.vm_serving_region(vm(0)), Some(AZURE));
}

#[test]
fn live_migration_within_a_cloud_pauses_for_the_last_round_only() {
    // The plan of a move inside one cloud (the fixture has one region per cloud, so the engine
    // part below moves across clouds).
    let p = policy(MigrationKind::Live);
    let plan = p.plan(false);
    // Disk 10 s, round 0: 4 GiB in 4 s (dirtying 0.04), round 1: 0.04 GiB in 0.04 s (dirtying
    // 0.0004 ≤ 0.03 threshold): 2 rounds; the pause copies 0.0004 GiB and costs 100 ms.
    assert_eq!(plan.rounds, 2);
    assert!(plan.converged);
    assert_eq!(plan.downtime, SimDuration::from_millis(100));
    // Across clouds the same move is ten times slower and still converges.
    assert!(p.plan(true).total_time > plan.total_time);

    // And in the engine: a live move to Azure waits for the target, copies for the plan's whole
    // time, then cuts over with the plan's pause as the downtime.
    let mut run = started(Some(p.clone()), None);
    manual_to_azure(&mut run, 100);
    let actions = run.running(secs(190), 3);
    let live = p.plan(true);
    assert_eq!(timers(&actions), [(secs(190) + live.total_time, TimerKind::Transfer(vm(1)))]);
    let actions = fire(&mut run, secs(190) + live.total_time, TimerKind::Transfer(vm(1)));
    assert!(actions.iter().any(
        |a| matches!(a, Action::Migrated { kind: MigrationKind::Live, downtime, .. } if *downtime == live.downtime)
    ));
    assert_eq!(terminates(&actions), [1]);
}

#[test]
fn cold_migration_stops_first_and_its_downtime_runs_until_the_target_serves() {
    let mut run = started(Some(policy(MigrationKind::Cold)), None);
    // Stop at once: snapshot 10 GiB at 0.5 GiB/s (20 s) and copy it across clouds (100 s); no
    // instance yet.
    let actions = manual_to_azure(&mut run, 100);
    assert_eq!(terminates(&actions), [0, 1]);
    assert!(provisions(&actions).is_empty());
    let copy = SimDuration::from_secs(120);
    assert_eq!(timers(&actions).iter().filter(|t| matches!(t.1, TimerKind::Transfer(_))).count(), 2, "{actions:?}");
    assert_eq!(run.engine.vm_serving_region(vm(0)), None, "cold: down while the snapshot copies");
    // An evaluation meanwhile does not place it early.
    let actions = fire(&mut run, secs(160), TimerKind::Deployment(D));
    assert!(provisions(&actions).is_empty(), "{actions:?}");
    let actions = fire(&mut run, secs(100) + copy, TimerKind::Transfer(vm(0)));
    assert_eq!(provisions(&actions), [(2, vm(0), AZ_1_SMALL, ProvisionReason::Relocation)]);
    // The evaluation at 240 s must not call the migration off: the target is on its way.
    fire(&mut run, secs(240), TimerKind::Deployment(D));
    let actions = run.running(secs(310), 2);
    let downtime = actions.iter().find_map(|a| match a {
        Action::Migrated { kind: MigrationKind::Cold, downtime, egress_usd, overlap, .. } => {
            Some((*downtime, *egress_usd, *overlap))
        }
        _ => None,
    });
    assert_eq!(downtime, Some((SimDuration::from_secs(210), 10.0 * 0.09, SimDuration::ZERO)));
}

#[test]
fn a_migration_whose_target_dies_is_called_off_and_the_source_keeps_serving() {
    let mut run = started(Some(policy(MigrationKind::Warm)), None);
    manual_to_azure(&mut run, 100);
    let actions = run.running(secs(190), 2);
    let (at, _) = timers(&actions)[0];
    run.at(secs(200), Event::RegionHealth { region: AZURE, healthy: false });
    let actions = fire(&mut run, at, TimerKind::Transfer(vm(0)));
    assert_eq!(terminates(&actions), [2], "the target goes");
    assert!(!actions.iter().any(|a| matches!(a, Action::Migrated { .. })));
    assert_eq!(run.engine.vm_serving_region(vm(0)), Some(AWS));
}

#[test]
fn a_cost_threshold_holds_back_moves_that_save_too_small_a_share() {
    // Cost-optimized over AWS and GCP, on demand: AWS (O0 $0.096) first. Both AWS small offers
    // go to $0.13/h: GCP's $0.104 saves 20 % of what a replica pays.
    for (threshold, moves) in [(0.25, false), (0.15, true)] {
        let strategy = Strategy::CostOptimized(CostOptimizedConfig {
            locations: vec![AWS, GCP],
            horizon: SimDuration::from_secs(30 * 24 * 3600),
            min_saving_ratio: 1.0,
            disruption_budget: 1.0,
            window: SimDuration::from_secs(3600),
            data_gib: 0.0,
            downtime: SimDuration::ZERO,
            downtime_cost_per_h: 0.0,
            overlap: SimDuration::ZERO,
        });
        let mut p = policy(MigrationKind::Live);
        p.cost_threshold = Some(threshold);
        let mut run = Run::new(config("lowest-price"));
        run.at(SimTime::ZERO, Event::DeploymentApplied { spec: Box::new(spec(strategy, Some(p), None)) });
        run.running(secs(40), 0);
        run.running(secs(40), 1);
        for offer in [AWS_A_SMALL, AWS_B_SMALL] {
            run.at(secs(50), Event::PriceChanged { offer, market: Market::OnDemand, price_per_h: 0.13 });
        }
        let actions = fire(&mut run, secs(60), TimerKind::Deployment(D));
        let to_gcp = provisions(&actions).iter().filter(|p| p.2 == GCP_A_SMALL || p.2 == GCP_B_SMALL).count();
        assert_eq!(to_gcp > 0, moves, "threshold {threshold}: {actions:?}");
    }
}

fn backups() -> BackupPolicy {
    BackupPolicy {
        schedule: Schedule::parse("*/15 * * * *").expect("valid cron"),
        full_every: 2,
        retention: 4,
        target_region: GCP,
        data_gib: 10.0,
        change_rate_gib_per_h: 4.0,
        bandwidth_gib_per_s: 1.0,
        rpo_target: SimDuration::from_secs(900),
        rto_target: SimDuration::from_secs(1800),
    }
}

#[test]
fn backups_run_on_schedule_and_a_replica_lost_with_its_region_is_restored() {
    let mut run = Run::new(config("lowest-price"));
    let actions =
        run.at(SimTime::ZERO, Event::DeploymentApplied { spec: Box::new(spec(aws_to_azure(), None, Some(backups()))) });
    assert!(timers(&actions).contains(&(secs(900), TimerKind::Backup(D))), "first backup at 00:15");
    run.running(secs(40), 0);
    run.running(secs(40), 1);
    // 00:15: a full backup (10 GiB at 1 GiB/s: 10 s), and the next one scheduled.
    let actions = fire(&mut run, secs(900), TimerKind::Backup(D));
    assert_eq!(timers(&actions), [(secs(910), TimerKind::Backup(D)), (secs(1800), TimerKind::Backup(D))]);
    let actions = fire(&mut run, secs(910), TimerKind::Backup(D));
    assert!(
        matches!(
            actions[..],
            [Action::BackupCompleted { at, kind: BackupKind::Full, duration, .. }] if at == secs(900) && duration == SimDuration::from_secs(10)
        ),
        "{actions:?}"
    );
    // 00:30: an incremental of 15 min × 4 GiB/h = 1 GiB: 1 s.
    fire(&mut run, secs(1800), TimerKind::Backup(D));
    let actions = fire(&mut run, secs(1801), TimerKind::Backup(D));
    assert!(matches!(actions[..], [Action::BackupCompleted { kind: BackupKind::Incremental, .. }]), "{actions:?}");
    // 00:33:20: replica 0's instance is lost with its zone. It is restored from the 00:30 point:
    // the full backup and the incremental come back (11 GiB at 1 GiB/s) before it is placed.
    let actions = run.at(secs(2000), Event::InstanceFailed { instance: InstanceId(0), cause: FailureCause::Outage });
    assert!(provisions(&actions).is_empty(), "{actions:?}");
    assert!(
        actions.iter().any(|a| matches!(
            a,
            Action::Restoring { vm: v, from, recovery_point: Some(rp), restore_time, .. }
                if *v == vm(0) && *from == AWS && *rp == secs(1800) && *restore_time == SimDuration::from_secs(11)
        )),
        "{actions:?}"
    );
    assert_eq!(timers(&actions), [(secs(2011), TimerKind::Transfer(vm(0)))]);
    let actions = fire(&mut run, secs(2011), TimerKind::Transfer(vm(0)));
    assert_eq!(
        provisions(&actions).iter().map(|p| (p.1, p.3)).collect::<Vec<_>>(),
        [(vm(0), ProvisionReason::Failover)]
    );
    // A crash is not a disaster: the disk survives, the replica is placed again at once.
    let actions = run.at(secs(2100), Event::InstanceFailed { instance: InstanceId(1), cause: FailureCause::Crashed });
    assert_eq!(provisions(&actions).len(), 1);
    assert!(!actions.iter().any(|a| matches!(a, Action::Restoring { .. })));
}

#[test]
fn a_replica_lost_before_any_backup_starts_empty_and_says_so() {
    let mut run = started(None, Some(backups()));
    let actions = run.at(secs(100), Event::InstanceFailed { instance: InstanceId(0), cause: FailureCause::Outage });
    assert!(actions.iter().any(|a| matches!(a, Action::Restoring { recovery_point: None, .. })));
    assert_eq!(provisions(&actions).len(), 1, "nothing to restore: placed at once");
}

#[test]
fn a_backup_whose_source_stopped_serving_is_dropped() {
    let mut run = started(None, Some(backups()));
    fire(&mut run, secs(900), TimerKind::Backup(D));
    for i in [0, 1] {
        run.at(secs(905), Event::InstanceFailed { instance: InstanceId(i), cause: FailureCause::Crashed });
    }
    let actions = fire(&mut run, secs(910), TimerKind::Backup(D));
    assert!(!actions.iter().any(|a| matches!(a, Action::BackupCompleted { .. })), "{actions:?}");
}
