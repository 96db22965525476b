//! The Deployment sync as a pure function: new ReplicaSets, rolling updates within the surge
//! and availability limits, Recreate, proportional scaling, rollbacks, history, status.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::sync::{plan, Action, Plan};
use super::util::*;
use crate::replicaset::pods::testing::{pod, ts};
use crate::replicaset::pods::{is_controlled_by, new_controller_ref};

fn deployment(replicas: i32, image: &str, tweak: impl FnOnce(&mut Deployment)) -> Deployment {
    let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    let mut d = Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("uid-web".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
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
                        name: "nginx".into(),
                        image: Some(image.into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::String("25%".into())),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    tweak(&mut d);
    d
}

/// A tiny API: applies plans to stored objects the way the API server would.
#[derive(Default)]
struct Cluster {
    d: Option<Deployment>,
    rss: BTreeMap<String, ReplicaSet>,
    created: i64,
}

impl Cluster {
    fn with(d: Deployment) -> Self {
        Cluster {
            d: Some(d),
            ..Cluster::default()
        }
    }

    fn plan(&self, now: i64) -> Plan {
        let rss: Vec<&ReplicaSet> = self.rss.values().collect();
        plan(self.d.as_ref().unwrap(), &rss, &[], ts(now))
    }

    fn plan_with_pods(&self, pods: &[&Pod], now: i64) -> Plan {
        let rss: Vec<&ReplicaSet> = self.rss.values().collect();
        plan(self.d.as_ref().unwrap(), &rss, pods, ts(now))
    }

    fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            match action.clone() {
                Action::CreateReplicaSet(mut rs) => {
                    let name = rs.metadata.name.clone().unwrap();
                    assert!(!self.rss.contains_key(&name), "{name} created twice");
                    self.created += 1;
                    rs.metadata.uid = Some(format!("uid-{name}"));
                    rs.metadata.creation_timestamp = Some(Time(ts(self.created)));
                    rs.metadata.generation = Some(1);
                    self.rss.insert(name, rs);
                }
                Action::UpdateReplicaSet(mut rs) => {
                    let name = rs.metadata.name.clone().unwrap();
                    let old = &self.rss[&name];
                    rs.status = old.status.clone();
                    let generation = old.metadata.generation.unwrap_or(1);
                    rs.metadata.generation = Some(if rs.spec != old.spec {
                        generation + 1
                    } else {
                        generation
                    });
                    self.rss.insert(name, rs);
                }
                Action::DeleteReplicaSet { name, .. } => {
                    self.rss.remove(&name);
                }
                Action::UpdateStatus(d) => self.d = Some(d),
            }
        }
    }

    /// The ReplicaSet controller and the pods catch up: every pod exists; those that existed at
    /// the previous tick are available now, new ones only at the next.
    fn tick(&mut self) {
        for rs in self.rss.values_mut() {
            let replicas = spec_replicas(rs);
            let status = rs.status.get_or_insert_with(ReplicaSetStatus::default);
            let available = status.replicas.min(replicas);
            status.replicas = replicas;
            status.ready_replicas = Some(available);
            status.available_replicas = Some(available);
            status.observed_generation = rs.metadata.generation;
        }
    }

    fn new_rs(&self) -> &ReplicaSet {
        let template = self.d.as_ref().unwrap().spec.as_ref().unwrap().template.clone();
        self.rss
            .values()
            .find(|rs| equal_ignore_hash(rs.spec.as_ref().unwrap().template.as_ref().unwrap(), &template))
            .expect("a new ReplicaSet")
    }

    fn status(&self) -> k8s_openapi::api::apps::v1::DeploymentStatus {
        self.d.as_ref().unwrap().status.clone().unwrap_or_default()
    }

    fn condition(&self, type_: &str) -> (String, String) {
        let status = self.status();
        let c = get_condition(&status, type_).expect(type_);
        (c.status.clone(), c.reason.clone().unwrap_or_default())
    }

    /// Runs syncs and ticks until nothing changes, checking the rollout limits on the way.
    fn converge(&mut self, min_available: i32, max_total: i32) -> usize {
        for round in 0..50 {
            self.tick();
            let plan = self.plan(1000 + round as i64);
            self.apply(&plan);
            let total: i32 = self.rss.values().map(spec_replicas).sum();
            let available: i32 = self
                .rss
                .values()
                .map(|rs| available_replicas(rs).min(spec_replicas(rs)))
                .sum();
            assert!(total <= max_total, "round {round}: {total} pods > {max_total}");
            assert!(
                available >= min_available,
                "round {round}: {available} available < {min_available}"
            );
            if plan.actions.is_empty() {
                return round;
            }
        }
        panic!("no convergence");
    }
}

