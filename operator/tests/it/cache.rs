//! The provider cache against real Redis: `redis-server` (and `redis-sentinel`) started on free
//! loopback ports by [`Redis`] (installed with apt-get when missing, killed on drop), the
//! in-memory cloud behind the cache, measured by the operator's own `Metered` wrapper so that the
//! tests count the calls that reached the cloud.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::Market;
use engine::cache::CacheConfig;
use operator::cache::l2::Topology;
use operator::cache::{CacheSettings, CachingProvider, ProviderCache, RedisSettings, Secrets};
use operator::crd::CacheIntegrationSpec;
use operator::metrics::{Metrics, ProviderLabels};
use operator::provider::memory::MemoryCloud;
use operator::provider::metered::Metered;
use operator::provider::{CloudProvider, CreateRequest, ProviderError};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Redis processes
// ---------------------------------------------------------------------------------------------

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// `redis-server` and `redis-sentinel`, installed with apt-get (Debian packages `redis-server`,
/// `redis-sentinel`) when missing; the apt lock file of the other tests keeps installs apart.
fn redis_binaries() -> (PathBuf, PathBuf) {
    static ONCE: Mutex<Option<(PathBuf, PathBuf)>> = Mutex::new(None);
    let mut once = ONCE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(b) = once.as_ref() {
        return b.clone();
    }
    let found = || Some((on_path("redis-server")?, on_path("redis-sentinel")?));
    let bins = match found() {
        Some(b) => b,
        None => {
            let lock = File::create(std::env::temp_dir().join("novacron-apt-install.lock")).expect("lock file");
            lock.lock().expect("lock");
            match found() {
                Some(b) => b,
                None => {
                    eprintln!("redis-server or redis-sentinel is missing: installing them with apt-get");
                    let out = Command::new("sh")
                        .args([
                            "-c",
                            "apt-get update -q && apt-get install -y -q -o DPkg::Lock::Timeout=600 redis-server redis-sentinel",
                        ])
                        .env("DEBIAN_FRONTEND", "noninteractive")
                        .output()
                        .expect("apt-get runs");
                    assert!(out.status.success(), "apt-get install redis: {}", String::from_utf8_lossy(&out.stderr));
                    found().expect("redis-server and redis-sentinel on PATH after installing them")
                }
            }
        }
    };
    *once = Some(bins.clone());
    bins
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One redis-server or redis-sentinel on loopback, killed on drop.
pub(crate) struct Redis {
    pub(crate) port: u16,
    child: Option<Child>,
    args: Vec<String>,
    sentinel: bool,
    dir: tempfile::TempDir,
}

impl Redis {
    /// A server with these extra `--option value` arguments.
    pub(crate) fn start(extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.path().display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut r = Redis { port, child: None, args, sentinel: false, dir };
        r.spawn();
        r
    }

    /// A sentinel watching `master` as `mymaster` (quorum 1, down after 1 s).
    fn sentinel(master_port: u16) -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir.path().display()
            ),
        )
        .expect("sentinel.conf");
        let mut r = Redis { port, child: None, args: vec![conf.display().to_string()], sentinel: true, dir };
        r.spawn();
        r
    }

    pub(crate) fn spawn(&mut self) {
        let (server, sentinel) = redis_binaries();
        let exe = if self.sentinel { sentinel } else { server };
        let log = File::create(self.dir.path().join("log")).expect("log");
        let child = Command::new(exe)
            .args(&self.args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("redis starts");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis on {} never listened: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.pid().to_string()]).status().expect("kill").success();
        assert!(ok, "kill {sig}");
    }

    fn settings(&self) -> RedisSettings {
        RedisSettings {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
            ..RedisSettings::single("127.0.0.1", self.port)
        }
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }

    async fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = self.conn().await;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut c).await.unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn config(v: serde_json::Value) -> CacheConfig {
    serde_json::from_value(v).expect("engine cache config")
}

