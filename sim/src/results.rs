//! What a run produced: per-VM records, a time series, spot price changes and the summary.
//! Everything here is a function of the scenario and the seed: no wall-clock figure enters it.

use engine::{
    Bill, Catalog, Engine, InstanceId, Market, OfferId, OfferKind, Placement, Provider, RejectReason, SimTime, VmId,
};
use serde::Serialize;

use crate::cloud::CloudStats;
use crate::scenario::Scenario;
use crate::workload::Generated;

/// What became of a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmStatus {
    /// Still wanted at the end of the run.
    Active,
    /// Released by its owner.
    Completed,
    /// Given up by the engine.
    Rejected,
}

impl VmStatus {
    /// Name as in the tables.
    pub fn as_str(self) -> &'static str {
        match self {
            VmStatus::Active => "active",
            VmStatus::Completed => "completed",
            VmStatus::Rejected => "rejected",
        }
    }
}

/// One row of `vms.parquet`.
#[derive(Clone, Debug, PartialEq)]
pub struct VmRecord {
    /// VM id (arrival order).
    pub vm_id: u64,
    /// Arrival, s.
    pub arrival_s: f64,
    /// Lifetime its owner asked for, s (`None`: until the end).
    pub lifetime_s: Option<f64>,
    /// vCPUs.
    pub vcpu: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Whether spot was allowed.
    pub spot_allowed: bool,
    /// Shape index in the scenario.
    pub shape: Option<u32>,
    /// Outcome.
    pub status: VmStatus,
    /// Why it was rejected.
    pub reject_reason: Option<RejectReason>,
    /// First placement's offer.
    pub first_offer: Option<OfferId>,
    /// First placement's market.
    pub first_market: Option<Market>,
    /// First time an instance was running, s.
    pub first_running_s: Option<f64>,
    /// Release or rejection time, s.
    pub end_s: Option<f64>,
    /// Instances asked for.
    pub instances: u32,
    /// Recoveries after the VM lost service.
    pub failovers: u32,
    /// Spot replacements that took over without loss of service.
    pub replacements: u32,
    /// Spot interruption notices received.
    pub interruptions: u32,
    /// Time with a running instance, s.
    pub served_s: f64,
    /// Time its owner wanted it within the run, s.
    pub requested_s: f64,
    /// Dollars billed for its instances.
    pub cost_usd: f64,
    serving: u32,
    serving_since: SimTime,
    lost_at: Option<SimTime>,
}

/// One row of `timeseries.parquet`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Time, s.
    pub time_s: f64,
    /// VMs with a running instance.
    pub serving_vms: u64,
    /// Instances asked for and not yet gone (booting or running), by provider (aws, azure, gcp, onprem).
    pub instances: [u64; 4],
    /// Spend rate $/h by provider, commitments excluded.
    pub cost_rate_usd_per_h: [f64; 4],
    /// Fixed commitment fees, $/h.
    pub commitment_fees_usd_per_h: f64,
    /// Requests so far.
    pub requests_total: u64,
    /// Rejections so far.
    pub rejected_total: u64,
    /// Failovers so far.
    pub failovers_total: u64,
    /// Spot interruption notices so far.
    pub interruptions_total: u64,
    /// Dollars of instances that have ended so far.
    pub billed_usd: f64,
}

/// One spot price change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricePoint {
    /// When, s.
    pub time_s: f64,
    /// Which offer.
    pub offer: OfferId,
    /// New price $/h.
    pub price_per_h: f64,
}

/// A fault window as it happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultWindow {
    /// Index in the scenario's faults.
    pub fault: usize,
    /// Its kind, as in the scenario (`region-outage`, `zone-outage`, `spot-storm`, ...).
    pub kind: String,
    /// What it hit: a region (`region/zone` for a zone outage, comma-separated regions for a
    /// storm) or a deployment.
    pub target: String,
    /// Start, s.
    pub start_s: f64,
    /// End, s.
    pub end_s: f64,
}

/// One row of `failovers.parquet`: a deployment moved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailoverRecord {
    /// When it was decided, s.
    pub time_s: f64,
    /// Deployment name.
    pub deployment: String,
    /// From region.
    pub from: String,
    /// To region.
    pub to: String,
    /// Why (`unhealthy`, `manual`, `failback`, `rebalance`, or the trigger's name).
    pub reason: String,
    /// From the start of the outage of `from` to the decision, s (null when no outage caused it).
    pub time_to_detect_s: Option<f64>,
    /// From the outage's start (or the decision) until every replica ran again, s.
    pub time_to_recover_s: Option<f64>,
    #[serde(skip)]
    cause_start: SimTime,
}

