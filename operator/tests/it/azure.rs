//! The Azure provider against a local server that answers as Azure Resource Manager and the
//! Microsoft Entra token endpoint do.
//!
//! The fake is built from Azure's published API examples (`tests/fixtures/azure/`, from the
//! MIT-licensed `Azure/azure-rest-api-specs`), not from our client: resources it returns are the
//! examples' bodies with the request's own fields laid over them (as ARM stores what was PUT),
//! instance views are the example's, and every request the client sends is checked — method,
//! path, `api-version`, bearer token, and each field of a PUT body against the fields the
//! published examples use for a virtual machine, so a misspelt or invented field fails the
//! test. Long-running operations answer `Azure-AsyncOperation` (`InProgress`, then `Succeeded`
//! or `Failed` with an ARM error) and `Location` (`202`, then `200`) as ARM documents them. The
//! token endpoint checks the client-credentials form.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use engine::{FailureCause, Market};
use operator::provider::azure::{AzureConfig, AzureCredentials, AzureProvider, EvictionPolicy, vm_name};
use operator::provider::{CloudProvider, CreateRequest, InstanceState, OfferInfo, ProviderError};
use serde_json::{Value, json};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "5f2c0d7e-1111-4222-8333-944455556666";
const SECRET: &str = "s3cr3t-value-that-must-never-leak";
const SUBSCRIPTION: &str = "00000000-1111-2222-3333-444444444444";
const RG: &str = "novacron-rg";
const SUBNET: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/novacron-rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default";
const OWNER: &str = "3f1b7a52-2c8e-4c53-9a59-0c1f7f0e2a11";

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/azure").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every field path of a JSON value (`properties.osProfile.computerName`, arrays as `[]`), and
/// the paths of objects whose keys are free (tags).
fn field_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.insert(p.clone());
                if p != "tags" {
                    field_paths(x, &p, out);
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                field_paths(x, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// The fields ARM's examples use for a virtual machine: the create examples' request bodies and
/// the maximal VM of the list example.
fn known_vm_fields() -> BTreeSet<String> {
    let mut known = BTreeSet::new();
    let create = fixture("VirtualMachine_Create_WithSshAuthentication.json");
    field_paths(&create["parameters"]["parameters"], "", &mut known);
    let max = fixture("VirtualMachine_List_MaximumSet_Gen.excerpt.json");
    field_paths(&max["responses"]["200"]["body"]["value"][0], "", &mut known);
    known
}

/// The fields of `body` that no published example has.
fn unknown_fields(body: &Value, known: &BTreeSet<String>) -> Vec<String> {
    let mut paths = BTreeSet::new();
    field_paths(body, "", &mut paths);
    paths.into_iter().filter(|p| !known.contains(p)).collect()
}

/// Values the 2024-07-01 swagger (`virtualMachine.json`, `computeRPCommon.json`) allows.
fn enum_problems(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let check = |path: &str, allowed: &[&str], out: &mut Vec<String>| {
        if let Some(v) = body.pointer(path)
            && !v.as_str().is_some_and(|s| allowed.contains(&s))
        {
            out.push(format!("{path} = {v}, allowed {allowed:?}"));
        }
    };
    check("/properties/priority", &["Regular", "Low", "Spot"], &mut out);
    check("/properties/evictionPolicy", &["Deallocate", "Delete"], &mut out);
    check(
        "/properties/storageProfile/osDisk/createOption",
        &["FromImage", "Empty", "Attach", "Copy", "Restore"],
        &mut out,
    );
    check("/properties/storageProfile/osDisk/deleteOption", &["Delete", "Detach"], &mut out);
    check("/properties/networkProfile/networkApiVersion", &["2020-11-01", "2022-11-01"], &mut out);
    if let Some(p) = body.pointer("/properties/billingProfile/maxPrice")
        && !p.is_number()
    {
        out.push(format!("billingProfile.maxPrice = {p}, a number"));
    }
    out
}

/// One long-running operation: `InProgress` answers left, then the outcome.
struct Operation {
    polls_left: u32,
    outcome: Result<(), (String, String)>,
    /// VM to remove when a delete finishes.
    deletes: Option<String>,
}

#[derive(Default)]
struct Arm {
    vms: BTreeMap<String, Value>,
    power: BTreeMap<String, String>,
    operations: BTreeMap<String, Operation>,
    next_op: u64,
    tokens_issued: Vec<String>,
    token_requests: u32,
    problems: Vec<String>,
    requests: Vec<String>,
    /// The next ARM calls answer these (status, error code) instead.
    fail_next: VecDeque<(u16, String)>,
    /// The next create's operation fails with this code.
    fail_next_operation: Option<String>,
    in_progress_polls: u32,
    /// Azure Monitor has no data points yet.
    no_metric_data: bool,
    /// Pages of Resource Health events (none: an empty list).
    health_events: Vec<Value>,
    puts: u32,
}

type Shared = Arc<Mutex<Arm>>;

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, [("content-type", "application/json")], json!({"error": {"code": code, "message": message}}).to_string())
        .into_response()
}

