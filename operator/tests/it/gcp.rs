//! The GCP provider against a local server that answers as the Compute Engine API v1 and
//! Google's OAuth2 token endpoint do.
//!
//! Every request the client sends is checked against Google's own description of the API,
//! `compute.v1.json`, the discovery document shipped in the `google-api-python-client` wheel on
//! PyPI (downloaded into the target directory on first use, see
//! `tests/fixtures/gcp/requirements.txt`): the HTTP method and path template of the method
//! called, that every query parameter is one the method declares, and that every field of the
//! request body — recursively, through `$ref`s, arrays and maps — exists in the schema with the
//! declared JSON type and, where the schema lists them, an allowed enum value. The fake's own
//! answers are checked against the response schemas the same way, so it cannot invent fields
//! either. Operations answer `RUNNING` and then `DONE`; errors use Google's error format. The
//! token endpoint verifies the RS256 signature of the JWT bearer assertion with the test key's
//! public half and checks its claims.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use engine::{FailureCause, Market};
use operator::provider::gcp::{
    GcpConfig, GcpProvider, ServiceAccountKey, instance_name, label_key, label_value, request_id,
};
use operator::provider::{CloudProvider, CreateRequest, InstanceState, ProviderError};
use serde_json::{Value, json};

const PROJECT: &str = "novacron-test";
const EMAIL: &str = "operator@novacron-test.iam.gserviceaccount.com";
const KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";
const OWNER: &str = "3f1b7a52-2c8e-4c53-9a59-0c1f7f0e2a11";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gcp")
}

/// A discovery document (`compute.v1.json`, `monitoring.v3.json`) out of the
/// google-api-python-client wheel named in the requirements file, downloaded with pip into the
/// target directory when missing.
fn load_doc(file: &str) -> Value {
    let requirements = fixtures().join("requirements.txt");
    let text = std::fs::read_to_string(&requirements).expect("requirements.txt");
    let key = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("novacron-gcp-discovery");
    std::fs::create_dir_all(&base).expect("tools dir");
    let dir = base.join(format!("{key:016x}"));
    let doc = dir.join(file);
    let lock = File::create(base.join(format!("{key:016x}.lock"))).expect("lock file");
    lock.lock().expect("lock");
    let python = std::env::var("NOVACRON_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let wheels = dir.join("wheels");
    if !doc.is_file() {
        let have_wheel = std::fs::read_dir(&wheels)
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "whl"))));
        if !have_wheel {
            let out = Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-input",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-d",
                ])
                .arg(&wheels)
                .arg("-r")
                .arg(&requirements)
                .output()
                .unwrap_or_else(|e| panic!("{python} -m pip: {e}"));
            assert!(out.status.success(), "pip download: {}", String::from_utf8_lossy(&out.stderr));
        }
        let script = "import glob, sys, zipfile\n\
            w = glob.glob(sys.argv[1] + '/google_api_python_client-*.whl')[0]\n\
            data = zipfile.ZipFile(w).read('googleapiclient/discovery_cache/documents/' + sys.argv[3])\n\
            open(sys.argv[2] + '.part', 'wb').write(data)\n";
        let out =
            Command::new(&python).args(["-c", script]).arg(&wheels).arg(&doc).arg(file).output().expect("python3");
        assert!(out.status.success(), "reading {file} out of the wheel: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::rename(dir.join(format!("{file}.part")), &doc).expect("rename");
    }
    let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Google's description of the Compute Engine API v1.
fn discovery() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| load_doc("compute.v1.json"))
}

/// Google's description of the Cloud Monitoring API v3.
fn monitoring() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| load_doc("monitoring.v3.json"))
}

