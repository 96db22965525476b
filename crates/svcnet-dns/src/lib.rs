//! svcnet-dns: the cluster DNS. It watches Services, EndpointSlices, Namespaces (and Pods in
//! verified mode) through the Kubernetes API and answers the Kubernetes DNS-based service
//! discovery records (schema 1.1.0) for the cluster zone from memory, over UDP and TCP; names
//! outside the zone go to an upstream resolver with a cache, or get REFUSED.
//!
//! Start with [`zone::zone`] (objects → [`zone::Zone`]) and [`answer::answer`] (zone + packet →
//! reply): the pure core. `watch` keeps a zone current from the API, `server` carries packets,
//! `upstream` forwards, `cli` wires it into `svcnet dns`. docs/dns.md lists the record set and
//! where this server follows the RFCs rather than CoreDNS.

pub mod answer;
pub mod bench;
pub mod cli;
pub mod metrics;
pub mod server;
pub mod sharded;
pub mod upstream;
pub mod watch;
pub mod wire;
pub mod zone;
