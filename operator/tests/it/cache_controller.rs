//! The CacheIntegration controller on the mocked API server, with a real `redis-server` (the
//! harness of [`crate::cache`]): the resource configures the cache that MultiCloudVM reconciles
//! read prices and region health through, Redis killed and restarted only turns `Degraded` on and
//! off, a bad spec is a condition naming its field, and only the oldest resource applies.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};
use operator::cache_controller;
use operator::crd::Condition;
use operator::crd::cacheintegration::{CacheIntegration, CacheIntegrationSpec, CacheIntegrationStatus, FINALIZER};
use operator::metrics::{CacheLevelLabels, ControllerLabels, ProviderLabels};
use prometheus_client::encoding::text::encode;
use serde_json::{Value, json};

use crate::cache::{Redis, wait_for};
use crate::common::{Fixture, Harness, NOVACRON, mcvm, seed_spec};

fn integration(name: &str, created: &str, spec: Value) -> CacheIntegration {
    let spec: CacheIntegrationSpec = serde_json::from_value(spec).expect("a CacheIntegration spec");
    let mut o = CacheIntegration::new(name, spec);
    o.meta_mut().namespace = Some("default".into());
    o.meta_mut().uid = Some(format!("uid-{name}"));
    o.meta_mut().generation = Some(1);
    o.meta_mut().creation_timestamp = Some(Time(created.parse().expect("a timestamp")));
    o.finalizers_mut().push(FINALIZER.to_owned());
    o
}

fn keep(h: &Harness, o: &CacheIntegration) {
    h.store().put(NOVACRON, "cacheintegrations", &serde_json::to_value(o).expect("json"));
}

fn stored(h: &Harness, name: &str) -> Option<CacheIntegration> {
    h.store()
        .get(NOVACRON, "cacheintegrations", "default", name)
        .map(|v| serde_json::from_value(v).expect("a CacheIntegration"))
}

/// One reconcile of the stored resource; it must succeed. Returns the status written.
async fn turn(h: &Harness, name: &str) -> CacheIntegrationStatus {
    let o = stored(h, name).expect("stored");
    cache_controller::reconcile(Arc::new(o), h.ctx.clone()).await.expect("a CacheIntegration reconcile never fails");
    stored(h, name).and_then(|o| o.status).expect("a status written")
}

fn cond<'a>(s: &'a CacheIntegrationStatus, type_: &str) -> &'a Condition {
    s.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("condition {type_} in {s:?}"))
}

fn cloud_calls(h: &Harness, op: &str) -> u64 {
    h.ctx.metrics.provider_calls.get_or_create(&ProviderLabels { op: op.into(), result: "ok".into() }).get()
}

fn metrics_text(h: &Harness) -> String {
    let mut out = String::new();
    encode(&mut out, &h.registry).expect("encodes");
    out
}

/// Instance state is never cached (`vm:*`, `metrics:*`: TTL 0), so VirtualMachines see their
/// instances boot at once; prices, catalog and region health are.
fn spec(port: u16, extra: Value) -> Value {
    let mut s = json!({
        "redisConfig": {"endpoint": format!("127.0.0.1:{port}"), "clusterName": "ctl",
                        "backoffMin": "100ms", "backoffMax": "400ms"},
        "strategy": "read-through",
        "consistency": "eventual",
        "ttlPolicies": {"prices": "5m", "catalog": "1h", "health": "1m", "vm:*": "0", "metrics:*": "0"},
        "memoryThresholds": {"warning": 60, "critical": 80, "eviction": 90},
    });
    if let (Some(s), Value::Object(e)) = (s.as_object_mut(), extra) {
        s.extend(e);
    }
    s
}

