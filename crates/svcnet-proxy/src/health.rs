//! Health: the proxy's own `/healthz` and `/livez` (port 10256, upstream semantics) with
//! `/metrics`, and one HTTP server per LoadBalancer Service with externalTrafficPolicy Local on
//! its healthCheckNodePort, which load balancers probe to find the nodes with local endpoints.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;
use crate::services::ServicePort;

/// When updates were queued and applied, and whether the node is going away.
#[derive(Debug)]
pub struct ProxyHealth {
    timeout: Duration,
    inner: Mutex<HealthTimes>,
}

#[derive(Debug, Clone, Copy)]
struct HealthTimes {
    started: Instant,
    /// Oldest change not yet applied.
    oldest_queued: Option<Instant>,
    last_updated: Option<SystemTime>,
    node_deleting: bool,
}

/// One health verdict with the times upstream reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the rules are fresh.
    pub healthy: bool,
    /// Whether the node is eligible for traffic (not being deleted).
    pub node_eligible: bool,
}

impl ProxyHealth {
    /// Unhealthy when a queued change waits longer than `timeout` (upstream: 2 x sync period).
    pub fn new(timeout: Duration) -> ProxyHealth {
        ProxyHealth {
            timeout,
            inner: Mutex::new(HealthTimes {
                started: Instant::now(),
                oldest_queued: None,
                last_updated: None,
                node_deleting: false,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HealthTimes) -> T) -> T {
        let mut times = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut times)
    }

    /// A change arrived.
    pub fn queued(&self) {
        self.with(|t| {
            t.oldest_queued.get_or_insert_with(Instant::now);
        });
    }

    /// Everything queued so far is applied.
    pub fn updated(&self) {
        self.with(|t| {
            t.oldest_queued = None;
            t.last_updated = Some(SystemTime::now());
        });
    }

    /// The Node is being deleted (or not any more).
    pub fn set_node_deleting(&self, deleting: bool) {
        self.with(|t| t.node_deleting = deleting);
    }

    /// Upstream's rule: healthy unless an update has waited longer than the timeout; before the
    /// first sync, healthy only within the timeout of the start.
    pub fn verdict(&self) -> Verdict {
        self.with(|t| {
            let waiting_too_long = match (t.oldest_queued, t.last_updated) {
                (Some(queued), _) => queued.elapsed() > self.timeout,
                (None, None) => t.started.elapsed() > self.timeout,
                (None, Some(_)) => false,
            };
            Verdict {
                healthy: !waiting_too_long,
                node_eligible: !t.node_deleting,
            }
        })
    }

    fn body(&self, with_node: bool) -> (bool, String) {
        let verdict = self.verdict();
        let last = self.with(|t| t.last_updated);
        let stamp = |time: Option<SystemTime>| {
            time.and_then(|t| jiff::Timestamp::try_from(t).ok())
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        let mut body = serde_json::json!({
            "lastUpdated": stamp(last),
            "currentTime": stamp(Some(SystemTime::now())),
        });
        let ok = if with_node {
            body["nodeEligible"] = verdict.node_eligible.into();
            verdict.healthy && verdict.node_eligible
        } else {
            verdict.healthy
        };
        (ok, body.to_string())
    }
}

fn json_response(ok: bool, body: String) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[derive(Clone)]
struct ServerState {
    health: Arc<ProxyHealth>,
    metrics: Arc<Metrics>,
}

/// `/healthz` (rules fresh and node not being deleted), `/livez` (rules fresh) and `/metrics`.
pub fn router(health: Arc<ProxyHealth>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|State(s): State<ServerState>| async move {
                let (ok, body) = s.health.body(true);
                json_response(ok, body)
            }),
        )
        .route(
            "/livez",
            get(|State(s): State<ServerState>| async move {
                let (ok, body) = s.health.body(false);
                json_response(ok, body)
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<ServerState>| async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    s.metrics.render(),
                )
            }),
        )
        .with_state(ServerState { health, metrics })
}

