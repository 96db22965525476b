//! The slice writes that bring one Service's EndpointSlices to its pods, after upstream's
//! reconciler (k8s.io/endpointslice reconciler.go). Churn is kept low the same way: existing
//! slices keep the endpoints they hold and are updated in place, new endpoints first fill slices
//! that are being written anyway, then the unchanged slice closest to full, and only then a new
//! slice; a create that meets a delete becomes an update of the deleted slice.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::endpoint::{self, EndpointKey, EndpointSet, PortKey};
use super::trigger;
use super::util::{
    self, ANNOTATION_TRIGGER_TIME, CONTROLLER_NAME, LABEL_HEADLESS, LABEL_MANAGED_BY, LABEL_SERVICE_NAME,
};

/// Everything one reconcile of a Service with a selector looks at.
pub struct Inputs<'a> {
    pub service: &'a Service,
    /// The pods the Service's selector picks (in its namespace).
    pub pods: &'a [Arc<Pod>],
    /// Node lookup by name, for zones and for pods whose node is unknown.
    pub node: &'a dyn Fn(&str) -> Option<Arc<Node>>,
    /// The slices in the Service's namespace labelled with its name and managed by us.
    pub existing: &'a [Arc<EndpointSlice>],
    pub max_endpoints_per_slice: usize,
    /// Written as `endpoints.kubernetes.io/last-change-trigger-time`; none clears it.
    pub trigger_time: Option<Timestamp>,
}

/// The writes that reconcile one Service.
#[derive(Debug, Default)]
pub struct SliceChanges {
    /// New slices (metadata.generateName set, no name).
    pub create: Vec<EndpointSlice>,
    /// Whole slices to replace, carrying the resourceVersion they were computed from.
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<Arc<EndpointSlice>>,
    /// Pods left out because their node is not known (yet): the sync is retried later.
    pub pods_without_node: Vec<String>,
}

impl SliceChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    /// Every managed slice goes: the Service is gone or no longer selects pods.
    pub fn delete_all(existing: &[Arc<EndpointSlice>]) -> Self {
        SliceChanges {
            delete: existing.to_vec(),
            ..SliceChanges::default()
        }
    }
}

/// The slice writes for a Service with a selector.
pub fn desired(inputs: &Inputs) -> SliceChanges {
    let types = endpoint::address_types(inputs.service);
    let mut changes = SliceChanges::default();
    let mut by_type: BTreeMap<&str, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in inputs.existing {
        match types.iter().find(|t| **t == slice.address_type) {
            Some(t) => by_type.entry(t).or_default().push(slice.clone()),
            // The Service no longer has this family.
            None => changes.delete.push(slice.clone()),
        }
    }
    for address_type in types {
        let existing = by_type.remove(address_type).unwrap_or_default();
        let part = reconcile_address_type(inputs, address_type, existing);
        changes.create.extend(part.create);
        changes.update.extend(part.update);
        changes.delete.extend(part.delete);
        changes.pods_without_node.extend(part.pods_without_node);
    }
    changes
}

/// The desired endpoints of one address type, grouped by the ports their pods resolve.
struct Desired {
    by_ports: BTreeMap<PortKey, (Vec<EndpointPort>, EndpointSet)>,
    pods_without_node: Vec<String>,
}

fn desired_endpoints(inputs: &Inputs, address_type: &str) -> Desired {
    let service = inputs.service;
    let publish = service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses) == Some(true);
    let mut desired = Desired {
        by_ports: BTreeMap::new(),
        pods_without_node: Vec::new(),
    };
    for pod in inputs.pods {
        // Terminating pods stay, marked terminating, so proxies can drain to them.
        if !util::should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint::endpoint_ports(service, pod);
        let key = PortKey::of(Some(&ports));
        let (_, set) = desired
            .by_ports
            .entry(key)
            .or_insert_with(|| (ports, EndpointSet::new()));
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        let node = (inputs.node)(node_name);
        // An unknown node would otherwise pin a stale endpoint; leave the pod out and retry,
        // unless the Service asks for every address regardless.
        if node.is_none() && !publish {
            desired
                .pods_without_node
                .push(pod.metadata.name.clone().unwrap_or_default());
            continue;
        }
        let endpoint = endpoint::pod_to_endpoint(pod, node.as_deref(), service, address_type);
        if !endpoint.addresses.is_empty() {
            set.insert(EndpointKey::of(&endpoint), endpoint);
        }
    }
    desired
}

