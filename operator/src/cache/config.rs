//! The one place where a `CacheIntegration` spec becomes the cache's configuration: the caching
//! fields (`strategy`, `writeBehind`, `consistency`, `defaultTtl`, `level`, `refresh`,
//! `refreshAt`, `l1Ttl`, `ttlPolicies`, `warmingConfig`, `evictionPolicy`, `memoryThresholds`)
//! become the engine's [`engine::cache::CacheConfig`], validated into its [`CachePolicy`];
//! `redisConfig` becomes [`RedisSettings`] once the controller has read the Secrets it names.
//! Every problem names its field (`spec.strategy`, `spec.ttlPolicies["vm:*"]`,
//! `spec.redisConfig.timeout`) and what is allowed.
//!
//! `redisConfig` keys (all optional; without `endpoint` and `sentinelHosts` the cache is L1 only):
//!
//! | key | meaning |
//! | --- | --- |
//! | `endpoint` | `host:port`, or a URL `redis://host:port/db` / `rediss://host:port/db` |
//! | `sentinelHosts` | `["host:port", ...]`: find the master through Redis Sentinel |
//! | `masterName` | the master's name in Sentinel (default `mymaster`) |
//! | `database` | database number (default 0, or the URL's) |
//! | `tls` | `true` for TLS (implied by `rediss://`) |
//! | `insecureSkipVerify` | accept any server certificate (testing only) |
//! | `credentialsSecret` | Secret with `password` and optionally `username` (ACL user) and `sentinelPassword` |
//! | `passwordSecret` | the same, as the v1 examples name it |
//! | `certSecret` | Secret with `ca.crt`, optionally `tls.crt` and `tls.key` (mutual TLS) |
//! | `clusterName` | key namespace: keys are `novacron:<clusterName>:<key>` (default: the resource's namespace) |
//! | `timeout` | deadline of one Redis command (default `250ms`) |
//! | `connectTimeout` | deadline of one connection attempt (default `1s`) |
//! | `backoffMin`, `backoffMax` | reconnection back-off (default `500ms` doubling to `30s`) |
//! | `l1MaxBytes` | capacity of the in-process level (default 64 MiB) |

use std::collections::BTreeMap;
use std::time::Duration;

use engine::SimDuration;
use engine::cache::{
    CacheConfig, CachePolicy, Consistency, EvictionPolicy, Levels, MemoryThresholds, RefreshKind, StrategyKind,
    TtlPolicies, WarmPatternConfig, WarmingConfig,
};
use serde_json::Value;

use super::l2::{RedisSettings, Secret, TlsSettings, Topology};
use crate::crd::CacheIntegrationSpec;
use crate::crd::cacheintegration::RedisConfig;
use crate::translate::Problem;

/// The contents of a Kubernetes Secret (`data`, decoded).
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// The Secrets `redisConfig` names, as the controller read them.
#[derive(Clone, Default)]
pub struct Secrets {
    /// `credentialsSecret` (or `passwordSecret`).
    pub credentials: Option<SecretData>,
    /// `certSecret`.
    pub certs: Option<SecretData>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = |s: &Option<SecretData>| s.as_ref().map(|d| d.keys().cloned().collect::<Vec<_>>());
        f.debug_struct("Secrets")
            .field("credentials", &keys(&self.credentials))
            .field("certs", &keys(&self.certs))
            .finish()
    }
}

/// Where Redis is and how to talk to it, before the Secrets are read.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisSpec {
    /// Single server or Sentinel.
    pub topology: Topology,
    /// TLS on.
    pub tls: bool,
    /// Skip certificate checks.
    pub insecure: bool,
    /// Database number.
    pub db: i64,
    /// Secret with the password (and user name).
    pub credentials_secret: Option<String>,
    /// Secret with the CA and client certificate.
    pub cert_secret: Option<String>,
    /// Command deadline.
    pub timeout: Duration,
    /// Connection deadline.
    pub connect_timeout: Duration,
    /// First reconnection delay.
    pub backoff_min: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
}

/// A CacheIntegration, translated.
#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// Key namespace: keys are `novacron:<cluster>:<key>`.
    pub cluster: String,
    /// The engine's rules.
    pub policy: CachePolicy,
    /// The caching fields as the engine reads them (kept for status and logs).
    pub policy_config: CacheConfig,
    /// Redis, if configured.
    pub redis: Option<RedisSpec>,
    /// L1 capacity, bytes.
    pub l1_max_bytes: u64,
}

impl CacheSettings {
    /// Settings with an engine configuration and no Redis (tests, benches).
    pub fn new(cluster: &str, config: CacheConfig) -> Result<Self, Vec<Problem>> {
        let policy = CachePolicy::new(&config).map_err(|e| vec![engine_problem(&e)])?;
        Ok(CacheSettings {
            cluster: cluster.to_owned(),
            policy,
            policy_config: config,
            redis: None,
            l1_max_bytes: DEFAULT_L1_BYTES,
        })
    }

