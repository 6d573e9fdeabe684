//! Properties over arbitrary event sequences: requests, running and failed reports (with any
//! cause, for live and long-gone instances alike), interruption notices, releases, region and
//! zone health flips, price changes and timers fired late or early.
//!
//! * (a) the same events give the same actions and bills, bit for bit;
//! * (b) every instance ever provisioned is, after each step, either still tracked (by a VM still
//!   tracked, which holds at most its serving instance and one replacement) or ended by exactly
//!   one `Terminate` or one `InstanceFailed` report, and billed exactly once when it ends;
//! * (c) no `Provision` targets an offer whose region or zone is unhealthy at that moment;
//! * (d) placement never takes the fleet's spend over `max_per_h`, nor a group's over its budget.
//!
//! Ops refer to instances and timers by position in what the engine has handed out so far, so
//! every sequence is meaningful however the engine answered earlier ones.

use std::collections::{BTreeMap, BTreeSet};

use engine::{
    Action, Bill, Commitment, CostModel, Engine, EngineConfig, Event, FailureCause, GroupId, InstanceId, Market,
    OfferId, PolicyConfig, RegionId, Resources, SimDuration, SimTime, Timer, VmId, VmRequest, ZoneId,
};
use proptest::prelude::*;

use crate::fixture::{AWS_A_SMALL, CLOUDS, catalog};

const SLACK: f64 = 1e-9;

/// Engine settings and cost rules of one case.
#[derive(Clone, Debug)]
struct Setup {
    policy: &'static str,
    replace_on_notice: bool,
    queue_timeout_s: u64,
    max_attempts: u32,
    max_per_h: Option<f64>,
    /// Budget of group 0, $/h.
    group_budget: Option<f64>,
    /// Two reserved O0 instances at $0.02/h each.
    reserved: bool,
}

impl Setup {
    fn engine(&self) -> Engine {
        let commitments = if self.reserved {
            vec![Commitment::Reserved { offer: AWS_A_SMALL, count: 2, fee_per_h: 0.02 }]
        } else {
            Vec::new()
        };
        let cost = CostModel { commitments, max_per_h: self.max_per_h, ..CostModel::default() };
        let cfg = EngineConfig {
            policy: PolicyConfig::default_for(self.policy).expect("listed policy name"),
            replace_on_notice: self.replace_on_notice,
            queue_timeout: SimDuration::from_secs(self.queue_timeout_s),
            max_attempts: self.max_attempts,
            group_budgets: self.group_budget.map(|b| (0, b)).into_iter().collect(),
            ..EngineConfig::default()
        };
        Engine::new(catalog(), cost, cfg).expect("valid fixture settings")
    }
}

/// One step of a case, before it is resolved against what the engine has done.
#[derive(Clone, Debug)]
enum Op {
    Request {
        vm: u64,
        shape: u8,
        spot: bool,
        group: Option<u32>,
        max_price: Option<f64>,
    },
    Running(usize),
    Failed(usize, FailureCause),
    Notice(usize, u64),
    Release(u64),
    Region(u16, bool),
    Zone(u16, bool),
    /// A market's price times `factor`.
    Price(u32, bool, f64),
    /// Fire one of the outstanding timers (at its time, or now if that has passed).
    Timer(usize),
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop::sample::select(PolicyConfig::NAMES.to_vec()),
        any::<bool>(),
        prop_oneof![Just(0u64), Just(60)],
        1u32..4,
        prop::option::of(prop_oneof![Just(0.1), Just(0.3), Just(1.0)]),
        prop::option::of(prop_oneof![Just(0.1), Just(0.25)]),
        any::<bool>(),
    )
        .prop_map(
            |(policy, replace_on_notice, queue_timeout_s, max_attempts, max_per_h, group_budget, reserved)| Setup {
                policy,
                replace_on_notice,
                queue_timeout_s,
                max_attempts,
                max_per_h,
                group_budget,
                reserved,
            },
        )
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
    let request =
        (0u64..8, 0u8..4, any::<bool>(), prop::option::of(0u32..3), prop::option::weighted(0.2, 0.02f64..0.3))
            .prop_map(|(vm, shape, spot, group, max_price)| Op::Request { vm, shape, spot, group, max_price });
    prop_oneof![
        4 => request,
        4 => (0usize..64).prop_map(Op::Running),
        3 => (0usize..64, cause()).prop_map(|(i, c)| Op::Failed(i, c)),
        2 => (0usize..64, 0u64..300).prop_map(|(i, lead)| Op::Notice(i, lead)),
        2 => (0u64..8).prop_map(Op::Release),
        1 => (0u16..4, any::<bool>()).prop_map(|(r, h)| Op::Region(r, h)),
        1 => (0u16..7, any::<bool>()).prop_map(|(z, h)| Op::Zone(z, h)),
        1 => (0u32..9, any::<bool>(), 0.25f64..2.0).prop_map(|(o, s, f)| Op::Price(o, s, f)),
        2 => (0usize..64).prop_map(Op::Timer),
    ]
}

