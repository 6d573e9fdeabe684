//! The AISchedulingPolicy controller: loads a learned placement model and makes it available to
//! the MultiCloudVMs that name the policy.
//!
//! Apply: find the artifact (`modelConfig.artifact.configMapRef`, the v1 shorthand
//! `modelConfig.configMap` with key `model.json`, or `modelConfig.artifact.path`, a mounted
//! file), parse and check it with the engine's loader ([`engine::ModelArtifact::from_json`], the
//! code path of the simulator's `policy.model` and `learn evaluate --model`), check it against
//! the spec (`modelConfig.type`, the `objectives`, the learned policy's parameters), register
//! the result in the [`Registry`] that the MultiCloudVM controller reads, write the status
//! (`modelState` Pending | Loaded | Failed, accuracy, model kind, schema version, data hash, the
//! `ModelLoaded` condition naming the problem) and the metrics, and requeue after
//! `poll_interval`: the ConfigMap or file is read again then, so a new artifact is picked up
//! without a ConfigMap watch (which would need list/watch on every ConfigMap of the cluster).
//! A ConfigMap or file that does not exist (yet) leaves the policy Pending; anything else wrong
//! makes it Failed. Nothing here panics on what a user wrote.
//!
//! Cleanup (a finalizer): the policy leaves the registry and its metrics go.
//!
//! ## MultiCloudVMs
//! A MultiCloudVM opts in with the annotation [`POLICY_ANNOTATION`] naming a policy of its
//! namespace ([`choice_for`]). Its engine then places with `PolicyConfig::Learned` over the
//! loaded artifact; when the artifact or the policy's parameters change, a fresh engine takes
//! over (as after an operator restart: it adopts the instances running). A MultiCloudVM whose
//! policy is missing, Pending or Failed does not fall back to another policy: a new deployment
//! waits (nothing is placed) and a running one keeps the engine it has; either way its
//! `SchedulingPolicy` condition says why and a Warning Event is published.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use engine::policy::learned::{ArtifactError, Target};
use engine::{EngineConfig, LearnedConfig, ModelArtifact, PolicyConfig};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::clock::rfc3339;
use crate::controller::Context;
use crate::crd::aischedulingpolicy::{
    AISchedulingPolicy, AISchedulingPolicySpec, AISchedulingPolicyStatus, DEFAULT_KEY, FINALIZER, POLICY_ANNOTATION,
};
use crate::crd::{Condition, MultiCloudVM, NumOrStr, merge_conditions};
use crate::metrics::{ModelFailureLabels, PolicyLabels};
use crate::{Error, Result};

/// The `controller` label of this controller's metrics.
pub const CONTROLLER: &str = "aischedulingpolicy";

/// A loaded policy: what a MultiCloudVM's engine runs.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedPolicy {
    /// The learned policy's settings, the artifact in it.
    pub config: LearnedConfig,
    /// The model's type (`tree`, `mlp`, ...).
    pub model_kind: &'static str,
    /// FNV-1a of the artifact's bytes, hex.
    pub artifact_hash: String,
}

/// A policy as the MultiCloudVM controller sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyState {
    /// Its artifact does not exist yet (why).
    Pending(String),
    /// Usable.
    Loaded(Arc<LoadedPolicy>),
    /// Not usable (why).
    Failed(String),
}

/// The policies this operator has reconciled, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Registry {
    map: RwLock<BTreeMap<String, PolicyState>>,
}

impl Registry {
    /// The policy `namespace/name`, if reconciled.
    pub fn get(&self, key: &str) -> Option<PolicyState> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    fn set(&self, key: &str, state: PolicyState) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).insert(key.to_owned(), state);
    }

    fn remove(&self, key: &str) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// Forgets every policy (a new term as leader reconciles them again).
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Reconciles one AISchedulingPolicy.
pub async fn reconcile(obj: Arc<AISchedulingPolicy>, ctx: Arc<Context>) -> Result<Action> {
    crate::runtime::reconcile(obj, &ctx, CONTROLLER, Some(FINALIZER), |event| async {
        match event {
            Finalizer::Apply(o) => apply(o, &ctx).await,
            Finalizer::Cleanup(o) => cleanup(o, &ctx).await,
        }
    })
    .await
}

