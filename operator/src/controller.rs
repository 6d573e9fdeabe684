//! The MultiCloudVM controller, and the runtime of every controller ([`run`], [`run_elected`]):
//! `reconcile` wraps kube's `finalizer()` and dispatches Apply and Cleanup; `error_policy` counts
//! the error and requeues with exponential backoff and jitter; status is written with
//! server-side apply.
//!
//! Apply: translate the spec (and the VMTemplate it names) into the engine's `DeploymentSpec`,
//! step the object's [`Tracker`] at the clock's `now` over its [`ChildFleet`] (the
//! `VirtualMachine` objects it owns: the engine's provisions become children, its terminations
//! deletions, and the children's status feeds the engine), write the status, and requeue when
//! the engine's next timer is due (at most `poll_interval` later). A change of a child triggers a
//! reconcile of its owner (`owns`). A spec that cannot be used is reported in the `SpecValid`
//! condition; a deployment already running keeps its last good spec meanwhile.
//!
//! Cleanup: delete every child, and only when none is left (each child's own finalizer waits
//! for its cloud instance to be deleted) return, so the finalizer goes after the last VM.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{EngineConfig, SimTime};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::Event as Finalizer;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::cache::CacheSwitch;
use crate::catalog::CatalogIndex;
use crate::children::{ChildFleet, MarketData, Owner};
use crate::clock::{Clock, rfc3339};
use crate::crd::federatedcluster::FederatedCluster;
use crate::crd::multicloudvm::{FINALIZER, MultiCloudVM, MultiCloudVMStatus};
use crate::crd::virtualmachine::{OWNER_UID_LABEL, VirtualMachine};
use crate::crd::vmcluster::VMCluster;
use crate::crd::{AISchedulingPolicy, CacheIntegration, Condition, VMTemplate, merge_conditions};
use crate::metrics::{ControllerLabels, DecisionLabels, DeploymentLabels, Metrics, PolicyDecisionLabels, VmLabels};
use crate::policy_controller::Choice;
use crate::provider::CloudProvider;
use crate::provider::metered::Metered;
use crate::tracker::{GROUP, Notice, StepReport, Tracker};
use crate::translate::{self, Problem};
use crate::{Error, Result};

/// The `controller` label of this controller's metrics.
pub const CONTROLLER: &str = "multicloudvm";

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// Longest time between two reconciles of an object (the cloud is polled).
    pub poll_interval: Duration,
    /// Field manager of the status patches.
    pub field_manager: String,
    /// Append every engine event and its actions here, one JSON object a line.
    pub decision_log: Option<PathBuf>,
    /// The engine's settings (placement policy, retries, back-off).
    pub engine: EngineConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            poll_interval: Duration::from_secs(30),
            field_manager: "novacron-operator".into(),
            decision_log: None,
            engine: EngineConfig::default(),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The cloud, measured (every call that reaches it is counted and timed in the metrics),
    /// behind the provider cache when a CacheIntegration configures one ([`Context::cache`]).
    /// Only the VirtualMachine controller creates, observes and deletes instances with it.
    pub cloud: Arc<dyn CloudProvider>,
    /// The switch [`Context::cloud`] goes through: the CacheIntegration controller installs,
    /// replaces and removes the cache in it; without one, calls go straight to the cloud.
    pub cache: Arc<CacheSwitch>,
    /// Read-only market data (prices, region health, federation health) the engines read.
    pub market: MarketData,
    /// Where `now` comes from.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: Config,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set once the controller watches.
    pub ready: Arc<AtomicBool>,
    /// Whether this replica may act (true unless leader election says otherwise): a reconcile
    /// that starts while it is false does nothing.
    pub acting: Arc<AtomicBool>,
    /// The AISchedulingPolicies reconciled, as the MultiCloudVM controller reads them.
    pub policies: crate::policy_controller::Registry,
    pub(crate) recorder: Recorder,
    log: Option<crate::decision_log::DecisionLog>,
    catalog: OnceCell<Arc<CatalogIndex>>,
    trackers: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Tracker>>>>,
    failures: Mutex<BTreeMap<String, u32>>,
}

