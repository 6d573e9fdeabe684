//! A VM's ordinary life: request, provision, running, release, bill.

use engine::{Action, Bill, Event, InstanceId, Market, Placement, ProvisionReason, Scores, SimTime, VmId, VmState};

use crate::fixture::*;

#[test]
fn request_runs_and_is_billed_per_second() {
    let mut run = Run::new(config("cost-optimized"));
    let actions = run.request(SimTime::ZERO, small_cloud(1));
    // Cheapest cloud on demand: O0 at 0.096 (O1 ties and comes later). A small VM draws
    // 2 × 4 W + 4 GiB × 0.375 W = 9.5 W; on aws's 400 g/kWh grid that is 3.8 g/h.
    let expected = Action::Provision {
        instance: InstanceId(0),
        vm: VmId(1),
        placement: Placement { offer: AWS_A_SMALL, market: Market::OnDemand, host: None, price_per_h: 0.096 },
        reason: ProvisionReason::Initial,
        scores: Scores {
            cost_per_h: 0.096,
            latency_ms: 0.0,
            spread: 0.0,
            carbon_g_per_h: 3.8,
            interruption_risk_per_h: 0.0,
            objective: 0.096,
        },
    };
    assert_eq!(actions, [expected]);
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Provisioning));
    assert_close(run.engine.snapshot().spend_rate(), 0.096);

    assert_eq!(run.running(secs(45), 0), []);
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Running));

    let end = SimTime(3_645_500);
    assert_eq!(
        run.at(end, Event::Released { vm: VmId(1) }),
        [Action::Terminate { instance: InstanceId(0), vm: VmId(1) }]
    );
    assert_eq!(run.engine.vm_state(VmId(1)), None);
    assert_eq!((run.engine.tracked_vms(), run.engine.tracked_instances()), (0, 0));
    assert_eq!(run.engine.snapshot().spend_rate(), 0.0);

    let bills = run.engine.take_bills();
    // Billed from the provision at t=0: 3645.5 s rounds up to 3646 s; 0.096 × 3646 / 3600.
    let [bill] = bills.as_slice() else { panic!("expected one bill, got {bills:?}") };
    assert_eq!(
        (bill.instance, bill.vm, bill.offer, bill.market, bill.start, bill.end),
        (InstanceId(0), VmId(1), AWS_A_SMALL, Market::OnDemand, SimTime::ZERO, end)
    );
    assert_close(bill.usd, 0.096 * 3646.0 / 3600.0);
    assert!(run.engine.take_bills().is_empty(), "bills are handed out once");
}

#[test]
fn short_life_pays_the_minimum_minute() {
    let mut run = Run::new(config("cost-optimized"));
    run.request(secs(100), small_cloud(1));
    run.running(secs(105), 0);
    run.at(secs(110), Event::Released { vm: VmId(1) });
    // 10 s of use is billed as 60 s: 0.096 × 60 / 3600 = 0.0016.
    let bills = run.engine.take_bills();
    assert_eq!(bills.len(), 1);
    assert_close(bills[0].usd, 0.0016);
    assert_eq!((bills[0].start, bills[0].end), (secs(100), secs(110)));
}

#[test]
fn instance_ids_are_allocated_in_order_and_pool_vms_get_a_host() {
    let mut run = Run::new(config("cost-optimized"));
    // Anywhere, on demand: the pool at 0.06 is cheapest; first fit fills host 0 (8 vCPU) with four
    // 2-vCPU VMs, then host 1.
    let mut hosts = Vec::new();
    for vm in 0..5 {
        let (instance, _, placement, _) = provision(&run.request(SimTime::ZERO, small(vm)));
        assert_eq!((instance, placement.offer), (InstanceId(vm), POOL));
        hosts.push(placement.host.map(|h| h.0));
    }
    assert_eq!(hosts, [Some(0), Some(0), Some(0), Some(0), Some(1)]);
    // Five pool VMs: 5 × 0.06.
    assert_close(run.engine.snapshot().spend_rate(), 0.3);
}

#[test]
fn duplicates_and_strangers_are_ignored() {
    let mut run = Run::new(config("cost-optimized"));
    run.request(SimTime::ZERO, small_cloud(1));
    // The same request again: no second instance.
    assert_eq!(run.request(secs(1), small_cloud(1)), []);
    // Events about things the engine never made.
    assert_eq!(run.at(secs(2), Event::Released { vm: VmId(9) }), []);
    assert_eq!(run.running(secs(3), 42), []);
    let failed = Event::InstanceFailed { instance: InstanceId(42), cause: engine::FailureCause::Crashed };
    assert_eq!(run.at(secs(4), failed), []);
    assert_eq!(run.at(secs(5), Event::InterruptionNotice { instance: InstanceId(42), at: secs(125) }), []);
    assert_eq!((run.engine.tracked_vms(), run.engine.tracked_instances()), (1, 1));

    // Late news about an instance already deleted is ignored too.
    run.at(secs(10), Event::Released { vm: VmId(1) });
    assert_eq!(run.running(secs(11), 0), []);
    let late = Event::InstanceFailed { instance: InstanceId(0), cause: engine::FailureCause::Crashed };
    assert_eq!(run.at(secs(12), late), []);
    assert_eq!(run.engine.take_bills().len(), 1);

    // A released VM id may be requested again; it gets a new instance.
    assert_eq!(provisioned(&run.request(secs(20), small_cloud(1))).0, 1);
}

#[test]
fn open_instances_are_billed_without_being_ended() {
    let mut run = Run::new(config("cost-optimized"));
    run.request(SimTime::ZERO, small_cloud(1)); // O0 0.096
    run.request(secs(1800), small(2)); // pool 0.06
    let bills = run.engine.bill_open_instances(secs(3600));
    let expected = [
        // 1 h × 0.096.
        Bill {
            instance: InstanceId(0),
            vm: VmId(1),
            offer: AWS_A_SMALL,
            market: Market::OnDemand,
            start: SimTime::ZERO,
            end: secs(3600),
            usd: 0.096,
        },
        // 0.5 h × 0.06.
        Bill {
            instance: InstanceId(1),
            vm: VmId(2),
            offer: POOL,
            market: Market::OnDemand,
            start: secs(1800),
            end: secs(3600),
            usd: 0.03,
        },
    ];
    assert_eq!(bills.len(), 2);
    for (b, e) in bills.iter().zip(&expected) {
        assert_eq!(
            (b.instance, b.vm, b.offer, b.market, b.start, b.end),
            (e.instance, e.vm, e.offer, e.market, e.start, e.end)
        );
        assert_close(b.usd, e.usd);
    }
    assert_eq!(run.engine.tracked_instances(), 2);
    assert!(run.engine.take_bills().is_empty());
}
