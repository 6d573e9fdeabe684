//! The VMCluster controller: a set of identical VMs, kept as a Deployment keeps its pods.
//!
//! A VMCluster owns `VirtualMachine` children exactly as a MultiCloudVM does ([`ChildFleet`]):
//! its engine (a [`Tracker`]) decides every placement, each engine instance becomes a child, and
//! the VirtualMachine controller ([`crate::vm_controller`]) is the only code that creates and
//! deletes cloud instances.
//!
//! Apply: read `spec.template` (a VMTemplate reference, fetched, or an inline VMTemplate spec),
//! decide the replicas wanted (`spec.replicas`, or with `autoScaling` the engine's
//! [`engine::Autoscaler`] from the mean CPU utilisation the cloud reports for the running
//! children: `ceil(current × observed / target)` within `[minReplicas, maxReplicas]`, a 0.1
//! tolerance, and scale-down stabilised over 5 minutes), translate all of it into the engine's
//! `DeploymentSpec` ([`translate::vmcluster_spec`]: cost-optimized over every region of the
//! catalog, the template's size, `updateStrategy` as the engine's [`engine::Rollout`]), step the
//! tracker, and write the status (`replicas`, `readyReplicas`, `updatedReplicas`,
//! `desiredReplicas`, conditions `SpecValid`, `Ready`, `Progressing`: `RollingOut`, `Scaling`,
//! `Starting`, else `False`/`Complete`). A template change is
//! rolled out by the engine: replicas placed for the old template are replaced within
//! `maxSurge`/`maxUnavailable` (`RollingUpdate`) or all at once (`Recreate`). A spec that cannot
//! be used is reported in `SpecValid`, field by field; a cluster already running keeps its last
//! good spec meanwhile.
//!
//! The utilisation is read from the provider's monitoring (`CloudProvider::metrics`), a
//! read-only query like the prices and region health the engines read ([`MarketData`]); only
//! the VirtualMachine controller creates, observes and deletes instances.
//!
//! Cleanup (the finalizer): every child is deleted, and the finalizer goes only when none is
//! left (each child's own finalizer waits for its cloud instance), so no cloud VM outlives the
//! VMCluster.
//!
//! [`MarketData`]: crate::children::MarketData

use std::sync::Arc;
use std::time::Duration;

use engine::{AutoscalePolicy, DeploymentSpec, SimTime};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;
use tracing::info;

use crate::children::{ChildFleet, Owner};
use crate::clock::rfc3339;
use crate::controller::{Context, delete_children, publish};
use crate::crd::vmcluster::{FINALIZER, VMCluster, VMClusterStatus};
use crate::crd::{Condition, ObjectRef, VMTemplate, VMTemplateSpec, merge_conditions};
use crate::metrics::ControllerLabels;
use crate::tracker::{GROUP, Notice, Tracker};
use crate::translate::{self, ClusterTemplate, Problem};
use crate::{Error, Result};

/// The `controller` label of this controller's metrics.
pub const CONTROLLER: &str = "vmcluster";

/// Reconciles one VMCluster.
pub async fn reconcile(obj: Arc<VMCluster>, ctx: Arc<Context>) -> Result<Action> {
    crate::runtime::reconcile(obj, &ctx, CONTROLLER, Some(FINALIZER), |event| async {
        match event {
            Finalizer::Apply(o) => apply(o, &ctx).await,
            Finalizer::Cleanup(o) => cleanup(o, &ctx).await,
        }
    })
    .await
}

/// Counts the error and backs off as the MultiCloudVM controller does.
pub fn error_policy(obj: Arc<VMCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::runtime::error_policy(obj.as_ref(), error, &ctx, CONTROLLER)
}

/// The template the replicas are made from: its spec (`None`: the default size), the key its
/// problems are reported under, and the reference the children carry.
struct Template {
    spec: Option<VMTemplateSpec>,
    key: String,
    reference: Option<ObjectRef>,
}