fn ok_json(status: StatusCode, body: &Value, headers: &[(&'static str, String)]) -> Response {
    let text = if body.is_null() { String::new() } else { body.to_string() };
    let mut resp = (status, [("content-type", "application/json")], text).into_response();
    for (k, v) in headers {
        resp.headers_mut().insert(*k, HeaderValue::from_str(v).expect("header"));
    }
    resp
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body))).expect("form");
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Lays `over` onto `base`, objects key by key.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(x) if x.is_object() && v.is_object() => merge(x, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

async fn handle(
    state: axum::extract::State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let base = format!("http://{}", headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1"));
    let mut guard = state.0.lock().expect("lock");
    let s = &mut *guard;
    let path = uri.path().to_owned();
    let query: BTreeMap<String, String> = uri.query().map(|q| form(q.as_bytes())).unwrap_or_default();
    s.requests.push(format!("{method} {path}"));

    // Microsoft Entra ID: the client-credentials grant.
    if path == format!("/{TENANT}/oauth2/v2.0/token") {
        s.token_requests += 1;
        let f = form(&body);
        let want = [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("scope", "https://management.azure.com/.default"),
        ];
        for (k, v) in want {
            if f.get(k).map(String::as_str) != Some(v) {
                s.problems.push(format!("token request: {k} = {:?}, want {v:?}", f.get(k)));
            }
        }
        if method != Method::POST {
            s.problems.push(format!("token request with {method}"));
        }
        if f.get("client_secret").map(String::as_str) != Some(SECRET) {
            return (
                StatusCode::UNAUTHORIZED,
                [("content-type", "application/json")],
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}).to_string(),
            )
                .into_response();
        }
        let token = format!("arm-token-{}", s.token_requests);
        s.tokens_issued.push(token.clone());
        return ok_json(
            StatusCode::OK,
            &json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
            &[],
        );
    }

    // ARM: every call carries an issued token and the api-version.
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if !s.tokens_issued.iter().any(|t| t == bearer) {
        return arm_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "The access token is invalid.");
    }
    let metrics_call = path.ends_with("/providers/Microsoft.Insights/metrics");
    let health_path = format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ResourceHealth/events");
    let api_version = if metrics_call {
        "2023-10-01"
    } else if path == health_path {
        "2024-02-01"
    } else {
        "2024-07-01"
    };
    if query.get("api-version").map(String::as_str) != Some(api_version) {
        s.problems.push(format!("{method} {path}: api-version {:?}", query.get("api-version")));
        return arm_error(StatusCode::BAD_REQUEST, "InvalidApiVersionParameter", "The api-version is invalid.");
    }
    if let Some((status, code)) = s.fail_next.pop_front() {
        let mut r = arm_error(StatusCode::from_u16(status).expect("status"), &code, "scripted failure");
        if status == 429 {
            r.headers_mut().insert("retry-after", HeaderValue::from_static("17"));
        }
        return r;
    }

    // Operation status documents and Location polls.
    if let Some(id) = path.strip_prefix(&format!(
        "/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/eastus/operations/"
    )) {
        let location_poll = query.contains_key("monitor");
        let Some(op) = s.operations.get_mut(id) else {
            return arm_error(StatusCode::NOT_FOUND, "NotFound", "no such operation");
        };
        if method != Method::GET {
            s.problems.push(format!("{method} on an operation"));
        }
        if op.polls_left > 0 {
            op.polls_left -= 1;
            s.in_progress_polls += 1;
            let headers = [("retry-after", "0".to_owned())];
            return if location_poll {
                ok_json(StatusCode::ACCEPTED, &Value::Null, &headers)
            } else {
                ok_json(
                    StatusCode::OK,
                    &json!({"name": id, "status": "InProgress", "startTime": "2026-11-30T00:00:00Z"}),
                    &headers,
                )
            };
        }
        let op = s.operations.remove(id).expect("operation");
        if let Some(vm) = &op.deletes {
            s.vms.remove(vm);
        }
        return match op.outcome {
            Ok(()) if location_poll => ok_json(StatusCode::OK, &Value::Null, &[]),
            Ok(()) => ok_json(
                StatusCode::OK,
                &json!({"name": id, "status": "Succeeded", "startTime": "2026-11-30T00:00:00Z", "endTime": "2026-11-30T00:01:00Z"}),
                &[],
            ),
            Err((code, message)) => ok_json(
                StatusCode::OK,
                &json!({"name": id, "status": "Failed", "startTime": "2026-11-30T00:00:00Z", "endTime": "2026-11-30T00:01:00Z", "error": {"code": code, "message": message}}),
                &[],
            ),
        };
    }

    // Resource Health: the subscription's service health events, a page at a time.
    if path == health_path {
        if method != Method::GET {
            s.problems.push(format!("{method} on service health events"));
        }
        if query.get("$filter").map(String::as_str) != Some("service eq 'Virtual Machines'") {
            s.problems.push(format!("service health events: $filter = {:?}", query.get("$filter")));
        }
        let skip: usize = query.get("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
        let mut page = s.health_events.get(skip).cloned().unwrap_or_else(|| json!({"value": []}));
        match page.as_object_mut() {
            Some(p) if skip + 1 < s.health_events.len() => {
                p.insert(
                    "nextLink".into(),
                    // As ARM does, the link repeats the query.
                    json!(format!(
                        "{base}{health_path}?api-version=2024-02-01&$filter=service%20eq%20%27Virtual%20Machines%27&$skiptoken={}",
                        skip + 1
                    )),
                );
            }
            Some(p) => {
                p.remove("nextLink");
            }
            None => {}
        }
        return ok_json(StatusCode::OK, &page, &[]);
    }

    let vms_prefix =
        format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines");
    let Some(rest) = path.strip_prefix(&vms_prefix) else {
        s.problems.push(format!("unexpected path {method} {path}"));
        return arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", "no such resource type");
    };
    let rest = rest.trim_start_matches('/');
    if rest.is_empty() {
        if method != Method::GET {
            s.problems.push(format!("{method} on the VM collection"));
        }
        // One VM a page, to exercise nextLink.
        let names: Vec<String> = s.vms.keys().cloned().collect();
        let skip: usize = query.get("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
        let mut page = json!({"value": names.get(skip).map(|n| vec![s.vms[n].clone()]).unwrap_or_default()});
        if skip + 1 < names.len() {
            page["nextLink"] = json!(format!("{base}{vms_prefix}?api-version=2024-07-01&$skiptoken={}", skip + 1));
        }
        return ok_json(StatusCode::OK, &page, &[]);
    }
    let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let name = name.to_owned();
    match (method.clone(), sub) {
        (Method::PUT, "") => {
            s.puts += 1;
            let request: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    s.problems.push(format!("PUT {name}: body is not JSON: {e}"));
                    return arm_error(StatusCode::BAD_REQUEST, "InvalidRequestContent", "not JSON");
                }
            };
            let unknown = unknown_fields(&request, &known_vm_fields());
            let mut enums = enum_problems(&request);
            // ARM refuses these characters in tag names (InvalidTagNameCharacters).
            for k in request["tags"].as_object().into_iter().flatten().map(|(k, _)| k) {
                if k.contains(['<', '>', '%', '&', '\\', '?', '/']) {
                    enums.push(format!("tag name {k:?} has a character ARM refuses"));
                }
            }
            if !unknown.is_empty() || !enums.is_empty() {
                s.problems.push(format!("PUT {name}: unknown fields {unknown:?}, bad values {enums:?}"));
                return arm_error(StatusCode::BAD_REQUEST, "InvalidRequestContent", "Could not find member");
            }
            for required in [
                "/location",
                "/properties/hardwareProfile/vmSize",
                "/properties/osProfile/computerName",
                "/properties/osProfile/adminUsername",
                "/properties/storageProfile/osDisk/createOption",
            ] {
                if request.pointer(required).is_none() {
                    s.problems.push(format!("PUT {name}: {required} missing"));
                }
            }
            let example = fixture("VirtualMachine_Create_WithSshAuthentication.json");
            let existed = s.vms.contains_key(&name);
            let code = if existed { "200" } else { "201" };
            let mut vm = example["responses"][code]["body"].clone();
            merge(&mut vm, &request);
            vm["name"] = json!(name);
            vm["id"] = json!(format!("{vms_prefix}/{name}"));
            vm["properties"]["provisioningState"] = json!("Creating");
            s.next_op += 1;
            let op_id = format!("op-{}", s.next_op);
            let failure = s.fail_next_operation.take();
            if failure.is_none() {
                let mut stored = vm.clone();
                stored["properties"]["provisioningState"] = json!("Succeeded");
                s.vms.insert(name.clone(), stored);
            }
            let outcome = match failure {
                Some(code) => Err((code, "Allocation failed. Please try another size or zone.".to_owned())),
                None => Ok(()),
            };
            s.operations.insert(op_id.clone(), Operation { polls_left: 2, outcome, deletes: None });
            let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
            let async_url = format!(
                "{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/eastus/operations/{op_id}?api-version=2024-07-01"
            );
            ok_json(status, &vm, &[("azure-asyncoperation", async_url), ("retry-after", "0".into())])
        }
        (Method::GET, "") => match s.vms.get(&name) {
            Some(vm) => ok_json(StatusCode::OK, vm, &[]),
            None => arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                "The Resource 'Microsoft.Compute/virtualMachines' was not found.",
            ),
        },
        (Method::GET, "instanceView") => {
            if !s.vms.contains_key(&name) {
                return arm_error(StatusCode::NOT_FOUND, "ResourceNotFound", "not found");
            }
            let mut view = fixture("VirtualMachine_Get_InstanceView.json")["responses"]["200"]["body"].clone();
            view["computerName"] = json!(name);
            if let Some(power) = s.power.get(&name) {
                view["statuses"][1] = json!({"code": power, "level": "Info", "displayStatus": power});
            }
            ok_json(StatusCode::OK, &view, &[])
        }
        (Method::GET, "providers/Microsoft.Insights/metrics") => {
            if !s.vms.contains_key(&name) {
                return arm_error(StatusCode::NOT_FOUND, "ResourceNotFound", "not found");
            }
            let example = fixture("GetMetric.json");
            // Query parameters: those of the published example (the metrics API's own).
            let declared: BTreeSet<&str> = example["parameters"]
                .as_object()
                .expect("parameters")
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "resourceUri")
                .collect();
            for k in query.keys() {
                if !declared.contains(k.as_str()) {
                    s.problems.push(format!("metrics: query parameter {k} is not the API's"));
                }
            }
            if query.get("metricnamespace").map(String::as_str) != Some("Microsoft.Compute/virtualMachines") {
                s.problems.push(format!("metrics: namespace {:?}", query.get("metricnamespace")));
            }
            let aggregations: Vec<String> = query
                .get("aggregation")
                .map(|a| a.split(',').map(|x| x.trim().to_ascii_lowercase()).collect())
                .unwrap_or_default();
            if aggregations.iter().any(|a| !["average", "minimum", "maximum", "total", "count"].contains(&a.as_str())) {
                s.problems.push(format!("metrics: aggregation {aggregations:?}"));
            }
            let timespan = query.get("timespan").cloned().unwrap_or_default();
            let Some((start, end)) =
                timespan.split_once('/').filter(|(a, b)| a < b && a.ends_with('Z') && b.ends_with('Z'))
            else {
                s.problems.push(format!("metrics: timespan {timespan:?}"));
                return arm_error(StatusCode::BAD_REQUEST, "BadRequest", "timespan");
            };
            let (start, end) = (start.to_owned(), end.to_owned());
            let names: Vec<String> =
                query.get("metricnames").map(|m| m.split(',').map(str::to_owned).collect()).unwrap_or_default();
            let template = example["responses"]["200"]["body"]["value"][0].clone();
            let mut value = Vec::new();
            for metric in &names {
                // Two 5-minute points; the VM metrics Azure documents for Microsoft.Compute/virtualMachines.
                let (unit, points) = match metric.as_str() {
                    "Percentage CPU" => ("Percent", [json!({"average": 20.0}), json!({"average": 30.0})]),
                    "Network In Total" => ("Bytes", [json!({"total": 1000.0}), json!({"total": 3000.0})]),
                    "Network Out Total" => ("Bytes", [json!({"total": 500.0}), json!({"total": 500.0})]),
                    other => {
                        s.problems.push(format!("metrics: {other} is not a VM metric"));
                        continue;
                    }
                };
                let mut m = template.clone();
                m["id"] = json!(format!("{vms_prefix}/{name}/providers/Microsoft.Insights/metrics/{metric}"));
                m["name"] = json!({"value": metric, "localizedValue": metric});
                m["unit"] = json!(unit);
                m["displayDescription"] = json!(metric);
                let data: Vec<Value> = points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let mut d = json!({"timeStamp": if i == 0 { start.clone() } else { end.clone() }});
                        if !s.no_metric_data {
                            merge(&mut d, p);
                        }
                        d
                    })
                    .collect();
                m["timeseries"] = json!([{"metadatavalues": [], "data": data}]);
                value.push(m);
            }
            let mut body = example["responses"]["200"]["body"].clone();
            body["timespan"] = json!(timespan);
            body["interval"] = json!(query.get("interval").cloned().unwrap_or_default());
            body["value"] = json!(value);
            body["namespace"] = json!("Microsoft.Compute/virtualMachines");
            body["resourceregion"] = json!("eastus");
            ok_json(StatusCode::OK, &body, &[])
        }
        (Method::DELETE, "") => {
            if !s.vms.contains_key(&name) {
                return ok_json(StatusCode::NO_CONTENT, &Value::Null, &[]);
            }
            s.next_op += 1;
            let op_id = format!("op-{}", s.next_op);
            s.operations.insert(op_id.clone(), Operation { polls_left: 1, outcome: Ok(()), deletes: Some(name) });
            let location = format!(
                "{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/eastus/operations/{op_id}?monitor=true&api-version=2024-07-01"
            );
            ok_json(StatusCode::ACCEPTED, &Value::Null, &[("location", location), ("retry-after", "0".into())])
        }
        _ => {
            s.problems.push(format!("unexpected call {method} {path}"));
            arm_error(StatusCode::METHOD_NOT_ALLOWED, "UnsupportedOperation", "no such operation")
        }
    }
}