/// Every method of a discovery document, by id (`instances.insert`, `projects.timeSeries.list`).
fn methods(doc: &'static Value) -> Vec<(String, &'static Value)> {
    fn walk(resources: &'static Value, prefix: &str, out: &mut Vec<(String, &'static Value)>) {
        for (name, r) in resources.as_object().into_iter().flatten() {
            let id = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            for (m, method) in r.get("methods").and_then(Value::as_object).into_iter().flatten() {
                out.push((format!("{id}.{m}"), method));
            }
            if let Some(sub) = r.get("resources") {
                walk(sub, &id, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&doc["resources"], "", &mut out);
    out
}

/// The document a path of the fake belongs to.
fn doc_for(path: &str) -> &'static Value {
    if path.starts_with("/v3/") { monitoring() } else { discovery() }
}

/// The discovery document's method for a call, with the problems found in it.
fn check_request(
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: Option<&Value>,
) -> (Option<String>, Vec<String>) {
    let d = doc_for(path);
    let service = format!("/{}", d["servicePath"].as_str().expect("servicePath"));
    let Some(rel) = path.strip_prefix(&service) else { return (None, vec![format!("{path}: not under {service}")]) };
    for (id, m) in methods(d) {
        let template = m.get("flatPath").or_else(|| m.get("path")).and_then(Value::as_str).unwrap_or("");
        if m["httpMethod"] != method.as_str() || !template_matches(template, rel) {
            continue;
        }
        let mut problems = Vec::new();
        let params = &m["parameters"];
        for (k, v) in query {
            match params.get(k).filter(|p| p["location"] == "query").or_else(|| d["parameters"].get(k)) {
                Some(p) => check_value(
                    d,
                    &json!(v),
                    &json!({"type": "string", "enum": p.get("enum")}),
                    &format!("{id}?{k}"),
                    &mut problems,
                ),
                None => problems.push(format!("{id}: query parameter {k} is not declared")),
            }
        }
        for (k, p) in params.as_object().into_iter().flatten() {
            if p["required"] == true && p["location"] == "query" && !query.contains_key(k) {
                problems.push(format!("{id}: required query parameter {k} missing"));
            }
        }
        match (m.get("request"), body) {
            (Some(r), Some(b)) => check_value(d, b, &json!({"$ref": r["$ref"]}), &id, &mut problems),
            (Some(_), None) => problems.push(format!("{id}: no request body")),
            (None, Some(b)) if !b.is_null() => problems.push(format!("{id}: takes no body")),
            _ => {}
        }
        return (Some(id), problems);
    }
    (None, vec![format!("{method} {path}: no method of {} has this path", d["id"])])
}

fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
}

