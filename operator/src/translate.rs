//! The one place where Kubernetes objects become engine types: a [`MultiCloudVMSpec`] (and the
//! VMTemplate it names) becomes the engine's [`DeploymentSpec`].
//!
//! The conversion follows the simulator's scenario checker (`sim/src/scenario/check.rs`) key for
//! key — same defaults, same parsing of `"95%"`, `"cpu:80%"`, `"latency:200ms"`, `"1.00"` and
//! durations, same order of locations — so that a manifest gives the engine the same deployment in
//! the simulator and in production (`tests/it/equivalence.rs` checks this against the simulator on
//! every shipped scenario). Every problem is collected, each naming its field and what is allowed;
//! nothing here panics.
//!
//! Where the operator accepts more than the simulator (a VMTemplate for the replica's size,
//! active-active over `primary` + `secondary` when no weighted `locations` are given, a disabled
//! `disasterRecovery` without its other keys), it says so in the item's docs.

use std::collections::BTreeMap;

use engine::deploy::{
    ActiveActiveConfig, ActivePassiveConfig, BurstConfig, CostOptimizedConfig, SpotRecovery as EngineSpotRecovery,
    Strategy, Trigger as EngineTrigger, TriggerKind,
};
use engine::dr::{BackupPolicy, Schedule};
use engine::migration::{self, MigrationKind, MigrationPolicy as EngineMigrationPolicy};
use engine::{AutoscalePolicy, DeploymentSpec, GroupId, RegionId, Resources, Rollout, SimDuration, VmId, VmRequest};

use crate::catalog::gib_to_mib;
use crate::crd::multicloudvm::{DisasterRecovery, MigrationPolicy, MultiCloudVMSpec, Trigger};
use crate::crd::vmcluster::VMClusterSpec;
use crate::crd::vmtemplate::VMTemplateSpec;
use crate::crd::{NumOrStr, ObjectRef, RequestLimit};

/// One thing wrong with a spec: the field (`spec.deploymentStrategy.primary`) and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Path of the field.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem of a spec, joined for a condition message.
pub fn describe(problems: &[Problem]) -> String {
    problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; ")
}

/// Per-object credentials are refused: a MultiCloudVM naming `spec.providers[].credentialsSecret`
/// gets a problem for each, and nothing is deployed. The operator creates VMs only with the
/// credentials of its own providers file (operator-level Secrets mounted into its pod), so it needs
/// no right to read Secrets in the users' namespaces, and a VM is never billed to an account the
/// object's author did not mean (which using the operator's credentials in place of the named
/// ones would do). operator/README.md ("Per-object credentials") says why.
pub fn unsupported_credentials(spec: &MultiCloudVMSpec) -> Vec<Problem> {
    spec.providers
        .iter()
        .enumerate()
        .filter(|(_, p)| p.credentials_secret.is_some())
        .map(|(i, _)| Problem {
            field: format!("spec.providers[{i}].credentialsSecret"),
            message: "per-object credentials are not supported: the operator creates VMs with the credentials of \
                      its providers file only; remove credentialsSecret (the account is chosen by the operator's \
                      administrators)"
                .into(),
        })
        .collect()
}

/// Default replica size when neither `vmTemplate` nor `vcpu` is given.
pub const DEFAULT_VCPU: u32 = 2;
/// Default replica memory, GiB (the simulator's default too).
pub const DEFAULT_MEMORY_GIB: f64 = 4.0;

/// Converts a MultiCloudVM spec into the engine's deployment `id` named `name`. `regions` maps
/// region names and aliases to the catalog's ids (`region_count` of them); `template` is the
/// VMTemplate that `spec.vmTemplate` names, if it was found.
pub fn deployment_spec(
    id: GroupId,
    name: &str,
    spec: &MultiCloudVMSpec,
    template: Option<&VMTemplateSpec>,
    regions: &BTreeMap<String, RegionId>,
    region_count: usize,
) -> Result<DeploymentSpec, Vec<Problem>> {
    let mut t = Translator { problems: Vec::new(), regions };
    let out = t.deployment(id, name, spec, template, region_count);
    match out {
        Some(d) if t.problems.is_empty() => Ok(d),
        _ => {
            if t.problems.is_empty() {
                t.bad("spec", "could not be converted");
            }
            Err(t.problems)
        }
    }
}

struct Translator<'a> {
    problems: Vec<Problem>,
    regions: &'a BTreeMap<String, RegionId>,
}

