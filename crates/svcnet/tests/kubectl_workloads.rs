//! The real kubectl 1.33 against `svcnet server` with its in-process controllers: a Deployment
//! rolled out, updated, undone and restarted, exposed as a NodePort Service, a StatefulSet, and
//! bad workloads refused. The test plays the node agent through the pods' status subresource.

mod common;

use std::time::{Duration, Instant};

use common::{Kubectl, Server};

const DEADLINE: Duration = Duration::from_secs(60);

/// What `kubectl create deployment web --image=nginx --replicas=3 --port=80 --dry-run=client
/// -o yaml` prints.
const WEB: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        ports:
        - containerPort: 80
        resources: {}
status: {}
";

const DB: &str = "
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: clickhouse
        image: clickhouse:24
";

const BAD: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
spec:
  selector:
    matchLabels: {app: other}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers:
      - name: c
";

/// Reports every pod of `selector` Running and Ready, as a kubelet would.
fn make_ready(k: &Kubectl, selector: &str) {
    let names = k.ok(&["get", "pods", "-l", selector, "-o", "name"]);
    let status = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    for pod in names.lines() {
        // A pod may be gone by now.
        let _ = k.run_with_input(
            &["patch", pod, "--subresource=status", "--type=merge", "-p", status],
            None,
        );
    }
}

