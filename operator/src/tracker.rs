//! One MultiCloudVM's engine and its bookkeeping: the bridge between the engine's decisions and
//! a cloud provider.
//!
//! Each reconcile is one [`Tracker::step`] at the controller's `now`: observe the cloud (region
//! health, prices, the instances tagged with the object's UID), feed what changed to the engine
//! as events, apply the spec if it changed, fire the engine's timers that are due, carry out the
//! actions (create and delete instances, set timers), and feed back what the cloud answered. The
//! engine is the only one that decides; the tracker only translates and remembers which cloud
//! instance serves which engine instance.
//!
//! Cloud instances are created with the client token `<uid>-<slot>-<n>` and tagged with their
//! owner's UID and replica slot. An operator that restarts starts a fresh engine; instances it
//! finds tagged with the UID but not bound to the engine are *adoptable*: when the engine asks for
//! an instance of that slot with the same region, zone, type and market, the existing instance is
//! bound instead of creating one; an adoptable instance whose slot is served by another instance,
//! or that no slot wants any more, is deleted (make-before-break, never a leak). Every event fed
//! to the engine is kept with the actions it produced ([`Record`]), for the decision log.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use engine::deploy::{self, Strategy};
use engine::{
    Action, DeploymentSpec, Engine, EngineConfig, Event, FailureCause, GroupId, InstanceId, Market, OfferId, Placement,
    RegionId, SimDuration, SimTime, TimerKind, VmId,
};
use serde::Serialize;

use crate::catalog::CatalogIndex;
use crate::clock::rfc3339;
use crate::crd::multicloudvm::{CloudDeployment, Failover, Health, MigrationStatus, ProviderCost, TotalCost};
use crate::provider::{CloudInstance, CloudProvider, CreateRequest, InstanceState, PriceQuote};
use crate::{Error, Result};
use futures::future::BoxFuture;

/// The group id of a tracker's deployment (each tracker has an engine of its own).
pub const GROUP: GroupId = GroupId(0);

/// One unit of a deployment as a [`Fleet`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    /// The unit: `id` is what [`Fleet::delete`] takes, `client_token` the tracker's request
    /// token `<uid>-<slot>-<n>`, `slot`, placement and state as the fleet sees them.
    pub instance: CloudInstance,
    /// The `VirtualMachine` object standing for it (none when the fleet is a cloud itself).
    pub virtual_machine: Option<String>,
    /// The cloud's instance id, once one exists.
    pub cloud_id: Option<String>,
    /// The client token the cloud instance was created with.
    pub cloud_token: Option<String>,
}

/// What a tracker acts on: units it can list (by owner UID), create and delete, and the market
/// it reads (region health and prices).
///
/// The operator's fleet is [`crate::children::ChildFleet`]: each unit is a `VirtualMachine`
/// object owned by the deployment, and only the VirtualMachine controller calls the cloud. Any
/// [`CloudProvider`] is a fleet too (each unit a cloud instance), which the tracker's own tests
/// use.
pub trait Fleet: Send + Sync {
    /// Names of the regions that are down now.
    fn unhealthy_regions(&self) -> BoxFuture<'_, Result<Vec<String>>>;
    /// Current prices.
    fn prices(&self) -> BoxFuture<'_, Result<Vec<PriceQuote>>>;
    /// Every unit of this owner, those being deleted included (state `Terminated`).
    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, Result<Vec<Child>>>;
    /// Creates a unit, or returns the one created before for the same request token.
    fn create(&self, request: CreateRequest) -> BoxFuture<'_, Result<Child>>;
    /// Deletes a unit; succeeds if it is already gone.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
}

fn direct(instance: CloudInstance) -> Child {
    Child {
        cloud_id: Some(instance.id.clone()),
        cloud_token: Some(instance.client_token.clone()),
        virtual_machine: None,
        instance,
    }
}

