//! Node IPAM: gives each node without `spec.podCIDR` a block of `--cluster-cidr` (a /24 per
//! IPv4 family, a /64 per IPv6 one; `spec.podCIDR` and `spec.podCIDRs`), never the same block
//! to two nodes. What is held is rebuilt from the nodes themselves on every pass, so a restart
//! loses nothing (upstream's range allocator).
//!
//! [`cidrs`] decides (pure); this module watches nodes and writes the assignments.

pub mod cidrs;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::runtime::api_code;
use crate::runtime::informer::{Backoff, Informer};
use crate::ControllerConfig;
use cidrs::{CidrSet, NodeCidrs};

/// A full pass runs at least this often even without changes.
const RESYNC: Duration = Duration::from_secs(30);
/// How long an assignment we wrote is held before the node cache shows it.
const IN_FLIGHT_FOR: Duration = Duration::from_secs(30);

/// Watches nodes and assigns pod CIDRs until the process ends.
pub async fn run(client: kube::Client, config: ControllerConfig) -> anyhow::Result<()> {
    let sets = cidrs::parse_cluster_cidrs(&config.cluster_cidr).context("--cluster-cidr")?;
    if sets.is_empty() {
        tracing::info!("no cluster CIDR: node IPAM is off");
        return futures::future::pending().await;
    }
    let wake = Arc::new(Notify::new());
    let nodes = Informer::start(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        wake.clone(),
    );
    nodes.ready().await?;
    let mut ipam = Ipam {
        client,
        sets,
        in_flight: HashMap::new(),
    };
    let mut backoff = Backoff::new();
    loop {
        match ipam.pass(&nodes.store.state()).await {
            Ok(()) => backoff.reset(),
            Err(err) => {
                let delay = backoff.fail();
                crate::runtime::log_retry("node IPAM", &err, delay);
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

/// The pod CIDRs a node holds: spec.podCIDRs, or spec.podCIDR alone.
fn held(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    match spec.and_then(|s| s.pod_cidrs.clone()).filter(|c| !c.is_empty()) {
        Some(cidrs) => cidrs,
        None => spec
            .and_then(|s| s.pod_cidr.clone())
            .filter(|c| !c.is_empty())
            .into_iter()
            .collect(),
    }
}

struct Ipam {
    client: kube::Client,
    sets: Vec<CidrSet>,
    /// Assignments written but not yet seen in the cache: node -> (CIDRs, when written).
    in_flight: HashMap<String, (Vec<String>, Instant)>,
}

impl Ipam {
    async fn pass(&mut self, nodes: &[Arc<Node>]) -> anyhow::Result<()> {
        let seen: Vec<NodeCidrs> = nodes
            .iter()
            .filter_map(|n| {
                Some(NodeCidrs {
                    name: n.metadata.name.clone()?,
                    cidrs: held(n),
                })
            })
            .collect();
        self.in_flight.retain(|name, (_, since)| {
            since.elapsed() < IN_FLIGHT_FOR && seen.iter().any(|n| &n.name == name && n.cidrs.is_empty())
        });
        let in_flight: Vec<NodeCidrs> = self
            .in_flight
            .iter()
            .map(|(name, (cidrs, _))| NodeCidrs {
                name: name.clone(),
                cidrs: cidrs.clone(),
            })
            .collect();
        let assignments = cidrs::plan(&mut self.sets, &seen, &in_flight);
        let waiting = seen.iter().filter(|n| n.cidrs.is_empty()).count();
        if assignments.len() + in_flight.len() < waiting {
            tracing::warn!(waiting, "no pod CIDR left for some nodes (CIDRNotAvailable)");
        }
        let mut failed = None;
        for assignment in assignments {
            let Some(node) = nodes
                .iter()
                .find(|n| n.metadata.name.as_ref() == Some(&assignment.name))
            else {
                continue;
            };
            match self.assign(node, &assignment.cidrs).await {
                Ok(()) => {
                    self.in_flight
                        .insert(assignment.name, (assignment.cidrs, Instant::now()));
                }
                Err(err) => {
                    failed.get_or_insert(err);
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Writes spec.podCIDR and spec.podCIDRs, conditional on the node being unchanged.
    async fn assign(&self, node: &Node, cidrs: &[String]) -> anyhow::Result<()> {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs},
        });
        let api = Api::<Node>::all(self.client.clone());
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(node = name, ?cidrs, "pod CIDR assigned");
                Ok(())
            }
            Err(err) if api_code(&err) == Some(404) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}
