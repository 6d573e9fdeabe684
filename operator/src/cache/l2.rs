//! L2: Redis, through the `redis` crate's tokio [`ConnectionManager`], behind a circuit breaker.
//!
//! ## Connection
//! A single server (`redis://` or `rediss://`), or a master found through Redis Sentinel: the
//! sentinels are asked for the master of `masterName` each time a connection is made, so after a
//! failover the next connection goes to the promoted replica. AUTH (password, or ACL user and
//! password) and TLS (a CA, optionally a client certificate) apply to the master; the sentinels
//! get the same password when they have one (`sentinelPassword`).
//!
//! ## Never failing a caller
//! Every command has a deadline (`timeout`, 250 ms by default). The first command that fails or
//! times out opens the breaker: the connection is dropped, one warning is logged, and from then
//! on every call returns [`L2Error::Unavailable`] at once without touching the network, so the
//! cache answers from L1 or the source. A background task (one at a time) reconnects with
//! exponential back-off (`backoffMin` doubling to `backoffMax`, each with up to 25 % jitter),
//! resolving the master again through the sentinels, and checks the server with a `PING` and a
//! write probe (a replica left behind by a failover answers `READONLY` and is not used); when it
//! succeeds the breaker closes and one line says so. A slow server therefore costs one timed out
//! call per back-off period, not one per call.
//!
//! ## Values
//! Keys are namespaced (`novacron:<cluster>:<key>`); values are stored with `SET .. PX ttl` so
//! Redis drops them at their deadline too. Several keys at once go in one pipeline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{AsyncCommands, Client, ConnectionAddr, TlsCertificates};

/// A secret string: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where Redis is.
#[derive(Clone, Debug, PartialEq)]
pub enum Topology {
    /// One server.
    Single {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A master found through Redis Sentinel.
    Sentinel {
        /// The sentinels, `(host, port)`.
        sentinels: Vec<(String, u16)>,
        /// The monitored master's name (`mymaster`).
        master_name: String,
        /// The sentinels' own password (`requirepass` in sentinel.conf), if they have one.
        sentinel_password: Option<Secret>,
    },
}

/// TLS towards Redis (`rediss://`).
#[derive(Clone, PartialEq)]
pub struct TlsSettings {
    /// PEM CA certificate to trust instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate and key (mutual TLS).
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
    /// Accept any certificate (testing only).
    pub insecure: bool,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.client_pem.is_some())
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// How to reach Redis.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisSettings {
    /// Single server or Sentinel.
    pub topology: Topology,
    /// TLS, if `rediss://` or `tls: true`.
    pub tls: Option<TlsSettings>,
    /// ACL user name (AUTH user password), if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Database number.
    pub db: i64,
    /// Deadline of one command or pipeline.
    pub timeout: Duration,
    /// Deadline of one connection attempt.
    pub connect_timeout: Duration,
    /// First reconnection delay.
    pub backoff_min: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
}

impl RedisSettings {
    /// A single plain server with the default timeouts (for tests and benches).
    pub fn single(host: &str, port: u16) -> Self {
        RedisSettings {
            topology: Topology::Single { host: host.to_owned(), port },
            tls: None,
            username: None,
            password: None,
            db: 0,
            timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }

    /// Where it connects, for logs (no credentials).
    pub fn describe(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        match &self.topology {
            Topology::Single { host, port } => format!("{scheme}://{host}:{port}/{}", self.db),
            Topology::Sentinel { sentinels, master_name, .. } => {
                let s: Vec<String> = sentinels.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                format!("{scheme} master {master_name:?} via sentinels {}", s.join(","))
            }
        }
    }
}

/// Why an L2 call did not happen or failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum L2Error {
    /// The breaker is open: Redis failed recently and is being reconnected in the background.
    #[error("redis unavailable")]
    Unavailable,
    /// The command did not answer within the deadline.
    #[error("redis timed out after {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection broke.
    #[error("redis: {0}")]
    Redis(String),
}

