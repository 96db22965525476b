//! The lab as plain data: which namespaces exist, which `ip` commands run in each (links,
//! addresses, routes), which sysctls they need, and which host routes keep lab traffic off real
//! networks. Nothing here touches the machine; [`crate::build`] applies a [`Lab`].
//!
//! Names and addresses follow docs/lab.md.

use std::net::Ipv4Addr;

use anyhow::{bail, ensure};
use serde::{Deserialize, Serialize};

/// The VPC segment (bridge `vpc0` in the router namespace).
pub const VPC_CIDR: &str = "192.168.77.0/24";
/// The VPC router's address on `vpc0`; the API server listens there too.
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
/// Port of the API server inside the lab.
pub const API_PORT: u16 = 6443;
/// The SLB's VPC side.
pub const SLB_VPC_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 250);
/// The SLB's public side, towards the internet client.
pub const SLB_PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
pub const PUBLIC_CIDR: &str = "203.0.113.0/24";
pub const FLANNEL_CLUSTER_CIDR: &str = "10.244.0.0/16";
/// Terway ENIIP: pods take addresses of the VPC's pod vSwitch.
pub const TERWAY_CLUSTER_CIDR: &str = "192.168.80.0/20";
pub const SERVICE_CIDR: &str = "10.96.0.0/12";

/// Every range the lab uses; the host gets an `unreachable` route for each so that nothing on
/// the host can leak lab traffic to a real network.
pub const LAB_CIDRS: [&str; 5] = [
    FLANNEL_CLUSTER_CIDR,
    SERVICE_CIDR,
    VPC_CIDR,
    TERWAY_CLUSTER_CIDR,
    PUBLIC_CIDR,
];

/// Node addresses are 192.168.77.(10+i) and must stay below the SLB's .250.
const MAX_NODES: u32 = 239;
/// Interface names are at most 15 bytes; the longest we make from the prefix is none (interface
/// names never carry it), but namespace names end up in paths and `/etc/netns`, so keep them
/// short and plain.
const MAX_PREFIX_LEN: usize = 24;

/// The pod network of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Cni {
    /// Flannel host-gw: routes between the nodes' pod CIDRs over the VPC.
    Flannel,
    /// Flannel VXLAN: a `flannel.1` VXLAN device per node.
    FlannelVxlan,
    /// Terway ENIIP: pods take VPC addresses; the VPC router routes each node's share.
    TerwayEniip,
}

impl Cni {
    pub fn as_str(self) -> &'static str {
        match self {
            Cni::Flannel => "flannel",
            Cni::FlannelVxlan => "flannel-vxlan",
            Cni::TerwayEniip => "terway-eniip",
        }
    }

    /// The range node IPAM hands /24s out of.
    pub fn cluster_cidr(self) -> &'static str {
        match self {
            Cni::Flannel | Cni::FlannelVxlan => FLANNEL_CLUSTER_CIDR,
            Cni::TerwayEniip => TERWAY_CLUSTER_CIDR,
        }
    }

    /// How many /24s the cluster CIDR holds, hence how many nodes can get a pod CIDR.
    fn max_nodes(self) -> u32 {
        match self {
            Cni::Flannel | Cni::FlannelVxlan => MAX_NODES,
            Cni::TerwayEniip => 16,
        }
    }
}

impl std::fmt::Display for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub prefix: String,
    pub nodes: u32,
    pub cni: Cni,
    /// Topology zones, given to nodes round-robin (node1 the first).
    pub zones: Vec<String>,
}

/// The role of a lab namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Router,
    Node,
    Slb,
    Client,
}

/// One namespace and what to run inside it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub role: Role,
    /// `(key, value)` under /proc/sys, e.g. `("net/ipv4/ip_forward", "1")`.
    pub sysctls: Vec<(&'static str, &'static str)>,
    /// `ip -batch` lines run with `ip -n <name>`.
    pub commands: Vec<String>,
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub namespace: String,
    pub ip: Ipv4Addr,
    pub zone: Option<String>,
}

/// The whole lab. `namespaces` is in build order: a namespace's commands may move a veth end
/// into a namespace later in the list, never into an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    pub prefix: String,
    pub cni: Cni,
    pub namespaces: Vec<Namespace>,
    pub nodes: Vec<Node>,
    /// CIDRs that get an `unreachable` route in the host namespace.
    pub host_unreachable: Vec<&'static str>,
}

impl Lab {
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.iter().map(|ns| ns.name.clone()).collect()
    }

    pub fn router_namespace(&self) -> String {
        namespace_name(&self.prefix, "vpc")
    }

    pub fn client_namespace(&self) -> String {
        namespace_name(&self.prefix, "client")
    }

    pub fn slb_namespace(&self) -> String {
        namespace_name(&self.prefix, "slb")
    }
}

