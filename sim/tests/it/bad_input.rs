//! One test per class of bad input: the error names the file, the line and the key, says what is
//! allowed, and the CLI exits with status 2 without a panic.

use std::path::Path;
use std::process::Command;

const GOOD: &str = r#"name = "t"
seed = 1
duration = "1h"
[[instance_types]]
name = "small"
vcpu = 2
memory_gib = 4
[[regions]]
name = "r1"
provider = "aws"
location = [0.0, 0.0]
[[offers]]
region = "r1"
instance_type = "small"
on_demand = 0.1
capacity = 10
[workload]
arrival = { process = "poisson", rate_per_s = 0.1 }
lifetime = { dist = "exponential", mean = "10m" }
[[workload.shapes]]
vcpu = 2
memory_gib = 4
"#;

fn error_of(text: &str) -> String {
    match sim::scenario::parse(text, Path::new("bad.toml")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Runs the CLI on `text` and returns (exit code, stderr).
fn cli(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg(&p)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("runs sim");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "sim panicked: {stderr}");
    (out.status.code(), stderr)
}

#[test]
fn the_good_one_is_good() {
    assert!(sim::scenario::parse(GOOD, Path::new("good.toml")).is_ok());
}

#[test]
fn syntax_error() {
    let text = GOOD.replace("seed = 1", "seed = = 1");
    let e = error_of(&text);
    assert!(e.starts_with("bad.toml:2:"), "{e}");
    let (code, stderr) = cli(&text);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("bad.toml:2:"), "{stderr}");
}

#[test]
fn unknown_key() {
    let text = GOOD.replace("capacity = 10", "capacity = 10\ncapacty = 5");
    let e = error_of(&text);
    // Line 17 holds the misspelt key; the message lists what is allowed.
    assert!(e.starts_with("bad.toml:17:"), "{e}");
    assert!(e.contains("unknown field `capacty`") && e.contains("capacity"), "{e}");
    assert_eq!(cli(&text).0, Some(2));
}

#[test]
fn unknown_policy_key() {
    let text = format!("{GOOD}[policy]\nkind = \"cost-optimized\"\ninterruption_cost = 1.0\n");
    let e = error_of(&text);
    assert!(e.contains("interruption_cost"), "{e}");
    assert_eq!(cli(&text).0, Some(2));
}

#[test]
fn wrong_type() {
    let text = GOOD.replace("vcpu = 2\nmemory_gib = 4\n[[regions]]", "vcpu = \"two\"\nmemory_gib = 4\n[[regions]]");
    let e = error_of(&text);
    assert!(e.starts_with("bad.toml:6:"), "{e}");
    assert!(e.contains("vcpu = \"two\""), "the offending line is shown: {e}");
}

#[test]
fn out_of_range_value() {
    let text = GOOD.replace("on_demand = 0.1", "on_demand = -0.1");
    let e = error_of(&text);
    assert_eq!(e, "bad.toml:15: offers[0].on_demand: must be a number between 0 and 100000 (got -0.1)");
    let (code, stderr) = cli(&text);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("offers[0].on_demand"), "{stderr}");
}

#[test]
fn bad_duration() {
    let text = GOOD.replace("duration = \"1h\"", "duration = \"1 hour\"");
    let e = error_of(&text);
    assert!(e.starts_with("bad.toml:3: duration: invalid duration \"1 hour\""), "{e}");
    assert!(e.contains("\"90s\", \"15m\", \"2h\""), "says what is allowed: {e}");
}

#[test]
fn dangling_reference() {
    let text = GOOD.replace("region = \"r1\"", "region = \"r2\"");
    let e = error_of(&text);
    assert_eq!(e, "bad.toml:13: offers[0].region: no region named \"r2\"; regions are: r1");
    assert_eq!(cli(&text).0, Some(2));
}

#[test]
fn dangling_instance_type_and_every_problem_reported() {
    let text = GOOD
        .replace("instance_type = \"small\"", "instance_type = \"huge\"")
        .replace("rate_per_s = 0.1", "rate_per_s = 0");
    let e = error_of(&text);
    let lines: Vec<&str> = e.lines().collect();
    assert!(lines.iter().any(|l| l.contains("offers[0].instance_type: no instance type named \"huge\"")), "{e}");
    assert!(lines.iter().any(|l| l.contains("workload.arrival.rate_per_s")), "{e}");
}

#[test]
fn missing_trace_file() {
    let text = GOOD.replace(
        "arrival = { process = \"poisson\", rate_per_s = 0.1 }",
        "arrival = { process = \"trace\", path = \"nowhere.csv\", format = \"simple\" }",
    );
    let e = error_of(&text);
    assert!(e.starts_with("bad.toml:18: workload.arrival.path:"), "{e}");
    assert!(e.contains("nowhere.csv"), "{e}");
    assert_eq!(cli(&text).0, Some(2));
}

#[test]
fn malformed_trace_row() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("t.csv"), "arrival_s,lifetime_s,vcpu,memory_mib\n0,60,2,1024\n5,60,zero,1024\n")
        .expect("write");
    let text = GOOD.replace(
        "arrival = { process = \"poisson\", rate_per_s = 0.1 }",
        "arrival = { process = \"trace\", path = \"t.csv\", format = \"simple\" }",
    );
    let e = match sim::scenario::parse(&text, &dir.path().join("s.toml")) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("t.csv:3:") && e.contains("vcpu"), "{e}");
}

#[test]
fn missing_scenario_file_and_bad_policy_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_sim")).arg("no-such.toml").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such.toml: cannot read"));
    let good = crate::scenario_path("burst.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_sim")).arg(&good).args(["--policy", "cheapest"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policies are: cost-optimized"));
}

#[test]
fn manifest_of_the_wrong_kind_or_broken_yaml() {
    let dir = tempfile::tempdir().expect("tmp");
    let deployment = "\n[[deployments]]\nname = \"web\"\nreplicas = 2\nvcpu = 2\nmanifest = \"m.yaml\"\n";
    let text = format!("{GOOD}{deployment}");
    let path = dir.path().join("s.toml");
    std::fs::write(
        dir.path().join("m.yaml"),
        "apiVersion: v1\nkind: Pod\nspec:\n  deploymentStrategy:\n    type: active-passive\n",
    )
    .expect("write");
    let e = sim::scenario::parse(&text, &path).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains("deployments[0].manifest") && e.contains("expected apiVersion novacron.io/v1 and kind MultiCloudVM"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("m.yaml"),
        "apiVersion: novacron.io/v1\nkind: MultiCloudVM\nspec:\n  deploymentStrategy: [oops\n",
    )
    .expect("write");
    let e = sim::scenario::parse(&text, &path).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("m.yaml:"), "names the manifest and where: {e}");
}