fn reconcile_address_type(inputs: &Inputs, address_type: &str, existing: Vec<Arc<EndpointSlice>>) -> SliceChanges {
    let service = inputs.service;
    let existing_count = existing.len();
    let mut changes = SliceChanges::default();
    let mut existing_by_ports: BTreeMap<PortKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in existing {
        if owned_by(&slice, service) {
            existing_by_ports
                .entry(PortKey::of(slice.ports.as_deref()))
                .or_default()
                .push(slice);
        } else {
            // Left by an earlier Service of the same name.
            changes.delete.push(slice);
        }
    }

    let desired = desired_endpoints(inputs, address_type);
    changes.pods_without_node = desired.pods_without_node;
    for (key, (ports, set)) in desired.by_ports {
        let slices = existing_by_ports.remove(&key).unwrap_or_default();
        let part = reconcile_ports(inputs, address_type, &ports, slices, set);
        changes.create.extend(part.create);
        changes.update.extend(part.update);
        changes.delete.extend(part.delete);
    }
    // Port sets no pod resolves to any more.
    changes.delete.extend(existing_by_ports.into_values().flatten());

    ensure_placeholder(inputs, address_type, existing_count, &mut changes);
    finalize(inputs, &mut changes);
    changes
}

/// Upstream reconcileByPortMapping: the writes for the slices of one port set.
fn reconcile_ports(
    inputs: &Inputs,
    address_type: &str,
    ports: &[EndpointPort],
    existing: Vec<Arc<EndpointSlice>>,
    mut wanted: EndpointSet,
) -> SliceChanges {
    let max = inputs.max_endpoints_per_slice.max(1);
    let labels = slice_labels(inputs.service);
    let mut changes = SliceChanges::default();
    let mut unchanged: Vec<Arc<EndpointSlice>> = Vec::new();

    // 1. Keep, refresh or drop the endpoints each existing slice holds.
    for slice in existing {
        let mut kept = Vec::new();
        let mut refreshed = false;
        for stored in &slice.endpoints {
            if let Some(endpoint) = wanted.remove(&EndpointKey::of(stored)) {
                refreshed |= !endpoint::same_endpoint(&endpoint, stored);
                kept.push(endpoint);
            }
        }
        let labels_changed = slice.metadata.labels.as_ref() != Some(&labels);
        if refreshed || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                changes.delete.push(slice);
            } else {
                let mut updated = (*slice).clone();
                updated.endpoints = kept;
                updated.metadata.labels = Some(labels.clone());
                changes.update.push(updated);
            }
        } else if labels_changed {
            let mut updated = (*slice).clone();
            updated.metadata.labels = Some(labels.clone());
            changes.update.push(updated);
        } else {
            unchanged.push(slice);
        }
    }

    // 2. Fill the slices being written anyway, fullest first.
    changes.update.sort_by(|a, b| {
        b.endpoints
            .len()
            .cmp(&a.endpoints.len())
            .then_with(|| name(a).cmp(name(b)))
    });
    for slice in &mut changes.update {
        fill(slice, &mut wanted, max);
    }

    // 3. Put what is left into the unchanged slice it fits best, else into new slices.
    while !wanted.is_empty() {
        let target = if wanted.len() < max {
            slice_to_fill(&unchanged, wanted.len(), max)
        } else {
            None
        };
        match target {
            Some(index) => {
                let mut slice = (*unchanged.swap_remove(index)).clone();
                fill(&mut slice, &mut wanted, max);
                changes.update.push(slice);
            }
            None => {
                let mut slice = new_slice(inputs.service, address_type, ports);
                fill(&mut slice, &mut wanted, max);
                changes.create.push(slice);
            }
        }
    }
    changes
}

/// Moves desired endpoints into `slice` until it is full.
fn fill(slice: &mut EndpointSlice, wanted: &mut EndpointSet, max: usize) {
    while slice.endpoints.len() < max {
        let Some((_, endpoint)) = wanted.pop_first() else { break };
        slice.endpoints.push(endpoint);
    }
}

