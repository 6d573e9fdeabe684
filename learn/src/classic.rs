//! linfa models, exported to the engine's format.
//!
//! * `tree`: linfa-trees' CART classifier on cost classes (the training rows' `cost_per_h` cut at
//!   its quantiles), so that it splits where cost changes; each exported leaf carries the mean
//!   `cost_per_h` of the training rows that reach it, and the class linfa predicts there.
//! * `forest`: linfa-ensemble's random forest of such trees (bootstrap rows, a share of the
//!   features per tree); the exported forest averages its trees' leaf values.
//! * `linear`: linfa-linear's least squares of `cost_per_h` on the standardised features.
//! * `logistic`: linfa-logistic's regression of `interrupted` on the spot rows.
//!
//! Constant and duplicate feature columns are left out of the linear fits (coefficient zero), so
//! that least squares stays well posed.

use std::collections::BTreeMap;

use engine::ModelArtifact;
use engine::policy::learned::{Linear, Model, N_FEATURES, Node, Scaler, Target, Tree};
use linfa::prelude::*;
use linfa_trees::{DecisionTree, SplitQuality, TreeNode};
use ndarray::{Array1, Array2, Axis};

use crate::dataset::{Dataset, Row};
use crate::{Error, Result};

/// Which linfa model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One decision tree.
    Tree,
    /// A random forest.
    Forest,
    /// Linear regression of cost.
    Linear,
    /// Logistic regression of spot interruption.
    Logistic,
}

/// Hyper-parameters (checked by [`Params::check`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Cost classes for the trees.
    pub classes: usize,
    /// Deepest tree.
    pub max_depth: usize,
    /// Least weight (rows) in a leaf.
    pub min_leaf: f32,
    /// Trees in a forest.
    pub trees: usize,
    /// Share of rows per tree (bootstrap).
    pub bootstrap: f64,
    /// Share of features per tree.
    pub feature_share: f64,
    /// Logistic: L2 penalty.
    pub alpha: f64,
    /// Logistic: iterations.
    pub max_iterations: u64,
    /// Seed of the forest's sampling.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            classes: 32,
            max_depth: 12,
            min_leaf: 20.0,
            trees: 20,
            bootstrap: 0.7,
            feature_share: 0.7,
            alpha: 1.0,
            max_iterations: 200,
            seed: 7,
        }
    }
}

impl Params {
    /// Checks ranges; the message names the option.
    pub fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Input(m.into()));
        if self.classes < 2 {
            return bad("--classes must be at least 2");
        }
        if self.max_depth == 0 {
            return bad("--max-depth must be at least 1");
        }
        if !(self.min_leaf.is_finite() && self.min_leaf >= 1.0) {
            return bad("--min-leaf must be at least 1");
        }
        if self.trees == 0 {
            return bad("--trees must be at least 1");
        }
        let share = |x: f64| x > 0.0 && x <= 1.0;
        if !share(self.bootstrap) || !share(self.feature_share) {
            return bad("--bootstrap and --feature-share must be in (0, 1]");
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad("--alpha must be a number >= 0");
        }
        Ok(())
    }
}

/// A trained model: the artifact plus what the library itself predicts on the test rows (for the
/// exactness check) and metrics.
pub struct Trained {
    /// The exported model.
    pub artifact: ModelArtifact,
    /// Metrics on the test rows.
    pub metrics: BTreeMap<String, f64>,
    /// The library's own outputs on `test_rows`: cost / probability, or per tree the class.
    pub library: LibraryOutput,
    /// Rows the library output is for.
    pub test_rows: Vec<usize>,
}

/// What the training library predicted on the test rows.
#[derive(Clone, Debug, PartialEq)]
pub enum LibraryOutput {
    /// One number per row (linear, logistic).
    Values(Vec<f64>),
    /// One class per row per tree.
    Classes(Vec<Vec<usize>>),
}

/// The raw feature matrix of some rows.
pub fn matrix(ds: &Dataset, idx: &[usize]) -> Array2<f64> {
    let mut x = Array2::zeros((idx.len(), N_FEATURES));
    for (i, &r) in idx.iter().enumerate() {
        for j in 0..N_FEATURES {
            x[(i, j)] = ds.rows[r].features[j];
        }
    }
    x
}

