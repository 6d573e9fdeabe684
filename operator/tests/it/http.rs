//! `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use http::{Request, StatusCode};
use operator::http::{HttpState, router};
use operator::metrics::Metrics;
use tower::ServiceExt;

async fn get(state: &HttpState, path: &str) -> (StatusCode, String) {
    let resp = router(state.clone())
        .oneshot(Request::builder().uri(path).body(Body::empty()).expect("request"))
        .await
        .expect("router answers");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn probes_and_metrics() {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::default().register(&mut registry);
    metrics.provider_call("create", "ok", 3);
    let controller = operator::metrics::ControllerLabels { controller: "multicloudvm".into() };
    metrics.reconcile_duration.get_or_create(&controller).observe(0.002);
    let ready = Arc::new(AtomicBool::new(false));
    let state = HttpState { registry: Arc::new(registry), ready: ready.clone() };
    assert_eq!(get(&state, "/healthz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(get(&state, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    ready.store(true, Ordering::SeqCst);
    assert_eq!(get(&state, "/readyz").await, (StatusCode::OK, "ready".into()));
    let (code, text) = get(&state, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(text.contains("novacron_provider_calls_total{op=\"create\",result=\"ok\"} 3"), "{text}");
    assert!(text.contains("# TYPE novacron_reconcile_duration_seconds histogram"), "{text}");
    assert!(text.ends_with("# EOF\n"));
}
