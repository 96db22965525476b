//! The ControllerRevisions of a StatefulSet, as upstream's controller history keeps them: one per
//! template the set has had, named after the pods' `controller-revision-hash`, holding the
//! template as the strategic merge patch that `kubectl rollout undo statefulset` applies, and
//! numbered so that `kubectl rollout history` lists them in order. Old ones beyond
//! `revisionHistoryLimit` go, unless the current or update revision or a pod still uses them.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::json;

use super::sync::{update_revision, REVISION_LABEL};

/// The label upstream puts on ControllerRevisions with the template hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// What to write so the set's history is as upstream keeps it.
#[derive(Debug, Default, PartialEq)]
pub struct RevisionPlan {
    /// The update revision, when it has no ControllerRevision yet.
    pub create: Option<ControllerRevision>,
    /// An existing revision that the template went back to: (name, new revision number).
    pub renumber: Option<(String, i64)>,
    /// Revisions beyond the history limit.
    pub delete: Vec<String>,
}

/// Plans the history writes for `set`, given its own revisions and pods.
pub fn plan(set: &StatefulSet, revisions: &[&ControllerRevision], pods: &[&Pod]) -> RevisionPlan {
    let update = update_revision(set);
    let latest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let mut plan = RevisionPlan::default();
    match revisions
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(update.as_str()))
    {
        None => plan.create = Some(new_revision(set, &update, latest + 1)),
        Some(existing) if existing.revision < latest => plan.renumber = Some((update.clone(), latest + 1)),
        Some(_) => {}
    }
    plan.delete = beyond_history(set, revisions, pods, &update);
    plan
}

/// The set's revision for its current template.
fn new_revision(set: &StatefulSet, name: &str, number: i64) -> ControllerRevision {
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let hash = name.rsplit('-').next().unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    let mut patch_template = serde_json::to_value(&template).unwrap_or_else(|_| json!({}));
    patch_template["$patch"] = json!("replace");
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(set)]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(json!({"spec": {"template": patch_template}}))),
        revision: number,
    }
}

fn owner_reference(set: &StatefulSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        name: set.metadata.name.clone().unwrap_or_default(),
        uid: set.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Upstream `truncateHistory`: the oldest revisions not in use, beyond `revisionHistoryLimit`.
fn beyond_history(set: &StatefulSet, revisions: &[&ControllerRevision], pods: &[&Pod], update: &str) -> Vec<String> {
    let limit = set
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
        .max(0) as usize;
    let mut live: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_LABEL).map(String::as_str))
        .collect();
    live.insert(update);
    if let Some(current) = set.status.as_ref().and_then(|s| s.current_revision.as_deref()) {
        live.insert(current);
    }
    let mut history: Vec<&&ControllerRevision> = revisions
        .iter()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    if history.len() <= limit {
        return Vec::new();
    }
    history.sort_by_key(|r| r.revision);
    let excess = history.len() - limit;
    history[..excess]
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;

    fn set(image: &str, limit: Option<i32>) -> StatefulSet {
        let spec: StatefulSetSpec = serde_json::from_value(json!({
            "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "revisionHistoryLimit": limit,
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": image}]}}
        }))
        .unwrap();
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("default".into()),
                uid: Some("set-uid".into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn revision(name: &str, number: i64) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: None,
            revision: number,
        }
    }

    #[test]
    fn a_new_template_gets_the_next_revision_holding_a_replace_patch() {
        let s = set("x:1", None);
        let plan = plan(&s, &[], &[]);
        let created = plan.create.expect("first revision");
        assert_eq!(created.metadata.name, Some(update_revision(&s)));
        assert_eq!(created.revision, 1);
        let labels = created.metadata.labels.unwrap();
        assert_eq!(labels["app"], "db");
        assert_eq!(&labels[HASH_LABEL], update_revision(&s).strip_prefix("db-").unwrap());
        let owner = &created.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("StatefulSet", "set-uid", Some(true))
        );
        let data = created.data.unwrap().0;
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(data["spec"]["template"]["spec"]["containers"][0]["image"], "x:1");
    }

    #[test]
    fn going_back_to_an_old_template_renumbers_its_revision() {
        let old = set("x:1", None);
        let new = set("x:2", None);
        let r1 = revision(&update_revision(&old), 1);
        let r2 = revision(&update_revision(&new), 2);
        assert_eq!(plan(&new, &[&r1, &r2], &[]), RevisionPlan::default());
        let back = plan(&old, &[&r1, &r2], &[]);
        assert_eq!(back.create, None);
        assert_eq!(back.renumber, Some((update_revision(&old), 3)));
    }

    #[test]
    fn history_keeps_the_limit_and_every_revision_in_use() {
        let s = set("x:9", Some(1));
        let update = revision(&update_revision(&s), 5);
        let olds: Vec<ControllerRevision> = (1..=4).map(|n| revision(&format!("db-old{n}"), n)).collect();
        let mut pod = Pod::default();
        pod.metadata.labels = Some([(REVISION_LABEL.to_string(), "db-old1".to_string())].into());
        let mut all: Vec<&ControllerRevision> = olds.iter().collect();
        all.push(&update);
        // In use: the update revision and db-old1 (a pod); of db-old2..4 the newest one stays.
        assert_eq!(plan(&s, &all, &[&pod]).delete, ["db-old2", "db-old3"]);
    }
}