pub(crate) struct Fake {
    base: String,
    state: Shared,
}

impl Fake {
    pub(crate) async fn start() -> Fake {
        let state: Shared = Arc::default();
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Fake { base, state }
    }

    fn s(&self) -> std::sync::MutexGuard<'_, Arm> {
        self.state.lock().expect("lock")
    }

    fn config(&self, secret: &str) -> AzureConfig {
        let credentials = AzureCredentials {
            tenant_id: TENANT.into(),
            client_id: CLIENT_ID.into(),
            client_secret: secret.into(),
            subscription_id: SUBSCRIPTION.into(),
        };
        let mut c = AzureConfig::new(
            "azure-eastus",
            "eastus",
            RG,
            SUBNET,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3c novacron@test",
            credentials,
        );
        c.arm_endpoint = self.base.clone();
        c.authority_host = self.base.clone();
        c.poll_interval = Duration::from_millis(1);
        c.max_polls = 20;
        c.eviction_policy = EvictionPolicy::Delete;
        c.spot_max_price = 0.05;
        c.catalog.offers.push(OfferInfo {
            region: "azure-eastus".into(),
            zone: "1".into(),
            instance_type: "Standard_D2s_v5".into(),
            on_demand_per_h: 0.096,
            spot_per_h: Some(0.0192),
            capacity: 10,
        });
        c
    }

    pub(crate) fn provider(&self) -> AzureProvider {
        AzureProvider::new(self.config(SECRET)).expect("provider")
    }

    fn assert_clean(&self) {
        let s = self.s();
        assert!(s.problems.is_empty(), "requests the real API would refuse: {:#?}", s.problems);
    }
}