impl<T: CloudProvider + ?Sized> Fleet for T {
    fn unhealthy_regions(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move { Ok(CloudProvider::unhealthy_regions(self).await?) })
    }
    fn prices(&self) -> BoxFuture<'_, Result<Vec<PriceQuote>>> {
        Box::pin(async move { Ok(CloudProvider::prices(self).await?) })
    }
    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, Result<Vec<Child>>> {
        Box::pin(async move { Ok(CloudProvider::list(self, owner_uid).await?.into_iter().map(direct).collect()) })
    }
    fn create(&self, request: CreateRequest) -> BoxFuture<'_, Result<Child>> {
        Box::pin(async move { Ok(direct(CloudProvider::create(self, request).await?)) })
    }
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { Ok(CloudProvider::delete(self, id).await?) })
    }
}

/// How long a created instance may stay missing from the provider's listings (eventual
/// consistency) before it counts as gone.
const MISSING_GRACE: SimDuration = SimDuration::from_secs(300);

/// One event fed to the engine and the actions it answered: a line of the decision log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// When (ms since the Unix epoch).
    pub at: SimTime,
    /// What happened.
    pub event: Event,
    /// What the engine decided.
    pub actions: Vec<Action>,
}

/// A cloud instance serving one of the engine's instances.
#[derive(Clone, Debug)]
struct Bound {
    slot: u32,
    instance: CloudInstance,
    placement: Placement,
    running: bool,
    noticed: bool,
    seen: bool,
    created_at: SimTime,
}

/// A decision worth a Kubernetes Event.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// CamelCase reason (`FailedOver`, `Migrated`, `Restoring`, `SpecRejected`).
    pub reason: &'static str,
    /// What happened, for a person.
    pub note: String,
    /// A warning rather than a normal event.
    pub warning: bool,
}

/// What one step did with the provider, for metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepReport {
    /// Create calls made (adoptions not counted).
    pub creates: u32,
    /// Failed create calls, by error label.
    pub create_errors: Vec<&'static str>,
    /// Instances adopted instead of created.
    pub adopted: u32,
    /// Delete calls that succeeded.
    pub deletes: u32,
    /// Delete calls that failed (retried at the next step).
    pub delete_errors: u32,
    /// Actions decided, by kind (`provision`, `terminate`, `fail-over`, ...).
    pub actions: BTreeMap<&'static str, u32>,
}

/// The engine of one MultiCloudVM and what binds it to the cloud.
pub struct Tracker {
    uid: String,
    index: Arc<CatalogIndex>,
    engine: Engine,
    applied: Option<DeploymentSpec>,
    timers: BinaryHeap<Reverse<(SimTime, u64, TimerKind)>>,
    timer_seq: u64,
    bound: BTreeMap<InstanceId, Bound>,
    adoptable: BTreeMap<String, CloudInstance>,
    details: BTreeMap<String, Child>,
    pending_deletes: BTreeSet<String>,
    next_token: BTreeMap<u32, u64>,
    unhealthy: BTreeSet<RegionId>,
    prices: BTreeMap<(OfferId, bool), f64>,
    last_now: SimTime,
    records: Vec<Record>,
    failovers: u32,
    last_failover: Option<Failover>,
    migrations: u32,
    billed: BTreeMap<&'static str, f64>,
    rejected: Option<String>,
    notices: Vec<Notice>,
    cost: engine::CostModel,
    start_logged: bool,
    autoscaler: engine::Autoscaler,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").field("uid", &self.uid).field("bound", &self.bound.len()).finish_non_exhaustive()
    }
}

impl Tracker {
    /// A fresh engine over `index` for the object with this UID.
    pub fn new(uid: &str, index: Arc<CatalogIndex>, config: EngineConfig) -> Result<Self> {
        let cost = engine::CostModel::default();
        let engine =
            Engine::new(index.catalog.clone(), cost.clone(), config).map_err(|e| Error::Catalog(e.to_string()))?;
        let mut prices = BTreeMap::new();
        for o in &index.catalog.offers {
            prices.insert((o.id, false), o.on_demand_per_h);
            if let Some(p) = o.spot_per_h {
                prices.insert((o.id, true), p);
            }
        }
        Ok(Tracker {
            uid: uid.to_owned(),
            index,
            engine,
            applied: None,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            bound: BTreeMap::new(),
            adoptable: BTreeMap::new(),
            details: BTreeMap::new(),
            pending_deletes: BTreeSet::new(),
            next_token: BTreeMap::new(),
            unhealthy: BTreeSet::new(),
            prices,
            last_now: SimTime::ZERO,
            records: Vec::new(),
            failovers: 0,
            last_failover: None,
            migrations: 0,
            billed: BTreeMap::new(),
            rejected: None,
            notices: Vec::new(),
            cost,
            start_logged: false,
            autoscaler: engine::Autoscaler::new(),
        })
    }