/// Standardisation from training rows (scale 1 for constant columns).
pub fn fit_scaler(ds: &Dataset, idx: &[usize]) -> Scaler {
    let n = idx.len().max(1) as f64;
    let mut mean = vec![0.0; N_FEATURES];
    let mut scale = vec![0.0; N_FEATURES];
    for &r in idx {
        for (m, f) in mean.iter_mut().zip(&ds.rows[r].features) {
            *m += f / n;
        }
    }
    for &r in idx {
        for ((s, f), m) in scale.iter_mut().zip(&ds.rows[r].features).zip(&mean) {
            *s += (f - m) * (f - m) / n;
        }
    }
    for s in &mut scale {
        *s = if *s > 1e-24 { s.sqrt() } else { 1.0 };
    }
    Scaler { mean, scale }
}

/// Columns worth fitting on: not constant, not a copy of an earlier column.
fn informative(ds: &Dataset, idx: &[usize]) -> Vec<usize> {
    let mut keep: Vec<usize> = Vec::new();
    'col: for j in 0..N_FEATURES {
        let first = idx.first().map_or(0.0, |&r| ds.rows[r].features[j]);
        if idx.iter().all(|&r| ds.rows[r].features[j] == first) {
            continue;
        }
        for &k in &keep {
            if idx.iter().all(|&r| ds.rows[r].features[j] == ds.rows[r].features[k]) {
                continue 'col;
            }
        }
        keep.push(j);
    }
    keep
}

/// Scaled features of some rows, the engine's own way, restricted to `cols`.
fn scaled(ds: &Dataset, idx: &[usize], scaler: &Scaler, cols: &[usize]) -> Array2<f64> {
    let mut x = Array2::zeros((idx.len(), cols.len()));
    let mut buf = Vec::new();
    for (i, &r) in idx.iter().enumerate() {
        scaler.apply(&ds.rows[r].features, &mut buf);
        for (k, &j) in cols.iter().enumerate() {
            x[(i, k)] = buf[j];
        }
    }
    x
}

