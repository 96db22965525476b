//! What one ReplicaSet needs, as a pure function of the ReplicaSet, the pods of its namespace
//! and the ReplicaSets beside it (upstream `syncReplicaSet` / `manageReplicas` /
//! `calculateStatus` in pkg/controller/replicaset).
//!
//! [`plan`] claims pods (owned by uid, orphans matching the selector adopted, owned pods that
//! stopped matching released), then compares the active ones with `spec.replicas`: too few
//! means create (at most [`BURST_REPLICAS`] per sync), too many means delete the pods ranked
//! cheapest to lose (unscheduled, pending, not ready, doubled up on a node, most recently
//! ready or created). [`calculate_status`] gives the status the ReplicaSet should show.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::pods::{
    controller_ref, is_pod_active, is_pod_available, is_pod_ready, new_controller_ref, node_name, nonzero, phase,
    pod_from_template, ready_since, selector_matches,
};

/// Upstream `BurstReplicas`: the most pods one sync creates or deletes.
pub const BURST_REPLICAS: usize = 500;
/// The annotation that orders pods for scale-down (`controller.kubernetes.io/pod-deletion-cost`).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The writes one sync of a ReplicaSet needs.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Orphans to take over (the controller reference to add).
    pub adopt: Vec<&'a Pod>,
    /// Owned pods that no longer match the selector (the controller reference to drop).
    pub release: Vec<&'a Pod>,
    /// How many pods to create from [`Plan::pod`].
    pub create: usize,
    /// The pod to create, `create` times (generateName `<rs>-`).
    pub pod: Option<Pod>,
    /// Pods to delete, cheapest first.
    pub delete: Vec<&'a Pod>,
    /// The active pods the ReplicaSet has after claiming: what its status counts.
    pub active: Vec<&'a Pod>,
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn uid(rs: &ReplicaSet) -> &str {
    rs.metadata.uid.as_deref().unwrap_or("")
}

/// Plans one sync. `pods` are the namespace's pods, `siblings` the namespace's ReplicaSets (for
/// the pods of ReplicaSets with the same owner, which spread scale-down across nodes);
/// `manage` is false while earlier creates and deletes are not yet observed (expectations),
/// and then only claiming and status happen.
pub fn plan<'a>(rs: &ReplicaSet, pods: &[&'a Pod], siblings: &[&ReplicaSet], manage: bool, now: Timestamp) -> Plan<'a> {
    let mut plan = Plan::default();
    let Some(spec) = rs.spec.as_ref() else {
        return plan;
    };
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let rs_uid = uid(rs);
    for &pod in pods.iter().filter(|p| is_pod_active(p)) {
        let labels = pod.metadata.labels.as_ref();
        let matches = selector_matches(&spec.selector, labels);
        match controller_ref(&pod.metadata) {
            Some(owner) if owner.uid == rs_uid => {
                if matches {
                    plan.active.push(pod);
                } else {
                    plan.release.push(pod);
                }
            }
            Some(_) => {}
            None if matches && !deleting => {
                plan.adopt.push(pod);
                plan.active.push(pod);
            }
            None => {}
        }
    }
    if !manage || deleting {
        return plan;
    }
    let want = usize::try_from(replicas(rs).max(0)).unwrap_or(0);
    let have = plan.active.len();
    if have < want {
        plan.create = (want - have).min(BURST_REPLICAS);
        let name = rs.metadata.name.clone().unwrap_or_default();
        plan.pod = Some(pod_from_template(
            &spec.template.clone().unwrap_or_default(),
            new_controller_ref("ReplicaSet", &rs.metadata),
            Some(format!("{name}-")),
        ));
    } else if have > want {
        let count = (have - want).min(BURST_REPLICAS);
        let related = related_pods(rs, pods, siblings);
        let mut ranked = rank_pods(&plan.active, &related, now);
        ranked.truncate(count);
        plan.delete = ranked;
    }
    plan
}

/// Upstream `getIndirectlyRelatedPods`: the active pods of every ReplicaSet controlled by this
/// one's controller (this one's own when it has none).
fn related_pods<'a>(rs: &ReplicaSet, pods: &[&'a Pod], siblings: &[&ReplicaSet]) -> Vec<&'a Pod> {
    let owners: HashSet<&str> = match controller_ref(&rs.metadata) {
        Some(owner) => siblings
            .iter()
            .filter(|s| controller_ref(&s.metadata).is_some_and(|o| o.uid == owner.uid))
            .map(|s| uid(s))
            .chain([uid(rs)])
            .collect(),
        None => [uid(rs)].into(),
    };
    pods.iter()
        .copied()
        .filter(|p| is_pod_active(p) && controller_ref(&p.metadata).is_some_and(|o| owners.contains(o.uid.as_str())))
        .collect()
}

