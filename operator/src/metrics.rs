//! Prometheus metrics (prometheus-client), served on `/metrics` by [`crate::http`].

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::provider::ProviderError;

/// Labels naming a controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `multicloudvm`.
    pub controller: String,
}

/// Labels of a reconcile error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `multicloudvm`.
    pub controller: String,
    /// [`crate::Error::metric_label`].
    pub error: String,
}

/// Labels naming a deployment (`namespace/name`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    /// `namespace/name`.
    pub deployment: String,
}

/// Labels of a deployment's instances by provider and state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VmLabels {
    /// `namespace/name`.
    pub deployment: String,
    /// `aws`, `azure`, `gcp`, `onprem`.
    pub provider: String,
    /// `Provisioning`, `Running`, `Unadopted`.
    pub state: String,
}

/// Labels of an engine decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The action (`provision`, `terminate`, `fail-over`, ...).
    pub action: String,
}

/// Labels of an engine decision by the policy that made it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyDecisionLabels {
    /// The placement policy (`cost-optimized`, `availability`, ...).
    pub policy: String,
    /// The deployment strategy (`active-passive`, `active-active`, `burst`, `cost-optimized`;
    /// `none` before a spec is applied).
    pub strategy: String,
    /// The action (`provision`, `terminate`, `fail-over`, ...).
    pub action: String,
}

/// Labels of a provider operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// `create`, `delete`, `list`, `get`, `prices`, `unhealthy-regions`, `catalog`, `metrics`, `estimate-cost`.
    pub op: String,
}

/// Labels of a failed provider call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderErrorLabels {
    /// The operation.
    pub op: String,
    /// [`crate::provider::ProviderError::label`].
    pub error: String,
}

/// Labels of a leader election attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    /// `acquired` (taken or created), `renewed`, `held` (by another replica), `error`.
    pub result: String,
}

/// Labels of the build.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The operator's version.
    pub version: String,
}

/// Labels of a provider call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// `create`, `delete`, `list`, `get`, `prices`, `unhealthy-regions`, `catalog`, `metrics`, `estimate-cost`.
    pub op: String,
    /// Error label, `ok` for successes.
    pub result: String,
}

/// Labels of a cache level.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLevelLabels {
    /// `l1` (in process) or `l2` (Redis).
    pub level: String,
}

/// Labels of where a cache read was answered from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheSourceLabels {
    /// `l1`, `l2`, or `source` (the provider, after a miss).
    pub source: String,
}

/// Labels of a failed Redis operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheErrorLabels {
    /// `get`, `set`, `delete`, `info`, `decode`.
    pub op: String,
}

/// Labels naming an AISchedulingPolicy (`namespace/name`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// `namespace/name`.
    pub policy: String,
}

/// Labels of a failed model load.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelFailureLabels {
    /// `namespace/name` of the AISchedulingPolicy.
    pub policy: String,
    /// `not-found`, `unreadable`, `invalid-artifact`, `model-mismatch`, `invalid-spec`, `no-artifact`.
    pub reason: String,
}

/// Labels of a FederatedCluster's members by health.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FederationHealthLabels {
    /// The FederatedCluster, `namespace/name`.
    pub federation: String,
    /// `healthy` or `unhealthy` (missed `failureThreshold` heartbeats, or cannot be checked).
    pub health: String,
}

/// Labels of one member of a FederatedCluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FederationMemberLabels {
    /// The FederatedCluster, `namespace/name`.
    pub federation: String,
    /// The member's name.
    pub member: String,
}

/// Every [`CacheErrorLabels::op`].
pub const CACHE_ERROR_OPS: [&str; 5] = ["get", "set", "delete", "info", "decode"];

