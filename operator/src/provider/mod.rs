//! Cloud providers behind one trait, as quinn hides its runtime: the controller never sees a
//! cloud SDK. Every call that creates something is idempotent on a client token derived from the
//! owning object's UID, and every instance carries its owner's UID and replica slot, so that an
//! operator that restarts finds (and adopts or deletes) what it created before.
//!
//! [`memory::MemoryCloud`] is the in-memory implementation the tests and a local run use;
//! [`aws`], [`azure`] and [`gcp`] are the real clouds. [`retry::Retrying`] retries throttled calls of any provider
//! with exponential backoff and full jitter, as [`metered::Metered`] measures them.

use std::collections::BTreeMap;

use engine::{FailureCause, Market, Provider};
use futures::future::BoxFuture;

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod memory;
pub mod metered;
pub mod multi;
pub mod prices;
pub mod retry;
pub mod setup;

pub use crate::cache::provider::CachingProvider;

/// What a provider call can fail with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The offer has no capacity now (EC2 `InsufficientInstanceCapacity`).
    #[error("insufficient capacity: {0}")]
    InsufficientCapacity(String),
    /// The API throttled the call.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The API answered with an error (including a region that is down).
    #[error("API error: {0}")]
    Api(String),
    /// The client token was used before for a different request (EC2 `IdempotentParameterMismatch`).
    #[error("client token {0} was used for a different request")]
    TokenMismatch(String),
    /// The cloud refused the credentials (missing, malformed, expired or not allowed). The
    /// message names the credential's source, never its value.
    #[error("credentials rejected: {0}")]
    Auth(String),
}

impl ProviderError {
    /// The engine's reading of a failed create call.
    pub fn failure_cause(&self) -> FailureCause {
        match self {
            ProviderError::InsufficientCapacity(_) => FailureCause::InsufficientCapacity,
            ProviderError::Throttled(_) => FailureCause::Throttled,
            ProviderError::Api(_) | ProviderError::TokenMismatch(_) | ProviderError::Auth(_) => FailureCause::ApiError,
        }
    }
    /// Every [`ProviderError::label`].
    pub const LABELS: [&str; 5] = ["insufficient-capacity", "throttled", "api", "token-mismatch", "auth"];

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ProviderError::InsufficientCapacity(_) => "insufficient-capacity",
            ProviderError::Throttled(_) => "throttled",
            ProviderError::Api(_) => "api",
            ProviderError::TokenMismatch(_) => "token-mismatch",
            ProviderError::Auth(_) => "auth",
        }
    }
}

/// Result of a provider call.
pub type ProviderResult<T> = Result<T, ProviderError>;

/// What a provider sells: its regions, instance types and offers, from which the engine's
/// `Catalog` is built ([`crate::catalog`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CloudCatalog {
    /// Regions.
    pub regions: Vec<RegionInfo>,
    /// Machine shapes.
    pub instance_types: Vec<InstanceTypeInfo>,
    /// What can be bought where.
    pub offers: Vec<OfferInfo>,
}

/// A region.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionInfo {
    /// Unique name (`aws-us-east-1`).
    pub name: String,
    /// Other names manifests use for it (`aws-us-east`).
    pub aliases: Vec<String>,
    /// Who runs it.
    pub provider: Provider,
    /// Its zones.
    pub zones: Vec<String>,
    /// Latitude and longitude, degrees (for latency).
    pub location: (f64, f64),
    /// Grid carbon intensity, gCO2e/kWh.
    pub carbon_g_per_kwh: f64,
}

/// An instance type.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceTypeInfo {
    /// Provider's name (`m5.large`).
    pub name: String,
    /// vCPUs.
    pub vcpu: u32,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// GPUs.
    pub gpu: u32,
}

/// An instance type sold in one zone.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferInfo {
    /// Region name.
    pub region: String,
    /// Zone name.
    pub zone: String,
    /// Instance type name.
    pub instance_type: String,
    /// On-demand $/h.
    pub on_demand_per_h: f64,
    /// Spot $/h, if there is a spot market.
    pub spot_per_h: Option<f64>,
    /// Instances that can run at once, as far as the provider tells (quotas).
    pub capacity: u32,
}

/// A current price.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceQuote {
    /// Region name.
    pub region: String,
    /// Zone name.
    pub zone: String,
    /// Instance type name.
    pub instance_type: String,
    /// Market.
    pub market: Market,
    /// $/h.
    pub price_per_h: f64,
}

