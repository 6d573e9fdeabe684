//! Azure virtual machines behind [`CloudProvider`], through the Azure Resource Manager (ARM)
//! REST API, `Microsoft.Compute` api-version `2024-07-01`.
//!
//! The model:
//! - **One VM per client token.** The VM name is derived from the client token
//!   ([`vm_name`]), so a second create with the same token is a PUT of the same resource
//!   (ARM's create-or-update) and never a second VM. The VM carries tags `novacron-owner`,
//!   `novacron-slot` and `novacron-client-token`, from which [`CloudProvider::list`] finds an
//!   owner's VMs in the configured resource group and rebuilds the [`CloudInstance`].
//! - **Long-running operations.** A PUT or DELETE that ARM answers with `201`/`202` is followed
//!   through its `Azure-AsyncOperation` header (a status document, `InProgress` until
//!   `Succeeded`, `Failed` or `Canceled`) or else its `Location` header (`202` until done),
//!   waiting `Retry-After` seconds between polls. A failed operation's error is mapped like a
//!   synchronous one, so an `AllocationFailed` found while polling reaches the engine as
//!   [`ProviderError::InsufficientCapacity`].
//! - **State.** [`CloudProvider::get`] reads the VM and its instance view: `PowerState/running`
//!   is [`InstanceState::Running`], a spot VM that was deallocated or stopped has been evicted
//!   ([`InstanceState::Lost`] with [`FailureCause::Interrupted`]), a failed provisioning is
//!   lost with the cause its error code names.
//! - **Credentials.** A service principal's client secret ([`AzureCredentials`], from a
//!   Kubernetes Secret's data) is exchanged for a token by `azure_identity`'s
//!   `ClientSecretCredential`, which caches it until shortly before it expires. The authority
//!   host and the ARM endpoint can be pointed at a local server (the tests do).
//! - **Metrics** come from Azure Monitor (`Microsoft.Insights/metrics`, api-version
//!   `2023-10-01`): `Percentage CPU` (mean), `Network In Total` and `Network Out Total` (summed)
//!   over [`AzureConfig::metrics_window`].
//! - **Prices** come from the catalog the provider is configured with (on-demand and spot per
//!   offer); building that table from published prices is the pricing module's work.
//!
//! Why REST over `reqwest` rather than `azure_mgmt_compute`: see the operator README
//! ("Azure"). In short, the generated client's long-running-operation support does not follow
//! `Azure-AsyncOperation`: its create-or-update future re-sends the PUT until the body says
//! `Succeeded`, and its delete future reads a provisioning state from the `Location` poll's
//! body, which ARM leaves empty, so a delete that is accepted with `202` fails.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_core::auth::TokenCredential;
use azure_identity::ClientSecretCredential;
use engine::{FailureCause, Market};
use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::gcp::rfc3339;
use super::{
    CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceMetrics, InstanceState, PriceQuote,
    ProviderError, ProviderResult,
};

/// The ARM api-version of every `Microsoft.Compute` call.
pub const API_VERSION: &str = "2024-07-01";
/// The api-version of Azure Monitor's `Microsoft.Insights/metrics`.
pub const METRICS_API_VERSION: &str = "2023-10-01";
/// Azure Monitor's platform metrics of a VM that [`CloudProvider::metrics`] reads: mean CPU
/// percent, bytes received, bytes sent.
pub const VM_METRICS: [&str; 3] = ["Percentage CPU", "Network In Total", "Network Out Total"];
/// Tag holding the owning object's UID.
pub const TAG_OWNER: &str = "novacron-owner";
/// Tag holding the replica slot.
pub const TAG_SLOT: &str = "novacron-slot";
/// Tag holding the client token the VM was created with.
pub const TAG_TOKEN: &str = "novacron-client-token";
/// Secret data key of the directory (tenant) id.
pub const KEY_TENANT: &str = "AZURE_TENANT_ID";
/// Secret data key of the service principal's application (client) id.
pub const KEY_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// Secret data key of the service principal's client secret.
pub const KEY_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
/// Secret data key of the subscription id.
pub const KEY_SUBSCRIPTION: &str = "AZURE_SUBSCRIPTION_ID";

