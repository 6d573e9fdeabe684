//! The engine's evaluation of an exported model equals the training library's own predictions
//! on held-out rows: trees and forests class for class, linear and logistic models and the MLP
//! within 1e-9 (relative), and a reloaded artifact gives the same numbers bit for bit.

use engine::ModelArtifact;
use engine::policy::learned::Model;
use learn::classic::{self, Kind, LibraryOutput, Params};
use learn::mlp::{self, MlpConfig};

use crate::common::data;

fn close(engine: f64, library: f64) {
    assert!((engine - library).abs() <= 1e-9 * library.abs().max(1.0), "engine {engine} vs library {library}");
}

fn reload(a: &ModelArtifact) -> ModelArtifact {
    let text = serde_json::to_string(a).expect("serialises");
    let back: ModelArtifact = serde_json::from_str(&text).expect("parses");
    assert_eq!(back.check(), Ok(()));
    back
}

fn check_values(t: &classic::Trained) {
    let ds = data();
    let LibraryOutput::Values(lib) = &t.library else { panic!("values expected") };
    assert!(!lib.is_empty());
    let back = reload(&t.artifact);
    for (&r, &l) in t.test_rows.iter().zip(lib) {
        let e = t.artifact.predict(&ds.rows[r].features);
        close(e, l);
        assert_eq!(back.predict(&ds.rows[r].features).to_bits(), e.to_bits());
    }
}

fn check_classes(t: &classic::Trained) {
    let ds = data();
    let LibraryOutput::Classes(lib) = &t.library else { panic!("classes expected") };
    let trees = match &t.artifact.model {
        Model::Tree(tree) => vec![tree.clone()],
        Model::Forest { trees } => trees.clone(),
        other => panic!("tree expected, got {}", other.type_name()),
    };
    assert_eq!(trees.len(), lib.len());
    let back = reload(&t.artifact);
    for (tree, classes) in trees.iter().zip(lib) {
        for (&r, &c) in t.test_rows.iter().zip(classes) {
            assert_eq!(tree.class(&ds.rows[r].features), Some(c as u64));
        }
    }
    for &r in &t.test_rows {
        let x = &ds.rows[r].features;
        assert_eq!(back.predict(x).to_bits(), t.artifact.predict(x).to_bits());
    }
}

#[test]
fn tree_classes_match_linfa() {
    let ds = data();
    let (train, test) = ds.split(0.2);
    let t = classic::train(ds, Kind::Tree, &Params::default(), &train, &test).expect("trains");
    check_classes(&t);
    assert!(t.metrics["top1"] > 0.0);
}

#[test]
fn forest_tree_classes_match_linfa() {
    let ds = data();
    let (train, test) = ds.split(0.2);
    let p = Params { trees: 3, max_depth: 8, ..Params::default() };
    let t = classic::train(ds, Kind::Forest, &p, &train, &test).expect("trains");
    check_classes(&t);
}

#[test]
fn linear_matches_linfa() {
    let ds = data();
    let (train, test) = ds.split(0.2);
    let t = classic::train(ds, Kind::Linear, &Params::default(), &train, &test).expect("trains");
    check_values(&t);
}

#[test]
fn logistic_matches_linfa() {
    let ds = data();
    let (train, test) = ds.split(0.2);
    let t = classic::train(ds, Kind::Logistic, &Params::default(), &train, &test).expect("trains");
    check_values(&t);
    assert!(t.test_rows.iter().all(|&r| ds.rows[r].spot));
    // It predicts P(interrupted), not its complement: the mean probability is near the base rate.
    let n = t.test_rows.len() as f64;
    let mean_p: f64 = t.test_rows.iter().map(|&r| t.artifact.predict(&ds.rows[r].features)).sum::<f64>() / n;
    let base = t.test_rows.iter().filter(|&&r| ds.rows[r].interrupted).count() as f64 / n;
    assert!((mean_p - base).abs() < 0.1, "mean P {mean_p}, base rate {base}");
    let auc = t.metrics["auc"];
    assert!(auc.is_nan() || (0.0..=1.0).contains(&auc));
}

#[test]
fn mlp_matches_burn() {
    let ds = data();
    let (train, test) = ds.split(0.2);
    let cfg = MlpConfig { hidden_layers: vec![16, 8], epochs: 3, batch_size: 128, ..MlpConfig::default() };
    let t = mlp::train(ds, &cfg, &train, &test).expect("trains");
    assert!(!t.curve.is_empty() && t.curve.len() <= 3);
    assert!(t.curve.iter().all(|e| e.train_loss.is_finite() && e.val_loss.is_finite()));
    let back = reload(&t.artifact);
    for (&r, &l) in t.test_rows.iter().zip(&t.library) {
        let e = t.artifact.predict(&ds.rows[r].features);
        close(e, l);
        assert_eq!(back.predict(&ds.rows[r].features).to_bits(), e.to_bits());
    }
    let dir = tempfile::tempdir().expect("tempdir");
    mlp::write_curve(&t.curve, &dir.path().join("c.parquet")).expect("writes curve");
}

#[test]
fn bandit_trains_and_exports_a_preference_model() {
    let ds = data();
    let (train, test) = ds.split(0.2);
    let cfg = learn::bandit::BanditConfig { hidden_layers: vec![8], epochs: 2, ..Default::default() };
    let t = learn::bandit::train(ds, &cfg, &train, &test).expect("trains");
    assert_eq!(t.artifact.target, engine::policy::learned::Target::Preference);
    assert_eq!(reload(&t.artifact), t.artifact);
    assert_eq!(t.mean_reward.len(), 2);
    assert!(t.mean_reward.iter().all(|r| r.is_finite() && *r < 0.0));
    assert!(t.metrics["decisions"] > 0.0);
}

#[test]
fn boosted_matches_perpetual_bit_for_bit() {
    let ds = data();
    let (train, test) = ds.split(0.2);
    let cfg = learn::boosted::BoostedConfig { budget: 0.3, ..Default::default() };
    let t = learn::boosted::train(ds, &cfg, &train, &test).expect("trains");
    let Model::Boosted { trees, .. } = &t.artifact.model else { panic!("boosted expected") };
    assert!(!trees.is_empty());
    assert_eq!(t.library.len(), test.len());
    let back = reload(&t.artifact);
    for (&r, &l) in t.test_rows.iter().zip(&t.library) {
        let e = t.artifact.predict(&ds.rows[r].features);
        assert_eq!(e.to_bits(), l.to_bits(), "engine {e} vs perpetual {l}");
        assert_eq!(back.predict(&ds.rows[r].features).to_bits(), e.to_bits());
    }
    assert!(t.metrics["r2"] > 0.0, "{:?}", t.metrics);
}