fn request(token: &str, owner: &str, slot: u32, market: Market) -> CreateRequest {
    CreateRequest {
        client_token: token.into(),
        owner_uid: owner.into(),
        slot,
        region: "azure-eastus".into(),
        zone: "1".into(),
        instance_type: "Standard_D2s_v5".into(),
        market,
        tags: BTreeMap::from([
            ("app".to_owned(), "web".to_owned()),
            ("app.kubernetes.io/name".to_owned(), "shop".to_owned()),
        ]),
    }
}

#[test]
fn credentials_come_from_secret_data_and_never_show() {
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::from([
        ("AZURE_TENANT_ID".to_owned(), TENANT.as_bytes().to_vec()),
        ("AZURE_CLIENT_SECRET".to_owned(), SECRET.as_bytes().to_vec()),
    ]);
    let err = AzureCredentials::from_secret_data(&data).expect_err("two keys missing").to_string();
    assert!(err.contains("AZURE_CLIENT_ID") && err.contains("AZURE_SUBSCRIPTION_ID"), "{err}");
    assert!(!err.contains(SECRET) && !err.contains(TENANT), "{err}");
    data.insert("AZURE_CLIENT_ID".into(), b"  ".to_vec());
    data.insert("AZURE_SUBSCRIPTION_ID".into(), SUBSCRIPTION.as_bytes().to_vec());
    let err = AzureCredentials::from_secret_data(&data).expect_err("empty client id").to_string();
    assert!(err.contains("AZURE_CLIENT_ID") && err.contains("empty"), "{err}");
    data.insert("AZURE_CLIENT_ID".into(), vec![0xff, 0xfe]);
    let err = AzureCredentials::from_secret_data(&data).expect_err("not UTF-8").to_string();
    assert!(err.contains("AZURE_CLIENT_ID") && err.contains("UTF-8"), "{err}");
    data.insert("AZURE_CLIENT_ID".into(), format!("{CLIENT_ID}\n").into_bytes());
    let creds = AzureCredentials::from_secret_data(&data).expect("complete");
    assert_eq!(creds.client_id, CLIENT_ID, "trimmed");
    assert_eq!(creds.client_secret, SECRET);
    let debug = format!("{creds:?}");
    assert!(!debug.contains(SECRET) && debug.contains("redacted"), "{debug}");
}

