//! Which clouds `operator run` talks to: `--provider memory|multi|azure|gcp|aws` and, for real
//! clouds, a providers file (`--providers FILE`, YAML) listing the members of the multi-cloud
//! router with their regions, instance types and credentials.
//!
//! ```yaml
//! providers:
//! - name: azure-eastus            # a name for messages and metrics
//!   kind: azure                   # memory | aws | azure | gcp
//!   region: azure-eastus          # the catalog's region name (and `aliases`)
//!   cloudRegion: eastus           # default: the region name without "azure-"
//!   zones: ["1", "2"]
//!   location: [37.4, -79.2]       # latitude, longitude (latency)
//!   instanceTypes: [{name: D2s_v4, vcpu: 2, memoryGib: 8}]
//!   capacity: 20                  # instances per offer the engine may plan for
//!   credentialsSecret: azure-credentials
//!   azure: {resourceGroup: novacron, subnetId: "/subscriptions/…/subnets/default", sshPublicKey: "ssh-ed25519 …"}
//! ```
//!
//! Offers are priced from the shipped tables ([`super::prices`]), so every member's
//! `estimate_cost` answers from the same source. Credentials come from the Kubernetes Secret named
//! by `credentialsSecret`, mounted into the pod as a folder of files (one per key) under
//! `--secrets-dir` (default `/var/run/secrets/novacron`): `<dir>/<secret name>/<key>`. Without
//! `credentialsSecret`, Azure reads the `AZURE_*` environment variables (the Helm chart's
//! `envFrom`) and GCP the key file at `GOOGLE_APPLICATION_CREDENTIALS`. The operator reads no
//! Secret through the API, so its RBAC needs no access to Secrets. Errors name the member, the
//! Secret and the key, never a value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::Provider;
use serde::Deserialize;

use super::aws::{AwsCloud, AwsConfig, AwsCredentials, OnDemandPrices};
use super::azure::{AzureConfig, AzureCredentials, AzureProvider};
use super::gcp::{GcpConfig, GcpProvider, ServiceAccountKey};
use super::memory::MemoryCloud;
use super::multi::{Member, MultiCloud};
use super::{CloudCatalog, CloudProvider, InstanceTypeInfo, RegionInfo, prices};

/// What can go wrong setting the clouds up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The providers file cannot be used.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A member cannot be built.
    #[error("provider {member}: {message}")]
    Member {
        /// The member's name.
        member: String,
        /// What is wrong (never a credential's value).
        message: String,
    },
}

/// The providers file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersFile {
    /// The members, asked in this order.
    pub providers: Vec<MemberSpec>,
}

/// One member.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemberSpec {
    /// Name in messages.
    pub name: String,
    /// `memory`, `azure`, `gcp` or `aws`.
    pub kind: String,
    /// Catalog region name.
    pub region: String,
    /// Other names of the region.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The cloud's own region name (default: `region` without its `<provider>-` prefix).
    pub cloud_region: Option<String>,
    /// Zones.
    pub zones: Vec<String>,
    /// Latitude and longitude.
    #[serde(default)]
    pub location: Option<(f64, f64)>,
    /// Instance types sold.
    pub instance_types: Vec<TypeSpec>,
    /// Instances per offer (default 20).
    pub capacity: Option<u32>,
    /// The Secret with the credentials (mounted under `--secrets-dir`).
    pub credentials_secret: Option<String>,
    /// Azure settings.
    pub azure: Option<AzureSpec>,
    /// GCP settings.
    pub gcp: Option<GcpSpec>,
    /// AWS settings.
    pub aws: Option<AwsSpec>,
}

/// AWS member settings. The member's `region` is `aws-<code>` (`aws-us-east-1`); its catalog
/// (zones, shapes) comes from EC2 itself, its on-demand prices from the tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsSpec {
    /// AMI to launch.
    pub image_id: String,
}

