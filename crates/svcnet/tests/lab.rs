//! End-to-end tests of the lab (`svcnet up` / `svcnet down`), as root: the topology, traffic
//! safety, and that nothing is left behind. Each test has its own lab name, data dir and port,
//! so they run in parallel; a guard runs `svcnet down` even when a test fails.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use svcnet_lab::plan::{ipv4_cidr_contains, LAB_CIDRS};

const SVCNET: &str = env!("CARGO_BIN_EXE_svcnet");

/// A running `svcnet up`; dropping it stops the lab and runs `svcnet down`.
struct Lab {
    child: Child,
    prefix: String,
    port: u16,
    data_dir: tempfile::TempDir,
    output: mpsc::Receiver<String>,
}

impl Lab {
    /// `svcnet up --name <tag + pid> ...` and wait for its "ready" line.
    fn up(tag: &str, args: &[&str]) -> Lab {
        let prefix = format!("t{tag}{:x}", std::process::id() % 0xffff);
        let data_dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(SVCNET)
            .arg("up")
            .args(["--name", &prefix, "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(args)
            // Conflicts retried by the controllers are normal; only errors matter here.
            .env("SVCNET_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start svcnet up");
        let (sender, output) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[up] {line}");
                let _ = sender.send(line);
            }
        });
        let lab = Lab {
            child,
            prefix,
            port,
            data_dir,
            output,
        };
        lab.wait_for_line(" ready in ", Duration::from_secs(60));
        lab
    }

    fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("svcnet up printed no {needle:?} within {timeout:?}"),
            }
        }
    }

    fn ns(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.data_dir.path().join("lab.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn metric(&self) -> u64 {
        self.state()["route_metric"].as_u64().unwrap()
    }

    /// `svcnet down`, then waits for `svcnet up` to have exited.
    fn down(&mut self) {
        down(self.data_dir.path());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "svcnet up still running after svcnet down");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        common::svcnet_down(self.data_dir.path());
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn down(data_dir: &Path) {
    let output = Command::new(SVCNET)
        .arg("down")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "svcnet down: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

fn ip_in(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    let output = run("ip", &all);
    assert!(
        output.status.success(),
        "ip {all:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// One ping from inside `ns`; true when answered.
fn ping(ns: &str, address: &str) -> bool {
    run("ip", &["netns", "exec", ns, "ping", "-c1", "-W2", "-q", address])
        .status
        .success()
}

fn curl_in(ns: &str, url: &str) -> String {
    let output = run("ip", &["netns", "exec", ns, "curl", "-sSf", "--max-time", "5", url]);
    if !output.status.success() {
        // Say where the packets would go: the routes of this namespace and of every node.
        let prefix = ns.split('-').next().unwrap_or_default();
        let mut routes = format!(
            "{ns}:\n{}",
            String::from_utf8_lossy(&run("ip", &["-n", ns, "route"]).stdout)
        );
        for node in lab_netns(prefix).iter().filter(|n| n.contains("-node")) {
            routes += &format!(
                "{node}:\n{}",
                String::from_utf8_lossy(&run("ip", &["-n", node, "route"]).stdout)
            );
        }
        panic!(
            "curl {url} in {ns}: {} {}\n{routes}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).unwrap()
}

fn curl(args: &[&str]) -> String {
    let mut all = vec!["-sf", "--max-time", "5"];
    all.extend_from_slice(args);
    let output = run("curl", &all);
    assert!(output.status.success(), "curl {args:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn host_unreachable_routes(metric: u64) -> Vec<String> {
    let text = String::from_utf8(run("ip", &["-4", "route", "show", "type", "unreachable"]).stdout).unwrap();
    text.lines()
        .filter(|l| l.contains(&format!(" metric {metric}")))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

fn lab_netns(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| n.starts_with(&format!("{prefix}-")));
    names
}

/// Nothing of the lab is left: namespaces, /etc/netns dirs, host routes, state.
fn assert_nothing_left(prefix: &str, data_dir: &Path, metric: u64) {
    assert_eq!(lab_netns(prefix), Vec::<String>::new(), "namespaces left");
    let etc: Vec<String> = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !etc.iter().any(|n| n.starts_with(&format!("{prefix}-"))),
        "/etc/netns left: {etc:?}"
    );
    assert_eq!(
        host_unreachable_routes(metric),
        Vec::<String>::new(),
        "host routes left"
    );
    assert!(!data_dir.join("lab.json").exists(), "lab.json left");
    // Links: the lab never had any on the host, and none points into a lab namespace.
    let links = String::from_utf8(run("ip", &["-o", "link", "show"]).stdout).unwrap();
    assert!(
        !links.contains(&format!("{prefix}-")),
        "host links into the lab: {links}"
    );
    let tables = String::from_utf8(run("nft", &["list", "tables"]).stdout).unwrap();
    assert!(!tables.contains(prefix), "host nft tables of the lab: {tables}");
}

/// Every route of every lab namespace stays in the lab's ranges; none is a default route.
fn assert_routes_stay_inside(lab: &Lab, namespaces: &[String]) {
    for ns in namespaces {
        for line in ip_in(ns, &["-4", "route", "show"]).lines() {
            let destination = line.split_whitespace().next().unwrap();
            let cidr = if destination.contains('/') {
                destination.to_string()
            } else {
                format!("{destination}/32")
            };
            assert!(
                LAB_CIDRS.iter().any(|lab| ipv4_cidr_contains(lab, &cidr)),
                "{ns} of {} routes outside the lab: {line}",
                lab.prefix
            );
        }
    }
}

#[test]
fn flannel_topology_is_connected_safe_and_removed_by_down() {
    let mut lab = Lab::up("f", &["--nodes", "3", "--cni", "flannel", "--no-agents"]);
    let namespaces: Vec<String> = ["vpc", "node1", "node2", "node3", "slb", "client"]
        .iter()
        .map(|n| lab.ns(n))
        .collect();
    let mut present = lab_netns(&lab.prefix);
    present.sort();
    let mut expected = namespaces.clone();
    expected.sort();
    assert_eq!(present, expected);

    // Nodes reach each other and the router over the VPC; the client reaches the SLB and,
    // through it, the nodes.
    assert!(ping(&lab.ns("node1"), "192.168.77.13"));
    assert!(ping(&lab.ns("node3"), "192.168.77.1"));
    assert!(ping(&lab.ns("client"), "203.0.113.1"));
    assert!(ping(&lab.ns("client"), "192.168.77.12"));
    assert!(ping(&lab.ns("node2"), "203.0.113.100"));

    // The API server answers inside the lab on the router's address, and advertises it.
    let version = curl_in(&lab.ns("node2"), "http://192.168.77.1:6443/version");
    assert!(version.contains("gitVersion"), "{version}");
    let endpoints = curl(&[&lab.url("/api/v1/namespaces/default/endpoints/kubernetes")]);
    assert!(endpoints.contains("192.168.77.1"), "{endpoints}");

    // Safety: host unreachable routes for every lab range; no lab route leaves the lab.
    let metric = lab.metric();
    let mut routes = host_unreachable_routes(metric);
    routes.sort();
    let mut cidrs: Vec<String> = LAB_CIDRS.iter().map(|c| c.to_string()).collect();
    cidrs.sort();
    assert_eq!(routes, cidrs);
    assert_routes_stay_inside(&lab, &namespaces);
    let kubeconfig = std::fs::read_to_string(lab.data_dir.path().join("kubeconfig")).unwrap();
    assert!(kubeconfig.contains(&format!("server: http://127.0.0.1:{}", lab.port)));

    lab.down();
    assert_nothing_left(&lab.prefix, lab.data_dir.path(), metric);
    // Idempotent.
    down(lab.data_dir.path());
}

#[test]
fn down_after_kill_9_of_up_leaves_nothing() {
    let mut lab = Lab::up("k", &["--nodes", "2", "--cni", "terway-eniip", "--no-agents"]);
    let metric = lab.metric();
    // A process in a lab namespace (as a container would be) must go too.
    let sleeper = Command::new("ip")
        .args(["netns", "exec", &lab.ns("node1"), "sleep", "600"])
        .spawn()
        .unwrap();
    lab.child.kill().unwrap();
    lab.child.wait().unwrap();
    assert_eq!(lab_netns(&lab.prefix).len(), 5, "a killed svcnet up leaves its lab");
    down(lab.data_dir.path());
    assert_nothing_left(&lab.prefix, lab.data_dir.path(), metric);
    let pid = sleeper.id();
    let mut sleeper = sleeper;
    let status = sleeper.wait().unwrap();
    assert!(
        !status.success(),
        "process {pid} in a lab namespace survived svcnet down"
    );
    down(lab.data_dir.path());
}

#[test]
fn terway_router_routes_follow_the_node_objects() {
    let lab = Lab::up("w", &["--nodes", "2", "--cni", "terway-eniip", "--no-agents"]);
    assert_routes_stay_inside(&lab, &[lab.ns("node1"), lab.ns("slb"), lab.ns("client")]);
    // Play the agent: register node2 with its VPC address; node IPAM gives it a /24 of the pod
    // vSwitch, and the VPC router routes that to the node.
    let node = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"node2"},
        "status":{"addresses":[{"type":"InternalIP","address":"192.168.77.12"}]}}"#;
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        node,
        &lab.url("/api/v1/nodes"),
    ]);
    let router = lab.ns("vpc");
    let deadline = Instant::now() + Duration::from_secs(10);
    let route = loop {
        let routes = ip_in(&router, &["-4", "route", "show"]);
        if let Some(line) = routes.lines().find(|l| l.contains("via 192.168.77.12")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no VPC route to node2: {routes}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(route.starts_with("192.168.8"), "{route}");
    curl(&["-X", "DELETE", &lab.url("/api/v1/nodes/node2")]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ip_in(&router, &["-4", "route", "show"]).contains("via 192.168.77.12") {
        assert!(Instant::now() < deadline, "VPC route to a deleted node stays");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_labs_side_by_side_own_their_routes() {
    let mut a = Lab::up("a", &["--nodes", "1", "--no-agents"]);
    let b = Lab::up("b", &["--nodes", "1", "--cni", "flannel-vxlan", "--no-agents"]);
    // A third lab may not take b's name: it must fail without touching b.
    let other_dir = tempfile::tempdir().unwrap();
    let taken = Command::new(SVCNET)
        .args(["up", "--no-agents", "--nodes", "1", "--name", &b.prefix, "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(other_dir.path())
        .output()
        .unwrap();
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("is in use"));
    let (metric_a, metric_b) = (a.metric(), b.metric());
    assert_ne!(metric_a, metric_b);
    assert!(ping(&a.ns("node1"), "192.168.77.1"));
    assert!(ping(&b.ns("node1"), "192.168.77.1"));
    a.down();
    assert_nothing_left(&a.prefix, a.data_dir.path(), metric_a);
    assert_eq!(host_unreachable_routes(metric_b).len(), LAB_CIDRS.len());
    assert_eq!(lab_netns(&b.prefix).len(), 4, "vpc, node1, slb, client");
}

#[test]
fn up_without_root_says_so_in_one_line() {
    let output = run(
        "setpriv",
        &[
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            SVCNET,
            "up",
            "--data-dir",
            "/nonexistent",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
}

// ---- Pods (with the node agents) ----

/// A pod as the tests need it.
#[derive(Debug, Clone)]
struct PodInfo {
    name: String,
    uid: String,
    ip: String,
    node: String,
}

impl Lab {
    fn post(&self, path: &str, body: &serde_json::Value) {
        let body = body.to_string();
        curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            &self.url(path),
        ]);
    }

    fn get(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&curl(&[&self.url(path)])).unwrap()
    }

    /// An echo pod on `node` (no command: the agent runs `svcnet echo` on its ports).
    fn create_pod(&self, name: &str, node: &str, extra: serde_json::Value) {
        let mut container = serde_json::json!({"name": "echo", "image": "echo", "ports": [{"containerPort": 8080}]});
        if let (Some(container), Some(extra)) = (container.as_object_mut(), extra.as_object()) {
            container.extend(extra.clone());
        }
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [container], "terminationGracePeriodSeconds": 1},
        });
        self.post("/api/v1/namespaces/default/pods", &pod);
    }

    fn pod(&self, name: &str) -> serde_json::Value {
        self.get(&format!("/api/v1/namespaces/default/pods/{name}"))
    }

    /// Waits until every pod is Ready with an IP.
    fn wait_ready(&self, names: &[&str]) -> Vec<PodInfo> {
        names.iter().map(|name| self.wait_pod(name, true)).collect()
    }

    fn wait_pod(&self, name: &str, ready: bool) -> PodInfo {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pod = self.pod(name);
            if is_ready(&pod) == ready && pod["status"]["podIP"].is_string() {
                return PodInfo {
                    name: name.to_string(),
                    uid: pod["metadata"]["uid"].as_str().unwrap().to_string(),
                    ip: pod["status"]["podIP"].as_str().unwrap().to_string(),
                    node: pod["spec"]["nodeName"].as_str().unwrap().to_string(),
                };
            }
            assert!(Instant::now() < deadline, "pod {name} not ready={ready}: {pod}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pod_ns(&self, pod: &PodInfo) -> String {
        svcnet_node::pod_netns(&self.prefix, &pod.uid)
    }

    fn node_ready(&self, node: &str) -> bool {
        is_ready(&self.get(&format!("/api/v1/nodes/{node}")))
    }

    fn agent_pid(&self, node: &str) -> u32 {
        let state = self.state();
        let agents = state["agents"].as_array().unwrap();
        let agent = agents.iter().find(|a| a["node"] == node).unwrap();
        agent["pid"].as_u64().unwrap() as u32
    }
}

fn is_ready(object: &serde_json::Value) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The echo answer of `GET http://<ip>:8080/` from inside `ns`.
fn echo_from(ns: &str, ip: &str) -> serde_json::Value {
    serde_json::from_str(&curl_in(ns, &format!("http://{ip}:8080/"))).unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const NODE_IPS: [&str; 3] = ["192.168.77.11", "192.168.77.12", "192.168.77.13"];

/// Pod -> pod (every ordered pair, the client address unchanged), pod -> node and node -> pod.
fn assert_connectivity_matrix(lab: &Lab, pods: &[PodInfo]) {
    for from in pods {
        let ns = lab.pod_ns(from);
        for to in pods.iter().filter(|p| p.name != from.name) {
            let answer = echo_from(&ns, &to.ip);
            assert_eq!(
                answer["pod"],
                to.name.as_str(),
                "{} -> {}: {answer}",
                from.name,
                to.name
            );
            assert_eq!(
                answer["clientIP"],
                from.ip.as_str(),
                "{} -> {}: {answer}",
                from.name,
                to.name
            );
        }
        for node_ip in NODE_IPS {
            assert!(ping(&ns, node_ip), "{} ({}) -> node {node_ip}", from.name, from.node);
        }
    }
    for (i, node_ip) in NODE_IPS.iter().enumerate() {
        let node_ns = lab.ns(&format!("node{}", i + 1));
        for to in pods {
            let answer = echo_from(&node_ns, &to.ip);
            assert_eq!(
                answer["pod"],
                to.name.as_str(),
                "node {node_ip} -> {}: {answer}",
                to.name
            );
        }
    }
}

/// No process mentions the lab's data dir any more (agents, shims), nothing is in its
/// namespaces, and the namespaces, routes and files are gone.
fn assert_all_gone(lab: &Lab, metric: u64) {
    assert_nothing_left(&lab.prefix, lab.data_dir.path(), metric);
    let dir = lab.data_dir.path().to_string_lossy().into_owned();
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&dir) && !cmdline.contains(" down ") {
                left.push(cmdline);
            }
        }
    }
    assert!(left.is_empty(), "processes left: {left:?}");
}

#[test]
fn flannel_pods_connect_probe_and_survive_agent_restarts() {
    let mut lab = Lab::up(
        "p",
        &[
            "--nodes",
            "3",
            "--cni",
            "flannel",
            "--node-monitor-grace-period",
            "4",
            "--zones",
            "za,zb",
        ],
    );
    let zone = |node: &str| {
        lab.get(&format!("/api/v1/nodes/{node}"))["metadata"]["labels"]["topology.kubernetes.io/zone"].clone()
    };
    assert_eq!(
        (zone("node1"), zone("node2"), zone("node3")),
        ("za".into(), "zb".into(), "za".into())
    );
    let metric = lab.metric();
    lab.create_pod("a1", "node1", serde_json::json!({}));
    lab.create_pod("a2", "node1", serde_json::json!({}));
    lab.create_pod("b", "node2", serde_json::json!({}));
    lab.create_pod("c", "node3", serde_json::json!({}));
    let pods = lab.wait_ready(&["a1", "a2", "b", "c"]);
    assert_connectivity_matrix(&lab, &pods);
    for pod in &pods {
        assert!(
            ipv4_cidr_contains("10.244.0.0/16", &format!("{}/32", pod.ip)),
            "{pod:?}"
        );
    }

    // Readiness: an exec probe on a file the test owns; the EndpointSlice follows the pod.
    let flag = lab.data_dir.path().join("probe-ok");
    std::fs::write(&flag, "").unwrap();
    let probe = serde_json::json!({"readinessProbe": {
        "exec": {"command": ["test", "-e", flag.to_str().unwrap()]},
        "periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1}});
    lab.create_pod("probed", "node2", probe);
    lab.post(
        "/api/v1/namespaces/default/services",
        &serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probed"},
            "spec": {"selector": {"app": "probed"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
    );
    lab.wait_pod("probed", true);
    let slice_ready = |lab: &Lab| -> Option<bool> {
        let slices = lab.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io/service-name%3Dprobed");
        let endpoint = slices["items"]
            .as_array()?
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .next()?;
        endpoint["conditions"]["ready"].as_bool()
    };
    wait_until("slice endpoint ready", Duration::from_secs(10), || {
        slice_ready(&lab) == Some(true)
    });
    std::fs::remove_file(&flag).unwrap();
    lab.wait_pod("probed", false);
    wait_until("slice endpoint not ready", Duration::from_secs(10), || {
        slice_ready(&lab) == Some(false)
    });
    std::fs::write(&flag, "").unwrap();
    lab.wait_pod("probed", true);
    wait_until("slice endpoint ready again", Duration::from_secs(10), || {
        slice_ready(&lab) == Some(true)
    });

    // kill -9 of an agent: svcnet up restarts it, the pods keep running (same container
    // process, no restart) and keep answering.
    let a1 = &pods[0];
    let pid_file = lab
        .data_dir
        .path()
        .join(format!("nodes/node1/pods/{}/echo.pid", a1.uid));
    let container_pid = std::fs::read_to_string(&pid_file).unwrap();
    let old_agent = lab.agent_pid("node1");
    run("kill", &["-9", &old_agent.to_string()]);
    wait_until("agent restarted", Duration::from_secs(10), || {
        lab.agent_pid("node1") != old_agent
    });
    assert_eq!(echo_from(&lab.ns("node2"), &a1.ip)["pod"], "a1");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), container_pid);
    assert_eq!(lab.pod("a1")["status"]["containerStatuses"][0]["restartCount"], 0);
    // Ready throughout, unless the restart outlasted the lease; then Ready again shortly.
    wait_until("a1 Ready after the agent restart", Duration::from_secs(10), || {
        is_ready(&lab.pod("a1"))
    });
    assert!(lab.node_ready("node1"));

    // A stopped agent no longer renews its lease: NotReady after the grace period, Ready
    // again when it goes on.
    let agent = lab.agent_pid("node3").to_string();
    run("kill", &["-STOP", &agent]);
    wait_until("node3 NotReady", Duration::from_secs(15), || !lab.node_ready("node3"));
    run("kill", &["-CONT", &agent]);
    wait_until("node3 Ready again", Duration::from_secs(15), || lab.node_ready("node3"));
    // The node lifecycle controller marked its pod NotReady; the agent writes Ready back.
    wait_until("pod c Ready again", Duration::from_secs(15), || is_ready(&lab.pod("c")));

    lab.down();
    assert_all_gone(&lab, metric);
}

/// A 3-node lab in `cni` mode with a pod on every node, all connected.
fn pods_connect_in(tag: &str, cni: &str, pod_range: &str) -> (Lab, Vec<PodInfo>) {
    let lab = Lab::up(tag, &["--nodes", "3", "--cni", cni]);
    for i in 1..=3 {
        lab.create_pod(&format!("p{i}"), &format!("node{i}"), serde_json::json!({}));
    }
    let pods = lab.wait_ready(&["p1", "p2", "p3"]);
    for pod in &pods {
        assert!(ipv4_cidr_contains(pod_range, &format!("{}/32", pod.ip)), "{pod:?}");
    }
    // With the agents' pod routes in place, still nothing but the pods routes out of the lab.
    let hosts: Vec<String> = ["vpc", "node1", "node2", "node3", "slb", "client"]
        .iter()
        .map(|n| lab.ns(n))
        .collect();
    assert_routes_stay_inside(&lab, &hosts);
    assert_connectivity_matrix(&lab, &pods);
    (lab, pods)
}

/// The namespaces of the blank sandboxes the agents hold (recorded under
/// `nodes/<node>/pool/<id>`), once every agent has some.
fn pooled_namespaces(lab: &Lab) -> Vec<String> {
    let mut names = Vec::new();
    wait_until("pooled sandboxes on every node", Duration::from_secs(30), || {
        names.clear();
        let mut nodes_with_some = 0;
        for node in ["node1", "node2", "node3"] {
            let records = lab.data_dir.path().join("nodes").join(node).join("pool");
            let ids: Vec<String> = std::fs::read_dir(records)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            nodes_with_some += usize::from(!ids.is_empty());
            names.extend(ids.iter().map(|id| format!("{}-p-{id}", lab.prefix)));
        }
        nodes_with_some == 3
    });
    names
}

#[test]
fn flannel_vxlan_pods_connect_and_a_crashed_lab_is_removed() {
    let (mut lab, pods) = pods_connect_in("x", "flannel-vxlan", "10.244.0.0/16");
    let mtu = ip_in(&lab.pod_ns(&pods[0]), &["link", "show", "eth0"]);
    assert!(mtu.contains("mtu 1450"), "{mtu}");
    // Blank sandboxes the agents keep ready for the next pods carry pod-like names.
    let pooled = pooled_namespaces(&lab);
    assert!(!pooled.is_empty(), "no pooled sandboxes");
    // (A record is written just before its namespace is made.)
    assert!(
        pooled.iter().any(|ns| Path::new("/run/netns").join(ns).exists()),
        "{pooled:?}"
    );
    // A crash of svcnet up leaves agents, shims, pods and pooled sandboxes; svcnet down removes
    // them all.
    let metric = lab.metric();
    lab.child.kill().unwrap();
    lab.child.wait().unwrap();
    assert!(
        echo_from(&lab.ns("node1"), &pods[1].ip)["pod"] == "p2",
        "pods outlive svcnet up"
    );
    down(lab.data_dir.path());
    assert_all_gone(&lab, metric);
}

#[test]
fn terway_pods_connect_across_nodes_and_from_the_client() {
    let (mut lab, pods) = pods_connect_in("e", "terway-eniip", "192.168.80.0/20");
    // Pods are on the VPC: the internet client reaches them through the SLB host and the router.
    for pod in &pods {
        assert_eq!(echo_from(&lab.ns("client"), &pod.ip)["pod"], pod.name.as_str());
    }
    let metric = lab.metric();
    lab.down();
    assert_all_gone(&lab, metric);
}

#[test]
fn down_without_state_removes_namespaces_by_name_only() {
    let prefix = format!("tn{:x}", std::process::id() % 0xffff);
    let mine = [
        format!("{prefix}-vpc"),
        format!("{prefix}-node2"),
        format!("{prefix}-p-0123456789ab"),
    ];
    // Names that only look alike belong to someone else and stay.
    let others = [format!("{prefix}-p-xyz"), format!("{prefix}x-vpc")];
    for name in mine.iter().chain(&others) {
        assert!(run("ip", &["netns", "add", name]).status.success(), "{name}");
    }
    std::fs::create_dir_all(format!("/etc/netns/{}", mine[2])).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let output = Command::new(SVCNET)
        .args(["down", "--name", &prefix, "--data-dir"])
        .arg(data_dir.path())
        .output()
        .unwrap();
    let exists = |name: &String| Path::new("/run/netns").join(name).exists();
    let others_left: Vec<bool> = others.iter().map(exists).collect();
    let mine_left: Vec<bool> = mine.iter().map(exists).collect();
    for name in &others {
        run("ip", &["netns", "delete", name]);
    }
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(mine_left, [false; 3], "{mine:?}");
    assert_eq!(others_left, [true; 2], "{others:?}");
    assert!(!Path::new(&format!("/etc/netns/{}", mine[2])).exists());
}
