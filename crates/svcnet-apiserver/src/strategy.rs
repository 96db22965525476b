//! Per-kind rules of the generic registry, after upstream's REST strategies: which kinds have a
//! status subresource, which track generation, what a create resets, and what an update keeps.
//! Kind-specific validation and defaulting (Services next) plug in here.

use serde_json::{json, Value};

use svcnet_core::resources::ResourceInfo;
use svcnet_core::service;
use svcnet_core::service::validation;
use svcnet_core::workloads;

use crate::status::Cause;

/// How one kind behaves in the generic create/update paths.
#[derive(Debug, Clone, Copy)]
pub struct Strategy {
    /// Spec writes ignore status and status writes ignore everything else.
    pub status_subresource: bool,
    /// metadata.generation starts at 1 and is bumped when the spec changes.
    pub tracks_generation: bool,
    /// A PUT to a missing object creates it (AllowCreateOnUpdate upstream).
    pub create_on_update: bool,
}

pub fn strategy(resource: &ResourceInfo) -> Strategy {
    let kind = resource.kind;
    Strategy {
        status_subresource: resource.has_status,
        tracks_generation: matches!(kind, "Deployment" | "ReplicaSet" | "StatefulSet" | "EndpointSlice"),
        create_on_update: matches!(kind, "Endpoints" | "Event" | "Lease" | "EndpointSlice"),
    }
}

/// Resets what a client may not set on create, and applies create-time defaults.
pub fn prepare_for_create(resource: &ResourceInfo, object: &mut Value) {
    let map = object.as_object_mut().expect("objects are JSON objects");
    match resource.kind {
        "Namespace" => {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if spec.get("finalizers").is_none() {
                spec["finalizers"] = json!(["kubernetes"]);
            }
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        "Service" => {
            map.insert("status".into(), json!({"loadBalancer": {}}));
            service::defaults::apply_defaults(object);
            service::update::normalize_cluster_ips_on_create(object);
        }
        "Pod" => {
            map.insert("status".into(), json!({"phase": "Pending", "qosClass": "BestEffort"}));
            crate::pods::default_tolerations(object);
            workloads::defaults::apply_defaults("Pod", object);
        }
        "Deployment" | "ReplicaSet" | "StatefulSet" => {
            map.remove("status");
            workloads::defaults::apply_defaults(resource.kind, object);
        }
        // Nodes may register with their status, as kubelets do.
        "Node" => {}
        _ if resource.has_status => {
            map.remove("status");
        }
        _ => {}
    }
}

/// Builds the object a write will store from the client's object and the stored one.
pub fn prepare_for_update(resource: &ResourceInfo, subresource: Option<&str>, new: &mut Value, old: &Value) {
    let strategy = strategy(resource);
    if subresource == Some("status") {
        // A status write changes status only.
        let status = new.get("status").cloned();
        // Deployment status writes carry annotations too: the controller records the
        // revision there (upstream's deploymentStatusStrategy keeps only spec and labels).
        let annotations = (resource.kind == "Deployment").then(|| new.pointer("/metadata/annotations").cloned());
        *new = old.clone();
        match status {
            Some(status) => new["status"] = status,
            None => {
                new.as_object_mut().expect("object").remove("status");
            }
        }
        if let Some(annotations) = annotations {
            let metadata = new["metadata"].as_object_mut().expect("metadata");
            match annotations {
                Some(annotations) => metadata.insert("annotations".into(), annotations),
                None => metadata.remove("annotations"),
            };
        }
        if resource.kind == "Service" {
            service::defaults::default_ingress_ip_mode(new);
        }
        return;
    }
    if strategy.status_subresource {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                new.as_object_mut().expect("object").remove("status");
            }
        }
    }
    if resource.kind == "Service" {
        service::defaults::apply_defaults(new);
        service::update::prepare_update(new, old);
    }
    if matches!(resource.kind, "Deployment" | "ReplicaSet" | "StatefulSet" | "Pod") {
        workloads::defaults::apply_defaults(resource.kind, new);
    }
    if strategy.tracks_generation {
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let changed = generation_changes(resource.kind, new, old);
        new["metadata"]["generation"] = json!(if changed { generation + 1 } else { generation });
    }
}

/// Whether an update moves metadata.generation on, per kind as upstream's strategies decide.
fn generation_changes(kind: &str, new: &Value, old: &Value) -> bool {
    let at = |object: &Value, pointer: &str| object.pointer(pointer).cloned();
    match kind {
        // Deployments also count annotation changes: they are copied to ReplicaSets.
        "Deployment" => {
            new.get("spec") != old.get("spec") || at(new, "/metadata/annotations") != at(old, "/metadata/annotations")
        }
        // EndpointSlices have no spec: anything but metadata counts, and so do labels.
        "EndpointSlice" => {
            let without_metadata = |object: &Value| {
                let mut object = object.clone();
                object.as_object_mut().map(|map| map.remove("metadata"));
                object
            };
            without_metadata(new) != without_metadata(old) || at(new, "/metadata/labels") != at(old, "/metadata/labels")
        }
        _ => new.get("spec") != old.get("spec"),
    }
}

/// Kind-specific validation of an object about to be stored (`old` on updates; `subresource`
/// tells a status write from a spec write).
pub fn validate(resource: &ResourceInfo, object: &Value, old: Option<&Value>, subresource: Option<&str>) -> Vec<Cause> {
    let errors = match (resource.kind, old, subresource) {
        ("Service", Some(old), Some("status")) => validation::validate_service_status_update(object, old),
        ("Service", Some(old), _) => validation::validate_service_update(object, old),
        ("Service", None, _) => validation::validate_service_create(object),
        (kind @ ("Deployment" | "ReplicaSet" | "StatefulSet"), old, subresource) => {
            workloads::validation::validate(kind, object, old, subresource == Some("status"))
        }
        _ => Vec::new(),
    };
    errors
        .into_iter()
        .map(|e| Cause::new(e.kind.reason(), &e.field, e.body()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcnet_core::resources::by_kind;

    #[test]
    fn spec_writes_keep_status_and_bump_generation() {
        let deploy = by_kind("Deployment").unwrap();
        let old = json!({"metadata": {"generation": 2}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new = json!({"metadata": {}, "spec": {"replicas": 3}, "status": {"replicas": 9}});
        prepare_for_update(deploy, None, &mut new, &old);
        assert_eq!(new["status"]["replicas"], 1);
        assert_eq!(new["metadata"]["generation"], 3);
    }

    #[test]
    fn status_writes_keep_spec() {
        let svc = by_kind("Service").unwrap();
        let old = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"type": "LoadBalancer"}, "status": {}});
        let mut new = json!({"metadata": {}, "spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}});
        prepare_for_update(svc, Some("status"), &mut new, &old);
        assert_eq!(new["spec"]["type"], "LoadBalancer");
        assert_eq!(new["metadata"]["labels"]["a"], "b");
        assert_eq!(new["status"]["loadBalancer"]["ingress"][0]["ip"], "203.0.113.5");
    }

    #[test]
    fn create_resets_status_and_defaults_namespaces() {
        let ns = by_kind("Namespace").unwrap();
        let mut object = json!({"metadata": {"name": "a"}, "status": {"phase": "Terminating"}});
        prepare_for_create(ns, &mut object);
        assert_eq!(object["status"]["phase"], "Active");
        assert_eq!(object["spec"]["finalizers"], json!(["kubernetes"]));
    }
}