/// Counts the error and requeues with the object's backoff.
pub fn error_policy(obj: Arc<AISchedulingPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::runtime::error_policy(obj.as_ref(), error, &ctx, CONTROLLER)
}

/// Where an artifact is.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    ConfigMap { name: String, key: String },
    File(PathBuf),
}

/// Why a policy is not Loaded: its state, the condition's reason, the metric's label, a message.
struct Problem {
    pending: bool,
    reason: &'static str,
    label: &'static str,
    message: String,
}

impl Problem {
    fn failed(reason: &'static str, label: &'static str, message: impl Into<String>) -> Self {
        Problem { pending: false, reason, label, message: message.into() }
    }
}

fn source_of(spec: &AISchedulingPolicySpec) -> std::result::Result<Source, Problem> {
    let missing = || {
        Problem::failed(
            "NoArtifact",
            "no-artifact",
            "modelConfig names no artifact: give modelConfig.artifact.configMapRef {name, key}, \
             modelConfig.artifact.path (a mounted file) or modelConfig.configMap (key model.json)",
        )
    };
    let Some(mc) = &spec.model_config else { return Err(missing()) };
    match (&mc.artifact, &mc.config_map) {
        (Some(_), Some(_)) => {
            Err(Problem::failed("InvalidSpec", "invalid-spec", "modelConfig: give artifact or configMap, not both"))
        }
        (None, Some(name)) => Ok(Source::ConfigMap { name: name.clone(), key: DEFAULT_KEY.to_owned() }),
        (None, None) => Err(missing()),
        (Some(a), None) => match (&a.config_map_ref, &a.path) {
            (Some(r), None) => {
                Ok(Source::ConfigMap { name: r.name.clone(), key: r.key.clone().unwrap_or_else(|| DEFAULT_KEY.into()) })
            }
            (None, Some(p)) if p.starts_with('/') => Ok(Source::File(PathBuf::from(p))),
            (None, Some(p)) => Err(Problem::failed(
                "InvalidSpec",
                "invalid-spec",
                format!("modelConfig.artifact.path {p:?} must be absolute (a file in the operator's container)"),
            )),
            _ => Err(Problem::failed(
                "InvalidSpec",
                "invalid-spec",
                "modelConfig.artifact: give exactly one of configMapRef and path",
            )),
        },
    }
}

fn describe(source: &Source, ns: &str) -> String {
    match source {
        Source::ConfigMap { name, key } => format!("ConfigMap {ns}/{name} key {key:?}"),
        Source::File(p) => format!("file {}", p.display()),
    }
}

/// The artifact's bytes. A ConfigMap, key or file that does not exist is a Pending problem;
/// other API errors are the reconcile's (retried with backoff).
async fn read(ctx: &Context, ns: &str, source: &Source) -> Result<std::result::Result<Vec<u8>, Problem>> {
    let what = describe(source, ns);
    match source {
        Source::ConfigMap { name, key } => {
            let Some(cm) = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns).get_opt(name).await? else {
                return Ok(Err(Problem {
                    pending: true,
                    reason: "ArtifactNotFound",
                    label: "not-found",
                    message: format!("waiting for the model artifact: no ConfigMap {name:?} in namespace {ns:?}"),
                }));
            };
            if let Some(text) = cm.data.as_ref().and_then(|d| d.get(key)) {
                return Ok(Ok(text.clone().into_bytes()));
            }
            if let Some(bytes) = cm.binary_data.as_ref().and_then(|d| d.get(key)) {
                return Ok(Ok(bytes.0.clone()));
            }
            let mut keys: Vec<&String> = cm.data.iter().flatten().map(|(k, _)| k).collect();
            keys.extend(cm.binary_data.iter().flatten().map(|(k, _)| k));
            Ok(Err(Problem {
                pending: true,
                reason: "ArtifactNotFound",
                label: "not-found",
                message: format!("waiting for the model artifact: {what} does not exist (the ConfigMap has {keys:?})"),
            }))
        }
        Source::File(path) => match tokio::fs::read(path).await {
            Ok(b) => Ok(Ok(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Err(Problem {
                pending: true,
                reason: "ArtifactNotFound",
                label: "not-found",
                message: format!("waiting for the model artifact: no {what} (is its volume mounted?)"),
            })),
            Err(e) => Ok(Err(Problem::failed("ArtifactUnreadable", "unreadable", format!("cannot read {what}: {e}")))),
        },
    }
}

