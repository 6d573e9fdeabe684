//! Properties of deployments under arbitrary faults: region and zone health flips, instances
//! failing with any cause, spot notices (and the reclaim that follows), price spikes, capacity
//! taken by other requests, demand and metric changes, and operators' manual failovers. Time only
//! moves forward; instances boot `BOOT` after they are asked for and the engine's timers fire when
//! due, so every case is a plausible history of one active-passive or active-active deployment.
//!
//! After every event:
//! * (1) active-passive only.
//!   As first stated, "instances in at most two regions" and "at most one region holds running
//!   replicas that are not being replaced" are wrong for a sound reason: a move is
//!   make-before-break, and a replica whose replacement cannot be placed at the new location (other
//!   requests took the room, or the offer is in its capacity backoff after a failed create) keeps
//!   serving from where it is rather than going dark; it moves at the first evaluation that finds
//!   room. Meanwhile two regions serve un-replaced replicas, and a second move (a manual one, or a
//!   trigger after the cooldown) spreads instances over three. What is tested instead:
//!   (1a) each replica has at most one instance away from the planned location (the one it serves
//!   from until its replacement there runs), and all are in at most two regions unless the
//!   deployment moved again while a replica was still on its way;
//!   (1b) the plan is one location, and only it serves un-replaced replicas but for those on their
//!   way, each of which, right after every evaluation, the placement policy has no room for at the
//!   planned location (this part is checked for active-active too); and a move away from a
//!   location where replicas still serve goes only where all of them fit (a split is chosen only
//!   for a deployment that serves nothing where it is);
//!   (1c) it is never without a serving replica (running in a healthy region and zone) for longer
//!   than [`zero_serving_bound`] while one of its locations is healthy with room for a replica,
//!   counted from the last fault (a fault can always undo progress: the clock starts again at
//!   each one). The bound is not `max(trigger window, cooldown) + evaluation + boot`: triggers only
//!   watch a deployment that has settled, and one that was never fully up since its last move gets
//!   twice its longest trigger window first;
//! * (2) every instance provisioned is tracked, or ended by exactly one `Terminate` or one
//!   `InstanceFailed` report (no leak, no double delete), and belongs to a VM still tracked, which
//!   holds at most two (serving and replacement), at most one of them up — except while a live or
//!   warm migration copies its data, (4) for no longer than that copy takes: the bounded overlap
//!   both copies are billed for;
//! * migrations (cases draw none, live, warm or cold) cut over only to a healthy location, with
//!   the kind the deployment asked for, live and warm pausing for seconds at most; restores and
//!   backups come only with disaster recovery (cases draw it or not), from restore points in the
//!   past;
//! * (3) no `Provision` targets an unhealthy region or zone, no `FailOver` targets an unhealthy
//!   region, and a `FailOver` for `Unhealthy` really leaves an unhealthy region;
//! * (5) a failover driven by a trigger, a failback or a rebalance comes at least one cooldown
//!   after the deployment's previous failover of any kind. Moves out of a dead location (reason
//!   `Unhealthy`, which (3) checks) are exempt: staying on a dead location to honour a cooldown
//!   would only prolong the outage. So are operators' manual failovers, which ignore the cooldown
//!   by design.
//!
//! At the end, faults stop (everything healthy, the other requests gone, calm metrics) and
//! * (6) the deployment converges within [`converge_bound`]: every replica runs, at the location
//!   its plan wants (active-passive: back at the primary when it fails back and the primary can take
//!   them all; active-active: the split of its weights), with no instance left over. The bound is
//!   more than evaluation + boot + hold-down/restore: a trigger fed before the faults stopped may
//!   still move the deployment once, and each move starts a cooldown that failbacks and rebalances
//!   wait out;
//! * (7) the same events fed to a fresh engine give the same actions.
//!
//! The named `regression_*` tests at the end are cases proptest shrank to; each failed before the
//! engine fix it names.

use std::collections::{BTreeMap, BTreeSet};

use engine::deploy::{
    ActiveActiveConfig, ActivePassiveConfig, Deployment, SpotRecovery, Trigger, TriggerKind, apportion,
    is_deployment_vm,
};
use engine::dr::{BackupPolicy, Schedule};
use engine::migration::{MigrationKind, MigrationPolicy};
use engine::{
    Action, Decision, DeploymentSpec, Engine, EngineConfig, Event, FailureCause, GroupId, InstanceId, Market,
    MoveReason, OfferId, PlacementPolicy, PolicyConfig, RegionId, Resources, SimDuration, SimTime, Snapshot,
    Strategy as Plan, TimerKind, VmId, VmRequest, VmState, ZoneId,
};
use proptest::prelude::*;

use crate::fixture::catalog;

const D: GroupId = GroupId(3);
const EVERY: SimDuration = SimDuration::from_secs(30);
const COOLDOWN: SimDuration = SimDuration::from_secs(300);
/// Active-passive hold-down and active-active restore period.
const SETTLE: SimDuration = SimDuration::from_secs(300);
/// How long an instance takes to boot in these worlds.
const BOOT: SimDuration = SimDuration::from_secs(20);
/// The engine's capacity backoff (kept within the cooldown: see (1c)).
const CAPACITY_BACKOFF: SimDuration = SimDuration::from_secs(120);

/// Longest a migration's data takes to move in these worlds (see [`migration_policy`]: about 8 s
/// for a warm sync across clouds), or a restore to copy back (at most 3 GiB at 1 GiB/s).
const TRANSFER_SLACK: SimDuration = SimDuration::from_secs(15);

/// A small replica's migration model: 1 GiB of memory, 2 GiB of disk, 1 GiB/s inside a cloud and
/// 0.5 GiB/s across, a slow dirty rate so that live pre-copy converges.
fn migration_policy(kind: MigrationKind) -> MigrationPolicy {
    let mut p = MigrationPolicy::new(kind);
    p.params.memory_gib = 1.0;
    p.params.disk_gib = 2.0;
    p.params.dirty_rate_gib_per_s = 0.01;
    p.params.bandwidth_gib_per_s = 1.0;
    p.params.stop_copy_threshold_gib = 0.05;
    p.params.snapshot_rate_gib_per_s = 1.0;
    p.params.boot_time = BOOT;
    p.cross_cloud_bandwidth_gib_per_s = 0.5;
    p
}

