//! The FederatedCluster controller: a heartbeat of each member cluster's API, whose verdict
//! feeds the deployments' engines as region health.
//!
//! A heartbeat is one `GET /readyz` of the member's API server, with a timeout of the
//! heartbeat interval (at most 10 s). The member's credentials come from the Secret its
//! `credentialsSecret` names, in the FederatedCluster's namespace: the key `kubeconfig` (or
//! `value`, where Cluster API writes a workload cluster's kubeconfig) holds a kubeconfig whose
//! current context is used, with inline credentials only — a token or client certificate data.
//! `exec` and `auth-provider` plugins and file paths are refused: they would run a program or
//! read a file (such as the operator's own service account token) on the operator's behalf. The
//! member's `endpoint`, when set, replaces the kubeconfig's `server`; a member with an endpoint
//! and no Secret is probed anonymously (a default kube-apiserver serves `/readyz` to anyone).
//!
//! Health: every missed heartbeat (no answer in time, a refused connection, or any answer other
//! than 2xx) adds one to the member's `consecutiveFailures`; an answer resets it. A member is
//! unhealthy once `failureThreshold` (default 3) heartbeats were missed in a row, and healthy
//! again at the first answer. A member whose credentials cannot be used (no Secret, no key, not
//! a kubeconfig, a plugin) is not checked: it is reported not healthy with the reason, and its
//! failure count stands. Heartbeats run every `heartbeatInterval` (default 30 s), counted from
//! `status.lastCheckTime`, so a reconcile caused by anything else (the controller's own status
//! write) does not beat early, and failure counts survive an operator restart.
//!
//! Failover: the regions of unhealthy members are given to
//! [`MarketData::set_federation_down`](crate::children::MarketData::set_federation_down), which
//! every deployment's engine reads as region health; a deployment whose active region is on an
//! unhealthy member then fails over by the engine's own decision (the controller decides
//! nothing). A finalizer clears the federation's regions when it is deleted.
//!
//! Status: `memberStatus` (name, healthy, lastHeartbeat, consecutiveFailures, message),
//! `activeMembers`, `lastCheckTime`, `observedGeneration`, and the conditions `SpecValid`,
//! `Ready` (some member healthy) and `Degraded` (some member unhealthy or not checkable). No
//! message, Event or log line carries a credential: kubeconfig parse errors are reported by
//! position, not text.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use engine::{SimDuration, SimTime};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::Event as Finalizer;
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::clock::rfc3339;
use crate::controller::Context;
use crate::crd::federatedcluster::{
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_HEARTBEAT_INTERVAL, FINALIZER, FederatedCluster, FederatedClusterStatus,
    KUBECONFIG_KEYS, Member, MemberStatus,
};
use crate::crd::{Condition, merge_conditions};
use crate::metrics::{DecisionLabels, FederationHealthLabels, FederationMemberLabels, Metrics};
use crate::{Error, Result};

/// The `controller` label of this controller's metrics.
pub const CONTROLLER: &str = "federatedcluster";

/// Longest wait for a member's answer.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Shortest heartbeat interval accepted.
const MIN_INTERVAL: SimDuration = SimDuration::from_secs(1);

/// Reconciles one FederatedCluster.
pub async fn reconcile(obj: Arc<FederatedCluster>, ctx: Arc<Context>) -> Result<Action> {
    crate::runtime::reconcile(obj, &ctx, CONTROLLER, Some(FINALIZER), |event| async {
        match event {
            Finalizer::Apply(o) => apply(o, &ctx).await,
            Finalizer::Cleanup(o) => cleanup(o, &ctx).await,
        }
    })
    .await
}

/// Counts the error and backs off as the MultiCloudVM controller does.
pub fn error_policy(obj: Arc<FederatedCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::runtime::error_policy(obj.as_ref(), error, &ctx, CONTROLLER)
}

/// A spec problem: the field and what is wrong.
#[derive(Clone, Debug, PartialEq)]
struct Problem {
    field: String,
    message: String,
}

/// The federation settings, checked (defaults used where a value cannot be).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Time between heartbeats.
    pub interval: SimDuration,
    /// Missed heartbeats in a row before a member is unhealthy.
    pub failure_threshold: u32,
}