fn changed_template(d: &mut Deployment, image: &str) {
    let spec = d.spec.as_mut().unwrap();
    spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
    d.metadata.generation = Some(d.metadata.generation.unwrap() + 1);
}

#[test]
fn a_new_deployment_gets_its_replica_set() {
    let mut c = Cluster::with(deployment(3, "nginx:1", |_| {}));
    let plan = c.plan(0);
    let Action::CreateReplicaSet(rs) = &plan.actions[0] else {
        panic!("{plan:?}")
    };
    let hash = compute_hash(&c.d.as_ref().unwrap().spec.as_ref().unwrap().template, None);
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH], hash);
    let template_labels = spec
        .template
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(template_labels[POD_TEMPLATE_HASH], hash);
    assert_eq!(rs.metadata.labels.as_ref(), Some(template_labels));
    assert!(is_controlled_by(&rs.metadata, "uid-web"));
    let annotations = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations[REVISION], "1");
    assert_eq!(annotations[DESIRED_REPLICAS], "3");
    assert_eq!(annotations[MAX_REPLICAS], "4");
    let Action::UpdateStatus(d) = plan.actions.last().unwrap() else {
        panic!("{plan:?}")
    };
    assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "1");
    c.apply(&plan);
    assert_eq!(
        c.condition("Progressing"),
        ("True".into(), reason::NEW_RS_CREATED.into())
    );
    assert_eq!(
        c.condition("Available"),
        ("False".into(), reason::MIN_UNAVAILABLE.into())
    );
    c.converge(0, 4);
    let status = c.status();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(status.unavailable_replicas, None);
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        c.condition("Progressing"),
        ("True".into(), reason::NEW_RS_AVAILABLE.into())
    );
    let message = get_condition(&status, "Progressing").unwrap().message.clone().unwrap();
    assert_eq!(
        message,
        format!(
            "ReplicaSet \"{}\" has successfully progressed.",
            c.new_rs().metadata.name.as_deref().unwrap()
        )
    );
    assert_eq!(c.condition("Available"), ("True".into(), reason::MIN_AVAILABLE.into()));
}

#[test]
fn rolling_update_stays_within_surge_and_availability() {
    for (replicas, surge, unavailable) in [(3, "25%", "25%"), (10, "25%", "25%"), (4, "0", "1"), (5, "2", "0")] {
        let parse = |v: &str| match v.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(v.into()),
        };
        let mut c = Cluster::with(deployment(replicas, "nginx:1", |d| {
            d.spec.as_mut().unwrap().strategy.as_mut().unwrap().rolling_update = Some(RollingUpdateDeployment {
                max_surge: Some(parse(surge)),
                max_unavailable: Some(parse(unavailable)),
            })
        }));
        let d = c.d.clone().unwrap();
        let (max_surge, max_unavailable) = (max_surge(&d), max_unavailable(&d));
        c.converge(0, replicas + max_surge);
        let first = c.new_rs().metadata.name.clone().unwrap();
        changed_template(c.d.as_mut().unwrap(), "nginx:2");
        let rounds = c.converge(replicas - max_unavailable, replicas + max_surge);
        assert!(rounds > 1, "{replicas} {surge} {unavailable}: a rollout takes steps");
        let new = c.new_rs().clone();
        assert_ne!(new.metadata.name.as_deref(), Some(first.as_str()));
        assert_eq!(spec_replicas(&new), replicas);
        assert_eq!(
            spec_replicas(&c.rss[&first]),
            0,
            "the old ReplicaSet is kept, scaled down"
        );
        assert_eq!(revision(&new.metadata), 2);
        assert_eq!(
            c.d.as_ref().unwrap().metadata.annotations.as_ref().unwrap()[REVISION],
            "2"
        );
        let status = c.status();
        assert_eq!(status.updated_replicas, Some(replicas));
        assert_eq!(status.replicas, Some(replicas));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(
            c.condition("Progressing"),
            ("True".into(), reason::NEW_RS_AVAILABLE.into())
        );
    }
}

