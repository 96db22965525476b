//! The Endpoints controller: keeps the legacy Endpoints object of every Service with a selector
//! in step with its pods (upstream pkg/controller/endpoint), for kubectl up to 1.30 and the
//! clients that still read it. [`desired`] computes the object; this module watches Services,
//! Pods and Endpoints, queues Service keys and writes.

pub mod desired;

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use tokio::task::JoinSet;

use crate::endpointslice::apply::services_selecting;
use crate::endpointslice::trigger::TriggerTimeTracker;
use crate::endpointslice::util::{self, ObjectKey};
use crate::runtime::cache::{self, Cache, Change};
use crate::runtime::queue::WorkQueue;
use crate::runtime::written::Written;
use crate::ControllerConfig;

/// Services synced at once (upstream --concurrent-endpoint-syncs).
const WORKERS: usize = 5;
/// Endpoints carrying it are leader-election locks, not a Service's: never clean them up.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Endpoints cache has not seen the previous write yet")]
    CacheBehindWrites,
    #[error("creating Endpoints: {0}")]
    CreateFailed(kube::Error),
    #[error("updating Endpoints: {0}")]
    UpdateFailed(kube::Error),
    #[error("deleting Endpoints: {0}")]
    DeleteFailed(kube::Error),
}

struct Controller {
    client: Client,
    services: Arc<Cache<Service>>,
    pods: Arc<Cache<Pod>>,
    endpoints: Arc<Cache<Endpoints>>,
    queue: Arc<WorkQueue<ObjectKey>>,
    triggers: TriggerTimeTracker,
    written: Written,
}

/// Runs the Endpoints controller against the API server behind `client`.
pub async fn run(client: kube::Client, config: ControllerConfig) -> anyhow::Result<()> {
    let _ = config;
    let controller = Arc::new(Controller {
        client,
        services: Arc::default(),
        pods: Arc::default(),
        endpoints: Arc::default(),
        queue: WorkQueue::with_max_delay(crate::endpointslice::apply::RETRY_MAX),
        triggers: TriggerTimeTracker::default(),
        written: Written::default(),
    });
    let mut tasks = controller.clone().watch();
    // Syncing on a partial cache would drop addresses of pods not listed yet.
    controller.services.synced().await;
    controller.pods.synced().await;
    controller.endpoints.synced().await;
    tracing::info!("Endpoints controller synced; starting workers");
    for _ in 0..WORKERS {
        tasks.spawn(controller.clone().work());
    }
    match tasks.join_next().await {
        Some(Err(error)) => Err(anyhow::anyhow!("Endpoints controller task failed: {error}")),
        _ => Err(anyhow::anyhow!("Endpoints controller task ended")),
    }
}

// === impl Controller: watches ===

impl Controller {
    fn watch(self: Arc<Self>) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        let all = watcher::Config::default();
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
        let this = self.clone();
        let api = Api::all(self.client.clone());
        tasks.spawn(cache::reflect(api, all, self.endpoints.clone(), move |c| {
            this.endpoints_changed(c)
        }));
        tasks
    }

    fn service_changed(&self, change: Change<Service>) {
        match change {
            Change::Applied { new: service, .. } | Change::Deleted(service) => {
                self.queue.add(ObjectKey::of(&service.metadata));
            }
            Change::Relisted { previous } => {
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
                    let keys: BTreeSet<_> = services_selecting(&self.services, &old)
                        .into_iter()
                        .chain(services_selecting(&self.services, &new))
                        .collect();
                    keys.into_iter().for_each(|key| self.queue.add(key));
                }
            }
            Change::Applied { old: None, new: pod } | Change::Deleted(pod) => {
                services_selecting(&self.services, &pod)
                    .into_iter()
                    .for_each(|key| self.queue.add(key));
            }
            Change::Relisted { .. } => {
                for service in self.services.all() {
                    self.queue.add(ObjectKey::of(&service.metadata));
                }
            }
        }
    }

    fn endpoints_changed(&self, change: Change<Endpoints>) {
        let (endpoints, version) = match &change {
            Change::Applied { new, .. } => (new, new.metadata.resource_version.as_deref()),
            Change::Deleted(endpoints) => (endpoints, None),
            Change::Relisted { previous } => {
                self.written.clear();
                // Upstream's checkLeftoverEndpoints: Endpoints whose Service went away while
                // we were not watching are found by syncing every name.
                for endpoints in previous.iter().chain(self.endpoints.all().iter()) {
                    if !is_leader_lock(endpoints) {
                        self.queue.add(ObjectKey::of(&endpoints.metadata));
                    }
                }
                return;
            }
        };
        let key = ObjectKey::of(&endpoints.metadata);
        if is_leader_lock(endpoints) || self.written.observe(&key, &key.name, version) {
            return;
        }
        // Someone else's write: undone only where we own the object. Endpoints written before
        // their Service are left alone, as upstream does outside its start-up sweep.
        let deleted = version.is_none();
        let selected = self
            .services
            .get(&key.namespace, &key.name)
            .is_some_and(|s| util::endpoint_selector(&s).is_some());
        if deleted || selected {
            self.queue.add(key);
        }
    }
}

fn is_leader_lock(endpoints: &Endpoints) -> bool {
    endpoints
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LEADER_ANNOTATION))
}

// === impl Controller: sync ===

impl Controller {
    async fn work(self: Arc<Self>) {
        loop {
            let key = self.queue.next().await;
            match self.sync(&key).await {
                Ok(()) => self.queue.forget(&key),
                Err(Error::CacheBehindWrites) => self.queue.retry(&key),
                Err(error) => {
                    tracing::warn!(service = %key, %error, "Endpoints sync failed; retrying");
                    self.queue.retry(&key);
                }
            }
            self.queue.done(&key);
        }
    }

    async fn sync(&self, key: &ObjectKey) -> Result<(), Error> {
        let current = self.endpoints.get(&key.namespace, &key.name);
        let version = current.as_ref().map(|c| {
            let meta = &c.metadata;
            (
                meta.name.as_deref().unwrap_or_default(),
                meta.resource_version.as_deref().unwrap_or_default(),
            )
        });
        if self.written.is_stale(key, version) {
            return Err(Error::CacheBehindWrites);
        }
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), &key.namespace);
        let Some(service) = self.services.get(&key.namespace, &key.name) else {
            self.triggers.forget(key);
            if current.is_some_and(|c| !is_leader_lock(&c)) {
                return self.delete(&api, key).await;
            }
            return Ok(());
        };
        // Without a selector the Endpoints are the user's to write.
        let Some(selector) = util::endpoint_selector(&service) else {
            return Ok(());
        };
        let pods = self
            .pods
            .list(&key.namespace, |p| util::selects(selector, p.metadata.labels.as_ref()));
        let trigger_time = self.triggers.compute(&service, &pods);
        let Some(wanted) = desired::desired(&service, &pods, current.as_deref(), trigger_time) else {
            return Ok(());
        };
        let params = PostParams::default();
        let written = match current {
            None => api.create(&params, &wanted).await.map_err(Error::CreateFailed)?,
            Some(_) => api
                .replace(&key.name, &params, &wanted)
                .await
                .map_err(Error::UpdateFailed)?,
        };
        self.written
            .wrote(key, &key.name, written.metadata.resource_version.as_deref());
        Ok(())
    }

    async fn delete(&self, api: &Api<Endpoints>, key: &ObjectKey) -> Result<(), Error> {
        match api.delete(&key.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(Error::DeleteFailed(error)),
        }
        self.written.deleted(key, &key.name);
        Ok(())
    }
}
