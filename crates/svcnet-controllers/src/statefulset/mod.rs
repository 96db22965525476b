//! The StatefulSet controller: pods `<set>-0 .. <set>-(N-1)` with stable hostnames under the
//! set's headless Service (`spec.subdomain = serviceName`), created in order and removed in
//! reverse order (OrderedReady) or all at once (Parallel), rolled to a new template from the
//! highest ordinal down, with the status `kubectl rollout status` reads, as upstream's
//! pkg/controller/statefulset does. When a set is deleted its pods are deleted too.
//!
//! Start with [`sync`], the pure part; this module is the shell (watches, queue, writes).

pub mod revisions;
pub mod sync;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;

use crate::replicaset::pods::{controlled_by, controller_ref, is_terminating, selector_matches};
use crate::runtime::api_code;
use crate::runtime::events::{Recorder, NORMAL};
use crate::runtime::informer::{self, delete_if_uid, delete_if_unchanged, event_object, live_uid};
use crate::runtime::queue::WorkQueue;
use crate::runtime::ObjectKey;
use crate::ControllerConfig;

/// Runs the StatefulSet controller against the API server behind `client`.
pub async fn run(client: kube::Client, _config: ControllerConfig) -> anyhow::Result<()> {
    let (sets, set_writer) = reflector::store();
    let (pods, pod_writer) = reflector::store();
    let (revisions, revision_writer) = reflector::store();
    let controller = Arc::new(Controller {
        client: client.clone(),
        sets,
        pods,
        revisions,
        queue: WorkQueue::new(),
        events: Recorder::new(client.clone(), "statefulset-controller"),
    });
    let set_watch = informer::watch(Api::<StatefulSet>::all(client.clone()), set_writer, |event| {
        controller.on_set(event)
    });
    let pod_watch = informer::watch(Api::<Pod>::all(client.clone()), pod_writer, |event| {
        controller.on_pod(event)
    });
    let revision_watch = informer::watch(Api::<ControllerRevision>::all(client), revision_writer, |_| {});
    let workers = async {
        let _ = controller.sets.wait_until_ready().await;
        let _ = controller.pods.wait_until_ready().await;
        let _ = controller.revisions.wait_until_ready().await;
        let sync_controller = Arc::clone(&controller);
        informer::run_workers(Arc::clone(&controller.queue), informer::WORKERS, move |key| {
            let controller = Arc::clone(&sync_controller);
            async move { controller.sync(&key).await }
        })
        .await;
    };
    tokio::join!(set_watch, pod_watch, revision_watch, workers);
    Ok(())
}

struct Controller {
    client: kube::Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    queue: Arc<WorkQueue>,
    events: Recorder,
}

fn in_namespace(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, namespace: &str) -> bool {
    meta.namespace.as_deref() == Some(namespace)
}

// === impl Controller: events ===

impl Controller {
    fn on_set(&self, event: &watcher::Event<StatefulSet>) {
        match event_object(event) {
            Some((set, _)) => self.queue.add(ObjectKey::of(&set.metadata)),
            None if matches!(event, watcher::Event::InitDone) => self.resync_all(),
            None => {}
        }
    }

    fn on_pod(&self, event: &watcher::Event<Pod>) {
        let Some((pod, deleted)) = event_object(event) else {
            if matches!(event, watcher::Event::InitDone) {
                self.resync_all();
            }
            return;
        };
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        match controller_ref(&pod.metadata) {
            Some(_) => {
                if let Some(owner) = controlled_by(&pod.metadata, "StatefulSet") {
                    self.queue.add(ObjectKey::new(namespace, owner.name.clone()));
                }
            }
            // An orphan: a set whose member it would be may adopt it.
            None if !deleted => {
                for set in self.sets.state() {
                    if in_namespace(&set.metadata, &namespace)
                        && sync::ordinal(&set, pod).is_some()
                        && set
                            .spec
                            .as_ref()
                            .is_some_and(|s| selector_matches(&s.selector, pod.metadata.labels.as_ref()))
                    {
                        self.queue.add(ObjectKey::of(&set.metadata));
                    }
                }
            }
            None => {}
        }
    }

    fn resync_all(&self) {
        for set in self.sets.state() {
            self.queue.add(ObjectKey::of(&set.metadata));
        }
        for pod in self.pods.state() {
            if let Some(owner) = controlled_by(&pod.metadata, "StatefulSet") {
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                self.queue.add(ObjectKey::new(namespace, owner.name.clone()));
            }
        }
    }
}

// === impl Controller: sync ===

