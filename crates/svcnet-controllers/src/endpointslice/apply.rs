//! The EndpointSlice controller's shell: watch-fed caches of Services, Pods, Nodes and our
//! slices; a queue of Service keys fed by their changes; workers that compute
//! [`desired`](super::desired::desired) for a key and write the difference.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use tokio::task::JoinSet;

use super::desired::{desired, Inputs, SliceChanges};
use super::trigger::TriggerTimeTracker;
use super::util::{self, ObjectKey, CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME};
use crate::runtime::cache::{self, Cache, Change};
use crate::runtime::queue::WorkQueue;
use crate::runtime::written::Written;
use crate::ControllerConfig;

/// Services synced at once (upstream --concurrent-service-endpoint-syncs).
const WORKERS: usize = 5;
/// Longest retry delay of a Service key, so it keeps converging once the API recovers.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the slice cache has not seen the previous writes yet")]
    CacheBehindWrites,
    #[error("creating an EndpointSlice: {0}")]
    CreateFailed(kube::Error),
    #[error("updating EndpointSlice {name}: {error}")]
    UpdateFailed { name: String, error: kube::Error },
    #[error("deleting EndpointSlice {name}: {error}")]
    DeleteFailed { name: String, error: kube::Error },
    #[error("pods {0:?} are on nodes not known yet")]
    NodesUnknown(Vec<String>),
}

pub struct Controller {
    client: Client,
    max_endpoints_per_slice: usize,
    services: Arc<Cache<Service>>,
    pods: Arc<Cache<Pod>>,
    nodes: Arc<Cache<Node>>,
    slices: Arc<Cache<EndpointSlice>>,
    queue: Arc<WorkQueue<ObjectKey>>,
    triggers: TriggerTimeTracker,
    written: Written,
}

/// Runs the controller until a watch task dies (they retry on their own, so only a panic ends one).
pub async fn run(client: Client, config: ControllerConfig) -> anyhow::Result<()> {
    let controller = Arc::new(Controller {
        client,
        max_endpoints_per_slice: config.max_endpoints_per_slice.clamp(1, 1000),
        services: Arc::default(),
        pods: Arc::default(),
        nodes: Arc::default(),
        slices: Arc::default(),
        queue: WorkQueue::with_max_delay(RETRY_MAX),
        triggers: TriggerTimeTracker::default(),
        written: Written::default(),
    });
    let mut tasks = controller.clone().watch();
    // Syncing on a partial cache would delete endpoints of pods not listed yet.
    controller.services.synced().await;
    controller.pods.synced().await;
    controller.nodes.synced().await;
    controller.slices.synced().await;
    tracing::info!("EndpointSlice controller synced; starting workers");
    for _ in 0..WORKERS {
        tasks.spawn(controller.clone().work());
    }
    match tasks.join_next().await {
        Some(Err(error)) => Err(anyhow::anyhow!("EndpointSlice controller task failed: {error}")),
        _ => Err(anyhow::anyhow!("EndpointSlice controller task ended")),
    }
}

// === impl Controller: watches ===

impl Controller {
    fn watch(self: Arc<Self>) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        let all = watcher::Config::default();
        let ours = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={CONTROLLER_NAME}"));

        let this = self.clone();
        let api = Api::all(self.client.clone());
        tasks.spawn(cache::reflect(api, all.clone(), self.services.clone(), move |c| {
            this.service_changed(c)
        }));
        let this = self.clone();
        let api = Api::all(self.client.clone());
        tasks.spawn(cache::reflect(api, all.clone(), self.pods.clone(), move |c| {
            this.pod_changed(c)
        }));
        // Nodes only feed zones; upstream does not resync Services on node changes either.
        let api = Api::all(self.client.clone());
        tasks.spawn(cache::reflect(api, all, self.nodes.clone(), |_| {}));
        let this = self.clone();
        let api = Api::all(self.client.clone());
        tasks.spawn(cache::reflect(api, ours, self.slices.clone(), move |c| {
            this.slice_changed(c)
        }));
        tasks
    }

    fn service_changed(&self, change: Change<Service>) {
        match change {
            Change::Applied { new: service, .. } | Change::Deleted(service) => {
                self.queue.add(ObjectKey::of(&service.metadata));
            }
            Change::Relisted { previous } => {
                // Services deleted while the watch was down still need their slices removed.
                for service in previous.iter().chain(self.services.all().iter()) {
                    self.queue.add(ObjectKey::of(&service.metadata));
                }
            }
        }
    }

    fn pod_changed(&self, change: Change<Pod>) {
        match change {
            Change::Applied { old: Some(old), new } => {
                if util::endpoints_changed(&old, &new) {
                    // The union: a relabelled pod leaves some Services and joins others.
                    let keys: BTreeSet<_> = self
                        .services_of(&old)
                        .into_iter()
                        .chain(self.services_of(&new))
                        .collect();
                    keys.into_iter().for_each(|key| self.queue.add(key));
                }
            }
            Change::Applied { old: None, new: pod } | Change::Deleted(pod) => {
                self.services_of(&pod).into_iter().for_each(|key| self.queue.add(key));
            }
            Change::Relisted { .. } => {
                for service in self.services.all() {
                    self.queue.add(ObjectKey::of(&service.metadata));
                }
            }
        }
    }

    fn slice_changed(&self, change: Change<EndpointSlice>) {
        let (slice, version) = match &change {
            Change::Applied { new, .. } => (new, new.metadata.resource_version.as_deref()),
            Change::Deleted(slice) => (slice, None),
            Change::Relisted { previous } => {
                self.written.clear();
                for slice in previous.iter().chain(self.slices.all().iter()) {
                    if let Some(key) = owning_service(slice) {
                        self.queue.add(key);
                    }
                }
                return;
            }
        };
        let Some(key) = owning_service(slice) else { return };
        let name = slice.metadata.name.as_deref().unwrap_or_default();
        // Our own writes coming back need no sync; anyone else's change is undone by one.
        if !self.written.observe(&key, name, version) {
            self.queue.add(key);
        }
    }

    fn services_of(&self, pod: &Pod) -> Vec<ObjectKey> {
        services_selecting(&self.services, pod)
    }
}

