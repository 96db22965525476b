//! Address plan: pods 10.244.<node>.<n> (and fd00::<n> for IPv6), nodes node-0..node-2 with
//! zones zone-a..zone-c, Services in namespace `ns` with uid `svc-uid`.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use serde_json::{json, Value};

use super::*;

// === builders ===

fn service(tweak: impl FnOnce(&mut Value)) -> Service {
    let mut value = json!({
        "metadata": {"namespace": "ns", "name": "web", "uid": "svc-uid",
            "labels": {"app": "web"}, "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.20", "ipFamilies": ["IPv4"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
    });
    tweak(&mut value);
    serde_json::from_value(value).unwrap()
}

fn pod(n: usize, tweak: impl FnOnce(&mut Value)) -> Arc<Pod> {
    let mut value = json!({
        "metadata": {"namespace": "ns", "name": format!("web-{n}"), "uid": format!("uid-{n}"), "labels": {"app": "web"}},
        "spec": {"nodeName": format!("node-{}", n % 3), "containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip(n), "podIPs": [{"ip": ip(n)}],
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:05Z"}]},
    });
    tweak(&mut value);
    Arc::new(serde_json::from_value(value).unwrap())
}

fn ip(n: usize) -> String {
    format!("10.244.{}.{}", n % 3, n / 3 + 2)
}

fn pods(count: usize) -> Vec<Arc<Pod>> {
    (0..count).map(|n| pod(n, |_| {})).collect()
}

fn not_ready(p: &mut Value) {
    p["status"]["conditions"][0]["status"] = json!("False");
}

fn nodes() -> HashMap<String, Arc<Node>> {
    ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            let node: Node = serde_json::from_value(json!({"metadata": {"name": format!("node-{i}"),
                "labels": {"topology.kubernetes.io/zone": format!("zone-{zone}")}}}))
            .unwrap();
            (format!("node-{i}"), Arc::new(node))
        })
        .collect()
}

fn run(service: &Service, pods: &[Arc<Pod>], existing: &[Arc<EndpointSlice>]) -> SliceChanges {
    run_with(service, pods, existing, 100)
}

fn run_with(service: &Service, pods: &[Arc<Pod>], existing: &[Arc<EndpointSlice>], max: usize) -> SliceChanges {
    let nodes = nodes();
    let lookup = |name: &str| nodes.get(name).cloned();
    desired(&Inputs {
        service,
        pods,
        node: &lookup,
        existing,
        max_endpoints_per_slice: max,
        trigger_time: "2024-01-01T00:00:05Z".parse().ok(),
    })
}

/// Plays the API server: names created slices, bumps resource versions, drops deleted ones.
fn store(existing: &[Arc<EndpointSlice>], changes: SliceChanges) -> Vec<Arc<EndpointSlice>> {
    let mut by_name: BTreeMap<String, Arc<EndpointSlice>> =
        existing.iter().map(|s| (name(s).to_string(), s.clone())).collect();
    for slice in &changes.delete {
        by_name.remove(name(slice));
    }
    for mut slice in changes.update {
        slice.metadata.resource_version = Some(format!("{}", by_name.len() + 100));
        by_name.insert(name(&slice).to_string(), Arc::new(slice));
    }
    for mut slice in changes.create {
        let generated = format!("{}{}", slice.metadata.generate_name.clone().unwrap(), by_name.len());
        slice.metadata.name = Some(generated.clone());
        slice.metadata.resource_version = Some("1".into());
        by_name.insert(generated, Arc::new(slice));
    }
    by_name.into_values().collect()
}

fn sizes(slices: &[Arc<EndpointSlice>]) -> Vec<usize> {
    let mut sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

fn endpoint_of<'a>(slices: &'a [Arc<EndpointSlice>], pod: &str) -> &'a Endpoint {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .find(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(pod))
        .unwrap_or_else(|| panic!("no endpoint for {pod}"))
}

