//! The learned policy: model evaluation by hand, artifact checks, decisions on the fixture world.

use engine::policy::learned::{
    Activation, FEATURE_SCHEMA_VERSION, FEATURES, Layer, Linear, Mlp, Model, N_FEATURES, Node, Scaler, ScheduledModel,
    Target, Tree, candidate_features,
};
use engine::{EngineConfig, LearnedConfig, Market, ModelArtifact, ModelSource, PolicyConfig, SimTime, Snapshot};

use crate::fixture::*;

const PRICE: usize = 0; // price_per_h
const MARGINAL: usize = 1; // marginal_per_h
const SPOT: usize = 3; // is_spot
const CARBON: usize = 12; // carbon_g_per_h
const REGION_INTERRUPTIONS: usize = 24; // region_interruptions_per_h

fn linear(coefs: &[(usize, f64)], intercept: f64) -> Linear {
    let mut coef = vec![0.0; N_FEATURES];
    for &(j, c) in coefs {
        coef[j] = c;
    }
    Linear { scaler: Scaler::identity(N_FEATURES), coef, intercept }
}

fn x_with(values: &[(usize, f64)]) -> [f64; N_FEATURES] {
    let mut x = [0.0; N_FEATURES];
    for &(j, v) in values {
        x[j] = v;
    }
    x
}

fn learned_engine(model: Model, target: Target) -> Run {
    let cfg = LearnedConfig::new(ModelArtifact::new(target, model));
    Run::new(EngineConfig { policy: PolicyConfig::Learned(cfg), ..EngineConfig::default() })
}

#[test]
fn tree_goes_left_below_the_threshold_as_linfa_predicts() {
    // Root splits on price: < 0.05 → leaf 1 (value 1.0), else → node 2 splitting on is_spot.
    let tree = Tree {
        nodes: vec![
            Node::Split { feature: PRICE as u32, threshold: 0.05, left: 1, right: 2 },
            Node::Leaf { value: 1.0, class: Some(3) },
            Node::Split { feature: SPOT as u32, threshold: 0.5, left: 3, right: 4 },
            Node::Leaf { value: 2.0, class: None },
            Node::Leaf { value: 4.0, class: None },
        ],
    };
    assert_eq!(tree.value(&x_with(&[(PRICE, 0.049)])), 1.0);
    assert_eq!(tree.class(&x_with(&[(PRICE, 0.049)])), Some(3));
    // Exactly at the threshold goes right (linfa: `x < split` goes left).
    assert_eq!(tree.value(&x_with(&[(PRICE, 0.05)])), 2.0);
    assert_eq!(tree.value(&x_with(&[(PRICE, 0.2), (SPOT, 1.0)])), 4.0);
    // A forest averages: (1 + 4) / 2.
    let forest =
        Model::Forest { trees: vec![tree.clone(), Tree { nodes: vec![Node::Leaf { value: 4.0, class: None }] }] };
    assert_eq!(forest.predict(&x_with(&[(PRICE, 0.01)])), 2.5);
    // Boosted trees add up from the base score: 0.25 + 1 + 4 at price 0.01.
    let boosted = Model::Boosted {
        base_score: 0.25,
        trees: vec![tree.clone(), Tree { nodes: vec![Node::Leaf { value: 4.0, class: None }] }],
    };
    assert_eq!(boosted.predict(&x_with(&[(PRICE, 0.01)])), 5.25);
    let a = ModelArtifact::new(Target::CostPerHour, boosted);
    assert_eq!(a.check(), Ok(()));
    let mut bad = a.clone();
    bad.model = Model::Boosted { base_score: f64::INFINITY, trees: vec![] };
    assert!(bad.check().expect_err("refused").contains("base_score"));
}