impl Controller {
    fn pod_api(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn set_api(&self, namespace: &str) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn sync(&self, key: &ObjectKey) -> anyhow::Result<Option<Duration>> {
        let set = self.sets.get(&ObjectRef::new(&key.name).within(&key.namespace));
        let cached_uid = set.as_ref().and_then(|s| s.metadata.uid.clone());
        self.delete_orphans(key, cached_uid.as_deref()).await?;
        let Some(set) = set else {
            return Ok(None);
        };
        let pods: Vec<Arc<Pod>> = self.pods.state_filter(|p| in_namespace(&p.metadata, &key.namespace));
        let pod_refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        if set.metadata.deletion_timestamp.is_none() {
            self.keep_history(&set, &pod_refs).await?;
        }
        let plan = sync::plan(&set, &pod_refs, Timestamp::now());
        let api = self.pod_api(&key.namespace);
        let params = PostParams::default();
        let creates = plan.actions.iter().filter_map(|a| match a {
            sync::Action::CreatePod(pod) => Some(api.create(&params, pod.as_ref())),
            _ => None,
        });
        for result in futures::future::join_all(creates).await {
            match result {
                Ok(pod) => {
                    let message = format!(
                        "create Pod {} in StatefulSet {} successful",
                        pod.metadata.name.unwrap_or_default(),
                        key.name
                    );
                    self.events.publish(set.as_ref(), NORMAL, "SuccessfulCreate", message);
                }
                // The cache has not seen an earlier create yet.
                Err(err) if api_code(&err) == Some(409) => {}
                Err(err) => return Err(err).context("creating a StatefulSet pod"),
            }
        }
        for action in &plan.actions {
            match action {
                sync::Action::CreatePod(_) => {}
                sync::Action::DeletePod { name, uid } => {
                    delete_if_uid(&api, name, uid)
                        .await
                        .context("deleting a StatefulSet pod")?;
                    let message = format!("delete Pod {name} in StatefulSet {} successful", key.name);
                    self.events.publish(set.as_ref(), NORMAL, "SuccessfulDelete", message);
                }
                sync::Action::PatchPod { name, patch } => {
                    match api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
                        Ok(_) => {}
                        Err(err) if api_code(&err) == Some(404) => {}
                        Err(err) => return Err(err).context("updating a StatefulSet pod"),
                    }
                }
            }
        }
        if sync::status_changed(&set, &plan.status) {
            let mut updated = (*set).clone();
            updated.status = Some(plan.status);
            self.set_api(&key.namespace)
                .replace_status(&key.name, &params, &updated)
                .await
                .context("updating StatefulSet status")?;
        }
        Ok(plan.requeue_after)
    }

    /// Writes the set's ControllerRevisions as [`revisions::plan`] asks.
    async fn keep_history(&self, set: &StatefulSet, pods: &[&Pod]) -> anyhow::Result<()> {
        let uid = set.metadata.uid.as_deref().unwrap_or_default();
        let namespace = set.metadata.namespace.as_deref().unwrap_or_default();
        let owned = self.revisions.state_filter(|r| {
            in_namespace(&r.metadata, namespace)
                && controlled_by(&r.metadata, "StatefulSet").is_some_and(|o| o.uid == uid)
        });
        let owned_refs: Vec<&ControllerRevision> = owned.iter().map(Arc::as_ref).collect();
        let owned_pods: Vec<&Pod> = pods
            .iter()
            .copied()
            .filter(|p| controlled_by(&p.metadata, "StatefulSet").is_some_and(|o| o.uid == uid))
            .collect();
        let plan = revisions::plan(set, &owned_refs, &owned_pods);
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), namespace);
        if let Some(revision) = &plan.create {
            match api.create(&PostParams::default(), revision).await {
                Ok(_) => {}
                // The cache has not seen it yet.
                Err(err) if api_code(&err) == Some(409) => {}
                Err(err) => return Err(err).context("creating a ControllerRevision"),
            }
        }
        if let Some((name, number)) = &plan.renumber {
            let patch = serde_json::json!({"revision": number});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .context("renumbering a ControllerRevision")?;
        }
        for name in &plan.delete {
            let uid = owned
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
                .and_then(|r| r.metadata.uid.clone())
                .unwrap_or_default();
            delete_if_uid(&api, name, &uid)
                .await
                .context("deleting an old ControllerRevision")?;
        }
        Ok(())
    }

    /// Deletes pods and revisions that name `key` as their StatefulSet but belong to one that is
    /// gone.
    async fn delete_orphans(&self, key: &ObjectKey, cached_uid: Option<&str>) -> anyhow::Result<()> {
        let of_a_gone_set = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            in_namespace(meta, &key.namespace)
                && controlled_by(meta, "StatefulSet")
                    .is_some_and(|o| o.name == key.name && Some(o.uid.as_str()) != cached_uid)
        };
        let orphans: Vec<Arc<Pod>> = self
            .pods
            .state_filter(|p| !is_terminating(p) && of_a_gone_set(&p.metadata));
        let old_revisions = self.revisions.state_filter(|r| of_a_gone_set(&r.metadata));
        if orphans.is_empty() && old_revisions.is_empty() {
            return Ok(());
        }
        let live = live_uid(&self.set_api(&key.namespace), &key.name).await?;
        let revision_api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &key.namespace);
        for revision in old_revisions {
            if controlled_by(&revision.metadata, "StatefulSet").map(|o| o.uid.as_str()) != live.as_deref() {
                delete_if_unchanged(&revision_api, &revision.metadata).await?;
            }
        }
        let api = self.pod_api(&key.namespace);
        for pod in orphans {
            if controlled_by(&pod.metadata, "StatefulSet").map(|o| o.uid.as_str()) == live.as_deref() {
                continue;
            }
            let name = pod.metadata.name.as_deref().unwrap_or("");
            tracing::debug!(statefulset = %key, pod = name, "deleting pod of a deleted StatefulSet");
            delete_if_unchanged(&api, &pod.metadata).await?;
        }
        Ok(())
    }
}
