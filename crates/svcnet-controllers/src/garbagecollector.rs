//! Deletion propagation of workload owners, the part of upstream's garbage collector that
//! `kubectl delete --cascade=orphan|foreground` needs. The API server marks an owner deleted with
//! `propagationPolicy: Orphan` with the `orphan` finalizer and one deleted with `Foreground` with
//! `foregroundDeletion`; this controller then
//! - orphan: removes the owner's reference from every dependent, then the finalizer, so the owner
//!   goes and its dependents stay;
//! - foreground: deletes the dependents (foreground too, so a Deployment's ReplicaSets take their
//!   pods first) and removes the finalizer once none is left.
//!
//! Background deletion (kubectl's default) needs nothing here: the workload controllers delete
//! what an absent owner owned.
//!
//! Owners and their dependents: Deployment -> ReplicaSets, ReplicaSet -> Pods, StatefulSet ->
//! Pods and ControllerRevisions.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PropagationPolicy};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::ControllerConfig;

pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// How often an owner waiting on its dependents is looked at again.
const RECHECK: Duration = Duration::from_millis(250);

/// What an owner's deletion still asks of the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Orphan,
    Foreground,
}

/// The propagation an owner still waits on: only deleted owners with our finalizers qualify, and
/// orphaning comes first, as upstream processes it.
pub fn pending(meta: &ObjectMeta) -> Option<Pending> {
    meta.deletion_timestamp.as_ref()?;
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    if has(ORPHAN_FINALIZER) {
        Some(Pending::Orphan)
    } else if has(FOREGROUND_FINALIZER) {
        Some(Pending::Foreground)
    } else {
        None
    }
}

/// Whether `meta` names `owner_uid` among its owners.
pub fn owned_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|r| r.uid == owner_uid)
}

/// The owner references left once `owner_uid` lets go.
pub fn without_owner(refs: &[OwnerReference], owner_uid: &str) -> Vec<OwnerReference> {
    refs.iter().filter(|r| r.uid != owner_uid).cloned().collect()
}

/// A JSON patch that replaces a list in `metadata` only if the object is still at the revision it
/// was read at, so a concurrent writer is never overwritten. An emptied list is removed, as
/// upstream's serialization omits empty lists.
fn replace_in_metadata(meta: &ObjectMeta, field: &str, value: Value) -> Value {
    let guard = json!({"op": "test", "path": "/metadata/resourceVersion", "value": meta.resource_version});
    let path = format!("/metadata/{field}");
    if value.as_array().is_some_and(Vec::is_empty) {
        json!([guard, {"op": "remove", "path": path}])
    } else {
        json!([guard, {"op": "replace", "path": path, "value": value}])
    }
}

/// Runs the collector for every owner kind until the process ends.
pub async fn run(client: kube::Client, _config: ControllerConfig) -> anyhow::Result<()> {
    tokio::join!(
        collect::<Deployment>(client.clone(), OwnerKind::Deployment),
        collect::<ReplicaSet>(client.clone(), OwnerKind::ReplicaSet),
        collect::<StatefulSet>(client, OwnerKind::StatefulSet),
    );
    Ok(())
}

/// The owner kinds whose deletion this collector propagates; each names its dependents.
#[derive(Debug, Clone, Copy)]
enum OwnerKind {
    Deployment,
    ReplicaSet,
    StatefulSet,
}

trait Namespaced: Resource<DynamicType = (), Scope = NamespaceResourceScope> {}
impl<K: Resource<DynamicType = (), Scope = NamespaceResourceScope>> Namespaced for K {}