#[test]
fn the_first_step_of_a_rollout_surges_one() {
    let mut c = Cluster::with(deployment(3, "nginx:1", |_| {}));
    c.converge(0, 4);
    changed_template(c.d.as_mut().unwrap(), "nginx:2");
    let plan = c.plan(2000);
    let creates: Vec<i32> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateReplicaSet(rs) => Some(spec_replicas(rs)),
            _ => None,
        })
        .collect();
    assert_eq!(creates, [1], "maxSurge 25% of 3 rounds up to 1");
    assert!(
        !plan.actions.iter().any(|a| matches!(a, Action::UpdateReplicaSet(_))),
        "maxUnavailable 25% of 3 rounds down to 0: nothing old goes yet"
    );
}

#[test]
fn rollback_reuses_the_old_replica_set_with_a_new_revision() {
    let mut c = Cluster::with(deployment(2, "nginx:1", |_| {}));
    c.converge(0, 3);
    let first = c.new_rs().metadata.name.clone().unwrap();
    changed_template(c.d.as_mut().unwrap(), "nginx:2");
    c.converge(1, 3);
    // What `kubectl rollout undo` does: the old template back into the Deployment.
    changed_template(c.d.as_mut().unwrap(), "nginx:1");
    c.converge(1, 3);
    let rs = &c.rss[&first];
    assert_eq!(spec_replicas(rs), 2);
    assert_eq!(revision(&rs.metadata), 3);
    assert_eq!(annotation(&rs.metadata, REVISION_HISTORY), Some("1"));
    assert_eq!(c.rss.len(), 2);
}

#[test]
fn recreate_waits_for_old_pods() {
    let mut c = Cluster::with(deployment(2, "nginx:1", |d| {
        d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        })
    }));
    c.converge(0, 2);
    let first = c.new_rs().clone();
    changed_template(c.d.as_mut().unwrap(), "nginx:2");
    let plan = c.plan(2000);
    assert!(matches!(&plan.actions[0], Action::UpdateReplicaSet(rs) if spec_replicas(rs) == 0));
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))));
    c.apply(&plan);
    c.tick();
    // The ReplicaSet counts no pods, but one is still terminating.
    let terminating = pod("old", Some(new_controller_ref("ReplicaSet", &first.metadata)), &[]);
    let plan = c.plan_with_pods(&[&terminating], 2001);
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))));
    let plan = c.plan_with_pods(&[], 2002);
    assert!(plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::CreateReplicaSet(rs) if spec_replicas(rs) == 2)));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut c = Cluster::with(deployment(10, "nginx:1", |_| {}));
    c.converge(0, 13);
    changed_template(c.d.as_mut().unwrap(), "nginx:2");
    // One step: the new ReplicaSet surges to 3 (25 % of 10, rounded up) and the old one drops
    // to 8 (25 % unavailable, rounded down).
    let plan = c.plan(2000);
    c.apply(&plan);
    c.tick();
    let mut sizes: Vec<i32> = c.rss.values().map(spec_replicas).collect();
    sizes.sort();
    assert_eq!(sizes, [3, 8]);
    // kubectl scale --replicas=20 mid-rollout.
    let d = c.d.as_mut().unwrap();
    d.spec.as_mut().unwrap().replicas = Some(20);
    d.metadata.generation = Some(3);
    let plan = c.plan(2001);
    c.apply(&plan);
    let sizes: Vec<i32> = c.rss.values().map(spec_replicas).collect();
    assert_eq!(sizes.iter().sum::<i32>(), 25, "20 + 25% surge, spread across both");
    assert!(sizes.iter().all(|s| *s > 3), "{sizes:?}");
    for rs in c.rss.values() {
        assert_eq!(annotation(&rs.metadata, DESIRED_REPLICAS), Some("20"));
        assert_eq!(annotation(&rs.metadata, MAX_REPLICAS), Some("25"));
    }
}