/// One row of `migrations.parquet`: a replica moved between healthy locations.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MigrationRecord {
    /// When it finished (the target serves), s.
    pub time_s: f64,
    /// When it started, s.
    pub started_s: f64,
    /// Deployment name.
    pub deployment: String,
    /// Replica slot.
    pub slot: u32,
    /// `live`, `warm` or `cold`.
    pub kind: String,
    /// From region.
    pub from: String,
    /// To region.
    pub to: String,
    /// Service lost, s.
    pub downtime_s: f64,
    /// Data sent, GiB.
    pub transferred_gib: f64,
    /// Egress billed, $.
    pub egress_usd: f64,
    /// Source and target both billed, s.
    pub overlap_s: f64,
}

/// One row of `restores.parquet`: a replica restored from backup after its location was lost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RestoreRecord {
    /// When the engine started the restore, s.
    pub time_s: f64,
    /// Deployment name.
    pub deployment: String,
    /// Replica slot.
    pub slot: u32,
    /// The region it was lost with.
    pub from: String,
    /// When its data was lost: the start of that region's outage (or the restore's start), s.
    pub lost_at_s: f64,
    /// The restore point, s (null: nothing was restorable and it started empty).
    pub recovery_point_s: Option<f64>,
    /// Achieved recovery point: data lost, as time, s (null when nothing was restorable).
    pub rpo_s: Option<f64>,
    /// Copying the backup chain back, s.
    pub restore_time_s: f64,
    /// Achieved recovery time: from the loss until the replica served again, s (null: not by the end).
    pub rto_s: Option<f64>,
    #[serde(skip)]
    vm: VmId,
}

/// Migrations of one kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MigrationTotals {
    /// How many.
    pub count: u64,
    /// Service lost, s.
    pub downtime_s: f64,
    /// Mean service lost per migration, s.
    pub mean_downtime_s: f64,
    /// Data sent, GiB.
    pub transferred_gib: f64,
    /// Egress billed, $.
    pub egress_usd: f64,
}

fn migration_totals<'a>(
    ms: impl Iterator<Item = &'a MigrationRecord>,
) -> std::collections::BTreeMap<String, MigrationTotals> {
    let mut out: std::collections::BTreeMap<String, MigrationTotals> = Default::default();
    for m in ms {
        let t = out.entry(m.kind.clone()).or_default();
        t.count += 1;
        t.downtime_s += m.downtime_s;
        t.transferred_gib += m.transferred_gib;
        t.egress_usd += m.egress_usd;
    }
    for t in out.values_mut() {
        t.mean_downtime_s = t.downtime_s / t.count as f64;
    }
    out
}

/// One row of `deployments.parquet`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeploymentSample {
    /// Time, s.
    pub time_s: f64,
    /// Deployment name.
    pub deployment: String,
    /// Replicas wanted.
    pub replicas_wanted: u32,
    /// Replicas serving (a replica being moved serves from its old location until the new one is up).
    pub replicas_running: u32,
    /// Spend rate, $/h.
    pub cost_rate_usd_per_h: f64,
}

/// A deployment's figures in `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeploymentSummary {
    /// Name.
    pub name: String,
    /// Strategy.
    pub strategy: String,
    /// Failovers (all moves the strategy recorded).
    pub failovers: u64,
    /// Mean and 99th percentile of time to detect, s.
    pub mean_time_to_detect_s: Option<f64>,
    /// p99 of time to detect, s.
    pub p99_time_to_detect_s: Option<f64>,
    /// Mean time to recover, s.
    pub mean_time_to_recover_s: Option<f64>,
    /// p99 of time to recover, s.
    pub p99_time_to_recover_s: Option<f64>,
    /// Time with no replica running where wanted, s.
    pub downtime_s: f64,
    /// Time with fewer replicas running than wanted, s.
    pub degraded_s: f64,
    /// Replica-time running over replica-time wanted, 0..1.
    pub availability: f64,
    /// Dollars billed for its replicas, migration egress included.
    pub cost_usd: f64,
    /// Replicas migrated between healthy locations.
    pub migrations: u64,
    /// Service lost during migrations, s (replica-seconds; live and warm pauses are shorter than
    /// the 5 s probe and are counted here only).
    pub migration_downtime_s: f64,
    /// Egress billed for migrations, $.
    pub migration_egress_usd: f64,
    /// Backups completed.
    pub backups: u64,
    /// Replicas restored from backup.
    pub restores: u64,
    /// Recovery point objective, s (null: no disaster recovery).
    pub rpo_target_s: Option<f64>,
    /// Recovery time objective, s.
    pub rto_target_s: Option<f64>,
    /// Worst achieved recovery point over its restores, s.
    pub achieved_rpo_s: Option<f64>,
    /// Worst achieved recovery time over its restores, s.
    pub achieved_rto_s: Option<f64>,
    /// Whether every restore met the RPO (null: no restore).
    pub rpo_met: Option<bool>,
    /// Whether every restore met the RTO (null: no restore).
    pub rto_met: Option<bool>,
    /// Whether a restore found nothing restorable (all data lost).
    pub data_lost: bool,
}

