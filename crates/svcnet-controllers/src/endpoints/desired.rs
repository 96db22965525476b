//! The legacy Endpoints object of a Service with a selector, after upstream's
//! pkg/controller/endpoint: one address per selected pod, ready ones in `addresses` and the rest
//! in `notReadyAddresses`, repacked into subsets of addresses sharing the same ports, and cut to
//! 1000 addresses with the over-capacity annotation.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::endpointslice::desired::stamp_trigger_time;
use crate::endpointslice::endpoint::pod_reference;
use crate::endpointslice::util::{self, LABEL_HEADLESS};

/// Most addresses one Endpoints object carries (upstream `maxCapacity`).
pub const MAX_CAPACITY: usize = 1000;
/// Set to `truncated` when addresses were cut to [`MAX_CAPACITY`].
pub const ANNOTATION_OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// Identifies an address across ports: the same IP of another pod is another address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct AddressKey {
    ip: String,
    uid: String,
}

/// A port as the repacking groups it; `None` stands for "no ports" (headless without ports).
type PortKey = Option<(String, i32, String, Option<String>)>;

/// The object to write for `service`, or `None` when `current` already says it all.
pub fn desired(
    service: &Service,
    pods: &[Arc<Pod>],
    current: Option<&Endpoints>,
    trigger_time: Option<Timestamp>,
) -> Option<Endpoints> {
    let mut subsets = subsets(service, pods);
    let truncated = truncate(&mut subsets);
    let service_labels = service.metadata.labels.clone().unwrap_or_default();
    if current.is_some_and(|c| is_current(c, &subsets, &service_labels, truncated)) {
        return None;
    }
    let mut endpoints = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        ..Endpoints::default()
    });
    endpoints.subsets = (!subsets.is_empty()).then_some(subsets);
    let mut labels = service_labels;
    if !util::is_service_ip_set(service) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    endpoints.metadata.labels = Some(labels);
    stamp_trigger_time(&mut endpoints.metadata, trigger_time);
    let annotations = endpoints.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if truncated {
        annotations.insert(ANNOTATION_OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(ANNOTATION_OVER_CAPACITY);
    }
    Some(endpoints)
}

/// Whether the stored object already has these subsets, the Service's labels and the right
/// over-capacity mark. Upstream compares the untruncated subsets and so rewrites an
/// over-capacity object on every sync; comparing what would be written avoids that churn.
fn is_current(
    current: &Endpoints,
    subsets: &[EndpointSubset],
    service_labels: &BTreeMap<String, String>,
    truncated: bool,
) -> bool {
    let mut labels = current.metadata.labels.clone().unwrap_or_default();
    // Set by us, never on the Service, so it does not count as a difference.
    labels.remove(LABEL_HEADLESS);
    let annotated = current
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_OVER_CAPACITY));
    same_subsets(current.subsets.as_deref().unwrap_or_default(), subsets)
        && labels == *service_labels
        && annotated == truncated
}

/// The repacked subsets for `service` over the pods its selector picks.
pub fn subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = service.spec.as_ref();
    let publish = spec.and_then(|s| s.publish_not_ready_addresses) == Some(true);
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let mut addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    let mut by_port: BTreeMap<PortKey, BTreeMap<AddressKey, bool>> = BTreeMap::new();
    for pod in pods {
        // Terminating pods only with publishNotReadyAddresses, unlike slices.
        if !util::should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(address) = pod_address(service, pod) else {
            continue;
        };
        let ready = publish || util::is_pod_ready(pod);
        let key = AddressKey {
            ip: address.ip.clone(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        };
        addresses.entry(key.clone()).or_insert(address);
        let mut add = |port: PortKey| {
            // Not ready wins over ready for the same address and port.
            let readiness = by_port.entry(port).or_default().entry(key.clone()).or_insert(ready);
            *readiness &= ready;
        };
        if ports.is_empty() {
            if util::is_headless(service) {
                add(None);
            }
            continue;
        }
        for port in ports {
            if let Some(number) = util::find_port(pod, port) {
                let protocol = util::protocol(port.protocol.as_deref()).to_string();
                let name = port.name.clone().unwrap_or_default();
                add(Some((name, number, protocol, port.app_protocol.clone())));
            }
        }
    }
    repack(&addresses, by_port)
}

