//! What an update keeps and what it drops, as upstream's service REST does on every write: values
//! the client omitted but the server allocated are carried over (kubectl apply never sends them),
//! and fields that no longer apply after a type change are dropped unless the client changed them.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::defaults::{
    externally_accessible, needs_cluster_ip, needs_health_check_node_port, needs_node_port, service_type,
};

fn spec<'a>(svc: &'a Value, field: &str) -> Option<&'a Value> {
    svc.get("spec")?.get(field).filter(|v| !v.is_null())
}

fn remove(svc: &mut Value, field: &str) {
    if let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove(field);
    }
}

fn cluster_ip(svc: &Value) -> &str {
    spec(svc, "clusterIP").and_then(Value::as_str).unwrap_or("")
}

fn ports(svc: &Value) -> &[Value] {
    spec(svc, "ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn node_port(port: &Value) -> i64 {
    port.get("nodePort").and_then(Value::as_i64).unwrap_or(0)
}

/// Upstream `normalizeClusterIPs` for creates: a client that sets only the singular field gets the
/// plural one filled in.
pub fn normalize_cluster_ips_on_create(svc: &mut Value) {
    let single = cluster_ip(svc).to_string();
    let plural_empty = spec(svc, "clusterIPs")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if !single.is_empty() && plural_empty {
        svc["spec"]["clusterIPs"] = Value::from(vec![single]);
    }
}

/// The full update preparation: drop type-dependent fields, then carry allocations forward.
pub fn prepare_update(new: &mut Value, old: &Value) {
    drop_type_dependent_fields(new, old);
    patch_allocated_values(new, old);
    normalize_cluster_ips_on_update(new, old);
}

/// Upstream `patchAllocatedValues`.
pub fn patch_allocated_values(new: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        if cluster_ip(new).is_empty() {
            if let Some(ip) = spec(old, "clusterIP").cloned() {
                new["spec"]["clusterIP"] = ip;
            }
        }
        let plural_empty = spec(new, "clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if plural_empty {
            if let Some(ips) = spec(old, "clusterIPs").cloned() {
                new["spec"]["clusterIPs"] = ips;
            }
        }
    }
    if needs_node_port(old) && needs_node_port(new) {
        let used_old: HashSet<i64> = ports(old).iter().map(node_port).filter(|p| *p != 0).collect();
        let used_new: HashSet<i64> = ports(new).iter().map(node_port).filter(|p| *p != 0).collect();
        let used: HashSet<i64> = used_old.intersection(&used_new).copied().collect();
        // Node ports are matched by port name: the client may have changed anything else.
        let by_name: HashMap<String, i64> = ports(old)
            .iter()
            .map(|p| {
                (
                    p.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                    node_port(p),
                )
            })
            .collect();
        if let Some(list) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for port in list.iter_mut().filter(|p| node_port(p) == 0) {
                let name = port.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some(&previous) = by_name.get(name) {
                    if previous != 0 && !used.contains(&previous) {
                        port["nodePort"] = Value::from(previous);
                    }
                }
            }
        }
    }
    if needs_health_check_node_port(old) && needs_health_check_node_port(new) {
        let missing = spec(new, "healthCheckNodePort").and_then(Value::as_i64).unwrap_or(0) == 0;
        if missing {
            if let Some(port) = spec(old, "healthCheckNodePort").cloned() {
                new["spec"]["healthCheckNodePort"] = port;
            }
        }
    }
}

