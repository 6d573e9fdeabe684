//! Google Compute Engine instances behind [`CloudProvider`], through the Compute Engine REST API
//! v1 over `reqwest`.
//!
//! The model:
//! - **One instance per client token.** The instance name is derived from the client token
//!   ([`instance_name`]) and every `instances.insert` carries a `requestId`, a UUID derived
//!   deterministically from the token ([`request_id`]): Compute Engine answers a repeated
//!   request with the first one's operation, and a later insert of the same name fails with
//!   `alreadyExists`, which [`CloudProvider::create`] answers with the existing instance.
//!   Instances are labelled `novacron-owner`, `novacron-slot` and `novacron-token`; label values
//!   may only hold lower-case letters, digits, `-` and `_` and at most 63 characters, so values
//!   are sanitised by [`label_value`] (a Kubernetes UID and the controller's tokens
//!   `<uid>-<slot>-<n>` pass unchanged).
//! - **Ids** are `<zone>/<name>`, since instances are zonal.
//! - **Operations.** An insert or delete returns a zone operation, which is followed with
//!   `zoneOperations.wait` (it returns when the operation is `DONE` or after about two minutes,
//!   whichever comes first) until it is `DONE`; a `DONE` operation with an `error` is mapped
//!   like an HTTP error, so `ZONE_RESOURCE_POOL_EXHAUSTED` reaches the engine as
//!   [`ProviderError::InsufficientCapacity`].
//! - **Spot VMs** are inserted with `scheduling.provisioningModel: SPOT` and the configured
//!   `instanceTerminationAction`; a spot instance found `STOPPING`/`TERMINATED` was preempted
//!   ([`InstanceState::Lost`] with [`FailureCause::Interrupted`]).
//! - **Credentials.** A service-account JSON key ([`ServiceAccountKey`]) is turned into an OAuth2
//!   access token with the JWT bearer grant (RFC 7523): a JWT signed RS256 with the key's
//!   private key is posted to the key's `token_uri`. The token is cached until a minute before
//!   it expires.
//! - **Metrics** come from Cloud Monitoring (`projects.timeSeries.list`, v3): the instance's
//!   `cpu/utilization` (mean), `network/received_bytes_count` and `network/sent_bytes_count`
//!   (summed) over one alignment period of [`GcpConfig::metrics_window`].
//! - **Region health** is `regions.get`'s `status` (`UP` or `DOWN`). **Prices** come from the
//!   catalog the provider is configured with.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::{FailureCause, Market};
use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::azure::catalog_prices;
use super::{
    CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceMetrics, InstanceState, PriceQuote,
    ProviderError, ProviderResult,
};

/// Label holding the owning object's UID.
pub const LABEL_OWNER: &str = "novacron-owner";
/// Label holding the replica slot.
pub const LABEL_SLOT: &str = "novacron-slot";
/// Label holding the client token.
pub const LABEL_TOKEN: &str = "novacron-token";
/// Secret data key holding the service-account JSON key.
pub const KEY_JSON: &str = "key.json";
/// OAuth scopes the token is asked for (space-separated): Compute Engine, and reading Cloud
/// Monitoring for [`CloudProvider::metrics`].
pub const SCOPE: &str = "https://www.googleapis.com/auth/compute https://www.googleapis.com/auth/monitoring.read";
/// A cached token is renewed this long before it expires.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Errors of building a GCP provider (credentials and configuration). Calls to the cloud fail
/// with [`ProviderError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Secret has no service-account key.
    #[error("GCP credentials Secret has no key {KEY_JSON} (a service-account JSON key)")]
    MissingKey,
    /// The service-account key cannot be used. Names the problem, never a value of the key.
    #[error("GCP service-account key (Secret key {KEY_JSON}): {0}")]
    InvalidKey(String),
    /// A configuration field cannot be used.
    #[error("GCP provider config {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

