//! Learned-policy inference in the placement hot path: one decision over 100 candidate offers, for
//! each model kind the engine runs (tree, forest, linear, logistic, MLP).
//!
//! The models are shaped like the ones `learn train` writes (a tree of depth 12, a forest of 20
//! such trees, 25 coefficients, an MLP 128-64-32) with weights drawn from [`BENCH_SEED`] and
//! split thresholds drawn from the candidates' own feature values (so that trees are walked to
//! full depth, as trained ones are); inference costs the same for any weights of a shape. This
//! crate does not depend on `learn` (that would compile burn and linfa into every bench build).
//!
//! * `learned_score/<kind>/100`: [`score`] of 100 candidates' precomputed features and
//!   [`choose`] of the winner: the model's share of a decision.
//! * `learned_decide/<kind>/<n>`: the whole [`PlacementPolicy::decide`] on a snapshot of a
//!   synthetic catalog whose requests have about 100 candidates (`n`, the mean count): features
//!   computed from the snapshot, scored, chosen, placed. `cost-optimized` on the same requests is
//!   the hand-written baseline.

use std::hint::black_box;
use std::sync::Arc;

use benches::{BENCH_SEED, synthetic_catalog, synthetic_requests};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::policy::learned::{
    Activation, Features, Layer, Linear, Mlp, Model, N_FEATURES, Node, Scaler, Target, Tree, candidate_features,
    choose, score,
};
use engine::{CostModel, LearnedConfig, ModelArtifact, ModelSource, PlacementPolicy, PolicyConfig, SimTime, Snapshot};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Candidates per decision.
const CANDIDATES: usize = 100;
/// Offers of the synthetic catalog for the whole-decision bench (requests then have ~100 candidates).
const OFFERS: usize = 160;

/// A random tree of `depth` levels splitting on thresholds taken from `rows`.
fn tree(rng: &mut ChaCha8Rng, rows: &[Features], depth: usize) -> Tree {
    fn grow(rng: &mut ChaCha8Rng, rows: &[Features], depth: usize, nodes: &mut Vec<Node>) -> u32 {
        let i = nodes.len();
        nodes.push(Node::Leaf { value: rng.random_range(0.01..0.5), class: None });
        if depth > 0 {
            let feature = rng.random_range(0..N_FEATURES);
            let threshold = rows[rng.random_range(0..rows.len())][feature];
            let left = grow(rng, rows, depth - 1, nodes);
            let right = grow(rng, rows, depth - 1, nodes);
            nodes[i] = Node::Split { feature: feature as u32, threshold, left, right };
        }
        i as u32
    }
    let mut nodes = Vec::new();
    grow(rng, rows, depth, &mut nodes);
    Tree { nodes }
}

fn linear(rng: &mut ChaCha8Rng, rows: &[Features]) -> Linear {
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..N_FEATURES).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
    let scale: Vec<f64> = (0..N_FEATURES)
        .map(|j| {
            let v = rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
            if v > 1e-24 { v.sqrt() } else { 1.0 }
        })
        .collect();
    Linear {
        scaler: Scaler { mean, scale },
        coef: (0..N_FEATURES).map(|_| rng.random_range(-1.0..1.0)).collect(),
        intercept: rng.random_range(-1.0..1.0),
    }
}

fn mlp(rng: &mut ChaCha8Rng, rows: &[Features], hidden: &[usize]) -> Mlp {
    let mut widths = vec![N_FEATURES];
    widths.extend_from_slice(hidden);
    widths.push(1);
    let last = widths.len() - 2;
    let layers = widths
        .windows(2)
        .enumerate()
        .map(|(k, w)| {
            let bound = 1.0 / (w[0] as f64).sqrt();
            Layer {
                weights: (0..w[1]).map(|_| (0..w[0]).map(|_| rng.random_range(-bound..bound)).collect()).collect(),
                bias: (0..w[1]).map(|_| rng.random_range(-bound..bound)).collect(),
                activation: if k == last { Activation::Identity } else { Activation::Relu },
            }
        })
        .collect();
    Mlp { scaler: linear(rng, rows).scaler, layers, output_scale: 0.1, output_offset: 0.1 }
}