#[test]
fn linear_logistic_and_mlp_evaluate_by_hand() {
    // Linear with scaling: 0.5 + 2 × (x0 − 1) / 4 at x0 = 3 → 1.5.
    let mut l = linear(&[(0, 2.0)], 0.5);
    l.scaler.mean[0] = 1.0;
    l.scaler.scale[0] = 4.0;
    let x = x_with(&[(0, 3.0)]);
    assert_eq!(Model::Linear(l.clone()).predict(&x), 1.5);
    // Logistic: sigmoid(1.5).
    assert_eq!(Model::Logistic(l).predict(&x), 1.0 / (1.0 + (-1.5f64).exp()));
    // MLP: 2 hidden relu units on x0, x1; output = 1·h0 − 1·h1 + 0.25, then × 2 + 1.
    // x = (1, 3): h0 = relu(1 − 3) = 0, h1 = relu(1 + 3 − 1) = 3 → −3 + 0.25 = −2.75 → −4.5.
    let mut w0 = vec![vec![0.0; N_FEATURES]; 2];
    w0[0][0] = 1.0;
    w0[0][1] = -1.0;
    w0[1][0] = 1.0;
    w0[1][1] = 1.0;
    let mlp = Mlp {
        scaler: Scaler::identity(N_FEATURES),
        layers: vec![
            Layer { weights: w0, bias: vec![0.0, -1.0], activation: Activation::Relu },
            Layer { weights: vec![vec![1.0, -1.0]], bias: vec![0.25], activation: Activation::Identity },
        ],
        output_scale: 2.0,
        output_offset: 1.0,
    };
    assert_eq!(Model::Mlp(mlp).predict(&x_with(&[(0, 1.0), (1, 3.0)])), -4.5);
}

#[test]
fn artifacts_that_do_not_fit_the_engine_are_refused_with_the_reason() {
    let ok = ModelArtifact::new(Target::CostPerHour, Model::Linear(linear(&[], 0.0)));
    assert_eq!(ok.check(), Ok(()));
    let mut a = ok.clone();
    a.feature_schema_version = 99;
    assert!(a.check().expect_err("refused").contains("feature schema version 99"));
    // An artifact of schema 1 (24 features, before region_interruptions_per_h) names both versions.
    let mut a = ok.clone();
    a.feature_schema_version = 1;
    a.features.pop();
    assert_eq!(FEATURE_SCHEMA_VERSION, 2);
    let e = a.check().expect_err("refused");
    assert!(e.contains("feature schema version 1 does not match the engine's 2"), "{e}");
    let mut a = ok.clone();
    a.features[3] = "is_preemptible".into();
    let e = a.check().expect_err("refused");
    assert!(e.contains("feature 3") && e.contains("is_preemptible") && e.contains("is_spot"), "{e}");
    let mut a = ok.clone();
    a.format_version = 2;
    assert!(a.check().expect_err("refused").contains("format_version 2"));
    let mut a = ok.clone();
    a.model = Model::Linear(Linear { coef: vec![0.0; 3], ..linear(&[], 0.0) });
    assert!(a.check().expect_err("refused").contains("3 coefficients for 25 features"));
    // A tree whose child points backwards could loop: refused.
    a.model = Model::Tree(Tree {
        nodes: vec![
            Node::Split { feature: 0, threshold: 1.0, left: 0, right: 1 },
            Node::Leaf { value: 0.0, class: None },
        ],
    });
    assert!(a.check().expect_err("refused").contains("children must come after their parent"));
    a.model = Model::Linear(linear(&[(0, f64::NAN)], 0.0));
    assert!(a.check().expect_err("refused").contains("coef[0] is not a finite number"));
    assert_eq!(FEATURES.len(), N_FEATURES);
}

#[test]
fn config_names_a_path_until_the_caller_loads_it() {
    let cfg: PolicyConfig = toml::from_str("kind = \"learned\"\nmodel = \"models/x.json\"").expect("parses");
    let PolicyConfig::Learned(c) = &cfg else { panic!("not learned: {cfg:?}") };
    assert_eq!(c.model, ModelSource::Path("models/x.json".into()));
    assert_eq!(cfg.name(), "learned");
    let e = cfg.validate().expect_err("refused");
    assert!(e.contains("models/x.json") && e.contains("not loaded"), "{e}");
    // The engine refuses to start with it.
    let r = engine::Engine::new(catalog(), Default::default(), EngineConfig { policy: cfg, ..EngineConfig::default() });
    assert!(r.is_err());
}

