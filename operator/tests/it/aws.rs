//! The AWS provider against moto's server, an independent implementation of the EC2 and
//! CloudWatch APIs (`moto[server]` from PyPI, pinned in `operator/tests/moto-requirements.txt`),
//! and against a small HTTP fixture that answers in EC2's XML error format for the errors moto
//! cannot produce (throttling, capacity, token mismatch).
//!
//! moto is installed into a virtual environment under the target directory when missing (keyed
//! by the requirements file's hash, a lock file against concurrent installs) and started once
//! per test binary on a free loopback port. It runs under a small shell watchdog that kills it
//! when the test process's end of a pipe closes, so it never outlives the tests. Every test uses
//! its own owner UIDs and client tokens, so they share one server.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use engine::Market;
use operator::provider::aws::{AwsCloud, AwsConfig, AwsCredentials, TAG_CLIENT_TOKEN, TAG_OWNER_UID, TAG_SLOT};
use operator::provider::retry::{RetryPolicy, Retrying};
use operator::provider::{CloudProvider, CreateRequest, InstanceState, ProviderError};

/// An AMI moto knows in every region.
const AMI: &str = "ami-785db401";
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

// ---------------------------------------------------------------------------------------------
// moto
// ---------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tools_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("novacron-test-tools");
    std::fs::create_dir_all(&dir).expect("tools dir");
    dir
}

/// 64-bit FNV-1a, to name the environment after its requirements.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn run_ok(cmd: &mut Command, what: &str) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `moto_server` from a virtual environment with operator/tests/moto-requirements.txt, made on
/// first use.
fn moto_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let requirements_path = repo().join("operator/tests/moto-requirements.txt");
        let requirements = std::fs::read_to_string(&requirements_path).expect("operator/tests/moto-requirements.txt");
        let key = format!("{:016x}", fnv1a(requirements.as_bytes()));
        let base = tools_dir();
        let dir = base.join(format!("moto-venv-{key}"));
        let bin = dir.join("bin");
        let marker = dir.join("novacron-requirements.txt");
        let lock = File::create(base.join(format!("moto-venv-{key}.lock"))).expect("lock file");
        lock.lock().expect("lock");
        let ready = std::fs::read_to_string(&marker).is_ok_and(|m| m == requirements)
            && Command::new(bin.join("python"))
                .args(["-c", "import moto.server, moto.ec2, moto.cloudwatch"])
                .output()
                .is_ok_and(|o| o.status.success());
        if !ready {
            eprintln!("moto is missing: installing {} into {}", requirements_path.display(), dir.display());
            if dir.exists() {
                std::fs::remove_dir_all(&dir).expect("remove a half-made environment");
            }
            let python = std::env::var("NOVACRON_PYTHON").unwrap_or_else(|_| "python3".to_owned());
            run_ok(Command::new(&python).args(["-m", "venv"]).arg(&dir), &format!("{python} -m venv"));
            run_ok(
                Command::new(bin.join("python"))
                    .args(["-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check", "-r"])
                    .arg(&requirements_path),
                "pip install -r operator/tests/moto-requirements.txt",
            );
            std::fs::write(&marker, &requirements).expect("marker");
        }
        bin.join("moto_server")
    })
    .clone()
}

/// A running moto server. The watchdog shell kills moto when `_stdin` closes: when this value
/// drops, or when the test process ends (the servers live in statics, which never drop).
struct Moto {
    url: String,
    _stdin: ChildStdin,
    _child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

fn start_moto(env: &[(&str, &str)]) -> Moto {
    let bin = moto_server_bin();
    let port = free_port();
    let log_path = tools_dir().join(format!("moto-{}-{port}.log", std::process::id()));
    let log = File::create(&log_path).expect("moto log");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#""$0" -H 127.0.0.1 -p "$1" & pid=$!; cat >/dev/null; kill "$pid"; wait "$pid""#])
        .arg(&bin)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let stdin = child.stdin.take().expect("piped stdin");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http_get(port, "/moto-api/").is_ok_and(|status| status == 200) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("moto_server exited ({status}): {}", std::fs::read_to_string(&log_path).unwrap_or_default());
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer on port {port} within 60 s: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto { url: format!("http://127.0.0.1:{port}"), _stdin: stdin, _child: child }
}

fn http_get(port: u16, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
}

/// The shared moto server (no authentication).
fn moto() -> &'static Moto {
    static M: OnceLock<Moto> = OnceLock::new();
    M.get_or_init(|| start_moto(&[]))
}