/// Backups every 5 minutes to region 3, a full one every 3rd: 1 GiB at 1 GiB/s.
fn backup_policy() -> BackupPolicy {
    BackupPolicy {
        schedule: Schedule::parse("*/5 * * * *").expect("valid cron"),
        full_every: 3,
        retention: 6,
        target_region: RegionId(3),
        data_gib: 1.0,
        change_rate_gib_per_h: 1.0,
        bandwidth_gib_per_s: 1.0,
        rpo_target: SimDuration::from_secs(600),
        rto_target: SimDuration::from_secs(1800),
    }
}

/// The availability trigger's window.
const AVAILABILITY_WINDOW: SimDuration = SimDuration::from_secs(120);

/// The triggers: availability under 50 % over 120 s, CPU over 80 % for 60 s, two spot notices in
/// 120 s.
fn triggers() -> Vec<Trigger> {
    vec![
        Trigger { kind: TriggerKind::Availability { threshold: 0.5 }, duration: AVAILABILITY_WINDOW },
        Trigger { kind: TriggerKind::Cpu { threshold: 0.8 }, duration: SimDuration::from_secs(60) },
        Trigger { kind: TriggerKind::SpotInterruption { count: 2 }, duration: SimDuration::from_secs(120) },
    ]
}

fn longest_trigger() -> SimDuration {
    triggers().iter().map(|t| t.duration).max().unwrap_or(SimDuration::ZERO)
}

fn max_d(a: SimDuration, b: SimDuration) -> SimDuration {
    if a >= b { a } else { b }
}

/// (1c)'s bound. When nothing serves at a location that is not dead, only the availability
/// trigger moves the deployment, and triggers only watch a deployment that has settled: one that has
/// not been fully up since its last move gets twice the longest trigger window first. So the move
/// comes after at most `2 × longest + availability window` (or when the cooldown of the last move
/// ends, or when the capacity backoff of the fault ends, if later), at an evaluation, and the
/// replicas boot.
/// With a migration policy or disaster recovery, a move or a restore may first copy data for up to
/// [`TRANSFER_SLACK`] before the replicas boot.
fn zero_serving_bound(case: &Case) -> SimDuration {
    let settle_and_fire = SimDuration(2 * longest_trigger().as_millis()) + AVAILABILITY_WINDOW;
    max_d(max_d(settle_and_fire, COOLDOWN), CAPACITY_BACKOFF) + EVERY + BOOT + transfer_slack(case)
}

fn transfer_slack(case: &Case) -> SimDuration {
    if case.migration.is_some() || case.dr { TRANSFER_SLACK } else { SimDuration::ZERO }
}

/// (6)'s bound for active-passive: a trigger fed before the faults stopped may still fire once its
/// window is over (longest trigger window + an evaluation); the move it makes must wait out the
/// cooldown before the failback, which also waits for the hold-down (they run side by side: the
/// longer of the two), then an evaluation, and the replicas boot (twice: once for the move, once
/// for the way back).
///
/// Active-active has no triggers, but each lost location comes back with a rebalance of its own
/// once it has been healthy for the restore period, and each rebalance starts a cooldown that the
/// next must wait out: locations whose restore periods end a few seconds apart come back one
/// cooldown apart. With `n` locations, at most `n - 1` of them come back after the first.
///
/// A spot-allowed replica forced on demand by interruptions returns to spot, make-before-break, once
/// its on-demand period is over and the policy would place it on spot again, which waits for the
/// preempted spot market's block to end: a last move at most `max(back_to_spot_after, spot_block)`
/// after the calm, at an evaluation, booting once more.
fn converge_bound(case: &Case) -> SimDuration {
    let spot_return = if case.spot {
        let back = SimDuration::from_secs(600);
        max_d(back, EngineConfig::default().spot_block) + EVERY + BOOT
    } else {
        SimDuration::ZERO
    };
    // Each of the (at most two) moves may copy data before its cut-over.
    spot_return + converge_bound_without_spot(case) + transfer_slack(case) + transfer_slack(case)
}

fn converge_bound_without_spot(case: &Case) -> SimDuration {
    match case.kind {
        Kind::ActivePassive { .. } => longest_trigger() + EVERY + max_d(COOLDOWN, SETTLE) + EVERY + EVERY + BOOT + BOOT,
        Kind::ActiveActive { .. } => {
            let more = SimDuration((case.locations.len() as u64 - 1) * (COOLDOWN + EVERY).as_millis());
            EVERY + max_d(COOLDOWN, SETTLE) + more + EVERY + BOOT
        }
    }
}

/// Whether a region is up: the region and at least one of its zones.
fn location_healthy(snap: &Snapshot, r: RegionId) -> bool {
    snap.region_healthy[r.idx()] && snap.catalog.regions[r.idx()].zones.iter().any(|z| snap.zone_healthy[z.idx()])
}

#[derive(Clone, Debug)]
enum Kind {
    ActivePassive {
        failback: bool,
    },
    /// Weights of the locations, in the same order.
    ActiveActive {
        weights: Vec<u8>,
    },
}

/// One deployment and the engine around it.
#[derive(Clone, Debug)]
struct Case {
    policy: &'static str,
    kind: Kind,
    replicas: u32,
    /// 4 vCPU / 16 GiB replicas fit aws, gcp and on-prem only; small ones fit everywhere.
    large: bool,
    spot: bool,
    /// Active-passive: primary, then secondaries. Active-active: the weighted locations.
    locations: Vec<RegionId>,
    /// How serving replicas move (`None`: make-before-break with an instant cut-over).
    migration: Option<MigrationKind>,
    /// Backups, and restores of replicas lost with their location.
    dr: bool,
}

impl Case {
    fn resources(&self) -> Resources {
        if self.large {
            Resources { vcpu: 4, memory_mib: 16384, gpu: 0 }
        } else {
            Resources { vcpu: 2, memory_mib: 4096, gpu: 0 }
        }
    }