/// The model families of `modelConfig.type`: the v1 names and `learn train --model`'s, with
/// the artifact's model type and whether the family is the preference (bandit) one.
const FAMILIES: [(&str, &str, bool); 14] = [
    ("neural-network", "mlp", false),
    ("mlp", "mlp", false),
    ("reinforcement-learning", "mlp", true),
    ("bandit", "mlp", true),
    ("decision-tree", "tree", false),
    ("tree", "tree", false),
    ("random-forest", "forest", false),
    ("forest", "forest", false),
    ("gradient-boosting", "boosted", false),
    ("boosted", "boosted", false),
    ("linear-regression", "linear", false),
    ("linear", "linear", false),
    ("logistic-regression", "logistic", false),
    ("logistic", "logistic", false),
];

/// The objectives of the v1 vocabulary (and learn's reward weights), with their aliases.
const OBJECTIVES: [(&str, &[&str]); 4] = [
    ("cost", &["cost"]),
    ("performance", &["performance", "latency"]),
    ("availability", &["availability", "reliability"]),
    ("energy", &["energy", "carbon"]),
];

fn canonical(kind: &str) -> Option<&'static str> {
    let k = kind.trim().to_ascii_lowercase();
    OBJECTIVES.iter().find(|(_, names)| names.contains(&k.as_str())).map(|(c, _)| *c)
}

fn number(v: &NumOrStr) -> Option<f64> {
    let x = match v {
        NumOrStr::Num(x) => Some(*x),
        NumOrStr::Str(s) => s.trim().parse().ok(),
    };
    x.filter(|x: &f64| x.is_finite())
}

/// What the model was trained to optimise: the objectives, with their weights when training
/// recorded them (learn's bandit writes its reward weights), and how to say so.
fn model_objectives(a: &ModelArtifact) -> (BTreeMap<&'static str, Option<f64>>, String) {
    let both = || BTreeMap::from([("cost", None), ("availability", None)]);
    match a.target {
        Target::CostPerHour => {
            (both(), "predicts the hindsight cost per hour, interruption and outage penalties included".into())
        }
        Target::InterruptionProbability => {
            (both(), "predicts spot interruptions, scored as price plus the interruption's cost".into())
        }
        Target::Preference => {
            let weights = a
                .training
                .get("config")
                .and_then(|c| serde_json::from_str::<Value>(c).ok())
                .and_then(|c| c.get("weights").cloned());
            match weights {
                Some(w) => {
                    let m: BTreeMap<&'static str, Option<f64>> = OBJECTIVES
                        .iter()
                        .filter_map(|(c, _)| w.get(*c).and_then(Value::as_f64).map(|x| (*c, Some(x))))
                        .collect();
                    (m, "was trained on a reward with these weights".into())
                }
                None => (OBJECTIVES.iter().map(|(c, _)| (*c, None)).collect(), "records no reward weights".into()),
            }
        }
    }
}

