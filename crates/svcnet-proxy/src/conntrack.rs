//! UDP conntrack cleanup. A UDP "connection" lives in conntrack for as long as the client keeps
//! sending, with the NAT decision made on its first packet: when its endpoint goes away the
//! client keeps hitting the dead address, and a Service that had no endpoints keeps its
//! rejected/unNATed entries. So after each sync, entries of removed endpoints and of
//! frontends that just gained their first endpoint are deleted (upstream does the same).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Command;

use crate::services::ServicePort;

/// A UDP frontend: a Service address (cluster IP, external or LB IP, or a node address for a
/// NodePort) and port.
pub type Frontend = (Ipv4Addr, u16);

/// Each UDP frontend with the endpoint addresses new flows may be sent to.
pub type UdpFrontends = BTreeMap<Frontend, BTreeSet<Ipv4Addr>>;

/// The UDP frontends of the programmed Service ports.
pub fn udp_frontends<'a>(ports: impl IntoIterator<Item = &'a ServicePort>, node_ips: &[Ipv4Addr]) -> UdpFrontends {
    let mut out = UdpFrontends::new();
    for port in ports.into_iter().filter(|p| p.name.protocol == "udp") {
        let endpoints: BTreeSet<Ipv4Addr> = port.cluster_pool().iter().map(|e| e.ip).collect();
        let service_addresses = port
            .cluster_ip
            .iter()
            .chain(&port.external_ips)
            .chain(&port.load_balancer_ips)
            .map(|ip| (*ip, port.name.port));
        let node_ports = port
            .node_port
            .into_iter()
            .flat_map(|p| node_ips.iter().map(move |ip| (*ip, p)));
        for frontend in service_addresses.chain(node_ports) {
            out.entry(frontend).or_default().extend(endpoints.iter().copied());
        }
    }
    out
}

/// One deletion: every UDP entry to `frontend`, or only those NATed to `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deletion {
    /// Original destination.
    pub frontend: Frontend,
    /// NAT target, when only one endpoint's flows go.
    pub endpoint: Option<Ipv4Addr>,
}

/// What must be deleted between two syncs.
pub fn stale(before: &UdpFrontends, after: &UdpFrontends) -> Vec<Deletion> {
    let none = BTreeSet::new();
    let mut out = Vec::new();
    for (frontend, old) in before {
        let new = after.get(frontend).unwrap_or(&none);
        for endpoint in old.difference(new) {
            out.push(Deletion {
                frontend: *frontend,
                endpoint: Some(*endpoint),
            });
        }
    }
    for (frontend, new) in after {
        let had_none = before.get(frontend).is_none_or(BTreeSet::is_empty);
        if had_none && !new.is_empty() {
            out.push(Deletion {
                frontend: *frontend,
                endpoint: None,
            });
        }
    }
    out
}

/// Deletes the entries with the `conntrack` CLI in the current network namespace. Failures are
/// logged, not returned: the next endpoint change tries again, and traffic is not blocked on it.
pub fn delete(deletions: &[Deletion]) {
    for deletion in deletions {
        let (address, port) = deletion.frontend;
        let mut command = Command::new("conntrack");
        command.args([
            "-D",
            "-p",
            "udp",
            "--orig-dst",
            &address.to_string(),
            "--orig-port-dst",
            &port.to_string(),
        ]);
        if let Some(endpoint) = deletion.endpoint {
            command.args(["--dst-nat", &endpoint.to_string()]);
        }
        match command.output() {
            // Exit status 1 with "0 flow entries" is the normal nothing-to-do case.
            Ok(output) if output.status.success() || output.status.code() == Some(1) => {}
            Ok(output) => tracing::warn!(
                ?deletion,
                stderr = %String::from_utf8_lossy(&output.stderr).trim(),
                "conntrack cleanup failed"
            ),
            Err(error) => tracing::warn!(%error, "conntrack cleanup: cannot run conntrack (is it installed?)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontends(entries: &[(u16, &[u8])]) -> UdpFrontends {
        entries
            .iter()
            .map(|(port, eps)| {
                let endpoints = eps.iter().map(|last| Ipv4Addr::new(10, 244, 1, *last)).collect();
                ((Ipv4Addr::new(10, 96, 0, 10), *port), endpoints)
            })
            .collect()
    }

    #[test]
    fn removed_endpoints_and_first_endpoints_are_stale() {
        let before = frontends(&[(53, &[1, 2]), (54, &[])]);
        let after = frontends(&[(53, &[2, 3]), (54, &[4])]);
        let deletions = stale(&before, &after);
        assert_eq!(
            deletions,
            vec![
                Deletion {
                    frontend: (Ipv4Addr::new(10, 96, 0, 10), 53),
                    endpoint: Some(Ipv4Addr::new(10, 244, 1, 1))
                },
                Deletion {
                    frontend: (Ipv4Addr::new(10, 96, 0, 10), 54),
                    endpoint: None
                },
            ]
        );
        assert!(stale(&after, &after).is_empty());
    }
}
