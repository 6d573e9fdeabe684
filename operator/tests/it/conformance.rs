//! The provider contract, written once and run against every implementation: each check takes a
//! fresh [`Subject`] from a factory, so a peer only has to say how to make one.
//!
//! The contract (see `operator::provider::CloudProvider`): create is idempotent on its client
//! token and refuses the token for a different request; get of an unknown id is `None`; delete
//! twice succeeds; list finds the owner's instances and only them; prices are non-empty and
//! positive; `estimate_cost` agrees with `prices`; a live instance has metrics (where the peer
//! reads them); a capacity failure is `InsufficientCapacity` (where the peer can produce one).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use engine::{Market, Provider};
use futures::future::BoxFuture;
use operator::provider::memory::MemoryCloud;
use operator::provider::multi::{Member, MultiCloud};
use operator::provider::{CloudProvider, CreateRequest, InstanceState, ProviderError};

/// Makes a create request for a token, an owner and a slot.
pub type MakeRequest = Box<dyn Fn(&str, &str, u32) -> CreateRequest + Send + Sync>;

/// A provider under test and what the checks need to drive it.
pub struct Subject {
    /// The provider.
    pub cloud: Arc<dyn CloudProvider>,
    /// A create request for `token`, `owner` and `slot` that the provider accepts.
    pub request: MakeRequest,
    /// Makes the provider's next create fail for lack of capacity, if the peer can.
    pub no_capacity: Option<Box<dyn Fn() + Send + Sync>>,
    /// Whether `metrics` is implemented (and answers on the peer).
    pub has_metrics: bool,
    /// Put in front of every owner UID and client token, so that subjects sharing one server
    /// (moto) never see each other's instances.
    pub prefix: String,
    /// Whatever must live as long as the subject (a fake server).
    pub _keep: Box<dyn Any + Send + Sync>,
}

impl Subject {
    fn create_req(&self, token: &str, owner: &str, slot: u32) -> CreateRequest {
        (self.request)(&format!("{}{token}", self.prefix), &self.uid(owner), slot)
    }
    fn uid(&self, owner: &str) -> String {
        format!("{}{owner}", self.prefix)
    }
}

/// Makes a fresh subject.
pub type Factory = fn() -> BoxFuture<'static, Subject>;

async fn create_is_idempotent_on_its_token(s: Subject) {
    let a = s.cloud.create(s.create_req("tok-1", "uid-a", 0)).await.expect("create");
    let b = s.cloud.create(s.create_req("tok-1", "uid-a", 0)).await.expect("create again");
    assert_eq!(a.id, b.id, "a second create with the same token made another instance");
    let live: Vec<_> = s.cloud.list(&s.uid("uid-a")).await.expect("list").into_iter().filter(|i| i.is_live()).collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!((live[0].owner_uid.clone(), live[0].slot), (s.uid("uid-a"), 0));
    assert_eq!(live[0].client_token, format!("{}tok-1", s.prefix));
}

async fn a_token_reused_for_another_request_is_refused(s: Subject) {
    s.cloud.create(s.create_req("tok-1", "uid-a", 0)).await.expect("create");
    let e = s.cloud.create(s.create_req("tok-1", "uid-a", 1)).await.expect_err("another slot, same token");
    assert!(matches!(e, ProviderError::TokenMismatch(_)), "{e}");
}

async fn get_of_an_unknown_id_is_none(s: Subject) {
    let created = s.cloud.create(s.create_req("tok-1", "uid-a", 0)).await.expect("create");
    let got = s.cloud.get(&created.id).await.expect("get").expect("known");
    assert_eq!(got.id, created.id);
    let unknown = format!("{}x", created.id);
    assert_eq!(s.cloud.get(&unknown).await.expect("get unknown"), None);
}

async fn delete_twice_succeeds(s: Subject) {
    let i = s.cloud.create(s.create_req("tok-1", "uid-a", 0)).await.expect("create");
    s.cloud.delete(&i.id).await.expect("delete");
    s.cloud.delete(&i.id).await.expect("delete again");
    let after = s.cloud.get(&i.id).await.expect("get");
    assert!(after.as_ref().is_none_or(|i| i.state == InstanceState::Terminated), "{after:?}");
    assert!(s.cloud.list(&s.uid("uid-a")).await.expect("list").iter().all(|i| !i.is_live()));
}

