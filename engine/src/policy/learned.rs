//! Learned placement: a model trained offline (the `learn` crate, on simulated experience) scores
//! every feasible candidate, and the candidate with the lowest score wins.
//!
//! The engine evaluates the model itself, in plain `f64` arithmetic, from a small versioned
//! format ([`ModelArtifact`]): decision trees, forests and gradient-boosted trees as node lists, linear and logistic
//! models as coefficients with their feature scaling, a multi-layer perceptron as layer weights,
//! biases and activations. No learning library is linked here: the same artifact gives the same
//! decisions in the simulator and in the operator, bit for bit.
//!
//! The engine does no I/O, so it never reads a model file: the caller (the simulator's scenario
//! loader, the operator) reads the JSON and hands the parsed artifact in
//! ([`ModelSource::Loaded`]). [`ModelArtifact::check`] refuses an artifact whose format or
//! feature schema does not match this engine, whose shapes are inconsistent, or whose numbers are
//! not finite, and says what is wrong.
//!
//! ## Features
//! [`candidate_features`] computes [`FEATURES`] for every candidate of a decision; training data is
//! made by the very same function (the `learn` crate calls it at each decision of a simulated
//! run), so what a model saw in training is what it sees here. The list is versioned by
//! [`FEATURE_SCHEMA_VERSION`]: change a feature, bump the version, and old models are refused.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Decision, PlacementPolicy, Scores};
use crate::model::{Market, OfferKind, VmRequest};
use crate::snapshot::{Candidate, Coverage, RejectReason, Snapshot};
use crate::time::SimTime;

/// Version of [`FEATURES`]: what each column means and how it is computed.
///
/// * 1: 24 features.
/// * 2: adds `region_interruptions_per_h` (the region's interruption history).
pub const FEATURE_SCHEMA_VERSION: u32 = 2;
/// Version of the [`ModelArtifact`] layout.
pub const MODEL_FORMAT_VERSION: u32 = 1;
/// The `format` field of every artifact.
pub const MODEL_FORMAT: &str = "novacron-model";

/// Number of features per candidate.
pub const N_FEATURES: usize = 25;

/// Feature names, in column order (schema [`FEATURE_SCHEMA_VERSION`]).
pub const FEATURES: [&str; N_FEATURES] = [
    "price_per_h",
    "marginal_per_h",
    "on_demand_price_per_h",
    "is_spot",
    "spot_discount",
    "price_vs_list",
    "price_vs_cheapest",
    "observed_interruptions_per_h",
    "headroom",
    "log_free_slots",
    "latency_ms",
    "has_users",
    "carbon_g_per_h",
    "zone_share",
    "region_share",
    "egress_per_h",
    "vcpu",
    "memory_gib",
    "lifetime_hint_h",
    "has_lifetime_hint",
    "committed",
    "onprem",
    "region_zones_healthy",
    "n_candidates",
    "region_interruptions_per_h",
];

/// One candidate's features.
pub type Features = [f64; N_FEATURES];