/// Upstream `RepackSubsets`: ports offered by exactly the same addresses share a subset.
fn repack(
    addresses: &BTreeMap<AddressKey, EndpointAddress>,
    by_port: BTreeMap<PortKey, BTreeMap<AddressKey, bool>>,
) -> Vec<EndpointSubset> {
    let mut groups: BTreeMap<Vec<(AddressKey, bool)>, Vec<EndpointPort>> = BTreeMap::new();
    for (port, members) in by_port {
        let ports = groups.entry(members.into_iter().collect()).or_default();
        if let Some((name, port, protocol, app_protocol)) = port {
            ports.push(EndpointPort {
                name: (!name.is_empty()).then_some(name),
                port,
                protocol: Some(protocol),
                app_protocol,
            });
        }
    }
    groups
        .into_iter()
        .map(|(members, ports)| {
            let pick = |ready: bool| -> Option<Vec<EndpointAddress>> {
                let list: Vec<_> = members
                    .iter()
                    .filter(|(_, r)| *r == ready)
                    .map(|(key, _)| addresses[key].clone())
                    .collect();
                (!list.is_empty()).then_some(list)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Upstream `podToEndpointAddressForService`: the pod's address in the Service's primary family.
fn pod_address(service: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = service.spec.as_ref();
    let want_v6 = match spec.and_then(|s| s.ip_families.as_ref()).and_then(|f| f.first()) {
        Some(family) => family == "IPv6",
        None if util::is_service_ip_set(service) => {
            util::is_ipv6(spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or_default())
        }
        None => util::pod_ips(pod).first().is_some_and(|ip| util::is_ipv6(ip)),
    };
    let ip = util::pod_ips(pod).into_iter().find(|ip| util::is_ipv6(ip) == want_v6)?;
    let pod_spec = pod.spec.as_ref();
    Some(EndpointAddress {
        ip: ip.to_string(),
        hostname: util::should_set_hostname(pod, service)
            .then(|| pod_spec.and_then(|s| s.hostname.clone()))
            .flatten(),
        node_name: pod_spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
        target_ref: Some(pod_reference(pod)),
    })
}

/// Subsets equal but for the pods' resourceVersions in targetRefs.
fn same_subsets(stored: &[EndpointSubset], desired: &[EndpointSubset]) -> bool {
    let strip = |subsets: &[EndpointSubset]| -> Vec<EndpointSubset> {
        let mut subsets = subsets.to_vec();
        for subset in &mut subsets {
            let lists = subset.addresses.iter_mut().chain(subset.not_ready_addresses.iter_mut());
            for address in lists.flatten() {
                if let Some(target) = address.target_ref.as_mut() {
                    target.resource_version = None;
                }
            }
        }
        subsets
    };
    strip(stored) == desired
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(ready, not_ready), s| {
        (
            ready + s.addresses.as_ref().map_or(0, Vec::len),
            not_ready + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// Upstream `truncateEndpoints`: cuts to [`MAX_CAPACITY`] addresses, not-ready ones first, each
/// subset keeping its proportional (rounded up) share. Says whether anything was cut.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let (ready, not_ready) = count(subsets);
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let cut_ready = ready > MAX_CAPACITY;
    let (budget, total) = if cut_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut left = budget;
    for subset in subsets.iter_mut() {
        let list = if cut_ready {
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        let len = list.as_ref().map_or(0, Vec::len);
        let share = (len * budget).div_ceil(total).min(left);
        if let Some(kept) = list.as_mut() {
            kept.truncate(share);
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
        left -= len.min(share);
        if cut_ready {
            subset.not_ready_addresses = None;
        }
    }
    true
}

#[cfg(test)]
mod tests;