#[tokio::test]
async fn provider_debug_hides_the_secret() {
    let fake = Fake::start().await;
    let debug = format!("{:?}", fake.provider());
    assert!(!debug.contains(SECRET), "{debug}");
}

#[tokio::test]
async fn spot_create_polls_the_async_operation_and_a_second_create_is_the_same_vm() {
    let fake = Fake::start().await;
    let p = fake.provider();
    let token = format!("{OWNER}-0-1");
    let vm = p.create(request(&token, OWNER, 0, Market::Spot)).await.expect("create");
    assert_eq!(vm.id, vm_name(&token));
    assert_eq!(vm.id, format!("nc-{OWNER}-0-1"));
    assert_eq!(vm.state, InstanceState::Running, "the instance view says PowerState/running");
    assert_eq!((vm.market, vm.slot, vm.owner_uid.as_str(), vm.zone.as_str()), (Market::Spot, 0, OWNER, "1"));
    assert_eq!(fake.s().in_progress_polls, 2, "InProgress twice, then Succeeded");
    {
        let s = fake.s();
        let stored = &s.vms[&vm.id];
        assert_eq!(stored["properties"]["priority"], "Spot");
        assert_eq!(stored["properties"]["evictionPolicy"], "Delete");
        assert_eq!(stored["properties"]["billingProfile"]["maxPrice"], 0.05);
        assert_eq!(stored["properties"]["hardwareProfile"]["vmSize"], "Standard_D2s_v5");
        assert_eq!(stored["zones"], json!(["1"]));
        assert_eq!(stored["tags"]["novacron-owner"], OWNER);
        assert_eq!(stored["tags"]["novacron-client-token"], token.as_str());
        assert_eq!(stored["tags"]["app"], "web");
        assert_eq!(stored["tags"]["app.kubernetes.io_name"], "shop", "ARM refuses '/' in tag names");
    }
    // A retry after a timeout: the VM named after the token is found and returned, with no
    // second PUT (which would rewrite it) and no second VM.
    let again = p.create(request(&token, OWNER, 0, Market::Spot)).await.expect("create again");
    assert_eq!(again.id, vm.id);
    assert_eq!(fake.s().puts, 1);
    assert_eq!(fake.s().vms.len(), 1, "one VM");
    assert_eq!(fake.s().token_requests, 1, "the token is cached");
    fake.assert_clean();
}

