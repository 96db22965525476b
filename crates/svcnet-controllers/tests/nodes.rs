//! The scheduler, node lifecycle and node IPAM against the API server in process: spreading,
//! nodeSelector, taints and cordons, unschedulable pods retried when nodes change, lease expiry
//! (Ready=Unknown, unreachable taints, pods not ready, NoExecute eviction), graceful pod
//! deletion, and pod CIDRs. The tests play the kubelet: they renew leases and post statuses.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use svcnet_controllers::{nodeipam, nodelifecycle, scheduler, ControllerConfig};
use tokio::time::Instant;

use common::{now_text, ready_condition, wait_for, Cluster, DEADLINE};

/// The API server with the scheduler, node lifecycle and node IPAM.
async fn start(config: ControllerConfig) -> Cluster {
    let mut cluster = Cluster::serve().await;
    cluster.start_controllers(config);
    cluster
}

impl Cluster {
    /// Starts the scheduler, node lifecycle and node IPAM.
    fn start_controllers(&mut self, config: ControllerConfig) {
        let c = self.client.clone();
        self.spawn("scheduler", scheduler::run(c.clone(), config.clone()));
        self.spawn("node lifecycle", nodelifecycle::run(c.clone(), config.clone()));
        self.spawn("node IPAM", nodeipam::run(c, config));
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), "kube-node-lease")
    }

    async fn create_pod(&self, name: &str, tweak: impl FnOnce(&mut Value)) -> Pod {
        let mut pod = json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "web", "image": "echo"}]},
        });
        tweak(&mut pod);
        self.pods()
            .create(&PostParams::default(), &serde_json::from_value(pod).unwrap())
            .await
            .unwrap()
    }

    /// Posts a pod status the way a kubelet does for a running, ready pod.
    async fn pod_running(&self, name: &str) {
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True", "lastTransitionTime": now_text()},
        ]}});
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    async fn patch_node(&self, name: &str, patch: Value) {
        self.nodes()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn node_ready(&self, name: &str, status: &str) {
        let patch = json!({"status": {"conditions": [ready_condition(status)]}});
        self.nodes()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// A kubelet stand-in renewing the leases of the nodes in the returned set every 200 ms.
    fn renew_leases(&mut self, names: &[&str]) -> Arc<Mutex<HashSet<String>>> {
        let renewing = Arc::new(Mutex::new(names.iter().map(|n| n.to_string()).collect::<HashSet<_>>()));
        let set = renewing.clone();
        let leases = self.leases();
        self.tasks.push(tokio::spawn(async move {
            loop {
                let names: Vec<String> = set.lock().unwrap().iter().cloned().collect();
                for name in names {
                    renew(&leases, &name).await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
        renewing
    }
}

async fn renew(leases: &Api<Lease>, node: &str) {
    let renewed = serde_json::to_value(MicroTime(jiff::Timestamp::now())).unwrap();
    let patch = json!({"spec": {"renewTime": renewed}});
    match leases.patch(node, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let lease = json!({
                "metadata": {"name": node},
                "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": renewed},
            });
            let _ = leases
                .create(&PostParams::default(), &serde_json::from_value(lease).unwrap())
                .await;
        }
        Err(err) => panic!("lease renewal failed: {err}"),
    }
}

async fn wait_pod(cluster: &Cluster, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    wait_for(&cluster.pods(), name, what, |p| p.is_some_and(&check))
        .await
        .unwrap()
}

async fn wait_node(cluster: &Cluster, name: &str, what: &str, check: impl Fn(&Node) -> bool) -> Node {
    wait_for(&cluster.nodes(), name, what, |n| n.is_some_and(&check))
        .await
        .unwrap()
}

async fn wait_pod_gone(cluster: &Cluster, name: &str) {
    wait_for(&cluster.pods(), name, "it is gone", |p| p.is_none()).await;
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

fn bound(pod: &Pod) -> bool {
    node_name(pod).is_some()
}

fn condition<'a>(pod: &'a Pod, kind: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

fn node_condition<'a>(node: &'a Node, kind: &str) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

fn taint_keys(node: &Node) -> Vec<(String, String)> {
    let mut keys: Vec<_> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| t.iter().map(|t| (t.key.clone(), t.effect.clone())).collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn long_grace() -> ControllerConfig {
    ControllerConfig {
        node_monitor_grace_period: Duration::from_secs(600),
        ..ControllerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduling_spreads_and_honours_selectors_taints_and_cordons() {
    let cluster = start(long_grace()).await;
    for name in ["n1", "n2", "n3"] {
        cluster.create_node(name, |_| {}).await;
    }
    cluster
        .patch_node("n2", json!({"metadata": {"labels": {"disk": "ssd"}}}))
        .await;

    // Spreading: six pods, two per node.
    for i in 0..6 {
        cluster.create_pod(&format!("p{i}"), |_| {}).await;
    }
    let mut per_node = BTreeMap::new();
    for i in 0..6 {
        let pod = wait_pod(&cluster, &format!("p{i}"), "it is bound", bound).await;
        let scheduled = condition(&pod, "PodScheduled").expect("PodScheduled");
        assert_eq!(scheduled.status, "True");
        *per_node.entry(node_name(&pod).unwrap().to_string()).or_insert(0) += 1;
    }
    assert_eq!(
        per_node,
        BTreeMap::from([("n1".into(), 2), ("n2".into(), 2), ("n3".into(), 2)])
    );

    // nodeName given: nothing to do; another scheduler's pod: left alone.
    cluster
        .create_pod("pinned", |p| p["spec"]["nodeName"] = json!("n3"))
        .await;
    cluster
        .create_pod("foreign", |p| p["spec"]["schedulerName"] = json!("other-scheduler"))
        .await;
    // nodeSelector.
    cluster
        .create_pod("ssd", |p| p["spec"]["nodeSelector"] = json!({"disk": "ssd"}))
        .await;
    let ssd = wait_pod(&cluster, "ssd", "it is bound", bound).await;
    assert_eq!(node_name(&ssd), Some("n2"));
    let pinned = cluster.pods().get("pinned").await.unwrap();
    assert_eq!(node_name(&pinned), Some("n3"));
    let foreign = cluster.pods().get("foreign").await.unwrap();
    assert_eq!(node_name(&foreign), None, "another scheduler's pod");

    // Taint n1, cordon n3: a pod no node takes says why, in upstream's words.
    cluster
        .patch_node(
            "n1",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
        )
        .await;
    cluster.patch_node("n3", json!({"spec": {"unschedulable": true}})).await;
    cluster
        .create_pod("nowhere", |p| p["spec"]["nodeSelector"] = json!({"disk": "none"}))
        .await;
    let expected = "0/3 nodes are available: 1 node(s) didn't match Node's node affinity/selector, \
                    1 node(s) had untolerated taint {dedicated: db}, 1 node(s) were unschedulable.";
    let nowhere = wait_pod(&cluster, "nowhere", "it is reported unschedulable", |p| {
        condition(p, "PodScheduled").and_then(|c| c.message.as_deref()) == Some(expected)
    })
    .await;
    let scheduled = condition(&nowhere, "PodScheduled").unwrap();
    assert_eq!(
        (scheduled.status.as_str(), scheduled.reason.as_deref()),
        ("False", Some("Unschedulable"))
    );
    assert!(!bound(&nowhere));

    // With n1 tainted and n3 cordoned, a plain pod can only go to n2; a tolerating one goes to
    // n1, which has fewer pods than n2.
    cluster.create_pod("plain", |_| {}).await;
    cluster
        .create_pod(
            "tolerant",
            |p| {
                p["spec"]["tolerations"] =
                    json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}])
            },
        )
        .await;
    let plain = wait_pod(&cluster, "plain", "it is bound", bound).await;
    assert_eq!(node_name(&plain), Some("n2"));
    let tolerant = wait_pod(&cluster, "tolerant", "it is bound", bound).await;
    assert_eq!(node_name(&tolerant), Some("n1"));

    // A node change makes room: the unschedulable pod is retried and bound.
    cluster
        .patch_node("n2", json!({"metadata": {"labels": {"disk": "none"}}}))
        .await;
    let nowhere = wait_pod(&cluster, "nowhere", "it is bound after the label change", bound).await;
    assert_eq!(node_name(&nowhere), Some("n2"));
    assert_eq!(condition(&nowhere, "PodScheduled").unwrap().status, "True");

    // Binding a bound pod again is a conflict, as upstream words it.
    let p0 = cluster.pods().get("p0").await.unwrap();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some("p0".into()),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..ObjectReference::default()
        },
    };
    let err = cluster
        .pods()
        .create_subresource::<_, Value>("binding", "p0", &PostParams::default(), &binding)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected a Status, got {err:?}");
    };
    assert_eq!(status.code, 409);
    assert_eq!(
        status.message,
        format!(
            "Operation cannot be fulfilled on pods/binding \"p0\": pod p0 is already assigned to node \"{}\"",
            node_name(&p0).unwrap()
        )
    );
    let foreign = cluster.pods().get("foreign").await.unwrap();
    assert_eq!(node_name(&foreign), None, "still left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expiry_marks_node_unknown_taints_it_and_evicts() {
    let mut cluster = start(ControllerConfig {
        node_monitor_grace_period: Duration::from_secs(2),
        ..ControllerConfig::default()
    })
    .await;
    cluster.create_node("alive", |_| {}).await;
    cluster.create_node("silent", |_| {}).await;
    let renewing = cluster.renew_leases(&["alive", "silent"]);

    // Pods on the silent node: one with the server's default tolerations (300 s), one tolerating
    // unreachable for 2 s, one not at all (0 s); and one on the healthy node.
    let web = cluster
        .create_pod("web", |p| p["spec"]["nodeName"] = json!("silent"))
        .await;
    let defaults: Vec<_> = web
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t.key.clone().unwrap(),
                t.effect.clone().unwrap(),
                t.toleration_seconds.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        defaults,
        [
            ("node.kubernetes.io/not-ready".to_string(), "NoExecute".to_string(), 300),
            (
                "node.kubernetes.io/unreachable".to_string(),
                "NoExecute".to_string(),
                300
            )
        ]
    );
    let toleration = |seconds: i64| json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}]);
    cluster
        .create_pod("brief", |p| {
            p["spec"]["nodeName"] = json!("silent");
            p["spec"]["terminationGracePeriodSeconds"] = json!(1);
            p["spec"]["tolerations"] = toleration(2);
        })
        .await;
    cluster
        .create_pod("prompt", |p| {
            p["spec"]["nodeName"] = json!("silent");
            p["spec"]["terminationGracePeriodSeconds"] = json!(1);
            p["spec"]["tolerations"] = toleration(0);
        })
        .await;
    cluster
        .create_pod("healthy", |p| p["spec"]["nodeName"] = json!("alive"))
        .await;
    for pod in ["web", "brief", "prompt", "healthy"] {
        cluster.pod_running(pod).await;
    }

    // The silent node's kubelet stops renewing.
    renewing.lock().unwrap().remove("silent");
    let silent = wait_node(&cluster, "silent", "Ready is Unknown", |n| {
        node_condition(n, "Ready").is_some_and(|c| c.status == "Unknown")
    })
    .await;
    for kind in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = node_condition(&silent, kind).unwrap();
        assert_eq!(c.status, "Unknown", "{kind}");
    }
    let ready = node_condition(&silent, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
    let unreachable = [
        ("node.kubernetes.io/unreachable".to_string(), "NoExecute".to_string()),
        ("node.kubernetes.io/unreachable".to_string(), "NoSchedule".to_string()),
    ];
    let silent = wait_node(&cluster, "silent", "it is tainted unreachable", |n| {
        taint_keys(n) == unreachable
    })
    .await;
    assert!(silent
        .spec
        .unwrap()
        .taints
        .unwrap()
        .iter()
        .all(|t| t.time_added.is_some()));

    // Its pods stop being ready; the intolerant one goes at once, the 2 s one after 2 s and its
    // 1 s grace; the one with the default 300 s stays.
    let web = wait_pod(&cluster, "web", "Ready is False", |p| {
        condition(p, "Ready").is_some_and(|c| c.status == "False")
    })
    .await;
    assert!(web.metadata.deletion_timestamp.is_none());
    wait_pod_gone(&cluster, "prompt").await;
    let brief = wait_for(&cluster.pods(), "brief", "it is terminating or gone", |p| {
        p.is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    if let Some(brief) = brief {
        assert_eq!(brief.metadata.deletion_grace_period_seconds, Some(1));
    }
    wait_pod_gone(&cluster, "brief").await;
    let web = cluster.pods().get("web").await.unwrap();
    assert!(web.metadata.deletion_timestamp.is_none(), "300 s have not passed");

    // The healthy node and its pod are untouched.
    let alive = cluster.nodes().get("alive").await.unwrap();
    assert_eq!(node_condition(&alive, "Ready").unwrap().status, "True");
    assert!(taint_keys(&alive).is_empty());
    let healthy = cluster.pods().get("healthy").await.unwrap();
    assert_eq!(condition(&healthy, "Ready").unwrap().status, "True");

    // The kubelet comes back: lease and status; the taints go.
    renewing.lock().unwrap().insert("silent".into());
    cluster.node_ready("silent", "True").await;
    wait_node(&cluster, "silent", "its taints are removed", |n| {
        taint_keys(n).is_empty()
    })
    .await;

    // A kubelet reporting Ready=False: not-ready taints, and its pods stop being ready.
    cluster.node_ready("alive", "False").await;
    let not_ready = [
        ("node.kubernetes.io/not-ready".to_string(), "NoExecute".to_string()),
        ("node.kubernetes.io/not-ready".to_string(), "NoSchedule".to_string()),
    ];
    wait_node(&cluster, "alive", "it is tainted not-ready", |n| {
        taint_keys(n) == not_ready
    })
    .await;
    wait_pod(&cluster, "healthy", "Ready is False", |p| {
        condition(p, "Ready").is_some_and(|c| c.status == "False")
    })
    .await;
    cluster.node_ready("alive", "True").await;
    wait_node(&cluster, "alive", "its taints are removed", |n| {
        taint_keys(n).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_nodes_are_deleted_gracefully() {
    let cluster = start(long_grace()).await;
    cluster.create_node("n1", |_| {}).await;
    let bound_with_grace = |seconds: i64| {
        move |p: &mut Value| {
            p["spec"]["nodeName"] = json!("n1");
            p["spec"]["terminationGracePeriodSeconds"] = json!(seconds);
        }
    };
    cluster.create_pod("slow", bound_with_grace(600)).await;
    cluster.create_pod("quick", bound_with_grace(600)).await;
    cluster
        .create_pod("unbound", |p| p["spec"]["schedulerName"] = json!("other-scheduler"))
        .await;
    let pods = cluster.pods();

    // A bound pod is marked, not removed: deletionTimestamp = now + grace, and
    // deletionGracePeriodSeconds.
    let before = jiff::Timestamp::now();
    let marked = pods.delete("slow", &DeleteParams::default()).await.unwrap();
    let marked = marked.left().expect("the marked pod");
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(600));
    let deadline = marked.metadata.deletion_timestamp.clone().expect("deletionTimestamp").0;
    assert!(deadline >= before + jiff::SignedDuration::from_secs(599), "{deadline}");
    // Status writes do not finish it; a longer grace changes nothing.
    cluster.pod_running("slow").await;
    let again = pods
        .delete("slow", &DeleteParams::default().grace_period(900))
        .await
        .unwrap()
        .left()
        .expect("still there");
    assert_eq!(again.metadata.deletion_grace_period_seconds, Some(600));
    assert_eq!(again.metadata.deletion_timestamp.unwrap().0, deadline);
    // A shorter one moves the deadline by the difference.
    let shortened = pods
        .delete("slow", &DeleteParams::default().grace_period(1))
        .await
        .unwrap()
        .left()
        .expect("still there");
    assert_eq!(shortened.metadata.deletion_grace_period_seconds, Some(1));
    assert_eq!(
        shortened.metadata.deletion_timestamp.unwrap().0,
        deadline - jiff::SignedDuration::from_secs(599)
    );

    // gracePeriodSeconds=0 (what the kubelet sends once containers are gone) removes it.
    pods.delete("quick", &DeleteParams::default()).await.unwrap();
    assert!(pods.get("quick").await.unwrap().metadata.deletion_timestamp.is_some());
    pods.delete("quick", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("quick").await.unwrap().is_none());

    // A pod on no node goes at once.
    pods.delete("unbound", &DeleteParams::default()).await.unwrap();
    assert!(pods.get_opt("unbound").await.unwrap().is_none());

    // Without a node agent to confirm, a pod goes once its grace has run out.
    wait_pod_gone(&cluster, "slow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_get_distinct_pod_cidrs() {
    let mut cluster = Cluster::serve().await;
    // A node that already holds a block before the controller starts.
    cluster
        .create_node("old", |n| {
            n["spec"]["podCIDR"] = json!("10.244.1.0/24");
            n["spec"]["podCIDRs"] = json!(["10.244.1.0/24"]);
        })
        .await;
    cluster.start_controllers(ControllerConfig {
        cluster_cidr: "10.244.0.0/22".into(),
        ..long_grace()
    });
    let names = ["a", "b", "c", "d"];
    for name in names {
        cluster.create_node(name, |_| {}).await;
    }
    let cidr = |n: &Node| n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
    // Four blocks in a /22, one held: three of the four new nodes get one.
    let deadline = Instant::now() + DEADLINE;
    let (with, without) = loop {
        let mut with = BTreeMap::new();
        let mut without = Vec::new();
        for name in names {
            let node = cluster.nodes().get(name).await.unwrap();
            match cidr(&node) {
                Some(c) => {
                    let cidrs = node.spec.as_ref().unwrap().pod_cidrs.clone().unwrap();
                    assert_eq!(cidrs, std::slice::from_ref(&c), "podCIDRs follows podCIDR");
                    with.insert(name, c);
                }
                None => without.push(name),
            }
        }
        if with.len() == 3 {
            break (with, without);
        }
        assert!(Instant::now() < deadline, "timed out: {with:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut all: Vec<&str> = with.values().map(String::as_str).collect();
    all.push("10.244.1.0/24");
    all.sort();
    assert_eq!(
        all,
        ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    );

    // Removing the old node frees its block for the one left waiting.
    cluster.nodes().delete("old", &DeleteParams::default()).await.unwrap();
    let last = wait_node(&cluster, without[0], "it gets a pod CIDR", |n| cidr(n).is_some()).await;
    assert_eq!(cidr(&last).as_deref(), Some("10.244.1.0/24"));
}
