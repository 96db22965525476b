//! What one StatefulSet needs, as a pure function of the set and the pods of its namespace:
//! upstream's `updateStatefulSet` (pkg/controller/statefulset/stateful_set_control.go).
//!
//! Pods are `<set>-<ordinal>` with a stable identity (hostname = pod name, subdomain =
//! serviceName, the pod-name and pod-index labels). With OrderedReady management each ordinal
//! waits for its predecessors to be Running and Ready (available, with minReadySeconds), and
//! scale-down removes the highest ordinal first, one at a time; Parallel does both at once.
//! A template change rolls pods from the highest ordinal down to the partition, one at a time.
//!
//! Revisions are named as upstream names ControllerRevisions (`<set>-<hash of the template>`)
//! and stamped on pods as `controller-revision-hash`, but no ControllerRevision objects are
//! kept, so a pod recreated below the partition gets the current template, not the old one.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;

use crate::deployment::util::compute_hash;
use crate::replicaset::pods::{
    controller_ref, is_pod_available, is_running_and_ready, is_terminating, new_controller_ref, nonzero, phase,
    pod_from_template, selector_matches,
};

/// The label naming a pod of a StatefulSet.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with the pod's ordinal (PodIndexLabel, on by default since v1.28).
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label with the revision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreatePod(Box<Pod>),
    DeletePod {
        name: String,
        uid: String,
    },
    /// Labels to merge into an existing pod (identity repairs, adoption's owner references).
    PatchPod {
        name: String,
        patch: serde_json::Value,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: StatefulSetStatus,
    pub requeue_after: Option<Duration>,
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or("")
}

fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

fn parallel(set: &StatefulSet) -> bool {
    set.spec.as_ref().and_then(|s| s.pod_management_policy.as_deref()) == Some("Parallel")
}

fn update_strategy(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn partition(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
}

/// The name of the set's current template revision: `<set>-<hash>`.
pub fn update_revision(set: &StatefulSet) -> String {
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    // Upstream hashes the collision count even when it is zero (unlike Deployments).
    let collisions = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    format!("{}-{}", set_name(set), compute_hash(&template, Some(collisions)))
}

/// The ordinal of a pod of `set`, if the pod's name is `<set>-<ordinal>`.
pub fn ordinal(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    let suffix = name.strip_prefix(set_name(set))?.strip_prefix('-')?;
    let ordinal: i32 = suffix.parse().ok()?;
    (ordinal >= 0 && ordinal.to_string() == suffix).then_some(ordinal)
}

fn revision_of(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map_or("", String::as_str)
}

/// `isCreated`: the pod has a phase (the API server gave it one).
fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

fn is_running_and_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    phase(pod) == "Running" && is_pod_available(pod, min_ready, now)
}

fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

/// The labels the pod's identity needs.
fn identity_labels(set: &StatefulSet, ordinal: i32) -> BTreeMap<String, String> {
    let name = format!("{}-{ordinal}", set_name(set));
    [
        (POD_NAME_LABEL.to_string(), name),
        (POD_INDEX_LABEL.to_string(), ordinal.to_string()),
    ]
    .into()
}

