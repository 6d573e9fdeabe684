//! Multi-cloud deployments, example by example: where the replicas go, when they move, and why.
//!
//! Every deployment here is `D` (group 7), evaluated every 60 s with a 300 s cooldown unless a
//! test says otherwise. Its replica `k` is VM `slot_vm(D, k)`. The placement policy is
//! `lowest-price`, so inside a region a replica takes the cheapest offer (fixture table).

use engine::deploy::{
    ActiveActiveConfig, ActivePassiveConfig, BurstConfig, CostOptimizedConfig, SpotRecovery, Trigger, TriggerKind,
    slot_vm,
};
use engine::{
    Action, DeploymentSpec, Event, FailureCause, GroupId, InstanceId, Market, MoveReason, OfferId, ProvisionReason,
    RegionId, Resources, SimDuration, SimTime, Strategy, Timer, TimerKind, VmId, VmRequest, VmState,
};

use crate::fixture::*;

const D: GroupId = GroupId(7);

fn vm(slot: u32) -> VmId {
    slot_vm(D, slot)
}

fn spec(replicas: u32, template: VmRequest, strategy: Strategy) -> DeploymentSpec {
    DeploymentSpec {
        id: D,
        name: "web".into(),
        replicas,
        template,
        strategy,
        triggers: Vec::new(),
        cooldown: SimDuration::from_secs(300),
        evaluate_every: SimDuration::from_secs(60),
        max_cost_per_h: None,
        spot: SpotRecovery::default(),
        migration: None,
        disaster_recovery: None,
        rollout: None,
    }
}

fn active_passive(primary: RegionId, secondary: &[RegionId], failback: bool, hold_down_s: u64) -> Strategy {
    Strategy::ActivePassive(ActivePassiveConfig {
        primary,
        secondary: secondary.to_vec(),
        failback,
        hold_down: SimDuration::from_secs(hold_down_s),
    })
}

/// A 4 vCPU / 16 GiB replica: it fits only the large offers (O6 at aws, O7 at gcp, 10 each) and the
/// on-prem pool (3 hosts × 8 vCPU / 4 = 6).
fn large(id: u64) -> VmRequest {
    VmRequest::new(VmId(id), Resources { vcpu: 4, memory_mib: 16384, gpu: 0 })
}

/// What one batch of actions did, in a form that reads well in assertions.
#[derive(Debug, Default)]
struct Did {
    /// (instance, vm, region, offer, market, reason)
    provisions: Vec<(u64, VmId, RegionId, OfferId, Market, ProvisionReason)>,
    /// (instance, vm)
    terminates: Vec<(u64, VmId)>,
    failovers: Vec<(RegionId, RegionId, MoveReason)>,
    timers: Vec<Timer>,
    other: Vec<Action>,
}

impl Did {
    fn of(run: &Run, actions: &[Action]) -> Did {
        let mut did = Did::default();
        for a in actions {
            match a {
                Action::Provision { instance, vm, placement, reason, .. } => {
                    let region = run.engine.snapshot().catalog.offers[placement.offer.idx()].region;
                    did.provisions.push((instance.0, *vm, region, placement.offer, placement.market, *reason));
                }
                Action::Terminate { instance, vm } => did.terminates.push((instance.0, *vm)),
                Action::FailOver { deployment, from, to, reason } => {
                    assert_eq!(*deployment, D);
                    did.failovers.push((*from, *to, reason.clone()));
                }
                Action::SetTimer { timer } => did.timers.push(*timer),
                other => did.other.push(other.clone()),
            }
        }
        did
    }

    /// Regions provisioned, in order.
    fn regions(&self) -> Vec<RegionId> {
        self.provisions.iter().map(|p| p.2).collect()
    }

    fn instances(&self) -> Vec<u64> {
        self.provisions.iter().map(|p| p.0).collect()
    }
}

fn apply(run: &mut Run, now: SimTime, spec: DeploymentSpec) -> Did {
    let actions = run.at(now, Event::DeploymentApplied { spec: Box::new(spec) });
    Did::of(run, &actions)
}

/// The deployment's evaluation timer fires at `now`.
fn evaluate(run: &mut Run, now: SimTime) -> Did {
    let actions = run.at(now, Event::TimerFired { timer: TimerKind::Deployment(D) });
    Did::of(run, &actions)
}

fn event(run: &mut Run, now: SimTime, e: Event) -> Did {
    let actions = run.at(now, e);
    Did::of(run, &actions)
}

/// Reports every instance in `instances` running at `now`; returns what that did.
fn up(run: &mut Run, now: SimTime, instances: &[u64]) -> Did {
    let mut actions = Vec::new();
    for i in instances {
        actions.extend(run.running(now, *i));
    }
    Did::of(run, &actions)
}

fn region_health(region: RegionId, healthy: bool) -> Event {
    Event::RegionHealth { region, healthy }
}

fn cpu(value: f64) -> Event {
    Event::DeploymentMetrics { deployment: D, cpu: Some(value), latency_p99_ms: None, api_error_rate: None }
}

/// Where each replica is served from now.
fn serving(run: &Run, replicas: u32) -> Vec<Option<RegionId>> {
    (0..replicas).map(|k| run.engine.vm_serving_region(vm(k))).collect()
}

