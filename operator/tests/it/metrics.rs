//! `/metrics` after a busy run: every family the operator registers is scraped, with the values
//! the run implies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body as AxumBody;
use engine::SimDuration;
use http::{Request, StatusCode};
use operator::controller::{Config, error_policy};
use operator::http::{HttpState, router};
use operator::leader::{LeaderConfig, LeaderElector};
use operator::provider::ProviderError;
use tower::ServiceExt;

use crate::common::{Fixture, Harness, condition, mcvm, seed_spec};

/// Every family, as `# TYPE` names it.
const FAMILIES: [&str; 37] = [
    "novacron_adopted_instances",
    "novacron_build_info",
    "novacron_cache_errors",
    "novacron_cache_hits",
    "novacron_cache_l2_up",
    "novacron_cache_memory_bytes",
    "novacron_cache_misses",
    "novacron_cache_request_duration_seconds",
    "novacron_cache_requests",
    "novacron_decision_log_errors",
    "novacron_decisions",
    "novacron_deployment_cost_usd",
    "novacron_deployment_failovers",
    "novacron_deployment_hourly_cost_usd",
    "novacron_deployment_max_hourly_cost_usd",
    "novacron_deployment_migrations",
    "novacron_deployment_ready",
    "novacron_deployment_replicas",
    "novacron_deployment_serving_replicas",
    "novacron_deployment_unhealthy_regions",
    "novacron_engines",
    "novacron_events_published",
    "novacron_invalid_specs",
    "novacron_leader",
    "novacron_leader_lease_attempts",
    "novacron_leader_terms",
    "novacron_model_accuracy",
    "novacron_model_accuracy_threshold",
    "novacron_model_load_failures",
    "novacron_policy_decisions",
    "novacron_provider_call_duration_seconds",
    "novacron_provider_calls",
    "novacron_provider_errors",
    "novacron_reconcile_duration_seconds",
    "novacron_reconcile_errors",
    "novacron_reconciles",
    "novacron_vms",
];

/// Scrapes `/metrics` through the router: the families named by `# TYPE` and the samples.
async fn scrape(state: &HttpState) -> (Vec<String>, BTreeMap<String, f64>) {
    let resp = router(state.clone())
        .oneshot(Request::builder().uri("/metrics").body(AxumBody::empty()).expect("request"))
        .await
        .expect("router answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 22).await.expect("body");
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut families = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            families.push(t.split_whitespace().next().unwrap_or_default().to_owned());
        } else if !line.starts_with('#')
            && let Some((name, value)) = line.rsplit_once(' ')
        {
            samples.insert(name.to_owned(), value.parse::<f64>().expect("a number"));
        }
    }
    (families, samples)
}

fn value(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    *samples.get(name).unwrap_or_else(|| panic!("no sample {name} in {:#?}", samples.keys().collect::<Vec<_>>()))
}

