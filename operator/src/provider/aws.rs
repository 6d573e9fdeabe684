//! Amazon EC2 behind [`CloudProvider`], through the official `aws-sdk-ec2` and
//! `aws-sdk-cloudwatch` crates.
//!
//! **Model.** One [`AwsCloud`] covers the EC2 regions of its [`AwsConfig`]; each region has its own
//! EC2 and CloudWatch client. Regions appear in the catalog as `aws-<code>` (`aws-us-east-1`),
//! with the alias `aws-us-east` for a code ending in `-1`, so the seed manifest's names resolve.
//! Zones are EC2 availability zones (`us-east-1a`).
//!
//! - **create** is `RunInstances` (one instance, the configured AMI, the request's zone) with
//!   `ClientToken` = the request's client token, which the controller derives from the owning
//!   object's UID. Before it, a `DescribeInstances` on the tag `novacron.io/client-token` looks for
//!   an instance made with the same token: EC2 itself answers a repeated token with the first
//!   instance, but not every EC2-compatible endpoint does (moto 5.2 ignores `ClientToken`), and
//!   the look-up also turns a token reused for a different request into
//!   [`ProviderError::TokenMismatch`] before anything is created. On real EC2 the `ClientToken`
//!   still closes the race between two concurrent creates. Instances carry the tags
//!   [`TAG_OWNER_UID`], [`TAG_SLOT`], [`TAG_CLIENT_TOKEN`] and the request's own tags. Spot is
//!   `InstanceMarketOptions` (one-time request, terminate on interruption).
//! - **get**/**list** are `DescribeInstances` (list filters on the owner tag). EC2 states map to
//!   [`InstanceState`]; a state reason such as `Server.SpotInstanceTermination` or
//!   `Server.InsufficientInstanceCapacity` makes a stopped or terminated instance
//!   [`InstanceState::Lost`] with the matching [`FailureCause`] (see [`instance_state`]). A running
//!   spot instance whose spot request EC2 has marked for interruption
//!   (`DescribeSpotInstanceRequests` status `marked-for-termination`, `-stop`, `-hibernation`) is
//!   [`InstanceState::Interrupting`], due two minutes after the mark.
//! - **delete** is `TerminateInstances`; `InvalidInstanceID.NotFound` counts as done.
//! - **prices** are the latest `DescribeSpotPriceHistory` entry per zone and type (Linux/UNIX),
//!   plus on-demand prices from a table the caller supplies ([`AwsConfig::on_demand_prices`],
//!   [`AwsCloud::set_on_demand_prices`]): EC2 has no API for on-demand prices.
//! - **unhealthy_regions**: a region none of whose zones `DescribeAvailabilityZones` reports
//!   `available`.
//! - **metrics**: CloudWatch `GetMetricData` over the last [`AwsConfig::metrics_window`]:
//!   `CPUUtilization` (average), `NetworkIn` and `NetworkOut` (sums).
//! - **catalog**: zones from `DescribeAvailabilityZones`, shapes from `DescribeInstanceTypes`,
//!   offers where `DescribeInstanceTypeOfferings` sells the type in the zone and the on-demand
//!   table has a price, with the current spot price.
//!
//! **Errors.** EC2 error codes map onto [`ProviderError`] in one place ([`classify_code`]):
//! throttling codes and transient failures (5xx, timeouts, connection errors) become
//! [`ProviderError::Throttled`], which [`super::retry::Retrying`] retries; the SDK's own retries
//! are switched off so that every provider is retried by the same policy. Capacity and quota codes
//! become [`ProviderError::InsufficientCapacity`]; credential and permission codes
//! [`ProviderError::Auth`]; `IdempotentParameterMismatch` [`ProviderError::TokenMismatch`].
//!
//! **Credentials** come from a Kubernetes Secret's data ([`AwsCredentials::from_secret_data`]) or,
//! without one, from the SDK's default chain (environment, profile, web identity, IMDS). They
//! never appear in `Debug` output, logs or errors: [`AwsCredentials`] prints redacted, and every
//! error message is scrubbed of the configured key id, secret and session token.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::config::{Credentials, Region};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::primitives::DateTime;
use aws_sdk_ec2::types::{
    Filter, Instance, InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceStateName, InstanceType,
    LocationType, MarketType, Placement, ResourceType, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification,
};
use engine::{FailureCause, Market, Provider};
use futures::future::BoxFuture;

use super::{
    CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceMetrics, InstanceState, InstanceTypeInfo,
    OfferInfo, PriceQuote, ProviderError, ProviderResult, RegionInfo,
};

/// Tag holding the owning Kubernetes object's UID.
pub const TAG_OWNER_UID: &str = "novacron.io/owner-uid";
/// Tag holding the replica slot.
pub const TAG_SLOT: &str = "novacron.io/slot";
/// Tag holding the client token the instance was created with.
pub const TAG_CLIENT_TOKEN: &str = "novacron.io/client-token";
/// Prefix of the catalog's region names (`aws-us-east-1`).
pub const REGION_PREFIX: &str = "aws-";

/// Secret data keys for the access key id (the first is the documented one).
pub const SECRET_ACCESS_KEY_ID: [&str; 2] = ["AWS_ACCESS_KEY_ID", "accessKeyId"];
/// Secret data keys for the secret access key.
pub const SECRET_SECRET_ACCESS_KEY: [&str; 2] = ["AWS_SECRET_ACCESS_KEY", "secretAccessKey"];
/// Secret data keys for the optional session token.
pub const SECRET_SESSION_TOKEN: [&str; 2] = ["AWS_SESSION_TOKEN", "sessionToken"];

/// Product description of the spot prices taken (Linux, in a VPC or EC2-Classic's old name).
const SPOT_PRODUCTS: [&str; 2] = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"];
/// How long after EC2 marks a spot instance for interruption it takes it back.
const SPOT_NOTICE_MS: u64 = 120_000;
/// Pages read from a paginated call before giving up (a runaway `NextToken`).
const MAX_PAGES: usize = 100;