/// An instance type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TypeSpec {
    /// Provider's name.
    pub name: String,
    /// vCPUs.
    pub vcpu: u32,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// GPUs.
    #[serde(default)]
    pub gpu: u32,
}

/// Azure member settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AzureSpec {
    /// Resource group.
    pub resource_group: String,
    /// Subnet resource id.
    pub subnet_id: String,
    /// SSH public key of the admin user.
    pub ssh_public_key: String,
}

/// GCP member settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GcpSpec {
    /// Project (default: the key's).
    pub project: Option<String>,
}

impl ProvidersFile {
    /// Parses a providers file; `path` names it in messages.
    pub fn parse(text: &str, path: &str) -> Result<Self, Error> {
        let f: ProvidersFile =
            serde_yaml_ng::from_str(text).map_err(|e| Error::File { path: path.into(), message: e.to_string() })?;
        if f.providers.is_empty() {
            return Err(Error::File { path: path.into(), message: "providers: at least one is needed".into() });
        }
        Ok(f)
    }
}

/// A Secret's keys, read from the folder Kubernetes mounts it as (one file per key).
pub fn read_mounted_secret(dir: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut data = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Kubernetes keeps the real files under ..data and links them; skip its own entries.
        if name.starts_with("..") || !entry.path().is_file() {
            continue;
        }
        data.insert(name, std::fs::read(entry.path())?);
    }
    Ok(data)
}

