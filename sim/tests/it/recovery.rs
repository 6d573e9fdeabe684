//! Migration and disaster recovery in whole simulated scenarios: `migration.toml`,
//! `dr-region-loss.toml` and the deployment of `regional-outage.toml` show what their headers
//! promise. The figures are worked out from the models in `engine::migration` and `engine::dr`.

use sim::results::{MigrationRecord, RunResults};
use sim::run::RunOptions;

fn run(name: &str) -> RunResults {
    let s = sim::scenario::load(&crate::scenario_path(name)).expect("valid");
    sim::run(&s, &RunOptions::default(), &mut ()).expect("runs")
}

fn near(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn of<'a>(r: &'a RunResults, deployment: &str) -> Vec<&'a MigrationRecord> {
    r.migrations.iter().filter(|m| m.deployment == deployment).collect()
}

#[test]
fn migration_kinds_have_the_downtime_and_egress_their_models_give() {
    let r = run("migration.toml");
    // db, live inside AWS at 10 Gbit/s (1.164 GiB/s): 50 GiB disk, then 8 GiB + 0.687 GiB of
    // pre-copy, and a pause for the last 0.059 GiB (51 ms) + 100 ms. Two replicas per hourly
    // window (50 % of 4) while us-east-1 is tripled from 1 h: at 1 h and 2 h. The 10 % bump of
    // us-west-2 at 4 h and the end of the spike at 5 h save less than the 25 % cost threshold.
    let db = of(&r, "db");
    assert_eq!(db.len(), 4, "{db:?}");
    for m in &db {
        assert_eq!((m.kind.as_str(), m.from.as_str(), m.to.as_str()), ("live", "aws-us-east-1", "aws-us-west-2"));
        assert!(m.started_s == 3600.0 || m.started_s == 7200.0, "{m:?}");
        assert!(near(m.downtime_s, 0.151, 0.002), "{m:?}");
        assert!(near(m.transferred_gib, 58.75, 0.01), "{m:?}");
        assert!(near(m.egress_usd, m.transferred_gib * 0.02, 1e-9), "inter-region egress: {m:?}");
        // Both copies are billed while the target boots (40 s) and the data moves (~50 s).
        assert!(m.overlap_s > 80.0 && m.overlap_s < 100.0, "{m:?}");
    }
    // app, warm to Azure over the internet (0.1 GiB/s) when CPU stays above 90 % for 5 min (the
    // metrics fault at 2 h): 2 s switch-over + 0.04 GiB of delta = 2.4 s; 14.04 GiB at $0.09.
    let app = of(&r, "app");
    assert_eq!(app.len(), 2, "{app:?}");
    for m in &app {
        assert_eq!((m.kind.as_str(), m.from.as_str(), m.to.as_str()), ("warm", "aws-us-east-1", "azure-eastus"));
        assert!(m.started_s >= 7200.0 + 300.0 && m.started_s < 7200.0 + 400.0, "{m:?}");
        assert!(near(m.downtime_s, 2.4, 1e-9) && near(m.transferred_gib, 14.04, 1e-9), "{m:?}");
        assert!(near(m.egress_usd, 14.04 * 0.09, 1e-9), "{m:?}");
    }
    // batch, cold inside GCP: snapshot 20 GiB at 0.2 GiB/s (100 s), copy at 1.164 GiB/s (17.2 s),
    // boot (30 s): 147.2 s of downtime, never billed twice; all three move when the spike starts.
    let batch = of(&r, "batch");
    assert_eq!(batch.len(), 3, "{batch:?}");
    for m in &batch {
        assert_eq!(m.kind, "cold");
        assert!(near(m.downtime_s, 147.18, 0.01) && m.overlap_s == 0.0, "{m:?}");
        assert!(near(m.egress_usd, 20.0 * 0.02, 1e-9), "{m:?}");
    }
    let s = &r.summary;
    assert_eq!(s.migrations, 9);
    assert_eq!(s.migrations_by_kind.keys().map(String::as_str).collect::<Vec<_>>(), ["cold", "live", "warm"]);
    assert_eq!(s.migrations_by_kind["cold"].count, 3);
    let egress: f64 = r.migrations.iter().map(|m| m.egress_usd).sum();
    assert!(near(s.migration_egress_usd, egress, 1e-9));
    // Cold moves show in the deployment's downtime (nothing serves while all three move); live and
    // warm pauses are far below the 5 s probe and are counted in migration_downtime_s only.
    let dep = |n: &str| s.deployments.iter().find(|d| d.name == n).expect("deployment");
    assert!(dep("batch").downtime_s > dep("db").downtime_s + 100.0);
    assert!(near(dep("app").migration_downtime_s, 4.8, 1e-9));
}

#[test]
fn dr_region_loss_reports_achieved_rpo_and_rto_against_the_targets() {
    let r = run("dr-region-loss.toml");
    let restores = |n: &str| r.restores.iter().filter(|x| x.deployment == n).collect::<Vec<_>>();
    // orders: backups every 15 min; the region dies at 7:10, its last restore point is 7:00 (RPO
    // 600 s). The chain is the 6:15 full backup (20 GiB) and three incrementals of 0.5 GiB: 21.5
    // GiB at 0.1 GiB/s = 215 s, then a ~40 s boot in us-west-2.
    let orders = restores("orders");
    assert_eq!(orders.len(), 3);
    for x in &orders {
        assert_eq!((x.from.as_str(), x.lost_at_s, x.recovery_point_s), ("aws-us-east-1", 25800.0, Some(25200.0)));
        assert_eq!((x.rpo_s, x.restore_time_s), (Some(600.0), 215.0));
        assert!(x.rto_s.is_some_and(|t| t > 215.0 && t < 400.0), "{x:?}");
    }
    // ledger: a full backup every 6 h; the newest restore point is 6:00: 70 minutes lost.
    let ledger = restores("ledger");
    assert_eq!(ledger.len(), 2);
    assert!(ledger.iter().all(|x| x.rpo_s == Some(4200.0) && x.restore_time_s == 200.0), "{ledger:?}");
    let dep = |n: &str| r.summary.deployments.iter().find(|d| d.name == n).expect("deployment").clone();
    let (o, l) = (dep("orders"), dep("ledger"));
    assert_eq!((o.rpo_met, o.rto_met, o.data_lost), (Some(true), Some(true), false));
    assert_eq!((l.rpo_met, l.rto_met), (Some(false), Some(true)));
    assert_eq!((o.rpo_target_s, o.rto_target_s), (Some(900.0), Some(1800.0)));
    assert_eq!(o.achieved_rpo_s, Some(600.0));
    assert!(o.backups >= 44, "{}", o.backups);
    assert_eq!(l.backups, 1, "6:00 only (12:00 is the end)");
    assert_eq!(r.summary.restores, 5);
}

#[test]
fn regional_outage_deployment_restores_then_migrates_back_warm() {
    let r = run("regional-outage.toml");
    let d = r.summary.deployments.iter().find(|d| d.name == "checkout").expect("checkout");
    assert_eq!(d.restores, 3);
    assert_eq!((d.rpo_met, d.rto_met), (Some(true), Some(true)));
    let reasons: Vec<&str> = r.failovers.iter().map(|f| f.reason.as_str()).collect();
    assert_eq!(reasons, ["availability", "failback"]);
    let back = of(&r, "checkout");
    assert_eq!(back.len(), 3);
    assert!(back.iter().all(|m| m.kind == "warm" && m.to == "aws-us-east-1"), "{back:?}");
}
