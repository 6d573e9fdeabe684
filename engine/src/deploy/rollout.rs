//! Rollouts: how a deployment's replicas are replaced when its template changes (a VMCluster's
//! `updateStrategy`), as a Kubernetes Deployment replaces its pods.
//!
//! A replica is *outdated* when its instance was placed for an earlier template. Each evaluation
//! (and each time an instance starts running) the engine asks [`Rollout::plan`] which outdated
//! replicas to replace now, from a read-only view of every replica:
//!
//! - an outdated replica that does not serve (still starting, or waiting for a placement) is
//!   recreated at once: it takes nothing from anyone;
//! - `RollingUpdate`: a serving outdated replica is replaced make-before-break (a new instance
//!   starts beside it, the old one goes once the new one runs) while fewer than `max_surge`
//!   replacements are in flight, else break-before-make (the old instance goes, a new one is
//!   placed) while fewer than `max_unavailable` replicas do not serve. So at most
//!   `replicas + max_surge` instances exist and at least `replicas - max_unavailable` serve
//!   (unless failures took more down, in which case only surging goes on);
//! - `Recreate`: every outdated replica goes at once and is placed afresh.
//!
//! `max_surge` and `max_unavailable` are counts; a caller with percentages resolves them against
//! the replicas wanted (Kubernetes rounds a surge up and an unavailability down).

use serde::{Deserialize, Serialize};

/// How outdated replicas are replaced (`updateStrategy.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Rollout {
    /// A few at a time.
    RollingUpdate {
        /// Replacements in flight beside the replicas they replace, at most.
        max_surge: u32,
        /// Replicas not serving, at most (the rollout's own doing; failures may add more).
        max_unavailable: u32,
    },
    /// All at once: every outdated replica goes, then new ones are placed.
    Recreate,
}

impl Rollout {
    /// Checks that a rolling update can make progress.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Rollout::RollingUpdate { max_surge: 0, max_unavailable: 0 } => {
                Err("a rolling update needs max_surge or max_unavailable above 0".into())
            }
            _ => Ok(()),
        }
    }

    /// Which of `replicas` to replace now, and how. Pure: the same view gives the same answer;
    /// replicas are taken in slot order.
    pub fn plan(&self, replicas: &[ReplicaView]) -> Vec<(usize, Replace)> {
        let mut out = Vec::new();
        let waiting = |r: &ReplicaView| r.outdated && !r.replacing;
        // Outdated and not serving: nothing to keep.
        for (i, r) in replicas.iter().enumerate() {
            if waiting(r) && !r.serving {
                out.push((i, Replace::Recreate));
            }
        }
        let (max_surge, max_unavailable) = match *self {
            Rollout::Recreate => (0, u32::MAX),
            Rollout::RollingUpdate { max_surge, max_unavailable } => (max_surge, max_unavailable),
        };
        let surging = replicas.iter().filter(|r| r.replacing).count() as u32;
        let unavailable = replicas.iter().filter(|r| !r.serving).count() as u32;
        let mut surge_left = max_surge.saturating_sub(surging);
        let mut down_left = max_unavailable.saturating_sub(unavailable);
        for (i, r) in replicas.iter().enumerate() {
            if !(waiting(r) && r.serving) {
                continue;
            }
            if surge_left > 0 {
                surge_left -= 1;
                out.push((i, Replace::Surge));
            } else if down_left > 0 {
                down_left -= 1;
                out.push((i, Replace::Recreate));
            } else {
                break;
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out
    }
}

/// One replica as [`Rollout::plan`] sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaView {
    /// Its instance was placed for an earlier template.
    pub outdated: bool,
    /// It serves (its instance runs at a healthy location).
    pub serving: bool,
    /// A replacement instance is being provisioned beside it.
    pub replacing: bool,
}

/// How one replica is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// Make-before-break: a new instance starts beside the old one, which goes when it runs.
    Surge,
    /// Break-before-make: the old instance goes and a new one is placed.
    Recreate,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(outdated: bool, serving: bool, replacing: bool) -> ReplicaView {
        ReplicaView { outdated, serving, replacing }
    }

    #[test]
    fn surge_first_then_unavailability_within_the_bounds() {
        let all_old = vec![view(true, true, false); 4];
        // maxSurge 1, maxUnavailable 1: one beside, one down.
        let r = Rollout::RollingUpdate { max_surge: 1, max_unavailable: 1 };
        assert_eq!(r.plan(&all_old), [(0, Replace::Surge), (1, Replace::Recreate)]);
        // maxSurge 0: only break-before-make, one at a time.
        let r = Rollout::RollingUpdate { max_surge: 0, max_unavailable: 1 };
        assert_eq!(r.plan(&all_old), [(0, Replace::Recreate)]);
        // maxUnavailable 0: make-before-break, two at a time.
        let r = Rollout::RollingUpdate { max_surge: 2, max_unavailable: 0 };
        assert_eq!(r.plan(&all_old), [(0, Replace::Surge), (1, Replace::Surge)]);
    }

    #[test]
    fn replacements_in_flight_and_replicas_down_use_the_budget() {
        let r = Rollout::RollingUpdate { max_surge: 1, max_unavailable: 1 };
        // Slot 0 surging, slot 1 recreated and starting (updated, not serving): nothing more.
        let v = [view(true, true, true), view(false, false, false), view(true, true, false)];
        assert!(r.plan(&v).is_empty());
        // Slot 1 serves now: one more may go down.
        let v = [view(true, true, true), view(false, true, false), view(true, true, false)];
        assert_eq!(r.plan(&v), [(2, Replace::Recreate)]);
        // A replica lost to a failure counts as unavailable: surging only.
        let r = Rollout::RollingUpdate { max_surge: 1, max_unavailable: 1 };
        let v = [view(false, false, false), view(true, true, false), view(true, true, false)];
        assert_eq!(r.plan(&v), [(1, Replace::Surge)]);
    }

    #[test]
    fn outdated_replicas_not_serving_are_recreated_at_once() {
        let r = Rollout::RollingUpdate { max_surge: 0, max_unavailable: 1 };
        let v = [view(true, false, false), view(true, false, false), view(true, true, false)];
        // Two already down: recreated, and the serving one waits (2 > maxUnavailable).
        assert_eq!(r.plan(&v), [(0, Replace::Recreate), (1, Replace::Recreate)]);
    }

    #[test]
    fn recreate_replaces_every_outdated_replica_at_once() {
        let v = [view(true, true, false), view(false, true, false), view(true, false, false)];
        assert_eq!(Rollout::Recreate.plan(&v), [(0, Replace::Recreate), (2, Replace::Recreate)]);
    }

    #[test]
    fn nothing_outdated_nothing_to_do_and_a_stuck_update_is_refused() {
        let r = Rollout::RollingUpdate { max_surge: 1, max_unavailable: 0 };
        assert!(r.plan(&[view(false, true, false); 3]).is_empty());
        assert!(Rollout::RollingUpdate { max_surge: 0, max_unavailable: 0 }.validate().is_err());
        assert!(r.validate().is_ok() && Rollout::Recreate.validate().is_ok());
    }
}
