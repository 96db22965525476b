//! The `/scale` subresource of Deployments, ReplicaSets and StatefulSets (autoscaling/v1 Scale),
//! which `kubectl scale` reads and patches; writes go to the owner's `spec.replicas`.

use serde_json::{json, Value};

use svcnet_core::patch::{self, PatchType};
use svcnet_core::resources::ResourceInfo;
use svcnet_core::selector::from_label_selector_json;

use crate::objects;
use crate::registry::{Registry, WriteOptions};
use crate::status::{ApiError, ApiResult};

/// Kinds that serve `/scale`.
pub fn has_scale(resource: &ResourceInfo) -> bool {
    matches!(resource.kind, "Deployment" | "ReplicaSet" | "StatefulSet")
}

/// The Scale view of a workload.
pub fn to_scale(object: &Value) -> Value {
    let selector = object
        .pointer("/spec/selector")
        .and_then(|s| from_label_selector_json(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let meta = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub async fn get(
    registry: &Registry,
    resource: &ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Value> {
    Ok(to_scale(&registry.get(resource, namespace, name).await?))
}

/// PUT or PATCH of a Scale: computes the new Scale, then writes its replicas to the owner under
/// the resourceVersion the Scale carried (a stale one is a 409, as upstream).
pub async fn write(
    registry: &Registry,
    resource: &ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    change: ScaleChange,
    options: WriteOptions,
) -> ApiResult<Value> {
    let current = get(registry, resource, namespace, name).await?;
    let scale = match change {
        ScaleChange::Replace(scale) => scale,
        ScaleChange::Patch(patch_type, body) => {
            patch::apply_patch(patch_type, &current, &body, "Scale").map_err(|err| ApiError {
                code: err.status_code(),
                reason: err.reason(),
                message: err.to_string(),
                details: None,
            })?
        }
    };
    let Some(replicas) = scale.pointer("/spec/replicas").and_then(Value::as_i64) else {
        return Err(ApiError::bad_request("the Scale has no spec.replicas"));
    };
    let mut owner_patch = json!({"spec": {"replicas": replicas}});
    if let Some(version) = objects::resource_version(&scale) {
        owner_patch["metadata"] = json!({"resourceVersion": version});
    }
    let written = registry
        .patch(resource, namespace, name, None, PatchType::Merge, owner_patch, options)
        .await?;
    Ok(to_scale(&written.object))
}

/// What a Scale write asks for.
pub enum ScaleChange {
    Replace(Value),
    Patch(PatchType, Value),
}