fn settings(cluster: &str, v: serde_json::Value) -> CacheSettings {
    CacheSettings::new(cluster, config(v)).expect("valid cache config")
}

/// The in-memory cloud, measured, cached.
struct World {
    cloud: Arc<MemoryCloud>,
    metrics: Arc<Metrics>,
    provider: Arc<CachingProvider>,
}

impl World {
    fn new(cache: ProviderCache) -> World {
        Self::over(Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog())), cache)
    }

    fn over(cloud: Arc<MemoryCloud>, cache: ProviderCache) -> World {
        let metrics = Arc::new(Metrics::default().register(&mut prometheus_client::registry::Registry::default()));
        cache.set_metrics(metrics.clone());
        let metered: Arc<dyn CloudProvider> = Arc::new(Metered::new(cloud.clone(), metrics.clone()));
        World { cloud, metrics, provider: Arc::new(CachingProvider::new(metered, cache)) }
    }

    /// Calls of `op` that reached the cloud.
    fn calls(&self, op: &str) -> u64 {
        self.metrics.provider_calls.get_or_create(&ProviderLabels { op: op.into(), result: "ok".into() }).get()
    }

    fn cache(&self) -> &ProviderCache {
        self.provider.cache()
    }

    fn set_price(&self, p: f64) {
        self.cloud.set_price("aws-us-east-1", "us-east-1a", "m5.large", Market::OnDemand, p);
    }

    async fn price(&self) -> f64 {
        let prices = self.provider.prices().await.expect("prices never fail");
        prices
            .iter()
            .find(|q| q.zone == "us-east-1a" && q.instance_type == "m5.large" && q.market == Market::OnDemand)
            .expect("the seed sells m5.large on demand in aws-us-east-1")
            .price_per_h
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

pub(crate) async fn wait_for(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// TTLs hold in both levels: an L1 hit, then (from a second process's cache) an L2 hit, no hit
/// after the TTL, Redis drops the key at its deadline, and an L2 value copied into L1 keeps its
/// deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expires_in_l1_and_l2() {
    let redis = Redis::start(&[]);
    let cfg = || settings("ttl", json!({"ttlPolicies": {"prices": "1500ms"}}));
    let cloud = Arc::new(MemoryCloud::new(MemoryCloud::seed_catalog()));
    let a = World::over(cloud.clone(), ProviderCache::with_redis(cfg(), Some(redis.settings())));
    let b = World::over(cloud.clone(), ProviderCache::with_redis(cfg(), Some(redis.settings())));
    assert!(a.cache().connect().await && b.cache().connect().await);
    a.set_price(0.10);
    let stored_at = now_ms();
    assert_eq!(a.price().await, 0.10);
    assert_eq!(a.calls("prices"), 1);
    // Redis holds it under the cluster's namespace with a TTL of at most 1.5 s.
    let pttl: i64 = redis.cmd(&["PTTL", "novacron:ttl:prices"]).await;
    assert!(pttl > 0 && pttl <= 1500, "PTTL {pttl}");

    a.set_price(0.20);
    assert_eq!(a.price().await, 0.10, "L1 hit");
    assert_eq!(a.calls("prices"), 1);
    assert_eq!(b.price().await, 0.10, "L2 hit in the other process");
    assert_eq!(b.calls("prices"), 0);
    let status = b.cache().status().await;
    assert_eq!((status.performance_metrics.l2_hits, status.performance_metrics.misses), (1, 0));

    // B's L1 copy carries the L2 deadline: past it, B does not serve it.
    let deadline = stored_at + 1500;
    tokio::time::sleep(Duration::from_millis((deadline + 50).saturating_sub(now_ms()))).await;
    let exists: i64 = redis.cmd(&["EXISTS", "novacron:ttl:prices"]).await;
    assert_eq!(exists, 0, "Redis dropped the key at its deadline");
    assert_eq!(b.price().await, 0.20, "B reloads after the TTL");
    assert_eq!(a.price().await, 0.20, "A reloads after the TTL (or takes B's fresh L2 value)");
    assert_eq!(b.calls("prices") + a.calls("prices"), 2, "one reload between them: B's, then A hits L2");
}

/// Lazy refresh reloads on the first read after the TTL (a miss); eager refresh serves the
/// cached value after the refresh point and reloads in the background, so readers never miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_and_eager_refresh() {
    let redis = Redis::start(&[]);
    // Eager: TTL 2 s, refresh from 25 % (0.5 s).
    let eager = World::new(ProviderCache::with_redis(
        settings(
            "eager",
            json!({"ttlPolicies": [{"pattern": "prices", "ttl": "2s", "refresh": "eager", "refreshAt": 0.25}]}),
        ),
        Some(redis.settings()),
    ));
    eager.set_price(1.0);
    assert_eq!(eager.price().await, 1.0);
    eager.set_price(2.0);
    assert_eq!(eager.price().await, 1.0, "before the refresh point: a plain hit");
    assert_eq!(eager.calls("prices"), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(eager.price().await, 1.0, "after the refresh point: still served, refresh started");
    wait_for("background refresh", Duration::from_secs(5), async || eager.calls("prices") == 2).await;
    wait_for("refreshed value", Duration::from_secs(5), async || eager.price().await == 2.0).await;
    let p = eager.cache().status().await.performance_metrics;
    assert_eq!((p.misses, p.refreshes), (1, 1), "only the first read missed: {p:?}");

    // Lazy: TTL 600 ms; a read after it misses and loads.
    let lazy = World::new(ProviderCache::with_redis(
        settings("lazy", json!({"ttlPolicies": {"prices": "600ms"}, "refresh": "lazy"})),
        Some(redis.settings()),
    ));
    lazy.set_price(1.0);
    assert_eq!(lazy.price().await, 1.0);
    lazy.set_price(2.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lazy.price().await, 1.0, "within the TTL: no refresh");
    assert_eq!(lazy.calls("prices"), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(lazy.price().await, 2.0, "after the TTL: a miss that loads");
    let p = lazy.cache().status().await.performance_metrics;
    assert_eq!((p.misses, p.refreshes, lazy.calls("prices")), (2, 0, 2));
}

/// A backend that records writes.
#[derive(Default)]
struct Backend {
    writes: Mutex<Vec<(String, u64)>>,
}

impl Backend {
    fn write(self: &Arc<Self>, key: &str, v: u64) -> impl Future<Output = Result<(), ProviderError>> + Send + 'static {
        let (me, key) = (self.clone(), key.to_owned());
        async move {
            me.writes.lock().expect("writes").push((key, v));
            Ok(())
        }
    }
    fn count(&self) -> usize {
        self.writes.lock().expect("writes").len()
    }
}

/// Each write strategy does what the engine decides, against Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_strategies() {
    let redis = Redis::start(&[]);
    let cache = |cluster: &str, strategy: serde_json::Value| {
        let mut cfg = json!({"ttlPolicies": {"vm": "1m"}});
        cfg.as_object_mut().expect("object").extend(strategy.as_object().expect("object").clone());
        let c = ProviderCache::with_redis(settings(cluster, cfg), Some(redis.settings()));
        (c, Arc::new(Backend::default()))
    };
    let loads = Arc::new(AtomicU64::new(0));
    let loader = |v: u64| {
        let loads = loads.clone();
        move || {
            let loads = loads.clone();
            async move {
                loads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<u64, ProviderError>(v)
            }
        }
    };

    // write-through: the backend first, then both levels.
    let (c, backend) = cache("wt", json!({"strategy": "write-through"}));
    assert!(c.connect().await);
    c.write("vm:1", &7u64, backend.write("vm:1", 7)).await.expect("write");
    assert_eq!(backend.count(), 1);
    assert_eq!(c.get::<u64>("vm:1").await, Some(7));
    let raw: Option<String> = redis.cmd(&["GET", "novacron:wt:vm:1"]).await;
    assert!(raw.is_some_and(|r| r.ends_with("\n7")), "L2 holds the value");
    // A backend error leaves the cache as it was.
    let failed = c.write("vm:1", &8u64, async { Err::<(), _>(ProviderError::Api("down".into())) }).await;
    assert!(failed.is_err());
    assert_eq!(c.get::<u64>("vm:1").await, Some(7));

    // write-behind: the cache now, the backend at the end of the flush window, in order; a
    // full batch flushes at once.
    let (c, backend) =
        cache("wb", json!({"strategy": "write-behind", "writeBehind": {"flushDelay": "1s", "maxBatch": 3}}));
    assert!(c.connect().await);
    c.write("vm:1", &1u64, backend.write("vm:1", 1)).await.expect("write");
    c.write("vm:2", &2u64, backend.write("vm:2", 2)).await.expect("write");
    assert_eq!((backend.count(), c.pending_writes()), (0, 2), "queued");
    assert_eq!(c.get::<u64>("vm:2").await, Some(2), "the cache has it already");
    wait_for("flush at the end of the window", Duration::from_secs(5), async || backend.count() == 2).await;
    assert_eq!(*backend.writes.lock().expect("w"), [("vm:1".to_owned(), 1), ("vm:2".to_owned(), 2)]);
    for i in 0..3u64 {
        c.write(&format!("vm:{i}"), &i, backend.write(&format!("vm:{i}"), i)).await.expect("write");
    }
    assert_eq!((backend.count(), c.pending_writes()), (5, 0), "the third pending write flushed the batch at once");
    assert_eq!(c.status().await.performance_metrics.write_behind_applied, 4);

    // read-through: the backend, then invalidate; concurrent misses load once.
    let (c, backend) = cache("rt", json!({"strategy": "read-through"}));
    assert!(c.connect().await);
    c.fill("vm:1", &1u64).await;
    c.write("vm:1", &2u64, backend.write("vm:1", 2)).await.expect("write");
    assert_eq!(backend.count(), 1);
    assert_eq!(c.get::<u64>("vm:1").await, None, "invalidated in both levels");
    let exists: i64 = redis.cmd(&["EXISTS", "novacron:rt:vm:1"]).await;
    assert_eq!(exists, 0);
    loads.store(0, Ordering::SeqCst);
    let all = futures::future::join_all((0..8).map(|_| c.get_or_load("vm:1", loader(2)))).await;
    assert!(all.iter().all(|r| *r.as_ref().expect("loaded") == 2));
    assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for eight concurrent misses");

    // cache-aside: the backend, then invalidate; the caller loads (no coalescing).
    let (c, backend) = cache("ca", json!({"strategy": "cache-aside"}));
    assert!(c.connect().await);
    c.fill("vm:1", &1u64).await;
    c.write("vm:1", &2u64, backend.write("vm:1", 2)).await.expect("write");
    assert_eq!((backend.count(), c.get::<u64>("vm:1").await), (1, None));
    loads.store(0, Ordering::SeqCst);
    let all = futures::future::join_all((0..8).map(|_| c.get_or_load("vm:1", loader(2)))).await;
    assert!(all.iter().all(|r| *r.as_ref().expect("loaded") == 2));
    assert_eq!(loads.load(Ordering::SeqCst), 8, "each caller loads");
    assert_eq!(c.get::<u64>("vm:1").await, Some(2));
}