/// Trains one linfa model on `train` rows and measures it on `test` rows.
pub fn train(ds: &Dataset, kind: Kind, p: &Params, train: &[usize], test: &[usize]) -> Result<Trained> {
    p.check()?;
    let fail = |m: String| Error::Training { model: format!("{kind:?}").to_lowercase(), message: m };
    if train.is_empty() {
        return Err(fail("no training rows".into()));
    }
    let mut training = BTreeMap::new();
    training.insert("data_hash".to_string(), ds.hash());
    training.insert("train_rows".to_string(), train.len().to_string());
    match kind {
        Kind::Tree | Kind::Forest => {
            let y: Vec<f64> = train.iter().map(|&r| ds.rows[r].cost_per_h).collect();
            let edges = quantile_edges(&y, p.classes);
            let labels: Array1<usize> = y.iter().map(|v| edges.partition_point(|e| e <= v)).collect();
            let x = matrix(ds, train);
            let data = linfa::Dataset::new(x.clone(), labels.clone());
            let tree_params = DecisionTree::params()
                .split_quality(SplitQuality::Gini)
                .max_depth(Some(p.max_depth))
                .min_weight_leaf(p.min_leaf)
                .min_weight_split(2.0 * p.min_leaf);
            type Fitted = (Vec<Tree>, Vec<Vec<usize>>, Vec<DecisionTree<f64, usize>>);
            let (trees, per_tree_features, fitted): Fitted = if kind == Kind::Tree {
                let t = tree_params.fit(&data).map_err(|e| fail(e.to_string()))?;
                let all: Vec<usize> = (0..N_FEATURES).collect();
                (vec![export_tree(t.root_node(), &all)], vec![all], vec![t])
            } else {
                use ndarray_rand::rand::SeedableRng;
                let rng = ndarray_rand::rand::rngs::StdRng::seed_from_u64(p.seed);
                let forest = linfa_ensemble::EnsembleLearnerParams::new_fixed_rng(tree_params, rng)
                    .ensemble_size(p.trees)
                    .bootstrap_proportion(p.bootstrap)
                    .feature_proportion(p.feature_share)
                    .fit(&data)
                    .map_err(|e| fail(e.to_string()))?;
                let trees = forest
                    .models
                    .iter()
                    .zip(&forest.model_features)
                    .map(|(m, f)| export_tree(m.root_node(), f))
                    .collect();
                (trees, forest.model_features.clone(), forest.models)
            };
            // Leaf values: mean target of the training rows reaching each leaf (class means otherwise).
            let class_mean = class_means(&y, &labels, p.classes);
            let trees: Vec<Tree> = trees.into_iter().map(|t| fill_leaves(t, ds, train, &class_mean)).collect();
            let model = if kind == Kind::Tree {
                Model::Tree(trees.into_iter().next().ok_or_else(|| fail("no tree".into()))?)
            } else {
                Model::Forest { trees }
            };
            // The library's own class predictions on the test rows, per tree.
            let xt = matrix(ds, test);
            let classes = fitted
                .iter()
                .zip(&per_tree_features)
                .map(|(m, f)| m.predict(&xt.select(Axis(1), f)).to_vec())
                .collect();
            training.insert(
                "library".into(),
                if kind == Kind::Tree { "linfa-trees 0.8.1" } else { "linfa-ensemble 0.8.1" }.into(),
            );
            training.insert(
                "params".into(),
                format!(
                    "classes={} max_depth={} min_leaf={} trees={} bootstrap={} feature_share={} seed={}",
                    p.classes, p.max_depth, p.min_leaf, p.trees, p.bootstrap, p.feature_share, p.seed
                ),
            );
            let mut artifact = ModelArtifact::new(Target::CostPerHour, model);
            let metrics = regression_metrics(ds, &artifact, test);
            add_metrics(&mut training, &metrics);
            artifact.training = training;
            Ok(Trained { artifact, metrics, library: LibraryOutput::Classes(classes), test_rows: test.to_vec() })
        }
        Kind::Linear => {
            let scaler = fit_scaler(ds, train);
            let cols = informative(ds, train);
            let x = scaled(ds, train, &scaler, &cols);
            let y: Array1<f64> = train.iter().map(|&r| ds.rows[r].cost_per_h).collect();
            let fitted = linfa_linear::LinearRegression::new()
                .fit(&linfa::Dataset::new(x, y))
                .map_err(|e| fail(e.to_string()))?;
            let mut coef = vec![0.0; N_FEATURES];
            for (k, &j) in cols.iter().enumerate() {
                coef[j] = fitted.params()[k];
            }
            let xt = scaled(ds, test, &scaler, &cols);
            let lib: Vec<f64> = fitted.predict(&xt).to_vec();
            training.insert("library".into(), "linfa-linear 0.8.1 (least squares)".into());
            let model = Model::Linear(Linear { scaler, coef, intercept: fitted.intercept() });
            let mut artifact = ModelArtifact::new(Target::CostPerHour, model);
            let metrics = regression_metrics(ds, &artifact, test);
            add_metrics(&mut training, &metrics);
            artifact.training = training;
            Ok(Trained { artifact, metrics, library: LibraryOutput::Values(lib), test_rows: test.to_vec() })
        }
        Kind::Logistic => {
            let spot = |idx: &[usize]| idx.iter().copied().filter(|&r| ds.rows[r].spot).collect::<Vec<_>>();
            let (train, test) = (spot(train), spot(test));
            if train.is_empty() {
                return Err(fail("no spot rows to learn interruptions from".into()));
            }
            if train.iter().all(|&r| ds.rows[r].interrupted) || !train.iter().any(|&r| ds.rows[r].interrupted) {
                return Err(fail("every spot row has the same interruption outcome: nothing to learn".into()));
            }
            let scaler = fit_scaler(ds, &train);
            let cols = informative(ds, &train);
            let x = scaled(ds, &train, &scaler, &cols);
            let y: Array1<bool> = train.iter().map(|&r| ds.rows[r].interrupted).collect();
            let fitted = linfa_logistic::LogisticRegression::default()
                .alpha(p.alpha)
                .max_iterations(p.max_iterations)
                .fit(&linfa::Dataset::new(x, y))
                .map_err(|e| fail(e.to_string()))?;
            // linfa-logistic's probabilities are those of its more frequent class; when that is
            // `not interrupted`, P(interrupted) = 1 − σ(z) = σ(−z): export the negated function.
            let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
            let mut coef = vec![0.0; N_FEATURES];
            for (k, &j) in cols.iter().enumerate() {
                coef[j] = sign * fitted.params()[k];
            }
            let xt = scaled(ds, &test, &scaler, &cols);
            let lib: Vec<f64> =
                fitted.predict_probabilities(&xt).iter().map(|p| if sign > 0.0 { *p } else { 1.0 - p }).collect();
            training.insert("library".into(), "linfa-logistic 0.8.1".into());
            training.insert("params".into(), format!("alpha={} max_iterations={}", p.alpha, p.max_iterations));
            let model = Model::Logistic(Linear { scaler, coef, intercept: sign * fitted.intercept() });
            let mut artifact = ModelArtifact::new(Target::InterruptionProbability, model);
            let metrics = classification_metrics(ds, &artifact, &test);
            add_metrics(&mut training, &metrics);
            artifact.training = training;
            Ok(Trained { artifact, metrics, library: LibraryOutput::Values(lib), test_rows: test })
        }
    }
}

