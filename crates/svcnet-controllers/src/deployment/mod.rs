//! The Deployment controller: rolls each Deployment out through ReplicaSets named
//! `<deployment>-<pod-template-hash>`, with RollingUpdate (maxSurge / maxUnavailable) or
//! Recreate, keeps revisions for `kubectl rollout undo`, and reports the status `kubectl rollout
//! status` reads, as upstream's pkg/controller/deployment does. When a Deployment is deleted its
//! ReplicaSets are deleted too (matched by owner uid), and with them their pods.
//!
//! Start with [`sync`], the pure part (a Deployment and its ReplicaSets in, writes out) and
//! [`util`] (hashes, revisions, limits, conditions). This module is the shell: watches, a work
//! queue of Deployments, and the writes.

pub mod sync;
pub mod util;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;

use crate::replicaset::pods::{controlled_by, selector_matches};
use crate::runtime::events::{Recorder, NORMAL};
use crate::runtime::informer::{self, delete_if_uid, delete_if_unchanged, event_object, live_uid};
use crate::runtime::queue::WorkQueue;
use crate::runtime::ObjectKey;
use crate::ControllerConfig;

/// Runs the Deployment controller against the API server behind `client`.
pub async fn run(client: kube::Client, _config: ControllerConfig) -> anyhow::Result<()> {
    let (deployments, d_writer) = reflector::store();
    let (replica_sets, rs_writer) = reflector::store();
    let (pods, pod_writer) = reflector::store();
    let controller = Arc::new(Controller {
        client: client.clone(),
        deployments,
        replica_sets,
        pods,
        queue: WorkQueue::new(),
        events: Recorder::new(client.clone(), "deployment-controller"),
    });
    let d_watch = informer::watch(Api::<Deployment>::all(client.clone()), d_writer, |event| {
        controller.on_deployment(event)
    });
    let rs_watch = informer::watch(Api::<ReplicaSet>::all(client.clone()), rs_writer, |event| {
        controller.on_replica_set(event)
    });
    let pod_watch = informer::watch(Api::<Pod>::all(client), pod_writer, |event| controller.on_pod(event));
    let workers = async {
        let _ = controller.deployments.wait_until_ready().await;
        let _ = controller.replica_sets.wait_until_ready().await;
        let _ = controller.pods.wait_until_ready().await;
        let sync_controller = Arc::clone(&controller);
        informer::run_workers(Arc::clone(&controller.queue), informer::WORKERS, move |key| {
            let controller = Arc::clone(&sync_controller);
            async move { controller.sync(&key).await }
        })
        .await;
    };
    tokio::join!(d_watch, rs_watch, pod_watch, workers);
    Ok(())
}

struct Controller {
    client: kube::Client,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: Arc<WorkQueue>,
    events: Recorder,
}

fn in_namespace(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, namespace: &str) -> bool {
    meta.namespace.as_deref() == Some(namespace)
}

// === impl Controller: events ===

impl Controller {
    fn on_deployment(&self, event: &watcher::Event<Deployment>) {
        match event_object(event) {
            Some((d, _)) => self.queue.add(ObjectKey::of(&d.metadata)),
            None if matches!(event, watcher::Event::InitDone) => self.resync_all(),
            None => {}
        }
    }

    fn on_replica_set(&self, event: &watcher::Event<ReplicaSet>) {
        let Some((rs, deleted)) = event_object(event) else {
            if matches!(event, watcher::Event::InitDone) {
                self.resync_all();
            }
            return;
        };
        let namespace = rs.metadata.namespace.clone().unwrap_or_default();
        match crate::replicaset::pods::controller_ref(&rs.metadata) {
            Some(_) => {
                if let Some(owner) = controlled_by(&rs.metadata, "Deployment") {
                    self.queue.add(ObjectKey::new(namespace, owner.name.clone()));
                }
            }
            // An orphan: Deployments whose selector matches may adopt it.
            None if !deleted => {
                for d in self.deployments.state() {
                    if in_namespace(&d.metadata, &namespace)
                        && d.spec
                            .as_ref()
                            .is_some_and(|s| selector_matches(&s.selector, rs.metadata.labels.as_ref()))
                    {
                        self.queue.add(ObjectKey::of(&d.metadata));
                    }
                }
            }
            None => {}
        }
    }

