//! The VirtualMachine controller: the only code that creates, observes and deletes cloud
//! instances.
//!
//! Apply: a VirtualMachine whose status names no instance gets one, created with the
//! VirtualMachine's UID as client token and owner tag (so a create repeated after a restart, or
//! after a status write that was lost, returns the same instance); one that names an instance is
//! observed. Instances are found by listing the VM's UID tag, so an instance made by a create
//! whose answer was lost is found, not made twice. The status says what the cloud says: phase
//! `Provisioning`, `Running`, `Interrupting` (with the reclaim time) or `Failed` (with the cause:
//! a refused create, an outage, a crash); `Failed` is final (the owner's engine replaces the
//! VM). A VirtualMachine without region, zone or instance type is `Failed` with a message naming
//! the field.
//!
//! A cloud that refuses the operator's credentials (listing or creating) leaves the phase as it
//! was and sets `Ready` and `CredentialsValid` to False with reason `CredentialsRejected` and the
//! provider's message (which names the provider and the credential's source, never a value); the
//! reconcile then fails and is retried with backoff. The VM is not `Failed`: nothing was created,
//! and replacing it would only fail the same way.
//!
//! Cleanup (the finalizer): every live instance tagged with the VM's UID is deleted, the cloud
//! is listed again, and only when none is left the finalizer goes, so the cloud VM is gone before
//! the object is.

use std::sync::Arc;
use std::time::Duration;

use engine::Market;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;
use kube::{Resource, ResourceExt};
use tracing::info;

use crate::children::cause_name;
use crate::clock::rfc3339;
use crate::controller::Context;
use crate::crd::virtualmachine::{FINALIZER, OWNER_UID_LABEL, SLOT_LABEL, VirtualMachine, VirtualMachineStatus};
use crate::crd::{Condition, merge_conditions};
use crate::provider::{CloudInstance, CreateRequest, InstanceState};
use crate::{Error, Result};

/// The `controller` label of this controller's metrics.
pub const CONTROLLER: &str = "virtualmachine";

/// Reconciles one VirtualMachine.
pub async fn reconcile(obj: Arc<VirtualMachine>, ctx: Arc<Context>) -> Result<Action> {
    crate::runtime::reconcile(obj, &ctx, CONTROLLER, Some(FINALIZER), |event| async {
        match event {
            Finalizer::Apply(o) => apply(o, &ctx).await,
            Finalizer::Cleanup(o) => cleanup(o, &ctx).await,
        }
    })
    .await
}

/// Counts the error and backs off as the MultiCloudVM controller does.
pub fn error_policy(obj: Arc<VirtualMachine>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::runtime::error_policy(obj.as_ref(), error, &ctx, CONTROLLER)
}

/// What the cloud says about the VM's instance, as a status.
fn observed(previous: &VirtualMachineStatus, instance: &CloudInstance) -> VirtualMachineStatus {
    let mut s = VirtualMachineStatus {
        instance_id: Some(instance.id.clone()),
        client_token: Some(instance.client_token.clone()),
        ..previous.clone()
    };
    s.failure_cause = None;
    s.interruption_at_ms = None;
    s.message = None;
    match instance.state {
        InstanceState::Pending => s.phase = Some("Provisioning".into()),
        InstanceState::Running => s.phase = Some("Running".into()),
        InstanceState::Interrupting { at_ms } => {
            s.phase = Some("Interrupting".into());
            s.interruption_at_ms = Some(at_ms);
        }
        InstanceState::Lost(cause) => {
            s.phase = Some("Failed".into());
            s.failure_cause = Some(cause_name(cause).into());
            s.message = Some(format!("the cloud reports instance {} lost", instance.id));
        }
        InstanceState::Terminated => {
            s.phase = Some("Failed".into());
            s.failure_cause = Some(cause_name(engine::FailureCause::Crashed).into());
            s.message = Some(format!("instance {} was terminated outside the operator", instance.id));
        }
    }
    s
}

fn failed(previous: &VirtualMachineStatus, cause: &str, message: String) -> VirtualMachineStatus {
    VirtualMachineStatus {
        phase: Some("Failed".into()),
        failure_cause: Some(cause.into()),
        message: Some(message),
        interruption_at_ms: None,
        ..previous.clone()
    }
}

