//! Leader election against a mocked API server, on paused time (tokio's clock moves only when
//! every task waits, so the timings below are exact).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use operator::clock::ManualClock;
use operator::leader::{LeaderConfig, LeaderElector, LeaderError};
use serde_json::{Value, json};
use tokio::time::Instant;
use tower_test::mock::{Handle, SendResponse};

use crate::apiserver::{Reply as StoreReply, Watches, response, split};
use crate::common::{Fixture, Harness, T0, mcvm, seed_spec};

type Mock = Handle<Request<Body>, Response<Body>>;
type Reply = SendResponse<Response<Body>>;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/novacron/leases/novacron-operator";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/novacron/leases";
/// T0 as the Lease writes it (microseconds).
const T0_MICRO: &str = "2026-11-30T00:00:00Z";

fn config(identity: &str) -> LeaderConfig {
    LeaderConfig::new("novacron-operator", "novacron", identity)
}

fn elector(client: Client, identity: &str) -> LeaderElector {
    LeaderElector::new(client, config(identity), Arc::new(ManualClock::new(T0))).expect("valid config")
}

fn mock() -> (Client, Mock) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// A Lease as the API server returns it.
fn lease(holder: Option<&str>, resource_version: &str, renew: &str, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": "novacron-operator", "namespace": "novacron", "resourceVersion": resource_version },
        "spec": {
            "holderIdentity": holder, "leaseDurationSeconds": 15,
            "acquireTime": "2026-11-29T23:00:00.000000Z", "renewTime": renew, "leaseTransitions": transitions
        }
    })
}

fn answer(send: Reply, body: &Value) {
    send.send_response(Response::new(Body::from(serde_json::to_vec(body).expect("json"))));
}

fn fail(send: Reply, code: u16, reason: &str) {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason
    });
    let mut r = Response::new(Body::from(serde_json::to_vec(&status).expect("json")));
    *r.status_mut() = StatusCode::from_u16(code).expect("a status code");
    send.send_response(r);
}

async fn next(api: &mut Mock) -> (Method, String, Value, Reply) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(60), api.next_request())
        .await
        .expect("a request in time")
        .expect("a request");
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let bytes = req.into_body().collect_bytes().await.expect("body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") };
    (method, path, body, send)
}

/// Expects a GET of the Lease and answers it (`None`: 404).
async fn expect_get(api: &mut Mock, body: Option<Value>) {
    let (method, path, _, send) = next(api).await;
    assert_eq!((method, path.as_str()), (Method::GET, LEASE));
    match body {
        Some(b) => answer(send, &b),
        None => fail(send, 404, "NotFound"),
    }
}

/// Expects the PUT of the Lease; returns what was written, answering it as stored.
async fn expect_put(api: &mut Mock) -> (Value, Reply) {
    let (method, path, body, send) = next(api).await;
    assert_eq!((method, path.as_str()), (Method::PUT, LEASE));
    (body, send)
}

#[tokio::test(start_paused = true)]
async fn acquires_a_lease_nobody_has_created() {
    let (client, mut api) = mock();
    let mut e = elector(client, "op-a");
    let task = tokio::spawn(async move { (e.try_acquire_or_renew().await, e) });
    expect_get(&mut api, None).await;
    let (method, path, body, send) = next(&mut api).await;
    assert_eq!((method, path.as_str()), (Method::POST, LEASES));
    assert_eq!(body["metadata"]["name"], "novacron-operator");
    let spec = &body["spec"];
    assert_eq!(spec["holderIdentity"], "op-a");
    assert_eq!(spec["leaseDurationSeconds"], 15);
    assert_eq!(spec["leaseTransitions"], 0);
    assert_eq!(spec["acquireTime"].as_str().map(|t| t.replace(".000000", "")).as_deref(), Some(T0_MICRO));
    assert_eq!(spec["renewTime"], spec["acquireTime"]);
    answer(send, &body);
    let (r, e) = task.await.expect("task");
    assert!(r.expect("acquired"));
    assert!(e.is_leading());
}

#[tokio::test(start_paused = true)]
async fn acquires_a_released_lease_at_once() {
    let (client, mut api) = mock();
    let mut e = elector(client, "op-a");
    let task = tokio::spawn(async move { e.try_acquire_or_renew().await });
    expect_get(&mut api, Some(lease(None, "41", "2026-11-30T00:00:00.000000Z", 3))).await;
    let (written, send) = expect_put(&mut api).await;
    // The write carries the version read: had another candidate written first, this one is a 409.
    assert_eq!(written["metadata"]["resourceVersion"], "41");
    assert_eq!(written["spec"]["holderIdentity"], "op-a");
    assert_eq!(written["spec"]["leaseTransitions"], 4);
    answer(send, &written);
    assert!(task.await.expect("task").expect("acquired"));
}

