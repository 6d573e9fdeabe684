//! `VMCluster`: a set of identical VMs with an update strategy and autoscaling (no controller yet).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AnyValue, BasicStatus, FreeForm, NumOrStr};

/// Desired state of a VMCluster.
// kube-derive's repeated `printcolumn(type_ = ...)` reads to clippy as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "novacron.io",
    version = "v1",
    kind = "VMCluster",
    plural = "vmclusters",
    shortname = "vmc",
    category = "novacron",
    namespaced,
    status = "BasicStatus",
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct VMClusterSpec {
    /// VMs wanted.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub replicas: u32,
    /// The VM template: a reference (`name`, `namespace`) or an inline VMTemplate spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<AnyValue>,
    /// How VMs are replaced when the template changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
    /// Autoscaling bounds and targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scaling: Option<AutoScaling>,
}

/// `updateStrategy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// `RollingUpdate` or `Recreate`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["RollingUpdate", "Recreate"]))]
    pub kind: Option<String>,
    /// Most VMs down during an update (count or `"25%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<NumOrStr>,
    /// Most VMs above `replicas` during an update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<NumOrStr>,
}

/// `autoScaling`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas" }
]))]
pub struct AutoScaling {
    /// On or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Fewest VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// Most VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
    /// Metrics and targets (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<FreeForm>>,
    /// Target CPU utilisation, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpu_utilization: Option<NumOrStr>,
}