/// Cache reads: 10 µs to about 5 s.
fn cache_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00001, 2.0, 20))
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Cloud API latency: 1 ms to about 65 s.
fn provider_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric of the operator.
#[derive(Debug)]
pub struct Metrics {
    /// Reconciles run.
    pub reconciles: Family<ControllerLabels, Counter>,
    /// Reconciles that failed, by error.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// How long reconciles take, seconds.
    pub reconcile_duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    /// Specs refused (invalid), counted per reconcile.
    pub invalid_specs: Family<ControllerLabels, Counter>,
    /// Engine decisions by action.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Provider calls by operation and result.
    pub provider_calls: Family<ProviderLabels, Counter>,
    /// Instances adopted after a restart instead of created.
    pub adopted: Counter,
    /// Instances per deployment, provider and state.
    pub vms: Family<VmLabels, Gauge>,
    /// Replicas wanted per deployment.
    pub replicas: Family<DeploymentLabels, Gauge>,
    /// Replicas serving per deployment.
    pub serving: Family<DeploymentLabels, Gauge>,
    /// Spend rate per deployment, $/h.
    pub hourly_cost: Family<DeploymentLabels, Gauge<f64, AtomicU64>>,
    /// Failovers decided per deployment.
    pub failovers: Family<DeploymentLabels, Counter>,
    /// Replica migrations completed per deployment (a counter: `rate()` and `increase()` work
    /// across operator restarts).
    pub migrations: Family<DeploymentLabels, Counter>,
    /// Spent so far per deployment, $.
    pub total_cost: Family<DeploymentLabels, Gauge<f64, AtomicU64>>,
    /// Regions the provider reports unhealthy, as a deployment's tracker last saw them.
    pub unhealthy_regions: Family<DeploymentLabels, Gauge>,
    /// Kubernetes Events published, by reason.
    pub events: Family<DecisionLabels, Counter>,
    /// 1 while this replica holds the leader Lease (or runs without election), else 0.
    pub leader: Gauge,
    /// Terms as leader started.
    pub leader_terms: Counter,
    /// Leader election attempts by result.
    pub lease_attempts: Family<LeaseLabels, Counter>,
    /// Engine decisions by placement policy, deployment strategy and action.
    pub policy_decisions: Family<PolicyDecisionLabels, Counter>,
    /// Failed provider calls by operation and error.
    pub provider_errors: Family<ProviderErrorLabels, Counter>,
    /// Provider call latency by operation, seconds.
    pub provider_duration: Family<OpLabels, Histogram, fn() -> Histogram>,
    /// 1 while a deployment's Ready condition is True, else 0.
    pub ready: Family<DeploymentLabels, Gauge>,
    /// A deployment's `costOptimization.maxCostPerHour`, $/h (absent without one).
    pub max_hourly_cost: Family<DeploymentLabels, Gauge<f64, AtomicU64>>,
    /// Deployments with an engine in memory.
    pub engines: Gauge,
    /// Decision log lines that could not be written.
    pub decision_log_errors: Counter,
    /// Always 1, labelled with the version.
    pub build_info: Family<BuildLabels, Gauge>,
    /// Cache reads (every key looked up in the provider cache).
    pub cache_requests: Counter,
    /// Cache reads answered by a level.
    pub cache_hits: Family<CacheLevelLabels, Counter>,
    /// Cache reads a level could not answer (an L1 miss answered by L2 counts here for `l1`).
    pub cache_misses: Family<CacheLevelLabels, Counter>,
    /// Failed Redis operations (the cache then answers from L1 or the provider).
    pub cache_errors: Family<CacheErrorLabels, Counter>,
    /// Cache read latency by where it was answered, seconds.
    pub cache_duration: Family<CacheSourceLabels, Histogram, fn() -> Histogram>,
    /// Memory used by a level, bytes (L1: moka's weighted size; L2: Redis `used_memory`).
    pub cache_memory: Family<CacheLevelLabels, Gauge>,
    /// 1 while Redis is reachable (the breaker is closed), else 0.
    pub cache_l2_up: Gauge,
    /// A loaded policy's model accuracy on its held-out test rows, 0..1 (as training recorded it).
    pub model_accuracy: Family<PolicyLabels, Gauge<f64, AtomicU64>>,
    /// A policy's `learningConfig.accuracyThreshold` (absent without one).
    pub model_accuracy_threshold: Family<PolicyLabels, Gauge<f64, AtomicU64>>,
    /// Model loads that failed or found no artifact, by policy and reason (one per reconcile).
    pub model_load_failures: Family<ModelFailureLabels, Counter>,
    /// FederatedCluster members by health.
    pub federation_members: Family<FederationHealthLabels, Gauge>,
    /// Member heartbeats missed (no answer in time, refused, or an error answer).
    pub federation_heartbeat_failures: Family<FederationMemberLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(duration_histogram),
            invalid_specs: Family::default(),
            decisions: Family::default(),
            provider_calls: Family::default(),
            adopted: Counter::default(),
            vms: Family::default(),
            replicas: Family::default(),
            serving: Family::default(),
            hourly_cost: Family::default(),
            failovers: Family::default(),
            migrations: Family::default(),
            total_cost: Family::default(),
            unhealthy_regions: Family::default(),
            events: Family::default(),
            leader: Gauge::default(),
            leader_terms: Counter::default(),
            lease_attempts: Family::default(),
            policy_decisions: Family::default(),
            provider_errors: Family::default(),
            provider_duration: Family::new_with_constructor(provider_histogram),
            ready: Family::default(),
            max_hourly_cost: Family::default(),
            engines: Gauge::default(),
            decision_log_errors: Counter::default(),
            build_info: Family::default(),
            cache_requests: Counter::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            cache_errors: Family::default(),
            cache_duration: Family::new_with_constructor(cache_histogram),
            cache_memory: Family::default(),
            cache_l2_up: Gauge::default(),
            model_accuracy: Family::default(),
            model_accuracy_threshold: Family::default(),
            model_load_failures: Family::default(),
            federation_members: Family::default(),
            federation_heartbeat_failures: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under the `novacron` prefix.
    pub fn register(self, registry: &mut Registry) -> Self {
        let r = registry.sub_registry_with_prefix("novacron");
        r.register("reconciles", "Reconciles run", self.reconciles.clone());
        r.register("reconcile_errors", "Reconciles that failed, by error", self.reconcile_errors.clone());
        r.register("reconcile_duration_seconds", "Reconcile duration", self.reconcile_duration.clone());
        r.register("invalid_specs", "Reconciles of a spec that could not be used", self.invalid_specs.clone());
        r.register("decisions", "Engine actions by kind", self.decisions.clone());
        r.register("provider_calls", "Cloud provider calls by operation and result", self.provider_calls.clone());
        r.register("adopted_instances", "Instances adopted after a restart", self.adopted.clone());
        r.register("vms", "Cloud instances by deployment, provider and state", self.vms.clone());
        r.register("deployment_replicas", "Replicas wanted", self.replicas.clone());
        r.register("deployment_serving_replicas", "Replicas serving at a healthy location", self.serving.clone());
        r.register("deployment_hourly_cost_usd", "Spend rate, $/h", self.hourly_cost.clone());
        r.register("deployment_failovers", "Failovers decided", self.failovers.clone());
        r.register("deployment_migrations", "Replica migrations completed", self.migrations.clone());
        r.register("deployment_cost_usd", "Spent since the operator started tracking, $", self.total_cost.clone());
        r.register("deployment_unhealthy_regions", "Regions reported unhealthy", self.unhealthy_regions.clone());
        r.register("events_published", "Kubernetes Events published, by reason", self.events.clone());
        r.register("leader", "1 while this replica leads (holds the Lease), else 0", self.leader.clone());
        r.register("leader_terms", "Terms as leader started", self.leader_terms.clone());
        r.register("leader_lease_attempts", "Leader election attempts by result", self.lease_attempts.clone());
        r.register(
            "policy_decisions",
            "Engine actions by placement policy, deployment strategy and action",
            self.policy_decisions.clone(),
        );
        r.register(
            "provider_errors",
            "Failed cloud provider calls by operation and error",
            self.provider_errors.clone(),
        );
        r.register(
            "provider_call_duration_seconds",
            "Cloud provider call latency by operation",
            self.provider_duration.clone(),
        );
        r.register("deployment_ready", "1 while the Ready condition is True", self.ready.clone());
        r.register(
            "deployment_max_hourly_cost_usd",
            "The spec's costOptimization.maxCostPerHour, $/h",
            self.max_hourly_cost.clone(),
        );
        r.register("engines", "Deployments with an engine in memory", self.engines.clone());
        r.register("decision_log_errors", "Decision log writes that failed", self.decision_log_errors.clone());
        r.register("build_info", "The operator's version (always 1)", self.build_info.clone());
        r.register("cache_requests", "Provider cache reads", self.cache_requests.clone());
        r.register("cache_hits", "Provider cache reads answered, by level", self.cache_hits.clone());
        r.register(
            "cache_misses",
            "Provider cache reads a level could not answer, by level",
            self.cache_misses.clone(),
        );
        r.register("cache_errors", "Failed Redis operations of the provider cache", self.cache_errors.clone());
        r.register(
            "cache_request_duration_seconds",
            "Provider cache read latency by where it was answered (l1, l2, source)",
            self.cache_duration.clone(),
        );
        r.register("cache_memory_bytes", "Provider cache memory used, by level", self.cache_memory.clone());
        r.register("cache_l2_up", "1 while the provider cache reaches Redis", self.cache_l2_up.clone());
        r.register(
            "model_accuracy",
            "A loaded AISchedulingPolicy model's accuracy on its held-out test rows, 0..1",
            self.model_accuracy.clone(),
        );
        r.register(
            "model_accuracy_threshold",
            "An AISchedulingPolicy's learningConfig.accuracyThreshold",
            self.model_accuracy_threshold.clone(),
        );
        r.register(
            "model_load_failures",
            "AISchedulingPolicy model loads that failed, by policy and reason",
            self.model_load_failures.clone(),
        );
        r.register("federation_members", "FederatedCluster members by health", self.federation_members.clone());
        r.register(
            "federation_heartbeat_failures",
            "FederatedCluster member heartbeats missed",
            self.federation_heartbeat_failures.clone(),
        );
        self.build_info.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").to_owned() }).set(1);
        // Counters that alerts take rates of start at 0 rather than appear at their first event.
        for result in ["acquired", "renewed", "held", "error"] {
            let _ = self.lease_attempts.get_or_create(&LeaseLabels { result: result.into() });
        }
        // The cache's series exist before the first CacheIntegration, so its alert has rates.
        for level in ["l1", "l2"] {
            let l = CacheLevelLabels { level: level.into() };
            let _ = self.cache_hits.get_or_create(&l);
            let _ = self.cache_misses.get_or_create(&l);
            let _ = self.cache_memory.get_or_create(&l);
        }
        for source in ["l1", "l2", "source"] {
            let _ = self.cache_duration.get_or_create(&CacheSourceLabels { source: source.into() });
        }
        for op in CACHE_ERROR_OPS {
            let _ = self.cache_errors.get_or_create(&CacheErrorLabels { op: op.into() });
        }
        for op in ["create", "delete"] {
            for error in ProviderError::LABELS {
                let _ = self.provider_errors.get_or_create(&ProviderErrorLabels { op: op.into(), error: error.into() });
            }
        }
        self
    }