#[tokio::test]
async fn on_demand_create_has_no_spot_fields() {
    let fake = Fake::start().await;
    let p = fake.provider();
    let vm = p.create(request("tok-od", OWNER, 1, Market::OnDemand)).await.expect("create");
    assert_eq!(vm.market, Market::OnDemand);
    let s = fake.s();
    let stored = &s.vms[&vm.id];
    assert!(stored["properties"].get("billingProfile").is_none());
    assert_eq!(stored["properties"]["priority"], Value::Null);
    drop(s);
    fake.assert_clean();
}

#[tokio::test]
async fn get_reads_the_instance_view_and_an_evicted_spot_vm_is_lost() {
    let fake = Fake::start().await;
    let p = fake.provider();
    let spot = p.create(request("tok-spot", OWNER, 0, Market::Spot)).await.expect("create");
    let od = p.create(request("tok-od", OWNER, 1, Market::OnDemand)).await.expect("create");
    let got = p.get(&spot.id).await.expect("get").expect("exists");
    assert_eq!(
        (got.state, got.client_token.as_str(), got.instance_type.as_str()),
        (InstanceState::Running, "tok-spot", "Standard_D2s_v5")
    );
    fake.s().power.insert(spot.id.clone(), "PowerState/deallocated".into());
    fake.s().power.insert(od.id.clone(), "PowerState/starting".into());
    assert_eq!(
        p.get(&spot.id).await.expect("get").expect("exists").state,
        InstanceState::Lost(FailureCause::Interrupted)
    );
    assert_eq!(p.get(&od.id).await.expect("get").expect("exists").state, InstanceState::Pending);
    assert_eq!(p.get("nc-never-made").await.expect("get"), None);
    fake.assert_clean();
}

