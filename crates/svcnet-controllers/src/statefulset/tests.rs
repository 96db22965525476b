//! The StatefulSet sync as a pure function: identities, ordered and parallel scaling, rolling
//! updates with a partition, status.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};

use super::sync::*;
use crate::replicaset::pods::is_controlled_by;
use crate::replicaset::pods::testing::{make_ready, ts};

fn set(replicas: i32, tweak: impl FnOnce(&mut StatefulSet)) -> StatefulSet {
    let labels: BTreeMap<String, String> = [("app".to_string(), "db".to_string())].into();
    let mut s = StatefulSet {
        metadata: ObjectMeta {
            name: Some("db".into()),
            namespace: Some("default".into()),
            uid: Some("uid-db".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("db-headless".into()),
            pod_management_policy: Some("OrderedReady".into()),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "db".into(),
                        image: Some("clickhouse:24".into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    max_unavailable: None,
                }),
            }),
            ..StatefulSetSpec::default()
        }),
        status: None,
    };
    tweak(&mut s);
    s
}

/// What the API server stores for a created pod: a uid and the Pending phase.
fn stored(mut pod: Pod) -> Pod {
    pod.metadata.uid = Some(format!("uid-{}", pod.metadata.name.as_deref().unwrap()));
    pod.metadata.creation_timestamp = Some(Time(ts(0)));
    pod.status = Some(PodStatus {
        phase: Some("Pending".into()),
        ..PodStatus::default()
    });
    pod
}

fn ready(pod: Pod) -> Pod {
    make_ready(pod, "n1", 0)
}

fn names(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::CreatePod(p) => format!("create {}", p.metadata.name.as_deref().unwrap()),
            Action::DeletePod { name, .. } => format!("delete {name}"),
            Action::PatchPod { name, .. } => format!("patch {name}"),
        })
        .collect()
}

fn refs(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter().collect()
}

/// Runs syncs, storing created pods (made ready by `ready_fn`) and removing deleted ones, until
/// nothing is left to do; returns every action in order.
fn converge(s: &mut StatefulSet, pods: &mut Vec<Pod>, make_ready_now: bool) -> Vec<String> {
    let mut log = Vec::new();
    for _ in 0..50 {
        let plan = plan(s, &refs(pods), ts(100));
        s.status = Some(plan.status.clone());
        if plan.actions.is_empty() {
            return log;
        }
        log.extend(names(&plan.actions));
        for action in plan.actions {
            match action {
                Action::CreatePod(pod) => {
                    let pod = stored(*pod);
                    pods.push(if make_ready_now { ready(pod) } else { pod });
                }
                Action::DeletePod { name, .. } => pods.retain(|p| p.metadata.name.as_deref() != Some(name.as_str())),
                Action::PatchPod { .. } => {}
            }
        }
    }
    panic!("no convergence: {log:?}");
}

#[test]
fn pods_get_stable_identities() {
    let s = set(3, |_| {});
    let plan = plan(&s, &[], ts(0));
    assert_eq!(names(&plan.actions), ["create db-0"]);
    let Action::CreatePod(pod) = &plan.actions[0] else {
        unreachable!()
    };
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("db-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("db-headless"));
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[POD_NAME_LABEL], "db-0");
    assert_eq!(labels[POD_INDEX_LABEL], "0");
    assert_eq!(labels["app"], "db");
    assert_eq!(labels[REVISION_LABEL], update_revision(&s));
    assert!(update_revision(&s).starts_with("db-"));
    assert!(is_controlled_by(&pod.metadata, "uid-db"));
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("db-"));
    assert_eq!(plan.status.replicas, 0);
    assert_eq!(plan.status.current_revision, plan.status.update_revision);
}

#[test]
fn ordered_ready_creates_one_at_a_time() {
    let s = set(3, |_| {});
    let p0 = stored(new_pod(&s, 0, &update_revision(&s)));
    // db-0 is pending: nothing more happens.
    assert!(plan(&s, &[&p0], ts(0)).actions.is_empty());
    let p0 = ready(p0);
    let result = plan(&s, &[&p0], ts(0));
    assert_eq!(names(&result.actions), ["create db-1"]);
    assert_eq!(result.status.replicas, 1);
    assert_eq!(result.status.ready_replicas, Some(1));
    assert_eq!(result.status.available_replicas, Some(1));
}

#[test]
fn parallel_creates_and_deletes_at_once() {
    let mut s = set(3, |s| {
        s.spec.as_mut().unwrap().pod_management_policy = Some("Parallel".into())
    });
    assert_eq!(
        names(&plan(&s, &[], ts(0)).actions),
        ["create db-0", "create db-1", "create db-2"]
    );
    let mut pods = Vec::new();
    converge(&mut s, &mut pods, false);
    assert_eq!(pods.len(), 3);
    s.spec.as_mut().unwrap().replicas = Some(1);
    assert_eq!(
        names(&plan(&s, &refs(&pods), ts(0)).actions),
        ["delete db-2", "delete db-1"]
    );
}

