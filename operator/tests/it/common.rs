//! Fixtures: resources, a context on a mocked API server, and the API server's side of a
//! reconcile (each expected request checked and answered as the API server would).

#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};

use engine::SimTime;
use http::{Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use operator::clock::ManualClock;
use operator::controller::{Config, Context, reconcile};
use operator::crd::VirtualMachine;
use operator::crd::multicloudvm::{FINALIZER, MultiCloudVM, MultiCloudVMSpec, MultiCloudVMStatus};
use operator::metrics::Metrics;
use operator::provider::memory::MemoryCloud;
use operator::vm_controller;
use tower_test::mock::Handle;

use crate::apiserver::{Store, serve};

/// 2026-11-30T00:00:00Z: where the manual clocks start.
pub const T0: SimTime = SimTime(1_795_996_800_000);

/// The seed report's manifest, exactly as the issue gives it.
pub const SEED_YAML: &str = r#"apiVersion: novacron.io/v1
kind: MultiCloudVM
spec:
  deploymentStrategy:
    type: "active-passive"
    primary: "aws-us-east"
    secondary: ["azure-eastus", "gcp-us-central"]
    failoverTriggers:
    - type: "availability"
      threshold: "95%"
  costOptimization:
    useSpotInstances: true
    maxCostPerHour: "1.00"
"#;

/// The seed spec.
pub fn seed_spec() -> MultiCloudVMSpec {
    let v: serde_json::Value = serde_yaml_ng::from_str(SEED_YAML).expect("seed manifest is YAML");
    serde_json::from_value(v["spec"].clone()).expect("seed spec deserializes")
}

/// A MultiCloudVM in namespace `default` as the API server would hand it over.
pub fn mcvm(name: &str, spec: MultiCloudVMSpec) -> MultiCloudVM {
    let mut o = MultiCloudVM::new(name, spec);
    o.meta_mut().namespace = Some("default".into());
    o.meta_mut().uid = Some(format!("uid-{name}"));
    o.meta_mut().generation = Some(1);
    o
}

/// Builder steps on a MultiCloudVM.
pub trait Fixture {
    /// With the operator's finalizer.
    fn finalized(self) -> Self;
    /// Being deleted.
    fn deleting(self) -> Self;
    /// With this status.
    fn with_status(self, s: MultiCloudVMStatus) -> Self;
}

impl Fixture for MultiCloudVM {
    fn finalized(mut self) -> Self {
        self.finalizers_mut().push(FINALIZER.to_owned());
        self
    }
    fn deleting(mut self) -> Self {
        self.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-30T01:00:00Z".parse().expect("a timestamp"),
        ));
        self
    }
    fn with_status(mut self, s: MultiCloudVMStatus) -> Self {
        self.status = Some(s);
        self
    }
}

/// The API prefix of NovaCron's kinds.
pub const NOVACRON: &str = "/apis/novacron.io/v1";

/// A test context: the operator's context on a mocked API server (an object store, see
/// [`crate::apiserver`]), the in-memory cloud with the seed regions, a manual clock.
pub struct Harness {
    pub ctx: Arc<Context>,
    pub store: Arc<Mutex<Store>>,
    pub cloud: Arc<MemoryCloud>,
    pub clock: Arc<ManualClock>,
    /// The metrics registry.
    pub registry: prometheus_client::registry::Registry,
    /// VirtualMachine reconciles run by [`Harness::vm_pass`].
    pub vm_reconciles: std::sync::atomic::AtomicU64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    /// A context whose API server is the object store.
    pub fn with_config(config: Config) -> Self {
        let (h, handle) = Self::unserved(config);
        tokio::spawn(serve(handle, h.store.clone()));
        h
    }

    /// A context over `provider` instead of the in-memory cloud (`cloud` is then unused), whose
    /// API server is the object store.
    pub fn with_provider(provider: Arc<dyn operator::provider::CloudProvider>) -> Self {
        let (h, handle) = Self::build(Config::default(), Some(provider));
        tokio::spawn(serve(handle, h.store.clone()));
        h
    }

    /// A context whose API server the test plays itself (the store is there to answer with).
    pub fn unserved(config: Config) -> (Self, Handle<Request<Body>, Response<Body>>) {
        Self::build(config, None)
    }