/// Upstream `newVersionedStatefulSetPod`: the template, the stable name, hostname and
/// subdomain, the identity labels and the revision label.
pub fn new_pod(set: &StatefulSet, ordinal: i32, revision: &str) -> Pod {
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let name = format!("{}-{ordinal}", set_name(set));
    let mut pod = pod_from_template(
        &template,
        new_controller_ref("StatefulSet", &set.metadata),
        Some(format!("{}-", set_name(set))),
    );
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = set.metadata.namespace.clone();
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.extend(identity_labels(set, ordinal));
    labels.insert(REVISION_LABEL.into(), revision.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    pod
}

/// Plans one sync of `set` given the pods of its namespace.
pub fn plan(set: &StatefulSet, pods: &[&Pod], now: Timestamp) -> Plan {
    let set_uid = set.metadata.uid.as_deref().unwrap_or("");
    let update_rev = update_revision(set);
    let current_rev = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update_rev.clone());
    let min_ready = min_ready_seconds(set);
    let selector = set.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
    let deleting = set.metadata.deletion_timestamp.is_some();
    let mut actions = Vec::new();

    // Claim: owned members, and orphan members matching the selector (adopted).
    let mut members: Vec<(&Pod, i32)> = Vec::new();
    for &pod in pods {
        let Some(ord) = ordinal(set, pod) else {
            continue;
        };
        match controller_ref(&pod.metadata) {
            Some(owner) if owner.uid == set_uid => members.push((pod, ord)),
            None if !deleting && selector_matches(&selector, pod.metadata.labels.as_ref()) && !is_terminating(pod) => {
                let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
                refs.push(new_controller_ref("StatefulSet", &set.metadata));
                actions.push(Action::PatchPod {
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    patch: serde_json::json!({"metadata": {"ownerReferences": refs}}),
                });
                members.push((pod, ord));
            }
            _ => {}
        }
    }

    let start = start_ordinal(set);
    let count = usize::try_from(replicas(set).max(0)).unwrap_or(0);
    let mut slots: Vec<Option<&Pod>> = vec![None; count];
    let mut condemned: Vec<(&Pod, i32)> = Vec::new();
    for (pod, ord) in &members {
        let index = ord - start;
        match usize::try_from(index).ok().filter(|i| *i < count) {
            Some(i) => slots[i] = Some(pod),
            None => condemned.push((pod, *ord)),
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.1));

    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation.filter(|g| *g != 0),
        current_revision: Some(current_rev.clone()),
        update_revision: Some(update_rev.clone()),
        collision_count: Some(set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0)),
        ..StatefulSetStatus::default()
    };
    count_pods(
        &mut status,
        members.iter().map(|(p, _)| *p),
        min_ready,
        now,
        &current_rev,
        &update_rev,
    );

    if !deleting {
        let monotonic = !parallel(set);
        let blocked = process_replicas(set, &slots, start, monotonic, &update_rev, min_ready, now, &mut actions)
            || process_condemned(&slots, &condemned, monotonic, min_ready, now, &mut actions);
        if !blocked && update_strategy(set) == "RollingUpdate" {
            roll(set, &slots, &update_rev, &mut status, &mut actions);
        }
    }

    complete_rolling_update(set, &mut status);
    let requeue_after = (min_ready > 0 && status.available_replicas.unwrap_or(0) != replicas(set))
        .then(|| Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)));
    Plan {
        actions,
        status,
        requeue_after,
    }
}

/// Upstream `computeReplicaStatus` over the set's pods.
fn count_pods<'a>(
    status: &mut StatefulSetStatus,
    pods: impl Iterator<Item = &'a Pod>,
    min_ready: i32,
    now: Timestamp,
    current: &str,
    update: &str,
) {
    let (mut replicas, mut ready, mut available, mut current_count, mut updated) = (0, 0, 0, 0, 0);
    for pod in pods {
        if is_created(pod) {
            replicas += 1;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            if is_running_and_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if is_created(pod) && !is_terminating(pod) {
            let revision = revision_of(pod);
            if revision == current {
                current_count += 1;
            }
            if revision == update {
                updated += 1;
            }
        }
    }
    status.replicas = replicas;
    status.ready_replicas = nonzero(ready);
    status.available_replicas = Some(available);
    status.current_replicas = nonzero(current_count);
    status.updated_replicas = nonzero(updated);
}

/// The ordinals in range, lowest first: finished pods are replaced, missing ones created, and
/// with OrderedReady each waits for the one before it. True when the sync must stop here.
#[allow(clippy::too_many_arguments)]
fn process_replicas(
    set: &StatefulSet,
    slots: &[Option<&Pod>],
    start: i32,
    monotonic: bool,
    update_rev: &str,
    min_ready: i32,
    now: Timestamp,
    actions: &mut Vec<Action>,
) -> bool {
    let mut blocked = false;
    for (i, slot) in slots.iter().enumerate() {
        let ord = start + i32::try_from(i).unwrap_or(i32::MAX);
        let Some(pod) = slot else {
            actions.push(Action::CreatePod(Box::new(new_pod(set, ord, update_rev))));
            if monotonic {
                return true;
            }
            continue;
        };
        if matches!(phase(pod), "Failed" | "Succeeded") {
            if !is_terminating(pod) {
                actions.push(delete(pod));
            }
            // The replacement comes once the pod is gone.
            if monotonic {
                return true;
            }
            blocked = true;
            continue;
        }
        if is_terminating(pod) && monotonic {
            return true;
        }
        if monotonic && !is_running_and_available(pod, min_ready, now) {
            return true;
        }
        if let Some(patch) = identity_patch(set, pod, ord) {
            actions.push(Action::PatchPod {
                name: pod.metadata.name.clone().unwrap_or_default(),
                patch,
            });
        }
    }
    blocked && monotonic
}

/// Labels missing from a pod's identity, as a merge patch.
fn identity_patch(set: &StatefulSet, pod: &Pod, ord: i32) -> Option<serde_json::Value> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let missing: BTreeMap<String, String> = identity_labels(set, ord)
        .into_iter()
        .filter(|(k, v)| labels.get(k) != Some(v))
        .collect();
    (!missing.is_empty()).then(|| serde_json::json!({"metadata": {"labels": missing}}))
}