/// The resource, with AUTH from its Secret, configures the cache; MultiCloudVM reconciles then
/// read prices and region health from it (one cloud call each instead of one per reconcile),
/// which /metrics shows; a newer CacheIntegration is superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_integration_configures_the_cache_multicloudvm_reconciles_use() {
    let redis = Redis::start(&["--requirepass", "pw-123"]);
    let mut h = Harness::new();
    h.store().put(
        "/api/v1",
        "secrets",
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth", "namespace": "default"},
                "data": {"password": "cHctMTIz"}}),
    );
    assert!(h.ctx.cache.installed().is_none(), "no CacheIntegration: direct calls");
    let ci = integration(
        "provider-cache",
        "2026-11-30T00:00:00Z",
        spec(
            redis.port,
            json!({"redisConfig": {"endpoint": format!("127.0.0.1:{}", redis.port),
            "credentialsSecret": "redis-auth", "clusterName": "ctl"}}),
        ),
    );
    keep(&h, &ci);
    let s = turn(&h, "provider-cache").await;
    assert_eq!(cond(&s, "SpecValid").status, "True", "{s:?}");
    assert_eq!(cond(&s, "Active").status, "True");
    assert_eq!(cond(&s, "Degraded").status, "False");
    assert_eq!(cond(&s, "Degraded").reason, "RedisHealthy", "AUTH from the Secret: {s:?}");
    assert_eq!(cond(&s, "Ready").status, "True");
    assert_eq!(s.cluster_health.as_ref().expect("clusterHealth").status, "Healthy");
    assert!(s.memory_usage.as_ref().expect("memoryUsage").redis_used_bytes.is_some_and(|b| b > 0));
    assert!(h.calls().contains(&"GET /api/v1/namespaces/default/secrets/redis-auth".to_owned()));
    let installed = h.ctx.cache.installed().expect("a cache installed");
    assert_eq!(installed.owner, "default/provider-cache");

    let mut m = mcvm("web", seed_spec()).finalized();
    for _ in 0..3 {
        let (_, st) = h.apply(&mut m).await;
        assert!(st.conditions.iter().any(|c| c.type_ == "SpecValid" && c.status == "True"), "{st:?}");
    }
    // Three reconciles read prices and region health; the cloud answered once each.
    assert_eq!(cloud_calls(&h, "prices"), 1);
    assert_eq!(cloud_calls(&h, "unhealthy-regions"), 1);
    let l1_hits = h.ctx.metrics.cache_hits.get_or_create(&CacheLevelLabels { level: "l1".into() }).get();
    assert!(l1_hits >= 4, "prices and health read from L1 at least twice each: {l1_hits}");
    // Instance state is not cached (TTL 0): once the cloud boots the instances, the
    // VirtualMachine controller sees them Running at its next pass.
    h.cloud.boot_all();
    h.vm_pass().await;
    let phases: Vec<Option<String>> = h.vms().iter().map(|v| v.status.as_ref().and_then(|s| s.phase.clone())).collect();
    assert!(!phases.is_empty() && phases.iter().all(|p| p.as_deref() == Some("Running")), "{phases:?}");
    let text = metrics_text(&h);
    assert!(text.contains("novacron_cache_hits_total{level=\"l1\"}"), "{text}");
    assert!(text.contains("novacron_provider_calls_total{op=\"prices\",result=\"ok\"} 1"), "{text}");
    assert!(text.contains("novacron_cache_l2_up 1"), "{text}");

    let s = turn(&h, "provider-cache").await;
    let p = s.performance_metrics.expect("performanceMetrics");
    assert!(p.requests >= 6 && p.hit_rate > 0.5 && p.misses >= 2, "{p:?}");
    assert!(p.average_response_time_ms >= 0.0 && p.throughput_per_second > 0.0);

    // A second resource changes nothing: the oldest applies.
    let newer = integration("second", "2026-11-30T01:00:00Z", json!({"strategy": "cache-aside"}));
    keep(&h, &newer);
    let s2 = turn(&h, "second").await;
    assert_eq!(cond(&s2, "Active").reason, "Superseded");
    assert!(cond(&s2, "Active").message.contains("default/provider-cache"), "{s2:?}");
    assert_eq!(h.ctx.cache.installed().expect("installed").owner, "default/provider-cache");
    // The same spec and Secret again: the installed cache is kept, not rebuilt.
    turn(&h, "provider-cache").await;
    assert!(Arc::ptr_eq(&installed, &h.ctx.cache.installed().expect("installed")));
    drop(redis);
}

