//! Several providers behind one [`CloudProvider`]: the controller sees one cloud whose catalog is
//! the union of its members' (an AWS region, an Azure region, a GCP region, in-memory clouds in
//! tests), and every call goes to the member that owns what it names.
//!
//! Routing:
//! - by **region** (`create`, `estimate_cost`): the member whose catalog sells the region (name or
//!   alias). The region map is filled from the members' catalogs on first use; a region sold by
//!   two members is refused, so a call can never go to the wrong cloud.
//! - by **instance id** (`get`, `delete`, `metrics`): the member recorded when the id was seen
//!   (returned by its `create`, `get` or `list`). An id not seen yet (after an operator restart,
//!   before the first list) is asked of each member in turn: the first that knows it owns it. A
//!   `delete` no member knows has nothing to delete and succeeds, as the trait asks.
//! - **merged** (`catalog`, `list`, `prices`, `unhealthy_regions`): every member is asked and the
//!   answers are concatenated in member order. A member that fails fails the call, with the
//!   member's name in the message and its error kind kept (an [`ProviderError::Auth`] stays an
//!   auth error): a partial `list` would make the controller think instances were gone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use engine::{Market, Provider};
use futures::future::BoxFuture;

use super::{
    CloudCatalog, CloudInstance, CloudProvider, CreateRequest, InstanceMetrics, PriceQuote, ProviderError,
    ProviderResult,
};

/// One provider behind the router.
#[derive(Clone)]
pub struct Member {
    /// Name used in messages (`aws-us-east-1`, `azure`).
    pub name: String,
    /// Which cloud it is.
    pub provider: Provider,
    /// The provider.
    pub cloud: Arc<dyn CloudProvider>,
}

/// The router. Cheap to share behind an `Arc`.
pub struct MultiCloud {
    members: Vec<Member>,
    routes: Mutex<Routes>,
}

#[derive(Default)]
struct Routes {
    /// Region name or alias → member index; `None` until the catalogs were read.
    regions: Option<BTreeMap<String, usize>>,
    /// Instance id → member index.
    ids: BTreeMap<String, usize>,
}

/// The member's name in front of an error's message, its kind kept.
fn tag(member: &str, e: ProviderError) -> ProviderError {
    match e {
        ProviderError::InsufficientCapacity(m) => ProviderError::InsufficientCapacity(format!("{member}: {m}")),
        ProviderError::Throttled(m) => ProviderError::Throttled(format!("{member}: {m}")),
        ProviderError::Api(m) => ProviderError::Api(format!("{member}: {m}")),
        ProviderError::TokenMismatch(m) => ProviderError::TokenMismatch(m),
        ProviderError::Auth(m) => ProviderError::Auth(format!("{member}: {m}")),
    }
}

impl MultiCloud {
    /// A router over `members`, asked in this order.
    pub fn new(members: Vec<Member>) -> Self {
        MultiCloud { members, routes: Mutex::new(Routes::default()) }
    }

    /// The members.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    fn lock(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, id: &str, member: usize) {
        self.lock().ids.insert(id.to_owned(), member);
    }

    /// The member selling `region`, reading the catalogs the first time.
    async fn member_for_region(&self, region: &str) -> ProviderResult<usize> {
        if self.lock().regions.is_none() {
            self.catalog().await?;
        }
        let routes = self.lock();
        let map = routes.regions.as_ref().ok_or_else(|| ProviderError::Api("no catalog read yet".into()))?;
        map.get(region).copied().ok_or_else(|| {
            let names: Vec<&str> = map.keys().map(String::as_str).collect();
            ProviderError::Api(format!("no member sells region {region:?}; regions are: {}", names.join(", ")))
        })
    }

    /// The member owning instance `id`: the one recorded, else the first that knows it.
    async fn member_for_id(&self, id: &str) -> ProviderResult<Option<(usize, Option<CloudInstance>)>> {
        if let Some(&m) = self.lock().ids.get(id) {
            return Ok(Some((m, None)));
        }
        for (m, member) in self.members.iter().enumerate() {
            if let Some(i) = member.cloud.get(id).await.map_err(|e| tag(&member.name, e))? {
                self.remember(id, m);
                return Ok(Some((m, Some(i))));
            }
        }
        Ok(None)
    }
}

