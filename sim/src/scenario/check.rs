//! Validation: [`raw::RawScenario`] → [`Scenario`], collecting every problem with its location.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::prices::{self, PriceBook, PriceTable};
use engine::{
    Billing, Catalog, Commitment, CostModel, EgressPrices, EngineConfig, Fit, GroupId, InstanceType, InstanceTypeId,
    Market, Offer, OfferId, OfferKind, PoolId, PoolSpec, Provider, Region, RegionId, Resources, SimDuration, SimTime,
    Zone, ZoneId,
};
use rand_distr::{Exp, LogNormal, Pareto, Weibull};

use super::raw::{self, OneOrMany, RawDist, RawScenario};
use super::{
    Arrival, Burst, Fault, FaultKind, Problem, RegionSim, Scenario, ScenarioError, SeriesPoint, Shape, SpotSim,
    Workload,
};
use crate::dist::DurationDist;

/// Reads a learned policy's model artifact (JSON, see `engine::policy::learned`) and checks that
/// the engine can run it ([`engine::ModelArtifact::from_json`], the operator's loader too). The
/// message names the file and says what is wrong.
pub fn load_model(path: &Path) -> Result<engine::ModelArtifact, String> {
    use engine::policy::learned::ArtifactError;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read model {}: {e}", path.display()))?;
    engine::ModelArtifact::from_json(&text).map_err(|e| match e {
        ArtifactError::Parse(m) => format!("model {} is not a valid model artifact: {m}", path.display()),
        e => format!("model {}: {e}", path.display()),
    })
}

/// Parses and checks scenario text; `path` is used in messages and to resolve relative files.
pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = toml::from_str(text).map_err(|e| syntax_error(text, path, &e))?;
    let mut ck = Checker {
        path: path.to_owned(),
        text,
        doc: toml_edit::Document::parse(text.to_owned()).ok(),
        problems: Vec::new(),
    };
    let scenario = ck.scenario(raw);
    match scenario {
        Some(s) if ck.problems.is_empty() => Ok(s),
        _ => Err(ScenarioError::Invalid { problems: ck.problems }),
    }
}

fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> ScenarioError {
    let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
    let snippet = text.lines().nth(line - 1).map(|l| format!("{line:>5} | {l}")).unwrap_or_default();
    ScenarioError::Syntax { path: path.to_owned(), line, column, message: e.message().trim().to_owned(), snippet }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |i| before.len() - i - 1) + 1;
    (line, column)
}

