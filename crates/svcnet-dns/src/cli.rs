//! `svcnet dns`: flags, and the wiring of watch → zone snapshot → UDP/TCP servers, upstream
//! and metrics.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::metrics::Metrics;
use crate::server::{self, Shared};
use crate::upstream::Upstream;
use crate::zone::{Cluster, PodsMode, Zone, ZoneConfig};

/// How long to wait for the first lists before serving anyway (CoreDNS `startup_timeout`).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug, Clone)]
pub struct DnsArgs {
    /// URL of the Kubernetes API server.
    #[arg(long, env = "SVCNET_SERVER", default_value = "http://127.0.0.1:6443")]
    pub server: String,
    /// Address for DNS over UDP and TCP.
    #[arg(long, env = "SVCNET_DNS_LISTEN", default_value = "0.0.0.0:53")]
    pub listen: SocketAddr,
    /// The cluster domain.
    #[arg(long, env = "SVCNET_DNS_ZONE", default_value = "cluster.local")]
    pub zone: String,
    /// TTL of the cluster's records (0-3600).
    #[arg(long, env = "SVCNET_DNS_TTL", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub ttl: u32,
    /// Pod records `a-b-c-d.<ns>.pod.<zone>` (kubeadm's Corefile uses insecure).
    #[arg(long, env = "SVCNET_DNS_PODS", value_enum, default_value = "insecure")]
    pub pods: PodsMode,
    /// Resolver for names outside the zone (ADDR or ADDR:PORT); without it they are REFUSED.
    #[arg(long, env = "SVCNET_DNS_UPSTREAM", value_parser = parse_upstream)]
    pub upstream: Option<SocketAddr>,
    /// Address for /metrics, /health and /ready (e.g. 127.0.0.1:9153).
    #[arg(long, env = "SVCNET_DNS_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// UDP threads, each with its own SO_REUSEPORT socket (default: the CPUs this process may
    /// run on).
    #[arg(long, env = "SVCNET_DNS_UDP_THREADS")]
    pub udp_threads: Option<usize>,
    /// Benchmarks only: serve a generated cluster of SERVICES:PODS instead of watching the API.
    #[arg(long, hide = true, value_parser = parse_synthetic)]
    pub synthetic_cluster: Option<(usize, usize)>,
}

fn parse_upstream(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|e| format!("{text}: {e}"))
}

fn parse_synthetic(text: &str) -> Result<(usize, usize), String> {
    let (services, pods) = text.split_once(':').ok_or("expected SERVICES:PODS")?;
    Ok((
        services.parse().map_err(|_| "bad SERVICES")?,
        pods.parse().map_err(|_| "bad PODS")?,
    ))
}

impl DnsArgs {
    fn zone_config(&self) -> ZoneConfig {
        ZoneConfig {
            domain: self.zone.clone(),
            ttl: self.ttl,
            pods: self.pods,
            forwarding: self.upstream.is_some(),
        }
    }
}

/// Runs the cluster DNS until the process ends.
pub async fn run(args: DnsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        crate::wire::wire_name(&args.zone).is_some(),
        "--zone {}: not a domain name",
        args.zone
    );
    let metrics = Arc::new(Metrics::default());
    let config = args.zone_config();
    let threads = args
        .udp_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Bind before loading the zone: queries that arrive meanwhile wait in the socket buffers
    // instead of being refused (a restart must not stall clients).
    let sockets = server::bind_udp(args.listen, threads)?;
    let bound = sockets[0].local_addr()?;
    let tcp = tokio::net::TcpListener::bind(bound).await?;
    if let Some(address) = args.metrics {
        let listener = tokio::net::TcpListener::bind(address).await?;
        tokio::spawn(crate::metrics::serve(listener, metrics.clone()));
    }
    let published = Arc::new(ArcSwap::from_pointee(Zone::empty(&config)));
    let mut cluster = Cluster::new(config);
    let watching = match args.synthetic_cluster {
        Some((services, pods)) => {
            crate::bench::synthetic_cluster(&mut cluster, services, pods);
            published.store(Arc::new(cluster.zone.clone()));
            release_free_memory();
            None
        }
        None => {
            let client = kube::Client::try_from(kube::Config::new(args.server.parse()?))?;
            let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(crate::watch::run(
                client,
                cluster,
                published.clone(),
                metrics.clone(),
                synced_tx,
            ));
            if tokio::time::timeout(STARTUP_TIMEOUT, synced_rx).await.is_err() {
                tracing::warn!("the API lists did not complete in {STARTUP_TIMEOUT:?}; serving what is known");
            }
            release_free_memory();
            Some(task)
        }
    };
    let shared = Shared {
        zone: published,
        metrics: metrics.clone(),
        upstream: args
            .upstream
            .map(|address| Arc::new(Upstream::new(address, metrics.clone()))),
        runtime: tokio::runtime::Handle::current(),
    };
    server::start_udp(sockets, &shared)?;
    tokio::spawn(server::serve_tcp(tcp, shared));
    metrics.ready.store(true, Relaxed);
    tracing::info!(%bound, threads, zone = %args.zone, "serving DNS");
    match watching {
        Some(task) => task.await?,
        None => std::future::pending().await,
    }
    Ok(())
}

/// Hands the heap freed while loading (decoded objects, list pages) back to the kernel: glibc
/// keeps it otherwise, and a zone of a few megabytes would sit in a heap of twice that.
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own arenas; no Rust invariant is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}