impl Context {
    /// A context.
    pub fn new(
        client: Client,
        cloud: Arc<dyn CloudProvider>,
        clock: Arc<dyn Clock>,
        config: Config,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter { controller: config.field_manager.clone(), instance: None };
        let metered: Arc<dyn CloudProvider> = Arc::new(Metered::new(cloud, metrics.clone()));
        let cache = Arc::new(CacheSwitch::new(metered));
        let cloud: Arc<dyn CloudProvider> = cache.clone();
        Context {
            cache,
            market: MarketData::new(cloud.clone()),
            recorder: Recorder::new(client.clone(), reporter),
            log: config.decision_log.clone().map(crate::decision_log::DecisionLog::new),
            client,
            cloud,
            clock,
            config,
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            acting: Arc::new(AtomicBool::new(true)),
            policies: Default::default(),
            catalog: OnceCell::new(),
            trackers: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
        }
    }

    /// The engine's catalog, fetched from the provider once.
    pub async fn catalog(&self) -> Result<Arc<CatalogIndex>> {
        self.catalog
            .get_or_try_init(|| async {
                let c = self.cloud.catalog().await?;
                Ok::<_, Error>(Arc::new(CatalogIndex::new(&c)?))
            })
            .await
            .cloned()
    }

    /// Forgets the failures of `uid` (a reconcile succeeded).
    pub fn reset_failures(&self, uid: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }

    /// Counts one more failure of `uid` and returns the back-off before its retry.
    pub fn next_backoff(&self, uid: &str) -> Duration {
        let attempt = {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = f.entry(uid.to_owned()).or_default();
            *n = n.saturating_add(1);
            *n
        };
        backoff(uid, attempt)
    }

    /// The tracker of an object, created on first use.
    pub(crate) fn tracker(&self, uid: &str, index: &Arc<CatalogIndex>) -> Result<Arc<tokio::sync::Mutex<Tracker>>> {
        let mut map = self.trackers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = map.get(uid) {
            return Ok(t.clone());
        }
        let t = Arc::new(tokio::sync::Mutex::new(Tracker::new(uid, index.clone(), self.config.engine.clone())?));
        map.insert(uid.to_owned(), t.clone());
        self.metrics.engines.set(map.len() as i64);
        Ok(t)
    }

    pub(crate) fn drop_tracker(&self, uid: &str) -> Option<Arc<tokio::sync::Mutex<Tracker>>> {
        let mut map = self.trackers.lock().unwrap_or_else(|e| e.into_inner());
        let t = map.remove(uid);
        self.metrics.engines.set(map.len() as i64);
        t
    }

    /// Whether the controller has a tracker (an engine) for this UID.
    pub fn has_tracker(&self, uid: &str) -> bool {
        self.trackers.lock().unwrap_or_else(|e| e.into_inner()).contains_key(uid)
    }

    /// Forgets every tracker, every policy and the regions federations report down, as a
    /// restarted operator would (the next term's FederatedCluster reconciles report them again
    /// from their status).
    pub fn forget_all(&self) {
        self.trackers.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.policies.clear();
        self.market.forget_federations();
        self.metrics.engines.set(0);
    }

    /// The tracker of an object running the engine settings `config`: a fresh one (which adopts
    /// the instances running, as after a restart) when the one in memory runs other settings.
    pub(crate) async fn tracker_for(
        &self,
        uid: &str,
        index: &Arc<CatalogIndex>,
        config: &EngineConfig,
    ) -> Result<Arc<tokio::sync::Mutex<Tracker>>> {
        let make = || -> Result<_> {
            let mut map = self.trackers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = map.get(uid) {
                return Ok(t.clone());
            }
            let t = Arc::new(tokio::sync::Mutex::new(Tracker::new(uid, index.clone(), config.clone())?));
            map.insert(uid.to_owned(), t.clone());
            self.metrics.engines.set(map.len() as i64);
            Ok(t)
        };
        let t = make()?;
        if t.lock().await.engine().config() == config {
            return Ok(t);
        }
        info!("{uid}: the placement policy changed; a fresh engine takes over and adopts what runs");
        self.drop_tracker(uid);
        make()
    }

