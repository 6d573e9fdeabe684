//! `AISchedulingPolicy`: a learned placement model and its objectives (no controller yet).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, FreeForm, NumOrStr};

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
    printcolumn(name = "Accuracy", type_ = "number", json_path = ".status.accuracy"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AISchedulingPolicySpec {
    /// The model: its type and where the artifact is (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_config: Option<FreeForm>,
    /// What to optimise.
    #[serde(default)]
    pub objectives: Vec<Objective>,
    /// Where training and inference data come from (kept as written).
    #[serde(default)]
    pub data_sources: Vec<FreeForm>,
    /// How far ahead to predict (`"1h"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"))]
    pub prediction_window: Option<String>,
    /// Training settings (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_config: Option<FreeForm>,
}

/// One objective.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    /// `cost`, `latency`, `availability`, `carbon`, ...
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
    /// `Pending`, `Loaded`, `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_state: Option<String>,
    /// Accuracy of the loaded model on its validation set, 0..1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
