//! Golden tests of the pure model: one small nft text per case under tests/golden/ (the part of
//! the table that the case's Services add; `base.nft` is the table without Services). Rewrite
//! them with `SVCNET_UPDATE_GOLDEN=1 cargo test -p svcnet-proxy --test model` and review the diff.
//!
//! Address plan: node addresses 192.168.77.11 (node1, this node) and .12 (node2); pods
//! 10.244.1.0/24 on node1 and 10.244.2.0/24 on node2 (cluster CIDR 10.244.0.0/16); cluster IPs
//! 10.96.0.0/12; external and LB IPs 203.0.113.0/24.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};
use svcnet_proxy::ruleset::element_text;
use svcnet_proxy::{desired, Algorithm, ModelConfig, NodeInfo, Ruleset};

fn node() -> NodeInfo {
    NodeInfo {
        name: "node1".into(),
        ips: vec!["192.168.77.11".parse().unwrap()],
    }
}

fn config() -> ModelConfig {
    ModelConfig {
        cluster_cidr: Some("10.244.0.0/16".parse().unwrap()),
        default_algorithm: Algorithm::RoundRobin,
    }
}

/// A Service `default/<name>` with one TCP port 80 → 8080, changed by `tweak`.
fn service(name: &str, tweak: impl FnOnce(&mut Value)) -> Service {
    let mut value = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                 "internalTrafficPolicy": "Cluster"}
    });
    tweak(&mut value);
    serde_json::from_value(value).unwrap()
}

/// An endpoint: (address, node, ready, serving, terminating).
type Ep<'a> = (&'a str, &'a str, bool, bool, bool);

fn ready(ip: &'static str, node: &'static str) -> Ep<'static> {
    (ip, node, true, true, false)
}

fn slice(service: &str, endpoints: &[Ep]) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, node, ready, serving, terminating)| {
            json!({"addresses": [ip], "nodeName": node,
                   "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                   "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("pod-{ip}")}})
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abc"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap()
}

fn four_endpoints() -> Vec<Ep<'static>> {
    vec![
        ready("10.244.1.10", "node1"),
        ready("10.244.1.11", "node1"),
        ready("10.244.2.10", "node2"),
        ready("10.244.2.11", "node2"),
    ]
}

/// What the Services add to the empty table: elements per set, then chains.
fn service_part(rules: &Ruleset) -> String {
    let base = desired::<Service, EndpointSlice>(&[], &[], &node(), &config());
    let mut out = String::new();
    for (name, set) in &rules.sets {
        let added: Vec<String> = set
            .elements
            .iter()
            .filter(|(k, _)| !base.sets[name].elements.contains_key(*k))
            .map(|(k, v)| element_text(k, v))
            .collect();
        if !added.is_empty() {
            out.push_str(&format!("{} {name}:\n", set.kind()));
            for element in added {
                out.push_str(&format!("\t{element}\n"));
            }
        }
    }
    for (name, chain) in &rules.chains {
        if base.chains.contains_key(name) {
            assert_eq!(&base.chains[name], chain, "base chain {name} changed");
            continue;
        }
        out.push_str(&format!("chain {name}:\n"));
        for rule in &chain.rules {
            out.push_str(&format!("\t{rule}\n"));
        }
    }
    out
}

fn check_golden(case: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{case}.nft"));
    if std::env::var_os("SVCNET_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with SVCNET_UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        text, expected,
        "golden {case} differs; run with SVCNET_UPDATE_GOLDEN=1 and review"
    );
}

fn golden(case: &str, services: &[Service], slices: &[EndpointSlice]) -> Ruleset {
    let rules = desired(services, slices, &node(), &config());
    check_golden(case, &service_part(&rules));
    rules
}

#[test]
fn base_table() {
    check_golden(
        "base",
        &desired::<Service, EndpointSlice>(&[], &[], &node(), &config()).render(),
    );
}

#[test]
fn cluster_ip_round_robin() {
    let rules = golden(
        "cluster_ip",
        &[service("web", |_| {})],
        &[slice("web", &four_endpoints())],
    );
    assert_eq!(rules.sets["endpoints"].elements.len(), 4);
}

#[test]
fn node_port_cluster_policy() {
    let svc = service("web", |s| {
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["ports"][0]["nodePort"] = json!(30080);
        s["spec"]["externalTrafficPolicy"] = json!("Cluster");
    });
    golden("node_port_cluster", &[svc], &[slice("web", &four_endpoints())]);
}