/// Reads `spec.federation`; a bad value is a problem and its default is used meanwhile.
fn settings(obj: &FederatedCluster, problems: &mut Vec<Problem>) -> Settings {
    let f = obj.spec.federation.clone().unwrap_or_default();
    let default_interval = SimDuration::from_secs(30);
    let interval = match f.heartbeat_interval.as_deref() {
        None => default_interval,
        Some(text) => match SimDuration::parse(text) {
            Ok(d) if d >= MIN_INTERVAL => d,
            Ok(_) => {
                problems.push(Problem {
                    field: "spec.federation.heartbeatInterval".into(),
                    message: format!(
                        "{text:?} is too short: at least 1s (using {DEFAULT_HEARTBEAT_INTERVAL} meanwhile)"
                    ),
                });
                default_interval
            }
            Err(e) => {
                problems.push(Problem {
                    field: "spec.federation.heartbeatInterval".into(),
                    message: format!("{e}, such as \"30s\" or \"1m\" (using {DEFAULT_HEARTBEAT_INTERVAL} meanwhile)"),
                });
                default_interval
            }
        },
    };
    let failure_threshold = match f.failure_threshold {
        None => DEFAULT_FAILURE_THRESHOLD,
        Some(0) => {
            problems.push(Problem {
                field: "spec.federation.failureThreshold".into(),
                message: format!("must be at least 1 (using {DEFAULT_FAILURE_THRESHOLD} meanwhile)"),
            });
            DEFAULT_FAILURE_THRESHOLD
        }
        Some(n) => n,
    };
    Settings { interval, failure_threshold }
}

/// Checks the members: unique names, something to probe, a region the catalog knows (when the
/// catalog is at hand). Returns the problems.
fn check_members(members: &[Member], regions: Option<&BTreeMap<String, engine::RegionId>>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, m) in members.iter().enumerate() {
        let key = format!("spec.members[{i}]");
        if m.name.is_empty() {
            problems.push(Problem { field: format!("{key}.name"), message: "must not be empty".into() });
        } else if !seen.insert(m.name.as_str()) {
            problems.push(Problem {
                field: format!("{key}.name"),
                message: format!("{:?} names another member too; names must be unique", m.name),
            });
        }
        if m.endpoint.is_none() && m.credentials_secret.is_none() {
            problems.push(Problem {
                field: key.clone(),
                message: "needs an endpoint or a credentialsSecret to be checked".into(),
            });
        }
        if let (Some(r), Some(known)) = (&m.region, regions)
            && !known.contains_key(r)
        {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            problems.push(Problem {
                field: format!("{key}.region"),
                message: format!(
                    "no region named {r:?}, so its health reaches no deployment; regions are: {}",
                    names.join(", ")
                ),
            });
        }
    }
    problems
}

/// Why a member could not be checked (its credentials or endpoint cannot be used). The text
/// never holds a credential.
#[derive(Clone, Debug, PartialEq)]
struct Unusable(String);

/// What one heartbeat found.
#[derive(Clone, Debug, PartialEq)]
enum Beat {
    /// The API answered 2xx.
    Answered,
    /// The API did not answer in time, refused, or answered an error.
    Missed(String),
    /// The member could not be checked.
    Unchecked(Unusable),
}

/// How a member's API is reached: its URL and client.
struct Target {
    url: String,
    client: Client,
}

/// `scheme://host[:port]` of a URI, without user info, path or query.
fn shown(uri: &axum::http::Uri) -> String {
    let host = uri.host().unwrap_or_default();
    match (uri.scheme_str(), uri.port_u16()) {
        (Some(s), Some(p)) => format!("{s}://{host}:{p}"),
        (Some(s), None) => format!("{s}://{host}"),
        (None, _) => host.to_owned(),
    }
}

fn parse_endpoint(text: &str) -> std::result::Result<axum::http::Uri, Unusable> {
    let bad = || Unusable(format!("endpoint {text:?} is not a URL such as https://host:6443"));
    let uri: axum::http::Uri = text.parse().map_err(|_| bad())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(bad()),
    }
}

