//! Billing: prices that move during an instance's life, the minimum charge, pools, commitments.

use engine::{Commitment, CostModel, Event, Market, OfferId, SimTime, VmId};

use crate::fixture::*;

fn price(offer: OfferId, market: Market, price_per_h: f64) -> Event {
    Event::PriceChanged { offer, market, price_per_h }
}

fn release_and_bill(run: &mut Run, now: SimTime, vm: u64) -> f64 {
    run.at(now, Event::Released { vm: VmId(vm) });
    let bills = run.engine.take_bills();
    assert_eq!(bills.len(), 1, "{bills:?}");
    bills[0].usd
}

#[test]
fn price_changes_mid_life_are_billed_piecewise() {
    let mut run = Run::new(config("cost-optimized"));
    run.request(SimTime::ZERO, small_cloud(1)); // O0 on demand at 0.096
    run.running(secs(30), 0);
    assert_eq!(run.at(secs(1800), price(AWS_A_SMALL, Market::OnDemand, 0.192)), []);
    assert_close(run.engine.snapshot().spend_rate(), 0.192);
    // The spot market of the same offer moving does not touch an on-demand instance.
    run.at(secs(2000), price(AWS_A_SMALL, Market::Spot, 1.0));
    run.at(secs(3600), price(AWS_A_SMALL, Market::OnDemand, 0.048));
    assert_close(run.engine.snapshot().spend_rate(), 0.048);
    // Invalid prices are ignored.
    run.at(secs(4000), price(AWS_A_SMALL, Market::OnDemand, -1.0));
    run.at(secs(4000), price(AWS_A_SMALL, Market::OnDemand, f64::NAN));
    // 0.5 h × 0.096 + 0.5 h × 0.192 + 0.5 h × 0.048 = 0.048 + 0.096 + 0.024 = 0.168.
    assert_close(release_and_bill(&mut run, secs(5400), 1), 0.168);
    assert_eq!(run.engine.snapshot().spend_rate(), 0.0);
}

#[test]
fn the_minimum_charge_is_topped_up_at_the_current_price() {
    let mut run = Run::new(config("cost-optimized"));
    run.request(SimTime::ZERO, small_cloud(1)); // O0 at 0.096
    run.at(secs(30), price(AWS_A_SMALL, Market::OnDemand, 0.192));
    // 40 s used, 60 s billed: 30 s × 0.096 + 10 s × 0.192 + 20 s × 0.192 = (2.88 + 1.92 + 3.84) / 3600.
    assert_close(release_and_bill(&mut run, secs(40), 1), 8.64 / 3600.0);
}

#[test]
fn spot_price_changes_are_billed_piecewise() {
    let mut run = Run::new(config("lowest-price"));
    run.request(SimTime::ZERO, small_spot(1)); // O4 spot at 0.025
    run.at(secs(900), price(GCP_A_SMALL, Market::Spot, 0.05));
    // A quarter hour at 0.025, three quarters at 0.05: 0.00625 + 0.0375 = 0.04375.
    assert_close(release_and_bill(&mut run, secs(3600), 1), 0.04375);
}

#[test]
fn pool_vms_pay_per_vcpu_and_per_gib() {
    let mut run = Run::new(config("cost-optimized"));
    let (_, _, placement, _) = provision(&run.request(SimTime::ZERO, small(1)));
    assert_eq!(placement.offer, POOL);
    assert_close(placement.price_per_h, 0.06);
    // The vCPU price doubles at 0.5 h: 2 vCPU × 0.04 + 4 GiB × 0.005 = 0.10 $/h from then on.
    run.at(secs(1800), price(POOL, Market::OnDemand, 0.04));
    assert_close(run.engine.snapshot().spend_rate(), 0.1);
    // 0.5 h × 2 × 0.02 + 0.5 h × 2 × 0.04 + 1 h × 4 × 0.005 = 0.02 + 0.04 + 0.02 = 0.08.
    assert_close(release_and_bill(&mut run, secs(3600), 1), 0.08);
}

#[test]
fn reserved_instances_cost_nothing_at_the_margin() {
    let reserved = Commitment::Reserved { offer: AWS_A_LARGE, count: 1, fee_per_h: 0.12 };
    let cost = CostModel { commitments: vec![reserved], ..CostModel::default() };
    let mut run = Run::with_cost(cost, config("cost-optimized"));
    // The fleet pays the reservation's fee from the start.
    assert_close(run.engine.snapshot().spend_rate(), 0.12);
    // O6 lists at 0.192 but is already paid for: marginal 0 beats the pool's 0.06.
    let actions = run.request(SimTime::ZERO, small(1));
    let Some(engine::Action::Provision { placement, scores, .. }) = actions.first() else { panic!("{actions:?}") };
    assert_eq!(placement.offer, AWS_A_LARGE);
    assert_close(placement.price_per_h, 0.192);
    assert_eq!(scores.cost_per_h, 0.0);
    assert_close(run.engine.snapshot().spend_rate(), 0.12);
    // The second VM finds the reservation in use and takes the pool.
    assert_eq!(provision(&run.request(SimTime::ZERO, small(2))).2.offer, POOL);
    // Two hours on the reservation bill nothing beyond the fee.
    assert_eq!(release_and_bill(&mut run, secs(7200), 1), 0.0);
}

#[test]
fn fleet_cap_and_group_budgets_hold_in_the_engine() {
    let cost = CostModel { max_per_h: Some(0.2), ..CostModel::default() };
    let cfg = engine::EngineConfig { group_budgets: [(1, 0.1)].into(), ..config("cost-optimized") };
    let mut run = Run::with_cost(cost, cfg);
    let grouped = |id| engine::VmRequest { group: Some(engine::GroupId(1)), ..small_cloud(id) };
    // Group 1 has room for one O0 (0.096 <= 0.1), not two.
    assert_eq!(provisioned(&run.request(SimTime::ZERO, grouped(1))).1, AWS_A_SMALL);
    let over = engine::Action::Reject { vm: VmId(2), reason: engine::RejectReason::OverBudget };
    assert_eq!(run.request(SimTime::ZERO, grouped(2)), [over]);
    // The fleet (0.2) has room for one more O0: 0.192; then a third would make 0.288.
    assert_eq!(provisioned(&run.request(SimTime::ZERO, small_cloud(3))).1, AWS_A_SMALL);
    let over = engine::Action::Reject { vm: VmId(4), reason: engine::RejectReason::OverBudget };
    assert_eq!(run.request(SimTime::ZERO, small_cloud(4)), [over]);
    // Even the cheapest spot (0.025) would break the cap: 0.217 > 0.2.
    let over = engine::Action::Reject { vm: VmId(5), reason: engine::RejectReason::OverBudget };
    assert_eq!(run.request(SimTime::ZERO, small_spot(5)), [over]);
    assert!(run.engine.snapshot().spend_rate() <= 0.2);
}
