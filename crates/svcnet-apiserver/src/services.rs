//! Cluster-IP and node-port allocation for Services, stored in the same transaction as the
//! Service: each allocated address is an `IPAddress` object (networking.k8s.io/v1, as upstream
//! 1.33 keeps them) and each node port a `/registry/nodeports/<port>` key, both created with a
//! must-not-exist precondition. In-memory bitmaps pick free values quickly and are reserved before
//! the transaction, so concurrent creates never race for the same value; a reservation that does
//! not commit is returned when its guard drops.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use svcnet_core::resources::{self, ResourceInfo};
use svcnet_core::service::allocator::{AllocationError, IpRange, PortRange};
use svcnet_core::service::defaults::{is_headless, needs_cluster_ip, needs_health_check_node_port, needs_node_port};
use svcnet_core::service::validation::{self, ServiceValidationContext};
use svcnet_store::{Op, Precondition};

use crate::objects;
use crate::status::{ApiError, ApiResult, Cause};

/// Where node-port allocations live (no API resource shows them, as upstream).
const NODE_PORT_PREFIX: &str = "/registry/nodeports/";

/// Service network settings (`--service-cidr`, `--service-node-port-range`).
#[derive(Debug, Clone)]
pub struct ServiceNetwork {
    /// One CIDR, or two of different families for a dual-stack cluster; the first is primary.
    pub cidrs: Vec<String>,
    pub node_ports: String,
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        ServiceNetwork {
            cidrs: vec!["10.96.0.0/12".into()],
            node_ports: "30000-32767".into(),
        }
    }
}

struct Ranges {
    ips: Vec<IpRange>,
    ports: PortRange,
}

/// The allocator shared by every Service write.
pub struct ServiceAllocator {
    ranges: Mutex<Ranges>,
    pub network: ServiceNetwork,
    /// The service CIDRs, for the IP-family checks made before allocating.
    context: ServiceValidationContext,
}

/// Values a write takes and gives back, applied to the bitmaps when it commits.
#[derive(Debug, Default)]
pub struct Plan {
    pub ops: Vec<Op>,
    reserved_ips: Vec<IpAddr>,
    reserved_ports: Vec<u16>,
    released_ips: Vec<IpAddr>,
    released_ports: Vec<u16>,
}

/// A plan whose reservations are returned unless [`Reservation::commit`] is called.
pub struct Reservation {
    allocator: Option<Arc<ServiceAllocator>>,
    pub plan: Plan,
}

impl Reservation {
    pub fn none() -> Self {
        Reservation {
            allocator: None,
            plan: Plan::default(),
        }
    }