/// Readies pods until `kubectl rollout status --watch=false` reports success; returns it.
fn roll_out(k: &Kubectl, resource: &str, selector: &str, done: &str) -> String {
    let start = Instant::now();
    loop {
        make_ready(k, selector);
        let out = k.ok(&["rollout", "status", resource, "--watch=false"]);
        if out.contains(done) {
            return out;
        }
        assert!(start.elapsed() < DEADLINE, "{resource} never rolled out: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kubectl_1_33_workloads() {
    let server = Server::start();
    let k = Kubectl::new(33, &server);
    let manifest = k.file("web.yaml", WEB);
    assert_eq!(k.ok(&["apply", "-f", &manifest]), "deployment.apps/web created\n");
    wait_for("3 pods", || {
        k.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).lines().count() == 3
    });
    assert_eq!(
        k.ok(&["rollout", "status", "deployment/web", "--watch=false"]),
        "Waiting for deployment \"web\" rollout to finish: 0 of 3 updated replicas are available...\n"
    );
    assert_eq!(
        roll_out(&k, "deployment/web", "app=web", "successfully"),
        "deployment \"web\" successfully rolled out\n"
    );
    // The watching form too, as users run it.
    assert_eq!(
        k.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]),
        "deployment \"web\" successfully rolled out\n"
    );
    let columns = "custom-columns=DESIRED:.spec.replicas,READY:.status.readyReplicas,REV:.metadata.annotations.deployment\\.kubernetes\\.io/revision";
    let rs = k.ok(&["get", "rs", "-l", "app=web", "-o", columns, "--no-headers"]);
    assert_eq!(rs.split_whitespace().collect::<Vec<_>>(), ["3", "3", "1"]);
    let defaults = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.containers[0].imagePullPolicy}",
    ]);
    assert_eq!(defaults, "25% 10 600 Always");

    // The controllers' Events, as `kubectl describe` and `kubectl get events` show them.
    let rs_name = k.ok(&["get", "rs", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    let scaled = format!("Scaled up replica set {rs_name} from 0 to 3");
    wait_for("the ScalingReplicaSet event", || {
        k.ok(&["describe", "deployment", "web"]).contains(&scaled)
    });
    let describe = k.ok(&["describe", "deployment", "web"]);
    assert!(describe.contains("ScalingReplicaSet"), "{describe}");
    let reasons = k.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={rs_name}"),
        "-o",
        "jsonpath={range .items[*]}{.reason} {.source.component}{\"\\n\"}{end}",
    ]);
    assert_eq!(
        reasons
            .lines()
            .filter(|l| *l == "SuccessfulCreate replicaset-controller")
            .count(),
        3,
        "{reasons}"
    );

    // A new image rolls out through a second ReplicaSet; undo brings the first one back.
    assert_eq!(
        k.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]),
        "deployment.apps/web image updated\n"
    );
    roll_out(&k, "deployment/web", "app=web", "successfully");
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    assert_eq!(
        k.ok(&["rollout", "undo", "deployment/web"]),
        "deployment.apps/web rolled back\n"
    );
    roll_out(&k, "deployment/web", "app=web", "successfully");
    let image = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "nginx");
    let history = k.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains("\n2 ") && history.contains("\n3 "), "{history}");
    assert_eq!(
        k.ok(&["rollout", "restart", "deployment/web"]),
        "deployment.apps/web restarted\n"
    );
    roll_out(&k, "deployment/web", "app=web", "successfully");
    assert_eq!(k.ok(&["get", "rs", "-l", "app=web", "-o", "name"]).lines().count(), 3);
    assert_eq!(
        k.ok(&["rollout", "pause", "deployment/web"]),
        "deployment.apps/web paused\n"
    );
    wait_for("the paused condition", || {
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
        ]) == "DeploymentPaused"
    });
    k.ok(&["rollout", "resume", "deployment/web"]);

    assert_eq!(
        k.ok(&[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=80",
            "--type=NodePort"
        ]),
        "service/web exposed\n"
    );
    let selector = k.ok(&[
        "get",
        "service",
        "web",
        "-o",
        "jsonpath={.spec.selector.app} {.spec.type}",
    ]);
    assert_eq!(selector, "web NodePort");

    // A StatefulSet: db-0 then db-1, hostnames under the db Service.
    let manifest = k.file("db.yaml", DB);
    k.ok(&["apply", "-f", &manifest]);
    let done = roll_out(&k, "statefulset/db", "app=db", "complete");
    assert_eq!(done, "partitioned roll out complete: 2 new pods have been updated...\n");
    let pods = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=db",
        "-o",
        "custom-columns=NAME:.metadata.name,HOST:.spec.hostname,SUB:.spec.subdomain",
        "--no-headers",
    ]);
    let rows: Vec<Vec<&str>> = pods.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [["db-0", "db-0", "db"], ["db-1", "db-1", "db"]]);

    // Its history lives in ControllerRevisions: a new image is revision 2, undo makes the first
    // template revision 3 again.
    let revisions = k.ok(&["get", "controllerrevisions", "--no-headers"]);
    let row: Vec<&str> = revisions.split_whitespace().collect();
    assert_eq!(row[1..3], ["statefulset.apps/db", "1"], "{revisions}");
    let first = row[0].to_string();
    assert_eq!(
        k.ok(&["set", "image", "statefulset/db", "clickhouse=clickhouse:25"]),
        "statefulset.apps/db image updated\n"
    );
    roll_out(&k, "statefulset/db", "app=db", "complete");
    let history = k.ok(&["rollout", "history", "statefulset/db"]);
    let numbers: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(numbers, ["1", "2"], "{history}");
    assert_eq!(
        k.ok(&["rollout", "undo", "statefulset/db"]),
        "statefulset.apps/db rolled back\n"
    );
    roll_out(&k, "statefulset/db", "app=db", "complete");
    let image = k.ok(&[
        "get",
        "statefulset",
        "db",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "clickhouse:24");
    let numbered = k.ok(&[
        "get",
        "controllerrevisions",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.revision}{\"\\n\"}{end}",
    ]);
    assert!(numbered.lines().any(|l| l == format!("{first}=3")), "{numbered}");

    // Bad input.
    let manifest = k.file("bad.yaml", BAD);
    let err = k.fails(&["apply", "-f", &manifest]);
    assert!(err.contains("The Deployment \"bad\" is invalid: "), "{err}");
    assert!(
        err.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`"),
        "{err}"
    );
    assert!(
        err.contains("spec.template.spec.containers[0].image: Required value"),
        "{err}"
    );

    // `--cascade=orphan` deletes the StatefulSet and leaves its pods running, ownerless.
    let pods_before = k.ok(&["get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].metadata.uid}"]);
    assert_eq!(
        k.ok(&["delete", "statefulset", "db", "--cascade=orphan"]),
        "statefulset.apps \"db\" deleted\n"
    );
    wait_for("orphaned StatefulSet gone", || {
        k.ok(&["get", "statefulsets", "-o", "name"]).trim().is_empty()
    });
    let owners = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=db",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences}",
    ]);
    assert_eq!(owners, "", "orphaned pods have no owner");
    let pods_after = k.ok(&["get", "pods", "-l", "app=db", "-o", "jsonpath={.items[*].metadata.uid}"]);
    assert_eq!(pods_after, pods_before, "the same pods run on");

    // Deleting the owners deletes what they own.
    k.ok(&["delete", "deployment", "web"]);
    k.ok(&["delete", "pods", "-l", "app=db", "--wait=false"]);
    wait_for("owned objects gone", || {
        k.ok(&["get", "rs,pods", "-o", "name"]).trim().is_empty()
    });
}

/// A Ready node, as a kubelet registers it (with a zone label).
const NODE: &str = "
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels:
    kubernetes.io/hostname: node-1
    topology.kubernetes.io/zone: cn-hangzhou-h
status:
  conditions:
  - type: Ready
    status: 'True'
    reason: KubeletReady
    message: kubelet is posting ready status
";

/// `kubectl create deployment web --image=nginx --replicas=2 --port=80` and `kubectl expose
/// deployment web --port=80 --target-port=80` give the EndpointSlice and Endpoints a real cluster
/// (1.33) gives, field by field; only uids, resourceVersions, timestamps and generated names
/// differ, and those are checked for shape and then set aside.
#[test]
fn endpoints_of_an_exposed_deployment_match_a_real_cluster() {
    use serde_json::{json, Value};
    let server = Server::start();
    let k = Kubectl::new(33, &server);
    k.ok_with_input(&["apply", "-f", "-"], Some(NODE));
    // The node reports Ready through its status, as a kubelet does.
    let ready = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"}]}}"#;
    k.ok(&[
        "patch",
        "node",
        "node-1",
        "--subresource=status",
        "--type=merge",
        "-p",
        ready,
    ]);
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
        "--port=80",
    ]);
    k.ok(&["expose", "deployment", "web", "--port=80", "--target-port=80"]);
    wait_for("2 scheduled pods", || {
        k.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ]) == "node-1 node-1"
    });
    let names = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let pods: Vec<&str> = names.split_whitespace().collect();
    for (i, pod) in pods.iter().enumerate() {
        let status = json!({"status": {"phase": "Running", "podIP": format!("10.244.1.{}", 10 + i),
            "podIPs": [{"ip": format!("10.244.1.{}", 10 + i)}],
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}});
        k.ok(&[
            "patch",
            "pod",
            pod,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]);
    }
    wait_for("2 ready endpoints", || {
        k.ok(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}",
        ])
        .split_whitespace()
        .count()
            == 2
    });
    let uid_of = |pod: &str| k.ok(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"]);
    let service_uid = k.ok(&["get", "service", "web", "-o", "jsonpath={.metadata.uid}"]);

    // What a 1.33 cluster shows for `kubectl get endpointslices -l kubernetes.io/service-name=web -o json`.
    let endpoint = |i: usize| {
        json!({
            "addresses": [format!("10.244.1.{}", 10 + i)],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "name": pods[i], "namespace": "default", "uid": uid_of(pods[i])},
            "zone": "cn-hangzhou-h"
        })
    };
    let expected_slice = json!({
        "addressType": "IPv4",
        "apiVersion": "discovery.k8s.io/v1",
        "endpoints": [endpoint(0), endpoint(1)],
        "kind": "EndpointSlice",
        "metadata": {
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "<time>"},
            "creationTimestamp": "<time>",
            "generateName": "web-",
            "generation": "<n>",
            "labels": {
                "app": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": "web"
            },
            "name": "<generated>",
            "namespace": "default",
            "ownerReferences": [{"apiVersion": "v1", "blockOwnerDeletion": true, "controller": true,
                "kind": "Service", "name": "web", "uid": service_uid}],
            "resourceVersion": "<rv>",
            "uid": "<uid>"
        },
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}]
    });
    let slices: Value = serde_json::from_str(&k.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "json",
    ]))
    .unwrap();
    let items = slices["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{slices:#}");
    let mut slice = items[0].clone();
    assert!(slice["metadata"]["name"].as_str().unwrap().starts_with("web-"));
    set_aside_volatile(&mut slice);
    sort_by(&mut slice["endpoints"], |e| {
        e["addresses"][0].as_str().unwrap().to_string()
    });
    assert_eq!(slice, expected_slice, "got:\n{slice:#}\nexpected:\n{expected_slice:#}");

    // And for `kubectl get endpoints web -o json`.
    let address = |i: usize| {
        json!({"ip": format!("10.244.1.{}", 10 + i), "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "name": pods[i], "namespace": "default", "uid": uid_of(pods[i])}})
    };
    let expected_endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "<time>"},
            "creationTimestamp": "<time>",
            "labels": {"app": "web"},
            "name": "web",
            "namespace": "default",
            "resourceVersion": "<rv>",
            "uid": "<uid>"
        },
        "subsets": [{"addresses": [address(0), address(1)], "ports": [{"port": 80, "protocol": "TCP"}]}]
    });
    let mut endpoints: Value = serde_json::from_str(&k.ok(&["get", "endpoints", "web", "-o", "json"])).unwrap();
    set_aside_volatile(&mut endpoints);
    sort_by(&mut endpoints["subsets"][0]["addresses"], |a| {
        a["ip"].as_str().unwrap().to_string()
    });
    assert_eq!(
        endpoints, expected_endpoints,
        "got:\n{endpoints:#}\nexpected:\n{expected_endpoints:#}"
    );
}