/// A standby waits while the Lease changes; once it has seen it unchanged for the lease's 15 s
/// it takes over, with the version it read.
#[tokio::test(start_paused = true)]
async fn waits_while_held_and_takes_over_once_the_lease_expired() {
    let (client, mut api) = mock();
    let mut e = elector(client, "op-a");
    let start = Instant::now();
    let held_v7 = lease(Some("op-b"), "7", "2026-11-30T00:00:00.000000Z", 1);
    let held_v8 = lease(Some("op-b"), "8", "2026-11-30T00:00:10.000000Z", 1);
    // (seconds after start, what the API server holds, whether op-a may take it)
    let script = [
        (0, &held_v7, false),  // first seen at 0
        (10, &held_v8, false), // op-b renewed: seen anew at 10
        (20, &held_v8, false), // unchanged for 10 s < 15 s
        (24, &held_v8, false), // 14 s
        (25, &held_v8, true),  // 15 s: expired
    ];
    for (at, held, takes) in script {
        tokio::time::sleep_until(start + Duration::from_secs(at)).await;
        let attempt = async { e.try_acquire_or_renew().await };
        let server = async {
            expect_get(&mut api, Some(held.clone())).await;
            if takes {
                let (written, send) = expect_put(&mut api).await;
                assert_eq!(written["metadata"]["resourceVersion"], "8");
                assert_eq!(written["spec"]["holderIdentity"], "op-a");
                assert_eq!(written["spec"]["leaseTransitions"], 2);
                answer(send, &written);
            }
        };
        let (r, ()) = tokio::join!(attempt, server);
        assert_eq!(r.expect("an answer"), takes, "at {at} s");
    }
    assert!(e.is_leading());
}

#[tokio::test(start_paused = true)]
async fn a_candidate_that_loses_the_write_race_does_not_lead() {
    let (client, mut api) = mock();
    let mut e = elector(client, "op-a");
    let task = tokio::spawn(async move { (e.try_acquire_or_renew().await, e) });
    expect_get(&mut api, Some(lease(None, "41", "2026-11-30T00:00:00.000000Z", 3))).await;
    let (_, send) = expect_put(&mut api).await;
    fail(send, 409, "Conflict");
    let (r, e) = task.await.expect("task");
    assert!(matches!(r, Err(LeaderError::Kube(_))), "{r:?}");
    assert!(!e.is_leading());
}

/// Acquires through `run` (GET 404, POST) and returns when `leading` says so.
async fn lead(api: &mut Mock, leading: &mut tokio::sync::watch::Receiver<bool>) {
    expect_get(api, None).await;
    let (method, _, body, send) = next(api).await;
    assert_eq!(method, Method::POST);
    answer(
        send,
        &json!({ "metadata": { "name": "novacron-operator", "namespace": "novacron", "resourceVersion": "1" }, "spec": body["spec"] }),
    );
    leading.wait_for(|l| *l).await.expect("leading");
}

/// Answers one renewal: GET of our own Lease, then the PUT.
async fn renew_ok(api: &mut Mock, version: u32) {
    let ours = lease(Some("op-a"), &version.to_string(), "2026-11-30T00:00:00.000000Z", 0);
    expect_get(api, Some(ours)).await;
    let (written, send) = expect_put(api).await;
    assert_eq!(written["spec"]["holderIdentity"], "op-a");
    let mut stored = written.clone();
    stored["metadata"]["resourceVersion"] = json!((version + 1).to_string());
    answer(send, &stored);
}

/// The leader renews every 2 s; when renewals fail it keeps leading until 10 s (the renew
/// deadline) after the start of its last successful renewal, then stops: 5 s before a standby,
/// which waits 15 s from the moment it read that renewal, could take over.
#[tokio::test(start_paused = true)]
async fn a_leader_whose_renewals_fail_stops_at_the_renew_deadline() {
    let (client, mut api) = mock();
    let (tx, mut leading) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let task = tokio::spawn(elector(client, "op-a").run(tx));
    lead(&mut api, &mut leading).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    renew_ok(&mut api, 1).await; // at 2 s
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    // From now on the API server errs: attempts at 4, 6, 8, 10 s and the deadline, 12 s.
    for at in [4, 6, 8, 10] {
        let (method, _, _, send) = next(&mut api).await;
        assert_eq!(method, Method::GET);
        assert_eq!(start.elapsed(), Duration::from_secs(at));
        assert!(*leading.borrow(), "still leading at {at} s");
        fail(send, 500, "InternalError");
    }
    leading.wait_for(|l| !*l).await.expect("stopped leading");
    assert_eq!(start.elapsed(), Duration::from_secs(12));
    // A candidate again: the next reads find op-b holding the Lease; it stays a standby.
    expect_get(&mut api, Some(lease(Some("op-b"), "9", "2026-11-30T00:00:12.000000Z", 1))).await;
    assert!(!*leading.borrow());
    drop(leading);
    // Dropping the receiver ends a standby's loop without touching the Lease.
    let e = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ends").expect("task");
    assert!(!e.is_leading());
}