    /// The write committed: reservations stay, releases take effect.
    pub fn commit(mut self) {
        if let Some(allocator) = self.allocator.take() {
            let mut ranges = allocator.ranges.lock().expect("allocator lock");
            for ip in &self.plan.released_ips {
                release_ip(&mut ranges, *ip);
            }
            for port in &self.plan.released_ports {
                ranges.ports.release(*port);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(allocator) = self.allocator.take() {
            let mut ranges = allocator.ranges.lock().expect("allocator lock");
            for ip in &self.plan.reserved_ips {
                release_ip(&mut ranges, *ip);
            }
            for port in &self.plan.reserved_ports {
                ranges.ports.release(*port);
            }
        }
    }
}

fn release_ip(ranges: &mut Ranges, ip: IpAddr) {
    for range in ranges.ips.iter_mut() {
        range.release(ip);
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn ip_addresses() -> &'static ResourceInfo {
    resources::by_kind("IPAddress").expect("served")
}

pub fn ip_address_key(ip: &str) -> String {
    objects::key(ip_addresses(), None, ip)
}

pub fn node_port_key(port: u16) -> String {
    format!("{NODE_PORT_PREFIX}{port}")
}

fn random() -> u64 {
    rand::random()
}

impl ServiceAllocator {
    pub fn new(network: ServiceNetwork) -> Result<Self, String> {
        let ips = network
            .cidrs
            .iter()
            .map(|c| IpRange::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        if ips.is_empty() || ips.len() > 2 || (ips.len() == 2 && ips[0].is_ipv4() == ips[1].is_ipv4()) {
            return Err("--service-cidr takes one CIDR, or two of different IP families".into());
        }
        let ports = PortRange::parse(&network.node_ports)?;
        let context = ServiceValidationContext {
            service_cidrs: ips
                .iter()
                .filter_map(|r| validation::parse_cidr_sloppy(&r.cidr()))
                .collect(),
            ..Default::default()
        };
        Ok(ServiceAllocator {
            ranges: Mutex::new(Ranges { ips, ports }),
            network,
            context,
        })
    }

    pub fn families(&self) -> Vec<&'static str> {
        let ranges = self.ranges.lock().expect("allocator lock");
        ranges
            .ips
            .iter()
            .map(|r| if r.is_ipv4() { "IPv4" } else { "IPv6" })
            .collect()
    }

    /// The first address of the primary range (default/kubernetes holds it).
    pub fn first_address(&self) -> IpAddr {
        self.ranges.lock().expect("allocator lock").ips[0].address(0)
    }

    /// Marks a value already held by a stored Service (start-up); false if it was taken twice.
    pub fn mark_ip(&self, ip: IpAddr) -> bool {
        let mut ranges = self.ranges.lock().expect("allocator lock");
        ranges
            .ips
            .iter_mut()
            .find(|r| r.offset(ip).is_some())
            .is_none_or(|r| r.allocate(ip).is_ok())
    }

    pub fn mark_port(&self, port: u16) -> bool {
        let mut ranges = self.ranges.lock().expect("allocator lock");
        !ranges.ports.contains(port) || ranges.ports.allocate(port).is_ok()
    }

    pub fn usage(&self) -> (u64, u64) {
        let ranges = self.ranges.lock().expect("allocator lock");
        (
            ranges.ips.iter().map(|r| r.bitmap().used()).sum(),
            ranges.ports.bitmap().used(),
        )
    }

    /// Allocates what `service` needs (given its stored state `old` on updates), writing the
    /// values into it, and returns the reservation with the store ops that record them.
    pub fn plan(self: &Arc<Self>, service: &mut Value, old: Option<&Value>, dry_run: bool) -> ApiResult<Reservation> {
        let resource = resources::by_kind("Service").expect("served");
        let name = objects::name(service).unwrap_or("").to_string();
        let mut reservation = Reservation {
            allocator: Some(self.clone()),
            plan: Plan::default(),
        };
        let parent = parent_ref(service);
        // As upstream's initIPFamilyFields: clusterIP(s), families and policy must agree with each
        // other and with the cluster before anything is allocated, and nothing else is reported.
        let family_errors: Vec<Cause> = validation::validate_ip_family_fields(service, old, &self.context)
            .into_iter()
            .map(|e| Cause::new(e.kind.reason(), &e.field, e.body()))
            .collect();
        if !family_errors.is_empty() {
            return Err(ApiError::invalid(resource, &name, family_errors));
        }
        let mut causes = Vec::new();
        {
            let mut ranges = self.ranges.lock().expect("allocator lock");
            if let Err(err) = self.plan_cluster_ips(&mut ranges, service, old, dry_run, &parent, &mut reservation.plan)
            {
                return Err(allocation_error(resource, &name, err));
            }
            self.plan_node_ports(&mut ranges, service, old, dry_run, &mut reservation.plan, &mut causes)
                .map_err(|err| allocation_error(resource, &name, err))?;
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(resource, &name, causes));
        }
        Ok(reservation)
    }

    /// The store ops and bitmap releases of deleting `service`.
    pub fn plan_delete(self: &Arc<Self>, service: &Value) -> Reservation {
        let mut plan = Plan::default();
        for ip in held_ips(service) {
            plan.ops.push(Op::Delete {
                key: ip_address_key(&ip.to_string()),
                precondition: Precondition::None,
            });
            plan.released_ips.push(ip);
        }
        for port in held_ports(service) {
            plan.ops.push(Op::Delete {
                key: node_port_key(port),
                precondition: Precondition::None,
            });
            plan.released_ports.push(port);
        }
        Reservation {
            allocator: Some(self.clone()),
            plan,
        }
    }

    fn plan_cluster_ips(
        &self,
        ranges: &mut Ranges,
        service: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
        parent: &Value,
        plan: &mut Plan,
    ) -> Result<(), AllocError> {
        let old_ips: BTreeSet<IpAddr> = old.map(held_ips).unwrap_or_default().into_iter().collect();
        if !needs_cluster_ip(service) {
            release_all_ips(&old_ips, plan);
            return Ok(());
        }
        let families = self.resolve_families(ranges, service, old)?;
        if is_headless(service) {
            service["spec"]["clusterIP"] = json!("None");
            service["spec"]["clusterIPs"] = json!(["None"]);
            release_all_ips(&old_ips, plan);
            return Ok(());
        }
        let requested: Vec<String> = service
            .pointer("/spec/clusterIPs")
            .and_then(Value::as_array)
            .map(|ips| {
                ips.iter()
                    .filter_map(|ip| ip.as_str().map(str::to_string))
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut assigned: Vec<IpAddr> = Vec::new();
        for (index, family_name) in families.iter().enumerate() {
            let range = ranges
                .ips
                .iter_mut()
                .find(|r| family_name_of(r) == *family_name)
                .ok_or_else(|| AllocError::FamilyNotConfigured(index, family_name.to_string()))?;
            let ip = match requested.get(index) {
                Some(raw) => {
                    let ip: IpAddr = raw.parse().map_err(|_| AllocError::BadIp(raw.clone()))?;
                    if !old_ips.contains(&ip) {
                        take_ip(range, ip, dry_run, plan).map_err(|e| AllocError::Ip(ip, range.cidr(), e))?;
                    }
                    ip
                }
                None => next_ip(range, dry_run, plan).map_err(|_| AllocError::IpsFull)?,
            };
            if !old_ips.contains(&ip) {
                plan.ops.push(Op::Put {
                    key: ip_address_key(&ip.to_string()),
                    value: ip_address_object(&ip, parent),
                    precondition: Precondition::MustNotExist,
                });
            }
            assigned.push(ip);
        }
        for ip in old_ips.iter().filter(|ip| !assigned.contains(ip)) {
            plan.ops.push(Op::Delete {
                key: ip_address_key(&ip.to_string()),
                precondition: Precondition::None,
            });
            plan.released_ips.push(*ip);
        }
        service["spec"]["clusterIP"] = json!(assigned[0].to_string());
        service["spec"]["clusterIPs"] = json!(assigned.iter().map(IpAddr::to_string).collect::<Vec<_>>());
        service["spec"]["ipFamilies"] = json!(assigned.iter().map(family).collect::<Vec<_>>());
        Ok(())
    }

    /// ipFamilyPolicy and ipFamilies as upstream's `initIPFamilyFields` settles them.
    fn resolve_families(
        &self,
        ranges: &Ranges,
        service: &mut Value,
        old: Option<&Value>,
    ) -> Result<Vec<&'static str>, AllocError> {
        let configured: Vec<&'static str> = ranges.ips.iter().map(family_name_of).collect();
        let dual = configured.len() == 2;
        let selectorless = service
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .is_none_or(|s| s.is_empty());
        let headless = is_headless(service);
        // A pointer upstream: only a missing policy is inferred (an update keeps the old one).
        if service.pointer("/spec/ipFamilyPolicy").is_none_or(Value::is_null) {
            let policy = match old
                .and_then(|o| o.pointer("/spec/ipFamilyPolicy"))
                .filter(|p| !p.is_null())
            {
                Some(policy) => policy.clone(),
                None if headless && selectorless => json!("RequireDualStack"),
                None => json!("SingleStack"),
            };
            service["spec"]["ipFamilyPolicy"] = policy;
        }
        let policy = service["spec"]["ipFamilyPolicy"]
            .as_str()
            .unwrap_or("SingleStack")
            .to_string();
        if policy == "RequireDualStack" && !dual && !(headless && selectorless) {
            return Err(AllocError::NotDualStack);
        }
        let mut families: Vec<&'static str> = Vec::new();
        let requested_families: Vec<String> = service
            .pointer("/spec/ipFamilies")
            .and_then(Value::as_array)
            .map(|f| f.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        for (index, name) in requested_families.iter().enumerate() {
            match configured.iter().find(|c| **c == name.as_str()) {
                Some(found) => families.push(found),
                None if headless => {}
                None => return Err(AllocError::FamilyNotConfigured(index, name.clone())),
            }
        }
        if families.is_empty() {
            // Families follow requested addresses, else the primary range.
            let first_ip = service
                .pointer("/spec/clusterIPs/0")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<IpAddr>().ok());
            families.push(
                first_ip
                    .map(|ip| family(&ip))
                    .filter(|f| configured.contains(f))
                    .unwrap_or(configured[0]),
            );
        }
        let wants_both = policy != "SingleStack" && (dual || headless && selectorless);
        if wants_both && families.len() == 1 {
            if let Some(other) = configured.iter().find(|c| **c != families[0]) {
                families.push(other);
            }
        }
        if policy == "SingleStack" {
            families.truncate(1);
        }
        service["spec"]["ipFamilies"] = json!(families);
        Ok(families)
    }

    fn plan_node_ports(
        &self,
        ranges: &mut Ranges,
        service: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
        plan: &mut Plan,
        causes: &mut Vec<Cause>,
    ) -> Result<(), AllocError> {
        let old_ports: BTreeSet<u16> = old.map(held_ports).unwrap_or_default().into_iter().collect();
        let mut kept: BTreeSet<u16> = BTreeSet::new();
        let parent = service_key(service);
        if needs_node_port(service) {
            // Ports with the same number (TCP and UDP) share one node port, as upstream.
            let mut by_service_port: BTreeMap<i64, u16> = BTreeMap::new();
            let count = service
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            for index in 0..count {
                let port = &service["spec"]["ports"][index];
                let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
                let requested = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
                let node_port = if requested != 0 {
                    let Ok(requested) = u16::try_from(requested) else {
                        continue;
                    };
                    // A create shares a node port only between ports of the same number (TCP and
                    // UDP), as upstream's initNodePorts; an update takes each new value once.
                    let shared = match old {
                        None => by_service_port.get(&number) == Some(&requested),
                        Some(_) => kept.contains(&requested),
                    };
                    if !shared && !old_ports.contains(&requested) {
                        if let Err(err) = take_port(&mut ranges.ports, requested, dry_run, plan) {
                            // Upstream stops at the first port it cannot have.
                            causes.push(port_cause(
                                &format!("spec.ports[{index}].nodePort"),
                                requested,
                                err,
                                &ranges.ports,
                            ));
                            return Ok(());
                        }
                    }
                    requested
                } else if let Some(shared) = by_service_port.get(&number) {
                    *shared
                } else {
                    next_port(&mut ranges.ports, dry_run, plan).map_err(|_| AllocError::PortsFull)?
                };
                by_service_port.insert(number, node_port);
                service["spec"]["ports"][index]["nodePort"] = json!(node_port);
                kept.insert(node_port);
            }
        }
        if needs_health_check_node_port(service) {
            let requested = service
                .pointer("/spec/healthCheckNodePort")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let port = if requested != 0 {
                // Upstream answers an internal error when the requested port cannot be had, and
                // takes none while the Service keeps needing one (validation refuses a change).
                let keeps = old.is_some_and(needs_health_check_node_port);
                let taken = match u16::try_from(requested) {
                    Ok(port) if keeps || kept.contains(&port) || old_ports.contains(&port) => Ok(port),
                    Ok(port) => take_port(&mut ranges.ports, port, dry_run, plan).map(|()| port),
                    Err(_) => Err(AllocationError::OutOfRange),
                };
                taken.map_err(|err| AllocError::HealthCheckPort(requested, port_error(err, &ranges.ports)))?
            } else {
                next_port(&mut ranges.ports, dry_run, plan).map_err(|_| AllocError::PortsFull)?
            };
            service["spec"]["healthCheckNodePort"] = json!(port);
            kept.insert(port);
        }
        for port in kept.iter().filter(|p| !old_ports.contains(p)) {
            plan.ops.push(Op::Put {
                key: node_port_key(*port),
                value: parent.clone().into_bytes(),
                precondition: Precondition::MustNotExist,
            });
        }
        for port in old_ports.iter().filter(|p| !kept.contains(p)) {
            plan.ops.push(Op::Delete {
                key: node_port_key(*port),
                precondition: Precondition::None,
            });
            plan.released_ports.push(*port);
        }
        Ok(())
    }
}

fn family_name_of(range: &IpRange) -> &'static str {
    if range.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn release_all_ips(old: &BTreeSet<IpAddr>, plan: &mut Plan) {
    for ip in old {
        plan.ops.push(Op::Delete {
            key: ip_address_key(&ip.to_string()),
            precondition: Precondition::None,
        });
        plan.released_ips.push(*ip);
    }
}

fn take_ip(range: &mut IpRange, ip: IpAddr, dry_run: bool, plan: &mut Plan) -> Result<(), AllocationError> {
    if dry_run {
        return match range.offset(ip) {
            None => Err(AllocationError::OutOfRange),
            Some(_) if range.is_allocated(ip) => Err(AllocationError::Allocated),
            Some(_) => Ok(()),
        };
    }
    range.allocate(ip)?;
    plan.reserved_ips.push(ip);
    Ok(())
}

fn next_ip(range: &mut IpRange, dry_run: bool, plan: &mut Plan) -> Result<IpAddr, AllocationError> {
    if dry_run {
        return range.peek_next(random()).ok_or(AllocationError::Full);
    }
    let ip = range.allocate_next(random())?;
    plan.reserved_ips.push(ip);
    Ok(ip)
}

fn take_port(range: &mut PortRange, port: u16, dry_run: bool, plan: &mut Plan) -> Result<(), AllocationError> {
    if dry_run {
        return match (range.contains(port), range.is_allocated(port)) {
            (false, _) => Err(AllocationError::OutOfRange),
            (true, true) => Err(AllocationError::Allocated),
            _ => Ok(()),
        };
    }
    range.allocate(port)?;
    plan.reserved_ports.push(port);
    Ok(())
}

fn next_port(range: &mut PortRange, dry_run: bool, plan: &mut Plan) -> Result<u16, AllocationError> {
    if dry_run {
        return range.peek_next(random()).ok_or(AllocationError::Full);
    }
    let port = range.allocate_next(random())?;
    plan.reserved_ports.push(port);
    Ok(port)
}

fn port_cause(field: &str, port: u16, err: AllocationError, range: &PortRange) -> Cause {
    let why = port_error(err, range);
    Cause::new("FieldValueInvalid", field, format!("Invalid value: {port}: {why}"))
}

/// The port allocator's error text.
fn port_error(err: AllocationError, range: &PortRange) -> String {
    match err {
        AllocationError::OutOfRange => {
            format!(
                "provided port is not in the valid range. The range of valid ports is {}",
                range.describe()
            )
        }
        _ => "provided port is already allocated".to_string(),
    }
}

/// Addresses a stored Service holds.
pub fn held_ips(service: &Value) -> Vec<IpAddr> {
    service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|ips| ips.iter().filter_map(|ip| ip.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Node ports (including the health-check port) a stored Service holds.
pub fn held_ports(service: &Value) -> Vec<u16> {
    let mut ports: BTreeSet<u16> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| u16::try_from(p.get("nodePort")?.as_i64()?).ok())
                .filter(|p| *p != 0)
                .collect()
        })
        .unwrap_or_default();
    if let Some(port) = service
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .and_then(|p| u16::try_from(p).ok())
    {
        if port != 0 {
            ports.insert(port);
        }
    }
    ports.into_iter().collect()
}

fn service_key(service: &Value) -> String {
    format!(
        "{}/{}",
        objects::meta_str(service, "namespace").unwrap_or(""),
        objects::name(service).unwrap_or("")
    )
}

fn parent_ref(service: &Value) -> Value {
    json!({
        "group": "",
        "resource": "services",
        "namespace": objects::meta_str(service, "namespace").unwrap_or(""),
        "name": objects::name(service).unwrap_or(""),
    })
}

/// The IPAddress object recording one allocation, as upstream's allocator writes it.
pub fn ip_address_object(ip: &IpAddr, parent: &Value) -> Vec<u8> {
    let object = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IPAddress",
        "metadata": {
            "name": ip.to_string(),
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": objects::now_rfc3339(),
            "labels": {
                "ipaddress.kubernetes.io/ip-family": family(ip),
                "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io",
            },
        },
        "spec": {"parentRef": parent},
    });
    serde_json::to_vec(&object).expect("JSON encodes")
}