    /// Counts a failed provider call.
    pub fn provider_error(&self, op: &str, error: &str) {
        self.provider_errors.get_or_create(&ProviderErrorLabels { op: op.into(), error: error.into() }).inc();
    }

    /// Records a provider call's latency.
    pub fn provider_latency(&self, op: &str, seconds: f64) {
        self.provider_duration.get_or_create(&OpLabels { op: op.into() }).observe(seconds);
    }

    /// Counts a provider call.
    pub fn provider_call(&self, op: &str, result: &str, n: u64) {
        if n > 0 {
            self.provider_calls.get_or_create(&ProviderLabels { op: op.into(), result: result.into() }).inc_by(n);
        }
    }

    /// Counts a cache read answered by `level` (`l1`, `l2`).
    pub fn cache_hit(&self, level: &str) {
        self.cache_hits.get_or_create(&CacheLevelLabels { level: level.into() }).inc();
    }

    /// Counts a cache read `level` could not answer.
    pub fn cache_miss(&self, level: &str) {
        self.cache_misses.get_or_create(&CacheLevelLabels { level: level.into() }).inc();
    }

    /// Counts a failed Redis operation.
    pub fn cache_error(&self, op: &str) {
        self.cache_errors.get_or_create(&CacheErrorLabels { op: op.into() }).inc();
    }