    /// Pods matter only to Recreate, which waits for the old ones to finish.
    fn on_pod(&self, event: &watcher::Event<Pod>) {
        let Some((pod, deleted)) = event_object(event) else {
            return;
        };
        let finished = matches!(crate::replicaset::pods::phase(pod), "Failed" | "Succeeded");
        if !deleted && !finished {
            return;
        }
        let Some(rs_owner) = controlled_by(&pod.metadata, "ReplicaSet") else {
            return;
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        let Some(rs) = self.replica_sets.get(&ObjectRef::new(&rs_owner.name).within(namespace)) else {
            return;
        };
        let Some(d_owner) = controlled_by(&rs.metadata, "Deployment") else {
            return;
        };
        let key = ObjectKey::new(namespace, d_owner.name.clone());
        let recreate = self
            .deployments
            .get(&ObjectRef::new(&key.name).within(namespace))
            .is_some_and(|d| util::strategy_type(&d) == "Recreate");
        if recreate {
            self.queue.add(key);
        }
    }

    /// After a relist: every Deployment, and every owner ReplicaSets name.
    fn resync_all(&self) {
        for d in self.deployments.state() {
            self.queue.add(ObjectKey::of(&d.metadata));
        }
        for rs in self.replica_sets.state() {
            if let Some(owner) = controlled_by(&rs.metadata, "Deployment") {
                let namespace = rs.metadata.namespace.clone().unwrap_or_default();
                self.queue.add(ObjectKey::new(namespace, owner.name.clone()));
            }
        }
    }
}

// === impl Controller: sync ===

impl Controller {
    fn rs_api(&self, namespace: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn deployment_api(&self, namespace: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn sync(&self, key: &ObjectKey) -> anyhow::Result<Option<Duration>> {
        let d = self.deployments.get(&ObjectRef::new(&key.name).within(&key.namespace));
        let cached_uid = d.as_ref().and_then(|d| d.metadata.uid.clone());
        self.delete_orphans(key, cached_uid.as_deref()).await?;
        let Some(d) = d else {
            return Ok(None);
        };
        let replica_sets: Vec<Arc<ReplicaSet>> = self
            .replica_sets
            .state_filter(|rs| in_namespace(&rs.metadata, &key.namespace));
        let pods: Vec<Arc<Pod>> = if util::strategy_type(&d) == "Recreate" {
            self.pods.state_filter(|p| in_namespace(&p.metadata, &key.namespace))
        } else {
            Vec::new()
        };
        let rs_refs: Vec<&ReplicaSet> = replica_sets.iter().map(Arc::as_ref).collect();
        let pod_refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let plan = sync::plan(&d, &rs_refs, &pod_refs, Timestamp::now());
        let rs_api = self.rs_api(&key.namespace);
        let params = PostParams::default();
        for action in plan.actions {
            match action {
                sync::Action::CreateReplicaSet(rs) => {
                    rs_api.create(&params, &rs).await.context("creating a ReplicaSet")?;
                    self.record_scaling(&d, &rs, 0);
                }
                sync::Action::UpdateReplicaSet(rs) => {
                    let name = rs.metadata.name.clone().unwrap_or_default();
                    let before = replica_sets
                        .iter()
                        .find(|cached| cached.metadata.name == rs.metadata.name)
                        .map_or(0, |cached| util::spec_replicas(cached));
                    rs_api
                        .replace(&name, &params, &rs)
                        .await
                        .context("updating a ReplicaSet")?;
                    self.record_scaling(&d, &rs, before);
                }
                sync::Action::DeleteReplicaSet { name, uid } => {
                    delete_if_uid(&rs_api, &name, &uid)
                        .await
                        .context("deleting an old ReplicaSet")?;
                }
                sync::Action::UpdateStatus(d) => {
                    self.deployment_api(&key.namespace)
                        .replace_status(&key.name, &params, &d)
                        .await
                        .context("updating Deployment status")?;
                }
            }
        }
        Ok(plan.requeue_after)
    }

    /// Upstream's ScalingReplicaSet event, for every write that changes a ReplicaSet's size.
    fn record_scaling(&self, d: &Deployment, rs: &ReplicaSet, before: i32) {
        let after = util::spec_replicas(rs);
        if after == before {
            return;
        }
        let direction = if after > before { "up" } else { "down" };
        let name = rs.metadata.name.as_deref().unwrap_or_default();
        let message = format!("Scaled {direction} replica set {name} from {before} to {after}");
        self.events.publish(d, NORMAL, "ScalingReplicaSet", message);
    }

    /// Deletes ReplicaSets that name `key` as their Deployment but belong to one that is gone.
    async fn delete_orphans(&self, key: &ObjectKey, cached_uid: Option<&str>) -> anyhow::Result<()> {
        let orphans: Vec<Arc<ReplicaSet>> = self.replica_sets.state_filter(|rs| {
            in_namespace(&rs.metadata, &key.namespace)
                && rs.metadata.deletion_timestamp.is_none()
                && controlled_by(&rs.metadata, "Deployment")
                    .is_some_and(|o| o.name == key.name && Some(o.uid.as_str()) != cached_uid)
        });
        if orphans.is_empty() {
            return Ok(());
        }
        let live = live_uid(&self.deployment_api(&key.namespace), &key.name).await?;
        let api = self.rs_api(&key.namespace);
        for rs in orphans {
            if controlled_by(&rs.metadata, "Deployment").map(|o| o.uid.as_str()) == live.as_deref() {
                continue;
            }
            let name = rs.metadata.name.as_deref().unwrap_or("");
            tracing::debug!(deployment = %key, replicaset = name, "deleting ReplicaSet of a deleted Deployment");
            delete_if_unchanged(&api, &rs.metadata).await?;
        }
        Ok(())
    }
}
