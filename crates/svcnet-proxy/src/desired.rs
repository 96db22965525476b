//! The pure model: Services, EndpointSlices, this node and the config in, the whole `svcnet`
//! table out.
//!
//! Layout (few kernel objects; the per-packet path is map lookups whose cost does not grow with
//! the number of Services):
//!
//! ```text
//! nat-prerouting / nat-output ─ jump services
//!   services:  ip daddr . l4proto . dport  vmap @service-ips
//!                  cluster IPs → jump pick-<port> (returns here), others → goto ext-<port>
//!              ip daddr @nodeport-ips  l4proto . dport vmap @service-nodeports → goto ext-<port>
//!              ip daddr . l4proto . dport @cluster-frontends → goto cluster-ip
//!   cluster-ip: masquerade mark for sources outside the pod network, goto endpoint-dnat
//!   ext-<port>: Cluster: mark, jump pick-<port>, goto endpoint-dnat;  Local: pod / host
//!               short-circuits (goto all-<port>), then jump pick-local-<port>, goto endpoint-dnat
//!   pick-[local-]<port>: ct mark set numgen inc mod N offset B   (or random, or jhash for
//!               Maglev); empty when the pool is
//!   endpoint-dnat: dnat to ct mark map @endpoints (one shared rule and map, the port's slots
//!               are B+1..B+N)
//! nat-postrouting: hairpin (ip saddr . ip daddr @hairpin) and marked packets → masquerade
//! filter (after DNAT): what is still addressed to a Service is in @no-endpoint-*-reject or
//! @no-endpoint-*-drop
//! filter (before DNAT): @firewall-ips not from @firewall-allow → drop (loadBalancerSourceRanges)
//! ```
//!
//! Every Service port has a 16-bit id; its endpoints occupy keys `id << 16 | pool | slot` of the
//! one `endpoints` map, so an endpoint change is an element change, and a change in the number
//! of slots rewrites only the pool's pick chain, whose rule carries no verdict. That matters:
//! adding a rule with a verdict, a lookup or a meta/fib/nat expression, or a verdict-map element
//! that jumps, makes the kernel re-validate every chain reachable from the hooks at commit
//! (about 7 ms at 10,000 Services), while a pick rule and plain set elements do not. The same
//! reason keeps "no endpoints" in plain sets rather than in verdict maps. Session affinity keeps
//! `client . pool-base → slot` in the dynamic `affinity` map with per-element timeouts, using
//! the connection mark as the register that carries the slot into the DNAT lookup.
//!
//! A cluster IP has no chain of its own: what its chain would hold is the same for every
//! Service, so the shared `cluster-ip` chain does it after the pick chain returns. Kernel time
//! of a full load grows with the number of chains (about 45 µs each), and most Services have
//! only a cluster IP, so this halves the chains of a typical table.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{Algorithm, ModelConfig, NodeInfo};
use crate::maglev;
use crate::ruleset::{Chain, Ruleset, Set, Union};
use crate::services::{service_ports, Endpoint, ServicePort, ServicePortName};

