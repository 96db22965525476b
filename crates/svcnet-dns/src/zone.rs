//! The cluster zone as compact, query-ready data, and the index that keeps it current from
//! Kubernetes objects one change at a time (`Cluster::apply_*`), or all at once (`zone`).
//!
//! Only what DNS answers from is kept: ClusterIPs, ports, ready endpoint addresses and
//! hostnames, namespace names and (in verified mode) pod IPs. Kubernetes objects are dropped as
//! soon as they are converted, which keeps a 10,000-Service cluster within a few megabytes.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::sharded::Sharded;
use crate::wire;

/// The label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How `a-b-c-d.<ns>.pod.<zone>` names are answered (CoreDNS `pods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PodsMode {
    /// No pod records: NXDOMAIN.
    #[default]
    Disabled,
    /// Any well-formed IP label in an existing namespace is answered.
    Insecure,
    /// Only IPs of pods in that namespace (watching Pods).
    Verified,
}

/// What the zone is built with.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// TTL of every record from the cluster (SOA: at most 300).
    pub ttl: u32,
    pub pods: PodsMode,
    /// Whether names outside the zone are forwarded (else REFUSED).
    pub forwarding: bool,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            domain: "cluster.local".into(),
            ttl: 5,
            pods: PodsMode::Disabled,
            forwarding: false,
        }
    }
}

/// A Service port or an EndpointSlice port; names and protocols lower-cased for matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    /// Empty for unnamed ports (they get no `_port._proto` SRV).
    pub name: PortName,
    pub protocol: Protocol,
    pub port: u16,
}

/// A port name held inline: Kubernetes port names are IANA service names of at most 15
/// characters, so no allocation is needed. A longer (invalid) name is kept as unnamed.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PortName {
    bytes: [u8; 15],
    len: u8,
}

impl PortName {
    pub fn new(name: &str) -> PortName {
        let mut out = PortName::default();
        if name.len() <= out.bytes.len() {
            for (dst, src) in out.bytes.iter_mut().zip(name.bytes()) {
                *dst = src.to_ascii_lowercase();
            }
            out.len = name.len() as u8;
        }
        out
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for PortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(text: Option<&str>) -> Option<Protocol> {
        match text.unwrap_or("TCP").to_ascii_uppercase().as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The SRV label without its underscore.
    pub fn label(self) -> &'static [u8] {
        match self {
            Protocol::Tcp => b"tcp",
            Protocol::Udp => b"udp",
            Protocol::Sctp => b"sctp",
        }
    }
}

/// A ready endpoint address of one EndpointSlice, as the answer path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub ip: IpAddr,
    /// `hostname` of the slice endpoint, lower-cased; else the name derives from the IP.
    pub hostname: Option<&'a str>,
}

impl<'a> Endpoint<'a> {
    /// The endpoint's DNS label (dns-spec.md §1.2 rules 1, 3, 4), written into `buf`.
    pub fn label<'b>(&self, buf: &'b mut [u8; 64]) -> &'b [u8]
    where
        'a: 'b,
    {
        match self.hostname {
            Some(hostname) => hostname.as_bytes(),
            None => dashed_ip(self.ip, buf),
        }
    }
}

/// `10.244.1.7` → `10-244-1-7`; `fd00:10::7` → `fd00-10--7`; `fd00::` → `fd00--0`.
pub fn dashed_ip(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    // 45 octets at most (an IPv6 text with an embedded IPv4): always fits in 64.
    let _ = write!(cursor, "{ip}");
    let mut len = cursor.position() as usize;
    for byte in &mut buf[..len] {
        if *byte == b'.' || *byte == b':' {
            *byte = b'-';
        }
    }
    if buf[len - 1] == b'-' {
        buf[len] = b'0';
        len += 1;
    }
    &buf[..len]
}

/// The ready endpoints and ports of one EndpointSlice: addresses in one array, and hostnames
/// (StatefulSet pods) beside them by address index, so slices without hostnames carry nothing
/// but addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SliceRecords {
    pub ports: Vec<PortRecord>,
    pub addresses: Vec<IpAddr>,
    /// `(index into addresses, hostname)`, ascending.
    pub hostnames: Vec<(u32, Box<str>)>,
}

impl SliceRecords {
    pub fn endpoints(&self) -> impl Iterator<Item = Endpoint<'_>> {
        self.addresses.iter().enumerate().map(move |(i, ip)| Endpoint {
            ip: *ip,
            hostname: self
                .hostnames
                .binary_search_by_key(&(i as u32), |(index, _)| *index)
                .ok()
                .map(|found| &*self.hostnames[found].1),
        })
    }
}

