//! Node lifecycle: nodes renew a Lease in `kube-node-lease`; a node silent for longer than
//! `--node-monitor-grace-period` turns Ready=Unknown and is tainted `unreachable` (a node
//! reporting Ready=False is tainted `not-ready`), the Ready condition of its pods turns False
//! so their endpoints stop being ready, NoExecute taints evict the pods that do not tolerate
//! them after their tolerationSeconds, and terminating or orphaned pods are removed (PodGC).
//!
//! [`health`] and [`pods`] decide (pure); this module watches nodes, leases and pods, applies
//! the decisions and sleeps until the next deadline (a node going stale, an eviction, a grace
//! period running out) or the next change.

pub mod health;
pub mod pods;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::runtime::api_code;
use crate::runtime::events::{Recorder, NORMAL};
use crate::runtime::informer::{Backoff, Informer};
use crate::scheduler::plan::{node_of, ready_status, taints};
use crate::ControllerConfig;
use pods::NodeState;

/// The namespace kubelets keep their Leases in.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// A full pass runs at least this often even without changes or deadlines.
const RESYNC: Duration = Duration::from_secs(5);
/// Never sleep less than this between passes (deadlines are in whole seconds anyway).
const MIN_WAIT: Duration = Duration::from_millis(20);

/// Watches nodes, node leases and pods until the process ends.
pub async fn run(client: kube::Client, config: ControllerConfig) -> anyhow::Result<()> {
    let wake = Arc::new(Notify::new());
    let nodes = Informer::start(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        wake.clone(),
    );
    let leases = Informer::start(
        Api::<Lease>::namespaced(client.clone(), NODE_LEASE_NAMESPACE),
        watcher::Config::default(),
        wake.clone(),
    );
    let pods = Informer::start(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        wake.clone(),
    );
    nodes.ready().await?;
    leases.ready().await?;
    pods.ready().await?;
    let mut lifecycle = Lifecycle::new(client, config);
    let mut backoff = Backoff::new();
    loop {
        let now = Timestamp::now();
        let state = Snapshot {
            nodes: nodes.store.state(),
            leases: leases.store.state(),
            pods: pods.store.state(),
        };
        let wait = match lifecycle.pass(&state, now).await {
            Ok(next) => {
                backoff.reset();
                next.map_or(RESYNC, |at| until(at, Timestamp::now()).clamp(MIN_WAIT, RESYNC))
            }
            Err(err) => {
                let delay = backoff.fail();
                crate::runtime::log_retry("node lifecycle", &err, delay);
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Time from `now` to `at` (zero when past), plus a little so the deadline has passed on wake.
fn until(at: Timestamp, now: Timestamp) -> Duration {
    let left = at.duration_since(now);
    Duration::try_from(left).unwrap_or(Duration::ZERO) + Duration::from_millis(10)
}

/// The caches one pass reads.
struct Snapshot {
    nodes: Vec<Arc<Node>>,
    leases: Vec<Arc<Lease>>,
    pods: Vec<Arc<Pod>>,
}

/// The writing half, with what a pass remembers for the next one.
struct Lifecycle {
    client: kube::Client,
    config: ControllerConfig,
    /// When this controller started watching (every node gets a full grace period from here).
    started: Timestamp,
    /// Nodes whose Ready condition was True in the previous pass (to mark pods not ready once
    /// when a node reports Ready=False; Unknown nodes are handled on every pass).
    was_ready: HashMap<String, bool>,
    events: Recorder,
    /// Nodes pods are bound to that do not exist, since when.
    missing_since: HashMap<String, Timestamp>,
}

/// Keeps the earliest of a set of deadlines.
#[derive(Default)]
struct Earliest(Option<Timestamp>);

impl Earliest {
    fn add(&mut self, at: Timestamp) {
        self.0 = Some(self.0.map_or(at, |t| t.min(at)));
    }
}

impl Lifecycle {
    fn new(client: kube::Client, config: ControllerConfig) -> Self {
        Lifecycle {
            events: Recorder::new(client.clone(), "node-controller"),
            client,
            config,
            started: Timestamp::now(),
            was_ready: HashMap::new(),
            missing_since: HashMap::new(),
        }
    }

    /// One pass over every node and pod; returns the next deadline. Writes that fail do not
    /// stop the pass; the first error is returned once everything else was tried.
    async fn pass(&mut self, state: &Snapshot, now: Timestamp) -> anyhow::Result<Option<Timestamp>> {
        let leases: HashMap<&str, &Lease> = state
            .leases
            .iter()
            .filter_map(|l| Some((l.metadata.name.as_deref()?, l.as_ref())))
            .collect();
        let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
        for pod in &state.pods {
            if let Some(node) = node_of(pod) {
                by_node.entry(node).or_default().push(pod);
            }
        }
        let mut next = Earliest::default();
        let mut failed: Option<anyhow::Error> = None;
        let mut note = |result: anyhow::Result<()>| {
            if let Err(err) = result {
                tracing::debug!(error = %err, "node lifecycle write failed");
                failed.get_or_insert(err);
            }
        };
        let mut ready = HashMap::new();
        for node in &state.nodes {
            let Some(name) = node.metadata.name.as_deref() else {
                continue;
            };
            let pods = by_node.get(name).map(Vec::as_slice).unwrap_or(&[]);
            match self
                .node_pass(node, leases.get(name).copied(), pods, now, &mut next)
                .await
            {
                Ok(is_ready) => {
                    ready.insert(name.to_string(), is_ready);
                }
                Err(err) => note(Err(err)),
            }
        }
        self.was_ready = ready.clone();
        self.missing_since
            .retain(|node, _| by_node.contains_key(node.as_str()) && !ready.contains_key(node));
        for (node, pods) in &by_node {
            let state = match ready.get(*node) {
                Some(true) => NodeState::Ready,
                Some(false) => NodeState::NotReady,
                // A node whose pass failed is not judged now.
                None if state.nodes.iter().any(|n| n.metadata.name.as_deref() == Some(node)) => continue,
                None => NodeState::Missing(*self.missing_since.entry(node.to_string()).or_insert(now)),
            };
            for pod in pods {
                let Some(at) = pods::removal_at(pod, state) else {
                    continue;
                };
                if at <= now {
                    note(self.remove(pod).await);
                } else {
                    next.add(at);
                }
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(next.0),
        }
    }

    /// Health, taints, pod readiness and evictions of one node; returns whether it is Ready.
    async fn node_pass(
        &self,
        node: &Node,
        lease: Option<&Lease>,
        pods: &[&Pod],
        now: Timestamp,
        next: &mut Earliest,
    ) -> anyhow::Result<bool> {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let heartbeat = health::last_heartbeat(node, lease, self.started);
        let stale = health::stale_at(heartbeat, self.config.node_monitor_grace_period);
        let mut node = node.clone();
        if stale <= now {
            if let Some(conditions) = health::stale_conditions(&node, now) {
                tracing::info!(node = name, "node stopped posting status; Ready=Unknown");
                node = self.patch_node_status(&node, json!({"conditions": conditions})).await?;
                let message = format!("Node {name} status is now: NodeNotReady");
                self.events.publish(&node, NORMAL, "NodeNotReady", message);
            }
        } else {
            next.add(stale);
        }
        if let Some(wanted) = health::desired_taints(&node, now) {
            let listed: Vec<String> = wanted.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect();
            if listed.is_empty() {
                tracing::info!(node = name, "node taints lifted");
            } else {
                tracing::info!(node = name, taints = ?listed, "tainting");
            }
            let taints = if wanted.is_empty() { Value::Null } else { json!(wanted) };
            node = self.patch_node(&node, json!({"taints": taints})).await?;
        }
        let status = ready_status(&node);
        let is_ready = status == Some("True");
        let became_not_ready = status == Some("False") && self.was_ready.get(name).copied().unwrap_or(false);
        let mut failed = None;
        if status == Some("Unknown") || became_not_ready {
            for pod in pods {
                if let Some(conditions) = pods::not_ready_conditions(pod, now) {
                    if let Err(err) = self.patch_pod_status(pod, json!({"conditions": conditions})).await {
                        failed.get_or_insert(err);
                    }
                }
            }
        }
        for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
            let Some(at) = pods::eviction_at(pod, taints(&node), self.config.default_not_ready_toleration) else {
                continue;
            };
            if at <= now {
                tracing::info!(node = name, pod = ?pod.metadata.name, "evicting: NoExecute taint not tolerated");
                if let Err(err) = self.evict(pod).await {
                    failed.get_or_insert(err);
                }
            } else {
                next.add(at);
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(is_ready),
        }
    }

    async fn patch_node_status(&self, node: &Node, status: Value) -> anyhow::Result<Node> {
        let api = Api::<Node>::all(self.client.clone());
        let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "status": status});
        let name = node.metadata.name.as_deref().unwrap_or("");
        Ok(api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?)
    }

    async fn patch_node(&self, node: &Node, spec: Value) -> anyhow::Result<Node> {
        let api = Api::<Node>::all(self.client.clone());
        let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": spec});
        let name = node.metadata.name.as_deref().unwrap_or("");
        Ok(api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?)
    }

    async fn patch_pod_status(&self, pod: &Pod, status: Value) -> anyhow::Result<()> {
        let (api, name) = self.pod_api(pod);
        let patch = json!({"metadata": {"resourceVersion": pod.metadata.resource_version}, "status": status});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(err) if api_code(&err) != Some(404) => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// Deletes the pod with its own grace period (it becomes terminating on its node).
    async fn evict(&self, pod: &Pod) -> anyhow::Result<()> {
        self.delete(pod, None).await
    }

    /// Removes the pod at once (gracePeriodSeconds=0), as the kubelet or PodGC does.
    async fn remove(&self, pod: &Pod) -> anyhow::Result<()> {
        tracing::info!(pod = ?pod.metadata.name, node = ?node_of(pod), "removing terminated or orphaned pod");
        self.delete(pod, Some(0)).await
    }

    async fn delete(&self, pod: &Pod, grace: Option<u32>) -> anyhow::Result<()> {
        let (api, name) = self.pod_api(pod);
        let params = DeleteParams {
            grace_period_seconds: grace,
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            // Gone already, or replaced by a pod of the same name.
            Err(err) if !matches!(api_code(&err), Some(404 | 409)) => Err(err.into()),
            _ => Ok(()),
        }
    }

    fn pod_api<'a>(&self, pod: &'a Pod) -> (Api<Pod>, &'a str) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        (
            Api::namespaced(self.client.clone(), namespace),
            pod.metadata.name.as_deref().unwrap_or(""),
        )
    }
}