fn config(endpoint: &str) -> AwsConfig {
    AwsConfig {
        regions: vec!["us-east-1".into()],
        instance_types: vec!["m5.large".into(), "t3.micro".into()],
        image_id: AMI.into(),
        endpoint_url: Some(endpoint.into()),
        credentials: Some(AwsCredentials::new(KEY_ID, SECRET, None)),
        on_demand_prices: BTreeMap::from([
            (("us-east-1".to_owned(), "m5.large".to_owned()), 0.096),
            (("us-east-1".to_owned(), "t3.micro".to_owned()), 0.0104),
        ]),
        ..AwsConfig::default()
    }
}

pub(crate) async fn cloud() -> AwsCloud {
    AwsCloud::new(config(&moto().url)).await.expect("valid config")
}

fn request(owner: &str, slot: u32, n: u32, market: Market) -> CreateRequest {
    CreateRequest {
        client_token: format!("{owner}-{slot}-{n}"),
        owner_uid: owner.into(),
        slot,
        region: "aws-us-east-1".into(),
        zone: "us-east-1a".into(),
        instance_type: "m5.large".into(),
        market,
        tags: BTreeMap::from([("novacron.io/managed-by".to_owned(), "novacron-operator".to_owned())]),
    }
}

// ---------------------------------------------------------------------------------------------
// Against moto
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_get_list_delete_and_delete_again() {
    let aws = cloud().await;
    let owner = "4f1c2a9e-0000-4000-8000-lifecycle";
    let made = aws.create(request(owner, 0, 0, Market::OnDemand)).await.expect("created");
    assert!(made.id.starts_with("i-"), "{made:?}");
    assert_eq!((made.owner_uid.as_str(), made.slot, made.market), (owner, 0, Market::OnDemand));
    assert_eq!(
        (made.region.as_str(), made.zone.as_str(), made.instance_type.as_str()),
        ("aws-us-east-1", "us-east-1a", "m5.large")
    );

    let got = aws.get(&made.id).await.expect("get").expect("known");
    assert_eq!(got.id, made.id);
    assert_eq!(got.client_token, format!("{owner}-0-0"));
    assert_eq!((got.owner_uid.as_str(), got.slot), (owner, 0), "the tags link back to the owner");
    assert!(matches!(got.state, InstanceState::Pending | InstanceState::Running), "{:?}", got.state);

    // A second instance of the same owner, and one of another owner that list must not show.
    let second = aws.create(request(owner, 1, 0, Market::OnDemand)).await.expect("created");
    aws.create(request("someone-else-lifecycle", 0, 0, Market::OnDemand)).await.expect("created");
    let mut listed: Vec<(String, u32)> =
        aws.list(owner).await.expect("list").into_iter().map(|i| (i.id, i.slot)).collect();
    listed.sort_by_key(|(_, slot)| *slot);
    assert_eq!(listed, vec![(made.id.clone(), 0), (second.id.clone(), 1)]);

    aws.delete(&made.id).await.expect("delete");
    let gone = aws.get(&made.id).await.expect("get").expect("EC2 still reports it for a while");
    assert_eq!(gone.state, InstanceState::Terminated);
    aws.delete(&made.id).await.expect("deleting a terminated instance again succeeds");
    aws.delete("i-0123456789abcdef0").await.expect("deleting an id EC2 never knew succeeds");
    assert_eq!(aws.get("i-0123456789abcdef0").await.expect("get"), None);

    // A fresh provider (no id → region memory) finds and deletes by id too.
    let fresh = cloud().await;
    fresh.delete(&second.id).await.expect("delete");
    assert_eq!(fresh.get(&second.id).await.expect("get").map(|i| i.state), Some(InstanceState::Terminated));
    assert!(aws.unhealthy_regions().await.expect("zones").is_empty(), "moto reports every zone available");
}

#[tokio::test]
async fn the_same_client_token_never_makes_a_second_instance() {
    let aws = cloud().await;
    let owner = "4f1c2a9e-0000-4000-8000-idempotent";
    let first = aws.create(request(owner, 0, 0, Market::OnDemand)).await.expect("created");
    let again = aws.create(request(owner, 0, 0, Market::OnDemand)).await.expect("same token");
    assert_eq!(again.id, first.id);
    // An operator restart: a new provider with no memory of the first call.
    let restarted = cloud().await;
    let after_restart = restarted.create(request(owner, 0, 0, Market::OnDemand)).await.expect("same token");
    assert_eq!(after_restart.id, first.id);
    assert_eq!(restarted.list(owner).await.expect("list").len(), 1, "one instance for one token");
    // The same token for a different request is refused, and makes nothing.
    let mut other = request(owner, 0, 0, Market::OnDemand);
    other.instance_type = "t3.micro".into();
    assert_eq!(restarted.create(other).await, Err(ProviderError::TokenMismatch(format!("{owner}-0-0"))));
    assert_eq!(restarted.list(owner).await.expect("list").len(), 1);
    // A new token is a new instance.
    let next = restarted.create(request(owner, 0, 1, Market::OnDemand)).await.expect("created");
    assert_ne!(next.id, first.id);
}

