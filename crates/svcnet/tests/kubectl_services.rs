//! The Service registry through the real kubectl: node ports, health-check ports, type switches by
//! apply and by patch, and exhaustion of a small service CIDR and node-port range, with the lines a
//! real cluster prints.

mod common;

use common::{Kubectl, Server};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

const LB_LOCAL: &str = "
apiVersion: v1
kind: Service
metadata:
  name: lb
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector:
    app: lb
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

const LB_AS_CLUSTER_IP: &str = "
apiVersion: v1
kind: Service
metadata:
  name: lb
spec:
  selector:
    app: lb
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

#[test]
fn node_ports_health_checks_and_type_switches() {
    let server = Server::start();
    let k = Kubectl::new(33, &server);
    let out = k.ok(&[
        "create",
        "service",
        "nodeport",
        "web",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    assert!(out.contains("service/web created"));
    let table = k.ok(&["get", "svc", "web"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[3], row[4]),
        ("web", "NodePort", "<none>", "80:30080/TCP"),
        "{table}"
    );
    assert!(row[2].starts_with("10."), "{table}");
    let err = k.fails(&[
        "create",
        "service",
        "nodeport",
        "web2",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    assert!(
        err.contains("spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"),
        "{err}"
    );

    let lb = k.file("lb.yaml", LB_LOCAL);
    k.ok(&["apply", "-f", &lb]);
    let live = json(&k.ok(&["get", "svc", "lb", "-o", "json"]));
    let health = live["spec"]["healthCheckNodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&health));
    assert_eq!(live["spec"]["externalTrafficPolicy"], "Local");
    let row = k.ok(&["get", "svc", "lb"]);
    assert!(row.contains("LoadBalancer") && row.contains("<pending>"), "{row}");

    // apply switches the type back: node ports, health-check port and policy go away.
    let cluster_ip = k.file("lb-cip.yaml", LB_AS_CLUSTER_IP);
    assert!(k.ok(&["apply", "-f", &cluster_ip]).contains("service/lb configured"));
    let live = json(&k.ok(&["get", "svc", "lb", "-o", "json"]));
    assert_eq!(live["spec"]["type"], "ClusterIP");
    assert!(live["spec"].get("healthCheckNodePort").is_none());
    assert!(live["spec"].get("externalTrafficPolicy").is_none());
    assert!(live["spec"]["ports"][0].get("nodePort").is_none());

    // patch switches it to NodePort and keeps the cluster IP.
    let ip = live["spec"]["clusterIP"].clone();
    k.ok(&["patch", "svc", "lb", "-p", r#"{"spec":{"type":"NodePort"}}"#]);
    let live = json(&k.ok(&["get", "svc", "lb", "-o", "json"]));
    assert_eq!(live["spec"]["clusterIP"], ip);
    assert!(live["spec"]["ports"][0]["nodePort"].as_i64().is_some());
    let err = k.fails(&[
        "patch",
        "svc",
        "lb",
        "-p",
        r#"{"spec":{"clusterIP":"10.96.0.99","clusterIPs":["10.96.0.99"]}}"#,
    ]);
    assert!(
        err.contains("may not change once set") || err.contains("is invalid"),
        "{err}"
    );

    let cidrs = k.ok(&["get", "servicecidrs"]);
    assert!(
        cidrs.contains("kubernetes") && cidrs.contains("10.96.0.0/12"),
        "{cidrs}"
    );
    let addresses = k.ok(&["get", "ipaddresses"]);
    assert!(
        addresses.contains(ip.as_str().unwrap()) && addresses.contains("services/default/lb"),
        "{addresses}"
    );
}

#[test]
fn small_ranges_run_out_with_upstream_errors() {
    let server = Server::start_with(&[
        "--service-cidr",
        "10.0.0.0/29",
        "--service-node-port-range",
        "30000-30001",
    ]);
    let k = Kubectl::new(33, &server);
    // Six usable addresses; default/kubernetes holds 10.0.0.1.
    for i in 0..5 {
        k.ok(&["create", "service", "clusterip", &format!("s{i}"), "--tcp=80"]);
    }
    let err = k.fails(&["create", "service", "clusterip", "s5", "--tcp=80"]);
    assert!(
        err.contains("Internal error occurred: failed to allocate a serviceIP: range is full"),
        "{err}"
    );
    k.ok(&["delete", "svc", "s0", "s1", "s2", "s3"]);
    k.ok(&["create", "service", "nodeport", "n0", "--tcp=80"]);
    k.ok(&["create", "service", "nodeport", "n1", "--tcp=80"]);
    let err = k.fails(&["create", "service", "nodeport", "n2", "--tcp=80"]);
    assert!(err.contains("failed to allocate a nodePort: range is full"), "{err}");
    let err = k.fails(&["create", "service", "nodeport", "n3", "--tcp=80", "--node-port=31000"]);
    assert!(
        err.contains("provided port is not in the valid range. The range of valid ports is 30000-30001"),
        "{err}"
    );
}

/// Every manifest in examples/ applies, and `kubectl get` shows the shape a real cluster shows.
#[test]
fn every_example_applies() {
    let server = Server::start();
    let k = Kubectl::new(33, &server);
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut applied = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = k.ok(&["apply", "-f", path.to_str().unwrap()]);
            assert!(out.contains("created"), "{}: {out}", path.display());
            applied += 1;
        }
    }
    assert!(applied >= 7, "examples found: {applied}");
    let table = k.ok(&["get", "svc"]);
    let row = |name: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {table}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    let cluster_ip = row("web");
    assert_eq!(
        (cluster_ip[1].as_str(), cluster_ip[4].as_str()),
        ("ClusterIP", "80/TCP")
    );
    let node_port = row("web-nodeport");
    assert!(
        node_port[4].starts_with("80:3") && node_port[4].ends_with("/TCP"),
        "{node_port:?}"
    );
    let lb = row("web-lb-local");
    assert_eq!((lb[1].as_str(), lb[3].as_str()), ("LoadBalancer", "<pending>"));
    assert!(lb[4].contains(",443:3"), "{lb:?}");
    let headless = row("db");
    assert_eq!((headless[2].as_str(), headless[4].as_str()), ("None", "9000/TCP"));
    let external = row("search");
    assert_eq!(
        (external[1].as_str(), external[2].as_str(), external[3].as_str()),
        ("ExternalName", "<none>", "search.example.com")
    );
    let live = json(&k.ok(&["get", "svc", "cart", "-o", "json"]));
    assert_eq!(live["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 600);
}