#[test]
fn plain_scaling_resizes_the_only_replica_set() {
    let mut c = Cluster::with(deployment(3, "nginx:1", |_| {}));
    c.converge(0, 4);
    let d = c.d.as_mut().unwrap();
    d.spec.as_mut().unwrap().replicas = Some(1);
    d.metadata.generation = Some(2);
    let plan = c.plan(2000);
    let Action::UpdateReplicaSet(rs) = &plan.actions[0] else {
        panic!("{plan:?}")
    };
    assert_eq!(spec_replicas(rs), 1);
    assert_eq!(annotation(&rs.metadata, DESIRED_REPLICAS), Some("1"));
    c.apply(&plan);
    c.converge(0, 4);
    assert_eq!(c.status().replicas, Some(1));
    assert_eq!(c.status().observed_generation, Some(2));
}

#[test]
fn history_beyond_the_limit_is_deleted() {
    let mut c = Cluster::with(deployment(1, "v0", |d| {
        d.spec.as_mut().unwrap().revision_history_limit = Some(1)
    }));
    c.converge(0, 2);
    for v in 1..4 {
        changed_template(c.d.as_mut().unwrap(), &format!("v{v}"));
        c.converge(0, 2);
    }
    assert_eq!(c.rss.len(), 2, "the current ReplicaSet and one old one");
    let revisions: Vec<i64> = c.rss.values().map(|rs| revision(&rs.metadata)).collect();
    assert!(revisions.contains(&4) && revisions.contains(&3), "{revisions:?}");
}

#[test]
fn a_name_collision_bumps_the_collision_count() {
    let d = deployment(1, "nginx:1", |_| {});
    let hash = compute_hash(&d.spec.as_ref().unwrap().template, None);
    let mut squatter = ReplicaSet::default();
    squatter.metadata.name = Some(format!("web-{hash}"));
    squatter.metadata.uid = Some("other".into());
    let rss = [&squatter];
    let plan = plan(&d, &rss, &[], ts(0));
    assert_eq!(plan.actions.len(), 1, "{plan:?}");
    let Action::UpdateStatus(d) = &plan.actions[0] else {
        panic!("{plan:?}")
    };
    assert_eq!(d.status.as_ref().unwrap().collision_count, Some(1));
    let next = super::sync::plan(d, &rss, &[], ts(1));
    let Action::CreateReplicaSet(rs) = &next.actions[0] else {
        panic!("{next:?}")
    };
    assert_ne!(rs.metadata.name, squatter.metadata.name);
}

#[test]
fn no_progress_past_the_deadline_times_out() {
    let mut c = Cluster::with(deployment(1, "nginx:1", |d| {
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(60)
    }));
    let plan = c.plan(0);
    c.apply(&plan);
    assert!(plan.requeue_after.is_some(), "a deadline to check");
    // Pods never become ready.
    let plan = c.plan(30);
    c.apply(&plan);
    assert_eq!(
        c.condition("Progressing"),
        ("True".into(), reason::NEW_RS_CREATED.into())
    );
    let plan = c.plan(61);
    c.apply(&plan);
    assert_eq!(c.condition("Progressing"), ("False".into(), reason::TIMED_OUT.into()));
}

#[test]
fn orphans_matching_the_selector_are_adopted() {
    let d = deployment(1, "nginx:1", |_| {});
    let mut orphan = ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web-old".into()),
            uid: Some("u-old".into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(Default::default()),
        status: None,
    };
    orphan.spec.as_mut().unwrap().replicas = Some(0);
    let p = plan(&d, &[&orphan], &[], ts(0));
    let adopted = p.actions.iter().find_map(|a| match a {
        Action::UpdateReplicaSet(rs) if rs.metadata.name.as_deref() == Some("web-old") => Some(rs),
        _ => None,
    });
    assert!(is_controlled_by(&adopted.expect("adopted").metadata, "uid-web"));
}

#[test]
fn pausing_records_a_condition_and_does_not_roll_out() {
    let mut c = Cluster::with(deployment(2, "nginx:1", |_| {}));
    c.converge(0, 3);
    let d = c.d.as_mut().unwrap();
    d.spec.as_mut().unwrap().paused = Some(true);
    changed_template(d, "nginx:2");
    let plan = c.plan(2000);
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))));
    c.apply(&plan);
    assert_eq!(c.condition("Progressing"), ("Unknown".into(), reason::PAUSED.into()));
}
