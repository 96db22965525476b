//! Pod sandboxes (the CNI plugin's job): what a sandbox is (a network namespace per pod with
//! `eth0` and a veth into the node, loopback up, a default route to the node, and the files
//! bind-mounted over /etc/resolv.conf and /etc/hosts), the node's own pod network devices, and
//! the pod files. [`crate::sandboxer`] makes and removes sandboxes.
//!
//! The agent runs under `ip netns exec <node netns>`, which gives it a private mount namespace:
//! a `/run/netns` bind mount made there would be invisible on the host (and lost with the
//! agent). So namespaces are added and deleted from the mount namespace the agent was started
//! from (held open from startup, [`HostMounts`]), and the mounts propagate back to the agent's
//! namespace as they do to every other.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::ipam::Cidr;
use crate::routes::Cni;

/// Host-side MAC of terway veths (as Calico does): the pod's permanent neighbour for its
/// link-local gateway, so no ARP round trip is needed.
pub const TERWAY_VETH_MAC: &str = "ee:ee:ee:ee:ee:ee";
/// The link-local next hop of terway pods.
pub const TERWAY_GATEWAY: &str = "169.254.1.1";
/// Flannel's pod bridge.
pub const BRIDGE: &str = "cni0";

/// The mount namespace `/run/netns` mounts must be made in, when it is not the agent's own.
#[derive(Debug, Default)]
pub struct HostMounts(Option<File>);

impl HostMounts {
    /// The parent's mount namespace if it differs from ours (the agent started by
    /// `ip netns exec`); opened now, so it stays usable if the parent exits.
    pub fn of_parent() -> HostMounts {
        let parent = nix::unistd::getppid();
        let theirs = PathBuf::from(format!("/proc/{parent}/ns/mnt"));
        let same = match (std::fs::read_link(&theirs), std::fs::read_link("/proc/self/ns/mnt")) {
            (Ok(a), Ok(b)) => a == b,
            _ => true,
        };
        if same {
            return HostMounts(None);
        }
        HostMounts(File::open(&theirs).ok())
    }

    /// The host's mount namespace, when it is not the agent's.
    pub fn file(&self) -> Option<&File> {
        self.0.as_ref()
    }

    /// `ip -batch -` in the agent's network namespace and the host's mount namespace.
    pub fn ip_batch(&self, lines: &[String]) -> anyhow::Result<()> {
        let mut command = Command::new("ip");
        command.args(["-batch", "-"]);
        if let Some(file) = &self.0 {
            let fd = std::os::fd::AsRawFd::as_raw_fd(file);
            // SAFETY: setns is async-signal-safe; the forked child is single-threaded, so it
            // may change its mount namespace.
            unsafe {
                command.pre_exec(move || {
                    let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNS).map_err(std::io::Error::from)
                });
            }
        }
        run_batch(command, lines)
    }
}

fn run_batch(mut command: Command, lines: &[String]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting ip")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(lines.join("\n").as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("ip -batch: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// What a sandbox is made of.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub cni: Cni,
    pub netns: String,
    pub veth: String,
    pub ip: Ipv4Addr,
    pub pod_cidr: Cidr,
}

impl SandboxSpec {
    pub fn mtu(&self) -> u32 {
        Self::mtu_of(self.cni)
    }

    /// Pods' MTU: the VXLAN overhead comes off under flannel-vxlan.
    pub fn mtu_of(cni: Cni) -> u32 {
        match cni {
            Cni::FlannelVxlan => crate::routes::VXLAN_MTU,
            _ => 1500,
        }
    }

    /// The prefix length of the pod's address: terway pods hold a /32 and route everything to
    /// a link-local gateway; flannel pods share their node's podCIDR on the bridge.
    pub fn prefix_len(&self) -> u8 {
        match self.cni {
            Cni::TerwayEniip => 32,
            _ => self.pod_cidr.len,
        }
    }

    /// The pod's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        match self.cni {
            Cni::TerwayEniip => TERWAY_GATEWAY.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            _ => self.pod_cidr.nth(1).unwrap_or(self.pod_cidr.addr),
        }
    }
}

/// Node setup once the podCIDR is known: `cni0` with the gateway (flannel modes), forwarding.
pub fn node_lines(cni: Cni, pod_cidr: Cidr) -> Vec<String> {
    match cni {
        Cni::TerwayEniip => Vec::new(),
        _ => {
            let mtu = if cni == Cni::FlannelVxlan {
                crate::routes::VXLAN_MTU
            } else {
                1500
            };
            let gateway = pod_cidr.nth(1).unwrap_or(pod_cidr.addr);
            // A fixed address: a bridge without one takes the lowest of its ports' addresses,
            // so ports joining (pods, pooled sandboxes) would change the gateway's MAC under
            // the pods' ARP caches.
            vec![
                format!(
                    "link add {BRIDGE} address {} mtu {mtu} type bridge",
                    bridge_mac(gateway)
                ),
                format!("link set {BRIDGE} up"),
                format!("addr replace {gateway}/{} dev {BRIDGE}", pod_cidr.len),
            ]
        }
    }
}