/// The five model kinds, named.
fn models(rows: &[Features]) -> Vec<(&'static str, ModelArtifact)> {
    let mut rng = ChaCha8Rng::seed_from_u64(BENCH_SEED);
    let t = tree(&mut rng, rows, 12);
    let forest = (0..20).map(|_| tree(&mut rng, rows, 12)).collect();
    let lin = linear(&mut rng, rows);
    let logit = linear(&mut rng, rows);
    let net = mlp(&mut rng, rows, &[128, 64, 32]);
    vec![
        ("tree", ModelArtifact::new(Target::CostPerHour, Model::Tree(t))),
        ("forest", ModelArtifact::new(Target::CostPerHour, Model::Forest { trees: forest })),
        ("linear", ModelArtifact::new(Target::CostPerHour, Model::Linear(lin))),
        ("logistic", ModelArtifact::new(Target::InterruptionProbability, Model::Logistic(logit))),
        ("mlp", ModelArtifact::new(Target::CostPerHour, Model::Mlp(net))),
    ]
}

/// A snapshot of the synthetic catalog and requests that have candidates there, with the
/// candidates' features of each.
fn world() -> (Snapshot, Vec<engine::VmRequest>, Vec<Vec<Features>>) {
    let snap = Snapshot::new(synthetic_catalog(OFFERS, BENCH_SEED), CostModel::default());
    let now = SimTime(3_600_000);
    let mut reqs = Vec::new();
    let mut feats = Vec::new();
    for r in synthetic_requests(512, &snap.catalog, BENCH_SEED) {
        if let Ok(c) = candidate_features(&r, &snap, now)
            && c.len() >= 50
        {
            feats.push(c.into_iter().map(|(_, f)| f).collect());
            reqs.push(r);
        }
    }
    (snap, reqs, feats)
}

fn learned(c: &mut Criterion) {
    let (snap, reqs, feats) = world();
    assert!(!reqs.is_empty(), "no request with 50 candidates or more in the synthetic catalog");
    let rows: Vec<Features> = feats.iter().flatten().copied().cycle().take(CANDIDATES).collect();
    let models = models(&feats.iter().flatten().copied().collect::<Vec<_>>());
    let now = SimTime(3_600_000);

    let mut group = c.benchmark_group("learned_score");
    group.throughput(Throughput::Elements(1));
    for (name, art) in &models {
        art.check().expect("bench models are well-formed");
        let cfg = LearnedConfig::new(art.clone());
        group.bench_with_input(BenchmarkId::new(*name, CANDIDATES), &rows, |b, rows| {
            b.iter(|| {
                let scores: Vec<f64> = rows.iter().map(|f| score(art, &cfg, black_box(f))).collect();
                black_box(choose(scores.iter().zip(rows).map(|(s, f)| (*s, f))))
            });
        });
    }
    group.finish();

    let mean = feats.iter().map(Vec::len).sum::<usize>() / feats.len();
    let mut group = c.benchmark_group("learned_decide");
    group.throughput(Throughput::Elements(1));
    let mut policies: Vec<(&str, Box<dyn PlacementPolicy>)> = models
        .iter()
        .map(|(name, art)| {
            let mut cfg = LearnedConfig::new(art.clone());
            cfg.model = ModelSource::Loaded(Arc::new(art.clone()));
            (*name, PolicyConfig::Learned(cfg).build())
        })
        .collect();
    if let Some(p) = PolicyConfig::default_for("cost-optimized") {
        policies.push(("cost-optimized", p.build()));
    }
    for (name, policy) in &policies {
        group.bench_with_input(BenchmarkId::new(*name, mean), &mean, |b, _| {
            let mut i = 0usize;
            b.iter(|| {
                let req = &reqs[i % reqs.len()];
                i += 1;
                black_box(policy.decide(black_box(req), &snap, now))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, learned);
criterion_main!(benches);