#[derive(Clone, Debug)]
struct DepRec {
    name: String,
    strategy: String,
    wanted: u32,
    running: u32,
    last: SimTime,
    downtime: f64,
    degraded: f64,
    served: f64,
    asked: f64,
    cost: f64,
    open: Vec<usize>,
    backups: u64,
    rpo_target: Option<f64>,
    rto_target: Option<f64>,
}

/// `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// Placement policy.
    pub policy: String,
    /// Simulated span, s.
    pub duration_s: f64,
    /// Dollars billed, commitment fees included.
    pub total_cost_usd: f64,
    /// Dollars by provider (aws, azure, gcp, onprem), commitment fees excluded.
    pub cost_by_provider_usd: std::collections::BTreeMap<String, f64>,
    /// Commitment fees over the run.
    pub commitment_fees_usd: f64,
    /// Served VM-time over requested VM-time, 0..1.
    pub availability: f64,
    /// Requests that arrived.
    pub requests_total: u64,
    /// Requests that were served at some point.
    pub requests_served: u64,
    /// Requests given up.
    pub requests_rejected: u64,
    /// Rejections by reason.
    pub rejected_by_reason: std::collections::BTreeMap<String, u64>,
    /// Recoveries after a VM lost service (outage, crash, reclaimed spot).
    pub failovers: u64,
    /// Mean time from loss of service to a running replacement, s (null if none).
    pub mean_time_to_recover_s: Option<f64>,
    /// 99th percentile of the same, s.
    pub p99_time_to_recover_s: Option<f64>,
    /// Spot interruption notices.
    pub spot_interruptions: u64,
    /// Spot replacements that took over before the old instance died.
    pub replacements: u64,
    /// Deployment replicas migrated (live, warm or cold) between healthy locations.
    pub migrations: u64,
    /// Service lost during those migrations, s (replica-seconds).
    pub migration_downtime_s: f64,
    /// Egress billed for migrations, $ (included in `total_cost_usd`).
    pub migration_egress_usd: f64,
    /// Migrations by kind (`live`, `warm`, `cold`).
    pub migrations_by_kind: std::collections::BTreeMap<String, MigrationTotals>,
    /// Deployment backups completed.
    pub backups_completed: u64,
    /// Replicas restored from backup after the loss of their location.
    pub restores: u64,
    /// Mean time from arrival to first running instance, s.
    pub mean_time_to_first_run_s: Option<f64>,
    /// Most instances at once.
    pub peak_instances: u64,
    /// Create calls and their failures.
    pub cloud: CloudStats,
    /// Fault windows.
    pub faults: Vec<FaultWindow>,
    /// Multi-cloud deployments.
    pub deployments: Vec<DeploymentSummary>,
    /// Events the simulator processed.
    pub events_processed: u64,
    /// The modeled cache's figures (only with a `[cache]` section; see `docs/cache.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache::CacheSummary>,
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct RunResults {
    /// The summary.
    pub summary: Summary,
    /// Per-VM records, by VM id.
    pub vms: Vec<VmRecord>,
    /// Time series.
    pub samples: Vec<Sample>,
    /// Spot price changes.
    pub prices: Vec<PricePoint>,
    /// Deployment failovers.
    pub failovers: Vec<FailoverRecord>,
    /// Deployment time series.
    pub deployment_samples: Vec<DeploymentSample>,
    /// Migrations.
    pub migrations: Vec<MigrationRecord>,
    /// Restores from backup.
    pub restores: Vec<RestoreRecord>,
}