#[tokio::test]
async fn every_metric_family_is_scraped_with_the_values_of_the_run() {
    // The decision log is a folder: every write fails and is counted.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut h = Harness::with_config(Config { decision_log: Some(dir.path().to_owned()), ..Config::default() });
    let registry = Arc::new(std::mem::take(&mut h.registry));
    let state = HttpState { registry, ready: Arc::new(AtomicBool::new(true)) };

    // A leader election attempt: the Lease does not exist, it is created.
    let elector = LeaderElector::new(
        h.ctx.client.clone(),
        LeaderConfig::new("novacron-operator", "default", "op-a"),
        h.clock.clone(),
    )
    .expect("elector")
    .with_metrics(h.ctx.metrics.clone());
    let mut e = elector;
    assert!(e.try_acquire_or_renew().await.expect("acquired"));
    assert_eq!(
        h.calls(),
        [
            "GET /apis/coordination.k8s.io/v1/namespaces/default/leases/novacron-operator",
            "POST /apis/coordination.k8s.io/v1/namespaces/default/leases"
        ]
    );

    // web: two replicas on demand; the first create is throttled and retried 10 s later.
    let mut spec = seed_spec();
    spec.replicas = Some(2);
    spec.cost_optimization.as_mut().expect("seed has costOptimization").use_spot_instances = Some(false);
    let mut web = mcvm("web", spec).finalized();
    h.cloud.fail_next_creates([ProviderError::Throttled("slow down".into())]);
    h.apply(&mut web).await;
    // The failed child reconciles its owner (owns): the engine backs off 10 s.
    h.apply(&mut web).await;
    h.clock.advance(SimDuration::from_secs(10));
    h.apply(&mut web).await;
    h.cloud.boot_all();
    h.clock.advance(SimDuration::from_secs(20));
    let (_, s) = h.apply(&mut web).await;
    assert_eq!(condition(&s, "Ready").status, "True");
    let (_, ready) = scrape(&state).await;
    assert_eq!(value(&ready, "novacron_deployment_ready{deployment=\"default/web\"}"), 1.0);
    assert_eq!(value(&ready, "novacron_vms{deployment=\"default/web\",provider=\"aws\",state=\"Running\"}"), 2.0);

    // AWS goes down: web fails over to Azure.
    h.cloud.fail_region("aws-us-east-1");
    h.clock.advance(SimDuration::from_secs(30));
    h.apply(&mut web).await;
    // bad: a spec that cannot be used.
    let mut bad_spec = seed_spec();
    bad_spec.deployment_strategy.primary = Some("nowhere".into());
    let mut bad = mcvm("bad", bad_spec).finalized();
    h.apply(&mut bad).await;
    // A reconcile error, as the controller reports it.
    error_policy(Arc::new(web.clone()), &operator::Error::InstancesRemain(1), h.ctx.clone());
    // Two AISchedulingPolicies: one loads its model, one's artifact is corrupt.
    crate::policy::one_loaded_one_failed(&h).await;

    let (families, m) = scrape(&state).await;
    let mut sorted = families.clone();
    sorted.sort();
    assert_eq!(sorted, FAMILIES, "the registered families");
    assert!(families.len() >= 20);
    // The tree's recorded top-1 accuracy and the policy's threshold; one failed load.
    assert_eq!(value(&m, "novacron_model_accuracy{policy=\"default/predictive\"}"), 0.22264150943396227);
    assert_eq!(value(&m, "novacron_model_accuracy_threshold{policy=\"default/predictive\"}"), 0.3);
    assert_eq!(
        value(&m, "novacron_model_load_failures_total{policy=\"default/broken\",reason=\"invalid-artifact\"}"),
        1.0
    );
    let web_ = |name: &str| value(&m, &format!("{name}{{deployment=\"default/web\"}}"));
    // Reconciles: web 6 (the failed child's owns-triggered one included), bad 1; the harness
    // counts the VirtualMachine controller's.
    assert_eq!(value(&m, "novacron_reconciles_total{controller=\"multicloudvm\"}"), 6.0);
    assert_eq!(value(&m, "novacron_reconcile_duration_seconds_count{controller=\"multicloudvm\"}"), 6.0);
    let vm_reconciles = h.vm_reconciles.load(std::sync::atomic::Ordering::SeqCst) as f64;
    assert_eq!(value(&m, "novacron_reconciles_total{controller=\"virtualmachine\"}"), vm_reconciles);
    assert_eq!(value(&m, "novacron_reconcile_duration_seconds_count{controller=\"virtualmachine\"}"), vm_reconciles);
    assert_eq!(
        value(&m, "novacron_reconcile_errors_total{controller=\"multicloudvm\",error=\"instances-remain\"}"),
        1.0
    );
    assert_eq!(value(&m, "novacron_invalid_specs_total{controller=\"multicloudvm\"}"), 1.0);
    // Decisions: provisions at 0 s (2: one throttled), 10 s (the retry) and the failover (2).
    assert_eq!(value(&m, "novacron_decisions_total{action=\"provision\"}"), 5.0);
    assert_eq!(value(&m, "novacron_decisions_total{action=\"fail-over\"}"), 1.0);
    let by_policy = "novacron_policy_decisions_total{policy=\"cost-optimized\",strategy=\"active-passive\",action=";
    assert_eq!(value(&m, &format!("{by_policy}\"fail-over\"}}")), 1.0);
    assert_eq!(value(&m, &format!("{by_policy}\"provision\"}}")), 5.0);
    // Provider calls: 5 creates (1 throttled); the lost AWS instances deleted; observations.
    assert_eq!(value(&m, "novacron_provider_calls_total{op=\"create\",result=\"ok\"}"), 4.0);
    assert_eq!(value(&m, "novacron_provider_calls_total{op=\"create\",result=\"throttled\"}"), 1.0);
    assert_eq!(value(&m, "novacron_provider_errors_total{op=\"create\",error=\"throttled\"}"), 1.0);
    assert_eq!(value(&m, "novacron_provider_calls_total{op=\"delete\",result=\"ok\"}"), 2.0);
    assert_eq!(value(&m, "novacron_provider_calls_total{op=\"catalog\",result=\"ok\"}"), 1.0);
    // Each MultiCloudVM reconcile reads prices and region health once (6, the market data its
    // engine reads); instances are listed only by the VirtualMachine controller: once a
    // reconcile but for the one of the Failed (throttled) child, which is final, plus once more
    // in each of the 3 cleanups (the failed child, the 2 lost AWS ones).
    for op in ["prices", "unhealthy-regions"] {
        assert_eq!(value(&m, &format!("novacron_provider_calls_total{{op=\"{op}\",result=\"ok\"}}")), 6.0, "{op}");
        assert_eq!(value(&m, &format!("novacron_provider_call_duration_seconds_count{{op=\"{op}\"}}")), 6.0, "{op}");
    }
    let lists = vm_reconciles - 1.0 + 3.0;
    assert_eq!(value(&m, "novacron_provider_calls_total{op=\"list\",result=\"ok\"}"), lists);
    assert_eq!(value(&m, "novacron_provider_call_duration_seconds_count{op=\"list\"}"), lists);
    assert_eq!(value(&m, "novacron_provider_call_duration_seconds_count{op=\"create\"}"), 5.0);
    // web after the failover: two instances provisioning at Azure, on demand at $0.096/h each.
    assert_eq!(value(&m, "novacron_vms{deployment=\"default/web\",provider=\"azure\",state=\"Provisioning\"}"), 2.0);
    assert_eq!(value(&m, "novacron_vms{deployment=\"default/web\",provider=\"aws\",state=\"Running\"}"), 0.0);
    assert!((web_("novacron_deployment_hourly_cost_usd") - 0.192).abs() < 1e-12);
    assert!(web_("novacron_deployment_cost_usd") > 0.0);
    assert_eq!(web_("novacron_deployment_max_hourly_cost_usd"), 1.0);
    assert_eq!(web_("novacron_deployment_failovers_total"), 1.0);
    assert_eq!(web_("novacron_deployment_migrations_total"), 0.0);
    assert_eq!(web_("novacron_deployment_replicas"), 2.0);
    assert_eq!(web_("novacron_deployment_serving_replicas"), 0.0);
    assert_eq!(web_("novacron_deployment_unhealthy_regions"), 1.0);
    assert_eq!(web_("novacron_deployment_ready"), 0.0);
    assert_eq!(value(&m, "novacron_deployment_ready{deployment=\"default/bad\"}"), 0.0);
    assert_eq!(value(&m, "novacron_events_published_total{action=\"FailedOver\"}"), 1.0);
    assert_eq!(value(&m, "novacron_adopted_instances_total"), 0.0);
    assert_eq!(value(&m, "novacron_engines"), 2.0);
    // Every reconcile with decisions tried to write the log (a folder): 4 of them had some.
    assert!(value(&m, "novacron_decision_log_errors_total") >= 3.0);
    assert_eq!(value(&m, "novacron_leader_lease_attempts_total{result=\"acquired\"}"), 1.0);
    assert_eq!(value(&m, "novacron_leader"), 0.0);
    assert_eq!(value(&m, "novacron_leader_terms_total"), 0.0);
    assert_eq!(value(&m, &format!("novacron_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), 1.0);
}