/// The provider wrapper: creates reach the cloud at once and update or drop the cached entries
/// as the strategy says; deletes drop them; errors are not cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_writes_update_or_invalidate() {
    let redis = Redis::start(&[]);
    for (strategy, stored) in [("write-through", true), ("cache-aside", false)] {
        let w = World::new(ProviderCache::with_redis(
            settings(strategy, json!({"strategy": strategy, "ttlPolicies": {"vm": "1m"}})),
            Some(redis.settings()),
        ));
        assert!(w.cache().connect().await);
        assert!(w.provider.list("uid-1").await.expect("list").is_empty());
        let req = CreateRequest {
            client_token: "t-1".into(),
            owner_uid: "uid-1".into(),
            slot: 0,
            region: "aws-us-east-1".into(),
            zone: "us-east-1a".into(),
            instance_type: "m5.large".into(),
            market: Market::OnDemand,
            tags: BTreeMap::new(),
        };
        let vm = w.provider.create(req).await.expect("create");
        assert_eq!(w.calls("create"), 1);
        let cached = w.cache().get::<Option<serde_json::Value>>(&format!("vm:{}", vm.id)).await;
        assert_eq!(cached.is_some(), stored, "{strategy}: the new instance is cached: {cached:?}");
        let listed = w.provider.list("uid-1").await.expect("list");
        assert_eq!(listed.len(), 1, "{strategy}: the owner's list was dropped and reloaded");
        assert_eq!(w.calls("list"), 2);
        assert_eq!(w.provider.get(&vm.id).await.expect("get"), Some(vm.clone()));
        w.provider.delete(&vm.id).await.expect("delete");
        let after = w.provider.list("uid-1").await.expect("list");
        assert!(after.iter().all(|i| !i.is_live()), "{strategy}: the list is reloaded after the delete");
        assert_eq!(w.calls("list"), 3);
        // A failing call is not cached.
        w.cloud.fail_region("aws-us-east-1");
        assert!(w.provider.estimate_cost("nowhere", "m5.large", Market::OnDemand).await.is_err());
        assert!(w.provider.estimate_cost("nowhere", "m5.large", Market::OnDemand).await.is_err());
        assert_eq!(
            w.metrics
                .provider_calls
                .get_or_create(&ProviderLabels { op: "estimate-cost".into(), result: "api".into() })
                .get(),
            2
        );
    }
}

