//! From Services and EndpointSlices to the proxy's view: one `ServicePort` per Service port that
//! gets rules, with its frontends, policies and endpoints. No nftables here.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServicePort as ApiServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{Algorithm, Cidr, ModelConfig, NodeInfo, LB_ALGORITHM_ANNOTATION};

/// Services with this label belong to another proxy (upstream skips them).
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// Endpoint objects of headless Services carry this label; the proxy ignores them.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// An EndpointSlice's owning Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Per-endpoint weights, a JSON object from pod name or endpoint IP to a weight 0..=100
/// (default 1; 0 takes the endpoint out of new-connection selection).
pub const ENDPOINT_WEIGHTS_ANNOTATION: &str = "svcnet.io/endpoint-weights";
/// Legacy form of `spec.loadBalancerSourceRanges`.
pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
/// Upstream's default ClientIP affinity timeout.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// `namespace/name/protocol/port`: names one Service port everywhere (chains, logs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    /// Service namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// `tcp`, `udp` or `sctp` (nft spelling).
    pub protocol: &'static str,
    /// The Service port number.
    pub port: u16,
}

impl std::fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}/{}", self.namespace, self.name, self.protocol, self.port)
    }
}

/// One endpoint of a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Pod address.
    pub ip: Ipv4Addr,
    /// Target port.
    pub port: u16,
    /// Whether it runs on this node.
    pub local: bool,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// Selection weight (1 unless the Service sets weights).
    pub weight: u32,
}

/// Everything the rules need about one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Its name.
    pub name: ServicePortName,
    /// IPv4 cluster IP.
    pub cluster_ip: Option<Ipv4Addr>,
    /// NodePort, when allocated.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` (IPv4).
    pub external_ips: Vec<Ipv4Addr>,
    /// Load-balancer ingress IPs the proxy short-circuits (ipMode VIP or unset).
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `loadBalancerSourceRanges` (or the legacy annotation).
    pub source_ranges: Vec<Cidr>,
    /// externalTrafficPolicy Local.
    pub external_local: bool,
    /// internalTrafficPolicy Local.
    pub internal_local: bool,
    /// ClientIP affinity timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// Selection algorithm.
    pub algorithm: Algorithm,
    /// Endpoints from the Service's slices, sorted, without duplicates.
    pub endpoints: Vec<Endpoint>,
    /// healthCheckNodePort (LoadBalancer + Local).
    pub health_check_node_port: Option<u16>,
}

impl ServicePort {
    /// Whether anything outside the cluster-IP path reaches it.
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }

    /// Endpoints for new connections when every endpoint may be used (policy Cluster).
    pub fn cluster_pool(&self) -> Vec<&Endpoint> {
        usable(self.endpoints.iter())
    }

    /// Endpoints for new connections when only this node's may be used (policy Local).
    pub fn local_pool(&self) -> Vec<&Endpoint> {
        usable(self.endpoints.iter().filter(|e| e.local))
    }
}

/// Ready endpoints, or, when there are none, the serving-and-terminating ones (KEP-1669), each
/// with a non-zero weight.
pub fn usable<'a>(endpoints: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = endpoints.clone().filter(|e| e.ready && e.weight > 0).collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints
        .filter(|e| e.serving && e.terminating && e.weight > 0)
        .collect()
}

/// Whether the proxy programs this Service at all.
pub fn is_proxied(service: &Service) -> bool {
    let labels = service.metadata.labels.as_ref();
    if labels.is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL)) {
        return false;
    }
    let Some(spec) = &service.spec else { return false };
    if spec.type_.as_deref() == Some("ExternalName") {
        return false;
    }
    !matches!(spec.cluster_ip.as_deref(), None | Some("") | Some("None"))
}

/// Whether this slice feeds the proxy (upstream's informer selector).
pub fn is_proxied_slice(slice: &EndpointSlice) -> bool {
    let labels = slice.metadata.labels.as_ref();
    slice.address_type == "IPv4"
        && !labels.is_some_and(|l| l.contains_key(HEADLESS_LABEL) || l.contains_key(SERVICE_PROXY_NAME_LABEL))
}

/// Slices grouped by `(namespace, service name)`.
pub fn slices_by_service<E: Borrow<EndpointSlice>>(slices: &[E]) -> BTreeMap<(String, String), Vec<&EndpointSlice>> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices.iter().map(Borrow::borrow).filter(|s| is_proxied_slice(s)) {
        let Some(service) = slice_service(slice) else { continue };
        by_service.entry(service).or_default().push(slice);
    }
    by_service
}

