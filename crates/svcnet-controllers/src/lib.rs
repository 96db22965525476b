//! svcnet-controllers: the control loops of kube-controller-manager and kube-scheduler that
//! Services depend on, as clients of the Kubernetes API (list + watch), so they run inside
//! `svcnet server` and equally against any API server (`svcnet controllers --server URL`).
//!
//! Each controller computes desired state with a pure function of the objects it watches and
//! applies the difference through the API.

pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod runtime;
pub mod scheduler;
pub mod statefulset;

use std::time::Duration;

/// Settings shared by the controllers (upstream flag names in comments).
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// --max-endpoints-per-slice (default 100, at most 1000).
    pub max_endpoints_per_slice: usize,
    /// --node-monitor-grace-period (default 40 s).
    pub node_monitor_grace_period: Duration,
    /// Default NoExecute toleration for not-ready / unreachable nodes (300 s).
    pub default_not_ready_toleration: Duration,
    /// --cluster-cidr: pod CIDR handed out in /24s to nodes.
    pub cluster_cidr: String,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            max_endpoints_per_slice: 100,
            node_monitor_grace_period: Duration::from_secs(40),
            default_not_ready_toleration: Duration::from_secs(300),
            cluster_cidr: "10.244.0.0/16".into(),
        }
    }
}

/// Runs every controller until one fails; each restarts its watches on its own.
pub async fn run_all(client: kube::Client, config: ControllerConfig) -> anyhow::Result<()> {
    tokio::try_join!(
        endpointslice::run(client.clone(), config.clone()),
        endpoints::run(client.clone(), config.clone()),
        scheduler::run(client.clone(), config.clone()),
        deployment::run(client.clone(), config.clone()),
        replicaset::run(client.clone(), config.clone()),
        statefulset::run(client.clone(), config.clone()),
        nodelifecycle::run(client.clone(), config.clone()),
        nodeipam::run(client.clone(), config.clone()),
        garbagecollector::run(client, config),
    )?;
    Ok(())
}

/// A client for the API server at `url` (plain HTTP on loopback today).
pub fn client_for(url: &str) -> anyhow::Result<kube::Client> {
    let config = kube::Config::new(url.parse()?);
    Ok(kube::Client::try_from(config)?)
}