/// Warming loads the engine's plan (by priority, within maxKeys) on start, and the cron
/// schedule's next occurrence is the real UTC calendar's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_on_start_and_schedule() {
    let redis = Redis::start(&[]);
    let w = World::new(ProviderCache::with_redis(
        settings(
            "warm",
            json!({"ttlPolicies": {"prices": "10m", "catalog": "1h"}, "warmingConfig": {
                "enabled": true, "schedule": "*/15 * * * 1",
                "patterns": [{"pattern": "prices", "priority": 1}, {"pattern": "catalog", "priority": 5}],
                "maxKeys": 2}}),
        ),
        Some(redis.settings()),
    ));
    assert!(w.cache().connect().await);
    let task = w.provider.spawn_warming(100);
    wait_for("warming on start", Duration::from_secs(10), async || w.calls("prices") == 1 && w.calls("catalog") == 1)
        .await;
    assert_eq!(w.calls("unhealthy-regions"), 0, "health:regions matches no warming pattern");
    // Warmed keys are hits.
    w.provider.catalog().await.expect("catalog");
    w.price().await;
    assert_eq!((w.calls("prices"), w.calls("catalog")), (1, 1));
    let p = w.cache().status().await.performance_metrics;
    assert_eq!((p.l1_hits, p.misses), (2, 0));
    // The plan itself: by priority, within maxKeys.
    assert_eq!(w.provider.warm(100).await, ["catalog", "prices"]);
    assert_eq!(w.provider.warm(1).await, ["catalog"]);
    // Every 15 minutes on Mondays: 2026-11-30 is a Monday, 2026-12-05 a Saturday.
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&chrono::Utc);
    assert_eq!(w.provider.next_warming(at("2026-11-30T10:07:00Z")), Some(at("2026-11-30T10:15:00Z")));
    assert_eq!(w.provider.next_warming(at("2026-12-05T10:07:00Z")), Some(at("2026-12-07T00:00:00Z")));
    task.abort();
}

