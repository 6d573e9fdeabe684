//! The FederatedCluster controller: members are real HTTP servers on loopback answering
//! `/readyz` and `/version` as a kube-apiserver does; their kubeconfig Secrets are served by the
//! mocked API server; the manual clock says when a heartbeat is due.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use engine::SimDuration;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use operator::crd::federatedcluster::{
    FINALIZER, FederatedCluster, FederatedClusterSpec, FederatedClusterStatus, Federation, Member, MemberStatus,
};
use operator::federation_controller::reconcile;

use crate::common::{Harness, NOVACRON, condition, mcvm, seed_spec};

/// How a member's API server behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// `/readyz` answers `ok`.
    Up,
    /// `/readyz` answers 500, as a kube-apiserver whose etcd is gone.
    Failing,
    /// Requests are accepted and never answered.
    Hanging,
}

/// A member cluster's API server on loopback.
struct MemberServer {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// The `Authorization` header of every `/readyz` request.
    seen: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MemberServer {
    /// A server that wants `Bearer <token>` when `token` is given.
    async fn start(token: Option<&str>) -> Self {
        let mode = Arc::new(Mutex::new(Mode::Up));
        let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let want = token.map(|t| format!("Bearer {t}"));
        let (m, s) = (mode.clone(), seen.clone());
        let readyz = move |headers: HeaderMap| {
            let (m, s, want) = (m.clone(), s.clone(), want.clone());
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                s.lock().unwrap_or_else(|e| e.into_inner()).push(auth.clone());
                let mode = *m.lock().unwrap_or_else(|e| e.into_inner());
                if want.is_some() && auth != want {
                    let body = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
                    return (StatusCode::UNAUTHORIZED, body.to_owned());
                }
                match mode {
                    Mode::Up => (StatusCode::OK, "ok".to_owned()),
                    Mode::Failing => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed".to_owned(),
                    ),
                    Mode::Hanging => {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        (StatusCode::OK, "late".to_owned())
                    }
                }
            }
        };
        let app = axum::Router::new()
            .route("/readyz", axum::routing::get(readyz))
            .route("/version", axum::routing::get(|| async { r#"{"major":"1","minor":"35","gitVersion":"v1.35.0"}"# }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MemberServer { addr, mode, seen, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// `/readyz` requests so far.
    fn probes(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for MemberServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback address nothing listens on (connections are refused).
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("address"));
    drop(l);
    url
}

/// A kubeconfig for `server` with a bearer token.
fn kubeconfig(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: member\n  cluster:\n    server: {server}\n\
         contexts:\n- name: member\n  context:\n    cluster: member\n    user: member\ncurrent-context: member\n\
         users:\n- name: member\n  user:\n    token: {token}\n"
    )
}

/// Puts a Secret with `data` in namespace `default`.
fn put_secret(h: &Harness, name: &str, data: &[(&str, &str)]) {
    let mut s = Secret::default();
    s.metadata.name = Some(name.to_owned());
    s.metadata.namespace = Some("default".to_owned());
    s.data = Some(data.iter().map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec()))).collect());
    h.store().put("/api/v1", "secrets", &serde_json::to_value(&s).expect("json"));
}

fn member(name: &str, region: Option<&str>) -> Member {
    Member { name: name.into(), region: region.map(str::to_owned), ..Member::default() }
}

/// A FederatedCluster with the finalizer, as the API server would hand it over.
fn federation(name: &str, members: Vec<Member>, interval: &str, threshold: u32) -> FederatedCluster {
    let spec = FederatedClusterSpec {
        members,
        federation: Some(Federation {
            heartbeat_interval: Some(interval.into()),
            failure_threshold: Some(threshold),
            ..Federation::default()
        }),
        load_balancing: None,
    };
    let mut o = FederatedCluster::new(name, spec);
    o.meta_mut().namespace = Some("default".into());
    o.meta_mut().uid = Some(format!("uid-{name}"));
    o.meta_mut().generation = Some(1);
    o.finalizers_mut().push(FINALIZER.to_owned());
    o
}

fn keep(h: &Harness, o: &FederatedCluster) {
    h.store().put(NOVACRON, "federatedclusters", &serde_json::to_value(o).expect("json"));
}

fn stored(h: &Harness, name: &str) -> Option<FederatedCluster> {
    h.store()
        .get(NOVACRON, "federatedclusters", "default", name)
        .map(|v| serde_json::from_value(v).expect("a FederatedCluster"))
}