    /// Records a cache read's latency by where it was answered (`l1`, `l2`, `source`).
    pub fn cache_latency(&self, source: &str, seconds: f64) {
        self.cache_duration.get_or_create(&CacheSourceLabels { source: source.into() }).observe(seconds);
    }

    /// Sets a level's memory use, bytes.
    pub fn cache_memory_used(&self, level: &str, bytes: u64) {
        let v = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.cache_memory.get_or_create(&CacheLevelLabels { level: level.into() }).set(v);
    }

    /// Drops a deleted deployment's gauges.
    pub fn forget(&self, deployment: &str) {
        let d = DeploymentLabels { deployment: deployment.to_owned() };
        self.replicas.remove(&d);
        self.serving.remove(&d);
        self.hourly_cost.remove(&d);
        self.failovers.remove(&d);
        self.migrations.remove(&d);
        self.total_cost.remove(&d);
        self.unhealthy_regions.remove(&d);
        self.ready.remove(&d);
        self.max_hourly_cost.remove(&d);
        for provider in ["aws", "azure", "gcp", "onprem"] {
            for state in ["Provisioning", "Running", "Unadopted"] {
                let l = VmLabels { deployment: deployment.to_owned(), provider: provider.into(), state: state.into() };
                self.vms.remove(&l);
            }
        }
    }
}