#[tokio::test]
async fn list_finds_the_owners_vms_across_pages() {
    let fake = Fake::start().await;
    let p = fake.provider();
    for (i, owner) in [OWNER, "other-owner", OWNER].iter().enumerate() {
        p.create(request(&format!("tok-{i}"), owner, i as u32, Market::OnDemand)).await.expect("create");
    }
    let mut mine = p.list(OWNER).await.expect("list");
    mine.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(mine.iter().map(|i| i.client_token.as_str()).collect::<Vec<_>>(), ["tok-0", "tok-2"]);
    assert!(
        mine.iter().all(|i| i.owner_uid == OWNER && i.region == "azure-eastus" && i.state == InstanceState::Running)
    );
    let pages = fake.s().requests.iter().filter(|r| r.ends_with("/virtualMachines")).count();
    assert_eq!(pages, 3, "one VM a page, followed through nextLink");
    assert!(p.list("nobody").await.expect("list").is_empty());
    fake.assert_clean();
}

#[tokio::test]
async fn delete_follows_the_location_header_and_is_idempotent() {
    let fake = Fake::start().await;
    let p = fake.provider();
    let vm = p.create(request("tok-del", OWNER, 0, Market::OnDemand)).await.expect("create");
    p.delete(&vm.id).await.expect("delete");
    assert!(fake.s().vms.is_empty());
    assert_eq!(p.get(&vm.id).await.expect("get"), None);
    p.delete(&vm.id).await.expect("deleting a VM already gone succeeds (ARM answers 204)");
    fake.assert_clean();
}