#[tokio::test]
async fn spot_instances_are_created_through_instance_market_options() {
    let aws = cloud().await;
    let owner = "4f1c2a9e-0000-4000-8000-spot";
    let made = aws.create(request(owner, 0, 0, Market::Spot)).await.expect("created");
    assert_eq!(made.market, Market::Spot);
    let got = aws.get(&made.id).await.expect("get").expect("known");
    assert_eq!(got.market, Market::Spot, "EC2 reports InstanceLifecycle=spot");
    let listed = aws.list(owner).await.expect("list");
    assert_eq!(listed.iter().map(|i| i.market).collect::<Vec<_>>(), vec![Market::Spot]);
}

#[tokio::test]
async fn prices_catalog_and_estimates() {
    let aws = cloud().await;
    let quotes = aws.prices().await.expect("prices");
    let zones: Vec<&str> = {
        let mut z: Vec<&str> =
            quotes.iter().filter(|q| q.market == Market::OnDemand).map(|q| q.zone.as_str()).collect();
        z.sort_unstable();
        z.dedup();
        z
    };
    assert!(zones.len() >= 2 && zones.iter().all(|z| z.starts_with("us-east-1")), "{zones:?}");
    for itype in ["m5.large", "t3.micro"] {
        let spot: Vec<_> = quotes.iter().filter(|q| q.market == Market::Spot && q.instance_type == itype).collect();
        assert!(!spot.is_empty(), "DescribeSpotPriceHistory has {itype}");
        let mut spot_zones: Vec<&str> = spot.iter().map(|q| q.zone.as_str()).collect();
        spot_zones.dedup();
        assert_eq!(spot_zones.len(), spot.len(), "one (latest) spot price per zone");
        assert!(spot.iter().all(|q| q.price_per_h > 0.0 && q.region == "aws-us-east-1"));
    }
    let on_demand: Vec<_> =
        quotes.iter().filter(|q| q.market == Market::OnDemand && q.instance_type == "m5.large").collect();
    assert_eq!(on_demand.len(), zones.len());
    assert!(on_demand.iter().all(|q| q.price_per_h == 0.096));

    assert_eq!(aws.estimate_cost("aws-us-east-1", "m5.large", Market::OnDemand).await, Ok(0.096));
    aws.set_on_demand_prices(BTreeMap::from([(("us-east-1".to_owned(), "m5.large".to_owned()), 0.1)]));
    assert_eq!(aws.estimate_cost("aws-us-east-1", "m5.large", Market::OnDemand).await, Ok(0.1));
    assert!(matches!(
        aws.estimate_cost("aws-us-east-1", "t3.micro", Market::OnDemand).await,
        Err(ProviderError::Api(_))
    ));

    let catalog = aws.catalog().await.expect("catalog");
    assert_eq!(catalog.regions.len(), 1);
    let r = &catalog.regions[0];
    assert_eq!((r.name.as_str(), r.aliases.clone()), ("aws-us-east-1", vec!["aws-us-east".to_owned()]));
    assert!(r.zones.contains(&"us-east-1a".to_owned()), "{:?}", r.zones);
    let m5 = catalog.instance_types.iter().find(|t| t.name == "m5.large").expect("m5.large");
    assert_eq!((m5.vcpu, m5.memory_gib, m5.gpu), (2, 8.0, 0), "from DescribeInstanceTypes");
    // Only m5.large has an on-demand price now, so only it is offered.
    assert!(!catalog.offers.is_empty());
    assert!(
        catalog
            .offers
            .iter()
            .all(|o| o.instance_type == "m5.large" && o.on_demand_per_h == 0.1 && o.spot_per_h.is_some())
    );
    // The catalog is one the operator can build an engine catalog from.
    operator::catalog::CatalogIndex::new(&catalog).expect("a valid engine catalog");
}

