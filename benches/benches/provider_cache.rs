//! The operator's provider cache through both levels against a real `redis-server` (started by
//! the bench on a free loopback port, `--save ""`, killed at the end; it must be on PATH:
//! `apt-get install redis-server`): a read answered by L1 (moka), a read answered by L2 (Redis,
//! the key kept out of L1), a miss that loads and stores in both levels, and a store (`fill`) of
//! values of 100 B, 1 KiB and 10 KiB. Reads are of a JSON value of the given size.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::cache::CacheConfig;
use operator::cache::{CacheSettings, ProviderCache, RedisSettings};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis() -> (Server, u16) {
    let port = match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("free port: {e}"),
    };
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let server = match child {
        Ok(c) => Server(c),
        Err(e) => panic!("redis-server (apt-get install redis-server): {e}"),
    };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "redis-server never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    (server, port)
}

fn cache(port: u16) -> ProviderCache {
    // `l2only:*` lives in Redis only, so that its reads measure L2.
    let config: CacheConfig = match serde_json::from_value(serde_json::json!({
        "ttlPolicies": [
            {"pattern": "bench:*", "ttl": "1h"},
            {"pattern": "l2only:*", "ttl": "1h", "level": "l2"},
        ]
    })) {
        Ok(c) => c,
        Err(e) => panic!("bench config: {e}"),
    };
    let settings = match CacheSettings::new("bench", config) {
        Ok(s) => s,
        Err(e) => panic!("bench settings: {e:?}"),
    };
    ProviderCache::with_redis(settings, Some(RedisSettings::single("127.0.0.1", port)))
}

fn value(size: usize) -> String {
    "x".repeat(size)
}

fn provider_cache(c: &mut Criterion) {
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let (_server, port) = redis();
    let cache = cache(port);
    assert!(rt.block_on(cache.connect()), "the cache reaches redis-server");

    let mut g = c.benchmark_group("provider_cache_get");
    g.throughput(Throughput::Elements(1));
    for size in [100usize, 1024, 10 * 1024] {
        rt.block_on(cache.fill("bench:hot", &value(size)));
        g.bench_with_input(BenchmarkId::new("l1-hit", size), &size, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(cache.get::<String>("bench:hot").await);
                    }
                    t.elapsed()
                })
            });
        });
        rt.block_on(cache.fill("l2only:hot", &value(size)));
        g.bench_with_input(BenchmarkId::new("l2-hit", size), &size, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(cache.get::<String>("l2only:hot").await);
                    }
                    t.elapsed()
                })
            });
        });
        g.bench_with_input(BenchmarkId::new("miss-load-fill", size), &size, |b, &size| {
            let mut n = 0u64;
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        n += 1;
                        let v = value(size);
                        let r = cache
                            .get_or_load(&format!("bench:miss:{n}"), move || {
                                let v = v.clone();
                                async move { Ok::<String, std::convert::Infallible>(v) }
                            })
                            .await;
                        std::hint::black_box(r.is_ok());
                    }
                    t.elapsed()
                })
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("provider_cache_set");
    g.throughput(Throughput::Elements(1));
    for size in [100usize, 1024, 10 * 1024] {
        let v = value(size);
        g.bench_with_input(BenchmarkId::new("both-levels", size), &size, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for i in 0..iters {
                        cache.fill(&format!("bench:set:{}", i % 1000), &v).await;
                    }
                    t.elapsed()
                })
            });
        });
    }
    g.finish();
}

criterion_group!(benches, provider_cache);
criterion_main!(benches);
