//! Prometheus metrics (prometheus-client), served on `/metrics` by [`crate::http`].

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

/// Labels of a provider call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// `create`, `delete`, `list`.
    pub op: String,
    /// Error label, `ok` for successes.
    pub result: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
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
    pub failovers: Family<DeploymentLabels, Gauge>,
    /// Replica migrations completed per deployment.
    pub migrations: Family<DeploymentLabels, Gauge>,
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
        r.register("deployment_failovers", "Failovers decided since the operator started", self.failovers.clone());
        r.register("deployment_migrations", "Replica migrations completed", self.migrations.clone());
        r.register("deployment_cost_usd", "Spent since the operator started tracking, $", self.total_cost.clone());
        r.register("deployment_unhealthy_regions", "Regions reported unhealthy", self.unhealthy_regions.clone());
        r.register("events_published", "Kubernetes Events published, by reason", self.events.clone());
        r.register("leader", "1 while this replica leads (holds the Lease), else 0", self.leader.clone());
        r.register("leader_terms", "Terms as leader started", self.leader_terms.clone());
        self
    }

    /// Counts a provider call.
    pub fn provider_call(&self, op: &str, result: &str, n: u64) {
        if n > 0 {
            self.provider_calls.get_or_create(&ProviderLabels { op: op.into(), result: result.into() }).inc_by(n);
        }
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
        // `vms` is cleared per deployment by the controller when it rewrites them.
    }
}