fn slot_locations(run: &Run) -> Vec<RegionId> {
    run.engine.deployment(D).expect("deployment exists").slots.iter().map(|s| s.location).collect()
}

fn next_eval(at: u64) -> Timer {
    Timer { at: secs(at), kind: TimerKind::Deployment(D) }
}

// ---------------------------------------------------------------------------------------------
// Active-passive

/// Ten small VMs of someone else on the on-prem pool: 3 hosts × (8 / 2) = 12 small slots, so 2 stay
/// free. Instances `first..first + 10`.
fn fill_onprem(run: &mut Run, now: SimTime) {
    for id in 100..110 {
        let actions = run.request(now, VmRequest { regions: vec![ONPREM], ..small(id) });
        assert_eq!(Did::of(run, &actions).regions(), [ONPREM]);
    }
}

#[test]
fn active_passive_runs_in_the_primary_and_fails_over_to_the_first_healthy_secondary_with_room() {
    let mut run = Run::new(config("lowest-price"));
    // Secondaries in order: azure, on-prem, gcp.
    let s = spec(3, small(0), active_passive(AWS, &[AZURE, ONPREM, GCP], true, 600));
    let did = apply(&mut run, SimTime::ZERO, s);
    // All three replicas in the primary, on its cheapest small offer O0 ($0.096/h), none elsewhere;
    // the first evaluation is due one interval later.
    assert_eq!(did.regions(), [AWS, AWS, AWS]);
    assert!(did.provisions.iter().all(|p| p.3 == AWS_A_SMALL && p.5 == ProvisionReason::Initial));
    assert_eq!(did.provisions.iter().map(|p| p.1).collect::<Vec<_>>(), [vm(0), vm(1), vm(2)]);
    assert_eq!(did.timers, [next_eval(60)]);
    assert_eq!(slot_locations(&run), [AWS, AWS, AWS]);
    up(&mut run, secs(30), &[0, 1, 2]);
    assert_eq!(serving(&run, 3), [Some(AWS); 3]);
    let did = evaluate(&mut run, secs(60));
    assert!(did.provisions.is_empty() && did.failovers.is_empty() && did.terminates.is_empty());
    assert_eq!(did.timers, [next_eval(120)]);

    // Azure goes down, and someone else takes 10 of on-prem's 12 slots (instances 3..=12): on-prem
    // could hold 2 replicas, not 3.
    event(&mut run, secs(70), region_health(AZURE, false));
    fill_onprem(&mut run, secs(70));
    // The primary goes down: nothing happens until the next evaluation.
    let did = event(&mut run, secs(90), region_health(AWS, false));
    assert!(did.provisions.is_empty() && did.failovers.is_empty());

    // At 120 s: unhealthy primary → the first secondary that is healthy (not azure) and can take all
    // 3 replicas (not on-prem) is gcp. The replicas at the dead primary cannot serve, so they are
    // let go and re-placed at once on gcp's cheapest small offer, O4 ($0.104/h).
    let did = evaluate(&mut run, secs(120));
    assert_eq!(did.failovers, [(AWS, GCP, MoveReason::Unhealthy)]);
    assert_eq!(did.terminates, [(0, vm(0)), (1, vm(1)), (2, vm(2))]);
    assert_eq!(did.instances(), [13, 14, 15]);
    assert!(did.provisions.iter().all(|p| p.3 == GCP_A_SMALL && p.5 == ProvisionReason::Failover));
    assert_eq!(slot_locations(&run), [GCP, GCP, GCP]);
    assert_eq!(run.engine.vm_state(vm(0)), Some(VmState::Recovering));
    up(&mut run, secs(150), &[13, 14, 15]);
    assert_eq!(serving(&run, 3), [Some(GCP); 3]);
    assert_eq!(run.engine.tracked_instances(), 10 + 3);
}