#[test]
fn ordered_scale_down_is_reverse_and_one_at_a_time() {
    let mut s = set(3, |_| {});
    let mut pods = Vec::new();
    let log = converge(&mut s, &mut pods, true);
    assert_eq!(log, ["create db-0", "create db-1", "create db-2"]);
    let status = s.status.clone().unwrap();
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.current_replicas,
            status.updated_replicas
        ),
        (3, Some(3), Some(3), Some(3))
    );
    s.spec.as_mut().unwrap().replicas = Some(1);
    let result = plan(&s, &refs(&pods), ts(0));
    assert_eq!(names(&result.actions), ["delete db-2"]);
    // While db-2 terminates, db-1 waits.
    pods[2].metadata.deletion_timestamp = Some(Time(ts(1)));
    assert!(plan(&s, &refs(&pods), ts(0)).actions.is_empty());
    pods.pop();
    assert_eq!(names(&plan(&s, &refs(&pods), ts(0)).actions), ["delete db-1"]);
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let mut s = set(3, |_| {});
    let mut pods = Vec::new();
    converge(&mut s, &mut pods, true);
    let old_revision = update_revision(&s);
    s.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some("clickhouse:25".into());
    s.metadata.generation = Some(2);
    let new_revision = update_revision(&s);
    assert_ne!(old_revision, new_revision);
    let result = plan(&s, &refs(&pods), ts(0));
    assert_eq!(names(&result.actions), ["delete db-2"]);
    assert_eq!(result.status.current_revision.as_deref(), Some(old_revision.as_str()));
    assert_eq!(result.status.update_revision.as_deref(), Some(new_revision.as_str()));
    let log = converge(&mut s, &mut pods, true);
    assert_eq!(
        log,
        [
            "delete db-2",
            "create db-2",
            "delete db-1",
            "create db-1",
            "delete db-0",
            "create db-0"
        ]
    );
    let status = s.status.clone().unwrap();
    assert_eq!(status.current_revision.as_deref(), Some(new_revision.as_str()));
    assert_eq!(status.updated_replicas, Some(3));
    assert_eq!(status.current_replicas, Some(3));

    // With a partition of 2 only db-2 moves.
    s.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some("clickhouse:26".into());
    s.spec
        .as_mut()
        .unwrap()
        .update_strategy
        .as_mut()
        .unwrap()
        .rolling_update
        .as_mut()
        .unwrap()
        .partition = Some(2);
    let log = converge(&mut s, &mut pods, true);
    assert_eq!(log, ["delete db-2", "create db-2"]);
    let status = s.status.clone().unwrap();
    assert_eq!(status.updated_replicas, Some(1));
    assert_ne!(
        status.current_revision, status.update_revision,
        "not complete below the partition"
    );
}

#[test]
fn on_delete_leaves_pods_alone() {
    let mut s = set(2, |_| {});
    let mut pods = Vec::new();
    converge(&mut s, &mut pods, true);
    let spec = s.spec.as_mut().unwrap();
    spec.update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    spec.template.spec.as_mut().unwrap().containers[0].image = Some("clickhouse:25".into());
    assert!(plan(&s, &refs(&pods), ts(0)).actions.is_empty());
}

#[test]
fn finished_pods_are_replaced() {
    let s = set(1, |_| {});
    let mut p0 = ready(stored(new_pod(&s, 0, &update_revision(&s))));
    p0.status.as_mut().unwrap().phase = Some("Failed".into());
    assert_eq!(names(&plan(&s, &[&p0], ts(0)).actions), ["delete db-0"]);
    assert_eq!(names(&plan(&s, &[], ts(0)).actions), ["create db-0"]);
}

#[test]
fn missing_identity_labels_are_restored_and_min_ready_seconds_requeues() {
    let s = set(1, |s| s.spec.as_mut().unwrap().min_ready_seconds = Some(30));
    let mut p0 = ready(stored(new_pod(&s, 0, &update_revision(&s))));
    p0.metadata.labels.as_mut().unwrap().remove(POD_INDEX_LABEL);
    let result = plan(&s, &[&p0], ts(10));
    // Ready since 0, available only after 30 s: OrderedReady waits, and looks again later.
    assert!(result.actions.is_empty());
    assert_eq!(result.status.available_replicas, Some(0));
    assert_eq!(result.requeue_after, Some(std::time::Duration::from_secs(30)));
    let result = plan(&s, &[&p0], ts(31));
    assert_eq!(names(&result.actions), ["patch db-0"]);
    let Action::PatchPod { patch, .. } = &result.actions[0] else {
        unreachable!()
    };
    assert_eq!(patch["metadata"]["labels"][POD_INDEX_LABEL], "0");
}

#[test]
fn foreign_and_non_member_pods_are_ignored() {
    let s = set(1, |_| {});
    let mut other = stored(new_pod(&s, 0, "x"));
    other.metadata.owner_references.as_mut().unwrap()[0].uid = "uid-other".into();
    let mut stray = stored(new_pod(&s, 0, "x"));
    stray.metadata.name = Some("db-x".into());
    let result = plan(&s, &[&other, &stray], ts(0));
    assert_eq!(names(&result.actions), ["create db-0"]);
    assert_eq!(result.status.replicas, 0);
}