/// The kubeconfig text of `secret` (in `ns`), or why there is none.
async fn kubeconfig_text(client: &Client, ns: &str, secret: &str) -> std::result::Result<String, Unusable> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let found = match api.get_opt(secret).await {
        Ok(s) => s,
        Err(kube::Error::Api(s)) => {
            return Err(Unusable(format!("cannot read Secret {ns}/{secret}: {} ({})", s.reason, s.code)));
        }
        Err(e) => return Err(Unusable(format!("cannot read Secret {ns}/{secret}: {e}"))),
    };
    let Some(found) = found else {
        return Err(Unusable(format!("Secret {ns}/{secret} does not exist")));
    };
    let data = found.data.unwrap_or_default();
    let Some((key, bytes)) = KUBECONFIG_KEYS.iter().find_map(|k| data.get(*k).map(|v| (*k, v))) else {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        return Err(Unusable(format!(
            "Secret {ns}/{secret} has no key {}; its keys are: [{}]",
            KUBECONFIG_KEYS.map(|k| format!("{k:?}")).join(" or "),
            keys.join(", ")
        )));
    };
    String::from_utf8(bytes.0.clone())
        .map_err(|_| Unusable(format!("Secret {ns}/{secret} key {key:?} is not UTF-8 text (a kubeconfig is YAML)")))
}

/// The client a kubeconfig describes, refusing what would run a program or read a file. Errors
/// say where the problem is, never what the text holds.
async fn kubeconfig_client(
    text: &str,
    origin: &str,
    endpoint: Option<&str>,
    timeout: Duration,
) -> std::result::Result<Target, Unusable> {
    // Kubeconfig::from_yaml's errors may quote the text (a token); serde_yaml_ng's position is
    // all that is said.
    if let Err(e) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        let at = e.location().map_or_else(String::new, |l| format!(" at line {} column {}", l.line(), l.column()));
        return Err(Unusable(format!("{origin} is not YAML{at}")));
    }
    let config = Kubeconfig::from_yaml(text).map_err(|_| {
        Unusable(format!("{origin} is not a kubeconfig (apiVersion: v1, kind: Config, clusters, contexts, users)"))
    })?;
    let mut config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .map_err(|e| Unusable(format!("{origin} cannot be used: {}", kubeconfig_error(&e))))?;
    let a = &config.auth_info;
    let refused = [
        (a.exec.is_some(), "an exec credential plugin"),
        (a.auth_provider.is_some(), "an auth-provider plugin"),
        (a.token_file.is_some(), "tokenFile (a file of the operator's)"),
        (a.client_certificate.is_some(), "client-certificate (a file path; use client-certificate-data)"),
        (a.client_key.is_some(), "client-key (a file path; use client-key-data)"),
        (config.root_cert_file.is_some(), "certificate-authority (a file path; use certificate-authority-data)"),
    ];
    if let Some((_, what)) = refused.iter().find(|(bad, _)| *bad) {
        return Err(Unusable(format!(
            "{origin} uses {what}: the operator runs no plugin and reads no file for a member; \
             put a token or client certificate data in the kubeconfig"
        )));
    }
    if let Some(e) = endpoint {
        config.cluster_url = parse_endpoint(e)?;
    }
    target(config, timeout)
}

/// What is wrong with a kubeconfig, without its text.
fn kubeconfig_error(e: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError as K;
    match e {
        K::CurrentContextNotSet => "it has no current-context".into(),
        K::LoadContext(name) => format!("its context {name:?} is missing"),
        K::LoadClusterOfContext(name) => format!("the cluster {name:?} of its context is missing"),
        K::MissingClusterUrl => "its cluster has no server".into(),
        K::ParseClusterUrl(_) => "its cluster's server is not a URL".into(),
        K::LoadCertificateAuthority(_) => "its certificate-authority-data is not base64".into(),
        K::LoadClientCertificate(_) => "its client-certificate-data is not base64".into(),
        K::LoadClientKey(_) => "its client-key-data is not base64".into(),
        K::ParseCertificates(_) => "its certificate-authority-data is not PEM".into(),
        _ => "it cannot be loaded (kube refused it)".into(),
    }
}

/// A client for `config`, which neither retries nor waits longer than `timeout`.
fn target(mut config: kube::Config, timeout: Duration) -> std::result::Result<Target, Unusable> {
    config.default_retry = false;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    let url = shown(&config.cluster_url);
    // The operator's TLS provider (main installs it too); the first install wins.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // kube's errors here are about TLS settings (a key or certificate that does not parse) or
    // a proxy; they name the problem, not the data.
    let client = Client::try_from(config).map_err(|e| Unusable(format!("no client for {url}: {e}")))?;
    Ok(Target { url, client })
}