#[tokio::test]
async fn metrics_come_from_cloudwatch() {
    let bridge = cloudwatch_bridge(&moto().url);
    let aws = AwsCloud::new(AwsConfig { cloudwatch_endpoint_url: Some(bridge.clone()), ..config(&moto().url) })
        .await
        .expect("valid config");
    let made = aws.create(request("4f1c2a9e-0000-4000-8000-metrics", 0, 0, Market::OnDemand)).await.expect("created");
    let before = aws.metrics(&made.id).await.expect("metrics");
    assert_eq!((before.cpu_percent, before.network_in_bytes, before.window_s), (None, None, 600));

    // What EC2 would publish for the instance, written with the CloudWatch SDK directly.
    let cw = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::new()
            .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
            .endpoint_url(&bridge)
            .disable_request_compression(true)
            .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(KEY_ID, SECRET, None, None, "test"))
            .build(),
    );
    let now = aws_sdk_cloudwatch::primitives::DateTime::from(SystemTime::now() - Duration::from_secs(30));
    let datum = |name: &str, v: f64| {
        MetricDatum::builder()
            .metric_name(name)
            .dimensions(Dimension::builder().name("InstanceId").value(&made.id).build())
            .timestamp(now)
            .value(v)
            .build()
    };
    cw.put_metric_data()
        .namespace("AWS/EC2")
        .metric_data(datum("CPUUtilization", 42.5))
        .metric_data(datum("NetworkIn", 1_000_000.0))
        .metric_data(datum("NetworkOut", 250_000.0))
        .send()
        .await
        .expect("PutMetricData");
    let m = aws.metrics(&made.id).await.expect("metrics");
    assert_eq!(m.cpu_percent, Some(42.5));
    assert_eq!(m.network_in_bytes, Some(1_000_000.0));
    assert_eq!(m.network_out_bytes, Some(250_000.0));
    assert!(matches!(aws.metrics("i-0123456789abcdef0").await, Err(ProviderError::Api(_))));
}

// ---------------------------------------------------------------------------------------------
// CloudWatch protocol bridge
// ---------------------------------------------------------------------------------------------
//
// aws-sdk-cloudwatch 1.140 speaks Smithy RPC v2 CBOR, which moto does not implement (it has
// CloudWatch's Query and JSON 1.0 protocols: getmoto/moto#9195). This loopback bridge turns each
// CBOR request into the same operation in JSON 1.0 for moto and moto's JSON answer back into
// CBOR, so that moto's CloudWatch still stores and aggregates the metrics. Only the encoding
// changes: names and values pass through untouched (timestamps are epoch seconds in both, CBOR
// marks them with tag 1).

/// Starts the bridge to moto at `moto_url`; returns its URL.
fn cloudwatch_bridge(moto_url: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let moto_addr = moto_url.trim_start_matches("http://").to_owned();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let moto_addr = moto_addr.clone();
            std::thread::spawn(move || bridge_one(stream, &moto_addr));
        }
    });
    url
}

fn bridge_one(mut stream: TcpStream, moto_addr: &str) {
    let Some((path, headers, body)) = read_request(&stream) else { return };
    let operation = path.rsplit('/').next().unwrap_or_default().to_owned();
    let request = cbor_decode(&body, &mut 0).unwrap_or(serde_json::Value::Null);
    let json = serde_json::to_string(&request).expect("JSON");
    let auth = headers.get("authorization").cloned().unwrap_or_default();
    let (status, answer) = post_json(moto_addr, &operation, &auth, &json);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|_| serde_json::json!({}));
    let mut out = Vec::new();
    cbor_encode(&answer, false, &mut out);
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        out.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&out));
}

/// Path, lower-cased headers and body of one HTTP/1.1 request with a Content-Length.
fn read_request(stream: &TcpStream) -> Option<(String, BTreeMap<String, String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, headers, body))
}

/// `operation` as a JSON 1.0 call to moto: its status and body.
fn post_json(moto_addr: &str, operation: &str, auth: &str, json: &str) -> (u16, String) {
    let mut s = TcpStream::connect(moto_addr).expect("moto");
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {moto_addr}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: GraniteServiceVersion20100801.{operation}\r\nAuthorization: {auth}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
    .expect("write to moto");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("moto's answer");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(500);
    (status, body.to_owned())
}