/// `<prefix>-<what>`, the name of every lab namespace.
pub fn namespace_name(prefix: &str, what: &str) -> String {
    format!("{prefix}-{what}")
}

/// The address of node `i` (1-based) on the VPC.
pub fn node_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 77, (10 + i) as u8)
}

/// Checks a lab prefix: it names namespaces and directories, so keep it to `[a-z0-9-]`.
pub fn validate_prefix(prefix: &str) -> anyhow::Result<()> {
    ensure!(
        !prefix.is_empty() && prefix.len() <= MAX_PREFIX_LEN,
        "lab name {prefix:?}: 1 to {MAX_PREFIX_LEN} characters"
    );
    ensure!(
        prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !prefix.starts_with('-'),
        "lab name {prefix:?}: only lowercase letters, digits and '-' (not first)"
    );
    Ok(())
}

/// The lab for `options`, or why it cannot be built.
pub fn plan(options: &Options) -> anyhow::Result<Lab> {
    validate_prefix(&options.prefix)?;
    let max = options.cni.max_nodes();
    if options.nodes == 0 || options.nodes > max {
        bail!("--nodes {}: between 1 and {max} in {} mode", options.nodes, options.cni);
    }
    let prefix = options.prefix.as_str();
    let nodes: Vec<Node> = (1..=options.nodes)
        .map(|i| Node {
            name: format!("node{i}"),
            namespace: namespace_name(prefix, &format!("node{i}")),
            ip: node_ip(i),
            zone: zone_of(&options.zones, i),
        })
        .collect();
    let mut namespaces = vec![router(prefix, &nodes)];
    namespaces.extend(nodes.iter().map(|node| node_namespace(node, options.cni)));
    namespaces.push(slb(prefix, options.cni));
    namespaces.push(client(prefix, options.cni));
    Ok(Lab {
        prefix: prefix.to_string(),
        cni: options.cni,
        namespaces,
        nodes,
        host_unreachable: LAB_CIDRS.to_vec(),
    })
}

fn zone_of(zones: &[String], i: u32) -> Option<String> {
    if zones.is_empty() {
        return None;
    }
    zones.get((i as usize - 1) % zones.len()).cloned()
}

/// Forwarding hosts; loose reverse-path filtering because lab paths are asymmetric (a client's
/// reply may come back through another hop than the request went).
const FORWARDER_SYSCTLS: [(&str, &str); 3] = [
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv4/conf/all/rp_filter", "2"),
    ("net/ipv4/conf/default/rp_filter", "2"),
];

/// The VPC router: bridge `vpc0` (the segment), one veth per node and one for the SLB. The
/// terway per-node routes come later, from the Node objects.
fn router(prefix: &str, nodes: &[Node]) -> Namespace {
    let mut commands = vec![
        "link set lo up".to_string(),
        "link add vpc0 type bridge".to_string(),
        format!("addr add {ROUTER_IP}/24 dev vpc0"),
        "link set vpc0 up".to_string(),
    ];
    for node in nodes {
        commands.extend(vpc_port(&format!("v-{}", node.name), &node.namespace));
    }
    commands.extend(vpc_port("v-slb", &namespace_name(prefix, "slb")));
    commands.push(format!("route add {PUBLIC_CIDR} via {SLB_VPC_IP}"));
    Namespace {
        name: namespace_name(prefix, "vpc"),
        role: Role::Router,
        sysctls: FORWARDER_SYSCTLS.to_vec(),
        commands,
    }
}

/// A veth on `vpc0` whose other end is `eth0` of `peer_namespace`.
fn vpc_port(port: &str, peer_namespace: &str) -> [String; 2] {
    [
        format!("link add {port} type veth peer name eth0 netns {peer_namespace}"),
        format!("link set {port} master vpc0 up"),
    ]
}

/// A node: `eth0` on the VPC and routes to the rest of the lab only, never a default route.
/// Pod routes between nodes (flannel) are the agent's, from the Node objects.
fn node_namespace(node: &Node, cni: Cni) -> Namespace {
    let mut commands = vec![
        "link set lo up".to_string(),
        format!("addr add {}/24 dev eth0", node.ip),
        "link set eth0 up".to_string(),
        format!("route add {PUBLIC_CIDR} via {ROUTER_IP}"),
        // Services are DNATed by the node proxy after the route lookup, so the range needs a
        // route; the router drops what no proxy rewrote.
        format!("route add {SERVICE_CIDR} via {ROUTER_IP}"),
    ];
    if cni == Cni::TerwayEniip {
        commands.push(format!("route add {TERWAY_CLUSTER_CIDR} via {ROUTER_IP}"));
    }
    // The lab is IPv4 only: the pods' host-side veths, made later by the agent, get no IPv6
    // link-local address (no duplicate address detection or router solicitation per pod).
    let mut sysctls = FORWARDER_SYSCTLS.to_vec();
    sysctls.push(("net/ipv6/conf/default/disable_ipv6", "1"));
    Namespace {
        name: node.namespace.clone(),
        role: Role::Node,
        sysctls,
        commands,
    }
}

