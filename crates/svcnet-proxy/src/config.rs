//! What the model needs to know besides the API objects: the node, the pod network and the
//! default balancing algorithm.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 prefix such as `10.244.0.0/16`, kept normalized (host bits zero) because nft rejects
/// interval elements with host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Cidr {
    /// The prefix containing `addr`, with its host bits cleared.
    pub fn new(addr: Ipv4Addr, len: u8) -> Cidr {
        let len = len.min(32);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
        Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            len,
        }
    }

    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        Cidr::new(ip, self.len).addr == self.addr
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (
                addr,
                len.parse::<u8>().map_err(|_| format!("bad prefix length in {s}"))?,
            ),
            None => (s, 32),
        };
        if len > 32 {
            return Err(format!("prefix length over 32 in {s}"));
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("not an IPv4 address: {s}"))?;
        Ok(Cidr::new(addr, len))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// How a Service port picks an endpoint for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// `numgen inc`: endpoints in turn (the seed's IPVS default).
    #[default]
    RoundRobin,
    /// `numgen random` (upstream nftables mode).
    Random,
    /// Maglev consistent hashing on the 5-tuple.
    Maglev,
    /// Maglev consistent hashing on the client address only.
    MaglevSource,
}

/// The per-Service annotation that overrides the node's default algorithm.
pub const LB_ALGORITHM_ANNOTATION: &str = "svcnet.io/lb-algorithm";

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Algorithm, String> {
        match s.trim() {
            "round-robin" | "rr" => Ok(Algorithm::RoundRobin),
            "random" => Ok(Algorithm::Random),
            "maglev" => Ok(Algorithm::Maglev),
            "maglev-source" => Ok(Algorithm::MaglevSource),
            other => Err(format!(
                "unknown lb algorithm {other:?} (round-robin, random, maglev, maglev-source)"
            )),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::Random => "random",
            Algorithm::Maglev => "maglev",
            Algorithm::MaglevSource => "maglev-source",
        })
    }
}

/// This node as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The Node's name (matched against endpoints' `nodeName`).
    pub name: String,
    /// Addresses NodePorts answer on (the VPC address; never loopback).
    pub ips: Vec<Ipv4Addr>,
}

/// Knobs of the model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelConfig {
    /// The pod network (upstream `--cluster-cidr`): traffic from it to a cluster IP is not
    /// masqueraded, and it marks pod-originated traffic for the Local short-circuit.
    pub cluster_cidr: Option<Cidr>,
    /// Algorithm for Services without the annotation.
    pub default_algorithm: Algorithm,
}