/// One reconcile of the FederatedCluster as the API server has it: its action and the status
/// written.
async fn beat(h: &Harness, name: &str) -> (Action, FederatedClusterStatus) {
    let obj = stored(h, name).expect("stored");
    let action = reconcile(Arc::new(obj), h.ctx.clone()).await.expect("reconcile succeeds");
    (action, stored(h, name).and_then(|o| o.status).expect("a status"))
}

fn member_status<'a>(s: &'a FederatedClusterStatus, name: &str) -> &'a MemberStatus {
    s.member_status.iter().find(|m| m.name == name).expect("the member's status")
}

fn fc_condition<'a>(s: &'a FederatedClusterStatus, type_: &str) -> &'a operator::crd::Condition {
    s.conditions.iter().find(|c| c.type_ == type_).expect("the condition is set")
}

fn metrics_text(h: &Harness) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &h.registry).expect("metrics encode");
    text
}

fn down(h: &Harness) -> Vec<String> {
    h.ctx.market.federation_down().into_iter().collect()
}

#[tokio::test]
async fn a_member_that_stops_answering_is_unhealthy_after_the_threshold_and_healthy_when_it_answers() {
    let h = Harness::new();
    let east = MemberServer::start(Some("east-token")).await;
    let west = MemberServer::start(None).await;
    put_secret(&h, "east-kubeconfig", &[("kubeconfig", &kubeconfig(&east.url(), "east-token"))]);
    let fc = federation(
        "global",
        vec![
            Member { credentials_secret: Some("east-kubeconfig".into()), ..member("east", Some("aws-us-east")) },
            Member { endpoint: Some(west.url()), ..member("west", Some("azure-eastus")) },
        ],
        "1s",
        3,
    );
    keep(&h, &fc);

    let (action, s) = beat(&h, "global").await;
    assert_eq!(action, Action::requeue(Duration::from_secs(1)), "the next heartbeat is one interval away");
    assert_eq!(s.active_members, 2);
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(s.last_check_time.as_deref(), Some("2026-11-30T00:00:00Z"));
    for name in ["east", "west"] {
        let m = member_status(&s, name);
        assert!(m.healthy, "{m:?}");
        assert_eq!((m.consecutive_failures, m.message.as_deref()), (0, None));
        assert_eq!(m.last_heartbeat.as_deref(), Some("2026-11-30T00:00:00Z"));
    }
    assert_eq!(
        (fc_condition(&s, "Ready").status.as_str(), fc_condition(&s, "Ready").reason.as_str()),
        ("True", "MembersHealthy")
    );
    assert_eq!(fc_condition(&s, "Degraded").status, "False");
    assert_eq!(fc_condition(&s, "SpecValid").status, "True", "{:?}", fc_condition(&s, "SpecValid"));
    // The kubeconfig's token reached the member; the anonymous member got no credentials.
    assert_eq!(east.seen.lock().expect("seen")[0].as_deref(), Some("Bearer east-token"));
    assert_eq!(west.seen.lock().expect("seen")[0], None);
    assert!(down(&h).is_empty());

    // A reconcile before the next heartbeat is due (the status write's own watch event) asks
    // nobody and waits for the rest of the interval.
    h.clock.advance(SimDuration::from_millis(400));
    let (action, _) = beat(&h, "global").await;
    assert_eq!((east.probes(), west.probes()), (1, 1));
    assert_eq!(action, Action::requeue(Duration::from_secs(1)), "at least 1 s");

    // east stops answering: the first heartbeat times out (the interval, 1 s), two more are
    // answered 500. Unhealthy at the third missed heartbeat, not before.
    east.set(Mode::Hanging);
    h.clock.advance(SimDuration::from_millis(600));
    let (_, s) = beat(&h, "global").await;
    let m = member_status(&s, "east");
    assert!(m.healthy && m.consecutive_failures == 1, "{m:?}");
    let msg = m.message.as_deref().unwrap_or_default();
    assert!(msg.starts_with("missed 1 of 3 heartbeats") && msg.contains("/readyz: no answer within 1s"), "{msg}");
    assert!(down(&h).is_empty(), "one missed heartbeat is not a failure yet");

    east.set(Mode::Failing);
    h.clock.advance(SimDuration::from_secs(1));
    let (_, s) = beat(&h, "global").await;
    assert_eq!(member_status(&s, "east").consecutive_failures, 2);
    assert!(member_status(&s, "east").healthy);
    h.clock.advance(SimDuration::from_secs(1));
    let (_, s) = beat(&h, "global").await;
    let m = member_status(&s, "east");
    assert!(!m.healthy, "{m:?}");
    assert_eq!(m.consecutive_failures, 3);
    assert_eq!(m.last_heartbeat.as_deref(), Some("2026-11-30T00:00:00Z"), "the last answer stays");
    let msg = m.message.as_deref().unwrap_or_default();
    assert!(msg.starts_with("unhealthy: missed 3 heartbeats in a row (threshold 3)"), "{msg}");
    assert!(msg.contains("/readyz answered 500") && msg.contains("etcd failed"), "{msg}");
    assert_eq!(s.active_members, 1);
    assert_eq!(fc_condition(&s, "Ready").status, "True", "west still serves");
    let d = fc_condition(&s, "Degraded");
    assert_eq!((d.status.as_str(), d.reason.as_str()), ("True", "MembersUnhealthy"));
    assert!(d.message.contains("1 of 2 members healthy; unhealthy: east"), "{}", d.message);
    // Its region is down for every deployment's engine.
    assert_eq!(down(&h), ["aws-us-east"]);
    let text = metrics_text(&h);
    for line in [
        "novacron_federation_members{federation=\"default/global\",health=\"healthy\"} 1",
        "novacron_federation_members{federation=\"default/global\",health=\"unhealthy\"} 1",
        "novacron_federation_heartbeat_failures_total{federation=\"default/global\",member=\"east\"} 3",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(!text.contains("member=\"west\""), "west never missed a heartbeat:\n{text}");

    // It answers again: healthy at once, and its region is up.
    east.set(Mode::Up);
    h.clock.advance(SimDuration::from_secs(1));
    let (_, s) = beat(&h, "global").await;
    let m = member_status(&s, "east");
    assert!(m.healthy && m.consecutive_failures == 0 && m.message.is_none(), "{m:?}");
    assert_eq!(m.last_heartbeat.as_deref(), Some("2026-11-30T00:00:04Z"));
    assert_eq!(s.active_members, 2);
    assert_eq!(fc_condition(&s, "Degraded").status, "False");
    assert!(down(&h).is_empty());

    // One Event when it went, one when it came back.
    let events = h.events();
    let seen: Vec<(&str, &str)> =
        events.iter().map(|e| (e["type"].as_str().unwrap_or(""), e["reason"].as_str().unwrap_or(""))).collect();
    assert_eq!(seen, [("Warning", "MemberUnhealthy"), ("Normal", "MemberRecovered")]);
    let note = events[0]["note"].as_str().unwrap_or_default();
    assert!(note.contains("member east is not healthy") && note.contains("region aws-us-east is down"), "{note}");
}

#[tokio::test]
async fn an_unhealthy_member_fails_an_active_passive_deployment_over_by_the_engines_decision() {
    let mut h = Harness::new();
    let east = MemberServer::start(None).await;
    // The seed deployment: active-passive, primary aws-us-east, on demand.
    let mut spec = seed_spec();
    spec.replicas = Some(2);
    spec.cost_optimization.as_mut().expect("seed has costOptimization").use_spot_instances = Some(false);
    let mut web = crate::common::Fixture::finalized(mcvm("web", spec));
    h.apply(&mut web).await;
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(30));
    let (_, s) = h.apply(&mut web).await;
    assert_eq!(condition(&s, "Ready").status, "True");
    assert_eq!(s.active_region.as_deref(), Some("aws-us-east-1"));

    // The member cluster in aws-us-east (the seed's alias of aws-us-east-1).
    let fc = federation(
        "global",
        vec![Member { endpoint: Some(east.url()), ..member("us-east", Some("aws-us-east")) }],
        "30s",
        2,
    );
    keep(&h, &fc);
    let (_, s) = beat(&h, "global").await;
    assert!(member_status(&s, "us-east").healthy);

    // The member stops answering. One missed heartbeat: the deployment stays.
    east.set(Mode::Failing);
    h.clock.advance(SimDuration::from_secs(30));
    beat(&h, "global").await;
    let (_, s) = h.apply(&mut web).await;
    assert_eq!(s.migration.as_ref().map(|m| m.failovers), Some(0));
    assert_eq!(s.active_region.as_deref(), Some("aws-us-east-1"));

    // The second: the member is unhealthy, its region down, and the engine evacuates it to the
    // first secondary. The cloud itself reports nothing wrong.
    h.clock.advance(SimDuration::from_secs(30));
    let (_, f) = beat(&h, "global").await;
    assert!(!member_status(&f, "us-east").healthy);
    let provider_down = operator::provider::CloudProvider::unhealthy_regions(&*h.cloud).await.expect("regions");
    assert!(provider_down.is_empty(), "the provider sees no outage");
    let (_, s) = h.apply(&mut web).await;
    let mig = s.migration.as_ref().expect("migration status");
    assert_eq!(mig.failovers, 1);
    let last = mig.last_failover.as_ref().expect("a failover");
    assert_eq!(
        (last.from.as_str(), last.to.as_str(), last.reason.as_str()),
        ("aws-us-east-1", "azure-eastus", "unhealthy")
    );
    assert_eq!(s.primary_provider.as_deref(), Some("azure"));
    assert_eq!(s.health.as_ref().map(|x| x.unhealthy_regions.clone()), Some(vec!["aws-us-east-1".to_owned()]));
    let failed_over = h.events().iter().any(|e| e["reason"] == "FailedOver" && e["regarding"]["name"] == "web");
    assert!(failed_over, "{:?}", h.events());

    // The member answers again: the region is healthy for the engine once more.
    east.set(Mode::Up);
    h.clock.advance(SimDuration::from_secs(30));
    beat(&h, "global").await;
    h.cloud.boot_all();
    let (_, s) = h.apply(&mut web).await;
    assert_eq!(s.health.as_ref().map(|x| x.unhealthy_regions.clone()), Some(vec![]));

    // Deleting the FederatedCluster (its finalizer) takes its regions out of the market data.
    east.set(Mode::Failing);
    for _ in 0..2 {
        h.clock.advance(SimDuration::from_secs(30));
        beat(&h, "global").await;
    }
    assert_eq!(down(&h), ["aws-us-east"]);
    let mut gone = stored(&h, "global").expect("stored");
    gone.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-30T01:00:00Z".parse().expect("a timestamp"),
    ));
    keep(&h, &gone);
    let action = reconcile(Arc::new(gone), h.ctx.clone()).await.expect("cleanup");
    assert_eq!(action, Action::await_change());
    assert!(stored(&h, "global").is_none(), "the finalizer went, and the object with it");
    assert!(down(&h).is_empty(), "no stale down region");
    assert!(!metrics_text(&h).contains("federation=\"default/global\""), "its series are gone");
}