/// Redis's memory figures (`INFO memory`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RedisMemory {
    /// `used_memory`, bytes.
    pub used_bytes: u64,
    /// `used_memory_peak`, bytes.
    pub peak_bytes: u64,
    /// `maxmemory`, bytes (0: no limit).
    pub max_bytes: u64,
    /// `maxmemory_policy`.
    pub policy: String,
    /// `mem_fragmentation_ratio`.
    pub fragmentation_ratio: f64,
    /// `evicted_keys` (`INFO stats`).
    pub evicted_keys: u64,
}

enum State {
    Up(ConnectionManager),
    Down { retry_at: Instant, backoff: Duration },
}

struct Inner {
    settings: RedisSettings,
    prefix: String,
    state: Mutex<State>,
    probing: AtomicBool,
    /// Breaker openings (outages seen).
    outages: AtomicU64,
    /// Whether Redis was ever reached (the first failed attempt of a cache that never reached
    /// it logs a warning; later failed attempts of an outage only debug lines).
    ever_up: AtomicBool,
}

/// The Redis level. Cheap to clone (shared).
#[derive(Clone)]
pub struct L2 {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for L2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2").field("redis", &self.inner.settings.describe()).finish_non_exhaustive()
    }
}

fn redis_err(e: redis::RedisError) -> L2Error {
    L2Error::Redis(e.to_string())
}

/// `d` plus up to 25 % (from the low bits of the clock: jitter, not security).
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
    d + d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

impl L2 {
    /// An L2 for `settings` whose keys start with `novacron:<cluster>:`. Nothing is connected
    /// until [`L2::connect`] or the first call (which starts a background connection).
    pub fn new(settings: RedisSettings, cluster: &str) -> Self {
        let inner = Inner {
            prefix: format!("novacron:{cluster}:"),
            state: Mutex::new(State::Down { retry_at: Instant::now(), backoff: settings.backoff_min }),
            settings,
            probing: AtomicBool::new(false),
            outages: AtomicU64::new(0),
            ever_up: AtomicBool::new(false),
        };
        L2 { inner: Arc::new(inner) }
    }

    /// The Redis key of a cache key.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    /// Whether the breaker is closed (the last command or probe succeeded).
    pub fn is_up(&self) -> bool {
        matches!(*self.lock(), State::Up(_))
    }

    /// Times the breaker opened.
    pub fn outages(&self) -> u64 {
        self.inner.outages.load(Ordering::Relaxed)
    }