/// Module result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The fields of a service-account JSON key this provider uses. `Debug` never shows the
/// private key.
#[derive(Clone, PartialEq, Deserialize)]
pub struct ServiceAccountKey {
    /// `service_account`.
    #[serde(rename = "type", default)]
    pub key_type: String,
    /// The project the key belongs to.
    #[serde(default)]
    pub project_id: String,
    /// Id of the key (the JWT's `kid`).
    #[serde(default)]
    pub private_key_id: String,
    /// PKCS#8 PEM private key.
    pub private_key: String,
    /// The service account's e-mail (the JWT's issuer).
    pub client_email: String,
    /// Where tokens are fetched (`https://oauth2.googleapis.com/token`); a local server in tests.
    pub token_uri: String,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("project_id", &self.project_id)
            .field("private_key_id", &self.private_key_id)
            .field("private_key", &"<redacted>")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

impl ServiceAccountKey {
    /// Parses a service-account JSON key, checking that the private key is an RSA PEM key.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        // serde_json's messages quote no input, only line and column.
        let key: ServiceAccountKey = serde_json::from_slice(json)
            .map_err(|e| Error::InvalidKey(format!("not a service-account JSON key: {e}")))?;
        if !key.key_type.is_empty() && key.key_type != "service_account" {
            return Err(Error::InvalidKey(format!(
                "type is {:?}; only \"service_account\" keys are supported",
                key.key_type
            )));
        }
        if key.client_email.is_empty() {
            return Err(Error::InvalidKey("client_email is empty".into()));
        }
        reqwest::Url::parse(&key.token_uri).map_err(|e| Error::InvalidKey(format!("token_uri is not a URL: {e}")))?;
        jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
            .map_err(|e| Error::InvalidKey(format!("private_key is not an RSA PEM key: {e}")))?;
        Ok(key)
    }

    /// Reads the key from a Kubernetes Secret's `data` under [`KEY_JSON`].
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        Self::from_json(data.get(KEY_JSON).ok_or(Error::MissingKey)?)
    }
}

/// What a spot VM does when Compute Engine preempts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TerminationAction {
    /// The instance is deleted.
    Delete,
    /// The instance is stopped (its disks are billed).
    Stop,
}

/// Everything a [`GcpProvider`] needs. [`GcpConfig::new`] fills the defaults.
#[derive(Clone, Debug)]
pub struct GcpConfig {
    /// The catalog's name of the region this provider serves (`gcp-us-central1`); instances report it.
    pub region: String,
    /// Compute Engine's name of that region (`us-central1`).
    pub gcp_region: String,
    /// Zones of the region that [`CloudProvider::list`] looks in (`us-central1-a`, ...). A create
    /// request's zone is used as given when it contains a `-`, else as a suffix of `gcp_region`
    /// (`a` is `us-central1-a`).
    pub zones: Vec<String>,
    /// Project id (defaults to the key's `project_id`).
    pub project: String,
    /// API base (`https://compute.googleapis.com/compute/v1/`); a local server in tests.
    pub endpoint: String,
    /// Boot image (`projects/debian-cloud/global/images/family/debian-12`).
    pub source_image: String,
    /// Boot disk size, GB.
    pub disk_size_gb: u32,
    /// Network (`global/networks/default`).
    pub network: String,
    /// Subnetwork, if not the network's automatic one (`regions/us-central1/subnetworks/x`).
    pub subnetwork: Option<String>,
    /// What a preempted spot VM does.
    pub termination_action: TerminationAction,
    /// `zoneOperations.wait` calls for one operation before giving up (each waits up to ~2 min).
    pub max_waits: u32,
    /// Cloud Monitoring API base (`https://monitoring.googleapis.com/`); a local server in tests.
    pub monitoring_endpoint: String,
    /// The window [`CloudProvider::metrics`] reports on (one alignment period).
    pub metrics_window: Duration,
    /// What this provider sells, with on-demand and spot prices (from the pricing tables).
    pub catalog: CloudCatalog,
    /// Credentials.
    pub key: ServiceAccountKey,
}