/// Steps as (milliseconds since the previous step, op).
fn steps() -> impl Strategy<Value = Vec<(u64, Op)>> {
    prop::collection::vec((0u64..120_000, op()), 1..60)
}

fn request(vm: u64, shape: u8, spot: bool, group: Option<u32>, max_price: Option<f64>) -> VmRequest {
    let (resources, providers) = match shape {
        0 => (Resources { vcpu: 2, memory_mib: 4096, gpu: 0 }, 0),
        1 => (Resources { vcpu: 2, memory_mib: 4096, gpu: 0 }, CLOUDS),
        2 => (Resources { vcpu: 4, memory_mib: 16384, gpu: 0 }, 0),
        _ => (Resources { vcpu: 3, memory_mib: 8192, gpu: 0 }, 1 << engine::Provider::Onprem.index()),
    };
    VmRequest {
        providers,
        spot_allowed: spot,
        group: group.map(GroupId),
        max_price_per_h: max_price,
        ..VmRequest::new(VmId(vm), resources)
    }
}

/// What one case did: the concrete events fed, the actions of each and the bills, in order.
#[derive(Debug, Default)]
struct Trace {
    events: Vec<(SimTime, Event)>,
    actions: Vec<Vec<Action>>,
    bills: Vec<Bill>,
}

/// The invariants, checked after every step.
struct Checker {
    max_per_h: Option<f64>,
    group_budgets: BTreeMap<GroupId, f64>,
    /// Provisioned and neither terminated nor reported failed.
    live: BTreeSet<InstanceId>,
    /// Terminated by the engine or reported failed while live.
    ended: BTreeSet<InstanceId>,
    /// Ended without a bill: create calls that failed.
    unbilled: BTreeSet<InstanceId>,
    billed: BTreeSet<InstanceId>,
    /// The VM of every instance provisioned.
    vm_of: BTreeMap<InstanceId, VmId>,
    /// Live instances reported running.
    running: BTreeSet<InstanceId>,
    /// Every instance ever provisioned, in order (ops pick from it).
    known: Vec<InstanceId>,
    /// Timers set and not yet fired.
    timers: Vec<Timer>,
    group_of: BTreeMap<VmId, Option<GroupId>>,
    /// Whether any price has gone up: only placement is bound by the cap, so a price rise may
    /// lift the fleet over it without any action of the engine.
    price_rose: bool,
}

impl Checker {
    fn new(setup: &Setup) -> Self {
        Checker {
            max_per_h: setup.max_per_h,
            group_budgets: setup.group_budget.map(|b| (GroupId(0), b)).into_iter().collect(),
            live: BTreeSet::new(),
            ended: BTreeSet::new(),
            unbilled: BTreeSet::new(),
            billed: BTreeSet::new(),
            vm_of: BTreeMap::new(),
            running: BTreeSet::new(),
            known: Vec::new(),
            timers: Vec::new(),
            group_of: BTreeMap::new(),
            price_rose: false,
        }
    }

    /// The concrete event for `op` at `now`, and the time to feed it at; `None` if it refers to
    /// nothing yet.
    fn resolve(&mut self, op: &Op, now: SimTime, engine: &Engine, falling_prices: bool) -> Option<(SimTime, Event)> {
        let instance = |i: usize| (!self.known.is_empty()).then(|| self.known[i % self.known.len()]);
        let event = match *op {
            Op::Request { vm, shape, spot, group, max_price } => {
                Event::RequestArrived { request: request(vm, shape, spot, group, max_price) }
            }
            Op::Running(i) => Event::InstanceRunning { instance: instance(i)? },
            Op::Failed(i, cause) => Event::InstanceFailed { instance: instance(i)?, cause },
            Op::Notice(i, lead) => {
                Event::InterruptionNotice { instance: instance(i)?, at: now + SimDuration::from_secs(lead) }
            }
            Op::Release(vm) => Event::Released { vm: VmId(vm) },
            Op::Region(r, healthy) => Event::RegionHealth { region: RegionId(r), healthy },
            Op::Zone(z, healthy) => Event::ZoneHealth { zone: ZoneId(z), healthy },
            Op::Price(o, spot, factor) => {
                let market = if spot { Market::Spot } else { Market::OnDemand };
                let factor = if falling_prices { factor.min(1.0) } else { factor };
                let current = engine.snapshot().offers[o as usize].price(market).map_or(0.1, |p| p.price_per_h);
                Event::PriceChanged { offer: OfferId(o), market, price_per_h: current * factor }
            }
            Op::Timer(i) => {
                if self.timers.is_empty() {
                    return None;
                }
                let timer = self.timers.remove(i % self.timers.len());
                return Some((now.max(timer.at), Event::TimerFired { timer: timer.kind }));
            }
        };
        Some((now, event))
    }

