//! Spot interruptions: a notice starts a replacement elsewhere, the doomed instance goes once the
//! replacement runs.

use engine::{Action, EngineConfig, Event, FailureCause, InstanceId, Market, ProvisionReason, SimTime, VmId, VmState};

use crate::fixture::*;

fn notice(instance: u64, at: SimTime) -> Event {
    Event::InterruptionNotice { instance: InstanceId(instance), at }
}

fn interrupted(instance: u64) -> Event {
    Event::InstanceFailed { instance: InstanceId(instance), cause: FailureCause::Interrupted }
}

fn spot(offer: engine::OfferId) -> (engine::OfferId, Market) {
    (offer, Market::Spot)
}

#[test]
fn notice_starts_a_replacement_elsewhere_and_the_old_instance_goes_when_it_runs() {
    let mut run = Run::new(config("lowest-price"));
    // Cheapest spot: O4 at 0.025.
    assert_eq!(
        provisioned(&run.request(SimTime::ZERO, small_spot(1))),
        (0, GCP_A_SMALL, Market::Spot, ProvisionReason::Initial)
    );
    run.running(secs(60), 0);

    // Two minutes' notice at 600 s: O4 spot is blocked until 720 + 900 (spot_block) = 1620 s, so the
    // replacement goes to the next cheapest spot, O5 (0.028).
    let actions = run.at(secs(600), notice(0, secs(720)));
    assert_eq!(provisioned(&actions), (1, GCP_B_SMALL, Market::Spot, ProvisionReason::Replacement));
    // The VM keeps serving from the doomed instance meanwhile.
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Running));
    assert_eq!(run.engine.tracked_instances(), 2);
    // One interruption just now: ln 2 / (1 h half-life) per hour.
    let rate = run.engine.snapshot().offers[GCP_A_SMALL.idx()]
        .interruption_rate(secs(600), engine::SimDuration::from_secs(3600));
    assert_close(rate, std::f64::consts::LN_2);

    // The replacement is up: the old instance is terminated.
    assert_eq!(run.running(secs(650), 1), [Action::Terminate { instance: InstanceId(0), vm: VmId(1) }]);
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Running));
    assert_eq!(run.engine.tracked_instances(), 1);
    let bills = run.engine.take_bills();
    assert_eq!(bills.len(), 1);
    // Instance 0 ran 650 s on O4 spot: 0.025 × 650 / 3600.
    assert_eq!((bills[0].instance, bills[0].market), (InstanceId(0), Market::Spot));
    assert_close(bills[0].usd, 0.025 * 650.0 / 3600.0);

    // The cloud's own report of the interruption comes too late to matter.
    assert_eq!(run.at(secs(720), interrupted(0)), []);
    assert_eq!(run.engine.tracked_instances(), 1);

    // O4 spot stays blocked until 1620 s for everyone.
    assert_eq!(spot(provisioned(&run.request(secs(1619), small_spot(2))).1), spot(GCP_B_SMALL));
    assert_eq!(spot(provisioned(&run.request(secs(1620), small_spot(3))).1), spot(GCP_A_SMALL));

    // Released: only the serving instance is left to terminate.
    assert_eq!(
        run.at(secs(2000), Event::Released { vm: VmId(1) }),
        [Action::Terminate { instance: InstanceId(1), vm: VmId(1) }]
    );
}

#[test]
fn the_replacement_carries_on_when_the_old_instance_dies_first() {
    let mut run = Run::new(config("lowest-price"));
    run.request(SimTime::ZERO, small_spot(1));
    run.running(secs(60), 0);
    assert_eq!(provisioned(&run.at(secs(600), notice(0, secs(720)))).0, 1);
    // Reclaimed before the replacement is up: nothing to do, the replacement is already coming.
    assert_eq!(run.at(secs(720), interrupted(0)), []);
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Recovering));
    // Up: nothing left to terminate.
    assert_eq!(run.running(secs(750), 1), []);
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Running));
    assert_eq!(run.engine.tracked_instances(), 1);
}

#[test]
fn without_replace_on_notice_the_vm_fails_over_when_reclaimed() {
    let mut run = Run::new(EngineConfig { replace_on_notice: false, ..config("lowest-price") });
    run.request(SimTime::ZERO, small_spot(1));
    run.running(secs(60), 0);
    // The notice only blocks O4 spot (until 720 + 900 = 1620 s).
    assert_eq!(run.at(secs(600), notice(0, secs(720))), []);
    let actions = run.at(secs(720), interrupted(0));
    assert_eq!(provisioned(&actions), (1, GCP_B_SMALL, Market::Spot, ProvisionReason::Failover));
    assert_eq!(run.engine.vm_state(VmId(1)), Some(VmState::Recovering));
}

#[test]
fn a_failed_replacement_is_retried_and_a_release_terminates_both() {
    let mut run = Run::new(config("lowest-price"));
    run.request(SimTime::ZERO, small_spot(1)); // O4 spot
    run.running(secs(60), 0);
    assert_eq!(spot(provisioned(&run.at(secs(600), notice(0, secs(720)))).1), spot(GCP_B_SMALL));
    // O5 spot has no capacity: avoided, the replacement is retried on O0 spot (0.030).
    let failed = Event::InstanceFailed { instance: InstanceId(1), cause: FailureCause::InsufficientCapacity };
    assert_eq!(provisioned(&run.at(secs(601), failed)), (2, AWS_A_SMALL, Market::Spot, ProvisionReason::Replacement));
    // Released before either dies or runs: both instances go.
    let actions = run.at(secs(610), Event::Released { vm: VmId(1) });
    assert_eq!(
        actions,
        [
            Action::Terminate { instance: InstanceId(0), vm: VmId(1) },
            Action::Terminate { instance: InstanceId(2), vm: VmId(1) }
        ]
    );
    assert_eq!(run.engine.tracked_instances(), 0);
}

/// Regression: a replacement that came up did not reset the VM's attempt count (the first
/// placement's did), so a VM that had already survived one interruption got fewer retries for
/// its next replacement than a fresh VM.
#[test]
fn regression_replacement_retries_do_not_shrink_after_a_successful_replacement() {
    let mut run = Run::new(EngineConfig { max_attempts: 2, ..config("lowest-price") });
    run.request(SimTime::ZERO, small_spot(1)); // attempt 1, O4 spot
    run.running(secs(60), 0); // attempts reset
    // First interruption: the replacement (O5) comes up and takes over.
    assert_eq!(spot(provisioned(&run.at(secs(100), notice(0, secs(220)))).1), spot(GCP_B_SMALL));
    assert_eq!(run.running(secs(110), 1).len(), 1);
    // Second interruption: O4 (until 1120 s) and O5 (until 1220 s) are blocked → O0 spot (0.030).
    assert_eq!(
        provisioned(&run.at(secs(200), notice(1, secs(320)))),
        (2, AWS_A_SMALL, Market::Spot, ProvisionReason::Replacement)
    );
    // That replacement fails for capacity: with one of two attempts used, it is retried on O1 spot (0.035).
    let failed = Event::InstanceFailed { instance: InstanceId(2), cause: FailureCause::InsufficientCapacity };
    assert_eq!(provisioned(&run.at(secs(201), failed)), (3, AWS_B_SMALL, Market::Spot, ProvisionReason::Replacement));
}
