//! Pod addresses out of the node's podCIDR (the host-local IPAM plugin's job). Which address
//! belongs to which pod UID is persisted in the data dir, so a restarted agent never hands out
//! an address a running pod still holds.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// An IPv4 prefix such as 10.244.1.0/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> anyhow::Result<Cidr> {
        let (addr, len) = text
            .split_once('/')
            .with_context(|| format!("CIDR {text:?} has no /"))?;
        let addr: Ipv4Addr = addr.parse().with_context(|| format!("CIDR {text:?}"))?;
        let len: u8 = len.parse().with_context(|| format!("CIDR {text:?}"))?;
        if len > 32 {
            bail!("CIDR {text:?}: prefix length over 32");
        }
        Ok(Cidr { addr, len }.network())
    }

    fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// The same prefix with the host bits cleared.
    pub fn network(&self) -> Cidr {
        Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            len: self.len,
        }
    }

    /// The `n`th address of the prefix (0 = the network address), if inside it.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.len));
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.network().addr).wrapping_add(n)))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network().addr)
    }

    /// Addresses pods may take: all but the network address, `.1` (the gateway on `cni0`) and
    /// the broadcast address.
    pub fn pod_range(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let size = 1u64 << (32 - u32::from(self.len));
        (2..size.saturating_sub(1)).filter_map(|n| self.nth(n as u32))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The addresses handed out, by pod UID.
#[derive(Debug)]
pub struct Ipam {
    range: Cidr,
    by_uid: BTreeMap<String, Ipv4Addr>,
    file: Option<PathBuf>,
}

impl Ipam {
    /// An allocator kept only in memory (tests).
    pub fn in_memory(range: Cidr) -> Ipam {
        Ipam {
            range,
            by_uid: BTreeMap::new(),
            file: None,
        }
    }

    /// Loads what `file` holds; addresses outside `range` (a node that got another podCIDR)
    /// are forgotten.
    pub fn load(range: Cidr, file: &Path) -> anyhow::Result<Ipam> {
        let mut ipam = Ipam {
            range,
            by_uid: BTreeMap::new(),
            file: Some(file.to_path_buf()),
        };
        if let Ok(text) = std::fs::read_to_string(file) {
            let held: BTreeMap<String, Ipv4Addr> = serde_json::from_str(&text).unwrap_or_default();
            ipam.by_uid = held.into_iter().filter(|(_, ip)| range.contains(*ip)).collect();
        }
        Ok(ipam)
    }

    pub fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.by_uid.get(uid).copied()
    }

    /// The pod's address: the one it holds, else the lowest free one.
    pub fn allocate(&mut self, uid: &str) -> anyhow::Result<Ipv4Addr> {
        if let Some(ip) = self.get(uid) {
            return Ok(ip);
        }
        let used: std::collections::BTreeSet<Ipv4Addr> = self.by_uid.values().copied().collect();
        let Some(ip) = self.range.pod_range().find(|ip| !used.contains(ip)) else {
            bail!("no free pod address left in {}", self.range);
        };
        self.by_uid.insert(uid.to_string(), ip);
        self.save()?;
        Ok(ip)
    }

    pub fn release(&mut self, uid: &str) -> anyhow::Result<()> {
        if self.by_uid.remove(uid).is_some() {
            self.save()?;
        }
        Ok(())
    }

    /// UIDs holding an address.
    pub fn holders(&self) -> Vec<String> {
        self.by_uid.keys().cloned().collect()
    }

    fn save(&self) -> anyhow::Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&self.by_uid)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_count() {
        let c = Cidr::parse("10.244.1.7/24").unwrap();
        assert_eq!(c.to_string(), "10.244.1.0/24");
        assert_eq!(c.nth(1), Some("10.244.1.1".parse().unwrap()));
        assert_eq!(c.nth(256), None);
        assert!(c.contains("10.244.1.255".parse().unwrap()));
        assert!(!c.contains("10.244.2.1".parse().unwrap()));
        assert_eq!(c.pod_range().count(), 253);
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0").is_err());
    }

    #[test]
    fn allocation_is_stable_reuses_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ipam.json");
        let range = Cidr::parse("10.244.3.0/24").unwrap();
        let mut ipam = Ipam::load(range, &file).unwrap();
        let a = ipam.allocate("a").unwrap();
        let b = ipam.allocate("b").unwrap();
        assert_eq!(a.to_string(), "10.244.3.2");
        assert_eq!(b.to_string(), "10.244.3.3");
        assert_eq!(ipam.allocate("a").unwrap(), a);
        ipam.release("a").unwrap();
        let reloaded = Ipam::load(range, &file).unwrap();
        assert_eq!(reloaded.get("b"), Some(b));
        assert_eq!(reloaded.get("a"), None);
        // Another podCIDR after a re-registration: old addresses are dropped.
        let moved = Ipam::load(Cidr::parse("10.244.4.0/24").unwrap(), &file).unwrap();
        assert!(moved.holders().is_empty());
    }

    #[test]
    fn a_full_range_is_an_error() {
        let mut ipam = Ipam::in_memory(Cidr::parse("10.0.0.0/30").unwrap());
        assert!(ipam.allocate("a").is_ok());
        assert!(ipam.allocate("b").is_err());
    }
}
