//! Service defaulting, as upstream's SetDefaults_Service and the service REST strategy apply it
//! before validation. Fields that depend on allocation (clusterIPs, ipFamilies, ipFamilyPolicy,
//! node ports) are filled in by the allocator.

use serde_json::{json, Value};

/// Default session-affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: i64 = 10_800;

pub fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or("ClusterIP")
}

/// Whether the type needs a cluster IP (upstream `needsClusterIP`).
pub fn needs_cluster_ip(svc: &Value) -> bool {
    matches!(service_type(svc), "ClusterIP" | "NodePort" | "LoadBalancer")
}

/// Whether the Service needs node ports (upstream `needsNodePort`).
pub fn needs_node_port(svc: &Value) -> bool {
    match service_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc
            .pointer("/spec/allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        _ => false,
    }
}

/// Whether the Service needs a health-check node port (LoadBalancer + Local).
pub fn needs_health_check_node_port(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer"
        && svc.pointer("/spec/externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
}

/// Reachable from outside the cluster (upstream `ExternallyAccessible`).
pub fn externally_accessible(svc: &Value) -> bool {
    match service_type(svc) {
        "NodePort" | "LoadBalancer" => true,
        "ClusterIP" => svc
            .pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|ips| !ips.is_empty()),
        _ => false,
    }
}

pub fn is_headless(svc: &Value) -> bool {
    svc.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None")
        || svc.pointer("/spec/clusterIPs/0").and_then(Value::as_str) == Some("None")
}

/// Applies upstream's defaults in place.
pub fn apply_defaults(svc: &mut Value) {
    let Some(spec) = svc
        .as_object_mut()
        .map(|m| m.entry("spec").or_insert_with(|| json!({})))
    else {
        return;
    };
    if !spec.is_object() {
        *spec = json!({});
    }
    if spec.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        spec["type"] = json!("ClusterIP");
    }
    let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    default_affinity(spec);
    default_ports(spec);
    // A pointer upstream: an empty string is kept (and refused by validation).
    if kind != "ExternalName" && spec.get("internalTrafficPolicy").is_none_or(Value::is_null) {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.is_empty());
    let external = matches!(kind.as_str(), "NodePort" | "LoadBalancer") || (kind == "ClusterIP" && has_external_ips);
    if external
        && spec
            .get("externalTrafficPolicy")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if kind == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").is_none_or(Value::is_null) {
        spec["allocateLoadBalancerNodePorts"] = json!(true);
    }
    default_ingress_ip_mode(svc);
}

/// Load-balancer ingress entries with an IP default to `ipMode: VIP`.
pub fn default_ingress_ip_mode(svc: &mut Value) {
    if let Some(ingress) = svc
        .pointer_mut("/status/loadBalancer/ingress")
        .and_then(Value::as_array_mut)
    {
        for entry in ingress
            .iter_mut()
            .filter(|e| e.get("ip").is_some_and(|ip| !ip.is_null()))
        {
            if entry.get("ipMode").is_none_or(Value::is_null) {
                entry["ipMode"] = json!("VIP");
            }
        }
    }
}

fn default_affinity(spec: &mut Value) {
    if spec
        .get("sessionAffinity")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        spec["sessionAffinity"] = json!("None");
    }
    if spec["sessionAffinity"] == "ClientIP" {
        // An incomplete config is replaced as a whole, as upstream does.
        if spec
            .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
            .is_none_or(Value::is_null)
        {
            spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": DEFAULT_AFFINITY_TIMEOUT_SECONDS}});
        }
    } else if spec["sessionAffinity"] == "None" {
        if let Some(spec) = spec.as_object_mut() {
            spec.remove("sessionAffinityConfig");
        }
    }
}

fn default_ports(spec: &mut Value) {
    let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return;
    };
    for port in ports.iter_mut().filter(|p| p.is_object()) {
        if port.get("protocol").and_then(Value::as_str).is_none_or(str::is_empty) {
            port["protocol"] = json!("TCP");
        }
        let unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            port["targetPort"] = port.get("port").cloned().unwrap_or(Value::Null);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ip_defaults() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
        apply_defaults(&mut svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["sessionAffinity"], "None");
        assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
        assert!(svc["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(svc["spec"]["ports"][1]["targetPort"], "dns");
        assert!(svc["spec"].get("sessionAffinityConfig").is_none());
        // A pointer upstream: an empty internalTrafficPolicy is a value, left for validation.
        let mut empty = json!({"spec": {"internalTrafficPolicy": "", "ports": [{"port": 80}]}});
        apply_defaults(&mut empty);
        assert_eq!(empty["spec"]["internalTrafficPolicy"], "");
    }

    #[test]
    fn external_type_defaults() {
        let mut svc =
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 443}]}});
        apply_defaults(&mut svc);
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(svc["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10_800
        );
        assert!(needs_node_port(&svc));
        let mut external = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
        apply_defaults(&mut external);
        assert!(external["spec"].get("internalTrafficPolicy").is_none());
        assert!(!needs_cluster_ip(&external));
    }
}
