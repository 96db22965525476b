//! The ReplicaSet controller: keeps `spec.replicas` active pods for every ReplicaSet, named
//! `<replicaset>-<5 random characters>`, and reports their readiness and availability in its
//! status, as upstream's pkg/controller/replicaset does. When a ReplicaSet is deleted its pods
//! are deleted too (the garbage collector's part, matched by owner uid).
//!
//! Start with [`sync`], the pure part: claimed pods, creates, deletes and the status. This
//! module is the shell: pod and ReplicaSet watches feed a [`queue::WorkQueue`] of ReplicaSets,
//! and workers apply each plan through the API. The module also holds what the Deployment and
//! StatefulSet controllers share with it: [`pods`] (pod rules), [`queue`] and [`informer`].

pub mod expectations;
pub mod pods;
pub mod sync;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;

use crate::runtime::api_code;
use crate::runtime::events::{Recorder, NORMAL, WARNING};
use crate::runtime::informer::{self, delete_if_uid, delete_if_unchanged, event_object, live_uid};
use crate::runtime::queue::WorkQueue;
use crate::runtime::ObjectKey;
use crate::ControllerConfig;
use expectations::Expectations;
use pods::{controlled_by, is_pod_active, is_terminating, selector_matches};

/// Runs the ReplicaSet controller against the API server behind `client`.
pub async fn run(client: kube::Client, _config: ControllerConfig) -> anyhow::Result<()> {
    let (replica_sets, rs_writer) = reflector::store();
    let (pods, pod_writer) = reflector::store();
    let controller = Arc::new(Controller {
        client: client.clone(),
        replica_sets,
        pods,
        queue: WorkQueue::new(),
        expectations: Expectations::default(),
        events: Recorder::new(client.clone(), "replicaset-controller"),
    });
    let rs_watch = informer::watch(Api::<ReplicaSet>::all(client.clone()), rs_writer, |event| {
        controller.on_replica_set(event)
    });
    let pod_watch = informer::watch(Api::<Pod>::all(client), pod_writer, |event| controller.on_pod(event));
    let workers = async {
        // Both caches must be complete before a sync may conclude that pods are missing.
        let _ = controller.replica_sets.wait_until_ready().await;
        let _ = controller.pods.wait_until_ready().await;
        let sync_controller = Arc::clone(&controller);
        informer::run_workers(Arc::clone(&controller.queue), informer::WORKERS, move |key| {
            let controller = Arc::clone(&sync_controller);
            async move { controller.sync(&key).await }
        })
        .await;
    };
    tokio::join!(rs_watch, pod_watch, workers);
    Ok(())
}

struct Controller {
    client: kube::Client,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: Arc<WorkQueue>,
    expectations: Expectations,
    events: Recorder,
}

// === impl Controller: events ===