    fn spec(&self) -> DeploymentSpec {
        let strategy = match &self.kind {
            Kind::ActivePassive { failback } => Plan::ActivePassive(ActivePassiveConfig {
                primary: self.locations[0],
                secondary: self.locations[1..].to_vec(),
                failback: *failback,
                hold_down: SETTLE,
            }),
            Kind::ActiveActive { weights } => Plan::ActiveActive(ActiveActiveConfig {
                locations: self.locations.iter().zip(weights).map(|(r, w)| (*r, *w as f64)).collect(),
                restore_after: SETTLE,
            }),
        };
        DeploymentSpec {
            id: D,
            name: "prop".into(),
            replicas: self.replicas,
            template: VmRequest { spot_allowed: self.spot, ..VmRequest::new(VmId(0), self.resources()) },
            strategy,
            triggers: triggers(),
            cooldown: COOLDOWN,
            evaluate_every: EVERY,
            max_cost_per_h: None,
            spot: SpotRecovery { on_demand_after: 2, back_to_spot_after: SimDuration::from_secs(600) },
            migration: self.migration.map(migration_policy),
            disaster_recovery: self.dr.then(backup_policy),
            rollout: None,
        }
    }

    fn engine(&self) -> Engine {
        let cfg = EngineConfig {
            policy: PolicyConfig::default_for(self.policy).expect("listed policy name"),
            capacity_backoff: CAPACITY_BACKOFF,
            ..EngineConfig::default()
        };
        Engine::new(catalog(), engine::CostModel::default(), cfg).expect("valid fixture settings")
    }

    fn active_passive(&self) -> bool {
        matches!(self.kind, Kind::ActivePassive { .. })
    }
}

/// The placement policies that place on clouds: the bin-packing ones (`*-fit`) only fill on-prem
/// pools, so a multi-cloud deployment under them cannot run anywhere else.
fn cloud_policies() -> Vec<&'static str> {
    PolicyConfig::NAMES.iter().copied().filter(|n| !n.ends_with("-fit")).collect()
}

/// A deployment over 2 to 4 regions in random order, each able to hold its replicas' shape at all
/// (large replicas never list azure, which has no offer that big).
fn case(active_passive: bool) -> impl Strategy<Value = Case> {
    (
        prop::sample::select(cloud_policies()),
        any::<bool>(),
        any::<bool>(),
        1u32..5,
        Just(vec![0u16, 1, 2, 3]).prop_shuffle(),
        2usize..5,
        any::<bool>(),
        prop::collection::vec(0u8..4, 4),
        prop::option::of(prop::sample::select(vec![MigrationKind::Live, MigrationKind::Warm, MigrationKind::Cold])),
        any::<bool>(),
    )
        .prop_map(move |(policy, large, spot, replicas, order, n, failback, mut weights, migration, dr)| {
            let locations: Vec<RegionId> =
                order.into_iter().map(RegionId).filter(|r| !(large && *r == RegionId(1))).take(n).collect();
            weights.truncate(locations.len());
            if weights.iter().all(|w| *w == 0) {
                weights[0] = 1;
            }
            let kind = if active_passive { Kind::ActivePassive { failback } } else { Kind::ActiveActive { weights } };
            Case { policy, kind, replicas, large, spot, locations, migration, dr }
        })
}

/// One step of a case, before it is resolved against what the engine has done.
#[derive(Clone, Debug)]
enum Op {
    /// Just let time pass (seconds).
    Wait(u64),
    /// Health flip; going down with `Kill::Before`/`After`, the cloud also reports every instance
    /// there lost (before or after the engine hears of the outage).
    Region(u16, bool, Kill),
    Zone(u16, bool, Kill),
    /// A live instance (by position among the live ones) fails.
    Fail(usize, FailureCause),
    /// A live spot instance gets a notice; it is reclaimed after `lead` seconds.
    Notice(usize, u64),
    /// A market's price times `factor`.
    Price(u32, bool, f64),
    /// Someone else asks for `n` VMs of the replicas' shape in a region.
    Hog(u16, u8),
    /// Those VMs go, oldest first.
    Unhog(u8),
    Demand(u32),
    Cpu(Option<f64>),
    Manual(Option<u16>),
}

#[derive(Clone, Copy, Debug)]
enum Kill {
    /// The location is reported down, its instances keep running (degraded, unreachable).
    No,
    Before,
    After,
}

fn kill() -> impl Strategy<Value = Kill> {
    prop::sample::select(vec![Kill::No, Kill::Before, Kill::After])
}

fn cause() -> impl Strategy<Value = FailureCause> {
    prop::sample::select(vec![
        FailureCause::InsufficientCapacity,
        FailureCause::ApiError,
        FailureCause::Throttled,
        FailureCause::Outage,
        FailureCause::Interrupted,
        FailureCause::Crashed,
    ])
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..900).prop_map(Op::Wait),
        3 => (0u16..4, any::<bool>(), kill()).prop_map(|(r, h, k)| Op::Region(r, h, k)),
        2 => (0u16..7, any::<bool>(), kill()).prop_map(|(z, h, k)| Op::Zone(z, h, k)),
        4 => (0usize..64, cause()).prop_map(|(i, c)| Op::Fail(i, c)),
        2 => (0usize..64, 0u64..300).prop_map(|(i, lead)| Op::Notice(i, lead)),
        1 => (0u32..9, any::<bool>(), 0.5f64..3.0).prop_map(|(o, s, f)| Op::Price(o, s, f)),
        2 => (0u16..4, 1u8..24).prop_map(|(r, n)| Op::Hog(r, n)),
        1 => (1u8..24).prop_map(Op::Unhog),
        1 => (0u32..8).prop_map(Op::Demand),
        2 => prop_oneof![Just(None), Just(Some(0.1)), Just(Some(0.95))].prop_map(Op::Cpu),
        1 => prop::option::of(0u16..4).prop_map(Op::Manual),
    ]
}

/// Steps as (seconds since the previous step, op).
fn steps() -> impl Strategy<Value = Vec<(u64, Op)>> {
    prop::collection::vec((0u64..90, op()), 1..60)
}

/// Something the world does by itself at a given time.
#[derive(Clone, Copy, Debug)]
enum Due {
    Timer(TimerKind),
    /// The instance has booted.
    Up(InstanceId),
    /// The spot instance is reclaimed.
    Reclaim(InstanceId),
}

