//! Namespace lifecycle: the namespaces every cluster starts with, and the finalizer that empties a
//! terminating namespace before it goes away (upstream's namespace controller, in process).

use std::time::Duration;

use serde_json::{json, Value};

use svcnet_core::resources::{self, RESOURCES};
use svcnet_store::{Op, Precondition};

use crate::body::FieldValidation;
use crate::objects;
use crate::registry::{Registry, Selection, WriteOptions};
use crate::status::ApiResult;

/// Namespaces that exist from the first start.
pub const INITIAL: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Pause between passes while objects with finalizers are still being released.
const RETRY: Duration = Duration::from_millis(200);

/// Creates the initial namespaces that are missing, and resumes finalizing terminating ones.
pub async fn bootstrap(registry: &Registry) -> ApiResult<()> {
    let namespaces = resources::by_kind("Namespace").expect("served");
    let options = WriteOptions {
        dry_run: false,
        validation: FieldValidation::Strict,
    };
    for name in INITIAL {
        if registry.get(namespaces, None, name).await.is_err() {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            registry.create(namespaces, None, object, options).await?;
        }
    }
    let (all, _) = registry.list(namespaces, None, &Selection::default()).await?;
    for namespace in all.iter().filter(|ns| objects::is_deleting(ns)) {
        if let Some(name) = objects::name(namespace) {
            spawn_finalizer(registry.clone(), name.to_string());
        }
    }
    Ok(())
}

/// Empties a terminating namespace in the background, then removes it.
pub fn spawn_finalizer(registry: Registry, namespace: String) {
    tokio::spawn(async move {
        loop {
            match finalize_pass(&registry, &namespace).await {
                Ok(true) => return,
                Ok(false) => tokio::time::sleep(RETRY).await,
                Err(err) => {
                    tracing::warn!(namespace, error = %err.message, "namespace cleanup pass failed");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
}

/// One pass: deletes what is left in the namespace; returns true once the namespace is gone.
async fn finalize_pass(registry: &Registry, namespace: &str) -> ApiResult<bool> {
    let mut remaining = 0;
    for resource in RESOURCES.iter().filter(|r| r.namespaced) {
        let (items, _) = registry.list(resource, Some(namespace), &Selection::default()).await?;
        remaining += items.len();
        for item in items.iter().filter(|item| !objects::is_deleting(item)) {
            if let Some(name) = objects::name(item) {
                // Already gone or conflicting: the next pass sees the current state.
                let _ = registry
                    .delete(resource, Some(namespace), name, &Value::Null, false)
                    .await;
            }
        }
    }
    if remaining > 0 {
        return Ok(false);
    }
    remove_namespace(registry, namespace).await?;
    Ok(true)
}

/// Removes the emptied namespace object (its `kubernetes` spec finalizer is satisfied).
async fn remove_namespace(registry: &Registry, namespace: &str) -> ApiResult<()> {
    let namespaces = resources::by_kind("Namespace").expect("served");
    let Ok(current) = registry.get(namespaces, None, namespace).await else {
        return Ok(());
    };
    let revision = objects::resource_version(&current)
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0);
    let op = Op::Delete {
        key: objects::key(namespaces, None, namespace),
        precondition: Precondition::ModRevision(revision),
    };
    registry.store.txn(vec![op]).await?;
    Ok(())
}