impl Controller {
    fn on_replica_set(&self, event: &watcher::Event<ReplicaSet>) {
        match event_object(event) {
            Some((rs, _)) => self.queue.add(ObjectKey::of(&rs.metadata)),
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
        match pods::controller_ref(&pod.metadata) {
            Some(owner) => {
                if controlled_by(&pod.metadata, "ReplicaSet").is_none() {
                    return;
                }
                let key = ObjectKey::new(namespace, owner.name.clone());
                let name = pod.metadata.name.as_deref().unwrap_or("");
                let uid = pod.metadata.uid.as_deref().unwrap_or("");
                self.expectations
                    .observe(&key, name, uid, deleted || is_terminating(pod));
                self.queue.add(key);
            }
            // An orphan: ReplicaSets whose selector matches may adopt it.
            None if !deleted && is_pod_active(pod) => {
                for rs in self.replica_sets.state() {
                    if rs.metadata.namespace.as_deref() == Some(namespace.as_str())
                        && rs
                            .spec
                            .as_ref()
                            .is_some_and(|s| selector_matches(&s.selector, pod.metadata.labels.as_ref()))
                    {
                        self.queue.add(ObjectKey::of(&rs.metadata));
                    }
                }
            }
            None => {}
        }
    }

    /// After a relist: every ReplicaSet, and every owner pods name (deletions may have been
    /// missed while the watch was down).
    fn resync_all(&self) {
        for rs in self.replica_sets.state() {
            self.queue.add(ObjectKey::of(&rs.metadata));
        }
        for pod in self.pods.state() {
            if let Some(owner) = controlled_by(&pod.metadata, "ReplicaSet") {
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

    fn rs_api(&self, namespace: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Pods of the namespace that name `key` as their controlling ReplicaSet.
    fn pods_naming(&self, key: &ObjectKey) -> Vec<Arc<Pod>> {
        self.pods.state_filter(|pod| {
            pod.metadata.namespace.as_deref() == Some(key.namespace.as_str())
                && controlled_by(&pod.metadata, "ReplicaSet").is_some_and(|o| o.name == key.name)
        })
    }

    async fn sync(&self, key: &ObjectKey) -> anyhow::Result<Option<Duration>> {
        let rs = self.replica_sets.get(&ObjectRef::new(&key.name).within(&key.namespace));
        let live_uid = rs.as_ref().and_then(|rs| rs.metadata.uid.clone());
        self.delete_orphans(key, live_uid.as_deref()).await?;
        let Some(rs) = rs else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let pods: Vec<Arc<Pod>> = self
            .pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(key.namespace.as_str()));
        let siblings: Vec<Arc<ReplicaSet>> = self
            .replica_sets
            .state_filter(|r| r.metadata.namespace.as_deref() == Some(key.namespace.as_str()));
        let names: HashSet<&str> = pods.iter().filter_map(|p| p.metadata.name.as_deref()).collect();
        let alive: HashSet<&str> = pods
            .iter()
            .filter(|p| !is_terminating(p))
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        let manage = self
            .expectations
            .satisfied(key, |name| names.contains(name), |uid| alive.contains(uid));
        let pod_refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let sibling_refs: Vec<&ReplicaSet> = siblings.iter().map(Arc::as_ref).collect();
        let now = Timestamp::now();
        let plan = sync::plan(&rs, &pod_refs, &sibling_refs, manage, now);

        self.claim(&rs, &plan).await?;
        let manage_error = self.manage(key, &rs, &plan).await;
        let status = sync::calculate_status(&rs, &plan.active, manage_error.as_ref(), now);
        if sync::status_changed(&rs, &status) {
            let mut updated = (*rs).clone();
            updated.status = Some(status);
            self.rs_api(&key.namespace)
                .replace_status(&key.name, &PostParams::default(), &updated)
                .await
                .context("updating ReplicaSet status")?;
        }
        if let Some(err) = manage_error {
            anyhow::bail!("{}: {}", err.reason, err.message);
        }
        let requeue = [
            sync::requeue_after(&rs, &plan.active, now),
            self.expectations.expires_in(key),
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(requeue)
    }

    /// Deletes pods that name `key` as their ReplicaSet but belong to one that is gone (a
    /// deleted ReplicaSet, or an earlier one of the same name).
    async fn delete_orphans(&self, key: &ObjectKey, cached_uid: Option<&str>) -> anyhow::Result<()> {
        let orphans: Vec<Arc<Pod>> = self
            .pods_naming(key)
            .into_iter()
            .filter(|p| controlled_by(&p.metadata, "ReplicaSet").is_some_and(|o| Some(o.uid.as_str()) != cached_uid))
            .filter(|p| !is_terminating(p))
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        // The cache may lag behind: only the API says which ReplicaSet of this name exists.
        let live = live_uid(&self.rs_api(&key.namespace), &key.name).await?;
        let api = self.pod_api(&key.namespace);
        for pod in &orphans {
            if controlled_by(&pod.metadata, "ReplicaSet").map(|o| o.uid.as_str()) == live.as_deref() {
                continue;
            }
            let name = pod.metadata.name.as_deref().unwrap_or("");
            tracing::debug!(replicaset = %key, pod = name, "deleting pod of a deleted ReplicaSet");
            delete_if_unchanged(&api, &pod.metadata).await?;
        }
        Ok(())
    }

    /// Adopts orphans and releases pods that stopped matching, by rewriting their owner
    /// references (guarded by the pod's uid).
    async fn claim(&self, rs: &ReplicaSet, plan: &sync::Plan<'_>) -> anyhow::Result<()> {
        let namespace = rs.metadata.namespace.as_deref().unwrap_or("");
        let api = self.pod_api(namespace);
        let changes = plan
            .adopt
            .iter()
            .map(|p| (*p, sync::adopted_owner_references(rs, p)))
            .chain(
                plan.release
                    .iter()
                    .map(|p| (*p, sync::released_owner_references(rs, p))),
            );
        for (pod, refs) in changes {
            let name = pod.metadata.name.as_deref().unwrap_or("");
            let patch = serde_json::json!({
                "metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}
            });
            match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(err) if api_code(&err) == Some(404) => {}
                Err(err) => return Err(err).context("claiming a pod"),
            }
        }
        Ok(())
    }

    /// Creates (in slow-start batches: 1, 2, 4, ...) and deletes pods; returns what failed.
    async fn manage(&self, key: &ObjectKey, rs: &ReplicaSet, plan: &sync::Plan<'_>) -> Option<sync::ManageError> {
        let api = self.pod_api(&key.namespace);
        if let (Some(pod), true) = (&plan.pod, plan.create > 0) {
            let params = PostParams::default();
            let mut remaining = plan.create;
            let mut batch = 1;
            while remaining > 0 {
                let size = batch.min(remaining);
                let results = futures::future::join_all((0..size).map(|_| api.create(&params, pod))).await;
                let mut created = Vec::new();
                let mut failure = None;
                for result in results {
                    match result {
                        Ok(pod) => {
                            let name = pod.metadata.name.unwrap_or_default();
                            self.events
                                .publish(rs, NORMAL, "SuccessfulCreate", format!("Created pod: {name}"));
                            created.push(name);
                        }
                        Err(err) => {
                            let message = format!("Error creating: {}", api_message(&err));
                            self.events.publish(rs, WARNING, "FailedCreate", message);
                            failure = Some(err);
                        }
                    }
                }
                self.expectations.expect(key, created, Vec::new());
                if let Some(err) = failure {
                    return Some(sync::ManageError {
                        reason: "FailedCreate",
                        message: api_message(&err),
                    });
                }
                remaining -= size;
                batch *= 2;
            }
        }
        if !plan.delete.is_empty() {
            let uids: Vec<String> = plan
                .delete
                .iter()
                .map(|p| p.metadata.uid.clone().unwrap_or_default())
                .collect();
            self.expectations.expect(key, Vec::new(), uids);
            let results = futures::future::join_all(plan.delete.iter().map(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                let uid = p.metadata.uid.clone().unwrap_or_default();
                let api = api.clone();
                async move {
                    let deleted = delete_if_uid(&api, &name, &uid).await;
                    if deleted.is_ok() {
                        self.events
                            .publish(rs, NORMAL, "SuccessfulDelete", format!("Deleted pod: {name}"));
                    }
                    deleted
                }
            }))
            .await;
            if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
                return Some(sync::ManageError {
                    reason: "FailedDelete",
                    message: api_message(&err),
                });
            }
        }
        None
    }
}

/// The message of an API error as the ReplicaFailure condition shows it.
fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}
