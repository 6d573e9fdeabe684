//! Gradient boosting with perpetual (a maintained, pure-Rust GBM), exported as the engine's
//! [`Model::Boosted`]: the base score plus the sum of the trees' leaf weights.
//!
//! perpetual's `PerpetualBooster` fits `cost_per_h` with the squared loss; its one
//! hyper-parameter is the `budget` (more budget, more and deeper trees). Its trees send
//! `x < split_value` left and the rest right, as the engine's trees do; a missing value (NaN) would
//! take a learned "missing" branch, which the export does not keep: the engine's features are
//! never NaN. Leaf weights are `f32` in perpetual and widen exactly to `f64`, and the engine adds
//! the trees in perpetual's order from the same base score, so the engine's prediction equals
//! perpetual's bit for bit (a test checks it on held-out rows).

use std::collections::{BTreeMap, HashMap};

use engine::ModelArtifact;
use engine::policy::learned::{Model, N_FEATURES, Node, Target, Tree};
use perpetual::objective::Objective;
use perpetual::{Matrix, PerpetualBooster};

use crate::classic::regression_metrics;
use crate::dataset::Dataset;
use crate::{Error, Result};

/// Hyper-parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoostedConfig {
    /// perpetual's budget (0.3 simple … 2 complex).
    pub budget: f32,
    /// Seed of its sampling.
    pub seed: u64,
    /// Most boosting rounds (perpetual stops earlier on its own).
    pub iteration_limit: Option<usize>,
}

impl Default for BoostedConfig {
    fn default() -> Self {
        BoostedConfig { budget: 0.5, seed: 7, iteration_limit: None }
    }
}

/// A trained booster.
pub struct TrainedBoosted {
    /// The export.
    pub artifact: ModelArtifact,
    /// Test metrics.
    pub metrics: BTreeMap<String, f64>,
    /// perpetual's own predictions on `test_rows`.
    pub library: Vec<f64>,
    /// The rows of `library`.
    pub test_rows: Vec<usize>,
}

/// Column-major features of some rows (perpetual's `Matrix` layout).
fn columns(ds: &Dataset, idx: &[usize]) -> Vec<f64> {
    let mut v = Vec::with_capacity(idx.len() * N_FEATURES);
    for j in 0..N_FEATURES {
        v.extend(idx.iter().map(|&r| ds.rows[r].features[j]));
    }
    v
}

/// Exports one perpetual tree: its node map (by perpetual's node number) to a node list in
/// depth-first order, so children come after their parent.
fn export_tree(t: &perpetual::tree::core::Tree) -> std::result::Result<Tree, String> {
    fn push(
        nodes: &HashMap<usize, perpetual::node::Node>,
        num: usize,
        out: &mut Vec<Node>,
    ) -> std::result::Result<u32, String> {
        let n = nodes.get(&num).ok_or_else(|| format!("node {num} is missing from the tree"))?;
        let i = out.len();
        out.push(Node::Leaf { value: f64::from(n.weight_value), class: None });
        if !n.is_leaf {
            if n.left_cats.is_some() {
                return Err(format!("node {num} splits on categories, which the engine's trees do not have"));
            }
            let left = push(nodes, n.left_child, out)?;
            let right = push(nodes, n.right_child, out)?;
            out[i] = Node::Split { feature: n.split_feature as u32, threshold: n.split_value, left, right };
        }
        Ok(i as u32)
    }
    let mut out = Vec::new();
    push(&t.nodes, 0, &mut out)?;
    Ok(Tree { nodes: out })
}

/// Trains on `train` rows, measures on `test` rows.
pub fn train(ds: &Dataset, cfg: &BoostedConfig, train: &[usize], test: &[usize]) -> Result<TrainedBoosted> {
    let fail = |m: String| Error::Training { model: "boosted".into(), message: m };
    if !(cfg.budget.is_finite() && cfg.budget > 0.0) {
        return Err(Error::Input("--budget must be a number > 0".into()));
    }
    if train.is_empty() {
        return Err(fail("no training rows".into()));
    }
    let x = columns(ds, train);
    let y: Vec<f64> = train.iter().map(|&r| ds.rows[r].cost_per_h).collect();
    let mut booster = PerpetualBooster::default()
        .set_objective(Objective::SquaredLoss)
        .set_budget(cfg.budget)
        .set_seed(cfg.seed)
        .set_iteration_limit(cfg.iteration_limit);
    booster.fit(&Matrix::new(&x, train.len(), N_FEATURES), &y, None, None).map_err(|e| fail(e.to_string()))?;
    let trees = booster
        .get_prediction_trees()
        .iter()
        .map(export_tree)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(fail)?;
    let n_trees = trees.len();
    let mut artifact =
        ModelArtifact::new(Target::CostPerHour, Model::Boosted { base_score: booster.base_score, trees });
    let library = if test.is_empty() {
        Vec::new()
    } else {
        let xt = columns(ds, test);
        booster.predict(&Matrix::new(&xt, test.len(), N_FEATURES), false)
    };
    let metrics = regression_metrics(ds, &artifact, test);
    let mut training = BTreeMap::new();
    training.insert("library".into(), "perpetual 3.0.0-rc.2 (PerpetualBooster, squared loss)".into());
    training.insert("config".into(), serde_json::to_string(cfg).unwrap_or_default());
    training.insert("data_hash".into(), ds.hash());
    training.insert("train_rows".into(), train.len().to_string());
    training.insert("trees".into(), n_trees.to_string());
    for (k, v) in &metrics {
        training.insert(format!("test_{k}"), format!("{v}"));
    }
    artifact.training = training;
    Ok(TrainedBoosted { artifact, metrics, library, test_rows: test.to_vec() })
}