    /// Publishes a Kubernetes Event about `reference`; a failure is logged, never fails the
    /// reconcile.
    pub(crate) async fn publish_event(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        reason: &str,
        note: String,
        warning: bool,
    ) {
        let event = KubeEvent {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        self.metrics.events.get_or_create(&DecisionLabels { action: reason.to_owned() }).inc();
        if let Err(e) = self.recorder.publish(&event, reference).await {
            warn!("cannot publish event {reason} for {}: {e}", reference.name.as_deref().unwrap_or_default());
        }
    }

    pub(crate) fn write_log(&self, uid: &str, object: &str, tracker: &mut Tracker) {
        let records = tracker.take_records();
        let policy = tracker.engine().config().policy.name();
        let strategy = tracker.applied().map_or("none", |s| s.strategy.name());
        for r in &records {
            for a in &r.actions {
                let action = serde_json::to_value(a)
                    .ok()
                    .and_then(|v| v.get("action").and_then(|s| s.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                let by_policy = PolicyDecisionLabels {
                    policy: policy.to_owned(),
                    strategy: strategy.to_owned(),
                    action: action.clone(),
                };
                self.metrics.policy_decisions.get_or_create(&by_policy).inc();
                let d = DeploymentLabels { deployment: object.to_owned() };
                match action.as_str() {
                    "fail-over" => {
                        self.metrics.failovers.get_or_create(&d).inc();
                    }
                    "migrated" => {
                        self.metrics.migrations.get_or_create(&d).inc();
                    }
                    _ => {}
                }
                self.metrics.decisions.get_or_create(&DecisionLabels { action }).inc();
            }
        }
        let Some(log) = &self.log else { return };
        let started = tracker
            .take_unlogged_start()
            .then(|| (tracker.log_header(), records.first().map_or_else(|| self.clock.now(), |r| r.at)));
        let entry = crate::decision_log::Entry { deployment: uid, object, started, records: &records };
        if let Err(e) = log.append(&entry) {
            self.metrics.decision_log_errors.inc();
            warn!("cannot write the decision log {}: {e}", log.path().display());
        }
    }
}

/// Reconciles one MultiCloudVM.
pub async fn reconcile(obj: Arc<MultiCloudVM>, ctx: Arc<Context>) -> Result<Action> {
    crate::runtime::reconcile(obj, &ctx, CONTROLLER, Some(FINALIZER), |event| async {
        match event {
            Finalizer::Apply(o) => apply(o, &ctx).await,
            Finalizer::Cleanup(o) => cleanup(o, &ctx).await,
        }
    })
    .await
}

/// Counts the error and requeues with exponential backoff (5 s doubling to 5 min) plus up to
/// 25 % jitter, derived from the object and the attempt so that replicas of the operator spread.
pub fn error_policy(obj: Arc<MultiCloudVM>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::runtime::error_policy(obj.as_ref(), error, &ctx, CONTROLLER)
}

/// The delay before retry `attempt` (1, 2, ...) of the object `uid`.
pub fn backoff(uid: &str, attempt: u32) -> Duration {
    let base =
        Duration::from_secs(5).saturating_mul(1 << attempt.saturating_sub(1).min(10)).min(Duration::from_secs(300));
    let mut h = std::hash::DefaultHasher::new();
    (uid, attempt).hash(&mut h);
    let jitter = base.mul_f64((h.finish() % 1000) as f64 / 4000.0);
    base + jitter
}

/// What a reconcile error says about the clouds' credentials: the message of a provider's
/// refusal (it names the provider and the credential's source, never a value), if it was one.
pub(crate) fn credentials_problem(e: &Error) -> Option<String> {
    match e {
        Error::Provider(p @ crate::provider::ProviderError::Auth(_)) => Some(p.to_string()),
        _ => None,
    }
}

/// The `CredentialsValid` condition and a `Ready` condition saying why nothing progresses.
pub(crate) fn credentials_conditions(message: &str, generation: Option<i64>) -> Vec<Condition> {
    vec![
        Condition::new("Ready", false, "CredentialsRejected", message, generation),
        Condition::new("CredentialsValid", false, "CredentialsRejected", message, generation),
    ]
}

async fn apply(obj: Arc<MultiCloudVM>, ctx: &Context) -> Result<Action> {
    let result = deploy(obj.clone(), ctx).await;
    if let Err(e) = &result
        && let Some(message) = credentials_problem(e)
    {
        // A cloud refused the operator's credentials: say so in the status (the rest of it as
        // it was), then back off as for any error.
        let previous = obj.status.clone().unwrap_or_default();
        let now = rfc3339(ctx.clock.now());
        let status = MultiCloudVMStatus {
            conditions: merge_conditions(
                &previous.conditions,
                credentials_conditions(&message, obj.metadata.generation),
                &now,
            ),
            ..previous
        };
        warn!("{}/{}: {message}", obj.namespace().unwrap_or_default(), obj.name_any());
        let api: Api<MultiCloudVM> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
        let patch = serde_json::json!({ "apiVersion": "novacron.io/v1", "kind": "MultiCloudVM", "status": status });
        let pp = PatchParams::apply(&ctx.config.field_manager).force();
        if let Err(pe) = api.patch_status(&obj.name_any(), &pp, &Patch::Apply(&patch)).await {
            warn!("cannot write the status of {}: {pe}", obj.name_any());
        }
    }
    result
}

async fn deploy(obj: Arc<MultiCloudVM>, ctx: &Context) -> Result<Action> {
    let ns = obj.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let name = obj.name_any();
    let key = format!("{ns}/{name}");
    let index = ctx.catalog().await?;
    let mut problems: Vec<Problem> = translate::unsupported_credentials(&obj.spec);
    let template = match &obj.spec.vm_template {
        Some(r) => {
            let tns = r.namespace.clone().unwrap_or_else(|| ns.clone());
            let found = Api::<VMTemplate>::namespaced(ctx.client.clone(), &tns).get_opt(&r.name).await?;
            if found.is_none() {
                problems.push(Problem {
                    field: "spec.vmTemplate".into(),
                    message: format!("no VMTemplate named {:?} in namespace {tns:?}", r.name),
                });
            }
            found
        }
        None => None,
    };
    let translated = if problems.is_empty() {
        translate::deployment_spec(
            GROUP,
            &name,
            &obj.spec,
            template.as_ref().map(|t| &t.spec),
            &index.regions,
            index.catalog.regions.len(),
        )
    } else {
        Err(problems)
    };
    if translated.is_err() {
        ctx.metrics.invalid_specs.get_or_create(&ControllerLabels { controller: CONTROLLER.into() }).inc();
    }
    let now = ctx.clock.now();
    // The placement policy: the operator's, or the AISchedulingPolicy the object names. A named
    // policy that cannot be used has no fallback: a new deployment waits, a running one keeps
    // its engine.
    let (policy_condition, tracker) = match crate::policy_controller::choice_for(ctx, &obj) {
        Choice::Default => (None, ctx.tracker_for(&uid, &index, &ctx.config.engine).await?),
        Choice::Learned { config, note, .. } => {
            let c = Condition::new("SchedulingPolicy", true, "Loaded", note, obj.metadata.generation);
            (Some(c), ctx.tracker_for(&uid, &index, &config).await?)
        }
        Choice::NotReady { reason, message, .. } => {
            if !ctx.has_tracker(&uid) {
                return wait_for_policy(&obj, ctx, reason, message, now).await;
            }
            let m = format!("{message}; the running engine keeps deciding meanwhile");
            let c = Condition::new("SchedulingPolicy", false, reason, m, obj.metadata.generation);
            (Some(c), ctx.tracker(&uid, &index)?)
        }
    };
    let policy_notice = policy_condition.as_ref().and_then(|c| policy_notice(&obj, c));
    let mut t = tracker.lock().await;
    let owner = Owner {
        kind: "MultiCloudVM",
        name: name.clone(),
        namespace: ns.clone(),
        uid: uid.clone(),
        template: obj.spec.vm_template.clone(),
    };
    let fleet = ChildFleet::new(ctx.client.clone(), owner, &ctx.market, &index);
    let step = t.step(now, translated.as_ref().ok(), &fleet).await;
    ctx.write_log(&uid, &key, &mut t);
    let report = step?;
    let mut notices = t.take_notices();
    notices.extend(policy_notice);
    count_adoptions(&ctx.metrics, &report);
    let status = status_of(&obj, &mut t, &translated, now, policy_condition);
    record_gauges(&ctx.metrics, &key, &status, t.applied().and_then(|s| s.max_cost_per_h));
    let requeue = match t.next_timer() {
        Some(at) => Duration::from_millis(at.as_millis().saturating_sub(now.as_millis())),
        None => ctx.config.poll_interval,
    }
    .clamp(Duration::from_secs(1), ctx.config.poll_interval);
    drop(t);
    let api: Api<MultiCloudVM> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({ "apiVersion": "novacron.io/v1", "kind": "MultiCloudVM", "status": status });
    api.patch_status(&name, &PatchParams::apply(&ctx.config.field_manager).force(), &Patch::Apply(&patch)).await?;
    publish(ctx, obj.as_ref(), notices).await;
    Ok(Action::requeue(requeue))
}

/// A new deployment whose AISchedulingPolicy cannot be used yet: nothing is placed; the status
/// says why (the `SchedulingPolicy` and `Ready` conditions; the rest as it was) and the object is
/// looked at again shortly.
async fn wait_for_policy(
    obj: &MultiCloudVM,
    ctx: &Context,
    reason: &'static str,
    message: String,
    now: SimTime,
) -> Result<Action> {
    let generation = obj.metadata.generation;
    let mut status = obj.status.clone().unwrap_or_default();
    let waiting = Condition::new("SchedulingPolicy", false, reason, message, generation);
    let notice = policy_notice(obj, &waiting);
    let ready =
        Condition::new("Ready", false, "WaitingForPolicy", "nothing is placed until the policy loads", generation);
    let fresh = merge_conditions(&status.conditions, vec![waiting, ready], &rfc3339(now));
    status.conditions.retain(|c| !fresh.iter().any(|f| f.type_ == c.type_));
    status.conditions.extend(fresh);
    status.observed_generation = generation;
    let api: Api<MultiCloudVM> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "apiVersion": "novacron.io/v1", "kind": "MultiCloudVM", "status": status });
    api.patch_status(&obj.name_any(), &PatchParams::apply(&ctx.config.field_manager).force(), &Patch::Apply(&patch))
        .await?;
    publish(ctx, obj, notice.into_iter().collect()).await;
    Ok(Action::requeue(ctx.config.poll_interval.min(Duration::from_secs(10))))
}

/// An Event when the `SchedulingPolicy` condition changes reason.
fn policy_notice(obj: &MultiCloudVM, c: &Condition) -> Option<Notice> {
    let before = obj.status.as_ref().and_then(|s| s.conditions.iter().find(|p| p.type_ == c.type_));
    if before.is_some_and(|p| p.reason == c.reason) {
        return None;
    }
    let ok = c.status == "True";
    let reason = if ok { "SchedulingPolicyLoaded" } else { "SchedulingPolicyNotReady" };
    Some(Notice { reason, note: c.message.clone(), warning: !ok })
}

/// Kubernetes Events for the notable decisions (failovers, migrations, restores, refusals). A
/// failure to publish is logged, never fails the reconcile.
pub(crate) async fn publish<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, notices: Vec<Notice>) {
    let reference = obj.object_ref(&());
    for n in notices {
        let event = KubeEvent {
            type_: if n.warning { EventType::Warning } else { EventType::Normal },
            reason: n.reason.to_owned(),
            note: Some(n.note),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        ctx.metrics.events.get_or_create(&DecisionLabels { action: n.reason.to_owned() }).inc();
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!("cannot publish event {} for {}: {e}", n.reason, obj.name_any());
        }
    }
}