fn add_metrics(training: &mut BTreeMap<String, String>, m: &BTreeMap<String, f64>) {
    for (k, v) in m {
        training.insert(format!("test_{k}"), format!("{v}"));
    }
}

/// `k − 1` cut points at the quantiles of `y`.
fn quantile_edges(y: &[f64], k: usize) -> Vec<f64> {
    let mut s: Vec<f64> = y.to_vec();
    s.sort_by(f64::total_cmp);
    let mut e: Vec<f64> = (1..k).map(|i| s[(i * s.len() / k).min(s.len() - 1)]).collect();
    e.dedup();
    e
}

fn class_means(y: &[f64], labels: &Array1<usize>, k: usize) -> Vec<f64> {
    let mut sum = vec![0.0; k + 1];
    let mut n = vec![0usize; k + 1];
    for (v, &l) in y.iter().zip(labels) {
        sum[l] += v;
        n[l] += 1;
    }
    sum.iter().zip(&n).map(|(s, &c)| if c > 0 { s / c as f64 } else { 0.0 }).collect()
}

/// Exports a linfa tree; `features` maps the tree's column indices to the dataset's.
fn export_tree(root: &TreeNode<f64, usize>, features: &[usize]) -> Tree {
    fn push(n: &TreeNode<f64, usize>, features: &[usize], out: &mut Vec<Node>) -> u32 {
        let i = out.len();
        out.push(Node::Leaf { value: 0.0, class: n.prediction().map(|c| c as u64) });
        if !n.is_leaf() {
            let ch = n.children();
            if let (Some(l), Some(r)) = (ch[0].as_deref(), ch[1].as_deref()) {
                let (feature, threshold, _) = n.split();
                let left = push(l, features, out);
                let right = push(r, features, out);
                out[i] = Node::Split { feature: features[feature] as u32, threshold, left, right };
            }
        }
        i as u32
    }
    let mut nodes = Vec::new();
    push(root, features, &mut nodes);
    Tree { nodes }
}

/// Sets every leaf's value to the mean target of the training rows that reach it, or to its class
/// mean when none does.
fn fill_leaves(mut t: Tree, ds: &Dataset, train: &[usize], class_mean: &[f64]) -> Tree {
    let mut sum = vec![0.0; t.nodes.len()];
    let mut n = vec![0usize; t.nodes.len()];
    for &r in train {
        let l = t.leaf(&ds.rows[r].features);
        sum[l] += ds.rows[r].cost_per_h;
        n[l] += 1;
    }
    for (i, node) in t.nodes.iter_mut().enumerate() {
        if let Node::Leaf { value, class } = node {
            *value = if n[i] > 0 {
                sum[i] / n[i] as f64
            } else {
                class.and_then(|c| class_mean.get(c as usize).copied()).unwrap_or(0.0)
            };
        }
    }
    t
}