#[test]
fn load_balancer_local_policy_vip_proxy_and_source_ranges() {
    let svc = service("web", |s| {
        s["spec"]["type"] = json!("LoadBalancer");
        s["spec"]["ports"][0]["nodePort"] = json!(30080);
        s["spec"]["externalTrafficPolicy"] = json!("Local");
        s["spec"]["healthCheckNodePort"] = json!(31000);
        s["spec"]["loadBalancerSourceRanges"] = json!(["198.51.100.0/24", "203.0.113.100/32"]);
        s["status"] = json!({"loadBalancer": {"ingress": [
            {"ip": "203.0.113.10", "ipMode": "VIP"}, {"ip": "203.0.113.11", "ipMode": "Proxy"}]}});
    });
    golden("load_balancer_local", &[svc], &[slice("web", &four_endpoints())]);
}

#[test]
fn external_ips_and_local_without_local_endpoints_drop() {
    let svc = service("web", |s| {
        s["spec"]["externalIPs"] = json!(["203.0.113.20"]);
        s["spec"]["externalTrafficPolicy"] = json!("Local");
    });
    let remote_only = vec![ready("10.244.2.10", "node2")];
    let rules = golden("external_ips_local_none", &[svc], &[slice("web", &remote_only)]);
    assert!(rules.sets["no-endpoint-drop"]
        .elements
        .contains_key("203.0.113.20 . tcp . 80"));
}

#[test]
fn no_endpoints_reject() {
    let svc = service("web", |s| {
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["ports"][0]["nodePort"] = json!(30080);
    });
    let rules = golden("no_endpoints", &[svc], &[]);
    assert!(rules.sets["no-endpoint-reject"]
        .elements
        .contains_key("10.96.0.20 . tcp . 80"));
    assert!(rules.sets["no-endpoint-nodeport-reject"]
        .elements
        .contains_key("tcp . 30080"));
}

#[test]
fn headless_external_name_and_opt_outs_get_nothing() {
    let headless = service("headless", |s| {
        s["spec"]["clusterIP"] = json!("None");
        s["spec"]["clusterIPs"] = json!(["None"]);
    });
    let external_name = service("ext", |s| {
        s["spec"] = json!({"type": "ExternalName", "externalName": "example.com"});
    });
    let other_proxy = service("other", |s| {
        s["metadata"]["labels"] = json!({"service.kubernetes.io/service-proxy-name": "foo"});
    });
    let mut headless_slice = slice("web", &four_endpoints());
    headless_slice
        .metadata
        .labels
        .get_or_insert_default()
        .insert("service.kubernetes.io/headless".into(), String::new());
    let rules = desired(
        &[headless, external_name, other_proxy, service("web", |_| {})],
        &[slice("headless", &four_endpoints()), headless_slice],
        &node(),
        &config(),
    );
    check_golden("opt_outs", &service_part(&rules));
}

#[test]
fn terminating_endpoints_used_only_when_none_ready() {
    let endpoints = vec![
        ("10.244.1.10", "node1", false, true, true),
        ("10.244.2.10", "node2", false, false, true),
        ("10.244.2.11", "node2", false, false, false),
    ];
    golden(
        "terminating_fallback",
        &[service("web", |_| {})],
        &[slice("web", &endpoints)],
    );
    let mut with_ready = endpoints.clone();
    with_ready.push(ready("10.244.2.12", "node2"));
    let rules = desired(
        &[service("web", |_| {})],
        &[slice("web", &with_ready)],
        &node(),
        &config(),
    );
    let backends: Vec<&String> = rules.sets["endpoints"].elements.values().collect();
    assert_eq!(backends, vec!["10.244.2.12 . 8080"]);
}

#[test]
fn internal_traffic_policy_local() {
    let svc = service("web", |s| s["spec"]["internalTrafficPolicy"] = json!("Local"));
    golden("internal_local", &[svc], &[slice("web", &four_endpoints())]);
    let svc = service("web", |s| s["spec"]["internalTrafficPolicy"] = json!("Local"));
    let rules = desired(
        &[svc],
        &[slice("web", &[ready("10.244.2.10", "node2")])],
        &node(),
        &config(),
    );
    assert!(rules.sets["no-endpoint-drop"]
        .elements
        .contains_key("10.96.0.20 . tcp . 80"));
}

