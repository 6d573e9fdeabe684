//! A contextual bandit over candidate offers, trained with REINFORCE in burn.
//!
//! The environment is the simulator's recorded decisions: a context is one first placement with
//! its feasible candidates; an action is a candidate; its reward comes from the outcome the
//! simulator computed for that candidate in hindsight, weighted by the multi-objective weights:
//!
//! `reward = −(cost · cost_per_h / c̄ + performance · latency_ms / 100 + availability · (interrupted + outage_hit) + energy · carbon_g_per_h / ḡ)`
//!
//! where `c̄` and `ḡ` are the training rows' mean cost per hour and carbon (so the weights mean the
//! same whatever the units). The policy is a softmax over an MLP's per-candidate logits; each
//! step samples one action per context from it (seeded), and the gradient of
//! `−(reward − baseline) · log π(action)` (baseline: the running mean reward) trains the MLP.
//! One step per decision, so this is a one-step episode (a bandit), not long-horizon RL: a
//! placement's effect on later decisions (capacity taken, spread) is not credited.
//!
//! The export is the MLP with target [`Target::Preference`]: the engine places on the highest
//! logit (the greedy policy).

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use engine::ModelArtifact;
use engine::policy::learned::{Activation, Layer, Mlp, Model, N_FEATURES, Scaler, Target};

use crate::classic::{decision_metrics, fit_scaler};
use crate::dataset::Dataset;
use crate::mlp::device;
use crate::{Error, Result};

/// The objective weights of the reward (the seed's cost, performance, availability, energy).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RewardWeights {
    /// Weight of cost.
    pub cost: f64,
    /// Weight of latency.
    pub performance: f64,
    /// Weight of interruptions and outages.
    pub availability: f64,
    /// Weight of carbon.
    pub energy: f64,
}

impl Default for RewardWeights {
    fn default() -> Self {
        RewardWeights { cost: 1.0, performance: 0.0, availability: 0.5, energy: 0.0 }
    }
}

/// Hyper-parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BanditConfig {
    /// Hidden layer widths of the logit network.
    pub hidden_layers: Vec<usize>,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Decisions per step.
    pub batch_decisions: usize,
    /// Passes over the training decisions.
    pub epochs: usize,
    /// Reward weights.
    pub weights: RewardWeights,
    /// Seed of initialisation, shuffling and action sampling.
    pub seed: u64,
}

impl Default for BanditConfig {
    fn default() -> Self {
        BanditConfig {
            hidden_layers: vec![64, 32],
            learning_rate: 1e-3,
            batch_decisions: 64,
            epochs: 10,
            weights: RewardWeights::default(),
            seed: 7,
        }
    }
}

#[derive(Module, Debug)]
struct Net {
    layers: Vec<Linear>,
    activation: Relu,
}

impl Net {
    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i + 1 < n {
                x = self.activation.forward(x);
            }
        }
        x
    }
}

/// A trained bandit policy.
pub struct TrainedBandit {
    /// The export.
    pub artifact: ModelArtifact,
    /// Per-decision metrics on the test rows (top-1 agreement with the oracle, regret).
    pub metrics: BTreeMap<String, f64>,
    /// Mean reward of the sampled actions per epoch.
    pub mean_reward: Vec<f64>,
    /// Seconds spent training.
    pub seconds: f64,
}

/// Groups row indices by decision, in row order.
fn decisions(ds: &Dataset, rows: &[usize]) -> Vec<Vec<usize>> {
    let mut map: BTreeMap<(&str, u64, &str, u64), Vec<usize>> = BTreeMap::new();
    for &r in rows {
        let x = &ds.rows[r];
        map.entry((x.scenario.as_str(), x.seed, x.policy.as_str(), x.decision)).or_default().push(r);
    }
    map.into_values().collect()
}

