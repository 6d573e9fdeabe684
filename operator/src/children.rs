//! A deployment's units as `VirtualMachine` objects: the [`Fleet`] of the MultiCloudVM and
//! VMCluster controllers.
//!
//! The layering is the one of Deployment → ReplicaSet → Pod. The engine of a deployment decides
//! (through its [`crate::tracker::Tracker`]); each engine instance becomes one `VirtualMachine`
//! owned by the deployment (an ownerReference with `controller: true` and
//! `blockOwnerDeletion: true`, the owner's UID and the slot as labels, the tracker's request token
//! as an annotation); the VirtualMachine controller ([`crate::vm_controller`]) creates, observes
//! and deletes the cloud instance. A unit's state is read back from the child's status (phase,
//! instance id, failure cause, interruption notice), so the engine is fed from what the children
//! report, never from the cloud directly.
//!
//! Children are created with the VirtualMachine finalizer already set, so a child deleted before
//! the VirtualMachine controller has seen it waits for that controller (which deletes whatever
//! the cloud made) before it goes. Create is idempotent: the child's name is derived from the
//! request token (`<owner>-<slot>-<n>`), and a name that exists already answers with that child.
//!
//! The market the engine also reads — region health and prices, and for autoscaling the CPU
//! utilisation of running instances — is [`MarketData`]: read-only queries of the provider, plus
//! the regions that FederatedCluster members report down.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use engine::{FailureCause, Market};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};

use crate::catalog::CatalogIndex;
use crate::crd::ObjectRef;
use crate::crd::virtualmachine::{
    FINALIZER, OWNER_UID_LABEL, REQUEST_ANNOTATION, SLOT_LABEL, VirtualMachine, VirtualMachineSpec,
};
use crate::provider::{CloudInstance, CloudProvider, CreateRequest, InstanceState, PriceQuote};
use crate::tracker::{Child, Fleet};
use crate::{Error, Result};

/// Read-only market data: the provider's prices and unhealthy regions, and the regions that
/// federation members report down (by FederatedCluster).
pub struct MarketData {
    cloud: Arc<dyn CloudProvider>,
    federation: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl MarketData {
    /// Market data of `cloud`.
    pub fn new(cloud: Arc<dyn CloudProvider>) -> Self {
        MarketData { cloud, federation: Mutex::new(BTreeMap::new()) }
    }

    /// Regions down now: the provider's, and those of unhealthy federation members.
    pub async fn unhealthy_regions(&self) -> Result<Vec<String>> {
        let mut down: BTreeSet<String> = self.cloud.unhealthy_regions().await?.into_iter().collect();
        down.extend(self.federation_down());
        Ok(down.into_iter().collect())
    }

    /// Current prices.
    pub async fn prices(&self) -> Result<Vec<PriceQuote>> {
        Ok(self.cloud.prices().await?)
    }

    /// Mean CPU utilisation (percent) of these cloud instances as the provider's monitoring
    /// reports it, over those it has a datapoint for; `None` if none has. A failed query counts
    /// as no datapoint (the provider metrics count the error).
    pub async fn mean_cpu(&self, instance_ids: &[String]) -> Option<f64> {
        let mut seen = Vec::new();
        for id in instance_ids {
            if let Ok(m) = self.cloud.metrics(id).await
                && let Some(c) = m.cpu_percent.filter(|c| c.is_finite() && *c >= 0.0)
            {
                seen.push(c);
            }
        }
        (!seen.is_empty()).then(|| seen.iter().sum::<f64>() / seen.len() as f64)
    }

    /// Records the regions of `federation`'s unhealthy members (replacing what it said before).
    pub fn set_federation_down(&self, federation: &str, regions: BTreeSet<String>) {
        let mut f = self.federation.lock().unwrap_or_else(|e| e.into_inner());
        if regions.is_empty() {
            f.remove(federation);
        } else {
            f.insert(federation.to_owned(), regions);
        }
    }

    /// Forgets every federation's report (the controllers stopped).
    pub fn forget_federations(&self) {
        self.federation.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Every region some federation reports down.
    pub fn federation_down(&self) -> BTreeSet<String> {
        self.federation.lock().unwrap_or_else(|e| e.into_inner()).values().flatten().cloned().collect()
    }
}

/// The object that owns the children.
#[derive(Clone, Debug)]
pub struct Owner {
    /// `MultiCloudVM` or `VMCluster`.
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// Namespace (the children's too).
    pub namespace: String,
    /// UID.
    pub uid: String,
    /// The VMTemplate the children are made from.
    pub template: Option<ObjectRef>,
}

/// The children of one owner, as a [`Fleet`].
pub struct ChildFleet<'a> {
    api: Api<VirtualMachine>,
    owner: Owner,
    market: &'a MarketData,
    index: &'a CatalogIndex,
}

impl<'a> ChildFleet<'a> {
    /// The fleet of `owner`.
    pub fn new(client: Client, owner: Owner, market: &'a MarketData, index: &'a CatalogIndex) -> Self {
        ChildFleet { api: Api::namespaced(client, &owner.namespace), owner, market, index }
    }

    /// Every child of the owner, those being deleted included.
    pub async fn children(&self) -> Result<Vec<VirtualMachine>> {
        let selector = format!("{OWNER_UID_LABEL}={}", self.owner.uid);
        Ok(self.api.list(&ListParams::default().labels(&selector)).await?.items)
    }

