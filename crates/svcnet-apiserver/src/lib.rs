//! svcnet-apiserver: a Kubernetes-compatible API server (REST, watch, discovery, OpenAPI, Tables)
//! over the svcnet store, so that kubectl and the official clients work unchanged.
//!
//! A request flows: [`server`] (HTTP, negotiation) -> [`routes`] (what the path names) ->
//! [`body`] (decode, field validation) -> [`registry`] (generic REST semantics, per-kind
//! [`strategy`]) -> the store. Errors become Status objects in [`status`].

pub mod body;
pub mod cluster_objects;
pub mod discovery;
pub mod http;
pub mod namespaces;
pub mod objects;
pub mod pods;
pub mod registry;
pub mod repair;
pub mod routes;
pub mod scale;
pub mod server;
pub mod services;
pub mod status;
pub mod strategy;
pub mod tables;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
use svcnet_store::RedbStore;

/// How to run the API server.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub service_network: services::ServiceNetwork,
}

/// Where the server accepts connections. Plain HTTP today; TLS slots in as another variant.
pub enum Listener {
    Plain(tokio::net::TcpListener),
}

impl Listener {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Listener::Plain(tokio::net::TcpListener::bind(addr).await?))
    }

    /// Wraps a listener opened elsewhere, e.g. inside another network namespace (a socket keeps
    /// the namespace it was opened in).
    pub fn from_std(listener: std::net::TcpListener) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Listener::Plain(tokio::net::TcpListener::from_std(listener)?))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Listener::Plain(listener) => listener.local_addr(),
        }
    }
}

/// Opens the store, creates the initial namespaces and serves until the process ends.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = Listener::bind(config.listen).await?;
    serve(config, listener).await
}

/// Serves on an already bound listener (tests bind port 0 and read the address back).
pub async fn serve(config: Config, listener: Listener) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    serve_on(config, vec![listener], address).await
}

/// Serves one API on several listeners (the lab: loopback on the host and the VPC address inside
/// the lab). `advertise` is the address clients inside the cluster reach it at: discovery's
/// serverAddressByClientCIDRs and the `default/kubernetes` endpoints carry it.
pub async fn serve_on(config: Config, listeners: Vec<Listener>, advertise: SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(!listeners.is_empty(), "no listener to serve on");
    std::fs::create_dir_all(&config.data_dir)?;
    let store = Arc::new(RedbStore::open(&config.data_dir.join("store.redb"))?);
    let app = app(store, &advertise.to_string(), config.service_network).await?;
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let address = listener.local_addr()?;
        tracing::info!(%address, "API server listening");
        let app = app.clone();
        match listener {
            Listener::Plain(listener) => {
                servers.spawn(async move { axum::serve(listener.tap_io(disable_nagle), app).await })
            }
        };
    }
    // Each server runs until the process ends; the first to fail ends them all.
    while let Some(result) = servers.join_next().await {
        result??;
    }
    Ok(())
}

/// Watch streams are many small writes with no reply traffic to carry ACKs: with Nagle's
/// algorithm on, an event written while the previous one is unacknowledged waits for the
/// client's delayed ACK (up to 40 ms on Linux). Go servers, kube-apiserver included, turn it off
/// on every connection; so do we.
fn disable_nagle(stream: &mut tokio::net::TcpStream) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "setting TCP_NODELAY on an accepted connection");
    }
}

/// The API as a router over any store, with the initial namespaces in place. In-process tests
/// drive it directly; [`serve`] puts it behind a listener.
pub async fn app(
    store: Arc<dyn svcnet_store::Store>,
    server_address: &str,
    network: services::ServiceNetwork,
) -> anyhow::Result<axum::Router> {
    let allocator = Arc::new(services::ServiceAllocator::new(network).map_err(|e| anyhow::anyhow!(e))?);
    let registry = registry::Registry::new(store, allocator);
    let fail = |e: status::ApiError| anyhow::anyhow!(e.message);
    namespaces::bootstrap(&registry).await.map_err(fail)?;
    let report = repair::repair(&registry).await.map_err(fail)?;
    tracing::info!(?report, "service allocations repaired");
    cluster_objects::ensure(&registry, server_address.parse().ok())
        .await
        .map_err(fail)?;
    let state = Arc::new(server::AppState {
        registry,
        server_address: server_address.to_string(),
    });
    Ok(server::router(state))
}
