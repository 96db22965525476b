//! API discovery: the legacy documents (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`) every kubectl
//! version needs, and aggregated discovery v2 (with its exact content type, without which kubectl
//! ignores the body) that kubectl 1.30+ prefers.

use serde_json::{json, Value};

use svcnet_core::resources::{self, ResourceInfo, GROUPS, RESOURCES};

/// The content type of aggregated discovery v2 responses.
pub const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn api_group_list() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": GROUPS.iter().map(|g| group_entry(g)).collect::<Vec<_>>()})
}

/// `/apis/<group>`, or None for an unknown group.
pub fn api_group(group: &str) -> Option<Value> {
    GROUPS.contains(&group).then(|| {
        let mut entry = group_entry(group);
        entry["kind"] = json!("APIGroup");
        entry["apiVersion"] = json!("v1");
        entry
    })
}

fn legacy_resource(r: &ResourceInfo) -> Value {
    let mut entry = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}

/// `/api/v1` or `/apis/<group>/<version>`, or None when nothing is served there.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in resources::in_group_version(group, version) {
        list.push(legacy_resource(r));
        if r.has_status {
            list.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": STATUS_VERBS}));
        }
        if crate::scale::has_scale(r) {
            list.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": STATUS_VERBS}));
        }
    }
    if list.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}))
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": kind,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    let mut subresources = Vec::new();
    if r.has_status {
        subresources.push(json!({"subresource": "status", "responseKind": kind, "verbs": STATUS_VERBS}));
    }
    if crate::scale::has_scale(r) {
        let scale = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
        subresources.push(json!({"subresource": "scale", "responseKind": scale, "verbs": STATUS_VERBS}));
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

fn aggregated_group(group: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group)
        .map(aggregated_resource)
        .collect();
    let metadata = if group.is_empty() {
        json!({"creationTimestamp": null})
    } else {
        json!({"name": group, "creationTimestamp": null})
    };
    json!({"metadata": metadata, "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
}

/// Aggregated discovery for `/api` (the core group, which has no name) or `/apis`.
pub fn aggregated(legacy_core: bool) -> Value {
    let items: Vec<Value> = if legacy_core {
        vec![aggregated_group("")]
    } else {
        GROUPS.iter().map(|g| aggregated_group(g)).collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_lists_name_every_resource() {
        let core = api_resource_list("", "v1").unwrap();
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for name in [
            "services",
            "services/status",
            "pods",
            "nodes",
            "namespaces",
            "endpoints",
            "events",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert_eq!(api_resource_list("apps", "v1").unwrap()["groupVersion"], "apps/v1");
        assert!(api_resource_list("nope", "v1").is_none());
    }

    #[test]
    fn aggregated_core_group_has_no_name() {
        let core = aggregated(true);
        assert!(core["items"][0]["metadata"].get("name").is_none());
        let svc = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "services")
            .unwrap();
        assert_eq!(svc["shortNames"], json!(["svc"]));
        assert_eq!(svc["subresources"][0]["subresource"], "status");
        assert_eq!(aggregated(false)["items"].as_array().unwrap().len(), GROUPS.len());
    }
}
