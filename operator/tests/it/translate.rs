//! MultiCloudVM spec → the engine's DeploymentSpec: exact results for valid specs, every problem
//! named for bad ones, never a panic.

use engine::deploy::{ActiveActiveConfig, ActivePassiveConfig, SpotRecovery, Strategy, Trigger, TriggerKind};
use engine::{GroupId, RegionId, Resources, SimDuration, VmId, VmRequest};
use operator::crd::NumOrStr;
use operator::crd::multicloudvm::{MultiCloudVMSpec, Trigger as RawTrigger};
use operator::crd::vmtemplate::VMTemplateSpec;
use operator::translate::{Problem, deployment_spec, region_names};
use proptest::prelude::*;

use crate::common::seed_spec;

fn names() -> std::collections::BTreeMap<String, RegionId> {
    region_names(&[
        ("aws-us-east-1", &["aws-us-east"]),
        ("azure-eastus", &[]),
        ("gcp-us-central1", &["gcp-us-central"]),
    ])
}

fn translate(spec: &MultiCloudVMSpec) -> Result<engine::DeploymentSpec, Vec<Problem>> {
    deployment_spec(GroupId(0), "web", spec, None, &names(), 3)
}

fn spec_from(yaml: &str) -> MultiCloudVMSpec {
    serde_yaml_ng::from_str(yaml).expect("a spec")
}

fn fields(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.field.as_str()).collect()
}

#[test]
fn the_seed_manifest_becomes_this_deployment() {
    let d = translate(&seed_spec()).expect("valid");
    let mut template = VmRequest::new(VmId(0), Resources { vcpu: 2, memory_mib: 4096, gpu: 0 });
    template.spot_allowed = true;
    let want = engine::DeploymentSpec {
        id: GroupId(0),
        name: "web".into(),
        replicas: 1,
        template,
        strategy: Strategy::ActivePassive(ActivePassiveConfig {
            primary: RegionId(0),
            secondary: vec![RegionId(1), RegionId(2)],
            failback: false,
            hold_down: SimDuration::from_secs(900),
        }),
        // "95%" over the default 5-minute window.
        triggers: vec![Trigger {
            kind: TriggerKind::Availability { threshold: 0.95 },
            duration: SimDuration::from_secs(300),
        }],
        cooldown: SimDuration::from_secs(600),
        evaluate_every: SimDuration::from_secs(30),
        max_cost_per_h: Some(1.0),
        spot: SpotRecovery::default(),
        migration: None,
        disaster_recovery: None,
        rollout: None,
    };
    assert_eq!(d, want);
}

#[test]
fn performance_thresholds_read_as_cpu_or_latency() {
    let mut s = seed_spec();
    s.deployment_strategy.failover_triggers = vec![
        RawTrigger {
            kind: "performance".into(),
            threshold: Some(NumOrStr::Str("cpu:80%".into())),
            duration: Some("2m".into()),
        },
        RawTrigger {
            kind: "performance".into(),
            threshold: Some(NumOrStr::Str("latency:200ms".into())),
            duration: None,
        },
        RawTrigger {
            kind: "spot-interruption".into(),
            threshold: Some(NumOrStr::Num(3.0)),
            duration: Some("1h".into()),
        },
    ];
    let d = translate(&s).expect("valid");
    assert_eq!(
        d.triggers,
        [
            Trigger { kind: TriggerKind::Cpu { threshold: 0.8 }, duration: SimDuration::from_secs(120) },
            Trigger { kind: TriggerKind::Latency { threshold_ms: 200.0 }, duration: SimDuration::from_secs(300) },
            Trigger { kind: TriggerKind::SpotInterruption { count: 3 }, duration: SimDuration::from_secs(3600) },
        ]
    );
}

#[test]
fn active_active_takes_primary_and_secondaries_when_no_weights_are_given() {
    let d = translate(&spec_from(
        "deploymentStrategy: { type: active-active, primary: aws-us-east, secondary: [gcp-us-central] }\nreplicas: 4",
    ))
    .expect("valid");
    assert_eq!(
        d.strategy,
        Strategy::ActiveActive(ActiveActiveConfig {
            locations: vec![(RegionId(0), 1.0), (RegionId(2), 1.0)],
            restore_after: SimDuration::from_secs(600),
        })
    );
}

#[test]
fn cost_optimized_lists_secondaries_before_the_primary_as_the_simulator_does() {
    let d = translate(&spec_from(
        "deploymentStrategy: { type: cost-optimized, primary: aws-us-east, secondary: [gcp-us-central, azure-eastus] }",
    ))
    .expect("valid");
    let Strategy::CostOptimized(c) = d.strategy else { panic!("cost-optimized") };
    assert_eq!(c.locations, [RegionId(2), RegionId(1), RegionId(0)]);
}