/// What building an [`AwsCloud`] or its credentials can fail with. Messages name the Secret key
/// or config field at fault, never a credential value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required key is missing from the credentials Secret.
    #[error("{source_name}: no {what}: expected data key {expected}")]
    MissingKey {
        /// Where the data came from (`secret default/aws-credentials`).
        source_name: String,
        /// What is missing (`access key id`).
        what: &'static str,
        /// The keys that would do.
        expected: String,
    },
    /// A credentials Secret key holds something unusable (not UTF-8, empty, blanks inside).
    #[error("{source_name}: data key {key} {problem}")]
    BadValue {
        /// Where the data came from.
        source_name: String,
        /// The key.
        key: String,
        /// What is wrong with it (never the value).
        problem: &'static str,
    },
    /// The configuration cannot work.
    #[error("AWS provider config: {0}")]
    Config(String),
}

/// Result of building the AWS provider.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Static AWS credentials, as read from a Kubernetes Secret. Never printed: `Debug` shows
/// `[redacted]` for every field.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &"[redacted]")
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &self.session_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl AwsCredentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    /// Credentials from a Secret's `data` (values already base64-decoded, as k8s-openapi hands
    /// them over). Keys: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally
    /// `AWS_SESSION_TOKEN` (or `accessKeyId`, `secretAccessKey`, `sessionToken`). A trailing
    /// newline (a Secret made from files) is dropped. `source_name` names the Secret in errors
    /// (`secret default/aws-credentials`).
    pub fn from_secret_data(source_name: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        let access_key_id = secret_value(source_name, data, &SECRET_ACCESS_KEY_ID, "access key id")?;
        let secret_access_key = secret_value(source_name, data, &SECRET_SECRET_ACCESS_KEY, "secret access key")?;
        let session_token = match secret_value(source_name, data, &SECRET_SESSION_TOKEN, "session token") {
            Ok(t) => Some(t),
            Err(Error::MissingKey { .. }) => None,
            Err(e) => return Err(e),
        };
        let (access_key_id, secret_access_key) = (access_key_id, secret_access_key);
        Ok(AwsCredentials { access_key_id, secret_access_key, session_token })
    }

    /// The secrets, for scrubbing messages.
    fn secrets(&self) -> impl Iterator<Item = &str> {
        [Some(self.access_key_id.as_str()), Some(self.secret_access_key.as_str()), self.session_token.as_deref()]
            .into_iter()
            .flatten()
    }
}

fn secret_value(
    source_name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    keys: &[&str],
    what: &'static str,
) -> Result<String> {
    let Some((key, raw)) = keys.iter().find_map(|k| data.get(*k).map(|v| (*k, v))) else {
        return Err(Error::MissingKey { source_name: source_name.to_owned(), what, expected: keys.join(" or ") });
    };
    let bad = |problem| Error::BadValue { source_name: source_name.to_owned(), key: key.to_owned(), problem };
    let text = std::str::from_utf8(raw).map_err(|_| bad("is not UTF-8"))?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return Err(bad("is empty"));
    }
    if text.chars().any(char::is_whitespace) {
        return Err(bad("contains blanks"));
    }
    Ok(text.to_owned())
}

/// On-demand $/h by (EC2 region code, instance type): `("us-east-1", "m5.large") → 0.096`.
pub type OnDemandPrices = BTreeMap<(String, String), f64>;

/// How to reach EC2 and what to sell. Build it, then [`AwsCloud::new`].
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// EC2 region codes (`us-east-1`).
    pub regions: Vec<String>,
    /// Instance types to sell (`m5.large`).
    pub instance_types: Vec<String>,
    /// AMI launched in every region without an entry in [`AwsConfig::region_image_ids`].
    pub image_id: String,
    /// AMI per region code (AMI ids are regional).
    pub region_image_ids: BTreeMap<String, String>,
    /// Endpoint for every EC2 and CloudWatch call instead of AWS's (a test server).
    pub endpoint_url: Option<String>,
    /// Endpoint for CloudWatch calls only, instead of [`AwsConfig::endpoint_url`].
    pub cloudwatch_endpoint_url: Option<String>,
    /// Static credentials; `None` uses the SDK's default chain.
    pub credentials: Option<AwsCredentials>,
    /// On-demand prices (EC2 has no price API). Offers without a price are not sold.
    pub on_demand_prices: OnDemandPrices,
    /// Instances each offer can hold, as the catalog tells the engine (EC2 quotas are per
    /// account and region in vCPUs; set this from yours).
    pub offer_capacity: u32,
    /// Grid carbon intensity reported for every region, gCO2e/kWh, unless
    /// [`AwsConfig::region_carbon_g_per_kwh`] has it.
    pub carbon_g_per_kwh: f64,
    /// Carbon intensity per region code.
    pub region_carbon_g_per_kwh: BTreeMap<String, f64>,
    /// Latitude/longitude per region code, for regions missing from the built-in table (or to
    /// correct it).
    pub region_locations: BTreeMap<String, (f64, f64)>,
    /// Longest time one API call may take (connect, retries excluded, read), after which it fails
    /// as [`ProviderError::Throttled`] (transient).
    pub operation_timeout: Duration,
    /// Window the metrics cover.
    pub metrics_window: Duration,
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            regions: vec!["us-east-1".into()],
            instance_types: vec!["m5.large".into()],
            image_id: String::new(),
            region_image_ids: BTreeMap::new(),
            endpoint_url: None,
            cloudwatch_endpoint_url: None,
            credentials: None,
            on_demand_prices: OnDemandPrices::new(),
            offer_capacity: 20,
            carbon_g_per_kwh: 400.0,
            region_carbon_g_per_kwh: BTreeMap::new(),
            region_locations: BTreeMap::new(),
            operation_timeout: Duration::from_secs(30),
            metrics_window: Duration::from_secs(600),
        }
    }
}

/// Approximate locations of the AWS regions (the metro area each is named after).
const REGION_LOCATIONS: [(&str, (f64, f64)); 24] = [
    ("us-east-1", (38.9, -77.4)),
    ("us-east-2", (40.0, -83.0)),
    ("us-west-1", (37.4, -121.9)),
    ("us-west-2", (45.8, -119.7)),
    ("ca-central-1", (45.5, -73.6)),
    ("sa-east-1", (-23.5, -46.6)),
    ("eu-west-1", (53.3, -6.3)),
    ("eu-west-2", (51.5, -0.1)),
    ("eu-west-3", (48.9, 2.4)),
    ("eu-central-1", (50.1, 8.7)),
    ("eu-central-2", (47.4, 8.5)),
    ("eu-north-1", (59.3, 18.1)),
    ("eu-south-1", (45.5, 9.2)),
    ("eu-south-2", (41.6, -0.9)),
    ("ap-northeast-1", (35.7, 139.7)),
    ("ap-northeast-2", (37.6, 127.0)),
    ("ap-northeast-3", (34.7, 135.5)),
    ("ap-southeast-1", (1.3, 103.8)),
    ("ap-southeast-2", (-33.9, 151.2)),
    ("ap-south-1", (19.1, 72.9)),
    ("ap-east-1", (22.3, 114.2)),
    ("me-south-1", (26.1, 50.6)),
    ("me-central-1", (24.5, 54.4)),
    ("af-south-1", (-33.9, 18.4)),
];

