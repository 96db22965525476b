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