/// Watches owners of kind `O` and carries out the propagation each deleted one asks for.
async fn collect<O>(client: kube::Client, kind: OwnerKind)
where
    O: Namespaced + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
{
    let owners = watcher(Api::<O>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(owners);
    while let Some(event) = owners.next().await {
        let owner = match event {
            Ok(owner) => owner,
            Err(err) => {
                tracing::warn!(%err, "garbage collector watch failed; retrying");
                continue;
            }
        };
        if pending(owner.meta()).is_some() {
            tokio::spawn(propagate::<O>(client.clone(), kind, owner));
        }
    }
}

/// Works on one deleted owner until its finalizer is gone (or it is).
async fn propagate<O>(client: kube::Client, kind: OwnerKind, owner: O)
where
    O: Namespaced + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static,
{
    let meta = owner.meta();
    let (Some(namespace), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
        return;
    };
    let owners = Api::<O>::namespaced(client.clone(), &namespace);
    loop {
        let Ok(Some(owner)) = owners.get_opt(&name).await else {
            return;
        };
        let Some(step) = pending(owner.meta()) else {
            return;
        };
        let result = match settle_dependents(&client, kind, owner.meta(), step).await {
            Ok(true) => remove_finalizer(&owners, owner.meta(), step).await.map(|()| true),
            other => other,
        };
        match result {
            Ok(true) => return,
            Ok(false) => {}
            Err(err) => tracing::debug!(%name, %err, "deletion propagation retried"),
        }
        tokio::time::sleep(RECHECK).await;
    }
}

/// One pass over every dependent kind of the owner; true once none is left to wait for.
async fn settle_dependents(
    client: &kube::Client,
    kind: OwnerKind,
    owner: &ObjectMeta,
    step: Pending,
) -> anyhow::Result<bool> {
    let namespace = owner.namespace.as_deref().unwrap_or_default();
    let uid = owner.uid.as_deref().unwrap_or_default();
    Ok(match kind {
        OwnerKind::Deployment => settle::<ReplicaSet>(&Api::namespaced(client.clone(), namespace), uid, step).await?,
        OwnerKind::ReplicaSet => settle::<Pod>(&Api::namespaced(client.clone(), namespace), uid, step).await?,
        OwnerKind::StatefulSet => {
            let pods = settle::<Pod>(&Api::namespaced(client.clone(), namespace), uid, step).await?;
            let revisions =
                settle::<ControllerRevision>(&Api::namespaced(client.clone(), namespace), uid, step).await?;
            pods && revisions
        }
    })
}

/// Orphan: every dependent of one kind lets go of the owner. Foreground: they are deleted, and
/// the pass is done once they are gone.
async fn settle<D>(dependents: &Api<D>, uid: &str, step: Pending) -> anyhow::Result<bool>
where
    D: Namespaced + Clone + DeserializeOwned + Serialize + Debug,
{
    let owned: Vec<D> = dependents
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|d| owned_by(d.meta(), uid))
        .collect();
    match step {
        Pending::Orphan => {
            for dependent in &owned {
                let refs = without_owner(dependent.meta().owner_references.as_deref().unwrap_or_default(), uid);
                patch_metadata(dependents, dependent.meta(), "ownerReferences", json!(refs)).await?;
            }
            Ok(true)
        }
        Pending::Foreground => {
            // Dependents that own things themselves go in the foreground too; the others
            // (pods, revisions) have nothing to wait for, and no collector to lift the
            // finalizer, so they go in the background.
            let policy = if D::kind(&()) == "ReplicaSet" {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            };
            let foreground = DeleteParams {
                propagation_policy: Some(policy),
                ..DeleteParams::default()
            };
            for dependent in owned.iter().filter(|d| d.meta().deletion_timestamp.is_none()) {
                let name = dependent.meta().name.as_deref().unwrap_or_default();
                dependents.delete(name, &foreground).await?;
            }
            Ok(owned.is_empty())
        }
    }
}

async fn remove_finalizer<O>(owners: &Api<O>, owner: &ObjectMeta, step: Pending) -> anyhow::Result<()>
where
    O: Namespaced + Clone + DeserializeOwned + Debug,
{
    let finalizer = match step {
        Pending::Orphan => ORPHAN_FINALIZER,
        Pending::Foreground => FOREGROUND_FINALIZER,
    };
    let left: Vec<&String> = owner
        .finalizers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    patch_metadata(owners, owner, "finalizers", json!(left)).await
}

async fn patch_metadata<K>(api: &Api<K>, meta: &ObjectMeta, field: &str, value: Value) -> anyhow::Result<()>
where
    K: Namespaced + Clone + DeserializeOwned + Debug,
{
    let name = meta.name.as_deref().unwrap_or_default();
    let patch = serde_json::from_value(replace_in_metadata(meta, field, value))?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn meta(finalizers: &[&str], deleted: bool) -> ObjectMeta {
        ObjectMeta {
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            deletion_timestamp: deleted.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_deleted_owners_with_our_finalizers_are_pending() {
        assert_eq!(pending(&meta(&["orphan"], false)), None);
        assert_eq!(pending(&meta(&["example.com/x"], true)), None);
        assert_eq!(pending(&meta(&["orphan"], true)), Some(Pending::Orphan));
        assert_eq!(pending(&meta(&["foregroundDeletion"], true)), Some(Pending::Foreground));
        assert_eq!(
            pending(&meta(&["foregroundDeletion", "orphan"], true)),
            Some(Pending::Orphan)
        );
    }

    #[test]
    fn letting_go_keeps_other_owners() {
        let owner = |uid: &str| OwnerReference {
            uid: uid.into(),
            ..OwnerReference::default()
        };
        let refs = [owner("a"), owner("b")];
        let mut dependent = ObjectMeta {
            owner_references: Some(refs.to_vec()),
            ..ObjectMeta::default()
        };
        assert!(owned_by(&dependent, "a"));
        dependent.owner_references = Some(without_owner(&refs, "a"));
        assert!(!owned_by(&dependent, "a"));
        assert!(owned_by(&dependent, "b"));
    }

    #[test]
    fn metadata_patches_are_guarded_by_the_revision_read() {
        let m = ObjectMeta {
            resource_version: Some("42".into()),
            ..ObjectMeta::default()
        };
        let patch = replace_in_metadata(&m, "finalizers", json!(["a"]));
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"})
        );
        assert_eq!(
            patch[1],
            json!({"op": "replace", "path": "/metadata/finalizers", "value": ["a"]})
        );
        let emptied = replace_in_metadata(&m, "ownerReferences", json!([]));
        assert_eq!(emptied[1], json!({"op": "remove", "path": "/metadata/ownerReferences"}));
    }
}
