//! Datasets: one row per feasible candidate of every first placement of simulated runs, with its
//! features and the outcome known in hindsight.
//!
//! ## Hindsight
//! The world of a run (prices, spot hazards, storms, outages) does not depend on which of the
//! candidates a request went to, so each candidate's outcome can be computed after the run from
//! what really happened:
//!
//! * `cost_usd`: the candidate's price integrated over the VM's life along the price path the engine
//!   was really told (spot moves, spikes, storms), rounded up by the billing rules (granularity,
//!   minimum charge), plus egress; zero instance price when a commitment covers it;
//! * `interrupted` (spot only): for the candidate the engine chose, whether its instance got an
//!   interruption notice; for the others, a draw (keyed by seed, VM and offer) against
//!   `1 − exp(−∫ hazard)`, with the hazard the mock cloud applied (the offer's rate, or its
//!   recorded series, times any storm multiplier); `interruption_prob` keeps that probability;
//! * `outage_hit`: an outage of the candidate's region or zone overlaps the VM's life;
//! * `penalized_cost_usd = cost_usd + interrupted × interruption_penalty + outage_hit × outage_penalty`,
//!   and the regression target `cost_per_h` = that over the life in hours (at least one minute);
//! * `best`: the candidate with the lowest `cost_per_h` of its decision (the hindsight oracle's
//!   choice; ties to the first listed).
//!
//! The VM's life is from its arrival to its release (or the end of the run). Only first placements
//! are recorded: replacements and failovers happen inside the engine from a state the observer
//! does not see just before the decision.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use engine::policy::learned::{FEATURE_SCHEMA_VERSION, FEATURES, Features, N_FEATURES, candidate_features};
use engine::{Action, Candidate, Engine, Event, InstanceId, Market, OfferId, OfferKind, SimTime, VmId};
use polars::prelude::*;
use sim::run::{Observer, RunOptions};
use sim::scenario::{FaultKind, Scenario};

use crate::{Error, Result};

/// How outcomes become penalties; recorded in the dataset's metadata.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Penalties {
    /// Dollars per spot interruption (restart, lost work).
    pub interruption_usd: f64,
    /// Dollars per outage that hits the VM's location during its life.
    pub outage_usd: f64,
}

impl Default for Penalties {
    fn default() -> Self {
        Penalties { interruption_usd: 0.5, outage_usd: 2.0 }
    }
}

/// One candidate of one decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Seed of the run.
    pub seed: u64,
    /// Behaviour policy of the run (the one that made the real decisions).
    pub policy: String,
    /// Decision number within the run.
    pub decision: u64,
    /// The VM.
    pub vm: u64,
    /// When, s.
    pub time_s: f64,
    /// Candidate number within the decision.
    pub candidate: u32,
    /// The offer.
    pub offer: u32,
    /// Spot?
    pub spot: bool,
    /// The features ([`FEATURES`]).
    pub features: Features,
    /// The VM's life, h.
    pub life_h: f64,
    /// Hindsight cost of the life on this candidate, $.
    pub cost_usd: f64,
    /// Probability of an interruption over the life (spot; 0 on demand).
    pub interruption_prob: f64,
    /// Interrupted during the life.
    pub interrupted: bool,
    /// An outage hit the location during the life.
    pub outage_hit: bool,
    /// Cost plus penalties, $.
    pub penalized_cost_usd: f64,
    /// Penalized cost per hour of life (the regression target).
    pub cost_per_h: f64,
    /// The hindsight-best candidate of its decision.
    pub best: bool,
    /// The candidate the behaviour policy chose.
    pub chosen: bool,
}

/// A dataset with its provenance.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Rows, grouped by decision.
    pub rows: Vec<Row>,
    /// Provenance (schema version, scenarios, seeds, penalties), written to the file's metadata.
    pub meta: BTreeMap<String, String>,
}

/// A pending decision: the candidates the engine had when the request arrived.
struct Decision {
    vm: VmId,
    at: SimTime,
    req: engine::VmRequest,
    cands: Vec<(Candidate, Features)>,
    chosen: Option<(OfferId, Market, InstanceId)>,
}

