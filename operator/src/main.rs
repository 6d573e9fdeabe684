//! `operator run`: the controller against the cluster of the current kubeconfig (or the pod's
//! service account), with `/metrics`, `/healthz` and `/readyz`. `operator crdgen`: the CRDs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use operator::clock::SystemClock;
use operator::controller::{self, Config, Context};
use operator::http::{HttpState, router};
use operator::leader::{self, LeaderConfig, LeaderElector};
use operator::metrics::Metrics;
use operator::provider::CloudProvider;
use operator::provider::memory::MemoryCloud;
use operator::provider::setup;

#[derive(Parser)]
#[command(name = "operator", about = "NovaCron's Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile MultiCloudVMs in the cluster of the current kubeconfig.
    Run(Box<RunArgs>),
    /// Write the CRDs (YAML) into a folder, or print them.
    Crdgen {
        /// Folder to write one file per CRD into; prints all to stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `operator run`.
#[derive(clap::Args)]
struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// The cloud: `memory` (one in-memory cloud with the seed manifest's regions, instances
    /// booting at once); `multi` (the multi-cloud router over the members of --providers, or over
    /// one in-memory cloud per seed region without it); `azure` or `gcp` (the router over
    /// --providers, whose members must all be of that kind); `aws` likewise.
    #[arg(long, default_value = "memory")]
    provider: String,
    /// The providers file (YAML: members with region, zones, instance types, credentialsSecret,
    /// see operator/README.md).
    #[arg(long)]
    providers: Option<PathBuf>,
    /// Where the Secrets named by credentialsSecret are mounted, one folder per Secret.
    #[arg(long, default_value = "/var/run/secrets/novacron")]
    secrets_dir: PathBuf,
    /// Longest time between two reconciles of an object, such as "30s".
    #[arg(long, default_value = "30s")]
    poll: String,
    /// Append every engine event and its actions to this file (JSON lines).
    #[arg(long)]
    decision_log: Option<PathBuf>,
    #[command(flatten)]
    election: ElectionArgs,
}

/// Leader election flags.
#[derive(clap::Args)]
struct ElectionArgs {
    /// Act only while holding a coordination.k8s.io/v1 Lease, so that of several replicas only
    /// one acts; `--leader-election=false` for a single replica without a Lease.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "novacron-operator")]
    lease_name: String,
    /// Namespace of the Lease [default: $POD_NAMESPACE, else the kubeconfig's namespace].
    #[arg(long)]
    lease_namespace: Option<String>,
    /// This replica's identity [default: $POD_NAME, else <hostname>-<pid>].
    #[arg(long)]
    leader_identity: Option<String>,
    /// How long a Lease not renewed stays its holder's (whole seconds).
    #[arg(long, default_value = "15s")]
    lease_duration: String,
    /// How long the leader keeps acting without a successful renewal.
    #[arg(long, default_value = "10s")]
    renew_deadline: String,
    /// Time between two renewals, or two attempts of a standby.
    #[arg(long, default_value = "2s")]
    retry_period: String,
}

fn duration_arg(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let d = engine::SimDuration::parse(text).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))?;
    Ok(Duration::from_millis(d.as_millis()))
}