impl GcpConfig {
    /// A config for the public API with Debian 12 on 20 GB disks in the default network, spot
    /// VMs deleted on preemption, the project from the key and the zones `a`, `b`, `c`, `f`.
    pub fn new(region: impl Into<String>, gcp_region: impl Into<String>, key: ServiceAccountKey) -> Self {
        let gcp_region = gcp_region.into();
        GcpConfig {
            region: region.into(),
            zones: ["a", "b", "c", "f"].iter().map(|z| format!("{gcp_region}-{z}")).collect(),
            gcp_region,
            project: key.project_id.clone(),
            endpoint: "https://compute.googleapis.com/compute/v1/".into(),
            source_image: "projects/debian-cloud/global/images/family/debian-12".into(),
            disk_size_gb: 20,
            network: "global/networks/default".into(),
            subnetwork: None,
            termination_action: TerminationAction::Delete,
            max_waits: 10,
            monitoring_endpoint: "https://monitoring.googleapis.com/".into(),
            metrics_window: Duration::from_secs(600),
            catalog: CloudCatalog::default(),
            key,
        }
    }
}

/// The instance name for a client token: `nc-` and the token, lower-cased, with every character
/// other than `a-z`, `0-9` and `-` replaced by `-` (Compute Engine names match
/// `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters); a longer name keeps its first 46
/// characters and a 16-digit hash of the token.
pub fn instance_name(client_token: &str) -> String {
    let clean: String =
        client_token.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let name = format!("nc-{}", clean.trim_matches('-'));
    if name.len() <= 63 {
        return name;
    }
    format!("{}-{:016x}", name[..46].trim_end_matches('-'), fnv1a(client_token.as_bytes(), 0))
}

/// A label value: lower-cased, characters other than `a-z`, `0-9`, `-` and `_` replaced by `_`,
/// cut to 63 characters (Compute Engine's label rules).
pub fn label_value(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '_' })
        .take(63)
        .collect()
}

/// A label key: like [`label_value`], and starting with a letter (`k` is put in front otherwise).
pub fn label_key(key: &str) -> String {
    let v = label_value(key);
    if v.starts_with(|c: char| c.is_ascii_lowercase()) { v } else { format!("k{v}").chars().take(63).collect() }
}

/// The `requestId` for a call about a client token: a version-8 (custom) UUID from two 64-bit
/// FNV-1a hashes of `purpose` and the token, the same for the same inputs on every run.
pub fn request_id(purpose: &str, client_token: &str) -> String {
    let input = format!("{purpose}\u{0}{client_token}");
    let hi = fnv1a(input.as_bytes(), 0);
    let lo = fnv1a(input.as_bytes(), 0x9e37_79b9_7f4a_7c15);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325 ^ seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

struct CachedToken {
    token: String,
    expires: Instant,
}

/// Compute Engine instances in one project and region.
pub struct GcpProvider {
    config: GcpConfig,
    http: reqwest::Client,
    signing_key: jsonwebtoken::EncodingKey,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    token_fetches: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for GcpProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpProvider")
            .field("region", &self.config.region)
            .field("project", &self.config.project)
            .field("endpoint", &self.config.endpoint)
            .field("key", &self.config.key)
            .finish_non_exhaustive()
    }
}

