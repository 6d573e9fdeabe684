//! Cross-cloud migration of one instance, make-before-break:
//!
//! 1. **create** the target (idempotent on its client token), in any provider;
//! 2. **wait healthy**: poll `get` until the target is `Running`, at most `max_polls` times
//!    `poll_interval` apart; a target that is lost, terminated or unknown fails at once;
//! 3. **switch**: the caller's [`Switch`] moves traffic (DNS, a load balancer, a replica slot)
//!    from the source to the target;
//! 4. **delete the source**.
//!
//! If any step fails, the migration rolls back so that nothing leaks: the target is deleted
//! (after a failed create too, in case the call made an instance before failing: the target is
//! found by its client token among the owner's instances), and when the source could not be
//! deleted after the switch, traffic is switched back first. The result is always one of: the
//! target serves and the source is deleted ([`Migrated`]), or the source serves and the target
//! is deleted ([`MigrateError::RolledBack`]); only when the rollback itself fails
//! ([`MigrateError::RollbackFailed`]) are instances left for the caller, named in the error.
//!
//! The engine decides *whether* and *where* to migrate (`engine::migration` models the
//! live/warm/cold kinds and their downtime); this module carries a decided move out on real
//! providers.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{CloudInstance, CloudProvider, CreateRequest, InstanceState, ProviderError};

/// Moves traffic between two instances. `switch(from, to)` is called once forward and, if the
/// source cannot be deleted afterwards, once backward (`switch(target, source)`).
pub trait Switch: Send + Sync {
    /// Sends what `from` served to `to`.
    fn switch<'a>(&'a self, from: &'a CloudInstance, to: &'a CloudInstance) -> BoxFuture<'a, Result<(), String>>;
}

/// A migration to carry out.
#[derive(Clone, Debug)]
pub struct MigrationPlan {
    /// The provider's id of the instance that serves now.
    pub source_id: String,
    /// The create call of the target (region, zone, type, market, client token, owner, slot).
    pub target: CreateRequest,
    /// Time between two health polls of the target.
    pub poll_interval: Duration,
    /// Health polls before giving up (the timeout is `max_polls × poll_interval`).
    pub max_polls: u32,
}

/// A migration that went through.
#[derive(Clone, Debug, PartialEq)]
pub struct Migrated {
    /// The instance that serves now.
    pub target: CloudInstance,
    /// Health polls it took.
    pub polls: u32,
}

/// The step a migration failed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reading the source.
    Source,
    /// Creating the target.
    Create,
    /// Waiting for the target to run.
    WaitHealthy,
    /// The caller's switch.
    Switch,
    /// Deleting the source.
    DeleteSource,
}

/// Why a migration did not go through.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A step failed and the rollback restored the start: the source serves, the target (if it
    /// was made) is deleted.
    #[error("migration failed at {step:?}: {reason}; rolled back (the source still serves)")]
    RolledBack {
        /// Where it failed.
        step: Step,
        /// Why.
        reason: String,
    },
    /// A step failed and so did the rollback: `live` names the instances left, which the caller
    /// must retry deleting (or switching back).
    #[error("migration failed at {step:?}: {reason}; rollback failed: {rollback}; instances left: {live:?}")]
    RollbackFailed {
        /// Where it failed.
        step: Step,
        /// Why.
        reason: String,
        /// Why the rollback failed.
        rollback: String,
        /// Ids of the instances that may still exist besides the source.
        live: Vec<String>,
    },
}