    /// The names of the Secrets the controller must read: `(credentials, certs)`.
    pub fn secret_names(&self) -> (Option<&str>, Option<&str>) {
        match &self.redis {
            Some(r) => (r.credentials_secret.as_deref(), r.cert_secret.as_deref()),
            None => (None, None),
        }
    }
}

/// `defaultTtl` when the spec gives none: `0`, only the keys a `ttlPolicies` pattern names
/// are cached (the engine's own default, 5 minutes, suits the simulator's studies).
pub const DEFAULT_TTL: &str = "0";

/// Default L1 capacity: 64 MiB.
pub const DEFAULT_L1_BYTES: u64 = 64 << 20;

fn engine_problem(e: &engine::cache::Error) -> Problem {
    match e {
        engine::cache::Error::Invalid { field, message } => {
            Problem { field: format!("spec.{field}"), message: message.clone() }
        }
        other => Problem { field: "spec".into(), message: other.to_string() },
    }
}

/// Collects problems, each naming its field under `spec.redisConfig`.
struct Reader {
    problems: Vec<Problem>,
}

impl Reader {
    fn bad(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem { field: format!("spec.redisConfig.{key}"), message: message.into() });
    }

    fn duration(&mut self, key: &str, text: Option<&String>, default: Duration) -> Duration {
        let Some(text) = text else { return default };
        match SimDuration::parse(text) {
            Ok(d) if d > SimDuration::ZERO => Duration::from_millis(d.as_millis()),
            Ok(_) => {
                self.bad(key, "must be above zero");
                default
            }
            Err(e) => {
                self.bad(key, e.to_string());
                default
            }
        }
    }

    fn host_port(&mut self, key: &str, text: &str) -> Option<(String, u16)> {
        let parsed =
            text.rsplit_once(':').and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)));
        match parsed {
            Some((h, p)) if !h.is_empty() && p > 0 => Some((h.to_owned(), p)),
            _ => {
                self.bad(key, format!("{text:?} is not host:port (such as \"redis:6379\")"));
                None
            }
        }
    }
}

/// Reads one of the closed-vocabulary strings (`strategy`, `consistency`, ...) as the engine's
/// enum; a value outside it is a problem naming the field and the allowed values.
fn word<T: serde::de::DeserializeOwned>(
    field: &str,
    value: Option<&String>,
    allowed: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let v = value?;
    match serde_json::from_value::<T>(Value::String(v.clone())) {
        Ok(t) => Some(t),
        Err(_) => {
            problems
                .push(Problem { field: format!("spec.{field}"), message: format!("{v:?} is not one of {allowed}") });
            None
        }
    }
}

/// The caching fields of the spec as the engine's configuration (unset fields keep the
/// engine's defaults). Values outside a field's vocabulary are problems naming the field.
fn engine_config(spec: &CacheIntegrationSpec, problems: &mut Vec<Problem>) -> CacheConfig {
    let mut c = CacheConfig::default();
    if let Some(v) = word::<StrategyKind>(
        "strategy",
        spec.strategy.as_ref(),
        "write-through, write-behind, read-through, cache-aside",
        problems,
    ) {
        c.strategy = v;
    }
    if let Some(v) = word::<Consistency>("consistency", spec.consistency.as_ref(), "strong, eventual", problems) {
        c.consistency = v;
    }
    if let Some(v) = word::<Levels>("level", spec.level.as_ref(), "l1, l2, both", problems) {
        c.level = v;
    }
    if let Some(v) = word::<RefreshKind>("refresh", spec.refresh.as_ref(), "lazy, eager", problems) {
        c.refresh = v;
    }
    if let Some(v) = word::<EvictionPolicy>(
        "evictionPolicy",
        spec.eviction_policy.as_ref(),
        "lru, lfu, fifo, allkeys-lru, allkeys-lfu, volatile-lru, volatile-lfu",
        problems,
    ) {
        c.eviction_policy = v;
    }
    // Keys no pattern names are not cached unless `defaultTtl` says so: instance state and
    // region health feed the engine's failover decisions and stay live unless asked otherwise.
    c.default_ttl = spec.default_ttl.clone().unwrap_or_else(|| DEFAULT_TTL.to_owned());
    if let Some(a) = spec.refresh_at {
        c.refresh_at = a;
    }
    c.l1_ttl = spec.l1_ttl.clone();
    if let Some(w) = &spec.write_behind {
        if let Some(d) = &w.flush_delay {
            c.write_behind.flush_delay = d.clone();
        }
        if let Some(n) = w.max_batch {
            c.write_behind.max_batch = n;
        }
    }
    if let Some(t) = &spec.ttl_policies {
        match serde_json::from_value::<TtlPolicies>(t.0.clone()) {
            Ok(p) => c.ttl_policies = p,
            Err(_) => problems.push(Problem {
                field: "spec.ttlPolicies".into(),
                message: "must be a map of pattern to duration (`prices: 5m`) or a list of \
                          {pattern, ttl, refresh, refreshAt, level, consistency}, with refresh lazy or eager, \
                          level l1, l2 or both, consistency strong or eventual"
                    .into(),
            }),
        }
    }
    if let Some(w) = &spec.warming_config {
        c.warming_config = WarmingConfig {
            enabled: w.enabled.unwrap_or(false),
            patterns: w
                .patterns
                .iter()
                .flatten()
                .map(|p| WarmPatternConfig { pattern: p.pattern.clone(), priority: p.priority.unwrap_or(0) })
                .collect(),
            max_keys: w.max_keys,
            schedule: w.schedule.clone(),
        };
    }
    if let Some(m) = &spec.memory_thresholds {
        let d = MemoryThresholds::default();
        c.memory_thresholds = MemoryThresholds {
            warning: m.warning.unwrap_or(d.warning),
            critical: m.critical.unwrap_or(d.critical),
            eviction: m.eviction.unwrap_or(d.eviction),
            target: m.target,
        };
    }
    c
}