impl Translator<'_> {
    fn bad(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem { field: field.to_owned(), message: message.into() });
    }

    fn duration(&mut self, key: &str, text: &str) -> Option<SimDuration> {
        match SimDuration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.bad(key, e.to_string());
                None
            }
        }
    }

    fn opt_duration(&mut self, key: &str, text: Option<&str>, default: SimDuration) -> SimDuration {
        match text {
            Some(t) => self.duration(key, t).unwrap_or(default),
            None => default,
        }
    }

    fn number(&mut self, key: &str, v: f64, lo: f64, hi: f64) -> f64 {
        if !(v.is_finite() && v >= lo && v <= hi) {
            let range = if hi == f64::MAX { format!(">= {lo}") } else { format!("between {lo} and {hi}") };
            self.bad(key, format!("must be a number {range} (got {v})"));
        }
        v
    }

    fn region(&mut self, key: &str, name: &str) -> Option<RegionId> {
        let r = self.regions.get(name).copied();
        if r.is_none() {
            let known: Vec<&str> = self.regions.keys().map(String::as_str).collect();
            self.bad(key, format!("no region named {name:?}; regions are: {}", known.join(", ")));
        }
        r
    }

    /// A share written `0.95`, `"95%"` or `"cpu:80%"` (the prefix is ignored here).
    fn fraction(&mut self, key: &str, v: &NumOrStr) -> Option<f64> {
        let parsed = match v {
            NumOrStr::Num(n) => Some(*n),
            NumOrStr::Str(s) => {
                let t = s.rsplit(':').next().unwrap_or(s).trim();
                match t.strip_suffix('%') {
                    Some(p) => p.trim().parse::<f64>().ok().map(|x| x / 100.0),
                    None => t.parse::<f64>().ok(),
                }
            }
        };
        match parsed.filter(|x| x.is_finite() && (0.0..=1.0).contains(x)) {
            Some(x) => Some(x),
            None => {
                self.bad(key, "must be a share such as 0.95 or \"95%\" (between 0 and 1)");
                None
            }
        }
    }

    fn money(&mut self, key: &str, v: &NumOrStr) -> Option<f64> {
        let parsed = match v {
            NumOrStr::Num(n) => Some(*n),
            NumOrStr::Str(s) => s.trim().trim_start_matches('$').parse::<f64>().ok(),
        };
        match parsed.filter(|x| x.is_finite() && *x >= 0.0) {
            Some(x) => Some(x),
            None => {
                self.bad(key, "must be an amount in $/h such as 1.00 or \"1.00\"");
                None
            }
        }
    }

    /// The replica's size: from the VMTemplate, else `vcpu`/`memoryGib`/`gpu`, else the defaults.
    fn resources(&mut self, spec: &MultiCloudVMSpec, template: Option<&VMTemplateSpec>) -> (u32, f64, u32) {
        let inline = spec.vcpu.is_some() || spec.memory_gib.is_some() || spec.gpu.is_some();
        match template {
            Some(t) => {
                if inline {
                    self.bad("spec.vmTemplate", "give a vmTemplate or vcpu/memoryGib/gpu, not both");
                }
                self.template_resources("vmTemplate: spec.config.resources", t)
            }
            None => {
                let vcpu = spec.vcpu.unwrap_or(DEFAULT_VCPU);
                if vcpu == 0 {
                    self.bad("spec.vcpu", "must be at least 1");
                }
                (vcpu, spec.memory_gib.unwrap_or(DEFAULT_MEMORY_GIB), spec.gpu.unwrap_or(0))
            }
        }
    }

    /// A VMTemplate's vCPUs, memory (GiB) and GPUs; problems are reported under `key`.
    fn template_resources(&mut self, key: &str, t: &VMTemplateSpec) -> (u32, f64, u32) {
        let r = &t.config.resources;
        let vcpu = match quantity_of(r.cpu.as_ref()) {
            None => DEFAULT_VCPU,
            Some(Ok(c)) if c > 0.0 && c <= 1.0e6 => c.ceil() as u32,
            Some(_) => {
                self.bad(&format!("{key}.cpu"), "must be a CPU quantity such as \"2\" or \"1500m\", above 0");
                DEFAULT_VCPU
            }
        };
        let memory_gib = match quantity_of(r.memory.as_ref()) {
            None => DEFAULT_MEMORY_GIB,
            Some(Ok(b)) if b > 0.0 && b / GIB <= 1.0e6 => b / GIB,
            Some(_) => {
                self.bad(&format!("{key}.memory"), "must be a memory quantity such as \"4Gi\" or \"4096Mi\", above 0");
                DEFAULT_MEMORY_GIB
            }
        };
        let gpu = match quantity_of(r.gpu.as_ref()) {
            None => 0,
            Some(Ok(g)) if (0.0..=1024.0).contains(&g) && g.fract() == 0.0 => g as u32,
            Some(_) => {
                self.bad(&format!("{key}.gpu"), "must be a whole number of GPUs");
                0
            }
        };
        (vcpu, memory_gib, gpu)
    }

    fn deployment(
        &mut self,
        id: GroupId,
        name: &str,
        d: &MultiCloudVMSpec,
        template: Option<&VMTemplateSpec>,
        region_count: usize,
    ) -> Option<DeploymentSpec> {
        let (vcpu, memory_gib, gpu) = self.resources(d, template);
        let st = &d.deployment_strategy;
        let sk = "spec.deploymentStrategy";
        let dur = |t: &mut Self, k: &str, v: &Option<String>, default: u64| {
            t.opt_duration(&format!("{sk}.{k}"), v.as_deref(), SimDuration::from_secs(default))
        };
        let strategy = match st.kind.as_str() {
            "active-passive" => {
                let Some(p) = st.primary.as_deref() else {
                    self.bad(&format!("{sk}.primary"), "active-passive needs a primary location");
                    return None;
                };
                let primary = self.region(&format!("{sk}.primary"), p)?;
                let secondary: Vec<RegionId> = st
                    .secondary
                    .iter()
                    .enumerate()
                    .filter_map(|(j, n)| self.region(&format!("{sk}.secondary[{j}]"), n))
                    .collect();
                if secondary.is_empty() {
                    self.bad(&format!("{sk}.secondary"), "active-passive needs at least one secondary location");
                }
                Strategy::ActivePassive(ActivePassiveConfig {
                    primary,
                    secondary,
                    failback: st.failback.unwrap_or(false),
                    hold_down: dur(self, "holdDown", &st.hold_down, 900),
                })
            }
            "active-active" => {
                let mut locations = Vec::new();
                for (j, w) in st.locations.iter().enumerate() {
                    if let Some(r) = self.region(&format!("{sk}.locations[{j}].region"), &w.region) {
                        let weight =
                            self.number(&format!("{sk}.locations[{j}].weight"), w.weight.unwrap_or(1.0), 0.0, 1.0e6);
                        locations.push((r, weight));
                    }
                }
                // The v1 vocabulary names locations as primary + secondary: weight 1 each.
                if st.locations.is_empty() {
                    if let Some(p) = st.primary.as_deref()
                        && let Some(r) = self.region(&format!("{sk}.primary"), p)
                    {
                        locations.push((r, 1.0));
                    }
                    for (j, n) in st.secondary.iter().enumerate() {
                        if let Some(r) = self.region(&format!("{sk}.secondary[{j}]"), n) {
                            locations.push((r, 1.0));
                        }
                    }
                }
                if locations.is_empty() {
                    self.bad(
                        &format!("{sk}.locations"),
                        "active-active needs locations: [{region: ..., weight: 1}, ...] or a primary and secondaries",
                    );
                    return None;
                }
                Strategy::ActiveActive(ActiveActiveConfig {
                    locations,
                    restore_after: dur(self, "restoreAfter", &st.restore_after, 600),
                })
            }
            "burst" => {
                let Some(p) = st.primary.as_deref() else {
                    self.bad(&format!("{sk}.primary"), "burst needs a primary location");
                    return None;
                };
                let primary = self.region(&format!("{sk}.primary"), p)?;
                let targets: Vec<RegionId> = st
                    .targets
                    .iter()
                    .enumerate()
                    .filter_map(|(j, n)| self.region(&format!("{sk}.targets[{j}]"), n))
                    .collect();
                Strategy::Burst(BurstConfig {
                    primary,
                    targets,
                    primary_max: st.primary_max,
                    scale_in_after: dur(self, "scaleInAfter", &st.scale_in_after, 600),
                    step: st.step.unwrap_or(1),
                    max_replicas: st.max_replicas,
                })
            }
            "cost-optimized" => {
                // Secondaries first, then the primary: the simulator's order (it breaks ties).
                let locations: Vec<RegionId> = st
                    .secondary
                    .iter()
                    .chain(st.primary.iter())
                    .enumerate()
                    .filter_map(|(j, n)| self.region(&format!("{sk}.locations[{j}]"), n))
                    .collect();
                let budget = match &st.disruption_budget {
                    Some(v) => self.fraction(&format!("{sk}.disruptionBudget"), v).unwrap_or(0.1),
                    None => 0.1,
                };
                Strategy::CostOptimized(CostOptimizedConfig {
                    locations,
                    horizon: dur(self, "horizon", &st.horizon, 24 * 3600),
                    min_saving_ratio: self.number(
                        &format!("{sk}.minSavingRatio"),
                        st.min_saving_ratio.unwrap_or(2.0),
                        0.0,
                        1.0e6,
                    ),
                    disruption_budget: budget,
                    window: dur(self, "window", &st.window, 3600),
                    data_gib: self.number(&format!("{sk}.dataGib"), st.data_gib.unwrap_or(50.0), 0.0, 1.0e7),
                    downtime: dur(self, "downtime", &st.downtime, 120),
                    downtime_cost_per_h: self.number(
                        &format!("{sk}.downtimeCostPerHour"),
                        st.downtime_cost_per_hour.unwrap_or(10.0),
                        0.0,
                        1.0e7,
                    ),
                    overlap: dur(self, "overlap", &st.overlap, 600),
                })
            }
            other => {
                self.bad(
                    &format!("{sk}.type"),
                    format!("unknown strategy {other:?}; strategies are: active-passive, active-active, burst, cost-optimized"),
                );
                return None;
            }
        };
        let mut triggers = Vec::new();
        for (j, t) in st.failover_triggers.iter().enumerate() {
            triggers.extend(self.trigger(&format!("{sk}.failoverTriggers[{j}]"), t));
        }
        let cost_optimized = matches!(strategy, Strategy::CostOptimized(_));
        let migration = d
            .migration_policy
            .as_ref()
            .and_then(|m| self.migration_policy("spec.migrationPolicy", m, memory_gib, &mut triggers, cost_optimized));
        let disaster_recovery =
            d.disaster_recovery.as_ref().and_then(|r| self.disaster_recovery("spec.disasterRecovery", r));
        let co = d.cost_optimization.as_ref();
        let max_cost_per_h = co
            .and_then(|c| c.max_cost_per_hour.as_ref())
            .and_then(|v| self.money("spec.costOptimization.maxCostPerHour", v));
        let mut request = VmRequest::new(
            VmId(0),
            Resources { vcpu, memory_mib: gib_to_mib(self.number("spec.memoryGib", memory_gib, 0.0, 1.0e6)), gpu },
        );
        request.spot_allowed = co.and_then(|c| c.use_spot_instances).unwrap_or(false);
        request.users_near = d.users_near.as_ref().and_then(|u| self.region("spec.usersNear", u));
        request.egress_gib_per_h = self.number("spec.egressGibPerH", d.egress_gib_per_h.unwrap_or(0.0), 0.0, 1.0e6);
        let sr = d.spot_recovery.as_ref();
        let spot = EngineSpotRecovery {
            on_demand_after: sr.and_then(|s| s.on_demand_after).unwrap_or(2),
            back_to_spot_after: self.opt_duration(
                "spec.spotRecovery.backToSpotAfter",
                sr.and_then(|s| s.back_to_spot_after.as_deref()),
                SimDuration::from_secs(3600),
            ),
        };
        let out = DeploymentSpec {
            id,
            name: name.to_owned(),
            replicas: d.replicas.unwrap_or(1),
            template: request,
            strategy,
            triggers,
            cooldown: self.opt_duration("spec.cooldown", d.cooldown.as_deref(), SimDuration::from_secs(600)),
            evaluate_every: self.opt_duration(
                "spec.evaluateEvery",
                d.evaluate_every.as_deref(),
                SimDuration::from_secs(30),
            ),
            max_cost_per_h,
            spot,
            migration,
            disaster_recovery,
            rollout: None,
        };
        if let Err(m) = out.validate(region_count) {
            self.bad("spec", m);
        }
        Some(out)
    }

    /// One failover or migration trigger.
    fn trigger(&mut self, tk: &str, t: &Trigger) -> Option<EngineTrigger> {
        let duration = self.opt_duration(&format!("{tk}.duration"), t.duration.as_deref(), SimDuration::from_secs(300));
        let need = |s: &mut Self| {
            s.bad(&format!("{tk}.threshold"), "this trigger needs a threshold");
            None
        };
        let th = format!("{tk}.threshold");
        let kind = match t.kind.as_str() {
            "availability" => match &t.threshold {
                Some(v) => self.fraction(&th, v).map(|threshold| TriggerKind::Availability { threshold }),
                None => need(self),
            },
            "performance" | "cpu" => match &t.threshold {
                Some(NumOrStr::Str(s)) if s.starts_with("latency:") || s.starts_with("p99:") => {
                    let v = s.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
                    self.duration(&th, v).map(|d| TriggerKind::Latency { threshold_ms: d.as_millis() as f64 })
                }
                Some(v) => self.fraction(&th, v).map(|threshold| TriggerKind::Cpu { threshold }),
                None => need(self),
            },
            "latency" => match &t.threshold {
                Some(NumOrStr::Str(s)) => {
                    self.duration(&th, s).map(|d| TriggerKind::Latency { threshold_ms: d.as_millis() as f64 })
                }
                Some(NumOrStr::Num(ms)) => {
                    Some(TriggerKind::Latency { threshold_ms: self.number(&th, *ms, 0.0, 1.0e9) })
                }
                None => need(self),
            },
            "spot-interruption" => {
                let count = match &t.threshold {
                    Some(NumOrStr::Num(n)) if *n >= 1.0 && n.fract() == 0.0 => *n as u32,
                    None => 1,
                    Some(_) => {
                        self.bad(&th, "a spot-interruption threshold is a whole number of notices >= 1");
                        1
                    }
                };
                Some(TriggerKind::SpotInterruption { count })
            }
            "cost" => Some(TriggerKind::Cost),
            "api-error-rate" => match &t.threshold {
                Some(v) => self.fraction(&th, v).map(|threshold| TriggerKind::ApiErrorRate { threshold }),
                None => need(self),
            },
            other => {
                self.bad(
                    &format!("{tk}.type"),
                    format!("unknown trigger {other:?}; triggers are: availability, performance (cpu:80% or latency:200ms), cpu, latency, spot-interruption, cost, api-error-rate"),
                );
                None
            }
        };
        kind.map(|kind| EngineTrigger { kind, duration })
    }

    /// `migrationPolicy`: the kind and model of a move, a cost threshold (cost-optimized only) and
    /// performance triggers, which join the failover triggers.
    fn migration_policy(
        &mut self,
        key: &str,
        m: &MigrationPolicy,
        memory_gib: f64,
        triggers: &mut Vec<EngineTrigger>,
        cost_optimized: bool,
    ) -> Option<EngineMigrationPolicy> {
        let kind = match m.kind.as_str() {
            "live" => MigrationKind::Live,
            "warm" => MigrationKind::Warm,
            "cold" => MigrationKind::Cold,
            other => {
                self.bad(
                    &format!("{key}.type"),
                    format!("unknown migration type {other:?}; types are: live, warm, cold"),
                );
                return None;
            }
        };
        let mut policy = EngineMigrationPolicy::new(kind);
        let num = |s: &mut Self, k: &str, v: Option<f64>, default: f64, lo: f64, hi: f64| match v {
            Some(v) => s.number(&format!("{key}.{k}"), v, lo, hi),
            None => default,
        };
        let p = policy.params;
        policy.params.memory_gib = num(self, "memoryGib", m.memory_gib, memory_gib, 0.001, 1.0e6);
        policy.params.disk_gib = num(self, "diskGib", m.disk_gib, p.disk_gib, 0.0, 1.0e7);
        policy.params.dirty_rate_gib_per_s =
            num(self, "dirtyRateGibPerS", m.dirty_rate_gib_per_s, p.dirty_rate_gib_per_s, 0.0, 1.0e6);
        policy.params.bandwidth_gib_per_s =
            num(self, "bandwidthGibPerS", m.bandwidth_gib_per_s, p.bandwidth_gib_per_s, 1e-6, 1.0e6);
        policy.cross_cloud_bandwidth_gib_per_s = num(
            self,
            "crossCloudBandwidthGibPerS",
            m.cross_cloud_bandwidth_gib_per_s,
            policy.cross_cloud_bandwidth_gib_per_s,
            1e-6,
            1.0e6,
        );
        if let Some(r) = m.max_precopy_rounds {
            policy.params.max_precopy_rounds = r.min(migration::MAX_PRECOPY_ROUNDS);
            if r > migration::MAX_PRECOPY_ROUNDS {
                self.bad(&format!("{key}.maxPrecopyRounds"), "must be at most 1000");
            }
        }
        // The downtime limit (QEMU's `downtime-limit`) becomes the stop-and-copy threshold: what
        // the link moves in that time.
        let limit = self.opt_duration(
            &format!("{key}.downtimeLimit"),
            m.downtime_limit.as_deref(),
            SimDuration::from_millis(300),
        );
        policy.params.stop_copy_threshold_gib = policy.params.bandwidth_gib_per_s * limit.as_secs_f64();
        policy.params.pause_overhead =
            self.opt_duration(&format!("{key}.pauseOverhead"), m.pause_overhead.as_deref(), p.pause_overhead);
        policy.params.switch_over =
            self.opt_duration(&format!("{key}.switchOver"), m.switch_over.as_deref(), p.switch_over);
        policy.params.snapshot_rate_gib_per_s =
            num(self, "snapshotRateGibPerS", m.snapshot_rate_gib_per_s, p.snapshot_rate_gib_per_s, 1e-6, 1.0e6);
        policy.params.boot_time = self.opt_duration(&format!("{key}.bootTime"), m.boot_time.as_deref(), p.boot_time);
        policy.params.shared_storage = m.shared_storage.unwrap_or(false);
        for (j, t) in m.triggers.iter().enumerate() {
            let tk = format!("{key}.triggers[{j}]");
            if t.kind == "cost" {
                if !cost_optimized {
                    self.bad(
                        &format!("{tk}.type"),
                        "a cost migration trigger needs the cost-optimized strategy, which makes the cost moves",
                    );
                    continue;
                }
                policy.cost_threshold = match &t.threshold {
                    Some(v) => self.fraction(&format!("{tk}.threshold"), v),
                    None => {
                        self.bad(
                            &format!("{tk}.threshold"),
                            "a cost trigger needs a threshold: the saving, as a share of the current price, e.g. \"25%\"",
                        );
                        None
                    }
                };
                continue;
            }
            triggers.extend(self.trigger(&tk, t));
        }
        if let Err(e) = policy.validate() {
            self.bad(key, e);
            return None;
        }
        Some(policy)
    }

    /// `disasterRecovery`: the backup policy, `None` when `enabled: false` (then the other keys
    /// may be left out).
    fn disaster_recovery(&mut self, key: &str, r: &DisasterRecovery) -> Option<BackupPolicy> {
        let disabled = r.enabled == Some(false);
        let required = |s: &mut Self, k: &str, v: Option<&String>, what: &str| -> Option<String> {
            if v.is_none() && !disabled {
                s.bad(&format!("{key}.{k}"), format!("is required: {what}"));
            }
            v.cloned()
        };
        let rto_text = required(self, "rto", r.rto.as_ref(), "the recovery time objective, such as \"30m\"");
        let rpo_text = required(self, "rpo", r.rpo.as_ref(), "the recovery point objective, such as \"15m\"");
        let rto = rto_text.and_then(|t| self.duration(&format!("{key}.rto"), &t));
        let rpo = rpo_text.and_then(|t| self.duration(&format!("{key}.rpo"), &t));
        let bk = format!("{key}.backupStrategy");
        let Some(b) = &r.backup_strategy else {
            if !disabled {
                self.bad(&bk, "is required: { type, schedule, target }");
            }
            return None;
        };
        let schedule_text = required(
            self,
            "backupStrategy.schedule",
            b.schedule.as_ref(),
            "a cron expression, such as \"*/15 * * * *\"",
        );
        let schedule = schedule_text.and_then(|t| match Schedule::parse(&t) {
            Ok(s) => Some(s),
            Err(e) => {
                self.bad(&format!("{bk}.schedule"), e);
                None
            }
        });
        let target_text = required(self, "backupStrategy.target", b.target.as_ref(), "the region backups go to");
        let target = target_text.and_then(|t| self.region(&format!("{bk}.target"), &t));
        let full_every = match (b.kind.as_deref(), b.full_every) {
            (Some("full"), None) => 1,
            (Some("full"), Some(_)) => {
                self.bad(
                    &format!("{bk}.fullEvery"),
                    "a full backup strategy takes every backup in full; fullEvery is for incremental",
                );
                1
            }
            (Some("incremental") | None, n) => n.unwrap_or(7),
            (Some(other), _) => {
                self.bad(&format!("{bk}.type"), format!("unknown backup type {other:?}; types are: full, incremental"));
                1
            }
        };
        if full_every == 0 {
            self.bad(&format!("{bk}.fullEvery"), "must be at least 1");
        }
        let retention = b.retention.unwrap_or(14);
        if retention == 0 {
            self.bad(&format!("{bk}.retention"), "must keep at least 1 backup");
        }
        let data_gib = self.number(&format!("{bk}.dataGib"), b.data_gib.unwrap_or(50.0), 0.0, 1.0e7);
        let change =
            self.number(&format!("{bk}.changeRateGibPerHour"), b.change_rate_gib_per_hour.unwrap_or(1.0), 0.0, 1.0e6);
        let bandwidth =
            self.number(&format!("{bk}.bandwidthGibPerS"), b.bandwidth_gib_per_s.unwrap_or(0.1), 1e-6, 1.0e6);
        if disabled {
            return None;
        }
        Some(BackupPolicy {
            schedule: schedule?,
            full_every: full_every.max(1),
            retention: retention.max(1),
            target_region: target?,
            data_gib,
            change_rate_gib_per_h: change,
            bandwidth_gib_per_s: bandwidth,
            rpo_target: rpo?,
            rto_target: rto?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// VMCluster

/// What a VMCluster's `spec.template` names.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterTemplate {
    /// A VMTemplate to read (`{name, namespace}`, or just its name as a string).
    Named(ObjectRef),
    /// A VMTemplate spec written inline (`{config: ...}`, or `{spec: {config: ...}}`).
    Inline(Box<VMTemplateSpec>),
    /// No template: replicas of the default size (2 vCPU, 4 GiB).
    Default,
}

/// Reads a VMCluster's `spec.template`.
pub fn cluster_template(spec: &VMClusterSpec) -> Result<ClusterTemplate, Problem> {
    let bad = |message: String| Problem { field: "spec.template".into(), message };
    let shapes = "a VMTemplate reference {name, namespace} or an inline VMTemplate spec {config: {resources: ...}}";
    let Some(v) = spec.template.as_ref().map(|t| &t.0) else { return Ok(ClusterTemplate::Default) };
    match v {
        serde_json::Value::Null => Ok(ClusterTemplate::Default),
        serde_json::Value::String(name) if !name.is_empty() => {
            Ok(ClusterTemplate::Named(ObjectRef { name: name.clone(), namespace: None }))
        }
        serde_json::Value::Object(o) => {
            let inline = o.get("spec").filter(|s| s.get("config").is_some()).or(o.get("config").map(|_| v));
            match (inline, o.get("name")) {
                (Some(_), Some(_)) => Err(bad(format!("give {shapes}, not both"))),
                (Some(t), None) => serde_json::from_value::<VMTemplateSpec>(t.clone())
                    .map(|t| ClusterTemplate::Inline(Box::new(t)))
                    .map_err(|e| bad(format!("is not a VMTemplate spec: {e}"))),
                (None, Some(_)) => serde_json::from_value::<ObjectRef>(v.clone())
                    .map(ClusterTemplate::Named)
                    .map_err(|e| bad(format!("is not a reference {{name, namespace}}: {e}"))),
                (None, None) => Err(bad(format!("must be {shapes}"))),
            }
        }
        _ => Err(bad(format!("must be {shapes}"))),
    }
}

/// The HorizontalPodAutoscaler's default target, percent.
pub const DEFAULT_TARGET_CPU_PERCENT: f64 = 80.0;

/// A VMCluster's `autoScaling` as the engine's [`AutoscalePolicy`]; `None` when it has none or
/// `enabled: false` (when the block is given without `enabled`, it is on). `maxReplicas` is
/// required; `minReplicas` defaults to 1 and `targetCpuUtilization` to 80 (percent, written
/// `70` or `"70%"`). `metrics` is kept as written and not read: CPU is the metric scaled on.
pub fn autoscale_policy(spec: &VMClusterSpec) -> Result<Option<AutoscalePolicy>, Vec<Problem>> {
    let Some(a) = spec.auto_scaling.as_ref().filter(|a| a.enabled != Some(false)) else { return Ok(None) };
    let mut problems = Vec::new();
    let mut bad = |f: &str, m: String| problems.push(Problem { field: format!("spec.autoScaling.{f}"), message: m });
    let min = a.min_replicas.unwrap_or(1);
    if min == 0 {
        bad("minReplicas", "must be at least 1".into());
    }
    let max = match a.max_replicas {
        Some(m) => m,
        None => {
            bad("maxReplicas", "is required when autoscaling is enabled".into());
            min
        }
    };
    if min > max {
        bad("minReplicas", format!("must not exceed maxReplicas ({min} > {max})"));
    }
    let target = match &a.target_cpu_utilization {
        None => Some(DEFAULT_TARGET_CPU_PERCENT),
        Some(NumOrStr::Num(n)) => Some(*n),
        Some(NumOrStr::Str(s)) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
    }
    .filter(|t| t.is_finite() && *t > 0.0 && *t <= 100.0);
    if target.is_none() {
        bad("targetCpuUtilization", "must be a percentage above 0 and at most 100, such as 70 or \"70%\"".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let policy = AutoscalePolicy::new(min, max, target.unwrap_or(DEFAULT_TARGET_CPU_PERCENT) / 100.0);
    policy.validate().map_err(|m| vec![Problem { field: "spec.autoScaling".into(), message: m }])?;
    Ok(Some(policy))
}

/// Converts a VMCluster spec into the engine's deployment `id` named `name`, of `replicas`
/// replicas (`spec.replicas`, or the autoscaler's answer): replicas sized by `template` (the
/// VMTemplate named or inlined; problems in it are reported under `template_key`), placed by the
/// cost-optimized strategy over every region of the catalog (the MultiCloudVM defaults: moves
/// that pay twice their cost over 24 h, at most 10 % of the replicas an hour), on demand, and
/// replaced on a template change as `updateStrategy` says: `RollingUpdate` (the default) with
/// `maxSurge` and `maxUnavailable` as counts or percentages of `replicas` (25 % each by
/// default; a surge rounds up, an unavailability down, and if both come to 0 one replica may be
/// unavailable, as Kubernetes resolves them), or `Recreate`.
pub fn vmcluster_spec(
    id: GroupId,
    name: &str,
    spec: &VMClusterSpec,
    template: Option<&VMTemplateSpec>,
    template_key: &str,
    replicas: u32,
    region_count: usize,
) -> Result<DeploymentSpec, Vec<Problem>> {
    let no_regions = BTreeMap::new();
    let mut t = Translator { problems: Vec::new(), regions: &no_regions };
    let (vcpu, memory_gib, gpu) = match template {
        Some(tpl) => t.template_resources(template_key, tpl),
        None => (DEFAULT_VCPU, DEFAULT_MEMORY_GIB, 0),
    };
    let rollout = t.rollout(spec, replicas);
    let out = DeploymentSpec {
        id,
        name: name.to_owned(),
        replicas,
        template: VmRequest::new(VmId(0), Resources { vcpu, memory_mib: gib_to_mib(memory_gib), gpu }),
        strategy: Strategy::CostOptimized(CostOptimizedConfig {
            locations: Vec::new(),
            horizon: SimDuration::from_secs(24 * 3600),
            min_saving_ratio: 2.0,
            disruption_budget: 0.1,
            window: SimDuration::from_secs(3600),
            data_gib: 50.0,
            downtime: SimDuration::from_secs(120),
            downtime_cost_per_h: 10.0,
            overlap: SimDuration::from_secs(600),
        }),
        triggers: Vec::new(),
        cooldown: SimDuration::from_secs(600),
        evaluate_every: SimDuration::from_secs(30),
        max_cost_per_h: None,
        spot: EngineSpotRecovery::default(),
        migration: None,
        disaster_recovery: None,
        rollout,
    };
    if t.problems.is_empty()
        && let Err(m) = out.validate(region_count)
    {
        t.bad("spec", m);
    }
    if t.problems.is_empty() { Ok(out) } else { Err(t.problems) }
}

impl Translator<'_> {
    /// `updateStrategy` for `replicas` replicas.
    fn rollout(&mut self, spec: &VMClusterSpec, replicas: u32) -> Option<Rollout> {
        let key = "spec.updateStrategy";
        let u = spec.update_strategy.clone().unwrap_or_default();
        match u.kind.as_deref().unwrap_or("RollingUpdate") {
            "RollingUpdate" => {
                let quarter = NumOrStr::Str("25%".into());
                let surge = self.count_or_percent(
                    &format!("{key}.maxSurge"),
                    u.max_surge.as_ref().unwrap_or(&quarter),
                    replicas,
                    true,
                );
                let down = self.count_or_percent(
                    &format!("{key}.maxUnavailable"),
                    u.max_unavailable.as_ref().unwrap_or(&quarter),
                    replicas,
                    false,
                );
                let ((max_surge, surge_pct), (max_unavailable, down_pct)) = (surge?, down?);
                match (max_surge, max_unavailable) {
                    (0, 0) if !surge_pct && !down_pct => {
                        self.bad(key, "maxSurge and maxUnavailable must not both be 0: the update could never start");
                        None
                    }
                    // Percentages that round to nothing: one at a time, as Kubernetes does.
                    (0, 0) => Some(Rollout::RollingUpdate { max_surge: 0, max_unavailable: 1 }),
                    _ => Some(Rollout::RollingUpdate { max_surge, max_unavailable }),
                }
            }
            "Recreate" => Some(Rollout::Recreate),
            other => {
                self.bad(
                    &format!("{key}.type"),
                    format!("unknown update strategy {other:?}; types are: RollingUpdate, Recreate"),
                );
                None
            }
        }
    }

    /// A count (`1`, `"1"`) or a percentage of `of` (`"25%"`, rounded up or down); with whether it
    /// was a percentage.
    fn count_or_percent(&mut self, key: &str, v: &NumOrStr, of: u32, round_up: bool) -> Option<(u32, bool)> {
        let text = match v {
            NumOrStr::Num(n) => n.to_string(),
            NumOrStr::Str(s) => s.trim().to_owned(),
        };
        let parsed = match text.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().ok().filter(|p| p.is_finite() && (0.0..=100.0).contains(p)).map(|p| {
                let x = p / 100.0 * of as f64;
                ((if round_up { (x - 1e-9).ceil() } else { (x + 1e-9).floor() }).max(0.0) as u32, true)
            }),
            None => text
                .parse::<f64>()
                .ok()
                .filter(|n| *n >= 0.0 && n.fract() == 0.0 && *n <= 1e7)
                .map(|n| (n as u32, false)),
        };
        if parsed.is_none() {
            self.bad(key, "must be a count such as 1 or a percentage such as \"25%\" (0% to 100%)");
        }
        parsed
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The request of a request/limit pair (the limit if no request), as a number: CPU in cores,
/// memory in bytes. `None` when neither is given.
fn quantity_of(r: Option<&RequestLimit>) -> Option<Result<f64, ()>> {
    let r = r?;
    let v = r.request.as_ref().or(r.limit.as_ref())?;
    Some(match v {
        NumOrStr::Num(n) => Ok(*n),
        NumOrStr::Str(s) => parse_quantity(s).ok_or(()),
    })
}

/// A Kubernetes quantity: a decimal number with an optional suffix (`m`, `k`, `M`, `G`, `T`,
/// `P`, `E`, `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`).
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Pi", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Ei", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (num, factor) = SUFFIXES.iter().find_map(|(suf, f)| s.strip_suffix(suf).map(|n| (n, *f))).unwrap_or((s, 1.0));
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * factor)
}

/// What the simulator's `[[deployments]]` tables and a MultiCloudVM share: used by tests.
pub fn region_names(pairs: &[(&str, &[&str])]) -> BTreeMap<String, RegionId> {
    let mut m = BTreeMap::new();
    for (i, (name, aliases)) in pairs.iter().enumerate() {
        let id = RegionId(i as u16);
        m.insert((*name).to_owned(), id);
        for a in *aliases {
            m.insert((*a).to_owned(), id);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1500m"), Some(1.5));
        assert_eq!(parse_quantity("4Gi"), Some(4.0 * GIB));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("x"), None);
        assert_eq!(parse_quantity("-1"), None);
    }
}
