//! Events per second of the whole simulator.
//!
//! The scenario is `scenarios/burst.toml` with 25 times its demand and capacity (inline, so the
//! bench does not depend on the file): six simulated hours, a 6x burst spilling from AWS into Azure
//! and GCP, spot markets, a capacity crunch, reserved capacity and a budget cap; about 53 000
//! events. One run is made outside the timing to learn the event count, which is then the
//! throughput of each timed run.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sim::RunOptions;

/// The bench scenario, in the format of `scenarios/burst.toml`.
const SCENARIO: &str = r#"name = "burst-bench"
description = "scenarios/burst.toml at 25 times the demand and capacity, for the simulator bench"
seed = 42
duration = "6h"
sample_interval = "1m"

[policy]
kind = "cost-optimized"
interruption_cost_usd = 0.5

[engine]
capacity_backoff = "5m"
max_attempts = 6
retry_backoff = "10s"
queue_timeout = "10m"

[cost]
billing_minimum = "60s"
max_per_h = 6250.0

[[cost.commitments]]
kind = "reserved"
offer = "aws-us-east-1/us-east-1a/m5.large"
count = 1000
fee_per_h = 0.060

[[instance_types]]
name = "m5.large"
vcpu = 2
memory_gib = 8

[[instance_types]]
name = "m5.xlarge"
vcpu = 4
memory_gib = 16

[[instance_types]]
name = "D2s_v5"
vcpu = 2
memory_gib = 8

[[instance_types]]
name = "D4s_v5"
vcpu = 4
memory_gib = 16

[[instance_types]]
name = "n2-standard-2"
vcpu = 2
memory_gib = 8

[[instance_types]]
name = "n2-standard-4"
vcpu = 4
memory_gib = 16

[[regions]]
name = "aws-us-east-1"
provider = "aws"
zones = ["us-east-1a", "us-east-1b"]
location = [38.9, -77.4]
carbon_g_per_kwh = 380
provision_delay = { dist = "lognormal", median = "40s", sigma = 0.3 }
api_error_rate = 0.005
throttle_rate = 0.01

[[regions]]
name = "azure-eastus"
provider = "azure"
zones = ["1", "2"]
location = [37.4, -79.2]
carbon_g_per_kwh = 360
provision_delay = { dist = "lognormal", median = "90s", sigma = 0.4 }
api_error_rate = 0.01

[[regions]]
name = "gcp-us-central1"
provider = "gcp"
zones = ["a", "b"]
location = [41.3, -95.9]
carbon_g_per_kwh = 430
provision_delay = { dist = "lognormal", median = "30s", sigma = 0.3 }
api_error_rate = 0.005

# AWS: cheapest, but only 1500 instances per zone and type are ours to take.
[[offers]]
region = "aws-us-east-1"
instance_type = "m5.large"
on_demand = 0.096
capacity = 1500
spot = { price = 0.038, volatility = 0.05, interruption_rate_per_h = 0.05 }

[[offers]]
region = "aws-us-east-1"
instance_type = "m5.xlarge"
on_demand = 0.192
capacity = 750
spot = { price = 0.075, volatility = 0.05, interruption_rate_per_h = 0.05 }

[[offers]]
region = "azure-eastus"
instance_type = "D2s_v5"
on_demand = 0.096
capacity = 5000
spot = { price = 0.042, volatility = 0.08, interruption_rate_per_h = 0.08 }

[[offers]]
region = "azure-eastus"
instance_type = "D4s_v5"
on_demand = 0.192
capacity = 2500
spot = { price = 0.085, volatility = 0.08, interruption_rate_per_h = 0.08 }

[[offers]]
region = "gcp-us-central1"
instance_type = "n2-standard-2"
on_demand = 0.0971
capacity = 5000
spot = { price = 0.0235, volatility = 0.03, interruption_rate_per_h = 0.12 }

[[offers]]
region = "gcp-us-central1"
instance_type = "n2-standard-4"
on_demand = 0.1942
capacity = 2500
spot = { price = 0.047, volatility = 0.03, interruption_rate_per_h = 0.12 }

[workload]
arrival = { process = "poisson", rate_per_s = 0.5 }
lifetime = { dist = "lognormal", median = "40m", sigma = 0.8 }

# Front-end servers: latency-sensitive, on demand only, users on the US east coast.
[[workload.shapes]]
vcpu = 2
memory_gib = 4
weight = 3
users_near = "aws-us-east-1"

# Workers: may run on spot.
[[workload.shapes]]
vcpu = 4
memory_gib = 12
weight = 2
spot_allowed = true

[[workload.bursts]]
start = "2h"
duration = "45m"
multiplier = 6.0

# Everyone wants AWS capacity during the burst: ours halves without the engine being told.
[[faults]]
kind = "capacity-crunch"
region = "aws-us-east-1"
at = "2h"
duration = "1h"
fraction = 0.5
"#;

fn simulator(c: &mut Criterion) {
    let scenario = match sim::scenario::parse(SCENARIO, Path::new("benches/benches/simulator.rs")) {
        Ok(s) => s,
        Err(e) => panic!("the inline bench scenario is invalid:\n{e}"),
    };
    let opts = RunOptions::default();
    // One untimed run: the event count is the throughput unit (the run is deterministic).
    let events = match sim::run(&scenario, &opts, &mut ()) {
        Ok(r) => r.summary.events_processed,
        Err(e) => panic!("the bench scenario does not run: {e}"),
    };
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_with_input(BenchmarkId::new("burst-x25", events), &scenario, |b, s| {
        b.iter(|| match sim::run(black_box(s), &opts, &mut ()) {
            Ok(r) => black_box(r.summary.events_processed),
            Err(e) => panic!("the bench scenario does not run: {e}"),
        });
    });
    group.finish();
}

criterion_group!(benches, simulator);
criterion_main!(benches);