/// One CBOR data item (RFC 8949) as JSON; tag 1 (epoch time) becomes its number.
fn cbor_decode(b: &[u8], pos: &mut usize) -> Option<serde_json::Value> {
    use serde_json::Value;
    let first = *b.get(*pos)?;
    *pos += 1;
    let (major, info) = (first >> 5, first & 0x1f);
    let mut arg = |info: u8| -> Option<Option<u64>> {
        let n = match info {
            0..=23 => return Some(Some(u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Some(None),
            _ => return None,
        };
        let bytes = b.get(*pos..*pos + n)?;
        *pos += n;
        Some(Some(bytes.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x))))
    };
    if major == 7 {
        return match info {
            20 => Some(Value::Bool(false)),
            21 => Some(Value::Bool(true)),
            22 | 23 => Some(Value::Null),
            25 => arg(25)?.map(|h| serde_json::json!(f16_to_f64(h as u16))),
            26 => arg(26)?.map(|f| serde_json::json!(f64::from(f32::from_bits(f as u32)))),
            27 => arg(27)?.map(|f| serde_json::json!(f64::from_bits(f))),
            _ => None,
        };
    }
    let len = arg(info)?;
    match major {
        0 => Some(serde_json::json!(len?)),
        1 => Some(serde_json::json!(-1 - i64::try_from(len?).ok()?)),
        2 | 3 => {
            let mut text = Vec::new();
            match len {
                Some(n) => {
                    let n = usize::try_from(n).ok()?;
                    text.extend_from_slice(b.get(*pos..*pos + n)?);
                    *pos += n;
                }
                None => {
                    while *b.get(*pos)? != 0xff {
                        text.extend(cbor_decode(b, pos)?.as_str()?.bytes());
                    }
                    *pos += 1;
                }
            }
            Some(Value::String(String::from_utf8_lossy(&text).into_owned()))
        }
        4 => {
            let mut items = Vec::new();
            match len {
                Some(n) => {
                    for _ in 0..n {
                        items.push(cbor_decode(b, pos)?);
                    }
                }
                None => {
                    while *b.get(*pos)? != 0xff {
                        items.push(cbor_decode(b, pos)?);
                    }
                    *pos += 1;
                }
            }
            Some(Value::Array(items))
        }
        5 => {
            let mut map = serde_json::Map::new();
            let mut entry = |pos: &mut usize| -> Option<()> {
                let k = cbor_decode(b, pos)?.as_str()?.to_owned();
                let v = cbor_decode(b, pos)?;
                map.insert(k, v);
                Some(())
            };
            match len {
                Some(n) => {
                    for _ in 0..n {
                        entry(pos)?;
                    }
                }
                None => {
                    while *b.get(*pos)? != 0xff {
                        entry(pos)?;
                    }
                    *pos += 1;
                }
            }
            Some(Value::Object(map))
        }
        // A tag: its content (tag 1, epoch seconds, is a number already).
        6 => cbor_decode(b, pos),
        _ => None,
    }
}

fn f16_to_f64(h: u16) -> f64 {
    let (sign, exp, frac) = (if h >> 15 == 1 { -1.0 } else { 1.0 }, i32::from((h >> 10) & 0x1f), f64::from(h & 0x3ff));
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

/// JSON as CBOR; numbers under a `Timestamp`/`Timestamps` key get tag 1 (epoch seconds).
fn cbor_encode(v: &serde_json::Value, time: bool, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => {
            if time {
                out.push(0xc1);
            }
            match (n.as_u64(), n.as_i64()) {
                (Some(u), _) if !time => cbor_head(0, u, out),
                (None, Some(i)) if !time => cbor_head(1, (-1 - i) as u64, out),
                _ => {
                    out.push(0xfb);
                    out.extend(n.as_f64().unwrap_or(0.0).to_be_bytes());
                }
            }
        }
        Value::String(s) => {
            cbor_head(3, s.len() as u64, out);
            out.extend(s.as_bytes());
        }
        Value::Array(a) => {
            cbor_head(4, a.len() as u64, out);
            for x in a {
                cbor_encode(x, time, out);
            }
        }
        Value::Object(m) => {
            cbor_head(5, m.len() as u64, out);
            for (k, x) in m {
                cbor_encode(&Value::String(k.clone()), false, out);
                cbor_encode(x, k == "Timestamp" || k == "Timestamps", out);
            }
        }
    }
}

#[test]
fn cbor_round_trips_through_json() {
    let v = serde_json::json!({"A": [1, -2, 2.5, "x", null, true], "Timestamps": [1796062215], "Empty": {}});
    let mut out = Vec::new();
    cbor_encode(&v, false, &mut out);
    let back = cbor_decode(&out, &mut 0).expect("decodes");
    assert_eq!(back["A"], v["A"]);
    assert_eq!(back["Timestamps"][0].as_f64(), Some(1_796_062_215.0));
    assert_eq!(back["Empty"], serde_json::json!({}));
    // RFC 8949 appendix A: 0xf93c00 is 1.0 as a half float, 0x9f 01 02 ff an indefinite array.
    assert_eq!(cbor_decode(&[0xf9, 0x3c, 0x00], &mut 0), Some(serde_json::json!(1.0)));
    assert_eq!(cbor_decode(&[0x9f, 0x01, 0x02, 0xff], &mut 0), Some(serde_json::json!([1, 2])));
}

/// A second moto that checks every request's credentials against its (empty) IAM: it refuses
/// ours with `AuthFailure`.
fn auth_moto() -> &'static Moto {
    static AUTH: OnceLock<Moto> = OnceLock::new();
    AUTH.get_or_init(|| start_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]))
}

#[tokio::test]
async fn rejected_credentials_are_auth_errors_without_the_credentials() {
    let server = auth_moto();
    let aws = AwsCloud::new(config(&server.url)).await.expect("valid config");
    let checks = [
        ("create", aws.create(request("auth", 0, 0, Market::OnDemand)).await.map(|_| ())),
        ("list", aws.list("auth").await.map(|_| ())),
        ("prices", aws.prices().await.map(|_| ())),
        ("delete", aws.delete("i-0123456789abcdef0").await),
    ];
    for (op, r) in checks {
        let e = r.expect_err(op);
        assert!(matches!(e, ProviderError::Auth(_)), "{op}: {e:?}");
        let text = format!("{e} {e:?}");
        assert!(text.contains("AuthFailure"), "{op}: {text}");
        assert!(!text.contains(KEY_ID) && !text.contains(SECRET), "{op}: {text}");
    }
    assert!(!format!("{aws:?}").contains(SECRET));
}