/// Allocation failures, before they become Status errors.
#[derive(Debug)]
enum AllocError {
    Ip(IpAddr, String, AllocationError),
    BadIp(String),
    IpsFull,
    PortsFull,
    /// A requested health-check node port that could not be had, and why.
    HealthCheckPort(i64, String),
    NotDualStack,
    FamilyNotConfigured(usize, String),
}

fn allocation_error(resource: &ResourceInfo, name: &str, err: AllocError) -> ApiError {
    let invalid = |field: &str, message: String| {
        ApiError::invalid(resource, name, vec![Cause::new("FieldValueInvalid", field, message)])
    };
    match err {
        AllocError::Ip(ip, cidr, AllocationError::OutOfRange) => invalid(
            "spec.clusterIPs",
            format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}"),
        ),
        AllocError::Ip(ip, _, _) => invalid(
            "spec.clusterIPs",
            format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"),
        ),
        AllocError::BadIp(raw) => invalid("spec.clusterIPs[0]", format!("Invalid value: \"{raw}\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")),
        AllocError::IpsFull => ApiError::internal_error("failed to allocate a serviceIP: range is full"),
        AllocError::PortsFull => ApiError::internal_error("failed to allocate a nodePort: range is full"),
        AllocError::HealthCheckPort(port, why) => {
            ApiError::internal_error(&format!("failed to allocate requested HealthCheck NodePort {port}: {why}"))
        }
        AllocError::NotDualStack => invalid(
            "spec.ipFamilyPolicy",
            "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services".into(),
        ),
        AllocError::FamilyNotConfigured(index, family) => invalid(
            &format!("spec.ipFamilies[{index}]"),
            format!("Invalid value: \"{family}\": not configured on this cluster"),
        ),
    }
}