/// Checks a JSON value against a schema of discovery document `doc`.
fn check_value(doc: &Value, v: &Value, schema: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return check_value(doc, v, &doc["schemas"][r], at, problems);
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    match (ty, v) {
        ("object", Value::Object(m)) => {
            for (k, x) in m {
                if let Some(p) = schema.get("properties").and_then(|p| p.get(k)) {
                    check_value(doc, x, p, &format!("{at}.{k}"), problems);
                } else if let Some(a) = schema.get("additionalProperties") {
                    check_value(doc, x, a, &format!("{at}[{k}]"), problems);
                } else {
                    problems.push(format!("{at}.{k}: no such field"));
                }
            }
        }
        ("array", Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                check_value(doc, x, &schema["items"], &format!("{at}[{i}]"), problems);
            }
        }
        ("string", Value::String(s)) => {
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                && !allowed.iter().any(|e| e == s)
            {
                problems.push(format!("{at} = {s:?}: not one of {allowed:?}"));
            }
            if schema.get("format").is_some_and(|f| f == "int64" || f == "uint64") && s.parse::<i128>().is_err() {
                problems.push(format!("{at} = {s:?}: not an integer"));
            }
        }
        ("boolean", Value::Bool(_)) | ("any", _) => {}
        ("integer" | "number", Value::Number(_)) => {}
        (_, Value::Null) => {}
        _ => problems.push(format!("{at}: {v} is not of type {ty}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The fake Compute Engine
// ---------------------------------------------------------------------------------------------

struct Op {
    body: Value,
    waits_left: u32,
    error: Option<(u16, String)>,
    finish: Option<(String, Value)>,
    removes: Option<String>,
}

#[derive(Default)]
struct Gce {
    instances: BTreeMap<String, Value>,
    ops: BTreeMap<String, Op>,
    request_ids: BTreeMap<String, String>,
    next: u64,
    token_requests: u32,
    tokens: Vec<String>,
    expires_in: u64,
    reject_token: bool,
    problems: Vec<String>,
    calls: Vec<String>,
    fail_next: VecDeque<(u16, &'static str)>,
    fail_next_operation: Option<String>,
    region_status: String,
    /// Cloud Monitoring has no points (a new instance).
    no_points: bool,
    base: String,
}

type Shared = Arc<Mutex<Gce>>;

fn google_error(status: u16, reason: &str, message: &str) -> Response {
    let st = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        _ => "INTERNAL",
    };
    let body = json!({"error": {"code": status, "message": message, "errors": [{"message": message, "domain": "global", "reason": reason}], "status": st}});
    (StatusCode::from_u16(status).expect("status"), [("content-type", "application/json")], body.to_string())
        .into_response()
}

fn reply(s: &mut Gce, id: &str, status: StatusCode, body: Value) -> Response {
    for doc in [discovery(), monitoring()] {
        if let Some((_, m)) = methods(doc).into_iter().find(|(i, _)| i == id)
            && let Some(r) = m.get("response")
        {
            check_value(doc, &body, &json!({"$ref": r["$ref"]}), &format!("answer of {id}"), &mut s.problems);
        }
    }
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body))).expect("form");
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn public_key() -> jsonwebtoken::DecodingKey {
    let pem = std::fs::read(fixtures().join("test-only-key.pub.pem")).expect("public key");
    jsonwebtoken::DecodingKey::from_rsa_pem(&pem).expect("RSA public key")
}

fn operation(s: &mut Gce, zone: &str, kind: &str, target: &str) -> Value {
    s.next += 1;
    let name = format!("operation-{}-{kind}", s.next);
    let zone_url = format!("{}/compute/v1/projects/{PROJECT}/zones/{zone}", s.base);
    json!({
        "kind": "compute#operation",
        "id": format!("{}", 7_000_000 + s.next),
        "name": name,
        "zone": zone_url,
        "operationType": kind,
        "targetLink": format!("{zone_url}/instances/{target}"),
        "status": "RUNNING",
        "progress": 0,
        "user": EMAIL,
        "insertTime": "2026-11-30T00:00:00.000-08:00",
        "startTime": "2026-11-30T00:00:00.100-08:00",
        "selfLink": format!("{zone_url}/operations/{name}"),
    })
}

async fn handle(
    state: axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut guard = state.0.lock().expect("lock");
    let s = &mut *guard;
    let path = uri.path().to_owned();
    let query = uri.query().map(|q| form(q.as_bytes())).unwrap_or_default();

    if path == "/token" {
        s.token_requests += 1;
        let f = form(&body);
        if f.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            s.problems.push(format!("token: grant_type {:?}", f.get("grant_type")));
        }
        let assertion = f.get("assertion").cloned().unwrap_or_default();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[format!("{}/token", s.base)]);
        validation.set_issuer(&[EMAIL]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
        match jsonwebtoken::decode::<Value>(&assertion, &public_key(), &validation) {
            Ok(data) => {
                if data.header.kid.as_deref() != Some(KEY_ID) {
                    s.problems.push(format!("token: kid {:?}", data.header.kid));
                }
                let c = &data.claims;
                let scopes: Vec<&str> = c["scope"].as_str().unwrap_or("").split(' ').collect();
                if !scopes.contains(&"https://www.googleapis.com/auth/compute")
                    || !scopes.contains(&"https://www.googleapis.com/auth/monitoring.read")
                {
                    s.problems.push(format!("token: scope {}", c["scope"]));
                }
                let lifetime = c["exp"].as_u64().unwrap_or(0).saturating_sub(c["iat"].as_u64().unwrap_or(0));
                if lifetime == 0 || lifetime > 3600 {
                    s.problems.push(format!("token: exp - iat = {lifetime} s, Google allows at most 3600"));
                }
            }
            Err(e) => s.problems.push(format!("token: the assertion does not verify: {e}")),
        }
        if s.reject_token {
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).to_string(),
            )
                .into_response();
        }
        let token = format!("ya29.test-{}", s.token_requests);
        s.tokens.push(token.clone());
        let expires_in = if s.expires_in == 0 { 3599 } else { s.expires_in };
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}).to_string(),
        )
            .into_response();
    }

    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if !s.tokens.iter().any(|t| t == bearer) {
        return google_error(401, "authError", "Request had invalid authentication credentials.");
    }
    let body_json: Option<Value> = if body.is_empty() { None } else { serde_json::from_slice(&body).ok() };
    let (id, problems) = check_request(&method, &path, &query, body_json.as_ref());
    s.problems.extend(problems);
    let Some(id) = id else { return google_error(404, "notFound", "The requested URL was not found on this server.") };
    s.calls.push(id.clone());
    if let Some((status, reason)) = s.fail_next.pop_front() {
        return google_error(status, reason, "scripted failure");
    }
    let parts: Vec<String> = path.trim_start_matches("/compute/v1/").split('/').map(str::to_owned).collect();
    let base = s.base.clone();
    match id.as_str() {
        "instances.insert" => {
            let zone = parts[3].clone();
            let mut inst = body_json.unwrap_or(Value::Null);
            let name = inst["name"].as_str().unwrap_or("").to_owned();
            if let Some(rid) = query.get("requestId") {
                if let Some(op) = s.request_ids.get(rid).and_then(|o| s.ops.get(o)) {
                    let body = op.body.clone();
                    return reply(s, &id, StatusCode::OK, body);
                }
            } else {
                s.problems.push("instances.insert without a requestId".into());
            }
            if s.instances.contains_key(&name) {
                return google_error(
                    409,
                    "alreadyExists",
                    &format!("The resource 'projects/{PROJECT}/zones/{zone}/instances/{name}' already exists"),
                );
            }
            let zone_url = format!("{base}/compute/v1/projects/{PROJECT}/zones/{zone}");
            inst["kind"] = json!("compute#instance");
            inst["id"] = json!(format!("{}", 5_000_000 + s.next));
            inst["zone"] = json!(zone_url);
            inst["selfLink"] = json!(format!("{zone_url}/instances/{name}"));
            inst["machineType"] =
                json!(format!("{base}/compute/v1/projects/{PROJECT}/{}", inst["machineType"].as_str().unwrap_or("")));
            inst["status"] = json!("PROVISIONING");
            inst["creationTimestamp"] = json!("2026-11-30T00:00:00.000-08:00");
            let op = operation(s, &zone, "insert", &name);
            let op_name = op["name"].as_str().expect("name").to_owned();
            if let Some(rid) = query.get("requestId") {
                s.request_ids.insert(rid.clone(), op_name.clone());
            }
            let error = s.fail_next_operation.take().map(|c| (503, c));
            let finish = if error.is_none() { Some((name.clone(), inst)) } else { None };
            s.ops.insert(op_name, Op { body: op.clone(), waits_left: 1, error, finish, removes: None });
            reply(s, &id, StatusCode::OK, op)
        }
        "zoneOperations.wait" | "zoneOperations.get" => {
            let name = parts[5].clone();
            let Some(op) = s.ops.get_mut(&name) else { return google_error(404, "notFound", "operation not found") };
            if op.waits_left > 0 {
                op.waits_left -= 1;
                let body = op.body.clone();
                return reply(s, &id, StatusCode::OK, body);
            }
            op.body["status"] = json!("DONE");
            op.body["progress"] = json!(100);
            op.body["endTime"] = json!("2026-11-30T00:00:30.000-08:00");
            if let Some((code, reason)) = &op.error {
                op.body["httpErrorStatusCode"] = json!(code);
                op.body["httpErrorMessage"] = json!("SERVICE UNAVAILABLE");
                op.body["error"] = json!({"errors": [{"code": reason, "message": format!("The zone '{}' does not have enough resources available to fulfill the request.", op.body["zone"].as_str().unwrap_or(""))}]});
            }
            let body = op.body.clone();
            let finish = op.finish.take();
            let removes = op.removes.take();
            if let Some((n, mut inst)) = finish {
                inst["status"] = json!("RUNNING");
                s.instances.insert(n, inst);
            }
            if let Some(n) = removes {
                s.instances.remove(&n);
            }
            reply(s, &id, StatusCode::OK, body)
        }
        "instances.get" => match s.instances.get(&parts[5]).cloned() {
            Some(i) => reply(s, &id, StatusCode::OK, i),
            None => google_error(
                404,
                "notFound",
                &format!("The resource 'projects/{PROJECT}/zones/{}/instances/{}' was not found", parts[3], parts[5]),
            ),
        },
        "instances.delete" => {
            let (zone, name) = (parts[3].clone(), parts[5].clone());
            if !s.instances.contains_key(&name) {
                return google_error(404, "notFound", "not found");
            }
            if !query.contains_key("requestId") {
                s.problems.push("instances.delete without a requestId".into());
            }
            let op = operation(s, &zone, "delete", &name);
            s.ops.insert(
                op["name"].as_str().expect("name").to_owned(),
                Op { body: op.clone(), waits_left: 1, error: None, finish: None, removes: Some(name) },
            );
            reply(s, &id, StatusCode::OK, op)
        }
        "instances.list" => {
            let zone = parts[3].clone();
            let filter = query.get("filter").cloned().unwrap_or_default();
            // `labels.KEY = "VALUE"`, the only form the provider uses.
            let wanted = filter
                .strip_prefix("labels.")
                .and_then(|r| r.split_once(" = "))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()));
            if wanted.is_none() {
                s.problems.push(format!("instances.list: filter {filter:?}"));
            }
            let zone_url = format!("{base}/compute/v1/projects/{PROJECT}/zones/{zone}");
            let matching: Vec<Value> = s
                .instances
                .values()
                .filter(|i| i["zone"] == zone_url.as_str())
                .filter(|i| wanted.as_ref().is_some_and(|(k, v)| i["labels"][k] == v.as_str()))
                .cloned()
                .collect();
            // One item a page, to exercise nextPageToken.
            let skip: usize = query.get("pageToken").and_then(|t| t.parse().ok()).unwrap_or(0);
            let mut page = json!({"kind": "compute#instanceList", "id": format!("projects/{PROJECT}/zones/{zone}/instances"), "items": matching.get(skip).cloned().into_iter().collect::<Vec<_>>(), "selfLink": format!("{zone_url}/instances")});
            if skip + 1 < matching.len() {
                page["nextPageToken"] = json!((skip + 1).to_string());
            }
            reply(s, &id, StatusCode::OK, page)
        }
        "regions.get" => {
            let status = if s.region_status.is_empty() { "UP".to_owned() } else { s.region_status.clone() };
            let body = json!({"kind": "compute#region", "id": "1000", "name": parts[3], "status": status, "zones": [format!("{base}/compute/v1/projects/{PROJECT}/zones/{}-a", parts[3])]});
            reply(s, &id, StatusCode::OK, body)
        }
        "projects.timeSeries.list" => {
            let filter = query.get("filter").cloned().unwrap_or_default();
            // `metric.type = "M" AND resource.labels.instance_id = "I"`, the form the provider uses.
            let quoted: Vec<&str> = filter.split('"').skip(1).step_by(2).collect();
            let (Some(metric), Some(instance_id)) = (quoted.first().copied(), quoted.get(1).copied()) else {
                s.problems.push(format!("timeSeries.list: filter {filter:?}"));
                return google_error(400, "badRequest", "filter");
            };
            if !filter.starts_with("metric.type = ") || !filter.contains(" AND resource.labels.instance_id = ") {
                s.problems.push(format!("timeSeries.list: filter {filter:?}"));
            }
            let (Some(start), Some(end)) = (query.get("interval.startTime"), query.get("interval.endTime")) else {
                s.problems.push("timeSeries.list without an interval".into());
                return google_error(400, "badRequest", "interval");
            };
            if !(start < end && start.ends_with('Z') && start.len() == 20) {
                s.problems.push(format!("timeSeries.list: interval {start}..{end}"));
            }
            let Some(inst) = s.instances.values().find(|i| i["id"] == instance_id).cloned() else {
                return reply(s, &id, StatusCode::OK, json!({}));
            };
            if s.no_points {
                return reply(s, &id, StatusCode::OK, json!({}));
            }
            let (kind, value_type, value) = match metric {
                "compute.googleapis.com/instance/cpu/utilization" => ("GAUGE", "DOUBLE", json!({"doubleValue": 0.25})),
                "compute.googleapis.com/instance/network/received_bytes_count" => {
                    ("DELTA", "INT64", json!({"int64Value": "1048576"}))
                }
                "compute.googleapis.com/instance/network/sent_bytes_count" => {
                    ("DELTA", "INT64", json!({"int64Value": "524288"}))
                }
                other => {
                    s.problems.push(format!("timeSeries.list: metric {other}"));
                    return google_error(400, "badRequest", "metric");
                }
            };
            let series = json!({
                "metric": {"type": metric, "labels": {"instance_name": inst["name"]}},
                "resource": {"type": "gce_instance", "labels": {"instance_id": instance_id, "zone": last(&inst["zone"]), "project_id": PROJECT}},
                "metricKind": kind,
                "valueType": value_type,
                "points": [{"interval": {"startTime": start, "endTime": end}, "value": value}],
            });
            reply(s, &id, StatusCode::OK, json!({"timeSeries": [series]}))
        }
        other => {
            s.problems.push(format!("unexpected method {other}"));
            google_error(400, "badRequest", "unexpected")
        }
    }
}