/// The Services in the pod's namespace whose selector picks it.
pub fn services_selecting(services: &Cache<Service>, pod: &Pod) -> Vec<ObjectKey> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let labels = pod.metadata.labels.as_ref();
    services
        .list(namespace, |s| {
            util::endpoint_selector(s).is_some_and(|sel| util::selects(sel, labels))
        })
        .iter()
        .map(|s| ObjectKey::of(&s.metadata))
        .collect()
}

/// The Service a managed slice belongs to, by its `kubernetes.io/service-name` label.
fn owning_service(slice: &EndpointSlice) -> Option<ObjectKey> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(CONTROLLER_NAME) {
        return None;
    }
    let service = labels.get(LABEL_SERVICE_NAME)?;
    Some(ObjectKey::new(
        slice.metadata.namespace.as_deref().unwrap_or_default(),
        service,
    ))
}

// === impl Controller: sync ===

impl Controller {
    async fn work(self: Arc<Self>) {
        loop {
            let key = self.queue.next().await;
            match self.sync(&key).await {
                Ok(()) => self.queue.forget(&key),
                Err(Error::CacheBehindWrites) => {
                    tracing::debug!(service = %key, "slice cache behind our writes; retrying");
                    self.queue.retry(&key);
                }
                Err(error) => {
                    tracing::warn!(service = %key, %error, "EndpointSlice sync failed; retrying");
                    self.queue.retry(&key);
                }
            }
            self.queue.done(&key);
        }
    }

    async fn sync(&self, key: &ObjectKey) -> Result<(), Error> {
        let existing = self.slices.list(&key.namespace, |s| {
            owning_service(s).is_some_and(|k| k.name == key.name)
        });
        let versions = existing.iter().map(|s| {
            let meta = &s.metadata;
            (
                meta.name.as_deref().unwrap_or_default(),
                meta.resource_version.as_deref().unwrap_or_default(),
            )
        });
        if self.written.is_stale(key, versions) {
            return Err(Error::CacheBehindWrites);
        }
        let changes = self.changes(key, &existing);
        self.write(key, &changes).await?;
        if !changes.pods_without_node.is_empty() {
            return Err(Error::NodesUnknown(changes.pods_without_node));
        }
        Ok(())
    }

    fn changes(&self, key: &ObjectKey, existing: &[Arc<EndpointSlice>]) -> SliceChanges {
        let Some(service) = self.services.get(&key.namespace, &key.name) else {
            // Deleted: nothing may collect its slices by owner reference, so we do.
            self.triggers.forget(key);
            return SliceChanges::delete_all(existing);
        };
        let Some(selector) = util::endpoint_selector(&service) else {
            // Slices of a selector-less Service are someone else's (ours carry our label).
            return SliceChanges::delete_all(existing);
        };
        let pods = self
            .pods
            .list(&key.namespace, |p| util::selects(selector, p.metadata.labels.as_ref()));
        let trigger_time = self.triggers.compute(&service, &pods);
        let node = |name: &str| self.nodes.get("", name);
        desired(&Inputs {
            service: &service,
            pods: &pods,
            node: &node,
            existing,
            max_endpoints_per_slice: self.max_endpoints_per_slice,
            trigger_time,
        })
    }

    async fn write(&self, key: &ObjectKey, changes: &SliceChanges) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            service = %key,
            create = changes.create.len(),
            update = changes.update.len(),
            delete = changes.delete.len(),
            "writing EndpointSlices"
        );
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.namespace);
        let params = PostParams::default();
        for slice in &changes.create {
            let created = api.create(&params, slice).await.map_err(Error::CreateFailed)?;
            self.record(key, &created);
        }
        for slice in &changes.update {
            let name = slice.metadata.name.clone().unwrap_or_default();
            let updated = match api.replace(&name, &params, slice).await {
                Ok(updated) => updated,
                Err(error) => return Err(Error::UpdateFailed { name, error }),
            };
            self.record(key, &updated);
        }
        for slice in &changes.delete {
            let name = slice.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(error) => return Err(Error::DeleteFailed { name, error }),
            }
            self.written.deleted(key, &name);
        }
        Ok(())
    }

    fn record(&self, key: &ObjectKey, slice: &EndpointSlice) {
        let meta = &slice.metadata;
        self.written.wrote(
            key,
            meta.name.as_deref().unwrap_or_default(),
            meta.resource_version.as_deref(),
        );
    }
}