/// The unchanged slice that comes closest to full when `count` endpoints are added.
fn slice_to_fill(slices: &[Arc<EndpointSlice>], count: usize, max: usize) -> Option<usize> {
    slices
        .iter()
        .enumerate()
        .filter(|(_, s)| s.endpoints.len() + count <= max)
        .min_by_key(|(_, s)| (max - s.endpoints.len() - count, name(s).to_string()))
        .map(|(i, _)| i)
}

/// A Service with no endpoints of a type keeps one empty slice, so that watchers can tell
/// "no endpoints" from "not reconciled yet".
fn ensure_placeholder(inputs: &Inputs, address_type: &str, existing_count: usize, changes: &mut SliceChanges) {
    if existing_count != changes.delete.len() || !changes.create.is_empty() {
        return;
    }
    let placeholder = new_slice(inputs.service, address_type, &[]);
    if let [only] = changes.delete.as_slice() {
        if is_placeholder(only, &placeholder) && owned_by(only, inputs.service) {
            // Already there: deleting and recreating it would be pure churn.
            changes.delete.clear();
            return;
        }
    }
    changes.create.push(placeholder);
}

fn is_placeholder(slice: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    slice.metadata.namespace == placeholder.metadata.namespace
        && slice.metadata.labels.clone().unwrap_or_default() == placeholder.metadata.labels.clone().unwrap_or_default()
        && slice.address_type == placeholder.address_type
        && slice.endpoints.is_empty()
        && slice.ports.as_deref().unwrap_or_default().is_empty()
}

/// Turns creates into updates of slices about to be deleted, stamps the trigger time, and drops
/// creates for a Service being deleted.
fn finalize(inputs: &Inputs, changes: &mut SliceChanges) {
    let mut i = 0;
    while i < changes.delete.len() && !changes.create.is_empty() {
        let doomed = &changes.delete[i];
        let last = changes.create.last().expect("checked non-empty");
        // Only our own slices of the same (immutable) address type can be reused.
        if doomed.address_type == last.address_type && owned_by(doomed, inputs.service) {
            let mut slice = changes.create.pop().expect("checked non-empty");
            slice.metadata.name = doomed.metadata.name.clone();
            slice.metadata.resource_version = doomed.metadata.resource_version.clone();
            changes.update.push(slice);
            changes.delete.remove(i);
        } else {
            i += 1;
        }
    }
    if inputs.service.metadata.deletion_timestamp.is_some() {
        changes.create.clear();
    }
    for slice in changes.create.iter_mut().chain(changes.update.iter_mut()) {
        stamp_trigger_time(&mut slice.metadata, inputs.trigger_time);
    }
}

/// Sets `endpoints.kubernetes.io/last-change-trigger-time`, or removes it when there is none.
pub fn stamp_trigger_time(metadata: &mut ObjectMeta, time: Option<Timestamp>) {
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    match time {
        Some(time) => {
            annotations.insert(ANNOTATION_TRIGGER_TIME.into(), trigger::format(time));
        }
        None => {
            annotations.remove(ANNOTATION_TRIGGER_TIME);
        }
    }
}

fn new_slice(service: &Service, address_type: &str, ports: &[EndpointPort]) -> EndpointSlice {
    let name = service.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: service.metadata.namespace.clone(),
            labels: Some(slice_labels(service)),
            owner_references: Some(vec![controller_reference(service)]),
            ..ObjectMeta::default()
        },
        address_type: address_type.to_string(),
        endpoints: Vec::new(),
        ports: (!ports.is_empty()).then(|| ports.to_vec()),
    }
}

/// The Service's own labels plus the reserved ones, which the Service cannot override.
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let reserved = [LABEL_SERVICE_NAME, LABEL_MANAGED_BY, LABEL_HEADLESS];
    let mut labels: BTreeMap<String, String> = service
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !reserved.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !util::is_service_ip_set(service) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

fn controller_reference(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: service.metadata.name.clone().unwrap_or_default(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The slice names this Service (by uid) as an owner.
pub fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref().unwrap_or_default();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

fn name(slice: &EndpointSlice) -> &str {
    slice.metadata.name.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests;
