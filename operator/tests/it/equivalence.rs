//! The operator and the simulator give the engine the same deployment for the same manifest:
//! every `[[deployments]]` table of every shipped scenario (inline or `manifest = "file.yaml"`) is
//! read as a MultiCloudVM spec, translated by the operator, and compared with the DeploymentSpec
//! the simulator's own scenario checker builds.

use std::collections::BTreeMap;
use std::path::Path;

use engine::RegionId;
use operator::crd::MultiCloudVMSpec;
use operator::translate::deployment_spec;
use serde_json::Value;

/// Keys of a scenario's deployment table that are the simulator's business, not the manifest's.
const SIM_ONLY: [&str; 3] = ["name", "manifest", "demand"];

#[test]
fn every_shipped_deployment_translates_as_in_the_simulator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("scenarios").filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let mut compared = 0;
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let text = std::fs::read_to_string(path).expect("readable");
        let doc: toml::Value = toml::from_str(&text).expect("TOML");
        let Some(deps) = doc.get("deployments").and_then(|d| d.as_array()) else { continue };
        let scenario = sim::scenario::parse(&text, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut names: BTreeMap<String, RegionId> = BTreeMap::new();
        for (i, r) in doc["regions"].as_array().expect("regions").iter().enumerate() {
            let id = RegionId(i as u16);
            names.insert(r["name"].as_str().expect("name").to_owned(), id);
            for a in r.get("aliases").and_then(|a| a.as_array()).into_iter().flatten() {
                names.insert(a.as_str().expect("alias").to_owned(), id);
            }
        }
        for (i, d) in deps.iter().enumerate() {
            let table = serde_json::to_value(d).expect("json");
            let mut spec = match d.get("manifest").and_then(|m| m.as_str()) {
                Some(file) => {
                    let yaml = std::fs::read_to_string(path.parent().expect("dir").join(file)).expect("manifest");
                    let m: Value = serde_yaml_ng::from_str(&yaml).expect("manifest YAML");
                    m["spec"].clone()
                }
                None => Value::Object(Default::default()),
            };
            // The table's own keys join the manifest's spec (the manifest's win, as in the simulator).
            for (k, v) in table.as_object().expect("table") {
                if !SIM_ONLY.contains(&k.as_str()) && spec.get(k).is_none() {
                    spec[k] = v.clone();
                }
            }
            let spec: MultiCloudVMSpec = serde_json::from_value(spec).expect("a MultiCloudVM spec");
            let sim_spec = &scenario.deployments[i].spec;
            let ours =
                deployment_spec(sim_spec.id, &sim_spec.name, &spec, None, &names, scenario.catalog.regions.len())
                    .unwrap_or_else(|e| panic!("{} deployment {i}: {e:?}", path.display()));
            assert_eq!(&ours, sim_spec, "{} deployment {i}", path.display());
            compared += 1;
        }
    }
    // 12 scenarios with deployments, some with several.
    assert!(compared >= 12, "compared {compared}");
}