#[test]
fn a_price_model_places_like_the_cheapest_candidate() {
    // Score = marginal $/h: on-demand only, the cheapest cloud offer is aws (0.096, O0 before O1).
    let mut run = learned_engine(Model::Linear(linear(&[(MARGINAL, 1.0)], 0.0)), Target::CostPerHour);
    let (_, offer, market, _) = provisioned(&run.request(secs(0), small_cloud(1)));
    assert_eq!((offer, market), (AWS_A_SMALL, Market::OnDemand));
    // With spot allowed, gcp-a spot at 0.025 is cheapest.
    let (_, offer, market, _) = provisioned(&run.request(secs(1), small_spot(2)));
    assert_eq!((offer, market), (GCP_A_SMALL, Market::Spot));
}

#[test]
fn a_carbon_model_places_in_gcp_and_ties_go_to_the_cheaper() {
    // Score = carbon: gcp (50 g/kWh) wins; its two small offers tie on carbon, so the cheaper
    // (gcp-a on demand 0.104 before gcp-b 0.106) wins.
    let mut run = learned_engine(Model::Linear(linear(&[(CARBON, 1.0)], 0.0)), Target::CostPerHour);
    let (_, offer, _, _) = provisioned(&run.request(secs(0), small_cloud(1)));
    assert_eq!(offer, GCP_A_SMALL);
}

#[test]
fn an_interruption_model_prices_spot_risk_over_the_expected_life() {
    // P(interrupt) = 0.9 for every candidate; $0.5 per interruption over 1 h (the default life)
    // adds 0.45 $/h to spot, so on demand at aws 0.096 beats gcp-a spot at 0.025 + 0.45.
    let always = Tree { nodes: vec![Node::Leaf { value: 0.9, class: None }] };
    let mut run = learned_engine(Model::Tree(always.clone()), Target::InterruptionProbability);
    let (_, offer, market, _) = provisioned(&run.request(secs(0), small_spot(1)));
    assert_eq!((offer, market), (AWS_A_SMALL, Market::OnDemand));
    // With a 10 h lifetime hint the risk is 0.045 $/h: gcp-a spot at 0.025 + 0.045 = 0.070 beats
    // aws on demand at 0.096.
    let mut req = small_spot(2);
    req.lifetime_hint = Some(engine::SimDuration::from_secs(36_000));
    let (_, offer, market, _) = provisioned(&run.request(secs(1), req));
    assert_eq!((offer, market), (GCP_A_SMALL, Market::Spot));
}

#[test]
fn features_are_the_candidates_own() {
    let snap = Snapshot::new(catalog(), Default::default());
    let rows = candidate_features(&small_spot(1), &snap, SimTime::ZERO).expect("candidates");
    // Spot rows carry the discount 1 − spot / on-demand: gcp-a 1 − 0.025 / 0.104.
    let (c, f) = rows.iter().find(|(c, _)| c.offer == GCP_A_SMALL && c.market == Market::Spot).expect("gcp-a spot");
    assert_eq!(c.price_per_h, 0.025);
    assert_eq!(f[SPOT], 1.0);
    assert_eq!(f[4], 1.0 - 0.025 / 0.104);
    // price_vs_cheapest: the cheapest candidate has 1.
    assert_eq!(f[6], 1.0);
    // The count of candidates: every cloud offer fits; 8 on demand + 7 spot (O3 has none) = 15.
    assert_eq!(rows.len(), 15);
    assert!(rows.iter().all(|(_, f)| f[23] == 15.0));
    // No interruption yet: no region has an interruption history.
    assert!(rows.iter().all(|(_, f)| f[REGION_INTERRUPTIONS] == 0.0));
}

