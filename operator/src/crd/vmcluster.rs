//! `VMCluster`: a set of identical VMs with an update strategy and autoscaling. Its controller
//! ([`crate::vmcluster_controller`]) owns one `VirtualMachine` per replica, as a Deployment owns
//! its pods through ReplicaSets.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AnyValue, Condition, FreeForm, NumOrStr};

/// Finalizer that keeps a VMCluster until its VirtualMachines (and so their cloud instances)
/// are gone.
pub const FINALIZER: &str = "novacron.io/vmcluster-children";

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
    status = "VMClusterStatus",
    scale(spec_replicas_path = ".spec.replicas", status_replicas_path = ".status.replicas"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".status.desiredReplicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Up-to-date", type_ = "integer", json_path = ".status.updatedReplicas"),
    printcolumn(name = "CPU", type_ = "integer", json_path = ".status.currentCpuUtilization", priority = "1"),
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

/// Observed state of a VMCluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VMClusterStatus {
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// VirtualMachines the cluster owns (replacements under way included, those being deleted
    /// not).
    #[serde(default)]
    pub replicas: u32,
    /// Replicas serving (their VM runs).
    #[serde(default)]
    pub ready_replicas: u32,
    /// Replicas whose VM was made from the current template.
    #[serde(default)]
    pub updated_replicas: u32,
    /// Replicas wanted: `spec.replicas`, or the autoscaler's answer when autoscaling is on.
    #[serde(default)]
    pub desired_replicas: u32,
    /// Mean CPU utilisation of the running VMs at the last autoscaling decision, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_cpu_utilization: Option<u32>,
    /// When the autoscaler last changed `desiredReplicas` (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    /// Conditions: `SpecValid`, `Ready`, `Progressing` (a rollout under way).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
