//! Fixtures: resources, a context on a mocked API server, and the API server's side of a
//! reconcile (each expected request checked and answered as the API server would).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use engine::SimTime;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use operator::clock::ManualClock;
use operator::controller::{Config, Context, reconcile};
use operator::crd::multicloudvm::{FINALIZER, MultiCloudVM, MultiCloudVMSpec, MultiCloudVMStatus};
use operator::metrics::Metrics;
use operator::provider::memory::MemoryCloud;
use tower_test::mock::Handle;

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

/// A test context: a mocked API server, the in-memory cloud with the seed regions, a manual clock.
pub struct Harness {
    pub ctx: Arc<Context>,
    pub api: ApiServer,
    pub cloud: Arc<MemoryCloud>,
    pub clock: Arc<ManualClock>,
    /// Events the operator published (events.k8s.io/v1 JSON).
    pub events: Vec<serde_json::Value>,
    /// The metrics registry.
    pub registry: prometheus_client::registry::Registry,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
        let clock = Arc::new(ManualClock::new(T0));
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(Metrics::default().register(&mut registry));
        let ctx = Arc::new(Context::new(client, cloud.clone(), clock.clone(), config, metrics));
        Harness { ctx, api: ApiServer(handle), cloud, clock, events: Vec::new(), registry }
    }

    /// Reconciles a finalized object once, answering its status patch; returns the action and the
    /// status written (and `obj` gets that status, as the API server would keep it).
    /// Kubernetes Events published after the status patch are answered and kept in `events`.
    pub async fn apply(&mut self, obj: &mut MultiCloudVM) -> (Action, MultiCloudVMStatus) {
        let mut task = tokio::spawn(reconcile(Arc::new(obj.clone()), self.ctx.clone()));
        let status = self.api.status_patch(obj).await;
        let action = loop {
            tokio::select! {
                done = &mut task => break done.expect("reconcile task").expect("reconcile succeeds"),
                req = self.api.0.next_request() => {
                    let (req, send) = req.expect("a request");
                    assert_eq!(req.method(), Method::POST);
                    assert_eq!(req.uri().path(), "/apis/events.k8s.io/v1/namespaces/default/events");
                    let body = req.into_body().collect_bytes().await.expect("body");
                    self.events.push(serde_json::from_slice(&body).expect("an event"));
                    send.send_response(Response::new(Body::from(body)));
                }
            }
        };
        obj.status = Some(status.clone());
        (action, status)
    }
}

/// The API server's end of the mock.
pub struct ApiServer(pub Handle<Request<Body>, Response<Body>>);

fn path_of(obj: &MultiCloudVM) -> String {
    format!("/apis/novacron.io/v1/namespaces/default/multicloudvms/{}", obj.name_any())
}

impl ApiServer {
    async fn next(&mut self) -> (Request<Body>, tower_test::mock::SendResponse<Response<Body>>) {
        tokio::time::timeout(Duration::from_secs(5), self.0.next_request())
            .await
            .expect("the operator called the API server in time")
            .expect("the operator called the API server")
    }

    /// Expects the JSON patch that adds the finalizer; answers with the finalized object.
    pub async fn finalizer_added(&mut self, obj: &MultiCloudVM) {
        let (req, send) = self.next().await;
        assert_eq!(req.method(), Method::PATCH);
        assert!(req.uri().path() == path_of(obj), "{}", req.uri());
        let body = req.into_body().collect_bytes().await.expect("body");
        let patch: serde_json::Value = serde_json::from_slice(&body).expect("json patch");
        assert!(patch.to_string().contains(FINALIZER), "{patch}");
        let answer = obj.clone().finalized();
        send.send_response(Response::new(Body::from(serde_json::to_vec(&answer).expect("json"))));
    }

    /// Expects the server-side-apply status patch; answers with the object carrying it.
    pub async fn status_patch(&mut self, obj: &MultiCloudVM) -> MultiCloudVMStatus {
        let (req, send) = self.next().await;
        assert_eq!(req.method(), Method::PATCH);
        assert_eq!(req.uri().path(), format!("{}/status", path_of(obj)));
        let query = req.uri().query().unwrap_or_default().to_owned();
        assert!(query.contains("fieldManager=novacron-operator") && query.contains("force=true"), "{query}");
        let body = req.into_body().collect_bytes().await.expect("body");
        let patch: serde_json::Value = serde_json::from_slice(&body).expect("status patch is JSON");
        assert_eq!(patch["apiVersion"], "novacron.io/v1");
        assert_eq!(patch["kind"], "MultiCloudVM");
        let status: MultiCloudVMStatus = serde_json::from_value(patch["status"].clone()).expect("a status");
        let answer = obj.clone().with_status(status.clone());
        send.send_response(Response::new(Body::from(serde_json::to_vec(&answer).expect("json"))));
        status
    }

    /// Expects the JSON patch that removes the finalizer, runs `check` before answering (the
    /// state of the world at the moment the finalizer goes).
    pub async fn finalizer_removed(&mut self, obj: &MultiCloudVM, check: impl FnOnce()) {
        let (req, send) = self.next().await;
        assert_eq!(req.method(), Method::PATCH);
        assert_eq!(req.uri().path(), path_of(obj));
        let body = req.into_body().collect_bytes().await.expect("body");
        let patch: serde_json::Value = serde_json::from_slice(&body).expect("json patch");
        assert_eq!(patch[1]["op"], "remove", "{patch}");
        assert_eq!(patch[0]["value"], FINALIZER, "{patch}");
        check();
        let mut answer = obj.clone();
        answer.finalizers_mut().clear();
        send.send_response(Response::new(Body::from(serde_json::to_vec(&answer).expect("json"))));
    }

    /// Expects a GET of `path`; answers `body`, or 404 when `None`.
    pub async fn get(&mut self, path: &str, body: Option<serde_json::Value>) {
        let (req, send) = self.next().await;
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), path);
        let resp = match body {
            Some(b) => Response::new(Body::from(serde_json::to_vec(&b).expect("json"))),
            None => {
                let status = serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404, "message": "not found"
                });
                let mut r = Response::new(Body::from(serde_json::to_vec(&status).expect("json")));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
        };
        send.send_response(resp);
    }

    /// Expects no further call.
    pub async fn silent(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await;
        assert!(next.is_err(), "unexpected API call");
    }
}

/// The condition of this type.
pub fn condition<'a>(s: &'a MultiCloudVMStatus, type_: &str) -> &'a operator::crd::Condition {
    s.conditions.iter().find(|c| c.type_ == type_).expect("the condition is set")
}