fn last(v: &Value) -> String {
    v.as_str().unwrap_or("").rsplit('/').next().unwrap_or("").to_owned()
}

pub(crate) struct Fake {
    base: String,
    state: Shared,
}

impl Fake {
    pub(crate) async fn start() -> Fake {
        // Load (and if needed download) the discovery document before serving.
        tokio::task::spawn_blocking(discovery).await.expect("discovery document");
        let state: Shared = Arc::default();
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        state.lock().expect("lock").base = base.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Fake { base, state }
    }

    fn s(&self) -> std::sync::MutexGuard<'_, Gce> {
        self.state.lock().expect("lock")
    }

    fn key_json(&self) -> Vec<u8> {
        let pem = std::fs::read_to_string(fixtures().join("test-only-key.pem")).expect("test key");
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": pem,
            "client_email": EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.base),
        })
        .to_string()
        .into_bytes()
    }

    pub(crate) fn config(&self) -> GcpConfig {
        let key = ServiceAccountKey::from_json(&self.key_json()).expect("key");
        let mut c = GcpConfig::new("gcp-us-central1", "us-central1", key);
        c.endpoint = format!("{}/compute/v1/", self.base);
        c.zones = vec!["us-central1-a".into(), "us-central1-b".into()];
        c.monitoring_endpoint = format!("{}/", self.base);
        c
    }

    pub(crate) fn provider(&self) -> GcpProvider {
        GcpProvider::new(self.config()).expect("provider")
    }

    fn assert_clean(&self) {
        let s = self.s();
        assert!(s.problems.is_empty(), "requests or answers compute.v1 does not allow: {:#?}", s.problems);
    }
}