    /// The settings (for status and logs).
    pub fn settings(&self) -> &RedisSettings {
        &self.inner.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (plain assignments).
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connects now (one attempt, bounded by the connect timeout); `true` if Redis is usable.
    pub async fn connect(&self) -> bool {
        if self.is_up() {
            return true;
        }
        if self.inner.probing.swap(true, Ordering::AcqRel) {
            // Another probe runs: wait for it to finish.
            while self.inner.probing.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            return self.is_up();
        }
        let ok = Self::probe(&self.inner).await;
        self.inner.probing.store(false, Ordering::Release);
        ok
    }

    /// The connection, or `Unavailable` (starting a background reconnect when one is due).
    fn conn(&self) -> Result<ConnectionManager, L2Error> {
        let due = match &*self.lock() {
            State::Up(c) => return Ok(c.clone()),
            State::Down { retry_at, .. } => Instant::now() >= *retry_at,
        };
        if due && !self.inner.probing.swap(true, Ordering::AcqRel) {
            let inner = self.inner.clone();
            tokio::spawn(async move {
                Self::probe(&inner).await;
                inner.probing.store(false, Ordering::Release);
            });
        }
        Err(L2Error::Unavailable)
    }

    /// One reconnection attempt: resolve, connect, PING and a write probe. Updates the state.
    async fn probe(inner: &Arc<Inner>) -> bool {
        let s = &inner.settings;
        let attempt = async {
            let client = Self::client(s).await?;
            let cfg = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(s.connect_timeout))
                .set_response_timeout(Some(s.timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(200));
            let mut cm = ConnectionManager::new_with_config(client, cfg).await.map_err(redis_err)?;
            let _: String = redis::cmd("PING").query_async(&mut cm).await.map_err(redis_err)?;
            // A replica (the old master after a failover) refuses writes: not usable.
            let probe_key = format!("{}probe", inner.prefix);
            let _: () = cm.set_ex(&probe_key, 1, 10).await.map_err(redis_err)?;
            Ok::<_, L2Error>(cm)
        };
        let result = match tokio::time::timeout(s.connect_timeout + s.timeout * 3, attempt).await {
            Ok(r) => r,
            Err(_) => Err(L2Error::Timeout(s.connect_timeout + s.timeout * 3)),
        };
        let mut state = inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(cm) => {
                let was_up_before = inner.ever_up.swap(true, Ordering::AcqRel);
                if was_up_before {
                    tracing::info!(redis = %s.describe(), "redis reachable again; the cache uses it");
                } else {
                    tracing::info!(redis = %s.describe(), "redis connected");
                }
                *state = State::Up(cm);
                true
            }
            Err(e) => {
                let backoff = match &*state {
                    State::Down { backoff, .. } => *backoff,
                    State::Up(_) => s.backoff_min,
                };
                if !inner.ever_up.load(Ordering::Acquire) && backoff == s.backoff_min {
                    // The first attempt ever: say once that the cache runs without Redis.
                    tracing::warn!(redis = %s.describe(), error = %e,
                        "redis unavailable; caching in process only and retrying in the background");
                } else {
                    tracing::debug!(redis = %s.describe(), error = %e, "redis reconnection failed");
                }
                *state = State::Down {
                    retry_at: Instant::now() + jittered(backoff),
                    backoff: (backoff * 2).min(s.backoff_max),
                };
                false
            }
        }
    }

