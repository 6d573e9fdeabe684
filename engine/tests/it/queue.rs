//! Requests that find no room wait up to `queue_timeout`, retrying, then are rejected.

use engine::{
    Action, EngineConfig, Event, ProvisionReason, RejectReason, SimDuration, SimTime, Timer, TimerKind, VmId, VmState,
};

use crate::fixture::*;

fn queued(timeout_s: u64, backoff_s: u64) -> EngineConfig {
    EngineConfig {
        queue_timeout: SimDuration::from_secs(timeout_s),
        retry_backoff: SimDuration::from_secs(backoff_s),
        ..config("cost-optimized")
    }
}

fn timer(at: SimTime, vm: u64) -> Action {
    Action::SetTimer { timer: Timer { at, kind: TimerKind::Retry(VmId(vm)) } }
}

fn fire(vm: u64) -> Event {
    Event::TimerFired { timer: TimerKind::Retry(VmId(vm)) }
}

fn aws_down() -> Event {
    Event::RegionHealth { region: AWS, healthy: false }
}

#[test]
fn queue_timeout_waits_then_rejects() {
    let mut run = Run::new(queued(60, 25));
    run.at(SimTime::ZERO, aws_down());
    // aws only, aws down: wait, retrying every 25 s, until 0 + 60 s.
    assert_eq!(run.request(SimTime::ZERO, small_aws(1)), [timer(secs(25), 1)]);
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Pending));
    assert_eq!(run.at(secs(25), fire(1)), [timer(secs(50), 1)]);
    // The last retry is clipped to the deadline: min(50 + 25, 60) = 60 s.
    assert_eq!(run.at(secs(50), fire(1)), [timer(secs(60), 1)]);
    assert_eq!(run.at(secs(60), fire(1)), [Action::Reject { vm: VmId(1), reason: RejectReason::NoCapacity }]);
    assert_eq!(run.engine.tracked_vms(), 0);
}

#[test]
fn a_queued_request_is_placed_when_room_appears() {
    let mut run = Run::new(queued(60, 25));
    run.at(SimTime::ZERO, aws_down());
    assert_eq!(run.request(SimTime::ZERO, small_aws(1)), [timer(secs(25), 1)]);
    run.at(secs(30), Event::RegionHealth { region: AWS, healthy: true });
    assert_eq!(run.at(secs(30), Event::ZoneHealth { zone: engine::ZoneId(0), healthy: false }), []);
    // At the next retry aws is back, except us-east-1a: O1.
    assert_eq!(
        provisioned(&run.at(secs(50), fire(1))),
        (0, AWS_B_SMALL, engine::Market::OnDemand, ProvisionReason::Retry)
    );
    run.running(secs(55), 0);
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Running));
}

#[test]
fn a_request_over_budget_waits_for_spend_to_fall() {
    let cost = engine::CostModel { max_per_h: Some(0.1), ..engine::CostModel::default() };
    let mut run = Run::with_cost(cost, queued(120, 25));
    run.request(SimTime::ZERO, small_cloud(1)); // O0 0.096
    assert_eq!(run.request(secs(1), small_cloud(2)), [timer(secs(26), 2)]);
    run.at(secs(20), Event::Released { vm: VmId(1) });
    // Spend is back to 0: the retry at 26 s fits.
    assert_eq!(provisioned(&run.at(secs(26), fire(2))).1, AWS_A_SMALL);
}

#[test]
fn what_can_never_be_placed_is_rejected_at_once() {
    let mut run = Run::new(queued(600, 25));
    let gpu = engine::VmRequest::new(VmId(1), engine::Resources { vcpu: 1, memory_mib: 1024, gpu: 1 });
    assert_eq!(
        run.request(SimTime::ZERO, gpu),
        [Action::Reject { vm: VmId(1), reason: RejectReason::NoMatchingOffer }]
    );
}

#[test]
fn without_a_queue_timeout_a_shortage_rejects_at_once() {
    let mut run = Run::new(config("cost-optimized"));
    run.at(SimTime::ZERO, aws_down());
    assert_eq!(
        run.request(SimTime::ZERO, small_aws(1)),
        [Action::Reject { vm: VmId(1), reason: RejectReason::NoCapacity }]
    );
}

/// Regression: with cloud offers matching too, a full pool was reported as `NoMatchingOffer`,
/// which is final, so the request never waited for room.
#[test]
fn regression_a_full_pool_queues_rather_than_rejecting() {
    let mut run = Run::new(EngineConfig {
        policy: engine::PolicyConfig::default_for("first-fit").expect("policy"),
        ..queued(600, 30)
    });
    // 12 two-vCPU VMs fill the 3 hosts of 8 vCPU.
    for vm in 0..12 {
        assert_eq!(provision(&run.request(SimTime::ZERO, small(vm))).2.offer, POOL);
    }
    assert_eq!(run.request(SimTime::ZERO, small(12)), [timer(secs(30), 12)]);
    run.at(secs(10), Event::Released { vm: VmId(5) });
    // Host 1 has room again.
    let (_, _, placement, _) = provision(&run.at(secs(30), fire(12)));
    assert_eq!((placement.offer, placement.host), (POOL, Some(engine::HostId(1))));
}