/// The engine, the world around it, and the invariants' bookkeeping.
struct World {
    case: Case,
    engine: Engine,
    /// The engine's placement policy, to ask what it could place.
    policy: Box<dyn PlacementPolicy>,
    now: SimTime,
    /// (when, sequence, what).
    due: Vec<(SimTime, u64, Due)>,
    seq: u64,
    /// Everything fed to the engine and what it answered.
    events: Vec<(SimTime, Event)>,
    actions: Vec<Vec<Action>>,
    /// Provisioned, neither terminated nor reported failed.
    live: BTreeSet<InstanceId>,
    /// Terminated or reported failed while live.
    ended: BTreeSet<InstanceId>,
    /// Live and booted.
    running: BTreeSet<InstanceId>,
    vm_of: BTreeMap<InstanceId, VmId>,
    placed: BTreeMap<InstanceId, (RegionId, ZoneId, Market)>,
    /// Other requests still wanted, oldest first.
    hogs: Vec<VmId>,
    next_hog: u64,
    /// When the deployment last failed over (any reason).
    last_failover: Option<SimTime>,
    /// When the last fault happened.
    last_fault: SimTime,
    /// Since when the deployment has had no serving replica while it could have.
    zero_since: Option<SimTime>,
    /// Whether faults have stopped (Reclaims are then dropped).
    quiet: bool,
    /// Whether some replica's instance was away from the planned location before the event.
    moving_before: bool,
    /// Whether the last failover came while an earlier move was still under way.
    chained: bool,
    /// Replicas serving before the event.
    serving_before: usize,
    /// Since when both instances of a migrating replica have been up.
    both_up: BTreeMap<VmId, SimTime>,
}

impl World {
    fn new(case: &Case) -> Self {
        World {
            case: case.clone(),
            engine: case.engine(),
            policy: PolicyConfig::default_for(case.policy).expect("listed policy name").build(),
            now: SimTime::ZERO,
            due: Vec::new(),
            seq: 0,
            events: Vec::new(),
            actions: Vec::new(),
            live: BTreeSet::new(),
            ended: BTreeSet::new(),
            running: BTreeSet::new(),
            vm_of: BTreeMap::new(),
            placed: BTreeMap::new(),
            hogs: Vec::new(),
            next_hog: 1,
            last_failover: None,
            last_fault: SimTime::ZERO,
            zero_since: None,
            quiet: false,
            moving_before: false,
            chained: false,
            serving_before: 0,
            both_up: BTreeMap::new(),
        }
    }

    fn schedule(&mut self, at: SimTime, what: Due) {
        self.seq += 1;
        self.due.push((at, self.seq, what));
    }

    fn deployment(&self) -> Option<&Deployment> {
        self.engine.deployment(D)
    }

    /// Whether a live instance of a replica is away from where the plan wants its replica.
    fn moving(&self) -> bool {
        let Some(d) = self.deployment() else { return false };
        let planned: BTreeMap<VmId, RegionId> = d.slots.iter().map(|s| (s.vm, s.location)).collect();
        self.live.iter().any(|i| planned.get(&self.vm_of[i]).is_some_and(|r| *r != self.placed[i].0))
    }

    /// Whether a live instance serves: it runs at a healthy location.
    fn serves(&self, i: &InstanceId) -> bool {
        let (r, z, _) = self.placed[i];
        self.running.contains(i) && self.engine.snapshot().location_healthy(r, z)
    }

    /// Replicas of the deployment served by a live instance.
    fn serving(&self) -> usize {
        let vms: BTreeSet<VmId> = self
            .live
            .iter()
            .filter(|i| self.serves(i))
            .map(|i| self.vm_of[i])
            .filter(|vm| is_deployment_vm(*vm))
            .collect();
        vms.len()
    }

    /// Feeds one event at `self.now` and checks every invariant.
    fn feed(&mut self, event: Event) -> Result<(), TestCaseError> {
        let now = self.now;
        match &event {
            Event::InstanceFailed { instance, .. } if self.live.remove(instance) => {
                self.running.remove(instance);
                self.ended.insert(*instance);
            }
            Event::InstanceRunning { instance } if self.live.contains(instance) => {
                self.running.insert(*instance);
            }
            _ => {}
        }
        let evaluation = matches!(event, Event::TimerFired { timer: TimerKind::Deployment(_) });
        self.moving_before = self.moving();
        self.serving_before = self.serving();
        let mut actions = Vec::new();
        self.engine.handle(now, event.clone(), &mut actions);
        self.after(&actions, evaluation)?;
        self.events.push((now, event));
        self.actions.push(actions);
        Ok(())
    }

