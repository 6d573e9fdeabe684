//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas of the
//! operator only one acts at a time.
//!
//! The protocol is client-go's `leaderelection`: a candidate reads the Lease; if nobody holds
//! it, or its holder has not renewed it for the lease's duration, the candidate writes itself in
//! as holder with a `replace` that carries the `resourceVersion` it read, so that of two
//! candidates racing only one write succeeds (the API server answers the other 409 Conflict).
//! The holder renews every `retry_period`; a renewal that has not succeeded within
//! `renew_deadline` of the previous one ends the term, and the holder stops acting. Since
//! `renew_deadline` < `lease_duration`, the old leader has stopped before any other candidate may
//! take the Lease over.
//!
//! Expiry is judged the way client-go judges it: not by comparing the Lease's `renewTime` with
//! the local clock (clocks of two nodes may disagree), but by how long this candidate has seen
//! the Lease unchanged, measured on its own monotonic clock (`tokio::time::Instant`, which tests
//! pause and advance). The wall-clock times written into the Lease (`acquireTime`, `renewTime`)
//! come from the operator's [`Clock`] and are for people and other tools.
//!
//! [`LeaderElector::run`] runs the loop and publishes whether this replica leads on a
//! `tokio::sync::watch` channel; dropping every receiver ends the loop, releasing the Lease if
//! held (its holder cleared, so a standby takes over at once rather than after the duration).
//! [`crate::controller::run_elected`] runs the controller only while leading.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::metrics::{LeaseLabels, Metrics};

/// Errors of the leader election.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaderError {
    /// A Kubernetes API call failed (409 Conflict included: another candidate wrote first).
    #[error("lease: {0}")]
    Kube(#[from] kube::Error),
    /// The API server did not answer within the renew deadline.
    #[error("lease: no answer within {0:?}")]
    Timeout(Duration),
    /// The settings cannot work.
    #[error("leader election: {0}")]
    Config(String),
}