/// A create call.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateRequest {
    /// Idempotency token: the same token never creates a second instance.
    pub client_token: String,
    /// UID of the owning Kubernetes object (a tag on the instance).
    pub owner_uid: String,
    /// Replica slot (a tag on the instance).
    pub slot: u32,
    /// Region name.
    pub region: String,
    /// Zone name.
    pub zone: String,
    /// Instance type name.
    pub instance_type: String,
    /// Market.
    pub market: Market,
    /// Further tags.
    pub tags: BTreeMap<String, String>,
}

/// Life of a cloud instance, as a provider reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InstanceState {
    /// Being created and booted.
    Pending,
    /// Up.
    Running,
    /// A spot instance that will be reclaimed at this time (ms since the Unix epoch).
    Interrupting {
        /// When.
        at_ms: u64,
    },
    /// Gone without being asked to: the cloud says why.
    Lost(FailureCause),
    /// Deleted on request (or shutting down after the request).
    Terminated,
}

/// A cloud instance.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudInstance {
    /// The provider's id.
    pub id: String,
    /// The token it was created with.
    pub client_token: String,
    /// Owner UID tag.
    pub owner_uid: String,
    /// Slot tag.
    pub slot: u32,
    /// Region name.
    pub region: String,
    /// Zone name.
    pub zone: String,
    /// Instance type.
    pub instance_type: String,
    /// Market.
    pub market: Market,
    /// State.
    pub state: InstanceState,
}

impl CloudInstance {
    /// Whether this instance is what `request` asks for, as far as every cloud records it (owner,
    /// slot and market are tags or fields on all of them). A create whose token found an
    /// instance that is not is refused with [`ProviderError::TokenMismatch`].
    pub fn answers(&self, request: &CreateRequest) -> bool {
        self.owner_uid == request.owner_uid && self.slot == request.slot && self.market == request.market
    }

    /// Whether the instance still exists or may come back (anything but terminated).
    pub fn is_live(&self) -> bool {
        !matches!(self.state, InstanceState::Terminated)
    }
}

/// Recent usage of one instance, as the cloud's monitoring reports it (CloudWatch, Azure
/// Monitor, Cloud Monitoring). A field is `None` when the cloud has no datapoint yet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceMetrics {
    /// Mean CPU utilisation over the window, percent (0–100).
    pub cpu_percent: Option<f64>,
    /// Bytes received over the window.
    pub network_in_bytes: Option<f64>,
    /// Bytes sent over the window.
    pub network_out_bytes: Option<f64>,
    /// Length of the window the figures cover, seconds.
    pub window_s: u64,
}

/// A cloud (or several behind one front): the operations the controller needs.
///
/// Every method is safe to call again after a timeout: `create` is idempotent on its client
/// token, `delete` of an instance already gone succeeds.
pub trait CloudProvider: Send + Sync {
    /// Regions, instance types and offers.
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>>;
    /// Creates an instance, or returns the one created before with the same client token.
    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>>;
    /// One instance, `None` if the provider does not know it.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>>;
    /// Deletes an instance; succeeds if it is already gone.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>>;
    /// Every instance tagged with this owner UID, terminated ones included while the provider
    /// still reports them.
    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>>;
    /// Current prices of every offer and market.
    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>>;
    /// Names of the regions the provider reports unhealthy now.
    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>>;
    /// Recent CPU and network usage of one instance.
    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>>;
    /// What an instance of `instance_type` in `region` costs on `market`, $/h, comparable across
    /// providers. The default takes the cheapest zone's current price from [`CloudProvider::prices`];
    /// an offer the provider does not sell is an [`ProviderError::Api`] error.
    fn estimate_cost<'a>(
        &'a self,
        region: &'a str,
        instance_type: &'a str,
        market: Market,
    ) -> BoxFuture<'a, ProviderResult<f64>> {
        Box::pin(async move {
            self.prices()
                .await?
                .into_iter()
                .filter(|q| q.region == region && q.instance_type == instance_type && q.market == market)
                .map(|q| q.price_per_h)
                .min_by(f64::total_cmp)
                .ok_or_else(|| ProviderError::Api(format!("no {market:?} price for {instance_type} in {region}")))
        })
    }
}