/// Under memory pressure Redis evicts (small maxmemory, allkeys-lru) and every read still gets
/// the right value; L1 evicts the engine's victims down to its thresholds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_under_memory_pressure() {
    let redis = Redis::start(&["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut s = settings(
        "evict",
        json!({"ttlPolicies": {"vm": "10m"}, "evictionPolicy": "lru",
        "memoryThresholds": {"warning": 50.0, "critical": 70.0, "eviction": 80.0}}),
    );
    s.l1_max_bytes = 256 << 10;
    let c = ProviderCache::with_redis(s, Some(redis.settings()));
    assert!(c.connect().await);
    let value = |i: u64| format!("{i}:{}", "x".repeat(1000));
    for i in 0..4000u64 {
        c.fill(&format!("vm:{i}"), &value(i)).await;
    }
    c.enforce_memory().await;
    let status = c.status().await;
    let m = &status.memory_usage;
    assert!(m.redis_evicted_keys.expect("INFO stats") > 0, "{m:?}");
    assert_eq!(m.redis_policy.as_deref(), Some("allkeys-lru"));
    assert!(m.redis_used_bytes.expect("used") <= m.redis_max_bytes.expect("max") + (256 << 10), "{m:?}");
    assert!(m.l1_evicted > 0, "{m:?}");
    assert!(m.l1_bytes * 100 < m.l1_capacity_bytes * 80, "L1 under its eviction threshold: {m:?}");
    // Every key still reads right: from L1, L2, or loaded again.
    for i in (0..4000u64).step_by(97) {
        let v = c.get_or_load(&format!("vm:{i}"), move || async move { Ok::<String, ProviderError>(value(i)) }).await;
        assert_eq!(v.expect("value"), value(i));
    }
    let p = c.status().await.performance_metrics;
    assert!(p.misses > 0 && p.l1_hits + p.l2_hits > 0, "{p:?}");
}

