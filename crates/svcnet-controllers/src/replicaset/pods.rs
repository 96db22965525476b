//! Pod and ownership rules the workload controllers share, after upstream's
//! pkg/api/v1/pod and pkg/controller helpers: readiness and availability, active pods,
//! controller references, label selectors, and pods made from a template.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

/// The Ready condition's status is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// When the pod last became ready (the Ready condition's lastTransitionTime).
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Upstream `IsPodAvailable`: ready for at least `min_ready_seconds`.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(pod).is_some_and(|since| {
        since
            .checked_add(jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)))
            .is_ok_and(|t| t < now)
    })
}

/// When a ready pod becomes available, if it is not yet (for requeueing).
pub fn available_at(pod: &Pod, min_ready_seconds: i32) -> Option<Timestamp> {
    let since = ready_since(pod)?;
    since
        .checked_add(jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)))
        .ok()
}

pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream `IsPodActive`: not finished and not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !is_terminating(pod)
}

/// Running with the Ready condition True (the StatefulSet's "healthy").
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_pod_ready(pod)
}

pub fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

/// The owner reference marked `controller: true`.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The controller reference of `kind` (apps/v1), if that is what controls the object.
pub fn controlled_by<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a OwnerReference> {
    controller_ref(meta).filter(|r| r.kind == kind && r.api_version.starts_with("apps/"))
}

/// Whether the object is controlled by the owner with this uid.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_ref(meta).is_some_and(|r| r.uid == uid)
}

/// Upstream `NewControllerRef` for an apps/v1 owner.
pub fn new_controller_ref(kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `LabelSelectorAsSelector(...).Matches(labels)`: every matchLabels entry and expression
/// holds. An empty selector matches everything (validation refuses those for workloads).
pub fn selector_matches(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let value = |key: &str| labels.and_then(|l| l.get(key));
    let labels_match = selector.match_labels.iter().flatten().all(|(k, v)| value(k) == Some(v));
    let expressions_match = selector.match_expressions.iter().flatten().all(|expr| {
        let values = expr.values.as_deref().unwrap_or_default();
        let actual = value(&expr.key);
        match expr.operator.as_str() {
            "In" => actual.is_some_and(|a| values.contains(a)),
            "NotIn" => !actual.is_some_and(|a| values.contains(a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

/// Upstream `GetPodFromTemplate`: the template's labels, annotations, finalizers and spec,
/// the controller reference, and `generate_name` (the owner's name and a dash).
pub fn pod_from_template(template: &PodTemplateSpec, owner: OwnerReference, generate_name: Option<String>) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            generate_name,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// A count as upstream's `omitempty` int32 fields serialize: zero is absent.
pub fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

#[cfg(test)]
pub mod testing {
    //! Builders for pods in unit tests.

    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    /// A pending, unscheduled pod owned by `owner`.
    pub fn pod(name: &str, owner: Option<OwnerReference>, labels: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                owner_references: owner.map(|o| vec![o]),
                creation_timestamp: Some(Time(ts(0))),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                ..PodStatus::default()
            }),
        }
    }

    /// Scheduled on `node`, Running, and Ready since `since` (seconds after the test epoch).
    pub fn make_ready(mut pod: Pod, node: &str, since: i64) -> Pod {
        pod.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
        let status = pod.status.get_or_insert_with(Default::default);
        status.phase = Some("Running".into());
        status.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(since))),
            ..PodCondition::default()
        }]);
        pod
    }

    pub fn make_running(mut pod: Pod, node: &str) -> Pod {
        pod.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
        pod.status.get_or_insert_with(Default::default).phase = Some("Running".into());
        pod
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = make_ready(pod("a", None, &[]), "n1", 10);
        assert!(is_pod_available(&p, 0, ts(10)));
        assert!(!is_pod_available(&p, 5, ts(15)), "exactly min ready seconds is not yet");
        assert!(is_pod_available(&p, 5, ts(16)));
        assert!(!is_pod_available(&pod("b", None, &[]), 0, ts(100)));
        assert_eq!(available_at(&p, 5), Some(ts(15)));
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let mut sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: None,
        };
        assert!(selector_matches(&sel, Some(&labels)));
        assert!(!selector_matches(&sel, None));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "DoesNotExist".into(),
            values: None,
        }]);
        assert!(selector_matches(&sel, Some(&labels)));
        sel.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: Some(vec!["a".into()]),
        }]);
        assert!(!selector_matches(&sel, Some(&labels)));
    }

    #[test]
    fn template_pods_carry_the_controller_ref() {
        let owner_meta = ObjectMeta {
            name: Some("web-1".into()),
            uid: Some("u1".into()),
            ..ObjectMeta::default()
        };
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..ObjectMeta::default()
            }),
            spec: None,
        };
        let pod = pod_from_template(
            &template,
            new_controller_ref("ReplicaSet", &owner_meta),
            Some("web-1-".into()),
        );
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-1-"));
        assert!(is_controlled_by(&pod.metadata, "u1"));
        assert!(controlled_by(&pod.metadata, "ReplicaSet").is_some());
        assert!(controlled_by(&pod.metadata, "StatefulSet").is_none());
        assert_eq!(pod.metadata.labels, template.metadata.unwrap().labels);
    }
}
