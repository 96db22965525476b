//! Terway ENIIP: the VPC route table. Pods take addresses of the pod vSwitch, and the VPC router
//! sends each node's share (`spec.podCIDR`) to that node, as the cloud's route table does. Kept
//! from a watch on Node objects.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::WatchStreamExt;
use kube::runtime::{watcher, watcher::Event};
use kube::Api;
use svcnet_node::netns;

use crate::plan::{self, ipv4_cidr_contains, TERWAY_CLUSTER_CIDR};

/// A node's route: its pod CIDR via its VPC address, when both are there and inside the lab.
pub fn desired_route(node: &Node) -> Option<(String, Ipv4Addr)> {
    let cidr = node.spec.as_ref()?.pod_cidr.clone()?;
    let ip: Ipv4Addr = node
        .status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .parse()
        .ok()?;
    let in_vpc = ipv4_cidr_contains(plan::VPC_CIDR, &format!("{ip}/32"));
    (in_vpc && ipv4_cidr_contains(TERWAY_CLUSTER_CIDR, &cidr)).then_some((cidr, ip))
}

/// Keeps `<podCIDR> via <node>` in the router namespace until the task is dropped.
pub async fn run(client: kube::Client, router_namespace: String) {
    let nodes: Api<Node> = Api::all(client);
    let mut events = watcher(nodes, watcher::Config::default()).default_backoff().boxed();
    // node name -> route in place
    let mut routes: BTreeMap<String, (String, Ipv4Addr)> = BTreeMap::new();
    let mut seen_in_relist: Option<Vec<String>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(node)) | Ok(Event::InitApply(node)) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = seen_in_relist.as_mut() {
                    seen.push(name.clone());
                }
                match desired_route(&node) {
                    Some(route) if routes.get(&name) != Some(&route) => {
                        apply(&router_namespace, Some(&route), routes.get(&name)).await;
                        routes.insert(name, route);
                    }
                    Some(_) => {}
                    None => {
                        if let Some(old) = routes.remove(&name) {
                            apply(&router_namespace, None, Some(&old)).await;
                        }
                    }
                }
            }
            Ok(Event::Delete(node)) => {
                if let Some(old) = routes.remove(&node.metadata.name.unwrap_or_default()) {
                    apply(&router_namespace, None, Some(&old)).await;
                }
            }
            Ok(Event::Init) => seen_in_relist = Some(Vec::new()),
            Ok(Event::InitDone) => {
                let seen = seen_in_relist.take().unwrap_or_default();
                let gone: Vec<String> = routes.keys().filter(|n| !seen.contains(n)).cloned().collect();
                for name in gone {
                    if let Some(old) = routes.remove(&name) {
                        apply(&router_namespace, None, Some(&old)).await;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "watching nodes for the VPC route table"),
        }
    }
}

/// Replaces `old` by `new` in the router's table.
async fn apply(namespace: &str, new: Option<&(String, Ipv4Addr)>, old: Option<&(String, Ipv4Addr)>) {
    let mut lines = Vec::new();
    if let Some((cidr, _)) = old.filter(|o| new.map(|n| &n.0) != Some(&o.0)) {
        lines.push(format!("route del {cidr}"));
    }
    if let Some((cidr, ip)) = new {
        lines.push(plan::router_pod_route(cidr, *ip));
    }
    let namespace = namespace.to_string();
    let result = tokio::task::spawn_blocking(move || netns::ip_batch(Some(&namespace), &lines)).await;
    match result {
        Ok(Ok(())) => tracing::info!(?new, ?old, "VPC route table updated"),
        Ok(Err(error)) => tracing::warn!(%error, "updating the VPC route table"),
        Err(error) => tracing::warn!(%error, "updating the VPC route table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(cidr: &str, ip: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "node1"},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "Hostname", "address": "node1"}, {"type": "InternalIP", "address": ip}]},
        }))
        .unwrap()
    }

    #[test]
    fn routes_pod_vswitch_shares_to_vpc_nodes_only() {
        assert_eq!(
            desired_route(&node("192.168.81.0/24", "192.168.77.12")),
            Some(("192.168.81.0/24".into(), Ipv4Addr::new(192, 168, 77, 12)))
        );
        assert_eq!(desired_route(&node("10.244.1.0/24", "192.168.77.12")), None);
        assert_eq!(desired_route(&node("192.168.81.0/24", "10.0.0.1")), None);
        let mut bare = node("192.168.81.0/24", "192.168.77.12");
        bare.spec = None;
        assert_eq!(desired_route(&bare), None);
    }
}
