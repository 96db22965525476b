//! Bodies captured from the real kubectl (see `examples/capture.rs`).
//!
//! Each `*.kubectl-1.33.bin` is the protobuf body kubectl 1.33 POSTed for a
//! command; the matching `*.kubectl-1.31.json` is the JSON body kubectl 1.31
//! POSTed for the very same command. Decoding the former must give the latter,
//! except that Go writes a zero `creationTimestamp` as `null` where the
//! decoder leaves it out.

use serde_json::{json, Value};
use svcnet_protobuf::decode_object;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Removes `null` members, the only "empty" difference between the formats.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect(),
        Value::Array(items) => items.into_iter().map(without_nulls).collect(),
        other => other,
    }
}

fn assert_matches_json_kubectl(command: &str) {
    let decoded = decode_object(&fixture(&format!("{command}.kubectl-1.33.bin"))).unwrap();
    let sent: Value = serde_json::from_slice(&fixture(&format!("{command}.kubectl-1.31.json"))).unwrap();
    assert_eq!(decoded, without_nulls(sent), "{command}");
}

#[test]
fn create_service_nodeport_web() {
    // kubectl create service nodeport web --tcp=80:8080
    assert_matches_json_kubectl("service-nodeport-web");
    let decoded = decode_object(&fixture("service-nodeport-web.kubectl-1.33.bin")).unwrap();
    let expected = json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app": "web"},
            "type": "NodePort"
        },
        "status": {"loadBalancer": {}}
    });
    assert_eq!(decoded, expected);
}

#[test]
fn create_namespace_shop() {
    // kubectl create namespace shop
    assert_matches_json_kubectl("namespace-shop");
    let decoded = decode_object(&fixture("namespace-shop.kubectl-1.33.bin")).unwrap();
    assert_eq!(
        decoded.to_string(),
        r#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"shop"},"spec":{},"status":{}}"#
    );
}

#[test]
fn create_service_externalname_ext() {
    // kubectl create service externalname ext --external-name example.com
    assert_matches_json_kubectl("service-externalname-ext");
}

#[test]
fn create_service_loadbalancer_lb() {
    // kubectl create service loadbalancer lb --tcp=443:8443
    assert_matches_json_kubectl("service-loadbalancer-lb");
}

#[test]
fn create_service_clusterip_headless_with_two_ports() {
    // kubectl create service clusterip multi --tcp=80:8080 --tcp=5678 --clusterip=None
    assert_matches_json_kubectl("service-clusterip-multi");
}

#[test]
fn create_service_nodeport_with_fixed_node_port_in_namespace() {
    // kubectl create service nodeport np --tcp=80:8080 --node-port=30080 -n shop
    assert_matches_json_kubectl("service-nodeport-np");
}

#[test]
fn create_deployment_web() {
    // kubectl create deployment web --image=nginx --replicas=3 --port=80
    assert_matches_json_kubectl("deployment-web");
    let decoded = decode_object(&fixture("deployment-web.kubectl-1.33.bin")).unwrap();
    let expected = json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "nginx", "image": "nginx",
                    "ports": [{"containerPort": 80}], "resources": {}
                }]}
            },
            "strategy": {}
        },
        "status": {}
    });
    assert_eq!(decoded, expected);
}

const COMMANDS: [&str; 7] = [
    "service-nodeport-web",
    "namespace-shop",
    "service-externalname-ext",
    "service-loadbalancer-lb",
    "service-clusterip-multi",
    "service-nodeport-np",
    "deployment-web",
];

#[test]
fn key_order_matches_json_kubectl() {
    // Beyond value equality, the decoded text matches kubectl's own JSON once
    // the null creationTimestamps are dropped.
    for command in COMMANDS {
        let decoded = decode_object(&fixture(&format!("{command}.kubectl-1.33.bin"))).unwrap();
        let sent = String::from_utf8(fixture(&format!("{command}.kubectl-1.31.json"))).unwrap();
        // The template's metadata starts with its null creationTimestamp.
        let sent = sent
            .trim_end()
            .replace(r#","creationTimestamp":null"#, "")
            .replace(r#""creationTimestamp":null,"#, "");
        assert_eq!(decoded.to_string(), sent, "{command}");
    }
}