impl GcpProvider {
    /// A provider for `config`.
    pub fn new(config: GcpConfig) -> Result<Self> {
        for (field, value) in
            [("region", &config.region), ("gcp_region", &config.gcp_region), ("project", &config.project)]
        {
            if value.trim().is_empty() {
                return Err(Error::InvalidConfig { field, reason: "must not be empty".into() });
            }
        }
        if config.zones.is_empty() {
            return Err(Error::InvalidConfig { field: "zones", reason: "name at least one zone of the region".into() });
        }
        reqwest::Url::parse(&config.endpoint)
            .map_err(|e| Error::InvalidConfig { field: "endpoint", reason: format!("not a URL: {e}") })?;
        let signing_key = jsonwebtoken::EncodingKey::from_rsa_pem(config.key.private_key.as_bytes())
            .map_err(|e| Error::InvalidKey(format!("private_key is not an RSA PEM key: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(180))
            .build()
            .map_err(|e| Error::InvalidConfig { field: "endpoint", reason: format!("HTTP client: {e}") })?;
        Ok(GcpProvider {
            config,
            http,
            signing_key,
            token: tokio::sync::Mutex::new(None),
            token_fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many tokens were fetched from the token endpoint so far.
    pub fn token_fetches(&self) -> u64 {
        self.token_fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid access token: the cached one unless it expires within [`TOKEN_MARGIN`].
    pub async fn access_token(&self) -> ProviderResult<String> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() + TOKEN_MARGIN < t.expires
        {
            return Ok(t.token.clone());
        }
        let key = &self.config.key;
        let auth = |what: String| {
            ProviderError::Auth(format!("GCP token for {} (Secret key {KEY_JSON}): {what}", key.client_email))
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let claims = Claims { iss: &key.client_email, scope: SCOPE, aud: &key.token_uri, iat: now, exp: now + 3600 };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        if !key.private_key_id.is_empty() {
            header.kid = Some(key.private_key_id.clone());
        }
        let assertion = jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .map_err(|e| auth(format!("signing the JWT: {e}")))?;
        let started = Instant::now();
        let resp = self
            .http
            .post(&key.token_uri)
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())])
            .send()
            .await
            .map_err(|e| ProviderError::Api(format!("GCP token endpoint: {}", e.without_url())))?;
        self.token_fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let error = body.get("error").and_then(Value::as_str).unwrap_or_default();
            let description = body.get("error_description").and_then(Value::as_str).unwrap_or_default();
            let text = format!("{} {error}: {description}", status.as_u16());
            return Err(if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                ProviderError::Throttled(format!("GCP token endpoint: {text}"))
            } else {
                auth(text)
            });
        }
        let token = body
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| auth("the answer has no access_token".into()))?;
        let expires_in = body.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        *cached = Some(CachedToken { token: token.to_owned(), expires: started + Duration::from_secs(expires_in) });
        Ok(token.to_owned())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/projects/{}/{path}", self.config.endpoint.trim_end_matches('/'), self.config.project)
    }

    fn zone(&self, zone: &str) -> String {
        if zone.contains('-') { zone.to_owned() } else { format!("{}-{zone}", self.config.gcp_region) }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> ProviderResult<(StatusCode, Value)> {
        self.call_url(method, &self.url(path), path, query, body).await
    }

    async fn call_url(
        &self,
        method: Method,
        url: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> ProviderResult<(StatusCode, Value)> {
        let token = self.access_token().await?;
        let mut req = self.http.request(method.clone(), url).bearer_auth(token);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let what = format!("{method} {path}");
        let resp = req.send().await.map_err(|e| ProviderError::Api(format!("GCP {what}: {}", e.without_url())))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ProviderError::Api(format!("GCP {what}: reading the answer: {e}")))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::CONFLICT {
            Ok((status, body))
        } else {
            Err(map_gcp_error(&what, Some(status), &body))
        }
    }

    /// Waits for a zone operation to be `DONE`; its error, if any, is mapped.
    async fn wait(&self, zone: &str, mut op: Value) -> ProviderResult<Value> {
        for _ in 0..=self.config.max_waits {
            if op.get("status").and_then(Value::as_str) == Some("DONE") {
                if let Some(err) = op.get("error") {
                    let code = op
                        .get("httpErrorStatusCode")
                        .and_then(Value::as_u64)
                        .and_then(|c| StatusCode::from_u16(c as u16).ok());
                    return Err(map_operation_error(code, err, op.get("httpErrorMessage").and_then(Value::as_str)));
                }
                return Ok(op);
            }
            let name = op
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ProviderError::Api(format!("GCP: an operation without a name: {op}")))?
                .to_owned();
            let (status, next) =
                self.call(Method::POST, &format!("zones/{zone}/operations/{name}/wait"), &[], None).await?;
            if status == StatusCode::NOT_FOUND {
                return Err(ProviderError::Api(format!("GCP: operation {name} in {zone} vanished")));
            }
            op = next;
        }
        Err(ProviderError::Api(format!("GCP: operation in {zone} not done after {} waits", self.config.max_waits)))
    }

    fn instance_body(&self, request: &CreateRequest, name: &str, zone: &str) -> Value {
        let c = &self.config;
        let mut labels: BTreeMap<String, String> =
            request.tags.iter().map(|(k, v)| (label_key(k), label_value(v))).collect();
        labels.insert(LABEL_OWNER.into(), label_value(&request.owner_uid));
        labels.insert(LABEL_SLOT.into(), request.slot.to_string());
        labels.insert(LABEL_TOKEN.into(), label_value(&request.client_token));
        let scheduling = match request.market {
            Market::Spot => json!({
                "provisioningModel": "SPOT",
                "instanceTerminationAction": match c.termination_action { TerminationAction::Delete => "DELETE", TerminationAction::Stop => "STOP" },
                "automaticRestart": false,
                "onHostMaintenance": "TERMINATE",
            }),
            Market::OnDemand => json!({"provisioningModel": "STANDARD"}),
        };
        let mut nic = json!({"network": c.network});
        if let Some(s) = &c.subnetwork {
            nic["subnetwork"] = json!(s);
        }
        json!({
            "name": name,
            "machineType": format!("zones/{zone}/machineTypes/{}", request.instance_type),
            "labels": labels,
            "scheduling": scheduling,
            "disks": [{
                "boot": true,
                "autoDelete": true,
                "initializeParams": {"sourceImage": c.source_image, "diskSizeGb": c.disk_size_gb.to_string()},
            }],
            "networkInterfaces": [nic],
        })
    }

    fn to_instance(&self, v: &Value) -> CloudInstance {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
        let zone = last_segment(&s("/zone"));
        let spot = v.pointer("/scheduling/provisioningModel").and_then(Value::as_str) == Some("SPOT")
            || v.pointer("/scheduling/preemptible").and_then(Value::as_bool) == Some(true);
        CloudInstance {
            id: format!("{zone}/{}", s("/name")),
            client_token: s(&format!("/labels/{LABEL_TOKEN}")),
            owner_uid: s(&format!("/labels/{LABEL_OWNER}")),
            slot: s(&format!("/labels/{LABEL_SLOT}")).parse().unwrap_or(0),
            region: self.config.region.clone(),
            zone,
            instance_type: last_segment(&s("/machineType")),
            market: if spot { Market::Spot } else { Market::OnDemand },
            state: instance_state(&s("/status"), spot),
        }
    }

    async fn get_instance(&self, zone: &str, name: &str) -> ProviderResult<Option<Value>> {
        let (status, body) = self.call(Method::GET, &format!("zones/{zone}/instances/{name}"), &[], None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(body))
    }
}

impl GcpProvider {
    /// `projects.timeSeries.list` of one metric of one instance over one alignment period: the
    /// sum of the points' values and their number, `None` without points.
    async fn time_series_total(
        &self,
        metric: &str,
        instance_id: &str,
        aligner: &str,
        window_s: u64,
        start: &str,
        end: &str,
    ) -> ProviderResult<Option<(f64, usize)>> {
        let path = format!("v3/projects/{}/timeSeries", self.config.project);
        let url = format!("{}/{path}", self.config.monitoring_endpoint.trim_end_matches('/'));
        let filter = format!("metric.type = \"{metric}\" AND resource.labels.instance_id = \"{instance_id}\"");
        let period = format!("{window_s}s");
        let mut page_token: Option<String> = None;
        let (mut sum, mut n) = (0.0, 0usize);
        loop {
            let mut query = vec![
                ("filter", filter.as_str()),
                ("interval.startTime", start),
                ("interval.endTime", end),
                ("aggregation.alignmentPeriod", period.as_str()),
                ("aggregation.perSeriesAligner", aligner),
            ];
            if let Some(t) = &page_token {
                query.push(("pageToken", t.as_str()));
            }
            let (status, page) = self.call_url(Method::GET, &url, &path, &query, None).await?;
            if status != StatusCode::OK {
                return Err(map_gcp_error("timeSeries.list", Some(status), &page));
            }
            let points = page
                .get("timeSeries")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|ts| ts.get("points").and_then(Value::as_array).into_iter().flatten());
            for p in points {
                let v = &p["value"];
                // int64 values travel as strings.
                let x = v.get("doubleValue").and_then(Value::as_f64).or_else(|| {
                    v.get("int64Value").and_then(|i| i.as_str()?.parse::<f64>().ok().or_else(|| i.as_f64()))
                });
                if let Some(x) = x {
                    sum += x;
                    n += 1;
                }
            }
            page_token = page.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
            if page_token.is_none() {
                break;
            }
        }
        Ok((n > 0).then_some((sum, n)))
    }
}