    /// Bookkeeping for an event about to be handled.
    fn before(&mut self, event: &Event, engine: &Engine) {
        match event {
            Event::InstanceFailed { instance, cause } if self.live.remove(instance) => {
                // A create call that failed before the instance ran made nothing to bill.
                let never_existed = matches!(
                    cause,
                    FailureCause::InsufficientCapacity | FailureCause::ApiError | FailureCause::Throttled
                );
                if !self.running.remove(instance) && never_existed {
                    self.unbilled.insert(*instance);
                }
                self.ended.insert(*instance);
            }
            Event::InstanceRunning { instance } if self.live.contains(instance) => {
                self.running.insert(*instance);
            }
            Event::RequestArrived { request } if engine.vm_state(request.id).is_none() => {
                self.group_of.insert(request.id, request.group);
            }
            Event::PriceChanged { offer, market, price_per_h } => {
                let old = engine.snapshot().offers[offer.idx()].price(*market).map(|p| p.price_per_h);
                if old.is_some_and(|old| *price_per_h > old) {
                    self.price_rose = true;
                }
            }
            _ => {}
        }
    }

    /// Checks the invariants after `actions` came back at `now`; collects the bills.
    fn after(
        &mut self,
        engine: &mut Engine,
        now: SimTime,
        actions: &[Action],
        bills: &mut Vec<Bill>,
    ) -> Result<(), TestCaseError> {
        let snap = engine.snapshot();
        let mut groups_grown = BTreeSet::new();
        let mut provisioned = false;
        for action in actions {
            match action {
                Action::Provision { instance, vm, placement, .. } => {
                    prop_assert!(
                        !self.live.contains(instance) && !self.ended.contains(instance),
                        "{instance:?} handed out twice"
                    );
                    prop_assert!(engine.vm_state(*vm).is_some(), "provision for untracked {vm:?}");
                    let offer = &snap.catalog.offers[placement.offer.idx()];
                    prop_assert!(
                        snap.location_healthy(offer.region, offer.zone),
                        "(c) {instance:?} provisioned on {:?} in unhealthy region {:?} / zone {:?}",
                        placement.offer,
                        offer.region,
                        offer.zone
                    );
                    self.live.insert(*instance);
                    self.known.push(*instance);
                    self.vm_of.insert(*instance, *vm);
                    provisioned = true;
                    if let Some(Some(g)) = self.group_of.get(vm) {
                        groups_grown.insert(*g);
                    }
                }
                Action::Terminate { instance, .. } => {
                    prop_assert!(
                        self.live.remove(instance),
                        "(b) {instance:?} terminated but not alive (double delete)"
                    );
                    self.running.remove(instance);
                    self.ended.insert(*instance);
                }
                Action::SetTimer { timer } => self.timers.push(*timer),
                Action::Reject { vm, .. } => {
                    prop_assert!(engine.vm_state(*vm).is_none(), "rejected {vm:?} still tracked")
                }
                Action::FailOver { .. }
                | Action::DeploymentRejected { .. }
                | Action::Migrated { .. }
                | Action::Restoring { .. }
                | Action::BackupCompleted { .. } => {}
            }
        }

        // (b) the engine tracks exactly the live instances; every ended one is billed once.
        let tracked: BTreeSet<InstanceId> = engine.bill_open_instances(now).iter().map(|b| b.instance).collect();
        prop_assert_eq!(&tracked, &self.live, "(b) tracked instances differ from live ones");
        prop_assert_eq!(engine.tracked_instances(), self.live.len());
        // ... and each belongs to a VM still tracked, which holds at most two (serving and its
        // replacement), at most one of them up: anything more is an instance nobody will delete.
        let mut per_vm: BTreeMap<VmId, (usize, usize)> = BTreeMap::new();
        for i in &self.live {
            let vm = self.vm_of[i];
            prop_assert!(engine.vm_state(vm).is_some(), "(b) {i:?} outlives its {vm:?}");
            let e = per_vm.entry(vm).or_default();
            e.0 += 1;
            e.1 += usize::from(self.running.contains(i));
        }
        for (vm, (n, up)) in per_vm {
            prop_assert!(n <= 2 && up <= 1, "(b) {vm:?} holds {n} instances, {up} of them running");
        }
        for bill in engine.take_bills() {
            prop_assert!(self.ended.contains(&bill.instance), "(b) bill for {:?}, which has not ended", bill.instance);
            prop_assert!(self.billed.insert(bill.instance), "(b) {:?} billed twice", bill.instance);
            prop_assert!(bill.usd.is_finite() && bill.usd >= 0.0, "bill {bill:?}");
            bills.push(bill);
        }
        let billable: BTreeSet<InstanceId> = self.ended.difference(&self.unbilled).copied().collect();
        prop_assert_eq!(&self.billed, &billable, "(b) ended instances without a bill, or failed creates billed");

        // (d) the fleet cap and group budgets.
        let snap = engine.snapshot();
        if let Some(cap) = self.max_per_h {
            let rate = snap.spend_rate();
            if provisioned || !self.price_rose {
                prop_assert!(rate <= cap + SLACK, "(d) fleet spends {rate} $/h over the cap {cap}");
            }
        }
        for g in groups_grown {
            if let Some(budget) = self.group_budgets.get(&g) {
                let rate = snap.group_spend_rate(g);
                prop_assert!(rate <= budget + SLACK, "(d) group {g:?} spends {rate} $/h over its budget {budget}");
            }
        }
        Ok(())
    }
}