/// Translates a CacheIntegration spec. `namespace` is the resource's (the default key
/// namespace). Every problem is reported, each naming its field and what is allowed.
pub fn from_spec(namespace: &str, spec: &CacheIntegrationSpec) -> Result<CacheSettings, Vec<Problem>> {
    let mut problems = Vec::new();

    // The caching fields, as the engine's configuration reads them; the engine checks the
    // values (durations, patterns, cron, thresholds) and names the first bad one.
    let config = engine_config(spec, &mut problems);
    let policy = if problems.is_empty() {
        match CachePolicy::new(&config) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(engine_problem(&e));
                None
            }
        }
    } else {
        None
    };

    let empty = RedisConfig::default();
    let rc = spec.redis_config.as_ref().unwrap_or(&empty);
    let mut r = Reader { problems: Vec::new() };
    let cluster = rc.cluster_name.clone().unwrap_or_else(|| namespace.to_owned());
    if cluster.is_empty() || cluster.contains(char::is_whitespace) {
        r.bad("clusterName", "must be a non-empty name without spaces");
    }
    let l1_max_bytes = match rc.l1_max_bytes {
        None => DEFAULT_L1_BYTES,
        Some(n) if n >= 1 << 16 => n.unsigned_abs(),
        Some(n) => {
            r.bad("l1MaxBytes", format!("must be at least 65536 bytes (got {n})"));
            DEFAULT_L1_BYTES
        }
    };
    let endpoint = rc.endpoint.clone();
    let sentinels: Vec<(String, u16)> = rc
        .sentinel_hosts
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, h)| r.host_port(&format!("sentinelHosts[{i}]"), h))
        .collect();
    let mut tls = rc.tls.unwrap_or(false);
    let insecure = rc.insecure_skip_verify.unwrap_or(false);
    let mut db = match rc.database {
        Some(n) if !(0..=15).contains(&n) => {
            r.bad("database", format!("must be a whole number between 0 and 15 (got {n})"));
            None
        }
        other => other,
    };
    if rc.credentials_secret.is_some() && rc.password_secret.is_some() {
        r.bad("passwordSecret", "give either credentialsSecret or passwordSecret, not both");
    }
    let credentials_secret = rc.credentials_secret.clone().or_else(|| rc.password_secret.clone());
    let cert_secret = rc.cert_secret.clone();
    let timeout = r.duration("timeout", rc.timeout.as_ref(), Duration::from_millis(250));
    let connect_timeout = r.duration("connectTimeout", rc.connect_timeout.as_ref(), Duration::from_secs(1));
    let backoff_min = r.duration("backoffMin", rc.backoff_min.as_ref(), Duration::from_millis(500));
    let backoff_max = r.duration("backoffMax", rc.backoff_max.as_ref(), Duration::from_secs(30));
    if backoff_max < backoff_min {
        r.bad("backoffMax", "must not be shorter than backoffMin");
    }
    let master_name = rc.master_name.clone().unwrap_or_else(|| "mymaster".into());

    let topology = if !sentinels.is_empty() {
        if endpoint.is_some() {
            r.bad("endpoint", "give either endpoint or sentinelHosts, not both");
        }
        Some(Topology::Sentinel { sentinels, master_name, sentinel_password: None })
    } else if let Some(e) = endpoint {
        let (scheme, rest) = match e.split_once("://") {
            Some((s, rest)) => (Some(s), rest),
            None => (None, e.as_str()),
        };
        match scheme {
            None | Some("redis") => {}
            Some("rediss") => tls = true,
            Some(other) => r.bad("endpoint", format!("scheme {other:?} is not redis:// or rediss://")),
        }
        let (hostport, path) = match rest.split_once('/') {
            Some((hp, path)) => (hp, path.split(['?', '#']).next().unwrap_or("")),
            None => (rest, ""),
        };
        if hostport.contains('@') {
            r.bad("endpoint", "must not hold credentials; name a credentialsSecret instead");
        }
        if !path.is_empty() {
            match path.parse::<i64>() {
                Ok(n) if (0..=15).contains(&n) && db.is_none() => db = Some(n),
                Ok(_) if db.is_some() => r.bad("endpoint", "gives a database and so does database"),
                _ => r.bad("endpoint", format!("database {path:?} is not a number between 0 and 15")),
            }
        }
        let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:6379") };
        r.host_port("endpoint", &hostport).map(|(host, port)| Topology::Single { host, port })
    } else {
        None
    };
    problems.extend(r.problems);

    let redis = topology.map(|topology| RedisSpec {
        topology,
        tls,
        insecure,
        db: db.unwrap_or(0),
        credentials_secret,
        cert_secret,
        timeout,
        connect_timeout,
        backoff_min,
        backoff_max,
    });
    match policy {
        Some(policy) if problems.is_empty() => {
            Ok(CacheSettings { cluster, policy, policy_config: config, redis, l1_max_bytes })
        }
        _ => Err(problems),
    }
}