/// Redis killed, restarted, and frozen (SIGSTOP: every call times out) during a run of reads
/// while the price changes: no call fails, no value is served past its TTL, the outage is
/// recorded once, and the cache uses Redis again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outages_never_fail_callers_nor_serve_stale_values() {
    let mut redis = Redis::start(&[]);
    const TTL: u64 = 400;
    let w = World::new(ProviderCache::with_redis(
        settings("outage", json!({"ttlPolicies": {"prices": format!("{TTL}ms")}})),
        Some(redis.settings()),
    ));
    assert!(w.cache().connect().await);
    // (price, set no later than) per change: a read started at t may return price k only if
    // t < (when price k+1 was set) + TTL.
    let history = Arc::new(Mutex::new(vec![(1.0, now_ms())]));
    w.set_price(1.0);
    let reads = AtomicU64::new(0);
    let check = async |w: &World| {
        let started = now_ms();
        let p = w.price().await;
        reads.fetch_add(1, Ordering::Relaxed);
        let h = history.lock().expect("history");
        let k = h.iter().position(|(q, _)| *q == p).expect("a price the cloud had");
        if let Some((_, replaced_at)) = h.get(k + 1) {
            assert!(started < replaced_at + TTL, "price {p} served at {started}, replaced at {replaced_at}: stale");
        }
    };
    let mut next = 2.0;
    let mut change = |w: &World| {
        w.set_price(next);
        history.lock().expect("history").push((next, now_ms()));
        next += 1.0;
    };
    for phase in ["up", "killed", "restarted", "frozen", "thawed"] {
        match phase {
            "killed" => redis.kill(),
            "restarted" => redis.restart(),
            "frozen" => redis.signal("-STOP"),
            "thawed" => redis.signal("-CONT"),
            _ => {}
        }
        let until = Instant::now() + Duration::from_millis(1500);
        let mut i = 0;
        while Instant::now() < until {
            if i % 25 == 0 {
                change(&w);
            }
            check(&w).await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if phase == "restarted" || phase == "thawed" {
            wait_for("the cache uses Redis again", Duration::from_secs(10), async || {
                check(&w).await;
                w.cache().l2_up()
            })
            .await;
        }
    }
    let status = w.cache().status().await;
    assert_eq!(status.cluster_health.status, "Healthy");
    assert_eq!(status.cluster_health.outages, 2, "the kill and the freeze, each recorded (and logged) once");
    assert!(status.performance_metrics.errors >= 2, "{:?}", status.performance_metrics);
    assert!(reads.load(Ordering::Relaxed) > 200);
    // Redis is in use again: loads go to L2. The key lives TTL (400 ms) there, so look right after
    // a read (on a loaded machine the last read of the loop may be older than that).
    wait_for("a load written to Redis again", Duration::from_secs(10), async || {
        check(&w).await;
        let exists: i64 = redis.cmd(&["EXISTS", "novacron:outage:prices"]).await;
        exists == 1
    })
    .await;
}