/// The pod bridge's MAC: `0a:58` and the gateway's address, as the CNI bridge plugin derives
/// MACs from IPv4 addresses.
pub fn bridge_mac(gateway: Ipv4Addr) -> String {
    let [a, b, c, d] = gateway.octets();
    format!("0a:58:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// `flannel.1` for flannel-vxlan: VNI 1, port 8472, the node IP as local address, the
/// podCIDR's network address as its own /32 (flannel's layout).
pub fn vxlan_lines(node_ip: Ipv4Addr, pod_cidr: Cidr) -> Vec<String> {
    use crate::routes::{vtep_mac, VXLAN_DEV, VXLAN_MTU, VXLAN_PORT, VXLAN_VNI};
    vec![
        format!(
            "link add {VXLAN_DEV} address {} mtu {VXLAN_MTU} type vxlan id {VXLAN_VNI} local {node_ip} dstport {VXLAN_PORT} nolearning",
            vtep_mac(node_ip)
        ),
        format!("link set {VXLAN_DEV} up"),
        format!("addr replace {}/32 dev {VXLAN_DEV}", pod_cidr.network().addr),
    ]
}

/// Whether a link exists in the agent's namespace (an ioctl, no process).
pub fn link_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// Writes a sysctl of the agent's network namespace (`/proc/sys/net` follows the writer).
pub fn sysctl(path: &str, value: &str) -> anyhow::Result<()> {
    let file = format!("/proc/sys/{}", path.replace('.', "/"));
    std::fs::write(&file, value).with_context(|| format!("writing {file}"))
}

/// `/etc/netns/<pod netns>`, whose files `ip netns exec` bind-mounts over /etc.
pub fn etc_dir(netns: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(netns)
}

/// The pod's resolv.conf and hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFiles {
    pub resolv_conf: String,
    pub hosts: String,
}

impl PodFiles {
    pub(crate) fn write(&self, netns: &str) -> anyhow::Result<()> {
        let dir = etc_dir(netns);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("resolv.conf"), &self.resolv_conf)?;
        std::fs::write(dir.join("hosts"), &self.hosts)?;
        Ok(())
    }
}

/// resolv.conf as the kubelet writes it for dnsPolicy ClusterFirst.
pub fn resolv_conf(cluster_dns: &str, namespace: &str, domain: &str) -> String {
    format!("nameserver {cluster_dns}\nsearch {namespace}.svc.{domain} svc.{domain} {domain}\noptions ndots:5\n")
}

/// /etc/hosts as the kubelet writes it: localhost lines and the pod's own names.
pub fn hosts(hostname: &str, subdomain: Option<&str>, namespace: &str, domain: &str, ip: Ipv4Addr) -> String {
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    match subdomain.filter(|s| !s.is_empty()) {
        Some(sub) => text.push_str(&format!(
            "{ip}\t{hostname}.{sub}.{namespace}.svc.{domain}\t{hostname}\n"
        )),
        None => text.push_str(&format!("{ip}\t{hostname}\n")),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cni: Cni) -> SandboxSpec {
        SandboxSpec {
            cni,
            netns: "sn1-p-abc".into(),
            veth: "vethabc".into(),
            ip: "10.244.1.5".parse().unwrap(),
            pod_cidr: Cidr::parse("10.244.1.0/24").unwrap(),
        }
    }

    #[test]
    fn pod_files_follow_the_kubelet() {
        assert_eq!(
            resolv_conf("10.96.0.10", "shop", "cluster.local"),
            "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
        let ip = "10.244.1.5".parse().unwrap();
        assert!(hosts("web-0", None, "default", "cluster.local", ip).ends_with("\n10.244.1.5\tweb-0\n"));
        assert!(hosts("web-0", Some("web"), "default", "cluster.local", ip)
            .ends_with("\n10.244.1.5\tweb-0.web.default.svc.cluster.local\tweb-0\n"));
        assert!(hosts("web-0", None, "default", "cluster.local", ip).contains("127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn flannel_pods_share_the_node_cidr_behind_the_bridge() {
        let s = spec(Cni::Flannel);
        assert_eq!(
            (s.prefix_len(), s.gateway(), s.mtu()),
            (24, "10.244.1.1".parse().unwrap(), 1500)
        );
        assert_eq!(spec(Cni::FlannelVxlan).mtu(), 1450);
        assert_eq!(
            node_lines(Cni::Flannel, s.pod_cidr),
            [
                "link add cni0 address 0a:58:0a:f4:01:01 mtu 1500 type bridge",
                "link set cni0 up",
                "addr replace 10.244.1.1/24 dev cni0"
            ]
        );
    }

    #[test]
    fn terway_pods_are_routed_point_to_point() {
        let s = spec(Cni::TerwayEniip);
        assert_eq!((s.prefix_len(), s.gateway()), (32, "169.254.1.1".parse().unwrap()));
        assert!(node_lines(Cni::TerwayEniip, s.pod_cidr).is_empty());
    }
}