/// An API server that does not answer at all (a partition): the attempt is cut at the deadline.
#[tokio::test(start_paused = true)]
async fn a_leader_cut_off_from_the_api_server_stops_at_the_renew_deadline() {
    let (client, mut api) = mock();
    let (tx, mut leading) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let _task = tokio::spawn(elector(client, "op-a").run(tx));
    lead(&mut api, &mut leading).await;
    let (method, _, _, unanswered) = next(&mut api).await;
    assert_eq!((method, start.elapsed()), (Method::GET, Duration::from_secs(2)));
    leading.wait_for(|l| !*l).await.expect("stopped leading");
    // Renewed (acquired) at 0 s: the term ends at 10 s, although the request is still open.
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    drop(unanswered);
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_sees_another_holder_stops_at_once() {
    let (client, mut api) = mock();
    let (tx, mut leading) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let _task = tokio::spawn(elector(client, "op-a").run(tx));
    lead(&mut api, &mut leading).await;
    // Someone (an operator by hand, a replica with a skewed view) wrote op-b in.
    expect_get(&mut api, Some(lease(Some("op-b"), "5", "2026-11-30T00:00:02.000000Z", 1))).await;
    leading.wait_for(|l| !*l).await.expect("stopped leading");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_shuts_down_releases_the_lease() {
    let (client, mut api) = mock();
    let (tx, mut leading) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(elector(client, "op-a").run(tx));
    lead(&mut api, &mut leading).await;
    drop(leading);
    expect_get(&mut api, Some(lease(Some("op-a"), "2", "2026-11-30T00:00:00.000000Z", 0))).await;
    let (written, send) = expect_put(&mut api).await;
    // The holder is cleared, so that a standby takes over at its next attempt.
    assert_eq!(written["spec"]["holderIdentity"], Value::Null);
    assert_eq!(written["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(written["metadata"]["resourceVersion"], "2");
    answer(send, &written);
    let e = tokio::time::timeout(Duration::from_secs(5), task).await.expect("ends").expect("task");
    assert!(!e.is_leading());
}

#[test]
fn settings_that_would_let_two_replicas_act_are_refused() {
    let mut c = config("op-a");
    assert!(c.check().is_ok());
    c.renew_deadline = Duration::from_secs(15);
    let e = c.check().expect_err("deadline = duration");
    assert!(e.to_string().contains("--lease-duration (15s) must be longer than --renew-deadline (15s)"), "{e}");
    let mut c = config("op-a");
    c.retry_period = Duration::from_secs(10);
    assert!(c.check().is_err());
    let mut c = config("");
    c.identity.clear();
    assert!(c.check().expect_err("no identity").to_string().contains("POD_NAME"));
    let mut c = config("op-a");
    c.lease_duration = Duration::from_millis(15_500);
    assert!(c.check().is_err());
}

/// What the API server saw of the controller's side (MultiCloudVM paths) while the test ran.
#[derive(Default)]
struct Seen {
    mcvm_requests: Vec<(u64, String)>,
    status_patches: u32,
}

/// The controller behind the election, on one mocked API server: a standby does not touch a
/// MultiCloudVM; once the Lease is free it leads, watches and reconciles (an instance created,
/// status written); when its renewals fail it stops at the deadline, forgets its engines and acts
/// no more; on shutdown it ends.
#[tokio::test(start_paused = true)]
async fn only_the_leader_reconciles_and_a_failed_renewal_stops_the_controller() {
    let (h, mut api) = Harness::unserved(operator::controller::Config::default());
    let ctx = h.ctx.clone();
    let obj = mcvm("web", seed_spec()).finalized();
    h.keep(&obj);
    let mut held = Watches::default();
    let e = LeaderElector::new(ctx.client.clone(), config("op-a"), h.clock.clone()).expect("elector");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let runner = tokio::spawn(operator::controller::run_elected(ctx.clone(), e, async move {
        let _ = stop_rx.await;
    }));
    let secs = || start.elapsed().as_secs();
    let held_by_b = lease(Some("op-b"), "3", "2026-11-30T00:00:00.000000Z", 1);
    let mut seen = Seen::default();
    let mut ours: Option<Value> = None;
    let mut lost_at = None;
    // The timeline (seconds): op-b holds the Lease and renews it until 20 s, then releases it;
    // op-a reads it free at 20 s and leads; its renewals succeed until 30 s and fail from then on.
    while secs() < 50 {
        let Ok(Some((req, send))) = tokio::time::timeout(Duration::from_secs(3), api.next_request()).await else {
            continue;
        };
        let (method, path, query, ct, bytes) = split(req).await;
        let t = secs();
        if path.starts_with("/apis/novacron.io/") {
            let crd_check = query.split('&').any(|q| q == "limit=1") && !query.contains("watch=true");
            if !(path == "/apis/novacron.io/v1/multicloudvms" && crd_check && t == 0) {
                seen.mcvm_requests.push((t, format!("{method} {path}?{query}")));
            }
            if method == "PATCH" && path == "/apis/novacron.io/v1/namespaces/default/multicloudvms/web/status" {
                seen.status_patches += 1;
            }
            // The leader's controllers (MultiCloudVM and VirtualMachine) get the object store.
            let reply = h.store().answer(&method, &path, &query, &ct, &bytes);
            match reply {
                StoreReply::Hold => held.hold(path, query, send),
                StoreReply::Respond(code, v) => send.send_response(response(code, &v)),
            }
            held.flush(&h.store());
            continue;
        }
        assert_eq!(path, LEASE, "{method} {path}");
        match method.as_str() {
            "GET" if t < 20 => {
                // op-b renews every 10 s: the record changes, so op-a keeps waiting.
                let mut l = held_by_b.clone();
                l["metadata"]["resourceVersion"] = json!(format!("{}", 3 + t / 10));
                l["spec"]["renewTime"] = json!(format!("2026-11-30T00:00:{:02}.000000Z", t / 10 * 10));
                answer(send, &l);
            }
            "GET" if t == 20 => answer(send, &lease(None, "10", "2026-11-30T00:00:20.000000Z", 1)),
            "GET" if t <= 30 => answer(send, ours.as_ref().expect("op-a wrote the lease")),
            "GET" => fail(send, 503, "ServiceUnavailable"),
            "PUT" => {
                let mut written: Value = serde_json::from_slice(&bytes).expect("json");
                assert_eq!(written["spec"]["holderIdentity"], "op-a");
                let v: u64 = written["metadata"]["resourceVersion"].as_str().and_then(|v| v.parse().ok()).expect("rv");
                written["metadata"]["resourceVersion"] = json!((v + 1).to_string());
                answer(send, &written);
                ours = Some(written);
            }
            m => panic!("unexpected {m} on the lease"),
        }
        if lost_at.is_none() && t > 30 && !ctx.acting.load(Ordering::SeqCst) {
            lost_at = Some(t);
        }
        if t < 20 {
            assert!(!ctx.acting.load(Ordering::SeqCst), "a standby acts at {t} s");
        }
    }
    // Standby until 20 s: not one MultiCloudVM request (the CRD check at 0 s aside), no VM.
    assert!(seen.mcvm_requests.iter().all(|(t, _)| *t >= 20), "{:?}", seen.mcvm_requests);
    // Leading from 20 s: the controller listed, watched and reconciled; the cloud has the VM.
    assert!(seen.mcvm_requests.iter().any(|(_, r)| r.contains("watch=true")), "{:?}", seen.mcvm_requests);
    assert!(seen.status_patches >= 1);
    assert_eq!(h.cloud.live_instances().len(), 1);
    // The last successful renewal started at 30 s: the term ends at 40 s, and from then on the
    // controller made no request and the engines are forgotten.
    assert!(!ctx.acting.load(Ordering::SeqCst));
    let lost_at = lost_at.expect("the term ended");
    assert!((40..=42).contains(&lost_at), "lost at {lost_at} s");
    assert!(seen.mcvm_requests.iter().all(|(t, _)| *t <= 40), "{:?}", seen.mcvm_requests);
    assert!(!ctx.has_tracker("uid-web"));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &h.registry).expect("metrics");
    assert!(text.contains("novacron_leader 0\n"), "{text}");
    assert!(text.contains("novacron_leader_terms_total 1\n"), "{text}");
    // Shutdown while standing by: the run ends without touching the Lease (not ours).
    stop_tx.send(()).expect("runner listens");
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        while !runner.is_finished() {
            // Keep answering the standby's reads while it winds down.
            if let Ok(Some((req, send))) = tokio::time::timeout(Duration::from_millis(500), api.next_request()).await {
                assert_eq!(req.method(), Method::GET, "{}", req.uri());
                fail(send, 503, "ServiceUnavailable");
            }
        }
    })
    .await;
    assert!(done.is_ok(), "run_elected ended");
    runner.await.expect("task").expect("run_elected");
    drop(held);
}
