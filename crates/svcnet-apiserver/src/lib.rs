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
    std::fs::create_dir_all(&config.data_dir)?;
    let store = Arc::new(RedbStore::open(&config.data_dir.join("store.redb"))?);
    let address = listener.local_addr()?;
    let app = app(store, &address.to_string(), config.service_network).await?;
    tracing::info!(%address, "API server listening");
    match listener {
        Listener::Plain(listener) => axum::serve(listener, app).await?,
    }
    Ok(())
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
    let api_port = server_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(6443);
    cluster_objects::ensure(&registry, api_port).await.map_err(fail)?;
    let state = Arc::new(server::AppState {
        registry,
        server_address: server_address.to_string(),
    });
    Ok(server::router(state))
}