    fn after(&mut self, actions: &[Action], evaluation: bool) -> Result<(), TestCaseError> {
        let now = self.now;
        let mut moved_to = None;
        for action in actions {
            let snap = self.engine.snapshot();
            match action {
                Action::Provision { instance, vm, placement, .. } => {
                    prop_assert!(
                        !self.live.contains(instance) && !self.ended.contains(instance),
                        "{instance:?} reused"
                    );
                    let offer = &snap.catalog.offers[placement.offer.idx()];
                    prop_assert!(
                        snap.location_healthy(offer.region, offer.zone),
                        "(3) {instance:?} provisioned in unhealthy {:?} / {:?}",
                        offer.region,
                        offer.zone
                    );
                    self.live.insert(*instance);
                    self.vm_of.insert(*instance, *vm);
                    self.placed.insert(*instance, (offer.region, offer.zone, placement.market));
                    self.schedule(now + BOOT, Due::Up(*instance));
                }
                Action::Terminate { instance, .. } => {
                    prop_assert!(
                        self.live.remove(instance),
                        "(2) {instance:?} terminated but not live (double delete)"
                    );
                    self.running.remove(instance);
                    self.ended.insert(*instance);
                }
                Action::SetTimer { timer } => self.schedule(timer.at, Due::Timer(timer.kind)),
                Action::FailOver { deployment, from, to, reason } => {
                    prop_assert_eq!(*deployment, D);
                    prop_assert!(location_healthy(snap, *to), "(3) failover to unhealthy {to:?}");
                    match reason {
                        MoveReason::Unhealthy => prop_assert!(
                            !location_healthy(snap, *from),
                            "(3) failover for unhealthy out of healthy {from:?} at {now:?}"
                        ),
                        MoveReason::Manual => {}
                        _ => {
                            if let Some(last) = self.last_failover {
                                prop_assert!(
                                    now.since(last) >= COOLDOWN,
                                    "(5) {reason:?} failover at {now:?}, previous at {last:?}"
                                );
                            }
                        }
                    }
                    self.last_failover = Some(now);
                    self.chained = self.moving_before;
                    if self.case.active_passive() && *reason != MoveReason::Unhealthy && self.serving_before > 0 {
                        moved_to = Some(*to);
                    }
                }
                Action::Reject { vm, .. } => prop_assert!(!is_deployment_vm(*vm), "(2) replica {vm:?} rejected"),
                Action::DeploymentRejected { message, .. } => prop_assert!(false, "spec rejected: {message}"),
                Action::Migrated { deployment, to, kind, downtime, started, .. } => {
                    prop_assert_eq!(*deployment, D);
                    prop_assert_eq!(Some(*kind), self.case.migration, "(3) a migration of the wrong kind");
                    prop_assert!(location_healthy(snap, *to), "(3) migration cut over to unhealthy {to:?}");
                    // Live and warm pause briefly; cold is down from the stop until the target runs,
                    // which may wait for room (a failed create, capacity taken) like any placement.
                    if *kind != MigrationKind::Cold {
                        prop_assert!(*downtime <= SimDuration::from_secs(3), "live/warm downtime {downtime:?}");
                    } else {
                        prop_assert!(*downtime <= now.since(*started), "cold downtime {downtime:?}");
                    }
                }
                Action::Restoring { recovery_point, .. } => {
                    prop_assert!(self.case.dr, "a restore without disaster recovery");
                    prop_assert!(recovery_point.is_none_or(|t| t <= now), "restore point in the future");
                }
                Action::BackupCompleted { at, duration, .. } => {
                    prop_assert!(self.case.dr, "a backup without disaster recovery");
                    prop_assert!(*at + *duration <= now, "backup completed early");
                }
            }
        }

        // (2) the engine tracks exactly the live instances, each of a VM it tracks, at most two per VM
        // (serving and replacement) and at most one of those up.
        let tracked: BTreeSet<InstanceId> = self.engine.bill_open_instances(now).iter().map(|b| b.instance).collect();
        prop_assert_eq!(&tracked, &self.live, "(2) tracked instances differ from live ones");
        let mut per_vm: BTreeMap<VmId, Vec<InstanceId>> = BTreeMap::new();
        for i in &self.live {
            per_vm.entry(self.vm_of[i]).or_default().push(*i);
        }
        let mut both_up = BTreeMap::new();
        for (vm, instances) in &per_vm {
            prop_assert!(self.engine.vm_state(*vm).is_some(), "(2) {instances:?} outlive {vm:?}");
            let up = instances.iter().filter(|i| self.running.contains(i)).count();
            // A live or warm migration runs source and target together while the data moves (a
            // bounded overlap, accounted in its Migrated action).
            let overlap = matches!(self.case.migration, Some(MigrationKind::Live | MigrationKind::Warm));
            prop_assert!(instances.len() <= 2 && (up <= 1 || overlap), "(2) {vm:?} holds {instances:?}, {up} up");
            if up == 2 {
                let since = *self.both_up.get(vm).unwrap_or(&now);
                prop_assert!(
                    now.since(since) <= TRANSFER_SLACK,
                    "(4) {vm:?} billed twice since {since:?}, longer than a migration's copy"
                );
                both_up.insert(*vm, since);
            }
        }
        self.both_up = both_up;
        self.engine.take_bills();
        // (1b) an active-passive deployment that serves from where it is moves only where all its
        // replicas fit (the room taken by the new instances, plus the room left).
        if let (Some(to), Some(d)) = (moved_to, self.deployment()) {
            let there = self.live.iter().filter(|i| is_deployment_vm(self.vm_of[i]) && self.placed[i].0 == to).count();
            let room = d.capacity(self.engine.snapshot(), to) + there as u64;
            prop_assert!(
                room >= self.case.replicas as u64,
                "(1b) moved from serving replicas to {to:?}, which has room for {room} of {}",
                self.case.replicas
            );
        }
        if !self.moving() {
            self.chained = false;
        }
        self.check_replicas(&per_vm, evaluation)
    }