/// Regression metrics of a cost model on `test` rows: MAE and R² of `cost_per_h`, and, per
/// decision as the policy scores it, how often it picks the hindsight-best candidate and its mean
/// regret ($ per decision, penalties included).
pub fn regression_metrics(ds: &Dataset, art: &ModelArtifact, test: &[usize]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let n = test.len().max(1) as f64;
    let pred: Vec<f64> = test.iter().map(|&r| art.predict(&ds.rows[r].features)).collect();
    let y: Vec<f64> = test.iter().map(|&r| ds.rows[r].cost_per_h).collect();
    let mean = y.iter().sum::<f64>() / n;
    let sse: f64 = pred.iter().zip(&y).map(|(p, t)| (p - t) * (p - t)).sum();
    let sst: f64 = y.iter().map(|t| (t - mean) * (t - mean)).sum();
    m.insert("mae".into(), pred.iter().zip(&y).map(|(p, t)| (p - t).abs()).sum::<f64>() / n);
    m.insert("r2".into(), if sst > 0.0 { 1.0 - sse / sst } else { 0.0 });
    m.extend(decision_metrics(ds, art, test));
    m
}

/// Per-decision metrics: top-1 agreement with the hindsight oracle, regret in $ per decision.
pub fn decision_metrics(ds: &Dataset, art: &ModelArtifact, rows: &[usize]) -> BTreeMap<String, f64> {
    let cfg = engine::LearnedConfig::new(art.clone());
    let mut groups: BTreeMap<(&str, u64, &str, u64), Vec<&Row>> = BTreeMap::new();
    for &r in rows {
        let x = &ds.rows[r];
        groups.entry((x.scenario.as_str(), x.seed, x.policy.as_str(), x.decision)).or_default().push(x);
    }
    let (mut hits, mut regret, mut n) = (0usize, 0.0, 0usize);
    for g in groups.values() {
        let scores: Vec<f64> = g.iter().map(|r| engine::policy::learned::score(art, &cfg, &r.features)).collect();
        let Some(i) = engine::policy::learned::choose(scores.iter().zip(g.iter()).map(|(s, r)| (*s, &r.features)))
        else {
            continue;
        };
        let best = g.iter().map(|r| r.penalized_cost_usd).fold(f64::INFINITY, f64::min);
        hits += usize::from(g[i].best);
        regret += g[i].penalized_cost_usd - best;
        n += 1;
    }
    let mut m = BTreeMap::new();
    m.insert("decisions".into(), n as f64);
    m.insert("top1".into(), hits as f64 / n.max(1) as f64);
    m.insert("regret_usd_per_decision".into(), regret / n.max(1) as f64);
    m
}

/// Classification metrics of an interruption model on spot rows: accuracy at 0.5, AUC, log loss
/// and the base rate.
pub fn classification_metrics(ds: &Dataset, art: &ModelArtifact, test: &[usize]) -> BTreeMap<String, f64> {
    let p: Vec<f64> = test.iter().map(|&r| art.predict(&ds.rows[r].features)).collect();
    let y: Vec<bool> = test.iter().map(|&r| ds.rows[r].interrupted).collect();
    let n = y.len().max(1) as f64;
    let mut m = BTreeMap::new();
    m.insert("rows".into(), y.len() as f64);
    m.insert("base_rate".into(), y.iter().filter(|b| **b).count() as f64 / n);
    m.insert("accuracy".into(), p.iter().zip(&y).filter(|(p, y)| (**p >= 0.5) == **y).count() as f64 / n);
    m.insert(
        "log_loss".into(),
        -p.iter().zip(&y).map(|(p, y)| if *y { p.max(1e-15).ln() } else { (1.0 - p).max(1e-15).ln() }).sum::<f64>() / n,
    );
    m.insert("auc".into(), auc(&p, &y));
    m
}

/// Area under the ROC curve (ties count half).
pub fn auc(p: &[f64], y: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let (pos, neg) = (y.iter().filter(|b| **b).count() as f64, y.iter().filter(|b| !**b).count() as f64);
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    // Mann-Whitney U with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && p[idx[j + 1]] == p[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            if y[idx[k]] {
                rank_sum += avg;
            }
        }
        i = j + 1;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}