/// Watches a run and records decisions and the world's price path.
struct Recorder {
    decisions: Vec<Decision>,
    current: Option<usize>,
    released: HashMap<VmId, SimTime>,
    /// Price changes per offer and market (on demand, spot): (time, unit price).
    prices: Vec<[Vec<(SimTime, f64)>; 2]>,
    noticed: HashMap<InstanceId, ()>,
}

impl Observer for Recorder {
    fn before(&mut self, now: SimTime, engine: &Engine, event: &Event) {
        match event {
            Event::RequestArrived { request } => {
                if let Ok(cands) = candidate_features(request, engine.snapshot(), now) {
                    self.decisions.push(Decision {
                        vm: request.id,
                        at: now,
                        req: request.clone(),
                        cands,
                        chosen: None,
                    });
                    self.current = Some(self.decisions.len() - 1);
                }
            }
            Event::Released { vm } => {
                self.released.entry(*vm).or_insert(now);
            }
            Event::PriceChanged { offer, market, price_per_h } if price_per_h.is_finite() && *price_per_h >= 0.0 => {
                if let Some(p) = self.prices.get_mut(offer.idx()) {
                    p[usize::from(*market == Market::Spot)].push((now, *price_per_h));
                }
            }
            Event::InterruptionNotice { instance, .. } => {
                self.noticed.insert(*instance, ());
            }
            _ => {}
        }
    }

    fn after(&mut self, _now: SimTime, _engine: &Engine, actions: &[Action]) {
        let Some(i) = self.current.take() else { return };
        let d = &mut self.decisions[i];
        for a in actions {
            if let Action::Provision { instance, vm, placement, .. } = a
                && *vm == d.vm
            {
                d.chosen = Some((placement.offer, placement.market, *instance));
                break;
            }
        }
    }
}

/// A piecewise-constant function of time from a start value and changes.
struct PricePath<'a> {
    start: f64,
    changes: &'a [(SimTime, f64)],
}

impl PricePath<'_> {
    fn at(&self, t: SimTime) -> f64 {
        let k = self.changes.partition_point(|(ct, _)| *ct <= t);
        if k == 0 { self.start } else { self.changes[k - 1].1 }
    }
    /// ∫ over [a, b), in value × hours.
    fn integral(&self, a: SimTime, b: SimTime) -> f64 {
        if b <= a {
            return 0.0;
        }
        let mut acc = 0.0;
        let mut t = a;
        let mut v = self.at(a);
        let k = self.changes.partition_point(|(ct, _)| *ct <= a);
        for &(ct, cv) in &self.changes[k..] {
            if ct >= b {
                break;
            }
            acc += v * ct.since(t).as_hours_f64();
            t = ct;
            v = cv;
        }
        acc + v * b.since(t).as_hours_f64()
    }
}