    /// (1) and the part of (1b) that holds for both strategies.
    fn check_replicas(
        &mut self,
        per_vm: &BTreeMap<VmId, Vec<InstanceId>>,
        evaluation: bool,
    ) -> Result<(), TestCaseError> {
        let now = self.now;
        let Some(d) = self.deployment() else { return Ok(()) };
        let snap = self.engine.snapshot();
        let replicas: Vec<(&VmId, &Vec<InstanceId>)> = per_vm.iter().filter(|(vm, _)| is_deployment_vm(**vm)).collect();
        let planned: BTreeMap<VmId, RegionId> = d.slots.iter().map(|s| (s.vm, s.location)).collect();
        // Serving: running at a healthy location.
        let serves = |i: &InstanceId| {
            let (r, z, _) = self.placed[i];
            self.running.contains(i) && snap.location_healthy(r, z)
        };
        // Replicas serving from one instance, with no replacement on its way.
        let unreplaced: Vec<(VmId, RegionId)> = replicas
            .iter()
            .filter(|(_, is)| is.len() == 1 && serves(&is[0]))
            .map(|(vm, is)| (**vm, self.placed[&is[0]].0))
            .collect();
        // (1b) for both: right after an evaluation, a replica still serving unreplaced away from
        // where the plan wants it is one the placement policy has no room for there (the engine
        // has just tried).
        if evaluation {
            let template = self.case.spec().template;
            for (vm, region) in &unreplaced {
                let Some(slot) = d.slots.iter().find(|s| s.vm == *vm) else { continue };
                if slot.location == *region {
                    continue;
                }
                let request = VmRequest {
                    id: *vm,
                    regions: vec![slot.location],
                    group: Some(D),
                    spot_allowed: template.spot_allowed && slot.on_demand_until.is_none(),
                    ..template.clone()
                };
                prop_assert!(
                    matches!(self.policy.decide(&request, snap, now), Decision::Reject(_)),
                    "(1b) {vm:?} serves from {region:?}, not re-placed at {:?} though there is room",
                    slot.location
                );
            }
        }
        if !self.case.active_passive() {
            return Ok(());
        }
        // (1a) a replica has at most one instance away from the planned location (the one it
        // serves from until its replacement there runs), and all are in at most two regions unless
        // the deployment moved again while a replica was still on its way (stuck for lack of room:
        // see (1b)).
        for (vm, is) in &replicas {
            let away = is.iter().filter(|i| planned.get(vm) != Some(&self.placed[i].0)).count();
            prop_assert!(away <= 1, "(1a) {vm:?} has {away} instances away from {:?}", planned.get(vm));
        }
        let regions: BTreeSet<RegionId> =
            replicas.iter().flat_map(|(_, is)| is.iter().map(|i| self.placed[i].0)).collect();
        prop_assert!(regions.len() <= 2 || self.chained, "(1a) live instances in {regions:?}");
        // (1b): one planned location, and only it serves unreplaced replicas, but for those the
        // engine is moving there (and, after each evaluation, could not: checked above).
        let plan: BTreeSet<RegionId> = planned.values().copied().collect();
        prop_assert!(plan.len() <= 1, "(1b) active-passive planned over {plan:?}");
        let primaries: BTreeSet<RegionId> =
            unreplaced.iter().filter(|(vm, r)| planned.get(vm) == Some(r)).map(|(_, r)| *r).collect();
        prop_assert!(primaries.len() <= 1, "(1b) replicas serve unreplaced from {primaries:?}");
        // (1c)
        let serving = replicas.iter().filter(|(_, is)| is.iter().any(serves)).count();
        let could = self.case.locations.iter().any(|r| location_healthy(snap, *r) && d.capacity(snap, *r) > 0);
        if serving == 0 && could {
            let since = *self.zero_since.get_or_insert(now);
            let from = if since >= self.last_fault { since } else { self.last_fault };
            prop_assert!(
                now.since(from) <= zero_serving_bound(&self.case),
                "(1c) no replica serving since {from:?} (now {now:?}) though a location could take one"
            );
        } else {
            self.zero_since = None;
        }
        Ok(())
    }

    /// Fires whatever is due up to `until` in time order, then moves the clock there.
    fn advance(&mut self, until: SimTime) -> Result<(), TestCaseError> {
        loop {
            let next = self.due.iter().enumerate().filter(|(_, d)| d.0 <= until).min_by_key(|(_, d)| (d.0, d.1));
            let Some((k, _)) = next else { break };
            let (at, _, what) = self.due.remove(k);
            self.now = self.now.max(at);
            match what {
                Due::Timer(kind) => self.feed(Event::TimerFired { timer: kind })?,
                Due::Up(i) if self.live.contains(&i) => self.feed(Event::InstanceRunning { instance: i })?,
                Due::Reclaim(i) if self.live.contains(&i) && !self.quiet => {
                    self.last_fault = self.now;
                    self.feed(Event::InstanceFailed { instance: i, cause: FailureCause::Interrupted })?
                }
                _ => {}
            }
        }
        self.now = self.now.max(until);
        Ok(())
    }