/// Builds the router over the file's members. `secrets_dir` is where Secrets are mounted.
pub async fn build(file: &ProvidersFile, secrets_dir: &Path) -> Result<MultiCloud, Error> {
    let mut members = Vec::new();
    for m in &file.providers {
        let bad = |message: String| Error::Member { member: m.name.clone(), message };
        let provider = match m.kind.as_str() {
            "memory" => None,
            "azure" => Some(Provider::Azure),
            "gcp" => Some(Provider::Gcp),
            "aws" => Some(Provider::Aws),
            k => return Err(bad(format!("kind {k:?} is not one of memory, aws, azure, gcp"))),
        };
        let region_provider = provider.unwrap_or_else(|| provider_of_name(&m.region));
        let region = RegionInfo {
            name: m.region.clone(),
            aliases: m.aliases.clone(),
            provider: region_provider,
            zones: m.zones.clone(),
            location: m.location.unwrap_or((0.0, 0.0)),
            carbon_g_per_kwh: 400.0,
        };
        let types = m
            .instance_types
            .iter()
            .map(|t| InstanceTypeInfo { name: t.name.clone(), vcpu: t.vcpu, memory_gib: t.memory_gib, gpu: t.gpu })
            .collect();
        let catalog: CloudCatalog = prices::priced_catalog(prices::builtin(), region, types, m.capacity.unwrap_or(20))
            .map_err(|e| bad(format!("pricing: {e}")))?;
        let cloud_region = m
            .cloud_region
            .clone()
            .unwrap_or_else(|| engine::prices::cloud_region(region_provider, &m.region).to_owned());
        let secret = |what: &str| -> Result<Option<BTreeMap<String, Vec<u8>>>, Error> {
            let Some(name) = &m.credentials_secret else { return Ok(None) };
            let dir: PathBuf = secrets_dir.join(name);
            read_mounted_secret(&dir)
                .map(Some)
                .map_err(|e| bad(format!("{what} Secret {name:?} is not mounted at {}: {e}", dir.display())))
        };
        let cloud: Arc<dyn CloudProvider> = match provider {
            None => {
                let c = MemoryCloud::new(catalog);
                c.set_id_prefix(&format!("{}-", m.name));
                c.set_boot_on_list(true);
                Arc::new(c)
            }
            Some(Provider::Azure) => {
                let spec = m.azure.as_ref().ok_or_else(|| bad("kind azure needs an `azure:` section".into()))?;
                let data = match secret("Azure credentials")? {
                    Some(d) => d,
                    None => env_data(&[
                        "AZURE_TENANT_ID",
                        "AZURE_CLIENT_ID",
                        "AZURE_CLIENT_SECRET",
                        "AZURE_SUBSCRIPTION_ID",
                    ]),
                };
                let credentials = AzureCredentials::from_secret_data(&data).map_err(|e| bad(e.to_string()))?;
                let mut config = AzureConfig::new(
                    &m.region,
                    cloud_region,
                    &spec.resource_group,
                    &spec.subnet_id,
                    &spec.ssh_public_key,
                    credentials,
                );
                config.catalog = catalog;
                Arc::new(AzureProvider::new(config).map_err(|e| bad(e.to_string()))?)
            }
            Some(Provider::Aws) => {
                let spec = m.aws.as_ref().ok_or_else(|| bad("kind aws needs an `aws:` section (imageId)".into()))?;
                let credentials = match secret("AWS credentials")? {
                    Some(d) => Some(
                        AwsCredentials::from_secret_data(&format!("Secret {:?}", m.credentials_secret), &d)
                            .map_err(|e| bad(e.to_string()))?,
                    ),
                    // The SDK's default chain: AWS_* variables (the Helm chart's envFrom), IRSA, ...
                    None => None,
                };
                let on_demand_prices: OnDemandPrices = catalog
                    .offers
                    .iter()
                    .map(|o| ((cloud_region.clone(), o.instance_type.clone()), o.on_demand_per_h))
                    .collect();
                let config = AwsConfig {
                    regions: vec![cloud_region.clone()],
                    instance_types: m.instance_types.iter().map(|t| t.name.clone()).collect(),
                    image_id: spec.image_id.clone(),
                    credentials,
                    on_demand_prices,
                    offer_capacity: m.capacity.unwrap_or(20),
                    ..AwsConfig::default()
                };
                Arc::new(AwsCloud::new(config).await.map_err(|e| bad(e.to_string()))?)
            }
            Some(_) => {
                let key = match secret("GCP key")? {
                    Some(d) => ServiceAccountKey::from_secret_data(&d),
                    None => {
                        let path = std::env::var("GOOGLE_APPLICATION_CREDENTIALS").map_err(|_| {
                            bad("no credentialsSecret and GOOGLE_APPLICATION_CREDENTIALS is not set".into())
                        })?;
                        let bytes =
                            std::fs::read(&path).map_err(|e| bad(format!("cannot read key file {path}: {e}")))?;
                        ServiceAccountKey::from_json(&bytes)
                    }
                }
                .map_err(|e| bad(e.to_string()))?;
                let mut config = GcpConfig::new(&m.region, cloud_region.clone(), key);
                if let Some(p) = m.gcp.as_ref().and_then(|g| g.project.clone()) {
                    config.project = p;
                }
                config.zones = m
                    .zones
                    .iter()
                    .map(|z| if z.contains('-') { z.clone() } else { format!("{cloud_region}-{z}") })
                    .collect();
                config.catalog = catalog;
                Arc::new(GcpProvider::new(config).map_err(|e| bad(e.to_string()))?)
            }
        };
        members.push(Member { name: m.name.clone(), provider: region_provider, cloud });
    }
    Ok(MultiCloud::new(members))
}

/// The in-memory router `--provider multi` runs without a providers file: the seed catalog's
/// three regions, one in-memory cloud each, instances booting as soon as they are listed.
pub fn seed_multi() -> MultiCloud {
    let seed = MemoryCloud::seed_catalog();
    let members = seed
        .regions
        .iter()
        .map(|r| {
            let offers: Vec<_> = seed.offers.iter().filter(|o| o.region == r.name).cloned().collect();
            let types = seed
                .instance_types
                .iter()
                .filter(|t| offers.iter().any(|o| o.instance_type == t.name))
                .cloned()
                .collect();
            let c = MemoryCloud::new(CloudCatalog { regions: vec![r.clone()], instance_types: types, offers });
            c.set_id_prefix(&format!("{}-", r.provider));
            c.set_boot_on_list(true);
            Member { name: r.name.clone(), provider: r.provider, cloud: Arc::new(c) as Arc<dyn CloudProvider> }
        })
        .collect();
    MultiCloud::new(members)
}

