//! The agent's Node: its object (addresses, capacity, labels, flannel annotations), its Ready
//! condition with heartbeats, and its Lease in kube-node-lease.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::routes::{vtep_mac, Cni};
use crate::status::time_text;

/// What the Node object says about this node.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub ip: Ipv4Addr,
    pub cni: Cni,
    pub zone: Option<String>,
    pub cpus: usize,
    pub memory_kib: u64,
}

pub const BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
pub const PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// MemTotal from /proc/meminfo, in KiB.
pub fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The Node as the agent registers it (metadata and spec; the status goes separately).
pub fn node_object(facts: &NodeFacts) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": facts.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "beta.kubernetes.io/os": "linux",
    });
    if let Some(zone) = &facts.zone {
        labels["topology.kubernetes.io/zone"] = json!(zone);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": facts.name, "labels": labels, "annotations": annotations(facts)},
        "spec": {},
    })
}

/// flannel's annotations under flannel-vxlan (other nodes read the VTEP from them).
pub fn annotations(facts: &NodeFacts) -> Value {
    match facts.cni {
        Cni::FlannelVxlan => json!({
            BACKEND_DATA: json!({"VNI": crate::routes::VXLAN_VNI, "VtepMAC": vtep_mac(facts.ip)}).to_string(),
            "flannel.alpha.coreos.com/backend-type": "vxlan",
            PUBLIC_IP: facts.ip.to_string(),
        }),
        _ => json!({}),
    }
}

/// The node status: addresses, capacity, node info and the Ready condition.
pub fn node_status(facts: &NodeFacts, ready: bool, ready_since: Timestamp, now: Timestamp) -> Value {
    let capacity = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_kib),
        "pods": "110",
        "ephemeral-storage": "10Gi",
    });
    let (status, reason, message) = if ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "False",
            "KubeletNotReady",
            "network plugin is not ready: waiting for the pod CIDR",
        )
    };
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": time_text(now), "lastTransitionTime": time_text(ready_since)})
    };
    json!({
        "addresses": [
            {"type": "InternalIP", "address": facts.ip.to_string()},
            {"type": "Hostname", "address": facts.name},
        ],
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", status, reason, message),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "", "osImage": "svcnet lab node",
            "containerRuntimeVersion": "svcnet://0.1.0",
            "kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0",
            "operatingSystem": "linux", "architecture": std::env::consts::ARCH,
        },
    })
}

/// Creates the Node, or brings an existing one's labels and annotations up to date.
pub async fn register(client: &kube::Client, facts: &NodeFacts) -> anyhow::Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let object = node_object(facts);
    let node: Node = serde_json::from_value(object.clone())?;
    match api.create(&PostParams::default(), &node).await {
        Ok(node) => Ok(node),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": object["metadata"]["labels"], "annotations": object["metadata"]["annotations"]}});
            Ok(api
                .patch(&facts.name, &PatchParams::default(), &Patch::Merge(patch))
                .await?)
        }
        Err(err) => Err(err).context("registering the node"),
    }
}

/// When the node's Ready condition turned True, if it is True now.
pub fn ready_since(node: &Node) -> Option<Timestamp> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(ready.last_transition_time.as_ref().map_or_else(Timestamp::now, |t| t.0))
}

/// Writes the node status (a heartbeat).
pub async fn post_status(
    client: &kube::Client,
    facts: &NodeFacts,
    ready: bool,
    since: Timestamp,
) -> anyhow::Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": node_status(facts, ready, since, Timestamp::now())});
    Ok(api
        .patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(patch))
        .await?)
}

fn owner_references(node: &str, uid: Option<&str>) -> Value {
    match uid {
        Some(uid) => json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]),
        None => json!([]),
    }
}

fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Renews the node's Lease every `duration / 4` until the process ends (the kubelet's
/// lease controller); a failed renewal is retried at the next tick. A Lease it creates is owned
/// by the Node (`node_uid`), so deleting the Node lets the garbage collector take it too.
pub async fn renew_lease(
    client: kube::Client,
    node: String,
    node_uid: Option<String>,
    duration: Duration,
) -> anyhow::Result<()> {
    let api: Api<Lease> = Api::namespaced(client, NODE_LEASE_NAMESPACE);
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(40);
    let every = (duration / 4).max(Duration::from_millis(250));
    loop {
        let now = micro_time(Timestamp::now());
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": NODE_LEASE_NAMESPACE, "ownerReferences": owner_references(&node, node_uid.as_deref())},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": seconds, "renewTime": now},
        });
        let patch = json!({"spec": lease["spec"]});
        let result = match api.patch(&node, &PatchParams::default(), &Patch::Merge(patch)).await {
            Err(kube::Error::Api(e)) if e.code == 404 => api
                .create(&PostParams::default(), &serde_json::from_value(lease)?)
                .await
                .map(|_| ()),
            other => other.map(|_| ()),
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "renewing the node lease failed");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(cni: Cni) -> NodeFacts {
        NodeFacts {
            name: "node1".into(),
            ip: "192.168.77.11".parse().unwrap(),
            cni,
            zone: Some("zone-a".into()),
            cpus: 2,
            memory_kib: 1024,
        }
    }

    #[test]
    fn node_carries_labels_and_flannel_annotations() {
        let node = node_object(&facts(Cni::FlannelVxlan));
        let labels = &node["metadata"]["labels"];
        assert_eq!(labels["kubernetes.io/hostname"], "node1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["topology.kubernetes.io/zone"], "zone-a");
        let annotations = &node["metadata"]["annotations"];
        let backend: Value = serde_json::from_str(annotations[BACKEND_DATA].as_str().unwrap()).unwrap();
        assert_eq!(backend, json!({"VNI": 1, "VtepMAC": "0e:f1:c0:a8:4d:0b"}));
        assert_eq!(annotations[PUBLIC_IP], "192.168.77.11");
        assert_eq!(node_object(&facts(Cni::Flannel))["metadata"]["annotations"], json!({}));
    }

    #[test]
    fn status_reports_addresses_capacity_and_readiness() {
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        let status = node_status(&facts(Cni::Flannel), true, t, t);
        assert_eq!(
            status["addresses"][0],
            json!({"type": "InternalIP", "address": "192.168.77.11"})
        );
        assert_eq!(status["capacity"]["pods"], "110");
        assert_eq!(status["capacity"]["memory"], "1024Ki");
        assert_eq!(status["conditions"][3]["type"], "Ready");
        assert_eq!(status["conditions"][3]["status"], "True");
        let parsed: k8s_openapi::api::core::v1::NodeStatus = serde_json::from_value(status).unwrap();
        assert_eq!(parsed.allocatable.unwrap()["cpu"].0, "2");
        assert_eq!(micro_time(t), "2023-11-14T22:13:20.000000Z");
    }

    #[test]
    fn ready_since_reads_only_a_true_ready_condition() {
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        let with_status = |ready: bool| -> Node {
            let status = node_status(&facts(Cni::Flannel), ready, t, t);
            serde_json::from_value(json!({"metadata": {"name": "node1"}, "status": status})).unwrap()
        };
        assert_eq!(ready_since(&with_status(true)), Some(t));
        assert_eq!(ready_since(&with_status(false)), None);
        let fresh: Node = serde_json::from_value(json!({"metadata": {"name": "node1"}})).unwrap();
        assert_eq!(ready_since(&fresh), None);
    }
}
