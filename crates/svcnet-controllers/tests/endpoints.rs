//! The EndpointSlice and Endpoints controllers against the API server in process. The tests play
//! the node agent: they create pods bound to nodes and post their IPs and readiness through the
//! status subresource, then wait (with a deadline, never a fixed sleep) for slices and Endpoints.
//!
//! Address plan: nodes node-0 (zone-a) and node-1 (zone-b); pods 10.244.<i / 200>.<i % 200 + 2>.

mod common;

use std::collections::BTreeMap;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use svcnet_controllers::{endpoints, endpointslice, ControllerConfig};

use common::{eventually, Cluster};

/// The API server and both controllers, on nodes node-0 (zone-a) and node-1 (zone-b).
async fn start() -> Cluster {
    let mut cluster = Cluster::serve().await;
    let config = ControllerConfig::default();
    cluster.spawn(
        "EndpointSlice controller",
        endpointslice::run(cluster.client.clone(), config.clone()),
    );
    cluster.spawn("Endpoints controller", endpoints::run(cluster.client.clone(), config));
    for (node, zone) in [("node-0", "zone-a"), ("node-1", "zone-b")] {
        cluster
            .create_node(node, |n| {
                n["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!(zone);
            })
            .await;
    }
    cluster
}

impl Cluster {
    async fn service(&self, value: Value) -> Service {
        self.create(value).await
    }

    /// Creates a pod on node-<i % 2> serving `http` on `port`, then posts it Running and ready.
    async fn pod(&self, name: &str, i: usize, labels: Value, port: i32, tweak: impl FnOnce(&mut Value)) {
        let mut value = json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": format!("node-{}", i % 2), "containers": [{"name": "app", "image": "x",
                "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}]}]},
        });
        tweak(&mut value);
        let pod: Pod = serde_json::from_value(value).unwrap();
        self.api::<Pod>().create(&PostParams::default(), &pod).await.unwrap();
        let ip = format!("10.244.{}.{}", i / 200, i % 200 + 2);
        self.status(name, json!({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}))
            .await;
        self.ready(name, true).await;
    }

    async fn status(&self, name: &str, status: Value) {
        self.api::<Pod>()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
            .await
            .unwrap();
    }

    async fn ready(&self, name: &str, ready: bool) {
        let now = jiff::Timestamp::now().to_string();
        let status = if ready { "True" } else { "False" };
        let conditions = json!([{"type": "Ready", "status": status, "lastTransitionTime": now}]);
        self.status(name, json!({"conditions": conditions})).await;
    }

    /// The managed slices of a Service.
    async fn slices(&self, service: &str) -> Vec<EndpointSlice> {
        let selector = format!(
            "kubernetes.io/service-name={service},endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"
        );
        let list = self
            .api::<EndpointSlice>()
            .list(&ListParams::default().labels(&selector))
            .await;
        list.unwrap().items
    }

    async fn endpoints(&self, service: &str) -> Option<Endpoints> {
        self.api::<Endpoints>().get_opt(service).await.unwrap()
    }
}

