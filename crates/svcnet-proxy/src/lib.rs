//! svcnet-proxy: the node proxy. It turns Services and EndpointSlices into one nftables table
//! (`ip svcnet`) in its node's network namespace, so that connections to cluster IPs, node ports,
//! external IPs and load-balancer IPs reach a backend pod with the client address and path the
//! Service's policies ask for (kube-proxy's job, on a layout of few kernel objects).
//!
//! Start with [`desired::desired`] (the pure model: objects in, [`ruleset::Ruleset`] out); the
//! applier in [`apply`] loads and updates it; [`run`] watches the API and keeps it applied.

#![warn(missing_docs, unreachable_pub)]

pub mod apply;
pub mod bench;
pub mod cli;
pub mod config;
pub mod conntrack;
pub mod desired;
pub mod health;
pub mod incremental;
pub mod maglev;
pub mod metrics;
pub mod netlink;
pub mod ruleset;
pub mod run;
pub mod services;

pub use config::{Algorithm, Cidr, ModelConfig, NodeInfo};
pub use desired::desired;
pub use ruleset::Ruleset;
pub use run::{run, ProxyConfig};