// ---------------------------------------------------------------------------------------------
// Against EC2's error format: what moto cannot produce
// ---------------------------------------------------------------------------------------------

/// A loopback HTTP server answering every request with `answer(action, call number)`: status
/// and body. Returns its URL and the actions it received.
fn ec2_fixture(
    answer: impl Fn(&str, usize) -> (u16, String) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let body = String::from_utf8_lossy(&body).into_owned();
            let action = body.split('&').find_map(|p| p.strip_prefix("Action=")).unwrap_or_default().to_owned();
            let n = {
                let mut seen = log.lock().expect("log");
                seen.push(action.clone());
                seen.iter().filter(|a| **a == action).count()
            };
            let (status, reply) = answer(&action, n);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: text/xml;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, seen)
}

/// An error answer exactly as EC2 writes one.
fn ec2_error(code: &str, message: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"#
    )
}

const NO_INSTANCES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>8f7724cf-496f-496e-8fe3-example</requestId><reservationSet/></DescribeInstancesResponse>"#;

/// RunInstances' answer (from the EC2 API reference's example, trimmed).
fn run_instances_ok(token: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
  <reservationId>r-1234567890abcdef0</reservationId>
  <ownerId>123456789012</ownerId>
  <instancesSet><item>
    <instanceId>i-1234567890abcdef0</instanceId>
    <imageId>{AMI}</imageId>
    <instanceState><code>0</code><name>pending</name></instanceState>
    <instanceType>m5.large</instanceType>
    <placement><availabilityZone>us-east-1a</availabilityZone><tenancy>default</tenancy></placement>
    <clientToken>{token}</clientToken>
    <tagSet>
      <item><key>{TAG_OWNER_UID}</key><value>fixture</value></item>
      <item><key>{TAG_SLOT}</key><value>0</value></item>
      <item><key>{TAG_CLIENT_TOKEN}</key><value>{token}</value></item>
    </tagSet>
  </item></instancesSet>
</RunInstancesResponse>"#
    )
}

async fn create_against(
    answer: impl Fn(&str, usize) -> (u16, String) + Send + Sync + 'static,
) -> Result<String, ProviderError> {
    let (url, _) = ec2_fixture(answer);
    let aws = AwsCloud::new(config(&url)).await.expect("valid config");
    aws.create(request("fixture", 0, 0, Market::OnDemand)).await.map(|i| i.id)
}

#[tokio::test]
async fn ec2_error_codes_map_onto_provider_errors() {
    type Expect = fn(&ProviderError) -> bool;
    let cases: [(u16, &str, Expect); 6] = [
        (
            503,
            "RequestLimitExceeded",
            |e| matches!(e, ProviderError::Throttled(m) if m.contains("RequestLimitExceeded")),
        ),
        (500, "InsufficientInstanceCapacity", |e| matches!(e, ProviderError::InsufficientCapacity(_))),
        (400, "IdempotentParameterMismatch", |e| *e == ProviderError::TokenMismatch("fixture-0-0".into())),
        (403, "UnauthorizedOperation", |e| matches!(e, ProviderError::Auth(_))),
        (401, "AuthFailure", |e| matches!(e, ProviderError::Auth(_))),
        (400, "InvalidAMIID.NotFound", |e| matches!(e, ProviderError::Api(m) if m.contains("InvalidAMIID.NotFound"))),
    ];
    for (status, code, ok) in cases {
        let e = create_against(move |action, _| match action {
            "DescribeInstances" => (200, NO_INSTANCES.to_owned()),
            // The service's message echoes the key id: it must not reach the error.
            _ => (status, ec2_error(code, &format!("refused for {KEY_ID}"))),
        })
        .await
        .expect_err(code);
        assert!(ok(&e), "{code}: {e:?}");
        assert!(!format!("{e:?}").contains(KEY_ID), "{code}: {e:?}");
    }
    // A 503 without an EC2 body, and an endpoint that refuses connections, are transient.
    let e = create_against(|_, _| (503, "<html>Service Unavailable</html>".into())).await.expect_err("503");
    assert!(matches!(e, ProviderError::Throttled(_)), "{e:?}");
    let refused = format!("http://127.0.0.1:{}", free_port());
    let aws = AwsCloud::new(config(&refused)).await.expect("valid config");
    let e = aws.list("nobody").await.expect_err("connection refused");
    assert!(matches!(e, ProviderError::Throttled(_)), "{e:?}");
}