/// Collects results during a run.
pub struct Recorder {
    vms: Vec<VmRecord>,
    inst: engine::snapshot::DetHashMap<InstanceId, (VmId, bool)>,
    samples: Vec<Sample>,
    prices: Vec<PricePoint>,
    faults: Vec<FaultWindow>,
    ttr: Vec<f64>,
    cost_by_provider: [f64; 4],
    billed: f64,
    rejected: u64,
    rejected_by_reason: std::collections::BTreeMap<String, u64>,
    failovers: u64,
    replacements: u64,
    interruptions: u64,
    serving: u64,
    peak_instances: u64,
    first_run_total: f64,
    first_run_count: u64,
    deps: std::collections::BTreeMap<engine::GroupId, DepRec>,
    dep_failovers: Vec<FailoverRecord>,
    dep_samples: Vec<DeploymentSample>,
    outages: Vec<(engine::RegionId, SimTime, Option<SimTime>)>,
    migrations: Vec<MigrationRecord>,
    restores: Vec<RestoreRecord>,
    /// Restores whose replica has not served again yet, with their loss time.
    open_restores: Vec<(usize, SimTime)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Recorder {
            vms: Vec::new(),
            inst: Default::default(),
            samples: Vec::new(),
            prices: Vec::new(),
            faults: Vec::new(),
            ttr: Vec::new(),
            cost_by_provider: [0.0; 4],
            billed: 0.0,
            rejected: 0,
            rejected_by_reason: Default::default(),
            failovers: 0,
            replacements: 0,
            interruptions: 0,
            serving: 0,
            peak_instances: 0,
            first_run_total: 0.0,
            first_run_count: 0,
            deps: Default::default(),
            dep_failovers: Vec::new(),
            dep_samples: Vec::new(),
            outages: Vec::new(),
            migrations: Vec::new(),
            restores: Vec::new(),
            open_restores: Vec::new(),
        }
    }

    fn vm(&mut self, vm: VmId) -> Option<&mut VmRecord> {
        self.vms.get_mut(vm.0 as usize)
    }

    /// A request arrived.
    pub fn arrived(&mut self, g: &Generated, now: SimTime) {
        debug_assert_eq!(g.request.id.0 as usize, self.vms.len());
        self.vms.push(VmRecord {
            vm_id: g.request.id.0,
            arrival_s: now.as_secs_f64(),
            lifetime_s: g.lifetime.map(|l| l.as_secs_f64()),
            vcpu: g.request.resources.vcpu,
            memory_mib: g.request.resources.memory_mib,
            spot_allowed: g.request.spot_allowed,
            shape: g.shape.map(|s| s as u32),
            status: VmStatus::Active,
            reject_reason: None,
            first_offer: None,
            first_market: None,
            first_running_s: None,
            end_s: None,
            instances: 0,
            failovers: 0,
            replacements: 0,
            interruptions: 0,
            served_s: 0.0,
            requested_s: 0.0,
            cost_usd: 0.0,
            serving: 0,
            serving_since: now,
            lost_at: None,
        });
    }

    /// The engine asked for an instance.
    pub fn provisioned(&mut self, vm: VmId, i: InstanceId, p: &Placement) {
        self.inst.insert(i, (vm, false));
        if let Some(r) = self.vm(vm) {
            r.instances += 1;
            if r.first_offer.is_none() {
                r.first_offer = Some(p.offer);
                r.first_market = Some(p.market);
            }
        }
    }

    /// An instance is running.
    pub fn instance_up(&mut self, vm: VmId, i: InstanceId, now: SimTime) {
        if let Some(e) = self.inst.get_mut(&i) {
            e.1 = true;
        }
        let Some(r) = self.vms.get_mut(vm.0 as usize) else { return };
        if r.serving > 0 {
            // A replacement came up while the old instance still serves.
            r.replacements += 1;
            self.replacements += 1;
        } else {
            r.serving_since = now;
            self.serving += 1;
            if r.first_running_s.is_none() {
                r.first_running_s = Some(now.as_secs_f64());
                self.first_run_total += now.as_secs_f64() - r.arrival_s;
                self.first_run_count += 1;
            }
            if let Some(lost) = r.lost_at.take() {
                r.failovers += 1;
                self.failovers += 1;
                self.ttr.push(now.since(lost).as_secs_f64());
            }
        }
        r.serving += 1;
    }

    fn instance_gone(&mut self, i: InstanceId, now: SimTime, lost: bool) {
        let Some((vm, running)) = self.inst.remove(&i) else { return };
        if !running {
            return;
        }
        let Some(r) = self.vms.get_mut(vm.0 as usize) else { return };
        r.serving = r.serving.saturating_sub(1);
        if r.serving == 0 {
            r.served_s += now.since(r.serving_since).as_secs_f64();
            self.serving = self.serving.saturating_sub(1);
            if lost && r.status == VmStatus::Active {
                r.lost_at = Some(now);
            }
        }
    }

    /// The cloud killed an instance.
    pub fn instance_lost(&mut self, i: InstanceId, now: SimTime) {
        self.instance_gone(i, now, true);
    }

    /// The engine deleted an instance.
    pub fn terminated(&mut self, _vm: VmId, i: InstanceId, now: SimTime) {
        self.instance_gone(i, now, false);
    }

    /// A spot notice reached an instance.
    pub fn notice(&mut self, i: InstanceId) {
        self.interruptions += 1;
        if let Some(&(vm, _)) = self.inst.get(&i)
            && let Some(r) = self.vm(vm)
        {
            r.interruptions += 1;
        }
    }

    /// The owner released a VM.
    pub fn released(&mut self, vm: VmId, now: SimTime) {
        if let Some(r) = self.vm(vm)
            && r.status == VmStatus::Active
        {
            r.status = VmStatus::Completed;
            r.end_s = Some(now.as_secs_f64());
            r.lost_at = None;
        }
    }

    /// The engine gave a VM up.
    pub fn rejected(&mut self, vm: VmId, reason: RejectReason, now: SimTime) {
        self.rejected += 1;
        *self.rejected_by_reason.entry(reason.as_str().to_owned()).or_default() += 1;
        if let Some(r) = self.vm(vm) {
            r.status = VmStatus::Rejected;
            r.reject_reason = Some(reason);
            r.end_s = Some(now.as_secs_f64());
            r.lost_at = None;
        }
    }

    /// Instance bills from the engine.
    pub fn add_bills(&mut self, bills: &[Bill], catalog: &Catalog) {
        for b in bills {
            self.billed += b.usd;
            self.cost_by_provider[catalog.provider_of(b.offer).index()] += b.usd;
            if engine::deploy::is_deployment_vm(b.vm) {
                let id = engine::GroupId(((b.vm.0 >> 24) & 0xffff_ffff) as u32);
                if let Some(d) = self.deps.get_mut(&id) {
                    d.cost += b.usd;
                }
            } else if let Some(r) = self.vms.get_mut(b.vm.0 as usize) {
                r.cost_usd += b.usd;
            }
        }
    }

    /// A spot price changed.
    pub fn price(&mut self, p: PricePoint) {
        self.prices.push(p);
    }

    /// A deployment was created.
    pub fn deployment(&mut self, spec: &engine::DeploymentSpec) {
        self.deps.insert(
            spec.id,
            DepRec {
                name: spec.name.clone(),
                strategy: spec.strategy.name().to_owned(),
                wanted: 0,
                running: 0,
                last: SimTime::ZERO,
                downtime: 0.0,
                degraded: 0.0,
                served: 0.0,
                asked: 0.0,
                cost: 0.0,
                open: Vec::new(),
                backups: 0,
                rpo_target: spec.disaster_recovery.as_ref().map(|b| b.rpo_target.as_secs_f64()),
                rto_target: spec.disaster_recovery.as_ref().map(|b| b.rto_target.as_secs_f64()),
            },
        );
    }

    /// A deployment moved.
    pub fn failover(
        &mut self,
        id: engine::GroupId,
        from: engine::RegionId,
        to: engine::RegionId,
        reason: engine::MoveReason,
        now: SimTime,
        c: &Catalog,
    ) {
        // The outage that caused the move: one of `from` under way at the decision.
        let outage = self.outage_start(from, now);
        let Some(d) = self.deps.get_mut(&id) else { return };
        let reason = match reason {
            engine::MoveReason::Trigger(t) => t,
            other => serde_json::to_value(&other).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        };
        d.open.push(self.dep_failovers.len());
        self.dep_failovers.push(FailoverRecord {
            time_s: now.as_secs_f64(),
            deployment: d.name.clone(),
            from: c.regions[from.idx()].name.clone(),
            to: c.regions[to.idx()].name.clone(),
            reason,
            time_to_detect_s: outage.map(|at| now.since(at).as_secs_f64()),
            time_to_recover_s: None,
            cause_start: outage.unwrap_or(now),
        });
    }

    /// The start of the outage of `region` under way at `now`, if any.
    fn outage_start(&self, region: engine::RegionId, now: SimTime) -> Option<SimTime> {
        self.outages
            .iter()
            .rev()
            .find(|(r, at, end)| *r == region && *at <= now && end.is_none_or(|e| now <= e))
            .map(|(_, at, _)| *at)
    }

    /// A replica's migration finished.
    #[allow(clippy::too_many_arguments)]
    pub fn migrated(
        &mut self,
        id: engine::GroupId,
        vm: VmId,
        kind: engine::migration::MigrationKind,
        from: engine::RegionId,
        to: engine::RegionId,
        started: SimTime,
        downtime: engine::SimDuration,
        transferred_gib: f64,
        egress_usd: f64,
        overlap: engine::SimDuration,
        now: SimTime,
        c: &Catalog,
    ) {
        let Some(d) = self.deps.get(&id) else { return };
        self.billed += egress_usd;
        self.cost_by_provider[c.regions[from.idx()].provider.index()] += egress_usd;
        let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        self.migrations.push(MigrationRecord {
            time_s: now.as_secs_f64(),
            started_s: started.as_secs_f64(),
            deployment: d.name.clone(),
            slot: (vm.0 & 0xff_ffff) as u32,
            kind,
            from: c.regions[from.idx()].name.clone(),
            to: c.regions[to.idx()].name.clone(),
            downtime_s: downtime.as_secs_f64(),
            transferred_gib,
            egress_usd,
            overlap_s: overlap.as_secs_f64(),
        });
    }

    /// A replica is being restored from backup after the loss of `from`.
    pub fn restoring(
        &mut self,
        id: engine::GroupId,
        vm: VmId,
        from: engine::RegionId,
        recovery_point: Option<SimTime>,
        restore_time: engine::SimDuration,
        now: SimTime,
        c: &Catalog,
    ) {
        let Some(d) = self.deps.get(&id) else { return };
        // The data was lost when the outage began, which may be well before the engine heard.
        let lost_at = self.outage_start(from, now).unwrap_or(now);
        self.open_restores.push((self.restores.len(), lost_at));
        self.restores.push(RestoreRecord {
            time_s: now.as_secs_f64(),
            deployment: d.name.clone(),
            slot: (vm.0 & 0xff_ffff) as u32,
            from: c.regions[from.idx()].name.clone(),
            lost_at_s: lost_at.as_secs_f64(),
            recovery_point_s: recovery_point.map(|t| t.as_secs_f64()),
            rpo_s: recovery_point.map(|t| lost_at.since(t).as_secs_f64()),
            restore_time_s: restore_time.as_secs_f64(),
            rto_s: None,
            vm,
        });
    }

    /// A deployment's backup completed.
    pub fn backup_completed(&mut self, id: engine::GroupId) {
        if let Some(d) = self.deps.get_mut(&id) {
            d.backups += 1;
        }
    }

    /// Looks at every deployment: accounts replica-time since the last look.
    pub fn probe(&mut self, now: SimTime, engine: &Engine) {
        let restores = &mut self.restores;
        self.open_restores.retain(|&(i, lost_at)| {
            let r = &mut restores[i];
            if engine.vm_serving_region(r.vm).is_none() {
                return true;
            }
            r.rto_s = Some(now.since(lost_at).as_secs_f64());
            false
        });
        for (id, d) in self.deps.iter_mut() {
            let dt = now.since(d.last).as_secs_f64();
            d.served += d.running as f64 * dt;
            d.asked += d.wanted as f64 * dt;
            if d.wanted > 0 && d.running == 0 {
                d.downtime += dt;
            }
            if d.running < d.wanted {
                d.degraded += dt;
            }
            d.last = now;
            let Some(dep) = engine.deployment(*id) else { continue };
            d.wanted = dep.slots.len() as u32;
            d.running = dep.slots.iter().filter(|s| engine.vm_serving_region(s.vm).is_some()).count() as u32;
            if d.wanted > 0 && d.running == d.wanted {
                for i in d.open.drain(..) {
                    if let Some(f) = self.dep_failovers.get_mut(i) {
                        f.time_to_recover_s = Some(now.since(f.cause_start).as_secs_f64());
                    }
                }
            }
        }
    }

    /// A fault started or ended.
    pub fn fault(&mut self, i: usize, kind: &crate::scenario::FaultKind, on: bool, now: SimTime, s: &Scenario) {
        if let crate::scenario::FaultKind::Outage { region, .. } = kind {
            if on {
                self.outages.push((*region, now, None));
            } else if let Some(o) = self.outages.iter_mut().rev().find(|o| o.0 == *region && o.2.is_none()) {
                o.2 = Some(now);
            }
        }
        if on {
            let (kind, target) = fault_label(kind, s);
            self.faults.push(FaultWindow { fault: i, kind, target, start_s: now.as_secs_f64(), end_s: f64::NAN });
        } else if let Some(w) = self.faults.iter_mut().rev().find(|w| w.fault == i && w.end_s.is_nan()) {
            w.end_s = now.as_secs_f64();
        }
    }

    /// Takes a time-series sample.
    pub fn sample(&mut self, now: SimTime, engine: &Engine) {
        let snap = engine.snapshot();
        for (id, d) in &self.deps {
            self.dep_samples.push(DeploymentSample {
                time_s: now.as_secs_f64(),
                deployment: d.name.clone(),
                replicas_wanted: d.wanted,
                replicas_running: d.running,
                cost_rate_usd_per_h: snap.group_spend_rate(*id),
            });
        }
        let instances = snap.spread.by_provider.map(u64::from);
        self.peak_instances = self.peak_instances.max(instances.iter().sum());
        self.samples.push(Sample {
            time_s: now.as_secs_f64(),
            serving_vms: self.serving,
            instances,
            cost_rate_usd_per_h: snap.spend_rate_by_provider(),
            commitment_fees_usd_per_h: snap.cost.commitment_fees_per_h(),
            requests_total: self.vms.len() as u64,
            rejected_total: self.rejected,
            failovers_total: self.failovers,
            interruptions_total: self.interruptions,
            billed_usd: self.billed,
        });
    }

    /// Closes the books.
    pub fn finish(
        mut self,
        s: &Scenario,
        engine: &Engine,
        end: SimTime,
        events: u64,
        cloud: &CloudStats,
    ) -> RunResults {
        let end_s = end.as_secs_f64();
        let (mut served, mut requested, mut served_count) = (0.0, 0.0, 0u64);
        for r in &mut self.vms {
            if r.serving > 0 {
                r.served_s += end.since(r.serving_since).as_secs_f64();
                r.serving = 0;
            }
            let want_end = r.lifetime_s.map_or(end_s, |l| (r.arrival_s + l).min(end_s));
            r.requested_s = (want_end - r.arrival_s).max(0.0);
            served += r.served_s;
            requested += r.requested_s;
            if r.first_running_s.is_some() {
                served_count += 1;
            }
        }
        for w in &mut self.faults {
            if w.end_s.is_nan() {
                w.end_s = end_s;
            }
        }
        let fees = s.cost.commitment_fees_per_h() * end.as_secs_f64() / 3600.0;
        let mut ttr = self.ttr.clone();
        ttr.sort_by(f64::total_cmp);
        let p99 = (!ttr.is_empty()).then(|| ttr[((ttr.len() as f64 * 0.99).ceil() as usize).clamp(1, ttr.len()) - 1]);
        let summary = Summary {
            scenario: s.name.clone(),
            seed: s.seed,
            policy: engine.config().policy.name().to_owned(),
            duration_s: end_s,
            total_cost_usd: self.billed + fees,
            cost_by_provider_usd: Provider::ALL
                .iter()
                .map(|p| (p.as_str().to_owned(), self.cost_by_provider[p.index()]))
                .collect(),
            commitment_fees_usd: fees,
            availability: if requested > 0.0 { served / requested } else { 1.0 },
            requests_total: self.vms.len() as u64,
            requests_served: served_count,
            requests_rejected: self.rejected,
            rejected_by_reason: std::mem::take(&mut self.rejected_by_reason),
            failovers: self.failovers,
            mean_time_to_recover_s: (!ttr.is_empty()).then(|| ttr.iter().sum::<f64>() / ttr.len() as f64),
            p99_time_to_recover_s: p99,
            spot_interruptions: self.interruptions,
            replacements: self.replacements,
            migrations: self.migrations.len() as u64,
            migration_downtime_s: self.migrations.iter().fold(0.0, |a, m| a + m.downtime_s),
            migration_egress_usd: self.migrations.iter().fold(0.0, |a, m| a + m.egress_usd),
            migrations_by_kind: migration_totals(self.migrations.iter()),
            backups_completed: self.deps.values().map(|d| d.backups).sum(),
            restores: self.restores.len() as u64,
            mean_time_to_first_run_s: (self.first_run_count > 0)
                .then(|| self.first_run_total / self.first_run_count as f64),
            peak_instances: self.peak_instances,
            cloud: cloud.clone(),
            faults: self.faults,
            deployments: self
                .deps
                .values()
                .map(|d| deployment_summary(d, &self.dep_failovers, &self.migrations, &self.restores))
                .collect(),
            events_processed: events,
            cache: None,
        };
        RunResults {
            summary,
            vms: self.vms,
            samples: self.samples,
            prices: self.prices,
            failovers: self.dep_failovers,
            deployment_samples: self.dep_samples,
            migrations: self.migrations,
            restores: self.restores,
        }
    }
}