#[test]
fn a_vm_template_sizes_the_replica() {
    let t: VMTemplateSpec = serde_yaml_ng::from_str(
        "config: { resources: { cpu: { request: 1500m }, memory: { limit: 6Gi }, gpu: { request: 1 } } }",
    )
    .expect("template");
    let d = deployment_spec(GroupId(0), "web", &seed_spec(), Some(&t), &names(), 3).expect("valid");
    // 1.5 cores round up to 2 vCPUs; 6 GiB = 6144 MiB.
    assert_eq!(d.template.resources, Resources { vcpu: 2, memory_mib: 6144, gpu: 1 });
    let mut both = seed_spec();
    both.vcpu = Some(4);
    let e = deployment_spec(GroupId(0), "web", &both, Some(&t), &names(), 3).expect_err("both");
    assert_eq!(fields(&e), ["spec.vmTemplate"]);
}

#[test]
fn every_problem_is_reported_at_once_with_its_field() {
    let s = spec_from(
        r#"
deploymentStrategy:
  type: active-passive
  primary: aws-us-east
  secondary: [azure-west, gcp-us-central]
  holdDown: soon
  failoverTriggers:
  - { type: availability, threshold: "195%" }
  - { type: weather }
costOptimization: { maxCostPerHour: cheap }
cooldown: 10 minutes
migrationPolicy:
  type: live
  triggers: [{ type: cost, threshold: "25%" }]
disasterRecovery:
  rto: 30m
  backupStrategy: { schedule: "*/15 * * *", target: mars }
"#,
    );
    let e = translate(&s).expect_err("invalid");
    assert_eq!(
        fields(&e),
        [
            "spec.deploymentStrategy.secondary[0]",
            "spec.deploymentStrategy.holdDown",
            "spec.deploymentStrategy.failoverTriggers[0].threshold",
            "spec.deploymentStrategy.failoverTriggers[1].type",
            "spec.migrationPolicy.triggers[0].type",
            "spec.disasterRecovery.rpo",
            "spec.disasterRecovery.backupStrategy.schedule",
            "spec.disasterRecovery.backupStrategy.target",
            "spec.costOptimization.maxCostPerHour",
            "spec.cooldown",
        ],
        "{e:#?}"
    );
    assert_eq!(
        e[0].message,
        "no region named \"azure-west\"; regions are: aws-us-east, aws-us-east-1, azure-eastus, gcp-us-central, gcp-us-central1"
    );
    assert!(e[1].message.starts_with("invalid duration \"soon\": expected a number and a unit"), "{}", e[1].message);
    assert!(e[3].message.starts_with("unknown trigger \"weather\"; triggers are: availability,"), "{}", e[3].message);
    assert_eq!(e[8].message, "must be an amount in $/h such as 1.00 or \"1.00\"");
}

#[test]
fn unknown_strategies_and_missing_locations_are_named() {
    let e = translate(&spec_from("deploymentStrategy: { type: round-robin }")).expect_err("invalid");
    assert_eq!(e[0].field, "spec.deploymentStrategy.type");
    assert_eq!(
        e[0].message,
        "unknown strategy \"round-robin\"; strategies are: active-passive, active-active, burst, cost-optimized"
    );
    let e = translate(&spec_from("deploymentStrategy: { type: burst }")).expect_err("invalid");
    assert_eq!(
        (e[0].field.as_str(), e[0].message.as_str()),
        ("spec.deploymentStrategy.primary", "burst needs a primary location")
    );
    let e = translate(&spec_from("deploymentStrategy: { type: active-passive, primary: aws-us-east }"))
        .expect_err("invalid");
    assert_eq!(e[0].field, "spec.deploymentStrategy.secondary");
}

#[test]
fn a_disabled_disaster_recovery_needs_nothing_else() {
    let mut s = seed_spec();
    s.disaster_recovery = Some(serde_yaml_ng::from_str("enabled: false").expect("dr"));
    assert_eq!(translate(&s).expect("valid").disaster_recovery, None);
}

proptest! {
    /// Whatever strings a manifest holds, the translation answers (a spec or problems), never panics.
    #[test]
    fn never_panics(
        kind in prop::sample::select(vec!["active-passive", "active-active", "burst", "cost-optimized", "x"]),
        primary in prop::option::of(prop::sample::select(vec!["aws-us-east", "azure-eastus", "nowhere", ""])),
        threshold in prop::option::of(".{0,12}"),
        duration in prop::option::of("[0-9a-z.:%]{0,8}"),
        cost in prop::option::of("[0-9$.a-z-]{0,6}"),
        replicas in prop::option::of(0u32..40_000_000),
        weight in prop::option::of(-1.0e9f64..1.0e9),
    ) {
        let mut s = seed_spec();
        s.deployment_strategy.kind = kind.into();
        s.deployment_strategy.primary = primary.map(str::to_owned);
        s.deployment_strategy.failover_triggers[0].threshold = threshold.map(NumOrStr::Str);
        s.deployment_strategy.failover_triggers[0].duration = duration.clone();
        s.cooldown = duration;
        s.replicas = replicas;
        s.memory_gib = weight;
        if let Some(c) = s.cost_optimization.as_mut() {
            c.max_cost_per_hour = cost.map(NumOrStr::Str);
        }
        match translate(&s) {
            Ok(d) => prop_assert!(d.validate(3).is_ok()),
            Err(problems) => prop_assert!(!problems.is_empty() && problems.iter().all(|p| p.field.starts_with("spec"))),
        }
    }
}
