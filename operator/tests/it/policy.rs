//! The AISchedulingPolicy controller: a model artifact written by `learn train`
//! (operator/tests/fixtures/models, see its README) loaded from a ConfigMap or a file with the
//! engine's loader; bad artifacts and specs Failed with the problem named; a MultiCloudVM that
//! names the policy places with it, and its decision log replays in the simulator; one that names
//! a policy that is not loaded waits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::SimDuration;
use kube::ResourceExt;
use operator::controller::Config;
use operator::crd::aischedulingpolicy::{
    AISchedulingPolicy, AISchedulingPolicySpec, AISchedulingPolicyStatus, FINALIZER, POLICY_ANNOTATION,
};
use operator::crd::{Condition, MultiCloudVM};
use operator::policy_controller::{self, PolicyState};
use serde_json::{Value, json};

use crate::common::{Fixture, Harness, NOVACRON, condition, mcvm, seed_spec};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

fn artifact(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("the fixture")
}

/// A policy in `default` with the operator's finalizer, from a spec written as YAML.
fn policy(name: &str, spec_yaml: &str) -> AISchedulingPolicy {
    let spec: AISchedulingPolicySpec = serde_yaml_ng::from_str(spec_yaml).expect("a spec");
    let mut p = AISchedulingPolicy::new(name, spec);
    p.metadata.namespace = Some("default".into());
    p.metadata.uid = Some(format!("uid-policy-{name}"));
    p.metadata.generation = Some(1);
    p.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    p
}

fn put_configmap(h: &Harness, name: &str, key: &str, text: &str) {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": {key: text}});
    h.store().put("/api/v1", "configmaps", &cm);
}

/// Puts the policy in the API server, reconciles it, and returns its status as written.
async fn reconcile(h: &Harness, p: &AISchedulingPolicy) -> AISchedulingPolicyStatus {
    h.store().put(NOVACRON, "aischedulingpolicies", &serde_json::to_value(p).expect("json"));
    let stored: AISchedulingPolicy = serde_json::from_value(
        h.store().get(NOVACRON, "aischedulingpolicies", "default", &p.name_any()).expect("stored"),
    )
    .expect("a policy");
    policy_controller::reconcile(Arc::new(stored), h.ctx.clone()).await.expect("reconcile succeeds");
    let v = h.store().get(NOVACRON, "aischedulingpolicies", "default", &p.name_any()).expect("stored");
    serde_json::from_value(v["status"].clone()).expect("a status")
}

fn model_loaded(s: &AISchedulingPolicyStatus) -> &Condition {
    s.conditions.iter().find(|c| c.type_ == "ModelLoaded").expect("the ModelLoaded condition")
}

fn metrics_text(h: &Harness) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &h.registry).expect("encode");
    text
}