#[test]
fn session_affinity_client_ip() {
    let svc = service("web", |s| {
        s["spec"]["sessionAffinity"] = json!("ClientIP");
        s["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 30}});
    });
    golden("affinity", &[svc], &[slice("web", &four_endpoints()[..2])]);
}

#[test]
fn algorithms_and_weights() {
    let random = service("random", |s| {
        s["metadata"]["annotations"] = json!({"svcnet.io/lb-algorithm": "random"});
        s["spec"]["clusterIP"] = json!("10.96.0.21");
        s["spec"]["clusterIPs"] = json!(["10.96.0.21"]);
    });
    let weighted = service("weighted", |s| {
        s["metadata"]["annotations"] = json!({"svcnet.io/endpoint-weights": "{\"pod-10.244.1.10\": 3}"});
        s["spec"]["clusterIP"] = json!("10.96.0.22");
        s["spec"]["clusterIPs"] = json!(["10.96.0.22"]);
    });
    let two = &four_endpoints()[..2];
    golden(
        "random_and_weights",
        &[random, weighted],
        &[slice("random", two), slice("weighted", two)],
    );

    let maglev = service("maglev", |s| {
        s["metadata"]["annotations"] = json!({"svcnet.io/lb-algorithm": "maglev"});
    });
    let rules = desired(&[maglev], &[slice("maglev", two)], &node(), &config());
    let chain = &rules.chains["pick-default/maglev/tcp/80"];
    assert!(chain.rules[0].contains("jhash ip saddr . ip daddr . th sport . th dport mod 251 seed 0x5eed"));
    assert_eq!(rules.sets["endpoints"].elements.len(), 251);

    let per_node = ModelConfig {
        default_algorithm: Algorithm::Random,
        ..config()
    };
    let rules = desired(&[service("web", |_| {})], &[slice("web", two)], &node(), &per_node);
    assert!(rules.chains["pick-default/web/tcp/80"].rules[0].contains("numgen random mod 2"));
}

#[test]
fn endpoint_change_touches_only_elements() {
    let before = desired(
        &[service("web", |_| {})],
        &[slice("web", &four_endpoints())],
        &node(),
        &config(),
    );
    let mut moved = four_endpoints();
    moved[3] = ready("10.244.2.99", "node2");
    let after = desired(&[service("web", |_| {})], &[slice("web", &moved)], &node(), &config());
    assert_eq!(before.chains, after.chains, "same endpoint count: no chain changes");
    assert_ne!(before.sets["endpoints"], after.sets["endpoints"]);
}

#[test]
fn malformed_objects_do_not_panic() {
    let mut odd = service("odd", |s| {
        s["spec"]["ports"] = json!([{"port": 70000}, {"port": 80, "protocol": "SCTP"}]);
        s["spec"]["clusterIPs"] = json!(["fd00::1", "not-an-ip"]);
        s["spec"]["loadBalancerSourceRanges"] = json!(["garbage"]);
        s["metadata"]["annotations"] = json!({"svcnet.io/endpoint-weights": "[", "svcnet.io/lb-algorithm": "??"});
    });
    odd.spec.as_mut().unwrap().cluster_ip = Some("bogus".into());
    let rules = desired(
        &[odd, Service::default()],
        &[EndpointSlice::default()],
        &node(),
        &config(),
    );
    assert_eq!(
        rules.chains.len(),
        desired::<Service, EndpointSlice>(&[], &[], &node(), &config())
            .chains
            .len()
    );
}

mod incremental {
    use super::*;
    use svcnet_proxy::incremental::{service_key, Delta, IncrementalModel};

    /// Applies a delta to a full table the way the applier does: before's elements and chains
    /// out, after's in.
    fn apply(table: &mut Ruleset, delta: &Delta) {
        for (name, set) in &delta.before.sets {
            let live = table.sets.get_mut(name).expect("delta names a declared set");
            for key in set.elements.keys() {
                live.elements.remove(key);
            }
        }
        for name in delta.before.chains.keys() {
            table.chains.remove(name);
        }
        for (name, set) in &delta.after.sets {
            let live = table.sets.get_mut(name).expect("delta names a declared set");
            live.elements.extend(set.elements.clone());
        }
        for (name, chain) in &delta.after.chains {
            table.chains.insert(name.clone(), chain.clone());
        }
    }

    fn with_ip(ip: &'static str) -> impl FnOnce(&mut Value) {
        move |v| {
            v["spec"]["clusterIP"] = json!(ip);
            v["spec"]["clusterIPs"] = json!([ip]);
        }
    }

    /// The model after each step equals `desired` of the same objects, and the deltas it hands
    /// out, applied in turn to the first full table, give the same table.
    #[test]
    fn updates_match_the_full_model_and_their_deltas_replay_it() {
        let shared = ready("10.244.1.10", "node1");
        let web = service("web", with_ip("10.96.0.20"));
        let api = service("api", |v| {
            with_ip("10.96.0.21")(v);
            v["spec"]["type"] = json!("NodePort");
            v["spec"]["externalTrafficPolicy"] = json!("Local");
            v["spec"]["ports"][0]["nodePort"] = json!(30080);
        });
        let mut services = vec![web, api.clone()];
        let mut slices = vec![slice("web", &four_endpoints()), slice("api", &[shared])];
        let full = |services: &[Service], slices: &[EndpointSlice]| desired(services, slices, &node(), &config());

        let service_refs: Vec<&Service> = services.iter().collect();
        let slice_refs: Vec<&EndpointSlice> = slices.iter().collect();
        let mut model = IncrementalModel::build(node(), config(), &service_refs, &slice_refs);
        let mut table = model.ruleset();
        assert_eq!(table, full(&services, &slices));

        let mut step = |services: &[Service], slices: &[EndpointSlice], key: &str| -> (bool, Ruleset) {
            let key = ("default".to_string(), key.to_string());
            let service = services.iter().find(|s| service_key(s) == key);
            let own: Vec<&EndpointSlice> = slices
                .iter()
                .filter(|s| s.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"] == key.1)
                .collect();
            let mut delta = Delta::default();
            let changed = model.update(key, service, &own, &mut delta);
            assert_eq!(
                delta.before.sets.keys().collect::<Vec<_>>(),
                delta.after.sets.keys().collect::<Vec<_>>()
            );
            apply(&mut table, &delta);
            assert_eq!(model.ruleset(), full(services, slices));
            assert_eq!(table, model.ruleset());
            let counts = model.counts();
            assert_eq!(
                (counts.chains, counts.rules, counts.elements),
                (table.chains.len(), table.rule_count(), table.element_count())
            );
            (changed, table.clone())
        };

        // One endpoint changes: only that Service's elements move.
        let mut moved = four_endpoints();
        moved[3] = ready("10.244.2.99", "node2");
        slices[0] = slice("web", &moved);
        assert!(step(&services, &slices, "web").0);
        // Nothing changed: no delta.
        assert!(!step(&services, &slices, "web").0);
        // The endpoint both Services share leaves web: its hairpin pair stays for api.
        let mut without_shared = moved.clone();
        without_shared.retain(|e| e.0 != "10.244.1.10");
        slices[0] = slice("web", &without_shared);
        let (changed, table) = step(&services, &slices, "web");
        assert!(changed);
        assert!(table.sets["hairpin"].elements.contains_key("10.244.1.10 . 10.244.1.10"));
        // api goes: its chains, node port and the shared pair go with it.
        services.retain(|s| service_key(s).1 != "api");
        let (changed, table) = step(&services, &slices, "api");
        assert!(changed);
        assert!(!table.sets["hairpin"].elements.contains_key("10.244.1.10 . 10.244.1.10"));
        assert!(table.sets["service-nodeports"].elements.is_empty());
        // api comes back and web loses every endpoint (reject element, no selection rule).
        slices[0] = slice("web", &[]);
        let (changed, table) = step(&services, &slices, "web");
        assert!(changed);
        assert!(table.sets["no-endpoint-reject"]
            .elements
            .contains_key("10.96.0.20 . tcp . 80"));
        services.push(api);
        assert!(step(&services, &slices, "api").0);
        assert_eq!(model.service_count(), 2);
        assert_eq!(model.ports().count(), 2);
        assert_eq!(model.port_count(), 2);
        // web and api are TCP without health-check ports: nothing beyond the table to do.
        assert_eq!(model.ports_with_side_effects().count(), 0);
    }
}
