//! The engine: a deterministic state machine. The caller feeds time-stamped [`Event`]s and
//! carries out the [`Action`]s that come back; same events, same actions, bit for bit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cost::CostModel;
use crate::deploy::{self, Deployment, DeploymentSpec, MoveReason, Observation, Replace, ReplicaView, Slot};
use crate::dr::BackupKind;
use crate::migration::{self, MigrationKind, MigrationPlan, MigrationPolicy};
use crate::model::{
    Catalog, GroupId, InstanceId, Market, OfferId, Placement, RegionId, Timer, TimerKind, VmId, VmRequest, VmState,
    ZoneId,
};
use crate::policy::{Decision, PlacementPolicy, PolicyConfig, Scores};
use crate::snapshot::{Charge, DetHashMap, RejectReason, Snapshot};
use crate::time::{SimDuration, SimTime};
use crate::{Error, Result};

/// Engine settings besides the catalog and the cost model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// The placement policy.
    pub policy: PolicyConfig,
    /// How long an offer's market is avoided after it failed for lack of capacity.
    pub capacity_backoff: SimDuration,
    /// How long a spot market is avoided after one of its instances was interrupted.
    pub spot_block: SimDuration,
    /// Placement attempts per VM before it is rejected (failed provisioning counts).
    pub max_attempts: u32,
    /// First retry delay after an API error or throttling; doubles per attempt.
    pub retry_backoff: SimDuration,
    /// Longest retry delay.
    pub retry_backoff_max: SimDuration,
    /// How long a request with no feasible candidate may wait for one before it is rejected.
    /// Zero rejects at once.
    pub queue_timeout: SimDuration,
    /// On a spot interruption notice, start a replacement at once rather than when the instance dies.
    pub replace_on_notice: bool,
    /// Half-life of the per-offer interruption-rate estimate.
    pub interruption_half_life: SimDuration,
    /// Hard spend caps per group (deployment), $/h.
    pub group_budgets: BTreeMap<u32, f64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            policy: PolicyConfig::default(),
            capacity_backoff: SimDuration::from_secs(300),
            spot_block: SimDuration::from_secs(900),
            max_attempts: 5,
            retry_backoff: SimDuration::from_secs(10),
            retry_backoff_max: SimDuration::from_secs(300),
            queue_timeout: SimDuration::ZERO,
            replace_on_notice: true,
            interruption_half_life: SimDuration::from_secs(3600),
            group_budgets: BTreeMap::new(),
        }
    }
}

/// Why a cloud reports an instance gone or never started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureCause {
    /// The offer had no capacity (EC2 `InsufficientInstanceCapacity`, GCE `ZONE_RESOURCE_POOL_EXHAUSTED`).
    InsufficientCapacity,
    /// The API answered with an error.
    ApiError,
    /// The API throttled the call.
    Throttled,
    /// The zone or region went down.
    Outage,
    /// The spot instance was reclaimed.
    Interrupted,
    /// The instance died on its own.
    Crashed,
}

/// Something that happened, fed to [`Engine::handle`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A VM is wanted.
    RequestArrived {
        /// The request.
        request: VmRequest,
    },
    /// Its owner no longer wants the VM.
    Released {
        /// Which.
        vm: VmId,
    },
    /// An instance the engine asked for is up.
    InstanceRunning {
        /// Which.
        instance: InstanceId,
    },
    /// An instance failed to start or died.
    InstanceFailed {
        /// Which.
        instance: InstanceId,
        /// Why.
        cause: FailureCause,
    },
    /// A spot instance will be reclaimed at `at`.
    InterruptionNotice {
        /// Which.
        instance: InstanceId,
        /// When it will be reclaimed.
        at: SimTime,
    },
    /// A region became healthy or unhealthy.
    RegionHealth {
        /// Which.
        region: RegionId,
        /// Now healthy?
        healthy: bool,
    },
    /// A zone became healthy or unhealthy.
    ZoneHealth {
        /// Which.
        zone: ZoneId,
        /// Now healthy?
        healthy: bool,
    },
    /// A market price changed.
    PriceChanged {
        /// Which offer.
        offer: OfferId,
        /// Which market.
        market: Market,
        /// New price, $/h (per vCPU-hour for pools).
        price_per_h: f64,
    },
    /// A timer the engine set has fired.
    TimerFired {
        /// The timer's purpose.
        timer: TimerKind,
    },
    /// A deployment is created or its spec replaced.
    DeploymentApplied {
        /// The spec.
        spec: Box<DeploymentSpec>,
    },
    /// A deployment is deleted: its VMs go.
    DeploymentRemoved {
        /// Which.
        deployment: GroupId,
    },
    /// Monitoring figures of a deployment, for its triggers.
    DeploymentMetrics {
        /// Which.
        deployment: GroupId,
        /// CPU utilisation, 0..1.
        cpu: Option<f64>,
        /// p99 latency, ms.
        latency_p99_ms: Option<f64>,
        /// Provider API error rate, 0..1.
        api_error_rate: Option<f64>,
    },
    /// How many replicas a burst deployment's demand needs now.
    DeploymentDemand {
        /// Which.
        deployment: GroupId,
        /// Replicas.
        replicas: u32,
    },
    /// An operator asks an active-passive deployment to fail over (to `to`, or the next healthy
    /// location); the cooldown does not apply, health and capacity do.
    ManualFailover {
        /// Which.
        deployment: GroupId,
        /// Where to, if the operator says.
        to: Option<RegionId>,
    },
}

/// Why an instance is being provisioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProvisionReason {
    /// The VM's first placement.
    Initial,
    /// Another try after a failed provisioning.
    Retry,
    /// The VM lost its instance (outage, crash, interruption) and is re-placed elsewhere.
    Failover,
    /// A spot interruption notice arrived; a replacement starts before the instance dies.
    Replacement,
    /// A deployment's strategy moved the VM to another location (failover, burst, cost).
    Relocation,
    /// A rollout replaces the VM's instance, placed for an earlier template of its deployment.
    Update,
}