/// Provider calls are counted by the [`Metered`] provider; a step adds its adoptions.
fn count_adoptions(m: &Metrics, r: &StepReport) {
    m.adopted.inc_by(u64::from(r.adopted));
}

fn record_gauges(m: &Metrics, key: &str, s: &MultiCloudVMStatus, max_cost_per_h: Option<f64>) {
    let d = DeploymentLabels { deployment: key.to_owned() };
    let ready = s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    m.ready.get_or_create(&d).set(i64::from(ready));
    match max_cost_per_h {
        Some(cap) => {
            m.max_hourly_cost.get_or_create(&d).set(cap);
        }
        None => {
            m.max_hourly_cost.remove(&d);
        }
    }
    if let Some(h) = &s.health {
        m.replicas.get_or_create(&d).set(i64::from(h.replicas));
        m.serving.get_or_create(&d).set(i64::from(h.serving));
        m.unhealthy_regions.get_or_create(&d).set(h.unhealthy_regions.len() as i64);
    }
    if let Some(c) = &s.total_cost {
        m.hourly_cost.get_or_create(&d).set(c.hourly_cost);
        m.total_cost.get_or_create(&d).set(c.total_cost);
    }
    // Failovers and migrations are counted as decided (write_log); make the series exist.
    let _ = m.failovers.get_or_create(&d);
    let _ = m.migrations.get_or_create(&d);
    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    for p in ["aws", "azure", "gcp", "onprem"] {
        for st in ["Provisioning", "Running", "Unadopted"] {
            counts.insert((p.into(), st.into()), 0);
        }
    }
    for c in &s.cloud_deployments {
        *counts.entry((c.provider.clone(), c.state.clone())).or_default() += 1;
    }
    for ((provider, state), n) in counts {
        m.vms.get_or_create(&VmLabels { deployment: key.to_owned(), provider, state }).set(n);
    }
}