    /// The engine (read-only).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The autoscaler's recent recommendations (a VMCluster's), kept with its engine.
    pub fn autoscaler(&mut self) -> &mut engine::Autoscaler {
        &mut self.autoscaler
    }

    /// The spec last applied.
    pub fn applied(&self) -> Option<&DeploymentSpec> {
        self.applied.as_ref()
    }

    /// The engine's inputs besides its events (catalog, cost model, settings) as the decision
    /// log's header line, from which `sim replay` rebuilds the engine.
    pub fn log_header(&self) -> serde_json::Value {
        crate::decision_log::header(&self.index.catalog, &self.cost, self.engine.config())
    }

    /// True the first time it is called: the engine's start is still to be logged.
    pub fn take_unlogged_start(&mut self) -> bool {
        !std::mem::replace(&mut self.start_logged, true)
    }

    /// Decision-log records since the last call.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// Decisions worth a Kubernetes Event since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// When the engine next wants to be woken, if it has a timer.
    pub fn next_timer(&self) -> Option<SimTime> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Why the engine refused the spec, if it did.
    pub fn rejected(&self) -> Option<&str> {
        self.rejected.as_deref()
    }

    /// One reconcile at `now` with `spec` (`None`: keep the spec applied before, if any).
    /// Provider failures while observing abort the step before anything is fed to the engine;
    /// failures of create and delete calls are fed back or retried.
    pub async fn step(&mut self, now: SimTime, spec: Option<&DeploymentSpec>, cloud: &dyn Fleet) -> Result<StepReport> {
        // The engine's time never goes back, whatever the clock does.
        let now = now.max(self.last_now);
        self.last_now = now;
        let unhealthy = cloud.unhealthy_regions().await?;
        let quotes = cloud.prices().await?;
        let listed: Vec<CloudInstance> = cloud
            .list(&self.uid)
            .await?
            .into_iter()
            .map(|c| {
                let i = c.instance.clone();
                self.details.insert(i.id.clone(), c);
                i
            })
            .collect();
        let mut report = StepReport::default();
        let mut queue = VecDeque::new();
        self.observe_health(now, &unhealthy, &mut queue);
        for q in quotes {
            let Some(&offer) = self.index.offers.get(&(q.region, q.zone, q.instance_type)) else { continue };
            let known = self.prices.get(&(offer, q.market == Market::Spot)).copied();
            if known.is_some_and(|p| p != q.price_per_h) && q.price_per_h.is_finite() && q.price_per_h >= 0.0 {
                self.prices.insert((offer, q.market == Market::Spot), q.price_per_h);
                let event = Event::PriceChanged { offer, market: q.market, price_per_h: q.price_per_h };
                self.feed(now, event, &mut queue);
            }
        }
        self.observe_instances(now, listed, &mut queue);
        if let Some(spec) = spec
            && self.applied.as_ref() != Some(spec)
        {
            self.rejected = None;
            self.applied = Some(spec.clone());
            self.feed(now, Event::DeploymentApplied { spec: Box::new(spec.clone()) }, &mut queue);
        }
        // Carry out what was decided, then fire the timers that are due, until none is.
        for _ in 0..10_000 {
            self.execute(now, &mut queue, cloud, &mut report).await;
            let mut fired = false;
            while let Some(Reverse((at, _, kind))) = self.timers.peek().copied() {
                if at > now {
                    break;
                }
                self.timers.pop();
                fired = true;
                self.feed(now, Event::TimerFired { timer: kind }, &mut queue);
            }
            if !fired && queue.is_empty() {
                break;
            }
        }
        self.collect_orphans();
        for id in std::mem::take(&mut self.pending_deletes) {
            match cloud.delete(&id).await {
                Ok(()) => report.deletes += 1,
                Err(_) => {
                    report.delete_errors += 1;
                    self.pending_deletes.insert(id);
                }
            }
        }
        for bill in self.engine.take_bills() {
            let provider = self.index.catalog.provider_of(bill.offer).as_str();
            *self.billed.entry(provider).or_default() += bill.usd;
        }
        Ok(report)
    }