/// Sentinel: one master, one replica, one sentinel. The master is killed; the sentinel promotes
/// the replica; the cache keeps answering throughout and then writes to the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_moves_the_cache_to_the_new_master() {
    let mut master = Redis::start(&[]);
    let replica = Redis::start(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    wait_for("replica in sync", Duration::from_secs(20), async || {
        let info: String = replica.cmd(&["INFO", "replication"]).await;
        info.contains("master_link_status:up")
    })
    .await;
    let sentinel = Redis::sentinel(master.port);
    let spec: CacheIntegrationSpec = serde_json::from_value(json!({
        "redisConfig": {"sentinelHosts": [format!("127.0.0.1:{}", sentinel.port)], "masterName": "mymaster",
                        "clusterName": "ha", "backoffMin": "100ms", "backoffMax": "400ms"},
        "ttlPolicies": {"prices": "300ms"}
    }))
    .expect("spec");
    let cache = ProviderCache::new(operator::cache::from_spec("default", &spec).expect("valid"), &Secrets::default())
        .expect("cache");
    let w = World::new(cache);
    assert!(w.cache().connect().await, "connected through the sentinel");
    w.price().await;
    let on_master: i64 = master.cmd(&["EXISTS", "novacron:ha:prices"]).await;
    assert_eq!(on_master, 1);

    master.kill();
    let promoted = async || {
        let addr: Option<Vec<String>> = sentinel.cmd(&["SENTINEL", "get-master-addr-by-name", "mymaster"]).await;
        addr.is_some_and(|a| a.get(1) == Some(&replica.port.to_string()))
    };
    let started = Instant::now();
    while !promoted().await {
        assert!(started.elapsed() < Duration::from_secs(30), "the sentinel never promoted the replica");
        w.price().await; // never fails
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("the cache writes to the new master", Duration::from_secs(15), async || {
        w.price().await;
        let n: i64 = replica.cmd(&["EXISTS", "novacron:ha:prices"]).await;
        w.cache().l2_up() && n == 1
    })
    .await;
    let role: Vec<redis::Value> = replica.cmd(&["ROLE"]).await;
    assert_eq!(role.first(), Some(&redis::Value::BulkString(b"master".to_vec())));
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// TLS with a private CA and AUTH with an ACL user, from the Secrets' data; a wrong password
/// only degrades the cache; Debug output never shows a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_acl_auth_from_secrets() {
    let certs = tempfile::tempdir().expect("tempdir");
    let d = certs.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let tls_port = free_port();
    let p = |f: &str| d.join(f).display().to_string();
    let redis = Redis::start(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &p("server.crt"),
        "--tls-key-file",
        &p("server.key"),
        "--tls-ca-cert-file",
        &p("ca.crt"),
        "--tls-auth-clients",
        "no",
        "--user",
        "default",
        "off",
        "--user",
        "novacron",
        "on",
        ">s3cret-pass",
        "~novacron:*",
        "+@all",
    ]);
    let spec: CacheIntegrationSpec = serde_json::from_value(json!({
        "redisConfig": {"endpoint": format!("rediss://127.0.0.1:{tls_port}/0"), "credentialsSecret": "redis-auth",
                        "certSecret": "redis-tls", "clusterName": "tls"},
        "ttlPolicies": {"prices": "1m"}
    }))
    .expect("spec");
    let translated = operator::cache::from_spec("default", &spec).expect("valid");
    assert_eq!(translated.secret_names(), (Some("redis-auth"), Some("redis-tls")));
    let secrets = |password: &str| Secrets {
        credentials: Some(BTreeMap::from([
            ("username".to_owned(), b"novacron".to_vec()),
            ("password".to_owned(), password.as_bytes().to_vec()),
        ])),
        certs: Some(BTreeMap::from([("ca.crt".to_owned(), std::fs::read(d.join("ca.crt")).expect("ca"))])),
    };
    let good = ProviderCache::new(translated.clone(), &secrets("s3cret-pass")).expect("cache");
    assert!(!format!("{good:?} {:?}", secrets("s3cret-pass")).contains("s3cret"), "Debug shows no secret");
    let a = World::new(good);
    assert!(a.cache().connect().await, "TLS + ACL user");
    a.price().await;
    let b = World::new(ProviderCache::new(translated.clone(), &secrets("s3cret-pass")).expect("cache"));
    assert!(b.cache().connect().await);
    b.price().await;
    assert_eq!(b.calls("prices"), 0, "L2 hit over TLS");
    assert!(b.cache().status().await.cluster_health.endpoint.expect("endpoint").starts_with("rediss://"));

    let wrong = World::new(ProviderCache::new(translated, &secrets("wrong")).expect("cache"));
    assert!(!wrong.cache().connect().await, "a wrong password is refused");
    wrong.price().await;
    assert_eq!(wrong.cache().status().await.cluster_health.status, "Degraded");
    drop(redis);
}