    fn object(&self, r: &CreateRequest) -> VirtualMachine {
        let n = r.client_token.rsplit('-').next().unwrap_or("0");
        let name = format!("{}-{}-{n}", self.owner.name, r.slot);
        let provider = self.index.regions.get(&r.region).map(|id| self.index.provider(*id).as_str().to_owned());
        let mut vm = VirtualMachine::new(
            &name,
            VirtualMachineSpec {
                template: self.owner.template.clone(),
                config: None,
                provider,
                region: Some(r.region.clone()),
                zone: Some(r.zone.clone()),
                instance_type: Some(r.instance_type.clone()),
                spot: Some(r.market == Market::Spot),
                run_state: Some("Running".into()),
            },
        );
        vm.metadata.namespace = Some(self.owner.namespace.clone());
        vm.metadata.labels = Some(BTreeMap::from([
            (OWNER_UID_LABEL.to_owned(), self.owner.uid.clone()),
            (SLOT_LABEL.to_owned(), r.slot.to_string()),
            ("app.kubernetes.io/managed-by".to_owned(), "novacron-operator".to_owned()),
        ]));
        vm.metadata.annotations = Some(BTreeMap::from([(REQUEST_ANNOTATION.to_owned(), r.client_token.clone())]));
        vm.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        vm.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "novacron.io/v1".into(),
            kind: self.owner.kind.into(),
            name: self.owner.name.clone(),
            uid: self.owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        vm
    }
}

/// The failure cause as the VirtualMachine status names it.
pub fn cause_name(c: FailureCause) -> &'static str {
    match c {
        FailureCause::InsufficientCapacity => "insufficient-capacity",
        FailureCause::ApiError => "api-error",
        FailureCause::Throttled => "throttled",
        FailureCause::Outage => "outage",
        FailureCause::Interrupted => "interrupted",
        FailureCause::Crashed => "crashed",
    }
}

fn parse_cause(s: Option<&str>) -> FailureCause {
    match s {
        Some("insufficient-capacity") => FailureCause::InsufficientCapacity,
        Some("api-error") => FailureCause::ApiError,
        Some("throttled") => FailureCause::Throttled,
        Some("outage") => FailureCause::Outage,
        Some("interrupted") => FailureCause::Interrupted,
        _ => FailureCause::Crashed,
    }
}

/// A child as the tracker sees it: a unit with the child's placement and the state its status
/// reports (a child being deleted is `Terminated`).
pub fn child_of(vm: &VirtualMachine) -> Child {
    let status = vm.status.clone().unwrap_or_default();
    let state = if vm.metadata.deletion_timestamp.is_some() {
        InstanceState::Terminated
    } else {
        match status.phase.as_deref() {
            Some("Running") => InstanceState::Running,
            Some("Interrupting") => match status.interruption_at_ms {
                Some(at_ms) => InstanceState::Interrupting { at_ms },
                None => InstanceState::Running,
            },
            Some("Failed") => InstanceState::Lost(parse_cause(status.failure_cause.as_deref())),
            _ => InstanceState::Pending,
        }
    };
    let labels = vm.labels();
    let instance = CloudInstance {
        id: vm.name_any(),
        client_token: vm.annotations().get(REQUEST_ANNOTATION).cloned().unwrap_or_default(),
        owner_uid: labels.get(OWNER_UID_LABEL).cloned().unwrap_or_default(),
        slot: labels.get(SLOT_LABEL).and_then(|s| s.parse().ok()).unwrap_or_default(),
        region: vm.spec.region.clone().unwrap_or_default(),
        zone: vm.spec.zone.clone().unwrap_or_default(),
        instance_type: vm.spec.instance_type.clone().unwrap_or_default(),
        market: if vm.spec.spot == Some(true) { Market::Spot } else { Market::OnDemand },
        state,
    };
    Child {
        instance,
        virtual_machine: Some(vm.name_any()),
        cloud_id: status.instance_id.clone(),
        cloud_token: status.client_token.clone(),
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl Fleet for ChildFleet<'_> {
    fn unhealthy_regions(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(self.market.unhealthy_regions())
    }

    fn prices(&self) -> BoxFuture<'_, Result<Vec<PriceQuote>>> {
        Box::pin(self.market.prices())
    }

    fn list<'b>(&'b self, owner_uid: &'b str) -> BoxFuture<'b, Result<Vec<Child>>> {
        Box::pin(async move {
            debug_assert_eq!(owner_uid, self.owner.uid);
            Ok(self.children().await?.iter().map(child_of).collect())
        })
    }

    fn create(&self, request: CreateRequest) -> BoxFuture<'_, Result<Child>> {
        Box::pin(async move {
            let vm = self.object(&request);
            match self.api.create(&PostParams::default(), &vm).await {
                Ok(made) => Ok(child_of(&made)),
                Err(e) if is_status(&e, 409) => {
                    // Made before (an operator that restarted mid-create): the same child, if it
                    // is ours; a foreign object of that name is never adopted.
                    let existing = self.api.get(&vm.name_any()).await?;
                    if existing.labels().get(OWNER_UID_LABEL) != Some(&self.owner.uid) {
                        return Err(Error::NameTaken(format!("{}/{}", self.owner.namespace, vm.name_any())));
                    }
                    Ok(child_of(&existing))
                }
                Err(e) => Err(Error::Kube(e)),
            }
        })
    }

    fn delete<'b>(&'b self, id: &'b str) -> BoxFuture<'b, Result<()>> {
        Box::pin(async move {
            match self.api.delete(id, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(e) if is_status(&e, 404) => Ok(()),
                Err(e) => Err(Error::Kube(e)),
            }
        })
    }
}