/// A fault's kind and target, as a scenario names them.
fn fault_label(kind: &crate::scenario::FaultKind, s: &Scenario) -> (String, String) {
    use crate::scenario::FaultKind as F;
    let region = |r: &engine::RegionId| s.catalog.regions[r.idx()].name.clone();
    let deployment = |g: &engine::GroupId| {
        s.deployments.iter().find(|d| d.spec.id == *g).map_or_else(String::new, |d| d.spec.name.clone())
    };
    match kind {
        F::Outage { region: r, zone: None, .. } => ("region-outage".into(), region(r)),
        F::Outage { region: r, zone: Some(z), .. } => {
            ("zone-outage".into(), format!("{}/{}", region(r), s.catalog.zones[z.idx()].name))
        }
        F::SpotStorm { regions, .. } => ("spot-storm".into(), regions.iter().map(region).collect::<Vec<_>>().join(",")),
        F::PriceSpike { region: r, .. } => ("price-spike".into(), region(r)),
        F::CapacityCrunch { region: r, .. } => ("capacity-crunch".into(), region(r)),
        F::Metrics { deployment: g, .. } => ("metrics".into(), deployment(g)),
        F::ManualFailover { deployment: g, .. } => ("manual-failover".into(), deployment(g)),
    }
}

fn mean_p99(mut v: Vec<f64>) -> (Option<f64>, Option<f64>) {
    if v.is_empty() {
        return (None, None);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let p99 = v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1];
    (Some(mean), Some(p99))
}