/// Trains on the decisions of `train` rows; measures on `test` rows.
pub fn train(ds: &Dataset, cfg: &BanditConfig, train: &[usize], test: &[usize]) -> Result<TrainedBandit> {
    let fail = |m: String| Error::Training { model: "bandit".into(), message: m };
    if cfg.hidden_layers.contains(&0) || cfg.batch_decisions == 0 || cfg.epochs == 0 {
        return Err(Error::Input("bandit: layers, batch and epochs must be at least 1".into()));
    }
    let groups = decisions(ds, train);
    if groups.is_empty() {
        return Err(fail("no training decisions".into()));
    }
    let scaler = fit_scaler(ds, train);
    let n = train.len() as f64;
    let c_bar = (train.iter().map(|&r| ds.rows[r].cost_per_h).sum::<f64>() / n).max(1e-9);
    let g_bar = (train.iter().map(|&r| ds.rows[r].features[12]).sum::<f64>() / n).max(1e-9);
    let w = cfg.weights;
    let reward = |r: usize| {
        let x = &ds.rows[r];
        -(w.cost * x.cost_per_h / c_bar
            + w.performance * x.features[10] / 100.0
            + w.availability * (f64::from(u8::from(x.interrupted)) + f64::from(u8::from(x.outage_hit)))
            + w.energy * x.features[12] / g_bar)
    };
    let mut buf = Vec::new();
    let start = Instant::now();
    let base = device();
    base.seed(cfg.seed);
    let dev: Device = base.clone().autodiff();
    let mut widths = vec![N_FEATURES];
    widths.extend_from_slice(&cfg.hidden_layers);
    widths.push(1);
    let mut model = Net {
        layers: widths.windows(2).map(|p| LinearConfig::new(p[0], p[1]).init(&dev)).collect(),
        activation: Relu::new(),
    };
    let mut optim = AdamConfig::new().init();
    let mut baseline = 0.0;
    let mut mean_reward = Vec::new();
    let mut order: Vec<usize> = (0..groups.len()).collect();
    for epoch in 1..=cfg.epochs {
        for i in (1..order.len()).rev() {
            let j = (crate::unit(&[cfg.seed, epoch as u64, i as u64, 0xba]) * (i + 1) as f64) as usize;
            order.swap(i, j.min(i));
        }
        let (mut total, mut count) = (0.0, 0usize);
        for (step, batch) in order.chunks(cfg.batch_decisions).enumerate() {
            let k = batch.iter().map(|&g| groups[g].len()).max().unwrap_or(1);
            let b = batch.len();
            // Padded inputs [b·k, F], mask [b, k] (−1e9 where there is no candidate).
            let mut x = vec![0.0; b * k * N_FEATURES];
            let mut mask = vec![-1e9; b * k];
            for (bi, &g) in batch.iter().enumerate() {
                for (ci, &r) in groups[g].iter().enumerate() {
                    scaler.apply(&ds.rows[r].features, &mut buf);
                    let at = (bi * k + ci) * N_FEATURES;
                    x[at..at + N_FEATURES].copy_from_slice(&buf);
                    mask[bi * k + ci] = 0.0;
                }
            }
            let xt = Tensor::<2>::from_data(TensorData::new(x, [b * k, N_FEATURES]), &dev);
            let mt = Tensor::<2>::from_data(TensorData::new(mask, [b, k]), &dev);
            let logits = model.forward(xt).reshape([b, k]) + mt;
            let logp = log_softmax(logits, 1);
            let probs: Vec<f64> = logp
                .clone()
                .exp()
                .into_data()
                .convert::<f64>()
                .try_into_vec::<f64>()
                .map_err(|e| fail(format!("{e:?}")))?;
            // Sample one action per context; advantage = reward − baseline.
            let mut onehot = vec![0.0; b * k];
            let mut adv = vec![0.0; b];
            for (bi, &g) in batch.iter().enumerate() {
                let u = crate::unit(&[cfg.seed, epoch as u64, step as u64, bi as u64, 0x5a]);
                let mut acc = 0.0;
                let mut a = groups[g].len() - 1;
                for ci in 0..groups[g].len() {
                    acc += probs[bi * k + ci];
                    if u < acc {
                        a = ci;
                        break;
                    }
                }
                onehot[bi * k + a] = 1.0;
                let rw = reward(groups[g][a]);
                adv[bi] = rw - baseline;
                total += rw;
                count += 1;
            }
            let batch_mean = adv.iter().sum::<f64>() / b as f64 + baseline;
            baseline = 0.95 * baseline + 0.05 * batch_mean;
            let oh = Tensor::<2>::from_data(TensorData::new(onehot, [b, k]), &dev);
            let at = Tensor::<2>::from_data(TensorData::new(adv, [b, 1]), &dev);
            let chosen_logp = (logp * oh).sum_dim(1);
            let loss = -(chosen_logp * at).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.learning_rate, model, grads);
        }
        mean_reward.push(total / count.max(1) as f64);
    }
    let seconds = start.elapsed().as_secs_f64();
    let net = model.valid();
    let mut layers = Vec::new();
    let last = net.layers.len() - 1;
    for (i, l) in net.layers.iter().enumerate() {
        let wv: Vec<f64> =
            l.weight.val().into_data().convert::<f64>().try_into_vec::<f64>().map_err(|e| fail(format!("{e:?}")))?;
        let [inputs, outputs] = l.weight.val().dims();
        let bias = match &l.bias {
            Some(bb) => {
                bb.val().into_data().convert::<f64>().try_into_vec::<f64>().map_err(|e| fail(format!("{e:?}")))?
            }
            None => vec![0.0; outputs],
        };
        layers.push(Layer {
            weights: (0..outputs).map(|o| (0..inputs).map(|ii| wv[ii * outputs + o]).collect()).collect(),
            bias,
            activation: if i == last { Activation::Identity } else { Activation::Relu },
        });
    }
    let mlp = Mlp {
        scaler: Scaler { mean: scaler.mean, scale: scaler.scale },
        layers,
        output_scale: 1.0,
        output_offset: 0.0,
    };
    let mut artifact = ModelArtifact::new(Target::Preference, Model::Mlp(mlp));
    let metrics = decision_metrics(ds, &artifact, test);
    let mut training = BTreeMap::new();
    training.insert("library".into(), "burn 0.22.1 (flex, f64, autodiff, Adam), REINFORCE".into());
    training.insert("config".into(), serde_json::to_string(cfg).unwrap_or_default());
    training.insert("data_hash".into(), ds.hash());
    training.insert("train_decisions".into(), groups.len().to_string());
    training.insert("seconds".into(), format!("{seconds:.1}"));
    for (k, v) in &metrics {
        training.insert(format!("test_{k}"), format!("{v}"));
    }
    artifact.training = training;
    Ok(TrainedBandit { artifact, metrics, mean_reward, seconds })
}

/// Writes the reward curve as Parquet (`epoch`, `mean_reward`).
pub fn write_curve(mean_reward: &[f64], path: &std::path::Path) -> Result<()> {
    use polars::prelude::*;
    let err = |m: String| Error::Data { path: path.display().to_string(), message: m };
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("epoch".into(), (1..=mean_reward.len() as u32).collect::<Vec<u32>>()),
        Column::new("mean_reward".into(), mean_reward.to_vec()),
    ])
    .map_err(|e| err(e.to_string()))?;
    let file = std::fs::File::create(path).map_err(|e| err(format!("cannot create: {e}")))?;
    ParquetWriter::new(file).finish(&mut df).map_err(|e| err(e.to_string()))?;
    Ok(())
}