    /// Applies one op at the current time.
    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let pick = |set: Vec<InstanceId>, i: usize| (!set.is_empty()).then(|| set[i % set.len()]);
        let event = match *op {
            Op::Wait(s) => return self.advance(self.now + SimDuration::from_secs(s)),
            Op::Region(r, healthy, kill) => {
                let there = |p: &(RegionId, ZoneId, Market)| p.0 == RegionId(r);
                return self.outage(Event::RegionHealth { region: RegionId(r), healthy }, healthy, kill, there);
            }
            Op::Zone(z, healthy, kill) => {
                let there = |p: &(RegionId, ZoneId, Market)| p.1 == ZoneId(z);
                return self.outage(Event::ZoneHealth { zone: ZoneId(z), healthy }, healthy, kill, there);
            }
            Op::Fail(i, cause) => {
                let Some(instance) = pick(self.live.iter().copied().collect(), i) else { return Ok(()) };
                Event::InstanceFailed { instance, cause }
            }
            Op::Notice(i, lead) => {
                let spot = self.live.iter().copied().filter(|i| self.placed[i].2 == Market::Spot).collect();
                let Some(instance) = pick(spot, i) else { return Ok(()) };
                let at = self.now + SimDuration::from_secs(lead);
                self.schedule(at, Due::Reclaim(instance));
                Event::InterruptionNotice { instance, at }
            }
            Op::Price(o, spot, factor) => {
                let market = if spot { Market::Spot } else { Market::OnDemand };
                let Some(p) = self.engine.snapshot().offers[o as usize].price(market) else { return Ok(()) };
                Event::PriceChanged { offer: OfferId(o), market, price_per_h: p.price_per_h * factor }
            }
            Op::Hog(r, n) => {
                self.last_fault = self.now;
                for _ in 0..n {
                    let vm = VmId(self.next_hog);
                    self.next_hog += 1;
                    let request = VmRequest { regions: vec![RegionId(r)], ..VmRequest::new(vm, self.case.resources()) };
                    self.feed(Event::RequestArrived { request })?;
                    if self.engine.vm_state(vm).is_some() {
                        self.hogs.push(vm);
                    }
                }
                return Ok(());
            }
            Op::Unhog(n) => {
                let n = (n as usize).min(self.hogs.len());
                for vm in self.hogs.drain(..n).collect::<Vec<_>>() {
                    self.feed(Event::Released { vm })?;
                }
                return Ok(());
            }
            Op::Demand(n) => Event::DeploymentDemand { deployment: D, replicas: n },
            Op::Cpu(cpu) => Event::DeploymentMetrics { deployment: D, cpu, latency_p99_ms: None, api_error_rate: None },
            Op::Manual(to) => Event::ManualFailover { deployment: D, to: to.map(RegionId) },
        };
        if matches!(
            event,
            Event::RegionHealth { .. }
                | Event::ZoneHealth { .. }
                | Event::InstanceFailed { .. }
                | Event::InterruptionNotice { .. }
        ) {
            self.last_fault = self.now;
        }
        self.feed(event)
    }

    /// A health flip, and the loss of the instances `there` if the cloud reports them.
    fn outage(
        &mut self,
        health: Event,
        healthy: bool,
        kill: Kill,
        there: impl Fn(&(RegionId, ZoneId, Market)) -> bool,
    ) -> Result<(), TestCaseError> {
        self.last_fault = self.now;
        let lost: Vec<InstanceId> = self.live.iter().copied().filter(|i| there(&self.placed[i])).collect();
        let lose = |w: &mut World| -> Result<(), TestCaseError> {
            for instance in &lost {
                if w.live.contains(instance) {
                    w.feed(Event::InstanceFailed { instance: *instance, cause: FailureCause::Outage })?;
                }
            }
            Ok(())
        };
        match (healthy, kill) {
            (false, Kill::Before) => {
                lose(self)?;
                self.feed(health)
            }
            (false, Kill::After) => {
                self.feed(health)?;
                lose(self)
            }
            _ => self.feed(health),
        }
    }

    /// Faults stop: everything healthy, the other requests gone, calm metrics, no reclaim to come.
    fn calm(&mut self) -> Result<(), TestCaseError> {
        self.quiet = true;
        self.due.retain(|d| !matches!(d.2, Due::Reclaim(_)));
        for r in 0..4 {
            self.feed(Event::RegionHealth { region: RegionId(r), healthy: true })?;
        }
        for z in 0..7 {
            self.feed(Event::ZoneHealth { zone: ZoneId(z), healthy: true })?;
        }
        for vm in std::mem::take(&mut self.hogs) {
            self.feed(Event::Released { vm })?;
        }
        self.feed(Event::DeploymentMetrics { deployment: D, cpu: None, latency_p99_ms: None, api_error_rate: None })
    }

    /// (6): every replica runs at the location its plan wants, nothing else is left.
    fn check_converged(&self) -> Result<(), TestCaseError> {
        let d = self.deployment().expect("deployment exists");
        let snap = self.engine.snapshot();
        let locations: Vec<RegionId> = d.slots.iter().map(|s| s.location).collect();
        prop_assert_eq!(locations.len(), self.case.replicas as usize);
        match &self.case.kind {
            Kind::ActivePassive { failback } => {
                let at = locations[0];
                prop_assert!(locations.iter().all(|l| *l == at), "(6) active-passive split over {locations:?}");
                let primary = self.case.locations[0];
                let room = d.capacity(snap, primary) + d.count_at(primary) as u64;
                if *failback && room >= self.case.replicas as u64 {
                    prop_assert_eq!(at, primary, "(6) not failed back");
                }
            }
            Kind::ActiveActive { weights } => {
                let weights: Vec<f64> = weights.iter().map(|w| *w as f64).collect();
                let want = apportion(self.case.replicas, &weights);
                let got: Vec<u32> =
                    self.case.locations.iter().map(|r| locations.iter().filter(|l| *l == r).count() as u32).collect();
                prop_assert_eq!(got, want, "(6) active-active split");
            }
        }
        for slot in &d.slots {
            prop_assert_eq!(self.engine.vm_state(slot.vm), Some(VmState::Running), "(6) {:?} not running", slot.vm);
            prop_assert_eq!(self.engine.vm_serving_region(slot.vm), Some(slot.location), "(6) {:?} misplaced", slot.vm);
        }
        prop_assert_eq!(self.live.len(), self.case.replicas as usize, "(6) instances left over: {:?}", self.live);
        Ok(())
    }
}

/// Runs a case: the deployment, the steps, then calm until it must have converged. Returns what
/// was fed and answered.
fn drive(case: &Case, steps: &[(u64, Op)]) -> Result<World, TestCaseError> {
    let mut w = World::new(case);
    w.feed(Event::DeploymentApplied { spec: Box::new(case.spec()) })?;
    for (dt, op) in steps {
        w.advance(w.now + SimDuration::from_secs(*dt))?;
        w.apply(op)?;
    }
    w.calm()?;
    let calm_at = w.now;
    w.advance(calm_at + converge_bound(case))?;
    w.check_converged()?;
    Ok(w)
}