#[tokio::test]
async fn throttled_run_instances_is_retried_with_the_same_client_token() {
    let (url, seen) = ec2_fixture(|action, n| match (action, n) {
        ("DescribeInstances", _) => (200, NO_INSTANCES.to_owned()),
        ("RunInstances", 1 | 2) => (503, ec2_error("RequestLimitExceeded", "Request limit exceeded.")),
        ("RunInstances", _) => (200, run_instances_ok("fixture-0-0")),
        _ => (400, ec2_error("InvalidAction", "unexpected")),
    });
    let aws = AwsCloud::new(config(&url)).await.expect("valid config");
    // Real time (the SDK's own timeouts must not jump ahead on paused time), short delays.
    let policy = RetryPolicy { base: Duration::from_millis(10), cap: Duration::from_millis(50), max_attempts: 5 };
    let retrying = Retrying::with_seed(Arc::new(aws), policy, 3).expect("valid policy");
    let made = retrying.create(request("fixture", 0, 0, Market::OnDemand)).await.expect("third RunInstances succeeds");
    assert_eq!(made.id, "i-1234567890abcdef0");
    assert_eq!(made.state, InstanceState::Pending);
    let runs = seen.lock().expect("log").iter().filter(|a| *a == "RunInstances").count();
    assert_eq!(runs, 3);
}

/// Two running spot instances of owner `fixture`: `…a` (spot request `sir-1`) and `…b` (`sir-2`).
const TWO_SPOT_INSTANCES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet><item>
    <reservationId>r-1234567890abcdef0</reservationId>
    <ownerId>123456789012</ownerId>
    <instancesSet>
      <item>
        <instanceId>i-000000000000000aa</instanceId>
        <instanceState><code>16</code><name>running</name></instanceState>
        <instanceType>m5.large</instanceType>
        <placement><availabilityZone>us-east-1a</availabilityZone></placement>
        <instanceLifecycle>spot</instanceLifecycle>
        <spotInstanceRequestId>sir-1</spotInstanceRequestId>
        <tagSet><item><key>novacron.io/owner-uid</key><value>fixture</value></item><item><key>novacron.io/slot</key><value>0</value></item></tagSet>
      </item>
      <item>
        <instanceId>i-000000000000000bb</instanceId>
        <instanceState><code>16</code><name>running</name></instanceState>
        <instanceType>m5.large</instanceType>
        <placement><availabilityZone>us-east-1b</availabilityZone></placement>
        <instanceLifecycle>spot</instanceLifecycle>
        <spotInstanceRequestId>sir-2</spotInstanceRequestId>
        <tagSet><item><key>novacron.io/owner-uid</key><value>fixture</value></item><item><key>novacron.io/slot</key><value>1</value></item></tagSet>
      </item>
    </instancesSet>
  </item></reservationSet>
</DescribeInstancesResponse>"#;

/// `sir-1` marked for termination at 2026-11-30T18:00:00Z, `sir-2` fulfilled.
const SPOT_REQUESTS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeSpotInstanceRequestsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>d9f0e8b2-example</requestId>
  <spotInstanceRequestSet>
    <item>
      <spotInstanceRequestId>sir-1</spotInstanceRequestId>
      <state>active</state>
      <status><code>marked-for-termination</code><updateTime>2026-11-30T18:00:00.000Z</updateTime><message>Your Spot Instance has been marked for termination because of EC2 capacity.</message></status>
      <instanceId>i-000000000000000aa</instanceId>
    </item>
    <item>
      <spotInstanceRequestId>sir-2</spotInstanceRequestId>
      <state>active</state>
      <status><code>fulfilled</code><updateTime>2026-11-30T17:00:00.000Z</updateTime><message>Your spot request is fulfilled.</message></status>
      <instanceId>i-000000000000000bb</instanceId>
    </item>
  </spotInstanceRequestSet>
</DescribeSpotInstanceRequestsResponse>"#;

#[tokio::test]
async fn a_spot_request_marked_for_termination_is_an_interruption_notice() {
    let (url, seen) = ec2_fixture(|action, _| match action {
        "DescribeInstances" => (200, TWO_SPOT_INSTANCES.to_owned()),
        "DescribeSpotInstanceRequests" => (200, SPOT_REQUESTS.to_owned()),
        _ => (400, ec2_error("InvalidAction", "unexpected")),
    });
    let aws = AwsCloud::new(config(&url)).await.expect("valid config");
    // 2026-11-30T18:00:00Z plus EC2's two minutes.
    let due = InstanceState::Interrupting { at_ms: 1_796_061_600_000 + 120_000 };
    let listed: Vec<(String, InstanceState)> =
        aws.list("fixture").await.expect("list").into_iter().map(|i| (i.id, i.state)).collect();
    assert_eq!(
        listed,
        vec![("i-000000000000000aa".to_owned(), due), ("i-000000000000000bb".to_owned(), InstanceState::Running)]
    );
    assert_eq!(aws.get("i-000000000000000aa").await.expect("get").map(|i| i.state), Some(due));
    let calls = seen.lock().expect("log").clone();
    assert_eq!(calls.iter().filter(|a| *a == "DescribeSpotInstanceRequests").count(), 2, "{calls:?}");
}