/// How `member` is reached, or why it cannot be.
async fn resolve(
    client: &Client,
    ns: &str,
    member: &Member,
    timeout: Duration,
) -> std::result::Result<Target, Unusable> {
    match (&member.credentials_secret, &member.endpoint) {
        (Some(secret), endpoint) => {
            let text = kubeconfig_text(client, ns, secret).await?;
            kubeconfig_client(&text, &format!("the kubeconfig in Secret {ns}/{secret}"), endpoint.as_deref(), timeout)
                .await
        }
        (None, Some(endpoint)) => target(kube::Config::new(parse_endpoint(endpoint)?), timeout),
        (None, None) => Err(Unusable("no endpoint and no credentialsSecret: nothing to check".into())),
    }
}

/// One heartbeat of `t`: `GET /readyz`.
async fn probe(t: &Target, timeout: Duration) -> Beat {
    let request = match axum::http::Request::get("/readyz").body(Vec::new()) {
        Ok(r) => r,
        Err(e) => return Beat::Missed(format!("GET {}/readyz: {e}", t.url)),
    };
    match tokio::time::timeout(timeout, t.client.request_text(request)).await {
        Err(_) => Beat::Missed(format!("GET {}/readyz: no answer within {}s", t.url, timeout.as_secs_f64())),
        Ok(Ok(_)) => Beat::Answered,
        Ok(Err(kube::Error::Api(s))) => {
            let mut text: String = s.message.chars().take(200).collect();
            if matches!(s.code, 401 | 403) {
                text = "the member refused the credentials".into();
            }
            Beat::Missed(format!("GET {}/readyz answered {}: {text}", t.url, s.code))
        }
        Ok(Err(e)) => Beat::Missed(format!("GET {}/readyz: {}", t.url, transport_error(&e))),
    }
}

/// A transport error as one line: kube's message and its causes.
fn transport_error(e: &kube::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The heartbeat's timeout for an interval.
pub fn probe_timeout(interval: SimDuration) -> Duration {
    Duration::from_millis(interval.as_millis()).min(MAX_PROBE_TIMEOUT)
}

fn parse_time(text: &str) -> Option<SimTime> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(t.timestamp_millis()).ok().map(SimTime)
}

/// A member's status after `beat` (or, with none, as it was).
fn member_status(
    m: &Member,
    previous: Option<&MemberStatus>,
    beat: Option<&Beat>,
    threshold: u32,
    now: SimTime,
) -> MemberStatus {
    let before = previous.cloned().unwrap_or_else(|| MemberStatus { name: m.name.clone(), ..MemberStatus::default() });
    let mut s = MemberStatus { name: m.name.clone(), ..before };
    match beat {
        // No heartbeat this time (none due): as it was.
        None => {}
        Some(Beat::Answered) => {
            s.healthy = true;
            s.consecutive_failures = 0;
            s.last_heartbeat = Some(rfc3339(now));
            s.message = None;
        }
        Some(Beat::Missed(why)) => {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.healthy = s.consecutive_failures < threshold;
            let n = s.consecutive_failures;
            s.message = Some(if s.healthy {
                format!("missed {n} of {threshold} heartbeats before it counts as unhealthy: {why}")
            } else {
                format!("unhealthy: missed {n} heartbeats in a row (threshold {threshold}): {why}")
            });
        }
        Some(Beat::Unchecked(Unusable(why))) => {
            s.healthy = false;
            s.message = Some(format!("not checked: {why}"));
        }
    }
    s
}

/// Whether the member's region counts as down: it missed `threshold` heartbeats in a row.
fn down(s: &MemberStatus, threshold: u32) -> bool {
    s.consecutive_failures >= threshold
}

/// Whether the member is not healthy only because it could not be checked.
fn unchecked(s: &MemberStatus, threshold: u32) -> bool {
    !s.healthy && !down(s, threshold)
}