async fn list_is_by_owner(s: Subject) {
    s.cloud.create(s.create_req("tok-a0", "uid-a", 0)).await.expect("create");
    s.cloud.create(s.create_req("tok-a1", "uid-a", 1)).await.expect("create");
    s.cloud.create(s.create_req("tok-b0", "uid-b", 0)).await.expect("create");
    let mut a: Vec<u32> = s.cloud.list(&s.uid("uid-a")).await.expect("list").iter().map(|i| i.slot).collect();
    a.sort_unstable();
    assert_eq!(a, [0, 1]);
    let b = s.cloud.list(&s.uid("uid-b")).await.expect("list");
    assert_eq!((b.len(), b[0].owner_uid.clone()), (1, s.uid("uid-b")));
    assert!(s.cloud.list(&s.uid("uid-none")).await.expect("list").is_empty());
}

async fn prices_are_positive_and_estimates_agree(s: Subject) {
    let prices = s.cloud.prices().await.expect("prices");
    assert!(!prices.is_empty());
    for q in &prices {
        assert!(q.price_per_h.is_finite() && q.price_per_h > 0.0, "{q:?}");
        let est = s.cloud.estimate_cost(&q.region, &q.instance_type, q.market).await.expect("estimate");
        let cheapest = prices
            .iter()
            .filter(|p| p.region == q.region && p.instance_type == q.instance_type && p.market == q.market)
            .map(|p| p.price_per_h)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(est, cheapest, "{q:?}");
    }
    assert!(s.cloud.estimate_cost("no-such-region", "m5.large", Market::OnDemand).await.is_err());
}

async fn a_live_instance_has_metrics(s: Subject) {
    if !s.has_metrics {
        return;
    }
    let i = s.cloud.create(s.create_req("tok-1", "uid-a", 0)).await.expect("create");
    let m = s.cloud.metrics(&i.id).await.expect("metrics");
    assert!(m.window_s > 0, "{m:?}");
    assert!(m.cpu_percent.is_none_or(|c| (0.0..=100.0).contains(&c)), "{m:?}");
}

async fn no_capacity_is_insufficient_capacity(s: Subject) {
    let Some(no_capacity) = &s.no_capacity else { return };
    no_capacity();
    let e = s.cloud.create(s.create_req("tok-1", "uid-a", 0)).await.expect_err("no capacity");
    assert!(matches!(e, ProviderError::InsufficientCapacity(_)), "{e}");
    assert_eq!(e.failure_cause(), engine::FailureCause::InsufficientCapacity);
}

/// Every check, each on a fresh subject.
pub async fn suite(make: Factory) {
    create_is_idempotent_on_its_token(make().await).await;
    a_token_reused_for_another_request_is_refused(make().await).await;
    get_of_an_unknown_id_is_none(make().await).await;
    delete_twice_succeeds(make().await).await;
    list_is_by_owner(make().await).await;
    prices_are_positive_and_estimates_agree(make().await).await;
    a_live_instance_has_metrics(make().await).await;
    no_capacity_is_insufficient_capacity(make().await).await;
}

fn seed_request(
    region: &'static str,
    zone: &'static str,
    itype: &'static str,
) -> impl Fn(&str, &str, u32) -> CreateRequest {
    move |token, owner, slot| CreateRequest {
        client_token: token.into(),
        owner_uid: owner.into(),
        slot,
        region: region.into(),
        zone: zone.into(),
        instance_type: itype.into(),
        market: Market::OnDemand,
        tags: BTreeMap::new(),
    }
}

fn memory() -> BoxFuture<'static, Subject> {
    Box::pin(async {
        let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
        let hook = cloud.clone();
        Subject {
            cloud,
            request: Box::new(seed_request("aws-us-east-1", "us-east-1a", "m5.large")),
            no_capacity: Some(Box::new(move || hook.set_capacity("aws-us-east-1", 0))),
            has_metrics: true,
            prefix: String::new(),
            _keep: Box::new(()),
        }
    })
}