/// Every feasible candidate of a decision with its features, in the order
/// [`Snapshot::for_each_candidate`] lists them, or why there is none.
///
/// The features (see [`FEATURES`]):
/// * prices: the candidate's list price and marginal price for this request ($/h), the offer's
///   on-demand price for it, whether it is spot, the spot discount `1 − spot / on-demand` (0 on
///   demand), the unit price now over the catalog's list price (1 when the list price is 0), and
///   the marginal price over the cheapest candidate's (`(m + 0.001) / (min + 0.001)`);
/// * risk: the offer's observed spot interruptions per hour (decayed; 0 on demand);
/// * capacity: free slots over free plus our own instances there (headroom, 0..1), `ln(1 + free)`;
/// * performance: latency to the request's users (ms) and whether it names any;
/// * energy: gCO2e per hour;
/// * spread: the share of the request's group (or fleet) already in the zone and in the region;
/// * the request: egress $/h, vCPU, memory GiB, lifetime hint in hours and whether there is one;
/// * the location: covered by a commitment, on-prem, the share of the region's zones healthy;
/// * the decision: how many candidates there are;
/// * the region's health history: the observed spot interruptions per hour of all the region's
///   offers together (each decayed with the snapshot's half-life), so a region whose pools have
///   been interrupting lately looks risky for every offer in it, spot or on demand. (The snapshot
///   keeps no outage history, so outages enter only through `region_zones_healthy`, now.)
pub fn candidate_features(
    req: &VmRequest,
    snap: &Snapshot,
    now: SimTime,
) -> Result<Vec<(Candidate, Features)>, RejectReason> {
    let mut cands: Vec<Candidate> = Vec::new();
    snap.for_each_candidate(req, now, |c| cands.push(*c))?;
    let min_marginal = cands.iter().map(|c| c.marginal_per_h).fold(f64::INFINITY, f64::min);
    let n = cands.len() as f64;
    let counts = snap.spread_for(req.group);
    let lifetime_h = req.lifetime_hint.map(|l| l.as_hours_f64());
    // Interruption history per region, summed over the region's offers.
    let mut region_rate = vec![0.0; snap.catalog.regions.len()];
    for (o, st) in snap.catalog.offers.iter().zip(&snap.offers) {
        if st.interruptions_per_h != 0.0 {
            region_rate[o.region.idx()] += st.interruption_rate(now, snap.interruption_half_life);
        }
    }
    Ok(cands
        .into_iter()
        .map(|c| {
            let offer = &snap.catalog.offers[c.offer.idx()];
            let st = &snap.offers[c.offer.idx()];
            let region = &snap.catalog.regions[c.region.idx()];
            let s = Scores::of(req, &c, snap, now);
            let od = snap.catalog.price_for(offer, st.on_demand.price_per_h, &req.resources);
            let is_spot = c.market == Market::Spot;
            let spot_discount = if is_spot && od > 0.0 { 1.0 - c.price_per_h / od } else { 0.0 };
            let (unit_now, unit_list) = match c.market {
                Market::OnDemand => (st.on_demand.price_per_h, offer.on_demand_per_h),
                Market::Spot => (st.spot.map_or(0.0, |p| p.price_per_h), offer.spot_per_h.unwrap_or(0.0)),
            };
            let price_vs_list = if unit_list > 0.0 { unit_now / unit_list } else { 1.0 };
            let observed = if is_spot { st.interruption_rate(now, snap.interruption_half_life) } else { 0.0 };
            let free = c.free_capacity as f64;
            let ours = st.in_use as f64;
            let headroom = if free + ours > 0.0 { free / (free + ours) } else { 0.0 };
            let zones_healthy = if region.zones.is_empty() {
                1.0
            } else {
                region.zones.iter().filter(|z| snap.zone_healthy[z.idx()]).count() as f64 / region.zones.len() as f64
            };
            let region_share = counts.region(c.region) as f64 / (counts.total as f64 + 1.0);
            let f = [
                c.price_per_h,
                c.marginal_per_h,
                od,
                f64::from(u8::from(is_spot)),
                spot_discount,
                price_vs_list,
                (c.marginal_per_h + 0.001) / (min_marginal + 0.001),
                observed,
                headroom,
                free.ln_1p(),
                s.latency_ms,
                f64::from(u8::from(req.users_near.is_some())),
                s.carbon_g_per_h,
                s.spread,
                region_share,
                c.egress_per_h,
                req.resources.vcpu as f64,
                req.resources.memory_mib as f64 / 1024.0,
                lifetime_h.unwrap_or(0.0),
                f64::from(u8::from(lifetime_h.is_some())),
                f64::from(u8::from(c.coverage != Coverage::None)),
                f64::from(u8::from(matches!(offer.kind, OfferKind::Pool(_)))),
                zones_healthy,
                n,
                region_rate[c.region.idx()],
            ];
            (c, f)
        })
        .collect())
}

/// What a model's output means, and so how the policy turns it into a score (lower is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Hindsight cost of serving the VM from the candidate, $ per hour of its life, penalties for
    /// interruptions and outages included. Score = the prediction.
    CostPerHour,
    /// Probability that a spot candidate is interrupted during the VM's life. Score = marginal
    /// $/h + probability × `interruption_cost_usd` / expected life in hours.
    InterruptionProbability,
    /// A learned preference (a bandit's or policy gradient's logit): higher is better, so the
    /// score is its negation.
    Preference,
}