/// Problems of the spec against the artifact: `modelConfig.type`, the objectives.
fn check_against(spec: &AISchedulingPolicySpec, a: &ModelArtifact) -> Vec<String> {
    let mut problems = Vec::new();
    let kind = a.model.type_name();
    if let Some(t) = spec.model_config.as_ref().and_then(|m| m.kind.as_deref()) {
        match FAMILIES.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(t.trim())) {
            None => problems.push(format!(
                "modelConfig.type {t:?} is not a model family; allowed: {}",
                FAMILIES.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join(", ")
            )),
            Some((_, want, preference)) => {
                let is_pref = a.target == Target::Preference;
                if *want != kind || *preference != is_pref {
                    let got = if is_pref { "a preference (bandit) mlp".to_owned() } else { format!("a {kind}") };
                    problems.push(format!("modelConfig.type is {t:?} but the artifact holds {got} model"));
                }
            }
        }
    }
    let (trained, how) = model_objectives(a);
    let mut declared: BTreeMap<&'static str, Option<f64>> = BTreeMap::new();
    for (i, o) in spec.objectives.iter().enumerate() {
        let Some(c) = canonical(&o.kind) else {
            problems.push(format!(
                "objectives[{i}].type {:?} is not an objective; allowed: cost, performance (latency), \
                 availability (reliability), energy (carbon)",
                o.kind
            ));
            continue;
        };
        let weight = match &o.weight {
            None => None,
            Some(w) => match number(w).filter(|x| *x >= 0.0) {
                Some(x) => Some(x),
                None => {
                    problems.push(format!("objectives[{i}].weight {w:?} must be a number >= 0"));
                    continue;
                }
            },
        };
        if declared.insert(c, weight).is_some() {
            problems.push(format!("objectives[{i}]: {c} is listed twice"));
            continue;
        }
        let wanted = weight.is_none_or(|w| w > 0.0);
        let optimised = trained.get(c).is_some_and(|w| w.is_none_or(|w| w > 0.0));
        if wanted && !optimised {
            let names: Vec<&str> = trained.iter().filter(|(_, w)| w.is_none_or(|w| w > 0.0)).map(|(c, _)| *c).collect();
            problems.push(format!(
                "objectives[{i}]: {} {} but the {kind} model does not optimise it: it {how} ({})",
                o.kind,
                weight.map_or("is asked for".to_owned(), |w| format!("has weight {w}")),
                names.join(", ")
            ));
        }
    }
    // Recorded weights and weights for every declared objective: the shares must agree.
    let recorded: Option<BTreeMap<&str, f64>> = trained.iter().map(|(c, w)| w.map(|w| (*c, w))).collect();
    let given: Option<BTreeMap<&str, f64>> = declared.iter().map(|(c, w)| w.map(|w| (*c, w))).collect();
    if let (Some(r), Some(g)) = (recorded, given)
        && !g.is_empty()
        && problems.is_empty()
    {
        let share = |m: &BTreeMap<&str, f64>, c: &str| {
            let total: f64 = m.values().sum();
            if total > 0.0 { m.get(c).copied().unwrap_or(0.0) / total } else { 0.0 }
        };
        let off = OBJECTIVES.iter().any(|(c, _)| (share(&r, c) - share(&g, c)).abs() > 0.01);
        if off {
            let show = |m: &BTreeMap<&str, f64>| {
                OBJECTIVES.iter().map(|(c, _)| format!("{c} {:.2}", share(m, c))).collect::<Vec<_>>().join(", ")
            };
            problems.push(format!(
                "objectives: the weights' shares ({}) contradict the reward the model was trained on ({})",
                show(&g),
                show(&r)
            ));
        }
    }
    problems
}

/// The learned policy's parameters from `modelConfig`.
fn learned_config(
    spec: &AISchedulingPolicySpec,
    artifact: ModelArtifact,
) -> std::result::Result<LearnedConfig, String> {
    let mut cfg = LearnedConfig::new(artifact);
    let mc = spec.model_config.clone().unwrap_or_default();
    if let Some(v) = &mc.interruption_cost_usd {
        cfg.interruption_cost_usd =
            number(v).ok_or_else(|| format!("modelConfig.interruptionCostUsd {v:?} must be a number >= 0"))?;
    }
    if let Some(v) = &mc.expected_life_hours {
        cfg.expected_life_h =
            number(v).ok_or_else(|| format!("modelConfig.expectedLifeHours {v:?} must be a number > 0"))?;
    }
    PolicyConfig::Learned(cfg.clone()).validate().map_err(|m| format!("modelConfig: {m}"))?;
    Ok(cfg)
}

/// `learningConfig.accuracyThreshold`, if given.
fn threshold(spec: &AISchedulingPolicySpec) -> std::result::Result<Option<f64>, String> {
    let Some(v) = spec.learning_config.as_ref().and_then(|l| l.0.get("accuracyThreshold")) else { return Ok(None) };
    let x = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match x {
        Some(x) if (0.0..=1.0).contains(&x) => Ok(Some(x)),
        _ => Err(format!("learningConfig.accuracyThreshold {v} must be a number from 0 to 1")),
    }
}

/// The accuracy training recorded, and under which key.
fn accuracy(a: &ModelArtifact) -> Option<(f64, &'static str)> {
    ["test_accuracy", "test_top1"].into_iter().find_map(|k| {
        let x: f64 = a.training.get(k)?.trim().parse().ok()?;
        (x.is_finite() && (0.0..=1.0).contains(&x)).then_some((x, k))
    })
}

/// FNV-1a, 64 bits, hex: a stable hash of the artifact's bytes.
fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