async fn template(obj: &VMCluster, ns: &str, ctx: &Context, problems: &mut Vec<Problem>) -> Result<Template> {
    let none = Template { spec: None, key: String::new(), reference: None };
    Ok(match translate::cluster_template(&obj.spec) {
        Ok(ClusterTemplate::Named(r)) => {
            let tns = r.namespace.clone().unwrap_or_else(|| ns.to_owned());
            match Api::<VMTemplate>::namespaced(ctx.client.clone(), &tns).get_opt(&r.name).await? {
                Some(t) => Template {
                    spec: Some(t.spec),
                    key: format!("VMTemplate {tns}/{}: spec.config.resources", r.name),
                    reference: Some(r),
                },
                None => {
                    problems.push(Problem {
                        field: "spec.template.name".into(),
                        message: format!("no VMTemplate named {:?} in namespace {tns:?}", r.name),
                    });
                    Template { reference: Some(r), ..none }
                }
            }
        }
        Ok(ClusterTemplate::Inline(t)) => {
            Template { spec: Some(*t), key: "spec.template.config.resources".into(), reference: None }
        }
        Ok(ClusterTemplate::Default) => none,
        Err(p) => {
            problems.push(p);
            none
        }
    })
}

/// The replicas wanted now, the CPU utilisation observed (percent) and a notice if the
/// autoscaler changed the count.
async fn desired_replicas(
    obj: &VMCluster,
    policy: Option<&AutoscalePolicy>,
    t: &mut Tracker,
    ctx: &Context,
    now: SimTime,
) -> (u32, Option<f64>, Option<Notice>) {
    let Some(p) = policy else { return (obj.spec.replicas, None, None) };
    let previous = obj.status.as_ref().map_or(0, |s| s.desired_replicas);
    let current = if previous > 0 { previous } else { obj.spec.replicas };
    // The children the last step saw running (their cloud instance ids).
    let running: Vec<String> = t
        .cloud_deployments()
        .into_iter()
        .filter(|c| c.state == "Running" && !c.instance_id.is_empty())
        .map(|c| c.instance_id)
        .collect();
    let cpu = ctx.market.mean_cpu(&running).await;
    let desired = t.autoscaler().desired(p, current, cpu.map(|c| c / 100.0), now);
    let notice = (desired != current).then(|| Notice {
        reason: if desired > current { "ScaledUp" } else { "ScaledDown" },
        note: format!(
            "{current} -> {desired} replicas: CPU {}% against a target of {:.0}%",
            cpu.map_or("unknown".to_owned(), |c| format!("{c:.0}")),
            p.target_cpu * 100.0
        ),
        warning: false,
    });
    (desired, cpu, notice)
}

async fn apply(obj: Arc<VMCluster>, ctx: &Context) -> Result<Action> {
    let ns = obj.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let name = obj.name_any();
    let key = format!("{ns}/{name}");
    let index = ctx.catalog().await?;
    let mut problems: Vec<Problem> = Vec::new();
    let template = template(&obj, &ns, ctx, &mut problems).await?;
    let policy = translate::autoscale_policy(&obj.spec).unwrap_or_else(|mut p| {
        problems.append(&mut p);
        None
    });
    let tracker = ctx.tracker(&uid, &index)?;
    let mut t = tracker.lock().await;
    let now = ctx.clock.now();
    let (desired, cpu, scaled) = desired_replicas(&obj, policy.as_ref(), &mut t, ctx, now).await;
    let translated = if problems.is_empty() {
        translate::vmcluster_spec(
            GROUP,
            &name,
            &obj.spec,
            template.spec.as_ref(),
            &template.key,
            desired,
            index.catalog.regions.len(),
        )
    } else {
        Err(problems)
    };
    if translated.is_err() {
        ctx.metrics.invalid_specs.get_or_create(&ControllerLabels { controller: CONTROLLER.into() }).inc();
    }
    let owner = Owner {
        kind: "VMCluster",
        name: name.clone(),
        namespace: ns.clone(),
        uid: uid.clone(),
        template: template.reference,
    };
    let fleet = ChildFleet::new(ctx.client.clone(), owner, &ctx.market, &index);
    let step = t.step(now, translated.as_ref().ok(), &fleet).await;
    ctx.write_log(&uid, &key, &mut t);
    let report = step?;
    ctx.metrics.adopted.inc_by(u64::from(report.adopted));
    let mut notices: Vec<Notice> = scaled.into_iter().collect();
    notices.extend(t.take_notices());
    let status = status_of(&obj, &t, &translated, policy.is_some(), cpu, now);
    let requeue = match t.next_timer() {
        Some(at) => Duration::from_millis(at.as_millis().saturating_sub(now.as_millis())),
        None => ctx.config.poll_interval,
    }
    .clamp(Duration::from_secs(1), ctx.config.poll_interval);
    drop(t);
    let api: Api<VMCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({ "apiVersion": "novacron.io/v1", "kind": "VMCluster", "status": status });
    api.patch_status(&name, &PatchParams::apply(&ctx.config.field_manager).force(), &Patch::Apply(&patch)).await?;
    publish(ctx, obj.as_ref(), notices).await;
    Ok(Action::requeue(requeue))
}