/// The value of the sample `name{labels}`, if exported.
fn sample(h: &Harness, series: &str) -> Option<f64> {
    metrics_text(h).lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Two policies reconciled: `predictive` loads tree.json from a ConfigMap, `broken`'s artifact
/// is not JSON.
pub async fn one_loaded_one_failed(h: &Harness) {
    put_configmap(h, "placement-model", "model.json", &artifact("tree.json"));
    put_configmap(h, "broken-model", "model.json", "{ not json");
    let s = reconcile(h, &policy("predictive", FROM_CONFIGMAP)).await;
    assert_eq!(s.model_state.as_deref(), Some("Loaded"));
    let s = reconcile(h, &policy("broken", &FROM_CONFIGMAP.replace("placement-model", "broken-model"))).await;
    assert_eq!(s.model_state.as_deref(), Some("Failed"));
}

const FROM_CONFIGMAP: &str = r#"
modelConfig:
  type: decision-tree
  configMap: placement-model
objectives:
- type: cost
  weight: "0.8"
- type: availability
  weight: "0.2"
learningConfig:
  accuracyThreshold: 0.3
"#;

#[tokio::test]
async fn a_policy_loads_its_artifact_from_a_configmap() {
    let h = Harness::new();
    put_configmap(&h, "placement-model", "model.json", &artifact("tree.json"));
    let p = policy("predictive", FROM_CONFIGMAP);
    let s = reconcile(&h, &p).await;
    assert_eq!(s.model_state.as_deref(), Some("Loaded"), "{s:?}");
    // tree.json's `test_top1` (README of the fixtures): 118 of 530 held-out decisions.
    assert_eq!(s.accuracy, Some(0.22264150943396227));
    assert_eq!(s.accuracy_metric.as_deref(), Some("test_top1"));
    assert_eq!(s.model_kind.as_deref(), Some("tree"));
    assert_eq!(s.model_target.as_deref(), Some("cost-per-hour"));
    assert_eq!(s.feature_schema_version, Some(2));
    assert_eq!(s.training_data_hash.as_deref(), Some("b74ea2e883813fe0"));
    assert_eq!(s.observed_generation, Some(1));
    let c = model_loaded(&s);
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Loaded"));
    assert!(matches!(h.ctx.policies.get("default/predictive"), Some(PolicyState::Loaded(_))));
    assert!(h.calls().contains(&"GET /api/v1/namespaces/default/configmaps/placement-model".to_owned()));
    // The accuracy and the spec's threshold are exported for the ModelAccuracyLow alert.
    // (prometheus-client prints the f64 with 17 digits, ...228: the same number.)
    assert_eq!(sample(&h, "novacron_model_accuracy{policy=\"default/predictive\"}"), Some(0.22264150943396227));
    assert_eq!(sample(&h, "novacron_model_accuracy_threshold{policy=\"default/predictive\"}"), Some(0.3));
    let events = h.events();
    assert!(events.iter().any(|e| e["reason"] == "ModelLoaded"), "{events:?}");

    // Deleted: the finalizer's cleanup takes it out of the registry and the metrics.
    let mut gone = p.clone();
    gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-30T01:00:00Z".parse().expect("a timestamp"),
    ));
    h.store().put(NOVACRON, "aischedulingpolicies", &serde_json::to_value(&gone).expect("json"));
    policy_controller::reconcile(Arc::new(gone), h.ctx.clone()).await.expect("cleanup");
    assert_eq!(h.ctx.policies.get("default/predictive"), None);
    assert!(!metrics_text(&h).contains("novacron_model_accuracy{"), "the gauge goes with the policy");
}

#[tokio::test]
async fn a_policy_loads_its_artifact_from_a_mounted_file() {
    let h = Harness::new();
    let spec = format!(
        "modelConfig:\n  type: logistic-regression\n  artifact:\n    path: {}\n  interruptionCostUsd: \"0.25\"\n",
        fixture("logistic.json").display()
    );
    let s = reconcile(&h, &policy("risk", &spec)).await;
    assert_eq!(s.model_state.as_deref(), Some("Loaded"), "{s:?}");
    // logistic.json's test accuracy on spot rows.
    assert_eq!(s.accuracy, Some(0.827451829400303));
    assert_eq!(s.accuracy_metric.as_deref(), Some("test_accuracy"));
    assert_eq!(s.model_target.as_deref(), Some("interruption-probability"));
    let Some(PolicyState::Loaded(l)) = h.ctx.policies.get("default/risk") else { panic!("not loaded") };
    assert_eq!(l.config.interruption_cost_usd, 0.25);
    assert_eq!(l.model_kind, "logistic");
    // No threshold in the spec: no threshold series (the alert then has nothing to compare).
    assert!(!metrics_text(&h).contains("novacron_model_accuracy_threshold{"));
}

/// The policy's state and ModelLoaded condition for an artifact text in a ConfigMap.
async fn outcome(spec: &str, text: &str) -> (AISchedulingPolicyStatus, Harness) {
    let h = Harness::new();
    put_configmap(&h, "placement-model", "model.json", text);
    let s = reconcile(&h, &policy("predictive", spec)).await;
    (s, h)
}