/// Errors of building an Azure provider (credentials and configuration). Calls to the cloud fail
/// with [`ProviderError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Secret lacks keys. Names the keys, never a value.
    #[error("Azure credentials Secret is missing key(s) {}; it needs {KEY_TENANT}, {KEY_CLIENT_ID}, {KEY_CLIENT_SECRET} and {KEY_SUBSCRIPTION}", .0.join(", "))]
    MissingKeys(Vec<String>),
    /// A key's value cannot be used (empty, not UTF-8).
    #[error("Azure credentials Secret key {key}: {reason}")]
    InvalidKey {
        /// The Secret data key.
        key: String,
        /// What is wrong with it (never the value).
        reason: String,
    },
    /// A configuration field cannot be used.
    #[error("Azure provider config {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

/// Module result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A service principal's client-secret credentials and the subscription they act in. `Debug`
/// shows the ids but never the secret.
#[derive(Clone, PartialEq)]
pub struct AzureCredentials {
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Subscription id.
    pub subscription_id: String,
}

impl fmt::Debug for AzureCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCredentials")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("subscription_id", &self.subscription_id)
            .finish()
    }
}

impl AzureCredentials {
    /// Reads a Kubernetes Secret's `data` (keys [`KEY_TENANT`], [`KEY_CLIENT_ID`],
    /// [`KEY_CLIENT_SECRET`], [`KEY_SUBSCRIPTION`], the names `azure_identity`'s environment
    /// credential uses). Every missing key is named at once; values never appear in errors.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        let keys = [KEY_TENANT, KEY_CLIENT_ID, KEY_CLIENT_SECRET, KEY_SUBSCRIPTION];
        let missing: Vec<String> = keys.iter().filter(|k| !data.contains_key(**k)).map(|k| (*k).to_owned()).collect();
        if !missing.is_empty() {
            return Err(Error::MissingKeys(missing));
        }
        let value = |key: &str| -> Result<String> {
            let bytes = &data[key];
            let s = std::str::from_utf8(bytes)
                .map_err(|_| Error::InvalidKey { key: key.to_owned(), reason: "is not UTF-8 text".into() })?
                .trim();
            if s.is_empty() {
                return Err(Error::InvalidKey { key: key.to_owned(), reason: "is empty".into() });
            }
            Ok(s.to_owned())
        };
        Ok(AzureCredentials {
            tenant_id: value(KEY_TENANT)?,
            client_id: value(KEY_CLIENT_ID)?,
            client_secret: value(KEY_CLIENT_SECRET)?,
            subscription_id: value(KEY_SUBSCRIPTION)?,
        })
    }
}

/// The marketplace image VMs boot from.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageReference {
    /// Publisher (`Canonical`).
    pub publisher: String,
    /// Offer (`ubuntu-24_04-lts`).
    pub offer: String,
    /// SKU (`server`).
    pub sku: String,
    /// Version (`latest`).
    pub version: String,
}

/// What a spot VM does when Azure evicts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// The VM and its disks are deleted (nothing is billed afterwards).
    Delete,
    /// The VM is deallocated and kept (its disks are billed).
    Deallocate,
}

impl EvictionPolicy {
    fn as_str(self) -> &'static str {
        match self {
            EvictionPolicy::Delete => "Delete",
            EvictionPolicy::Deallocate => "Deallocate",
        }
    }
}