/// The hazard (interruptions per hour) the mock cloud applies to a spot offer, integrated over
/// `[a, b)`: the offer's rate (or its recorded series) times the storms over its region.
fn hazard_integral(s: &Scenario, offer: OfferId, a: SimTime, b: SimTime) -> f64 {
    let Some(sp) = s.spot[offer.idx()].as_ref() else { return 0.0 };
    let region = s.catalog.offers[offer.idx()].region;
    let mut cuts = vec![a, b];
    if let Some(points) = &sp.series {
        cuts.extend(points.iter().map(|p| p.at).filter(|t| *t > a && *t < b));
    }
    let storms: Vec<(SimTime, SimTime, f64)> = s
        .faults
        .iter()
        .filter_map(|f| match &f.kind {
            FaultKind::SpotStorm { regions, interruption_multiplier, .. } if regions.contains(&region) => {
                Some((f.at, f.end, *interruption_multiplier))
            }
            _ => None,
        })
        .collect();
    for (fa, fb, _) in &storms {
        cuts.extend([*fa, *fb].into_iter().filter(|t| *t > a && *t < b));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let rate_at = |t: SimTime| match &sp.series {
        Some(points) => {
            let k = points.partition_point(|p| p.at <= t);
            points[k.saturating_sub(1)].interruption_rate_per_h
        }
        None => sp.interruption_rate_per_h,
    };
    let mut h = 0.0;
    for w in cuts.windows(2) {
        let (t0, t1) = (w[0], w[1]);
        let mult: f64 = storms.iter().filter(|(fa, fb, _)| *fa <= t0 && t0 < *fb).map(|(_, _, m)| m).product();
        h += rate_at(t0) * mult * t1.since(t0).as_hours_f64();
    }
    h
}

/// Whether an outage of the offer's region or zone overlaps `[a, b)`.
fn outage_overlaps(s: &Scenario, offer: OfferId, a: SimTime, b: SimTime) -> bool {
    let o = &s.catalog.offers[offer.idx()];
    s.faults.iter().any(|f| match f.kind {
        FaultKind::Outage { region, zone, .. } => {
            region == o.region && zone.is_none_or(|z| z == o.zone) && f.at < b && f.end > a
        }
        _ => false,
    })
}

/// Runs `scenario` with `opts` and returns one row per candidate of each first placement.
pub fn record_run(
    scenario: &Scenario,
    opts: &RunOptions,
    penalties: Penalties,
) -> Result<(Vec<Row>, sim::results::RunResults)> {
    let mut s = scenario.clone();
    if let Some(seed) = opts.seed {
        s.seed = seed;
    }
    if let Some(p) = &opts.policy {
        s.engine.policy = p.clone();
    }
    let mut rec = Recorder {
        decisions: Vec::new(),
        current: None,
        released: HashMap::new(),
        prices: vec![[Vec::new(), Vec::new()]; s.catalog.offers.len()],
        noticed: HashMap::new(),
    };
    let results = sim::run::run_observed(&s, &RunOptions::default(), &mut (), &mut rec)?;
    let end = SimTime(s.duration.as_millis());
    let policy = s.engine.policy.name().to_string();
    let mut rows = Vec::new();
    for (k, d) in rec.decisions.iter().enumerate() {
        let release = rec.released.get(&d.vm).copied().unwrap_or(end).min(end).max(d.at);
        let life = release.since(d.at);
        let life_h = life.as_hours_f64();
        let first = rows.len();
        for (ci, (c, f)) in d.cands.iter().enumerate() {
            let offer = &s.catalog.offers[c.offer.idx()];
            let m = usize::from(c.market == Market::Spot);
            let start = if m == 0 { offer.on_demand_per_h } else { offer.spot_per_h.unwrap_or(0.0) };
            let path = PricePath { start, changes: &rec.prices[c.offer.idx()][m] };
            let res = &d.req.resources;
            let instance_usd = if c.coverage != engine::snapshot::Coverage::None {
                0.0
            } else {
                let unit_h = path.integral(d.at, release);
                let (per_unit, fixed) = match offer.kind {
                    OfferKind::Instance(_) => (1.0, 0.0),
                    OfferKind::Pool(_) => (res.vcpu as f64, offer.per_gib_h * res.memory_mib as f64 / 1024.0),
                };
                let extra_h = s.cost.billing.billed_duration(life).as_hours_f64() - life_h;
                let end_price = path.at(release) * per_unit + fixed;
                unit_h * per_unit + fixed * life_h + end_price * extra_h.max(0.0)
            };
            let cost_usd = instance_usd + c.egress_per_h * life_h;
            let (interruption_prob, interrupted) = if c.market == Market::Spot {
                let p = 1.0 - (-hazard_integral(&s, c.offer, d.at, release)).exp();
                let chosen_here = d.chosen.filter(|(o, mk, _)| *o == c.offer && *mk == c.market);
                let hit = match chosen_here {
                    Some((_, _, inst)) => rec.noticed.contains_key(&inst),
                    None => crate::unit(&[s.seed, d.vm.0, c.offer.0 as u64, 0x1e7]) < p,
                };
                (p, hit)
            } else {
                (0.0, false)
            };
            let outage_hit = outage_overlaps(&s, c.offer, d.at, release);
            let penalized = cost_usd
                + f64::from(u8::from(interrupted)) * penalties.interruption_usd
                + f64::from(u8::from(outage_hit)) * penalties.outage_usd;
            rows.push(Row {
                scenario: s.name.clone(),
                seed: s.seed,
                policy: policy.clone(),
                decision: k as u64,
                vm: d.vm.0,
                time_s: d.at.as_secs_f64(),
                candidate: ci as u32,
                offer: c.offer.0,
                spot: c.market == Market::Spot,
                features: *f,
                life_h,
                cost_usd,
                interruption_prob,
                interrupted,
                outage_hit,
                penalized_cost_usd: penalized,
                cost_per_h: penalized / life_h.max(1.0 / 60.0),
                best: false,
                chosen: d.chosen.is_some_and(|(o, mk, _)| o == c.offer && mk == c.market),
            });
        }
        let group = &mut rows[first..];
        let mut best = 0;
        for (i, r) in group.iter().enumerate() {
            if r.cost_per_h < group[best].cost_per_h {
                best = i;
            }
        }
        if let Some(r) = group.get_mut(best) {
            r.best = true;
        }
    }
    Ok((rows, results))
}

/// Parses `A..B` (B excluded) or a single seed.
pub fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>> {
    let bad = || Error::Input(format!("--seeds {text:?}: expected A..B (B excluded) or one number"));
    match text.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (a.trim().parse::<u64>().map_err(|_| bad())?, b.trim().parse::<u64>().map_err(|_| bad())?);
            if b <= a {
                return Err(bad());
            }
            Ok(a..b)
        }
        None => {
            let a = text.trim().parse::<u64>().map_err(|_| bad())?;
            Ok(a..a + 1)
        }
    }
}

