//! `VMTemplate`: what a VM is made of (`config.resources.cpu/memory/disk` with `request` and
//! `limit`, `config.image`). A MultiCloudVM's `vmTemplate` sizes its replicas from it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AnyValue, BasicStatus, FreeForm, RequestLimit};

/// Desired state of a VMTemplate.
// kube-derive's repeated `printcolumn(type_ = ...)` reads to clippy as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "novacron.io",
    version = "v1",
    kind = "VMTemplate",
    plural = "vmtemplates",
    shortname = "vmt",
    category = "novacron",
    namespaced,
    status = "BasicStatus",
    printcolumn(name = "CPU", type_ = "string", json_path = ".spec.config.resources.cpu.request"),
    printcolumn(name = "Memory", type_ = "string", json_path = ".spec.config.resources.memory.request"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct VMTemplateSpec {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The VM's configuration.
    #[serde(default)]
    pub config: VmConfig,
}

/// `config` of a VMTemplate (also inlined by VirtualMachine).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmConfig {
    /// CPU, memory and disk.
    #[serde(default)]
    pub resources: VmResources,
    /// The image: a name, or an object with its source (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<AnyValue>,
    /// Network settings (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<FreeForm>,
    /// Extra disks and storage settings (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<FreeForm>,
}

/// `config.resources`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmResources {
    /// vCPUs (`"2"`, `"2000m"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<RequestLimit>,
    /// Memory (`"4Gi"`, `"4096Mi"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<RequestLimit>,
    /// Boot disk (`"50Gi"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<RequestLimit>,
    /// GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<RequestLimit>,
}
