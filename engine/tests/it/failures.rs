//! Provisioning failures: capacity errors move the VM elsewhere, API errors retry with backoff,
//! lost instances fail over.

use engine::{
    Action, EngineConfig, Event, FailureCause, InstanceId, Market, ProvisionReason, RejectReason, SimDuration, SimTime,
    Timer, TimerKind, VmId, VmState,
};

use crate::fixture::*;

fn failed(instance: u64, cause: FailureCause) -> Event {
    Event::InstanceFailed { instance: InstanceId(instance), cause }
}

fn retry_timer(at: SimTime, vm: u64) -> Action {
    Action::SetTimer { timer: Timer { at, kind: TimerKind::Retry(VmId(vm)) } }
}

fn fire(vm: u64) -> Event {
    Event::TimerFired { timer: TimerKind::Retry(VmId(vm)) }
}

#[test]
fn insufficient_capacity_moves_on_and_avoids_the_offer_until_the_backoff_passes() {
    // Default capacity backoff: 300 s.
    let mut run = Run::new(config("cost-optimized"));
    assert_eq!(
        provisioned(&run.request(SimTime::ZERO, small_cloud(1))),
        (0, AWS_A_SMALL, Market::OnDemand, ProvisionReason::Initial)
    );
    // O0 has no capacity: re-placed at once on the next cheapest, O1 (0.096, listed after O0).
    let actions = run.at(secs(5), failed(0, FailureCause::InsufficientCapacity));
    assert_eq!(provisioned(&actions), (1, AWS_B_SMALL, Market::OnDemand, ProvisionReason::Retry));
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Provisioning));
    assert_eq!(run.engine.tracked_instances(), 1);

    // O0 on demand is avoided until 5 + 300 = 305 s. VM 2 takes O1's second and last slot.
    assert_eq!(provisioned(&run.request(secs(10), small_cloud(2))).1, AWS_B_SMALL);
    // Just before 305 s: O0 avoided, O1 full → azure O2 (0.099).
    assert_eq!(provisioned(&run.request(SimTime(304_999), small_cloud(3))).1, AZ_1_SMALL);
    // At 305 s O0 is back.
    assert_eq!(provisioned(&run.request(secs(305), small_cloud(4))).1, AWS_A_SMALL);
    // Only the failed market was avoided: O0 spot stayed open meanwhile.
    let mut other = Run::new(config("lowest-price"));
    other.request(SimTime::ZERO, small_spot(1)); // O4 spot
    other.at(secs(1), failed(0, FailureCause::InsufficientCapacity));
    // O4 spot avoided → next cheapest spot O5 (0.028).
    assert_eq!(provisioned(&other.request(secs(2), small_spot(2))).1, GCP_B_SMALL);
}

#[test]
fn capacity_failures_everywhere_end_in_a_rejection() {
    let mut run = Run::new(config("cost-optimized"));
    // aws only: O0 (0.096), then O1 (0.096), then the large O6 (0.192), each failing.
    assert_eq!(provisioned(&run.request(SimTime::ZERO, small_aws(1))).1, AWS_A_SMALL);
    assert_eq!(provisioned(&run.at(secs(1), failed(0, FailureCause::InsufficientCapacity))).1, AWS_B_SMALL);
    assert_eq!(provisioned(&run.at(secs(2), failed(1, FailureCause::InsufficientCapacity))).1, AWS_A_LARGE);
    // Every aws offer is now avoided and the queue timeout is zero.
    let actions = run.at(secs(3), failed(2, FailureCause::InsufficientCapacity));
    assert_eq!(actions, [Action::Reject { vm: VmId(1), reason: RejectReason::NoCapacity }]);
    assert_eq!((run.engine.tracked_vms(), run.engine.tracked_instances()), (0, 0));
}

#[test]
fn max_attempts_caps_capacity_retries() {
    let mut run = Run::new(EngineConfig { max_attempts: 2, ..config("cost-optimized") });
    run.request(SimTime::ZERO, small_cloud(1)); // attempt 1: O0
    assert_eq!(provisioned(&run.at(secs(1), failed(0, FailureCause::InsufficientCapacity))).1, AWS_B_SMALL); // attempt 2
    let actions = run.at(secs(2), failed(1, FailureCause::InsufficientCapacity));
    assert_eq!(actions, [Action::Reject { vm: VmId(1), reason: RejectReason::NoCapacity }]);
}