    /// A client for the current master.
    async fn client(s: &RedisSettings) -> Result<Client, L2Error> {
        if s.tls.is_some() {
            // rustls is built with two crypto providers here (ring, and aws-lc-rs through the
            // AWS SDK), so it needs a process default; keep one that is already installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let certs = s.tls.as_ref().map(|t| TlsCertificates {
            client_tls: t
                .client_pem
                .as_ref()
                .map(|(c, k)| redis::ClientTlsConfig { client_cert: c.clone(), client_key: k.clone() }),
            root_cert: t.ca_pem.clone(),
        });
        match &s.topology {
            Topology::Single { host, port } => {
                let addr = match &s.tls {
                    None => ConnectionAddr::Tcp(host.clone(), *port),
                    Some(t) => ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: t.insecure,
                        tls_params: None,
                    },
                };
                let mut redis = redis::RedisConnectionInfo::default().set_db(s.db);
                if let Some(u) = &s.username {
                    redis = redis.set_username(u);
                }
                if let Some(p) = &s.password {
                    redis = redis.set_password(&p.0);
                }
                let info =
                    redis::IntoConnectionInfo::into_connection_info(addr).map_err(redis_err)?.set_redis_settings(redis);
                match certs {
                    Some(c) if s.tls.as_ref().is_some_and(|t| t.ca_pem.is_some() || t.client_pem.is_some()) => {
                        Client::build_with_tls(info, c).map_err(redis_err)
                    }
                    _ => Client::open(info).map_err(redis_err),
                }
            }
            Topology::Sentinel { sentinels, master_name, sentinel_password } => {
                let addrs = sentinels.iter().map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p));
                let mut b = SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)
                    .map_err(redis_err)?
                    .set_client_to_redis_db(s.db);
                if let Some(u) = &s.username {
                    b = b.set_client_to_redis_username(u);
                }
                if let Some(p) = &s.password {
                    b = b.set_client_to_redis_password(&p.0);
                }
                if let Some(p) = sentinel_password {
                    b = b.set_client_to_sentinel_password(&p.0);
                }
                if let Some(t) = &s.tls {
                    let mode = if t.insecure { redis::TlsMode::Insecure } else { redis::TlsMode::Secure };
                    b = b.set_client_to_redis_tls_mode(mode);
                    if let Some(c) = certs {
                        b = b.set_client_to_redis_certificates(c);
                    }
                }
                let mut sc = b.build().map_err(redis_err)?;
                sc.async_get_client().await.map_err(redis_err)
            }
        }
    }

    /// Records a failed command: the first failure of an outage opens the breaker and logs once.
    fn failed(&self, op: &str, e: &L2Error) {
        let mut state = self.lock();
        if let State::Up(_) = &*state {
            self.inner.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(redis = %self.inner.settings.describe(), op, error = %e,
                "redis failed; caching in process only and reconnecting in the background");
            *state = State::Down {
                retry_at: Instant::now() + jittered(self.inner.settings.backoff_min),
                backoff: (self.inner.settings.backoff_min * 2).min(self.inner.settings.backoff_max),
            };
        }
    }

    /// Runs `f` on the connection within the deadline; failures open the breaker.
    async fn run<T, F, Fut>(&self, op: &str, f: F) -> Result<T, L2Error>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let cm = self.conn()?;
        let deadline = self.inner.settings.timeout;
        let r = match tokio::time::timeout(deadline, f(cm)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_err(e)),
            Err(_) => Err(L2Error::Timeout(deadline)),
        };
        if let Err(e) = &r {
            self.failed(op, e);
        }
        r
    }

    /// `GET` of one key.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, L2Error> {
        let k = self.redis_key(key);
        self.run("get", |mut c| async move { c.get(k).await }).await
    }

    /// `MGET` of several keys, in their order.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, L2Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ks: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
        self.run("get", |mut c| async move { redis::cmd("MGET").arg(ks).query_async(&mut c).await }).await
    }

    /// `SET key value PX ttl` for each entry, in one pipeline. Entries with a zero TTL are
    /// deleted instead.
    pub async fn set_many(&self, entries: &[(String, Vec<u8>, Duration)]) -> Result<(), L2Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (k, v, ttl) in entries {
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            if ms == 0 {
                pipe.del(self.redis_key(k)).ignore();
            } else {
                pipe.cmd("SET").arg(self.redis_key(k)).arg(v.as_slice()).arg("PX").arg(ms).ignore();
            }
        }
        self.run("set", |mut c| async move { pipe.query_async(&mut c).await }).await
    }

    /// `SET key value PX ttl`.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), L2Error> {
        self.set_many(&[(key.to_owned(), value.to_vec(), ttl)]).await
    }

    /// `DEL` of several keys.
    pub async fn delete(&self, keys: &[String]) -> Result<(), L2Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let ks: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
        self.run("delete", |mut c| async move { c.del(ks).await }).await
    }

    /// `INFO memory` and `INFO stats`.
    pub async fn memory(&self) -> Result<RedisMemory, L2Error> {
        let text: String = self
            .run("info", |mut c| async move {
                let a: String = redis::cmd("INFO").arg("memory").query_async(&mut c).await?;
                let b: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await?;
                Ok(format!("{a}\n{b}"))
            })
            .await?;
        Ok(parse_info(&text))
    }
}

/// Reads the fields of `INFO memory`/`INFO stats` that status needs.
pub fn parse_info(text: &str) -> RedisMemory {
    let mut m = RedisMemory::default();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once(':') else { continue };
        match k {
            "used_memory" => m.used_bytes = v.parse().unwrap_or(0),
            "used_memory_peak" => m.peak_bytes = v.parse().unwrap_or(0),
            "maxmemory" => m.max_bytes = v.parse().unwrap_or(0),
            "maxmemory_policy" => v.clone_into(&mut m.policy),
            "mem_fragmentation_ratio" => m.fragmentation_ratio = v.parse().unwrap_or(0.0),
            "evicted_keys" => m.evicted_keys = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    m
}