/// Completes on Ctrl+C or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RUST_LOG (e.g. `operator=debug,kube=info`) chooses what is logged; `info` without it. The
    // cloud SDKs never log below info (operator::logging): no credential reaches the log.
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let rust_log = std::env::var("RUST_LOG").ok();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_filter(operator::logging::filter(rust_log.as_deref())),
        )
        .init();
    // rustls is linked with two crypto providers (ring through kube, aws-lc-rs through the AWS
    // SDK) and then refuses to choose one itself: the kube client would panic on its first use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Crdgen { out } => crdgen(out),
        Command::Run(args) => {
            let RunArgs { listen, provider, providers, secrets_dir, poll, decision_log, election } = *args;
            let poll = engine::SimDuration::parse(&poll).map_err(|e| anyhow::anyhow!("--poll: {e}"))?;
            let cloud = cloud(&provider, providers.as_deref(), &secrets_dir).await?;
            let client = kube::Client::try_default().await.context("no usable kubeconfig or in-cluster config")?;
            let mut registry = prometheus_client::registry::Registry::default();
            let metrics = Arc::new(Metrics::default().register(&mut registry));
            let config = Config {
                poll_interval: Duration::from_millis(poll.as_millis().max(1000)),
                decision_log,
                ..Config::default()
            };
            let ctx = Arc::new(Context::new(client, cloud, Arc::new(SystemClock), config, metrics));
            let state = HttpState { registry: Arc::new(registry), ready: ctx.ready.clone() };
            let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
            tokio::spawn(async move { axum::serve(listener, router(state)).await });
            let crd_hint = "controller (is the CRD installed? `kubectl apply -f deploy/crds/`)";
            if !election.leader_election {
                tracing::warn!("leader election is off: run a single replica");
                controller::run(ctx).await.context(crd_hint)?;
                return Ok(());
            }
            let namespace = election
                .lease_namespace
                .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
                .unwrap_or_else(|| ctx.client.default_namespace().to_owned());
            let identity = election.leader_identity.unwrap_or_else(leader::default_identity);
            let config = LeaderConfig {
                lease_duration: duration_arg("lease-duration", &election.lease_duration)?,
                renew_deadline: duration_arg("renew-deadline", &election.renew_deadline)?,
                retry_period: duration_arg("retry-period", &election.retry_period)?,
                ..LeaderConfig::new(&election.lease_name, &namespace, &identity)
            };
            let elector = LeaderElector::new(ctx.client.clone(), config, Arc::new(SystemClock))?
                .with_metrics(ctx.metrics.clone());
            tracing::info!("leader election on lease {namespace}/{} as {identity}", election.lease_name);
            controller::run_elected(ctx, elector, shutdown_signal()).await.context(crd_hint)?;
            Ok(())
        }
    }
}

/// The provider `--provider` and `--providers` ask for.
async fn cloud(
    provider: &str,
    providers: Option<&std::path::Path>,
    secrets_dir: &std::path::Path,
) -> anyhow::Result<Arc<dyn CloudProvider>> {
    let file = match providers {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("--providers {}", path.display()))?;
            Some(setup::ProvidersFile::parse(&text, &path.display().to_string())?)
        }
        None => None,
    };
    match (provider, file) {
        ("memory", None) => {
            let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
            cloud.set_boot_on_list(true);
            tracing::warn!("using the in-memory cloud: no real VM is created");
            Ok(cloud)
        }
        ("memory", Some(_)) => bail!("--providers needs --provider multi (or azure, gcp)"),
        ("multi", None) => {
            tracing::warn!("using one in-memory cloud per seed region behind the router: no real VM is created");
            Ok(Arc::new(setup::seed_multi()))
        }
        ("multi" | "aws" | "azure" | "gcp", Some(file)) => {
            if let Some(m) = file.providers.iter().find(|m| provider != "multi" && m.kind != provider) {
                bail!(
                    "--provider {provider}: member {:?} is of kind {:?}; use --provider multi to mix kinds",
                    m.name,
                    m.kind
                );
            }
            let multi = setup::build(&file, secrets_dir).await?;
            for m in multi.members() {
                tracing::info!("provider {} ({})", m.name, m.provider);
            }
            Ok(Arc::new(multi))
        }
        ("aws" | "azure" | "gcp", None) => {
            bail!("--provider {provider} needs --providers FILE (its regions and credentials)")
        }
        (other, _) => bail!("unknown provider {other:?}: use memory, multi, aws, azure or gcp"),
    }
}

fn crdgen(out: Option<PathBuf>) -> anyhow::Result<()> {
    for (file, crd) in operator::crd::all() {
        let yaml = operator::crd::to_yaml(&crd)?;
        match &out {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                std::fs::write(dir.join(file), yaml).with_context(|| format!("write {file}"))?;
            }
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}