/// Cluster IPs, external IPs and VIP load-balancer IPs → the port's chain.
pub const SERVICE_IPS: &str = "service-ips";
/// NodePorts (on `nodeport-ips`) → the port's external chain.
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// The node addresses NodePorts answer on.
pub const NODEPORT_IPS: &str = "nodeport-ips";
/// Destinations without any usable endpoint: rejected (connection refused at once).
pub const NO_ENDPOINT_REJECT: &str = "no-endpoint-reject";
/// Destinations of policy Local without a local endpoint: dropped.
pub const NO_ENDPOINT_DROP: &str = "no-endpoint-drop";
/// NodePorts without any usable endpoint: rejected.
pub const NO_ENDPOINT_NODEPORT_REJECT: &str = "no-endpoint-nodeport-reject";
/// NodePorts of policy Local without a local endpoint: dropped.
pub const NO_ENDPOINT_NODEPORT_DROP: &str = "no-endpoint-nodeport-drop";
/// LB destinations guarded by loadBalancerSourceRanges.
pub const FIREWALL_IPS: &str = "firewall-ips";
/// `destination . allowed source range` pairs.
pub const FIREWALL_ALLOW: &str = "firewall-allow";
/// Slot key → `endpoint ip . port`, for every Service port.
pub const ENDPOINTS: &str = "endpoints";
/// ClientIP affinity: `client . pool base → slot key`, with timeouts (filled by the data path).
pub const AFFINITY: &str = "affinity";
/// `endpoint . endpoint`: a pod reaching itself through a Service (hairpin) is masqueraded.
pub const HAIRPIN: &str = "hairpin";
/// The chain both nat hooks jump to.
pub const SERVICES_CHAIN: &str = "services";
/// Cluster IP frontends (`ip . proto . port`), whose pick chain returns to `services`.
pub const CLUSTER_FRONTENDS: &str = "cluster-frontends";
/// What follows the pick for every cluster IP: the masquerade mark, then the DNAT.
pub const CLUSTER_IP_CHAIN: &str = "cluster-ip";
/// Sets the masquerade bit.
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
/// The one DNAT rule: `ct mark` (set by a selection rule) → `endpoints`. One shared rule, not
/// one per Service port, because the kernel checks every element added to a map against every
/// rule bound to it: with 10,000 per-port lookups, loading 100,000 endpoints took 20 s of
/// kernel time instead of 1.4 s.
pub const ENDPOINT_DNAT_CHAIN: &str = "endpoint-dnat";
/// The masquerade bit in the packet mark (upstream's 0x4000).
pub const MASQUERADE_MARK: u32 = 0x4000;
/// Bit of the slot key that separates a port's local pool from its cluster pool.
const LOCAL_POOL_BIT: u32 = 0x8000;
/// Seed of the Maglev `jhash`, the same on every node so that all nodes pick alike.
const JHASH_SEED: &str = "0x5eed";

/// The desired table for this node.
pub fn desired<S: Borrow<Service>, E: Borrow<EndpointSlice>>(
    services: &[S],
    slices: &[E],
    node: &NodeInfo,
    config: &ModelConfig,
) -> Ruleset {
    let ports = service_ports(services, slices, node, config);
    ruleset_for(&ports, node, config)
}

/// The table for already-extracted Service ports (what `desired` does after reading the objects).
pub fn ruleset_for(ports: &[ServicePort], node: &NodeInfo, config: &ModelConfig) -> Ruleset {
    let base = base_ruleset(node, config);
    // Each port is written into a small work table (its sets declared, nothing else) and moved
    // into the union from there.
    let mut work = declarations(&base);
    let mut union = Union::new(base);
    let ids = port_ids(ports.iter().map(|p| &p.name));
    // In id order, the `endpoints` map's slot keys (the id in the high bits) arrive sorted,
    // which the union's final sort finds as one run.
    let mut by_id: Vec<(u16, &ServicePort)> = ports
        .iter()
        .filter_map(|port| ids.get(&port.name).map(|id| (*id, port)))
        .collect();
    by_id.sort_by_key(|(id, _)| *id);
    for (id, port) in by_id {
        add_service_port(&mut work, port, id, config);
        union.take(&mut work);
    }
    union.finish()
}

/// `rules`' sets without their elements, and no chains: the start of a Service's share.
pub(crate) fn declarations(rules: &Ruleset) -> Ruleset {
    Ruleset {
        sets: rules
            .sets
            .iter()
            .map(|(name, set)| (name.clone(), set.without_elements()))
            .collect(),
        chains: Default::default(),
    }
}

