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
use futures::StreamExt;
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
/// Binding and status writes of one pass in flight at once.
const WRITES_IN_FLIGHT: usize = 32;

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
        // The plan is made for all pods at once; its writes go out together (a burst of pods
        // would otherwise reach their nodes one API round trip apart).
        let client = &self.client;
        // Collected first: a lazily mapped stream of these futures trips the compiler's Send
        // check on the pod references' lifetimes.
        let writes: Vec<_> = plan::plan(&pending, &nodes, load)
            .into_iter()
            .map(|(pod, outcome)| write_outcome(client, pod, outcome))
            .collect();
        let written: Vec<_> = futures::stream::iter(writes)
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
        let mut failed = None;
        for (pod, outcome, result) in written {
            match (outcome, result) {
                (Ok(node), Ok(true)) => self.bound(pod, &node),
                (Err(fit), Ok(true)) => {
                    self.events.publish(pod, WARNING, "FailedScheduling", fit.to_string());
                }
                (_, Ok(_)) => {}
                (_, Err(err)) => {
                    tracing::debug!(pod = ?pod.metadata.name, error = %err, "scheduling write failed");
                    failed = Some(err);
                }
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

    /// Records a binding the API accepted: an event, and the assumption that the pod is on
    /// `node` until the cache shows it.
    fn bound(&mut self, pod: &Pod, node: &str) {
        let (namespace, name) = names(pod);
        // Per pod, as kube-scheduler's verbose level: the Scheduled event says it to users.
        tracing::debug!(pod = %format!("{namespace}/{name}"), node, "bound");
        let message = format!("Successfully assigned {namespace}/{name} to {node}");
        self.events.publish(pod, NORMAL, "Scheduled", message);
        self.assumed
            .insert(uid(pod).to_string(), (node.to_string(), Instant::now()));
    }
}

type Written<'a> = (&'a Pod, Result<String, plan::FitError>, anyhow::Result<bool>);

/// The write one planned outcome needs: the binding, or the unschedulable condition.
async fn write_outcome<'a>(
    client: &kube::Client,
    pod: &'a Pod,
    outcome: Result<String, plan::FitError>,
) -> Written<'a> {
    let result = match &outcome {
        Ok(node) => post_binding(client, pod, node).await,
        Err(fit) => report_unschedulable(client, pod, &fit.to_string()).await,
    };
    (pod, outcome, result)
}

/// POSTs the pod's binding; false when it was bound or deleted meanwhile (the cache will show
/// it).
async fn post_binding(client: &kube::Client, pod: &Pod, node: &str) -> anyhow::Result<bool> {
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
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    match api
        .create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &binding)
        .await
    {
        Ok(_) => Ok(true),
        Err(err) if matches!(api_code(&err), Some(404 | 409)) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Sets the PodScheduled=False condition (once; unchanged conditions are not rewritten).
async fn report_unschedulable(client: &kube::Client, pod: &Pod, message: &str) -> anyhow::Result<bool> {
    let Some(conditions) = plan::unschedulable_conditions(pod, message, jiff::Timestamp::now()) else {
        return Ok(false);
    };
    let (namespace, name) = names(pod);
    // Per pod and attempt; the FailedScheduling event says it to users.
    tracing::debug!(pod = %format!("{namespace}/{name}"), message, "unschedulable");
    let patch = json!({
        "metadata": {"resourceVersion": pod.metadata.resource_version},
        "status": {"conditions": conditions},
    });
    let api = Api::<Pod>::namespaced(client.clone(), namespace);
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(err) if api_code(&err) == Some(404) => Ok(false),
        Err(err) => Err(err.into()),
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
