//! The JSON form of the provider's types in the cache. The provider's own types carry no serde
//! derives (they are the trait's plain data); these mirrors convert both ways without loss, so a
//! value read back from Redis equals the one stored.

use engine::{FailureCause, Market, Provider};
use serde::{Deserialize, Serialize};

use crate::provider::{
    CloudCatalog, CloudInstance, InstanceMetrics, InstanceState, InstanceTypeInfo, OfferInfo, PriceQuote, RegionInfo,
};

/// [`CloudCatalog`] as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    regions: Vec<Region>,
    instance_types: Vec<InstanceType>,
    offers: Vec<Offer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Region {
    name: String,
    aliases: Vec<String>,
    provider: Provider,
    zones: Vec<String>,
    location: (f64, f64),
    carbon_g_per_kwh: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct InstanceType {
    name: String,
    vcpu: u32,
    memory_gib: f64,
    gpu: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Offer {
    region: String,
    zone: String,
    instance_type: String,
    on_demand_per_h: f64,
    spot_per_h: Option<f64>,
    capacity: u32,
}

impl From<&CloudCatalog> for Catalog {
    fn from(c: &CloudCatalog) -> Self {
        Catalog {
            regions: c
                .regions
                .iter()
                .map(|r| Region {
                    name: r.name.clone(),
                    aliases: r.aliases.clone(),
                    provider: r.provider,
                    zones: r.zones.clone(),
                    location: r.location,
                    carbon_g_per_kwh: r.carbon_g_per_kwh,
                })
                .collect(),
            instance_types: c
                .instance_types
                .iter()
                .map(|t| InstanceType { name: t.name.clone(), vcpu: t.vcpu, memory_gib: t.memory_gib, gpu: t.gpu })
                .collect(),
            offers: c
                .offers
                .iter()
                .map(|o| Offer {
                    region: o.region.clone(),
                    zone: o.zone.clone(),
                    instance_type: o.instance_type.clone(),
                    on_demand_per_h: o.on_demand_per_h,
                    spot_per_h: o.spot_per_h,
                    capacity: o.capacity,
                })
                .collect(),
        }
    }
}

impl From<Catalog> for CloudCatalog {
    fn from(c: Catalog) -> Self {
        CloudCatalog {
            regions: c
                .regions
                .into_iter()
                .map(|r| RegionInfo {
                    name: r.name,
                    aliases: r.aliases,
                    provider: r.provider,
                    zones: r.zones,
                    location: r.location,
                    carbon_g_per_kwh: r.carbon_g_per_kwh,
                })
                .collect(),
            instance_types: c
                .instance_types
                .into_iter()
                .map(|t| InstanceTypeInfo { name: t.name, vcpu: t.vcpu, memory_gib: t.memory_gib, gpu: t.gpu })
                .collect(),
            offers: c
                .offers
                .into_iter()
                .map(|o| OfferInfo {
                    region: o.region,
                    zone: o.zone,
                    instance_type: o.instance_type,
                    on_demand_per_h: o.on_demand_per_h,
                    spot_per_h: o.spot_per_h,
                    capacity: o.capacity,
                })
                .collect(),
        }
    }
}

/// [`PriceQuote`] as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Price {
    region: String,
    zone: String,
    instance_type: String,
    market: Market,
    price_per_h: f64,
}

impl From<&PriceQuote> for Price {
    fn from(q: &PriceQuote) -> Self {
        Price {
            region: q.region.clone(),
            zone: q.zone.clone(),
            instance_type: q.instance_type.clone(),
            market: q.market,
            price_per_h: q.price_per_h,
        }
    }
}

impl From<Price> for PriceQuote {
    fn from(q: Price) -> Self {
        PriceQuote {
            region: q.region,
            zone: q.zone,
            instance_type: q.instance_type,
            market: q.market,
            price_per_h: q.price_per_h,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
enum State {
    Pending,
    Running,
    Interrupting { at_ms: u64 },
    Lost { cause: FailureCause },
    Terminated,
}

/// [`CloudInstance`] as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    id: String,
    client_token: String,
    owner_uid: String,
    slot: u32,
    region: String,
    zone: String,
    instance_type: String,
    market: Market,
    state: State,
}

impl From<&CloudInstance> for Instance {
    fn from(i: &CloudInstance) -> Self {
        Instance {
            id: i.id.clone(),
            client_token: i.client_token.clone(),
            owner_uid: i.owner_uid.clone(),
            slot: i.slot,
            region: i.region.clone(),
            zone: i.zone.clone(),
            instance_type: i.instance_type.clone(),
            market: i.market,
            state: match i.state {
                InstanceState::Pending => State::Pending,
                InstanceState::Running => State::Running,
                InstanceState::Interrupting { at_ms } => State::Interrupting { at_ms },
                InstanceState::Lost(cause) => State::Lost { cause },
                InstanceState::Terminated => State::Terminated,
            },
        }
    }
}

impl From<Instance> for CloudInstance {
    fn from(i: Instance) -> Self {
        CloudInstance {
            id: i.id,
            client_token: i.client_token,
            owner_uid: i.owner_uid,
            slot: i.slot,
            region: i.region,
            zone: i.zone,
            instance_type: i.instance_type,
            market: i.market,
            state: match i.state {
                State::Pending => InstanceState::Pending,
                State::Running => InstanceState::Running,
                State::Interrupting { at_ms } => InstanceState::Interrupting { at_ms },
                State::Lost { cause } => InstanceState::Lost(cause),
                State::Terminated => InstanceState::Terminated,
            },
        }
    }
}

/// [`InstanceMetrics`] as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    cpu_percent: Option<f64>,
    network_in_bytes: Option<f64>,
    network_out_bytes: Option<f64>,
    window_s: u64,
}

impl From<&InstanceMetrics> for Metrics {
    fn from(m: &InstanceMetrics) -> Self {
        Metrics {
            cpu_percent: m.cpu_percent,
            network_in_bytes: m.network_in_bytes,
            network_out_bytes: m.network_out_bytes,
            window_s: m.window_s,
        }
    }
}

impl From<Metrics> for InstanceMetrics {
    fn from(m: Metrics) -> Self {
        InstanceMetrics {
            cpu_percent: m.cpu_percent,
            network_in_bytes: m.network_in_bytes,
            network_out_bytes: m.network_out_bytes,
            window_s: m.window_s,
        }
    }
}
