//! The running proxy: watch Services, EndpointSlices and this Node, coalesce changes that
//! arrive close together, compute the desired table and apply it; then the side effects that
//! follow a sync (metrics, health, healthCheckNodePort servers, UDP conntrack cleanup).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::Notify;

use crate::apply::{self, Applier, Nft, SyncReport};
use crate::config::{Cidr, ModelConfig, NodeInfo};
use crate::conntrack::{self, UdpFrontends};
use crate::health::{self, HealthCheckServers, ProxyHealth};
use crate::incremental::{service_key, Delta, IncrementalModel, ServiceKey, TableCounts};
use crate::metrics::{Metrics, SyncFigures};
use crate::services::slice_service;

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

    let dirty = Arc::new(Mutex::new(Dirty::everything()));
    let wake = Wake {
        changed: changed.clone(),
        dirty: dirty.clone(),
        health: health.clone(),
        metrics: metrics.clone(),
    };
    let services = watch(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        &wake,
        |s| Scope::Service(service_key(s)),
    );
    let slices = watch(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
        &wake,
        |s| slice_service(s).map_or(Scope::Nothing, Scope::Service),
    );
    let node_config = watcher::Config::default().fields(&format!("metadata.name={node_name}"));
    // The Node's status changes often (heartbeats, conditions); what the model takes from it
    // (addresses, podCIDR) is compared at every sync, which rebuilds only when it changed.
    let node = watch(Api::<Node>::all(client), node_config, &wake, |_| Scope::Nothing);

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
        model: Arc::new(Mutex::new(None)),
        dirty,
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
                lock(&state.dirty).all = true;
                next_full = Instant::now() + state.config.full_sync_interval;
            }
        }
        // Coalesce: changes that arrive within the interval go out in the same transaction.
        tokio::time::sleep(state.config.min_sync_interval).await;
        if !state.sync(&services, &slices, &node).await {
            // Retry soon, from scratch: the model is rebuilt and the applier syncs in full.
            lock(&state.dirty).all = true;
            tokio::time::sleep(Duration::from_secs(1)).await;
            changed.notify_one();
        }
    }
}

/// What a watch event invalidates.
enum Scope {
    /// One Service's share of the table.
    Service(ServiceKey),
    /// All of it (a watch relisted, and deletions may have been missed).
    Everything,
    /// Nothing the proxy programs.
    Nothing,
}

/// What changed since the last sync.
#[derive(Debug, Default)]
struct Dirty {
    all: bool,
    services: HashSet<ServiceKey>,
}

impl Dirty {
    fn everything() -> Dirty {
        Dirty {
            all: true,
            services: HashSet::new(),
        }
    }

    fn mark(&mut self, scope: Scope) {
        match scope {
            Scope::Service(key) if !self.all => {
                self.services.insert(key);
            }
            Scope::Service(_) | Scope::Nothing => {}
            Scope::Everything => {
                self.all = true;
                self.services.clear();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every watch event touches: the dirty set, the sync loop's wake-up and the health and
/// metrics queues.
#[derive(Clone)]
struct Wake {
    changed: Arc<Notify>,
    dirty: Arc<Mutex<Dirty>>,
    health: Arc<ProxyHealth>,
    metrics: Arc<Metrics>,
}

/// Starts a reflector for `api`; every event marks what it invalidates and wakes the sync loop.
fn watch<K>(api: Api<K>, config: watcher::Config, wake: &Wake, scope: fn(&K) -> Scope) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let wake = wake.clone();
    let kind = std::any::type_name::<K>().rsplit("::").next().unwrap_or("object");
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    let scope = match &event {
                        watcher::Event::Apply(object) | watcher::Event::Delete(object) => scope(object),
                        watcher::Event::InitApply(_) | watcher::Event::Init | watcher::Event::InitDone => {
                            Scope::Everything
                        }
                    };
                    lock(&wake.dirty).mark(scope);
                    wake.health.queued();
                    wake.metrics.queued();
                    wake.changed.notify_one();
                }
                Err(error) => tracing::warn!(kind, %error, "watch failed; retrying with backoff"),
            }
        }
    });
    reader
}