#[tokio::test]
async fn bad_artifacts_and_contradicting_specs_fail_with_the_problem_named() {
    let tree = artifact("tree.json");
    let truncated = &tree[..tree.len() / 2];
    let mut v: Value = serde_json::from_str(&tree).expect("json");
    v["feature_schema_version"] = json!(1);
    let old_schema = v.to_string();
    let mut v: Value = serde_json::from_str(&tree).expect("json");
    v["model"]["nodes"][0] = json!({"split": {"feature": 99, "threshold": 0.5, "left": 1, "right": 2}});
    let bad_feature = v.to_string();
    let latency = FROM_CONFIGMAP.replace("type: availability", "type: latency");
    let where_ = "ConfigMap default/placement-model key \"model.json\"";
    let cases: [(&str, &str, &str, &str); 7] = [
        (FROM_CONFIGMAP, truncated, "InvalidArtifact", "not a valid model artifact: EOF while parsing"),
        (FROM_CONFIGMAP, "{\"format\": 7}", "InvalidArtifact", "not a valid model artifact: invalid type"),
        (FROM_CONFIGMAP, &old_schema, "InvalidArtifact", "feature schema version 1 does not match the engine's 2"),
        (FROM_CONFIGMAP, &bad_feature, "InvalidArtifact", "tree model"),
        (
            &FROM_CONFIGMAP.replace("decision-tree", "gradient-boosting"),
            &tree,
            "ModelMismatch",
            "modelConfig.type is \"gradient-boosting\" but the artifact holds a tree model",
        ),
        (
            &latency,
            &tree,
            "ModelMismatch",
            "objectives[1]: latency has weight 0.2 but the tree model does not optimise it",
        ),
        (
            &FROM_CONFIGMAP.replace("accuracyThreshold: 0.3", "accuracyThreshold: 30"),
            &tree,
            "InvalidSpec",
            "learningConfig.accuracyThreshold 30 must be a number from 0 to 1",
        ),
    ];
    for (spec, text, reason, message) in cases {
        let (s, h) = outcome(spec, text).await;
        let c = model_loaded(&s);
        assert_eq!(s.model_state.as_deref(), Some("Failed"), "{message}: {s:?}");
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", reason), "{c:?}");
        assert!(c.message.contains(message), "{:?} does not say {message:?}", c.message);
        if reason == "InvalidArtifact" {
            assert!(c.message.starts_with(where_), "{:?} names the artifact", c.message);
        }
        assert!(matches!(h.ctx.policies.get("default/predictive"), Some(PolicyState::Failed(_))));
        let text = metrics_text(&h);
        assert!(!text.contains("novacron_model_accuracy{"), "no accuracy for a failed model");
        let label = match reason {
            "InvalidArtifact" => "invalid-artifact",
            "ModelMismatch" => "model-mismatch",
            _ => "invalid-spec",
        };
        let series = format!("novacron_model_load_failures_total{{policy=\"default/predictive\",reason=\"{label}\"}}");
        assert_eq!(sample(&h, &series), Some(1.0), "{series} in\n{text}");
        assert!(h.events().iter().any(|e| e["reason"] == "ModelLoadFailed"));
    }

    // A ConfigMap that does not exist yet: Pending, not Failed.
    let h = Harness::new();
    let s = reconcile(&h, &policy("predictive", FROM_CONFIGMAP)).await;
    assert_eq!(s.model_state.as_deref(), Some("Pending"));
    let c = model_loaded(&s);
    assert_eq!(c.reason, "ArtifactNotFound");
    assert!(c.message.contains("no ConfigMap \"placement-model\" in namespace \"default\""), "{c:?}");
    // Nor a file.
    let s = reconcile(&h, &policy("file", "modelConfig:\n  artifact:\n    path: /nonexistent/model.json\n")).await;
    assert_eq!(s.model_state.as_deref(), Some("Pending"));
    assert!(model_loaded(&s).message.contains("no file /nonexistent/model.json (is its volume mounted?)"));
    // No artifact named at all (the v1 shape without configMap).
    let s = reconcile(&h, &policy("none", "modelConfig:\n  type: neural-network\n")).await;
    assert_eq!((s.model_state.as_deref(), model_loaded(&s).reason.as_str()), (Some("Failed"), "NoArtifact"));
}

