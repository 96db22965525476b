//! The running proxy: watch Services, EndpointSlices and this Node, coalesce changes that
//! arrive close together, compute the desired table and apply it; then the side effects that
//! follow a sync (metrics, health, healthCheckNodePort servers, UDP conntrack cleanup).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::Notify;

use crate::apply::{Applier, Nft};
use crate::config::{Cidr, ModelConfig, NodeInfo};
use crate::conntrack::{self, UdpFrontends};
use crate::desired::ruleset_for;
use crate::health::{self, HealthCheckServers, ProxyHealth};
use crate::metrics::{Metrics, SyncFigures};
use crate::services::service_ports;

/// The annotation EndpointSlices carry with the time of the change that caused them.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The model's knobs. When `cluster_cidr` is None, the Node's podCIDR is used (upstream's
    /// detect-local-mode NodeCIDR).
    pub model: ModelConfig,
    /// Wait this long after a change before syncing, to take the changes that follow with it.
    pub min_sync_interval: Duration,
    /// Full resync period (also what the health timeout derives from: twice this, capped).
    pub full_sync_interval: Duration,
    /// `/healthz`, `/livez` and `/metrics` (upstream 0.0.0.0:10256).
    pub healthz_bind: Option<SocketAddr>,
    /// `/metrics` again on upstream's metrics address (127.0.0.1:10249).
    pub metrics_bind: Option<SocketAddr>,
    /// How nft is run.
    pub nft: Nft,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            model: ModelConfig::default(),
            min_sync_interval: Duration::from_millis(5),
            full_sync_interval: Duration::from_secs(300),
            healthz_bind: Some(SocketAddr::from(([0, 0, 0, 0], 10256))),
            metrics_bind: Some(SocketAddr::from(([127, 0, 0, 1], 10249))),
            nft: Nft::default(),
        }
    }
}

/// Runs the proxy for `node_name` until an unrecoverable error (watch errors are retried with
/// backoff; nft errors lead to a full sync on the next round).
pub async fn run(client: Client, node_name: String, node_ip: Ipv4Addr, config: ProxyConfig) -> anyhow::Result<()> {
    let changed = Arc::new(Notify::new());
    let metrics = Arc::new(Metrics::default());
    // Upstream's health timeout is twice the sync period; a long resync period should not
    // make a stuck proxy look healthy for long, so it is capped at a minute.
    let health_timeout = (config.full_sync_interval * 2).min(Duration::from_secs(60));
    let health = Arc::new(ProxyHealth::new(health_timeout));

    let services = watch(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        &changed,
        &health,
        &metrics,
    );
    let slices = watch(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
        &changed,
        &health,
        &metrics,
    );
    let node_config = watcher::Config::default().fields(&format!("metadata.name={node_name}"));
    let node = watch(Api::<Node>::all(client), node_config, &changed, &health, &metrics);

    for bind in [config.healthz_bind, config.metrics_bind].into_iter().flatten() {
        let router = health::router(health.clone(), metrics.clone());
        tokio::spawn(async move {
            if let Err(error) = health::serve(bind, router).await {
                tracing::warn!(%bind, %error, "proxy health/metrics server stopped");
            }
        });
    }

    for store in [
        services.wait_until_ready().await,
        slices.wait_until_ready().await,
        node.wait_until_ready().await,
    ] {
        store?;
    }
    tracing::info!(node = %node_name, %node_ip, "proxy caches synced");
    let mut state = SyncLoop {
        applier: Arc::new(Mutex::new(Applier::new(config.nft.clone()))),
        health_checks: HealthCheckServers::new(Ipv4Addr::UNSPECIFIED, health.clone()),
        udp: UdpFrontends::new(),
        trigger_times: BTreeMap::new(),
        first_sync: true,
        node_ip,
        node_name,
        config,
        metrics,
        health,
    };
    let mut next_full = Instant::now() + state.config.full_sync_interval;
    loop {
        let full_due = tokio::time::sleep_until(next_full.into());
        tokio::select! {
            _ = changed.notified() => {}
            _ = full_due => {
                state.applier.lock().unwrap_or_else(|e| e.into_inner()).need_full_sync();
                next_full = Instant::now() + state.config.full_sync_interval;
            }
        }
        // Coalesce: changes that arrive within the interval go out in the same transaction.
        tokio::time::sleep(state.config.min_sync_interval).await;
        if !state.sync(&services, &slices, &node).await {
            // Retry soon; the applier does a full sync next.
            tokio::time::sleep(Duration::from_secs(1)).await;
            changed.notify_one();
        }
    }
}

