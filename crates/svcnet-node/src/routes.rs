//! The pod network between nodes, node side: what routes, neighbours and FDB entries a node
//! needs in each CNI mode, as a pure function of (mode, this node, all nodes), and a thin applier
//! that makes the node match it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::ipam::Cidr;

/// The CNI mode the lab runs (docs/lab.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cni {
    /// Flannel host-gw: pod CIDRs routed over the VPC via each node.
    Flannel,
    /// Flannel VXLAN: pod CIDRs over `flannel.1` (VNI 1, port 8472).
    FlannelVxlan,
    /// Terway ENIIP: pods take VPC addresses; the VPC routes each node's block.
    TerwayEniip,
}

/// The VPC router, every node's next hop for lab CIDRs outside the VPC segment.
pub const VPC_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
/// SLB public addresses, reached through the VPC router.
pub const PUBLIC_CIDR: &str = "203.0.113.0/24";
/// Terway's pod vSwitch, routed by the VPC.
pub const TERWAY_POD_CIDR: &str = "192.168.80.0/20";
/// The VXLAN device and its parameters (flannel's defaults).
pub const VXLAN_DEV: &str = "flannel.1";
pub const VXLAN_VNI: u32 = 1;
pub const VXLAN_PORT: u16 = 8472;
/// MTU of `flannel.1` and of pods under flannel-vxlan (1500 less the VXLAN overhead).
pub const VXLAN_MTU: u32 = 1450;
/// A custom route protocol number marks the routes this applier owns, so it can remove the
/// ones no longer desired after a restart without touching any other route.
pub const ROUTE_PROTO: u8 = 211;

/// What the agent knows of a node from its Node object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub ip: Option<Ipv4Addr>,
    pub pod_cidr: Option<Cidr>,
    /// From `flannel.alpha.coreos.com/backend-data` ({"VtepMAC": ...}).
    pub vtep_mac: Option<String>,
    /// From `flannel.alpha.coreos.com/public-ip`, else the InternalIP.
    pub public_ip: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dest: String,
    pub via: Ipv4Addr,
    pub dev: Option<String>,
    pub onlink: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neighbour {
    pub ip: Ipv4Addr,
    pub mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fdb {
    pub mac: String,
    pub dst: Ipv4Addr,
}

/// The node's desired pod-network state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub routes: BTreeSet<Route>,
    /// Neighbour and FDB entries on `flannel.1` (flannel-vxlan only).
    pub neighbours: BTreeSet<Neighbour>,
    pub fdb: BTreeSet<Fdb>,
}

/// The routes, neighbours and FDB entries node `me` needs. Never a default route: the lab's
/// nodes reach only lab CIDRs.
pub fn desired(cni: Cni, me: &str, nodes: &[NodeInfo]) -> Desired {
    let mut out = Desired::default();
    out.routes.insert(via_router(PUBLIC_CIDR));
    let others = nodes.iter().filter(|n| n.name != me);
    match cni {
        Cni::Flannel => {
            for node in others {
                if let (Some(cidr), Some(ip)) = (node.pod_cidr, node.ip) {
                    out.routes.insert(Route {
                        dest: cidr.to_string(),
                        via: ip,
                        dev: None,
                        onlink: false,
                    });
                }
            }
        }
        Cni::FlannelVxlan => {
            for node in others {
                let (Some(cidr), Some(mac)) = (node.pod_cidr, node.vtep_mac.clone()) else {
                    continue;
                };
                let Some(dst) = node.public_ip.or(node.ip) else {
                    continue;
                };
                let gateway = cidr.network().addr;
                out.routes.insert(Route {
                    dest: cidr.to_string(),
                    via: gateway,
                    dev: Some(VXLAN_DEV.into()),
                    onlink: true,
                });
                out.neighbours.insert(Neighbour {
                    ip: gateway,
                    mac: mac.clone(),
                });
                out.fdb.insert(Fdb { mac, dst });
            }
        }
        Cni::TerwayEniip => {
            out.routes.insert(via_router(TERWAY_POD_CIDR));
        }
    }
    out
}

fn via_router(dest: &str) -> Route {
    Route {
        dest: dest.into(),
        via: VPC_ROUTER,
        dev: None,
        onlink: false,
    }
}