/// Sets, maps and hook chains that exist whatever the Services are.
pub(crate) fn base_ruleset(node: &NodeInfo, config: &ModelConfig) -> Ruleset {
    let mut rules = Ruleset::default();
    let frontend = "ipv4_addr . inet_proto . inet_service";
    rules.set(SERVICE_IPS, Set::new(frontend, Some("verdict")));
    rules.set(CLUSTER_FRONTENDS, Set::new(frontend, None));
    rules.set(
        SERVICE_NODEPORTS,
        Set::new("inet_proto . inet_service", Some("verdict")),
    );
    rules.set(NODEPORT_IPS, Set::new("ipv4_addr", None));
    rules.set(NO_ENDPOINT_REJECT, Set::new(frontend, None));
    rules.set(NO_ENDPOINT_DROP, Set::new(frontend, None));
    rules.set(NO_ENDPOINT_NODEPORT_REJECT, Set::new("inet_proto . inet_service", None));
    rules.set(NO_ENDPOINT_NODEPORT_DROP, Set::new("inet_proto . inet_service", None));
    rules.set(FIREWALL_IPS, Set::new(frontend, None));
    rules.set(
        FIREWALL_ALLOW,
        Set::new("ipv4_addr . inet_proto . inet_service . ipv4_addr", None).with_flags("interval"),
    );
    rules.set(ENDPOINTS, Set::new("mark", Some("ipv4_addr . inet_service")));
    let mut affinity = Set::new("ipv4_addr . mark", Some("mark")).with_flags("dynamic,timeout");
    affinity.options = vec!["timeout 3h".into(), "size 1048576".into()];
    affinity.dynamic = true;
    rules.set(AFFINITY, affinity);
    rules.set(HAIRPIN, Set::new("ipv4_addr . ipv4_addr", None));
    for ip in &node.ips {
        rules.element(NODEPORT_IPS, ip.to_string(), "");
    }

    let hook = |kind: &str, hook: &str, priority: i32| {
        Some(format!("type {kind} hook {hook} priority {priority}; policy accept;"))
    };
    // DNAT for traffic arriving and for traffic the node itself sends (priority -100 = dstnat;
    // nft 1.0.6 rejects the name on the output hook).
    *rules.chain("nat-prerouting") = Chain {
        hook: hook("nat", "prerouting", -100),
        rules: vec![format!("jump {SERVICES_CHAIN}")],
    };
    *rules.chain("nat-output") = Chain {
        hook: hook("nat", "output", -100),
        rules: vec![format!("jump {SERVICES_CHAIN}")],
    };
    *rules.chain(SERVICES_CHAIN) = Chain {
        hook: None,
        rules: vec![
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
            format!("ip daddr @{NODEPORT_IPS} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
            format!("ip daddr . meta l4proto . th dport @{CLUSTER_FRONTENDS} goto {CLUSTER_IP_CHAIN}"),
        ],
    };
    let mut cluster_ip = Vec::new();
    if let Some(cidr) = config.cluster_cidr {
        cluster_ip.push(format!("ip saddr != {cidr} jump {MARK_FOR_MASQUERADE}"));
    }
    cluster_ip.push(format!("goto {ENDPOINT_DNAT_CHAIN}"));
    rules.chain(CLUSTER_IP_CHAIN).rules = cluster_ip;
    *rules.chain("nat-postrouting") = Chain {
        hook: hook("nat", "postrouting", 100),
        rules: vec![
            format!("ct status dnat ip saddr . ip daddr @{HAIRPIN} jump {MARK_FOR_MASQUERADE}"),
            format!("meta mark & {MASQUERADE_MARK:#x} == 0 return"),
            // Clear the bit so a packet that is encapsulated and routed again is not masqueraded
            // twice (upstream does the same).
            format!("meta mark set meta mark ^ {MASQUERADE_MARK:#x}"),
            "masquerade fully-random".into(),
        ],
    };
    *rules.chain(MARK_FOR_MASQUERADE) = Chain {
        hook: None,
        rules: vec![format!("meta mark set meta mark | {MASQUERADE_MARK:#x}")],
    };
    // loadBalancerSourceRanges: before DNAT, while the destination is still the LB address.
    let firewall = format!(
        "ip daddr . meta l4proto . th dport @{FIREWALL_IPS} ip daddr . meta l4proto . th dport . ip saddr != @{FIREWALL_ALLOW} drop"
    );
    *rules.chain("filter-prerouting") = Chain {
        hook: hook("filter", "prerouting", -110),
        rules: vec![format!("ct state new {firewall}")],
    };
    *rules.chain("filter-output-pre-dnat") = Chain {
        hook: hook("filter", "output", -110),
        rules: vec![format!("ct state new {firewall}")],
    };
    // Endpoint checks after DNAT: a packet still addressed to a Service found no endpoint.
    for (chain, hook_name) in [
        ("filter-input", "input"),
        ("filter-forward", "forward"),
        ("filter-output", "output"),
    ] {
        *rules.chain(chain) = Chain {
            hook: hook("filter", hook_name, 0),
            rules: vec!["ct state new jump endpoints-check".into()],
        };
    }
    *rules.chain("endpoints-check") = Chain {
        hook: None,
        rules: vec![
            format!("ip daddr . meta l4proto . th dport @{NO_ENDPOINT_REJECT} reject"),
            format!("ip daddr . meta l4proto . th dport @{NO_ENDPOINT_DROP} drop"),
            format!("ip daddr @{NODEPORT_IPS} meta l4proto . th dport @{NO_ENDPOINT_NODEPORT_REJECT} reject"),
            format!("ip daddr @{NODEPORT_IPS} meta l4proto . th dport @{NO_ENDPOINT_NODEPORT_DROP} drop"),
        ],
    };
    *rules.chain(ENDPOINT_DNAT_CHAIN) = Chain {
        hook: None,
        rules: vec![format!(
            "meta l4proto {{ tcp, udp, sctp }} dnat ip addr . port to ct mark map @{ENDPOINTS}"
        )],
    };
    rules
}

/// Stable 16-bit ids (1..=0xffff) per Service port: a hash of the name, probing upward in name
/// order on collision, so most ports keep their id whatever else changes.
pub fn port_ids<'a>(names: impl Iterator<Item = &'a ServicePortName>) -> BTreeMap<ServicePortName, u16> {
    let mut taken = BTreeSet::new();
    let mut ids = BTreeMap::new();
    let mut sorted: Vec<&ServicePortName> = names.collect();
    sorted.sort();
    for name in sorted.into_iter().take(0xffff) {
        let mut id = preferred_id(name);
        while !taken.insert(id) {
            id = if id == 0xffff { 1 } else { id + 1 };
        }
        ids.insert(name.clone(), id);
    }
    ids
}