/// The ClusterIPs of a Service: at most two (one per family), held inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterIps {
    ips: [IpAddr; 2],
    len: u8,
}

impl ClusterIps {
    pub fn new(list: impl IntoIterator<Item = IpAddr>) -> ClusterIps {
        let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        let mut out = ClusterIps {
            ips: [unspecified; 2],
            len: 0,
        };
        for ip in list.into_iter().take(2) {
            out.ips[out.len as usize] = ip;
            out.len += 1;
        }
        out
    }
}

impl std::ops::Deref for ClusterIps {
    type Target = [IpAddr];

    fn deref(&self) -> &[IpAddr] {
        &self.ips[..self.len as usize]
    }
}

/// How a Service answers at its own name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// ClusterIP, NodePort, LoadBalancer: the ClusterIPs (either family).
    ClusterIp(ClusterIps),
    /// `clusterIP: None`: the ready endpoint addresses.
    Headless,
    /// The CNAME target in wire form, lower-cased.
    ExternalName(Box<[u8]>),
}

/// What a Service object contributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub kind: ServiceKind,
    pub ports: Vec<PortRecord>,
}

/// Everything answered under `<svc>.<ns>.svc.<zone>`: the Service (when it exists) and the
/// slices labelled with its name (which may arrive before the Service).
#[derive(Debug, Clone, Default)]
pub struct ServiceRecords {
    pub spec: Option<ServiceSpec>,
    /// By a 64-bit hash of the slice name (names themselves are not needed to answer).
    pub slices: Vec<(u64, Arc<SliceRecords>)>,
    /// Headless only: ready addresses of all slices, duplicates removed, in slice order.
    pub addresses: Vec<IpAddr>,
}

impl ServiceRecords {
    /// Every ready endpoint with the ports of its slice.
    pub fn endpoints(&self) -> impl Iterator<Item = (Endpoint<'_>, &[PortRecord])> {
        self.slices
            .iter()
            .flat_map(|(_, slice)| slice.endpoints().map(move |e| (e, slice.ports.as_slice())))
    }

    fn refresh_addresses(&mut self) {
        let mut addresses = Vec::new();
        if matches!(
            self.spec,
            Some(ServiceSpec {
                kind: ServiceKind::Headless,
                ..
            })
        ) {
            for (endpoint, _) in self.endpoints() {
                if !addresses.contains(&endpoint.ip) {
                    addresses.push(endpoint.ip);
                }
            }
        }
        self.addresses = addresses;
    }
}

/// A PTR answer: `[<hostname>.]<svc>.<ns>.svc.<zone>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrTarget {
    /// Wire labels of `<svc>.<ns>` (the service key).
    pub service: Arc<[u8]>,
    pub hostname: Option<Box<str>>,
    /// ClusterIP claims win over endpoint claims, and only one is answered.
    pub cluster_ip: bool,
}

/// An immutable snapshot the query path reads. Cloning is cheap: the big maps are sharded
/// behind `Arc`s and the per-Service records are shared.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The cluster domain in wire form, lower-cased.
    pub apex: Box<[u8]>,
    pub ttl: u32,
    pub pods: PodsMode,
    pub forwarding: bool,
    /// SOA serial: Unix time of the last DNS-relevant change.
    pub serial: u32,
    /// Keyed by the wire labels `<svc>.<ns>` (lower case), e.g. `\x03web\x07default`.
    pub services: Sharded<Arc<[u8]>, Arc<ServiceRecords>>,
    /// Namespace names that exist (lower case).
    pub namespaces: Arc<HashSet<Box<[u8]>>>,
    /// Small numbers for namespace names, so pod keys need no string (never reused).
    pub namespace_ids: Arc<HashMap<Box<[u8]>, u32>>,
    /// Verified mode: `(namespace id, pod IP)` with how many pods claim it.
    pub pod_ips: Sharded<(u32, IpAddr), u32>,
    pub ptr: Sharded<IpAddr, Vec<PtrTarget>>,
    /// ClusterIPs of `kube-system/kube-dns`: the addresses of `ns.dns.<zone>` (NS glue).
    pub dns_ips: Vec<IpAddr>,
}

impl Zone {
    pub fn empty(config: &ZoneConfig) -> Zone {
        let apex = wire::wire_name(&config.domain).unwrap_or_else(|| b"\x07cluster\x05local\x00".to_vec());
        Zone {
            apex: apex.into(),
            ttl: config.ttl,
            pods: config.pods,
            forwarding: config.forwarding,
            serial: 0,
            services: Sharded::default(),
            namespaces: Arc::default(),
            namespace_ids: Arc::default(),
            pod_ips: Sharded::default(),
            ptr: Sharded::default(),
            dns_ips: Vec::new(),
        }
    }