fn annotated(name: &str, policy: &str) -> MultiCloudVM {
    let mut spec = seed_spec();
    spec.replicas = Some(2);
    let mut o = mcvm(name, spec).finalized();
    o.annotations_mut().insert(POLICY_ANNOTATION.to_owned(), policy.to_owned());
    o
}

/// The offers the engine provisioned, in the order of the decision log.
fn provisioned(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .flat_map(|l| l["actions"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["action"] == "provision")
        .map(|a| a["placement"].clone())
        .collect()
}

/// Runs a two-replica seed deployment (annotated with `policy` when given, which loads `model`)
/// through placement, an AWS outage and failover, and returns the decision log.
async fn run(policy: Option<&str>, model: &str) -> (String, Harness, MultiCloudVM) {
    run_with(policy, model, FROM_CONFIGMAP).await
}

async fn run_with(policy: Option<&str>, model: &str, spec: &str) -> (String, Harness, MultiCloudVM) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("decisions.jsonl");
    let mut h = Harness::with_config(Config { decision_log: Some(log.clone()), ..Config::default() });
    put_configmap(&h, "placement-model", "model.json", model);
    let s = reconcile(&h, &crate::policy::policy("predictive", spec)).await;
    assert_eq!(s.model_state.as_deref(), Some("Loaded"), "{s:?}");
    let mut o = match policy {
        Some(p) => annotated("web", p),
        None => mcvm("web", {
            let mut s = seed_spec();
            s.replicas = Some(2);
            s
        })
        .finalized(),
    };
    h.apply(&mut o).await;
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    h.apply(&mut o).await;
    h.cloud.fail_region("aws-us-east-1");
    h.clock.advance(SimDuration::from_secs(30));
    h.apply(&mut o).await;
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    h.apply(&mut o).await;
    (std::fs::read_to_string(&log).expect("the log"), h, o)
}

