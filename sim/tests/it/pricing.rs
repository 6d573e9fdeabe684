//! The shipped price tables (`data/prices/`) and the scenario option that loads them.
//!
//! `committed_tables_are_what_the_script_writes` installs the pinned `apache-libcloud` in a
//! virtual environment under the target directory (`<target>/novacron-pyenv/prices-<hash of
//! scripts/prices-requirements.txt>`, made once, a lock file keeping two test runs apart), runs
//! `scripts/prices.py --out TMP` and compares every file byte for byte with the committed one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use engine::prices::{PriceTable, Shape, Term};
use engine::{Market, OfferKind, Provider};

fn prices_dir() -> PathBuf {
    crate::root().join("data/prices")
}

fn table(provider: Provider) -> PriceTable {
    let path = prices_dir().join(format!("{provider}.csv"));
    let text = std::fs::read_to_string(&path).expect("committed price table");
    PriceTable::parse(provider, &path.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn committed_tables_parse_with_positive_prices_and_sources() {
    for (provider, min_rows) in [(Provider::Aws, 3000), (Provider::Azure, 3000), (Provider::Gcp, 500)] {
        let t = table(provider);
        assert!(t.len() >= min_rows, "{provider}: {} rows", t.len());
        for r in t.rows() {
            assert!(r.usd_per_h > 0.0 && r.usd_per_h < 200.0, "{provider} {r:?}");
            assert!(!r.source.is_empty(), "{provider} {r:?}");
        }
    }
    // Figures checked by hand against pricing.json (apache-libcloud 3.9.1).
    let aws = table(Provider::Aws);
    assert_eq!(aws.price("us-east-1", "m5.large", None, Term::OnDemand).expect("a price").usd_per_h, 0.096);
    let azure = table(Provider::Azure);
    assert_eq!(azure.price("eastus", "Standard_D2s_v4", None, Term::OnDemand).expect("a price").usd_per_h, 0.096);
    assert_eq!(azure.market_price("eastus", "D2s_v4", None, Market::Spot).expect("a price").usd_per_h, 0.0192);
    let gcp = table(Provider::Gcp);
    let n2 = Some(Shape { vcpu: 2.0, memory_gib: 8.0 });
    let p = gcp.price("us-central1", "n2-standard-2", n2, Term::OnDemand).expect("a price");
    // 2 × 0.031611 + 8 × 0.004237 = 0.097118
    assert!((p.usd_per_h - 0.097118).abs() < 1e-12, "{}", p.usd_per_h);
    assert_eq!(p.sources, ["BB77-5FDA-69D9", "5B01-D157-A097"]);
    // 2 × 0.007649 + 8 × 0.001025 = 0.023498
    let p = gcp.price("us-central1", "n2-standard-2", n2, Term::Preemptible).expect("a price");
    assert!((p.usd_per_h - 0.023498).abs() < 1e-12, "{}", p.usd_per_h);
    // Commitment prices exist for c2 only in this source.
    let c2 = Some(Shape { vcpu: 4.0, memory_gib: 16.0 });
    let od = gcp.price("us-central1", "c2-standard-4", c2, Term::OnDemand).expect("a price").usd_per_h;
    let c1 = gcp.price("us-central1", "c2-standard-4", c2, Term::Commit1y).expect("a price").usd_per_h;
    let c3 = gcp.price("us-central1", "c2-standard-4", c2, Term::Commit3y).expect("a price").usd_per_h;
    // 4 × 0.021409 + 16 × 0.002869 = 0.085636 + 0.045904 = 0.13154
    assert!((c1 - 0.13154).abs() < 1e-12, "{c1}");
    assert!(c3 < c1 && c1 < od, "{od} {c1} {c3}");
    // The source's 0.0 entries are missing rows: a1.medium has 0.0 for us-west-2 in pricing.json
    // (a1 is not a family we keep either), and m5 rows never hold 0.
    assert!(aws.rows().all(|r| r.name != "a1.medium"));
    let source = std::fs::read_to_string(prices_dir().join("SOURCE.md")).expect("SOURCE.md");
    for needle in ["apache-libcloud", "3.9.1", "Apache", "2025-03-02", "scripts/prices.py"] {
        assert!(source.contains(needle), "SOURCE.md lacks {needle:?}");
    }
}

#[test]
fn committed_tables_are_what_the_script_writes() {
    let python = pyenv();
    let out = tempfile::tempdir().expect("tempdir");
    let o = Command::new(&python)
        .arg(crate::root().join("scripts/prices.py"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("runs scripts/prices.py");
    assert!(o.status.success(), "scripts/prices.py failed:\n{}", String::from_utf8_lossy(&o.stderr));
    for f in ["aws.csv", "azure.csv", "gcp.csv", "SOURCE.md"] {
        let made = std::fs::read_to_string(out.path().join(f)).expect("script output");
        let committed = std::fs::read_to_string(prices_dir().join(f)).expect("committed file");
        assert!(
            made == committed,
            "data/prices/{f} differs from what scripts/prices.py writes from the pinned package; regenerate it \
             (see scripts/prices.py)"
        );
    }
}

#[test]
fn real_prices_scenario_takes_offer_prices_from_the_tables() {
    let s = sim::scenario::load(&crate::scenario_path("real-prices.toml")).unwrap_or_else(|e| panic!("{e}"));
    let c = &s.catalog;
    let offer = |region: &str, itype: &str| {
        c.offers
            .iter()
            .find(|o| {
                c.regions[o.region.idx()].name == region
                    && matches!(o.kind, OfferKind::Instance(t) if c.instance_types[t.idx()].name == itype)
            })
            .unwrap_or_else(|| panic!("offer {itype} in {region}"))
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    let o = offer("aws-us-east-1", "m5.large");
    assert_eq!((o.on_demand_per_h, o.spot_per_h), (0.096, Some(0.038)));
    assert_eq!(offer("aws-eu-west-1", "m5.large").on_demand_per_h, 0.114);
    let o = offer("azure-eastus", "D2s_v4");
    assert_eq!((o.on_demand_per_h, o.spot_per_h), (0.096, Some(0.0192)));
    // cloud_region = "westeurope"
    assert_eq!(offer("azure-weu", "D2s_v4").on_demand_per_h, 0.115);
    let o = offer("gcp-us-central1", "n2-standard-2");
    assert!(close(o.on_demand_per_h, 0.097118) && close(o.spot_per_h.expect("a price"), 0.023498), "{o:?}");
    // e2-standard-4: 4 × 0.02181159 + 16 × 0.00292353 = 0.08724636 + 0.04677648 = 0.13402284
    assert!(close(offer("gcp-us-central1", "e2-standard-4").on_demand_per_h, 0.13402284));
}

/// Runs `sim check` on a scenario written into a temporary folder (with `files` beside it).
fn check(scenario: &str, files: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let path = dir.path().join("s.toml");
    std::fs::write(&path, scenario).expect("write scenario");
    let o = Command::new(env!("CARGO_BIN_EXE_sim")).arg("check").arg(&path).output().expect("runs sim");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

const BASE: &str = r#"
name = "p"
seed = 1
duration = "1h"

[[instance_types]]
name = "m5.large"
vcpu = 2
memory_gib = 8

[[instance_types]]
name = "n2-standard-2"
vcpu = 2
memory_gib = 8

[[regions]]
name = "aws-us-east-1"
provider = "aws"
location = [38.9, -77.4]

[[regions]]
name = "gcp-us-central1"
provider = "gcp"
location = [41.3, -95.9]

[workload]
arrival = { process = "poisson", rate_per_s = 0.01 }
lifetime = { dist = "fixed", value = "10m" }

[[workload.shapes]]
vcpu = 2
memory_gib = 4
"#;

/// A scenario, the files beside it, and what its error must say.
type Case<'a> = (String, Vec<(&'a str, &'a str)>, Vec<&'a str>);

#[test]
fn bad_pricing_input_exits_2_naming_file_line_and_key() {
    let aws_ok = "region,name,unit,term,usd_per_h,source\nus-east-1,m5.large,instance,on-demand,0.096,ec2_linux\n";
    let gcp_ok = "region,name,unit,term,usd_per_h,source\n\
                  us-central1,n2,vcpu,on-demand,0.031611,BB77\nus-central1,n2,gib,on-demand,0.004237,5B01\n";
    let offers = "[[offers]]\nregion = \"aws-us-east-1\"\ninstance_type = \"m5.large\"\ncapacity = 5\n\
                  [[offers]]\nregion = \"gcp-us-central1\"\ninstance_type = \"n2-standard-2\"\ncapacity = 5\n";
    // The good case first, so that the failures below are the pricing's.
    let good = format!("{BASE}[pricing]\naws = \"aws.csv\"\ngcp = \"gcp.csv\"\n{offers}");
    let (code, err) = check(&good, &[("aws.csv", aws_ok), ("gcp.csv", gcp_ok)]);
    assert_eq!(code, 0, "{err}");

    let aws_east2 = aws_ok.replace("us-east-1,", "us-east-2,");
    let zero = "region,name,unit,term,usd_per_h,source\nus-east-1,m5.large,instance,on-demand,0.0,ec2_linux\n";
    let cases: Vec<Case> = vec![
        (
            good.clone(),
            vec![("aws.csv", zero), ("gcp.csv", gcp_ok)],
            vec!["pricing.aws: bad price table:", "aws.csv:2: usd_per_h must be > 0"],
        ),
        (good.clone(), vec![("gcp.csv", gcp_ok)], vec!["pricing.aws: cannot read price table", "aws.csv"]),
        (
            good.replace("aws.csv\"\ngcp", "aws.csv\"\nonprem = \"x.csv\"\ngcp"),
            vec![("aws.csv", aws_ok), ("gcp.csv", gcp_ok)],
            vec!["unknown field `onprem`"],
        ),
        (
            good.clone(),
            vec![("aws.csv", &aws_east2), ("gcp.csv", gcp_ok)],
            vec![
                "offers[0].on_demand: no on_demand price given, and aws price table has no on-demand price for m5.large in us-east-1; the table has no region \"us-east-1\" (it has us-east-2)",
            ],
        ),
        (
            format!("{BASE}[pricing]\ngcp = \"gcp.csv\"\n{offers}"),
            vec![("gcp.csv", gcp_ok)],
            vec!["offers[0].on_demand: missing: give on_demand, or a [pricing] aws table to take it from"],
        ),
        (
            format!(
                "{BASE}[pricing]\naws = \"aws.csv\"\ngcp = \"gcp.csv\"\n{}",
                offers.replace(
                    "capacity = 5\n[[offers]]",
                    "capacity = 5\nspot = { interruption_rate_per_h = 0.1 }\n[[offers]]"
                )
            ),
            vec![("aws.csv", aws_ok), ("gcp.csv", gcp_ok)],
            vec![
                "offers[0].spot.price: a spot market needs a price or a series, and",
                "the aws table has no spot prices",
            ],
        ),
        (
            format!(
                "{BASE}[pricing]\naws = \"aws.csv\"\ngcp = \"gcp.csv\"\n{offers}spot = {{ interruption_rate_per_h = 0.1 }}\n"
            ),
            vec![("aws.csv", aws_ok), ("gcp.csv", gcp_ok)],
            vec!["offers[1].spot.price:", "no preemptible vCPU and GiB prices for family n2"],
        ),
    ];
    for (i, (scenario, files, wants)) in cases.iter().enumerate() {
        let (code, err) = check(scenario, files);
        assert_eq!(code, 2, "case {i}: {err}");
        assert!(err.contains("s.toml:"), "case {i} names no file and line: {err}");
        for w in wants {
            assert!(err.contains(w), "case {i}: {err:?} lacks {w:?}");
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The Python of a virtual environment with scripts/prices-requirements.txt, made on first use.
fn pyenv() -> PathBuf {
    let requirements_path = crate::root().join("scripts/prices-requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_path).expect("scripts/prices-requirements.txt");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_owned();
    let base = target.join("novacron-pyenv");
    std::fs::create_dir_all(&base).expect("create pyenv folder");
    let key = format!("prices-{:016x}", fnv1a(requirements.as_bytes()));
    let dir = base.join(&key);
    let python = dir.join("bin/python");
    let marker = dir.join("novacron-requirements.txt");
    let lock = File::create(base.join(format!("{key}.lock"))).expect("create lock file");
    lock.lock().expect("lock the environment");
    let ready = std::fs::read_to_string(&marker).is_ok_and(|m| m == requirements)
        && Command::new(&python).args(["-c", "import libcloud"]).output().is_ok_and(|o| o.status.success());
    if !ready {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("remove the stale environment");
        }
        let base_python = std::env::var("NOVACRON_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let run = |c: &mut Command, what: &str| {
            let o = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                o.status.success(),
                "{what} failed:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(Command::new(&base_python).args(["-m", "venv"]).arg(&dir), &format!("{base_python} -m venv"));
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check", "-r"])
                .arg(&requirements_path),
            "pip install -r scripts/prices-requirements.txt",
        );
        std::fs::write(&marker, &requirements).expect("write marker");
    }
    drop(lock);
    python
}