/// Records every scenario × seed × behaviour policy (`None`: the scenario's own).
pub fn build(
    scenarios: &[(String, Scenario)],
    seeds: std::ops::Range<u64>,
    policies: &[Option<engine::PolicyConfig>],
    penalties: Penalties,
) -> Result<Dataset> {
    let mut rows = Vec::new();
    for (_, s) in scenarios {
        for seed in seeds.clone() {
            for p in policies {
                let opts = RunOptions { seed: Some(seed), policy: p.clone() };
                rows.extend(record_run(s, &opts, penalties)?.0);
            }
        }
    }
    let mut meta = BTreeMap::new();
    meta.insert("novacron.feature_schema_version".into(), FEATURE_SCHEMA_VERSION.to_string());
    meta.insert("novacron.features".into(), FEATURES.join(","));
    meta.insert("novacron.scenarios".into(), scenarios.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(","));
    meta.insert("novacron.seeds".into(), format!("{}..{}", seeds.start, seeds.end));
    meta.insert(
        "novacron.policies".into(),
        policies.iter().map(|p| p.as_ref().map_or("scenario", |p| p.name())).collect::<Vec<_>>().join(","),
    );
    meta.insert("novacron.penalties".into(), serde_json::to_string(&penalties).unwrap_or_default());
    Ok(Dataset { rows, meta })
}