/// Runs `steps` through a fresh engine, checking the invariants after each one.
fn drive(setup: &Setup, steps: &[(u64, Op)], falling_prices: bool) -> Result<Trace, TestCaseError> {
    let mut engine = setup.engine();
    let mut check = Checker::new(setup);
    let mut trace = Trace::default();
    let mut now = SimTime::ZERO;
    for (dt, op) in steps {
        now += SimDuration::from_millis(*dt);
        let Some((at, event)) = check.resolve(op, now, &engine, falling_prices) else { continue };
        now = at;
        check.before(&event, &engine);
        let mut actions = Vec::new();
        engine.handle(now, event.clone(), &mut actions);
        check.after(&mut engine, now, &actions, &mut trace.bills)?;
        trace.events.push((now, event));
        trace.actions.push(actions);
    }
    Ok(trace)
}

/// Feeds recorded events to a fresh engine: its actions per event and its bills.
fn replay(setup: &Setup, events: &[(SimTime, Event)]) -> (Vec<Vec<Action>>, Vec<Bill>) {
    let mut engine = setup.engine();
    let mut actions = Vec::with_capacity(events.len());
    let mut bills = Vec::new();
    for (now, event) in events {
        let mut out = Vec::new();
        engine.handle(*now, event.clone(), &mut out);
        actions.push(out);
        bills.extend(engine.take_bills());
    }
    (actions, bills)
}

proptest! {
    /// (a) Same events, same actions and bills; (b), (c), (d) hold along the way.
    #[test]
    fn same_events_give_same_actions_and_bills(setup in setup(), steps in steps()) {
        let first = drive(&setup, &steps, false)?;
        let (actions, bills) = replay(&setup, &first.events);
        prop_assert_eq!(actions, first.actions);
        prop_assert_eq!(bills, first.bills);
    }

    /// (b) and (c) under a storm: no leaked instance, no double delete, never an unhealthy target.
    #[test]
    fn instances_are_never_leaked_or_deleted_twice(setup in setup(), steps in prop::collection::vec((0u64..5_000, op()), 1..100)) {
        drive(&setup, &steps, false)?;
    }

    /// (d) With a cap and no price ever rising, the fleet's spend rate never exceeds the cap.
    #[test]
    fn fleet_spend_never_exceeds_the_cap(
        cap in prop_oneof![Just(0.05), Just(0.1), Just(0.2), Just(0.3)],
        setup_rest in setup(),
        steps in steps(),
    ) {
        let setup = Setup { max_per_h: Some(cap), ..setup_rest };
        drive(&setup, &steps, true)?;
    }
}