/// `secs` since the Unix epoch as an RFC 3339 UTC timestamp (`2026-11-30T18:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn last_segment(s: &str) -> String {
    s.rsplit('/').next().unwrap_or(s).to_owned()
}

fn split_id(id: &str) -> ProviderResult<(&str, &str)> {
    id.split_once('/').ok_or_else(|| ProviderError::Api(format!("GCP instance id {id:?} is not <zone>/<name>")))
}

/// An instance's state from its `status`.
pub fn instance_state(status: &str, spot: bool) -> InstanceState {
    match status {
        "RUNNING" => InstanceState::Running,
        "PROVISIONING" | "STAGING" | "PENDING" | "REPAIRING" => InstanceState::Pending,
        "DEPROVISIONING" => InstanceState::Terminated,
        // Nothing of ours stops an instance: the cloud did, by preemption for a spot VM.
        _ => InstanceState::Lost(if spot { FailureCause::Interrupted } else { FailureCause::Crashed }),
    }
}

/// Error codes (HTTP `errors[].reason` or an operation's `errors[].code`) that mean the zone has
/// no capacity for the request now. Quota errors are counted here too: the engine should place
/// on another offer either way.
pub const CAPACITY_CODES: [&str; 5] = [
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "ZonalResourceExhausted",
    "resourceExhausted",
    "QUOTA_EXCEEDED",
];
/// Reasons that mean the call was throttled.
pub const THROTTLE_CODES: [&str; 3] = ["rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"];