fn request(token: &str, owner: &str, zone: &str, market: Market) -> CreateRequest {
    CreateRequest {
        client_token: token.into(),
        owner_uid: owner.into(),
        slot: 2,
        region: "gcp-us-central1".into(),
        zone: zone.into(),
        instance_type: "n2-standard-2".into(),
        market,
        tags: BTreeMap::from([("app.kubernetes.io/name".to_owned(), "Web".to_owned())]),
    }
}

#[tokio::test]
async fn the_key_comes_from_secret_data_and_never_shows() {
    let fake = Fake::start().await;
    let json = fake.key_json();
    let pem = std::fs::read_to_string(fixtures().join("test-only-key.pem")).expect("key");
    let secret_line = pem.lines().nth(1).expect("a base64 line").to_owned();
    let err = ServiceAccountKey::from_secret_data(&BTreeMap::new()).expect_err("missing").to_string();
    assert!(err.contains("key.json"), "{err}");
    let mut broken: Value = serde_json::from_slice(&json).expect("json");
    broken["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
    let err = ServiceAccountKey::from_json(broken.to_string().as_bytes()).expect_err("bad PEM").to_string();
    assert!(err.contains("private_key") && !err.contains("bm90IGEga2V5"), "{err}");
    let err = ServiceAccountKey::from_json(b"{\"private_key\": \"x\"").expect_err("not JSON").to_string();
    assert!(err.contains("key.json"), "{err}");
    let key = ServiceAccountKey::from_secret_data(&BTreeMap::from([("key.json".to_owned(), json)])).expect("key");
    let debug = format!("{key:?} {:?}", fake.provider());
    assert!(!debug.contains(&secret_line) && debug.contains("redacted"), "{debug}");
}

#[tokio::test]
async fn spot_insert_waits_for_its_operation_and_a_second_create_adopts_the_instance() {
    let fake = Fake::start().await;
    let p = fake.provider();
    let token = format!("{OWNER}-2-1");
    let vm = p.create(request(&token, OWNER, "a", Market::Spot)).await.expect("create");
    assert_eq!(vm.id, format!("us-central1-a/{}", instance_name(&token)));
    assert_eq!((vm.state, vm.market, vm.slot), (InstanceState::Running, Market::Spot, 2));
    assert_eq!(
        (vm.client_token.as_str(), vm.owner_uid.as_str(), vm.instance_type.as_str(), vm.zone.as_str()),
        (token.as_str(), OWNER, "n2-standard-2", "us-central1-a")
    );
    {
        let s = fake.s();
        let stored = &s.instances[&instance_name(&token)];
        assert_eq!(stored["scheduling"]["provisioningModel"], "SPOT");
        assert_eq!(stored["scheduling"]["instanceTerminationAction"], "DELETE");
        assert_eq!(stored["labels"]["app_kubernetes_io_name"], "web", "labels sanitised");
        assert_eq!(s.calls, ["instances.insert", "zoneOperations.wait", "zoneOperations.wait", "instances.get"]);
    }
    // The same request again (a retry, or an operator restart): Compute Engine sees the same
    // name and the same requestId and no second instance is made.
    let again = p.create(request(&token, OWNER, "a", Market::Spot)).await.expect("create again");
    assert_eq!(again.id, vm.id);
    assert_eq!(fake.s().instances.len(), 1);
    // Once the requestId has expired, the name still guards: `alreadyExists` is adopted.
    fake.s().request_ids.clear();
    let third = p.create(request(&token, OWNER, "a", Market::Spot)).await.expect("adopted");
    assert_eq!(third.id, vm.id);
    assert_eq!(fake.s().instances.len(), 1);
    assert_eq!(p.token_fetches(), 1, "one token for all of it");
    fake.assert_clean();
}

#[tokio::test]
async fn on_demand_get_list_and_delete() {
    let fake = Fake::start().await;
    let p = fake.provider();
    let a = p.create(request("tok-a", OWNER, "a", Market::OnDemand)).await.expect("create");
    let b = p.create(request("tok-b", OWNER, "us-central1-b", Market::OnDemand)).await.expect("create");
    p.create(request("tok-c", "someone-else", "a", Market::OnDemand)).await.expect("create");
    p.create(request("tok-d", OWNER, "a", Market::Spot)).await.expect("create");
    assert_eq!(fake.s().instances[&instance_name("tok-a")]["scheduling"]["provisioningModel"], "STANDARD");
    let got = p.get(&a.id).await.expect("get").expect("exists");
    assert_eq!((got.state, got.market), (InstanceState::Running, Market::OnDemand));
    let mut mine: Vec<String> = p.list(OWNER).await.expect("list").into_iter().map(|i| i.client_token).collect();
    mine.sort();
    assert_eq!(mine, ["tok-a", "tok-b", "tok-d"]);
    p.delete(&b.id).await.expect("delete");
    assert_eq!(p.get(&b.id).await.expect("get"), None);
    p.delete(&b.id).await.expect("a second delete of a gone instance succeeds");
    // A preempted spot VM (instanceTerminationAction STOP leaves it TERMINATED).
    fake.s().instances.get_mut(&instance_name("tok-d")).expect("d")["status"] = json!("TERMINATED");
    let d = p.get(&format!("us-central1-a/{}", instance_name("tok-d"))).await.expect("get").expect("exists");
    assert_eq!(d.state, InstanceState::Lost(FailureCause::Interrupted));
    assert!(p.get("no-zone-in-this-id").await.is_err(), "ids are <zone>/<name>");
    fake.assert_clean();
}

#[tokio::test]
async fn the_token_is_cached_until_shortly_before_it_expires() {
    let fake = Fake::start().await;
    let p = fake.provider();
    p.access_token().await.expect("token");
    p.access_token().await.expect("token");
    p.list(OWNER).await.expect("list");
    assert_eq!(p.token_fetches(), 1);
    assert_eq!(fake.s().token_requests, 1);
    // A token that expires within the renewal margin is fetched again on every use.
    let short = fake.provider();
    fake.s().expires_in = 30;
    let t1 = short.access_token().await.expect("token");
    let t2 = short.access_token().await.expect("token");
    assert_ne!(t1, t2);
    assert_eq!(short.token_fetches(), 2);
    fake.assert_clean();
}

#[tokio::test]
async fn errors_map_to_what_the_engine_needs() {
    let fake = Fake::start().await;
    let p = fake.provider();
    fake.s().fail_next.push_back((429, "rateLimitExceeded"));
    let e = p.create(request("t1", OWNER, "a", Market::Spot)).await.expect_err("throttled");
    assert!(matches!(e, ProviderError::Throttled(_)), "{e:?}");
    fake.s().fail_next.push_back((403, "rateLimitExceeded"));
    let e = p.list(OWNER).await.expect_err("throttled with a 403");
    assert!(matches!(e, ProviderError::Throttled(_)), "{e:?}");
    fake.s().fail_next_operation = Some("ZONE_RESOURCE_POOL_EXHAUSTED".into());
    let e = p.create(request("t2", OWNER, "a", Market::Spot)).await.expect_err("no capacity");
    assert!(
        matches!(&e, ProviderError::InsufficientCapacity(m) if m.contains("ZONE_RESOURCE_POOL_EXHAUSTED")),
        "{e:?}"
    );
    fake.s().fail_next.push_back((403, "forbidden"));
    let e = p.get("us-central1-a/x").await.expect_err("forbidden");
    assert!(matches!(e, ProviderError::Auth(_)), "{e:?}");
    fake.s().fail_next.push_back((500, "backendError"));
    let e = p.delete("us-central1-a/x").await.expect_err("server error");
    assert!(matches!(e, ProviderError::Api(_)), "{e:?}");
    fake.assert_clean();
}

#[tokio::test]
async fn metrics_come_from_cloud_monitoring() {
    let fake = Fake::start().await;
    let p = fake.provider();
    let vm = p.create(request("tok-m", OWNER, "a", Market::OnDemand)).await.expect("create");
    let m = p.metrics(&vm.id).await.expect("metrics");
    assert_eq!(m.cpu_percent, Some(25.0), "utilisation 0.25 is 25 %");
    assert_eq!((m.network_in_bytes, m.network_out_bytes, m.window_s), (Some(1_048_576.0), Some(524_288.0), 600));
    fake.s().no_points = true;
    let empty = p.metrics(&vm.id).await.expect("metrics");
    assert_eq!((empty.cpu_percent, empty.network_in_bytes, empty.network_out_bytes), (None, None, None));
    assert!(p.metrics("us-central1-a/nc-none").await.is_err(), "no such instance");
    fake.assert_clean();
}

#[test]
fn timestamps_are_rfc3339() {
    use operator::provider::gcp::rfc3339;
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_795_996_800), "2026-11-30T00:00:00Z");
    assert_eq!(rfc3339(951_782_400 + 86_399), "2000-02-29T23:59:59Z");
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error() {
    let fake = Fake::start().await;
    fake.s().reject_token = true;
    let p = fake.provider();
    let e = p.list(OWNER).await.expect_err("refused");
    assert!(matches!(&e, ProviderError::Auth(m) if m.contains(EMAIL) && m.contains("invalid_grant")), "{e:?}");
}

