//! Pod and Service rules shared by the EndpointSlice and Endpoints controllers, after upstream's
//! k8s.io/endpointslice/util (which the Endpoints controller imports as well).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Names the Service an EndpointSlice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Names the controller that manages an EndpointSlice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The `managed-by` value of slices this controller owns.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Set (empty) on slices and Endpoints of Services without a cluster IP.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Time of the change that caused the write: where network-programming latency starts.
pub const ANNOTATION_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Zone of a node, copied onto endpoints of pods running there.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

/// `namespace/name` of a Service: the unit of work of both controllers.
pub use crate::runtime::ObjectKey;

/// The selector both controllers act on. Services without one (or with an empty one, which a
/// stored object cannot tell from none) and ExternalName Services get no endpoints from us.
pub fn endpoint_selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether a Service's selector picks a pod with these labels.
pub fn selects(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Succeeded and Failed pods never come back, so they never get an endpoint.
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The pod's Ready condition is True (upstream `IsPodReady`).
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The pod's addresses: `status.podIPs`, or `status.podIP` alone when a writer set only that.
pub fn pod_ips(pod: &Pod) -> Vec<&str> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .filter(|ip| !ip.is_empty())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    status
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .into_iter()
        .collect()
}

/// Upstream `ShouldPodBeInEndpoints`: not terminal, has an address, and (unless terminating
/// pods are wanted) not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_pod_terminal(pod) || pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || !is_terminating(pod)
}

/// A pod is published under its hostname only inside the Service named by its subdomain.
pub fn should_set_hostname(pod: &Pod, service: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let hostname = spec.hostname.as_deref().unwrap_or_default();
    !hostname.is_empty()
        && spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace
}

/// A cluster IP is allocated (not headless, not ExternalName).
pub fn is_service_ip_set(service: &Service) -> bool {
    let ip = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or_default();
    !ip.is_empty() && ip != "None"
}

pub fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn is_ipv6(ip: &str) -> bool {
    matches!(ip.parse::<IpAddr>(), Ok(IpAddr::V6(_)))
}

/// The protocol of a port, defaulted to TCP as the API server does.
pub fn protocol(protocol: Option<&str>) -> &str {
    protocol.unwrap_or("TCP")
}

/// Upstream `FindPort`: a numeric targetPort as is; a named one through the pod's container
/// ports (then restartable init containers) with the same name and protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        Some(IntOrString::Int(n)) => Some(*n),
        None => Some(port.port),
        Some(IntOrString::String(name)) => find_named_port(pod, name, protocol(port.protocol.as_deref())),
    }
}

fn find_named_port(pod: &Pod, name: &str, wanted: &str) -> Option<i32> {
    let spec = pod.spec.as_ref()?;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name) && protocol(p.protocol.as_deref()) == wanted)
        .map(|p| p.container_port)
}

/// What of a pod can change its endpoints, their trigger time or its Service membership; other
/// writes (annotations, container statuses) cause no sync.
#[derive(PartialEq)]
struct EndpointView<'a> {
    labels: Option<&'a BTreeMap<String, String>>,
    hostname: Option<&'a str>,
    subdomain: Option<&'a str>,
    node_name: Option<&'a str>,
    terminating: bool,
    terminal: bool,
    ready: bool,
    ready_since: Option<&'a Time>,
    ips: Vec<&'a str>,
}

fn endpoint_view(pod: &Pod) -> EndpointView<'_> {
    let spec = pod.spec.as_ref();
    let ready_condition = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    EndpointView {
        labels: pod.metadata.labels.as_ref(),
        hostname: spec.and_then(|s| s.hostname.as_deref()),
        subdomain: spec.and_then(|s| s.subdomain.as_deref()),
        node_name: spec.and_then(|s| s.node_name.as_deref()),
        terminating: is_terminating(pod),
        terminal: is_pod_terminal(pod),
        ready: is_pod_ready(pod),
        ready_since: ready_condition.and_then(|c| c.last_transition_time.as_ref()),
        ips: pod_ips(pod),
    }
}

/// Whether a pod update can change endpoints (or their trigger time) or Service membership.
pub fn endpoints_changed(old: &Pod, new: &Pod) -> bool {
    endpoint_view(old) != endpoint_view(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn named_ports_match_name_and_protocol() {
        let p = pod(json!({"spec": {"containers": [{"name": "c", "ports": [
            {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
            {"name": "dns", "containerPort": 5354},
        ]}]}}));
        let udp: ServicePort =
            serde_json::from_value(json!({"port": 53, "protocol": "UDP", "targetPort": "dns"})).unwrap();
        let tcp: ServicePort = serde_json::from_value(json!({"port": 53, "targetPort": "dns"})).unwrap();
        let sctp: ServicePort =
            serde_json::from_value(json!({"port": 53, "protocol": "SCTP", "targetPort": "dns"})).unwrap();
        assert_eq!(find_port(&p, &udp), Some(5353));
        assert_eq!(find_port(&p, &tcp), Some(5354));
        assert_eq!(find_port(&p, &sctp), None);
    }

    #[test]
    fn sidecar_ports_count_but_plain_init_containers_do_not() {
        let p = pod(json!({"spec": {"containers": [{"name": "c"}], "initContainers": [
            {"name": "init", "ports": [{"name": "a", "containerPort": 1}]},
            {"name": "side", "restartPolicy": "Always", "ports": [{"name": "b", "containerPort": 2}]},
        ]}}));
        let a: ServicePort = serde_json::from_value(json!({"port": 80, "targetPort": "a"})).unwrap();
        let b: ServicePort = serde_json::from_value(json!({"port": 80, "targetPort": "b"})).unwrap();
        assert_eq!(find_port(&p, &a), None);
        assert_eq!(find_port(&p, &b), Some(2));
    }

    #[test]
    fn terminal_and_addressless_pods_are_out() {
        let running = pod(json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": "Running", "podIP": "10.244.0.5"}}));
        assert!(should_pod_be_in_endpoints(&running, true));
        assert!(!should_pod_be_in_endpoints(&running, false));
        let done = pod(json!({"status": {"phase": "Succeeded", "podIP": "10.244.0.5"}}));
        assert!(!should_pod_be_in_endpoints(&done, true));
        let pending = pod(json!({"status": {"phase": "Pending"}}));
        assert!(!should_pod_be_in_endpoints(&pending, true));
    }

    #[test]
    fn empty_selectors_and_external_names_select_nothing() {
        let svc = |spec: serde_json::Value| -> Service { serde_json::from_value(json!({"spec": spec})).unwrap() };
        assert!(endpoint_selector(&svc(json!({"selector": {}}))).is_none());
        assert!(endpoint_selector(&svc(json!({"type": "ExternalName", "selector": {"a": "b"}}))).is_none());
        let selector = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert!(selects(
            &selector,
            Some(&BTreeMap::from([("a".into(), "b".into()), ("c".into(), "d".into())]))
        ));
        assert!(!selects(&selector, None));
    }
}