/// Carries out `plan`: the source lives in `source_cloud`, the target is created in
/// `target_cloud` (the same provider, or a multi-cloud router, for moves inside one front).
pub async fn migrate(
    source_cloud: &dyn CloudProvider,
    target_cloud: &dyn CloudProvider,
    plan: &MigrationPlan,
    switch: &dyn Switch,
) -> Result<Migrated, MigrateError> {
    let rolled_back = |step, reason: String| MigrateError::RolledBack { step, reason };
    let source = match source_cloud.get(&plan.source_id).await {
        Ok(Some(s)) if s.state == InstanceState::Running => s,
        Ok(Some(s)) => return Err(rolled_back(Step::Source, format!("source {} is {:?}, not running", s.id, s.state))),
        Ok(None) => return Err(rolled_back(Step::Source, format!("source {} does not exist", plan.source_id))),
        Err(e) => return Err(rolled_back(Step::Source, e.to_string())),
    };

    // 1. Create.
    let target = match target_cloud.create(plan.target.clone()).await {
        Ok(t) => t,
        Err(e) => return Err(undo_failed_create(target_cloud, plan, e).await),
    };

    // 2. Wait until it runs.
    let mut polls = 0;
    let failure = loop {
        if polls >= plan.max_polls {
            break format!(
                "target {} did not run within {} polls of {:?}",
                target.id, plan.max_polls, plan.poll_interval
            );
        }
        polls += 1;
        match target_cloud.get(&target.id).await {
            Ok(Some(t)) if t.state == InstanceState::Running => break String::new(),
            Ok(Some(t)) if matches!(t.state, InstanceState::Lost(_) | InstanceState::Terminated) => {
                break format!("target {} is {:?}", t.id, t.state);
            }
            Ok(None) => break format!("target {} disappeared", target.id),
            // Pending, interrupting, or a failed read: look again after the interval.
            Ok(Some(_)) | Err(_) => {}
        }
        tokio::time::sleep(plan.poll_interval).await;
    };
    if !failure.is_empty() {
        return Err(delete_target(target_cloud, &target, Step::WaitHealthy, failure).await);
    }

    // 3. Switch.
    if let Err(e) = switch.switch(&source, &target).await {
        return Err(delete_target(target_cloud, &target, Step::Switch, format!("switch: {e}")).await);
    }

    // 4. Delete the source; if it cannot go, switch back and delete the target.
    if let Err(e) = source_cloud.delete(&source.id).await {
        let reason = format!("delete source {}: {e}", source.id);
        if let Err(back) = switch.switch(&target, &source).await {
            return Err(MigrateError::RollbackFailed {
                step: Step::DeleteSource,
                reason,
                rollback: format!("switch back: {back}"),
                live: vec![target.id.clone()],
            });
        }
        return Err(delete_target(target_cloud, &target, Step::DeleteSource, reason).await);
    }
    Ok(Migrated { target, polls })
}

/// Deletes the target after a failed step.
async fn delete_target(cloud: &dyn CloudProvider, target: &CloudInstance, step: Step, reason: String) -> MigrateError {
    match cloud.delete(&target.id).await {
        Ok(()) => MigrateError::RolledBack { step, reason },
        Err(e) => MigrateError::RollbackFailed {
            step,
            reason,
            rollback: format!("delete target {}: {e}", target.id),
            live: vec![target.id.clone()],
        },
    }
}

/// A create that failed may still have made an instance (a timeout after the cloud accepted it):
/// find it by client token among the owner's instances and delete it.
async fn undo_failed_create(cloud: &dyn CloudProvider, plan: &MigrationPlan, e: ProviderError) -> MigrateError {
    let reason = format!("create target: {e}");
    let made = match cloud.list(&plan.target.owner_uid).await {
        Ok(list) => list,
        Err(le) => {
            return MigrateError::RollbackFailed {
                step: Step::Create,
                reason,
                rollback: format!("cannot list instances to find a half-made target: {le}"),
                live: Vec::new(),
            };
        }
    };
    for i in made.iter().filter(|i| i.client_token == plan.target.client_token && i.is_live()) {
        if let Err(de) = cloud.delete(&i.id).await {
            return MigrateError::RollbackFailed {
                step: Step::Create,
                reason,
                rollback: format!("delete half-made target {}: {de}", i.id),
                live: vec![i.id.clone()],
            };
        }
    }
    MigrateError::RolledBack { step: Step::Create, reason }
}