/// The status after a step.
fn status_of(
    obj: &MultiCloudVM,
    t: &mut Tracker,
    translated: &std::result::Result<engine::DeploymentSpec, Vec<Problem>>,
    now: SimTime,
    policy: Option<Condition>,
) -> MultiCloudVMStatus {
    let generation = obj.metadata.generation;
    let previous = obj.status.clone().unwrap_or_default();
    let health = t.health();
    let spec_valid = match (translated, t.rejected()) {
        (Err(p), _) => Condition::new("SpecValid", false, "InvalidSpec", translate::describe(p), generation),
        (Ok(_), Some(m)) => Condition::new("SpecValid", false, "RejectedByEngine", m, generation),
        (Ok(_), None) => Condition::new("SpecValid", true, "Valid", "the engine accepted the spec", generation),
    };
    let running = t.applied().is_some();
    let ready = if !running {
        Condition::new("Ready", false, "InvalidSpec", "nothing is deployed until the spec is fixed", generation)
    } else if health.serving >= health.replicas {
        let m = format!("{} of {} replicas serving", health.serving, health.replicas);
        Condition::new("Ready", true, "AllReplicasServing", m, generation)
    } else {
        let m = format!("{} of {} replicas serving", health.serving, health.replicas);
        Condition::new("Ready", false, "Progressing", m, generation)
    };
    let mut conditions = vec![spec_valid, ready];
    if previous.conditions.iter().any(|c| c.type_ == "CredentialsValid") {
        // Rejected credentials were reported before; they work again.
        conditions.push(Condition::new(
            "CredentialsValid",
            true,
            "Accepted",
            "the clouds accept the credentials",
            generation,
        ));
    }
    let active = t.active_region();
    let index = t.index();
    MultiCloudVMStatus {
        observed_generation: generation,
        conditions: merge_conditions(
            &previous.conditions,
            conditions.into_iter().chain(policy).collect(),
            &rfc3339(now),
        ),
        cloud_deployments: t.cloud_deployments(),
        primary_provider: active.map(|r| index.provider(r).as_str().to_owned()),
        active_region: active.map(|r| index.region_name(r).to_owned()),
        total_cost: Some(t.total_cost(now)),
        migration: Some(t.migration()),
        health: Some(health),
    }
}