/// What the engine asks the caller to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Create an instance.
    Provision {
        /// New instance id.
        instance: InstanceId,
        /// For which VM.
        vm: VmId,
        /// Where.
        placement: Placement,
        /// Why.
        reason: ProvisionReason,
        /// Why there.
        scores: Scores,
    },
    /// Delete an instance.
    Terminate {
        /// Which.
        instance: InstanceId,
        /// Of which VM.
        vm: VmId,
    },
    /// Fire [`Event::TimerFired`] at `timer.at`.
    SetTimer {
        /// The timer.
        timer: Timer,
    },
    /// The VM cannot be placed and is given up.
    Reject {
        /// Which.
        vm: VmId,
        /// Why.
        reason: RejectReason,
    },
    /// A deployment moves from one location to another (its VMs follow with provisions and
    /// terminations). Recorded for the decision log.
    FailOver {
        /// Which deployment.
        deployment: GroupId,
        /// From.
        from: RegionId,
        /// To.
        to: RegionId,
        /// Why.
        reason: MoveReason,
    },
    /// A deployment spec was refused.
    DeploymentRejected {
        /// Which.
        deployment: GroupId,
        /// What is wrong.
        message: String,
    },
    /// A replica's migration finished: it now runs at `to`. Recorded for reports; the instances
    /// were already provisioned and terminated by their own actions.
    Migrated {
        /// Which deployment.
        deployment: GroupId,
        /// Which replica.
        vm: VmId,
        /// How it moved.
        kind: MigrationKind,
        /// From.
        from: RegionId,
        /// To.
        to: RegionId,
        /// When the migration started.
        started: SimTime,
        /// Service lost: the plan's pause (live, warm), or from the source's stop until the target
        /// ran (cold).
        downtime: SimDuration,
        /// Data sent, GiB.
        transferred_gib: f64,
        /// Egress billed for it, $ (not part of any instance's bill).
        egress_usd: f64,
        /// How long source and target were both billed.
        overlap: SimDuration,
    },
    /// A replica lost with its location is restored from the newest backup before it is placed
    /// again (disaster recovery).
    Restoring {
        /// Which deployment.
        deployment: GroupId,
        /// Which replica.
        vm: VmId,
        /// The region it was lost with.
        from: RegionId,
        /// The restore point: the moment whose data comes back (`None`: nothing restorable, the
        /// replica starts empty at once).
        recovery_point: Option<SimTime>,
        /// Copying the backup chain back.
        restore_time: SimDuration,
    },
    /// A deployment's backup completed.
    BackupCompleted {
        /// Which deployment.
        deployment: GroupId,
        /// Its restore point (when it started).
        at: SimTime,
        /// Full or incremental.
        kind: BackupKind,
        /// How long it ran.
        duration: SimDuration,
    },
}

/// How many of `slots` are serving: running, on an instance at a healthy region and zone (one the
/// engine knows to be down serves nobody, even before the cloud reports it lost).
fn serving_replicas(
    slots: &[Slot],
    vms: &DetHashMap<VmId, VmEntry>,
    instances: &DetHashMap<InstanceId, InstanceEntry>,
    snap: &Snapshot,
) -> usize {
    slots
        .iter()
        .filter(|s| {
            let Some(e) = vms.get(&s.vm).filter(|e| e.state == VmState::Running) else { return false };
            e.active.and_then(|i| instances.get(&i)).is_some_and(|i| {
                let offer = &snap.catalog.offers[i.charge.offer.idx()];
                snap.location_healthy(offer.region, offer.zone)
            })
        })
        .count()
}

/// The final bill of one instance, available from [`Engine::take_bills`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bill {
    /// Which instance.
    pub instance: InstanceId,
    /// Of which VM.
    pub vm: VmId,
    /// Where it ran.
    pub offer: OfferId,
    /// In which market.
    pub market: Market,
    /// From.
    pub start: SimTime,
    /// To.
    pub end: SimTime,
    /// Dollars, after billing granularity and minimum charge.
    pub usd: f64,
}

#[derive(Clone, Debug)]
struct VmEntry {
    request: VmRequest,
    state: VmState,
    /// The instance serving, or being provisioned to serve.
    active: Option<InstanceId>,
    /// A replacement being provisioned while `active` still runs (after an interruption notice).
    replacement: Option<InstanceId>,
    attempts: u32,
    first_wait: Option<SimTime>,
    /// Set when the VM lost its serving instance; next placement is a failover.
    lost: bool,
    /// The deployment it belongs to: such VMs are never rejected, they wait for the strategy.
    deployment: Option<GroupId>,
    /// A migration or a restore under way.
    moving: Option<Move>,
}

/// A replica's data on the move.
#[derive(Clone, Copy, Debug)]
enum Move {
    /// A migration. Live and warm: the target (the VM's `replacement`) is provisioned, then the
    /// data moves for `transfer` while the source serves, then the cut-over. Cold: the source is
    /// stopped, its snapshot copies for `transfer`, then the target is provisioned.
    Migration {
        plan: MigrationPlan,
        transfer: SimDuration,
        from: RegionId,
        to: RegionId,
        started: SimTime,
        egress_usd: f64,
        copied: bool,
    },
    /// Copying the backup chain back after the loss of the VM's location; placed when `copied`.
    Restore { copied: bool },
}

impl VmEntry {
    /// A VM waiting for its first placement.
    fn new(request: VmRequest, deployment: Option<GroupId>) -> Self {
        VmEntry {
            request,
            state: VmState::Pending,
            active: None,
            replacement: None,
            attempts: 0,
            first_wait: None,
            lost: false,
            deployment,
            moving: None,
        }
    }
}

#[derive(Clone, Debug)]
struct InstanceEntry {
    vm: VmId,
    charge: Charge,
    running: bool,
    /// The revision of its deployment's template it was placed for (0 outside deployments).
    revision: u32,
}

/// The policy engine.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    policy: Box<dyn PlacementPolicy>,
    snapshot: Snapshot,
    vms: DetHashMap<VmId, VmEntry>,
    instances: DetHashMap<InstanceId, InstanceEntry>,
    next_instance: u64,
    bills: Vec<Bill>,
    deployments: BTreeMap<GroupId, Deployment>,
}

impl Engine {
    /// An engine over `catalog`, priced by `cost`.
    pub fn new(catalog: Catalog, cost: CostModel, config: EngineConfig) -> Result<Self> {
        config.policy.validate().map_err(|m| Error::InvalidConfig(format!("policy {}: {m}", config.policy.name())))?;
        if config.max_attempts == 0 {
            return Err(Error::InvalidConfig("max_attempts must be at least 1".into()));
        }
        for (g, b) in &config.group_budgets {
            if !(b.is_finite() && *b >= 0.0) {
                return Err(Error::InvalidConfig(format!("budget of group {g} must be a number >= 0")));
            }
        }
        if let Some(cap) = cost.max_per_h
            && !(cap.is_finite() && cap >= 0.0)
        {
            return Err(Error::InvalidConfig("max_per_h must be a number >= 0".into()));
        }
        let mut snapshot = Snapshot::new(catalog, cost);
        snapshot.interruption_half_life = config.interruption_half_life;
        snapshot.group_budgets = config.group_budgets.iter().map(|(g, b)| (GroupId(*g), *b)).collect();
        if let Some(fit) = config.policy.fit() {
            snapshot.prepare_fit(fit);
        }
        Ok(Engine {
            policy: config.policy.build(),
            config,
            snapshot,
            vms: DetHashMap::default(),
            instances: DetHashMap::default(),
            next_instance: 0,
            bills: Vec::new(),
            deployments: BTreeMap::new(),
        })
    }