async fn apply(obj: Arc<AISchedulingPolicy>, ctx: &Context) -> Result<Action> {
    let ns = obj.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let name = obj.name_any();
    let key = format!("{ns}/{name}");
    let generation = obj.metadata.generation;
    let previous = obj.status.clone().unwrap_or_default();
    let mut status = AISchedulingPolicyStatus { observed_generation: generation, ..Default::default() };
    let outcome = match source_of(&obj.spec) {
        Err(p) => Err(p),
        Ok(source) => match read(ctx, &ns, &source).await? {
            Err(p) => Err(p),
            Ok(bytes) => load(&obj.spec, &source, &ns, &bytes, &mut status),
        },
    };
    let labels = PolicyLabels { policy: key.clone() };
    let (condition, state) = match outcome {
        Ok((loaded, threshold, recorded)) => {
            let (acc, metric) = recorded.unzip();
            status.accuracy = acc;
            status.accuracy_metric = metric.map(str::to_owned);
            status.model_state = Some("Loaded".into());
            match acc {
                Some(a) => {
                    ctx.metrics.model_accuracy.get_or_create(&labels).set(a);
                }
                None => {
                    ctx.metrics.model_accuracy.remove(&labels);
                }
            }
            match threshold {
                Some(t) => {
                    ctx.metrics.model_accuracy_threshold.get_or_create(&labels).set(t);
                }
                None => {
                    ctx.metrics.model_accuracy_threshold.remove(&labels);
                }
            }
            let msg = format!(
                "{} model ({}), accuracy {}, artifact {}",
                loaded.model_kind,
                status.model_target.as_deref().unwrap_or("?"),
                acc.map_or_else(|| "not recorded".to_owned(), |a| format!("{a:.3}")),
                loaded.artifact_hash
            );
            let same = matches!(ctx.policies.get(&key), Some(PolicyState::Loaded(l)) if *l == loaded);
            if !same {
                ctx.policies.set(&key, PolicyState::Loaded(Arc::new(loaded)));
            }
            (Condition::new("ModelLoaded", true, "Loaded", msg, generation), "Loaded")
        }
        Err(p) => {
            ctx.metrics
                .model_load_failures
                .get_or_create(&ModelFailureLabels { policy: key.clone(), reason: p.label.into() })
                .inc();
            ctx.metrics.model_accuracy.remove(&labels);
            ctx.metrics.model_accuracy_threshold.remove(&labels);
            let state = if p.pending { "Pending" } else { "Failed" };
            status.model_state = Some(state.into());
            let registered = if p.pending {
                PolicyState::Pending(p.message.clone())
            } else {
                PolicyState::Failed(p.message.clone())
            };
            ctx.policies.set(&key, registered);
            (Condition::new("ModelLoaded", false, p.reason, p.message, generation), state)
        }
    };
    let changed = previous
        .conditions
        .iter()
        .find(|c| c.type_ == "ModelLoaded")
        .is_none_or(|c| c.reason != condition.reason || c.message != condition.message);
    let note = condition.message.clone();
    let reason = condition.reason.clone();
    status.conditions = merge_conditions(&previous.conditions, vec![condition], &rfc3339(ctx.clock.now()));
    let api: Api<AISchedulingPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({ "apiVersion": "novacron.io/v1", "kind": "AISchedulingPolicy", "status": status });
    api.patch_status(&name, &PatchParams::apply(&ctx.config.field_manager).force(), &Patch::Apply(&patch)).await?;
    if changed {
        let (event, warning) = match state {
            "Loaded" => ("ModelLoaded", false),
            "Pending" => ("ModelPending", true),
            _ => ("ModelLoadFailed", true),
        };
        ctx.publish_event(&obj.object_ref(&()), event, format!("{reason}: {note}"), warning).await;
    }
    Ok(Action::requeue(ctx.config.poll_interval))
}