/// Maps a Google API error (`{"error": {"code", "message", "errors": [{"reason", ...}], "status"}}`).
pub fn map_gcp_error(what: &str, status: Option<StatusCode>, body: &Value) -> ProviderError {
    let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
    let reasons: Vec<&str> = body
        .pointer("/error/errors")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|e| e.get("reason").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    let status_text = status.map(|s| format!("{} ", s.as_u16())).unwrap_or_default();
    let text = format!("GCP {what}: {status_text}{}: {message}", reasons.join(","));
    classify(status, &reasons, text)
}

/// Maps a `DONE` operation's `error` (`{"errors": [{"code", "message"}]}`).
pub fn map_operation_error(status: Option<StatusCode>, error: &Value, http_message: Option<&str>) -> ProviderError {
    let errors: Vec<(&str, &str)> = error
        .get("errors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e.get("code").and_then(Value::as_str).unwrap_or_default(),
                        e.get("message").and_then(Value::as_str).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let codes: Vec<&str> = errors.iter().map(|e| e.0).collect();
    let detail: Vec<String> = errors.iter().map(|(c, m)| format!("{c}: {m}")).collect();
    let text = format!("GCP operation failed ({}): {}", http_message.unwrap_or("error"), detail.join("; "));
    classify(status, &codes, text)
}

fn classify(status: Option<StatusCode>, codes: &[&str], text: String) -> ProviderError {
    if status == Some(StatusCode::TOO_MANY_REQUESTS) || codes.iter().any(|c| THROTTLE_CODES.contains(c)) {
        ProviderError::Throttled(text)
    } else if codes.iter().any(|c| CAPACITY_CODES.contains(c)) {
        ProviderError::InsufficientCapacity(text)
    } else if matches!(status, Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)) {
        ProviderError::Auth(text)
    } else {
        ProviderError::Api(text)
    }
}