    /// The engine's view of the world.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
    /// Its settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
    /// The state of a VM the engine still tracks.
    pub fn vm_state(&self, vm: VmId) -> Option<VmState> {
        self.vms.get(&vm).map(|e| e.state)
    }
    /// VMs tracked (not yet released or rejected).
    pub fn tracked_vms(&self) -> usize {
        self.vms.len()
    }
    /// Instances tracked (asked for and not yet deleted or lost).
    pub fn tracked_instances(&self) -> usize {
        self.instances.len()
    }
    /// Bills of instances that ended since the last call.
    pub fn take_bills(&mut self) -> Vec<Bill> {
        std::mem::take(&mut self.bills)
    }

    /// Handles one event at `now`, appending the resulting actions to `out`.
    /// Events about unknown VMs or instances (already gone) are ignored, as a real cloud's late
    /// or duplicated notifications must be.
    pub fn handle(&mut self, now: SimTime, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::RequestArrived { request } => {
                let vm = request.id;
                // Ids with the top bit set belong to deployments' replicas.
                if self.vms.contains_key(&vm) || deploy::is_deployment_vm(vm) {
                    return;
                }
                self.vms.insert(vm, VmEntry::new(request, None));
                self.place(vm, now, ProvisionReason::Initial, out);
            }
            Event::Released { vm } => {
                let Some(entry) = self.vms.remove(&vm) else { return };
                for inst in [entry.active, entry.replacement].into_iter().flatten() {
                    self.end_instance(inst, now);
                    out.push(Action::Terminate { instance: inst, vm });
                }
            }
            Event::InstanceRunning { instance } => self.on_running(instance, now, out),
            Event::InstanceFailed { instance, cause } => self.on_failed(instance, cause, now, out),
            Event::InterruptionNotice { instance, at } => self.on_notice(instance, at, now, out),
            Event::RegionHealth { region, healthy } => {
                if let Some(h) = self.snapshot.region_healthy.get_mut(region.idx()) {
                    *h = healthy;
                }
            }
            Event::ZoneHealth { zone, healthy } => {
                if let Some(h) = self.snapshot.zone_healthy.get_mut(zone.idx()) {
                    *h = healthy;
                }
            }
            Event::PriceChanged { offer, market, price_per_h } => {
                if price_per_h.is_finite() && price_per_h >= 0.0 {
                    self.snapshot.set_price(offer, market, price_per_h, now);
                }
            }
            Event::TimerFired { timer: TimerKind::Retry(vm) } => {
                let pending = self.vms.get(&vm).is_some_and(|e| e.active.is_none());
                if pending {
                    let reason = if self.vms.get(&vm).is_some_and(|e| e.lost) {
                        ProvisionReason::Failover
                    } else {
                        ProvisionReason::Retry
                    };
                    self.place(vm, now, reason, out);
                }
            }
            Event::TimerFired { timer: TimerKind::Deployment(id) } => {
                if self.deployments.contains_key(&id) {
                    self.evaluate_deployment(id, now, true, out);
                }
            }
            Event::TimerFired { timer: TimerKind::Transfer(vm) } => self.on_transfer_done(vm, now, out),
            Event::TimerFired { timer: TimerKind::Backup(id) } => self.on_backup_timer(id, now, out),
            Event::DeploymentApplied { spec } => self.apply_deployment(*spec, now, out),
            Event::DeploymentRemoved { deployment } => self.remove_deployment(deployment, now, out),
            Event::DeploymentMetrics { deployment, cpu, latency_p99_ms, api_error_rate } => {
                if let Some(d) = self.deployments.get_mut(&deployment) {
                    d.metrics = deploy::Metrics { cpu, latency_p99_ms, api_error_rate };
                }
            }
            Event::DeploymentDemand { deployment, replicas } => {
                if let Some(d) = self.deployments.get_mut(&deployment) {
                    d.demand = replicas.min(0xff_ffff);
                }
            }
            Event::ManualFailover { deployment, to } => self.manual_failover(deployment, to, now, out),
        }
    }

    /// Bills every instance still running as if it ended at `now` (the end of a simulation),
    /// without terminating anything. Returns the bills.
    pub fn bill_open_instances(&mut self, now: SimTime) -> Vec<Bill> {
        let mut ids: Vec<InstanceId> = self.instances.keys().copied().collect();
        ids.sort_unstable();
        let mut bills = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = self.instances.get(&id) {
                let usd = self.snapshot.bill(&e.charge, now);
                bills.push(Bill {
                    instance: id,
                    vm: e.vm,
                    offer: e.charge.offer,
                    market: e.charge.market,
                    start: e.charge.start,
                    end: now,
                    usd,
                });
            }
        }
        bills
    }

    /// A deployment's state, if it exists.
    pub fn deployment(&self, id: GroupId) -> Option<&Deployment> {
        self.deployments.get(&id)
    }

    /// Deployments, by id.
    pub fn deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.deployments.values()
    }

    /// The region where a VM is being served from, if it has a running instance.
    pub fn vm_serving_region(&self, vm: VmId) -> Option<RegionId> {
        let e = self.vms.get(&vm)?;
        if e.state != VmState::Running {
            return None;
        }
        self.instance_region(e.active?)
    }

    /// The region an instance runs in, if the engine tracks it.
    pub fn instance_region(&self, instance: InstanceId) -> Option<RegionId> {
        let e = self.instances.get(&instance)?;
        Some(self.snapshot.catalog.offers[e.charge.offer.idx()].region)
    }

    fn apply_deployment(&mut self, spec: DeploymentSpec, now: SimTime, out: &mut Vec<Action>) {
        let id = spec.id;
        if let Err(message) = spec.validate(self.snapshot.catalog.regions.len()) {
            out.push(Action::DeploymentRejected { deployment: id, message });
            return;
        }
        match spec.max_cost_per_h {
            Some(cap) => self.snapshot.group_budgets.insert(id, cap),
            None => self.snapshot.group_budgets.remove(&id),
        };
        let fresh = !self.deployments.contains_key(&id);
        match self.deployments.get_mut(&id) {
            Some(d) => {
                d.triggers = vec![deploy::TriggerState::default(); spec.triggers.len()];
                d.demand = d.demand.max(spec.replicas);
                if d.spec.template != spec.template {
                    // A new template: placements from now on use it; the rollout, if the spec
                    // has one, replaces the replicas placed for the old one.
                    d.revision += 1;
                    for slot in &d.slots {
                        if let Some(e) = self.vms.get_mut(&slot.vm) {
                            let mut r = spec.template.clone();
                            r.id = e.request.id;
                            r.group = e.request.group;
                            r.regions = std::mem::take(&mut e.request.regions);
                            r.spot_allowed = e.request.spot_allowed && spec.template.spot_allowed;
                            e.request = r;
                        }
                    }
                }
                d.spec = spec;
            }
            None => {
                let mut d = Deployment::new(spec);
                d.moved_at = now;
                self.deployments.insert(id, d);
            }
        }
        // Backups start on their schedule (a spec that gains disaster recovery starts it now).
        if let Some(d) = self.deployments.get_mut(&id) {
            match &d.spec.disaster_recovery {
                Some(b) if d.next_backup.is_none() => {
                    d.next_backup = b.schedule.next_after(now);
                    if let Some(at) = d.next_backup {
                        out.push(Action::SetTimer { timer: Timer { at, kind: TimerKind::Backup(id) } });
                    }
                }
                Some(_) => {}
                None => d.next_backup = None,
            }
        }
        // A new deployment starts its evaluation timer; a replaced spec keeps the one it has.
        self.evaluate_deployment(id, now, fresh, out);
    }

    fn remove_deployment(&mut self, id: GroupId, now: SimTime, out: &mut Vec<Action>) {
        let Some(d) = self.deployments.remove(&id) else { return };
        self.snapshot.group_budgets.remove(&id);
        for slot in d.slots {
            self.handle(now, Event::Released { vm: slot.vm }, out);
        }
    }

    fn manual_failover(&mut self, id: GroupId, to: Option<RegionId>, now: SimTime, out: &mut Vec<Action>) {
        let Some(d) = self.deployments.get_mut(&id) else { return };
        let deploy::Strategy::ActivePassive(c) = d.spec.strategy.clone() else { return };
        let locs = c.locations();
        let current = locs[d.active.min(locs.len() - 1)];
        // Health and capacity apply: the target must be able to take every replica, unless none
        // serves where they are (then as many as it can).
        let serving = serving_replicas(&d.slots, &self.vms, &self.instances, &self.snapshot);
        let partial = serving == 0 || !Deployment::location_healthy(&self.snapshot, current);
        let target = match to {
            Some(r) => locs.iter().position(|l| *l == r).filter(|&i| {
                i != d.active
                    && d.location_ok(&self.snapshot, r, now)
                    && deploy::pick_target(d, &[r], usize::MAX, &self.snapshot, now, partial).is_some()
            }),
            None => deploy::pick_target(d, &locs, d.active, &self.snapshot, now, partial),
        };
        let Some(i) = target else { return };
        d.active = i;
        d.last_failover = Some(now);
        d.settled = false;
        d.moved_at = now;
        d.avoid.insert(current, now + d.spec.cooldown);
        for t in &mut d.triggers {
            t.reset();
        }
        out.push(Action::FailOver { deployment: id, from: current, to: locs[i], reason: MoveReason::Manual });
        let locations = vec![locs[i]; d.spec.replicas as usize];
        self.reconcile(id, &locations, now, out);
    }

    /// Evaluates a deployment: observes it, runs its triggers and strategy, reconciles its VMs to
    /// the plan, and sets the timer for the next evaluation.
    fn evaluate_deployment(&mut self, id: GroupId, now: SimTime, schedule_next: bool, out: &mut Vec<Action>) {
        let Some(d) = self.deployments.get_mut(&id) else { return };
        // Observe: the share of replicas serving (wherever they run: a replica on its way to a new
        // location keeps serving from the old one until its replacement is up).
        let running = serving_replicas(&d.slots, &self.vms, &self.instances, &self.snapshot);
        d.serving = running as u32;
        let obs = Observation {
            availability: if d.spec.replicas == 0 { 1.0 } else { running as f64 / d.spec.replicas as f64 },
            cpu: d.metrics.cpu,
            latency_p99_ms: d.metrics.latency_p99_ms,
            api_error_rate: d.metrics.api_error_rate,
            spend_per_h: self.snapshot.group_spend_rate(id),
            cap_per_h: d.spec.max_cost_per_h,
        };
        // Triggers watch a deployment that has settled: fully up once since it was created or last
        // moved, or given twice its longest trigger window to get there.
        if obs.availability >= 1.0 {
            d.settled = true;
        }
        let longest = d.spec.triggers.iter().map(|t| t.duration).max().unwrap_or(SimDuration::ZERO);
        let settled = d.settled || now.since(d.moved_at) >= SimDuration(longest.as_millis().saturating_mul(2));
        let mut fired = None;
        for (t, st) in d.spec.triggers.iter().zip(d.triggers.iter_mut()).filter(|_| settled) {
            // Every trigger sees every observation (their windows must stay filled).
            if st.evaluate(t, &obs, now) && fired.is_none() {
                fired = Some(MoveReason::Trigger(t.kind.name().to_owned()));
            }
        }
        // Spot recovery: replicas whose on-demand period is over may use spot again.
        let prices_wanted = matches!(d.spec.strategy, deploy::Strategy::CostOptimized(_));
        for slot in &mut d.slots {
            if slot.on_demand_until.is_some_and(|t| t <= now) {
                slot.on_demand_until = None;
                slot.back_to_spot = true;
            }
            // What each replica's instance costs now: only the cost-optimized strategy asks.
            if !prices_wanted {
                continue;
            }
            slot.price_per_h =
                self.vms.get(&slot.vm).and_then(|e| e.active).and_then(|i| self.instances.get(&i)).map(|e| {
                    let offer = &self.snapshot.catalog.offers[e.charge.offer.idx()];
                    let unit =
                        self.snapshot.offers[offer.id.idx()].price(e.charge.market).map_or(0.0, |p| p.price_per_h);
                    self.snapshot.catalog.price_for(offer, unit, &e.charge.resources)
                });
        }
        let plan = d.plan(&self.snapshot, fired, now);
        if let Some((from, to, reason)) = plan.failover.clone() {
            out.push(Action::FailOver { deployment: id, from, to, reason });
        }
        let every = d.spec.evaluate_every;
        self.reconcile(id, &plan.locations, now, out);
        if schedule_next {
            out.push(Action::SetTimer { timer: Timer { at: now + every, kind: TimerKind::Deployment(id) } });
        }
    }

    /// Brings a deployment's VMs to `locations` (one per slot): creates missing replicas, moves
    /// misplaced ones, releases surplus ones, and retries those still waiting for a placement.
    fn reconcile(&mut self, id: GroupId, locations: &[RegionId], now: SimTime, out: &mut Vec<Action>) {
        let Some(d) = self.deployments.get_mut(&id) else { return };
        // Surplus slots go first, so that their capacity and budget are free for the rest.
        let surplus: Vec<VmId> = d.slots.iter().skip(locations.len()).map(|s| s.vm).collect();
        d.slots.truncate(locations.len());
        let template = d.spec.template.clone();
        let mut work: Vec<(VmId, RegionId, bool, bool)> = Vec::with_capacity(locations.len());
        for (i, loc) in locations.iter().enumerate() {
            if i >= d.slots.len() {
                d.slots.push(Slot {
                    vm: deploy::slot_vm(id, i as u32),
                    location: *loc,
                    spot_failures: 0,
                    on_demand_until: None,
                    back_to_spot: false,
                    price_per_h: None,
                });
            }
            let slot = &mut d.slots[i];
            slot.location = *loc;
            let spot = template.spot_allowed && slot.on_demand_until.is_none();
            work.push((slot.vm, *loc, spot, std::mem::take(&mut slot.back_to_spot)));
        }
        for vm in surplus {
            self.handle(now, Event::Released { vm }, out);
        }
        for (vm, loc, spot, back_to_spot) in work {
            if let std::collections::hash_map::Entry::Vacant(e) = self.vms.entry(vm) {
                let mut request = template.clone();
                request.id = vm;
                request.group = Some(id);
                request.regions = vec![loc];
                request.spot_allowed = spot;
                e.insert(VmEntry::new(request, Some(id)));
                self.place(vm, now, ProvisionReason::Initial, out);
                continue;
            }
            self.relocate(vm, loc, spot, now, out);
            if back_to_spot && !self.back_to_spot(vm, now, out) {
                // Spot is not where the policy would place it now: try again next evaluation.
                if let Some(slot) = self.deployments.get_mut(&id).and_then(|d| d.slots.iter_mut().find(|s| s.vm == vm))
                {
                    slot.back_to_spot = true;
                }
            }
        }
        self.roll_out(id, now, out);
    }

    /// Replaces the replicas of a deployment placed for an earlier template, as far as its
    /// rollout allows now (see [`deploy::Rollout`]).
    fn roll_out(&mut self, id: GroupId, now: SimTime, out: &mut Vec<Action>) {
        let Some(d) = self.deployments.get(&id) else { return };
        let Some(rollout) = d.spec.rollout else { return };
        let revision = d.revision;
        let vms: Vec<VmId> = d.slots.iter().map(|s| s.vm).collect();
        let views: Vec<ReplicaView> = vms.iter().map(|vm| self.replica_view(*vm, revision)).collect();
        if !views.iter().any(|v| v.outdated) {
            return;
        }
        for (i, how) in rollout.plan(&views) {
            let vm = vms[i];
            match how {
                Replace::Surge => {
                    self.place_replacement(vm, now, ProvisionReason::Update, out);
                }
                Replace::Recreate => {
                    let Some(e) = self.vms.get_mut(&vm) else { continue };
                    let old = e.active.take();
                    e.moving = None;
                    e.lost = false;
                    e.state = VmState::Pending;
                    if let Some(old) = old {
                        self.end_instance(old, now);
                        out.push(Action::Terminate { instance: old, vm });
                    }
                    self.place(vm, now, ProvisionReason::Update, out);
                }
            }
        }
    }

    /// A replica as a rollout sees it: outdated if its instance was placed for an earlier
    /// revision; serving if that instance runs at a healthy location; replacing if a replacement
    /// or a move is under way.
    fn replica_view(&self, vm: VmId, revision: u32) -> ReplicaView {
        let Some(e) = self.vms.get(&vm) else { return ReplicaView::default() };
        let active = e.active.and_then(|i| self.instances.get(&i));
        ReplicaView {
            outdated: active.is_some_and(|i| i.revision != revision),
            serving: e.state == VmState::Running
                && active.is_some_and(|i| {
                    let offer = &self.snapshot.catalog.offers[i.charge.offer.idx()];
                    i.running && self.snapshot.location_healthy(offer.region, offer.zone)
                }),
            replacing: e.replacement.is_some() || e.moving.is_some(),
        }
    }

    /// Replicas of a deployment whose instance was placed for its current template.
    pub fn updated_replicas(&self, id: GroupId) -> u32 {
        let Some(d) = self.deployments.get(&id) else { return 0 };
        d.slots
            .iter()
            .filter(|s| {
                let e = self.vms.get(&s.vm);
                e.and_then(|e| e.active).and_then(|i| self.instances.get(&i)).is_some_and(|i| i.revision == d.revision)
            })
            .count() as u32
    }

    /// Moves one replica to `loc` (and the market its spot flag allows) if it is not there.
    fn relocate(&mut self, vm: VmId, loc: RegionId, spot: bool, now: SimTime, out: &mut Vec<Action>) {
        let Some(entry) = self.vms.get_mut(&vm) else { return };
        entry.request.regions = vec![loc];
        entry.request.spot_allowed = spot;
        // Data still copying (a cold migration's snapshot, a restore): the replica is placed at
        // `loc` when the copy is done.
        if matches!(entry.moving, Some(Move::Restore { copied: false } | Move::Migration { copied: false, .. }))
            && entry.active.is_none()
        {
            return;
        }
        let Some(active) = entry.active else {
            // Waiting for a placement: try again now, at the (maybe new) location.
            let reason = if entry.lost { ProvisionReason::Failover } else { ProvisionReason::Retry };
            self.place(vm, now, reason, out);
            return;
        };
        let (replacement, lost) = (entry.replacement, entry.lost);
        // A live or warm migration in flight: its target is the replacement.
        let migrating = matches!(entry.moving, Some(Move::Migration { .. })) && replacement.is_some();
        let Some(inst) = self.instances.get(&active) else { return };
        let offer = &self.snapshot.catalog.offers[inst.charge.offer.idx()];
        let (inst_region, inst_zone, inst_running) = (offer.region, offer.zone, inst.running);
        let market_ok = spot || inst.charge.market == Market::OnDemand;
        // In place, unless its zone or region is known to be down: such an instance serves nobody
        // (whether or not the cloud has reported it lost yet), so the replica is placed afresh.
        if inst_region == loc && market_ok && self.snapshot.location_healthy(inst_region, inst_zone) {
            if migrating {
                // The strategy wants it back where it is: the migration is called off.
                self.abort_migration(vm, now, out);
            }
            return;
        }
        if let Some(rep) = replacement {
            // A replacement is on its way: fine if it goes to the right place.
            let ok = self.instances.get(&rep).is_some_and(|r| {
                let o = &self.snapshot.catalog.offers[r.charge.offer.idx()];
                o.region == loc && (spot || r.charge.market == Market::OnDemand)
            });
            if ok {
                return;
            }
            self.end_instance(rep, now);
            out.push(Action::Terminate { instance: rep, vm });
            if let Some(e) = self.vms.get_mut(&vm) {
                e.replacement = None;
                e.moving = None;
            }
        }
        let serving = inst_running && self.snapshot.location_healthy(inst_region, inst_zone);
        if serving {
            match self.migration_policy(vm) {
                Some(policy) => self.migrate(vm, active, inst_region, loc, &policy, now, out),
                // Make-before-break: the old instance goes when the new one runs (no gap,
                // bounded overlap). No room for both at once (capacity or budget): keep serving,
                // try at the next evaluation.
                None => {
                    self.place_replacement(vm, now, ProvisionReason::Relocation, out);
                }
            }
            return;
        }
        // Not serving (still starting, or at a dead location): let it go and place afresh.
        self.end_instance(active, now);
        out.push(Action::Terminate { instance: active, vm });
        if let Some(e) = self.vms.get_mut(&vm) {
            e.active = None;
            e.moving = None;
            e.lost = lost || e.state == VmState::Running || e.state == VmState::Recovering;
        }
        // A replica that ran where its location died is restored from backup, if it has one.
        if inst_running && self.start_restore(vm, inst_region, now, out) {
            return;
        }
        let reason = if self.vms.get(&vm).is_some_and(|e| e.lost) {
            ProvisionReason::Failover
        } else {
            ProvisionReason::Relocation
        };
        self.place(vm, now, reason, out);
    }

    /// The migration policy of a VM's deployment, if any.
    fn migration_policy(&self, vm: VmId) -> Option<MigrationPolicy> {
        let id = self.vms.get(&vm)?.deployment?;
        self.deployments.get(&id)?.spec.migration.clone()
    }

    /// Starts migrating a serving replica from `from` to `to`.
    #[allow(clippy::too_many_arguments)]
    fn migrate(
        &mut self,
        vm: VmId,
        active: InstanceId,
        from: RegionId,
        to: RegionId,
        policy: &MigrationPolicy,
        now: SimTime,
        out: &mut Vec<Action>,
    ) {
        let catalog = &self.snapshot.catalog;
        let cross = catalog.regions[from.idx()].provider != catalog.regions[to.idx()].provider;
        let plan = policy.plan(cross);
        let per_gib = self.snapshot.cost.egress.per_gib(catalog, from, to, false);
        let transfer = policy.transfer_time(&plan);
        let moving = Move::Migration {
            plan,
            transfer,
            from,
            to,
            started: now,
            egress_usd: migration::egress_cost(&plan, per_gib),
            copied: false,
        };
        match plan.kind {
            MigrationKind::Live | MigrationKind::Warm => {
                // The target first; the data moves once it runs, then the cut-over.
                if self.place_replacement(vm, now, ProvisionReason::Relocation, out)
                    && let Some(e) = self.vms.get_mut(&vm)
                {
                    e.moving = Some(moving);
                }
            }
            MigrationKind::Cold => {
                // Stop, snapshot and copy; the target is provisioned when the copy is done.
                self.end_instance(active, now);
                out.push(Action::Terminate { instance: active, vm });
                let Some(e) = self.vms.get_mut(&vm) else { return };
                e.active = None;
                e.state = VmState::Recovering;
                e.moving = Some(moving);
                out.push(Action::SetTimer { timer: Timer { at: now + transfer, kind: TimerKind::Transfer(vm) } });
            }
        }
    }

    /// Calls off a live or warm migration: its target goes, the source keeps serving.
    fn abort_migration(&mut self, vm: VmId, now: SimTime, out: &mut Vec<Action>) {
        let Some(e) = self.vms.get_mut(&vm) else { return };
        if !matches!(e.moving, Some(Move::Migration { .. })) || e.active.is_none() {
            return;
        }
        e.moving = None;
        if let Some(rep) = e.replacement.take() {
            self.end_instance(rep, now);
            out.push(Action::Terminate { instance: rep, vm });
        }
    }

    /// Disaster recovery for a replica that ran where its location died: copies the newest
    /// backup chain back, then places it. Returns false when the replica is to be placed at once
    /// (no disaster recovery, or nothing restorable).
    fn start_restore(&mut self, vm: VmId, from: RegionId, now: SimTime, out: &mut Vec<Action>) -> bool {
        let Some(id) = self.vms.get(&vm).and_then(|e| e.deployment) else { return false };
        let Some(d) = self.deployments.get(&id) else { return false };
        let Some(policy) = &d.spec.disaster_recovery else { return false };
        let recovery_point = d.backups.last_restorable_before(now);
        let restore_time = d.backups.restore_time_before(now, policy).unwrap_or(SimDuration::ZERO);
        out.push(Action::Restoring { deployment: id, vm, from, recovery_point, restore_time });
        if recovery_point.is_none() {
            return false;
        }
        let Some(e) = self.vms.get_mut(&vm) else { return false };
        e.active = None;
        e.state = VmState::Recovering;
        e.lost = true;
        e.moving = Some(Move::Restore { copied: false });
        out.push(Action::SetTimer { timer: Timer { at: now + restore_time, kind: TimerKind::Transfer(vm) } });
        true
    }

    /// A migration's or a restore's copy is done.
    fn on_transfer_done(&mut self, vm: VmId, now: SimTime, out: &mut Vec<Action>) {
        let Some(e) = self.vms.get_mut(&vm) else { return };
        match e.moving {
            Some(Move::Restore { copied: false }) if e.active.is_none() => {
                e.moving = Some(Move::Restore { copied: true });
                self.place(vm, now, ProvisionReason::Failover, out);
            }
            Some(Move::Migration { plan, copied: false, .. })
                if plan.kind == MigrationKind::Cold && e.active.is_none() =>
            {
                if let Some(Move::Migration { copied, .. }) = &mut e.moving {
                    *copied = true;
                }
                self.place(vm, now, ProvisionReason::Relocation, out);
            }
            Some(Move::Migration { plan, from, to, started, egress_usd, copied: false, .. })
                if plan.kind != MigrationKind::Cold =>
            {
                // Live or warm: the data is across; cut over to the target if it runs.
                let Some(rep) = e.replacement else { return };
                let Some(target) = self.instances.get(&rep).filter(|i| i.running) else { return };
                let o = &self.snapshot.catalog.offers[target.charge.offer.idx()];
                if !self.snapshot.location_healthy(o.region, o.zone) {
                    // The target's location died while the data moved: the source keeps serving,
                    // and the next evaluation moves the replica again.
                    self.abort_migration(vm, now, out);
                    return;
                }
                e.moving = None;
                let deployment = e.deployment.unwrap_or(GroupId(0));
                self.cut_over(vm, rep, now, out);
                out.push(Action::Migrated {
                    deployment,
                    vm,
                    kind: plan.kind,
                    from,
                    to,
                    started,
                    downtime: plan.downtime,
                    transferred_gib: plan.transferred_gib,
                    egress_usd,
                    overlap: now.since(started),
                });
            }
            _ => {}
        }
    }

    /// The replacement `rep` takes over from the VM's active instance, which goes.
    fn cut_over(&mut self, vm: VmId, rep: InstanceId, now: SimTime, out: &mut Vec<Action>) {
        let Some(entry) = self.vms.get_mut(&vm) else { return };
        let old = entry.active.replace(rep);
        entry.replacement = None;
        entry.state = VmState::Running;
        entry.lost = false;
        entry.attempts = 0;
        if let Some(old) = old {
            self.end_instance(old, now);
            out.push(Action::Terminate { instance: old, vm });
        }
    }

    /// A deployment's backup timer: ends the backup under way if it is due, and starts the
    /// scheduled one if it is time (skipped while one still runs, while no replica serves the
    /// data, or while the backup region is down).
    fn on_backup_timer(&mut self, id: GroupId, now: SimTime, out: &mut Vec<Action>) {
        let Some(d) = self.deployments.get(&id) else { return };
        let serving = serving_replicas(&d.slots, &self.vms, &self.instances, &self.snapshot);
        let Some(policy) = d.spec.disaster_recovery.clone() else { return };
        let target_ok = Deployment::location_healthy(&self.snapshot, policy.target_region);
        let Some(d) = self.deployments.get_mut(&id) else { return };
        if let Some((at, kind, end)) = d.backup_running
            && end <= now
        {
            d.backup_running = None;
            // A backup whose source stopped serving before it ended is incomplete: dropped.
            if serving > 0 && target_ok {
                d.backups.complete(at, kind);
                out.push(Action::BackupCompleted { deployment: id, at, kind, duration: end.since(at) });
            }
        }
        if d.next_backup.is_some_and(|t| t <= now) {
            if d.backup_running.is_none() && serving > 0 && target_ok {
                let kind = d.backups.next_kind(policy.full_every);
                let end = now + d.backups.backup_duration(kind, now, &policy);
                d.backup_running = Some((now, kind, end));
                out.push(Action::SetTimer { timer: Timer { at: end, kind: TimerKind::Backup(id) } });
            }
            d.next_backup = policy.schedule.next_after(now);
            if let Some(at) = d.next_backup {
                out.push(Action::SetTimer { timer: Timer { at, kind: TimerKind::Backup(id) } });
            }
        }
    }

    /// Returns a replica that ran on demand after repeated interruptions to spot, make-before-break,
    /// if the policy would now place it on spot. Returns whether nothing is left to do.
    fn back_to_spot(&mut self, vm: VmId, now: SimTime, out: &mut Vec<Action>) -> bool {
        let Some(entry) = self.vms.get(&vm) else { return true };
        let Some(active) = entry.active else { return true };
        if entry.replacement.is_some() || entry.state != VmState::Running || !entry.request.spot_allowed {
            return entry.replacement.is_some();
        }
        let Some(inst) = self.instances.get(&active) else { return true };
        if inst.charge.market != Market::OnDemand || !inst.running {
            return true;
        }
        // Only a replica that is where it should be, at a healthy location: any other is being
        // moved, and its move places it afresh (on spot, if that is cheapest) anyway.
        let offer = &self.snapshot.catalog.offers[inst.charge.offer.idx()];
        if !entry.request.regions.contains(&offer.region) || !self.snapshot.location_healthy(offer.region, offer.zone) {
            return true;
        }
        let spot_now = matches!(
            self.policy.decide(&entry.request, &self.snapshot, now),
            Decision::Place { candidate, .. } if candidate.market == Market::Spot
        );
        spot_now && self.place_replacement(vm, now, ProvisionReason::Relocation, out)
    }

    /// Spot recovery for a deployment's replica that got an interruption notice.
    fn spot_recovery(&mut self, vm: VmId, now: SimTime) {
        let Some(id) = self.vms.get(&vm).and_then(|e| e.deployment) else { return };
        let Some(d) = self.deployments.get_mut(&id) else { return };
        for t in &mut d.triggers {
            t.notice(now);
        }
        let limit = d.spec.spot.on_demand_after;
        let back = d.spec.spot.back_to_spot_after;
        let Some(slot) = d.slots.iter_mut().find(|s| s.vm == vm) else { return };
        slot.spot_failures += 1;
        if limit > 0 && slot.spot_failures >= limit {
            slot.spot_failures = 0;
            slot.on_demand_until = Some(now + back);
            if let Some(e) = self.vms.get_mut(&vm) {
                e.request.spot_allowed = false;
            }
        }
    }

    fn place(&mut self, vm: VmId, now: SimTime, reason: ProvisionReason, out: &mut Vec<Action>) {
        let Some(entry) = self.vms.get(&vm) else { return };
        let decision = self.policy.decide(&entry.request, &self.snapshot, now);
        match decision {
            Decision::Place { candidate, scores } => {
                let Some(instance) = self.start_instance(vm, &candidate, scores, reason, now, out) else { return };
                let Some(entry) = self.vms.get_mut(&vm) else { return };
                entry.state = if entry.lost { VmState::Recovering } else { VmState::Provisioning };
                entry.active = Some(instance);
                entry.first_wait = None;
            }
            Decision::Reject(why) => self.wait_or_reject(vm, why, now, out),
        }
    }

    fn wait_or_reject(&mut self, vm: VmId, why: RejectReason, now: SimTime, out: &mut Vec<Action>) {
        let Some(entry) = self.vms.get_mut(&vm) else { return };
        if entry.deployment.is_some() {
            // A deployment's replica waits for the next evaluation, which may move it elsewhere.
            entry.state = if entry.lost { VmState::Recovering } else { VmState::Pending };
            return;
        }
        let since = *entry.first_wait.get_or_insert(now);
        let retryable = why != RejectReason::NoMatchingOffer;
        let deadline = since + self.config.queue_timeout;
        if retryable && self.config.queue_timeout > SimDuration::ZERO && now < deadline {
            entry.state = if entry.lost { VmState::Recovering } else { VmState::Pending };
            let at = (now + self.config.retry_backoff.max(SimDuration::from_secs(1))).min(deadline);
            out.push(Action::SetTimer { timer: Timer { at, kind: TimerKind::Retry(vm) } });
        } else {
            self.vms.remove(&vm);
            out.push(Action::Reject { vm, reason: why });
        }
    }

    fn on_running(&mut self, instance: InstanceId, now: SimTime, out: &mut Vec<Action>) {
        let deployment = self.instances.get(&instance).and_then(|i| self.vms.get(&i.vm)).and_then(|e| e.deployment);
        self.instance_up(instance, now, out);
        // A replica that came up may let a rollout go on.
        if let Some(id) = deployment {
            self.roll_out(id, now, out);
        }
    }

    fn instance_up(&mut self, instance: InstanceId, now: SimTime, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.get_mut(&instance) else { return };
        inst.running = true;
        let (vm, inst_offer) = (inst.vm, inst.charge.offer);
        let Some(entry) = self.vms.get_mut(&vm) else { return };
        if entry.replacement == Some(instance) {
            if let Some(Move::Migration { transfer, copied: false, .. }) = entry.moving {
                // A live or warm migration's target is up: the data moves, then the cut-over.
                out.push(Action::SetTimer { timer: Timer { at: now + transfer, kind: TimerKind::Transfer(vm) } });
                return;
            }
            // The replacement is up: it takes over and the doomed instance goes.
            self.cut_over(vm, instance, now, out);
        } else if entry.active == Some(instance) {
            entry.state = VmState::Running;
            entry.lost = false;
            entry.attempts = 0;
            // A cold migration or a restore is done once its target serves: runs at a location
            // that is still healthy (one that died meanwhile is left to the next evaluation).
            let offer = &self.snapshot.catalog.offers[inst_offer.idx()];
            if !self.snapshot.location_healthy(offer.region, offer.zone) {
                return;
            }
            match entry.moving.take() {
                Some(Move::Migration { plan, from, started, .. }) => {
                    // Its downtime ran from the source's stop. The target is where it was placed
                    // (the plan may have changed while the snapshot copied).
                    let to = offer.region;
                    let per_gib = self.snapshot.cost.egress.per_gib(&self.snapshot.catalog, from, to, false);
                    out.push(Action::Migrated {
                        deployment: entry.deployment.unwrap_or(GroupId(0)),
                        vm,
                        kind: plan.kind,
                        from,
                        to,
                        started,
                        downtime: now.since(started),
                        transferred_gib: plan.transferred_gib,
                        egress_usd: migration::egress_cost(&plan, per_gib),
                        overlap: SimDuration::ZERO,
                    });
                }
                Some(Move::Restore { .. }) | None => {}
            }
        }
    }

    fn on_failed(&mut self, instance: InstanceId, cause: FailureCause, now: SimTime, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.get(&instance) else { return };
        let (vm, was_running, offer, market) = (inst.vm, inst.running, inst.charge.offer, inst.charge.market);
        // A create call that failed made nothing to bill; an instance that died had been billed since its create call.
        let never_existed =
            matches!(cause, FailureCause::InsufficientCapacity | FailureCause::ApiError | FailureCause::Throttled);
        self.end_instance_billed(instance, now, !never_existed || was_running);
        match cause {
            FailureCause::InsufficientCapacity => {
                self.snapshot.avoid(offer, market, now + self.config.capacity_backoff)
            }
            FailureCause::Interrupted => self.snapshot.record_interruption(offer, now, now + self.config.spot_block),
            _ => {}
        }
        let Some(entry) = self.vms.get_mut(&vm) else { return };
        if entry.replacement == Some(instance) {
            // The replacement failed; the doomed instance may still be serving. Try again.
            entry.replacement = None;
            if entry.attempts >= self.config.max_attempts {
                return;
            }
            self.place_replacement(vm, now, ProvisionReason::Replacement, out);
            return;
        }
        if entry.active != Some(instance) {
            return;
        }
        entry.active = None;
        if let Some(rep) = entry.replacement.take() {
            // The doomed instance died before its replacement took over: the replacement carries
            // on (a migration under way becomes a failover: the state it had not copied is lost).
            entry.active = Some(rep);
            entry.moving = None;
            entry.lost = true;
            entry.state = VmState::Recovering;
            if self.instances.get(&rep).is_some_and(|i| i.running) {
                entry.state = VmState::Running;
                entry.lost = false;
            }
            return;
        }
        if was_running {
            entry.lost = true;
            entry.attempts = 0;
            entry.state = VmState::Recovering;
            entry.moving = None;
            // Lost with its location: restored from backup if the deployment has disaster recovery.
            let region = self.snapshot.catalog.offers[offer.idx()].region;
            if cause == FailureCause::Outage && self.start_restore(vm, region, now, out) {
                return;
            }
            self.place(vm, now, ProvisionReason::Failover, out);
            return;
        }
        // Provisioning failed.
        if entry.attempts >= self.config.max_attempts && entry.deployment.is_some() {
            // A deployment's replica is never given up: the next evaluation tries again.
            entry.state = if entry.lost { VmState::Recovering } else { VmState::Pending };
            entry.attempts = 0;
            return;
        }
        if entry.attempts >= self.config.max_attempts {
            self.vms.remove(&vm);
            let reason = match cause {
                FailureCause::ApiError | FailureCause::Throttled => RejectReason::ProvisioningFailed,
                _ => RejectReason::NoCapacity,
            };
            out.push(Action::Reject { vm, reason });
            return;
        }
        let reason = if entry.lost { ProvisionReason::Failover } else { ProvisionReason::Retry };
        match cause {
            FailureCause::ApiError | FailureCause::Throttled => {
                let exp = entry.attempts.saturating_sub(1).min(20);
                let delay = SimDuration(self.config.retry_backoff.as_millis().saturating_mul(1 << exp))
                    .min(self.config.retry_backoff_max);
                entry.state = VmState::Pending;
                out.push(Action::SetTimer { timer: Timer { at: now + delay, kind: TimerKind::Retry(vm) } });
            }
            _ => self.place(vm, now, reason, out),
        }
    }

    fn on_notice(&mut self, instance: InstanceId, at: SimTime, now: SimTime, out: &mut Vec<Action>) {
        let Some(inst) = self.instances.get(&instance) else { return };
        let (vm, offer) = (inst.vm, inst.charge.offer);
        // Block the preempted spot market so that the replacement goes elsewhere.
        self.snapshot.record_interruption(offer, now, at.max(now) + self.config.spot_block);
        self.spot_recovery(vm, now);
        if !self.config.replace_on_notice {
            return;
        }
        let Some(entry) = self.vms.get(&vm) else { return };
        if entry.active != Some(instance) || entry.replacement.is_some() {
            return;
        }
        self.place_replacement(vm, now, ProvisionReason::Replacement, out);
    }

    fn place_replacement(&mut self, vm: VmId, now: SimTime, reason: ProvisionReason, out: &mut Vec<Action>) -> bool {
        let Some(entry) = self.vms.get(&vm) else { return false };
        if let Decision::Place { candidate, scores } = self.policy.decide(&entry.request, &self.snapshot, now) {
            let Some(instance) = self.start_instance(vm, &candidate, scores, reason, now, out) else { return false };
            if let Some(entry) = self.vms.get_mut(&vm) {
                entry.replacement = Some(instance);
            }
            return true;
        }
        // No room for a replacement now: the VM fails over when the instance dies.
        false
    }

    /// Allocates a new instance of `vm` on `candidate`, counts the attempt and asks for it.
    fn start_instance(
        &mut self,
        vm: VmId,
        candidate: &crate::snapshot::Candidate,
        scores: Scores,
        reason: ProvisionReason,
        now: SimTime,
        out: &mut Vec<Action>,
    ) -> Option<InstanceId> {
        let entry = self.vms.get_mut(&vm)?;
        let instance = InstanceId(self.next_instance);
        self.next_instance += 1;
        let charge = self.snapshot.allocate(&entry.request, candidate, now);
        entry.attempts += 1;
        let revision = entry.deployment.and_then(|d| self.deployments.get(&d)).map_or(0, |d| d.revision);
        self.instances.insert(instance, InstanceEntry { vm, charge, running: false, revision });
        let placement = Placement {
            offer: candidate.offer,
            market: candidate.market,
            host: candidate.host,
            price_per_h: candidate.price_per_h,
        };
        out.push(Action::Provision { instance, vm, placement, reason, scores });
        Some(instance)
    }

    fn end_instance(&mut self, instance: InstanceId, now: SimTime) {
        self.end_instance_billed(instance, now, true);
    }

    /// Removes an instance and gives back what it held; bills it unless it never existed
    /// (a create call that failed).
    fn end_instance_billed(&mut self, instance: InstanceId, now: SimTime, billable: bool) {
        if let Some(e) = self.instances.remove(&instance) {
            let usd = self.snapshot.release(&e.charge, now);
            if !billable {
                return;
            }
            self.bills.push(Bill {
                instance,
                vm: e.vm,
                offer: e.charge.offer,
                market: e.charge.market,
                start: e.charge.start,
                end: now,
                usd,
            });
        }
    }
}
