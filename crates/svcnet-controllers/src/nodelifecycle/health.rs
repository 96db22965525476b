//! Node health as plain functions: when a node last showed signs of life, the conditions a
//! silent node gets, and the taints each node should carry (upstream's monitorNodeHealth and
//! the NoSchedule/NoExecute tainting passes of the node lifecycle controller).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::scheduler::plan::{ready_status, taints, TAINT_UNSCHEDULABLE};

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The conditions a node whose kubelet went silent reports as Unknown.
const HEALTH_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The latest sign of life: the lease's renewTime, the Ready condition's lastHeartbeatTime, the
/// node's creation, or `watching_since` (a controller that just started gives every node a full
/// grace period, as upstream's probe timestamps start at first observation).
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>, watching_since: Timestamp) -> Timestamp {
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let posted = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    [renewed, posted, created]
        .into_iter()
        .flatten()
        .fold(watching_since, Timestamp::max)
}

/// When a node whose last sign of life was `heartbeat` goes stale.
pub fn stale_at(heartbeat: Timestamp, grace: Duration) -> Timestamp {
    heartbeat + jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX / 2)
}

/// The conditions of a stale node: Ready, MemoryPressure, DiskPressure and PIDPressure set to
/// Unknown (reason NodeStatusUnknown, or NodeStatusNeverUpdated for conditions the node never
/// posted), heartbeat times kept. None when they already are.
pub fn stale_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for kind in HEALTH_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            Some(condition) if condition.status == "Unknown" => {}
            Some(condition) => {
                condition.status = "Unknown".into();
                condition.reason = Some("NodeStatusUnknown".into());
                condition.message = Some("Kubelet stopped posting node status.".into());
                condition.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: kind.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// The taints the node lifecycle controller owns.
fn managed(taint: &Taint) -> bool {
    matches!(
        (taint.key.as_str(), taint.effect.as_str()),
        (TAINT_NOT_READY | TAINT_UNREACHABLE, "NoSchedule" | "NoExecute") | (TAINT_UNSCHEDULABLE, "NoSchedule")
    )
}

/// The managed taints the node should carry now: `not-ready` for Ready=False, `unreachable`
/// for Ready=Unknown (both NoSchedule and NoExecute), `unschedulable` NoSchedule for a
/// cordoned node.
fn wanted(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut wanted = Vec::new();
    match ready_status(node) {
        Some("False") => wanted.extend([(TAINT_NOT_READY, "NoSchedule"), (TAINT_NOT_READY, "NoExecute")]),
        Some("Unknown") => wanted.extend([(TAINT_UNREACHABLE, "NoSchedule"), (TAINT_UNREACHABLE, "NoExecute")]),
        _ => {}
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        wanted.push((TAINT_UNSCHEDULABLE, "NoSchedule"));
    }
    wanted
}

/// The node's full taint list after this controller's changes (others' taints untouched,
/// managed ones kept with their timeAdded, new ones stamped `now`); None when nothing changes.
pub fn desired_taints(node: &Node, now: Timestamp) -> Option<Vec<Taint>> {
    let current = taints(node);
    let wanted = wanted(node);
    let is_wanted = |t: &Taint| wanted.iter().any(|(k, e)| t.key == *k && t.effect == *e);
    let mut result: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(t) || is_wanted(t))
        .cloned()
        .collect();
    for (key, effect) in &wanted {
        if !result.iter().any(|t| t.key == *key && t.effect == *effect) {
            result.push(Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                value: None,
                time_added: Some(Time(now)),
            });
        }
    }
    (result.as_slice() != current).then_some(result)
}

#[cfg(test)]
mod tests;