/// How an input is standardised before a linear model or a network sees it:
/// `(x − mean) / scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaler {
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature scale (non-zero).
    pub scale: Vec<f64>,
}

impl Scaler {
    /// The identity scaling of `n` features.
    pub fn identity(n: usize) -> Self {
        Scaler { mean: vec![0.0; n], scale: vec![1.0; n] }
    }
    /// Scales `x` into `out` (cleared first).
    pub fn apply(&self, x: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.extend(x.iter().zip(self.mean.iter().zip(&self.scale)).map(|(v, (m, s))| (v - m) / s));
    }
}

/// A tree node. Splits send `x[feature] < threshold` left and the rest (NaN included) right, as
/// linfa's trees do when they predict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Node {
    /// An internal node.
    Split {
        /// Feature index.
        feature: u32,
        /// Split value.
        threshold: f64,
        /// Node index of the `<` side (greater than this node's index).
        left: u32,
        /// Node index of the `>=` side (greater than this node's index).
        right: u32,
    },
    /// A leaf.
    Leaf {
        /// The value the tree predicts here (mean target of the training rows that reach it).
        value: f64,
        /// The class the training library predicts here, if it is a classifier.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<u64>,
    },
}

/// A decision tree: node 0 is the root; children always have larger indices than their parent,
/// so evaluation always ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    /// Nodes.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The index of the leaf `x` reaches.
    pub fn leaf(&self, x: &[f64]) -> usize {
        let mut i = 0usize;
        loop {
            match &self.nodes[i] {
                Node::Split { feature, threshold, left, right } => {
                    i = if x[*feature as usize] < *threshold { *left as usize } else { *right as usize };
                }
                Node::Leaf { .. } => return i,
            }
        }
    }
    /// The value of the leaf `x` reaches.
    pub fn value(&self, x: &[f64]) -> f64 {
        match &self.nodes[self.leaf(x)] {
            Node::Leaf { value, .. } => *value,
            Node::Split { .. } => f64::NAN,
        }
    }
    /// The class of the leaf `x` reaches, if the tree is a classifier.
    pub fn class(&self, x: &[f64]) -> Option<u64> {
        match &self.nodes[self.leaf(x)] {
            Node::Leaf { class, .. } => *class,
            Node::Split { .. } => None,
        }
    }

    fn check(&self, n_features: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("a tree has no nodes".into());
        }
        let n = self.nodes.len();
        for (i, node) in self.nodes.iter().enumerate() {
            match node {
                Node::Split { feature, threshold, left, right } => {
                    if *feature as usize >= n_features {
                        return Err(format!("node {i} splits on feature {feature}; there are {n_features}"));
                    }
                    if threshold.is_nan() {
                        return Err(format!("node {i} has a threshold that is not a number"));
                    }
                    for c in [*left as usize, *right as usize] {
                        if c <= i || c >= n {
                            return Err(format!(
                                "node {i} points to node {c}: children must come after their parent, within the {n} nodes"
                            ));
                        }
                    }
                }
                Node::Leaf { value, .. } => {
                    if !value.is_finite() {
                        return Err(format!("leaf {i} has a value that is not finite"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A linear function of the scaled features: `intercept + Σ coef_i · x'_i`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Linear {
    /// Input scaling.
    pub scaler: Scaler,
    /// Coefficients, one per feature.
    pub coef: Vec<f64>,
    /// Intercept.
    pub intercept: f64,
}

impl Linear {
    /// The linear function at `x` (raw features).
    pub fn eval(&self, x: &[f64]) -> f64 {
        let mut acc = self.intercept;
        for ((v, (m, s)), c) in x.iter().zip(self.scaler.mean.iter().zip(&self.scaler.scale)).zip(&self.coef) {
            acc += c * ((v - m) / s);
        }
        acc
    }
}

/// An activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `x`.
    Identity,
}

impl Activation {
    fn apply(self, x: f64) -> f64 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => sigmoid(x),
            Activation::Identity => x,
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One dense layer: `activation(W · x + b)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Weights, one row per output: `weights[o][i]`.
    pub weights: Vec<Vec<f64>>,
    /// Biases, one per output.
    pub bias: Vec<f64>,
    /// Activation applied to the outputs.
    pub activation: Activation,
}

/// A multi-layer perceptron with one output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mlp {
    /// Input scaling.
    pub scaler: Scaler,
    /// Layers, input first; the last has one output.
    pub layers: Vec<Layer>,
    /// What the single output is multiplied by, then added to, to undo target scaling.
    #[serde(default = "one")]
    pub output_scale: f64,
    /// See `output_scale`.
    #[serde(default)]
    pub output_offset: f64,
}

fn one() -> f64 {
    1.0
}

impl Mlp {
    /// The network's output at `x` (raw features).
    pub fn eval(&self, x: &[f64]) -> f64 {
        let mut cur = Vec::with_capacity(x.len());
        self.scaler.apply(x, &mut cur);
        let mut next = Vec::new();
        for layer in &self.layers {
            next.clear();
            for (row, b) in layer.weights.iter().zip(&layer.bias) {
                next.push(layer.activation.apply(b + dot(row, &cur)));
            }
            std::mem::swap(&mut cur, &mut next);
        }
        cur.first().copied().unwrap_or(f64::NAN) * self.output_scale + self.output_offset
    }
}

/// `Σ w_i · v_i` over four interleaved partial sums (lanes `i mod 4`), added as
/// `(s0 + s1) + (s2 + s3)` and then the tail: independent sums let the CPU pipeline (and
/// vectorise) the multiply-adds, about 3× faster than one running sum on a 128-wide layer. The
/// order is fixed, so the result is the same on every run and machine.
fn dot(w: &[f64], v: &[f64]) -> f64 {
    let n = w.len().min(v.len());
    let (w, v) = (&w[..n], &v[..n]);
    let mut s = [0.0f64; 4];
    let (wc, vc) = (w.chunks_exact(4), v.chunks_exact(4));
    let (wr, vr) = (wc.remainder(), vc.remainder());
    for (a, b) in wc.zip(vc) {
        s[0] += a[0] * b[0];
        s[1] += a[1] * b[1];
        s[2] += a[2] * b[2];
        s[3] += a[3] * b[3];
    }
    let mut acc = (s[0] + s[1]) + (s[2] + s[3]);
    for (a, b) in wr.iter().zip(vr) {
        acc += a * b;
    }
    acc
}

/// The model itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Model {
    /// One tree: the leaf's value.
    Tree(Tree),
    /// Several trees: the mean of their leaves' values.
    Forest {
        /// The trees.
        trees: Vec<Tree>,
    },
    /// Gradient-boosted trees: `base_score` plus the sum of the trees' leaf values, added in
    /// tree order (as perpetual's booster predicts, so the sums agree bit for bit).
    Boosted {
        /// The starting prediction.
        base_score: f64,
        /// The trees.
        trees: Vec<Tree>,
    },
    /// A linear regression.
    Linear(Linear),
    /// A logistic regression: the sigmoid of a linear function.
    Logistic(Linear),
    /// A multi-layer perceptron.
    Mlp(Mlp),
}

impl Model {
    /// The model's output for one candidate's features.
    pub fn predict(&self, x: &[f64]) -> f64 {
        match self {
            Model::Tree(t) => t.value(x),
            Model::Forest { trees } => {
                let mut acc = 0.0;
                for t in trees {
                    acc += t.value(x);
                }
                acc / trees.len() as f64
            }
            Model::Boosted { base_score, trees } => {
                let mut acc = *base_score;
                for t in trees {
                    acc += t.value(x);
                }
                acc
            }
            Model::Linear(l) => l.eval(x),
            Model::Logistic(l) => sigmoid(l.eval(x)),
            Model::Mlp(m) => m.eval(x),
        }
    }

    /// Its type name, as in the artifact.
    pub fn type_name(&self) -> &'static str {
        match self {
            Model::Tree(_) => "tree",
            Model::Forest { .. } => "forest",
            Model::Boosted { .. } => "boosted",
            Model::Linear(_) => "linear",
            Model::Logistic(_) => "logistic",
            Model::Mlp(_) => "mlp",
        }
    }

    fn check(&self, n: usize) -> Result<(), String> {
        let finite = |v: &[f64], what: &str| -> Result<(), String> {
            match v.iter().position(|x| !x.is_finite()) {
                Some(i) => Err(format!("{what}[{i}] is not a finite number")),
                None => Ok(()),
            }
        };
        let scaler = |s: &Scaler| -> Result<(), String> {
            if s.mean.len() != n || s.scale.len() != n {
                return Err(format!(
                    "scaler has {} means and {} scales; the model has {n} features",
                    s.mean.len(),
                    s.scale.len()
                ));
            }
            finite(&s.mean, "scaler.mean")?;
            finite(&s.scale, "scaler.scale")?;
            match s.scale.iter().position(|x| *x == 0.0) {
                Some(i) => Err(format!("scaler.scale[{i}] is zero")),
                None => Ok(()),
            }
        };
        let linear = |l: &Linear| -> Result<(), String> {
            scaler(&l.scaler)?;
            if l.coef.len() != n {
                return Err(format!("{} coefficients for {n} features", l.coef.len()));
            }
            finite(&l.coef, "coef")?;
            finite(&[l.intercept], "intercept")
        };
        match self {
            Model::Tree(t) => t.check(n),
            Model::Forest { trees } => {
                if trees.is_empty() {
                    return Err("a forest has no trees".into());
                }
                for (i, t) in trees.iter().enumerate() {
                    t.check(n).map_err(|m| format!("tree {i}: {m}"))?;
                }
                Ok(())
            }
            Model::Boosted { base_score, trees } => {
                finite(&[*base_score], "base_score")?;
                for (i, t) in trees.iter().enumerate() {
                    t.check(n).map_err(|m| format!("tree {i}: {m}"))?;
                }
                Ok(())
            }
            Model::Linear(l) | Model::Logistic(l) => linear(l),
            Model::Mlp(m) => {
                scaler(&m.scaler)?;
                finite(&[m.output_scale, m.output_offset], "output scale/offset")?;
                if m.layers.is_empty() {
                    return Err("an MLP has no layers".into());
                }
                let mut inputs = n;
                for (k, layer) in m.layers.iter().enumerate() {
                    if layer.weights.is_empty() || layer.weights.len() != layer.bias.len() {
                        return Err(format!(
                            "layer {k} has {} weight rows and {} biases",
                            layer.weights.len(),
                            layer.bias.len()
                        ));
                    }
                    for (o, row) in layer.weights.iter().enumerate() {
                        if row.len() != inputs {
                            return Err(format!("layer {k} row {o} has {} weights, expected {inputs}", row.len()));
                        }
                        finite(row, &format!("layer {k} weights[{o}]"))?;
                    }
                    finite(&layer.bias, &format!("layer {k} bias"))?;
                    inputs = layer.weights.len();
                }
                if inputs != 1 {
                    return Err(format!("the last layer has {inputs} outputs, expected 1"));
                }
                Ok(())
            }
        }
    }
}

/// A trained model with what is needed to trust it: format and schema versions, feature names,
/// what it predicts, how it was trained and how well it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelArtifact {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// [`MODEL_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// [`FEATURE_SCHEMA_VERSION`] of the training data.
    pub feature_schema_version: u32,
    /// Feature names, in column order: must equal [`FEATURES`].
    pub features: Vec<String>,
    /// What the output means.
    pub target: Target,
    /// How it was trained: library, hyper-parameters, data hash, metrics (free-form, for people).
    #[serde(default)]
    pub training: std::collections::BTreeMap<String, String>,
    /// The model.
    pub model: Model,
}

impl ModelArtifact {
    /// An artifact for `model` with the current format, schema and feature names.
    pub fn new(target: Target, model: Model) -> Self {
        ModelArtifact {
            format: MODEL_FORMAT.into(),
            format_version: MODEL_FORMAT_VERSION,
            feature_schema_version: FEATURE_SCHEMA_VERSION,
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
            target,
            training: Default::default(),
            model,
        }
    }

    /// Parses an artifact's JSON text and [checks](ModelArtifact::check) it: the one loader of
    /// the simulator (`sim`/`learn evaluate --model`, a scenario's `policy.model`) and the
    /// operator (an AISchedulingPolicy's artifact). The caller reads the text (the engine does no
    /// I/O). A truncated or corrupt file, an unknown model type or a mismatched schema is an
    /// error that says what is wrong, never a panic.
    pub fn from_json(text: &str) -> Result<ModelArtifact, ArtifactError> {
        let artifact: ModelArtifact = serde_json::from_str(text).map_err(|e| ArtifactError::Parse(e.to_string()))?;
        artifact.check().map_err(ArtifactError::Check)?;
        Ok(artifact)
    }

    /// Checks that this engine can run the artifact; the message says what does not match.
    pub fn check(&self) -> Result<(), String> {
        if self.format != MODEL_FORMAT {
            return Err(format!("format is {:?}, expected {MODEL_FORMAT:?}", self.format));
        }
        if self.format_version != MODEL_FORMAT_VERSION {
            return Err(format!(
                "format_version {} is not supported (this engine reads version {MODEL_FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.feature_schema_version != FEATURE_SCHEMA_VERSION {
            return Err(format!(
                "feature schema version {} does not match the engine's {FEATURE_SCHEMA_VERSION}: retrain on a new dataset",
                self.feature_schema_version
            ));
        }
        if self.features.len() != N_FEATURES || self.features.iter().zip(FEATURES).any(|(a, b)| a != b) {
            let first = self.features.iter().zip(FEATURES).position(|(a, b)| a != b);
            return Err(match first {
                Some(i) => format!("feature {i} is {:?}, the engine computes {:?}", self.features[i], FEATURES[i]),
                None => format!("{} features, the engine computes {N_FEATURES}", self.features.len()),
            });
        }
        self.model.check(N_FEATURES).map_err(|m| format!("{} model: {m}", self.model.type_name()))
    }

    /// The model's output for one candidate's features.
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.model.predict(x)
    }
}

/// Why an artifact's text cannot be run ([`ModelArtifact::from_json`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArtifactError {
    /// Not JSON, truncated, or not shaped as an artifact: serde's message (what, line, column).
    Parse(String),
    /// A well-formed artifact this engine cannot run: format or feature schema version, feature
    /// names, shapes or non-finite numbers (see [`ModelArtifact::check`]).
    Check(String),
}

impl std::fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArtifactError::Parse(m) => write!(f, "not a valid model artifact: {m}"),
            ArtifactError::Check(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ArtifactError {}

/// Where the model comes from: a path (as written in a scenario, to be read by the caller) or
/// the artifact itself once read. The engine only runs a loaded one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelSource {
    /// A model file, not read yet.
    Path(String),
    /// The parsed artifact.
    Loaded(Arc<ModelArtifact>),
    /// Models that take over one after another (online retraining replayed in the simulator):
    /// at `now` the last entry whose `from <= now` decides. The first entry must start at 0.
    Schedule(Vec<ScheduledModel>),
}

/// One model of a [`ModelSource::Schedule`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledModel {
    /// From when it decides.
    pub from: SimTime,
    /// The model.
    pub model: Arc<ModelArtifact>,
}

impl ModelSource {
    /// The model deciding at `now`, if loaded.
    pub fn at(&self, now: SimTime) -> Option<&ModelArtifact> {
        match self {
            ModelSource::Path(_) => None,
            ModelSource::Loaded(a) => Some(a),
            ModelSource::Schedule(s) => {
                let k = s.partition_point(|m| m.from <= now);
                s.get(k.checked_sub(1)?).map(|m| &*m.model)
            }
        }
    }
}

/// Parameters of [`Learned`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedConfig {
    /// The model: in a scenario, a path relative to the scenario file.
    pub model: ModelSource,
    /// Dollars per spot interruption, for models that predict an interruption probability.
    #[serde(default = "default_interruption_cost")]
    pub interruption_cost_usd: f64,
    /// Expected VM life in hours when the request gives no lifetime hint (for probability models).
    #[serde(default = "default_life_h")]
    pub expected_life_h: f64,
}

fn default_interruption_cost() -> f64 {
    0.5
}
fn default_life_h() -> f64 {
    1.0
}

impl LearnedConfig {
    /// A config running `artifact`.
    pub fn new(artifact: ModelArtifact) -> Self {
        LearnedConfig {
            model: ModelSource::Loaded(Arc::new(artifact)),
            interruption_cost_usd: default_interruption_cost(),
            expected_life_h: default_life_h(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.interruption_cost_usd.is_finite() && self.interruption_cost_usd >= 0.0) {
            return Err("interruption_cost_usd must be a number >= 0".into());
        }
        if !(self.expected_life_h.is_finite() && self.expected_life_h > 0.0) {
            return Err("expected_life_h must be a number > 0".into());
        }
        match &self.model {
            ModelSource::Path(p) => Err(format!("model {p:?} was not loaded (the caller reads model files)")),
            ModelSource::Loaded(a) => a.check().map_err(|m| format!("model: {m}")),
            ModelSource::Schedule(s) => {
                if s.first().is_none_or(|m| m.from != SimTime::ZERO) {
                    return Err("a model schedule must start with a model from time 0".into());
                }
                for (i, m) in s.iter().enumerate() {
                    if i > 0 && m.from <= s[i - 1].from {
                        return Err(format!("model schedule entry {i} does not start after entry {}", i - 1));
                    }
                    m.model.check().map_err(|e| format!("model schedule entry {i}: {e}"))?;
                }
                Ok(())
            }
        }
    }
}

/// The learned policy.
#[derive(Clone, Debug)]
pub struct Learned {
    cfg: LearnedConfig,
}

impl Learned {
    /// A policy with these parameters.
    pub fn new(cfg: LearnedConfig) -> Self {
        Learned { cfg }
    }

    /// Every candidate with its features and score (lower is better), in candidate order, or why
    /// there is none.
    pub fn scores(
        &self,
        req: &VmRequest,
        snap: &Snapshot,
        now: SimTime,
    ) -> Result<Vec<(Candidate, Features, f64)>, RejectReason> {
        let Some(art) = self.cfg.model.at(now) else { return Err(RejectReason::NoMatchingOffer) };
        Ok(candidate_features(req, snap, now)?
            .into_iter()
            .map(|(c, f)| {
                let s = score(art, &self.cfg, &f);
                (c, f, s)
            })
            .collect())
    }
}

/// A candidate's score (lower is better) from its features alone, so that offline evaluation
/// scores exactly as the policy does. NaN scores as +∞.
pub fn score(art: &ModelArtifact, cfg: &LearnedConfig, f: &Features) -> f64 {
    let y = art.predict(f);
    let marginal = f[1];
    let s = match art.target {
        Target::CostPerHour => y,
        Target::InterruptionProbability if f[3] > 0.5 => {
            let life_h = if f[19] > 0.5 { f[18].max(1.0 / 60.0) } else { cfg.expected_life_h };
            marginal + y * cfg.interruption_cost_usd / life_h
        }
        Target::InterruptionProbability => marginal,
        Target::Preference => -y,
    };
    if s.is_nan() { f64::INFINITY } else { s }
}

/// The index of the winner among `(score, features)`: the lowest score, then the lowest marginal
/// price (a tree gives many candidates the same score), then the first listed.
pub fn choose<'a>(scored: impl IntoIterator<Item = (f64, &'a Features)>) -> Option<usize> {
    let mut best: Option<(usize, f64, f64)> = None;
    for (i, (s, f)) in scored.into_iter().enumerate() {
        let m = f[1];
        if best.is_none_or(|(_, bs, bm)| s < bs || (s == bs && m < bm)) {
            best = Some((i, s, m));
        }
    }
    best.map(|(i, _, _)| i)
}

impl PlacementPolicy for Learned {
    fn decide(&self, req: &VmRequest, snap: &Snapshot, now: SimTime) -> Decision {
        let scored = match self.scores(req, snap, now) {
            Ok(s) => s,
            Err(r) => return Decision::Reject(r),
        };
        match choose(scored.iter().map(|(_, f, s)| (*s, f))) {
            Some(i) => super::place(req, snap, now, scored[i].0, scored[i].2),
            None => Decision::Reject(RejectReason::NoCapacity),
        }
    }
}
