//! A multi-layer perceptron in burn (flex CPU backend, autodiff, `f64`), trained to predict
//! `cost_per_h` from the standardised features, exported as layer weights for the engine.
//!
//! Training: Adam on the mean squared error of the standardised target, mini-batches in an order
//! shuffled per epoch from the seed, a validation split taken by decision from the training rows,
//! early stopping when the validation loss has not improved for `patience` epochs (the best
//! epoch's weights are kept). The network is trained in `f64` so that the engine's evaluation of
//! the export agrees with burn's own forward pass to rounding (tests check 1e-9).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use engine::ModelArtifact;
use engine::policy::learned::{Activation, Layer, Mlp, Model, N_FEATURES, Scaler, Target};

use crate::classic::{fit_scaler, regression_metrics};
use crate::dataset::{Dataset, decision_key};
use crate::{Error, Result};

/// Hyper-parameters, named as in the seed's `AISchedulingPolicy` (`hidden_layers`,
/// `learning_rate`, `batch_size`, `epochs`, `validationSplit`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpConfig {
    /// Widths of the hidden layers.
    pub hidden_layers: Vec<usize>,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Rows per step.
    pub batch_size: usize,
    /// Most epochs.
    pub epochs: usize,
    /// Share of the training decisions held out for validation.
    pub validation_split: f64,
    /// Epochs without improvement of the validation loss before stopping.
    pub patience: usize,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            hidden_layers: vec![128, 64, 32],
            learning_rate: 1e-3,
            batch_size: 256,
            epochs: 30,
            validation_split: 0.1,
            patience: 5,
            seed: 7,
        }
    }
}

impl MlpConfig {
    /// Checks ranges; the message names the option.
    pub fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Input(m.into()));
        if self.hidden_layers.contains(&0) {
            return bad("--hidden: every layer needs at least one unit");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("--lr must be a number > 0");
        }
        if self.batch_size == 0 || self.epochs == 0 {
            return bad("--batch-size and --epochs must be at least 1");
        }
        if !(self.validation_split > 0.0 && self.validation_split < 1.0) {
            return bad("--validation-split must be in (0, 1)");
        }
        Ok(())
    }
}

/// One epoch of the training curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Epoch {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss (standardised MSE).
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Seconds since training began.
    pub seconds: f64,
}

/// The network.
#[derive(Module, Debug)]
pub struct Net {
    layers: Vec<Linear>,
    activation: Relu,
}

impl Net {
    fn new(inputs: usize, hidden: &[usize], device: &Device) -> Self {
        let mut widths = vec![inputs];
        widths.extend_from_slice(hidden);
        widths.push(1);
        let layers = widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        Net { layers, activation: Relu::new() }
    }

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

/// The flex CPU device with `f64` as its float type (set once per process).
pub fn device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let mut d = Device::flex();
            // Fails only if already configured, which the OnceLock prevents.
            let _ = d.configure(FloatDType::F64);
            d
        })
        .clone()
}

/// A trained MLP.
pub struct TrainedMlp {
    /// The export.
    pub artifact: ModelArtifact,
    /// Test metrics.
    pub metrics: BTreeMap<String, f64>,
    /// The training curve.
    pub curve: Vec<Epoch>,
    /// burn's own predictions on `test_rows` (un-standardised).
    pub library: Vec<f64>,
    /// The rows of `library`.
    pub test_rows: Vec<usize>,
    /// Seconds spent training.
    pub seconds: f64,
}

fn rows_tensor(xs: &[f64], idx: &[usize], device: &Device) -> Tensor<2> {
    let mut v = Vec::with_capacity(idx.len() * N_FEATURES);
    for &i in idx {
        v.extend_from_slice(&xs[i * N_FEATURES..(i + 1) * N_FEATURES]);
    }
    Tensor::from_data(TensorData::new(v, [idx.len(), N_FEATURES]), device)
}

fn col_tensor(ys: &[f64], idx: &[usize], device: &Device) -> Tensor<2> {
    let v: Vec<f64> = idx.iter().map(|&i| ys[i]).collect();
    Tensor::from_data(TensorData::new(v, [idx.len(), 1]), device)
}

fn to_vec(t: Tensor<2>) -> Result<Vec<f64>> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .map_err(|e| Error::Training { model: "mlp".into(), message: format!("{e:?}") })
}