impl Dataset {
    /// The rows as a polars frame: ids, the features by name, the outcomes.
    pub fn frame(&self) -> PolarsResult<DataFrame> {
        let r = &self.rows;
        let mut cols = vec![
            Column::new("scenario".into(), r.iter().map(|x| x.scenario.as_str()).collect::<Vec<_>>()),
            Column::new("seed".into(), r.iter().map(|x| x.seed).collect::<Vec<u64>>()),
            Column::new("policy".into(), r.iter().map(|x| x.policy.as_str()).collect::<Vec<_>>()),
            Column::new("decision".into(), r.iter().map(|x| x.decision).collect::<Vec<u64>>()),
            Column::new("vm".into(), r.iter().map(|x| x.vm).collect::<Vec<u64>>()),
            Column::new("time_s".into(), r.iter().map(|x| x.time_s).collect::<Vec<f64>>()),
            Column::new("candidate".into(), r.iter().map(|x| x.candidate).collect::<Vec<u32>>()),
            Column::new("offer".into(), r.iter().map(|x| x.offer).collect::<Vec<u32>>()),
            Column::new("spot".into(), r.iter().map(|x| x.spot).collect::<Vec<bool>>()),
        ];
        for (j, name) in FEATURES.iter().enumerate() {
            cols.push(Column::new((*name).into(), r.iter().map(|x| x.features[j]).collect::<Vec<f64>>()));
        }
        cols.extend([
            Column::new("life_h".into(), r.iter().map(|x| x.life_h).collect::<Vec<f64>>()),
            Column::new("cost_usd".into(), r.iter().map(|x| x.cost_usd).collect::<Vec<f64>>()),
            Column::new("interruption_prob".into(), r.iter().map(|x| x.interruption_prob).collect::<Vec<f64>>()),
            Column::new("interrupted".into(), r.iter().map(|x| x.interrupted).collect::<Vec<bool>>()),
            Column::new("outage_hit".into(), r.iter().map(|x| x.outage_hit).collect::<Vec<bool>>()),
            Column::new("penalized_cost_usd".into(), r.iter().map(|x| x.penalized_cost_usd).collect::<Vec<f64>>()),
            Column::new("cost_per_h".into(), r.iter().map(|x| x.cost_per_h).collect::<Vec<f64>>()),
            Column::new("best".into(), r.iter().map(|x| x.best).collect::<Vec<bool>>()),
            Column::new("chosen".into(), r.iter().map(|x| x.chosen).collect::<Vec<bool>>()),
        ]);
        DataFrame::new_infer_height(cols)
    }

    /// Writes Parquet with the provenance as file-level key/value metadata.
    pub fn write(&self, path: &Path) -> Result<()> {
        let err = |m: String| Error::Data { path: path.display().to_string(), message: m };
        let mut df = self.frame().map_err(|e| err(e.to_string()))?;
        let file = std::fs::File::create(path).map_err(|e| err(format!("cannot create: {e}")))?;
        let kv = self.meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        ParquetWriter::new(file)
            .with_key_value_metadata(Some(KeyValueMetadata::from_static(kv)))
            .finish(&mut df)
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    }