impl CloudProvider for MultiCloud {
    fn catalog(&self) -> BoxFuture<'_, ProviderResult<CloudCatalog>> {
        Box::pin(async move {
            let mut merged = CloudCatalog::default();
            let mut regions = BTreeMap::new();
            for (m, member) in self.members.iter().enumerate() {
                let c = member.cloud.catalog().await.map_err(|e| tag(&member.name, e))?;
                for r in &c.regions {
                    for n in std::iter::once(&r.name).chain(&r.aliases) {
                        if let Some(other) = regions.insert(n.clone(), m) {
                            return Err(ProviderError::Api(format!(
                                "region {n:?} is sold by both {} and {}",
                                self.members[other].name, member.name
                            )));
                        }
                    }
                }
                merged.regions.extend(c.regions);
                for t in c.instance_types {
                    match merged.instance_types.iter().find(|x| x.name == t.name) {
                        Some(x) if *x != t => {
                            return Err(ProviderError::Api(format!(
                                "instance type {:?} has two shapes ({} says {} vCPU / {} GiB)",
                                t.name, member.name, t.vcpu, t.memory_gib
                            )));
                        }
                        Some(_) => {}
                        None => merged.instance_types.push(t),
                    }
                }
                merged.offers.extend(c.offers);
            }
            self.lock().regions = Some(regions);
            Ok(merged)
        })
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, ProviderResult<CloudInstance>> {
        Box::pin(async move {
            let m = self.member_for_region(&request.region).await?;
            let member = &self.members[m];
            let i = member.cloud.create(request).await.map_err(|e| tag(&member.name, e))?;
            self.remember(&i.id, m);
            Ok(i)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<Option<CloudInstance>>> {
        Box::pin(async move {
            match self.member_for_id(id).await? {
                None => Ok(None),
                Some((_, Some(found))) => Ok(Some(found)),
                Some((m, None)) => {
                    let member = &self.members[m];
                    member.cloud.get(id).await.map_err(|e| tag(&member.name, e))
                }
            }
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        Box::pin(async move {
            let Some((m, _)) = self.member_for_id(id).await? else { return Ok(()) };
            let member = &self.members[m];
            member.cloud.delete(id).await.map_err(|e| tag(&member.name, e))
        })
    }

    fn list<'a>(&'a self, owner_uid: &'a str) -> BoxFuture<'a, ProviderResult<Vec<CloudInstance>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (m, member) in self.members.iter().enumerate() {
                let v = member.cloud.list(owner_uid).await.map_err(|e| tag(&member.name, e))?;
                let mut routes = self.lock();
                for i in &v {
                    routes.ids.insert(i.id.clone(), m);
                }
                drop(routes);
                out.extend(v);
            }
            Ok(out)
        })
    }

    fn prices(&self) -> BoxFuture<'_, ProviderResult<Vec<PriceQuote>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for member in &self.members {
                out.extend(member.cloud.prices().await.map_err(|e| tag(&member.name, e))?);
            }
            Ok(out)
        })
    }

    fn unhealthy_regions(&self) -> BoxFuture<'_, ProviderResult<Vec<String>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for member in &self.members {
                out.extend(member.cloud.unhealthy_regions().await.map_err(|e| tag(&member.name, e))?);
            }
            Ok(out)
        })
    }

    fn metrics<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<InstanceMetrics>> {
        Box::pin(async move {
            let Some((m, _)) = self.member_for_id(id).await? else {
                return Err(ProviderError::Api(format!("no member knows instance {id}")));
            };
            let member = &self.members[m];
            member.cloud.metrics(id).await.map_err(|e| tag(&member.name, e))
        })
    }

    fn estimate_cost<'a>(
        &'a self,
        region: &'a str,
        instance_type: &'a str,
        market: Market,
    ) -> BoxFuture<'a, ProviderResult<f64>> {
        Box::pin(async move {
            let m = self.member_for_region(region).await?;
            let member = &self.members[m];
            member.cloud.estimate_cost(region, instance_type, market).await.map_err(|e| tag(&member.name, e))
        })
    }
}
