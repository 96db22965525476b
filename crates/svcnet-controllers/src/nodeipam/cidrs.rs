//! Pod CIDRs as plain data: the cluster CIDR cut into per-node blocks (/24 for IPv4, /64 for
//! IPv6, upstream's --node-cidr-mask-size defaults), which blocks nodes hold, and the blocks to
//! give to nodes that have none (the range allocator's CidrSet).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a CIDR could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid CIDR {0:?}")]
    InvalidCidr(String),
    #[error("cluster CIDR {cidr} is smaller than a node block (/{node_prefix})")]
    ClusterCidrTooSmall { cidr: String, node_prefix: u8 },
}

/// One address family's cluster CIDR and the node blocks taken out of it.
#[derive(Debug, Clone)]
pub struct CidrSet {
    v6: bool,
    /// The cluster network address as a number (IPv4 in the low 32 bits).
    base: u128,
    /// The cluster prefix length.
    prefix: u8,
    /// The node block prefix length.
    node_prefix: u8,
    /// Indexes of the blocks in use.
    used: BTreeSet<u64>,
    /// Where the search for a free block starts (it moves on after each allocation, so a
    /// released block is not handed out again right away).
    next: u64,
}

fn parse_cidr(text: &str) -> Result<(IpAddr, u8), Error> {
    let invalid = || Error::InvalidCidr(text.to_string());
    let (addr, prefix) = text.trim().split_once('/').ok_or_else(invalid)?;
    let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(invalid());
    }
    Ok((addr, prefix))
}

fn to_bits(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

impl CidrSet {
    /// A set over `cluster_cidr` with the family's default node block size.
    pub fn new(cluster_cidr: &str) -> Result<Self, Error> {
        let (addr, prefix) = parse_cidr(cluster_cidr)?;
        let (v6, bits) = to_bits(addr);
        let width = if v6 { 128 } else { 32 };
        let node_prefix = if v6 { 64 } else { 24 };
        if prefix > node_prefix {
            return Err(Error::ClusterCidrTooSmall {
                cidr: cluster_cidr.to_string(),
                node_prefix,
            });
        }
        let host_bits = width - prefix as u32;
        let base = if host_bits >= 128 {
            0
        } else {
            bits >> host_bits << host_bits
        };
        Ok(CidrSet {
            v6,
            base,
            prefix,
            node_prefix,
            used: BTreeSet::new(),
            next: 0,
        })
    }

    fn width(&self) -> u32 {
        if self.v6 {
            128
        } else {
            32
        }
    }

    /// How many node blocks the cluster CIDR holds (capped for huge IPv6 ranges).
    pub fn capacity(&self) -> u64 {
        let bits = (self.node_prefix - self.prefix) as u32;
        if bits >= 63 {
            1 << 62
        } else {
            1 << bits
        }
    }

    /// The block index of `cidr` if it is one of this set's node blocks.
    fn index_of(&self, cidr: &str) -> Option<u64> {
        let (addr, prefix) = parse_cidr(cidr).ok()?;
        let (v6, bits) = to_bits(addr);
        if v6 != self.v6 || prefix != self.node_prefix {
            return None;
        }
        let block_shift = self.width() - self.node_prefix as u32;
        let offset = bits.checked_sub(self.base)?;
        if offset & ((1u128 << block_shift) - 1) != 0 {
            return None;
        }
        let index = offset >> block_shift;
        (index < self.capacity() as u128).then_some(index as u64)
    }

    fn block(&self, index: u64) -> String {
        let block_shift = self.width() - self.node_prefix as u32;
        let bits = self.base + ((index as u128) << block_shift);
        let addr: IpAddr = if self.v6 {
            Ipv6Addr::from(bits).into()
        } else {
            Ipv4Addr::from(bits as u32).into()
        };
        format!("{addr}/{}", self.node_prefix)
    }

    /// Whether `cidr` belongs to this set's family.
    pub fn same_family(&self, cidr: &str) -> bool {
        parse_cidr(cidr).is_ok_and(|(addr, _)| addr.is_ipv6() == self.v6)
    }

    /// Marks `cidr` as held; false if it is not one of this set's blocks.
    pub fn occupy(&mut self, cidr: &str) -> bool {
        match self.index_of(cidr) {
            Some(index) => {
                self.used.insert(index);
                true
            }
            None => false,
        }
    }

    /// Forgets every held block (the search position is kept).
    pub fn clear(&mut self) {
        self.used.clear();
    }

    /// Takes the next free block after the last one handed out.
    pub fn allocate(&mut self) -> Option<String> {
        let capacity = self.capacity();
        let free = (0..capacity)
            .map(|i| (self.next + i) % capacity)
            .take(self.used.len() + 1)
            .find(|i| !self.used.contains(i))?;
        self.used.insert(free);
        self.next = (free + 1) % capacity;
        Some(self.block(free))
    }
}

/// The cluster CIDRs of `--cluster-cidr` (one, or two of different families for dual stack).
pub fn parse_cluster_cidrs(text: &str) -> Result<Vec<CidrSet>, Error> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(CidrSet::new)
        .collect()
}

/// A node as the allocator sees it: its name and the pod CIDRs it holds (spec.podCIDRs, or
/// spec.podCIDR when only that is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCidrs {
    pub name: String,
    pub cidrs: Vec<String>,
}

/// Rebuilds what is held from `nodes` (plus `in_flight` assignments not yet visible) and picks
/// one block per family for each node without pod CIDRs, in name order. A node is left out when
/// some family has no free block left.
pub fn plan(sets: &mut [CidrSet], nodes: &[NodeCidrs], in_flight: &[NodeCidrs]) -> Vec<NodeCidrs> {
    for set in sets.iter_mut() {
        set.clear();
    }
    for held in nodes.iter().chain(in_flight) {
        for cidr in &held.cidrs {
            sets.iter_mut().any(|set| set.occupy(cidr));
        }
    }
    let mut waiting: Vec<&NodeCidrs> = nodes
        .iter()
        .filter(|n| n.cidrs.is_empty() && !in_flight.iter().any(|f| f.name == n.name))
        .collect();
    waiting.sort_by(|a, b| a.name.cmp(&b.name));
    let mut assignments = Vec::new();
    for node in waiting {
        let mut picked = Vec::new();
        for set in sets.iter_mut() {
            match set.allocate() {
                Some(cidr) => picked.push(cidr),
                None => break,
            }
        }
        if picked.len() < sets.len() {
            // Exhausted: give back what this node took and stop.
            for (set, cidr) in sets.iter_mut().zip(&picked) {
                if let Some(index) = set.index_of(cidr) {
                    set.used.remove(&index);
                }
            }
            break;
        }
        assignments.push(NodeCidrs {
            name: node.name.clone(),
            cidrs: picked,
        });
    }
    assignments
}

#[cfg(test)]
mod tests;