#[test]
fn region_interruption_history_covers_every_offer_of_the_region_and_decays() {
    // Half-life 30 min (the snapshot's default is set here): one interruption on AWS offer 0
    // adds ln 2 / 0.5 h = 1.386 interruptions/h to it; after one half-life, half of that.
    let mut snap = Snapshot::new(catalog(), Default::default());
    snap.interruption_half_life = engine::SimDuration::from_secs(1800);
    snap.record_interruption(AWS_A_SMALL, SimTime::ZERO, SimTime::ZERO);
    snap.record_interruption(AWS_A_LARGE, SimTime::ZERO, SimTime::ZERO);
    let at = SimTime(1_800_000);
    let rows = candidate_features(&small_spot(1), &snap, at).expect("candidates");
    let rate = std::f64::consts::LN_2 / 0.5 * 0.5;
    for (c, f) in &rows {
        // Two offers of aws-us-east-1 were interrupted: every aws candidate (offers 0 and 1, spot
        // and on demand) carries both; the other regions none.
        let expected = if c.region == AWS { 2.0 * rate } else { 0.0 };
        assert!((f[REGION_INTERRUPTIONS] - expected).abs() < 1e-12, "{c:?}: {}", f[REGION_INTERRUPTIONS]);
    }
    // The offer's own observed rate stays per offer (offer 1 had none).
    let (_, f1) = rows.iter().find(|(c, _)| c.offer == AWS_B_SMALL && c.market == Market::Spot).expect("aws-b spot");
    assert_eq!(f1[7], 0.0);
}

#[test]
fn a_model_schedule_switches_models_at_their_start_times() {
    // Until 1 h a price model (aws on demand cheapest for on-demand requests); from 1 h a carbon
    // model (gcp).
    let price = ModelArtifact::new(Target::CostPerHour, Model::Linear(linear(&[(MARGINAL, 1.0)], 0.0)));
    let carbon = ModelArtifact::new(Target::CostPerHour, Model::Linear(linear(&[(CARBON, 1.0)], 0.0)));
    let schedule = ModelSource::Schedule(vec![
        ScheduledModel { from: SimTime::ZERO, model: std::sync::Arc::new(price) },
        ScheduledModel { from: SimTime(3_600_000), model: std::sync::Arc::new(carbon.clone()) },
    ]);
    let cfg = LearnedConfig { model: schedule.clone(), ..LearnedConfig::new(carbon.clone()) };
    assert_eq!(PolicyConfig::Learned(cfg.clone()).validate(), Ok(()));
    let mut run = Run::new(EngineConfig { policy: PolicyConfig::Learned(cfg.clone()), ..EngineConfig::default() });
    let (_, offer, _, _) = provisioned(&run.request(secs(3599), small_cloud(1)));
    assert_eq!(offer, AWS_A_SMALL);
    let (_, offer, _, _) = provisioned(&run.request(secs(3600), small_cloud(2)));
    assert_eq!(offer, GCP_A_SMALL);
    // Round trip through JSON (the operator's decision log and the simulator's replay carry it).
    let json = serde_json::to_string(&cfg).expect("json");
    assert_eq!(serde_json::from_str::<LearnedConfig>(&json).expect("parses"), cfg);
    // A schedule that does not start at 0 or is out of order is refused.
    let ModelSource::Schedule(mut entries) = schedule else { unreachable!() };
    entries.swap(0, 1);
    let bad = LearnedConfig { model: ModelSource::Schedule(entries.clone()), ..cfg.clone() };
    assert!(PolicyConfig::Learned(bad).validate().expect_err("refused").contains("from time 0"));
    entries[0].from = SimTime::ZERO;
    entries[1].from = SimTime::ZERO;
    let bad = LearnedConfig { model: ModelSource::Schedule(entries), ..cfg };
    assert!(
        PolicyConfig::Learned(bad).validate().expect_err("refused").contains("entry 1 does not start after entry 0")
    );
}