/// Upstream `dropTypeDependentFields`: wipe what no longer applies, unless the client changed it
/// too (then validation speaks).
pub fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let same = |field: &str, new: &Value| spec(old, field) == spec(new, field);
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if same("clusterIP", new) && same("clusterIPs", new) {
            remove(new, "clusterIP");
            remove(new, "clusterIPs");
        }
        if same("ipFamilies", new) {
            remove(new, "ipFamilies");
        }
        if same("ipFamilyPolicy", new) {
            remove(new, "ipFamilyPolicy");
        }
    }
    if needs_node_port(old) && !needs_node_port(new) {
        let old_ports: Vec<i64> = ports(old).iter().map(node_port).collect();
        let new_ports: Vec<i64> = ports(new).iter().map(node_port).collect();
        if old_ports == new_ports {
            if let Some(list) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for port in list.iter_mut().filter_map(Value::as_object_mut) {
                    port.remove("nodePort");
                }
            }
        }
    }
    if needs_health_check_node_port(old) && !needs_health_check_node_port(new) && same("healthCheckNodePort", new) {
        remove(new, "healthCheckNodePort");
    }
    if service_type(old) == "LoadBalancer" && service_type(new) != "LoadBalancer" {
        if spec(new, "allocateLoadBalancerNodePorts").is_some() && same("allocateLoadBalancerNodePorts", new) {
            remove(new, "allocateLoadBalancerNodePorts");
        }
        if same("loadBalancerClass", new) {
            remove(new, "loadBalancerClass");
        }
    }
    if externally_accessible(old) && !externally_accessible(new) && same("externalTrafficPolicy", new) {
        remove(new, "externalTrafficPolicy");
    }
    if service_type(new) != "LoadBalancer" {
        if let Some(status) = new.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("loadBalancer".into(), serde_json::json!({}));
        }
    }
}

/// Upstream `normalizeClusterIPs` for updates: an old client that changes only the singular field
/// gets the plural one kept in step.
fn normalize_cluster_ips_on_update(new: &mut Value, old: &Value) {
    let single = cluster_ip(new).to_string();
    let plural: Vec<String> = spec(new, "clusterIPs")
        .and_then(Value::as_array)
        .map(|ips| ips.iter().filter_map(|ip| ip.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if single.is_empty() {
        return;
    }
    if plural.is_empty() {
        new["spec"]["clusterIPs"] = Value::from(vec![single]);
        return;
    }
    let old_plural = spec(old, "clusterIPs");
    if single != cluster_ip(old) && spec(new, "clusterIPs") == old_plural {
        new["spec"]["clusterIPs"][0] = Value::from(single);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nodeport() -> Value {
        json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "externalTrafficPolicy": "Cluster",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "metrics", "port": 9090, "nodePort": 30090}]},
            "status": {"loadBalancer": {}}})
    }

    #[test]
    fn apply_without_allocations_keeps_them() {
        let old = nodeport();
        let mut new = json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster", "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}]}});
        prepare_update(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.5");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.5"]));
        assert_eq!(
            new["spec"]["ports"][0]["nodePort"], 30080,
            "matched by name although the port changed"
        );
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30090);
    }

    #[test]
    fn switching_to_cluster_ip_drops_node_ports_and_policy() {
        let old = nodeport();
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        prepare_update(&mut new, &old);
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert!(new["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.5");
    }

    #[test]
    fn switching_to_external_name_drops_cluster_ips() {
        let mut old = nodeport();
        old["spec"]["ipFamilies"] = json!(["IPv4"]);
        old["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        let mut new = old.clone();
        new["spec"]["type"] = json!("ExternalName");
        new["spec"]["externalName"] = json!("example.com");
        prepare_update(&mut new, &old);
        for field in [
            "clusterIP",
            "clusterIPs",
            "ipFamilies",
            "ipFamilyPolicy",
            "externalTrafficPolicy",
        ] {
            assert!(new["spec"].get(field).is_none(), "{field}");
        }
    }

    #[test]
    fn user_changes_are_not_wiped() {
        let old = nodeport();
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        new["spec"]["externalTrafficPolicy"] = json!("Local");
        prepare_update(&mut new, &old);
        assert_eq!(
            new["spec"]["externalTrafficPolicy"], "Local",
            "left for validation to refuse"
        );
    }

    #[test]
    fn create_fills_the_plural_field() {
        let mut svc = json!({"spec": {"clusterIP": "10.96.0.9"}});
        normalize_cluster_ips_on_create(&mut svc);
        assert_eq!(svc["spec"]["clusterIPs"], json!(["10.96.0.9"]));
    }
}