/// Serves `router` on `address` until the task is dropped.
pub async fn serve(address: SocketAddr, router: Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

/// The healthCheckNodePort of a Service and its local endpoint count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    /// Service namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Ready endpoints on this node (over all ports, each address once).
    pub local_endpoints: usize,
}

/// healthCheckNodePort → what its server reports, for every LoadBalancer + Local Service.
pub fn service_health<'a>(ports: impl IntoIterator<Item = &'a ServicePort>) -> BTreeMap<u16, ServiceHealth> {
    let mut out: BTreeMap<u16, (ServiceHealth, std::collections::BTreeSet<Ipv4Addr>)> = BTreeMap::new();
    for port in ports {
        let Some(hc) = port.health_check_node_port else {
            continue;
        };
        let entry = out.entry(hc).or_insert_with(|| {
            (
                ServiceHealth {
                    namespace: port.name.namespace.clone(),
                    name: port.name.name.clone(),
                    local_endpoints: 0,
                },
                Default::default(),
            )
        });
        entry
            .1
            .extend(port.local_pool().iter().filter(|e| e.ready).map(|e| e.ip));
    }
    out.into_iter()
        .map(|(port, (mut health, ips))| {
            health.local_endpoints = ips.len();
            (port, health)
        })
        .collect()
}

type Shared = Arc<Mutex<ServiceHealth>>;

/// The running healthCheckNodePort servers.
pub struct HealthCheckServers {
    bind: Ipv4Addr,
    proxy: Arc<ProxyHealth>,
    servers: BTreeMap<u16, (Shared, tokio::task::JoinHandle<()>)>,
}

impl HealthCheckServers {
    /// Servers will listen on `bind` (0.0.0.0: every node address).
    pub fn new(bind: Ipv4Addr, proxy: Arc<ProxyHealth>) -> HealthCheckServers {
        HealthCheckServers {
            bind,
            proxy,
            servers: BTreeMap::new(),
        }
    }

    /// Starts, updates and stops servers to match `wanted`.
    pub async fn sync(&mut self, wanted: BTreeMap<u16, ServiceHealth>) {
        let gone: Vec<u16> = self
            .servers
            .keys()
            .filter(|p| !wanted.contains_key(p))
            .copied()
            .collect();
        for port in gone {
            if let Some((_, task)) = self.servers.remove(&port) {
                task.abort();
            }
        }
        for (port, health) in wanted {
            if let Some((shared, _)) = self.servers.get(&port) {
                *shared.lock().unwrap_or_else(|e| e.into_inner()) = health;
                continue;
            }
            let listener = match tokio::net::TcpListener::bind((self.bind, port)).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(port, %error, "cannot serve a healthCheckNodePort");
                    continue;
                }
            };
            let shared = Arc::new(Mutex::new(health));
            let app = health_check_router(shared.clone(), self.proxy.clone());
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            self.servers.insert(port, (shared, task));
        }
    }
}

impl Drop for HealthCheckServers {
    fn drop(&mut self) {
        for (_, task) in self.servers.values() {
            task.abort();
        }
    }
}

fn health_check_router(shared: Shared, proxy: Arc<ProxyHealth>) -> Router {
    Router::new().fallback(move || {
        let shared = shared.clone();
        let proxy = proxy.clone();
        async move {
            let health = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let proxy_healthy = proxy.verdict().healthy;
            let body = serde_json::json!({
                "service": {"namespace": health.namespace, "name": health.name},
                "localEndpoints": health.local_endpoints,
                "serviceProxyHealthy": proxy_healthy,
            });
            json_response(health.local_endpoints > 0 && proxy_healthy, body.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_follows_queued_updates() {
        let health = ProxyHealth::new(Duration::from_millis(50));
        assert!(health.verdict().healthy, "healthy within the timeout after start");
        health.queued();
        std::thread::sleep(Duration::from_millis(80));
        assert!(!health.verdict().healthy, "an update waited too long");
        health.updated();
        assert!(health.verdict().healthy);
        health.set_node_deleting(true);
        assert!(!health.verdict().node_eligible);
        assert!(!health.body(true).0 && health.body(false).0, "livez ignores the node");
    }
}