fn conditions(e: &Endpoint) -> (bool, bool, bool) {
    let c = e.conditions.as_ref().unwrap();
    (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
}

fn counts(c: &SliceChanges) -> (usize, usize, usize) {
    (c.create.len(), c.update.len(), c.delete.len())
}

// === shape of new slices ===

#[test]
fn new_slice_carries_upstream_metadata_and_endpoint_fields() {
    let svc = service(|_| {});
    let changes = run(&svc, &pods(2), &[]);
    assert_eq!(counts(&changes), (1, 0, 0));
    let slice = serde_json::to_value(&changes.create[0]).unwrap();
    assert_eq!(slice["metadata"]["generateName"], "web-");
    assert_eq!(
        slice["metadata"]["labels"],
        json!({"app": "web", "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
    );
    assert_eq!(
        slice["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid",
            "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(
        slice["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"],
        "2024-01-01T00:00:05Z"
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        slice["endpoints"][0],
        json!({"addresses": ["10.244.0.2"], "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": "node-0", "zone": "zone-a",
            "targetRef": {"kind": "Pod", "namespace": "ns", "name": "web-0", "uid": "uid-0"}})
    );
}

#[test]
fn unnamed_ports_are_written_with_an_empty_name() {
    let svc = service(|s| s["spec"]["ports"] = json!([{"port": 80, "targetPort": 8080}]));
    let changes = run(&svc, &pods(1), &[]);
    let ports = serde_json::to_value(&changes.create[0].ports).unwrap();
    assert_eq!(ports, json!([{"name": "", "port": 8080, "protocol": "TCP"}]));
}

#[test]
fn two_hundred_fifty_pods_make_slices_of_100_100_50() {
    let svc = service(|_| {});
    let changes = run(&svc, &pods(250), &[]);
    assert_eq!(counts(&changes), (3, 0, 0));
    let slices = store(&[], changes);
    assert_eq!(sizes(&slices), [100, 100, 50]);
    // Reconciling again changes nothing.
    assert!(run(&svc, &pods(250), &slices).is_empty());
}

#[test]
fn max_endpoints_per_slice_is_honoured() {
    let svc = service(|_| {});
    let slices = store(&[], run_with(&svc, &pods(7), &[], 3));
    assert_eq!(sizes(&slices), [3, 3, 1]);
}

// === minimal churn ===

#[test]
fn one_readiness_flip_rewrites_one_slice() {
    let svc = service(|_| {});
    let slices = store(&[], run(&svc, &pods(250), &[]));
    let mut flipped = pods(250);
    flipped[123] = pod(123, not_ready);
    let changes = run(&svc, &flipped, &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    let after = store(&slices, changes);
    assert_eq!(conditions(endpoint_of(&after, "web-123")), (false, false, false));
    assert_eq!(sizes(&after), [100, 100, 50]);
}

#[test]
fn one_pod_removed_rewrites_one_slice() {
    let svc = service(|_| {});
    let slices = store(&[], run(&svc, &pods(250), &[]));
    let mut fewer = pods(250);
    fewer.remove(7);
    let changes = run(&svc, &fewer, &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(
        store(&slices, changes).iter().map(|s| s.endpoints.len()).sum::<usize>(),
        249
    );
}

#[test]
fn one_pod_added_goes_into_the_slice_with_room() {
    let svc = service(|_| {});
    let slices = store(&[], run(&svc, &pods(250), &[]));
    let changes = run(&svc, &pods(251), &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(changes.update[0].endpoints.len(), 51);
}

#[test]
fn new_endpoints_fill_slices_already_being_written() {
    let svc = service(|_| {});
    let slices = store(&[], run(&svc, &pods(250), &[]));
    // web-0 leaves a full slice while web-250 arrives: one write, not two.
    let mut swapped = pods(251);
    swapped.remove(0);
    let changes = run(&svc, &swapped, &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(changes.update[0].endpoints.len(), 100);
}

#[test]
fn the_last_endpoint_leaving_turns_delete_and_create_into_one_update() {
    let svc = service(|_| {});
    let slices = store(&[], run(&svc, &pods(1), &[]));
    // Only pod web-0 goes; the placeholder reuses the slice instead of delete + create.
    let changes = run(&svc, &[], &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert!(changes.update[0].endpoints.is_empty());
    assert!(changes.update[0].ports.is_none());
    let after = store(&slices, changes);
    assert!(run(&svc, &[], &after).is_empty());
}

// === selector and label changes ===

#[test]
fn pods_leaving_the_selector_leave_the_slices() {
    let svc = service(|_| {});
    let all = pods(5);
    let slices = store(&[], run(&svc, &all, &[]));
    // The Service now selects tier=front, which only web-1 and web-3 carry.
    let svc = service(|s| s["spec"]["selector"] = json!({"tier": "front"}));
    let relabelled: Vec<Arc<Pod>> = (0..5)
        .map(|n| {
            pod(n, |p| {
                p["metadata"]["labels"] = json!({"tier": if n % 2 == 1 { "front" } else { "back" }})
            })
        })
        .collect();
    let selector = util::endpoint_selector(&svc).unwrap();
    let selected: Vec<Arc<Pod>> = relabelled
        .into_iter()
        .filter(|p| util::selects(selector, p.metadata.labels.as_ref()))
        .collect();
    let changes = run(&svc, &selected, &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    let mut names: Vec<_> = changes.update[0]
        .endpoints
        .iter()
        .map(|e| e.target_ref.as_ref().unwrap().name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["web-1", "web-3"]);
}

#[test]
fn service_label_changes_rewrite_slice_labels_only() {
    let svc = service(|_| {});
    let slices = store(&[], run(&svc, &pods(3), &[]));
    let relabelled = service(|s| {
        s["metadata"]["labels"] = json!({"app": "web", "team": "blue", "kubernetes.io/service-name": "evil"})
    });
    let changes = run(&relabelled, &pods(3), &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    let labels = changes.update[0].metadata.labels.clone().unwrap();
    assert_eq!(labels["team"], "blue");
    assert_eq!(labels["kubernetes.io/service-name"], "web");
    assert_eq!(changes.update[0].endpoints, slices[0].endpoints);
}

// === readiness, termination ===

#[test]
fn readiness_and_termination_set_the_conditions() {
    let svc = service(|_| {});
    let stamp = |p: &mut Value| p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:01:00Z");
    let set = vec![
        pod(0, |_| {}),
        pod(1, not_ready),
        pod(2, stamp),
        pod(3, |p| {
            stamp(p);
            not_ready(p)
        }),
    ];
    let slices = store(&[], run(&svc, &set, &[]));
    assert_eq!(conditions(endpoint_of(&slices, "web-0")), (true, true, false));
    assert_eq!(conditions(endpoint_of(&slices, "web-1")), (false, false, false));
    assert_eq!(conditions(endpoint_of(&slices, "web-2")), (false, true, true));
    assert_eq!(conditions(endpoint_of(&slices, "web-3")), (false, false, true));
}

#[test]
fn publish_not_ready_addresses_makes_every_endpoint_ready() {
    let svc = service(|s| s["spec"]["publishNotReadyAddresses"] = json!(true));
    let set = vec![
        pod(0, not_ready),
        pod(1, |p| {
            p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:01:00Z")
        }),
    ];
    let slices = store(&[], run(&svc, &set, &[]));
    assert_eq!(conditions(endpoint_of(&slices, "web-0")), (true, false, false));
    assert_eq!(conditions(endpoint_of(&slices, "web-1")), (true, true, true));
}

#[test]
fn finished_and_addressless_pods_get_no_endpoint() {
    let svc = service(|_| {});
    let set = vec![
        pod(0, |p| p["status"]["phase"] = json!("Succeeded")),
        pod(1, |p| p["status"]["phase"] = json!("Failed")),
        pod(2, |p| p["status"] = json!({"phase": "Pending"})),
        pod(3, |_| {}),
    ];
    let slices = store(&[], run(&svc, &set, &[]));
    assert_eq!(sizes(&slices), [1]);
}

#[test]
fn pods_on_unknown_nodes_wait_unless_everything_is_published() {
    let svc = service(|_| {});
    let set = vec![pod(0, |p| p["spec"]["nodeName"] = json!("node-9")), pod(1, |_| {})];
    let changes = run(&svc, &set, &[]);
    assert_eq!(changes.pods_without_node, ["web-0"]);
    assert_eq!(sizes(&store(&[], changes)), [1]);

    let publish = service(|s| s["spec"]["publishNotReadyAddresses"] = json!(true));
    let changes = run(&publish, &set, &[]);
    assert!(changes.pods_without_node.is_empty());
    let slices = store(&[], changes);
    assert_eq!(endpoint_of(&slices, "web-0").zone, None);
}

// === ports ===

#[test]
fn named_ports_resolve_per_pod_into_separate_slices() {
    let svc = service(|s| {
        s["spec"]["ports"] = json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
            {"name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": 9100},
        ])
    });
    let with_port = |number: i32| {
        move |p: &mut Value| p["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": number}])
    };
    let set = vec![
        pod(0, with_port(8080)),
        pod(1, with_port(8080)),
        pod(2, with_port(9090)),
        // No container port named http: left out of that port only.
        pod(3, |p| p["spec"]["containers"][0]["ports"] = json!([])),
        // Same name, other protocol: no match either.
        pod(4, |p| {
            p["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 7070, "protocol": "UDP"}])
        }),
    ];
    let slices = store(&[], run(&svc, &set, &[]));
    let mut shapes: Vec<(Vec<(String, i32)>, usize)> = slices
        .iter()
        .map(|s| {
            let ports = s
                .ports
                .iter()
                .flatten()
                .map(|p| (p.name.clone().unwrap(), p.port.unwrap()))
                .collect();
            (ports, s.endpoints.len())
        })
        .collect();
    shapes.sort();
    let expected: Vec<(Vec<(String, i32)>, usize)> = vec![
        (vec![("http".into(), 8080), ("metrics".into(), 9100)], 2),
        (vec![("http".into(), 9090), ("metrics".into(), 9100)], 1),
        (vec![("metrics".into(), 9100)], 2),
    ];
    assert_eq!(shapes, expected);
}

#[test]
fn a_pod_whose_port_number_changes_moves_slices() {
    let svc = service(|s| s["spec"]["ports"][0]["targetPort"] = json!("http"));
    let slices = store(&[], run(&svc, &pods(3), &[]));
    let moved = vec![
        pod(0, |_| {}),
        pod(1, |_| {}),
        pod(2, |p| {
            p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9090)
        }),
    ];
    let changes = run(&svc, &moved, &slices);
    assert_eq!(counts(&changes), (1, 1, 0));
    assert_eq!(changes.create[0].ports.as_ref().unwrap()[0].port, Some(9090));
}

#[test]
fn port_changes_on_the_service_reuse_the_old_slice() {
    let svc = service(|_| {});
    let slices = store(&[], run(&svc, &pods(3), &[]));
    let svc = service(|s| s["spec"]["ports"][0]["targetPort"] = json!(8443));
    let changes = run(&svc, &pods(3), &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(changes.update[0].metadata.name, slices[0].metadata.name);
    assert_eq!(changes.update[0].ports.as_ref().unwrap()[0].port, Some(8443));
}

// === headless and hostnames ===

#[test]
fn headless_services_publish_hostnames_of_their_subdomain() {
    let svc = service(|s| {
        s["spec"]["clusterIP"] = json!("None");
        s["spec"]["ports"] = json!([]);
    });
    let set = vec![
        pod(0, |p| {
            p["spec"]["hostname"] = json!("web-0");
            p["spec"]["subdomain"] = json!("web");
        }),
        pod(1, |p| {
            p["spec"]["hostname"] = json!("web-1");
            p["spec"]["subdomain"] = json!("other");
        }),
        pod(2, |p| p["spec"]["subdomain"] = json!("web")),
    ];
    let changes = run(&svc, &set, &[]);
    assert_eq!(counts(&changes), (1, 0, 0));
    let slice = &changes.create[0];
    assert_eq!(
        slice.metadata.labels.as_ref().unwrap()["service.kubernetes.io/headless"],
        ""
    );
    assert!(slice.ports.is_none());
    let slices = store(&[], changes);
    assert_eq!(endpoint_of(&slices, "web-0").hostname.as_deref(), Some("web-0"));
    assert_eq!(endpoint_of(&slices, "web-1").hostname, None);
    assert_eq!(endpoint_of(&slices, "web-2").hostname, None);
}

#[test]
fn a_hostname_change_replaces_the_endpoint() {
    let svc = service(|s| s["spec"]["clusterIP"] = json!("None"));
    let named = |p: &mut Value| {
        p["spec"]["hostname"] = json!("web-0");
        p["spec"]["subdomain"] = json!("web");
    };
    let slices = store(&[], run(&svc, &[pod(0, named)], &[]));
    let changes = run(&svc, &[pod(0, |_| {})], &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(changes.update[0].endpoints[0].hostname, None);
}

// === placeholders, ownership, families ===

#[test]
fn a_service_without_pods_gets_one_empty_slice_once() {
    let svc = service(|_| {});
    let changes = run(&svc, &[], &[]);
    assert_eq!(counts(&changes), (1, 0, 0));
    assert!(changes.create[0].endpoints.is_empty());
    let slices = store(&[], changes);
    assert!(run(&svc, &[], &slices).is_empty());
    // The first pod turns the placeholder into the real slice.
    let changes = run(&svc, &pods(1), &slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(changes.update[0].metadata.name, slices[0].metadata.name);
}

#[test]
fn slices_of_an_earlier_service_with_the_same_name_are_replaced() {
    let old = service(|s| s["metadata"]["uid"] = json!("old-uid"));
    let slices = store(&[], run(&old, &pods(2), &[]));
    let svc = service(|_| {});
    let changes = run(&svc, &pods(2), &slices);
    // Never reused: it is not ours.
    assert_eq!(counts(&changes), (1, 0, 1));
    assert_eq!(changes.delete[0].metadata.name, slices[0].metadata.name);
}

#[test]
fn dual_stack_services_get_a_slice_per_family() {
    let svc = service(|s| {
        s["spec"]["ipFamilies"] = json!(["IPv6", "IPv4"]);
        s["spec"]["clusterIPs"] = json!(["fd00:96::20", "10.96.0.20"]);
    });
    let dual = |n: usize| {
        pod(n, move |p| {
            p["status"]["podIPs"] = json!([{"ip": ip(n)}, {"ip": format!("fd00::{n}")}])
        })
    };
    let slices = store(&[], run(&svc, &[dual(0), dual(1), pod(2, |_| {})], &[]));
    let mut shape: Vec<(String, usize)> = slices
        .iter()
        .map(|s| (s.address_type.clone(), s.endpoints.len()))
        .collect();
    shape.sort();
    assert_eq!(shape, [("IPv4".to_string(), 3), ("IPv6".to_string(), 2)]);

    // Back to IPv4 only: the IPv6 slice goes, the IPv4 one stays.
    let single = service(|_| {});
    let changes = run(&single, &[dual(0), dual(1), pod(2, |_| {})], &slices);
    assert_eq!(counts(&changes), (0, 0, 1));
    assert_eq!(changes.delete[0].address_type, "IPv6");
}

#[test]
fn services_without_families_use_their_cluster_ip_or_both_when_headless() {
    let v6 = service(|s| {
        s["spec"]["ipFamilies"] = json!(null);
        s["spec"]["clusterIP"] = json!("fd00:96::20");
    });
    assert_eq!(endpoint::address_types(&v6), ["IPv6"]);
    let headless = service(|s| {
        s["spec"]["ipFamilies"] = json!(null);
        s["spec"]["clusterIP"] = json!("None");
    });
    assert_eq!(endpoint::address_types(&headless), ["IPv4", "IPv6"]);
}

// === trigger time and deletion ===

#[test]
fn updates_without_a_trigger_time_clear_the_annotation() {
    let svc = service(|_| {});
    let slices = store(&[], run(&svc, &pods(2), &[]));
    let nodes = nodes();
    let lookup = |name: &str| nodes.get(name).cloned();
    let changes = desired(&Inputs {
        service: &svc,
        pods: &pods(1),
        node: &lookup,
        existing: &slices,
        max_endpoints_per_slice: 100,
        trigger_time: None,
    });
    assert_eq!(counts(&changes), (0, 1, 0));
    let annotations = changes.update[0].metadata.annotations.clone().unwrap_or_default();
    assert!(!annotations.contains_key(ANNOTATION_TRIGGER_TIME));
}

#[test]
fn a_service_being_deleted_gets_no_new_slices() {
    let svc = service(|s| s["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:02:00Z"));
    assert!(run(&svc, &pods(3), &[]).is_empty());
}

#[test]
fn delete_all_lists_every_slice() {
    let svc = service(|_| {});
    let slices = store(&[], run(&svc, &pods(250), &[]));
    assert_eq!(counts(&SliceChanges::delete_all(&slices)), (0, 0, 3));
}