#[test]
fn active_passive_fails_back_make_before_break_after_the_hold_down_and_the_cooldown() {
    let mut run = Run::new(config("lowest-price"));
    // Hold-down 600 s, cooldown 300 s.
    apply(&mut run, SimTime::ZERO, spec(2, small_cloud(0), active_passive(AWS, &[AZURE], true, 600)));
    up(&mut run, secs(30), &[0, 1]);
    event(&mut run, secs(90), region_health(AWS, false));
    let did = evaluate(&mut run, secs(120));
    // Azure's cheapest small offer: O2 ($0.099/h).
    assert_eq!(did.failovers, [(AWS, AZURE, MoveReason::Unhealthy)]);
    assert_eq!(did.instances(), [2, 3]);
    up(&mut run, secs(150), &[2, 3]);

    // AWS is healthy again at 200 s; the engine sees it at the 240 s evaluation. It was failed away
    // from at 120 s, so the cooldown ends at 120 + 300 = 420 s; the hold-down ends at 240 + 600 =
    // 840 s. Until then every evaluation leaves the deployment in azure.
    assert!(evaluate(&mut run, secs(180)).failovers.is_empty());
    event(&mut run, secs(200), region_health(AWS, true));
    for t in (240..840).step_by(60) {
        let did = evaluate(&mut run, secs(t));
        assert!(did.failovers.is_empty() && did.provisions.is_empty(), "at {t} s: {did:?}");
    }
    // At 840 s: back to the primary. Make-before-break: new instances at aws (O0) are asked for
    // while the azure ones keep serving.
    let did = evaluate(&mut run, secs(840));
    assert_eq!(did.failovers, [(AZURE, AWS, MoveReason::Failback)]);
    assert_eq!(did.instances(), [4, 5]);
    assert!(did.provisions.iter().all(|p| p.2 == AWS && p.5 == ProvisionReason::Relocation));
    assert!(did.terminates.is_empty());
    assert_eq!(serving(&run, 2), [Some(AZURE), Some(AZURE)]);
    assert_eq!(run.engine.tracked_instances(), 4);
    // The next evaluation leaves the replacements on their way alone.
    let did = evaluate(&mut run, secs(900));
    assert!(did.provisions.is_empty() && did.terminates.is_empty() && did.failovers.is_empty());
    // Each azure instance goes only when its replacement runs.
    let did = up(&mut run, secs(910), &[4]);
    assert_eq!(did.terminates, [(2, vm(0))]);
    assert_eq!(serving(&run, 2), [Some(AWS), Some(AZURE)]);
    let did = up(&mut run, secs(920), &[5]);
    assert_eq!(did.terminates, [(3, vm(1))]);
    assert_eq!(serving(&run, 2), [Some(AWS), Some(AWS)]);
    assert_eq!(run.engine.tracked_instances(), 2);

    // The primary fails again at 930 s, inside the cooldown of the failback (840 + 300 = 1140 s).
    // A dead location is left at once, and azure, which the failback left healthy, is not avoided:
    // the replicas go there at the 960 s evaluation, not at 1140 s.
    event(&mut run, secs(930), region_health(AWS, false));
    let did = evaluate(&mut run, secs(960));
    assert_eq!(did.failovers, [(AWS, AZURE, MoveReason::Unhealthy)]);
    assert_eq!(did.terminates, [(4, vm(0)), (5, vm(1))]);
    assert_eq!(did.regions(), [AZURE, AZURE]);
}

/// Active-passive aws → [azure, gcp] with a CPU trigger (above 80 % for 120 s), 2 replicas up at
/// 30 s and the deployment settled at the 60 s evaluation.
fn cpu_triggered() -> Run {
    let mut run = Run::new(config("lowest-price"));
    let mut s = spec(2, small_cloud(0), active_passive(AWS, &[AZURE, GCP], false, 600));
    s.triggers = vec![Trigger { kind: TriggerKind::Cpu { threshold: 0.8 }, duration: SimDuration::from_secs(120) }];
    apply(&mut run, SimTime::ZERO, s);
    up(&mut run, secs(30), &[0, 1]);
    evaluate(&mut run, secs(60));
    run
}

#[test]
fn a_metric_trigger_held_for_its_duration_fails_over() {
    let mut run = cpu_triggered();
    // CPU at 90 % from 100 s: the condition is first seen at 120 s, and must hold until 120 + 120 =
    // 240 s.
    event(&mut run, secs(100), cpu(0.9));
    for t in [120, 180] {
        assert!(evaluate(&mut run, secs(t)).failovers.is_empty(), "at {t} s");
    }
    let did = evaluate(&mut run, secs(240));
    assert_eq!(did.failovers, [(AWS, AZURE, MoveReason::Trigger("cpu".into()))]);
    // AWS is healthy: make-before-break again.
    assert_eq!(did.regions(), [AZURE, AZURE]);
    assert!(did.provisions.iter().all(|p| p.5 == ProvisionReason::Relocation));
    assert!(did.terminates.is_empty());
    assert_eq!(up(&mut run, secs(260), &[2, 3]).terminates, [(0, vm(0)), (1, vm(1))]);
}

#[test]
fn a_trigger_interrupted_before_its_duration_does_not_fail_over() {
    let mut run = cpu_triggered();
    event(&mut run, secs(100), cpu(0.9));
    assert!(evaluate(&mut run, secs(120)).failovers.is_empty());
    assert!(evaluate(&mut run, secs(180)).failovers.is_empty());
    // A dip at 200 s, seen at 240 s, restarts the clock: hot again from 250 s, first seen at 300 s,
    // so it fires at 300 + 120 = 420 s and not before.
    event(&mut run, secs(200), cpu(0.5));
    assert!(evaluate(&mut run, secs(240)).failovers.is_empty());
    event(&mut run, secs(250), cpu(0.9));
    for t in [300, 360] {
        assert!(evaluate(&mut run, secs(t)).failovers.is_empty(), "at {t} s");
    }
    assert_eq!(evaluate(&mut run, secs(420)).failovers, [(AWS, AZURE, MoveReason::Trigger("cpu".into()))]);
}