    /// The records at `<svc>.<ns>` when the Service exists.
    pub fn service(&self, key: &[u8]) -> Option<(&ServiceRecords, &ServiceSpec)> {
        let records = self.services.get(key)?;
        Some((records, records.spec.as_ref()?))
    }

    /// Whether a pod in `namespace` (label, lower case) has `ip` (verified mode).
    pub fn pod_has_ip(&self, namespace: &[u8], ip: IpAddr) -> bool {
        self.namespace_ids
            .get(namespace)
            .is_some_and(|id| self.pod_ips.contains_key(&(*id, ip)))
    }

    /// The number of `namespace`, assigning the next one on first sight.
    fn namespace_id(&mut self, namespace: &str) -> u32 {
        let key = namespace.to_ascii_lowercase().into_bytes().into_boxed_slice();
        if let Some(id) = self.namespace_ids.get(&key) {
            return *id;
        }
        let ids = Arc::make_mut(&mut self.namespace_ids);
        let id = ids.len() as u32;
        ids.insert(key, id);
        id
    }
}

/// Wire labels `<name>.<ns>` without the terminal zero: the key of the Service maps.
pub fn service_key(namespace: &str, name: &str) -> Option<Arc<[u8]>> {
    let mut key = Vec::with_capacity(namespace.len() + name.len() + 2);
    for label in [name, namespace] {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        key.push(label.len() as u8);
        key.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    Some(key.into())
}

/// Builds the zone from whole object lists (the pure entry point; the watcher uses `Cluster`).
pub fn zone(
    services: &[Service],
    slices: &[EndpointSlice],
    pods: &[Pod],
    namespaces: &[Namespace],
    config: &ZoneConfig,
) -> Zone {
    let mut cluster = Cluster::new(config.clone());
    for namespace in namespaces {
        cluster.apply_namespace(namespace, false);
    }
    for service in services {
        cluster.apply_service(service, false);
    }
    for slice in slices {
        cluster.apply_slice(slice, false);
    }
    for pod in pods {
        cluster.apply_pod(pod, false);
    }
    cluster.zone
}

/// `(namespace, name)` of a namespaced object.
type ObjectId = (u32, u64);

/// The index behind the snapshots: the current zone plus what is needed to undo an object's
/// contribution when it changes or goes away.
pub struct Cluster {
    pub zone: Zone,
    /// `(namespace id, slice name hash)` → the Service the slice was filed under.
    slice_owner: HashMap<ObjectId, Arc<[u8]>>,
    /// `(namespace id, 64-bit hash of the pod name)` → the IP the pod contributed. A hash, not
    /// the name, keeps 50,000 pods in 2 MB; two names colliding in 64 bits among a cluster's
    /// pods is about as likely as 1 in 10^10.
    pod_ip: HashMap<(u32, u64), IpAddr>,
    /// Set whenever a change altered answers; the serial is bumped on publish.
    pub changed: bool,
}

impl Cluster {
    pub fn new(config: ZoneConfig) -> Cluster {
        Cluster {
            zone: Zone::empty(&config),
            slice_owner: HashMap::new(),
            pod_ip: HashMap::new(),
            changed: false,
        }
    }

    /// Forgets all Services (a relist is about to deliver them again).
    pub fn clear_services(&mut self) {
        let keys: Vec<Arc<[u8]>> = self.zone.services.keys().cloned().collect();
        for key in keys {
            self.update_service(&key, |records| records.spec.take().is_some());
        }
        self.zone.dns_ips.clear();
    }

    /// Forgets all EndpointSlices.
    pub fn clear_slices(&mut self) {
        let keys: Vec<Arc<[u8]>> = self.zone.services.keys().cloned().collect();
        for key in keys {
            self.update_service(&key, |records| !std::mem::take(&mut records.slices).is_empty());
        }
        self.slice_owner.clear();
    }

    pub fn clear_namespaces(&mut self) {
        self.zone.namespaces = Arc::default();
        self.changed = true;
    }

    pub fn clear_pods(&mut self) {
        self.zone.pod_ips.clear();
        self.pod_ip.clear();
        self.changed = true;
    }

    pub fn apply_namespace(&mut self, namespace: &Namespace, deleted: bool) {
        let Some(name) = namespace.metadata.name.as_deref() else {
            return;
        };
        let key: Box<[u8]> = name.to_ascii_lowercase().into_bytes().into();
        if deleted != self.zone.namespaces.contains(&key) {
            return;
        }
        let namespaces = Arc::make_mut(&mut self.zone.namespaces);
        if deleted {
            namespaces.remove(&key);
        } else {
            namespaces.insert(key);
        }
        self.changed = true;
    }

    pub fn apply_service(&mut self, service: &Service, deleted: bool) {
        let (Some(namespace), Some(name)) = (&service.metadata.namespace, &service.metadata.name) else {
            return;
        };
        let Some(key) = service_key(namespace, name) else {
            return;
        };
        let spec = if deleted { None } else { service_spec(service) };
        if namespace == "kube-system" && name == "kube-dns" {
            self.zone.dns_ips = match &spec {
                Some(ServiceSpec {
                    kind: ServiceKind::ClusterIp(ips),
                    ..
                }) => ips.to_vec(),
                _ => Vec::new(),
            };
        }
        self.update_service(&key, |records| {
            let changed = records.spec != spec;
            records.spec = spec;
            changed
        });
    }

    pub fn apply_slice(&mut self, slice: &EndpointSlice, deleted: bool) {
        let (Some(namespace), Some(name)) = (&slice.metadata.namespace, &slice.metadata.name) else {
            return;
        };
        let id: ObjectId = (self.zone.namespace_id(namespace), name_hash(name));
        let owner = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
            .and_then(|service| service_key(namespace, service));
        let new = if deleted {
            None
        } else {
            owner.clone().map(|key| (key, slice_records(slice)))
        };
        // A slice relabelled to another Service leaves its old one first.
        if let Some(previous) = self.slice_owner.remove(&id) {
            if new.as_ref().map(|(key, _)| key) != Some(&previous) {
                self.update_service(&previous, |records| remove_slice(records, id.1));
            }
        }
        if let Some((key, records)) = new {
            self.slice_owner.insert(id, key.clone());
            self.update_service(&key, move |service| put_slice(service, id.1, records));
        }
    }

    pub fn apply_pod(&mut self, pod: &Pod, deleted: bool) {
        if self.zone.pods != PodsMode::Verified {
            return;
        }
        let (Some(namespace), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            return;
        };
        // As CoreDNS: updates after the deletion timestamp are ignored, so a terminating pod
        // keeps its record until it is gone.
        if !deleted && pod.metadata.deletion_timestamp.is_some() {
            return;
        }
        let namespace_id = self.zone.namespace_id(namespace);
        let id = (namespace_id, name_hash(name));
        let new = if deleted { None } else { pod_ip(pod) };
        let old = self.pod_ip.remove(&id);
        if let Some(ip) = new {
            self.pod_ip.insert(id, ip);
        }
        if old == new {
            return;
        }
        if let Some(old) = old {
            let key = (namespace_id, old);
            if let Some(count) = self.zone.pod_ips.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.zone.pod_ips.remove(&key);
                }
            }
        }
        if let Some(new) = new {
            *self.zone.pod_ips.entry((namespace_id, new)).or_insert(0) += 1;
        }
        self.changed = true;
    }

    /// Applies `edit` to the records at `key`, then refreshes derived data and the PTR index.
    fn update_service(&mut self, key: &Arc<[u8]>, edit: impl FnOnce(&mut ServiceRecords) -> bool) {
        let (key, mut records) = match self.zone.services.remove_entry(&key[..]) {
            Some((key, records)) => (key, Arc::unwrap_or_clone(records)),
            None => (key.clone(), ServiceRecords::default()),
        };
        let before = ptr_claims(&records);
        if !edit(&mut records) {
            if records.spec.is_some() || !records.slices.is_empty() {
                self.zone.services.insert(key, Arc::new(records));
            }
            return;
        }
        self.changed = true;
        records.refresh_addresses();
        for ip in before {
            if let Some(targets) = self.zone.ptr.get_mut(&ip) {
                targets.retain(|target| target.service != key);
                if targets.is_empty() {
                    self.zone.ptr.remove(&ip);
                }
            }
        }
        for (ip, hostname, cluster_ip) in ptr_claims_named(&records) {
            let target = PtrTarget {
                service: key.clone(),
                hostname,
                cluster_ip,
            };
            let targets = self.zone.ptr.entry(ip).or_default();
            targets.push(target);
            // Vec growth would reserve four; most addresses have one claim.
            targets.shrink_to_fit();
        }
        if records.spec.is_some() || !records.slices.is_empty() {
            self.zone.services.insert(key, Arc::new(records));
        }
    }
}

