//! What one Deployment needs, as a pure function of the Deployment, the ReplicaSets of its
//! namespace and (for Recreate) its pods: upstream's `syncDeployment` with its rolling,
//! recreate and scaling paths (pkg/controller/deployment), step for step.
//!
//! The result is a list of writes in the order upstream makes them. Writes to one ReplicaSet
//! are merged into one (the later state wins), and the Deployment's own changes (revision
//! annotation, status) become a single status write at the end.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::util::*;
use crate::replicaset::pods::{controller_ref, new_controller_ref, nonzero, phase, selector_matches};

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateReplicaSet(ReplicaSet),
    /// A full replace under the ReplicaSet's resourceVersion (scale, annotations, ownership).
    UpdateReplicaSet(ReplicaSet),
    DeleteReplicaSet {
        name: String,
        uid: String,
    },
    /// A write to the Deployment's status subresource, carrying its annotations too.
    UpdateStatus(Deployment),
}

/// The writes of one sync, and when to look again without an event (progress deadline).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub requeue_after: Option<Duration>,
}

/// Plans one sync of `d`. `replica_sets` are the namespace's ReplicaSets, `pods` its pods.
pub fn plan(d: &Deployment, replica_sets: &[&ReplicaSet], pods: &[&Pod], now: Timestamp) -> Plan {
    let mut sync = Sync::new(d, replica_sets, pods, now);
    sync.run();
    sync.finish()
}

struct Sync<'a> {
    original: &'a Deployment,
    /// The Deployment as this sync changes it (annotations and status).
    d: Deployment,
    /// Every ReplicaSet of the namespace, by name (collisions are checked against all).
    namespace_rs: BTreeMap<String, &'a ReplicaSet>,
    /// The Deployment's ReplicaSets as this sync changes them.
    rss: Vec<ReplicaSet>,
    /// Which action writes each ReplicaSet, and whether that write creates it.
    action_of: Vec<Option<usize>>,
    new_rs: Option<usize>,
    actions: Vec<Action>,
    pods: &'a [&'a Pod],
    now: Timestamp,
    /// A collision stopped the sync: only the status write follows.
    stopped: bool,
}

fn uid(meta: &ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or("")
}