async fn cleanup(obj: Arc<MultiCloudVM>, ctx: &Context) -> Result<Action> {
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    if let Some(t) = ctx.drop_tracker(&uid) {
        ctx.write_log(&uid, &key, &mut *t.lock().await);
    }
    let owner = Owner {
        kind: "MultiCloudVM",
        name: obj.name_any(),
        namespace: obj.namespace().unwrap_or_default(),
        uid: uid.clone(),
        template: None,
    };
    let deleted = delete_children(ctx, owner).await?;
    info!("{key}: {deleted} VirtualMachine(s) and their cloud instances deleted, releasing the finalizer");
    ctx.metrics.forget(&key);
    Ok(Action::await_change())
}

/// Deletes every VirtualMachine of `owner`; succeeds only once none is left (each child's
/// finalizer waits for its cloud instance to be deleted), so the owner's finalizer can go.
/// Returns how many children there were.
pub(crate) async fn delete_children(ctx: &Context, owner: Owner) -> Result<usize> {
    let api: Api<VirtualMachine> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let selector = format!("{OWNER_UID_LABEL}={}", owner.uid);
    let children = api.list(&ListParams::default().labels(&selector)).await?.items;
    for c in children.iter().filter(|c| c.metadata.deletion_timestamp.is_none()) {
        match api.delete(&c.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let left = api.list(&ListParams::default().labels(&selector)).await?.items.len();
    if left > 0 {
        return Err(Error::ChildrenRemain(left));
    }
    Ok(children.len())
}

/// Logs what a controller's stream reports.
async fn drain<K: Resource, E: std::fmt::Display>(
    stream: impl futures::Stream<Item = Result<(kube::runtime::reflector::ObjectRef<K>, Action), E>>,
) {
    stream
        .for_each(|res| async move {
            match res {
                Ok((o, _)) => tracing::debug!("reconciled {}", o.name),
                Err(e) => warn!("controller: {e}"),
            }
        })
        .await;
}

/// Every controller of the operator, until `stop` turns true (each then finishes its reconciles
/// in flight): MultiCloudVM (owning VirtualMachines), VirtualMachine, VMCluster (owning
/// VirtualMachines), FederatedCluster, AISchedulingPolicy and CacheIntegration.
async fn run_controllers(ctx: Arc<Context>, stop: tokio::sync::watch::Receiver<bool>) {
    let client = ctx.client.clone();
    let until = move || {
        let mut s = stop.clone();
        async move {
            let _ = s.wait_for(|s| *s).await;
        }
    };
    let children = || Api::<VirtualMachine>::all(client.clone());
    let owned = || watcher::Config::default().labels(OWNER_UID_LABEL).any_semantic();
    let mcvm = Controller::new(Api::<MultiCloudVM>::all(client.clone()), watcher::Config::default().any_semantic())
        .owns(children(), owned())
        .graceful_shutdown_on(until())
        .run(reconcile, error_policy, ctx.clone());
    let vms = Controller::new(children(), watcher::Config::default().any_semantic()).graceful_shutdown_on(until()).run(
        crate::vm_controller::reconcile,
        crate::vm_controller::error_policy,
        ctx.clone(),
    );
    // Requeued every poll_interval to read its artifact again (no ConfigMap watch: see
    // policy_controller).
    let policies =
        Controller::new(Api::<AISchedulingPolicy>::all(client.clone()), watcher::Config::default().any_semantic())
            .graceful_shutdown_on(until())
            .run(crate::policy_controller::reconcile, crate::policy_controller::error_policy, ctx.clone());
    let federations =
        Controller::new(Api::<FederatedCluster>::all(client.clone()), watcher::Config::default().any_semantic())
            .graceful_shutdown_on(until())
            .run(crate::federation_controller::reconcile, crate::federation_controller::error_policy, ctx.clone());
    let vmclusters = Controller::new(Api::<VMCluster>::all(client.clone()), watcher::Config::default().any_semantic())
        .owns(children(), owned())
        .graceful_shutdown_on(until())
        .run(crate::vmcluster_controller::reconcile, crate::vmcluster_controller::error_policy, ctx.clone());
    let caches =
        Controller::new(Api::<CacheIntegration>::all(client.clone()), watcher::Config::default().any_semantic())
            .graceful_shutdown_on(until())
            .run(crate::cache_controller::reconcile, crate::cache_controller::error_policy, ctx.clone());
    tokio::join!(drain(mcvm), drain(vms), drain(policies), drain(federations), drain(vmclusters), drain(caches));
}

/// Runs the controllers until a signal stops them, without leader election (one replica only).
/// Fails early if the CRD is not installed.
pub async fn run(ctx: Arc<Context>) -> Result<()> {
    let api = Api::<MultiCloudVM>::all(ctx.client.clone());
    api.list(&ListParams::default().limit(1)).await?;
    ctx.ready.store(true, Ordering::SeqCst);
    ctx.metrics.leader.set(1);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop_tx.send_replace(true);
        std::future::pending::<()>().await;
    });
    run_controllers(ctx.clone(), stop).await;
    ctx.ready.store(false, Ordering::SeqCst);
    Ok(())
}

