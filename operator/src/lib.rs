//! # NovaCron operator
//!
//! The production mode of NovaCron: `novacron.io/v1` resources reconciled by the very engine the
//! simulator measures, so that a policy studied in simulation makes the real decisions,
//! unchanged.
//!
//! ## Model
//! [`crd`] holds the custom resources, generated from Rust types (`crdgen` writes
//! `deploy/crds/`). Controllers are layered as Deployment → ReplicaSet → Pod: a `MultiCloudVM`
//! ([`controller`]) owns `VirtualMachine` children ([`children`]), one per engine instance, and
//! the VirtualMachine controller ([`vm_controller`]) is the only code that creates, observes and
//! deletes cloud instances. A `VMCluster` ([`vmcluster_controller`]) owns VirtualMachines the
//! same way: identical replicas, rolled out on a template change and autoscaled on CPU by the
//! engine's decisions. VMTemplate sizes the replicas of both. The AISchedulingPolicy
//! controller ([`policy_controller`]) loads a learned model artifact (from a ConfigMap or a
//! mounted file) with the engine's own loader and registers it; a MultiCloudVM annotated
//! `novacron.io/scheduling-policy: <name>` places with it. The FederatedCluster controller
//! ([`federation_controller`]) checks each member cluster's API on a heartbeat; the regions of
//! members that stop answering are down for every deployment's engine, which fails over by its
//! own decision. The CacheIntegration controller ([`cache_controller`]) puts the provider
//! [`cache`] in front of every cloud call (through [`cache::CacheSwitch`], the cloud every
//! controller uses; without a CacheIntegration calls go straight to the cloud).
//!
//! [`translate`] is the one place where a Kubernetes spec becomes an engine type: a MultiCloudVM
//! spec becomes the engine's `DeploymentSpec` key for key as the simulator builds it from the
//! same vocabulary. Bad specs become a list of problems, each naming its field and what is
//! allowed, shown in a status condition.
//!
//! ## Driving the engine
//! Each MultiCloudVM gets a [`tracker::Tracker`]: an engine of its own over the catalog the
//! [`provider`] sells. A reconcile observes its fleet (the VirtualMachine children and their
//! status; region health and prices), feeds the engine what changed, applies the spec, fires the
//! engine's timers that are due at the controller's `now` (from a [`clock::Clock`], passed in),
//! carries out the engine's actions on the fleet (children created and deleted), and writes the
//! status. The engine has no clock and no I/O; the controllers have no policy.
//!
//! ## Safety
//! A finalizer keeps every VirtualMachine until its cloud instance is deleted, and every
//! MultiCloudVM and VMCluster until its children are gone. Cloud creates are idempotent on the VirtualMachine's
//! UID as client token, and an operator that restarts adopts the children it finds rather than
//! creating new ones (see [`tracker`]).
//!
//! Of several replicas only one acts: [`leader`] elects it on a `coordination.k8s.io/v1` Lease,
//! and [`controller::run_elected`] runs the controller only during its term, which ends at the
//! renew deadline if renewals fail, before any other replica may take the Lease over.

pub mod cache;
pub mod cache_controller;
pub mod catalog;
pub mod children;
pub mod clock;
pub mod controller;
pub mod crd;
pub mod decision_log;
pub mod federation_controller;
pub mod http;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod policy_controller;
pub mod provider;
pub mod runtime;
pub mod tracker;
pub mod translate;
pub mod vm_controller;
pub mod vmcluster_controller;

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
    /// VirtualMachine children were asked to go but still exist (their cloud instances are being
    /// deleted).
    #[error("{0} VirtualMachine(s) still being deleted; waiting")]
    ChildrenRemain(usize),
    /// A VirtualMachine the operator would create exists and belongs to someone else.
    #[error("VirtualMachine {0} exists and is not this deployment's")]
    NameTaken(String),
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
            Error::ChildrenRemain(_) => "children-remain",
            Error::NameTaken(_) => "name-taken",
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