/// Every Service port the proxy programs, in name order.
pub fn service_ports<S: Borrow<Service>, E: Borrow<EndpointSlice>>(
    services: &[S],
    slices: &[E],
    node: &NodeInfo,
    config: &ModelConfig,
) -> Vec<ServicePort> {
    let slices = slices_by_service(slices);
    let mut out = Vec::new();
    for service in services.iter().map(Borrow::borrow).filter(|s| is_proxied(s)) {
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let no_slices = Vec::new();
        let service_slices = slices.get(&(namespace.clone(), name.clone())).unwrap_or(&no_slices);
        out.extend(ports_of(service, service_slices, node, config));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// The ports of one Service from its own slices (the incremental model's unit of work): the
/// same values `service_ports` yields for it, empty when the proxy does not program it.
pub fn ports_of_service(
    service: &Service,
    slices: &[&EndpointSlice],
    node: &NodeInfo,
    config: &ModelConfig,
) -> Vec<ServicePort> {
    if !is_proxied(service) {
        return Vec::new();
    }
    let slices: Vec<&EndpointSlice> = slices.iter().copied().filter(|s| is_proxied_slice(s)).collect();
    let mut ports = ports_of(service, &slices, node, config);
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    ports.dedup_by(|a, b| a.name == b.name);
    ports
}

/// The Service a slice belongs to: `(namespace, kubernetes.io/service-name)`.
pub fn slice_service(slice: &EndpointSlice) -> Option<(String, String)> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some((slice.metadata.namespace.clone().unwrap_or_default(), service.clone()))
}

fn ports_of(service: &Service, slices: &[&EndpointSlice], node: &NodeInfo, config: &ModelConfig) -> Vec<ServicePort> {
    let Some(spec) = &service.spec else { return Vec::new() };
    let annotations = service.metadata.annotations.clone().unwrap_or_default();
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    let cluster_ip = first_v4(spec.cluster_ips.iter().flatten().chain(spec.cluster_ip.iter()));
    if cluster_ip.is_none() {
        // An IPv6-only Service: nothing for this IPv4 table.
        return Vec::new();
    }
    let external_ips: Vec<Ipv4Addr> = v4s(spec.external_ips.iter().flatten());
    let load_balancer_ips = if spec.type_.as_deref() == Some("LoadBalancer") {
        lb_vip_addresses(service)
    } else {
        Vec::new()
    };
    let externally_reachable =
        matches!(spec.type_.as_deref(), Some("NodePort") | Some("LoadBalancer")) || !external_ips.is_empty();
    let external_local = externally_reachable && spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let algorithm = annotations
        .get(LB_ALGORITHM_ANNOTATION)
        .and_then(|a| a.parse().ok())
        .unwrap_or(config.default_algorithm);
    let weights = parse_weights(annotations.get(ENDPOINT_WEIGHTS_ANNOTATION));
    let source_ranges = source_ranges(service);
    let health_check_node_port = (spec.type_.as_deref() == Some("LoadBalancer") && external_local)
        .then_some(spec.health_check_node_port)
        .flatten()
        .and_then(|p| u16::try_from(p).ok());

    let mut out = Vec::new();
    for port in spec.ports.iter().flatten() {
        let Some(protocol) = nft_protocol(port.protocol.as_deref()) else {
            continue;
        };
        let Ok(number) = u16::try_from(port.port) else { continue };
        out.push(ServicePort {
            name: ServicePortName {
                namespace: namespace.clone(),
                name: name.clone(),
                protocol,
                port: number,
            },
            cluster_ip,
            node_port: port.node_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0),
            external_ips: external_ips.clone(),
            load_balancer_ips: load_balancer_ips.clone(),
            source_ranges: source_ranges.clone(),
            external_local,
            internal_local,
            affinity_timeout,
            algorithm,
            endpoints: endpoints_for(port, protocol, slices, node, &weights),
            health_check_node_port,
        });
    }
    out
}

/// Load-balancer ingress addresses except those with `ipMode: Proxy`, which the load balancer
/// must see (the proxy leaves them alone).
fn lb_vip_addresses(service: &Service) -> Vec<Ipv4Addr> {
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let vips = ingress
        .into_iter()
        .flatten()
        .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
        .filter_map(|i| i.ip.as_ref());
    v4s(vips)
}

fn source_ranges(service: &Service) -> Vec<Cidr> {
    let from_spec = service
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_source_ranges.clone());
    let ranges: Vec<String> = match from_spec {
        Some(ranges) if !ranges.is_empty() => ranges,
        _ => service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SOURCE_RANGES_ANNOTATION))
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    };
    let mut cidrs: Vec<Cidr> = ranges.iter().filter_map(|r| r.parse().ok()).collect();
    cidrs.sort();
    cidrs.dedup();
    cidrs
}

fn endpoints_for(
    port: &ApiServicePort,
    protocol: &'static str,
    slices: &[&EndpointSlice],
    node: &NodeInfo,
    weights: &BTreeMap<String, u32>,
) -> Vec<Endpoint> {
    let wanted_name = port.name.clone().unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for slice in slices {
        let slice_port = slice.ports.iter().flatten().find(|p| {
            p.name.clone().unwrap_or_default() == wanted_name && nft_protocol(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(target) = slice_port.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let Some(ip) = endpoint.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            if !seen.insert((ip, target)) {
                continue;
            }
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            let ready = conditions.ready.unwrap_or(true);
            let pod = endpoint
                .target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_default();
            let weight = weights
                .get(&pod)
                .or_else(|| weights.get(&ip.to_string()))
                .copied()
                .unwrap_or(1);
            out.push(Endpoint {
                ip,
                port: target,
                local: endpoint.node_name.as_deref() == Some(node.name.as_str()),
                ready,
                serving: conditions.serving.unwrap_or(ready),
                terminating: conditions.terminating.unwrap_or(false),
                weight,
            });
        }
    }
    out.sort();
    out
}

/// Weights from the annotation; anything unreadable means equal weights.
fn parse_weights(annotation: Option<&String>) -> BTreeMap<String, u32> {
    let Some(text) = annotation else { return BTreeMap::new() };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return BTreeMap::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| v.as_u64().map(|w| (k, w.min(100) as u32)))
        .collect()
}

fn nft_protocol(protocol: Option<&str>) -> Option<&'static str> {
    match protocol.unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        "SCTP" => Some("sctp"),
        _ => None,
    }
}

fn first_v4<'a>(addresses: impl Iterator<Item = &'a String>) -> Option<Ipv4Addr> {
    addresses.filter_map(|a| a.parse().ok()).next()
}

fn v4s<'a>(addresses: impl Iterator<Item = &'a String>) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = addresses.filter_map(|a| a.parse().ok()).collect();
    out.sort();
    out.dedup();
    out
}