/// Settings of the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity, unique among the candidates (the pod's name).
    pub identity: String,
    /// How long a Lease not renewed stays its holder's: how long a standby waits, having seen it
    /// unchanged, before it takes over.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renewal. Less than `lease_duration`.
    pub renew_deadline: Duration,
    /// Time between two attempts (renewals, or a standby's reads).
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// client-go's defaults: a 15 s lease, a 10 s renew deadline, attempts every 2 s.
    pub fn new(lease_name: &str, namespace: &str, identity: &str) -> Self {
        LeaderConfig {
            lease_name: lease_name.to_owned(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks that the timings can work: `lease_duration` > `renew_deadline` > `retry_period` > 0,
    /// whole seconds for the duration (the Lease stores seconds), and a non-empty identity.
    pub fn check(&self) -> Result<(), LeaderError> {
        let bad = |m: String| Err(LeaderError::Config(m));
        if self.identity.is_empty() {
            return bad("the identity is empty (set POD_NAME or --leader-identity)".into());
        }
        if self.lease_name.is_empty() || self.namespace.is_empty() {
            return bad("the lease name and namespace must not be empty".into());
        }
        if self.lease_duration.subsec_nanos() != 0 || self.lease_duration.as_secs() > i32::MAX as u64 {
            return bad(format!("--lease-duration {:?} must be a whole number of seconds", self.lease_duration));
        }
        if self.retry_period.is_zero() {
            return bad("--retry-period must be more than 0".into());
        }
        if self.renew_deadline <= self.retry_period {
            return bad(format!(
                "--renew-deadline ({:?}) must be longer than --retry-period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.lease_duration <= self.renew_deadline {
            return bad(format!(
                "--lease-duration ({:?}) must be longer than --renew-deadline ({:?}), or two replicas may act at once",
                self.lease_duration, self.renew_deadline
            ));
        }
        Ok(())
    }
}

/// The identity of this replica: `POD_NAME` (the downward API), else `<hostname>-<pid>` (two
/// processes on one machine must not share an identity, or both would take the other's renewals
/// for their own).
pub fn default_identity() -> String {
    if let Ok(p) = std::env::var("POD_NAME")
        && !p.trim().is_empty()
    {
        return p.trim().to_owned();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "novacron-operator".to_owned());
    format!("{host}-{}", std::process::id())
}

/// What the election compares: the Lease's spec as last read.
#[derive(Clone, Debug, PartialEq)]
struct Observed {
    spec: LeaseSpec,
    at: Instant,
}

/// One candidate.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderConfig,
    clock: Arc<dyn Clock>,
    observed: Option<Observed>,
    leading: bool,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("config", &self.config)
            .field("leading", &self.leading)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// A candidate for `config.lease_name` in `config.namespace`. `clock` stamps the Lease.
    pub fn new(client: Client, config: LeaderConfig, clock: Arc<dyn Clock>) -> Result<Self, LeaderError> {
        config.check()?;
        Ok(LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            clock,
            observed: None,
            leading: false,
            metrics: None,
        })
    }

    /// Counts every attempt in `novacron_leader_lease_attempts_total` by result.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The settings.
    pub fn config(&self) -> &LeaderConfig {
        &self.config
    }

    /// Whether the last attempt left this replica holding the Lease.
    pub fn is_leading(&self) -> bool {
        self.leading
    }

    fn now_micro(&self) -> MicroTime {
        let ms = i64::try_from(self.clock.now().as_millis()).unwrap_or(i64::MAX);
        MicroTime(
            k8s_openapi::jiff::Timestamp::from_millisecond(ms).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        )
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// One attempt to take or renew the Lease. `Ok(true)`: this replica holds it now;
    /// `Ok(false)`: another holder's lease has not expired. An error leaves the state as it was
    /// (a leader stays leader until its renew deadline).
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let was_leading = self.leading;
        let r = self.acquire_or_renew_once().await;
        self.count(match &r {
            Ok(true) if was_leading => "renewed",
            Ok(true) => "acquired",
            Ok(false) => "held",
            Err(_) => "error",
        });
        r
    }

    async fn acquire_or_renew_once(&mut self) -> Result<bool, LeaderError> {
        let now = Instant::now();
        let Some(current) = self.api.get_opt(&self.config.lease_name).await? else {
            let spec = LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.duration_secs()),
                acquire_time: Some(self.now_micro()),
                renew_time: Some(self.now_micro()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec.clone()),
            };
            self.api.create(&PostParams::default(), &lease).await?;
            info!(
                "{}: created lease {}/{}, leading",
                self.config.identity, self.config.namespace, self.config.lease_name
            );
            self.observed = Some(Observed { spec, at: now });
            self.leading = true;
            return Ok(true);
        };
        let spec = current.spec.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|o| o.spec != spec) {
            self.observed = Some(Observed { spec: spec.clone(), at: now });
        }
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        if let Some(holder) = &holder
            && !ours
        {
            let duration = spec
                .lease_duration_seconds
                .filter(|d| *d > 0)
                .map_or(self.config.lease_duration, |d| Duration::from_secs(d as u64));
            let seen_since = self.observed.as_ref().map_or(now, |o| o.at);
            if now.duration_since(seen_since) < duration {
                if self.leading {
                    warn!("{}: the lease is held by {holder}", self.config.identity);
                }
                self.leading = false;
                debug!("{}: lease held by {holder}, not expired", self.config.identity);
                return Ok(false);
            }
        }
        let stamp = self.now_micro();
        let new_spec = LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.duration_secs()),
            acquire_time: if ours {
                spec.acquire_time.clone().or_else(|| Some(stamp.clone()))
            } else {
                Some(stamp.clone())
            },
            renew_time: Some(stamp),
            lease_transitions: if ours {
                spec.lease_transitions
            } else {
                Some(spec.lease_transitions.unwrap_or(0).saturating_add(1))
            },
            ..spec.clone()
        };
        let mut lease = current;
        lease.spec = Some(new_spec.clone());
        // `lease.metadata.resourceVersion` is the one read: a concurrent write makes this a 409.
        let written = self.api.replace(&self.config.lease_name, &PostParams::default(), &lease).await?;
        if !ours {
            info!(
                "{}: took over lease {}/{} (was {})",
                self.config.identity,
                self.config.namespace,
                self.config.lease_name,
                holder.as_deref().unwrap_or("free")
            );
        }
        self.observed = Some(Observed { spec: written.spec.unwrap_or(new_spec), at: now });
        self.leading = true;
        Ok(true)
    }

    /// Gives the Lease up if this replica holds it: the holder is cleared, so that a standby
    /// takes over at its next attempt.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        self.leading = false;
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(self.now_micro());
        self.api.replace(&self.config.lease_name, &PostParams::default(), &lease).await?;
        info!("{}: released lease {}/{}", self.config.identity, self.config.namespace, self.config.lease_name);
        Ok(())
    }

    /// One attempt, bounded in time: an API server that does not answer must not hold a leader
    /// past its deadline.
    async fn attempt(&mut self, limit: Duration) -> Result<bool, LeaderError> {
        match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(r) => r,
            Err(_) => {
                self.count("error");
                Err(LeaderError::Timeout(limit))
            }
        }
    }

    fn count(&self, result: &str) {
        if let Some(m) = &self.metrics {
            m.lease_attempts.get_or_create(&LeaseLabels { result: result.to_owned() }).inc();
        }
    }

    /// Runs the election until every receiver of `leading` is dropped; then releases the Lease
    /// if held. `leading` is set to true when this replica takes the Lease and to false as soon
    /// as it must stop acting: another holder was seen, or no renewal succeeded within the renew
    /// deadline. A replica that lost the Lease becomes a candidate again.
    pub async fn run(mut self, leading: watch::Sender<bool>) -> Self {
        let retry = self.config.retry_period;
        'candidate: loop {
            // Standby: try every retry period until the Lease is ours. `renewed` is the time
            // before the successful write, not after its answer: a standby counts from when it
            // reads the write, which is later, so the deadline always ends this term first.
            let mut renewed;
            loop {
                renewed = Instant::now();
                match self.attempt(retry).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => debug!("{}: cannot take the lease: {e}", self.config.identity),
                }
                tokio::select! {
                    _ = leading.closed() => return self,
                    _ = tokio::time::sleep(retry) => {}
                }
            }
            leading.send_replace(true);
            info!("{}: leading", self.config.identity);
            // Leader: renew every retry period; stop at the renew deadline (never later: after a
            // failure the next attempt comes at the deadline if that is sooner).
            loop {
                let deadline = renewed + self.config.renew_deadline;
                let pause = retry.min(deadline.saturating_duration_since(Instant::now()));
                tokio::select! {
                    _ = leading.closed() => {
                        if let Err(e) = self.release().await {
                            warn!("{}: cannot release the lease: {e}", self.config.identity);
                        }
                        return self;
                    }
                    _ = tokio::time::sleep(pause) => {}
                }
                let started = Instant::now();
                let left = deadline.saturating_duration_since(started);
                let outcome =
                    if left.is_zero() { Err(LeaderError::Timeout(Duration::ZERO)) } else { self.attempt(left).await };
                match outcome {
                    Ok(true) => renewed = started,
                    Ok(false) => {
                        warn!("{}: another replica holds the lease; stopping", self.config.identity);
                        self.leading = false;
                        leading.send_replace(false);
                        continue 'candidate;
                    }
                    Err(e) => {
                        if Instant::now() >= deadline {
                            warn!(
                                "{}: no renewal for {:?} (last error: {e}); stopping",
                                self.config.identity, self.config.renew_deadline
                            );
                            self.leading = false;
                            leading.send_replace(false);
                            continue 'candidate;
                        }
                        debug!("{}: renewal failed, retrying: {e}", self.config.identity);
                    }
                }
            }
        }
    }
}
