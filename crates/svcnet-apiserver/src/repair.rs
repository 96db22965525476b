//! Start-up repair of Service allocations, after upstream's repair controllers: the Services are
//! the truth; the in-memory bitmaps are rebuilt from them, allocation records that no Service holds
//! are removed (leaks), missing records are written, and an address or port held by two Services
//! is reported as a Warning Event on the later one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::{json, Value};

use svcnet_core::resources;
use svcnet_store::{Op, Precondition};

use crate::objects;
use crate::registry::{Registry, Selection};
use crate::services::{held_ips, held_ports, ip_address_key, ip_address_object, node_port_key};
use crate::status::ApiResult;

/// What a repair pass found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    pub services: usize,
    pub leaked_ips: usize,
    pub leaked_ports: usize,
    pub missing_records: usize,
    pub duplicates: usize,
}

const NODE_PORT_PREFIX: &str = "/registry/nodeports/";

/// Rebuilds the allocators from stored Services and reconciles the allocation records.
pub async fn repair(registry: &Registry) -> ApiResult<RepairReport> {
    let services = resources::by_kind("Service").expect("served");
    let (mut all, _) = registry.list(services, None, &Selection::default()).await?;
    // The older Service keeps a contested value, as upstream's repair reports the newer.
    all.sort_by(|a, b| objects::meta_str(a, "creationTimestamp").cmp(&objects::meta_str(b, "creationTimestamp")));
    let mut report = RepairReport {
        services: all.len(),
        ..RepairReport::default()
    };
    let mut ip_owner: BTreeMap<IpAddr, &Value> = BTreeMap::new();
    let mut port_owner: BTreeMap<u16, &Value> = BTreeMap::new();
    let mut events = Vec::new();
    for service in &all {
        for ip in held_ips(service) {
            if ip_owner.contains_key(&ip) || !registry.services.mark_ip(ip) {
                report.duplicates += 1;
                events.push(duplicate_event(
                    service,
                    "ClusterIPAlreadyAllocated",
                    &format!(
                        "Cluster IP [{}]:{ip} was assigned to multiple services; please recreate service",
                        if ip.is_ipv4() { "IPv4" } else { "IPv6" }
                    ),
                ));
                continue;
            }
            ip_owner.insert(ip, service);
        }
        for port in held_ports(service) {
            if port_owner.contains_key(&port) || !registry.services.mark_port(port) {
                report.duplicates += 1;
                events.push(duplicate_event(
                    service,
                    "PortAlreadyAllocated",
                    &format!("Port {port} was assigned to multiple services; please recreate service"),
                ));
                continue;
            }
            port_owner.insert(port, service);
        }
    }
    let mut ops = Vec::new();
    reconcile_ips(registry, &ip_owner, &mut ops, &mut report).await?;
    reconcile_ports(registry, &port_owner, &mut ops, &mut report).await?;
    for chunk in ops.chunks(1000) {
        registry.store.txn(chunk.to_vec()).await?;
    }
    let event_kind = resources::by_kind("Event").expect("served");
    for (namespace, event) in events {
        let options = crate::registry::WriteOptions {
            dry_run: false,
            validation: crate::body::FieldValidation::Ignore,
        };
        let _ = registry.create(event_kind, Some(&namespace), event, options).await;
    }
    Ok(report)
}

async fn reconcile_ips(
    registry: &Registry,
    owners: &BTreeMap<IpAddr, &Value>,
    ops: &mut Vec<Op>,
    report: &mut RepairReport,
) -> ApiResult<()> {
    let ip_addresses = resources::by_kind("IPAddress").expect("served");
    let (records, _) = registry.list(ip_addresses, None, &Selection::default()).await?;
    let recorded: BTreeSet<String> = records
        .iter()
        .filter_map(|r| objects::name(r).map(str::to_string))
        .collect();
    for name in &recorded {
        let held = name.parse::<IpAddr>().ok().is_some_and(|ip| owners.contains_key(&ip));
        if !held {
            report.leaked_ips += 1;
            ops.push(Op::Delete {
                key: ip_address_key(name),
                precondition: Precondition::None,
            });
        }
    }
    for (ip, service) in owners {
        if !recorded.contains(&ip.to_string()) {
            report.missing_records += 1;
            let parent = json!({"group": "", "resource": "services", "namespace": objects::meta_str(service, "namespace").unwrap_or(""), "name": objects::name(service).unwrap_or("")});
            ops.push(Op::Put {
                key: ip_address_key(&ip.to_string()),
                value: ip_address_object(ip, &parent),
                precondition: Precondition::MustNotExist,
            });
        }
    }
    Ok(())
}

async fn reconcile_ports(
    registry: &Registry,
    owners: &BTreeMap<u16, &Value>,
    ops: &mut Vec<Op>,
    report: &mut RepairReport,
) -> ApiResult<()> {
    let stored = registry.store.list(NODE_PORT_PREFIX).await?;
    let recorded: BTreeSet<u16> = stored
        .kvs
        .iter()
        .filter_map(|kv| kv.key.strip_prefix(NODE_PORT_PREFIX)?.parse().ok())
        .collect();
    for port in recorded.iter().filter(|p| !owners.contains_key(p)) {
        report.leaked_ports += 1;
        ops.push(Op::Delete {
            key: node_port_key(*port),
            precondition: Precondition::None,
        });
    }
    for (port, service) in owners.iter().filter(|(p, _)| !recorded.contains(p)) {
        report.missing_records += 1;
        let owner = format!(
            "{}/{}",
            objects::meta_str(service, "namespace").unwrap_or(""),
            objects::name(service).unwrap_or("")
        );
        ops.push(Op::Put {
            key: node_port_key(*port),
            value: owner.into_bytes(),
            precondition: Precondition::MustNotExist,
        });
    }
    Ok(())
}

/// A Warning Event on a Service that holds a value another Service holds too.
fn duplicate_event(service: &Value, reason: &str, message: &str) -> (String, Value) {
    let namespace = objects::meta_str(service, "namespace").unwrap_or("default").to_string();
    let name = objects::name(service).unwrap_or("");
    let now = objects::now_rfc3339();
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{name}.")},
        "involvedObject": {"kind": "Service", "apiVersion": "v1", "namespace": namespace, "name": name, "uid": objects::meta_str(service, "uid").unwrap_or("")},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "source": {"component": "ipallocator-repair-controller"},
        "reportingComponent": "ipallocator-repair-controller",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    (namespace, event)
}