async fn apply(obj: Arc<VirtualMachine>, ctx: &Context) -> Result<Action> {
    let ns = obj.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let previous = obj.status.clone().unwrap_or_default();
    if previous.phase.as_deref() == Some("Failed") {
        // Final: the owner's engine replaces the VM; the finalizer deletes what may remain.
        return Ok(Action::await_change());
    }
    let listed = match ctx.cloud.list(&uid).await {
        Ok(l) => l,
        Err(e) => return Err(credentials_rejected(&obj, ctx, e.into()).await),
    };
    let mine = listed.into_iter().find(|i| previous.instance_id.as_ref().is_none_or(|id| &i.id == id));
    let status = match (mine, &previous.instance_id) {
        (Some(i), _) => observed(&previous, &i),
        (None, Some(id)) => failed(&previous, "crashed", format!("the cloud no longer knows instance {id}")),
        (None, None) => {
            let spec = &obj.spec;
            let missing: Vec<&str> = [
                ("spec.region", spec.region.is_none()),
                ("spec.zone", spec.zone.is_none()),
                ("spec.instanceType", spec.instance_type.is_none()),
            ]
            .into_iter()
            .filter_map(|(f, m)| m.then_some(f))
            .collect();
            if missing.is_empty() {
                let request = CreateRequest {
                    client_token: uid.clone(),
                    owner_uid: uid.clone(),
                    slot: obj.labels().get(SLOT_LABEL).and_then(|s| s.parse().ok()).unwrap_or_default(),
                    region: spec.region.clone().unwrap_or_default(),
                    zone: spec.zone.clone().unwrap_or_default(),
                    instance_type: spec.instance_type.clone().unwrap_or_default(),
                    market: if spec.spot == Some(true) { Market::Spot } else { Market::OnDemand },
                    tags: [
                        ("novacron.io/managed-by".to_owned(), "novacron-operator".to_owned()),
                        ("novacron.io/virtual-machine".to_owned(), format!("{ns}/{}", obj.name_any())),
                    ]
                    .into_iter()
                    .chain(obj.labels().get(OWNER_UID_LABEL).map(|o| ("novacron.io/owner-uid".to_owned(), o.clone())))
                    .collect(),
                };
                match ctx.cloud.create(request).await {
                    Ok(i) => observed(&previous, &i),
                    Err(e @ crate::provider::ProviderError::Auth(_)) => {
                        return Err(credentials_rejected(&obj, ctx, e.into()).await);
                    }
                    Err(e) => failed(&previous, cause_name(e.failure_cause()), e.to_string()),
                }
            } else {
                let m = format!("{} required: the region, zone and instance type to create", missing.join(", "));
                failed(&previous, "api-error", m)
            }
        }
    };
    let now = rfc3339(ctx.clock.now());
    let generation = obj.metadata.generation;
    let ready = match status.phase.as_deref() {
        Some("Running") | Some("Interrupting") => {
            Condition::new("Ready", true, "Running", "the instance runs", generation)
        }
        Some("Failed") => {
            Condition::new("Ready", false, "Failed", status.message.clone().unwrap_or_default(), generation)
        }
        _ => Condition::new("Ready", false, "Provisioning", "the cloud is creating the instance", generation),
    };
    let mut conditions = vec![ready];
    if previous.conditions.iter().any(|c| c.type_ == "CredentialsValid") {
        conditions.push(Condition::new(
            "CredentialsValid",
            true,
            "Accepted",
            "the cloud accepts the credentials",
            generation,
        ));
    }
    let status = VirtualMachineStatus {
        observed_generation: generation,
        conditions: merge_conditions(&previous.conditions, conditions, &now),
        ..status
    };
    if obj.status.as_ref() != Some(&status) {
        let api: Api<VirtualMachine> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = serde_json::json!({ "apiVersion": "novacron.io/v1", "kind": "VirtualMachine", "status": status });
        api.patch_status(
            &obj.name_any(),
            &PatchParams::apply(&ctx.config.field_manager).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    let poll = ctx.config.poll_interval;
    Ok(match status.phase.as_deref() {
        Some("Failed") => Action::await_change(),
        Some("Running") => Action::requeue(poll),
        _ => Action::requeue(poll.min(Duration::from_secs(5))),
    })
}

/// When `e` is a refusal of the credentials: the status says so, naming the provider (the phase
/// stays as it was). Returns `e` for the reconcile to fail with.
async fn credentials_rejected(obj: &VirtualMachine, ctx: &Context, e: Error) -> Error {
    let Some(problem) = crate::controller::credentials_problem(&e) else { return e };
    let who = obj.spec.provider.as_deref().or(obj.spec.region.as_deref()).unwrap_or("the cloud");
    let message = format!("{who}: {problem}");
    let previous = obj.status.clone().unwrap_or_default();
    let now = rfc3339(ctx.clock.now());
    let status = VirtualMachineStatus {
        observed_generation: obj.metadata.generation,
        conditions: merge_conditions(
            &previous.conditions,
            crate::controller::credentials_conditions(&message, obj.metadata.generation),
            &now,
        ),
        ..previous
    };
    tracing::warn!("VirtualMachine {}/{}: {message}", obj.namespace().unwrap_or_default(), obj.name_any());
    if obj.status.as_ref() != Some(&status) {
        let api: Api<VirtualMachine> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
        let patch = serde_json::json!({ "apiVersion": "novacron.io/v1", "kind": "VirtualMachine", "status": status });
        let pp = PatchParams::apply(&ctx.config.field_manager).force();
        if let Err(pe) = api.patch_status(&obj.name_any(), &pp, &Patch::Apply(&patch)).await {
            tracing::warn!("cannot write the status of VirtualMachine {}: {pe}", obj.name_any());
        }
    }
    e
}

async fn cleanup(obj: Arc<VirtualMachine>, ctx: &Context) -> Result<Action> {
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let mut ids: Vec<String> =
        ctx.cloud.list(&uid).await?.into_iter().filter(CloudInstance::is_live).map(|i| i.id).collect();
    if let Some(id) = obj.status.as_ref().and_then(|s| s.instance_id.clone())
        && !ids.contains(&id)
        && ctx.cloud.get(&id).await?.is_some_and(|i| i.is_live())
    {
        ids.push(id);
    }
    for id in &ids {
        ctx.cloud.delete(id).await?;
    }
    let remaining = ctx.cloud.list(&uid).await?.into_iter().filter(CloudInstance::is_live).count();
    if remaining > 0 {
        return Err(Error::InstancesRemain(remaining));
    }
    info!(
        "VirtualMachine {}/{}: {} cloud instance(s) deleted, releasing the finalizer",
        obj.namespace().unwrap_or_default(),
        obj.name_any(),
        ids.len()
    );
    let _ = obj.object_ref(&());
    Ok(Action::await_change())
}