    /// Reads a dataset written by [`Dataset::write`]; refuses a file without this feature schema.
    pub fn read(path: &Path) -> Result<Dataset> {
        let err = |m: String| Error::Data { path: path.display().to_string(), message: m };
        let file = std::fs::File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let mut reader = ParquetReader::new(file);
        let meta: BTreeMap<String, String> = reader
            .get_metadata()
            .map_err(|e| err(e.to_string()))?
            .key_value_metadata()
            .iter()
            .flatten()
            .filter_map(|kv| kv.value.clone().map(|v| (kv.key.clone(), v)))
            .filter(|(k, _)| k.starts_with("novacron."))
            .collect();
        match meta.get("novacron.feature_schema_version") {
            Some(v) if *v == FEATURE_SCHEMA_VERSION.to_string() => {}
            Some(v) => {
                return Err(err(format!(
                    "feature schema version {v}, this build computes version {FEATURE_SCHEMA_VERSION}: record the dataset again"
                )));
            }
            None => return Err(err("no novacron.feature_schema_version in the file's metadata: not a dataset".into())),
        }
        let df = reader.finish().map_err(|e| err(e.to_string()))?;
        let f64s = |name: &str| -> Result<Vec<f64>> {
            let c = df.column(name).map_err(|e| err(e.to_string()))?;
            let c = c.f64().map_err(|e| err(format!("{name}: {e}")))?;
            Ok(c.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        };
        let u64s = |name: &str| -> Result<Vec<u64>> {
            let c = df.column(name).map_err(|e| err(e.to_string()))?;
            let c = c.u64().map_err(|e| err(format!("{name}: {e}")))?;
            Ok(c.iter().map(|v| v.unwrap_or(0)).collect())
        };
        let u32s = |name: &str| -> Result<Vec<u32>> {
            let c = df.column(name).map_err(|e| err(e.to_string()))?;
            let c = c.u32().map_err(|e| err(format!("{name}: {e}")))?;
            Ok(c.iter().map(|v| v.unwrap_or(0)).collect())
        };
        let bools = |name: &str| -> Result<Vec<bool>> {
            let c = df.column(name).map_err(|e| err(e.to_string()))?;
            let c = c.bool().map_err(|e| err(format!("{name}: {e}")))?;
            Ok(c.iter().map(|v| v.unwrap_or(false)).collect())
        };
        let strs = |name: &str| -> Result<Vec<String>> {
            let c = df.column(name).map_err(|e| err(e.to_string()))?;
            let c = c.str().map_err(|e| err(format!("{name}: {e}")))?;
            Ok(c.iter().map(|v| v.unwrap_or_default().to_string()).collect())
        };
        let feats: Vec<Vec<f64>> = FEATURES.iter().map(|n| f64s(n)).collect::<Result<_>>()?;
        let (scenario, seed, policy, decision, vm) =
            (strs("scenario")?, u64s("seed")?, strs("policy")?, u64s("decision")?, u64s("vm")?);
        let (time_s, candidate, offer, spot) = (f64s("time_s")?, u32s("candidate")?, u32s("offer")?, bools("spot")?);
        let (life_h, cost_usd, interruption_prob) = (f64s("life_h")?, f64s("cost_usd")?, f64s("interruption_prob")?);
        let (interrupted, outage_hit, penalized, cost_per_h) =
            (bools("interrupted")?, bools("outage_hit")?, f64s("penalized_cost_usd")?, f64s("cost_per_h")?);
        let (best, chosen) = (bools("best")?, bools("chosen")?);
        let rows = (0..df.height())
            .map(|i| {
                let mut features = [0.0; N_FEATURES];
                for (j, f) in features.iter_mut().enumerate() {
                    *f = feats[j][i];
                }
                Row {
                    scenario: scenario[i].clone(),
                    seed: seed[i],
                    policy: policy[i].clone(),
                    decision: decision[i],
                    vm: vm[i],
                    time_s: time_s[i],
                    candidate: candidate[i],
                    offer: offer[i],
                    spot: spot[i],
                    features,
                    life_h: life_h[i],
                    cost_usd: cost_usd[i],
                    interruption_prob: interruption_prob[i],
                    interrupted: interrupted[i],
                    outage_hit: outage_hit[i],
                    penalized_cost_usd: penalized[i],
                    cost_per_h: cost_per_h[i],
                    best: best[i],
                    chosen: chosen[i],
                }
            })
            .collect();
        Ok(Dataset { rows, meta })
    }

    /// A short content hash (FNV-1a over features and targets), for the model's provenance.
    pub fn hash(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |x: u64| {
            for b in x.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for r in &self.rows {
            for f in r.features {
                eat(f.to_bits());
            }
            eat(r.cost_per_h.to_bits());
            eat(u64::from(r.interrupted));
        }
        format!("{h:016x}")
    }

    /// Splits by decision (all candidates of a decision on one side): a decision goes to the test
    /// side when a hash of (scenario, seed, policy, decision) falls under `test_fraction`.
    pub fn split(&self, test_fraction: f64) -> (Vec<usize>, Vec<usize>) {
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for (i, r) in self.rows.iter().enumerate() {
            if decision_key(r) < test_fraction {
                test.push(i);
            } else {
                train.push(i);
            }
        }
        (train, test)
    }
}

/// A uniform number per decision.
pub fn decision_key(r: &Row) -> f64 {
    let name = r.scenario.bytes().chain(r.policy.bytes()).fold(0u64, |h, b| crate::mix64(h ^ b as u64));
    crate::unit(&[name, r.seed, r.decision])
}

/// Reads scenarios, naming each by its path.
pub fn load_scenarios(paths: &[std::path::PathBuf]) -> Result<Vec<(String, Scenario)>> {
    paths.iter().map(|p| Ok((p.display().to_string(), sim::scenario::load(p)?))).collect()
}
