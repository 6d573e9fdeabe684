//! The CRDs: the committed YAML equals the generated, the seed manifest and every example parse
//! with the generated types, lose nothing, and use only fields the schema knows (an API server
//! would silently prune the others).

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use operator::crd::{self, MultiCloudVM};
use serde_json::Value;

use crate::common::SEED_YAML;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_crds_equal_the_generated_ones() {
    let dir = repo().join("deploy/crds");
    let mut expected = Vec::new();
    for (file, crd) in crd::all() {
        let want = crd::to_yaml(&crd).expect("serializes");
        let have = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("deploy/crds/{file}: {e}; run `cargo run -p operator --bin crdgen`"));
        assert!(have == want, "deploy/crds/{file} is stale; run `cargo run -p operator --bin crdgen`");
        expected.push(file.to_owned());
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .expect("deploy/crds")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    present.sort();
    expected.sort();
    assert_eq!(present, expected, "deploy/crds holds exactly the generated files");
}

/// The `openAPIV3Schema` of a kind's CRD.
fn schema_of(kind: &str) -> Value {
    let crd = crd::all().into_iter().find(|(_, c)| c.spec.names.kind == kind).map(|(_, c)| c).expect("a CRD");
    let v = serde_json::to_value(&crd).expect("json");
    v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Fields of `value` the schema does not know, and values outside an enum.
fn unknown_fields(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
    {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!("{path}: {value} not in {allowed:?}"));
    }
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{path}.{k}");
                if let Some(s) = schema.get("properties").and_then(|p| p.get(k)) {
                    unknown_fields(v, s, &p, out);
                } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                    unknown_fields(v, s, &p, out);
                } else if !(path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str())) {
                    out.push(p);
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                unknown_fields(v, &schema["items"], &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Deserializes a document into its kind's type and back: nothing may be lost.
fn round_trip(doc: &Value) -> Value {
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Value {
        let t: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc}"));
        serde_json::to_value(&t).expect("serializes")
    }
    match doc["kind"].as_str().expect("a kind") {
        "MultiCloudVM" => rt::<crd::MultiCloudVM>(doc),
        "VirtualMachine" => rt::<crd::VirtualMachine>(doc),
        "VMTemplate" => rt::<crd::VMTemplate>(doc),
        "VMCluster" => rt::<crd::VMCluster>(doc),
        "FederatedCluster" => rt::<crd::FederatedCluster>(doc),
        "AISchedulingPolicy" => rt::<crd::AISchedulingPolicy>(doc),
        "CacheIntegration" => rt::<crd::CacheIntegration>(doc),
        other => panic!("unknown kind {other}"),
    }
}

fn spec_json(v: &Value) -> Value {
    // Numbers written as strings stay strings; YAML integers may come back as floats.
    v["spec"].clone()
}

fn check_document(doc: &Value, origin: &str) {
    assert_eq!(doc["apiVersion"], "novacron.io/v1", "{origin}");
    let kind = doc["kind"].as_str().expect("kind");
    let mut unknown = Vec::new();
    unknown_fields(doc, &schema_of(kind), "", &mut unknown);
    assert!(unknown.is_empty(), "{origin}: fields the schema would prune or refuse: {unknown:?}");
    // Excerpts (the seed) have no metadata; a stored object always has some.
    let mut doc = doc.clone();
    if doc.get("metadata").is_none() {
        doc["metadata"] = serde_json::json!({});
    }
    let back = round_trip(&doc);
    assert_eq!(
        normalise(&spec_json(&back)),
        normalise(&spec_json(&doc)),
        "{origin}: the {kind} spec changed on the way"
    );
}

/// Numbers as f64, so that `2` and `2.0` compare equal.
fn normalise(v: &Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), normalise(v))).collect()),
        other => other.clone(),
    }
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

#[test]
fn the_seed_manifest_is_accepted_unchanged() {
    // As the issue writes it (no metadata), and as shipped with the scenarios.
    let seed: Value = serde_yaml_ng::from_str(SEED_YAML).expect("YAML");
    check_document(&seed, "the issue's seed manifest");
    let shipped = std::fs::read_to_string(repo().join("scenarios/manifests/seed-multicloudvm.yaml")).expect("file");
    for doc in documents(&shipped) {
        check_document(&doc, "scenarios/manifests/seed-multicloudvm.yaml");
        let m: MultiCloudVM = serde_json::from_value(doc).expect("a MultiCloudVM");
        assert_eq!(m.spec.deployment_strategy.kind, "active-passive");
        assert_eq!(m.spec.deployment_strategy.secondary, ["azure-eastus", "gcp-us-central"]);
    }
}

#[test]
fn every_example_manifest_parses_with_the_generated_types() {
    let dir = repo().join("operator/manifests");
    let mut kinds = std::collections::BTreeSet::new();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("operator/manifests").filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(f).expect("readable");
        for doc in documents(&text) {
            kinds.insert(doc["kind"].as_str().unwrap_or_default().to_owned());
            check_document(&doc, &f.display().to_string());
        }
    }
    let all: Vec<String> = crd::all().into_iter().map(|(_, c)| c.spec.names.kind).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>().len(), all.len(), "an example of every kind");
}

#[test]
fn the_schema_validates_what_the_v1_vocabulary_leaves_loose() {
    let s = schema_of("MultiCloudVM");
    let strategy = &s["properties"]["spec"]["properties"]["deploymentStrategy"];
    assert_eq!(
        strategy["properties"]["type"]["enum"],
        serde_json::json!(["active-passive", "active-active", "burst", "cost-optimized"])
    );
    let rules = strategy["x-kubernetes-validations"].as_array().expect("CEL rules");
    assert_eq!(rules.len(), 3);
    let threshold = &strategy["properties"]["failoverTriggers"]["items"]["properties"]["threshold"];
    assert_eq!(threshold["x-kubernetes-int-or-string"], true);
    let conditions = &s["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    // The status subresource and the printer columns.
    let crd = serde_json::to_value(MultiCloudVM::crd()).expect("json");
    let version = &crd["spec"]["versions"][0];
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Strategy", "Primary", "Serving", "Cost/h", "Ready", "Age"]);
    assert_eq!(crd["spec"]["group"], "novacron.io");
    assert_eq!(crd["spec"]["names"]["shortNames"], serde_json::json!(["mcvm"]));
}