struct SyncLoop {
    applier: Arc<Mutex<Applier>>,
    /// The model as last applied (None: rebuild it on the next sync).
    model: Arc<Mutex<Option<IncrementalModel>>>,
    dirty: Arc<Mutex<Dirty>>,
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
        let services = services.clone();
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
        let model_config = model;
        let dirty = std::mem::take(&mut *lock(&self.dirty));
        let slices = Arc::new(slices);
        // A rebuild takes long at 10,000 Services: off the runtime's threads, so the health
        // servers keep answering meanwhile.
        let (applier, model) = (self.applier.clone(), self.model.clone());
        let node_ip = self.node_ip;
        let (services_for_model, slices_for_model) = (services.clone(), slices.clone());
        let result = tokio::task::spawn_blocking(move || {
            let mut model = lock(&model);
            let (report, changed) = match sync_model(
                &mut model,
                &mut lock(&applier),
                dirty,
                &services_for_model,
                &slices_for_model,
                node_info,
                model_config,
            ) {
                Ok(done) => done,
                Err(error) => {
                    *model = None;
                    return Err(error);
                }
            };
            let derive_start = Instant::now();
            let model = model.as_ref().expect("a successful sync leaves a model");
            // What the side effects need, read from the model without copying its ports.
            let derived = Derived {
                port_count: model.port_count(),
                health: health::service_health(model.ports_with_side_effects()),
                udp: conntrack::udp_frontends(model.ports_with_side_effects(), &[node_ip]),
                counts: model.counts(),
                took: derive_start.elapsed(),
            };
            Ok((report, changed, derived))
        })
        .await
        .map_err(|e| anyhow::anyhow!("sync task: {e}"))
        .and_then(|r| r.map_err(anyhow::Error::from));
        let (report, changed_services, derived) = match result {
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
            rules: derived.counts.rules,
            elements: derived.counts.elements,
            chains: derived.counts.chains,
            service_ports: derived.port_count,
        });
        if report.changed {
            tracing::debug!(
                full = report.full,
                netlink = report.netlink,
                changed_services = changed_services.as_ref().map_or(derived.port_count, HashSet::len),
                apply_us = report.duration.as_micros(),
                derive_us = derived.took.as_micros(),
                sync_us = start.elapsed().as_micros(),
                ports = derived.port_count,
                "synced"
            );
        }
        self.observe_programming_latency(&slices, changed_services.as_ref());
        self.health_checks.sync(derived.health).await;
        let udp = derived.udp;
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
    fn observe_programming_latency(&mut self, slices: &[Arc<EndpointSlice>], changed: Option<&HashSet<ServiceKey>>) {
        let now = jiff::Timestamp::now();
        let mut seen = BTreeMap::new();
        let relevant = slices
            .iter()
            .filter(|slice| changed.is_none_or(|changed| belongs_to_any(slice, changed)));
        for slice in relevant {
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
        match changed {
            None => self.trigger_times = seen,
            Some(_) => self.trigger_times.extend(seen),
        }
    }
}

/// What a sync leaves for the steps that follow it (metrics, health-check servers, conntrack).
struct Derived {
    port_count: usize,
    health: BTreeMap<u16, health::ServiceHealth>,
    udp: UdpFrontends,
    counts: TableCounts,
    took: Duration,
}

/// The changed Services (None: all of them) and how the applier went.
type SyncOutcome = (SyncReport, Option<HashSet<ServiceKey>>);

/// Brings the model and the kernel up to date: a rebuild and a full (or whole-table diff) sync
/// when everything is dirty, the model is missing or the node's inputs changed; otherwise only
/// the dirty Services are recomputed and their fragments applied as a delta.
fn sync_model(
    model: &mut Option<IncrementalModel>,
    applier: &mut Applier,
    dirty: Dirty,
    services: &Store<Service>,
    slices: &[Arc<EndpointSlice>],
    node: NodeInfo,
    config: ModelConfig,
) -> Result<SyncOutcome, apply::Error> {
    let current = model.as_mut().filter(|m| !dirty.all && m.inputs() == (&node, &config));
    let Some(current) = current else {
        let all_services = services.state();
        let service_refs: Vec<&Service> = all_services.iter().map(|s| s.as_ref()).collect();
        let slice_refs: Vec<&EndpointSlice> = slices.iter().map(|s| s.as_ref()).collect();
        let rebuilt = IncrementalModel::build(node, config, &service_refs, &slice_refs);
        *model = None;
        let report = applier.sync_owned(rebuilt.ruleset())?;
        *model = Some(rebuilt);
        return Ok((report, None));
    };
    let mut delta = Delta::default();
    let mut by_service = slices_of(slices, &dirty.services);
    for key in &dirty.services {
        let service = services.get(&ObjectRef::new(&key.1).within(&key.0));
        let own = by_service.remove(key).unwrap_or_default();
        current.update(key.clone(), service.as_deref(), &own, &mut delta);
    }
    let report = applier.apply_delta(&delta.before, &delta.after)?;
    Ok((report, Some(dirty.services)))
}

/// Up to this many changed Services, their slices are found by comparing each slice with each
/// of them (no allocation); past it, by one pass that looks every slice's Service up.
const FEW_CHANGES: usize = 8;

/// The slices of the given Services, in one pass over all slices.
fn slices_of<'a>(
    slices: &'a [Arc<EndpointSlice>],
    keys: &HashSet<ServiceKey>,
) -> HashMap<ServiceKey, Vec<&'a EndpointSlice>> {
    let mut out: HashMap<ServiceKey, Vec<&EndpointSlice>> = HashMap::new();
    for slice in slices.iter().map(|s| s.as_ref()) {
        let key = if keys.len() <= FEW_CHANGES {
            keys.iter().find(|key| slice_belongs_to(slice, key)).cloned()
        } else {
            slice_service(slice).filter(|key| keys.contains(key))
        };
        if let Some(key) = key {
            out.entry(key).or_default().push(slice);
        }
    }
    out
}

/// Whether the slice belongs to one of the Services.
fn belongs_to_any(slice: &EndpointSlice, keys: &HashSet<ServiceKey>) -> bool {
    if keys.len() <= FEW_CHANGES {
        keys.iter().any(|key| slice_belongs_to(slice, key))
    } else {
        slice_service(slice).is_some_and(|key| keys.contains(&key))
    }
}

fn slice_belongs_to(slice: &EndpointSlice, (namespace, name): &ServiceKey) -> bool {
    slice.metadata.namespace.as_deref().unwrap_or_default() == namespace
        && slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::services::SERVICE_NAME_LABEL))
            .is_some_and(|service| service == name)
}