/// Ordinals beyond the replica count, highest first: with OrderedReady one at a time, after
/// the remaining pods are healthy. True when the sync must stop here.
fn process_condemned(
    slots: &[Option<&Pod>],
    condemned: &[(&Pod, i32)],
    monotonic: bool,
    min_ready: i32,
    now: Timestamp,
    actions: &mut Vec<Action>,
) -> bool {
    let first_unhealthy = slots
        .iter()
        .flatten()
        .copied()
        .chain(condemned.iter().map(|(p, _)| *p))
        .find(|p| !is_healthy(p));
    for (pod, _) in condemned {
        if is_terminating(pod) {
            if monotonic {
                return true;
            }
            continue;
        }
        let is_first_unhealthy = first_unhealthy.is_some_and(|u| std::ptr::eq(u, *pod));
        if monotonic && !is_running_and_available(pod, min_ready, now) && !is_first_unhealthy {
            return true;
        }
        actions.push(delete(pod));
        if monotonic {
            return true;
        }
    }
    false
}

/// The RollingUpdate step: the highest ordinal at or above the partition that runs an older
/// revision is deleted (to be recreated from the new template), one at a time, waiting for
/// each to be healthy again.
fn roll(
    set: &StatefulSet,
    slots: &[Option<&Pod>],
    update_rev: &str,
    status: &mut StatefulSetStatus,
    actions: &mut Vec<Action>,
) {
    // Creations or deletions already planned take precedence.
    if !actions.iter().all(|a| matches!(a, Action::PatchPod { .. })) {
        return;
    }
    let min = usize::try_from(partition(set).max(0)).unwrap_or(0);
    for target in (min..slots.len()).rev() {
        let Some(pod) = slots[target] else {
            return;
        };
        if revision_of(pod) != update_rev && !is_terminating(pod) {
            actions.push(delete(pod));
            status.current_replicas = nonzero(status.current_replicas.unwrap_or(0) - 1);
            return;
        }
        if !is_healthy(pod) {
            return;
        }
    }
}

/// Upstream `completeRollingUpdate`: once every pod runs the update revision and is ready, it
/// becomes the current revision.
fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let updated = status.updated_replicas.unwrap_or(0);
    if update_strategy(set) == "RollingUpdate"
        && updated == status.replicas
        && status.ready_replicas.unwrap_or(0) == status.replicas
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

fn delete(pod: &Pod) -> Action {
    Action::DeletePod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Upstream `inconsistentStatus`: whether the stored status differs in what the controller
/// maintains.
pub fn status_changed(set: &StatefulSet, status: &StatefulSetStatus) -> bool {
    let Some(stored) = set.status.as_ref() else {
        return true;
    };
    stored.observed_generation != status.observed_generation
        || stored.replicas != status.replicas
        || stored.ready_replicas.unwrap_or(0) != status.ready_replicas.unwrap_or(0)
        || stored.available_replicas.unwrap_or(0) != status.available_replicas.unwrap_or(0)
        || stored.current_replicas.unwrap_or(0) != status.current_replicas.unwrap_or(0)
        || stored.updated_replicas.unwrap_or(0) != status.updated_replicas.unwrap_or(0)
        || stored.current_revision != status.current_revision
        || stored.update_revision != status.update_revision
        || stored.collision_count != status.collision_count
}