/// Trains on `train` rows, measures on `test` rows.
pub fn train(ds: &Dataset, cfg: &MlpConfig, train: &[usize], test: &[usize]) -> Result<TrainedMlp> {
    cfg.check()?;
    let fail = |m: String| Error::Training { model: "mlp".into(), message: m };
    let (fit_rows, val_rows): (Vec<usize>, Vec<usize>) = train
        .iter()
        .partition(|&&r| crate::unit(&[decision_key(&ds.rows[r]).to_bits(), 0x7a1]) >= cfg.validation_split);
    if fit_rows.is_empty() || val_rows.is_empty() {
        return Err(fail(format!("{} training and {} validation rows: need both", fit_rows.len(), val_rows.len())));
    }
    let scaler = fit_scaler(ds, &fit_rows);
    // Every row scaled once, the engine's way.
    let mut xs = Vec::with_capacity(ds.rows.len() * N_FEATURES);
    let mut buf = Vec::new();
    for r in &ds.rows {
        scaler.apply(&r.features, &mut buf);
        xs.extend_from_slice(&buf);
    }
    let n = fit_rows.len() as f64;
    let y_mean = fit_rows.iter().map(|&r| ds.rows[r].cost_per_h).sum::<f64>() / n;
    let y_var = fit_rows.iter().map(|&r| (ds.rows[r].cost_per_h - y_mean).powi(2)).sum::<f64>() / n;
    let y_std = if y_var > 1e-24 { y_var.sqrt() } else { 1.0 };
    let ys: Vec<f64> = ds.rows.iter().map(|r| (r.cost_per_h - y_mean) / y_std).collect();

    let start = Instant::now();
    let base = device();
    base.seed(cfg.seed);
    let device = base.clone().autodiff();
    let mut model = Net::new(N_FEATURES, &cfg.hidden_layers, &device);
    let mut optim = AdamConfig::new().init();
    let mut best: Option<(f64, Net)> = None;
    let mut since_best = 0;
    let mut curve = Vec::new();
    let mut order = fit_rows.clone();
    let val_x = rows_tensor(&xs, &val_rows, &base);
    let val_y = col_tensor(&ys, &val_rows, &base);
    for epoch in 1..=cfg.epochs {
        // Shuffle (Fisher-Yates from the seed).
        for i in (1..order.len()).rev() {
            let j = (crate::unit(&[cfg.seed, epoch as u64, i as u64]) * (i + 1) as f64) as usize;
            order.swap(i, j.min(i));
        }
        let mut total = 0.0;
        for batch in order.chunks(cfg.batch_size) {
            let x = rows_tensor(&xs, batch, &device);
            let y = col_tensor(&ys, batch, &device);
            let loss = (model.forward(x) - y).powi_scalar(2).mean();
            let l = to_vec(loss.clone().reshape([1, 1]))?.first().copied().unwrap_or(f64::NAN);
            total += l * batch.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.learning_rate, model, grads);
        }
        let valid = model.valid();
        let v = to_vec((valid.forward(val_x.clone()) - val_y.clone()).powi_scalar(2).mean().reshape([1, 1]))?;
        let val_loss = v.first().copied().unwrap_or(f64::NAN);
        curve.push(Epoch { epoch, train_loss: total / n, val_loss, seconds: start.elapsed().as_secs_f64() });
        if best.as_ref().is_none_or(|(b, _)| val_loss < *b) {
            best = Some((val_loss, valid));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let Some((_, net)) = best else { return Err(fail("no epoch ran".into())) };

    // Export: burn stores a layer's weight as [inputs, outputs].
    let mut layers = Vec::new();
    let last = net.layers.len() - 1;
    for (k, l) in net.layers.iter().enumerate() {
        let w = to_vec(l.weight.val())?;
        let [inputs, outputs] = l.weight.val().dims();
        let bias = match &l.bias {
            Some(b) => {
                b.val().into_data().convert::<f64>().try_into_vec::<f64>().map_err(|e| fail(format!("{e:?}")))?
            }
            None => vec![0.0; outputs],
        };
        let weights = (0..outputs).map(|o| (0..inputs).map(|i| w[i * outputs + o]).collect()).collect();
        let activation = if k == last { Activation::Identity } else { Activation::Relu };
        layers.push(Layer { weights, bias, activation });
    }
    let mlp = Mlp {
        scaler: Scaler { mean: scaler.mean.clone(), scale: scaler.scale.clone() },
        layers,
        output_scale: y_std,
        output_offset: y_mean,
    };
    let mut artifact = ModelArtifact::new(Target::CostPerHour, Model::Mlp(mlp));

    // burn's own predictions on the test rows.
    let library: Vec<f64> = if test.is_empty() {
        Vec::new()
    } else {
        to_vec(net.forward(rows_tensor(&xs, test, &base)))?.into_iter().map(|v| v * y_std + y_mean).collect()
    };
    let metrics = regression_metrics(ds, &artifact, test);
    let mut training = BTreeMap::new();
    training.insert("library".into(), "burn 0.22.1 (flex, f64, autodiff, Adam)".into());
    training.insert("config".into(), serde_json::to_string(cfg).unwrap_or_default());
    training.insert("data_hash".into(), ds.hash());
    training.insert("train_rows".into(), fit_rows.len().to_string());
    training.insert("validation_rows".into(), val_rows.len().to_string());
    training.insert("epochs_run".into(), curve.len().to_string());
    training.insert("seconds".into(), format!("{seconds:.1}"));
    for (k, v) in &metrics {
        training.insert(format!("test_{k}"), format!("{v}"));
    }
    artifact.training = training;
    Ok(TrainedMlp { artifact, metrics, curve, library, test_rows: test.to_vec(), seconds })
}

/// Writes a training curve as Parquet (`epoch`, `train_loss`, `val_loss`, `seconds`).
pub fn write_curve(curve: &[Epoch], path: &std::path::Path) -> Result<()> {
    use polars::prelude::*;
    let err = |m: String| Error::Data { path: path.display().to_string(), message: m };
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("epoch".into(), curve.iter().map(|e| e.epoch as u32).collect::<Vec<u32>>()),
        Column::new("train_loss".into(), curve.iter().map(|e| e.train_loss).collect::<Vec<f64>>()),
        Column::new("val_loss".into(), curve.iter().map(|e| e.val_loss).collect::<Vec<f64>>()),
        Column::new("seconds".into(), curve.iter().map(|e| e.seconds).collect::<Vec<f64>>()),
    ])
    .map_err(|e| err(e.to_string()))?;
    let file = std::fs::File::create(path).map_err(|e| err(format!("cannot create: {e}")))?;
    ParquetWriter::new(file).finish(&mut df).map_err(|e| err(e.to_string()))?;
    Ok(())
}