fn text(data: &SecretData, key: &str, secret: &str) -> Result<Option<String>, Problem> {
    match data.get(key) {
        None => Ok(None),
        Some(bytes) => {
            String::from_utf8(bytes.clone()).map(|s| Some(s.trim_end_matches(['\n', '\r']).to_owned())).map_err(|_| {
                Problem { field: format!("Secret {secret}"), message: format!("key {key:?} is not UTF-8 text") }
            })
        }
    }
}

impl RedisSpec {
    /// The connection settings, with the credentials and certificates from the Secrets. Errors
    /// name the Secret and key, never a value.
    pub fn settings(&self, secrets: &Secrets) -> Result<RedisSettings, Vec<Problem>> {
        let mut problems = Vec::new();
        let (mut username, mut password, mut sentinel_password) = (None, None, None);
        if let Some(name) = &self.credentials_secret {
            match &secrets.credentials {
                None => problems.push(Problem {
                    field: "spec.redisConfig.credentialsSecret".into(),
                    message: format!("Secret {name:?} was not found"),
                }),
                Some(data) => {
                    for (key, slot) in [
                        ("username", &mut username),
                        ("password", &mut password),
                        ("sentinelPassword", &mut sentinel_password),
                    ] {
                        match text(data, key, name) {
                            Ok(v) => *slot = v,
                            Err(p) => problems.push(p),
                        }
                    }
                    if password.is_none() {
                        problems.push(Problem {
                            field: "spec.redisConfig.credentialsSecret".into(),
                            message: format!(
                                "Secret {name:?} has no key \"password\" (keys: password, username, sentinelPassword)"
                            ),
                        });
                    }
                }
            }
        }
        let mut tls = self.tls.then_some(TlsSettings { ca_pem: None, client_pem: None, insecure: self.insecure });
        if let Some(name) = &self.cert_secret {
            match (&secrets.certs, tls.as_mut()) {
                (None, _) => problems.push(Problem {
                    field: "spec.redisConfig.certSecret".into(),
                    message: format!("Secret {name:?} was not found"),
                }),
                (Some(_), None) => problems.push(Problem {
                    field: "spec.redisConfig.certSecret".into(),
                    message: "certificates need TLS: use a rediss:// endpoint or tls: true".into(),
                }),
                (Some(data), Some(t)) => {
                    t.ca_pem = data.get("ca.crt").cloned();
                    match (data.get("tls.crt"), data.get("tls.key")) {
                        (Some(c), Some(k)) => t.client_pem = Some((c.clone(), k.clone())),
                        (None, None) => {}
                        _ => problems.push(Problem {
                            field: "spec.redisConfig.certSecret".into(),
                            message: format!("Secret {name:?} must hold both tls.crt and tls.key, or neither"),
                        }),
                    }
                    if t.ca_pem.is_none() && t.client_pem.is_none() {
                        problems.push(Problem {
                            field: "spec.redisConfig.certSecret".into(),
                            message: format!("Secret {name:?} has neither ca.crt nor tls.crt/tls.key"),
                        });
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut topology = self.topology.clone();
        if let Topology::Sentinel { sentinel_password: sp, .. } = &mut topology {
            *sp = sentinel_password.map(Secret);
        }
        Ok(RedisSettings {
            topology,
            tls,
            username,
            password: password.map(Secret),
            db: self.db,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
        })
    }
}