/// The id a port gets unless another port holds it already (then the next free one up).
pub(crate) fn preferred_id(name: &ServicePortName) -> u16 {
    (fnv32(&name.to_string()) % 0xffff + 1) as u16
}

fn fnv32(text: &str) -> u32 {
    text.bytes()
        .fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Chain names: `pick-`, `pick-local-`, `ext-` and `all-` + `namespace/name/protocol/port`.
pub fn chain_name(kind: &str, port: &ServicePortName) -> String {
    format!("{kind}-{port}")
}

pub(crate) fn add_service_port(rules: &mut Ruleset, port: &ServicePort, id: u16, config: &ModelConfig) {
    let proto = port.name.protocol;
    let number = port.name.port;
    let cluster_pool = port.cluster_pool();
    let local_pool = port.local_pool();
    let cluster_base = u32::from(id) << 16;
    let local_base = cluster_base | LOCAL_POOL_BIT;
    // No endpoint at all: reject; endpoints, but none this policy may use (Local): drop.
    let (no_endpoint, no_endpoint_nodeport) = if cluster_pool.is_empty() {
        (NO_ENDPOINT_REJECT, NO_ENDPOINT_NODEPORT_REJECT)
    } else {
        (NO_ENDPOINT_DROP, NO_ENDPOINT_NODEPORT_DROP)
    };

    // Cluster IP: the internal policy's pool.
    let (internal_pool, internal_base) = if port.internal_local {
        (&local_pool, local_base)
    } else {
        (&cluster_pool, cluster_base)
    };
    if let Some(ip) = port.cluster_ip {
        let pick_chain = pick_chain(rules, port, internal_pool, internal_base);
        rules.element(
            SERVICE_IPS,
            format!("{ip} . {proto} . {number}"),
            format!("jump {pick_chain}"),
        );
        rules.element(CLUSTER_FRONTENDS, format!("{ip} . {proto} . {number}"), "");
        if internal_pool.is_empty() {
            rules.element(no_endpoint, format!("{ip} . {proto} . {number}"), "");
        }
    }

    if !port.has_external() {
        return;
    }
    // External frontends: NodePort, externalIPs, VIP load-balancer IPs.
    let ext_chain = chain_name("ext", &port.name);
    let mut ext = Vec::new();
    let external_pool_empty;
    if port.external_local {
        // The short-circuit target: every endpoint, as policy Cluster would use.
        let all_chain = chain_name("all", &port.name);
        let all_rules = pick(rules, port, &cluster_pool, cluster_base);
        rules.chain(&all_chain).rules = all_rules;
        if let Some(cidr) = config.cluster_cidr {
            // Pods reach every endpoint, unmasqueraded, as upstream does.
            ext.push(format!("ip saddr {cidr} goto {all_chain}"));
        }
        // The node itself: masqueraded, every endpoint (its source would not route back).
        ext.push(format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"));
        ext.push(format!("fib saddr type local goto {all_chain}"));
        ext.extend(pick(rules, port, &local_pool, local_base));
        external_pool_empty = local_pool.is_empty();
    } else {
        ext.push(format!("jump {MARK_FOR_MASQUERADE}"));
        ext.extend(pick(rules, port, &cluster_pool, cluster_base));
        external_pool_empty = cluster_pool.is_empty();
    }
    rules.chain(&ext_chain).rules = ext;

    for ip in port.external_ips.iter().chain(&port.load_balancer_ips) {
        let key = format!("{ip} . {proto} . {number}");
        rules.element(SERVICE_IPS, key.clone(), format!("goto {ext_chain}"));
        if external_pool_empty {
            rules.element(no_endpoint, key, "");
        }
    }
    if let Some(node_port) = port.node_port {
        let key = format!("{proto} . {node_port}");
        rules.element(SERVICE_NODEPORTS, key.clone(), format!("goto {ext_chain}"));
        if external_pool_empty {
            rules.element(no_endpoint_nodeport, key, "");
        }
    }
    if !port.source_ranges.is_empty() {
        for ip in &port.load_balancer_ips {
            let key = format!("{ip} . {proto} . {number}");
            rules.element(FIREWALL_IPS, key.clone(), "");
            for range in &port.source_ranges {
                rules.element(FIREWALL_ALLOW, format!("{key} . {range}"), "");
            }
        }
    }
}

/// The caller's two rules that pick one endpoint of `pool` and DNAT to it: a jump to the pool's
/// pick chain (filled here, with the pool's slots added to `endpoints` and its addresses to
/// `hairpin`) and a goto to the shared DNAT. The caller's rules are the same whatever the pool
/// holds; an empty pool leaves the pick chain empty, the DNAT finds no slot, and the filter
/// side rejects or drops.
fn pick(rules: &mut Ruleset, port: &ServicePort, pool: &[&Endpoint], base: u32) -> Vec<String> {
    let name = pick_chain(rules, port, pool, base);
    vec![format!("jump {name}"), format!("goto {ENDPOINT_DNAT_CHAIN}")]
}

/// Fills the pool's pick chain (the same rules however often it is asked for) and names it.
fn pick_chain(rules: &mut Ruleset, port: &ServicePort, pool: &[&Endpoint], base: u32) -> String {
    let kind = if base & LOCAL_POOL_BIT != 0 {
        "pick-local"
    } else {
        "pick"
    };
    let name = chain_name(kind, &port.name);
    let pick_rules = selection(rules, port, pool, base);
    rules.chain(&name).rules = pick_rules;
    name
}

/// The pick chain's rules: set the connection mark to one of the pool's slots, without a
/// verdict (see the module doc). Empty pool: no rules.
fn selection(rules: &mut Ruleset, port: &ServicePort, pool: &[&Endpoint], base: u32) -> Vec<String> {
    if pool.is_empty() {
        return Vec::new();
    }
    let weights: Vec<u32> = pool.iter().map(|e| e.weight).collect();
    let slots: Vec<usize> = match port.algorithm {
        Algorithm::RoundRobin | Algorithm::Random => maglev::weighted_order(&weights),
        Algorithm::Maglev | Algorithm::MaglevSource => {
            let names: Vec<String> = pool.iter().map(|e| format!("{}:{}", e.ip, e.port)).collect();
            let total: usize = weights.iter().map(|w| *w as usize).sum();
            maglev::table(&names, &weights, maglev::table_size(total))
        }
    };
    let slots = &slots[..slots.len().min(maglev::MAX_TABLE)];
    for (slot, endpoint) in slots.iter().enumerate() {
        let endpoint = pool[*endpoint];
        rules.element(
            ENDPOINTS,
            slot_key(base + 1 + slot as u32),
            endpoint_text(endpoint.ip, endpoint.port),
        );
    }
    for endpoint in pool {
        rules.element(HAIRPIN, hairpin_text(endpoint.ip), "");
    }
    let count = slots.len();
    let first = base + 1;
    let selector = match port.algorithm {
        Algorithm::RoundRobin => format!("numgen inc mod {count} offset {first:#x}"),
        Algorithm::Random => format!("numgen random mod {count} offset {first:#x}"),
        Algorithm::Maglev => {
            format!("jhash ip saddr . ip daddr . th sport . th dport mod {count} seed {JHASH_SEED} offset {first:#x}")
        }
        Algorithm::MaglevSource => format!("jhash ip saddr mod {count} seed {JHASH_SEED} offset {first:#x}"),
    };
    // The 5-tuple hash reads transport ports, which nft only accepts after a protocol match.
    let selector = match port.algorithm {
        Algorithm::Maglev => format!("meta l4proto {} ct mark set {selector}", port.name.protocol),
        _ => format!("ct mark set {selector}"),
    };
    let Some(timeout) = port.affinity_timeout else {
        return vec![selector];
    };
    // ClientIP affinity: the mark carries the pool base into the lookup, then the remembered
    // slot into the DNAT; a remembered slot past the pool's end (the pool shrank) is ignored.
    let remember = format!(
        "update @{AFFINITY} {{ ip saddr . {} timeout {timeout}s : ct mark }}",
        slot_key(base)
    );
    vec![
        format!(
            "ct mark set {} ct mark set ip saddr . ct mark map @{AFFINITY}",
            slot_key(base)
        ),
        format!(
            "ct mark > {} ct mark <= {} {remember} return",
            slot_key(base),
            slot_key(base + count as u32)
        ),
        format!("{selector} {remember}"),
    ]
}

/// A slot key as nft prints marks.
fn slot_key(key: u32) -> String {
    let mut text = String::with_capacity(10);
    text.push_str("0x");
    for shift in (0..8).rev() {
        let digit = (key >> (shift * 4)) & 0xf;
        text.push(char::from_digit(digit, 16).unwrap_or('0'));
    }
    text
}

// The element texts written once per endpoint are formatted by hand: std's `Display` for
// addresses goes through the formatter's padding logic per octet, which was a fifth of the
// model's time at 100,000 endpoints.

/// `ip . port`, an `endpoints` map value.
fn endpoint_text(ip: Ipv4Addr, port: u16) -> String {
    let mut text = String::with_capacity(24);
    push_ipv4(&mut text, ip);
    text.push_str(" . ");
    push_decimal(&mut text, u32::from(port));
    text
}

/// `ip . ip`, a `hairpin` set element.
fn hairpin_text(ip: Ipv4Addr) -> String {
    let mut text = String::with_capacity(32);
    push_ipv4(&mut text, ip);
    text.push_str(" . ");
    push_ipv4(&mut text, ip);
    text
}

fn push_ipv4(text: &mut String, ip: Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        push_decimal(text, u32::from(octet));
    }
}

fn push_decimal(text: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    text.extend(digits[start..].iter().map(|d| char::from(*d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_formatted_texts_match_std_formatting() {
        for ip in [
            "0.0.0.0",
            "10.244.1.9",
            "192.168.100.255",
            "255.255.255.255",
            "1.20.103.0",
        ] {
            let ip: Ipv4Addr = ip.parse().unwrap();
            for port in [0u16, 9, 80, 8080, 65535] {
                assert_eq!(endpoint_text(ip, port), format!("{ip} . {port}"));
            }
            assert_eq!(hairpin_text(ip), format!("{ip} . {ip}"));
        }
        for key in [0u32, 1, 0x10000, 0x8001_0003, u32::MAX] {
            assert_eq!(slot_key(key), format!("{key:#010x}"));
        }
    }
}
