//! End-to-end tests of the lab (`svcnet up` / `svcnet down`), as root: the topology, traffic
//! safety, and that nothing is left behind. Each test has its own lab name, data dir and port,
//! so they run in parallel; a guard runs `svcnet down` even when a test fails.

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
            .env("SVCNET_LOG", "warn")
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
        let _ = Command::new(SVCNET)
            .arg("down")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .stdout(Stdio::null())
            .status();
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
    let output = run("ip", &["netns", "exec", ns, "curl", "-sf", "--max-time", "5", url]);
    assert!(output.status.success(), "curl {url} in {ns}");
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