fn web_service(name: &str, tweak: impl FnOnce(&mut Value)) -> Value {
    let mut value = json!({
        "metadata": {"name": name, "labels": {"team": "blue"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    });
    tweak(&mut value);
    value
}

/// pod name -> (ready, serving, terminating), over all slices.
fn conditions(slices: &[EndpointSlice]) -> BTreeMap<String, (bool, bool, bool)> {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .map(|e: &Endpoint| {
            let c = e.conditions.clone().unwrap_or_default();
            let name = e.target_ref.as_ref().and_then(|t| t.name.clone()).unwrap_or_default();
            (
                name,
                (
                    c.ready == Some(true),
                    c.serving == Some(true),
                    c.terminating == Some(true),
                ),
            )
        })
        .collect()
}

/// (ready IPs, not-ready IPs) over all subsets.
fn addresses(endpoints: &Endpoints) -> (Vec<String>, Vec<String>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        ready.extend(subset.addresses.iter().flatten().map(|a| a.ip.clone()));
        not_ready.extend(subset.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn slices_and_endpoints_follow_pods() {
    let cluster = start().await;
    let web = cluster.service(web_service("web", |_| {})).await;
    let app = json!({"app": "web"});
    cluster.pod("web-0", 0, app.clone(), 8080, |_| {}).await;
    cluster.pod("web-1", 1, app.clone(), 8080, |_| {}).await;
    // Same port name, other number: a slice of its own.
    cluster.pod("web-2", 2, app.clone(), 9090, |_| {}).await;

    let slices = eventually("three ready endpoints in two slices", || async {
        let slices = cluster.slices("web").await;
        let all_ready = conditions(&slices).values().filter(|c| c.0).count() == 3;
        (slices.len() == 2 && all_ready).then_some(slices)
    })
    .await;
    let slice = slices.iter().find(|s| s.endpoints.len() == 2).unwrap();
    let value = serde_json::to_value(slice).unwrap();
    assert!(slice.metadata.name.as_ref().unwrap().starts_with("web-"));
    assert_eq!(value["metadata"]["generateName"], "web-");
    assert_eq!(value["metadata"]["labels"]["team"], "blue");
    assert_eq!(
        value["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": web.metadata.uid.clone().unwrap(),
            "controller": true, "blockOwnerDeletion": true}])
    );
    assert!(value["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"].is_string());
    assert_eq!(value["addressType"], "IPv4");
    assert_eq!(
        value["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    let first = slice
        .endpoints
        .iter()
        .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some("web-1"))
        .unwrap();
    assert_eq!(first.addresses, ["10.244.0.3"]);
    assert_eq!(first.node_name.as_deref(), Some("node-1"));
    assert_eq!(first.zone.as_deref(), Some("zone-b"));

    let ep = eventually("Endpoints with three addresses", || async {
        let ep = cluster.endpoints("web").await?;
        (addresses(&ep).0.len() == 3).then_some(ep)
    })
    .await;
    assert_eq!(
        ep.metadata.labels.clone().unwrap(),
        BTreeMap::from([("team".into(), "blue".into())])
    );
    assert_eq!(ep.subsets.as_ref().unwrap().len(), 2);

    // A readiness flip rewrites the one slice that holds the pod.
    let other = slices.iter().find(|s| s.endpoints.len() == 1).unwrap();
    cluster.ready("web-0", false).await;
    eventually("web-0 not ready", || async {
        let slices = cluster.slices("web").await;
        (conditions(&slices)["web-0"] == (false, false, false)).then_some(())
    })
    .await;
    let after = cluster.slices("web").await;
    let untouched = after.iter().find(|s| s.metadata.name == other.metadata.name).unwrap();
    assert_eq!(untouched.metadata.resource_version, other.metadata.resource_version);
    eventually("web-0 in notReadyAddresses", || async {
        let ep = cluster.endpoints("web").await?;
        (addresses(&ep) == (strings(&["10.244.0.3", "10.244.0.4"]), strings(&["10.244.0.2"]))).then_some(())
    })
    .await;

    // A pod relabelled out of the selector leaves both.
    cluster
        .patch::<Pod>("web-1", json!({"metadata": {"labels": {"app": "other"}}}))
        .await;
    eventually("web-1 gone", || async {
        let gone = !conditions(&cluster.slices("web").await).contains_key("web-1");
        let ep = cluster.endpoints("web").await?;
        (gone && !addresses(&ep).0.contains(&"10.244.0.3".to_string())).then_some(())
    })
    .await;

    // A pod being deleted on its node stays in the slice as terminating; Endpoints drop it.
    cluster
        .api::<Pod>()
        .delete("web-2", &DeleteParams::default())
        .await
        .unwrap();
    eventually("web-2 terminating", || async {
        let slices = cluster.slices("web").await;
        let terminating = conditions(&slices).get("web-2") == Some(&(false, true, true));
        let ep = cluster.endpoints("web").await?;
        (terminating && !addresses(&ep).0.contains(&"10.244.0.4".to_string())).then_some(())
    })
    .await;
    cluster
        .api::<Pod>()
        .delete("web-2", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("web-2 gone", || async {
        (!conditions(&cluster.slices("web").await).contains_key("web-2")).then_some(())
    })
    .await;

    // A selector change picks the relabelled pod back up.
    cluster
        .patch::<Service>("web", json!({"spec": {"selector": {"app": "other"}}}))
        .await;
    eventually("only web-1 selected", || async {
        let names: Vec<String> = conditions(&cluster.slices("web").await).into_keys().collect();
        let ep = cluster.endpoints("web").await?;
        (names == ["web-1"] && addresses(&ep).0 == ["10.244.0.3"]).then_some(())
    })
    .await;

    // Deleting the Service removes what the controllers made.
    cluster
        .api::<Service>()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("slices and Endpoints gone", || async {
        (cluster.slices("web").await.is_empty() && cluster.endpoints("web").await.is_none()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn publish_not_ready_addresses_and_headless_hostnames() {
    let cluster = start().await;
    cluster
        .service(json!({
            "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "selector": {"app": "db"},
                "ports": [{"name": "tcp", "port": 9000}]},
        }))
        .await;
    for i in 0..2 {
        let name = format!("db-{i}");
        let hostname = name.clone();
        cluster
            .pod(&name, i, json!({"app": "db"}), 9000, |p| {
                p["spec"]["hostname"] = json!(hostname);
                p["spec"]["subdomain"] = json!("db");
            })
            .await;
    }
    cluster.ready("db-1", false).await;
    let slices = eventually("db-1 published though not serving", || async {
        let slices = cluster.slices("db").await;
        let both = conditions(&slices);
        (both.len() == 2 && both["db-1"] == (true, false, false)).then_some(slices)
    })
    .await;
    let labels = slices[0].metadata.labels.clone().unwrap();
    assert_eq!(labels["service.kubernetes.io/headless"], "");
    let mut hostnames: Vec<_> = slices[0].endpoints.iter().filter_map(|e| e.hostname.clone()).collect();
    hostnames.sort();
    assert_eq!(hostnames, ["db-0", "db-1"]);

    let ep = eventually("Endpoints with both addresses ready", || async {
        let ep = cluster.endpoints("db").await?;
        (addresses(&ep).0.len() == 2).then_some(ep)
    })
    .await;
    let subset = &ep.subsets.unwrap()[0];
    assert!(subset.not_ready_addresses.is_none());
    assert_eq!(subset.addresses.as_ref().unwrap()[0].hostname.as_deref(), Some("db-0"));
    assert_eq!(ep.metadata.labels.unwrap()["service.kubernetes.io/headless"], "");
}

#[tokio::test]
async fn two_hundred_fifty_pods_fill_three_slices() {
    let cluster = start().await;
    cluster.service(web_service("web", |_| {})).await;
    let app = json!({"app": "web"});
    for chunk in (0..250).collect::<Vec<_>>().chunks(25) {
        let names: Vec<(usize, String)> = chunk.iter().map(|&i| (i, format!("web-{i}"))).collect();
        join_all(
            names
                .iter()
                .map(|(i, name)| cluster.pod(name, *i, app.clone(), 8080, |_| {})),
        )
        .await;
    }
    let slices = eventually("250 ready endpoints", || async {
        let slices = cluster.slices("web").await;
        (conditions(&slices).values().filter(|c| c.0).count() == 250).then_some(slices)
    })
    .await;
    let mut sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100, 100]);
    eventually("Endpoints with 250 addresses", || async {
        let ep = cluster.endpoints("web").await?;
        (addresses(&ep).0.len() == 250).then_some(())
    })
    .await;

    // One pod's flip: exactly one slice changes.
    let before: BTreeMap<_, _> = slices
        .iter()
        .map(|s| (s.metadata.name.clone(), s.metadata.resource_version.clone()))
        .collect();
    cluster.ready("web-77", false).await;
    let after = eventually("web-77 not ready", || async {
        let slices = cluster.slices("web").await;
        (!conditions(&slices)["web-77"].0).then_some(slices)
    })
    .await;
    let changed = after
        .iter()
        .filter(|s| before[&s.metadata.name] != s.metadata.resource_version)
        .count();
    assert_eq!((after.len(), changed), (3, 1));
}

#[tokio::test]
async fn foreign_slices_and_selectorless_services_are_left_alone() {
    let cluster = start().await;
    cluster
        .service(json!({"metadata": {"name": "ext"}, "spec": {"ports": [{"port": 80}]}}))
        .await;
    let foreign: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "ext-manual", "labels": {"kubernetes.io/service-name": "ext"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.168.77.9"]}],
        "ports": [{"port": 80}],
    }))
    .unwrap();
    cluster
        .api::<EndpointSlice>()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let manual: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "ext"},
        "subsets": [{"addresses": [{"ip": "192.168.77.9"}], "ports": [{"port": 80}]}],
    }))
    .unwrap();
    cluster
        .api::<Endpoints>()
        .create(&PostParams::default(), &manual)
        .await
        .unwrap();

    // A Service with a selector next to it proves the controllers are running.
    cluster.service(web_service("web", |_| {})).await;
    eventually("the placeholder slice of web", || async {
        (cluster.slices("web").await.len() == 1).then_some(())
    })
    .await;
    assert!(cluster.slices("ext").await.is_empty());
    let kept = cluster.api::<EndpointSlice>().get("ext-manual").await.unwrap();
    assert_eq!(kept.endpoints[0].addresses, ["192.168.77.9"]);
    let ep = cluster.endpoints("ext").await.unwrap();
    assert_eq!(addresses(&ep).0, ["192.168.77.9"]);
}