/// Log lines written during a test (a `tracing` subscriber's writer).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// End to end: the operator's controllers on AWS through the multi-cloud router, with credentials
/// moto refuses. The MultiCloudVM's and the VirtualMachine's statuses say which provider refused
/// them and why (`CredentialsValid` False, `Ready` False, reason `CredentialsRejected`), the
/// reconciles fail (and back off), and the credentials appear in no status, Event, API request
/// or log line.
#[tokio::test]
async fn refused_credentials_become_conditions_naming_the_provider_and_never_the_secret() {
    use crate::common::{Fixture, Harness, NOVACRON, condition, mcvm, seed_spec};
    use operator::crd::VirtualMachine;
    use operator::provider::multi::{Member, MultiCloud};

    let logs = LogBuffer::default();
    let writer = logs.clone();
    // The operator's own log filter, at RUST_LOG=debug.
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(operator::logging::filter(Some("debug"))),
    );
    let _log = tracing::subscriber::set_default(subscriber);

    let aws = AwsCloud::new(config(&auth_moto().url)).await.expect("valid config");
    let router = MultiCloud::new(vec![Member {
        name: "aws-us-east-1".into(),
        provider: engine::Provider::Aws,
        cloud: Arc::new(aws),
    }]);
    let h = Harness::with_provider(Arc::new(router));

    // The MultiCloudVM: its engine needs the clouds' catalog, which AWS refuses.
    let obj = mcvm("web", seed_spec()).finalized();
    h.keep(&obj);
    let stored = Arc::new(h.stored("web").expect("stored"));
    let e = operator::controller::reconcile(stored.clone(), h.ctx.clone()).await.expect_err("refused");
    operator::controller::error_policy(stored, &e, h.ctx.clone());
    let s = h.stored("web").and_then(|o| o.status).expect("a status");
    let c = condition(&s, "CredentialsValid");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "CredentialsRejected"), "{c:?}");
    assert!(c.message.starts_with("credentials rejected: aws-us-east-1: "), "names the provider: {}", c.message);
    assert!(c.message.contains("AuthFailure"), "and the problem: {}", c.message);
    let ready = condition(&s, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "CredentialsRejected"));

    // A VirtualMachine of its own: listing its instances is refused.
    let vm: VirtualMachine = serde_json::from_value(serde_json::json!({
        "apiVersion": "novacron.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "db", "namespace": "default", "uid": "uid-db", "generation": 1,
                     "finalizers": [operator::crd::virtualmachine::FINALIZER]},
        "spec": {"provider": "aws", "region": "aws-us-east-1", "zone": "us-east-1a", "instanceType": "m5.large"}
    }))
    .expect("a VirtualMachine");
    h.store().put(NOVACRON, "virtualmachines", &serde_json::to_value(&vm).expect("json"));
    let errors = h.vm_pass().await;
    assert_eq!(errors.iter().map(|e| e.metric_label()).collect::<Vec<_>>(), ["provider"], "{errors:?}");
    let vm = h.vms().into_iter().find(|v| v.metadata.name.as_deref() == Some("db")).expect("db");
    let vs = vm.status.expect("a status");
    assert_eq!(vs.phase, None, "not Failed: nothing was made, a replacement would fail alike");
    let c = vs.conditions.iter().find(|c| c.type_ == "CredentialsValid").expect("CredentialsValid");
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "CredentialsRejected"));
    assert!(c.message.starts_with("aws: credentials rejected: aws-us-east-1: "), "{}", c.message);
    assert!(c.message.contains("AuthFailure"), "{}", c.message);

    // Nowhere the credentials: statuses, Events, every request to the API server, the logs.
    let logs = String::from_utf8(logs.0.lock().expect("log").clone()).expect("UTF-8 logs");
    assert!(logs.contains("credentials rejected: aws-us-east-1"), "the refusal is logged:\n{logs}");
    assert!(logs.contains("DEBUG"), "at debug level:\n{logs}");
    let events = h.events();
    let requests: Vec<String> = h.store().calls.iter().map(|c| format!("{} {} {}", c.method, c.path, c.body)).collect();
    let everything = format!("{requests:?}\n{events:?}\n{logs}");
    for secret in [KEY_ID, SECRET] {
        assert!(!everything.contains(secret), "{secret} leaked:\n{everything}");
    }
}