impl CloudProvider for GcpProvider {
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>> {
        Box::pin(async move { Ok(self.config.catalog.clone()) })
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>> {
        Box::pin(async move {
            if request.region != self.config.region {
                return Err(ProviderError::Api(format!(
                    "GCP provider serves region {}, not {}",
                    self.config.region, request.region
                )));
            }
            let zone = self.zone(&request.zone);
            let name = instance_name(&request.client_token);
            let body = self.instance_body(&request, &name, &zone);
            let rid = request_id("insert", &request.client_token);
            let (status, op) = self
                .call(Method::POST, &format!("zones/{zone}/instances"), &[("requestId", rid.as_str())], Some(&body))
                .await?;
            if status == StatusCode::NOT_FOUND {
                return Err(map_gcp_error("instances.insert", Some(status), &op));
            }
            if status != StatusCode::CONFLICT {
                // `alreadyExists` (409): an earlier create with this token made it; adopt it.
                self.wait(&zone, op).await?;
            }
            let instance = self
                .get_instance(&zone, &name)
                .await?
                .ok_or_else(|| ProviderError::Api(format!("GCP: instance {zone}/{name} not found after its insert")))?;
            // The name is the token: an instance made by an earlier insert with this token for a
            // different request (another owner, slot or market) is a reused token, not ours.
            let instance = self.to_instance(&instance);
            if !instance.answers(&request) {
                return Err(ProviderError::TokenMismatch(request.client_token));
            }
            Ok(instance)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>> {
        Box::pin(async move {
            let (zone, name) = split_id(id)?;
            Ok(self.get_instance(zone, name).await?.map(|v| self.to_instance(&v)))
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(async move {
            let (zone, name) = split_id(id)?;
            let rid = request_id("delete", id);
            let (status, op) = self
                .call(Method::DELETE, &format!("zones/{zone}/instances/{name}"), &[("requestId", rid.as_str())], None)
                .await?;
            if status == StatusCode::NOT_FOUND {
                return Ok(());
            }
            if status == StatusCode::CONFLICT {
                return Err(map_gcp_error("instances.delete", Some(status), &op));
            }
            self.wait(zone, op).await.map(|_| ())
        })
    }

    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>> {
        Box::pin(async move {
            let filter = format!("labels.{LABEL_OWNER} = \"{}\"", label_value(owner_uid));
            let mut out = Vec::new();
            for zone in &self.config.zones {
                let mut page_token: Option<String> = None;
                loop {
                    let mut query = vec![("filter", filter.as_str())];
                    if let Some(t) = &page_token {
                        query.push(("pageToken", t.as_str()));
                    }
                    let (status, page) =
                        self.call(Method::GET, &format!("zones/{zone}/instances"), &query, None).await?;
                    if status == StatusCode::NOT_FOUND {
                        return Err(map_gcp_error("instances.list", Some(status), &page));
                    }
                    for i in page.get("items").and_then(Value::as_array).into_iter().flatten() {
                        out.push(self.to_instance(i));
                    }
                    page_token = page.get("nextPageToken").and_then(Value::as_str).map(str::to_owned);
                    if page_token.is_none() {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>> {
        Box::pin(async move { Ok(catalog_prices(&self.config.catalog, &self.config.region)) })
    }

    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>> {
        Box::pin(async move {
            let (status, region) =
                self.call(Method::GET, &format!("regions/{}", self.config.gcp_region), &[], None).await?;
            if status == StatusCode::NOT_FOUND {
                return Err(map_gcp_error("regions.get", Some(status), &region));
            }
            let down = region.get("status").and_then(Value::as_str) == Some("DOWN");
            Ok(if down { vec![self.config.region.clone()] } else { Vec::new() })
        })
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>> {
        Box::pin(async move {
            let (zone, name) = split_id(id)?;
            let instance = self
                .get_instance(zone, name)
                .await?
                .ok_or_else(|| ProviderError::Api(format!("GCP: no instance {id} to read metrics of")))?;
            let instance_id = instance.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
            let end = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
            let window = self.config.metrics_window.as_secs().max(60);
            let (start, end) = (rfc3339(end.saturating_sub(window)), rfc3339(end));
            let read = async |metric: &str, aligner: &str| {
                self.time_series_total(metric, &instance_id, aligner, window, &start, &end).await
            };
            let cpu = read("compute.googleapis.com/instance/cpu/utilization", "ALIGN_MEAN").await?;
            let rx = read("compute.googleapis.com/instance/network/received_bytes_count", "ALIGN_SUM").await?;
            let tx = read("compute.googleapis.com/instance/network/sent_bytes_count", "ALIGN_SUM").await?;
            Ok(InstanceMetrics {
                // Utilisation is a fraction; the mean over the series (one per instance).
                cpu_percent: cpu.map(|(sum, n)| 100.0 * sum / n as f64),
                network_in_bytes: rx.map(|(sum, _)| sum),
                network_out_bytes: tx.map(|(sum, _)| sum),
                window_s: window,
            })
        })
    }
}
