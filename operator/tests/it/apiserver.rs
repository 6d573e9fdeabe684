//! A small API server behind kube's mocked service (`tower_test::mock::pair`): an object store
//! that answers get, list (namespace and label selectors), watch (held open), create (409 on a
//! taken name), replace (409 on a stale resourceVersion), JSON, merge and apply patches (a
//! failed JSON-patch `test` is a 422), and delete (an object with finalizers gets a
//! deletionTimestamp and goes when its last finalizer is removed), as the real one does for the
//! calls the operator makes. Every request is recorded, and failures can be injected.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::Handle;

/// One request.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Call {
    /// `METHOD path` (without the query).
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
    /// Whether it is a watch.
    pub fn is_watch(&self) -> bool {
        self.query.split('&').any(|q| q == "watch=true" || q == "watch=1")
    }
}

/// What the store answers.
pub enum Reply {
    /// Hold the request open (a watch).
    Hold,
    /// Answer with this status and body.
    Respond(u16, Value),
}

type Key = (String, String, Option<String>, String);

/// The objects and the calls.
#[derive(Default)]
pub struct Store {
    /// Objects by (API prefix, plural, namespace, name).
    pub objects: BTreeMap<Key, Value>,
    /// Every request, in order.
    pub calls: Vec<Call>,
    /// Requests to fail: (method, path suffix, status code), each once.
    pub failures: VecDeque<(String, String, u16)>,
    /// Called with the store when an object whose path ends so goes (deleted, or its last
    /// finalizer removed).
    pub on_remove: Vec<(String, Box<dyn FnMut(&Store) + Send>)>,
    /// Every change, for watches: (resourceVersion, key, event type, object).
    changes: Vec<(u64, Key, &'static str, Value)>,
    rv: u64,
}

fn kind_of(plural: &str) -> &'static str {
    match plural {
        "multicloudvms" => "MultiCloudVM",
        "virtualmachines" => "VirtualMachine",
        "vmclusters" => "VMCluster",
        "vmtemplates" => "VMTemplate",
        "federatedclusters" => "FederatedCluster",
        "aischedulingpolicies" => "AISchedulingPolicy",
        "cacheintegrations" => "CacheIntegration",
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        "leases" => "Lease",
        "events" => "Event",
        _ => "Unknown",
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": reason, "message": message, "code": code})
}

struct Parsed {
    prefix: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse(path: &str) -> Parsed {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (prefix, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (format!("/api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("/apis/{g}/{v}"), rest),
        _ => panic!("not an API path: {path}"),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    Parsed {
        prefix,
        plural: rest[0].to_owned(),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        sub: rest.get(2).map(|s| (*s).to_owned()),
    }
}

fn selected(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let labels = &obj["metadata"]["labels"];
        match term.split_once('=') {
            Some((k, v)) => labels[k].as_str() == Some(v.trim_start_matches('=')),
            None => labels.get(term).is_some(),
        }
    })
}

fn decode(q: &str) -> String {
    let mut out = Vec::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&q[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Store {
    /// Stores `obj` at its place (as a test's fixture), keeping what the server sets.
    pub fn put(&mut self, prefix: &str, plural: &str, obj: &Value) {
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_owned);
        let name = obj["metadata"]["name"].as_str().expect("a name").to_owned();
        let mut obj = obj.clone();
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let key = (prefix.to_owned(), plural.to_owned(), ns, name);
        let kind = if self.objects.contains_key(&key) { "MODIFIED" } else { "ADDED" };
        self.changes.push((self.rv, key.clone(), kind, obj.clone()));
        self.objects.insert(key, obj);
    }

    /// The events a watch of `path?query` has not seen yet, as a watch body (one JSON event a
    /// line), or `None` if there are none.
    pub fn watch_events(&self, path: &str, query: &str) -> Option<Vec<u8>> {
        let p = parse(path);
        let mut since = 0u64;
        let mut selector = String::new();
        for kv in query.split('&') {
            if let Some(v) = kv.strip_prefix("resourceVersion=") {
                since = v.parse().unwrap_or(0);
            }
            if let Some(v) = kv.strip_prefix("labelSelector=") {
                selector = decode(v);
            }
        }
        let mut out = Vec::new();
        for (rv, (pre, pl, ns, _), kind, obj) in &self.changes {
            if *rv > since
                && *pre == p.prefix
                && *pl == p.plural
                && (p.namespace.is_none() || *ns == p.namespace)
                && selected(obj, &selector)
            {
                out.extend(serde_json::to_vec(&json!({"type": kind, "object": obj})).expect("json"));
                out.push(b'\n');
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// One object.
    pub fn get(&self, prefix: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.objects.get(&(prefix.to_owned(), plural.to_owned(), Some(ns.to_owned()), name.to_owned())).cloned()
    }

    /// Every object of a kind, in name order.
    pub fn all(&self, prefix: &str, plural: &str) -> Vec<Value> {
        self.objects.iter().filter(|((p, k, _, _), _)| p == prefix && k == plural).map(|(_, v)| v.clone()).collect()
    }

    /// Calls as `METHOD path`, watches and the given prefixes left out.
    pub fn lines(&self) -> Vec<String> {
        self.calls.iter().filter(|c| !c.is_watch()).map(Call::line).collect()
    }

    fn removed(&mut self, path: &str) {
        let mut hooks = std::mem::take(&mut self.on_remove);
        for (p, f) in &mut hooks {
            if path.ends_with(p.as_str()) {
                f(self);
            }
        }
        self.on_remove = hooks;
    }

    /// Answers one request.
    pub fn answer(&mut self, method: &str, path: &str, query: &str, content_type: &str, body: &[u8]) -> Reply {
        let body_json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let call =
            Call { method: method.to_owned(), path: path.to_owned(), query: query.to_owned(), body: body_json.clone() };
        let watch = call.is_watch();
        self.calls.push(call);
        if let Some(at) = self.failures.iter().position(|(m, p, _)| m == method && path.ends_with(p.as_str())) {
            let (_, _, code) = self.failures.remove(at).expect("present");
            return Reply::Respond(code, status(code, "InternalError", "injected failure"));
        }
        let p = parse(path);
        let key = |name: &str| (p.prefix.clone(), p.plural.clone(), p.namespace.clone(), name.to_owned());
        match (method, &p.name) {
            ("GET", None) if watch => Reply::Hold,
            ("GET", None) => {
                let selector =
                    query.split('&').find_map(|kv| kv.strip_prefix("labelSelector=")).map(decode).unwrap_or_default();
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|((pre, pl, ns, _), v)| {
                        *pre == p.prefix
                            && *pl == p.plural
                            && (p.namespace.is_none() || *ns == p.namespace)
                            && selected(v, &selector)
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                Reply::Respond(
                    200,
                    json!({
                        "apiVersion": p.prefix.trim_start_matches("/apis/").trim_start_matches("/api/"),
                        "kind": format!("{}List", kind_of(&p.plural)),
                        "metadata": {"resourceVersion": self.rv.to_string()},
                        "items": items
                    }),
                )
            }
            ("GET", Some(name)) => match self.objects.get(&key(name)) {
                Some(o) => Reply::Respond(200, o.clone()),
                None => Reply::Respond(404, status(404, "NotFound", &format!("{} {name} not found", p.plural))),
            },
            ("POST", _) => {
                let mut obj = body_json;
                let name = match obj["metadata"]["name"].as_str() {
                    Some(n) => n.to_owned(),
                    None => {
                        let g = obj["metadata"]["generateName"].as_str().unwrap_or("x-").to_owned();
                        format!("{g}{}", self.rv + 1)
                    }
                };
                if self.objects.contains_key(&key(&name)) {
                    return Reply::Respond(409, status(409, "AlreadyExists", &format!("{name} already exists")));
                }
                self.rv += 1;
                let m = &mut obj["metadata"];
                m["name"] = json!(name);
                if let Some(ns) = &p.namespace {
                    m["namespace"] = json!(ns);
                }
                if m.get("uid").is_none() {
                    m["uid"] = json!(format!("uid-{name}"));
                }
                m["resourceVersion"] = json!(self.rv.to_string());
                m["generation"] = json!(1);
                m["creationTimestamp"] = json!("2026-11-30T00:00:00Z");
                self.changes.push((self.rv, key(&name), "ADDED", obj.clone()));
                self.objects.insert(key(&name), obj.clone());
                Reply::Respond(201, obj)
            }
            ("PUT", Some(name)) => {
                let mut obj = body_json;
                let current = self.objects.get(&key(name)).cloned();
                let Some(current) = current else {
                    return Reply::Respond(404, status(404, "NotFound", "not found"));
                };
                let sent = obj["metadata"]["resourceVersion"].as_str().map(str::to_owned);
                if sent.is_some() && sent.as_deref() != current["metadata"]["resourceVersion"].as_str() {
                    return Reply::Respond(409, status(409, "Conflict", "the object has been modified"));
                }
                self.rv += 1;
                obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                self.changes.push((self.rv, key(name), "MODIFIED", obj.clone()));
                self.objects.insert(key(name), obj.clone());
                Reply::Respond(200, obj)
            }
            ("PATCH", Some(name)) => {
                let Some(mut obj) = self.objects.get(&key(name)).cloned() else {
                    return Reply::Respond(404, status(404, "NotFound", &format!("{} {name} not found", p.plural)));
                };
                if content_type.contains("json-patch") {
                    // A missing list reads as null, as the API server's JSON patch has it.
                    if obj["metadata"].get("finalizers").is_none() {
                        obj["metadata"]["finalizers"] = Value::Null;
                    }
                    let ops: json_patch::Patch = match serde_json::from_value(body_json) {
                        Ok(o) => o,
                        Err(e) => return Reply::Respond(400, status(400, "BadRequest", &e.to_string())),
                    };
                    if let Err(e) = json_patch::patch(&mut obj, &ops) {
                        return Reply::Respond(422, status(422, "Invalid", &e.to_string()));
                    }
                } else if content_type.contains("apply-patch") && p.sub.as_deref() == Some("status") {
                    obj["status"] = body_json["status"].clone();
                } else {
                    json_patch::merge(&mut obj, &body_json);
                }
                // A patch that changes nothing is a no-op, as on the real API server: no new
                // resourceVersion, no watch event.
                let before = self.objects.get(&key(name)).cloned().unwrap_or(Value::Null);
                if obj == before {
                    return Reply::Respond(200, obj);
                }
                self.rv += 1;
                obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                let going = obj["metadata"].get("deletionTimestamp").is_some_and(|d| !d.is_null())
                    && obj["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
                if going {
                    self.changes.push((self.rv, key(name), "DELETED", obj.clone()));
                    self.objects.remove(&key(name));
                    self.removed(path);
                } else {
                    self.changes.push((self.rv, key(name), "MODIFIED", obj.clone()));
                    self.objects.insert(key(name), obj.clone());
                }
                Reply::Respond(200, obj)
            }
            ("DELETE", Some(name)) => {
                let Some(mut obj) = self.objects.get(&key(name)).cloned() else {
                    return Reply::Respond(404, status(404, "NotFound", &format!("{} {name} not found", p.plural)));
                };
                if obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty()) {
                    if obj["metadata"].get("deletionTimestamp").is_none_or(Value::is_null) {
                        self.rv += 1;
                        obj["metadata"]["deletionTimestamp"] = json!("2026-11-30T01:00:00Z");
                        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                        self.changes.push((self.rv, key(name), "MODIFIED", obj.clone()));
                        self.objects.insert(key(name), obj.clone());
                    }
                } else {
                    self.rv += 1;
                    obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                    self.changes.push((self.rv, key(name), "DELETED", obj.clone()));
                    self.objects.remove(&key(name));
                    self.removed(path);
                }
                Reply::Respond(200, obj)
            }
            (m, _) => Reply::Respond(405, status(405, "MethodNotAllowed", &format!("{m} {path}"))),
        }
    }
}

/// The response for a reply.
pub fn response(code: u16, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(serde_json::to_vec(body).expect("json")));
    *r.status_mut() = StatusCode::from_u16(code).expect("a status code");
    r
}

/// Takes one request apart: method, path, query, content type, body.
pub async fn split(req: Request<Body>) -> (String, String, String, String, Vec<u8>) {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let ct = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = req.into_body().collect_bytes().await.expect("body").to_vec();
    (method, path, query, ct, body)
}

/// Watches held open until there is something to tell them.
#[derive(Default)]
pub struct Watches(Vec<(String, String, tower_test::mock::SendResponse<Response<Body>>)>);

impl Watches {
    /// Holds a watch.
    pub fn hold(&mut self, path: String, query: String, send: tower_test::mock::SendResponse<Response<Body>>) {
        self.0.push((path, query, send));
    }

    /// Answers (and so ends) every held watch that has events now; kube's watcher watches again
    /// from the last resourceVersion it saw.
    pub fn flush(&mut self, store: &Store) {
        let mut keep = Vec::new();
        for (path, query, send) in self.0.drain(..) {
            match store.watch_events(&path, &query) {
                Some(body) => send.send_response(Response::new(Body::from(body))),
                None => keep.push((path, query, send)),
            }
        }
        self.0 = keep;
    }
}

/// Serves every request from `store` until the client side is dropped; watches get the changes
/// made after the resourceVersion they ask from.
pub async fn serve(mut handle: Handle<Request<Body>, Response<Body>>, store: Arc<Mutex<Store>>) {
    let mut watches = Watches::default();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_millis(20), handle.next_request()).await;
        let s = store.clone();
        match next {
            Ok(Some((req, send))) => {
                let (method, path, query, ct, body) = split(req).await;
                let reply = s.lock().unwrap_or_else(|e| e.into_inner()).answer(&method, &path, &query, &ct, &body);
                match reply {
                    Reply::Hold => watches.hold(path, query, send),
                    Reply::Respond(code, v) => send.send_response(response(code, &v)),
                }
            }
            Ok(None) => break,
            Err(_) => {}
        }
        // Changes made by the test itself (put) reach the watches too.
        watches.flush(&s.lock().unwrap_or_else(|e| e.into_inner()));
    }
}