#[test]
fn two_trigger_firings_within_the_cooldown_move_only_once() {
    let mut run = cpu_triggered();
    event(&mut run, secs(100), cpu(0.9));
    evaluate(&mut run, secs(120));
    evaluate(&mut run, secs(180));
    assert_eq!(evaluate(&mut run, secs(240)).failovers.len(), 1);
    up(&mut run, secs(260), &[2, 3]);
    // The CPU stays hot: the trigger starts afresh after the move (seen at 300 s) and fires again
    // at 300 + 120 = 420 s, but the cooldown runs until 240 + 300 = 540 s.
    for t in [300, 360, 420, 480] {
        let did = evaluate(&mut run, secs(t));
        assert!(did.failovers.is_empty() && did.provisions.is_empty(), "at {t} s: {did:?}");
    }
    // At 540 s the cooldown is over and the trigger still holds: the second move, back to aws (it
    // comes first in preference order, and it was avoided only until 240 + 300 = 540 s).
    let did = evaluate(&mut run, secs(540));
    assert_eq!(did.failovers, [(AZURE, AWS, MoveReason::Trigger("cpu".into()))]);
}

#[test]
fn manual_failover_ignores_the_cooldown_but_not_health() {
    let mut run = cpu_triggered();
    event(&mut run, secs(100), cpu(0.9));
    evaluate(&mut run, secs(120));
    evaluate(&mut run, secs(180));
    assert_eq!(evaluate(&mut run, secs(240)).failovers.len(), 1);
    up(&mut run, secs(260), &[2, 3]);
    event(&mut run, secs(262), cpu(0.1));
    // 30 s into the 300 s cooldown, gcp is down: asking for it does nothing.
    event(&mut run, secs(265), region_health(GCP, false));
    let manual = |to| Event::ManualFailover { deployment: D, to };
    let did = event(&mut run, secs(270), manual(Some(GCP)));
    assert!(did.failovers.is_empty() && did.provisions.is_empty(), "{did:?}");
    // Nor does asking for "anywhere": aws was failed away from at 240 s and is avoided until 540 s,
    // gcp is down.
    let did = event(&mut run, secs(275), manual(None));
    assert!(did.failovers.is_empty() && did.provisions.is_empty(), "{did:?}");
    // gcp is back: the operator's move happens at once, cooldown or not.
    event(&mut run, secs(280), region_health(GCP, true));
    let did = event(&mut run, secs(285), manual(Some(GCP)));
    assert_eq!(did.failovers, [(AZURE, GCP, MoveReason::Manual)]);
    assert_eq!(did.regions(), [GCP, GCP]);
    assert!(did.terminates.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Active-active

fn active_active(locations: &[(RegionId, f64)], restore_after_s: u64) -> Strategy {
    Strategy::ActiveActive(ActiveActiveConfig {
        locations: locations.to_vec(),
        restore_after: SimDuration::from_secs(restore_after_s),
    })
}

fn count(regions: &[RegionId], r: RegionId) -> usize {
    regions.iter().filter(|x| **x == r).count()
}

#[test]
fn active_active_splits_by_largest_remainder_and_restores_a_lost_location_after_restore_after() {
    let mut run = Run::new(config("lowest-price"));
    let s = spec(8, small_cloud(0), active_active(&[(AWS, 2.0), (AZURE, 1.0), (GCP, 1.0)], 600));
    // 8 × 2/4 = 4, 8 × 1/4 = 2, 2: exact, no remainder to hand out.
    let did = apply(&mut run, SimTime::ZERO, s);
    assert_eq!(did.regions(), [AWS, AWS, AWS, AWS, AZURE, AZURE, GCP, GCP]);
    assert!(did.failovers.is_empty());
    up(&mut run, secs(30), &did.instances());
    assert_eq!(serving(&run, 8).iter().flatten().count(), 8);

    // aws is lost at 90 s. At 120 s its 4 replicas are split over the two left, 1:1 → 4 and 4: the
    // replicas already at azure and gcp stay, slots 0 and 1 go to azure, 2 and 3 to gcp.
    event(&mut run, secs(90), region_health(AWS, false));
    let did = evaluate(&mut run, secs(120));
    assert_eq!(did.failovers, [(AWS, AZURE, MoveReason::Unhealthy)]);
    assert_eq!(did.terminates, [(0, vm(0)), (1, vm(1)), (2, vm(2)), (3, vm(3))]);
    assert_eq!(did.regions(), [AZURE, AZURE, GCP, GCP]);
    assert!(did.provisions.iter().all(|p| p.5 == ProvisionReason::Failover));
    assert_eq!(slot_locations(&run), [AZURE, AZURE, GCP, GCP, AZURE, AZURE, GCP, GCP]);
    up(&mut run, secs(150), &did.instances());

    // aws is back at 200 s, seen at 240 s: it has been healthy for the 600 s restore period at
    // 840 s (the cooldown ended at 120 + 300 = 420 s). Until then it gets nothing back.
    assert!(evaluate(&mut run, secs(180)).provisions.is_empty());
    event(&mut run, secs(200), region_health(AWS, true));
    for t in (240..840).step_by(60) {
        let did = evaluate(&mut run, secs(t));
        assert!(did.failovers.is_empty() && did.provisions.is_empty(), "at {t} s: {did:?}");
    }
    // At 840 s: back to 4/2/2. Slots 0..=3 stay where they are (2 at azure, 2 at gcp, their
    // shares); slots 4..=7 move to aws, make-before-break.
    let did = evaluate(&mut run, secs(840));
    assert_eq!(did.failovers, [(AZURE, AWS, MoveReason::Rebalance)]);
    assert_eq!(did.regions(), [AWS, AWS, AWS, AWS]);
    assert_eq!(did.provisions.iter().map(|p| p.1).collect::<Vec<_>>(), [vm(4), vm(5), vm(6), vm(7)]);
    assert!(did.provisions.iter().all(|p| p.5 == ProvisionReason::Relocation));
    assert!(did.terminates.is_empty());
    let did = up(&mut run, secs(870), &did.instances());
    assert_eq!(did.terminates, [(4, vm(4)), (5, vm(5)), (6, vm(6)), (7, vm(7))]);
    let regions: Vec<RegionId> = serving(&run, 8).into_iter().flatten().collect();
    assert_eq!((count(&regions, AWS), count(&regions, AZURE), count(&regions, GCP)), (4, 2, 2));
    // And there it stays: the location the rebalance took replicas from is healthy and keeps its
    // share (it is not "failed away from").
    for t in (900..=2400).step_by(60) {
        let did = evaluate(&mut run, secs(t));
        assert!(did.failovers.is_empty() && did.provisions.is_empty(), "at {t} s: {did:?}");
    }
    assert_eq!(slot_locations(&run), [AZURE, AZURE, GCP, GCP, AWS, AWS, AWS, AWS]);
}

// ---------------------------------------------------------------------------------------------
// Burst

#[test]
fn burst_overflows_to_targets_in_order_and_scales_in_only_after_demand_stayed_low() {
    let mut run = Run::new(config("lowest-price"));
    // Baseline 2 large replicas at aws; overflow to gcp, then on-prem. Scale in after 600 s low.
    let s = spec(
        2,
        large(0),
        Strategy::Burst(BurstConfig {
            primary: AWS,
            targets: vec![GCP, ONPREM],
            primary_max: None,
            scale_in_after: SimDuration::from_secs(600),
            step: 1,
            max_replicas: None,
        }),
    );
    let did = apply(&mut run, SimTime::ZERO, s);
    assert_eq!(did.provisions.iter().map(|p| (p.2, p.3)).collect::<Vec<_>>(), [(AWS, AWS_A_LARGE); 2]);
    up(&mut run, secs(30), &[0, 1]);

    // Demand for 23 replicas. aws has room for 10 large (O6), gcp for 10 (O7), on-prem for 6 (pool):
    // 10 at aws (2 there + 8 new), 10 at gcp, the last 3 on-prem.
    let demand = |n| Event::DeploymentDemand { deployment: D, replicas: n };
    event(&mut run, secs(50), demand(23));
    let did = evaluate(&mut run, secs(60));
    let mut want = vec![AWS; 8];
    want.extend([GCP; 10]);
    want.extend([ONPREM; 3]);
    assert_eq!(did.regions(), want);
    assert_eq!(did.instances(), (2..=22).collect::<Vec<_>>());
    assert!(did.provisions.iter().all(|p| p.5 == ProvisionReason::Initial));
    // The overflow reaching its first target is recorded (a burst move, not a failover: no cooldown).
    assert_eq!(did.failovers, [(AWS, GCP, MoveReason::Burst)]);
    up(&mut run, secs(90), &did.instances());

    // Demand falls to 4 at 100 s: low from the 120 s evaluation, so scale-in would be due at
    // 120 + 600 = 720 s. It rises back to 23 at 400 s (seen at 420 s), which cancels that.
    event(&mut run, secs(100), demand(4));
    for t in (120..=360).step_by(60) {
        assert!(evaluate(&mut run, secs(t)).terminates.is_empty(), "at {t} s");
    }
    event(&mut run, secs(400), demand(23));
    assert!(evaluate(&mut run, secs(420)).terminates.is_empty());
    assert!(evaluate(&mut run, secs(480)).terminates.is_empty());
    event(&mut run, secs(500), demand(4));
    // Low again from 540 s: nothing goes until 540 + 600 = 1140 s, 720 s included.
    for t in (540..1140).step_by(60) {
        let did = evaluate(&mut run, secs(t));
        assert!(did.terminates.is_empty() && did.provisions.is_empty(), "at {t} s: {did:?}");
    }
    // At 1140 s: down to 4, all at aws; slots 4..=22 (instances 4..=22) go.
    let did = evaluate(&mut run, secs(1140));
    assert_eq!(did.terminates, (4..=22).map(|k| (k, vm(k as u32))).collect::<Vec<_>>());
    assert!(did.provisions.is_empty());
    assert_eq!(slot_locations(&run), [AWS; 4]);
    assert_eq!(run.engine.tracked_instances(), 4);
}

// ---------------------------------------------------------------------------------------------
// Cost-optimized

#[test]
fn cost_optimized_moves_only_when_it_pays_and_within_the_disruption_budget() {
    let mut run = Run::new(config("lowest-price"));
    let s = spec(
        4,
        small_cloud(0),
        Strategy::CostOptimized(CostOptimizedConfig {
            locations: vec![AWS, AZURE, GCP],
            horizon: SimDuration::from_secs(168 * 3600),
            min_saving_ratio: 2.0,
            disruption_budget: 0.5,
            window: SimDuration::from_secs(3600),
            data_gib: 10.0,
            downtime: SimDuration::from_secs(36),
            downtime_cost_per_h: 60.0,
            overlap: SimDuration::from_secs(360),
        }),
    );
    // The cheapest small on demand: aws O0 at $0.096/h.
    let did = apply(&mut run, SimTime::ZERO, s);
    assert_eq!(did.regions(), [AWS; 4]);
    up(&mut run, secs(30), &did.instances());
    let price = |p| Event::PriceChanged { offer: AZ_1_SMALL, market: Market::OnDemand, price_per_h: p };

    // Moving one replica aws → azure costs 10 GiB × $0.09 inter-cloud egress + 0.01 h of downtime
    // × $60/h + 0.1 h of overlap at the new price p: 1.5 + 0.1 p; it must save 2× that over the
    // 168 h horizon: (0.096 − p) × 168 ≥ 2 × (1.5 + 0.1 p).
    // A cent an hour cheaper (p = 0.086): saves 1.68 < 3.0172. Nothing moves.
    event(&mut run, secs(100), price(0.086));
    for t in [120, 180] {
        assert!(evaluate(&mut run, secs(t)).provisions.is_empty(), "at {t} s");
    }
    // p = 0.079: saves 0.017 × 168 = 2.856 < 2 × 1.5079 = 3.0158. Still nothing.
    event(&mut run, secs(200), price(0.079));
    assert!(evaluate(&mut run, secs(240)).provisions.is_empty());
    // p = 0.077: saves 0.019 × 168 = 3.192 ≥ 2 × 1.5077 = 3.0154: it pays. But the disruption
    // budget is ⌊0.5 × 4⌋ = 2 moves per 3600 s window (the first window opened at 0 s): slots 0 and
    // 1 move now, make-before-break.
    event(&mut run, secs(250), price(0.077));
    let did = evaluate(&mut run, secs(300));
    assert_eq!(
        did.provisions.iter().map(|p| (p.1, p.3, p.5)).collect::<Vec<_>>(),
        [(vm(0), AZ_1_SMALL, ProvisionReason::Relocation), (vm(1), AZ_1_SMALL, ProvisionReason::Relocation)]
    );
    // Recorded as a cost move (not a failover: no cooldown, the old location is not avoided).
    assert!(did.terminates.is_empty());
    assert_eq!(did.failovers.iter().map(|f| f.2.clone()).collect::<Vec<_>>(), [MoveReason::Cost]);
    assert_eq!(up(&mut run, secs(330), &did.instances()).terminates, [(0, vm(0)), (1, vm(1))]);
    for t in (360..3600).step_by(60) {
        assert!(evaluate(&mut run, secs(t)).provisions.is_empty(), "at {t} s");
    }
    // The next window opens at 3600 s: the other two move.
    let did = evaluate(&mut run, secs(3600));
    assert_eq!(did.provisions.iter().map(|p| (p.1, p.2)).collect::<Vec<_>>(), [(vm(2), AZURE), (vm(3), AZURE)]);
    up(&mut run, secs(3630), &did.instances());
    assert_eq!(serving(&run, 4), [Some(AZURE); 4]);
}

// ---------------------------------------------------------------------------------------------
// Spot recovery, removal, validation

#[test]
fn a_replica_interrupted_twice_runs_on_demand_then_may_use_spot_again() {
    let mut run = Run::new(config("lowest-price"));
    let mut s = spec(1, small_spot(0), active_passive(GCP, &[AZURE], false, 600));
    s.spot = SpotRecovery { on_demand_after: 2, back_to_spot_after: SimDuration::from_secs(3600) };
    // gcp's cheapest spot: O4 at $0.025/h.
    let did = apply(&mut run, SimTime::ZERO, s);
    assert_eq!(did.provisions.iter().map(|p| (p.3, p.4)).collect::<Vec<_>>(), [(GCP_A_SMALL, Market::Spot)]);
    up(&mut run, secs(30), &[0]);
    let notice = |i, at| Event::InterruptionNotice { instance: InstanceId(i), at: secs(at) };

    // First interruption: O4 spot is blocked (until 220 + 900 s), the replacement takes O5 spot.
    let did = event(&mut run, secs(100), notice(0, 220));
    assert_eq!(did.provisions, [(1, vm(0), GCP, GCP_B_SMALL, Market::Spot, ProvisionReason::Replacement)]);
    assert_eq!(up(&mut run, secs(130), &[1]).terminates, [(0, vm(0))]);
    // Second: on demand from now (200 s) until 200 + 3600 = 3800 s; gcp's cheapest on demand, O4.
    let did = event(&mut run, secs(200), notice(1, 320));
    assert_eq!(did.provisions, [(2, vm(0), GCP, GCP_A_SMALL, Market::OnDemand, ProvisionReason::Replacement)]);
    assert_eq!(up(&mut run, secs(230), &[2]).terminates, [(1, vm(0))]);
    let slot = &run.engine.deployment(D).expect("deployment exists").slots[0];
    assert_eq!((slot.spot_failures, slot.on_demand_until), (0, Some(secs(3800))));

    // Still on demand when it crashes at 3000 s.
    let crashed = |i| Event::InstanceFailed { instance: InstanceId(i), cause: FailureCause::Crashed };
    let did = event(&mut run, secs(3000), crashed(2));
    assert_eq!(did.provisions, [(3, vm(0), GCP, GCP_A_SMALL, Market::OnDemand, ProvisionReason::Failover)]);
    up(&mut run, secs(3030), &[3]);
    // The 3840 s evaluation (the first at or after 3800 s) returns it to spot, since the policy
    // would place it there now (O4 spot, its block ended at 1120 s): make-before-break, the
    // on-demand instance goes once the spot one runs.
    assert!(evaluate(&mut run, secs(3780)).provisions.is_empty());
    let did = evaluate(&mut run, secs(3840));
    assert_eq!(did.provisions, [(4, vm(0), GCP, GCP_A_SMALL, Market::Spot, ProvisionReason::Relocation)]);
    assert!(did.terminates.is_empty());
    assert_eq!(run.engine.deployment(D).expect("deployment exists").slots[0].on_demand_until, None);
    assert_eq!(up(&mut run, secs(3870), &[4]).terminates, [(3, vm(0))]);
    // Nothing more to do after that.
    assert!(evaluate(&mut run, secs(3900)).provisions.is_empty());
}

#[test]
fn removing_a_deployment_terminates_every_replica_instance() {
    let mut run = cpu_triggered();
    event(&mut run, secs(100), cpu(0.9));
    evaluate(&mut run, secs(120));
    evaluate(&mut run, secs(180));
    // Mid-move: replicas 0 and 1 serve from instances 0 and 1 at aws, replacements 2 and 3 start at
    // azure.
    assert_eq!(evaluate(&mut run, secs(240)).instances(), [2, 3]);
    let did = event(&mut run, secs(250), Event::DeploymentRemoved { deployment: D });
    assert_eq!(did.terminates, [(0, vm(0)), (2, vm(0)), (1, vm(1)), (3, vm(1))]);
    assert!(did.provisions.is_empty() && did.failovers.is_empty());
    assert_eq!(run.engine.tracked_instances(), 0);
    assert_eq!(run.engine.tracked_vms(), 0);
    assert!(run.engine.deployment(D).is_none());
    // Late news about it changes nothing.
    assert!(evaluate(&mut run, secs(300)).timers.is_empty());
    assert!(up(&mut run, secs(310), &[2, 3]).terminates.is_empty());
    assert!(event(&mut run, secs(320), Event::DeploymentRemoved { deployment: D }).terminates.is_empty());
}

#[test]
fn an_invalid_spec_is_rejected_and_changes_nothing() {
    let mut run = Run::new(config("lowest-price"));
    let rejected = |message: &str| vec![Action::DeploymentRejected { deployment: D, message: message.into() }];
    // The fixture has 4 regions: region 9 does not exist.
    let s = spec(2, small_cloud(0), active_passive(AWS, &[RegionId(9)], false, 600));
    assert_eq!(
        run.at(SimTime::ZERO, Event::DeploymentApplied { spec: Box::new(s) }),
        rejected("a location names a region that does not exist")
    );
    let mut s = spec(2, small_cloud(0), active_passive(AWS, &[AZURE], false, 600));
    s.evaluate_every = SimDuration::ZERO;
    assert_eq!(
        run.at(SimTime::ZERO, Event::DeploymentApplied { spec: Box::new(s) }),
        rejected("evaluate_every must be longer than 0")
    );
    let s = spec(2, small_cloud(0), active_active(&[(AWS, 1.0), (AZURE, -1.0)], 600));
    assert_eq!(
        run.at(SimTime::ZERO, Event::DeploymentApplied { spec: Box::new(s) }),
        rejected("active-active weights must be numbers >= 0")
    );
    // No location that could take a replica (this one used to panic on its first evaluation).
    let s = spec(2, small_cloud(0), active_active(&[], 600));
    assert_eq!(
        run.at(SimTime::ZERO, Event::DeploymentApplied { spec: Box::new(s) }),
        rejected("active-active needs a location of weight > 0")
    );
    let s = spec(2, small_cloud(0), active_active(&[(AWS, 0.0), (AZURE, 0.0)], 600));
    assert_eq!(
        run.at(SimTime::ZERO, Event::DeploymentApplied { spec: Box::new(s) }),
        rejected("active-active needs a location of weight > 0")
    );
    assert!(run.engine.deployment(D).is_none());
    assert_eq!(run.engine.tracked_instances(), 0);

    // A valid deployment, then an invalid replacement spec: refused, the running one carries on.
    apply(&mut run, SimTime::ZERO, spec(2, small_cloud(0), active_passive(AWS, &[AZURE], false, 600)));
    let s = spec(2, small_cloud(0), active_passive(RegionId(4), &[AZURE], false, 600));
    assert_eq!(
        run.at(secs(10), Event::DeploymentApplied { spec: Box::new(s) }),
        rejected("a location names a region that does not exist")
    );
    assert_eq!(
        run.engine.deployment(D).expect("deployment exists").spec.strategy,
        active_passive(AWS, &[AZURE], false, 600)
    );
    assert_eq!(run.engine.tracked_instances(), 2);
}

// ---------------------------------------------------------------------------------------------
// Rollouts

/// Four small replicas at aws (O0), running by 30 s; at 60 s the template becomes `large` (O6).
fn rolled(rollout: engine::Rollout) -> (Run, Did) {
    let mut run = Run::new(config("lowest-price"));
    let mut s = spec(4, small_cloud(0), active_passive(AWS, &[GCP], false, 0));
    s.rollout = Some(rollout);
    let did = apply(&mut run, SimTime::ZERO, s.clone());
    assert_eq!(did.instances(), [0, 1, 2, 3]);
    up(&mut run, secs(30), &did.instances());
    assert_eq!(run.engine.updated_replicas(D), 4);
    s.template = VmRequest { providers: CLOUDS, ..large(0) };
    let did = apply(&mut run, secs(60), s);
    (run, did)
}

#[test]
fn a_rolling_update_replaces_replicas_within_max_surge_and_max_unavailable() {
    let (mut run, did) = rolled(engine::Rollout::RollingUpdate { max_surge: 1, max_unavailable: 1 });
    // Slot 0 make-before-break (a new instance beside the old), slot 1 break-before-make.
    assert_eq!(
        did.provisions.iter().map(|p| (p.0, p.1, p.3, p.5)).collect::<Vec<_>>(),
        [(4, vm(0), AWS_A_LARGE, ProvisionReason::Update), (5, vm(1), AWS_A_LARGE, ProvisionReason::Update)]
    );
    assert_eq!(did.terminates, [(1, vm(1))]);
    assert_eq!(run.engine.updated_replicas(D), 1);
    // Bring every new instance up one at a time; after each step at most 4 + 1 instances exist
    // and at least 4 − 1 replicas serve.
    let mut live: Vec<u64> = vec![0, 2, 3, 4, 5];
    let mut pending: Vec<u64> = vec![4, 5];
    let mut t = 90;
    while let Some(i) = pending.first().copied() {
        pending.remove(0);
        let did = up(&mut run, secs(t), &[i]);
        t += 30;
        live.retain(|x| !did.terminates.iter().any(|(y, _)| y == x));
        live.extend(did.instances());
        pending.extend(did.instances());
        assert!(live.len() <= 5, "{live:?} at {t} s");
        let serving = serving(&run, 4).iter().filter(|s| s.is_some()).count();
        assert!(serving >= 3, "{serving} serving at {t} s");
    }
    // Done: four large instances, all of the new template, all serving.
    assert_eq!(run.engine.updated_replicas(D), 4);
    assert_eq!(live.len(), 4);
    assert_eq!(serving(&run, 4), [Some(AWS); 4]);
    // Nothing left to do at the next evaluation.
    let did = evaluate(&mut run, secs(t + 60));
    assert!(did.provisions.is_empty() && did.terminates.is_empty(), "{did:?}");
}

#[test]
fn recreate_replaces_every_replica_at_once_and_no_rollout_keeps_them() {
    let (run, did) = rolled(engine::Rollout::Recreate);
    assert_eq!(did.terminates, [(0, vm(0)), (1, vm(1)), (2, vm(2)), (3, vm(3))]);
    assert_eq!(did.instances(), [4, 5, 6, 7]);
    assert!(did.provisions.iter().all(|p| p.3 == AWS_A_LARGE && p.5 == ProvisionReason::Update));
    assert_eq!(run.engine.updated_replicas(D), 4);

    // Without a rollout the replicas stay as they are; a new replica gets the new template.
    let mut run = Run::new(config("lowest-price"));
    let mut s = spec(2, small_cloud(0), active_passive(AWS, &[GCP], false, 0));
    let first = apply(&mut run, SimTime::ZERO, s.clone()).instances();
    up(&mut run, secs(30), &first);
    s.template = VmRequest { providers: CLOUDS, ..large(0) };
    s.replicas = 3;
    let did = apply(&mut run, secs(60), s);
    assert!(did.terminates.is_empty());
    assert_eq!(did.provisions.iter().map(|p| (p.1, p.3)).collect::<Vec<_>>(), [(vm(2), AWS_A_LARGE)]);
    assert_eq!(run.engine.updated_replicas(D), 1);
}

#[test]
fn a_rolling_update_that_cannot_progress_is_refused() {
    let mut run = Run::new(config("lowest-price"));
    let mut s = spec(2, small_cloud(0), active_passive(AWS, &[GCP], false, 0));
    s.rollout = Some(engine::Rollout::RollingUpdate { max_surge: 0, max_unavailable: 0 });
    let did = apply(&mut run, SimTime::ZERO, s);
    assert!(did.provisions.is_empty());
    assert!(
        matches!(&did.other[..], [Action::DeploymentRejected { message, .. }] if message.contains("max_surge or max_unavailable")),
        "{:?}",
        did.other
    );
}