/// Starts a reflector for `api`; every event wakes the sync loop.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: &Arc<Notify>,
    health: &Arc<ProxyHealth>,
    metrics: &Arc<Metrics>,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let changed = changed.clone();
    let health = health.clone();
    let metrics = metrics.clone();
    let kind = std::any::type_name::<K>().rsplit("::").next().unwrap_or("object");
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    health.queued();
                    metrics.queued();
                    changed.notify_one();
                }
                Err(error) => tracing::warn!(kind, %error, "watch failed; retrying with backoff"),
            }
        }
    });
    reader
}

struct SyncLoop {
    applier: Arc<Mutex<Applier>>,
    health_checks: HealthCheckServers,
    udp: UdpFrontends,
    /// Last trigger time seen per slice (namespace/name), for network programming latency.
    trigger_times: BTreeMap<String, String>,
    first_sync: bool,
    node_ip: Ipv4Addr,
    node_name: String,
    config: ProxyConfig,
    metrics: Arc<Metrics>,
    health: Arc<ProxyHealth>,
}

impl SyncLoop {
    /// One sync; false when nft failed.
    async fn sync(&mut self, services: &Store<Service>, slices: &Store<EndpointSlice>, node: &Store<Node>) -> bool {
        let start = Instant::now();
        let services = services.state();
        let slices = slices.state();
        let this_node = node.state().into_iter().next();
        self.health.set_node_deleting(
            this_node
                .as_ref()
                .is_some_and(|n| n.metadata.deletion_timestamp.is_some()),
        );
        let mut model = self.config.model.clone();
        if model.cluster_cidr.is_none() {
            model.cluster_cidr = this_node
                .as_ref()
                .and_then(|n| n.spec.as_ref()?.pod_cidr.as_deref()?.parse::<Cidr>().ok());
        }
        let node_info = NodeInfo {
            name: self.node_name.clone(),
            ips: vec![self.node_ip],
        };
        // The model and nft both take long at 10,000 Services: off the runtime's threads, so
        // the health servers keep answering meanwhile.
        let applier = self.applier.clone();
        let slices_for_model = slices.clone();
        let result = tokio::task::spawn_blocking(move || {
            let ports = service_ports(&services, &slices_for_model, &node_info, &model);
            let ruleset = ruleset_for(&ports, &node_info, &model);
            let report = applier.lock().unwrap_or_else(|e| e.into_inner()).sync(&ruleset);
            report.map(|report| (report, ports, ruleset))
        })
        .await
        .map_err(|e| anyhow::anyhow!("sync task: {e}"))
        .and_then(|r| r.map_err(anyhow::Error::from));
        let (report, ports, ruleset) = match result {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(%error, "syncing the nftables table failed; next sync is a full one");
                self.metrics.sync_failed();
                return false;
            }
        };
        self.health.updated();
        self.metrics.synced(SyncFigures {
            full: report.full,
            duration: start.elapsed(),
            rules: ruleset.rule_count(),
            elements: ruleset.element_count(),
            chains: ruleset.chains.len(),
            service_ports: ports.len(),
        });
        if report.changed {
            tracing::debug!(
                full = report.full,
                nft_ms = report.duration.as_millis(),
                ports = ports.len(),
                "synced"
            );
        }
        self.observe_programming_latency(&slices);
        self.health_checks.sync(health::service_health(&ports)).await;
        let udp = conntrack::udp_frontends(&ports, &[self.node_ip]);
        // After a restart the previous endpoints are unknown: treating every frontend as new
        // would cut the UDP flows that a restart must leave alone, so the first sync only
        // records them.
        let stale = if self.first_sync {
            Vec::new()
        } else {
            conntrack::stale(&self.udp, &udp)
        };
        self.udp = udp;
        if !stale.is_empty() {
            // Deletions run after the new rules are in, so the next packet takes a new path.
            tokio::task::spawn_blocking(move || conntrack::delete(&stale));
        }
        self.first_sync = false;
        true
    }

    /// Records, for slices whose trigger time changed since the last sync, how long ago that
    /// change was triggered (skipped on the first sync: those changes predate the proxy).
    fn observe_programming_latency(&mut self, slices: &[Arc<EndpointSlice>]) {
        let now = jiff::Timestamp::now();
        let mut seen = BTreeMap::new();
        for slice in slices {
            let Some(trigger) = slice
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LAST_CHANGE_TRIGGER_TIME))
            else {
                continue;
            };
            let key = format!(
                "{}/{}",
                slice.metadata.namespace.as_deref().unwrap_or_default(),
                slice.metadata.name.as_deref().unwrap_or_default()
            );
            let new = self.trigger_times.get(&key) != Some(trigger);
            if new && !self.first_sync {
                if let Ok(at) = trigger.parse::<jiff::Timestamp>() {
                    if let Ok(latency) = Duration::try_from(now.duration_since(at)) {
                        self.metrics.programmed(latency);
                    }
                }
            }
            seen.insert(key, trigger.clone());
        }
        self.trigger_times = seen;
    }
}
