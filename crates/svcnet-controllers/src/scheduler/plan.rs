//! Where pending pods go, as plain functions of pods and nodes: the filters of kube-scheduler's
//! default profile that svcnet needs (NodeUnschedulable, TaintToleration, NodeAffinity for
//! nodeSelector, node readiness), spreading by pod count, and upstream's FitError wording.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The scheduler name pods get by default; pods naming another scheduler are not ours.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
/// The taint that cordoned nodes carry (tolerating it lets a pod onto a cordoned node).
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// A pod this scheduler should place: no node yet, our scheduler, not gated, not deleting and
/// not finished.
pub fn is_pending(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.node_name.as_deref().is_none_or(str::is_empty)
        && spec
            .scheduler_name
            .as_deref()
            .is_none_or(|s| s.is_empty() || s == DEFAULT_SCHEDULER)
        && spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty)
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminated(pod)
}

/// Succeeded or Failed: the pod no longer occupies its node.
pub fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The node a pod is bound to.
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref().filter(|n| !n.is_empty())
}

/// Whether `toleration` tolerates `taint` (ToleratesTaint upstream): same effect or an empty
/// one; `Exists` with an empty key matches every taint; `Equal` (the default) needs the value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// The pod's tolerations.
pub fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or(&[])
}

/// The node's taints.
pub fn taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[])
}

/// The status of the node's Ready condition ("True", "False", "Unknown"); None when absent.
pub fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// Why one node cannot take a pod, in the order the filters run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// spec.unschedulable (cordoned) and the pod does not tolerate that.
    Unschedulable,
    /// A NoSchedule or NoExecute taint the pod does not tolerate (the first one).
    Taint { key: String, value: String },
    /// The pod's nodeSelector does not match the node's labels.
    Selector,
    /// The node's Ready condition is not True.
    NotReady,
}

impl Unfit {
    /// The reason as kube-scheduler's plugins word it.
    pub fn reason(&self) -> String {
        match self {
            Unfit::Unschedulable => "node(s) were unschedulable".into(),
            Unfit::Taint { key, value } => format!("node(s) had untolerated taint {{{key}: {value}}}"),
            Unfit::Selector => "node(s) didn't match Node's node affinity/selector".into(),
            Unfit::NotReady => "node(s) were not ready".into(),
        }
    }
}

/// Runs the filters for one pod on one node.
pub fn check(pod: &Pod, node: &Node) -> Result<(), Unfit> {
    let tolerations = tolerations(pod);
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    if cordoned {
        let cordon = Taint {
            key: TAINT_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        if !tolerations.iter().any(|t| tolerates(t, &cordon)) {
            return Err(Unfit::Unschedulable);
        }
    }
    if let Some(taint) = taints(node)
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
    {
        return Err(Unfit::Taint {
            key: taint.key.clone(),
            value: taint.value.clone().unwrap_or_default(),
        });
    }
    let selector = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
    if let Some(selector) = selector {
        let labels = node.metadata.labels.as_ref();
        if !selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)) {
            return Err(Unfit::Selector);
        }
    }
    if ready_status(node) != Some("True") {
        return Err(Unfit::NotReady);
    }
    Ok(())
}

/// No node fits: how many nodes there were and why each one failed (FitError upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub nodes: usize,
    /// Reason -> number of nodes that failed for it.
    pub reasons: BTreeMap<String, usize>,
}

impl fmt::Display for FitError {
    /// `0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 node(s) were
    /// unschedulable.` with the "count reason" strings sorted as upstream sorts them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        let mut histogram: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        histogram.sort();
        write!(f, "0/{} nodes are available: {}.", self.nodes, histogram.join(", "))
    }
}

/// Non-terminated pods per node, the load spreading balances.
pub type Load = BTreeMap<String, usize>;

/// Counts the pods bound to each node that still run there.
pub fn load<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Load {
    let mut load = Load::new();
    for pod in pods.into_iter().filter(|p| !is_terminated(p)) {
        if let Some(node) = node_of(pod) {
            *load.entry(node.to_string()).or_default() += 1;
        }
    }
    load
}

/// Picks the node for one pod: among the nodes that pass every filter, the one with the fewest
/// pods, ties broken by name.
pub fn pick(pod: &Pod, nodes: &[&Node], load: &Load) -> Result<String, FitError> {
    let mut reasons = BTreeMap::new();
    let mut best: Option<(usize, &str)> = None;
    for node in nodes {
        let Some(name) = node.metadata.name.as_deref() else {
            continue;
        };
        match check(pod, node) {
            Ok(()) => {
                let candidate = (load.get(name).copied().unwrap_or(0), name);
                if best.is_none_or(|b| candidate < b) {
                    best = Some(candidate);
                }
            }
            Err(unfit) => *reasons.entry(unfit.reason()).or_default() += 1,
        }
    }
    match best {
        Some((_, name)) => Ok(name.to_string()),
        None => Err(FitError {
            nodes: nodes.len(),
            reasons,
        }),
    }
}

/// Places pending pods one after another (higher priority first, then oldest, then by
/// namespace/name), counting each placement in the load the next pod sees.
pub fn plan<'a>(pending: &[&'a Pod], nodes: &[&Node], mut load: Load) -> Vec<(&'a Pod, Result<String, FitError>)> {
    let mut queue = pending.to_vec();
    queue.sort_by(|a, b| {
        let priority = |p: &Pod| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        let key = |p: &'a Pod| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.namespace.as_deref(),
                p.metadata.name.as_deref(),
            )
        };
        priority(b).cmp(&priority(a)).then_with(|| key(a).cmp(&key(b)))
    });
    queue
        .into_iter()
        .map(|pod| {
            let outcome = pick(pod, nodes, &load);
            if let Ok(node) = &outcome {
                *load.entry(node.clone()).or_default() += 1;
            }
            (pod, outcome)
        })
        .collect()
}

/// The pod's conditions with PodScheduled=False, reason Unschedulable and `message`; None when
/// the pod already says exactly that.
pub fn unschedulable_conditions(pod: &Pod, message: &str, now: jiff::Timestamp) -> Option<Vec<PodCondition>> {
    let mut conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let wanted = PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some(message.into()),
        last_transition_time: Some(Time(now)),
        ..PodCondition::default()
    };
    match conditions.iter_mut().find(|c| c.type_ == "PodScheduled") {
        Some(current)
            if current.status == "False"
                && current.reason.as_deref() == Some("Unschedulable")
                && current.message.as_deref() == Some(message) =>
        {
            return None
        }
        Some(current) => {
            let since = match current.status.as_str() {
                "False" => current.last_transition_time.clone(),
                _ => wanted.last_transition_time.clone(),
            };
            *current = PodCondition {
                last_transition_time: since,
                ..wanted
            };
        }
        None => conditions.push(wanted),
    }
    Some(conditions)
}

#[cfg(test)]
mod tests;