/// Redis killed: the status turns Degraded, MultiCloudVM reconciles keep succeeding (from L1
/// and the cloud); Redis back: the cache recovers by itself and the status says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_degraded_never_a_failed_reconcile() {
    let mut redis = Redis::start(&[]);
    let mut h = Harness::new();
    keep(&h, &integration("provider-cache", "2026-11-30T00:00:00Z", spec(redis.port, json!({}))));
    let s = turn(&h, "provider-cache").await;
    assert_eq!(cond(&s, "Degraded").status, "False", "{s:?}");
    let mut m = mcvm("web", seed_spec()).finalized();
    h.apply(&mut m).await;

    redis.kill();
    let s = turn(&h, "provider-cache").await;
    assert_eq!(cond(&s, "Degraded").status, "True", "{s:?}");
    assert_eq!(cond(&s, "Degraded").reason, "RedisUnreachable");
    assert_eq!(cond(&s, "Ready").status, "False");
    assert_eq!(s.cluster_health.as_ref().expect("clusterHealth").status, "Degraded");
    for _ in 0..3 {
        h.apply(&mut m).await; // panics if the reconcile fails
    }
    let errors = h
        .ctx
        .metrics
        .reconcile_errors
        .get_or_create(&operator::metrics::ErrorLabels { controller: "multicloudvm".into(), error: "provider".into() });
    assert_eq!(errors.get(), 0);

    redis.restart();
    let started = std::time::Instant::now();
    wait_for("the cache reaches Redis again", Duration::from_secs(20), async || {
        cond(&turn(&h, "provider-cache").await, "Degraded").status == "False"
    })
    .await;
    let s = turn(&h, "provider-cache").await;
    assert_eq!(cond(&s, "Ready").status, "True", "recovered after {:?}: {s:?}", started.elapsed());
    assert!(s.cluster_health.expect("clusterHealth").outages >= 1);
}

/// Bad specs are conditions naming the field; the cache of the last valid spec stays; deleting
/// the resource sends calls straight to the cloud again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_are_conditions_naming_the_field() {
    let h = Harness::new();
    let cases = [
        (json!({"strategy": "write-around"}), "spec.strategy: \"write-around\" is not one of"),
        (json!({"ttlPolicies": {"vm:*": "forever"}}), "spec.ttlPolicies"),
        (json!({"ttlPolicies": [{"pattern": "vm :*", "ttl": "30s"}]}), "spec.ttlPolicies[0].pattern"),
        (json!({"memoryThresholds": {"warning": 95, "critical": 80}}), "spec.memoryThresholds"),
        (
            json!({"warmingConfig": {"enabled": true, "patterns": [{"pattern": "prices"}], "schedule": "every day"}}),
            "spec.warmingConfig.schedule",
        ),
        (json!({"redisConfig": {"endpoint": "redis:6379", "timeout": "soon"}}), "spec.redisConfig.timeout"),
        (json!({"redisConfig": {"endpoint": "redis:6379", "credentialsSecret": "absent"}}), "Secret \"absent\""),
    ];
    let invalid =
        || h.ctx.metrics.invalid_specs.get_or_create(&ControllerLabels { controller: "cacheintegration".into() }).get();
    for (i, (bad, needle)) in cases.iter().enumerate() {
        keep(&h, &integration("c", "2026-11-30T00:00:00Z", bad.clone()));
        let s = turn(&h, "c").await;
        let v = cond(&s, "SpecValid");
        assert_eq!(v.status, "False", "{bad}: {s:?}");
        assert!(v.message.contains(needle), "{needle} in {:?}", v.message);
        assert_eq!(cond(&s, "Active").reason, "InvalidSpec");
        assert!(h.ctx.cache.installed().is_none(), "nothing installed for {bad}");
        assert_eq!(invalid(), i as u64 + 1);
    }
    // A valid spec without Redis: in-process only.
    keep(&h, &integration("c", "2026-11-30T00:00:00Z", json!({"ttlPolicies": {"prices": "5m"}})));
    let s = turn(&h, "c").await;
    assert_eq!(cond(&s, "Degraded").reason, "LocalOnly");
    assert_eq!(cond(&s, "Ready").status, "True");
    let first = h.ctx.cache.installed().expect("installed");
    // Broken again: the last valid cache stays.
    keep(&h, &integration("c", "2026-11-30T00:00:00Z", json!({"strategy": "write-around"})));
    let s = turn(&h, "c").await;
    assert_eq!(cond(&s, "Active").reason, "LastValidSpec");
    assert!(Arc::ptr_eq(&first, &h.ctx.cache.installed().expect("kept")));
    drop(first);
    // Deleted: the finalizer removes the cache, then lets the object go.
    let mut o = stored(&h, "c").expect("stored");
    o.meta_mut().deletion_timestamp = Some(Time("2026-11-30T02:00:00Z".parse().expect("a timestamp")));
    keep(&h, &o);
    cache_controller::reconcile(Arc::new(stored(&h, "c").expect("stored")), h.ctx.clone())
        .await
        .expect("cleanup succeeds");
    assert!(h.ctx.cache.installed().is_none(), "direct calls again");
    assert!(stored(&h, "c").is_none(), "the finalizer is gone and so is the object");
}