async fn apply(obj: Arc<FederatedCluster>, ctx: &Context) -> Result<Action> {
    let ns = obj.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let name = obj.name_any();
    let key = format!("{ns}/{name}");
    let generation = obj.metadata.generation;
    let now = ctx.clock.now();
    let previous = obj.status.clone().unwrap_or_default();

    let mut problems = Vec::new();
    let settings = settings(&obj, &mut problems);
    // Regions are checked against the catalog when the provider gives it; a cloud that cannot
    // answer does not stop the heartbeats.
    let index = ctx.catalog().await.ok();
    problems.extend(check_members(&obj.spec.members, index.as_ref().map(|i| &i.regions)));

    let last = previous.last_check_time.as_deref().and_then(parse_time);
    let due_at = last.map(|l| SimTime(l.as_millis().saturating_add(settings.interval.as_millis())));
    let due = previous.observed_generation != generation || due_at.is_none_or(|at| now >= at);

    let beats: Vec<Option<Beat>> = if due {
        let timeout = probe_timeout(settings.interval);
        let checks = obj.spec.members.iter().map(|m| {
            let (client, ns) = (ctx.client.clone(), ns.clone());
            async move {
                match resolve(&client, &ns, m, timeout).await {
                    Ok(t) => probe(&t, timeout).await,
                    Err(u) => Beat::Unchecked(u),
                }
            }
        });
        futures::future::join_all(checks).await.into_iter().map(Some).collect()
    } else {
        vec![None; obj.spec.members.len()]
    };

    let before: BTreeMap<&str, &MemberStatus> = previous.member_status.iter().map(|s| (s.name.as_str(), s)).collect();
    let threshold = settings.failure_threshold;
    let members: Vec<MemberStatus> = obj
        .spec
        .members
        .iter()
        .zip(&beats)
        .map(|(m, b)| member_status(m, before.get(m.name.as_str()).copied(), b.as_ref(), threshold, now))
        .collect();

    for (m, b) in obj.spec.members.iter().zip(&beats) {
        if let Some(Beat::Missed(_)) = b {
            ctx.metrics.federation_heartbeat_failures.get_or_create(&member_labels(&key, &m.name)).inc();
        }
    }
    let regions: BTreeSet<String> = obj
        .spec
        .members
        .iter()
        .zip(&members)
        .filter(|(_, s)| down(s, threshold))
        .filter_map(|(m, _)| m.region.clone())
        .collect();
    ctx.market.set_federation_down(&key, regions.clone());

    let notices = transitions(&obj.spec.members, &before, &members, &regions);
    let checked = if due { now } else { last.unwrap_or(now) };
    let status = status_of(&obj, &previous, members, &problems, threshold, checked, now);
    record_gauges(&ctx.metrics, &key, &status);
    let requeue = if due {
        settings.interval
    } else {
        due_at.map_or(settings.interval, |at| SimDuration::from_millis(at.as_millis().saturating_sub(now.as_millis())))
    };
    let requeue = Duration::from_millis(requeue.as_millis()).max(Duration::from_secs(1));

    let api: Api<FederatedCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({ "apiVersion": "novacron.io/v1", "kind": "FederatedCluster", "status": status });
    api.patch_status(&name, &PatchParams::apply(&ctx.config.field_manager).force(), &Patch::Apply(&patch)).await?;
    publish(ctx, &obj, notices).await;
    Ok(Action::requeue(requeue))
}

/// A member that became unhealthy or recovered.
struct Notice {
    warning: bool,
    reason: &'static str,
    note: String,
}

fn transitions(
    members: &[Member],
    before: &BTreeMap<&str, &MemberStatus>,
    after: &[MemberStatus],
    down_regions: &BTreeSet<String>,
) -> Vec<Notice> {
    let mut out = Vec::new();
    for (m, s) in members.iter().zip(after) {
        let Some(was) = before.get(m.name.as_str()) else { continue };
        let region = m.region.as_deref().filter(|r| down_regions.contains(*r));
        if was.healthy && !s.healthy {
            let mut note = format!("member {} is not healthy: {}", m.name, s.message.as_deref().unwrap_or_default());
            if let Some(r) = region {
                note.push_str(&format!("; region {r} is down for the deployments"));
            }
            info!("{note}");
            out.push(Notice { warning: true, reason: "MemberUnhealthy", note });
        } else if !was.healthy && s.healthy {
            let note = format!("member {} answers again", m.name);
            info!("{note}");
            out.push(Notice { warning: false, reason: "MemberRecovered", note });
        }
    }
    out
}

