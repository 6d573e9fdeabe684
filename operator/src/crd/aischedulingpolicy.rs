//! `AISchedulingPolicy`: a learned placement model (an artifact written by `learn train`) and its
//! objectives. The controller ([`crate::policy_controller`]) loads and checks the artifact and
//! reports it in status; MultiCloudVMs that name the policy ([`POLICY_ANNOTATION`]) place with it.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, FreeForm, NumOrStr};

/// The finalizer that takes a policy out of the operator's registry before the object goes.
pub const FINALIZER: &str = "novacron.io/scheduling-policy";

/// The annotation by which a MultiCloudVM opts in to a policy of its namespace:
/// `novacron.io/scheduling-policy: <AISchedulingPolicy name>`.
pub const POLICY_ANNOTATION: &str = "novacron.io/scheduling-policy";

/// The key of the artifact in a ConfigMap named by the v1 shorthand `modelConfig.configMap`.
pub const DEFAULT_KEY: &str = "model.json";

/// Desired state of an AISchedulingPolicy.
// kube-derive's repeated `printcolumn(type_ = ...)` reads to clippy as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "novacron.io",
    version = "v1",
    kind = "AISchedulingPolicy",
    plural = "aischedulingpolicies",
    shortname = "aisp",
    category = "novacron",
    namespaced,
    status = "AISchedulingPolicyStatus",
    printcolumn(name = "Model", type_ = "string", json_path = ".status.modelState"),
    printcolumn(name = "Kind", type_ = "string", json_path = ".status.modelKind"),
    printcolumn(name = "Accuracy", type_ = "number", json_path = ".status.accuracy"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AISchedulingPolicySpec {
    /// The model: its type and where the artifact is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_config: Option<ModelConfig>,
    /// What to optimise. Checked against what the model was trained for: an objective with a
    /// positive weight that the model does not optimise makes the policy Failed.
    #[serde(default)]
    pub objectives: Vec<Objective>,
    /// Where training and inference data come from (kept as written).
    #[serde(default)]
    pub data_sources: Vec<FreeForm>,
    /// How far ahead to predict (`"1h"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub prediction_window: Option<String>,
    /// Training settings (kept as written); `accuracyThreshold` (0..1) is exported as
    /// `novacron_model_accuracy_threshold`, which the ModelAccuracyLow alert compares with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_config: Option<FreeForm>,
}

/// `modelConfig`: the model family and where its artifact is. Keys the operator does not use
/// (hyper-parameters such as `hidden_layers`, which training reads) are kept as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelConfig {
    /// The model family; when given, the artifact must be of it. `neural-network` (`mlp`),
    /// `decision-tree` (`tree`), `random-forest` (`forest`), `gradient-boosting` (`boosted`),
    /// `linear-regression` (`linear`), `logistic-regression` (`logistic`),
    /// `reinforcement-learning` (`bandit`). Not a schema enum, so that v1 manifests with other
    /// names still apply: another name makes the policy Failed, naming the allowed ones.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// v1 shorthand: the ConfigMap (in the policy's namespace) holding the artifact under the
    /// key `model.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Where the artifact is: a ConfigMap key or a file (a mounted volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactSource>,
    /// Dollars per spot interruption, for models that predict an interruption probability
    /// (the engine's `interruption_cost_usd`, default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption_cost_usd: Option<NumOrStr>,
    /// Expected VM life in hours when a request has no lifetime hint, for interruption models
    /// (the engine's `expected_life_h`, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_life_hours: Option<NumOrStr>,
    /// Anything else (kept as written).
    #[serde(flatten, default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Where an artifact is: exactly one of `configMapRef` and `path`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.configMapRef) != has(self.path)",
    "message": "give exactly one of configMapRef and path"
}]))]
pub struct ArtifactSource {
    /// A key of a ConfigMap in the policy's namespace (`data`, or `binaryData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
    /// A file in the operator's container (a mounted volume), absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: Option<String>,
}

/// A key of a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap, in the policy's namespace.
    pub name: String,
    /// The key (default `model.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// One objective.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    /// `cost`, `performance` (or `latency`), `availability`, `energy` (or `carbon`).
    #[serde(rename = "type", alias = "name")]
    pub kind: String,
    /// Relative weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<NumOrStr>,
    /// Target value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<NumOrStr>,
}

/// Observed state of an AISchedulingPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AISchedulingPolicyStatus {
    /// `Pending` (not loaded yet), `Loaded` (MultiCloudVMs may use it), `Failed` (see the
    /// `ModelLoaded` condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Pending", "Loaded", "Failed"]))]
    pub model_state: Option<String>,
    /// Accuracy of the loaded model on its held-out test rows, 0..1, as training recorded it
    /// (`accuracyMetric` says which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// The artifact's metric behind `accuracy`: `test_accuracy` (interruption models: share of
    /// spot outcomes predicted right at 0.5) or `test_top1` (cost and preference models: share
    /// of decisions where the model picks the hindsight-best candidate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_metric: Option<String>,
    /// The model's type in the artifact (`tree`, `forest`, `boosted`, `linear`, `logistic`, `mlp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_kind: Option<String>,
    /// What the model predicts (`cost-per-hour`, `interruption-probability`, `preference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_target: Option<String>,
    /// The artifact's feature schema version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_schema_version: Option<u32>,
    /// Hash of the training data, as training recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_data_hash: Option<String>,
    /// Hash (FNV-1a, hex) of the artifact's bytes: changes when the artifact does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_hash: Option<String>,
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: `ModelLoaded`.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