/// Runs the controllers only while this replica holds the leader Lease, until `shutdown`
/// completes. Fails early if the CRD is not installed.
///
/// A standby waits. When `elector` takes the Lease the controllers start (fresh engines, which
/// adopt what the previous leader created); when the term ends (a renewal missed its deadline,
/// or another replica holds the Lease) the controllers are dropped at once, cancelling the
/// reconciles in flight (cloud calls are idempotent on their client tokens, so a cancelled create
/// is adopted later), its engines are forgotten and the replica stands by again. On `shutdown`
/// the leader finishes the reconciles in flight, then releases the Lease.
pub async fn run_elected(
    ctx: Arc<Context>,
    elector: crate::leader::LeaderElector,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let api = Api::<MultiCloudVM>::all(ctx.client.clone());
    api.list(&ListParams::default().limit(1)).await?;
    ctx.acting.store(false, Ordering::SeqCst);
    ctx.metrics.leader.set(0);
    ctx.ready.store(true, Ordering::SeqCst);
    let identity = elector.config().identity.clone();
    let elector = elector.with_metrics(ctx.metrics.clone());
    let (tx, mut leading) = tokio::sync::watch::channel(false);
    let election = tokio::spawn(elector.run(tx));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
        // Keep the sender, so that receivers never see it closed.
        std::future::pending::<()>().await;
    });
    loop {
        let mut stopped = stop.clone();
        tokio::select! {
            r = leading.wait_for(|l| *l) => if r.is_err() { break },
            _ = stopped.wait_for(|s| *s) => break,
        }
        ctx.acting.store(true, Ordering::SeqCst);
        ctx.metrics.leader.set(1);
        ctx.metrics.leader_terms.inc();
        info!("{identity}: leading; the controllers start");
        let controllers = run_controllers(ctx.clone(), stop.clone());
        let lost = tokio::select! {
            () = controllers => false,
            _ = leading.wait_for(|l| !*l) => true,
        };
        ctx.acting.store(false, Ordering::SeqCst);
        ctx.metrics.leader.set(0);
        ctx.forget_all();
        if !lost {
            break;
        }
        warn!("{identity}: no longer leading; the controllers stopped, standing by");
    }
    ctx.ready.store(false, Ordering::SeqCst);
    // Dropping the receiver ends the election, which releases the Lease if held.
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(10), election).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => warn!("leader election task: {e}"),
        Err(_) => warn!("leader election did not end in 10 s"),
    }
    Ok(())
}