/// Everything an [`AzureProvider`] needs. [`AzureConfig::new`] fills the defaults.
#[derive(Clone, Debug)]
pub struct AzureConfig {
    /// The catalog's name of the region this provider serves (`azure-eastus`); instances report it.
    pub region: String,
    /// ARM location of that region (`eastus`).
    pub location: String,
    /// Resource group VMs are created and listed in.
    pub resource_group: String,
    /// Subnet resource id each VM's NIC joins.
    pub subnet_id: String,
    /// Image.
    pub image: ImageReference,
    /// Linux admin user.
    pub admin_username: String,
    /// SSH public key (OpenSSH format) for the admin user; password login is disabled.
    pub ssh_public_key: String,
    /// OS disk storage type (`Standard_LRS`, `Premium_LRS`, ...).
    pub os_disk_type: String,
    /// What an evicted spot VM does.
    pub eviction_policy: EvictionPolicy,
    /// Spot `billingProfile.maxPrice` in $/h; `-1` means up to the on-demand price (never
    /// evicted for price).
    pub spot_max_price: f64,
    /// ARM endpoint (`https://management.azure.com`); a local server in tests.
    pub arm_endpoint: String,
    /// Microsoft Entra authority host (`https://login.microsoftonline.com`); a local server in tests.
    pub authority_host: String,
    /// OAuth scope of ARM tokens (`https://management.azure.com/.default`); it does not follow an
    /// endpoint override.
    pub token_scope: String,
    /// Wait between polls of a long-running operation when ARM sends no `Retry-After`.
    pub poll_interval: Duration,
    /// Polls of one long-running operation before giving up with an API error.
    pub max_polls: u32,
    /// The window [`CloudProvider::metrics`] reports on (in 5-minute grains).
    pub metrics_window: Duration,
    /// What this provider sells, with on-demand and spot prices (from the pricing tables).
    pub catalog: CloudCatalog,
    /// Credentials.
    pub credentials: AzureCredentials,
}

impl AzureConfig {
    /// A config with the public cloud's endpoints, Ubuntu 24.04, `Standard_LRS` disks, spot VMs
    /// deleted on eviction at up to the on-demand price, 5 s polls (at most 360).
    pub fn new(
        region: impl Into<String>,
        location: impl Into<String>,
        resource_group: impl Into<String>,
        subnet_id: impl Into<String>,
        ssh_public_key: impl Into<String>,
        credentials: AzureCredentials,
    ) -> Self {
        AzureConfig {
            region: region.into(),
            location: location.into(),
            resource_group: resource_group.into(),
            subnet_id: subnet_id.into(),
            image: ImageReference {
                publisher: "Canonical".into(),
                offer: "ubuntu-24_04-lts".into(),
                sku: "server".into(),
                version: "latest".into(),
            },
            admin_username: "novacron".into(),
            ssh_public_key: ssh_public_key.into(),
            os_disk_type: "Standard_LRS".into(),
            eviction_policy: EvictionPolicy::Delete,
            spot_max_price: -1.0,
            arm_endpoint: "https://management.azure.com".into(),
            authority_host: "https://login.microsoftonline.com".into(),
            token_scope: "https://management.azure.com/.default".into(),
            poll_interval: Duration::from_secs(5),
            max_polls: 360,
            metrics_window: Duration::from_secs(600),
            catalog: CloudCatalog::default(),
            credentials,
        }
    }
}

/// api-version of Microsoft.ResourceHealth (service health events).
pub const RESOURCE_HEALTH_API_VERSION: &str = "2024-02-01";

/// Whether a page of Resource Health events (`Events_ListBySubscriptionId`) holds an active
/// service issue of Virtual Machines whose impact in `location` (`eastus`; events name regions
/// by display name, `East US`) is active.
pub fn service_issue_in(page: &Value, location: &str) -> bool {
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    let location = squash(location);
    let events = page.get("value").and_then(Value::as_array).into_iter().flatten();
    events.filter_map(|e| e.get("properties")).any(|p| {
        let is = |k: &str, v: &str| p.get(k).and_then(Value::as_str) == Some(v);
        is("eventType", "ServiceIssue")
            && is("status", "Active")
            && p.get("impact").and_then(Value::as_array).into_iter().flatten().any(|i| {
                i.get("impactedService").and_then(Value::as_str) == Some("Virtual Machines")
                    && i.get("impactedRegions").and_then(Value::as_array).into_iter().flatten().any(|r| {
                        r.get("impactedRegion").and_then(Value::as_str).is_some_and(|n| squash(n) == location)
                            && r.get("status").and_then(Value::as_str) == Some("Active")
                    })
            })
    })
}