struct Checker<'a> {
    path: PathBuf,
    text: &'a str,
    doc: Option<toml_edit::Document<String>>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    /// Records a problem at `key` (a dotted path with `[i]` indices).
    fn bad(&mut self, key: &str, message: impl Into<String>) {
        let line = self.locate(key);
        self.problems.push(Problem { path: self.path.clone(), line, key: key.to_owned(), message: message.into() });
    }

    /// Finds the line of a key path, or of its nearest existing parent.
    fn locate(&self, key: &str) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut item = doc.as_item();
        let mut best = None;
        for seg in split_path(key) {
            let next = match seg {
                Seg::Key(k) => item.get(k),
                Seg::Index(i) => item.get(i),
            };
            let Some(next) = next else { break };
            item = next;
            let span = match item {
                toml_edit::Item::Table(t) => t.span(),
                toml_edit::Item::Value(v) => v.span(),
                toml_edit::Item::ArrayOfTables(a) => a.span(),
                toml_edit::Item::None => None,
            };
            if let Some(s) = span {
                best = Some(line_col(self.text, s.start).0);
            }
        }
        best
    }

    fn duration(&mut self, key: &str, text: &str) -> Option<SimDuration> {
        match SimDuration::parse(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.bad(key, e.to_string());
                None
            }
        }
    }

    fn opt_duration(&mut self, key: &str, text: Option<&str>, default: SimDuration) -> SimDuration {
        match text {
            Some(t) => self.duration(key, t).unwrap_or(default),
            None => default,
        }
    }

    fn number(&mut self, key: &str, v: f64, lo: f64, hi: f64) -> f64 {
        if !(v.is_finite() && v >= lo && v <= hi) {
            let range = if hi == f64::MAX { format!(">= {lo}") } else { format!("between {lo} and {hi}") };
            self.bad(key, format!("must be a number {range} (got {v})"));
        }
        v
    }

    fn dist(&mut self, key: &str, d: &RawDist) -> Option<DurationDist> {
        let secs = |ck: &mut Self, k: &str, t: &str| ck.duration(&format!("{key}.{k}"), t).map(|d| d.as_secs_f64());
        Some(match d {
            RawDist::Fixed { value } => DurationDist::Fixed(self.duration(&format!("{key}.value"), value)?),
            RawDist::Uniform { min, max } => {
                let (lo, hi) = (secs(self, "min", min)?, secs(self, "max", max)?);
                if hi < lo {
                    self.bad(&format!("{key}.max"), "must not be less than min");
                    return None;
                }
                DurationDist::Uniform(lo, hi)
            }
            RawDist::Exponential { mean } => {
                let m = secs(self, "mean", mean)?;
                if m <= 0.0 {
                    self.bad(&format!("{key}.mean"), "must be longer than 0");
                    return None;
                }
                DurationDist::Exponential(Exp::new(1.0 / m).ok()?, m)
            }
            RawDist::Lognormal { median, sigma } => {
                let m = secs(self, "median", median)?;
                self.number(&format!("{key}.sigma"), *sigma, 0.0, 10.0);
                if m <= 0.0 {
                    self.bad(&format!("{key}.median"), "must be longer than 0");
                    return None;
                }
                DurationDist::LogNormal(LogNormal::new(m.ln(), *sigma).ok()?)
            }
            RawDist::Pareto { scale, shape } => {
                let s = secs(self, "scale", scale)?;
                if s <= 0.0 || !(shape.is_finite() && *shape > 0.0) {
                    self.bad(key, "pareto needs scale > 0 and shape > 0");
                    return None;
                }
                DurationDist::Pareto(Pareto::new(s, *shape).ok()?)
            }
            RawDist::Weibull { scale, shape } => {
                let s = secs(self, "scale", scale)?;
                if s <= 0.0 || !(shape.is_finite() && *shape > 0.0) {
                    self.bad(key, "weibull needs scale > 0 and shape > 0");
                    return None;
                }
                DurationDist::Weibull(Weibull::new(s, *shape).ok()?)
            }
        })
    }

    fn region_ref(&mut self, key: &str, name: &str, names: &BTreeMap<String, RegionId>) -> Option<RegionId> {
        let r = names.get(name).copied();
        if r.is_none() {
            let known: Vec<&str> = names.keys().map(String::as_str).collect();
            self.bad(key, format!("no region named {name:?}; regions are: {}", known.join(", ")));
        }
        r
    }

    fn relative(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() { p.to_owned() } else { self.path.parent().unwrap_or(Path::new(".")).join(p) }
    }

    fn scenario(&mut self, raw: RawScenario) -> Option<Scenario> {
        if raw.name.trim().is_empty() || raw.name.contains(['/', '\\']) {
            self.bad("name", "must be a non-empty name without slashes (it names the output folder)");
        }
        let duration = self.duration("duration", &raw.duration).unwrap_or(SimDuration::from_secs(3600));
        if duration == SimDuration::ZERO {
            self.bad("duration", "must be longer than 0");
        }
        let sample_interval =
            self.opt_duration("sample_interval", raw.sample_interval.as_deref(), SimDuration::from_secs(60));
        if sample_interval == SimDuration::ZERO {
            self.bad("sample_interval", "must be longer than 0");
        }

        // Instance types.
        let mut type_ids = BTreeMap::new();
        let mut instance_types = Vec::new();
        for (i, t) in raw.instance_types.iter().enumerate() {
            let key = format!("instance_types[{i}]");
            if type_ids.insert(t.name.clone(), InstanceTypeId(i as u16)).is_some() {
                self.bad(&format!("{key}.name"), format!("instance type {:?} is defined twice", t.name));
            }
            if t.vcpu == 0 {
                self.bad(&format!("{key}.vcpu"), "must be at least 1");
            }
            self.number(&format!("{key}.memory_gib"), t.memory_gib, 0.0, 1.0e6);
            instance_types.push(InstanceType {
                name: t.name.clone(),
                resources: Resources { vcpu: t.vcpu, memory_mib: gib_to_mib(t.memory_gib), gpu: t.gpu },
            });
        }

        // Regions and zones.
        if raw.regions.is_empty() {
            self.bad("regions", "at least one [[regions]] entry is required");
        }
        let mut region_ids = BTreeMap::new();
        let mut regions = Vec::new();
        let mut zones = Vec::new();
        let mut region_sims = Vec::new();
        let mut coords = Vec::new();
        for (i, r) in raw.regions.iter().enumerate() {
            let key = format!("regions[{i}]");
            let id = RegionId(i as u16);
            if region_ids.insert(r.name.clone(), id).is_some() {
                self.bad(&format!("{key}.name"), format!("region {:?} is defined twice", r.name));
            }
            for a in &r.aliases {
                if region_ids.insert(a.clone(), id).is_some() {
                    self.bad(&format!("{key}.aliases"), format!("name {a:?} is already taken by another region"));
                }
            }
            let zone_names = if r.zones.is_empty() { vec!["a".to_owned()] } else { r.zones.clone() };
            let mut zids = Vec::new();
            for (j, z) in zone_names.iter().enumerate() {
                if zone_names[..j].contains(z) {
                    self.bad(&format!("{key}.zones"), format!("zone {z:?} is listed twice"));
                }
                zids.push(ZoneId(zones.len() as u16));
                zones.push(Zone { name: z.clone(), region: id });
            }
            let [lat, lon] = r.location;
            self.number(&format!("{key}.location"), lat, -90.0, 90.0);
            self.number(&format!("{key}.location"), lon, -180.0, 180.0);
            coords.push((lat, lon));
            let carbon =
                self.number(&format!("{key}.carbon_g_per_kwh"), r.carbon_g_per_kwh.unwrap_or(400.0), 0.0, 5000.0);
            regions.push(Region { name: r.name.clone(), provider: r.provider, zones: zids, carbon_g_per_kwh: carbon });
            let provision_delay = match &r.provision_delay {
                Some(d) => self.dist(&format!("{key}.provision_delay"), d),
                None => LogNormal::new(45f64.ln(), 0.3).ok().map(DurationDist::LogNormal),
            };
            region_sims.push(RegionSim {
                provision_delay: provision_delay.unwrap_or(DurationDist::Fixed(SimDuration::from_secs(45))),
                api_error_rate: self.number(
                    &format!("{key}.api_error_rate"),
                    r.api_error_rate.unwrap_or(0.0),
                    0.0,
                    1.0,
                ),
                throttle_rate: self.number(&format!("{key}.throttle_rate"), r.throttle_rate.unwrap_or(0.0), 0.0, 1.0),
                crash_rate_per_h: self.number(
                    &format!("{key}.crash_rate_per_h"),
                    r.crash_rate_per_h.unwrap_or(0.0),
                    0.0,
                    1000.0,
                ),
            });
        }
        let n = regions.len();
        let mut latency_ms = vec![0.0; n * n];
        for a in 0..n {
            for b in 0..n {
                latency_ms[a * n + b] = latency_between(coords[a], coords[b]);
            }
        }
        let zone_of = |region: RegionId, name: &str| -> Option<ZoneId> {
            regions[region.idx()].zones.iter().copied().find(|z| zones[z.idx()].name == name)
        };

        // Price tables, and each region's name in them.
        let book = self.pricing(raw.pricing.as_ref());
        let cloud_regions: Vec<String> = raw
            .regions
            .iter()
            .map(|r| r.cloud_region.clone().unwrap_or_else(|| prices::cloud_region(r.provider, &r.name).to_owned()))
            .collect();

        // Offers.
        let mut offers = Vec::new();
        let mut spot = Vec::new();
        let mut offer_names = BTreeMap::new();
        for (i, o) in raw.offers.iter().enumerate() {
            let key = format!("offers[{i}]");
            let Some(region) = self.region_ref(&format!("{key}.region"), &o.region, &region_ids) else { continue };
            if regions[region.idx()].provider == Provider::Onprem {
                self.bad(&format!("{key}.region"), "on-prem regions are sold through [[pools]], not [[offers]]");
            }
            let Some(&itype) = type_ids.get(&o.instance_type) else {
                let known: Vec<&str> = type_ids.keys().map(String::as_str).collect();
                self.bad(
                    &format!("{key}.instance_type"),
                    format!("no instance type named {:?}; types are: {}", o.instance_type, known.join(", ")),
                );
                continue;
            };
            let provider = regions[region.idx()].provider;
            let t = &raw.instance_types[itype.idx()];
            let shape = prices::Shape { vcpu: f64::from(t.vcpu), memory_gib: t.memory_gib };
            let table_price = |market: Market| -> Option<Result<f64, String>> {
                let table = book.table(provider)?;
                Some(
                    table
                        .market_price(&cloud_regions[region.idx()], &o.instance_type, Some(shape), market)
                        .map(|p| p.usd_per_h)
                        .map_err(|e| e.to_string()),
                )
            };
            let on_demand = match (o.on_demand, table_price(Market::OnDemand)) {
                (Some(p), _) => self.number(&format!("{key}.on_demand"), p, 0.0, 1.0e5),
                (None, Some(Ok(p))) => p,
                (None, Some(Err(e))) => {
                    self.bad(&format!("{key}.on_demand"), format!("no on_demand price given, and {e}"));
                    continue;
                }
                (None, None) => {
                    self.bad(
                        &format!("{key}.on_demand"),
                        format!("missing: give on_demand, or a [pricing] {provider} table to take it from"),
                    );
                    continue;
                }
            };
            let zone_list: Vec<ZoneId> = if o.zones.is_empty() {
                regions[region.idx()].zones.clone()
            } else {
                let mut v = Vec::new();
                for z in &o.zones {
                    match zone_of(region, z) {
                        Some(id) => v.push(id),
                        None => self.bad(&format!("{key}.zones"), format!("region {} has no zone {z:?}", o.region)),
                    }
                }
                v
            };
            let spot_sim = o.spot.as_ref().and_then(|s| {
                let table = if s.price.is_none() && s.series.is_none() { table_price(Market::Spot) } else { None };
                self.spot(&format!("{key}.spot"), s, on_demand, table)
            });
            for z in zone_list {
                let id = OfferId(offers.len() as u32);
                offer_names.insert(format!("{}/{}/{}", o.region, zones[z.idx()].name, o.instance_type), id);
                offers.push(Offer {
                    id,
                    region,
                    zone: z,
                    kind: OfferKind::Instance(itype),
                    on_demand_per_h: on_demand,
                    spot_per_h: spot_sim
                        .as_ref()
                        .map(|s| s.series.as_ref().and_then(|p| p.first()).map_or(s.mean_price, |p| p.price_per_h)),
                    per_gib_h: 0.0,
                    capacity: o.capacity,
                });
                spot.push(spot_sim.clone());
            }
        }

        // Pools.
        let mut pools = Vec::new();
        for (i, p) in raw.pools.iter().enumerate() {
            let key = format!("pools[{i}]");
            let Some(region) = self.region_ref(&format!("{key}.region"), &p.region, &region_ids) else { continue };
            if regions[region.idx()].provider != Provider::Onprem {
                self.bad(&format!("{key}.region"), "a pool must be in a region whose provider is \"onprem\"");
            }
            let zone = match &p.zone {
                Some(z) => zone_of(region, z).or_else(|| {
                    self.bad(&format!("{key}.zone"), format!("region {} has no zone {z:?}", p.region));
                    None
                }),
                None => regions[region.idx()].zones.first().copied(),
            };
            let Some(zone) = zone else { continue };
            if p.hosts == 0 || p.host_vcpu == 0 {
                self.bad(&format!("{key}.hosts"), "hosts and host_vcpu must be at least 1");
            }
            self.number(&format!("{key}.host_memory_gib"), p.host_memory_gib, 0.0, 1.0e6);
            self.number(&format!("{key}.per_vcpu_h"), p.per_vcpu_h, 0.0, 1.0e4);
            self.number(&format!("{key}.per_gib_h"), p.per_gib_h, 0.0, 1.0e4);
            let id = OfferId(offers.len() as u32);
            let pool_id = PoolId(pools.len() as u16);
            offers.push(Offer {
                id,
                region,
                zone,
                kind: OfferKind::Pool(pool_id),
                on_demand_per_h: p.per_vcpu_h,
                spot_per_h: None,
                per_gib_h: p.per_gib_h,
                capacity: u32::MAX,
            });
            spot.push(None);
            pools.push(PoolSpec {
                name: p.name.clone(),
                offer: id,
                hosts: p.hosts,
                host: Resources { vcpu: p.host_vcpu, memory_mib: gib_to_mib(p.host_memory_gib), gpu: p.host_gpu },
                fit: p.fit.unwrap_or(Fit::FirstFit),
            });
        }
        if raw.offers.is_empty() && raw.pools.is_empty() {
            self.bad("offers", "the scenario sells nothing: add [[offers]] or [[pools]]");
        }

        // Groups.
        let mut group_ids = BTreeMap::new();
        let mut group_budgets = BTreeMap::new();
        for (i, g) in raw.groups.iter().enumerate() {
            if group_ids.insert(g.name.clone(), GroupId(i as u32)).is_some() {
                self.bad(&format!("groups[{i}].name"), format!("group {:?} is defined twice", g.name));
            }
            if let Some(b) = g.budget_per_h {
                group_budgets.insert(i as u32, self.number(&format!("groups[{i}].budget_per_h"), b, 0.0, 1.0e9));
            }
        }

        // Cost.
        let c = &raw.cost;
        let mut commitments = Vec::new();
        for (i, rc) in c.commitments.iter().enumerate() {
            let key = format!("cost.commitments[{i}]");
            match rc {
                raw::RawCommitment::Reserved { offer, count, fee_per_h } => {
                    self.number(&format!("{key}.fee_per_h"), *fee_per_h, 0.0, 1.0e5);
                    match offer_names.get(offer) {
                        Some(&id) => {
                            commitments.push(Commitment::Reserved { offer: id, count: *count, fee_per_h: *fee_per_h })
                        }
                        None => self.bad(
                            &format!("{key}.offer"),
                            format!("no offer {offer:?}; write it as \"region/zone/instance-type\""),
                        ),
                    }
                }
                raw::RawCommitment::SavingsPlan { provider, committed_per_h, discount } => {
                    self.number(&format!("{key}.committed_per_h"), *committed_per_h, 0.0, 1.0e7);
                    self.number(&format!("{key}.discount"), *discount, 0.0, 1.0);
                    commitments.push(Commitment::SavingsPlan {
                        provider: *provider,
                        committed_per_h: *committed_per_h,
                        discount: *discount,
                    });
                }
            }
        }
        let eg = EgressPrices::default();
        let cost = CostModel {
            billing: Billing {
                granularity: self.opt_duration(
                    "cost.billing_granularity",
                    c.billing_granularity.as_deref(),
                    SimDuration::from_secs(1),
                ),
                minimum: self.opt_duration(
                    "cost.billing_minimum",
                    c.billing_minimum.as_deref(),
                    SimDuration::from_secs(60),
                ),
            },
            commitments,
            egress: EgressPrices {
                inter_zone_per_gib: self.number(
                    "cost.egress_inter_zone_per_gib",
                    c.egress_inter_zone_per_gib.unwrap_or(eg.inter_zone_per_gib),
                    0.0,
                    100.0,
                ),
                inter_region_per_gib: self.number(
                    "cost.egress_inter_region_per_gib",
                    c.egress_inter_region_per_gib.unwrap_or(eg.inter_region_per_gib),
                    0.0,
                    100.0,
                ),
                inter_cloud_per_gib: self.number(
                    "cost.egress_inter_cloud_per_gib",
                    c.egress_inter_cloud_per_gib.unwrap_or(eg.inter_cloud_per_gib),
                    0.0,
                    100.0,
                ),
            },
            max_per_h: c.max_per_h.map(|m| self.number("cost.max_per_h", m, 0.0, 1.0e9)),
        };

        // Engine.
        let d = EngineConfig::default();
        let e = &raw.engine;
        let mut policy = raw.policy.clone().unwrap_or_default();
        let mut model_ok = true;
        // A learned policy names a model file: read it here (the engine does no I/O).
        if let engine::PolicyConfig::Learned(c) = &mut policy
            && let engine::ModelSource::Path(file) = &c.model
        {
            let path = self.relative(file);
            match load_model(&path) {
                Ok(a) => c.model = engine::ModelSource::Loaded(std::sync::Arc::new(a)),
                Err(m) => {
                    self.bad("policy.model", m);
                    model_ok = false;
                }
            }
        }
        if model_ok && let Err(m) = policy.validate() {
            self.bad("policy", m);
        }
        let engine = EngineConfig {
            policy,
            capacity_backoff: self.opt_duration(
                "engine.capacity_backoff",
                e.capacity_backoff.as_deref(),
                d.capacity_backoff,
            ),
            spot_block: self.opt_duration("engine.spot_block", e.spot_block.as_deref(), d.spot_block),
            max_attempts: e.max_attempts.unwrap_or(d.max_attempts),
            retry_backoff: self.opt_duration("engine.retry_backoff", e.retry_backoff.as_deref(), d.retry_backoff),
            retry_backoff_max: self.opt_duration(
                "engine.retry_backoff_max",
                e.retry_backoff_max.as_deref(),
                d.retry_backoff_max,
            ),
            queue_timeout: self.opt_duration("engine.queue_timeout", e.queue_timeout.as_deref(), d.queue_timeout),
            replace_on_notice: e.replace_on_notice.unwrap_or(d.replace_on_notice),
            interruption_half_life: self.opt_duration(
                "engine.interruption_half_life",
                e.interruption_half_life.as_deref(),
                d.interruption_half_life,
            ),
            group_budgets,
        };
        if engine.max_attempts == 0 {
            self.bad("engine.max_attempts", "must be at least 1");
        }

        let workload = self.workload(&raw.workload, &region_ids, &group_ids, duration);
        let deployments = self.deployments(&raw.deployments, &region_ids, &regions, group_ids.len());
        let cache = raw.cache.as_ref().and_then(|c| self.cache(c));
        let deployment_ids: BTreeMap<String, GroupId> =
            deployments.iter().map(|d| (d.spec.name.clone(), d.spec.id)).collect();
        let faults = self.faults(&raw.faults, &region_ids, &regions, &zones, duration, &deployment_ids);

        if !self.problems.is_empty() {
            // Later checks would only repeat the problems already found in other words.
            return None;
        }
        let catalog = match Catalog::new(regions, zones, instance_types, offers, pools, latency_ms) {
            Ok(c) => c,
            Err(e) => {
                self.bad("offers", e.to_string());
                return None;
            }
        };
        // Every shape must fit somewhere, or every request of that shape would be rejected.
        // (With a trace, shapes are templates: sizes come from the records.)
        if let Some(w) = workload.as_ref().filter(|w| !matches!(w.arrival, Arrival::Trace { .. })) {
            for (i, s) in w.shapes.iter().enumerate() {
                let biggest = Resources {
                    vcpu: s.vcpu.iter().copied().max().unwrap_or(0),
                    memory_mib: s.memory_mib.iter().copied().max().unwrap_or(0),
                    gpu: s.gpu,
                };
                if !catalog.offers.iter().any(|o| catalog.offer_fits(o, &biggest)) {
                    self.bad(&format!("workload.shapes[{i}]"), "no offer or pool is big enough for this shape");
                }
            }
        }
        let mut group_names = vec![String::new(); group_ids.len()];
        for (name, id) in group_ids {
            group_names[id.0 as usize] = name;
        }
        Some(Scenario {
            name: raw.name,
            description: raw.description.unwrap_or_default(),
            seed: raw.seed,
            duration,
            sample_interval,
            catalog,
            cost,
            engine,
            regions: region_sims,
            spot,
            groups: group_names,
            workload: workload?,
            faults: faults?,
            deployments,
            cache,
        })
    }

    /// `[cache]`: sizes, rate limit and polling here; the policy is validated by the engine, whose
    /// error names the field under `cache.policy`.
    fn cache(&mut self, c: &raw::RawCache) -> Option<crate::cache::CacheSim> {
        let mut ok = true;
        let mut count = |ck: &mut Self, key: &str, v: Option<u64>, default: u64, what: &str| {
            let v = v.unwrap_or(default);
            if v == 0 {
                ck.bad(key, format!("must be at least 1 ({what})"));
                ok = false;
            }
            v
        };
        let api_rate_limit =
            count(self, "cache.api_rate_limit", c.api_rate_limit, 10, "read-API calls per provider per second");
        let l1_entries = count(self, "cache.l1_entries", c.l1_entries, 1_000, "entries the in-process cache holds");
        let l2_entries = count(self, "cache.l2_entries", c.l2_entries, 100_000, "entries the shared cache holds");
        let poll_interval = match &c.poll_interval {
            Some(t) => match self.duration("cache.poll_interval", t) {
                Some(d) if d == SimDuration::ZERO => {
                    self.bad("cache.poll_interval", "must be longer than 0");
                    None
                }
                d => d,
            },
            None => Some(SimDuration::from_secs(60)),
        };
        let policy = match engine::cache::CachePolicy::new(&c.policy) {
            Ok(p) => Some(p),
            Err(engine::cache::Error::Invalid { field, message }) => {
                self.bad(&format!("cache.policy.{field}"), message);
                None
            }
            Err(e) => {
                self.bad("cache.policy", e.to_string());
                None
            }
        };
        if !ok {
            return None;
        }
        Some(crate::cache::CacheSim {
            policy: policy?,
            api_rate_limit,
            l1_entries,
            l2_entries,
            poll_interval: poll_interval?,
        })
    }

    /// A share written `0.95`, `"95%"` or `"cpu:80%"` (the prefix is ignored here).
    fn fraction(&mut self, key: &str, v: &raw::NumOrStr) -> Option<f64> {
        let parsed = match v {
            raw::NumOrStr::Num(n) => Some(*n),
            raw::NumOrStr::Str(s) => {
                let t = s.rsplit(':').next().unwrap_or(s).trim();
                match t.strip_suffix('%') {
                    Some(p) => p.trim().parse::<f64>().ok().map(|x| x / 100.0),
                    None => t.parse::<f64>().ok(),
                }
            }
        };
        match parsed.filter(|x| x.is_finite() && (0.0..=1.0).contains(x)) {
            Some(x) => Some(x),
            None => {
                self.bad(key, "must be a share such as 0.95 or \"95%\" (between 0 and 1)");
                None
            }
        }
    }

    fn money(&mut self, key: &str, v: &raw::NumOrStr) -> Option<f64> {
        let parsed = match v {
            raw::NumOrStr::Num(n) => Some(*n),
            raw::NumOrStr::Str(s) => s.trim().trim_start_matches('$').parse::<f64>().ok(),
        };
        match parsed.filter(|x| x.is_finite() && *x >= 0.0) {
            Some(x) => Some(x),
            None => {
                self.bad(key, "must be an amount in $/h such as 1.00 or \"1.00\"");
                None
            }
        }
    }

    /// Reads a `novacron.io/v1` `MultiCloudVM` manifest.
    fn manifest(&mut self, key: &str, file: &str) -> Option<raw::RawManifest> {
        let path = self.relative(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.bad(key, format!("cannot read manifest {}: {e}", path.display()));
                return None;
            }
        };
        let m: raw::RawManifest = match serde_yaml_ng::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                let at = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
                self.bad(key, format!("{}{at}: {e}", path.display()));
                return None;
            }
        };
        if m.api_version != "novacron.io/v1" || m.kind != "MultiCloudVM" {
            self.bad(
                key,
                format!(
                    "{}: expected apiVersion novacron.io/v1 and kind MultiCloudVM, found {} {}",
                    path.display(),
                    m.api_version,
                    m.kind
                ),
            );
            return None;
        }
        Some(m)
    }

    fn deployments(
        &mut self,
        raw_deps: &[raw::RawDeployment],
        names: &BTreeMap<String, RegionId>,
        regions: &[Region],
        first_group: usize,
    ) -> Vec<super::DeploymentSim> {
        use engine::deploy::{
            ActiveActiveConfig, ActivePassiveConfig, BurstConfig, CostOptimizedConfig, SpotRecovery, Strategy,
        };
        let mut out = Vec::new();
        let mut seen = BTreeMap::new();
        for (i, d) in raw_deps.iter().enumerate() {
            let key = format!("deployments[{i}]");
            if seen.insert(d.name.clone(), ()).is_some() {
                self.bad(&format!("{key}.name"), format!("deployment {:?} is defined twice", d.name));
            }
            if d.vcpu == 0 {
                self.bad(&format!("{key}.vcpu"), "must be at least 1");
            }
            let manifest = match &d.manifest {
                Some(file) => match self.manifest(&format!("{key}.manifest"), file) {
                    Some(m) => Some(m),
                    None => continue,
                },
                None => None,
            };
            let (st, cost_opt, sk) = match (&manifest, &d.deployment_strategy) {
                (Some(_), Some(_)) => {
                    self.bad(&format!("{key}.deploymentStrategy"), "give a manifest or a deploymentStrategy, not both");
                    continue;
                }
                (Some(m), None) => (
                    &m.spec.deployment_strategy,
                    m.spec.cost_optimization.as_ref(),
                    format!("{key}.manifest: spec.deploymentStrategy"),
                ),
                (None, Some(st)) => (st, d.cost_optimization.as_ref(), format!("{key}.deploymentStrategy")),
                (None, None) => {
                    self.bad(&key, "a deployment needs a deploymentStrategy table or a manifest = \"file.yaml\"");
                    continue;
                }
            };
            let region = |ck: &mut Self, k: &str, n: &str| ck.region_ref(&format!("{sk}.{k}"), n, names);
            let dur = |ck: &mut Self, k: &str, v: &Option<String>, default: u64| {
                ck.opt_duration(&format!("{sk}.{k}"), v.as_deref(), SimDuration::from_secs(default))
            };
            let strategy = match st.kind.as_str() {
                "active-passive" => {
                    let Some(p) = st.primary.as_deref() else {
                        self.bad(&format!("{sk}.primary"), "active-passive needs a primary location");
                        continue;
                    };
                    let Some(primary) = region(self, "primary", p) else { continue };
                    let secondary: Vec<RegionId> = st
                        .secondary
                        .iter()
                        .enumerate()
                        .filter_map(|(j, n)| region(self, &format!("secondary[{j}]"), n))
                        .collect();
                    if secondary.is_empty() {
                        self.bad(&format!("{sk}.secondary"), "active-passive needs at least one secondary location");
                    }
                    Strategy::ActivePassive(ActivePassiveConfig {
                        primary,
                        secondary,
                        failback: st.failback.unwrap_or(false),
                        hold_down: dur(self, "holdDown", &st.hold_down, 900),
                    })
                }
                "active-active" => {
                    let mut locations = Vec::new();
                    for (j, w) in st.locations.iter().enumerate() {
                        if let Some(r) = region(self, &format!("locations[{j}].region"), &w.region) {
                            let weight = self.number(
                                &format!("{sk}.locations[{j}].weight"),
                                w.weight.unwrap_or(1.0),
                                0.0,
                                1.0e6,
                            );
                            locations.push((r, weight));
                        }
                    }
                    if locations.is_empty() {
                        self.bad(
                            &format!("{sk}.locations"),
                            "active-active needs locations: [{ region = \"...\", weight = 1 }, ...]",
                        );
                        continue;
                    }
                    Strategy::ActiveActive(ActiveActiveConfig {
                        locations,
                        restore_after: dur(self, "restoreAfter", &st.restore_after, 600),
                    })
                }
                "burst" => {
                    let Some(p) = st.primary.as_deref() else {
                        self.bad(&format!("{sk}.primary"), "burst needs a primary location");
                        continue;
                    };
                    let Some(primary) = region(self, "primary", p) else { continue };
                    let targets: Vec<RegionId> = st
                        .targets
                        .iter()
                        .enumerate()
                        .filter_map(|(j, n)| region(self, &format!("targets[{j}]"), n))
                        .collect();
                    Strategy::Burst(BurstConfig {
                        primary,
                        targets,
                        primary_max: st.primary_max,
                        scale_in_after: dur(self, "scaleInAfter", &st.scale_in_after, 600),
                        step: st.step.unwrap_or(1),
                        max_replicas: st.max_replicas,
                    })
                }
                "cost-optimized" => {
                    let locations: Vec<RegionId> = st
                        .secondary
                        .iter()
                        .chain(st.primary.iter())
                        .enumerate()
                        .filter_map(|(j, n)| region(self, &format!("locations[{j}]"), n))
                        .collect();
                    let budget = match &st.disruption_budget {
                        Some(v) => self.fraction(&format!("{sk}.disruptionBudget"), v).unwrap_or(0.1),
                        None => 0.1,
                    };
                    Strategy::CostOptimized(CostOptimizedConfig {
                        locations,
                        horizon: dur(self, "horizon", &st.horizon, 24 * 3600),
                        min_saving_ratio: self.number(
                            &format!("{sk}.minSavingRatio"),
                            st.min_saving_ratio.unwrap_or(2.0),
                            0.0,
                            1.0e6,
                        ),
                        disruption_budget: budget,
                        window: dur(self, "window", &st.window, 3600),
                        data_gib: self.number(&format!("{sk}.dataGib"), st.data_gib.unwrap_or(50.0), 0.0, 1.0e7),
                        downtime: dur(self, "downtime", &st.downtime, 120),
                        downtime_cost_per_h: self.number(
                            &format!("{sk}.downtimeCostPerHour"),
                            st.downtime_cost_per_hour.unwrap_or(10.0),
                            0.0,
                            1.0e7,
                        ),
                        overlap: dur(self, "overlap", &st.overlap, 600),
                    })
                }
                other => {
                    self.bad(&format!("{sk}.type"), format!("unknown strategy {other:?}; strategies are: active-passive, active-active, burst, cost-optimized"));
                    continue;
                }
            };
            let mut triggers = Vec::new();
            for (j, t) in st.failover_triggers.iter().enumerate() {
                triggers.extend(self.trigger(&format!("{sk}.failoverTriggers[{j}]"), t));
            }
            let (mig_raw, dr_raw, mk) = match &manifest {
                Some(m) => {
                    if d.migration_policy.is_some() || d.disaster_recovery.is_some() {
                        self.bad(
                            &key,
                            "with a manifest, migrationPolicy and disasterRecovery come from the manifest's spec",
                        );
                    }
                    (
                        m.spec.migration_policy.as_ref(),
                        m.spec.disaster_recovery.as_ref(),
                        format!("{key}.manifest: spec"),
                    )
                }
                None => (d.migration_policy.as_ref(), d.disaster_recovery.as_ref(), key.clone()),
            };
            let memory_gib = d.memory_gib.unwrap_or(4.0);
            let migration = mig_raw.and_then(|m| {
                self.migration_policy(
                    &format!("{mk}.migrationPolicy"),
                    m,
                    memory_gib,
                    &mut triggers,
                    matches!(strategy, Strategy::CostOptimized(_)),
                )
            });
            let disaster_recovery =
                dr_raw.and_then(|r| self.disaster_recovery(&format!("{mk}.disasterRecovery"), r, names));
            let co = cost_opt;
            let max_cost_per_h = co
                .and_then(|c| c.max_cost_per_hour.as_ref())
                .and_then(|v| self.money(&format!("{key}.costOptimization.maxCostPerHour"), v));
            let spot_allowed = co.and_then(|c| c.use_spot_instances).unwrap_or(false);
            let mut template = engine::VmRequest::new(
                engine::VmId(0),
                Resources {
                    vcpu: d.vcpu,
                    memory_mib: gib_to_mib(self.number(
                        &format!("{key}.memoryGib"),
                        d.memory_gib.unwrap_or(4.0),
                        0.0,
                        1.0e6,
                    )),
                    gpu: d.gpu,
                },
            );
            template.spot_allowed = spot_allowed;
            template.users_near =
                d.users_near.as_ref().and_then(|u| self.region_ref(&format!("{key}.usersNear"), u, names));
            template.egress_gib_per_h =
                self.number(&format!("{key}.egressGibPerH"), d.egress_gib_per_h.unwrap_or(0.0), 0.0, 1.0e6);
            let sr = d.spot_recovery.as_ref();
            let spot = SpotRecovery {
                on_demand_after: sr.and_then(|s| s.on_demand_after).unwrap_or(2),
                back_to_spot_after: self.opt_duration(
                    &format!("{key}.spotRecovery.backToSpotAfter"),
                    sr.and_then(|s| s.back_to_spot_after.as_deref()),
                    SimDuration::from_secs(3600),
                ),
            };
            let mut demand = Vec::new();
            for (j, step) in d.demand.iter().enumerate() {
                if let Some(at) = self.duration(&format!("{key}.demand[{j}].at"), &step.at) {
                    demand.push((SimTime(at.as_millis()), step.replicas));
                }
            }
            let spec = engine::DeploymentSpec {
                id: GroupId((first_group + i) as u32),
                name: d.name.clone(),
                replicas: d.replicas,
                template,
                strategy,
                triggers,
                cooldown: self.opt_duration(
                    &format!("{key}.cooldown"),
                    d.cooldown.as_deref(),
                    SimDuration::from_secs(600),
                ),
                evaluate_every: self.opt_duration(
                    &format!("{key}.evaluateEvery"),
                    d.evaluate_every.as_deref(),
                    SimDuration::from_secs(30),
                ),
                max_cost_per_h,
                spot,
                migration,
                disaster_recovery,
                rollout: None,
            };
            if let Err(m) = spec.validate(regions.len()) {
                self.bad(&key, m);
            }
            out.push(super::DeploymentSim { spec, demand });
        }
        out
    }

    /// One failover or migration trigger.
    fn trigger(&mut self, tk: &str, t: &raw::RawTrigger) -> Option<engine::deploy::Trigger> {
        use engine::deploy::{Trigger, TriggerKind};
        let duration = self.opt_duration(&format!("{tk}.duration"), t.duration.as_deref(), SimDuration::from_secs(300));
        let need = |ck: &mut Self| {
            ck.bad(&format!("{tk}.threshold"), "this trigger needs a threshold");
            None
        };
        let kind = match t.kind.as_str() {
            "availability" => match &t.threshold {
                Some(v) => self
                    .fraction(&format!("{tk}.threshold"), v)
                    .map(|threshold| TriggerKind::Availability { threshold }),
                None => need(self),
            },
            "performance" | "cpu" => match &t.threshold {
                Some(raw::NumOrStr::Str(s)) if s.starts_with("latency:") || s.starts_with("p99:") => {
                    let v = s.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
                    self.duration(&format!("{tk}.threshold"), v)
                        .map(|d| TriggerKind::Latency { threshold_ms: d.as_millis() as f64 })
                }
                Some(v) => self.fraction(&format!("{tk}.threshold"), v).map(|threshold| TriggerKind::Cpu { threshold }),
                None => need(self),
            },
            "latency" => match &t.threshold {
                Some(raw::NumOrStr::Str(s)) => self
                    .duration(&format!("{tk}.threshold"), s)
                    .map(|d| TriggerKind::Latency { threshold_ms: d.as_millis() as f64 }),
                Some(raw::NumOrStr::Num(ms)) => Some(TriggerKind::Latency {
                    threshold_ms: self.number(&format!("{tk}.threshold"), *ms, 0.0, 1.0e9),
                }),
                None => need(self),
            },
            "spot-interruption" => {
                let count = match &t.threshold {
                    Some(raw::NumOrStr::Num(n)) if *n >= 1.0 && n.fract() == 0.0 => *n as u32,
                    None => 1,
                    Some(_) => {
                        self.bad(
                            &format!("{tk}.threshold"),
                            "a spot-interruption threshold is a whole number of notices >= 1",
                        );
                        1
                    }
                };
                Some(TriggerKind::SpotInterruption { count })
            }
            "cost" => Some(TriggerKind::Cost),
            "api-error-rate" => match &t.threshold {
                Some(v) => self
                    .fraction(&format!("{tk}.threshold"), v)
                    .map(|threshold| TriggerKind::ApiErrorRate { threshold }),
                None => need(self),
            },
            other => {
                self.bad(&format!("{tk}.type"), format!("unknown trigger {other:?}; triggers are: availability, performance (cpu:80% or latency:200ms), cpu, latency, spot-interruption, cost, api-error-rate"));
                None
            }
        };
        kind.map(|kind| Trigger { kind, duration })
    }

    /// `migrationPolicy`: the kind and model of a move, a cost threshold (cost-optimized only) and
    /// performance triggers, which join the failover triggers (a trigger that fires while the
    /// replicas still serve moves them by migration).
    fn migration_policy(
        &mut self,
        key: &str,
        m: &raw::RawMigrationPolicy,
        memory_gib: f64,
        triggers: &mut Vec<engine::deploy::Trigger>,
        cost_optimized: bool,
    ) -> Option<engine::migration::MigrationPolicy> {
        use engine::migration::{MigrationKind, MigrationPolicy};
        let kind = match m.kind.as_str() {
            "live" => MigrationKind::Live,
            "warm" => MigrationKind::Warm,
            "cold" => MigrationKind::Cold,
            other => {
                self.bad(
                    &format!("{key}.type"),
                    format!("unknown migration type {other:?}; types are: live, warm, cold"),
                );
                return None;
            }
        };
        let mut policy = MigrationPolicy::new(kind);
        let p = &mut policy.params;
        let num = |ck: &mut Self, k: &str, v: Option<f64>, default: f64, lo: f64, hi: f64| match v {
            Some(v) => ck.number(&format!("{key}.{k}"), v, lo, hi),
            None => default,
        };
        p.memory_gib = num(self, "memoryGib", m.memory_gib, memory_gib, 0.001, 1.0e6);
        p.disk_gib = num(self, "diskGib", m.disk_gib, p.disk_gib, 0.0, 1.0e7);
        p.dirty_rate_gib_per_s =
            num(self, "dirtyRateGibPerS", m.dirty_rate_gib_per_s, p.dirty_rate_gib_per_s, 0.0, 1.0e6);
        p.bandwidth_gib_per_s =
            num(self, "bandwidthGibPerS", m.bandwidth_gib_per_s, p.bandwidth_gib_per_s, 1e-6, 1.0e6);
        policy.cross_cloud_bandwidth_gib_per_s = num(
            self,
            "crossCloudBandwidthGibPerS",
            m.cross_cloud_bandwidth_gib_per_s,
            policy.cross_cloud_bandwidth_gib_per_s,
            1e-6,
            1.0e6,
        );
        let p = &mut policy.params;
        if let Some(r) = m.max_precopy_rounds {
            p.max_precopy_rounds = r.min(engine::migration::MAX_PRECOPY_ROUNDS);
            if r > engine::migration::MAX_PRECOPY_ROUNDS {
                self.bad(&format!("{key}.maxPrecopyRounds"), "must be at most 1000");
            }
        }
        let p = &mut policy.params;
        // The downtime limit (QEMU's `downtime-limit`) becomes the stop-and-copy threshold: what
        // the link moves in that time.
        let limit = self.opt_duration(
            &format!("{key}.downtimeLimit"),
            m.downtime_limit.as_deref(),
            SimDuration::from_millis(300),
        );
        p.stop_copy_threshold_gib = p.bandwidth_gib_per_s * limit.as_secs_f64();
        p.pause_overhead =
            self.opt_duration(&format!("{key}.pauseOverhead"), m.pause_overhead.as_deref(), p.pause_overhead);
        p.switch_over = self.opt_duration(&format!("{key}.switchOver"), m.switch_over.as_deref(), p.switch_over);
        p.snapshot_rate_gib_per_s =
            num(self, "snapshotRateGibPerS", m.snapshot_rate_gib_per_s, p.snapshot_rate_gib_per_s, 1e-6, 1.0e6);
        p.boot_time = self.opt_duration(&format!("{key}.bootTime"), m.boot_time.as_deref(), p.boot_time);
        p.shared_storage = m.shared_storage.unwrap_or(false);
        for (j, t) in m.triggers.iter().enumerate() {
            let tk = format!("{key}.triggers[{j}]");
            if t.kind == "cost" {
                if !cost_optimized {
                    self.bad(
                        &format!("{tk}.type"),
                        "a cost migration trigger needs the cost-optimized strategy, which makes the cost moves",
                    );
                    continue;
                }
                let threshold = match &t.threshold {
                    Some(v) => self.fraction(&format!("{tk}.threshold"), v),
                    None => {
                        self.bad(&format!("{tk}.threshold"), "a cost trigger needs a threshold: the saving, as a share of the current price, e.g. \"25%\"");
                        None
                    }
                };
                policy.cost_threshold = threshold;
                continue;
            }
            triggers.extend(self.trigger(&tk, t));
        }
        if let Err(e) = policy.validate() {
            self.bad(key, e);
            return None;
        }
        Some(policy)
    }

    /// `disasterRecovery`: targets and the backup policy (`None` when not enabled).
    fn disaster_recovery(
        &mut self,
        key: &str,
        r: &raw::RawDisasterRecovery,
        names: &BTreeMap<String, RegionId>,
    ) -> Option<engine::dr::BackupPolicy> {
        let rto = self.duration(&format!("{key}.rto"), &r.rto);
        let rpo = self.duration(&format!("{key}.rpo"), &r.rpo);
        let b = &r.backup_strategy;
        let bk = format!("{key}.backupStrategy");
        let schedule = match engine::dr::Schedule::parse(&b.schedule) {
            Ok(s) => Some(s),
            Err(e) => {
                self.bad(&format!("{bk}.schedule"), e);
                None
            }
        };
        let target = self.region_ref(&format!("{bk}.target"), &b.target, names);
        let full_every = match (b.kind.as_deref(), b.full_every) {
            (Some("full"), None) => 1,
            (Some("full"), Some(_)) => {
                self.bad(
                    &format!("{bk}.fullEvery"),
                    "a full backup strategy takes every backup in full; fullEvery is for incremental",
                );
                1
            }
            (Some("incremental") | None, n) => n.unwrap_or(7),
            (Some(other), _) => {
                self.bad(&format!("{bk}.type"), format!("unknown backup type {other:?}; types are: full, incremental"));
                1
            }
        };
        if full_every == 0 {
            self.bad(&format!("{bk}.fullEvery"), "must be at least 1");
        }
        let retention = b.retention.unwrap_or(14);
        if retention == 0 {
            self.bad(&format!("{bk}.retention"), "must keep at least 1 backup");
        }
        let data_gib = self.number(&format!("{bk}.dataGib"), b.data_gib.unwrap_or(50.0), 0.0, 1.0e7);
        let change =
            self.number(&format!("{bk}.changeRateGibPerHour"), b.change_rate_gib_per_hour.unwrap_or(1.0), 0.0, 1.0e6);
        let bandwidth =
            self.number(&format!("{bk}.bandwidthGibPerS"), b.bandwidth_gib_per_s.unwrap_or(0.1), 1e-6, 1.0e6);
        if r.enabled == Some(false) {
            return None;
        }
        Some(engine::dr::BackupPolicy {
            schedule: schedule?,
            full_every: full_every.max(1),
            retention: retention.max(1),
            target_region: target?,
            data_gib,
            change_rate_gib_per_h: change,
            bandwidth_gib_per_s: bandwidth,
            rpo_target: rpo?,
            rto_target: rto?,
        })
    }

    /// A spot market; `table` is the price table's spot price when the market gives neither a
    /// price nor a series and its provider has a table.
    fn spot(
        &mut self,
        key: &str,
        s: &raw::RawSpot,
        on_demand: f64,
        table: Option<Result<f64, String>>,
    ) -> Option<SpotSim> {
        let series = match &s.series {
            Some(file) => Some(self.series(&format!("{key}.series"), file)?),
            None => None,
        };
        let price = match (s.price, &series, table) {
            (Some(p), _, _) => self.number(&format!("{key}.price"), p, 0.0, 1.0e5),
            (None, Some(pts), _) => pts.first().map_or(0.0, |p| p.price_per_h),
            (None, None, Some(Ok(p))) => p,
            (None, None, Some(Err(e))) => {
                self.bad(&format!("{key}.price"), format!("a spot market needs a price or a series, and {e}"));
                return None;
            }
            (None, None, None) => {
                self.bad(&format!("{key}.price"), "a spot market needs a price or a series");
                return None;
            }
        };
        let step = self.opt_duration(&format!("{key}.step"), s.step.as_deref(), SimDuration::from_secs(300));
        if step == SimDuration::ZERO {
            self.bad(&format!("{key}.step"), "must be longer than 0");
        }
        Some(SpotSim {
            mean_price: price,
            volatility: self.number(&format!("{key}.volatility"), s.volatility.unwrap_or(0.05), 0.0, 5.0),
            mean_reversion: self.number(&format!("{key}.mean_reversion"), s.mean_reversion.unwrap_or(0.1), 0.0, 1.0),
            interruption_rate_per_h: self.number(
                &format!("{key}.interruption_rate_per_h"),
                s.interruption_rate_per_h.unwrap_or(0.05),
                0.0,
                1000.0,
            ),
            step,
            series,
            cap: on_demand,
        })
    }

    /// Reads the `[pricing]` tables (each problem recorded at its key, naming file and line).
    fn pricing(&mut self, raw: Option<&raw::RawPricing>) -> PriceBook {
        let mut book = PriceBook::default();
        let Some(raw) = raw else { return book };
        for (provider, file) in [(Provider::Aws, &raw.aws), (Provider::Azure, &raw.azure), (Provider::Gcp, &raw.gcp)] {
            let Some(file) = file else { continue };
            let key = format!("pricing.{provider}");
            let path = self.relative(file);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    self.bad(&key, format!("cannot read price table {}: {e}", path.display()));
                    continue;
                }
            };
            match PriceTable::parse(provider, &path.display().to_string(), &text) {
                Ok(t) => book.insert(t),
                Err(e) => self.bad(&key, format!("bad price table: {e}")),
            }
        }
        book
    }

    /// Reads a recorded spot series: CSV with header `time_s,price_per_h,interruption_rate_per_h`.
    fn series(&mut self, key: &str, file: &str) -> Option<Vec<SeriesPoint>> {
        let path = self.relative(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.bad(key, format!("cannot read spot series {}: {e}", path.display()));
                return None;
            }
        };
        let mut points = Vec::new();
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        match lines.next() {
            Some((_, h)) if h.trim().trim_start_matches('\u{feff}') == "time_s,price_per_h,interruption_rate_per_h" => {
            }
            _ => {
                self.bad(
                    key,
                    format!(
                        "{}: the first line must be the header time_s,price_per_h,interruption_rate_per_h",
                        path.display()
                    ),
                );
                return None;
            }
        }
        for (n, line) in lines {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let nums: Vec<Option<f64>> =
                cols.iter().map(|c| c.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)).collect();
            match (cols.len(), nums.as_slice()) {
                (3, [Some(t), Some(p), Some(r)]) => {
                    let at = SimTime(SimDuration::from_secs_f64(*t).as_millis());
                    if points.last().is_some_and(|l: &SeriesPoint| l.at > at) {
                        self.bad(key, format!("{}:{}: times must not go backwards", path.display(), n + 1));
                        return None;
                    }
                    points.push(SeriesPoint { at, price_per_h: *p, interruption_rate_per_h: *r });
                }
                _ => {
                    self.bad(key, format!("{}:{}: expected three numbers >= 0 (time_s,price_per_h,interruption_rate_per_h), found {line:?}", path.display(), n + 1));
                    return None;
                }
            }
        }
        if points.is_empty() {
            self.bad(key, format!("{}: the series has no points", path.display()));
            return None;
        }
        Some(points)
    }

    fn workload(
        &mut self,
        w: &raw::RawWorkload,
        regions: &BTreeMap<String, RegionId>,
        groups: &BTreeMap<String, GroupId>,
        duration: SimDuration,
    ) -> Option<Workload> {
        let arrival = match &w.arrival {
            raw::RawArrival::Poisson { rate_per_s } => {
                Arrival::Poisson { rate_per_s: self.number("workload.arrival.rate_per_s", *rate_per_s, 1e-9, 1.0e7) }
            }
            raw::RawArrival::Diurnal { mean_rate_per_s, amplitude, peak } => Arrival::Diurnal {
                mean_rate_per_s: self.number("workload.arrival.mean_rate_per_s", *mean_rate_per_s, 1e-9, 1.0e7),
                amplitude: self.number("workload.arrival.amplitude", *amplitude, 0.0, 1.0),
                peak: self.duration("workload.arrival.peak", peak)?,
            },
            raw::RawArrival::Trace { path, format, time_scale } => {
                let full = self.relative(path);
                let scale = self.number("workload.arrival.time_scale", time_scale.unwrap_or(1.0), 1e-9, 1.0e9);
                let opts =
                    crate::trace::TraceOptions { limit: w.max_requests.map(|m| m as usize), ..Default::default() };
                match crate::trace::load(&full, *format, &opts) {
                    Ok(records) if records.is_empty() => {
                        self.bad("workload.arrival.path", format!("trace {} has no records", full.display()));
                        return None;
                    }
                    Ok(records) => Arrival::Trace { records: Arc::new(records), time_scale: scale },
                    Err(e) => {
                        self.bad("workload.arrival.path", e.to_string());
                        return None;
                    }
                }
            }
        };
        let lifetime = match &w.lifetime {
            Some(d) => self.dist("workload.lifetime", d)?,
            None if matches!(arrival, Arrival::Trace { .. }) => DurationDist::Fixed(duration),
            None => {
                self.bad(
                    "workload.lifetime",
                    "a lifetime distribution is required, such as { dist = \"exponential\", mean = \"1h\" }",
                );
                return None;
            }
        };
        let mut shapes = Vec::new();
        if w.shapes.is_empty() && !matches!(arrival, Arrival::Trace { .. }) {
            self.bad("workload.shapes", "at least one [[workload.shapes]] entry is required");
        }
        for (i, s) in w.shapes.iter().enumerate() {
            let key = format!("workload.shapes[{i}]");
            let vcpu = match &s.vcpu {
                OneOrMany::One(v) => vec![*v],
                OneOrMany::Many(v) => v.clone(),
            };
            if vcpu.is_empty() || vcpu.contains(&0) {
                self.bad(&format!("{key}.vcpu"), "must be a whole number >= 1, or a non-empty list of them");
            }
            let memory_mib = match (&s.memory_gib, &s.memory_mib) {
                (Some(_), Some(_)) => {
                    self.bad(&format!("{key}.memory_gib"), "give memory_gib or memory_mib, not both");
                    vec![1024]
                }
                (Some(OneOrMany::One(g)), None) => {
                    vec![gib_to_mib(self.number(&format!("{key}.memory_gib"), *g, 0.0, 1.0e6))]
                }
                (Some(OneOrMany::Many(g)), None) => {
                    g.iter().map(|g| gib_to_mib(self.number(&format!("{key}.memory_gib"), *g, 0.0, 1.0e6))).collect()
                }
                (None, Some(OneOrMany::One(m))) => vec![*m],
                (None, Some(OneOrMany::Many(m))) => m.clone(),
                (None, None) => {
                    self.bad(&key, "memory_gib or memory_mib is required");
                    vec![1024]
                }
            };
            if memory_mib.is_empty() {
                self.bad(&format!("{key}.memory_mib"), "must not be an empty list");
            }
            let mut providers = 0u8;
            for p in &s.providers {
                providers |= 1 << p.index();
            }
            let mut rids = Vec::new();
            for (j, r) in s.regions.iter().enumerate() {
                if let Some(id) = self.region_ref(&format!("{key}.regions[{j}]"), r, regions) {
                    rids.push(id);
                }
            }
            let users_near =
                s.users_near.as_ref().and_then(|u| self.region_ref(&format!("{key}.users_near"), u, regions));
            let group = match &s.group {
                Some(g) => match groups.get(g) {
                    Some(id) => Some(*id),
                    None => {
                        self.bad(&format!("{key}.group"), format!("no group named {g:?}; define it under [[groups]]"));
                        None
                    }
                },
                None => None,
            };
            shapes.push(Shape {
                vcpu,
                memory_mib,
                gpu: s.gpu,
                weight: self.number(&format!("{key}.weight"), s.weight.unwrap_or(1.0), 0.0, 1.0e9),
                spot_allowed: s.spot_allowed,
                providers,
                regions: rids,
                max_price_per_h: s
                    .max_price_per_h
                    .map(|m| self.number(&format!("{key}.max_price_per_h"), m, 0.0, 1.0e6)),
                users_near,
                group,
                lifetime_hint: s.lifetime_hint,
                egress_gib_per_h: self.number(
                    &format!("{key}.egress_gib_per_h"),
                    s.egress_gib_per_h.unwrap_or(0.0),
                    0.0,
                    1.0e6,
                ),
            });
        }
        if !shapes.is_empty() && shapes.iter().map(|s| s.weight).sum::<f64>() <= 0.0 {
            self.bad("workload.shapes", "at least one shape needs a weight > 0");
        }
        let mut bursts = Vec::new();
        for (i, b) in w.bursts.iter().enumerate() {
            let key = format!("workload.bursts[{i}]");
            let start = self.duration(&format!("{key}.start"), &b.start)?;
            let len = self.duration(&format!("{key}.duration"), &b.duration)?;
            let multiplier = self.number(&format!("{key}.multiplier"), b.multiplier, 0.0, 1.0e6);
            for &s in &b.shapes {
                if s >= shapes.len() {
                    self.bad(
                        &format!("{key}.shapes"),
                        format!("shape index {s} does not exist (there are {} shapes, numbered from 0)", shapes.len()),
                    );
                }
            }
            if start >= duration {
                self.bad(&format!("{key}.start"), "starts after the end of the scenario");
            }
            bursts.push(Burst {
                start: SimTime(start.as_millis()),
                end: SimTime(start.as_millis()) + len,
                multiplier,
                shapes: b.shapes.clone(),
            });
        }
        Some(Workload { arrival, lifetime, max_requests: w.max_requests, shapes, bursts })
    }

    fn faults(
        &mut self,
        faults: &[raw::RawFault],
        names: &BTreeMap<String, RegionId>,
        regions: &[Region],
        zones: &[Zone],
        duration: SimDuration,
        deployments: &BTreeMap<String, GroupId>,
    ) -> Option<Vec<Fault>> {
        let mut out = Vec::new();
        for (i, f) in faults.iter().enumerate() {
            let key = format!("faults[{i}]");
            let window = |ck: &mut Self, at: &str, dur: &str| -> Option<(SimTime, SimTime)> {
                let a = ck.duration(&format!("{key}.at"), at)?;
                let d = ck.duration(&format!("{key}.duration"), dur)?;
                if a >= duration {
                    ck.bad(&format!("{key}.at"), format!("is after the end of the scenario ({duration})"));
                }
                Some((SimTime(a.as_millis()), SimTime(a.as_millis()) + d))
            };
            let fault = match f {
                raw::RawFault::RegionOutage { region, at, duration: d, detect_after } => {
                    let Some(r) = self.region_ref(&format!("{key}.region"), region, names) else { continue };
                    let Some((at, end)) = window(self, at, d) else { continue };
                    let detect_after =
                        self.opt_duration(&format!("{key}.detect_after"), detect_after.as_deref(), SimDuration::ZERO);
                    Fault { at, end, kind: FaultKind::Outage { region: r, zone: None, detect_after } }
                }
                raw::RawFault::ZoneOutage { region, zone, at, duration: d, detect_after } => {
                    let Some(r) = self.region_ref(&format!("{key}.region"), region, names) else { continue };
                    let Some(z) = regions[r.idx()].zones.iter().copied().find(|z| zones[z.idx()].name == *zone) else {
                        self.bad(&format!("{key}.zone"), format!("region {region} has no zone {zone:?}"));
                        continue;
                    };
                    let Some((at, end)) = window(self, at, d) else { continue };
                    let detect_after =
                        self.opt_duration(&format!("{key}.detect_after"), detect_after.as_deref(), SimDuration::ZERO);
                    Fault { at, end, kind: FaultKind::Outage { region: r, zone: Some(z), detect_after } }
                }
                raw::RawFault::SpotStorm {
                    region,
                    provider,
                    at,
                    duration: d,
                    interruption_multiplier,
                    price_multiplier,
                } => {
                    let rs: Vec<RegionId> = match (region, provider) {
                        (Some(name), None) => {
                            self.region_ref(&format!("{key}.region"), name, names).into_iter().collect()
                        }
                        (None, Some(p)) => (0..regions.len())
                            .filter(|&i| regions[i].provider == *p)
                            .map(|i| RegionId(i as u16))
                            .collect(),
                        _ => {
                            self.bad(&key, "a spot-storm names exactly one of region or provider");
                            continue;
                        }
                    };
                    let Some((at, end)) = window(self, at, d) else { continue };
                    Fault {
                        at,
                        end,
                        kind: FaultKind::SpotStorm {
                            regions: rs,
                            interruption_multiplier: self.number(
                                &format!("{key}.interruption_multiplier"),
                                *interruption_multiplier,
                                0.0,
                                1.0e4,
                            ),
                            price_multiplier: self.number(
                                &format!("{key}.price_multiplier"),
                                price_multiplier.unwrap_or(1.0),
                                0.0,
                                1.0e4,
                            ),
                        },
                    }
                }
                raw::RawFault::PriceSpike { region, at, duration: d, multiplier, market } => {
                    let Some(r) = self.region_ref(&format!("{key}.region"), region, names) else { continue };
                    let Some((at, end)) = window(self, at, d) else { continue };
                    let multiplier = self.number(&format!("{key}.multiplier"), *multiplier, 0.0, 1.0e4);
                    Fault { at, end, kind: FaultKind::PriceSpike { region: r, multiplier, market: *market } }
                }
                raw::RawFault::CapacityCrunch { region, at, duration: d, fraction } => {
                    let Some(r) = self.region_ref(&format!("{key}.region"), region, names) else { continue };
                    let Some((at, end)) = window(self, at, d) else { continue };
                    let fraction = self.number(&format!("{key}.fraction"), *fraction, 0.0, 1.0);
                    Fault { at, end, kind: FaultKind::CapacityCrunch { region: r, fraction } }
                }
                raw::RawFault::Metrics { deployment, at, duration: d, cpu, latency_p99, api_error_rate } => {
                    let Some(&dep) = deployments.get(deployment) else {
                        self.bad(&format!("{key}.deployment"), format!("no deployment named {deployment:?}"));
                        continue;
                    };
                    let Some((at, end)) = window(self, at, d) else { continue };
                    let cpu = cpu.as_ref().and_then(|v| self.fraction(&format!("{key}.cpu"), v));
                    let api = api_error_rate.as_ref().and_then(|v| self.fraction(&format!("{key}.api_error_rate"), v));
                    let lat = latency_p99
                        .as_ref()
                        .and_then(|v| self.duration(&format!("{key}.latency_p99"), v))
                        .map(|d| d.as_millis() as f64);
                    Fault {
                        at,
                        end,
                        kind: FaultKind::Metrics { deployment: dep, cpu, latency_p99_ms: lat, api_error_rate: api },
                    }
                }
                raw::RawFault::ManualFailover { deployment, at, to } => {
                    let Some(&dep) = deployments.get(deployment) else {
                        self.bad(&format!("{key}.deployment"), format!("no deployment named {deployment:?}"));
                        continue;
                    };
                    let Some((at, end)) = window(self, at, "0") else { continue };
                    let to = match to {
                        Some(t) => Some(self.region_ref(&format!("{key}.to"), t, names)?),
                        None => None,
                    };
                    Fault { at, end, kind: FaultKind::ManualFailover { deployment: dep, to } }
                }
            };
            out.push(fault);
        }
        Some(out)
    }
}

fn gib_to_mib(g: f64) -> u64 {
    if g.is_finite() && g > 0.0 { (g * 1024.0).round() as u64 } else { 0 }
}

/// One-way network latency between two points: 1 ms inside a region, else the great-circle
/// distance at 100 km per ms (light in fibre at ~2/3 c with a 1.5× route factor... roughly) plus 2 ms.
fn latency_between(a: (f64, f64), b: (f64, f64)) -> f64 {
    if a == b {
        return 1.0;
    }
    let (la1, lo1, la2, lo2) = (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    let km = 2.0 * 6371.0 * h.sqrt().min(1.0).asin();
    2.0 + km / 100.0
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(key: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Seg::Key(name));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_grows_with_distance() {
        let nyc = (40.7, -74.0);
        let london = (51.5, -0.1);
        let l = latency_between(nyc, london);
        // ~5,570 km → 2 + 55.7 ms.
        assert!((l - 57.7).abs() < 1.0, "{l}");
        assert_eq!(latency_between(nyc, nyc), 1.0);
    }

    #[test]
    fn paths_split() {
        let segs = split_path("workload.shapes[2].vcpu");
        assert_eq!(segs.len(), 4);
        assert!(matches!(segs[2], Seg::Index(2)));
    }
}
