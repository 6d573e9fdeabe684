//! `VirtualMachine`: one cloud VM. Its controller ([`crate::vm_controller`]) is the only code
//! that creates, observes and deletes cloud instances; `MultiCloudVM` and `VMCluster` own their
//! VirtualMachines (ownerReferences with `controller: true`) as a Deployment owns ReplicaSets.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::vmtemplate::VmConfig;
use super::{Condition, ObjectRef};

/// Finalizer that keeps a VirtualMachine until its cloud instance is deleted.
pub const FINALIZER: &str = "novacron.io/cloud-instance";
/// Label with the UID of the owning deployment (MultiCloudVM or VMCluster).
pub const OWNER_UID_LABEL: &str = "novacron.io/owner-uid";
/// Label with the replica slot the VM serves.
pub const SLOT_LABEL: &str = "novacron.io/slot";
/// Annotation with the owner's request token `<owner-uid>-<slot>-<n>` (never reused).
pub const REQUEST_ANNOTATION: &str = "novacron.io/request";

/// Desired state of a VirtualMachine.
// kube-derive's repeated `printcolumn(type_ = ...)` reads to clippy as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "novacron.io",
    version = "v1",
    kind = "VirtualMachine",
    plural = "virtualmachines",
    shortname = "nvm",
    category = "novacron",
    namespaced,
    status = "VirtualMachineStatus",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Instance", type_ = "string", json_path = ".status.instanceId"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineSpec {
    /// The template it is made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ObjectRef>,
    /// Inline configuration (overrides the template's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<VmConfig>,
    /// `aws`, `azure`, `gcp` or `onprem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["aws", "azure", "gcp", "onprem"]))]
    pub provider: Option<String>,
    /// Region name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zone name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Instance type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Spot allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<bool>,
    /// `Running` or `Stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Running", "Stopped"]))]
    pub run_state: Option<String>,
}

/// Observed state of a VirtualMachine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineStatus {
    /// `Pending`, `Provisioning`, `Running`, `Interrupting`, `Failed`, `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The provider's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The idempotency token it was created with (the VirtualMachine's UID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Why it failed (`Failed` phase): `insufficient-capacity`, `api-error`, `throttled`,
    /// `outage`, `interrupted` or `crashed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["insufficient-capacity", "api-error", "throttled", "outage", "interrupted", "crashed"]))]
    pub failure_cause: Option<String>,
    /// What the cloud said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When a spot instance will be reclaimed (`Interrupting` phase), ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption_at_ms: Option<u64>,
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