/// The VM name for a client token: `nc-` and the token, lower-cased, with every character other
/// than `a-z`, `0-9` and `-` replaced by `-`; a name longer than 64 characters (Azure's limit for
/// Linux VMs and computer names) keeps its first 47 characters and a 16-digit hash of the token.
pub fn vm_name(client_token: &str) -> String {
    let clean: String =
        client_token.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let name = format!("nc-{}", clean.trim_matches('-'));
    if name.len() <= 64 {
        return name;
    }
    format!("{}-{:016x}", name[..47].trim_end_matches('-'), fnv1a(client_token.as_bytes()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Azure virtual machines in one region and resource group.
pub struct AzureProvider {
    config: AzureConfig,
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
}

impl fmt::Debug for AzureProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureProvider")
            .field("region", &self.config.region)
            .field("resource_group", &self.config.resource_group)
            .field("arm_endpoint", &self.config.arm_endpoint)
            .field("credentials", &self.config.credentials)
            .finish_non_exhaustive()
    }
}

impl AzureProvider {
    /// A provider for `config`. Fails on an endpoint that is not a URL or an empty field.
    pub fn new(config: AzureConfig) -> Result<Self> {
        for (field, value) in [
            ("region", &config.region),
            ("location", &config.location),
            ("resource_group", &config.resource_group),
            ("subnet_id", &config.subnet_id),
            ("admin_username", &config.admin_username),
            ("ssh_public_key", &config.ssh_public_key),
        ] {
            if value.trim().is_empty() {
                return Err(Error::InvalidConfig { field, reason: "must not be empty".into() });
            }
        }
        let bad_url = |field, e: &dyn fmt::Display| Error::InvalidConfig { field, reason: format!("not a URL: {e}") };
        reqwest::Url::parse(&config.arm_endpoint).map_err(|e| bad_url("arm_endpoint", &e))?;
        let authority = azure_core::Url::parse(&config.authority_host).map_err(|e| bad_url("authority_host", &e))?;
        if !(config.spot_max_price == -1.0 || config.spot_max_price > 0.0) {
            return Err(Error::InvalidConfig {
                field: "spot_max_price",
                reason: format!("{} $/h: must be -1 (up to the on-demand price) or above 0", config.spot_max_price),
            });
        }
        let c = &config.credentials;
        let credential = ClientSecretCredential::new(
            azure_core::new_http_client(),
            authority,
            c.tenant_id.clone(),
            c.client_id.clone(),
            c.client_secret.clone(),
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::InvalidConfig { field: "arm_endpoint", reason: format!("HTTP client: {e}") })?;
        Ok(AzureProvider { config, http, credential: Arc::new(credential) })
    }

    fn vm_url(&self, name: &str) -> String {
        format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines/{}",
            self.config.arm_endpoint.trim_end_matches('/'),
            self.config.credentials.subscription_id,
            self.config.resource_group,
            name
        )
    }

    async fn token(&self) -> ProviderResult<String> {
        let token = self.credential.get_token(&[self.config.token_scope.as_str()]).await.map_err(|e| {
            ProviderError::Auth(format!(
                "Azure: no token for client {} in tenant {} (credentials from Secret keys {KEY_CLIENT_ID}/{KEY_CLIENT_SECRET}): {e}",
                self.config.credentials.client_id, self.config.credentials.tenant_id
            ))
        })?;
        Ok(token.token.secret().to_owned())
    }

    /// One authenticated ARM call; a transport failure is an API error.
    async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> ProviderResult<reqwest::Response> {
        let token = self.token().await?;
        let mut req = self.http.request(method.clone(), url).bearer_auth(token);
        if !url.contains("api-version=") {
            req = req.query(&[("api-version", API_VERSION)]);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send()
            .await
            .map_err(|e| ProviderError::Api(format!("Azure {method} {}: {}", strip_query(url), e.without_url())))
    }

    /// Reads a response; a non-success status becomes its mapped error.
    async fn read(
        &self,
        what: &str,
        resp: reqwest::Response,
    ) -> ProviderResult<(StatusCode, reqwest::header::HeaderMap, Value)> {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text =
            resp.text().await.map_err(|e| ProviderError::Api(format!("Azure {what}: reading the answer: {e}")))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if !status.is_success() {
            return Err(map_arm_error(what, Some(status), &body));
        }
        Ok((status, headers, body))
    }

    /// Follows a long-running operation started by a response with these headers until it ends.
    async fn wait(&self, what: &str, headers: &reqwest::header::HeaderMap) -> ProviderResult<()> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (url, async_op) = match (header("azure-asyncoperation"), header("location")) {
            (Some(u), _) => (u, true),
            (None, Some(u)) => (u, false),
            (None, None) => return Ok(()),
        };
        let mut delay = retry_after(headers).unwrap_or(self.config.poll_interval);
        for _ in 0..self.config.max_polls {
            tokio::time::sleep(delay).await;
            let resp = self.call(Method::GET, &url, None).await?;
            let (status, h, body) = self.read(what, resp).await?;
            delay = retry_after(&h).unwrap_or(self.config.poll_interval);
            if async_op {
                match body.get("status").and_then(Value::as_str).unwrap_or("") {
                    "Succeeded" => return Ok(()),
                    "Failed" | "Canceled" => return Err(map_arm_error(what, None, &body)),
                    _ => {}
                }
            } else if status != StatusCode::ACCEPTED {
                return Ok(());
            }
        }
        Err(ProviderError::Api(format!("Azure {what}: still running after {} polls", self.config.max_polls)))
    }

    fn request_body(&self, request: &CreateRequest, name: &str) -> Value {
        let c = &self.config;
        let mut tags: BTreeMap<String, String> =
            request.tags.iter().map(|(k, v)| (tag_name(k), tag_value(v))).collect();
        tags.insert(TAG_OWNER.into(), request.owner_uid.clone());
        tags.insert(TAG_SLOT.into(), request.slot.to_string());
        tags.insert(TAG_TOKEN.into(), request.client_token.clone());
        let mut properties = json!({
            "hardwareProfile": {"vmSize": request.instance_type},
            "storageProfile": {
                "imageReference": {
                    "publisher": c.image.publisher,
                    "offer": c.image.offer,
                    "sku": c.image.sku,
                    "version": c.image.version,
                },
                "osDisk": {
                    "name": format!("{name}-osdisk"),
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "deleteOption": "Delete",
                    "managedDisk": {"storageAccountType": c.os_disk_type},
                },
            },
            "osProfile": {
                "computerName": name,
                "adminUsername": c.admin_username,
                "linuxConfiguration": {
                    "disablePasswordAuthentication": true,
                    "ssh": {"publicKeys": [{
                        "path": format!("/home/{}/.ssh/authorized_keys", c.admin_username),
                        "keyData": c.ssh_public_key,
                    }]},
                },
            },
            "networkProfile": {
                "networkApiVersion": "2020-11-01",
                "networkInterfaceConfigurations": [{
                    "name": format!("{name}-nic"),
                    "properties": {
                        "primary": true,
                        "deleteOption": "Delete",
                        "ipConfigurations": [{
                            "name": "ipconfig1",
                            "properties": {"primary": true, "subnet": {"id": c.subnet_id}},
                        }],
                    },
                }],
            },
        });
        if request.market == Market::Spot {
            properties["priority"] = json!("Spot");
            properties["evictionPolicy"] = json!(c.eviction_policy.as_str());
            properties["billingProfile"] = json!({"maxPrice": c.spot_max_price});
        }
        let mut body = json!({"location": c.location, "tags": tags, "properties": properties});
        if !request.zone.is_empty() {
            body["zones"] = json!([request.zone]);
        }
        body
    }

    /// The VM as ARM reports it, `None` on 404.
    async fn get_vm(&self, name: &str) -> ProviderResult<Option<Value>> {
        let resp = self.call(Method::GET, &self.vm_url(name), None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(self.read("get VM", resp).await?.2))
    }

    async fn instance_view(&self, name: &str) -> ProviderResult<Option<Value>> {
        let resp = self.call(Method::GET, &format!("{}/instanceView", self.vm_url(name)), None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(self.read("VM instance view", resp).await?.2))
    }

    /// A VM and its instance view as a [`CloudInstance`].
    async fn describe(&self, vm: &Value) -> ProviderResult<Option<CloudInstance>> {
        let name = vm.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let view = if vm.pointer("/properties/instanceView").is_some() {
            vm.pointer("/properties/instanceView").cloned()
        } else {
            self.instance_view(&name).await?
        };
        let Some(view) = view else { return Ok(None) };
        Ok(Some(self.to_instance(vm, &view)))
    }

    fn to_instance(&self, vm: &Value, view: &Value) -> CloudInstance {
        let s = |p: &str| vm.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
        let spot =
            vm.pointer("/properties/priority").and_then(Value::as_str).is_some_and(|p| p == "Spot" || p == "Low");
        CloudInstance {
            id: s("/name"),
            client_token: s(&format!("/tags/{TAG_TOKEN}")),
            owner_uid: s(&format!("/tags/{TAG_OWNER}")),
            slot: s(&format!("/tags/{TAG_SLOT}")).parse().unwrap_or(0),
            region: self.config.region.clone(),
            zone: vm.pointer("/zones/0").and_then(Value::as_str).unwrap_or_default().to_owned(),
            instance_type: s("/properties/hardwareProfile/vmSize"),
            market: if spot { Market::Spot } else { Market::OnDemand },
            state: instance_state(s("/properties/provisioningState").as_str(), view, spot),
        }
    }
}

