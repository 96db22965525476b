//! Address plan: pods 10.244.<n / 250>.<n % 250 + 1>, on node-<n % 3>; Service `ns/web`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use serde_json::{json, Value};

use super::*;

fn service(tweak: impl FnOnce(&mut Value)) -> Service {
    let mut value = json!({
        "metadata": {"namespace": "ns", "name": "web", "uid": "svc-uid", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.20", "ipFamilies": ["IPv4"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
    });
    tweak(&mut value);
    serde_json::from_value(value).unwrap()
}

fn ip(n: usize) -> String {
    format!("10.244.{}.{}", n / 250, n % 250 + 1)
}

fn pod(n: usize, tweak: impl FnOnce(&mut Value)) -> Arc<Pod> {
    let mut value = json!({
        "metadata": {"namespace": "ns", "name": format!("web-{n}"), "uid": format!("uid-{n}"), "labels": {"app": "web"}},
        "spec": {"nodeName": format!("node-{}", n % 3), "containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIPs": [{"ip": ip(n)}],
            "conditions": [{"type": "Ready", "status": "True"}]},
    });
    tweak(&mut value);
    Arc::new(serde_json::from_value(value).unwrap())
}

fn not_ready(p: &mut Value) {
    p["status"]["conditions"][0]["status"] = json!("False");
}

fn terminating(p: &mut Value) {
    p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:01:00Z");
}

fn time() -> Option<Timestamp> {
    "2024-01-01T00:00:05Z".parse().ok()
}

fn json_of(endpoints: &Endpoints) -> Value {
    serde_json::to_value(endpoints).unwrap()
}

fn ips(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| a.iter().map(|x| x["ip"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn totals(endpoints: &Endpoints) -> (usize, usize) {
    count(endpoints.subsets.as_deref().unwrap_or_default())
}

#[test]
fn ready_and_not_ready_pods_share_a_subset() {
    let svc = service(|_| {});
    let pods = [pod(2, |_| {}), pod(0, |_| {}), pod(1, not_ready)];
    let endpoints = json_of(&desired(&svc, &pods, None, time()).unwrap());
    assert_eq!(endpoints["metadata"]["name"], "web");
    assert_eq!(endpoints["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        endpoints["metadata"]["annotations"],
        json!({"endpoints.kubernetes.io/last-change-trigger-time": "2024-01-01T00:00:05Z"})
    );
    let subsets = endpoints["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0]["addresses"]), ["10.244.0.1", "10.244.0.3"]);
    assert_eq!(ips(&subsets[0]["notReadyAddresses"]), ["10.244.0.2"]);
    assert_eq!(
        subsets[0]["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        subsets[0]["addresses"][0],
        json!({"ip": "10.244.0.1", "nodeName": "node-0",
            "targetRef": {"kind": "Pod", "namespace": "ns", "name": "web-0", "uid": "uid-0"}})
    );
}

#[test]
fn terminating_pods_are_left_out_unless_not_ready_addresses_are_published() {
    let svc = service(|_| {});
    let pods = [pod(0, |_| {}), pod(1, terminating), pod(2, not_ready)];
    let endpoints = desired(&svc, &pods, None, time()).unwrap();
    assert_eq!(totals(&endpoints), (1, 1));

    let publish = service(|s| s["spec"]["publishNotReadyAddresses"] = json!(true));
    let endpoints = desired(&publish, &pods, None, time()).unwrap();
    assert_eq!(totals(&endpoints), (3, 0));
}

#[test]
fn named_ports_split_subsets_by_resolved_number() {
    let svc = service(|s| {
        s["spec"]["ports"] = json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
            {"port": 9100, "protocol": "TCP", "targetPort": 9100},
        ])
    });
    let pods = [
        pod(0, |_| {}),
        pod(1, |p| {
            p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9090)
        }),
        pod(2, |p| p["spec"]["containers"][0]["ports"] = json!([])),
    ];
    let endpoints = json_of(&desired(&svc, &pods, None, time()).unwrap());
    let mut shapes: Vec<(Vec<String>, Value)> = endpoints["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (ips(&s["addresses"]), s["ports"].clone()))
        .collect();
    shapes.sort_by_key(|(ips, _)| ips.clone());
    assert_eq!(
        shapes,
        [
            (
                vec!["10.244.0.1".to_string()],
                json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
            ),
            (
                vec!["10.244.0.1".to_string(), "10.244.0.2".into(), "10.244.0.3".into()],
                json!([{"port": 9100, "protocol": "TCP"}])
            ),
            (
                vec!["10.244.0.2".to_string()],
                json!([{"name": "http", "port": 9090, "protocol": "TCP"}])
            ),
        ]
    );
}

#[test]
fn headless_services_without_ports_list_addresses_and_hostnames() {
    let svc = service(|s| {
        s["spec"]["clusterIP"] = json!("None");
        s["spec"]["ports"] = json!([]);
    });
    let pods = [
        pod(0, |p| {
            p["spec"]["hostname"] = json!("web-0");
            p["spec"]["subdomain"] = json!("web");
        }),
        pod(1, |p| p["spec"]["hostname"] = json!("web-1")),
    ];
    let endpoints = json_of(&desired(&svc, &pods, None, time()).unwrap());
    assert_eq!(endpoints["metadata"]["labels"]["service.kubernetes.io/headless"], "");
    let subset = &endpoints["subsets"][0];
    assert!(subset.get("ports").is_none());
    assert_eq!(subset["addresses"][0]["hostname"], "web-0");
    assert!(subset["addresses"][1].get("hostname").is_none());
}

#[test]
fn a_clusterip_service_without_ports_gets_no_subsets() {
    let svc = service(|s| s["spec"]["ports"] = json!([]));
    let endpoints = desired(&svc, &[pod(0, |_| {})], None, time()).unwrap();
    assert!(endpoints.subsets.is_none());
}

#[test]
fn the_primary_family_picks_the_address() {
    let svc = service(|s| s["spec"]["ipFamilies"] = json!(["IPv6", "IPv4"]));
    let dual = pod(0, |p| {
        p["status"]["podIPs"] = json!([{"ip": "10.244.0.1"}, {"ip": "fd00::1"}])
    });
    let v4_only = pod(1, |_| {});
    let endpoints = json_of(&desired(&svc, &[dual, v4_only], None, time()).unwrap());
    assert_eq!(ips(&endpoints["subsets"][0]["addresses"]), ["fd00::1"]);
}

#[test]
fn unchanged_endpoints_are_not_rewritten() {
    let svc = service(|_| {});
    let pods = [pod(0, |_| {}), pod(1, |_| {})];
    let mut current = desired(&svc, &pods, None, time()).unwrap();
    current.metadata.resource_version = Some("7".into());
    // A new trigger time alone is no reason to write.
    assert!(desired(&svc, &pods, Some(&current), None).is_none());

    let flipped = [pod(0, |_| {}), pod(1, not_ready)];
    let next = desired(&svc, &flipped, Some(&current), None).unwrap();
    assert_eq!(next.metadata.resource_version.as_deref(), Some("7"));
    assert_eq!(totals(&next), (1, 1));
    assert!(!next
        .metadata
        .annotations
        .unwrap()
        .contains_key("endpoints.kubernetes.io/last-change-trigger-time"));

    let relabelled = service(|s| s["metadata"]["labels"] = json!({"app": "web", "team": "blue"}));
    let next = desired(&relabelled, &pods, Some(&current), None).unwrap();
    assert_eq!(next.metadata.labels.unwrap()["team"], "blue");
}

#[test]
fn a_service_without_pods_gets_an_empty_object_once() {
    let svc = service(|_| {});
    let created = desired(&svc, &[], None, time()).unwrap();
    assert!(created.subsets.is_none());
    assert!(desired(&svc, &[], Some(&created), time()).is_none());
}

#[test]
fn more_than_1000_addresses_are_truncated_and_annotated() {
    let svc = service(|_| {});
    let pods: Vec<_> = (0..1200).map(|n| pod(n, |_| {})).collect();
    let endpoints = desired(&svc, &pods, None, time()).unwrap();
    assert_eq!(totals(&endpoints), (1000, 0));
    assert_eq!(
        endpoints.metadata.annotations.as_ref().unwrap()[ANNOTATION_OVER_CAPACITY],
        "truncated"
    );
    // Still over capacity, but already cut the same way: no rewrite.
    assert!(desired(&svc, &pods, Some(&endpoints), time()).is_none());

    let fewer: Vec<_> = pods[..900].to_vec();
    let endpoints = desired(&svc, &fewer, Some(&endpoints), time()).unwrap();
    assert_eq!(totals(&endpoints), (900, 0));
    assert!(!endpoints
        .metadata
        .annotations
        .unwrap()
        .contains_key(ANNOTATION_OVER_CAPACITY));
}

#[test]
fn truncation_cuts_not_ready_addresses_first() {
    let svc = service(|_| {});
    let pods: Vec<_> = (0..1200)
        .map(|n| if n < 900 { pod(n, |_| {}) } else { pod(n, not_ready) })
        .collect();
    let endpoints = desired(&svc, &pods, None, time()).unwrap();
    assert_eq!(totals(&endpoints), (900, 100));
}

#[test]
fn truncation_shares_the_budget_across_subsets() {
    let svc = service(|s| s["spec"]["ports"][0]["targetPort"] = json!("http"));
    let pods: Vec<_> = (0..1500)
        .map(|n| {
            let number = if n % 3 == 0 { 8080 } else { 9090 };
            pod(n, move |p| {
                p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(number)
            })
        })
        .collect();
    let endpoints = desired(&svc, &pods, None, time()).unwrap();
    let mut sizes: Vec<usize> = endpoints
        .subsets
        .iter()
        .flatten()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [334, 666]);
}
