//! The ReplicaSet sync as a pure function: claiming, scale up and down, deletion order, status.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};

use super::pods::testing::{make_ready, make_running, pod, ts};
use super::pods::{is_controlled_by, new_controller_ref};
use super::sync::{calculate_status, plan, rank_pods, requeue_after, ManageError};

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn replica_set(name: &str, replicas: i32, tweak: impl FnOnce(&mut ReplicaSet)) -> ReplicaSet {
    let selector = labels(&[("app", "web"), ("pod-template-hash", "h1")]);
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            generation: Some(2),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: None,
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector),
                    ..ObjectMeta::default()
                }),
                spec: None,
            }),
        }),
        status: None,
    };
    tweak(&mut rs);
    rs
}

fn owner(rs: &ReplicaSet) -> Option<OwnerReference> {
    Some(new_controller_ref("ReplicaSet", &rs.metadata))
}

const WEB: &[(&str, &str)] = &[("app", "web"), ("pod-template-hash", "h1")];

#[test]
fn scale_up_creates_from_the_template() {
    let rs = replica_set("web-h1", 3, |_| {});
    let a = pod("web-h1-aaaaa", owner(&rs), WEB);
    let p = plan(&rs, &[&a], &[], true, ts(0));
    assert_eq!(p.create, 2);
    let template = p.pod.unwrap();
    assert_eq!(template.metadata.generate_name.as_deref(), Some("web-h1-"));
    assert!(is_controlled_by(&template.metadata, "uid-web-h1"));
    assert_eq!(template.metadata.labels, Some(labels(WEB)));
    assert!(p.delete.is_empty());
}

#[test]
fn unobserved_writes_block_counting() {
    let rs = replica_set("web-h1", 3, |_| {});
    let p = plan(&rs, &[], &[], false, ts(0));
    assert_eq!(p.create, 0);
}

#[test]
fn claims_by_uid_and_selector() {
    let rs = replica_set("web-h1", 5, |_| {});
    let owned = pod("owned", owner(&rs), WEB);
    let orphan = pod("orphan", None, WEB);
    let other_labels = pod("other", None, &[("app", "db")]);
    let mut foreign_ref = new_controller_ref("ReplicaSet", &rs.metadata);
    foreign_ref.uid = "uid-old".into();
    let foreign = pod("foreign", Some(foreign_ref), WEB);
    let drifted = pod("drifted", owner(&rs), &[("app", "web")]);
    let mut finished = pod("finished", owner(&rs), WEB);
    finished.status.as_mut().unwrap().phase = Some("Failed".into());
    let pods = [&owned, &orphan, &other_labels, &foreign, &drifted, &finished];
    let p = plan(&rs, &pods, &[], true, ts(0));
    let names = |v: &[&Pod]| -> Vec<String> { v.iter().map(|p| p.metadata.name.clone().unwrap()).collect() };
    assert_eq!(names(&p.active), ["owned", "orphan"]);
    assert_eq!(names(&p.adopt), ["orphan"]);
    assert_eq!(names(&p.release), ["drifted"]);
    assert_eq!(p.create, 3, "failed pods do not count");
}

#[test]
fn scale_down_prefers_unscheduled_pending_not_ready_pods() {
    let rs = replica_set("web-h1", 1, |_| {});
    let ready_old = make_ready(pod("ready-old", owner(&rs), WEB), "n1", 10);
    let ready_new = make_ready(pod("ready-new", owner(&rs), WEB), "n2", 1000);
    let running = make_running(pod("running", owner(&rs), WEB), "n3");
    let pending = pod("pending", owner(&rs), WEB);
    let pods = [&ready_old, &ready_new, &running, &pending];
    let p = plan(&rs, &pods, &[], true, ts(2000));
    let deleted: Vec<&str> = p.delete.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
    assert_eq!(deleted, ["pending", "running", "ready-new"]);
}

#[test]
fn scale_down_spreads_across_nodes_and_honours_deletion_cost() {
    let rs = replica_set("web-h1", 1, |_| {});
    let a = make_ready(pod("a", owner(&rs), WEB), "n1", 10);
    let b = make_ready(pod("b", owner(&rs), WEB), "n1", 10);
    let c = make_ready(pod("c", owner(&rs), WEB), "n2", 10);
    // Two pods on n1: one of them goes before the lone pod on n2.
    let ranked = rank_pods(&[&c, &a, &b], &[&a, &b, &c], ts(100));
    assert_ne!(ranked[0].metadata.name.as_deref(), Some("c"));
    let mut cheap = c.clone();
    cheap.metadata.annotations = Some(labels(&[("controller.kubernetes.io/pod-deletion-cost", "-10")]));
    let ranked = rank_pods(&[&a, &b, &cheap], &[&a, &b, &cheap], ts(100));
    assert_eq!(ranked[0].metadata.name.as_deref(), Some("c"));
}

#[test]
fn status_counts_ready_and_available_pods() {
    let rs = replica_set("web-h1", 3, |rs| rs.spec.as_mut().unwrap().min_ready_seconds = Some(10));
    let a = make_ready(pod("a", owner(&rs), WEB), "n1", 0);
    let b = make_ready(pod("b", owner(&rs), WEB), "n1", 95);
    let c = pod("c", owner(&rs), &[("app", "web")]);
    let status = calculate_status(&rs, &[&a, &b, &c], None, ts(100));
    assert_eq!(status.replicas, 3);
    assert_eq!(status.fully_labeled_replicas, Some(2));
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.available_replicas, Some(1));
    assert_eq!(status.observed_generation, Some(2));
    assert!(status.conditions.is_none());
    // b turns available 10 s after becoming ready, at 105: look again a second after.
    assert_eq!(
        requeue_after(&rs, &[&a, &b, &c], ts(100)),
        Some(std::time::Duration::from_secs(6))
    );

    let err = ManageError {
        reason: "FailedCreate",
        message: "pods \"web-h1-x\" is forbidden".into(),
    };
    let failed = calculate_status(&rs, &[], Some(&err), ts(100));
    let cond = failed.conditions.as_ref().unwrap()[0].clone();
    assert_eq!(
        (cond.type_.as_str(), cond.reason.as_deref()),
        ("ReplicaFailure", Some("FailedCreate"))
    );
    assert_eq!(failed.replicas, 0);
    assert_eq!(failed.ready_replicas, None, "zero counts are omitted as upstream");
    let mut rs2 = rs.clone();
    rs2.status = Some(failed);
    let recovered = calculate_status(&rs2, &[], None, ts(100));
    assert!(recovered.conditions.is_none());
    assert_eq!(
        cond.last_transition_time,
        Some(Time(ts(100))),
        "the condition records when it was set"
    );
}

#[test]
fn deleting_replica_sets_adopt_and_create_nothing() {
    let rs = replica_set("web-h1", 3, |rs| rs.metadata.deletion_timestamp = Some(Time(ts(0))));
    let orphan = pod("orphan", None, WEB);
    let p = plan(&rs, &[&orphan], &[], true, ts(0));
    assert!(p.adopt.is_empty());
    assert_eq!(p.create, 0);
}