/// The spec translation names every bad field, and a missing Secret is an error naming it.
#[test]
fn spec_translation_names_bad_fields() {
    let spec: CacheIntegrationSpec = serde_json::from_value(json!({
        "redisConfig": {"endpoint": "memcached://x:1", "sentinelHosts": ["nohost"], "timeout": "soon", "database": 99},
        "strategy": "write-around",
    }))
    .expect("spec");
    let problems = operator::cache::from_spec("default", &spec).expect_err("invalid");
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    for needle in [
        "spec.strategy: \"write-around\" is not one of",
        "spec.redisConfig.sentinelHosts[0]",
        "spec.redisConfig.timeout",
        "spec.redisConfig.database",
        "spec.redisConfig.endpoint",
    ] {
        assert!(all.contains(needle), "{needle} in\n{all}");
    }
    let spec: CacheIntegrationSpec = serde_json::from_value(json!({
        "redisConfig": {"endpoint": "redis:6379", "passwordSecret": "redis-password"},
        "ttlPolicies": [{"pattern": "vm:*", "ttl": "forever"}],
    }))
    .expect("spec");
    let problems = operator::cache::from_spec("default", &spec).expect_err("invalid");
    assert_eq!(problems[0].field, "spec.ttlPolicies[0].ttl", "{problems:?}");
    let spec: CacheIntegrationSpec = serde_json::from_value(json!({
        "redisConfig": {"endpoint": "redis:6379", "passwordSecret": "redis-password"}, "strategy": "write-through",
        "ttlPolicies": {"prices": "5m", "catalog": "1h"}, "evictionPolicy": "allkeys-lru"
    }))
    .expect("spec");
    let s = operator::cache::from_spec("ns", &spec).expect("valid");
    assert_eq!(s.cluster, "ns");
    assert!(
        matches!(&s.redis.as_ref().expect("redis").topology, Topology::Single { host, port: 6379 } if host == "redis")
    );
    let err = ProviderCache::new(s, &Secrets::default()).expect_err("no Secret");
    assert!(err.to_string().contains("Secret \"redis-password\" was not found"), "{err}");
}
