//! Engine settings: validation and their TOML/JSON form.

use engine::{CostModel, Engine, EngineConfig, Error, PolicyConfig, SimDuration};

use crate::fixture::*;

fn build(cost: CostModel, cfg: EngineConfig) -> Result<Engine, Error> {
    Engine::new(catalog(), cost, cfg)
}

#[test]
fn settings_out_of_range_are_refused() {
    let invalid = |r: Result<Engine, Error>| matches!(r, Err(Error::InvalidConfig(_)));
    assert!(invalid(build(CostModel::default(), EngineConfig { max_attempts: 0, ..EngineConfig::default() })));
    assert!(invalid(build(
        CostModel::default(),
        EngineConfig { group_budgets: [(1, -1.0)].into(), ..EngineConfig::default() }
    )));
    assert!(invalid(build(
        CostModel::default(),
        EngineConfig { group_budgets: [(1, f64::NAN)].into(), ..EngineConfig::default() }
    )));
    assert!(invalid(build(
        CostModel { max_per_h: Some(f64::INFINITY), ..CostModel::default() },
        EngineConfig::default()
    )));
    let zero_weights = PolicyConfig::Balanced(engine::policy::BalancedConfig {
        weights: engine::policy::Weights { cost: 0.0, performance: 0.0, availability: 0.0, energy: 0.0 },
        ..Default::default()
    });
    let err = build(CostModel::default(), EngineConfig { policy: zero_weights, ..EngineConfig::default() });
    assert!(matches!(&err, Err(Error::InvalidConfig(m)) if m.contains("balanced")), "{err:?}");
    // Every policy's defaults are valid.
    for name in PolicyConfig::NAMES {
        assert!(build(CostModel::default(), config(name)).is_ok(), "{name}");
    }
}

#[test]
fn engine_settings_round_trip_and_reject_unknown_keys() {
    let cfg = EngineConfig {
        policy: PolicyConfig::default_for("price-capacity-optimized").expect("policy"),
        queue_timeout: SimDuration::from_secs(60),
        group_budgets: [(3, 1.5)].into(),
        ..EngineConfig::default()
    };
    let text = toml::to_string(&cfg).expect("serialises to TOML");
    assert_eq!(toml::from_str::<EngineConfig>(&text).expect("reads its own TOML"), cfg, "{text}");
    let json = serde_json::to_string(&cfg).expect("serialises to JSON");
    assert_eq!(serde_json::from_str::<EngineConfig>(&json).expect("reads its own JSON"), cfg);

    // Missing keys take defaults; the policy table is tagged by `kind`.
    let partial: EngineConfig =
        toml::from_str("max_attempts = 3\n[policy]\nkind = \"diversified\"\n").expect("partial settings");
    assert_eq!(
        partial,
        EngineConfig { max_attempts: 3, policy: config("diversified").policy, ..EngineConfig::default() }
    );
    assert!(toml::from_str::<EngineConfig>("max_attempt = 3\n").is_err());
    assert!(toml::from_str::<EngineConfig>("[policy]\nkind = \"diversified\"\nspread = 2\n").is_err());
}
