//! The command line as a user types it.

use std::process::Command;

#[test]
fn run_prints_a_summary_and_writes_results() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg(crate::scenario_path("burst.toml"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in ["scenario", "burst", "availability", "total cost", "failovers"] {
        assert!(stdout.contains(needle), "summary lacks {needle:?}:\n{stdout}");
    }
    for f in ["summary.json", "vms.parquet", "timeseries.parquet", "spot_prices.parquet"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).expect("read")).expect("json");
    for key in [
        "scenario",
        "seed",
        "policy",
        "total_cost_usd",
        "availability",
        "requests_total",
        "requests_served",
        "requests_rejected",
        "failovers",
        "mean_time_to_recover_s",
        "spot_interruptions",
        "replacements",
        "migrations",
        "migration_downtime_s",
        "migrations_by_kind",
        "restores",
        "events_processed",
    ] {
        assert!(summary.get(key).is_some(), "summary.json lacks {key}");
    }
}

#[test]
fn run_subcommand_with_overrides_and_csv() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["run"])
        .arg(crate::scenario_path("burst.toml"))
        .args(["--seed", "5", "--policy", "balanced", "--csv", "--quiet", "--out"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "--quiet prints nothing");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).expect("read")).expect("json");
    assert_eq!(summary["seed"], 5);
    assert_eq!(summary["policy"], "balanced");
    assert!(dir.path().join("vms.csv").is_file());
}

#[test]
fn check_and_policies() {
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("check")
        .arg(crate::scenario_path("burst.toml"))
        .output()
        .expect("runs");
    assert!(out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_sim")).arg("policies").output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), engine::PolicyConfig::NAMES.len());
}
