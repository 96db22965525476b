//! The scheduler: binds pending pods to Ready, schedulable nodes through the `pods/binding`
//! subresource, spreading them by pod count, and marks the pods it cannot place
//! `PodScheduled=False` (reason Unschedulable) with upstream's message; they are retried
//! whenever a node or pod changes.
//!
//! [`plan`] decides (pure); this module watches pods and nodes and writes the decisions.

pub mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};

use crate::runtime::events::{Recorder, NORMAL, WARNING};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::runtime::api_code;
use crate::runtime::informer::{Backoff, Informer};
use crate::ControllerConfig;

/// A full pass runs at least this often even without changes.
const RESYNC: Duration = Duration::from_secs(30);
/// How long a binding we sent is counted before the pod cache shows it.
const ASSUME_FOR: Duration = Duration::from_secs(30);

/// Watches pods and nodes and schedules until the process ends.
pub async fn run(client: kube::Client, config: ControllerConfig) -> anyhow::Result<()> {
    let _ = config;
    let wake = Arc::new(Notify::new());
    let nodes = Informer::start(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        wake.clone(),
    );
    let pods = Informer::start(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        wake.clone(),
    );
    nodes.ready().await?;
    pods.ready().await?;
    let mut scheduler = Scheduler::new(client);
    let mut backoff = Backoff::new();
    loop {
        let nodes = nodes.store.state();
        let pods = pods.store.state();
        match scheduler.pass(&nodes, &pods).await {
            Ok(()) => backoff.reset(),
            Err(err) => {
                let delay = backoff.fail();
                crate::runtime::log_retry("scheduling", &err, delay);
                tokio::time::sleep(delay).await;
                continue;
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// The writing half: binds and reports, remembering bindings until the cache shows them (the
/// scheduler cache's "assumed pods" upstream) so that spreading counts them at once.
struct Scheduler {
    client: kube::Client,
    /// Pod uid -> (node, when bound).
    assumed: HashMap<String, (String, Instant)>,
    events: Recorder,
}

impl Scheduler {
    fn new(client: kube::Client) -> Self {
        Scheduler {
            events: Recorder::new(client.clone(), "default-scheduler"),
            client,
            assumed: HashMap::new(),
        }
    }

    /// One pass over every pending pod; a failed write fails the pass (after the other pods
    /// were tried) so that the loop retries it with backoff.
    async fn pass(&mut self, nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> anyhow::Result<()> {
        self.forget_seen(pods);
        let mut load = plan::load(pods.iter().map(|p| p.as_ref()));
        let mut pending = Vec::new();
        for pod in pods.iter().filter(|p| plan::is_pending(p)) {
            match self.assumed.get(uid(pod)) {
                Some((node, _)) => *load.entry(node.clone()).or_default() += 1,
                None => pending.push(pod.as_ref()),
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let nodes: Vec<&Node> = nodes.iter().map(|n| n.as_ref()).collect();
        let mut failed = None;
        for (pod, outcome) in plan::plan(&pending, &nodes, load) {
            let result = match outcome {
                Ok(node) => self.bind(pod, &node).await,
                Err(fit) => self.report_unschedulable(pod, &fit.to_string()).await,
            };
            if let Err(err) = result {
                tracing::debug!(pod = ?pod.metadata.name, error = %err, "scheduling write failed");
                failed = Some(err);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Drops assumptions the cache has caught up with (bound or gone) or that are too old.
    fn forget_seen(&mut self, pods: &[Arc<Pod>]) {
        let unbound: HashMap<&str, &Pod> = pods
            .iter()
            .filter(|p| plan::is_pending(p))
            .map(|p| (uid(p), p.as_ref()))
            .collect();
        self.assumed
            .retain(|uid, (_, since)| unbound.contains_key(uid.as_str()) && since.elapsed() < ASSUME_FOR);
    }

    async fn bind(&mut self, pod: &Pod, node: &str) -> anyhow::Result<()> {
        let (namespace, name) = names(pod);
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                uid: pod.metadata.uid.clone(),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                kind: Some("Node".into()),
                api_version: Some("v1".into()),
                name: Some(node.to_string()),
                ..ObjectReference::default()
            },
        };
        let api = Api::<Pod>::namespaced(self.client.clone(), namespace);
        let result = api
            .create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &binding)
            .await;
        match result {
            Ok(_) => {
                tracing::info!(pod = %format!("{namespace}/{name}"), node, "bound");
                let message = format!("Successfully assigned {namespace}/{name} to {node}");
                self.events.publish(pod, NORMAL, "Scheduled", message);
                self.assumed
                    .insert(uid(pod).to_string(), (node.to_string(), Instant::now()));
                Ok(())
            }
            // Bound meanwhile (or deleted): the cache will show it.
            Err(err) if matches!(api_code(&err), Some(404 | 409)) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn report_unschedulable(&self, pod: &Pod, message: &str) -> anyhow::Result<()> {
        let Some(conditions) = plan::unschedulable_conditions(pod, message, jiff::Timestamp::now()) else {
            return Ok(());
        };
        let (namespace, name) = names(pod);
        tracing::info!(pod = %format!("{namespace}/{name}"), message, "unschedulable");
        self.events
            .publish(pod, WARNING, "FailedScheduling", message.to_string());
        let patch = json!({
            "metadata": {"resourceVersion": pod.metadata.resource_version},
            "status": {"conditions": conditions},
        });
        let api = Api::<Pod>::namespaced(self.client.clone(), namespace);
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if api_code(&err) == Some(404) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

fn names(pod: &Pod) -> (&str, &str) {
    (
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
    )
}