fn remove_slice(records: &mut ServiceRecords, name: u64) -> bool {
    let before = records.slices.len();
    records.slices.retain(|(slice, _)| *slice != name);
    before != records.slices.len()
}

fn put_slice(records: &mut ServiceRecords, name: u64, slice: SliceRecords) -> bool {
    match records.slices.iter_mut().find(|(existing, _)| *existing == name) {
        Some((_, existing)) if **existing == slice => false,
        Some((_, existing)) => {
            *existing = Arc::new(slice);
            true
        }
        None => {
            records.slices.push((name, Arc::new(slice)));
            records.slices.shrink_to_fit();
            // Keep slice order stable across restarts and relists.
            records.slices.sort_by_key(|(name, _)| *name);
            true
        }
    }
}

/// IPs this Service answers PTR for (before a change, to withdraw them).
fn ptr_claims(records: &ServiceRecords) -> Vec<IpAddr> {
    ptr_claims_named(records).into_iter().map(|(ip, _, _)| ip).collect()
}

/// PTR claims: every ClusterIP, and ready endpoints of headless Services that have a hostname
/// (spec §2.3.3 and §2.4.3; CoreDNS also answers endpoints without hostnames, see docs/dns.md).
fn ptr_claims_named(records: &ServiceRecords) -> Vec<(IpAddr, Option<Box<str>>, bool)> {
    match &records.spec {
        Some(ServiceSpec {
            kind: ServiceKind::ClusterIp(ips),
            ..
        }) => ips.iter().map(|ip| (*ip, None, true)).collect(),
        Some(ServiceSpec {
            kind: ServiceKind::Headless,
            ..
        }) => records
            .endpoints()
            .filter_map(|(endpoint, _)| Some((endpoint.ip, Some(endpoint.hostname?.into()), false)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The DNS view of a Service; `None` when it is not served (an ExternalName that is an IP or
/// not a valid name, as CoreDNS).
pub fn service_spec(service: &Service) -> Option<ServiceSpec> {
    let spec = service.spec.as_ref()?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|port| {
            Some(PortRecord {
                name: PortName::new(port.name.as_deref().unwrap_or("")),
                protocol: Protocol::parse(port.protocol.as_deref())?,
                port: u16::try_from(port.port).ok()?,
            })
        })
        .collect();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec.external_name.as_deref()?;
        if target.parse::<IpAddr>().is_ok() {
            return None;
        }
        ServiceKind::ExternalName(wire::wire_name(target)?.into())
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        let ips = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.clone(),
            _ => spec.cluster_ip.iter().cloned().collect(),
        };
        ServiceKind::ClusterIp(ClusterIps::new(ips.iter().filter_map(|ip| ip.parse().ok())))
    };
    Some(ServiceSpec { kind, ports })
}

/// Ready endpoints of a slice. An unset `ready` condition counts as ready (discovery/v1); FQDN
/// slices carry no addresses DNS can serve.
pub fn slice_records(slice: &EndpointSlice) -> SliceRecords {
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|port| {
            Some(PortRecord {
                name: PortName::new(port.name.as_deref().unwrap_or("")),
                protocol: Protocol::parse(port.protocol.as_deref())?,
                port: u16::try_from(port.port?).ok()?,
            })
        })
        .collect();
    let mut records = SliceRecords {
        ports,
        ..SliceRecords::default()
    };
    if slice.address_type == "IPv4" || slice.address_type == "IPv6" {
        for endpoint in &slice.endpoints {
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            let hostname = endpoint.hostname.as_deref().filter(|h| !h.is_empty() && h.len() <= 63);
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse() {
                    if let Some(hostname) = hostname {
                        let index = records.addresses.len() as u32;
                        records
                            .hostnames
                            .push((index, hostname.to_ascii_lowercase().into_boxed_str()));
                    }
                    records.addresses.push(ip);
                }
            }
        }
    }
    records.addresses.shrink_to_fit();
    records.hostnames.shrink_to_fit();
    records
}

/// Verified mode: the IP of a pod that is not finished (phase Succeeded, Failed and Unknown are
/// not indexed, as CoreDNS). Only the primary `status.podIP` counts.
fn pod_ip(pod: &Pod) -> Option<IpAddr> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed" | "Unknown")) {
        return None;
    }
    status.pod_ip.as_deref()?.parse().ok()
}

/// A fixed 64-bit hash of an object name (SipHash with zero keys: stable within the process).
fn name_hash(name: &str) -> u64 {
    std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(name)
}