/// The SLB: `eth0` on the VPC, `eth1` towards the internet client.
fn slb(prefix: &str, cni: Cni) -> Namespace {
    let mut commands = vec![
        "link set lo up".to_string(),
        format!("addr add {SLB_VPC_IP}/24 dev eth0"),
        "link set eth0 up".to_string(),
        format!(
            "link add eth1 type veth peer name eth0 netns {}",
            namespace_name(prefix, "client")
        ),
        format!("addr add {SLB_PUBLIC_IP}/24 dev eth1"),
        "link set eth1 up".to_string(),
    ];
    if cni == Cni::TerwayEniip {
        // Pod-direct backends live on the pod vSwitch.
        commands.push(format!("route add {TERWAY_CLUSTER_CIDR} via {ROUTER_IP}"));
    }
    Namespace {
        name: namespace_name(prefix, "slb"),
        role: Role::Slb,
        sysctls: FORWARDER_SYSCTLS.to_vec(),
        commands,
    }
}

/// The internet client: reaches the SLB's public side and, through it, the VPC.
fn client(prefix: &str, cni: Cni) -> Namespace {
    let mut commands = vec![
        "link set lo up".to_string(),
        format!("addr add {CLIENT_IP}/24 dev eth0"),
        "link set eth0 up".to_string(),
        format!("route add {VPC_CIDR} via {SLB_PUBLIC_IP}"),
    ];
    if cni == Cni::TerwayEniip {
        commands.push(format!("route add {TERWAY_CLUSTER_CIDR} via {SLB_PUBLIC_IP}"));
    }
    Namespace {
        name: namespace_name(prefix, "client"),
        role: Role::Client,
        sysctls: Vec::new(),
        commands,
    }
}

/// The VPC router's route for a node's pod CIDR (terway: the VPC route table entry).
pub fn router_pod_route(pod_cidr: &str, node_ip: Ipv4Addr) -> String {
    format!("route replace {pod_cidr} via {node_ip}")
}

/// Whether IPv4 CIDR `inner` lies inside `outer`.
pub fn ipv4_cidr_contains(outer: &str, inner: &str) -> bool {
    let (Some((outer_ip, outer_len)), Some((inner_ip, inner_len))) = (parse_cidr(outer), parse_cidr(inner)) else {
        return false;
    };
    let mask = |len: u32| if len == 0 { 0 } else { u32::MAX << (32 - len) };
    inner_len >= outer_len && (inner_ip & mask(outer_len)) == (outer_ip & mask(outer_len))
}

fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    (len <= 32).then_some((u32::from(ip), len))
}

/// Whether `name` is a pod namespace of the lab: `<prefix>-p-<12 hex digits>`.
pub fn is_pod_namespace(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix("-p-"))
        .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `name` is one of the fixed lab namespaces for `prefix` (router, SLB, client, nodes),