/// The VTEP MAC of a node: derived from its IP (locally administered), so it is the same
/// after every restart and the annotation never churns.
pub fn vtep_mac(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("0e:f1:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The nftables table of flannel's ip-masq: pod traffic leaving the cluster CIDR (for the VPC,
/// the SLB, the internet client) goes out with the node's address, as flannel's `--ip-masq`
/// does; pod-to-pod traffic keeps its source. Terway pods own VPC addresses: no masquerade.
/// The script replaces the table whole, so applying it again is harmless.
pub fn masquerade_script(cni: Cni, cluster_cidr: Cidr) -> Option<String> {
    if cni == Cni::TerwayEniip {
        return None;
    }
    Some(format!(
        "table ip {MASQ_TABLE}\ndelete table ip {MASQ_TABLE}\ntable ip {MASQ_TABLE} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {cluster_cidr} ip daddr {cluster_cidr} return\n\
         \t\tip saddr {cluster_cidr} ip daddr != 224.0.0.0/4 masquerade\n\
         \t}}\n}}\n"
    ))
}

/// The table [`masquerade_script`] owns.
pub const MASQ_TABLE: &str = "svcnet-flannel";

/// `ip -batch` lines that put `route` in place.
pub fn route_line(verb: &str, route: &Route) -> String {
    let mut line = format!("route {verb} {} via {}", route.dest, route.via);
    if let Some(dev) = &route.dev {
        line.push_str(&format!(" dev {dev}"));
    }
    if route.onlink {
        line.push_str(" onlink");
    }
    line.push_str(&format!(" proto {ROUTE_PROTO}"));
    line
}

/// The `ip -batch` lines that take the node from `current` (what the applier finds) to
/// `want`. Replace is idempotent, so every desired entry is (re)written.
pub fn plan(want: &Desired, current: &Current) -> Vec<String> {
    let mut lines = Vec::new();
    let wanted: BTreeSet<&str> = want.routes.iter().map(|r| r.dest.as_str()).collect();
    for dest in current.routes.iter().filter(|d| !wanted.contains(d.as_str())) {
        lines.push(format!("route del {dest} proto {ROUTE_PROTO}"));
    }
    let wanted_neigh: BTreeSet<Ipv4Addr> = want.neighbours.iter().map(|n| n.ip).collect();
    for ip in current.neighbours.iter().filter(|ip| !wanted_neigh.contains(ip)) {
        lines.push(format!("neigh del {ip} dev {VXLAN_DEV}"));
    }
    for route in &want.routes {
        lines.push(route_line("replace", route));
    }
    for n in &want.neighbours {
        lines.push(format!(
            "neigh replace {} lladdr {} dev {VXLAN_DEV} nud permanent",
            n.ip, n.mac
        ));
    }
    lines
}

/// The `bridge -batch` lines for the VXLAN FDB.
pub fn fdb_plan(want: &Desired, current: &Current) -> Vec<String> {
    let wanted: BTreeSet<&str> = want.fdb.iter().map(|f| f.mac.as_str()).collect();
    let mut lines: Vec<String> = current
        .fdb_macs
        .iter()
        .filter(|mac| !wanted.contains(mac.as_str()))
        .map(|mac| format!("fdb del {mac} dev {VXLAN_DEV}"))
        .collect();
    for f in &want.fdb {
        lines.push(format!(
            "fdb replace {} dev {VXLAN_DEV} dst {} self permanent",
            f.mac, f.dst
        ));
    }
    lines
}

/// What the node has now, of the things this applier owns.
#[derive(Debug, Clone, Default)]
pub struct Current {
    /// Destinations of routes with protocol [`ROUTE_PROTO`].
    pub routes: Vec<String>,
    /// Permanent neighbours on `flannel.1`.
    pub neighbours: Vec<Ipv4Addr>,
    /// Permanent unicast FDB entries on `flannel.1`.
    pub fdb_macs: Vec<String>,
}

/// Reads [`Current`] from the node (the agent's namespace).
pub fn read_current(vxlan: bool) -> anyhow::Result<Current> {
    let mut current = Current::default();
    let routes = json_of("ip", &["-j", "route", "show", "proto", &ROUTE_PROTO.to_string()])?;
    current.routes = strings_at(&routes, "dst")
        .into_iter()
        .map(|d| if d.contains('/') { d } else { format!("{d}/32") })
        .collect();
    if vxlan {
        let neigh = json_of("ip", &["-j", "neigh", "show", "dev", VXLAN_DEV, "nud", "permanent"])?;
        current.neighbours = strings_at(&neigh, "dst")
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let fdb = json_of("bridge", &["-j", "fdb", "show", "dev", VXLAN_DEV])?;
        current.fdb_macs = fdb
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e.get("dst").is_some())
            .filter_map(|e| e.get("mac").and_then(|m| m.as_str()).map(str::to_string))
            .filter(|mac| mac != "00:00:00:00:00:00")
            .collect();
    }
    Ok(current)
}

fn json_of(program: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let output = std::process::Command::new(program).args(args).output()?;
    if !output.status.success() {
        anyhow::bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn strings_at(value: &serde_json::Value, key: &str) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.get(key).and_then(|v| v.as_str()).map(str::to_string))
        .collect()
}

/// Makes the node match `want` (idempotent: run it on every change of the nodes).
pub fn apply(cni: Cni, want: &Desired) -> anyhow::Result<()> {
    let vxlan = cni == Cni::FlannelVxlan;
    let current = read_current(vxlan)?;
    crate::netns::ip_batch(None, &plan(want, &current))?;
    if vxlan {
        let lines = fdb_plan(want, &current);
        if !lines.is_empty() {
            batch("bridge", &lines)?;
        }
    }
    Ok(())
}

fn batch(program: &str, lines: &[String]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(lines.join("\n").as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        anyhow::bail!("{program} -batch: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, cidr: &str) -> NodeInfo {
        let ip: Ipv4Addr = ip.parse().unwrap();
        NodeInfo {
            name: name.into(),
            ip: Some(ip),
            pod_cidr: Some(Cidr::parse(cidr).unwrap()),
            vtep_mac: Some(vtep_mac(ip)),
            public_ip: Some(ip),
        }
    }

    fn nodes() -> Vec<NodeInfo> {
        let mut waiting = node("node3", "192.168.77.13", "10.244.9.0/24");
        waiting.pod_cidr = None;
        vec![
            node("node1", "192.168.77.11", "10.244.0.0/24"),
            node("node2", "192.168.77.12", "10.244.1.0/24"),
            waiting,
        ]
    }

    fn lines(d: &Desired) -> Vec<String> {
        d.routes.iter().map(|r| route_line("replace", r)).collect()
    }

    #[test]
    fn host_gw_routes_other_nodes_pod_cidrs_via_them() {
        let d = desired(Cni::Flannel, "node1", &nodes());
        assert_eq!(
            lines(&d),
            [
                "route replace 10.244.1.0/24 via 192.168.77.12 proto 211",
                "route replace 203.0.113.0/24 via 192.168.77.1 proto 211",
            ]
        );
        assert!(d.neighbours.is_empty() && d.fdb.is_empty());
    }

    #[test]
    fn vxlan_routes_onlink_with_neighbour_and_fdb() {
        let d = desired(Cni::FlannelVxlan, "node2", &nodes());
        assert_eq!(
            lines(&d),
            [
                "route replace 10.244.0.0/24 via 10.244.0.0 dev flannel.1 onlink proto 211",
                "route replace 203.0.113.0/24 via 192.168.77.1 proto 211",
            ]
        );
        let mac = vtep_mac("192.168.77.11".parse().unwrap());
        assert_eq!(mac, "0e:f1:c0:a8:4d:0b");
        assert_eq!(
            d.neighbours.iter().collect::<Vec<_>>(),
            [&Neighbour {
                ip: "10.244.0.0".parse().unwrap(),
                mac: mac.clone()
            }]
        );
        assert_eq!(
            d.fdb.iter().collect::<Vec<_>>(),
            [&Fdb {
                mac,
                dst: "192.168.77.11".parse().unwrap()
            }]
        );
    }

    #[test]
    fn terway_routes_the_pod_vswitch_via_the_vpc() {
        let d = desired(Cni::TerwayEniip, "node1", &nodes());
        assert_eq!(
            lines(&d),
            [
                "route replace 192.168.80.0/20 via 192.168.77.1 proto 211",
                "route replace 203.0.113.0/24 via 192.168.77.1 proto 211",
            ]
        );
    }

    #[test]
    fn never_a_default_route() {
        for cni in [Cni::Flannel, Cni::FlannelVxlan, Cni::TerwayEniip] {
            let d = desired(cni, "node1", &nodes());
            assert!(d.routes.iter().all(|r| r.dest != "default" && r.dest != "0.0.0.0/0"));
        }
    }

    #[test]
    fn flannel_masquerades_only_traffic_leaving_the_cluster_cidr() {
        let cidr = Cidr::parse("10.244.0.0/16").unwrap();
        assert_eq!(masquerade_script(Cni::TerwayEniip, cidr), None);
        let script = masquerade_script(Cni::Flannel, cidr).unwrap();
        assert!(script.starts_with("table ip svcnet-flannel\ndelete table ip svcnet-flannel\n"));
        assert!(script.contains("ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return\n"));
        assert!(script.contains("ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade\n"));
        assert_eq!(masquerade_script(Cni::FlannelVxlan, cidr), Some(script));
    }

    #[test]
    fn plan_removes_what_is_no_longer_wanted() {
        let d = desired(Cni::Flannel, "node1", &nodes());
        let current = Current {
            routes: vec!["10.244.5.0/24".into(), "10.244.1.0/24".into()],
            ..Default::default()
        };
        let plan = plan(&d, &current);
        assert_eq!(plan[0], "route del 10.244.5.0/24 proto 211");
        assert_eq!(plan.len(), 3);
        let fdb = fdb_plan(
            &desired(Cni::FlannelVxlan, "node2", &nodes()),
            &Current {
                fdb_macs: vec!["0e:f1:00:00:00:01".into()],
                ..Default::default()
            },
        );
        assert_eq!(fdb[0], "fdb del 0e:f1:00:00:00:01 dev flannel.1");
        assert_eq!(
            fdb[1],
            "fdb replace 0e:f1:c0:a8:4d:0b dev flannel.1 dst 192.168.77.11 self permanent"
        );
    }
}