    fn feed(&mut self, now: SimTime, event: Event, queue: &mut VecDeque<Action>) {
        let mut out = Vec::new();
        self.engine.handle(now, event.clone(), &mut out);
        queue.extend(out.iter().cloned());
        self.records.push(Record { at: now, event, actions: out });
    }

    fn observe_health(&mut self, now: SimTime, unhealthy: &[String], queue: &mut VecDeque<Action>) {
        let down: BTreeSet<RegionId> = unhealthy.iter().filter_map(|n| self.index.regions.get(n).copied()).collect();
        for i in 0..self.index.catalog.regions.len() {
            let region = RegionId(i as u16);
            let (was, is) = (self.unhealthy.contains(&region), down.contains(&region));
            if was != is {
                self.feed(now, Event::RegionHealth { region, healthy: !is }, queue);
            }
        }
        self.unhealthy = down;
    }

    fn observe_instances(&mut self, now: SimTime, listed: Vec<CloudInstance>, queue: &mut VecDeque<Action>) {
        let by_id: BTreeMap<String, CloudInstance> = listed.into_iter().map(|i| (i.id.clone(), i)).collect();
        let ids: Vec<InstanceId> = self.bound.keys().copied().collect();
        for instance in ids {
            let Some(b) = self.bound.get_mut(&instance) else { continue };
            let Some(seen) = by_id.get(&b.instance.id) else {
                if b.seen || now.since(b.created_at) >= MISSING_GRACE {
                    // The cloud forgot it: gone.
                    self.bound.remove(&instance);
                    self.feed(now, Event::InstanceFailed { instance, cause: FailureCause::Crashed }, queue);
                }
                continue;
            };
            b.seen = true;
            b.instance.state = seen.state;
            match seen.state {
                InstanceState::Pending => {}
                InstanceState::Running => {
                    if !b.running {
                        b.running = true;
                        self.feed(now, Event::InstanceRunning { instance }, queue);
                    }
                }
                InstanceState::Interrupting { at_ms } => {
                    let (was_running, noticed) = (b.running, b.noticed);
                    b.running = true;
                    b.noticed = true;
                    if !was_running {
                        self.feed(now, Event::InstanceRunning { instance }, queue);
                    }
                    if !noticed {
                        self.feed(now, Event::InterruptionNotice { instance, at: SimTime(at_ms) }, queue);
                    }
                }
                InstanceState::Lost(cause) => {
                    // Lost, but a real cloud may bring it back (and bill it): delete it for sure.
                    if let Some(b) = self.bound.remove(&instance) {
                        self.pending_deletes.insert(b.instance.id);
                    }
                    self.feed(now, Event::InstanceFailed { instance, cause }, queue);
                }
                InstanceState::Terminated => {
                    // Deleted by someone else.
                    self.bound.remove(&instance);
                    self.feed(now, Event::InstanceFailed { instance, cause: FailureCause::Crashed }, queue);
                }
            }
        }
        let bound_ids: BTreeSet<&str> = self.bound.values().map(|b| b.instance.id.as_str()).collect();
        let mut adoptable = BTreeMap::new();
        for (id, inst) in by_id {
            if bound_ids.contains(id.as_str()) || self.pending_deletes.contains(&id) {
                continue;
            }
            // Tokens already used are never used again.
            if let Some(n) = token_seq(&inst.client_token) {
                let next = self.next_token.entry(inst.slot).or_default();
                *next = (*next).max(n + 1);
            }
            match inst.state {
                InstanceState::Terminated => {}
                InstanceState::Lost(_) => {
                    self.pending_deletes.insert(id);
                }
                _ => {
                    adoptable.insert(id, inst);
                }
            }
        }
        self.adoptable = adoptable;
    }

