//! One pod as a slice endpoint, and the keys that group endpoints (by ports) and identify them
//! (by address and pod), after upstream's utils.go and util/endpointset.go.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};

use super::util::{self, LABEL_ZONE};

/// Address types a Service's slices carry, IPv4 first. Services that predate ipFamilies are
/// judged by their cluster IP; headless ones without families get both, as upstream does, so
/// that no traffic is cut while an old API server is upgraded.
pub fn address_types(service: &Service) -> Vec<&'static str> {
    let spec = service.spec.as_ref();
    let families: Vec<&str> = spec
        .and_then(|s| s.ip_families.as_ref())
        .map(|f| f.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut types = Vec::new();
    if families.contains(&"IPv4") {
        types.push("IPv4");
    }
    if families.contains(&"IPv6") {
        types.push("IPv6");
    }
    if !types.is_empty() {
        return types;
    }
    if util::is_service_ip_set(service) {
        let ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or_default();
        return vec![if util::is_ipv6(ip) { "IPv6" } else { "IPv4" }];
    }
    vec!["IPv4", "IPv6"]
}

/// The slice ports of `pod` for `service`: every Service port whose target the pod resolves.
/// Pods resolving named ports to different numbers therefore land in different slices.
pub fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    ports
        .iter()
        .filter_map(|port| {
            let number = util::find_port(pod, port)?;
            Some(EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                protocol: Some(util::protocol(port.protocol.as_deref()).to_string()),
                port: Some(number),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect()
}

/// Identifies a set of slice ports regardless of order (upstream `PortMapKey`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortKey(Vec<(String, String, i32, Option<String>)>);

impl PortKey {
    pub fn of(ports: Option<&[EndpointPort]>) -> Self {
        let mut key: Vec<_> = ports
            .unwrap_or_default()
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    util::protocol(p.protocol.as_deref()).to_string(),
                    p.port.unwrap_or_default(),
                    p.app_protocol.clone(),
                )
            })
            .collect();
        key.sort();
        PortKey(key)
    }
}

/// Identifies an endpoint by what cannot change in place: addresses, hostname and pod. Other
/// attributes (conditions, node, zone) are updated inside the slice that holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointKey {
    addresses: Vec<String>,
    hostname: String,
    namespace: String,
    name: String,
}

impl EndpointKey {
    pub fn of(endpoint: &Endpoint) -> Self {
        let mut addresses = endpoint.addresses.clone();
        addresses.sort();
        let target = endpoint.target_ref.as_ref();
        EndpointKey {
            addresses,
            hostname: endpoint.hostname.clone().unwrap_or_default(),
            namespace: target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
            name: target.and_then(|t| t.name.clone()).unwrap_or_default(),
        }
    }
}

/// Desired endpoints of one port set, in key order so results are reproducible.
pub type EndpointSet = BTreeMap<EndpointKey, Endpoint>;

/// Whether a stored endpoint already says what the desired one says (the pod's resourceVersion
/// in targetRef does not count, so pod writes that change nothing here cause no slice write).
pub fn same_endpoint(desired: &Endpoint, stored: &Endpoint) -> bool {
    let version = |e: &Endpoint| e.target_ref.as_ref().and_then(|t| t.resource_version.clone());
    if version(stored).is_none() {
        return desired == stored;
    }
    let mut stored = stored.clone();
    if let Some(target) = stored.target_ref.as_mut() {
        target.resource_version = None;
    }
    *desired == stored
}

/// Upstream `podToEndpoint`: serving is the pod's readiness, terminating its deletion, and ready
/// is serving and not terminating unless the Service publishes not-ready addresses.
pub fn pod_to_endpoint(pod: &Pod, node: Option<&Node>, service: &Service, address_type: &str) -> Endpoint {
    let serving = util::is_pod_ready(pod);
    let terminating = util::is_terminating(pod);
    let publish = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let want_v6 = address_type == "IPv6";
    let addresses = util::pod_ips(pod)
        .into_iter()
        .filter(|ip| util::is_ipv6(ip) == want_v6)
        .map(str::to_string)
        .collect();
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let zone = node
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(LABEL_ZONE))
        .filter(|z| !z.is_empty())
        .cloned();
    let hostname = util::should_set_hostname(pod, service)
        .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
        .flatten();
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname,
        node_name,
        zone,
        target_ref: Some(pod_reference(pod)),
        ..Endpoint::default()
    }
}

/// `{kind: Pod, namespace, name, uid}`, as both controllers write it.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}
