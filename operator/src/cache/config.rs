//! The one place where a `CacheIntegration` spec becomes the cache's configuration: the caching
//! fields (`strategy`, `ttlPolicies`, `warmingConfig`, `evictionPolicy`) become the engine's
//! [`engine::cache::CacheConfig`], validated into its [`CachePolicy`]; `redisConfig` becomes
//! [`RedisSettings`] once the controller has read the Secrets it names.
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
use engine::cache::{CacheConfig, CachePolicy};
use serde_json::{Map, Value};

use super::l2::{RedisSettings, Secret, TlsSettings, Topology};
use crate::crd::CacheIntegrationSpec;
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

struct Reader<'a> {
    map: &'a Map<String, Value>,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn bad(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem { field: format!("spec.redisConfig.{key}"), message: message.into() });
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.bad(key, format!("must be a string (got {other})"));
                None
            }
        }
    }

    fn boolean(&mut self, key: &str) -> bool {
        match self.map.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.bad(key, format!("must be true or false (got {other})"));
                false
            }
        }
    }

    fn integer(&mut self, key: &str, lo: i64, hi: i64) -> Option<i64> {
        let v = self.map.get(key)?;
        match v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                self.bad(key, format!("must be a whole number between {lo} and {hi} (got {v})"));
                None
            }
        }
    }

    fn duration(&mut self, key: &str, default: Duration) -> Duration {
        let Some(text) = self.string(key) else { return default };
        match SimDuration::parse(&text) {
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

/// Translates a CacheIntegration spec. `namespace` is the resource's (the default key
/// namespace). Every problem is reported, each naming its field and what is allowed.
pub fn from_spec(namespace: &str, spec: &CacheIntegrationSpec) -> Result<CacheSettings, Vec<Problem>> {
    let mut problems = Vec::new();

    // The caching fields, as the engine's configuration reads them.
    let mut fields = Map::new();
    if let Some(s) = &spec.strategy {
        fields.insert("strategy".into(), Value::String(s.clone()));
    }
    if let Some(t) = &spec.ttl_policies {
        fields.insert("ttlPolicies".into(), t.0.clone());
    }
    if let Some(w) = &spec.warming_config {
        fields.insert("warmingConfig".into(), w.0.clone());
    }
    if let Some(e) = &spec.eviction_policy {
        fields.insert("evictionPolicy".into(), Value::String(e.clone()));
    }
    let policy = match serde_json::from_value::<CacheConfig>(Value::Object(fields)) {
        Ok(config) => match CachePolicy::new(&config) {
            Ok(p) => Some((p, config)),
            Err(e) => {
                problems.push(engine_problem(&e));
                None
            }
        },
        Err(e) => {
            problems.push(Problem {
                field: "spec".into(),
                message: format!(
                    "{e} (strategy: write-through, write-behind, read-through or cache-aside; evictionPolicy: \
                     lru, lfu, fifo, allkeys-lru, allkeys-lfu, volatile-lru or volatile-lfu; ttlPolicies: a map \
                     pattern -> duration or a list of {{pattern, ttl, refresh, refreshAt, level, consistency}})"
                ),
            });
            None
        }
    };

    let empty = Map::new();
    let map = match spec.redis_config.as_ref().map(|f| &f.0) {
        None => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            problems.push(Problem {
                field: "spec.redisConfig".into(),
                message: format!("must be an object (got {other})"),
            });
            &empty
        }
    };
    let mut r = Reader { map, problems: Vec::new() };
    let cluster = r.string("clusterName").unwrap_or_else(|| namespace.to_owned());
    if cluster.is_empty() || cluster.contains(char::is_whitespace) {
        r.bad("clusterName", "must be a non-empty name without spaces");
    }
    let l1_max_bytes = r.integer("l1MaxBytes", 1 << 16, i64::MAX).map_or(DEFAULT_L1_BYTES, |n| n.unsigned_abs());
    let endpoint = r.string("endpoint");
    let sentinels: Vec<(String, u16)> = match map.get("sentinelHosts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(hosts)) => hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| match h.as_str() {
                Some(s) => r.host_port(&format!("sentinelHosts[{i}]"), s),
                None => {
                    r.bad(&format!("sentinelHosts[{i}]"), "must be a \"host:port\" string");
                    None
                }
            })
            .collect(),
        Some(_) => {
            r.bad("sentinelHosts", "must be a list of \"host:port\" strings");
            Vec::new()
        }
    };
    let mut tls = r.boolean("tls");
    let insecure = r.boolean("insecureSkipVerify");
    let mut db = r.integer("database", 0, 15);
    let credentials_secret = r.string("credentialsSecret").or_else(|| r.string("passwordSecret"));
    let cert_secret = r.string("certSecret");
    let timeout = r.duration("timeout", Duration::from_millis(250));
    let connect_timeout = r.duration("connectTimeout", Duration::from_secs(1));
    let backoff_min = r.duration("backoffMin", Duration::from_millis(500));
    let backoff_max = r.duration("backoffMax", Duration::from_secs(30));
    if backoff_max < backoff_min {
        r.bad("backoffMax", "must not be shorter than backoffMin");
    }
    let master_name = r.string("masterName").unwrap_or_else(|| "mymaster".into());

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
        Some((policy, policy_config)) if problems.is_empty() => {
            Ok(CacheSettings { cluster, policy, policy_config, redis, l1_max_bytes })
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