/// The state of a VM from its provisioning state and instance view statuses.
pub fn instance_state(provisioning_state: &str, view: &Value, spot: bool) -> InstanceState {
    let codes: Vec<&str> = view
        .get("statuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.get("code").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    let has = |code: &str| codes.iter().any(|c| c.eq_ignore_ascii_case(code));
    let provisioning = codes
        .iter()
        .find_map(|c| c.strip_prefix("ProvisioningState/"))
        .unwrap_or(provisioning_state)
        .to_ascii_lowercase();
    if provisioning.starts_with("deleting") {
        return InstanceState::Terminated;
    }
    if provisioning.starts_with("failed") {
        // The failed status names the error: `ProvisioningState/failed/AllocationFailed`.
        let detail: String = view
            .get("statuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|s| s.get("code").and_then(Value::as_str).is_some_and(|c| c.starts_with("ProvisioningState/")))
            .map(|s| {
                format!(
                    "{} {}",
                    s["code"].as_str().unwrap_or_default(),
                    s.get("message").and_then(Value::as_str).unwrap_or_default()
                )
            })
            .collect();
        let cause = if CAPACITY_CODES.iter().any(|c| detail.contains(c)) {
            FailureCause::InsufficientCapacity
        } else {
            FailureCause::Crashed
        };
        return InstanceState::Lost(cause);
    }
    if has("PowerState/running") {
        return InstanceState::Running;
    }
    if has("PowerState/deallocated")
        || has("PowerState/deallocating")
        || has("PowerState/stopped")
        || has("PowerState/stopping")
    {
        // Nothing of ours stops or deallocates a VM: Azure did, by eviction for a spot VM.
        return InstanceState::Lost(if spot { FailureCause::Interrupted } else { FailureCause::Crashed });
    }
    InstanceState::Pending
}

/// ARM error codes that mean the offer has no capacity now.
pub const CAPACITY_CODES: [&str; 4] =
    ["SkuNotAvailable", "AllocationFailed", "ZonalAllocationFailed", "OverconstrainedAllocationRequest"];
/// ARM error codes that mean the credentials were refused.
pub const AUTH_CODES: [&str; 5] = [
    "AuthenticationFailed",
    "InvalidAuthenticationToken",
    "InvalidAuthenticationTokenTenant",
    "ExpiredAuthenticationToken",
    "AuthorizationFailed",
];

/// Maps an ARM error (`{"error": {"code", "message"}}`, or a failed operation's status document
/// with the same `error`) to a [`ProviderError`].
pub fn map_arm_error(what: &str, status: Option<StatusCode>, body: &Value) -> ProviderError {
    let code = body.pointer("/error/code").and_then(Value::as_str).unwrap_or_default();
    let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
    let status_text = status.map(|s| format!("{} ", s.as_u16())).unwrap_or_default();
    let text = format!("Azure {what}: {status_text}{code}: {message}");
    if status == Some(StatusCode::TOO_MANY_REQUESTS) || code == "TooManyRequests" {
        ProviderError::Throttled(text)
    } else if CAPACITY_CODES.contains(&code) {
        ProviderError::InsufficientCapacity(text)
    } else if matches!(status, Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)) || AUTH_CODES.contains(&code) {
        ProviderError::Auth(text)
    } else {
        ProviderError::Api(text)
    }
}

/// An ARM tag name: `<`, `>`, `%`, `&`, `\`, `?` and `/` (which ARM refuses in tag names)
/// replaced by `_`, cut to 512 characters (`app.kubernetes.io/name` → `app.kubernetes.io_name`).
pub fn tag_name(key: &str) -> String {
    key.chars().map(|c| if "<>%&\\?/".contains(c) { '_' } else { c }).take(512).collect()
}

/// An ARM tag value: cut to 256 characters.
pub fn tag_value(value: &str) -> String {
    value.chars().take(256).collect()
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers.get("retry-after")?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Prices of the catalog's offers in `region`: on-demand always, spot where there is a price.
pub(crate) fn catalog_prices(catalog: &CloudCatalog, region: &str) -> Vec<PriceQuote> {
    let mut out = Vec::new();
    for o in catalog.offers.iter().filter(|o| o.region == region) {
        let quote = |market, price_per_h| PriceQuote {
            region: o.region.clone(),
            zone: o.zone.clone(),
            instance_type: o.instance_type.clone(),
            market,
            price_per_h,
        };
        out.push(quote(Market::OnDemand, o.on_demand_per_h));
        if let Some(p) = o.spot_per_h {
            out.push(quote(Market::Spot, p));
        }
    }
    out
}

impl CloudProvider for AzureProvider {
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>> {
        Box::pin(async move { Ok(self.config.catalog.clone()) })
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>> {
        Box::pin(async move {
            if request.region != self.config.region {
                return Err(ProviderError::Api(format!(
                    "Azure provider serves region {}, not {}",
                    self.config.region, request.region
                )));
            }
            let name = vm_name(&request.client_token);
            // The name is the token: a VM of that name is this token's earlier create. ARM's PUT
            // would silently rewrite it into a different request, so look first.
            if let Some(vm) = self.get_vm(&name).await?
                && let Some(existing) = self.describe(&vm).await?
            {
                return if existing.answers(&request) {
                    Ok(existing)
                } else {
                    Err(ProviderError::TokenMismatch(request.client_token))
                };
            }
            let body = self.request_body(&request, &name);
            let resp = self.call(Method::PUT, &self.vm_url(&name), Some(&body)).await?;
            let (_, headers, vm) = self.read("create VM", resp).await?;
            self.wait("create VM", &headers).await?;
            let view = self.instance_view(&name).await?.unwrap_or(Value::Null);
            let mut instance = self.to_instance(&vm, &view);
            // The PUT's answer may lag the operation: what we asked for is what was made.
            instance.client_token = request.client_token;
            instance.owner_uid = request.owner_uid;
            instance.slot = request.slot;
            instance.zone = request.zone;
            instance.instance_type = request.instance_type;
            instance.market = request.market;
            Ok(instance)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>> {
        Box::pin(async move {
            let Some(vm) = self.get_vm(id).await? else { return Ok(None) };
            self.describe(&vm).await
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(async move {
            let resp = self.call(Method::DELETE, &self.vm_url(id), None).await?;
            if matches!(resp.status(), StatusCode::NOT_FOUND | StatusCode::NO_CONTENT) {
                return Ok(());
            }
            let (_, headers, _) = self.read("delete VM", resp).await?;
            self.wait("delete VM", &headers).await
        })
    }

    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>> {
        Box::pin(async move {
            let base = format!(
                "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachines",
                self.config.arm_endpoint.trim_end_matches('/'),
                self.config.credentials.subscription_id,
                self.config.resource_group
            );
            let mut next = Some(base);
            let mut out = Vec::new();
            while let Some(url) = next.take() {
                let resp = self.call(Method::GET, &url, None).await?;
                let (_, _, page) = self.read("list VMs", resp).await?;
                for vm in page.get("value").and_then(Value::as_array).into_iter().flatten() {
                    if vm.pointer(&format!("/tags/{TAG_OWNER}")).and_then(Value::as_str) == Some(owner_uid)
                        && let Some(i) = self.describe(vm).await?
                    {
                        out.push(i);
                    }
                }
                next = page.get("nextLink").and_then(Value::as_str).map(str::to_owned);
            }
            Ok(out)
        })
    }

    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>> {
        Box::pin(async move { Ok(catalog_prices(&self.config.catalog, &self.config.region)) })
    }

    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>> {
        // Azure Service Health, through Resource Health's events of the subscription: an active
        // service issue of Virtual Machines with an active impact in this region.
        Box::pin(async move {
            let mut url = reqwest::Url::parse(&format!(
                "{}/subscriptions/{}/providers/Microsoft.ResourceHealth/events",
                self.config.arm_endpoint.trim_end_matches('/'),
                self.config.credentials.subscription_id
            ))
            .map_err(|e| ProviderError::Api(format!("Azure service health: {e}")))?;
            url.query_pairs_mut()
                .append_pair("api-version", RESOURCE_HEALTH_API_VERSION)
                .append_pair("$filter", "service eq 'Virtual Machines'");
            let mut next = Some(url.to_string());
            let mut pages = 0;
            while let Some(page) = next.take() {
                let resp = self.call(Method::GET, &page, None).await?;
                let (_, _, body) = self.read("service health events", resp).await?;
                if service_issue_in(&body, &self.config.location) {
                    return Ok(vec![self.config.region.clone()]);
                }
                pages += 1;
                // A long history is paged; active issues come first, so a few pages suffice.
                next = body.get("nextLink").and_then(Value::as_str).filter(|_| pages < 10).map(str::to_owned);
            }
            Ok(Vec::new())
        })
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>> {
        Box::pin(async move {
            let end = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
            let window = self.config.metrics_window.as_secs().max(300);
            let mut url = reqwest::Url::parse(&format!("{}/providers/Microsoft.Insights/metrics", self.vm_url(id)))
                .map_err(|e| ProviderError::Api(format!("Azure metrics of {id}: {e}")))?;
            url.query_pairs_mut()
                .append_pair("api-version", METRICS_API_VERSION)
                .append_pair("metricnamespace", "Microsoft.Compute/virtualMachines")
                .append_pair("metricnames", &VM_METRICS.join(","))
                .append_pair("timespan", &format!("{}/{}", rfc3339(end.saturating_sub(window)), rfc3339(end)))
                .append_pair("interval", "PT5M")
                .append_pair("aggregation", "average,total");
            let resp = self.call(Method::GET, url.as_str(), None).await?;
            let (_, _, body) = self.read("VM metrics", resp).await?;
            // Per metric, the values of one aggregation over every point of every series.
            let values = |metric: &str, aggregation: &str| -> Vec<f64> {
                body.get("value")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|m| m.pointer("/name/value").and_then(Value::as_str) == Some(metric))
                    .flat_map(|m| m.get("timeseries").and_then(Value::as_array).into_iter().flatten())
                    .flat_map(|ts| ts.get("data").and_then(Value::as_array).into_iter().flatten())
                    .filter_map(|d| d.get(aggregation).and_then(Value::as_f64))
                    .collect()
            };
            let cpu = values(VM_METRICS[0], "average");
            let sum = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>());
            Ok(InstanceMetrics {
                cpu_percent: (!cpu.is_empty()).then(|| cpu.iter().sum::<f64>() / cpu.len() as f64),
                network_in_bytes: sum(values(VM_METRICS[1], "total")),
                network_out_bytes: sum(values(VM_METRICS[2], "total")),
                window_s: window,
            })
        })
    }
}
