//! What happens to the pods of unhealthy nodes, as plain functions: their Ready condition turns
//! False (MarkPodsNotReady), NoExecute taints evict them after their tolerationSeconds (the
//! taint eviction controller), and terminating or orphaned pods are removed (PodGC).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::health::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use crate::scheduler::plan::{tolerates, tolerations};

/// How long a pod's node must be missing before the pod is removed (PodGC's quarantine).
pub const ORPHAN_QUARANTINE: Duration = Duration::from_secs(40);

/// Until a node agent confirms deletions (DELETE with gracePeriodSeconds=0 once the
/// containers are gone), terminating pods are also removed from Ready nodes once their grace
/// period has run out; upstream leaves those to the kubelet.
pub const COLLECT_EXPIRED_ON_READY_NODES: bool = true;

/// The pod's conditions with Ready=False; None unless Ready is True now.
pub fn not_ready_conditions(pod: &Pod, now: Timestamp) -> Option<Vec<PodCondition>> {
    let mut conditions = pod.status.as_ref()?.conditions.clone()?;
    let ready = conditions
        .iter_mut()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    ready.status = "False".into();
    ready.last_transition_time = Some(Time(now));
    Some(conditions)
}

/// When NoExecute taints evict the pod, or None if they never do. Per taint: not tolerated ->
/// at once; tolerated -> after the smallest tolerationSeconds of the tolerations that match
/// (forever if none has one), counted from the taint's timeAdded (or the pod's creation, when
/// later). A pod with no toleration at all for the not-ready or unreachable taint is treated as
/// tolerating it for `default_toleration`, which is what the DefaultTolerationSeconds admission
/// plugin gives every pod.
pub fn eviction_at(pod: &Pod, node_taints: &[Taint], default_toleration: Duration) -> Option<Timestamp> {
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tolerations = tolerations(pod);
    node_taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .filter_map(|taint| {
            let added = taint.time_added.as_ref().map(|t| t.0);
            let start = match (added, created) {
                (Some(a), Some(c)) => a.max(c),
                (a, c) => a.or(c).unwrap_or(Timestamp::UNIX_EPOCH),
            };
            let matching: Vec<_> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
            let seconds = if matching.is_empty() {
                if taint.key == TAINT_NOT_READY || taint.key == TAINT_UNREACHABLE {
                    Some(default_toleration.as_secs() as i64)
                } else {
                    Some(0)
                }
            } else {
                matching.iter().filter_map(|t| t.toleration_seconds).min()
            }?;
            Some(start + SignedDuration::from_secs(seconds.max(0)))
        })
        .min()
}

/// What is known about the node a pod is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Ready,
    /// Ready is False or Unknown (or absent).
    NotReady,
    /// No such node, since the given time.
    Missing(Timestamp),
}

/// When the pod should be removed for good (DELETE with gracePeriodSeconds=0), or None:
/// terminating pods once their deletionTimestamp passed on a node that is not Ready or is gone
/// (and on Ready nodes too, see [`COLLECT_EXPIRED_ON_READY_NODES`]); pods whose node has been
/// missing for the quarantine period.
pub fn removal_at(pod: &Pod, node: NodeState) -> Option<Timestamp> {
    if let Some(deadline) = pod.metadata.deletion_timestamp.as_ref() {
        let collectable = match node {
            NodeState::Ready => COLLECT_EXPIRED_ON_READY_NODES,
            NodeState::NotReady | NodeState::Missing(_) => true,
        };
        // Already shortened to zero and waiting only for finalizers: nothing left to do.
        let held = pod.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty())
            && pod.metadata.deletion_grace_period_seconds == Some(0);
        return (collectable && !held).then_some(deadline.0);
    }
    match node {
        NodeState::Missing(since) => {
            Some(since + SignedDuration::try_from(ORPHAN_QUARANTINE).expect("a small duration"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