/// Checks the shape of the values that differ from cluster to cluster and replaces them with
/// placeholders.
fn set_aside_volatile(object: &mut serde_json::Value) {
    let meta = object["metadata"].as_object_mut().unwrap();
    let is_time = |v: &serde_json::Value| v.as_str().is_some_and(|t| t.len() == 20 && t.ends_with('Z'));
    for (field, placeholder) in [
        ("creationTimestamp", "<time>"),
        ("resourceVersion", "<rv>"),
        ("uid", "<uid>"),
    ] {
        let value = meta.get(field).unwrap_or_else(|| panic!("metadata.{field} missing"));
        assert!(field != "creationTimestamp" || is_time(value), "{field}: {value}");
        meta.insert(field.into(), placeholder.into());
    }
    if meta.contains_key("generateName") {
        meta.insert("name".into(), "<generated>".into());
    }
    if let Some(generation) = meta.get_mut("generation") {
        assert!(generation.as_i64().is_some_and(|g| g >= 1), "generation {generation}");
        *generation = "<n>".into();
    }
    let trigger = &mut meta["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"];
    assert!(
        trigger.as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "trigger time {trigger}"
    );
    *trigger = "<time>".into();
}

fn sort_by(list: &mut serde_json::Value, key: impl Fn(&serde_json::Value) -> String) {
    if let Some(items) = list.as_array_mut() {
        items.sort_by_key(|item| key(item));
    }
}