    fn build(
        config: Config,
        provider: Option<Arc<dyn operator::provider::CloudProvider>>,
    ) -> (Self, Handle<Request<Body>, Response<Body>>) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
        let clock = Arc::new(ManualClock::new(T0));
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(Metrics::default().register(&mut registry));
        let provider = provider.unwrap_or_else(|| cloud.clone());
        let ctx = Arc::new(Context::new(client, provider, clock.clone(), config, metrics));
        let store = Arc::new(Mutex::new(Store::default()));
        (Harness { ctx, store, cloud, clock, registry, vm_reconciles: Default::default() }, handle)
    }

    /// The store.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts (or replaces) a MultiCloudVM in the API server as the test has it.
    pub fn keep(&self, obj: &MultiCloudVM) {
        self.store().put(NOVACRON, "multicloudvms", &serde_json::to_value(obj).expect("json"));
    }

    /// The MultiCloudVM as the API server holds it.
    pub fn stored(&self, name: &str) -> Option<MultiCloudVM> {
        self.store()
            .get(NOVACRON, "multicloudvms", "default", name)
            .map(|v| serde_json::from_value(v).expect("a MultiCloudVM"))
    }

    /// Every VirtualMachine the API server holds, by name.
    pub fn vms(&self) -> Vec<VirtualMachine> {
        self.store()
            .all(NOVACRON, "virtualmachines")
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("a VirtualMachine"))
            .collect()
    }

    /// The events the operator published (events.k8s.io/v1 JSON, as created).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.store()
            .calls
            .iter()
            .filter(|c| c.method == "POST" && c.path.ends_with("/events"))
            .map(|c| c.body.clone())
            .collect()
    }

    /// The VirtualMachine controller's turn: every VirtualMachine reconciled once (errors go
    /// through its error policy and are returned).
    pub async fn vm_pass(&self) -> Vec<operator::Error> {
        let mut errors = Vec::new();
        for vm in self.vms() {
            let vm = Arc::new(vm);
            self.vm_reconciles.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Err(e) = vm_controller::reconcile(vm.clone(), self.ctx.clone()).await {
                vm_controller::error_policy(vm, &e, self.ctx.clone());
                errors.push(e);
            }
        }
        errors
    }

    /// One turn of the operator for `obj` (put in the API server as given): the VirtualMachine
    /// controller observes the cloud for the children, the MultiCloudVM controller reconciles
    /// (its engine decides, children are created or deleted), and the VirtualMachine controller
    /// acts on the new and deleted children. Returns the MultiCloudVM's action and status (and
    /// `obj` gets that status, as the API server keeps it).
    pub async fn apply(&mut self, obj: &mut MultiCloudVM) -> (Action, MultiCloudVMStatus) {
        self.keep(obj);
        self.vm_pass().await;
        let stored = self.stored(&obj.name_any()).expect("stored");
        let action = reconcile(Arc::new(stored), self.ctx.clone()).await.expect("reconcile succeeds");
        self.vm_pass().await;
        let status = self.stored(&obj.name_any()).and_then(|o| o.status).expect("a status written");
        obj.status = Some(status.clone());
        (action, status)
    }

    /// Deletes `obj` as the API server would (a deletionTimestamp, since it has the finalizer),
    /// then turns the MultiCloudVM and VirtualMachine controllers until it is gone (at most
    /// `turns` times). Returns the MultiCloudVM reconciles' errors by metric label.
    pub async fn delete(&mut self, obj: &MultiCloudVM, turns: usize) -> Vec<&'static str> {
        let name = obj.name_any();
        let mut o = self.stored(&name).unwrap_or_else(|| obj.clone());
        o = o.deleting();
        self.keep(&o);
        let mut errors = Vec::new();
        for _ in 0..turns {
            let Some(current) = self.stored(&name) else { break };
            let current = Arc::new(current);
            if let Err(e) = reconcile(current.clone(), self.ctx.clone()).await {
                operator::controller::error_policy(current, &e, self.ctx.clone());
                errors.push(e.metric_label());
            }
            self.vm_pass().await;
        }
        errors
    }

    /// Whether the MultiCloudVM is gone from the API server.
    pub fn gone(&self, name: &str) -> bool {
        self.stored(name).is_none()
    }

    /// Calls made to the API server so far (`METHOD path`, watches left out).
    pub fn calls(&self) -> Vec<String> {
        self.store().lines()
    }
}

/// The condition of this type.
pub fn condition<'a>(s: &'a MultiCloudVMStatus, type_: &str) -> &'a operator::crd::Condition {
    s.conditions.iter().find(|c| c.type_ == type_).expect("the condition is set")
}