impl<'a> Sync<'a> {
    fn new(d: &'a Deployment, replica_sets: &[&'a ReplicaSet], pods: &'a [&'a Pod], now: Timestamp) -> Self {
        let mut sync = Sync {
            original: d,
            d: d.clone(),
            namespace_rs: replica_sets
                .iter()
                .map(|rs| (rs.metadata.name.clone().unwrap_or_default(), *rs))
                .collect(),
            rss: Vec::new(),
            action_of: Vec::new(),
            new_rs: None,
            actions: Vec::new(),
            pods,
            now,
            stopped: false,
        };
        sync.claim(replica_sets);
        sync
    }

    fn replicas(&self) -> i32 {
        deployment_replicas(&self.d)
    }

    fn selector(&self) -> LabelSelector {
        self.d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default()
    }

    /// Upstream `ClaimReplicaSets`: owned by uid and matching the selector; orphans that match
    /// are adopted, owned ones that do not are released.
    fn claim(&mut self, replica_sets: &[&'a ReplicaSet]) {
        let selector = self.selector();
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        let d_uid = uid(&self.d.metadata).to_string();
        for rs in replica_sets {
            let matches = selector_matches(&selector, rs.metadata.labels.as_ref());
            match controller_ref(&rs.metadata) {
                Some(owner) if owner.uid == d_uid => {
                    if matches {
                        self.rss.push((*rs).clone());
                        self.action_of.push(None);
                    } else {
                        let mut released = (*rs).clone();
                        if let Some(refs) = released.metadata.owner_references.as_mut() {
                            refs.retain(|r| r.uid != d_uid);
                        }
                        self.actions.push(Action::UpdateReplicaSet(released));
                    }
                }
                None if matches && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                    let mut adopted = (*rs).clone();
                    adopted
                        .metadata
                        .owner_references
                        .get_or_insert_with(Vec::new)
                        .push(new_controller_ref("Deployment", &self.d.metadata));
                    self.rss.push(adopted);
                    self.action_of.push(None);
                    let idx = self.rss.len() - 1;
                    self.record(idx);
                }
                _ => {}
            }
        }
    }

    /// Records the current state of ReplicaSet `idx` as a write, merged with an earlier one.
    fn record(&mut self, idx: usize) {
        let rs = self.rss[idx].clone();
        match self.action_of[idx] {
            Some(a) => match &mut self.actions[a] {
                Action::CreateReplicaSet(obj) | Action::UpdateReplicaSet(obj) => *obj = rs,
                _ => unreachable!("ReplicaSet actions only"),
            },
            None => {
                self.actions.push(Action::UpdateReplicaSet(rs));
                self.action_of[idx] = Some(self.actions.len() - 1);
            }
        }
    }

    fn old(&self) -> Vec<usize> {
        (0..self.rss.len()).filter(|i| Some(*i) != self.new_rs).collect()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.rss.len()).collect()
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|i| spec_replicas(&self.rss[*i]) > 0)
            .collect()
    }

    fn sort_by(&self, idx: &mut [usize], order: fn(&ReplicaSet, &ReplicaSet) -> Ordering) {
        idx.sort_by(|a, b| order(&self.rss[*a], &self.rss[*b]));
    }

    fn sum(&self, idx: &[usize], f: fn(&ReplicaSet) -> i32) -> i32 {
        idx.iter().map(|i| f(&self.rss[*i])).sum()
    }

    // === the sync ===

    /// Upstream `syncDeployment` after the claim.
    fn run(&mut self) {
        if self.d.metadata.deletion_timestamp.is_some() {
            // A Deployment waiting on its finalizers (orphan or foreground deletion) rolls
            // nothing out; its status still follows its ReplicaSets.
            self.sync_status_only();
            return;
        }
        self.check_paused_conditions();
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || self.is_scaling_event() {
            self.sync_scale();
        } else if strategy_type(&self.d) == "Recreate" {
            self.rollout_recreate();
        } else {
            self.rollout_rolling();
        }
    }

    /// The plan: the ReplicaSet writes, then the Deployment's if it changed.
    fn finish(mut self) -> Plan {
        let requeue_after = self.requeue_stuck();
        let changed =
            self.d.status != self.original.status || self.d.metadata.annotations != self.original.metadata.annotations;
        if changed {
            self.actions.push(Action::UpdateStatus(self.d.clone()));
        }
        Plan {
            actions: self.actions,
            requeue_after,
        }
    }

    /// Upstream `checkPausedConditions`: Progressing Unknown while paused and once resumed.
    fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(&self.d) {
            return;
        }
        let status = self.d.status.get_or_insert_with(Default::default);
        let current = get_condition(status, "Progressing");
        if current.is_some_and(|c| c.reason.as_deref() == Some(reason::TIMED_OUT)) {
            return;
        }
        let paused_cond = current.is_some_and(|c| c.reason.as_deref() == Some(reason::PAUSED));
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let condition = if paused && !paused_cond {
            new_condition(
                "Progressing",
                "Unknown",
                reason::PAUSED,
                "Deployment is paused".into(),
                self.now,
            )
        } else if !paused && paused_cond {
            new_condition(
                "Progressing",
                "Unknown",
                reason::RESUMED,
                "Deployment is resumed".into(),
                self.now,
            )
        } else {
            return;
        };
        set_condition(self.d.status.get_or_insert_with(Default::default), condition);
    }

    /// Upstream `isScalingEvent`: an active ReplicaSet was last sized for another replica count.
    fn is_scaling_event(&mut self) -> bool {
        self.get_all_and_sync_revision(false);
        let replicas = self.replicas();
        let all = self.all();
        self.active(&all)
            .iter()
            .any(|i| desired_replicas_annotation(&self.rss[*i]).is_some_and(|desired| desired != replicas))
    }

    /// Upstream `getAllReplicaSetsAndSyncRevision` / `getNewReplicaSet`: finds the ReplicaSet
    /// running the current template (creating it when asked), keeping revisions in order.
    fn get_all_and_sync_revision(&mut self, create: bool) {
        if self.stopped {
            return;
        }
        let template = self.d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let mut by_age = self.all();
        self.sort_by(&mut by_age, by_creation);
        self.new_rs = by_age.into_iter().find(|i| {
            let rs_template = self.rss[*i].spec.as_ref().and_then(|s| s.template.as_ref());
            rs_template.is_some_and(|t| equal_ignore_hash(t, &template))
        });
        let max_old = self
            .old()
            .iter()
            .map(|i| revision(&self.rss[*i].metadata))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(idx) = self.new_rs {
            let mut rs = self.rss[idx].clone();
            let annotations_updated = set_new_replica_set_annotations(&self.d, &mut rs, new_revision, true);
            let spec = rs.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
            if annotations_updated || min_ready_changed {
                spec.min_ready_seconds = min_ready;
                self.rss[idx] = rs;
                self.record(idx);
            }
            let rs_revision = annotation(&self.rss[idx].metadata, REVISION).unwrap_or("").to_string();
            self.set_deployment_revision(&rs_revision);
            let deadline = has_progress_deadline(&self.d);
            let status = self.d.status.get_or_insert_with(Default::default);
            if deadline && get_condition(status, "Progressing").is_none() {
                let name = self.rss[idx].metadata.name.clone().unwrap_or_default();
                let condition = new_condition(
                    "Progressing",
                    "True",
                    reason::FOUND_NEW_RS,
                    format!("Found new replica set {name:?}"),
                    self.now,
                );
                set_condition(status, condition);
            }
            return;
        }
        if !create {
            return;
        }
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision_count);
        let d_name = self.d.metadata.name.clone().unwrap_or_default();
        let name = format!("{d_name}-{hash}");
        if let Some(existing) = self.namespace_rs.get(&name) {
            let ours = controller_ref(&existing.metadata).is_some_and(|o| o.uid == uid(&self.d.metadata));
            let same = existing
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &template));
            if !(ours && same) {
                // Another ReplicaSet has the name: hash again with the next collision count.
                let status = self.d.status.get_or_insert_with(Default::default);
                status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                self.stopped = true;
                return;
            }
        }
        let mut new_template = template.clone();
        new_template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = self.selector();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash);
        let labels = new_template.metadata.as_ref().and_then(|m| m.labels.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![new_controller_ref("Deployment", &self.d.metadata)]),
                labels,
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector,
                template: Some(new_template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = self.rss.iter().chain([&rs]).collect();
        let replicas = new_rs_new_replicas(&self.d, &all, &rs);
        rs.spec.as_mut().expect("spec").replicas = Some(replicas);
        set_new_replica_set_annotations(&self.d, &mut rs, new_revision, false);
        self.rss.push(rs.clone());
        self.actions.push(Action::CreateReplicaSet(rs));
        self.action_of.push(Some(self.actions.len() - 1));
        self.new_rs = Some(self.rss.len() - 1);
        self.set_deployment_revision(&new_revision.to_string());
        if has_progress_deadline(&self.d) {
            let condition = new_condition(
                "Progressing",
                "True",
                reason::NEW_RS_CREATED,
                format!("Created new replica set {name:?}"),
                self.now,
            );
            set_condition(self.d.status.get_or_insert_with(Default::default), condition);
        }
    }

    /// Upstream `SetDeploymentRevision`.
    fn set_deployment_revision(&mut self, revision: &str) {
        let annotations = self.d.metadata.annotations.get_or_insert_with(Default::default);
        if annotations.get(REVISION).map(String::as_str) != Some(revision) {
            annotations.insert(REVISION.into(), revision.to_string());
        }
    }

    // === scaling ===

    /// Upstream `scaleReplicaSetAndRecordEvent`: true when the size changed.
    fn scale_and_record(&mut self, idx: usize, size: i32) -> bool {
        if spec_replicas(&self.rss[idx]) == size {
            return false;
        }
        self.scale_replica_set(idx, size)
    }

    /// Upstream `scaleReplicaSet`: the size and the replica annotations.
    fn scale_replica_set(&mut self, idx: usize, size: i32) -> bool {
        let replicas = self.replicas();
        let max = replicas + max_surge(&self.d);
        let size_changed = spec_replicas(&self.rss[idx]) != size;
        if size_changed || replicas_annotations_need_update(&self.rss[idx], replicas, max) {
            let rs = &mut self.rss[idx];
            rs.spec.get_or_insert_with(Default::default).replicas = Some(size);
            set_replicas_annotations(rs, replicas, max);
            self.record(idx);
        }
        size_changed
    }

    /// Upstream `sync`: scaling (proportionally while a rollout is under way) and status.
    fn sync_scale(&mut self) {
        self.get_all_and_sync_revision(false);
        if self.stopped {
            return;
        }
        self.scale();
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused {
            self.cleanup();
        }
        let status = self.calculate_status();
        self.d.status = Some(status);
    }

    /// Upstream `syncStatusOnly`.
    fn sync_status_only(&mut self) {
        self.get_all_and_sync_revision(false);
        if !self.stopped {
            self.d.status = Some(self.calculate_status());
        }
    }

    /// Upstream `scale`.
    fn scale(&mut self) {
        let replicas = self.replicas();
        if let Some(target) = self.find_active_or_latest() {
            if spec_replicas(&self.rss[target]) != replicas {
                self.scale_and_record(target, replicas);
            }
            return;
        }
        let new_rs = self.new_rs;
        if is_saturated(&self.d, new_rs.map(|i| &self.rss[i])) {
            let old = self.old();
            for idx in self.active(&old) {
                self.scale_and_record(idx, 0);
            }
            return;
        }
        if strategy_type(&self.d) != "RollingUpdate" {
            return;
        }
        let all = self.all();
        let mut active = self.active(&all);
        let current = self.sum(&active, spec_replicas);
        let allowed = if replicas > 0 { replicas + max_surge(&self.d) } else { 0 };
        let to_add = allowed - current;
        match to_add.cmp(&0) {
            // Largest first; the newer of equal sizes first when growing, the older when shrinking.
            Ordering::Greater => active.sort_by(|a, b| {
                let (x, y) = (&self.rss[*a], &self.rss[*b]);
                spec_replicas(y).cmp(&spec_replicas(x)).then_with(|| by_creation(y, x))
            }),
            Ordering::Less => active.sort_by(|a, b| {
                let (x, y) = (&self.rss[*a], &self.rss[*b]);
                spec_replicas(y).cmp(&spec_replicas(x)).then_with(|| by_creation(x, y))
            }),
            Ordering::Equal => {}
        }
        let mut added = 0;
        let mut sizes = Vec::with_capacity(active.len());
        for idx in &active {
            let rs = &self.rss[*idx];
            if to_add != 0 {
                let proportion = self.proportion(rs, to_add, added);
                sizes.push(spec_replicas(rs) + proportion);
                added += proportion;
            } else {
                sizes.push(spec_replicas(rs));
            }
        }
        for (n, idx) in active.iter().enumerate() {
            let mut size = sizes[n];
            if n == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_replica_set(*idx, size);
        }
    }

    /// Upstream `FindActiveOrLatest`: the only active ReplicaSet, or the newest when none is.
    fn find_active_or_latest(&self) -> Option<usize> {
        let mut old = self.old();
        if self.new_rs.is_none() && old.is_empty() {
            return None;
        }
        self.sort_by(&mut old, by_creation);
        old.reverse();
        let all: Vec<usize> = old.iter().copied().chain(self.new_rs).collect();
        let active = self.active(&all);
        match active.len() {
            0 => self.new_rs.or_else(|| old.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// Upstream `GetProportion` / `getReplicaSetFraction`.
    fn proportion(&self, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
        if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(rs);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    fn fraction(&self, rs: &ReplicaSet) -> i32 {
        let replicas = self.replicas();
        if replicas == 0 {
            return -spec_replicas(rs);
        }
        let deployment_replicas = replicas + max_surge(&self.d);
        let annotated = annotation(&rs.metadata, MAX_REPLICAS)
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or_else(|| self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
        if annotated == 0 {
            return 0;
        }
        let size = f64::from(spec_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
        size.round() as i32 - spec_replicas(rs)
    }

    // === rollouts ===

    /// Upstream `rolloutRolling`.
    fn rollout_rolling(&mut self) {
        self.get_all_and_sync_revision(true);
        if self.stopped {
            return;
        }
        if self.reconcile_new_replica_set() || self.reconcile_old_replica_sets() {
            self.sync_rollout_status();
            return;
        }
        let status = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    /// Upstream `reconcileNewReplicaSet`.
    fn reconcile_new_replica_set(&mut self) -> bool {
        let Some(new_rs) = self.new_rs else {
            return false;
        };
        let replicas = self.replicas();
        let current = spec_replicas(&self.rss[new_rs]);
        if current == replicas {
            return false;
        }
        if current > replicas {
            return self.scale_and_record(new_rs, replicas);
        }
        let all: Vec<&ReplicaSet> = self.rss.iter().collect();
        let size = new_rs_new_replicas(&self.d, &all, &self.rss[new_rs]);
        self.scale_and_record(new_rs, size)
    }

    /// Upstream `reconcileOldReplicaSets`: scale old ReplicaSets down as far as availability
    /// allows, unhealthy replicas first.
    fn reconcile_old_replica_sets(&mut self) -> bool {
        let old = self.old();
        let mut old_active = self.active(&old);
        let old_count = self.sum(&old_active, spec_replicas);
        if old_count == 0 {
            return false;
        }
        let all = self.all();
        let all_count = self.sum(&all, spec_replicas);
        let min_available = self.replicas() - max_unavailable(&self.d);
        let new_unavailable = self
            .new_rs
            .map_or(0, |i| spec_replicas(&self.rss[i]) - available_replicas(&self.rss[i]));
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy_replicas(&mut old_active, max_scaled_down);
        let all_active: Vec<usize> = old_active.iter().copied().chain(self.new_rs).collect();
        let scaled = self.scale_down_old_for_rolling_update(&all_active, &mut old_active);
        cleaned + scaled > 0
    }

    /// Upstream `cleanupUnhealthyReplicas`.
    fn cleanup_unhealthy_replicas(&mut self, old: &mut [usize], max_cleanup: i32) -> i32 {
        self.sort_by(old, by_creation);
        let mut total = 0;
        for idx in old.iter().copied() {
            if total >= max_cleanup {
                break;
            }
            let rs = &self.rss[idx];
            let (replicas, available) = (spec_replicas(rs), available_replicas(rs));
            if replicas == 0 || replicas == available {
                continue;
            }
            let count = (max_cleanup - total).min(replicas - available);
            self.scale_and_record(idx, replicas - count);
            total += count;
        }
        total
    }

    /// Upstream `scaleDownOldReplicaSetsForRollingUpdate`.
    fn scale_down_old_for_rolling_update(&mut self, all: &[usize], old: &mut [usize]) -> i32 {
        let min_available = self.replicas() - max_unavailable(&self.d);
        let available = self.sum(all, available_replicas);
        if available <= min_available {
            return 0;
        }
        self.sort_by(old, by_creation);
        let target = available - min_available;
        let mut total = 0;
        for idx in old.iter().copied() {
            if total >= target {
                break;
            }
            let replicas = spec_replicas(&self.rss[idx]);
            if replicas == 0 {
                continue;
            }
            let count = replicas.min(target - total);
            self.scale_and_record(idx, replicas - count);
            total += count;
        }
        total
    }

    /// Upstream `rolloutRecreate`: old ReplicaSets to zero, wait for their pods to go, then the
    /// new one to full size.
    fn rollout_recreate(&mut self) {
        self.get_all_and_sync_revision(false);
        let old = self.old();
        let mut scaled_down = false;
        for idx in self.active(&old) {
            if self.scale_and_record(idx, 0) {
                scaled_down = true;
            }
        }
        if scaled_down || self.old_pods_running() {
            self.sync_rollout_status();
            return;
        }
        if self.new_rs.is_none() {
            self.get_all_and_sync_revision(true);
            if self.stopped {
                return;
            }
        }
        if let Some(new_rs) = self.new_rs {
            let replicas = self.replicas();
            self.scale_and_record(new_rs, replicas);
        }
        let status = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    /// Upstream `oldPodsRunning`: an old ReplicaSet still counts pods, or one of its pods has not
    /// finished (terminating pods included).
    fn old_pods_running(&self) -> bool {
        let old = self.old();
        if self.sum(&old, status_replicas) > 0 {
            return true;
        }
        let old_uids: Vec<&str> = old.iter().map(|i| uid(&self.rss[*i].metadata)).collect();
        self.pods.iter().any(|pod| {
            controller_ref(&pod.metadata).is_some_and(|o| old_uids.contains(&o.uid.as_str()))
                && !matches!(phase(pod), "Failed" | "Succeeded")
        })
    }

    /// Upstream `cleanupDeployment`: old ReplicaSets beyond revisionHistoryLimit, oldest
    /// revisions first, if they are scaled down and settled.
    fn cleanup(&mut self) {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return;
        };
        let mut cleanable: Vec<usize> = self
            .old()
            .into_iter()
            .filter(|i| self.rss[*i].metadata.deletion_timestamp.is_none())
            .collect();
        let excess = i32::try_from(cleanable.len()).unwrap_or(i32::MAX) - limit;
        if excess <= 0 {
            return;
        }
        self.sort_by(&mut cleanable, by_revision);
        for idx in cleanable.into_iter().take(usize::try_from(excess).unwrap_or(0)) {
            let rs = &self.rss[idx];
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
            if status_replicas(rs) != 0 || spec_replicas(rs) != 0 || rs.metadata.generation.unwrap_or(0) > observed {
                continue;
            }
            self.actions.push(Action::DeleteReplicaSet {
                name: rs.metadata.name.clone().unwrap_or_default(),
                uid: uid(&rs.metadata).to_string(),
            });
        }
    }

    // === status ===

    /// Upstream `calculateStatus`.
    fn calculate_status(&self) -> DeploymentStatus {
        let all = self.all();
        let available = self.sum(&all, available_replicas);
        let total = self.sum(&all, spec_replicas);
        let previous = self.d.status.clone().unwrap_or_default();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation.filter(|g| *g != 0),
            replicas: nonzero(self.sum(&all, status_replicas)),
            updated_replicas: nonzero(self.new_rs.map_or(0, |i| status_replicas(&self.rss[i]))),
            ready_replicas: nonzero(self.sum(&all, ready_replicas)),
            available_replicas: nonzero(available),
            unavailable_replicas: nonzero((total - available).max(0)),
            collision_count: previous.collision_count,
            conditions: previous.conditions,
            terminating_replicas: None,
        };
        let condition = if available >= self.replicas() - max_unavailable(&self.d) {
            new_condition(
                "Available",
                "True",
                reason::MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            new_condition(
                "Available",
                "False",
                reason::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_condition(&mut status, condition);
        status
    }

    /// Upstream `syncRolloutStatus`: counts, Available, and Progressing moved along (progress,
    /// completion with NewReplicaSetAvailable, or the deadline passed).
    fn sync_rollout_status(&mut self) {
        let mut status = self.calculate_status();
        if !has_progress_deadline(&self.d) {
            remove_condition(&mut status, "Progressing");
        }
        let current = self
            .d
            .status
            .as_ref()
            .and_then(|s| get_condition(s, "Progressing"))
            .cloned();
        let complete = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE));
        let new_name = self
            .new_rs
            .and_then(|i| self.rss[i].metadata.name.clone())
            .unwrap_or_default();
        if has_progress_deadline(&self.d) && !complete {
            if deployment_complete(&self.d, &status) {
                let condition = new_condition(
                    "Progressing",
                    "True",
                    reason::NEW_RS_AVAILABLE,
                    format!("ReplicaSet {new_name:?} has successfully progressed."),
                    self.now,
                );
                set_condition(&mut status, condition);
            } else if deployment_progressing(&self.d, &status) {
                let message = if self.new_rs.is_some() {
                    format!("ReplicaSet {new_name:?} is progressing.")
                } else {
                    format!("Found new replica set {new_name:?}")
                };
                let mut condition = new_condition("Progressing", "True", reason::RS_UPDATED, message, self.now);
                if let Some(current) = &current {
                    if current.status == "True" {
                        condition.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, condition);
            } else if deployment_timed_out(&self.d, &status, self.now) {
                let condition = new_condition(
                    "Progressing",
                    "False",
                    reason::TIMED_OUT,
                    format!("ReplicaSet {new_name:?} has timed out progressing."),
                    self.now,
                );
                set_condition(&mut status, condition);
            }
        }
        match self.replica_failure() {
            Some(condition) => set_condition(&mut status, condition),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        self.d.status = Some(status);
    }

    /// Upstream `getReplicaFailures`: the new ReplicaSet's ReplicaFailure, else an old one's.
    fn replica_failure(&self) -> Option<DeploymentCondition> {
        let failure = |i: usize| {
            self.rss[i]
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "ReplicaFailure")
                .map(|c| DeploymentCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
        };
        self.new_rs
            .and_then(failure)
            .or_else(|| self.all().into_iter().find_map(failure))
    }

    /// Upstream `requeueStuckDeployment`: when an unfinished rollout would pass its deadline.
    fn requeue_stuck(&self) -> Option<Duration> {
        if !has_progress_deadline(&self.d) || self.stopped {
            return None;
        }
        let status = self.d.status.as_ref()?;
        let current = get_condition(status, "Progressing")?;
        if deployment_complete(&self.d, status) || current.reason.as_deref() == Some(reason::TIMED_OUT) {
            return None;
        }
        let from = current.last_update_time.as_ref()?.0;
        let deadline = from
            .checked_add(jiff::SignedDuration::from_secs(progress_deadline(&self.d)))
            .ok()?;
        let after = deadline.duration_since(self.now);
        Some(if after.is_negative() {
            Duration::from_secs(1)
        } else {
            after.unsigned_abs() + Duration::from_secs(1)
        })
    }
}