/// The pods in upstream's `ActivePodsWithRanks` order: the first ones are deleted first.
pub fn rank_pods<'a>(pods: &[&'a Pod], related: &[&Pod], now: Timestamp) -> Vec<&'a Pod> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related {
        *on_node.entry(node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = pods
        .iter()
        .map(|p| (*p, on_node.get(node_name(p)).copied().unwrap_or(0)))
        .collect();
    ranked.sort_by(|a, b| {
        if less(a, b, now) {
            Ordering::Less
        } else if less(b, a, now) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    ranked.into_iter().map(|(p, _)| p).collect()
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> (i32, i32) {
    let status = pod.status.as_ref();
    let max = |list: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
        list.into_iter().flatten().map(|c| c.restart_count).max().unwrap_or(0)
    };
    (
        max(status.and_then(|s| s.container_statuses.as_ref())),
        max(status.and_then(|s| s.init_container_statuses.as_ref())),
    )
}

/// `afterOrZero`: a zero time sorts first, then the later one.
fn after_or_zero(a: Option<Timestamp>, b: Option<Timestamp>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => a.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// `logarithmicRankDiff`: compares ages on a log2 scale of nanoseconds.
fn log_rank_diff(a: Timestamp, b: Timestamp, now: Timestamp) -> i64 {
    let rank = |t: Timestamp| {
        let nanos = now.duration_since(t).as_nanos();
        if nanos > 0 {
            (nanos as f64).log2() as i64
        } else {
            -1
        }
    };
    rank(a) - rank(b)
}

/// Compares two times as upstream does with LogarithmicScaleDown on: newer (or zero) first,
/// ages in the same power of two tie-broken by uid.
fn newer_first(a: Option<Timestamp>, b: Option<Timestamp>, pa: &Pod, pb: &Pod, now: Timestamp) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => match log_rank_diff(x, y, now) {
            0 => pa.metadata.uid < pb.metadata.uid,
            diff => diff < 0,
        },
        _ => after_or_zero(a, b),
    }
}

/// `ActivePodsWithRanks.Less`.
fn less(a: &(&Pod, usize), b: &(&Pod, usize), now: Timestamp) -> bool {
    let (pa, rank_a) = *a;
    let (pb, rank_b) = *b;
    let (na, nb) = (node_name(pa), node_name(pb));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    if phase_ordinal(pa) != phase_ordinal(pb) {
        return phase_ordinal(pa) < phase_ordinal(pb);
    }
    if is_pod_ready(pa) != is_pod_ready(pb) {
        return !is_pod_ready(pa);
    }
    if deletion_cost(pa) != deletion_cost(pb) {
        return deletion_cost(pa) < deletion_cost(pb);
    }
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    if is_pod_ready(pa) && is_pod_ready(pb) {
        let (ra, rb) = (ready_since(pa), ready_since(pb));
        if ra != rb {
            return newer_first(ra, rb, pa, pb, now);
        }
    }
    let (restarts_a, restarts_b) = (max_restarts(pa), max_restarts(pb));
    if restarts_a.0 != restarts_b.0 {
        return restarts_a.0 > restarts_b.0;
    }
    if restarts_a.1 != restarts_b.1 {
        return restarts_a.1 > restarts_b.1;
    }
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let (ca, cb) = (created(pa), created(pb));
    if ca != cb {
        return newer_first(ca, cb, pa, pb, now);
    }
    false
}

/// Why pods could not be created or deleted, for the ReplicaFailure condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageError {
    /// `FailedCreate` or `FailedDelete`.
    pub reason: &'static str,
    pub message: String,
}

/// Upstream `calculateStatus`: counts of the active pods (fully labeled, ready, available) and
/// the ReplicaFailure condition while creates or deletes fail. observedGeneration is the
/// ReplicaSet's generation, as `updateReplicaSetStatus` sets it.
pub fn calculate_status(
    rs: &ReplicaSet,
    active: &[&Pod],
    manage_error: Option<&ManageError>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels: BTreeMap<String, String> = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = rs.status.clone().unwrap_or_default();
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    for pod in active {
        let labels = pod.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let mut conditions = status.conditions.take().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match manage_error {
        Some(err) if !has_failure => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(err.reason.into()),
            message: Some(err.message.clone()),
            last_transition_time: Some(Time(now)),
        }),
        None if has_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status.replicas = i32::try_from(active.len()).unwrap_or(i32::MAX);
    status.fully_labeled_replicas = nonzero(labeled);
    status.ready_replicas = nonzero(ready);
    status.available_replicas = nonzero(available);
    status.observed_generation = rs.metadata.generation.filter(|g| *g != 0);
    status
}

/// Whether the stored status differs from `status` (upstream skips the write otherwise).
pub fn status_changed(rs: &ReplicaSet, status: &ReplicaSetStatus) -> bool {
    rs.status.as_ref() != Some(status)
}

/// When to look again so that pods turning available after minReadySeconds are counted:
/// the earliest moment a ready, not yet available pod becomes available.
pub fn requeue_after(rs: &ReplicaSet, active: &[&Pod], now: Timestamp) -> Option<Duration> {
    let min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    if min_ready <= 0 {
        return None;
    }
    active
        .iter()
        .filter(|p| is_pod_ready(p) && !is_pod_available(p, min_ready, now))
        .filter_map(|p| super::pods::available_at(p, min_ready))
        .min()
        .map(|at| {
            let wait = at.duration_since(now).unsigned_abs();
            // Availability needs the instant strictly after; a second of margin as upstream.
            wait + Duration::from_secs(1)
        })
}

/// The owner references an adopted pod gets (its existing ones plus ours).
pub fn adopted_owner_references(
    rs: &ReplicaSet,
    pod: &Pod,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.push(new_controller_ref("ReplicaSet", &rs.metadata));
    refs
}

/// The owner references a released pod keeps (ours removed).
pub fn released_owner_references(
    rs: &ReplicaSet,
    pod: &Pod,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != uid(rs));
    refs
}