#[tokio::test]
async fn errors_map_to_what_the_engine_needs() {
    let fake = Fake::start().await;
    let p = fake.provider();
    fake.s().fail_next.push_back((429, "TooManyRequests".into()));
    let e = p.create(request("t1", OWNER, 0, Market::Spot)).await.expect_err("throttled");
    assert!(matches!(e, ProviderError::Throttled(_)), "{e:?}");
    fake.s().fail_next.push_back((409, "SkuNotAvailable".into()));
    let e = p.create(request("t1", OWNER, 0, Market::Spot)).await.expect_err("no SKU");
    assert!(matches!(e, ProviderError::InsufficientCapacity(_)), "{e:?}");
    fake.s().fail_next_operation = Some("ZonalAllocationFailed".into());
    let e = p.create(request("t2", OWNER, 0, Market::Spot)).await.expect_err("allocation fails while polling");
    assert!(matches!(&e, ProviderError::InsufficientCapacity(m) if m.contains("ZonalAllocationFailed")), "{e:?}");
    fake.s().fail_next.push_back((403, "AuthorizationFailed".into()));
    let e = p.get("nc-x").await.expect_err("forbidden");
    assert!(matches!(e, ProviderError::Auth(_)), "{e:?}");
    fake.s().fail_next.push_back((500, "InternalServerError".into()));
    let e = p.delete("nc-x").await.expect_err("server error");
    assert!(matches!(e, ProviderError::Api(_)), "{e:?}");
    fake.assert_clean();
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_that_does_not_show_it() {
    let fake = Fake::start().await;
    let wrong = "wrong-secret-value-xyz";
    let p = AzureProvider::new(fake.config(wrong)).expect("provider");
    let e = p.list(OWNER).await.expect_err("refused");
    let text = e.to_string();
    assert!(matches!(e, ProviderError::Auth(_)), "{e:?}");
    assert!(!text.contains(wrong) && !text.contains(SECRET), "{text}");
    assert!(text.contains(CLIENT_ID), "names the client: {text}");
}

#[test]
fn the_field_check_catches_a_misspelt_field() {
    let known = known_vm_fields();
    let good = json!({"location": "eastus", "zones": ["1"], "tags": {"any-key": "v"},
        "properties": {"priority": "Spot", "evictionPolicy": "Delete", "billingProfile": {"maxPrice": -1},
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"}}});
    assert!(unknown_fields(&good, &known).is_empty(), "{:?}", unknown_fields(&good, &known));
    assert!(enum_problems(&good).is_empty());
    let bad =
        json!({"location": "eastus", "properties": {"hardwareProfiles": {"vmSize": "x"}, "evictionPolicy": "Remove"}});
    assert_eq!(unknown_fields(&bad, &known), ["properties.hardwareProfiles", "properties.hardwareProfiles.vmSize"]);
    assert_eq!(enum_problems(&bad).len(), 1);
}

#[test]
fn vm_names_are_valid_and_stable() {
    assert_eq!(vm_name("Abc_1/2"), "nc-abc-1-2");
    let long = "x".repeat(200);
    let n = vm_name(&long);
    assert!(n.len() <= 64, "{n}");
    assert_eq!(n, vm_name(&long));
    assert_ne!(n, vm_name(&"x".repeat(201)));
}

#[tokio::test]
async fn metrics_come_from_azure_monitor() {
    let fake = Fake::start().await;
    let p = fake.provider();
    let vm = p.create(request("tok-m", OWNER, 0, Market::OnDemand)).await.expect("create");
    let m = p.metrics(&vm.id).await.expect("metrics");
    assert_eq!(m.cpu_percent, Some(25.0), "mean of 20 % and 30 %");
    assert_eq!((m.network_in_bytes, m.network_out_bytes, m.window_s), (Some(4000.0), Some(1000.0), 600));
    fake.s().no_metric_data = true;
    let empty = p.metrics(&vm.id).await.expect("metrics");
    assert_eq!((empty.cpu_percent, empty.network_in_bytes, empty.network_out_bytes), (None, None, None));
    let e = p.metrics("nc-none").await.expect_err("no such VM");
    assert!(matches!(e, ProviderError::Api(_)), "{e:?}");
    fake.assert_clean();
}

#[tokio::test]
async fn prices_come_from_the_catalog() {
    let fake = Fake::start().await;
    let p = fake.provider();
    assert_eq!(p.estimate_cost("azure-eastus", "Standard_D2s_v5", Market::Spot).await.expect("spot"), 0.0192);
    assert_eq!(p.estimate_cost("azure-eastus", "Standard_D2s_v5", Market::OnDemand).await.expect("on-demand"), 0.096);
    assert!(p.estimate_cost("azure-eastus", "Standard_X", Market::Spot).await.is_err());
}

/// Region health from Azure Service Health (Resource Health events), answered with Microsoft's
/// published example of `Events_ListBySubscriptionId` (api-version 2024-02-01): an active
/// service issue of Virtual Machines in West US. It does not touch this provider's East US; the
/// same event moved to East US (as the second page of the answer, behind a nextLink) does, and
/// once resolved it no longer does.
#[tokio::test]
async fn service_health_issues_mark_the_region_unhealthy() {
    let fake = Fake::start().await;
    let p = fake.provider();
    assert_eq!(p.unhealthy_regions().await.expect("no events"), Vec::<String>::new());

    let example = fixture("Events_ListBySubscriptionId.json")["responses"]["200"]["body"].clone();
    fake.s().health_events = vec![example.clone()];
    assert_eq!(p.unhealthy_regions().await.expect("West US"), Vec::<String>::new(), "another region's issue");

    let mut east = example.clone();
    east["value"][0]["properties"]["impact"][0]["impactedRegions"][0]["impactedRegion"] = json!("East US");
    fake.s().health_events = vec![example.clone(), east.clone()];
    assert_eq!(p.unhealthy_regions().await.expect("East US"), ["azure-eastus"]);

    let mut resolved = east.clone();
    resolved["value"][0]["properties"]["status"] = json!("Resolved");
    fake.s().health_events = vec![resolved];
    assert_eq!(p.unhealthy_regions().await.expect("resolved"), Vec::<String>::new());

    // Parsing alone: the region's status counts too, and region names compare without spaces.
    let mut mitigated = east.clone();
    mitigated["value"][0]["properties"]["impact"][0]["impactedRegions"][0]["status"] = json!("Resolved");
    assert!(!operator::provider::azure::service_issue_in(&mitigated, "eastus"));
    assert!(operator::provider::azure::service_issue_in(&east, "eastus"));
    assert!(operator::provider::azure::service_issue_in(&example, "westus"));
    assert!(fake.s().problems.is_empty(), "{:?}", fake.s().problems);
}