/// A loaded policy, its spec's accuracy threshold, and the accuracy training recorded (with
/// its key).
type Load = (LoadedPolicy, Option<f64>, Option<(f64, &'static str)>);

/// Parses, checks and compares the artifact with the spec; fills the status' model fields.
fn load(
    spec: &AISchedulingPolicySpec,
    source: &Source,
    ns: &str,
    bytes: &[u8],
    status: &mut AISchedulingPolicyStatus,
) -> std::result::Result<Load, Problem> {
    let what = describe(source, ns);
    let invalid = |m: String| Problem::failed("InvalidArtifact", "invalid-artifact", format!("{what}: {m}"));
    let text =
        std::str::from_utf8(bytes).map_err(|e| invalid(format!("not a valid model artifact: not UTF-8 text ({e})")))?;
    let artifact = ModelArtifact::from_json(text).map_err(|e| match e {
        ArtifactError::Check(m) => invalid(m),
        e => invalid(e.to_string()),
    })?;
    status.model_kind = Some(artifact.model.type_name().to_owned());
    status.model_target = serde_json::to_value(artifact.target).ok().and_then(|v| v.as_str().map(str::to_owned));
    status.feature_schema_version = Some(artifact.feature_schema_version);
    status.training_data_hash = artifact.training.get("data_hash").cloned();
    let hash = fnv1a(bytes);
    status.artifact_hash = Some(hash.clone());
    let problems = check_against(spec, &artifact);
    if !problems.is_empty() {
        return Err(Problem::failed("ModelMismatch", "model-mismatch", format!("{what}: {}", problems.join("; "))));
    }
    let threshold = threshold(spec).map_err(|m| Problem::failed("InvalidSpec", "invalid-spec", m))?;
    let model_kind = artifact.model.type_name();
    let recorded = accuracy(&artifact);
    let config = learned_config(spec, artifact).map_err(|m| Problem::failed("InvalidSpec", "invalid-spec", m))?;
    Ok((LoadedPolicy { config, model_kind, artifact_hash: hash }, threshold, recorded))
}

async fn cleanup(obj: Arc<AISchedulingPolicy>, ctx: &Context) -> Result<Action> {
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    ctx.policies.remove(&key);
    let labels = PolicyLabels { policy: key };
    ctx.metrics.model_accuracy.remove(&labels);
    ctx.metrics.model_accuracy_threshold.remove(&labels);
    Ok(Action::await_change())
}

/// How a MultiCloudVM's engine places.
#[derive(Clone, Debug)]
pub enum Choice {
    /// No policy named: the operator's engine settings.
    Default,
    /// The named policy is loaded: its engine settings.
    Learned {
        /// `namespace/name` of the policy.
        policy: String,
        /// The operator's engine settings with the learned policy.
        config: Box<EngineConfig>,
        /// What it runs, for the condition.
        note: String,
    },
    /// The named policy cannot be used now.
    NotReady {
        /// `namespace/name` of the policy.
        policy: String,
        /// The condition's reason: `PolicyNotFound`, `PolicyPending`, `PolicyFailed`.
        reason: &'static str,
        /// Why.
        message: String,
    },
}

/// The placement a MultiCloudVM asks for with its [`POLICY_ANNOTATION`], as the registry has
/// the policy now.
pub fn choice_for(ctx: &Context, obj: &MultiCloudVM) -> Choice {
    let Some(name) = obj.annotations().get(POLICY_ANNOTATION).map(|n| n.trim().to_owned()) else {
        return Choice::Default;
    };
    let ns = obj.namespace().unwrap_or_default();
    let policy = format!("{ns}/{name}");
    match ctx.policies.get(&policy) {
        None => Choice::NotReady {
            message: format!(
                "AISchedulingPolicy {name:?} (annotation {POLICY_ANNOTATION}) does not exist in namespace {ns:?} or is not reconciled yet"
            ),
            policy,
            reason: "PolicyNotFound",
        },
        Some(PolicyState::Pending(m)) => Choice::NotReady {
            message: format!("AISchedulingPolicy {name:?} is Pending: {m}"),
            policy,
            reason: "PolicyPending",
        },
        Some(PolicyState::Failed(m)) => Choice::NotReady {
            message: format!("AISchedulingPolicy {name:?} is Failed: {m}"),
            policy,
            reason: "PolicyFailed",
        },
        Some(PolicyState::Loaded(l)) => {
            let config = EngineConfig { policy: PolicyConfig::Learned(l.config.clone()), ..ctx.config.engine.clone() };
            let note = format!(
                "placing with AISchedulingPolicy {name:?}: {} model, artifact {}",
                l.model_kind, l.artifact_hash
            );
            Choice::Learned { policy, config: Box::new(config), note }
        }
    }
}