/// Feeds recorded events to a fresh engine: its actions per event.
fn replay(case: &Case, events: &[(SimTime, Event)]) -> Vec<Vec<Action>> {
    let mut engine = case.engine();
    events
        .iter()
        .map(|(now, event)| {
            let mut out = Vec::new();
            engine.handle(*now, event.clone(), &mut out);
            out
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// (1), (2), (3), (5), (6), (7) for active-passive.
    #[test]
    fn active_passive_under_faults(case in case(true), steps in steps()) {
        let w = drive(&case, &steps)?;
        prop_assert_eq!(replay(&case, &w.events), w.actions, "(7) replay differs");
    }

    /// (2), (3), (5), (6), (7) for active-active.
    #[test]
    fn active_active_under_faults(case in case(false), steps in steps()) {
        let w = drive(&case, &steps)?;
        prop_assert_eq!(replay(&case, &w.events), w.actions, "(7) replay differs");
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: cases proptest shrank to, each failing on the engine before the fix it names.

fn regression(policy: &'static str, kind: Kind, replicas: u32, large: bool, locations: &[u16], steps: &[(u64, Op)]) {
    let locations = locations.iter().map(|r| RegionId(*r)).collect();
    let case = Case { policy, kind, replicas, large, spot: false, locations, migration: None, dr: false };
    let w = drive(&case, steps).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replay(&case, &w.events), w.actions);
}

/// Active-active aws (weight 1) + azure (weight 0): aws is lost, and once azure (live, but of
/// weight 0) was the only place left, the split of 1 replica over weights [0, 0] was nothing: the
/// deployment dropped its replica and reported a failover from aws to aws. (3)
#[test]
fn regression_active_active_never_scales_to_nothing_over_zero_weights() {
    let steps = [
        (15, Op::Region(0, false, Kill::No)),
        (48, Op::Zone(0, false, Kill::No)),
        (55, Op::Wait(0)),
        (34, Op::Wait(0)),
        (81, Op::Wait(0)),
        (36, Op::Wait(0)),
        (31, Op::Wait(0)),
    ];
    regression("cost-optimized", Kind::ActiveActive { weights: vec![1, 0] }, 1, false, &[0, 1], &steps);
}

/// Active-active azure 0, gcp 1, aws 2 with 1 replica: aws is lost and its replica goes to gcp;
/// when aws is back the replica returns, and gcp, healthy all along, was reported left as
/// `Unhealthy` (so exempt from the cooldown). (3)
#[test]
fn regression_active_active_labels_a_healthy_location_left_as_a_rebalance() {
    let steps = [
        (47, Op::Wait(0)),
        (36, Op::Wait(0)),
        (23, Op::Wait(0)),
        (63, Op::Wait(0)),
        (49, Op::Region(0, false, Kill::No)),
        (7, Op::Wait(0)),
        (75, Op::Wait(0)),
    ];
    regression("cost-optimized", Kind::ActiveActive { weights: vec![0, 1, 2] }, 1, false, &[1, 2, 0], &steps);
}

/// Active-active 3:1:1:2 over aws, azure, gcp, on-prem with 3 replicas and no fault at all: gcp's
/// share rounds to 0, so it held no replica and counted as lost until its restore period passed;
/// its weight coming and going moved azure's replica back and forth, at 330 s and again at 360 s.
/// (5)
#[test]
fn regression_active_active_does_not_churn_without_faults() {
    let kind = Kind::ActiveActive { weights: vec![3, 1, 1, 2] };
    regression("cost-optimized", kind, 3, false, &[0, 1, 2, 3], &[(0, Op::Wait(0))]);
}

/// Active-active 3:1:1 with 2 replicas, gcp (share 0) down at 0 s and back: once restored its
/// weight took azure's replica to aws, and the cooldown that move started made gcp count as lost
/// again, and so on every cooldown (rebalances at 360 s and 390 s). (5)
#[test]
fn regression_active_active_restores_a_location_for_good() {
    let steps = [(0, Op::Region(2, false, Kill::No)), (30, Op::Wait(0))];
    regression("cost-optimized", Kind::ActiveActive { weights: vec![3, 1, 1] }, 2, false, &[0, 1, 2], &steps);
}

/// Active-passive gcp → [azure, aws], 3 replicas, aws's first zone down. A manual failover to azure,
/// then another: gcp is avoided, aws has room for 2 of the 3, and the move went there anyway, so
/// 2 replicas served from aws and 1 from azure for good. (1b)
#[test]
fn regression_active_passive_does_not_split_a_serving_deployment() {
    let steps = [(0, Op::Zone(0, false, Kill::No)), (0, Op::Manual(None)), (20, Op::Manual(None)), (0, Op::Wait(10))];
    regression("cost-optimized", Kind::ActivePassive { failback: false }, 3, false, &[2, 1, 0], &steps);
}

/// Active-passive gcp → aws with 2 large replicas on gcp's O7 when its zone goes down (gcp's other
/// zone has no large offer). The replicas' instances were counted as serving, so no trigger ever
/// fired and the deployment stayed down though aws had room. (1c)
#[test]
fn regression_replicas_in_a_zone_known_down_do_not_count_as_serving() {
    let steps = [(0, Op::Zone(4, false, Kill::No)), (0, Op::Wait(600))];
    regression("cost-optimized", Kind::ActivePassive { failback: false }, 2, true, &[2, 0], &steps);
}

/// Active-passive on-prem → azure, 1 replica: on-prem's only zone goes down and the replica fails
/// over to azure's first zone, which goes down too. Azure's second zone had room, but the replica
/// was in the region it should be in, so it was never moved off the dead zone. (1c)
#[test]
fn regression_a_replica_on_a_dead_zone_is_placed_afresh() {
    let steps =
        [(0, Op::Wait(26)), (8, Op::Zone(6, false, Kill::No)), (26, Op::Zone(2, false, Kill::No)), (60, Op::Wait(351))];
    regression("performance", Kind::ActivePassive { failback: false }, 1, false, &[3, 1], &steps);
}

/// Active-active over regions 3, 2, 0 (weights 0, 0, 1: all at region 0), one large spot-allowed
/// replica under lowest-price, two spot notices, regions flapping. Found after spot replicas were
/// made to return to spot: it must still converge to one instance. (6)
#[test]
fn regression_active_active_spot_return_converges() {
    let steps = [
        (18, Op::Region(0, false, Kill::No)),
        (62, Op::Wait(420)),
        (50, Op::Wait(0)),
        (14, Op::Region(0, false, Kill::No)),
        (27, Op::Region(0, false, Kill::No)),
        (7, Op::Wait(271)),
        (22, Op::Region(0, false, Kill::No)),
        (52, Op::Wait(41)),
        (26, Op::Region(0, false, Kill::No)),
        (20, Op::Wait(334)),
        (40, Op::Wait(330)),
        (22, Op::Wait(27)),
        (24, Op::Region(0, false, Kill::No)),
        (57, Op::Region(0, false, Kill::No)),
        (5, Op::Region(0, false, Kill::No)),
        (7, Op::Region(0, true, Kill::No)),
        (14, Op::Wait(480)),
        (40, Op::Price(0, false, 0.5)),
        (40, Op::Region(1, false, Kill::No)),
        (53, Op::Price(0, false, 0.5)),
        (19, Op::Region(1, false, Kill::No)),
        (8, Op::Wait(119)),
        (10, Op::Price(0, false, 0.5)),
        (26, Op::Price(0, false, 0.5)),
        (21, Op::Notice(0, 4)),
        (3, Op::Notice(0, 292)),
        (51, Op::Region(0, false, Kill::No)),
        (43, Op::Region(0, false, Kill::No)),
        (87, Op::Region(0, false, Kill::No)),
    ];
    let locations = [3u16, 2, 0].iter().map(|r| RegionId(*r)).collect();
    let case = Case {
        policy: "lowest-price",
        kind: Kind::ActiveActive { weights: vec![0, 0, 1] },
        replicas: 1,
        large: true,
        spot: true,
        locations,
        migration: None,
        dr: false,
    };
    let w = drive(&case, &steps).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replay(&case, &w.events), w.actions);
}