/// Collects what tracing writes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn unusable_credentials_and_settings_are_reported_and_no_credential_is_shown() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt().with_writer(logs.clone()).with_max_level(tracing::Level::DEBUG).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = Harness::new();
    let server = MemberServer::start(Some("the-right-token")).await;
    const SECRET: &str = "s3cr3t-T0KEN";
    put_secret(&h, "no-key", &[("token", SECRET)]);
    put_secret(&h, "not-yaml", &[("kubeconfig", &format!("users:\n- name: m\n  user: {{token: {SECRET}\n"))]);
    put_secret(
        &h,
        "not-kubeconfig",
        &[("kubeconfig", &format!("clusters: 7\nusers:\n- name: m\n  user:\n    token: [{SECRET}]\n"))],
    );
    let exec = kubeconfig(&server.url(), SECRET).replace(
        &format!("token: {SECRET}"),
        "exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [\"-c\", \"cat /var/run/secrets/kubernetes.io/serviceaccount/token\"]",
    );
    put_secret(&h, "exec", &[("kubeconfig", &exec)]);
    put_secret(
        &h,
        "token-file",
        &[("value", &kubeconfig(&server.url(), SECRET).replace("token:", "tokenFile: /x\n    token:"))],
    );
    put_secret(&h, "wrong-token", &[("value", &kubeconfig(&server.url(), SECRET))]);
    let with = |name: &str, secret: &str| Member { credentials_secret: Some(secret.into()), ..member(name, None) };
    let mut fc = federation(
        "bad",
        vec![
            with("missing", "does-not-exist"),
            with("no-key", "no-key"),
            with("not-yaml", "not-yaml"),
            with("not-kubeconfig", "not-kubeconfig"),
            with("exec", "exec"),
            with("token-file", "token-file"),
            with("wrong-token", "wrong-token"),
            member("nothing", Some("mars-north-1")),
            Member { endpoint: Some("ftp:/nowhere".into()), ..member("bad-endpoint", None) },
            Member { endpoint: Some(closed_port()), ..member("refused", None) },
        ],
        "soon",
        1,
    );
    fc.spec.members.insert(9, with("no-key", "no-key"));
    keep(&h, &fc);

    let (action, s) = beat(&h, "bad").await;
    // The default interval stands in for the one that cannot be read.
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let spec = fc_condition(&s, "SpecValid");
    assert_eq!((spec.status.as_str(), spec.reason.as_str()), ("False", "InvalidSpec"));
    for part in [
        "spec.federation.heartbeatInterval: ",
        "\"soon\"",
        "such as \"30s\" or \"1m\" (using 30s meanwhile)",
        "spec.members[7]: needs an endpoint or a credentialsSecret to be checked",
        "spec.members[7].region: no region named \"mars-north-1\"",
        "regions are: aws-us-east, aws-us-east-1, azure-eastus",
        "spec.members[9].name: \"no-key\" names another member too",
    ] {
        assert!(spec.message.contains(part), "{part:?} missing from {:?}", spec.message);
    }
    let message = |name: &str| -> String {
        let m = member_status(&s, name);
        assert!(!m.healthy, "{m:?}");
        m.message.clone().unwrap_or_default()
    };
    assert_eq!(message("missing"), "not checked: Secret default/does-not-exist does not exist");
    assert_eq!(
        message("no-key"),
        "not checked: Secret default/no-key has no key \"kubeconfig\" or \"value\"; its keys are: [token]"
    );
    assert!(
        message("not-yaml").starts_with("not checked: the kubeconfig in Secret default/not-yaml is not YAML at line"),
        "{}",
        message("not-yaml")
    );
    assert_eq!(
        message("not-kubeconfig"),
        "not checked: the kubeconfig in Secret default/not-kubeconfig is not a kubeconfig \
         (apiVersion: v1, kind: Config, clusters, contexts, users)"
    );
    assert!(
        message("exec").contains("uses an exec credential plugin: the operator runs no plugin"),
        "{}",
        message("exec")
    );
    assert!(message("token-file").contains("uses tokenFile"), "{}", message("token-file"));
    assert_eq!(message("nothing"), "not checked: no endpoint and no credentialsSecret: nothing to check");
    assert_eq!(
        message("bad-endpoint"),
        "not checked: endpoint \"ftp:/nowhere\" is not a URL such as https://host:6443"
    );
    // A refused credential is a missed heartbeat (threshold 1 here), said without the token.
    let wrong = member_status(&s, "wrong-token");
    assert_eq!(wrong.consecutive_failures, 1);
    assert!(
        wrong
            .message
            .as_deref()
            .unwrap_or_default()
            .ends_with("/readyz answered 401: the member refused the credentials"),
        "{wrong:?}"
    );
    let refused = member_status(&s, "refused");
    assert_eq!(refused.consecutive_failures, 1);
    assert!(refused.message.as_deref().unwrap_or_default().contains("onnection refused"), "{refused:?}");
    assert_eq!(server.seen.lock().expect("seen").as_slice(), [Some(format!("Bearer {SECRET}"))], "no plugin ran");
    assert_eq!(s.active_members, 0);
    let ready = fc_condition(&s, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "NoHealthyMembers"));
    let degraded = fc_condition(&s, "Degraded");
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "MembersUnhealthy"));
    // Members that cannot be checked do not take a region down; only missed heartbeats do (and
    // wrong-token has no region).
    assert!(down(&h).is_empty());

    // Nothing the operator wrote or logged shows the credential.
    let status_text = serde_json::to_string(&stored(&h, "bad").expect("stored")).expect("json");
    let events = serde_json::to_string(&h.events()).expect("json");
    let log = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    // The capture saw the heartbeats (kube logs the 401 at debug level).
    assert!(log.contains("code: 401"), "the subscriber captured the reconcile's logs:\n{log}");
    for (what, text) in [("status", &status_text), ("events", &events), ("logs", &log)] {
        assert!(!text.contains(SECRET), "the credential shows in the {what}:\n{text}");
    }
}

#[tokio::test]
async fn the_operator_runs_the_federation_controller_and_writes_its_status() {
    let h = Harness::new();
    let server = MemberServer::start(None).await;
    let fc = federation(
        "live",
        vec![Member { endpoint: Some(server.url()), ..member("only", Some("gcp-us-central1")) }],
        "30s",
        3,
    );
    // Without the finalizer: the controller adds it first.
    let mut fresh = fc.clone();
    fresh.metadata.finalizers = None;
    keep(&h, &fresh);
    let runner = tokio::spawn(operator::controller::run(h.ctx.clone()));
    let written = async {
        loop {
            if let Some(s) = stored(&h, "live").and_then(|o| o.status)
                && s.active_members == 1
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let s = tokio::time::timeout(Duration::from_secs(20), written).await.expect("the status is written");
    assert!(member_status(&s, "only").healthy);
    assert_eq!(stored(&h, "live").expect("stored").finalizers(), [FINALIZER]);
    assert!(server.probes() >= 1);
    let watches: Vec<String> = h.store().calls.iter().filter(|c| c.is_watch()).map(|c| c.path.clone()).collect();
    assert!(watches.iter().any(|w| w == "/apis/novacron.io/v1/federatedclusters"), "{watches:?}");
    runner.abort();
}