#[tokio::test]
async fn a_multicloudvm_naming_the_policy_places_with_the_learned_model_as_the_simulator_would() {
    let (text, h, o) = run(Some("predictive"), &artifact("tree.json")).await;
    let s = o.status.clone().expect("status");
    let c = condition(&s, "SchedulingPolicy");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Loaded"), "{c:?}");
    assert!(c.message.contains("tree model"), "{c:?}");
    assert!(h.events().iter().any(|e| e["reason"] == "SchedulingPolicyLoaded"));
    // The decision log's header carries the learned policy with the artifact itself...
    let header: Value = serde_json::from_str(text.lines().next().expect("a line")).expect("json");
    assert_eq!(header["engine"]["policy"]["kind"], "learned");
    let logged: engine::ModelArtifact =
        serde_json::from_value(header["engine"]["policy"]["model"].clone()).expect("the artifact inline");
    assert_eq!(logged, engine::ModelArtifact::from_json(&artifact("tree.json")).expect("loads"));
    // ...so that the simulator's engine, fed the same events, decides the same, action for action.
    let summary = sim::replay::replay_str(Path::new("decisions.jsonl"), &text).expect("a valid log");
    assert!(summary.all_match(), "{:?}", summary.mismatches.iter().map(ToString::to_string).collect::<Vec<_>>());
    assert!(summary.decisions >= 4 && summary.actions > 4, "{summary:?}");
    let learned = provisioned(&text);
    assert!(learned.len() >= 3, "two replicas and a failover: {learned:?}");
    let fail_overs = text.matches("\"action\":\"fail-over\"").count();
    assert!(fail_overs >= 1, "the failover is decided with the learned policy too");

    // This small tree ranks the seed's candidates as cost-optimized does (the cheapest spot
    // pools), so the default policy places alike here...
    let (default_text, _, _) = run(None, &artifact("tree.json")).await;
    let header: Value = serde_json::from_str(default_text.lines().next().expect("a line")).expect("json");
    assert_eq!(header["engine"]["policy"]["kind"], "cost-optimized");
    assert_eq!(provisioned(&default_text), learned);
    assert!(learned.iter().all(|p| p["market"] == "spot"));
    // ...and a model that prices spot higher (a linear artifact made with the engine's types:
    // cost = marginal $/h + $1/h if spot) places on demand: the model is what decides, and its
    // run replays in the simulator too.
    use engine::policy::learned::{Linear, Model, N_FEATURES, Scaler, Target};
    let mut coef = vec![0.0; N_FEATURES];
    coef[1] = 1.0; // marginal_per_h
    coef[3] = 1.0; // is_spot
    let spot_averse = engine::ModelArtifact::new(
        Target::CostPerHour,
        Model::Linear(Linear { scaler: Scaler::identity(N_FEATURES), coef, intercept: 0.0 }),
    );
    let spec = FROM_CONFIGMAP.replace("decision-tree", "linear-regression");
    let text = serde_json::to_string(&spot_averse).expect("json");
    let (averse_log, h, _) = run_with(Some("predictive"), &text, &spec).await;
    assert!(matches!(h.ctx.policies.get("default/predictive"), Some(PolicyState::Loaded(_))));
    let placed = provisioned(&averse_log);
    assert!(!placed.is_empty() && placed.iter().all(|p| p["market"] == "on-demand"), "{placed:?}");
    let summary = sim::replay::replay_str(Path::new("averse.jsonl"), &averse_log).expect("a valid log");
    assert!(summary.all_match(), "{:?}", summary.mismatches.iter().map(ToString::to_string).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_multicloudvm_naming_a_missing_policy_waits_then_places_when_it_loads() {
    let mut h = Harness::new();
    let mut o = annotated("web", "predictive");
    let (_, s) = h.apply(&mut o).await;
    let c = condition(&s, "SchedulingPolicy");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "PolicyNotFound"), "{c:?}");
    assert!(c.message.contains("AISchedulingPolicy \"predictive\""), "{c:?}");
    assert_eq!(condition(&s, "Ready").reason, "WaitingForPolicy");
    assert!(h.vms().is_empty(), "nothing is placed while the policy is missing");
    assert!(!h.ctx.has_tracker("uid-web"), "no engine runs");
    assert!(h.events().iter().any(|e| e["reason"] == "SchedulingPolicyNotReady"));

    // A policy whose artifact is corrupt: still waiting, with the policy's problem.
    put_configmap(&h, "placement-model", "model.json", "{ not json");
    reconcile(&h, &policy("predictive", FROM_CONFIGMAP)).await;
    let (_, s) = h.apply(&mut o).await;
    let c = condition(&s, "SchedulingPolicy");
    assert_eq!(c.reason, "PolicyFailed");
    assert!(c.message.contains("not a valid model artifact"), "{c:?}");
    assert!(h.vms().is_empty());

    // Fixed: the next reconcile places with it.
    put_configmap(&h, "placement-model", "model.json", &artifact("tree.json"));
    reconcile(&h, &policy("predictive", FROM_CONFIGMAP)).await;
    let (_, s) = h.apply(&mut o).await;
    assert_eq!(condition(&s, "SchedulingPolicy").reason, "Loaded");
    assert_eq!(h.vms().len(), 2);

    // Broken again while running: the running engine keeps deciding, and the status says so.
    put_configmap(&h, "placement-model", "model.json", "");
    reconcile(&h, &policy("predictive", FROM_CONFIGMAP)).await;
    let (_, s) = h.apply(&mut o).await;
    let c = condition(&s, "SchedulingPolicy");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "PolicyFailed"));
    assert!(c.message.contains("the running engine keeps deciding meanwhile"), "{c:?}");
    assert_eq!(h.vms().len(), 2, "nothing is torn down");
}
