//! The `learn` binary: `train` writes the artifact, the training curve as Parquet and its figure
//! (PNG and SVG) beside it; bad options exit with status 2 naming the problem.

use std::path::Path;
use std::process::Command;

use polars::prelude::*;

use crate::common::data;

fn learn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_learn")).args(args).output().expect("runs the learn binary")
}

fn columns(path: &Path) -> (usize, Vec<String>) {
    let df = ParquetReader::new(std::fs::File::open(path).expect("opens")).finish().expect("reads");
    (df.height(), df.get_column_names().iter().map(|c| c.to_string()).collect())
}

#[test]
fn train_writes_and_plots_the_mlp_loss_and_the_bandit_reward_curves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data_path = d.join("d.parquet");
    data().write(&data_path).expect("writes the dataset");
    let data_arg = data_path.to_str().expect("utf-8 path");
    for (model, curve_columns) in
        [("mlp", vec!["epoch", "train_loss", "val_loss", "seconds"]), ("bandit", vec!["epoch", "mean_reward"])]
    {
        let out = d.join(format!("{model}.json"));
        let o = learn(&[
            "train",
            "--data",
            data_arg,
            "--model",
            model,
            "--hidden",
            "8",
            "--epochs",
            "2",
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert!(o.status.success(), "{model}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(sim::scenario::load_model(&out).is_ok(), "{model}: the artifact loads");
        let (rows, cols) = columns(&d.join(format!("{model}.curve.parquet")));
        assert_eq!(cols, curve_columns);
        assert!((1..=2).contains(&rows), "{model}: {rows} epochs");
        for ext in ["png", "svg"] {
            let fig = d.join(format!("{model}.curve.{ext}"));
            assert!(std::fs::metadata(&fig).is_ok_and(|m| m.len() > 1000), "{}", fig.display());
        }
    }
    // Gradient boosting trains from the command line too.
    let out = d.join("boosted.json");
    let o = learn(&[
        "train",
        "--data",
        data_arg,
        "--model",
        "boosted",
        "--budget",
        "0.3",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sim::scenario::load_model(&out).expect("loads").model.type_name(), "boosted");
}

#[test]
fn a_bad_learning_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = crate::common::scenario_path("drift.toml");
    let o = learn(&[
        "drift",
        scenario.to_str().expect("utf-8"),
        "--learning-config",
        r#"{"onlineLearning": true, "accuracyThreshold": 2}"#,
        "--out",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("learningConfig.accuracyThreshold"), "{e}");
    let o = learn(&[
        "drift",
        scenario.to_str().expect("utf-8"),
        "--learning-config",
        r#"{"retrainEvery": "1h"}"#,
        "--out",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown field `retrainEvery`"));
}

#[test]
fn evaluate_counts_sla_violations_against_the_target_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = crate::common::scenario_path("burst.toml");
    let run = |sla: &str| {
        let json = dir.path().join(format!("runs-{sla}.json"));
        let o = learn(&[
            "evaluate",
            scenario.to_str().expect("utf-8"),
            "--seeds",
            "100..101",
            "--baseline",
            "lowest-price",
            "--sla",
            sla,
            "--json",
            json.to_str().expect("utf-8"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let table = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(table.contains("| SLA violations |"), "{table}");
        let runs: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("parses");
        runs[0]["sla_violations"].as_u64().expect("sla_violations")
    };
    // No VM is served less than 0 % of its time; every VM that lost any time misses 100 %.
    let (none, usual, strict) = (run("0"), run("0.99"), run("1"));
    assert_eq!(none, 0);
    assert!(usual <= strict && strict > 0, "{usual} {strict}");
    let o = learn(&["evaluate", scenario.to_str().expect("utf-8"), "--sla", "1.5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sla 1.5"), "{}", String::from_utf8_lossy(&o.stderr));
}
