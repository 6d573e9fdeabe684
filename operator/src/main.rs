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
use operator::metrics::Metrics;
use operator::provider::memory::MemoryCloud;

#[derive(Parser)]
#[command(name = "operator", about = "NovaCron's Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile MultiCloudVMs in the cluster of the current kubeconfig.
    Run {
        /// Address of /metrics, /healthz and /readyz.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// The cloud: only `memory` (an in-memory cloud with the seed manifest's regions,
        /// instances booting at once) exists yet.
        #[arg(long, default_value = "memory")]
        provider: String,
        /// Longest time between two reconciles of an object, such as "30s".
        #[arg(long, default_value = "30s")]
        poll: String,
        /// Append every engine event and its actions to this file (JSON lines).
        #[arg(long)]
        decision_log: Option<PathBuf>,
    },
    /// Write the CRDs (YAML) into a folder, or print them.
    Crdgen {
        /// Folder to write one file per CRD into; prints all to stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();
    match Cli::parse().command {
        Command::Crdgen { out } => crdgen(out),
        Command::Run { listen, provider, poll, decision_log } => {
            if provider != "memory" {
                bail!("unknown provider {provider:?}: only \"memory\" exists yet (AWS, Azure and GCP are later work)");
            }
            let poll = engine::SimDuration::parse(&poll).map_err(|e| anyhow::anyhow!("--poll: {e}"))?;
            let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
            cloud.set_boot_on_list(true);
            tracing::warn!("using the in-memory cloud: no real VM is created");
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
            controller::run(ctx).await.context("controller (is the CRD installed? `kubectl apply -f deploy/crds/`)")?;
            Ok(())
        }
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