/// Kubernetes Events for members that changed health. A failure to publish is logged, never
/// fails the reconcile.
async fn publish(ctx: &Context, obj: &FederatedCluster, notices: Vec<Notice>) {
    let reference = obj.object_ref(&());
    for n in notices {
        let event = KubeEvent {
            type_: if n.warning { EventType::Warning } else { EventType::Normal },
            reason: n.reason.to_owned(),
            note: Some(n.note),
            action: "Heartbeat".to_owned(),
            secondary: None,
        };
        ctx.metrics.events.get_or_create(&DecisionLabels { action: n.reason.to_owned() }).inc();
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!("cannot publish event {} for {}: {e}", n.reason, obj.name_any());
        }
    }
}

fn member_labels(federation: &str, member: &str) -> FederationMemberLabels {
    FederationMemberLabels { federation: federation.to_owned(), member: member.to_owned() }
}

fn record_gauges(m: &Metrics, key: &str, s: &FederatedClusterStatus) {
    let healthy = s.member_status.iter().filter(|s| s.healthy).count();
    let unhealthy = s.member_status.len() - healthy;
    for (health, n) in [("healthy", healthy), ("unhealthy", unhealthy)] {
        let l = FederationHealthLabels { federation: key.to_owned(), health: health.into() };
        m.federation_members.get_or_create(&l).set(n as i64);
    }
}

/// The status after a reconcile.
fn status_of(
    obj: &FederatedCluster,
    previous: &FederatedClusterStatus,
    members: Vec<MemberStatus>,
    problems: &[Problem],
    threshold: u32,
    checked: SimTime,
    now: SimTime,
) -> FederatedClusterStatus {
    let generation = obj.metadata.generation;
    let spec_valid = if problems.is_empty() {
        Condition::new("SpecValid", true, "Valid", "the members and federation settings can be used", generation)
    } else {
        let text: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
        Condition::new("SpecValid", false, "InvalidSpec", text.join("; "), generation)
    };
    let total = members.len();
    let active = members.iter().filter(|s| s.healthy).count();
    let unchecked: Vec<&str> = members.iter().filter(|s| unchecked(s, threshold)).map(|s| s.name.as_str()).collect();
    let unhealthy: Vec<&str> = members.iter().filter(|s| down(s, threshold)).map(|s| s.name.as_str()).collect();
    let summary = format!("{active} of {total} members healthy");
    let ready = if total == 0 {
        Condition::new("Ready", false, "NoMembers", "spec.members is empty", generation)
    } else if active == 0 {
        Condition::new("Ready", false, "NoHealthyMembers", summary.clone(), generation)
    } else {
        Condition::new("Ready", true, "MembersHealthy", summary.clone(), generation)
    };
    let degraded = if !unhealthy.is_empty() {
        let m = format!("{summary}; unhealthy: {}", unhealthy.join(", "));
        Condition::new("Degraded", true, "MembersUnhealthy", m, generation)
    } else if !unchecked.is_empty() {
        let m = format!("{summary}; credentials or endpoint unusable: {}", unchecked.join(", "));
        Condition::new("Degraded", true, "MembersUnchecked", m, generation)
    } else {
        Condition::new("Degraded", false, "AllMembersHealthy", summary, generation)
    };
    FederatedClusterStatus {
        member_status: members,
        active_members: u32::try_from(active).unwrap_or(u32::MAX),
        last_check_time: Some(rfc3339(checked)),
        observed_generation: generation,
        conditions: merge_conditions(&previous.conditions, vec![spec_valid, ready, degraded], &rfc3339(now)),
    }
}

async fn cleanup(obj: Arc<FederatedCluster>, ctx: &Context) -> Result<Action> {
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    ctx.market.set_federation_down(&key, BTreeSet::new());
    forget(&ctx.metrics, &key, &obj.spec.members);
    info!("{key}: deleted; its members' regions no longer count as down");
    Ok(Action::await_change())
}

/// Drops a deleted federation's series.
fn forget(m: &Metrics, key: &str, members: &[Member]) {
    for health in ["healthy", "unhealthy"] {
        m.federation_members.remove(&FederationHealthLabels { federation: key.to_owned(), health: health.into() });
    }
    for member in members {
        m.federation_heartbeat_failures.remove(&member_labels(key, &member.name));
    }
}