#[test]
fn api_errors_retry_with_exponential_backoff_then_reject() {
    let cfg = EngineConfig {
        max_attempts: 3,
        retry_backoff: SimDuration::from_secs(10),
        retry_backoff_max: SimDuration::from_secs(300),
        ..config("cost-optimized")
    };
    let mut run = Run::new(cfg);
    run.request(SimTime::ZERO, small_cloud(1)); // attempt 1 on O0
    // First failure: wait 10 s × 2⁰ = 10 s, until 1 + 10 = 11 s.
    assert_eq!(run.at(secs(1), failed(0, FailureCause::ApiError)), [retry_timer(secs(11), 1)]);
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Pending));
    assert_eq!(run.engine.tracked_instances(), 0);
    // The timer fires: attempt 2, same offer (an API error says nothing about capacity).
    assert_eq!(provisioned(&run.at(secs(11), fire(1))), (1, AWS_A_SMALL, Market::OnDemand, ProvisionReason::Retry));
    // Throttling backs off the same way: 10 s × 2¹ = 20 s, until 12 + 20 = 32 s.
    assert_eq!(run.at(secs(12), failed(1, FailureCause::Throttled)), [retry_timer(secs(32), 1)]);
    assert_eq!(provisioned(&run.at(secs(32), fire(1))).0, 2); // attempt 3
    // Third failure with max_attempts = 3: rejected, saying the create calls kept failing.
    let actions = run.at(secs(33), failed(2, FailureCause::ApiError));
    assert_eq!(actions, [Action::Reject { vm: VmId(1), reason: RejectReason::ProvisioningFailed }]);
    assert_eq!((run.engine.tracked_vms(), run.engine.tracked_instances()), (0, 0));
    // A stale timer for the rejected VM does nothing.
    assert_eq!(run.at(secs(40), fire(1)), []);
}

#[test]
fn retry_backoff_is_capped() {
    let cfg = EngineConfig {
        max_attempts: 10,
        retry_backoff: SimDuration::from_secs(100),
        retry_backoff_max: SimDuration::from_secs(150),
        ..config("cost-optimized")
    };
    let mut run = Run::new(cfg);
    run.request(SimTime::ZERO, small_cloud(1));
    // Delays: 100 s, then min(200, 150) = 150 s, then min(400, 150) = 150 s.
    let mut now = SimTime::ZERO;
    for (instance, delay) in [(0, 100), (1, 150), (2, 150)] {
        now += SimDuration::from_secs(1);
        let at = now + SimDuration::from_secs(delay);
        assert_eq!(run.at(now, failed(instance, FailureCause::ApiError)), [retry_timer(at, 1)]);
        now = at;
        assert_eq!(provisioned(&run.at(now, fire(1))).0, instance + 1);
    }
}

#[test]
fn a_timer_for_a_vm_that_is_no_longer_waiting_does_nothing() {
    let mut run = Run::new(config("cost-optimized"));
    run.request(SimTime::ZERO, small_cloud(1));
    assert_eq!(run.at(secs(1), failed(0, FailureCause::ApiError)).len(), 1);
    // Released while waiting: the timer finds nothing to do.
    assert_eq!(run.at(secs(5), Event::Released { vm: VmId(1) }), []);
    assert_eq!(run.at(secs(11), fire(1)), []);
    // A timer for a VM that is provisioning does not start a second instance.
    run.request(secs(20), small_cloud(2));
    assert_eq!(run.at(secs(21), fire(2)), []);
    assert_eq!(run.engine.tracked_instances(), 1);
}

#[test]
fn a_running_instance_that_dies_fails_over() {
    let mut run = Run::new(EngineConfig { max_attempts: 1, ..config("cost-optimized") });
    run.request(SimTime::ZERO, small_cloud(1)); // O0
    run.running(secs(30), 0);
    // The zone goes down and takes the instance with it: fail over to O1 (us-east-1b), a fresh
    // attempt count although max_attempts = 1 was used by the first placement.
    run.at(secs(100), Event::ZoneHealth { zone: engine::ZoneId(0), healthy: false });
    let actions = run.at(secs(101), failed(0, FailureCause::Outage));
    assert_eq!(provisioned(&actions), (1, AWS_B_SMALL, Market::OnDemand, ProvisionReason::Failover));
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Recovering));
    run.running(secs(130), 1);
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Running));
    // A crash fails over too; O0's zone is still down, O1 has room again → O1.
    let actions = run.at(secs(200), failed(1, FailureCause::Crashed));
    assert_eq!(provisioned(&actions), (2, AWS_B_SMALL, Market::OnDemand, ProvisionReason::Failover));
    // The dead instances were billed and untracked.
    assert_eq!(run.engine.take_bills().iter().map(|b| b.instance.0).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(run.engine.tracked_instances(), 1);
}

#[test]
fn a_failover_that_errors_keeps_its_failover_reason() {
    let mut run = Run::new(config("cost-optimized"));
    run.request(SimTime::ZERO, small_cloud(1));
    run.running(secs(30), 0);
    run.at(secs(100), failed(0, FailureCause::Crashed)); // failover: instance 1
    // The failover's API call fails: retry after 10 s, and the retry is still a failover.
    assert_eq!(run.at(secs(101), failed(1, FailureCause::ApiError)), [retry_timer(secs(111), 1)]);
    let actions = run.at(secs(111), fire(1));
    assert_eq!(provisioned(&actions), (2, AWS_A_SMALL, Market::OnDemand, ProvisionReason::Failover));
}