    async fn execute(
        &mut self,
        now: SimTime,
        queue: &mut VecDeque<Action>,
        cloud: &dyn Fleet,
        report: &mut StepReport,
    ) {
        while let Some(action) = queue.pop_front() {
            *report.actions.entry(action_name(&action)).or_default() += 1;
            match action {
                Action::Provision { instance, vm, placement, .. } => {
                    self.provision(now, instance, vm, placement, cloud, queue, report).await;
                }
                Action::Terminate { instance, .. } => {
                    if let Some(b) = self.bound.remove(&instance) {
                        self.pending_deletes.insert(b.instance.id);
                    }
                }
                Action::SetTimer { timer } => {
                    self.timer_seq += 1;
                    self.timers.push(Reverse((timer.at, self.timer_seq, timer.kind)));
                }
                Action::FailOver { from, to, reason, .. } => {
                    self.failovers += 1;
                    let f = Failover {
                        from: self.index.region_name(from).to_owned(),
                        to: self.index.region_name(to).to_owned(),
                        reason: move_reason(&reason),
                        at: rfc3339(now),
                    };
                    let warning = !matches!(reason, engine::MoveReason::Failback | engine::MoveReason::Cost);
                    let note = format!("moving from {} to {} ({})", f.from, f.to, f.reason);
                    self.notices.push(Notice { reason: "FailedOver", note, warning });
                    self.last_failover = Some(f);
                }
                Action::Migrated { vm, kind, from, to, downtime, .. } => {
                    self.migrations += 1;
                    let note = format!(
                        "replica {} moved from {} to {} by {kind:?} migration, {downtime} down",
                        vm.0 & 0xff_ffff,
                        self.index.region_name(from),
                        self.index.region_name(to)
                    );
                    self.notices.push(Notice { reason: "Migrated", note, warning: false });
                }
                Action::Restoring { vm, from, recovery_point, .. } => {
                    let point = recovery_point.map_or("nothing restorable".to_owned(), rfc3339);
                    let note = format!(
                        "replica {} lost with {} is restored from backup (recovery point: {point})",
                        vm.0 & 0xff_ffff,
                        self.index.region_name(from)
                    );
                    self.notices.push(Notice { reason: "Restoring", note, warning: true });
                }
                Action::DeploymentRejected { message, .. } => {
                    self.notices.push(Notice { reason: "SpecRejected", note: message.clone(), warning: true });
                    self.rejected = Some(message);
                }
                Action::Reject { .. } | Action::BackupCompleted { .. } => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn provision(
        &mut self,
        now: SimTime,
        instance: InstanceId,
        vm: VmId,
        placement: Placement,
        cloud: &dyn Fleet,
        queue: &mut VecDeque<Action>,
        report: &mut StepReport,
    ) {
        let slot = (vm.0 & 0xff_ffff) as u32;
        let Some((region, zone, itype)) = self.index.offer_names(placement.offer) else {
            self.feed(now, Event::InstanceFailed { instance, cause: FailureCause::ApiError }, queue);
            return;
        };
        let (region, zone, itype) = (region.to_owned(), zone.to_owned(), itype.to_owned());
        let adopt = self
            .adoptable
            .iter()
            .find(|(_, i)| {
                i.slot == slot
                    && i.region == region
                    && i.zone == zone
                    && i.instance_type == itype
                    && i.market == placement.market
            })
            .map(|(id, _)| id.clone());
        let created = match adopt.and_then(|id| self.adoptable.remove(&id)) {
            Some(existing) => {
                report.adopted += 1;
                Ok(existing)
            }
            None => {
                let next = self.next_token.entry(slot).or_default();
                let n = *next;
                *next += 1;
                let request = CreateRequest {
                    client_token: format!("{}-{slot}-{n}", self.uid),
                    owner_uid: self.uid.clone(),
                    slot,
                    region,
                    zone,
                    instance_type: itype,
                    market: placement.market,
                    tags: BTreeMap::from([("novacron.io/managed-by".to_owned(), "novacron-operator".to_owned())]),
                };
                report.creates += 1;
                cloud.create(request).await.map(|c| {
                    let i = c.instance.clone();
                    self.details.insert(i.id.clone(), c);
                    i
                })
            }
        };
        match created {
            Ok(inst) => {
                let state = inst.state;
                self.bound.insert(
                    instance,
                    Bound {
                        slot,
                        instance: inst,
                        placement,
                        running: false,
                        noticed: false,
                        seen: false,
                        created_at: now,
                    },
                );
                // Already up (an idempotent answer, or an adopted instance): say so now.
                if let Some(b) = self.bound.get_mut(&instance) {
                    match state {
                        InstanceState::Running | InstanceState::Interrupting { .. } => {
                            b.running = true;
                            self.feed(now, Event::InstanceRunning { instance }, queue);
                        }
                        InstanceState::Lost(cause) => {
                            if let Some(b) = self.bound.remove(&instance) {
                                self.pending_deletes.insert(b.instance.id);
                            }
                            self.feed(now, Event::InstanceFailed { instance, cause }, queue);
                        }
                        InstanceState::Terminated => {
                            self.bound.remove(&instance);
                            self.feed(now, Event::InstanceFailed { instance, cause: FailureCause::Crashed }, queue);
                        }
                        InstanceState::Pending => {}
                    }
                }
            }
            Err(e) => {
                let (label, cause) = match &e {
                    Error::Provider(p) => (p.label(), p.failure_cause()),
                    other => (other.metric_label(), FailureCause::ApiError),
                };
                report.create_errors.push(label);
                self.feed(now, Event::InstanceFailed { instance, cause }, queue);
            }
        }
    }

    /// Adoptable instances no slot will adopt: the slot is served by another instance, or the
    /// deployment no longer has that slot.
    fn collect_orphans(&mut self) {
        let Some(d) = self.engine.deployment(GROUP) else { return };
        let slots = d.slots.len() as u32;
        let orphans: Vec<String> = self
            .adoptable
            .values()
            .filter(|i| {
                i.slot >= slots
                    || self.engine.vm_state(deploy::slot_vm(GROUP, i.slot)) == Some(engine::VmState::Running)
            })
            .map(|i| i.id.clone())
            .collect();
        for id in orphans {
            self.adoptable.remove(&id);
            self.pending_deletes.insert(id);
        }
    }

    /// Instances of this deployment as the status lists them (bound ones first, by slot).
    pub fn cloud_deployments(&self) -> Vec<CloudDeployment> {
        let mut out: Vec<CloudDeployment> = self
            .bound
            .values()
            .map(|b| {
                let i = &b.instance;
                let d = self.details.get(&i.id);
                CloudDeployment {
                    slot: b.slot,
                    provider: self.index.catalog.provider_of(b.placement.offer).as_str().to_owned(),
                    region: i.region.clone(),
                    zone: i.zone.clone(),
                    instance_id: d.and_then(|d| d.cloud_id.clone()).unwrap_or_default(),
                    virtual_machine: d.and_then(|d| d.virtual_machine.clone()),
                    instance_type: i.instance_type.clone(),
                    market: b.placement.market.as_str().to_owned(),
                    state: if b.running { "Running" } else { "Provisioning" }.to_owned(),
                    hourly_cost: self.price_of(b),
                    client_token: d.and_then(|d| d.cloud_token.clone()).unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| (a.slot, &a.instance_id).cmp(&(b.slot, &b.instance_id)));
        for i in self.adoptable.values() {
            let d = self.details.get(&i.id);
            let provider = self.index.regions.get(&i.region).map_or("unknown", |r| self.index.provider(*r).as_str());
            out.push(CloudDeployment {
                slot: i.slot,
                provider: provider.to_owned(),
                region: i.region.clone(),
                zone: i.zone.clone(),
                instance_id: d.and_then(|d| d.cloud_id.clone()).unwrap_or_default(),
                virtual_machine: d.and_then(|d| d.virtual_machine.clone()),
                instance_type: i.instance_type.clone(),
                market: i.market.as_str().to_owned(),
                state: "Unadopted".to_owned(),
                hourly_cost: 0.0,
                client_token: d.and_then(|d| d.cloud_token.clone()).unwrap_or_default(),
            });
        }
        out
    }

    fn price_of(&self, b: &Bound) -> f64 {
        self.prices
            .get(&(b.placement.offer, b.placement.market == Market::Spot))
            .copied()
            .unwrap_or(b.placement.price_per_h)
    }

    /// Spend now and so far, per provider.
    pub fn total_cost(&mut self, now: SimTime) -> TotalCost {
        let mut breakdown: BTreeMap<String, ProviderCost> = BTreeMap::new();
        for (p, usd) in &self.billed {
            breakdown.entry((*p).to_owned()).or_default().total_cost += usd;
        }
        for bill in self.engine.bill_open_instances(now.max(self.last_now)) {
            let p = self.index.catalog.provider_of(bill.offer).as_str();
            breakdown.entry(p.to_owned()).or_default().total_cost += bill.usd;
        }
        for b in self.bound.values() {
            let p = self.index.catalog.provider_of(b.placement.offer).as_str();
            breakdown.entry(p.to_owned()).or_default().hourly_cost += self.price_of(b);
        }
        TotalCost {
            currency: "USD".to_owned(),
            hourly_cost: breakdown.values().map(|c| c.hourly_cost).sum(),
            total_cost: breakdown.values().map(|c| c.total_cost).sum(),
            breakdown,
        }
    }

    /// Replicas wanted and serving, and the regions reported down.
    pub fn health(&self) -> Health {
        let d = self.engine.deployment(GROUP);
        let serving = d.map_or(0, |d| {
            d.slots
                .iter()
                .filter(|s| self.engine.vm_serving_region(s.vm).is_some_and(|r| !self.unhealthy.contains(&r)))
                .count() as u32
        });
        Health {
            // The strategy's current plan: one slot per replica wanted (a burst's grows with demand).
            replicas: d.map_or(0, |d| d.slots.len() as u32),
            serving,
            unhealthy_regions: self.unhealthy.iter().map(|r| self.index.region_name(*r).to_owned()).collect(),
        }
    }

    /// The active location: for active-passive, where the strategy keeps the replicas; otherwise
    /// the region serving most replicas (ties: catalog order).
    pub fn active_region(&self) -> Option<RegionId> {
        let d = self.engine.deployment(GROUP)?;
        if let Strategy::ActivePassive(c) = &d.spec.strategy {
            let locs = c.locations();
            return locs.get(d.active.min(locs.len().saturating_sub(1))).copied();
        }
        let mut count: BTreeMap<RegionId, u32> = BTreeMap::new();
        for s in &d.slots {
            if let Some(r) = self.engine.vm_serving_region(s.vm) {
                *count.entry(r).or_default() += 1;
            }
        }
        let best = count.values().copied().max()?;
        count.into_iter().find(|(_, n)| *n == best).map(|(r, _)| r)
    }

    /// Failovers and migrations so far.
    pub fn migration(&self) -> MigrationStatus {
        MigrationStatus {
            failovers: self.failovers,
            last_failover: self.last_failover.clone(),
            migrations: self.migrations,
        }
    }

    /// The catalog index.
    pub fn index(&self) -> &CatalogIndex {
        &self.index
    }
}

/// The `n` of a client token `<uid>-<slot>-<n>`.
fn token_seq(token: &str) -> Option<u64> {
    token.rsplit('-').next()?.parse().ok()
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Provision { .. } => "provision",
        Action::Terminate { .. } => "terminate",
        Action::SetTimer { .. } => "set-timer",
        Action::Reject { .. } => "reject",
        Action::FailOver { .. } => "fail-over",
        Action::DeploymentRejected { .. } => "deployment-rejected",
        Action::Migrated { .. } => "migrated",
        Action::Restoring { .. } => "restoring",
        Action::BackupCompleted { .. } => "backup-completed",
    }
}

fn move_reason(r: &engine::MoveReason) -> String {
    match r {
        engine::MoveReason::Trigger(t) => format!("trigger:{t}"),
        engine::MoveReason::Unhealthy => "unhealthy".into(),
        engine::MoveReason::Manual => "manual".into(),
        engine::MoveReason::Failback => "failback".into(),
        engine::MoveReason::Burst => "burst".into(),
        engine::MoveReason::Cost => "cost".into(),
        engine::MoveReason::Rebalance => "rebalance".into(),
    }
}