/// for cleaning up when no state was recorded.
pub fn is_lab_namespace(prefix: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    matches!(rest, "vpc" | "slb" | "client")
        || rest
            .strip_prefix("node")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || is_pod_namespace(prefix, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(nodes: u32, cni: Cni) -> Options {
        Options {
            prefix: "t1".into(),
            nodes,
            cni,
            zones: Vec::new(),
        }
    }

    fn find<'a>(lab: &'a Lab, name: &str) -> &'a Namespace {
        lab.namespaces.iter().find(|ns| ns.name == name).unwrap()
    }

    #[test]
    fn flannel_lab_has_router_nodes_slb_and_client_in_build_order() {
        let lab = plan(&options(3, Cni::Flannel)).unwrap();
        assert_eq!(
            lab.namespace_names(),
            ["t1-vpc", "t1-node1", "t1-node2", "t1-node3", "t1-slb", "t1-client"]
        );
        let ips: Vec<_> = lab.nodes.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(ips, ["192.168.77.11", "192.168.77.12", "192.168.77.13"]);
    }

    #[test]
    fn veth_ends_only_move_into_later_namespaces() {
        for cni in [Cni::Flannel, Cni::FlannelVxlan, Cni::TerwayEniip] {
            let lab = plan(&options(4, cni)).unwrap();
            for (i, ns) in lab.namespaces.iter().enumerate() {
                for command in &ns.commands {
                    if let Some((_, target)) = command.split_once(" netns ") {
                        let j = lab.namespaces.iter().position(|n| n.name == target).unwrap();
                        assert!(j > i, "{command} in {}", ns.name);
                    }
                }
            }
        }
    }

    #[test]
    fn every_node_gets_one_vpc_port_and_its_address() {
        let lab = plan(&options(2, Cni::Flannel)).unwrap();
        let router = find(&lab, "t1-vpc");
        assert!(router
            .commands
            .contains(&"link add v-node2 type veth peer name eth0 netns t1-node2".to_string()));
        assert!(router.commands.contains(&"link set v-node2 master vpc0 up".to_string()));
        assert!(find(&lab, "t1-node2")
            .commands
            .contains(&"addr add 192.168.77.12/24 dev eth0".to_string()));
    }

    #[test]
    fn no_namespace_has_a_default_route_and_routes_stay_in_lab_ranges() {
        for cni in [Cni::Flannel, Cni::FlannelVxlan, Cni::TerwayEniip] {
            let lab = plan(&options(3, cni)).unwrap();
            for ns in &lab.namespaces {
                for command in ns.commands.iter().filter(|c| c.starts_with("route")) {
                    let destination = command.split_whitespace().nth(2).unwrap();
                    assert!(
                        LAB_CIDRS.contains(&destination),
                        "{} routes {destination} outside the lab",
                        ns.name
                    );
                }
            }
        }
    }

    #[test]
    fn terway_routes_the_pod_vswitch_through_the_router() {
        let lab = plan(&options(2, Cni::TerwayEniip)).unwrap();
        let route = "route add 192.168.80.0/20 via 192.168.77.1".to_string();
        assert!(find(&lab, "t1-node1").commands.contains(&route));
        assert!(find(&lab, "t1-slb").commands.contains(&route));
        assert!(find(&lab, "t1-client")
            .commands
            .contains(&"route add 192.168.80.0/20 via 203.0.113.1".to_string()));
        let flannel = plan(&options(2, Cni::Flannel)).unwrap();
        assert!(!find(&flannel, "t1-node1").commands.contains(&route));
    }

    #[test]
    fn forwarders_forward_and_the_client_does_not() {
        let lab = plan(&options(1, Cni::Flannel)).unwrap();
        for ns in &lab.namespaces {
            let forwards = ns.sysctls.contains(&("net/ipv4/ip_forward", "1"));
            assert_eq!(forwards, ns.role != Role::Client, "{}", ns.name);
        }
    }

    #[test]
    fn host_gets_unreachable_routes_for_every_lab_range() {
        let lab = plan(&options(1, Cni::TerwayEniip)).unwrap();
        assert_eq!(lab.host_unreachable, LAB_CIDRS.to_vec());
    }

    #[test]
    fn node_counts_are_bounded_per_mode() {
        assert!(plan(&options(0, Cni::Flannel)).is_err());
        assert!(plan(&options(239, Cni::Flannel)).is_ok());
        assert!(plan(&options(240, Cni::Flannel)).is_err());
        assert!(plan(&options(16, Cni::TerwayEniip)).is_ok());
        let error = plan(&options(17, Cni::TerwayEniip)).unwrap_err().to_string();
        assert!(error.contains("terway-eniip"), "{error}");
    }

    #[test]
    fn zones_go_round_robin() {
        let mut opts = options(3, Cni::Flannel);
        opts.zones = vec!["a".into(), "b".into()];
        let zones: Vec<_> = plan(&opts).unwrap().nodes.into_iter().map(|n| n.zone).collect();
        assert_eq!(zones, [Some("a".into()), Some("b".into()), Some("a".into())]);
    }

    #[test]
    fn prefixes_are_plain() {
        assert!(validate_prefix("sn1a2b").is_ok());
        assert!(validate_prefix("lab-2").is_ok());
        for bad in ["", "-a", "A", "a/b", "a b", &"x".repeat(25)] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recognises_its_own_namespaces_only() {
        assert!(is_pod_namespace("sn12", "sn12-p-0123456789ab"));
        assert!(!is_pod_namespace("sn12", "sn12-p-0123"));
        assert!(!is_pod_namespace("sn1", "sn12-p-0123456789ab"));
        assert!(is_lab_namespace("sn12", "sn12-node7"));
        assert!(is_lab_namespace("sn12", "sn12-vpc"));
        assert!(!is_lab_namespace("sn12", "sn12-node"));
        assert!(!is_lab_namespace("sn1", "sn12-vpc"));
        assert!(!is_lab_namespace("a", "a-b-vpc"));
    }

    #[test]
    fn cidr_containment() {
        assert!(ipv4_cidr_contains("192.168.80.0/20", "192.168.95.0/24"));
        assert!(!ipv4_cidr_contains("192.168.80.0/20", "192.168.96.0/24"));
        assert!(!ipv4_cidr_contains("192.168.80.0/20", "192.168.80.0/16"));
        assert!(!ipv4_cidr_contains("192.168.80.0/20", "garbage"));
        assert!(ipv4_cidr_contains("0.0.0.0/0", "1.2.3.4/32"));
    }
}