/// The router over one in-memory cloud per provider; requests go to the GCP member.
fn multi() -> BoxFuture<'static, Subject> {
    Box::pin(async {
        let seed = MemoryCloud::seed_catalog();
        let mut members = Vec::new();
        let mut gcp = None;
        for p in [Provider::Aws, Provider::Azure, Provider::Gcp] {
            let regions: Vec<_> = seed.regions.iter().filter(|r| r.provider == p).cloned().collect();
            let offers: Vec<_> =
                seed.offers.iter().filter(|o| regions.iter().any(|r| r.name == o.region)).cloned().collect();
            let types = seed
                .instance_types
                .iter()
                .filter(|t| offers.iter().any(|o| o.instance_type == t.name))
                .cloned()
                .collect();
            let c =
                Arc::new(MemoryCloud::new(operator::provider::CloudCatalog { regions, instance_types: types, offers }));
            c.set_id_prefix(&format!("{p}-"));
            if p == Provider::Gcp {
                gcp = Some(c.clone());
            }
            members.push(Member { name: p.to_string(), provider: p, cloud: c });
        }
        let gcp = gcp.expect("gcp member");
        Subject {
            cloud: Arc::new(MultiCloud::new(members)),
            request: Box::new(seed_request("gcp-us-central1", "a", "n2-standard-2")),
            no_capacity: Some(Box::new(move || gcp.set_capacity("gcp-us-central1", 0))),
            has_metrics: true,
            prefix: String::new(),
            _keep: Box::new(()),
        }
    })
}

fn unique_prefix() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("c{}-{}-", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// AwsCloud against the shared moto server of `aws.rs`.
fn aws() -> BoxFuture<'static, Subject> {
    Box::pin(async {
        Subject {
            cloud: Arc::new(super::aws::cloud().await),
            request: Box::new(seed_request("aws-us-east-1", "us-east-1a", "m5.large")),
            no_capacity: None,
            // moto answers CloudWatch GetMetricData on this endpoint with 404.
            has_metrics: false,
            prefix: unique_prefix(),
            _keep: Box::new(()),
        }
    })
}

/// AzureProvider against the fake ARM server of `azure.rs`.
fn azure() -> BoxFuture<'static, Subject> {
    Box::pin(async {
        let fake = super::azure::Fake::start().await;
        Subject {
            cloud: Arc::new(fake.provider()),
            request: Box::new(seed_request("azure-eastus", "1", "Standard_D2s_v5")),
            no_capacity: None,
            has_metrics: false,
            prefix: String::new(),
            _keep: Box::new(fake),
        }
    })
}

/// GcpProvider against the fake Compute Engine server of `gcp.rs`.
fn gcp() -> BoxFuture<'static, Subject> {
    Box::pin(async {
        let fake = super::gcp::Fake::start().await;
        // The harness's config sells nothing; price n2-standard-2 from the shipped tables.
        let mut config = fake.config();
        let region = operator::provider::RegionInfo {
            name: "gcp-us-central1".into(),
            aliases: vec![],
            provider: Provider::Gcp,
            zones: vec!["us-central1-a".into()],
            location: (41.3, -95.9),
            carbon_g_per_kwh: 400.0,
        };
        let n2 =
            operator::provider::InstanceTypeInfo { name: "n2-standard-2".into(), vcpu: 2, memory_gib: 8.0, gpu: 0 };
        config.catalog =
            operator::provider::prices::priced_catalog(operator::provider::prices::builtin(), region, vec![n2], 10)
                .expect("n2-standard-2 is in the tables");
        Subject {
            cloud: Arc::new(operator::provider::gcp::GcpProvider::new(config).expect("provider")),
            request: Box::new(seed_request("gcp-us-central1", "us-central1-a", "n2-standard-2")),
            no_capacity: None,
            has_metrics: false,
            prefix: String::new(),
            _keep: Box::new(fake),
        }
    })
}

#[tokio::test]
async fn aws_cloud_on_moto_conforms() {
    suite(aws).await;
}

#[tokio::test]
async fn azure_provider_on_its_fake_conforms() {
    suite(azure).await;
}

#[tokio::test]
async fn gcp_provider_on_its_fake_conforms() {
    suite(gcp).await;
}

#[tokio::test]
async fn memory_cloud_conforms() {
    suite(memory).await;
}

#[tokio::test]
async fn multi_cloud_router_conforms() {
    suite(multi).await;
}