struct RegionClients {
    ec2: aws_sdk_ec2::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    image_id: String,
    location: (f64, f64),
    carbon: f64,
}

/// The AWS provider. Cheap to share behind an `Arc`.
pub struct AwsCloud {
    regions: BTreeMap<String, RegionClients>,
    instance_types: Vec<String>,
    on_demand: RwLock<OnDemandPrices>,
    offer_capacity: u32,
    metrics_window: Duration,
    secrets: Vec<String>,
    /// Region code of every instance id seen, so `get`/`delete` ask one region.
    instance_regions: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for AwsCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCloud")
            .field("regions", &self.regions.keys().collect::<Vec<_>>())
            .field("instance_types", &self.instance_types)
            .finish_non_exhaustive()
    }
}

impl AwsCloud {
    /// A provider for `config`: one EC2 and one CloudWatch client per region. Nothing is called
    /// yet (credentials from the default chain load on the first call).
    pub async fn new(config: AwsConfig) -> Result<Self> {
        if config.regions.is_empty() {
            return Err(Error::Config("regions is empty: name at least one EC2 region code (us-east-1)".into()));
        }
        if config.instance_types.is_empty() {
            return Err(Error::Config("instance_types is empty: name at least one (m5.large)".into()));
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // Region of the loader itself; every client sets its own below.
            .region(Region::new(config.regions[0].clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().operation_attempt_timeout(config.operation_timeout).build());
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(c) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "kubernetes-secret",
            ));
        }
        let shared = loader.load().await;
        let mut regions = BTreeMap::new();
        for code in &config.regions {
            if code.is_empty() || !code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
                return Err(Error::Config(format!("region {code:?} is not an EC2 region code (like us-east-1)")));
            }
            let image_id = config.region_image_ids.get(code).unwrap_or(&config.image_id).clone();
            if image_id.is_empty() {
                return Err(Error::Config(format!(
                    "no AMI for region {code}: set image_id or region_image_ids[{code}]"
                )));
            }
            let location = config
                .region_locations
                .get(code)
                .copied()
                .or_else(|| REGION_LOCATIONS.iter().find(|(r, _)| r == code).map(|(_, l)| *l))
                .ok_or_else(|| {
                    Error::Config(format!("no location known for region {code}: add it to region_locations"))
                })?;
            let region = Region::new(code.clone());
            let ec2 = aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&shared).region(region.clone()).build(),
            );
            let mut cw = aws_sdk_cloudwatch::config::Builder::from(&shared).region(region);
            if let Some(url) = &config.cloudwatch_endpoint_url {
                cw = cw.endpoint_url(url);
            }
            let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(cw.build());
            let carbon = config.region_carbon_g_per_kwh.get(code).copied().unwrap_or(config.carbon_g_per_kwh);
            regions.insert(code.clone(), RegionClients { ec2, cloudwatch, image_id, location, carbon });
        }
        let secrets = config.credentials.iter().flat_map(|c| c.secrets().map(str::to_owned)).collect();
        Ok(AwsCloud {
            regions,
            instance_types: config.instance_types,
            on_demand: RwLock::new(config.on_demand_prices),
            offer_capacity: config.offer_capacity,
            metrics_window: config.metrics_window,
            secrets,
            instance_regions: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the on-demand price table (a price table loader calls this when it refreshes).
    pub fn set_on_demand_prices(&self, prices: OnDemandPrices) {
        *self.on_demand.write().unwrap_or_else(|e| e.into_inner()) = prices;
    }

    fn on_demand_price(&self, region: &str, instance_type: &str) -> Option<f64> {
        let table = self.on_demand.read().unwrap_or_else(|e| e.into_inner());
        table.get(&(region.to_owned(), instance_type.to_owned())).copied().filter(|p| *p > 0.0)
    }

    /// The region code of a catalog region name (`aws-us-east-1` or `us-east-1`).
    fn region_code<'a>(&self, name: &'a str) -> ProviderResult<&'a str> {
        let code = name.strip_prefix(REGION_PREFIX).unwrap_or(name);
        if self.regions.contains_key(code) {
            Ok(code)
        } else {
            Err(ProviderError::Api(format!(
                "region {name} is not one of this AWS provider's ({})",
                self.regions.keys().map(|r| format!("{REGION_PREFIX}{r}")).collect::<Vec<_>>().join(", ")
            )))
        }
    }

    fn clients(&self, code: &str) -> &RegionClients {
        // Only called with codes that come from `self.regions` or passed `region_code`.
        &self.regions[code]
    }

    fn remember(&self, id: &str, code: &str) {
        self.instance_regions.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), code.to_owned());
    }

    fn known_region(&self, id: &str) -> Option<String> {
        self.instance_regions.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// Maps an SDK error, scrubbed of credentials.
    fn error<E>(&self, op: &str, err: SdkError<E, HttpResponse>, token: Option<&str>) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let e = map_sdk_error(op, &err, token);
        scrub(e, &self.secrets)
    }

    /// Instances matching `filters` in one region, every page.
    async fn describe(&self, code: &str, ids: &[&str], filters: Vec<Filter>) -> ProviderResult<Vec<Instance>> {
        let ec2 = &self.clients(code).ec2;
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut call = ec2.describe_instances().set_filters(Some(filters.clone())).set_next_token(next.take());
            for id in ids {
                call = call.instance_ids(*id);
            }
            let page = call.send().await.map_err(|e| self.error("DescribeInstances", e, None))?;
            out.extend(page.reservations().iter().flat_map(|r| r.instances().iter().cloned()));
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
        Err(ProviderError::Api(format!("DescribeInstances in {code}: more than {MAX_PAGES} pages")))
    }

    /// One instance in one region; `None` when EC2 does not know the id there.
    async fn describe_one(&self, code: &str, id: &str) -> ProviderResult<Option<CloudInstance>> {
        match self.describe(code, &[id], Vec::new()).await {
            Ok(found) => {
                let found: Vec<Instance> = found.into_iter().filter(|i| i.instance_id() == Some(id)).collect();
                Ok(self.with_notices(code, &found).await?.into_iter().next())
            }
            Err(ProviderError::Api(m)) if is_not_found_message(&m) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `instances` as the trait reports them, running spot instances whose spot request EC2 has
    /// marked for interruption as [`InstanceState::Interrupting`] (two minutes after the mark).
    /// `DescribeInstances` does not carry the notice; `DescribeSpotInstanceRequests` does.
    async fn with_notices(&self, code: &str, instances: &[Instance]) -> ProviderResult<Vec<CloudInstance>> {
        let mut out: Vec<CloudInstance> = instances.iter().map(|i| to_cloud_instance(code, i)).collect();
        let requests: Vec<(usize, &str)> = instances
            .iter()
            .enumerate()
            .filter(|(k, _)| out[*k].market == Market::Spot && out[*k].state == InstanceState::Running)
            .filter_map(|(k, i)| i.spot_instance_request_id().filter(|r| !r.is_empty()).map(|r| (k, r)))
            .collect();
        if requests.is_empty() {
            return Ok(out);
        }
        let mut call = self.clients(code).ec2.describe_spot_instance_requests();
        for (_, r) in &requests {
            call = call.spot_instance_request_ids(*r);
        }
        let answer = match call.send().await {
            Ok(a) => a,
            Err(e) => {
                return match self.error("DescribeSpotInstanceRequests", e, None) {
                    // Requests are cleaned up some time after they end: no notice to read.
                    ProviderError::Api(m) if m.contains("InvalidSpotInstanceRequestID") => Ok(out),
                    e => Err(e),
                };
            }
        };
        for sir in answer.spot_instance_requests() {
            let Some(status) = sir.status() else { continue };
            if !status.code().is_some_and(|c| c.starts_with("marked-for-")) {
                continue;
            }
            let Some(k) = requests.iter().find(|(_, r)| sir.spot_instance_request_id() == Some(*r)).map(|(k, _)| *k)
            else {
                continue;
            };
            let marked = status.update_time().and_then(|t| t.to_millis().ok()).and_then(|ms| u64::try_from(ms).ok());
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            out[k].state = InstanceState::Interrupting { at_ms: marked.unwrap_or(now) + SPOT_NOTICE_MS };
        }
        Ok(out)
    }

    async fn do_get(&self, id: &str) -> ProviderResult<Option<(String, CloudInstance)>> {
        if let Some(code) = self.known_region(id)
            && let Some(i) = self.describe_one(&code, id).await?
        {
            return Ok(Some((code, i)));
        }
        for code in self.regions.keys() {
            if let Some(i) = self.describe_one(code, id).await? {
                self.remember(id, code);
                return Ok(Some((code.clone(), i)));
            }
        }
        Ok(None)
    }

    async fn do_create(&self, r: CreateRequest) -> ProviderResult<CloudInstance> {
        let code = self.region_code(&r.region)?.to_owned();
        check_tags(&r)?;
        if !r.zone.starts_with(code.as_str()) {
            return Err(ProviderError::Api(format!("zone {} is not in region {}", r.zone, r.region)));
        }
        // An instance made with this token before (a retry, or an operator restart).
        let earlier = self.describe(&code, &[], vec![tag_filter(TAG_CLIENT_TOKEN, &r.client_token)]).await?;
        if let Some(found) = earlier.iter().find(|i| i.instance_id().is_some()) {
            let inst = to_cloud_instance(&code, found);
            self.remember(&inst.id, &code);
            let same = inst.owner_uid == r.owner_uid
                && inst.slot == r.slot
                && inst.zone == r.zone
                && inst.instance_type == r.instance_type
                && inst.market == r.market;
            return if same { Ok(inst) } else { Err(ProviderError::TokenMismatch(r.client_token)) };
        }
        let clients = self.clients(&code);
        let mut tags = vec![
            Tag::builder().key(TAG_OWNER_UID).value(&r.owner_uid).build(),
            Tag::builder().key(TAG_SLOT).value(r.slot.to_string()).build(),
            Tag::builder().key(TAG_CLIENT_TOKEN).value(&r.client_token).build(),
        ];
        tags.extend(r.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()));
        let mut call = clients
            .ec2
            .run_instances()
            .image_id(&clients.image_id)
            .instance_type(InstanceType::from(r.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .placement(Placement::builder().availability_zone(&r.zone).build())
            .client_token(&r.client_token)
            .tag_specifications(
                TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(tags)).build(),
            );
        if r.market == Market::Spot {
            call = call.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        let out = call.send().await.map_err(|e| self.error("RunInstances", e, Some(&r.client_token)))?;
        let Some(made) = out.instances().first() else {
            return Err(ProviderError::Api(format!("RunInstances in {code} answered without an instance")));
        };
        let mut inst = to_cloud_instance(&code, made);
        // RunInstances echoes the tags on real EC2; do not depend on it.
        inst.owner_uid = r.owner_uid;
        inst.slot = r.slot;
        inst.client_token = r.client_token;
        inst.market = r.market;
        self.remember(&inst.id, &code);
        Ok(inst)
    }

    async fn do_delete(&self, id: &str) -> ProviderResult<()> {
        let code = match self.known_region(id) {
            Some(code) => code,
            None => match self.do_get(id).await? {
                Some((code, _)) => code,
                // No region knows it: already gone.
                None => return Ok(()),
            },
        };
        let r = self.clients(&code).ec2.terminate_instances().instance_ids(id).send().await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => match self.error("TerminateInstances", e, None) {
                ProviderError::Api(m) if is_not_found_message(&m) => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn do_list(&self, owner_uid: &str) -> ProviderResult<Vec<CloudInstance>> {
        let mut out = Vec::new();
        for code in self.regions.keys() {
            let found = self.describe(code, &[], vec![tag_filter(TAG_OWNER_UID, owner_uid)]).await?;
            for inst in self.with_notices(code, &found).await? {
                self.remember(&inst.id, code);
                out.push(inst);
            }
        }
        Ok(out)
    }

    /// Zone name → state, of one region.
    async fn zones(&self, code: &str) -> ProviderResult<Vec<(String, String)>> {
        let out = self
            .clients(code)
            .ec2
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| self.error("DescribeAvailabilityZones", e, None))?;
        Ok(out
            .availability_zones()
            .iter()
            .filter(|z| z.zone_type().is_none_or(|t| t == "availability-zone"))
            .filter_map(|z| {
                let name = z.zone_name()?.to_owned();
                Some((name, z.state().map(|s| s.as_str().to_owned()).unwrap_or_default()))
            })
            .collect())
    }

    /// Latest spot price per (zone, type) of one region.
    async fn spot_prices(&self, code: &str) -> ProviderResult<BTreeMap<(String, String), f64>> {
        let ec2 = &self.clients(code).ec2;
        let mut latest: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
        let mut next: Option<String> = None;
        for page_no in 0..=MAX_PAGES {
            if page_no == MAX_PAGES {
                return Err(ProviderError::Api(format!(
                    "DescribeSpotPriceHistory in {code}: more than {MAX_PAGES} pages"
                )));
            }
            let mut call = ec2
                .describe_spot_price_history()
                // From now: EC2 answers with the price in force now for each zone and type.
                .start_time(DateTime::from(SystemTime::now()))
                .product_descriptions(SPOT_PRODUCTS[0])
                .set_next_token(next.take());
            for t in &self.instance_types {
                call = call.instance_types(InstanceType::from(t.as_str()));
            }
            let page = call.send().await.map_err(|e| self.error("DescribeSpotPriceHistory", e, None))?;
            for p in page.spot_price_history() {
                if !p.product_description().is_some_and(|d| SPOT_PRODUCTS.contains(&d.as_str())) {
                    continue;
                }
                let (Some(zone), Some(itype), Some(price)) = (p.availability_zone(), p.instance_type(), p.spot_price())
                else {
                    continue;
                };
                if !self.instance_types.iter().any(|t| t == itype.as_str()) {
                    continue;
                }
                let Ok(price) = price.parse::<f64>() else { continue };
                if !(price.is_finite() && price > 0.0) {
                    continue;
                }
                let at = p.timestamp().and_then(|t| t.to_millis().ok()).unwrap_or(i64::MIN);
                let key = (zone.to_owned(), itype.as_str().to_owned());
                if latest.get(&key).is_none_or(|(t, _)| at > *t) {
                    latest.insert(key, (at, price));
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(latest.into_iter().map(|(k, (_, p))| (k, p)).collect())
    }

    async fn do_prices(&self) -> ProviderResult<Vec<PriceQuote>> {
        let mut out = Vec::new();
        for code in self.regions.keys() {
            let region = format!("{REGION_PREFIX}{code}");
            let zones = self.zones(code).await?;
            for (zone, _) in &zones {
                for t in &self.instance_types {
                    if let Some(p) = self.on_demand_price(code, t) {
                        out.push(quote(&region, zone, t, Market::OnDemand, p));
                    }
                }
            }
            for ((zone, t), p) in self.spot_prices(code).await? {
                out.push(quote(&region, &zone, &t, Market::Spot, p));
            }
        }
        Ok(out)
    }

    async fn do_catalog(&self) -> ProviderResult<CloudCatalog> {
        let mut catalog = CloudCatalog::default();
        let mut shapes: BTreeMap<String, InstanceTypeInfo> = BTreeMap::new();
        for (code, clients) in &self.regions {
            let name = format!("{REGION_PREFIX}{code}");
            let zones: Vec<String> = self.zones(code).await?.into_iter().map(|(z, _)| z).collect();
            let aliases = code.strip_suffix("-1").map(|a| vec![format!("{REGION_PREFIX}{a}")]).unwrap_or_default();
            if shapes.len() < self.instance_types.len() {
                let mut call = clients.ec2.describe_instance_types();
                for t in &self.instance_types {
                    call = call.instance_types(InstanceType::from(t.as_str()));
                }
                let out = call.send().await.map_err(|e| self.error("DescribeInstanceTypes", e, None))?;
                for t in out.instance_types() {
                    let Some(n) = t.instance_type() else { continue };
                    let gpu: i32 = t.gpu_info().map(|g| g.gpus().iter().filter_map(|d| d.count()).sum()).unwrap_or(0);
                    shapes.insert(
                        n.as_str().to_owned(),
                        InstanceTypeInfo {
                            name: n.as_str().to_owned(),
                            vcpu: t
                                .v_cpu_info()
                                .and_then(|v| v.default_v_cpus())
                                .and_then(|v| u32::try_from(v).ok())
                                .unwrap_or(0),
                            memory_gib: t
                                .memory_info()
                                .and_then(|m| m.size_in_mib())
                                .map_or(0.0, |m| m as f64 / 1024.0),
                            gpu: u32::try_from(gpu).unwrap_or(0),
                        },
                    );
                }
            }
            let offerings = self.offerings(code).await?;
            let spot = self.spot_prices(code).await?;
            for zone in &zones {
                for t in &self.instance_types {
                    let Some(od) = self.on_demand_price(code, t) else { continue };
                    if !offerings.contains(&(zone.clone(), t.clone())) {
                        continue;
                    }
                    catalog.offers.push(OfferInfo {
                        region: name.clone(),
                        zone: zone.clone(),
                        instance_type: t.clone(),
                        on_demand_per_h: od,
                        spot_per_h: spot.get(&(zone.clone(), t.clone())).copied(),
                        capacity: self.offer_capacity,
                    });
                }
            }
            catalog.regions.push(RegionInfo {
                name,
                aliases,
                provider: Provider::Aws,
                zones,
                location: clients.location,
                carbon_g_per_kwh: clients.carbon,
            });
        }
        let missing: Vec<&String> = self.instance_types.iter().filter(|t| !shapes.contains_key(*t)).collect();
        if !missing.is_empty() {
            return Err(ProviderError::Api(format!("DescribeInstanceTypes does not know {missing:?}")));
        }
        catalog.instance_types = self.instance_types.iter().filter_map(|t| shapes.remove(t)).collect();
        Ok(catalog)
    }

    /// (zone, type) pairs EC2 sells in one region, of the configured types.
    async fn offerings(&self, code: &str) -> ProviderResult<BTreeSet<(String, String)>> {
        let ec2 = &self.clients(code).ec2;
        let mut out = BTreeSet::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = ec2
                .describe_instance_type_offerings()
                .location_type(LocationType::AvailabilityZone)
                .filters(Filter::builder().name("instance-type").set_values(Some(self.instance_types.clone())).build())
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| self.error("DescribeInstanceTypeOfferings", e, None))?;
            for o in page.instance_type_offerings() {
                if let (Some(z), Some(t)) = (o.location(), o.instance_type()) {
                    out.insert((z.to_owned(), t.as_str().to_owned()));
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
        Err(ProviderError::Api(format!("DescribeInstanceTypeOfferings in {code}: more than {MAX_PAGES} pages")))
    }

    async fn do_unhealthy(&self) -> ProviderResult<Vec<String>> {
        let mut out = Vec::new();
        for code in self.regions.keys() {
            let zones = self.zones(code).await?;
            if !zones.iter().any(|(_, state)| state == "available") {
                out.push(format!("{REGION_PREFIX}{code}"));
            }
        }
        Ok(out)
    }

    async fn do_metrics(&self, id: &str) -> ProviderResult<InstanceMetrics> {
        let code = match self.known_region(id) {
            Some(code) => code,
            None => match self.do_get(id).await? {
                Some((code, _)) => code,
                None => return Err(ProviderError::Api(format!("no instance {id} in any configured AWS region"))),
            },
        };
        let window_s = self.metrics_window.as_secs().max(60);
        // CloudWatch periods are multiples of 60 s.
        let period = i32::try_from(window_s - window_s % 60).unwrap_or(i32::MAX - 59);
        let query = |qid: &str, metric: &str, stat: &str| {
            MetricDataQuery::builder()
                .id(qid)
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace("AWS/EC2")
                                .metric_name(metric)
                                .dimensions(Dimension::builder().name("InstanceId").value(id).build())
                                .build(),
                        )
                        .period(period)
                        .stat(stat)
                        .build(),
                )
                .return_data(true)
                .build()
        };
        let end = SystemTime::now();
        let start = end - Duration::from_secs(window_s);
        let out = self
            .clients(&code)
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(query("cpu", "CPUUtilization", "Average"))
            .metric_data_queries(query("netin", "NetworkIn", "Sum"))
            .metric_data_queries(query("netout", "NetworkOut", "Sum"))
            .start_time(DateTime::from(start))
            .end_time(DateTime::from(end))
            .send()
            .await
            .map_err(|e| scrub(map_sdk_error("GetMetricData", &e, None), &self.secrets))?;
        let mut m = InstanceMetrics { window_s, ..InstanceMetrics::default() };
        for r in out.metric_data_results() {
            // Newest datapoint first (GetMetricData's default order, TimestampDescending).
            let newest = r.timestamps().iter().zip(r.values()).max_by_key(|(t, _)| t.to_millis().unwrap_or(i64::MIN));
            let v = newest.map(|(_, v)| *v);
            match r.id() {
                Some("cpu") => m.cpu_percent = v,
                Some("netin") => m.network_in_bytes = v,
                Some("netout") => m.network_out_bytes = v,
                _ => {}
            }
        }
        Ok(m)
    }
}

fn quote(region: &str, zone: &str, instance_type: &str, market: Market, price_per_h: f64) -> PriceQuote {
    PriceQuote {
        region: region.to_owned(),
        zone: zone.to_owned(),
        instance_type: instance_type.to_owned(),
        market,
        price_per_h,
    }
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder().name(format!("tag:{key}")).values(value).build()
}

/// EC2's limits on user tags: 50 per resource, keys up to 128 and values up to 256 characters,
/// `aws:` reserved.
fn check_tags(r: &CreateRequest) -> ProviderResult<()> {
    if r.tags.len() + 3 > 50 {
        return Err(ProviderError::Api(format!("{} tags: EC2 allows 47 besides NovaCron's own three", r.tags.len())));
    }
    for (k, v) in &r.tags {
        if k.is_empty() || k.chars().count() > 128 || k.to_ascii_lowercase().starts_with("aws:") {
            return Err(ProviderError::Api(format!("tag key {k:?}: 1 to 128 characters, not starting with aws:")));
        }
        if v.chars().count() > 256 {
            return Err(ProviderError::Api(format!("tag {k}: the value is longer than 256 characters")));
        }
        if [TAG_OWNER_UID, TAG_SLOT, TAG_CLIENT_TOKEN].contains(&k.as_str()) {
            return Err(ProviderError::Api(format!("tag {k} is set by the provider itself")));
        }
    }
    if r.client_token.is_empty() || r.client_token.len() > 64 || !r.client_token.is_ascii() {
        return Err(ProviderError::Api(format!(
            "client token {:?}: EC2 takes 1 to 64 ASCII characters",
            r.client_token
        )));
    }
    Ok(())
}

/// An EC2 instance as the trait reports it.
fn to_cloud_instance(code: &str, i: &Instance) -> CloudInstance {
    let tag = |k: &str| i.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_owned);
    let market = match i.instance_lifecycle() {
        Some(l) if l.as_str() == "spot" => Market::Spot,
        _ => Market::OnDemand,
    };
    CloudInstance {
        id: i.instance_id().unwrap_or_default().to_owned(),
        client_token: tag(TAG_CLIENT_TOKEN).or_else(|| i.client_token().map(str::to_owned)).unwrap_or_default(),
        owner_uid: tag(TAG_OWNER_UID).unwrap_or_default(),
        slot: tag(TAG_SLOT).and_then(|s| s.parse().ok()).unwrap_or(0),
        region: format!("{REGION_PREFIX}{code}"),
        zone: i.placement().and_then(|p| p.availability_zone()).unwrap_or_default().to_owned(),
        instance_type: i.instance_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
        market,
        state: instance_state(
            i.state().and_then(|s| s.name()).map_or("", InstanceStateName::as_str),
            i.state_reason().and_then(|r| r.code()),
        ),
    }
}

/// An EC2 instance state (`pending`, `running`, `shutting-down`, `terminated`, `stopping`,
/// `stopped`) and state-reason code as an [`InstanceState`].
///
/// A terminated or shutting-down instance is [`InstanceState::Terminated`] unless the reason
/// says the cloud took it ([`lost_cause`]); a stopped one is always lost (NovaCron never stops
/// instances), as a crash unless the reason says more. An unknown state is `Pending`: not yet
/// usable, and looked at again on the next poll.
pub fn instance_state(state: &str, reason: Option<&str>) -> InstanceState {
    let cause = reason.and_then(lost_cause);
    match state {
        "pending" => InstanceState::Pending,
        "running" => InstanceState::Running,
        "shutting-down" | "terminated" => cause.map_or(InstanceState::Terminated, InstanceState::Lost),
        "stopping" | "stopped" => InstanceState::Lost(cause.unwrap_or(FailureCause::Crashed)),
        _ => InstanceState::Pending,
    }
}

/// Why EC2 took an instance, from its state-reason code; `None` when it went on request.
pub fn lost_cause(code: &str) -> Option<FailureCause> {
    match code {
        "Server.SpotInstanceTermination" | "Server.SpotInstanceShutdown" => Some(FailureCause::Interrupted),
        "Server.InsufficientInstanceCapacity" => Some(FailureCause::InsufficientCapacity),
        "" | "Client.UserInitiatedShutdown" | "Client.UserInitiatedHibernate" => None,
        // Server.InternalError, Server.ScheduledStop, Client.InstanceInitiatedShutdown,
        // Client.VolumeLimitExceeded, Client.InternalError, Client.InvalidSnapshot.NotFound, ...
        c if c.starts_with("Server.") || c.starts_with("Client.") => Some(FailureCause::Crashed),
        _ => None,
    }
}

/// How an EC2/CloudWatch error code reads for the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttled or transient: retry later.
    Throttled,
    /// No capacity or quota for this offer now: place elsewhere.
    Capacity,
    /// Credentials missing, wrong, expired or not allowed.
    Auth,
    /// Client token reused for another request.
    TokenMismatch,
    /// Anything else.
    Other,
}

/// The class of an AWS error code (EC2's and the common AWS codes).
pub fn classify_code(code: &str) -> ErrorClass {
    match code {
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "TooManyRequestsException"
        | "SlowDown"
        | "PriorityRequestException"
        | "EC2ThrottledException"
        | "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "Unavailable"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorClass::Throttled,
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientCapacity"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "MaxSpotInstanceCountExceeded"
        | "SpotMaxPriceTooLow"
        | "Unsupported" => ErrorClass::Capacity,
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "AccessDenied"
        | "AccessDeniedException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired"
        | "OptInRequired"
        | "Blocked"
        | "PendingVerification" => ErrorClass::Auth,
        "IdempotentParameterMismatch" => ErrorClass::TokenMismatch,
        _ => ErrorClass::Other,
    }
}

/// An SDK error as a [`ProviderError`]: the service's error code through [`classify_code`]
/// (an HTTP 429 or 5xx without a known code counts as throttled), and for calls that never got
/// an answer: timeouts and connection failures are transient (`Throttled`), a credential provider
/// that failed is `Auth`, the rest `Api`. `token` is the create's client token, for
/// `TokenMismatch`. The message names the operation and the code; it may contain the service's
/// message, so callers scrub it of credentials.
pub fn map_sdk_error<E>(op: &str, err: &SdkError<E, HttpResponse>, token: Option<&str>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().unwrap_or_default();
            let message = e.message().unwrap_or_default();
            let status = s.raw().status().as_u16();
            let text = if code.is_empty() {
                format!("{op}: HTTP {status}: {message}")
            } else {
                format!("{op}: {code}: {message}")
            };
            match classify_code(code) {
                ErrorClass::Throttled => ProviderError::Throttled(text),
                ErrorClass::Capacity => ProviderError::InsufficientCapacity(text),
                ErrorClass::Auth => ProviderError::Auth(text),
                ErrorClass::TokenMismatch => ProviderError::TokenMismatch(token.unwrap_or_default().to_owned()),
                ErrorClass::Other if code.is_empty() && (status == 429 || status >= 500) => {
                    ProviderError::Throttled(text)
                }
                ErrorClass::Other if code.is_empty() && (status == 401 || status == 403) => ProviderError::Auth(text),
                ErrorClass::Other => ProviderError::Api(text),
            }
        }
        SdkError::TimeoutError(_) => ProviderError::Throttled(format!("{op}: timed out (transient)")),
        SdkError::DispatchFailure(d) => {
            let chain = error_chain(err);
            if d.is_io() || d.is_timeout() {
                ProviderError::Throttled(format!("{op}: transport error (transient): {chain}"))
            } else if chain.to_ascii_lowercase().contains("credential") {
                ProviderError::Auth(format!("{op}: no usable credentials: {chain}"))
            } else {
                ProviderError::Api(format!("{op}: request failed: {chain}"))
            }
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            let text = format!("{op}: unreadable answer (HTTP {status}): {}", error_chain(err));
            if status == 429 || status >= 500 { ProviderError::Throttled(text) } else { ProviderError::Api(text) }
        }
        _ => ProviderError::Api(format!("{op}: {}", error_chain(err))),
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if parts.last() != Some(&t) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn is_not_found_message(m: &str) -> bool {
    m.contains("InvalidInstanceID.NotFound") || m.contains("InvalidInstanceID.Malformed")
}

/// `e` with every secret replaced by `[redacted]`.
fn scrub(e: ProviderError, secrets: &[String]) -> ProviderError {
    let clean =
        |m: String| secrets.iter().filter(|s| !s.is_empty()).fold(m, |m, s| m.replace(s.as_str(), "[redacted]"));
    match e {
        ProviderError::InsufficientCapacity(m) => ProviderError::InsufficientCapacity(clean(m)),
        ProviderError::Throttled(m) => ProviderError::Throttled(clean(m)),
        ProviderError::Api(m) => ProviderError::Api(clean(m)),
        ProviderError::TokenMismatch(m) => ProviderError::TokenMismatch(clean(m)),
        ProviderError::Auth(m) => ProviderError::Auth(clean(m)),
    }
}

impl CloudProvider for AwsCloud {
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>> {
        Box::pin(self.do_catalog())
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>> {
        Box::pin(self.do_create(request))
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>> {
        Box::pin(async move { Ok(self.do_get(id).await?.map(|(_, i)| i)) })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(self.do_delete(id))
    }

    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>> {
        Box::pin(self.do_list(owner_uid))
    }

    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>> {
        Box::pin(self.do_prices())
    }

    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>> {
        Box::pin(self.do_unhealthy())
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>> {
        Box::pin(self.do_metrics(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn credentials_from_secret_data() {
        let c = AwsCredentials::from_secret_data(
            "secret ns/aws",
            &data(&[
                ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE\n"),
                ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
                ("AWS_SESSION_TOKEN", "tok"),
            ]),
        )
        .expect("valid");
        assert_eq!(c, AwsCredentials::new("AKIAEXAMPLE", "s3cr3t", Some("tok".into())));
        let c = AwsCredentials::from_secret_data("s", &data(&[("accessKeyId", "A"), ("secretAccessKey", "B")]))
            .expect("valid");
        assert_eq!(c, AwsCredentials::new("A", "B", None));
    }

    #[test]
    fn credential_errors_name_keys_never_values() {
        let e = AwsCredentials::from_secret_data("secret ns/aws", &data(&[("AWS_SECRET_ACCESS_KEY", "s3cr3t")]))
            .expect_err("no key id");
        let m = e.to_string();
        assert!(m.contains("secret ns/aws") && m.contains("AWS_ACCESS_KEY_ID or accessKeyId"), "{m}");
        let e = AwsCredentials::from_secret_data("s", &data(&[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")]))
            .expect_err("no secret");
        assert!(e.to_string().contains("AWS_SECRET_ACCESS_KEY") && !e.to_string().contains("AKIAEXAMPLE"), "{e}");
        let mut d = data(&[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")]);
        d.insert("AWS_SECRET_ACCESS_KEY".into(), vec![0xff, 0xfe, b'x']);
        let e = AwsCredentials::from_secret_data("s", &d).expect_err("not UTF-8");
        assert_eq!(e.to_string(), "s: data key AWS_SECRET_ACCESS_KEY is not UTF-8");
        let e = AwsCredentials::from_secret_data(
            "s",
            &data(&[("AWS_ACCESS_KEY_ID", "AKIA EXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "x")]),
        )
        .expect_err("blank");
        assert_eq!(e.to_string(), "s: data key AWS_ACCESS_KEY_ID contains blanks");
        let e = AwsCredentials::from_secret_data(
            "s",
            &data(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "\n")]),
        )
        .expect_err("empty");
        assert_eq!(e.to_string(), "s: data key AWS_SECRET_ACCESS_KEY is empty");
        let e = AwsCredentials::from_secret_data(
            "s",
            &data(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "B"), ("AWS_SESSION_TOKEN", "")]),
        )
        .expect_err("empty token");
        assert_eq!(e.to_string(), "s: data key AWS_SESSION_TOKEN is empty");
    }

    #[test]
    fn debug_output_redacts_credentials() {
        let c = AwsCredentials::new("AKIAEXAMPLEKEYID", "wJalrXUtnFEMI/K7MDENG", Some("FwoGZXIvYXdzEJr".into()));
        let config = AwsConfig { credentials: Some(c.clone()), ..AwsConfig::default() };
        for text in [format!("{c:?}"), format!("{c:#?}"), format!("{config:?}"), format!("{config:#?}")] {
            for secret in ["AKIAEXAMPLEKEYID", "wJalrXUtnFEMI/K7MDENG", "FwoGZXIvYXdzEJr"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(text.contains("[redacted]"), "{text}");
        }
    }

    #[test]
    fn scrub_removes_every_secret() {
        let secrets = vec!["AKIAEXAMPLEKEYID".to_owned(), "wJalr".to_owned()];
        let e = scrub(ProviderError::Auth("key AKIAEXAMPLEKEYID with wJalr refused".into()), &secrets);
        assert_eq!(e, ProviderError::Auth("key [redacted] with [redacted] refused".into()));
    }

    #[test]
    fn states_and_reasons() {
        use FailureCause::*;
        assert_eq!(instance_state("pending", None), InstanceState::Pending);
        assert_eq!(instance_state("running", Some("")), InstanceState::Running);
        assert_eq!(instance_state("terminated", Some("Client.UserInitiatedShutdown")), InstanceState::Terminated);
        assert_eq!(instance_state("shutting-down", None), InstanceState::Terminated);
        assert_eq!(
            instance_state("terminated", Some("Server.SpotInstanceTermination")),
            InstanceState::Lost(Interrupted)
        );
        assert_eq!(instance_state("stopped", Some("Server.SpotInstanceShutdown")), InstanceState::Lost(Interrupted));
        assert_eq!(
            instance_state("terminated", Some("Server.InsufficientInstanceCapacity")),
            InstanceState::Lost(InsufficientCapacity)
        );
        assert_eq!(instance_state("terminated", Some("Server.InternalError")), InstanceState::Lost(Crashed));
        assert_eq!(
            instance_state("terminated", Some("Client.InstanceInitiatedShutdown")),
            InstanceState::Lost(Crashed)
        );
        assert_eq!(instance_state("stopped", Some("Client.UserInitiatedShutdown")), InstanceState::Lost(Crashed));
        assert_eq!(instance_state("rebooting-someday", None), InstanceState::Pending);
    }

    #[test]
    fn codes_classify() {
        assert_eq!(classify_code("RequestLimitExceeded"), ErrorClass::Throttled);
        assert_eq!(classify_code("InsufficientInstanceCapacity"), ErrorClass::Capacity);
        assert_eq!(classify_code("AuthFailure"), ErrorClass::Auth);
        assert_eq!(classify_code("UnauthorizedOperation"), ErrorClass::Auth);
        assert_eq!(classify_code("IdempotentParameterMismatch"), ErrorClass::TokenMismatch);
        assert_eq!(classify_code("InvalidAMIID.NotFound"), ErrorClass::Other);
    }

    #[test]
    fn tags_are_checked() {
        let mut r = CreateRequest {
            client_token: "uid-0-0".into(),
            owner_uid: "uid".into(),
            slot: 0,
            region: "aws-us-east-1".into(),
            zone: "us-east-1a".into(),
            instance_type: "m5.large".into(),
            market: Market::OnDemand,
            tags: BTreeMap::from([("team".to_owned(), "a".to_owned())]),
        };
        assert_eq!(check_tags(&r), Ok(()));
        r.tags.insert("aws:owner".into(), "x".into());
        assert!(matches!(check_tags(&r), Err(ProviderError::Api(m)) if m.contains("aws:owner")));
        r.tags.clear();
        r.client_token = "x".repeat(65);
        assert!(matches!(check_tags(&r), Err(ProviderError::Api(m)) if m.contains("64 ASCII")));
    }
}
