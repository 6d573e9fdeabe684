//! # NovaCron operator
//!
//! The production mode of NovaCron: `novacron.io/v1` resources reconciled by the very engine the
//! simulator measures, so that a policy studied in simulation makes the real decisions,
//! unchanged.
//!
//! ## Model
//! [`crd`] holds the custom resources, generated from Rust types (`crdgen` writes
//! `deploy/crds/`). A `MultiCloudVM` is what the controller acts on; the other kinds
//! (VirtualMachine, VMTemplate, VMCluster, FederatedCluster, AISchedulingPolicy,
//! CacheIntegration) have their schemas and, apart from VMTemplate (which sizes a MultiCloudVM's
//! replicas), no controller yet.
//!
//! [`translate`] is the one place where a Kubernetes spec becomes an engine type: a MultiCloudVM
//! spec becomes the engine's `DeploymentSpec` key for key as the simulator builds it from the
//! same vocabulary. Bad specs become a list of problems, each naming its field and what is
//! allowed, shown in a status condition.
//!
//! ## Driving the engine
//! Each MultiCloudVM gets a [`tracker::Tracker`]: an engine of its own over the catalog the
//! [`provider`] sells. A reconcile observes the cloud (instances tagged with the object's UID,
//! region health, prices), feeds the engine what changed, applies the spec, fires the engine's
//! timers that are due at the controller's `now` (from a [`clock::Clock`], passed in), carries out
//! the engine's actions on the provider, and writes the status. The engine has no clock and no
//! I/O; the controller has no policy.
//!
//! ## Safety
//! A finalizer keeps every MultiCloudVM until all its cloud instances are deleted. Create calls
//! are idempotent on a client token derived from the object's UID, and an operator that restarts
//! adopts the instances it finds rather than creating new ones (see [`tracker`]).
//!
//! Of several replicas only one acts: [`leader`] elects it on a `coordination.k8s.io/v1` Lease,
//! and [`controller::run_elected`] runs the controller only during its term, which ends at the
//! renew deadline if renewals fail, before any other replica may take the Lease over.

pub mod cache;
pub mod catalog;
pub mod clock;
pub mod controller;
pub mod crd;
pub mod decision_log;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod provider;
pub mod tracker;
pub mod translate;

/// Errors of the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A cloud provider call failed.
    #[error("cloud provider: {0}")]
    Provider(#[from] provider::ProviderError),
    /// The provider's catalog cannot be used by the engine.
    #[error("catalog: {0}")]
    Catalog(String),
    /// The object lacks something the API server always sets (a namespace, a UID).
    #[error("object {0}")]
    MissingObjectKey(&'static str),
    /// Instances were asked to go but the provider still lists them.
    #[error("{0} cloud instance(s) still live after delete; retrying")]
    InstancesRemain(usize),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Provider(_) => "provider",
            Error::Catalog(_) => "catalog",
            Error::MissingObjectKey(_) => "missing-object-key",
            Error::InstancesRemain(_) => "instances-remain",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.metric_label()
                }
                _ => "finalizer",
            },
        }
    }
}

/// Result with the operator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
