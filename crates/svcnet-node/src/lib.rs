//! svcnet-node: the node agent (kubelet + CNI). It registers its Node, renews its Lease and runs
//! the pods bound to it as network namespaces with processes inside, probes them and reports
//! their status. Names and addresses it shares with the lab are in docs/lab.md.
//!
//! Pure parts (routes per CNI mode, pod files, IPAM, env, pod status, echo answers) carry the
//! unit tests; the appliers around them (`ip -batch`, processes, API writes) stay thin.

pub mod agent;
pub mod cli;
pub mod container;
pub mod echo;
pub mod enter;
pub mod env;
pub mod ipam;
pub mod names;
pub mod netns;
pub mod node;
pub mod pool;
pub mod probe;
pub mod routes;
pub mod sandbox;
pub mod sandboxer;
pub mod shim;
pub mod status;
pub mod worker;

pub use names::{lab_prefix, pod_netns, pod_veth};

/// A client for the API server at `url` (plain HTTP in the lab).
pub fn client_for(url: &str) -> anyhow::Result<kube::Client> {
    let config = kube::Config::new(url.parse()?);
    Ok(kube::Client::try_from(config)?)
}
