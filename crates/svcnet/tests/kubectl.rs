//! The real kubectl (1.27, 1.30 and 1.33) against `svcnet server`: every command a user runs on
//! Services, with the output a real cluster gives.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Kubectl, Server};

const NAMESPACE: &str = "
apiVersion: v1
kind: Namespace
metadata:
  name: shop
";

const WEB: &str = "
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
";

const WEB_CHANGED: &str = "
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels:
    app: web
    tier: frontend
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
  - name: metrics
    port: 9090
";

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn port_numbers(service: &serde_json::Value) -> Vec<i64> {
    service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect()
}

fn scenario(minor: u32) {
    let server = Server::start();
    let k = Kubectl::new(minor, &server);
    let ns = k.file("ns.yaml", NAMESPACE);
    let web = k.file("web.yaml", WEB);
    let changed = k.file("web-changed.yaml", WEB_CHANGED);

    // create, apply: first time, unchanged, changed, reverted.
    assert!(k.ok(&["create", "-f", &ns]).contains("namespace/shop created"));
    assert!(k.ok(&["apply", "-f", &web]).contains("service/web created"));
    assert!(k.ok(&["apply", "-f", &web]).contains("service/web unchanged"));
    assert!(k.ok(&["apply", "-f", &changed]).contains("service/web configured"));
    let live = json(&k.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"]));
    assert_eq!(port_numbers(&live), [80, 9090]);
    assert_eq!(live["metadata"]["labels"]["tier"], "frontend");
    assert!(k.ok(&["apply", "-f", &web]).contains("service/web configured"));
    let live = json(&k.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"]));
    assert_eq!(port_numbers(&live), [80]);
    assert!(live["metadata"]["labels"].get("tier").is_none());
    assert_eq!(live["spec"]["ports"][0]["targetPort"], 8080);

    // get: table, yaml, wide, -A, -l, --show-labels.
    let table = k.ok(&["get", "svc", "-n", "shop"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().starts_with("web "), "{table}");
    assert!(k
        .ok(&["get", "svc", "web", "-n", "shop", "-o", "yaml"])
        .contains("name: web"));
    assert!(k
        .ok(&["get", "svc", "-n", "shop", "-o", "wide"])
        .lines()
        .next()
        .unwrap()
        .ends_with("SELECTOR"));
    let all = k.ok(&["get", "svc", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(
        all.lines().any(|l| l.starts_with("shop ") && l.contains(" web ")),
        "{all}"
    );
    k.ok(&["create", "service", "clusterip", "other", "-n", "shop", "--tcp=81:81"]);
    let selected = k.ok(&["get", "svc", "-n", "shop", "-l", "app=web", "-o", "name"]);
    assert_eq!(selected.trim(), "service/web");
    let labels = k.ok(&["get", "svc", "web", "-n", "shop", "--show-labels"]);
    assert!(
        labels.lines().next().unwrap().ends_with("LABELS") && labels.contains("app=web"),
        "{labels}"
    );

    // get -w while another client changes objects.
    watch_sees_changes(&k);

    // describe.
    let described = k.ok(&["describe", "svc", "web", "-n", "shop"]);
    assert!(
        described.contains("Name:") && described.contains("Selector:") && described.contains("app=web"),
        "{described}"
    );

    // patch: strategic (merges ports by port), merge, json.
    assert!(k
        .ok(&[
            "patch",
            "svc",
            "web",
            "-n",
            "shop",
            "-p",
            r#"{"spec":{"ports":[{"port":443,"name":"https"}]}}"#
        ])
        .contains("patched"));
    let live = json(&k.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"]));
    assert_eq!(port_numbers(&live), [80, 443]);
    k.ok(&[
        "patch",
        "svc",
        "web",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"merged":"yes"}}}"#,
    ]);
    k.ok(&[
        "patch",
        "svc",
        "web",
        "-n",
        "shop",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/ports/1"}]"#,
    ]);
    let live = json(&k.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"]));
    assert_eq!(live["metadata"]["labels"]["merged"], "yes");
    assert_eq!(port_numbers(&live).len(), 1);
    assert!(k
        .ok(&[
            "patch",
            "svc",
            "web",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"merged":"yes"}}}"#
        ])
        .contains("patched (no change)"));

    // label, annotate.
    assert!(k
        .ok(&["label", "svc", "web", "-n", "shop", "env=prod"])
        .contains("labeled"));
    assert!(k
        .ok(&["annotate", "svc", "web", "-n", "shop", "owner=team-a"])
        .contains("service/web annotate"));
    assert!(k
        .ok(&["label", "svc", "web", "-n", "shop", "env-"])
        .contains("unlabeled"));
    let live = json(&k.ok(&["get", "svc", "web", "-n", "shop", "-o", "json"]));
    assert!(live["metadata"]["labels"].get("env").is_none());
    assert_eq!(live["metadata"]["annotations"]["owner"], "team-a");

    // replace, then a stale replace is a conflict.
    let current = k.ok(&["get", "svc", "web", "-n", "shop", "-o", "yaml"]);
    let edited = k.file("edited.yaml", &current.replace("owner: team-a", "owner: team-b"));
    assert!(k.ok(&["replace", "-f", &edited]).contains("service/web replaced"));
    let stale = k.fails(&["replace", "-f", &edited]);
    assert!(stale.contains("the object has been modified"), "{stale}");

    // diff: a change shows and exits 1; the live state itself exits 0.
    let diff = k.run_with_input(&["diff", "-f", &changed], None);
    assert_eq!(diff.status.code(), Some(1), "{}", String::from_utf8_lossy(&diff.stderr));
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+    port: 9090"));
    let unchanged = k.ok(&["get", "svc", "web", "-n", "shop", "-o", "yaml"]);
    let same = k.file("same.yaml", &unchanged);
    assert_eq!(k.run_with_input(&["diff", "-f", &same], None).status.code(), Some(0));

    // expose, create service of every type, create namespace, explain.
    assert!(k
        .ok(&[
            "expose",
            "svc",
            "web",
            "-n",
            "shop",
            "--name=web-exposed",
            "--port=8080"
        ])
        .contains("exposed"));
    let exposed = json(&k.ok(&["get", "svc", "web-exposed", "-n", "shop", "-o", "json"]));
    assert_eq!(exposed["spec"]["selector"]["app"], "web");
    for (kind, extra) in [
        ("clusterip", "--tcp=80:8080"),
        ("nodeport", "--tcp=80:8080"),
        ("loadbalancer", "--tcp=443:8443"),
        ("externalname", "--external-name=example.com"),
    ] {
        let name = format!("made-{kind}");
        assert!(k
            .ok(&["create", "service", kind, &name, "-n", "shop", extra])
            .contains(&format!("service/{name} created")));
    }
    let external = json(&k.ok(&["get", "svc", "made-externalname", "-n", "shop", "-o", "json"]));
    assert_eq!(external["spec"]["externalName"], "example.com");
    assert!(k
        .ok(&["create", "namespace", "extra"])
        .contains("namespace/extra created"));
    let explained = k.ok(&["explain", "service.spec.ports"]);
    assert!(
        explained.contains("targetPort") && explained.contains("nodePort"),
        "{explained}"
    );

    // delete: by name, -l, --all.
    assert!(k
        .ok(&["delete", "svc", "made-clusterip", "-n", "shop"])
        .contains("service \"made-clusterip\" deleted"));
    k.ok(&[
        "label",
        "svc",
        "made-nodeport",
        "made-loadbalancer",
        "-n",
        "shop",
        "doomed=yes",
    ]);
    let by_label = k.ok(&["delete", "svc", "-n", "shop", "-l", "doomed=yes"]);
    assert!(
        by_label.contains("made-nodeport") && by_label.contains("made-loadbalancer"),
        "{by_label}"
    );
    k.ok(&["delete", "svc", "--all", "-n", "shop"]);
    let empty = k.run_with_input(&["get", "svc", "-n", "shop"], None);
    assert!(String::from_utf8_lossy(&empty.stderr).contains("No resources found in shop namespace."));
    let missing = k.fails(&["get", "svc", "web", "-n", "shop"]);
    assert!(
        missing.contains("Error from server (NotFound): services \"web\" not found"),
        "{missing}"
    );

    bad_input(&k);

    // Deleting a namespace deletes what is in it; kubectl waits until it is gone.
    k.ok(&["create", "service", "clusterip", "leftover", "-n", "extra", "--tcp=80"]);
    assert!(k
        .ok(&["delete", "namespace", "extra"])
        .contains("namespace \"extra\" deleted"));
    let gone = k.fails(&["get", "namespace", "extra"]);
    assert!(gone.contains("NotFound"), "{gone}");
}

/// `kubectl get svc -w` prints a row for each change another client makes.
fn watch_sees_changes(k: &Kubectl) {
    let mut watcher = k
        .command(&["get", "svc", "-n", "shop", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the watch start (its initial list shows the existing services).
    std::thread::sleep(Duration::from_millis(1500));
    k.ok(&["create", "service", "clusterip", "watched", "-n", "shop", "--tcp=80"]);
    k.ok(&["label", "svc", "watched", "-n", "shop", "seen=yes"]);
    k.ok(&["delete", "svc", "watched", "-n", "shop"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stdout = watcher.stdout.take().unwrap();
    let output = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buffer);
            if text.lines().any(|l| l.starts_with("DELETED") && l.contains("watched")) {
                break;
            }
        }
        String::from_utf8_lossy(&buffer).into_owned()
    });
    while !output.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let text = output.join().unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("watched"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(events, ["ADDED", "MODIFIED", "DELETED"], "{text}");
}

#[test]
fn kubectl_1_27() {
    scenario(27);
}

#[test]
fn kubectl_1_30() {
    scenario(30);
}

#[test]
fn kubectl_1_33() {
    scenario(33);
}

/// Bad manifests get upstream's error lines and change nothing.
fn bad_input(k: &Kubectl) {
    let before = k.ok(&["get", "svc", "-A", "-o", "name"]);
    let typo = k.file(
        "typo.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: typo\nspec:\n  ports:\n  - port: 80\n    tragetPort: 8080\n",
    );
    let err = k.fails(&["create", "-f", &typo]);
    assert!(err.contains("unknown field") && err.contains("tragetPort"), "{err}");
    let bad_name = k.file(
        "bad-name.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: Bad_Name\nspec:\n  ports:\n  - port: 80\n",
    );
    let err = k.fails(&["create", "-f", &bad_name]);
    assert!(
        err.contains("The Service \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a DNS-1035 label must consist of lower case alphanumeric characters"),
        "{err}"
    );
    let malformed = k.file("malformed.yaml", "apiVersion: v1\nkind: Service\nmetadata: [\n");
    k.fails(&["apply", "-f", &malformed]);
    let err = k.fails(&["create", "service", "clusterip", "nowhere", "-n", "missing", "--tcp=80"]);
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");
    assert_eq!(k.ok(&["get", "svc", "-A", "-o", "name"]), before, "nothing was stored");
}