#[tokio::test]
async fn a_region_that_is_down_is_reported() {
    let fake = Fake::start().await;
    let p = fake.provider();
    assert!(p.unhealthy_regions().await.expect("regions").is_empty());
    fake.s().region_status = "DOWN".into();
    assert_eq!(p.unhealthy_regions().await.expect("regions"), ["gcp-us-central1"]);
    fake.assert_clean();
}

#[test]
fn the_discovery_check_catches_misspelt_fields_values_and_parameters() {
    let path = format!("/compute/v1/projects/{PROJECT}/zones/us-central1-a/instances");
    let q = BTreeMap::from([("requestId".to_owned(), "x".to_owned())]);
    let good = json!({"name": "n", "machineType": "zones/us-central1-a/machineTypes/e2-small", "labels": {"any": "v"},
        "scheduling": {"provisioningModel": "SPOT", "instanceTerminationAction": "DELETE"},
        "disks": [{"boot": true, "initializeParams": {"diskSizeGb": "20"}}]});
    let (id, problems) = check_request(&Method::POST, &path, &q, Some(&good));
    assert_eq!((id.as_deref(), problems.len()), (Some("instances.insert"), 0), "{problems:?}");
    let bad = json!({"name": "n", "sheduling": {}, "scheduling": {"provisioningModel": "CHEAP"}, "disks": [{"initializeParams": {"diskSizeGb": 20}}]});
    let (_, problems) = check_request(&Method::POST, &path, &q, Some(&bad));
    assert_eq!(problems.len(), 3, "{problems:?}");
    let (_, problems) =
        check_request(&Method::POST, &path, &BTreeMap::from([("requestID".to_owned(), "x".to_owned())]), Some(&good));
    assert_eq!(problems.len(), 1, "{problems:?}");
    let (id, _) = check_request(&Method::PUT, &path, &q, Some(&good));
    assert_eq!(id, None, "no PUT on the instances collection");
}

#[test]
fn names_labels_and_request_ids() {
    assert_eq!(instance_name("Abc_1/2"), "nc-abc-1-2");
    let long = instance_name(&"x".repeat(100));
    assert!(long.len() <= 63 && !long.ends_with('-'), "{long}");
    assert_eq!(label_value("Hello World/ÄÖ"), "hello_world___");
    assert_eq!(label_value(&"a".repeat(80)).len(), 63);
    assert_eq!(label_key("9lives"), "k9lives");
    let r = request_id("insert", "tok");
    assert_eq!(r, request_id("insert", "tok"), "deterministic");
    assert_ne!(r, request_id("insert", "tok2"));
    assert_ne!(r, request_id("delete", "tok"));
    let groups: Vec<usize> = r.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{r}");
    assert_eq!(&r[14..15], "8", "version 8: {r}");
    assert!(matches!(&r[19..20], "8" | "9" | "a" | "b"), "RFC 9562 variant: {r}");
}