fn provider_of_name(region: &str) -> Provider {
    [Provider::Aws, Provider::Azure, Provider::Gcp]
        .into_iter()
        .find(|p| region.starts_with(&format!("{p}-")))
        .unwrap_or(Provider::Aws)
}

fn env_data(keys: &[&str]) -> BTreeMap<String, Vec<u8>> {
    keys.iter().filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v.into_bytes()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T>(r: Result<T, Error>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    const FILE: &str = r#"
providers:
- name: aws
  kind: memory
  region: aws-us-east-1
  zones: [us-east-1a]
  instanceTypes: [{name: m5.large, vcpu: 2, memoryGib: 8}]
- name: azure
  kind: azure
  region: azure-eastus
  zones: ["1"]
  instanceTypes: [{name: D2s_v4, vcpu: 2, memoryGib: 8}]
  credentialsSecret: azure-credentials
  azure: {resourceGroup: rg, subnetId: /subscriptions/s/subnets/default, sshPublicKey: "ssh-ed25519 AAAA x"}
"#;

    #[tokio::test]
    async fn members_are_priced_from_the_tables_and_read_their_mounted_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("azure-credentials");
        std::fs::create_dir(&secret).expect("mkdir");
        for (k, v) in [
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "hunter2"),
            ("AZURE_SUBSCRIPTION_ID", "s"),
        ] {
            std::fs::write(secret.join(k), v).expect("write");
        }
        let file = ProvidersFile::parse(FILE, "providers.yaml").expect("parses");
        let multi = build(&file, dir.path()).await.expect("builds");
        assert_eq!(multi.members().len(), 2);
        let cost = multi.estimate_cost("azure-eastus", "D2s_v4", engine::Market::Spot).await.expect("priced");
        assert_eq!(cost, 0.0192);
        assert_eq!(
            multi.estimate_cost("aws-us-east-1", "m5.large", engine::Market::OnDemand).await.expect("priced"),
            0.096
        );

        std::fs::remove_file(secret.join("AZURE_CLIENT_SECRET")).expect("rm");
        let e = err(build(&file, dir.path()).await);
        assert!(e.starts_with("provider azure:") && e.contains("AZURE_CLIENT_SECRET") && !e.contains("hunter2"), "{e}");
        let e = err(build(&file, &dir.path().join("nowhere")).await);
        assert!(e.contains("Azure credentials Secret \"azure-credentials\" is not mounted at"), "{e}");
    }

    #[tokio::test]
    async fn bad_files_are_named() {
        let e = err(ProvidersFile::parse("providers: []", "p.yaml"));
        assert_eq!(e, "p.yaml: providers: at least one is needed");
        let e = err(ProvidersFile::parse("providers:\n- name: x\n  kind: memory\n  regio: r\n", "p.yaml"));
        assert!(e.to_string().contains("unknown field `regio`"), "{e}");
        let f = ProvidersFile::parse(&FILE.replace("kind: memory", "kind: aws"), "p.yaml").expect("parses");
        let e = err(build(&f, Path::new("/nonexistent")).await);
        assert!(e.contains("provider aws: kind aws needs an `aws:` section"), "{e}");
        let f = ProvidersFile::parse(&FILE.replace("m5.large", "m5.huge"), "p.yaml").expect("parses");
        let e = err(build(&f, Path::new("/nonexistent")).await);
        assert!(
            e.contains("provider aws: pricing: aws price table has no on-demand price for m5.huge in us-east-1"),
            "{e}"
        );
    }
}