/// The status after a step.
fn status_of(
    obj: &VMCluster,
    t: &Tracker,
    translated: &std::result::Result<DeploymentSpec, Vec<Problem>>,
    autoscaled: bool,
    cpu: Option<f64>,
    now: SimTime,
) -> VMClusterStatus {
    let generation = obj.metadata.generation;
    let previous = obj.status.clone().unwrap_or_default();
    let spec_valid = match (translated, t.rejected()) {
        (Err(p), _) => Condition::new("SpecValid", false, "InvalidSpec", translate::describe(p), generation),
        (Ok(_), Some(m)) => Condition::new("SpecValid", false, "RejectedByEngine", m, generation),
        (Ok(_), None) => Condition::new("SpecValid", true, "Valid", "the engine accepted the spec", generation),
    };
    // What runs: the spec applied (the last good one while the new one is refused).
    let desired = t.applied().map_or(0, |s| s.replicas);
    let health = t.health();
    let replicas = t.cloud_deployments().len() as u32;
    let updated = t.engine().updated_replicas(GROUP);
    let ready = if t.applied().is_none() {
        Condition::new("Ready", false, "InvalidSpec", "nothing is deployed until the spec is fixed", generation)
    } else if health.serving >= desired {
        let m = format!("{} of {desired} replicas ready", health.serving);
        Condition::new("Ready", true, "AllReplicasReady", m, generation)
    } else {
        let m = format!("{} of {desired} replicas ready", health.serving);
        Condition::new("Ready", false, "Progressing", m, generation)
    };
    let progressing = if t.applied().is_none() {
        Condition::new("Progressing", false, "InvalidSpec", "nothing is deployed until the spec is fixed", generation)
    } else if updated < desired {
        let m = format!("{updated} of {desired} replicas run the current template");
        Condition::new("Progressing", true, "RollingOut", m, generation)
    } else if replicas != desired {
        let m = format!("{replicas} VMs for {desired} replicas");
        Condition::new("Progressing", true, "Scaling", m, generation)
    } else if health.serving < desired {
        let m = format!("{} of {desired} replicas of the current template ready", health.serving);
        Condition::new("Progressing", true, "Starting", m, generation)
    } else {
        let m = format!("{desired} replicas, all of the current template");
        Condition::new("Progressing", false, "Complete", m, generation)
    };
    let last_scale_time = if autoscaled && previous.desired_replicas != 0 && previous.desired_replicas != desired {
        Some(rfc3339(now))
    } else {
        previous.last_scale_time.clone()
    };
    VMClusterStatus {
        observed_generation: generation,
        replicas,
        ready_replicas: health.serving,
        updated_replicas: updated,
        desired_replicas: desired,
        current_cpu_utilization: cpu.map(|c| c.round().clamp(0.0, 1.0e6) as u32),
        last_scale_time,
        conditions: merge_conditions(&previous.conditions, vec![spec_valid, ready, progressing], &rfc3339(now)),
    }
}

async fn cleanup(obj: Arc<VMCluster>, ctx: &Context) -> Result<Action> {
    let uid = obj.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    if let Some(t) = ctx.drop_tracker(&uid) {
        ctx.write_log(&uid, &key, &mut *t.lock().await);
    }
    let owner = Owner {
        kind: "VMCluster",
        name: obj.name_any(),
        namespace: obj.namespace().unwrap_or_default(),
        uid,
        template: None,
    };
    let deleted = delete_children(ctx, owner).await?;
    info!("VMCluster {key}: {deleted} VirtualMachine(s) and their cloud instances deleted, releasing the finalizer");
    Ok(Action::await_change())
}