fn deployment_summary(
    d: &DepRec,
    failovers: &[FailoverRecord],
    migrations: &[MigrationRecord],
    restores: &[RestoreRecord],
) -> DeploymentSummary {
    let mine: Vec<&FailoverRecord> = failovers.iter().filter(|f| f.deployment == d.name).collect();
    let moved: Vec<&MigrationRecord> = migrations.iter().filter(|m| m.deployment == d.name).collect();
    let restored: Vec<&RestoreRecord> = restores.iter().filter(|r| r.deployment == d.name).collect();
    let worst = |v: Vec<Option<f64>>| v.into_iter().flatten().max_by(f64::total_cmp);
    let achieved_rpo = worst(restored.iter().map(|r| r.rpo_s).collect());
    // A restore that has not served by the end counts as missing its RTO.
    let achieved_rto = worst(restored.iter().map(|r| r.rto_s).collect());
    let data_lost = restored.iter().any(|r| r.recovery_point_s.is_none());
    let met = |target: Option<f64>, ok: &dyn Fn(&RestoreRecord, f64) -> bool| {
        target.filter(|_| !restored.is_empty()).map(|t| restored.iter().all(|r| ok(r, t)))
    };
    let (mean_detect, p99_detect) = mean_p99(mine.iter().filter_map(|f| f.time_to_detect_s).collect());
    let (mean_recover, p99_recover) = mean_p99(mine.iter().filter_map(|f| f.time_to_recover_s).collect());
    DeploymentSummary {
        name: d.name.clone(),
        strategy: d.strategy.clone(),
        failovers: mine.len() as u64,
        mean_time_to_detect_s: mean_detect,
        p99_time_to_detect_s: p99_detect,
        mean_time_to_recover_s: mean_recover,
        p99_time_to_recover_s: p99_recover,
        downtime_s: d.downtime,
        degraded_s: d.degraded,
        availability: if d.asked > 0.0 { d.served / d.asked } else { 1.0 },
        cost_usd: d.cost + moved.iter().fold(0.0, |a, m| a + m.egress_usd),
        migrations: moved.len() as u64,
        migration_downtime_s: moved.iter().fold(0.0, |a, m| a + m.downtime_s),
        migration_egress_usd: moved.iter().fold(0.0, |a, m| a + m.egress_usd),
        backups: d.backups,
        restores: restored.len() as u64,
        rpo_target_s: d.rpo_target,
        rto_target_s: d.rto_target,
        achieved_rpo_s: achieved_rpo,
        achieved_rto_s: achieved_rto,
        rpo_met: met(d.rpo_target, &|r, t| r.rpo_s.is_some_and(|x| x <= t)),
        rto_met: met(d.rto_target, &|r, t| r.rto_s.is_some_and(|x| x <= t)),
        data_lost,
    }
}

/// Human description of an offer: `region/zone/type` or `region/zone/pool`.
pub fn offer_label(c: &Catalog, o: OfferId) -> String {
    let offer = &c.offers[o.idx()];
    let what = match offer.kind {
        OfferKind::Instance(t) => c.instance_types[t.idx()].name.as_str(),
        OfferKind::Pool(p) => c.pools[p.idx()].name.as_str(),
    };
    format!("{}/{}/{}", c.regions[offer.region.idx()].name, c.zones[offer.zone.idx()].name, what)
}
