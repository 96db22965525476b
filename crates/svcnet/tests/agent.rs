//! The node agent against a real API server: node namespaces joined by a VPC bridge namespace,
//! one `svcnet agent` per node, pods as network namespaces with processes. Traffic stays on
//! loopback or inside the namespaces each test makes; everything is removed on drop, also when
//! an assertion fails.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{json, Value};
use svcnet_node::netns;

const DEADLINE: Duration = Duration::from_secs(60);

use common::is_root;

/// A small lab: a VPC namespace (bridge vpc0, router 192.168.77.1) and node namespaces on it,
/// an API server on loopback reachable from the VPC at 192.168.77.1:6443, one agent per node.
struct Lab {
    prefix: String,
    dir: tempfile::TempDir,
    server: Option<Child>,
    agents: Vec<(String, Option<Child>)>,
    nodes: Vec<String>,
    cni: &'static str,
    pub url: String,
    forward: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.agents {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for node in &self.nodes {
            svcnet_node::shim::kill_all(&self.node_dir(node));
        }
        // Shims live in the node namespaces and containers in the pod ones: whatever a dying
        // agent started after the pid files were read goes too (twice, for late starters).
        let ours = format!("{}-", self.prefix);
        for _ in 0..2 {
            for entry in std::fs::read_dir(netns::NETNS_DIR).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&ours) {
                    netns::kill_all_in(&name);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if std::thread::panicking() {
            for node in &self.nodes {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{node}.log"))).unwrap_or_default();
                eprintln!("--- agent {node} ---\n{log}");
            }
        }
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        if let Some(forward) = self.forward.take() {
            forward.abort();
        }
        for entry in std::fs::read_dir(netns::NETNS_DIR).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&ours) {
                let _ = netns::delete(&name);
            }
        }
        for entry in std::fs::read_dir("/etc/netns").into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&ours) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node_ip(i: usize) -> String {
    format!("192.168.77.{}", 10 + i)
}

impl Lab {
    /// Builds the namespaces and starts the server and `n` agents in `cni` mode.
    async fn start(tag: &str, n: usize, cni: &'static str) -> Lab {
        let prefix = format!("t{tag}{}", std::process::id() % 100_000);
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut lab = Lab {
            prefix,
            dir,
            server: None,
            agents: Vec::new(),
            nodes: (1..=n).map(|i| format!("node{i}")).collect(),
            cni,
            url: format!("http://127.0.0.1:{port}"),
            forward: None,
        };
        lab.build_network();
        let cluster_cidr = if cni == "terway-eniip" {
            "192.168.80.0/20"
        } else {
            "10.244.0.0/16"
        };
        lab.server = Some(
            Command::new(env!("CARGO_BIN_EXE_svcnet"))
                .args([
                    "server",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--cluster-cidr",
                    cluster_cidr,
                ])
                .arg("--data-dir")
                .arg(lab.dir.path().join("server"))
                .env("SVCNET_LOG", "error")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        lab.forward = Some(forward_into(&lab.vpc(), "192.168.77.1:6443".parse().unwrap(), port));
        for i in 0..n {
            lab.start_agent(i);
        }
        let client = lab.client();
        eventually("nodes Ready", || {
            let client = client.clone();
            let want = lab.nodes.len();
            async move {
                let nodes = Api::<Node>::all(client).list(&Default::default()).await.ok()?;
                let ready = nodes.items.iter().filter(|n| node_ready(n)).count();
                (ready == want).then_some(())
            }
        })
        .await;
        if cni == "terway-eniip" {
            lab.route_pod_blocks_in_vpc().await;
        }
        lab
    }

    fn vpc(&self) -> String {
        format!("{}-vpc", self.prefix)
    }

    fn node_ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join("nodes").join(node)
    }

    fn build_network(&self) {
        let vpc = self.vpc();
        netns::add(&vpc).unwrap();
        netns::ip_batch(
            Some(&vpc),
            &[
                "link add vpc0 type bridge".into(),
                "link set vpc0 up".into(),
                "addr add 192.168.77.1/24 dev vpc0".into(),
            ],
        )
        .unwrap();
        netns::run_in(&vpc, || std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
            .unwrap()
            .unwrap();
        for (i, node) in self.nodes.iter().enumerate() {
            let ns = self.node_ns(node);
            netns::add(&ns).unwrap();
            netns::ip_batch(
                Some(&vpc),
                &[
                    format!("link add v-{node} type veth peer name eth0 netns {ns}"),
                    format!("link set v-{node} master vpc0 up"),
                ],
            )
            .unwrap();
            netns::ip_batch(
                Some(&ns),
                &[
                    format!("addr add {}/24 dev eth0", node_ip(i + 1)),
                    "link set eth0 up".into(),
                ],
            )
            .unwrap();
        }
    }

    fn start_agent(&mut self, i: usize) {
        let node = self.nodes[i].clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{node}.log")))
            .unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.node_ns(&node),
                env!("CARGO_BIN_EXE_svcnet"),
                "agent",
            ])
            .args([
                "--node",
                &node,
                "--server",
                "http://192.168.77.1:6443",
                "--node-ip",
                &node_ip(i + 1),
            ])
            .args([
                "--cni",
                self.cni,
                "--netns-prefix",
                &self.prefix,
                "--lease-duration-seconds",
                "8",
            ])
            .arg("--data-dir")
            .arg(self.node_dir(&node))
            .env(
                "SVCNET_LOG",
                std::env::var("SVCNET_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        match self.agents.iter_mut().find(|(n, _)| *n == node) {
            Some(slot) => slot.1 = Some(child),
            None => self.agents.push((node, Some(child))),
        }
    }

    /// kill -9 of a node's agent (its shims live on).
    fn kill_agent(&mut self, node: &str) {
        if let Some((_, Some(mut child))) = self
            .agents
            .iter_mut()
            .find(|(n, _)| n == node)
            .map(|(n, c)| (n, c.take()))
        {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn client(&self) -> kube::Client {
        svcnet_node::client_for(&self.url).unwrap()
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client(), "default")
    }

    /// The VPC route table of terway: each node's pod block via that node (what `svcnet up`
    /// keeps in the lab).
    async fn route_pod_blocks_in_vpc(&self) {
        let nodes = Api::<Node>::all(self.client()).list(&Default::default()).await.unwrap();
        let lines: Vec<String> = nodes
            .items
            .iter()
            .map(|n| {
                let name = n.metadata.name.clone().unwrap();
                let i: usize = name.trim_start_matches("node").parse().unwrap();
                let cidr = n.spec.as_ref().unwrap().pod_cidr.clone().unwrap();
                format!("route replace {cidr} via {}", node_ip(i))
            })
            .collect();
        netns::ip_batch(Some(&self.vpc()), &lines).unwrap();
    }

    async fn create_pod(&self, pod: Value) -> Pod {
        self.pods()
            .create(&PostParams::default(), &serde_json::from_value(pod).unwrap())
            .await
            .unwrap()
    }

    /// Waits until the pod is Running and Ready; returns it.
    async fn ready_pod(&self, name: &str) -> Pod {
        let pods = self.pods();
        eventually(&format!("pod {name} Ready"), || {
            let pods = pods.clone();
            let name = name.to_string();
            async move {
                let pod = pods.get(&name).await.ok()?;
                (pod_ready(&pod) == Some(true)).then_some(pod)
            }
        })
        .await
    }

    fn pod_netns(&self, pod: &Pod) -> String {
        svcnet_node::pod_netns(&self.prefix, pod.metadata.uid.as_deref().unwrap())
    }

    fn pod_dir(&self, pod: &Pod) -> PathBuf {
        let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
        self.node_dir(&node)
            .join("pods")
            .join(pod.metadata.uid.as_deref().unwrap())
    }
}

/// Forwards connections made to `listen` inside `ns` to the server on loopback.
fn forward_into(ns: &str, listen: SocketAddr, port: u16) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::from_std(netns::tcp_listener_in(ns, listen).unwrap()).unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_ready(pod: &Pod) -> Option<bool> {
    let status = pod.status.as_ref()?;
    let ready = status.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    Some(status.phase.as_deref() == Some("Running") && ready.status == "True" && status.pod_ip.is_some())
}

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().unwrap().pod_ip.clone().unwrap()
}

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn echo_pod(name: &str, node: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "echo"}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2, "containers": [{
            "name": "echo", "image": "echo",
            "ports": [{"containerPort": 8080}, {"containerPort": 5353, "protocol": "UDP"}],
        }]},
    })
}

/// Runs a command in a namespace and returns its stdout.
fn in_netns(ns: &str, args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?} in {ns}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An HTTP GET from inside `ns` (curl), parsed as the echo's JSON.
fn http_from(ns: &str, ip: &str, port: u16) -> Value {
    let out = in_netns(
        ns,
        &["curl", "-sS", "--max-time", "5", &format!("http://{ip}:{port}/hello")],
    );
    serde_json::from_str(out.trim()).unwrap()
}

/// One UDP datagram from inside `ns`, and the JSON answer.
fn udp_from(ns: &str, ip: &str, port: u16) -> Value {
    let target: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let answer = netns::run_in(ns, move || -> std::io::Result<Vec<u8>> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        socket.send_to(b"ping", target)?;
        let mut buf = vec![0u8; 4096];
        let (n, _) = socket.recv_from(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    })
    .unwrap()
    .unwrap();
    serde_json::from_slice(&answer).unwrap()
}

/// A raw (non-HTTP) TCP exchange from inside `ns`: the JSON line, then our bytes back.
fn raw_tcp_from(ns: &str, ip: &str, port: u16) -> (Value, String) {
    let target: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    netns::run_in(ns, move || {
        let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(b"hello\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut echoed = String::new();
        reader.read_line(&mut echoed).unwrap();
        (serde_json::from_str(line.trim()).unwrap(), echoed)
    })
    .unwrap()
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flannel_pods_run_talk_probe_survive_restart_and_go_away() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let mut lab = Lab::start("f", 2, "flannel").await;
    let marker = lab.dir.path().join("ready-marker");

    lab.create_pod(echo_pod("echo-a", "node1")).await;
    lab.create_pod(json!({
        "metadata": {"name": "client-b"},
        "spec": {"nodeName": "node2", "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": "busybox",
            "command": ["sh", "-c", "echo \"env $MY_POD $MY_NS $MY_IP $MY_NODE $POD_NAME\"; exec sleep 3600"],
            "env": [
                {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            ],
        }]},
    }))
    .await;
    lab.create_pod(json!({
        "metadata": {"name": "probed"},
        "spec": {"nodeName": "node1", "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": "busybox", "command": ["sleep", "3600"],
            "readinessProbe": {"exec": {"command": ["test", "-e", marker.to_str().unwrap()]},
                               "periodSeconds": 1, "failureThreshold": 1},
        }]},
    }))
    .await;

    let a = lab.ready_pod("echo-a").await;
    let b = lab.ready_pod("client-b").await;
    let (a_ip, b_ip) = (pod_ip(&a), pod_ip(&b));
    let node1 = Api::<Node>::all(lab.client()).get("node1").await.unwrap();
    let cidr = svcnet_node::ipam::Cidr::parse(node1.spec.unwrap().pod_cidr.as_deref().unwrap()).unwrap();
    assert!(cidr.contains(a_ip.parse().unwrap()), "{a_ip} not in node1's {cidr}");
    assert_eq!(a.status.as_ref().unwrap().host_ip.as_deref(), Some("192.168.77.11"));

    // Pod to pod across nodes (host-gw routes), HTTP, raw TCP and UDP.
    let b_ns = lab.pod_netns(&b);
    let http = http_from(&b_ns, &a_ip, 8080);
    assert_eq!(http["pod"], "echo-a");
    assert_eq!(http["node"], "node1");
    assert_eq!(http["podIP"], a_ip.as_str());
    assert_eq!(http["clientIP"], b_ip.as_str());
    assert_eq!(http["protocol"], "HTTP");
    assert_eq!(http["path"], "/hello");
    let (raw, echoed) = raw_tcp_from(&b_ns, &a_ip, 8080);
    assert_eq!(raw["protocol"], "TCP");
    assert_eq!(echoed, "hello\n");
    let udp = udp_from(&b_ns, &a_ip, 5353);
    assert_eq!(udp["protocol"], "UDP");
    assert_eq!(udp["pod"], "echo-a");
    // Node to pod across nodes.
    assert_eq!(
        http_from(&lab.node_ns("node2"), &a_ip, 8080)["clientIP"],
        "192.168.77.12"
    );

    // A pod reaches the VPC (here the API server at the router's address), which has no route
    // to pod CIDRs: flannel's ip-masq sends it with the node's address.
    let version = in_netns(
        &b_ns,
        &["curl", "-sS", "--max-time", "5", "http://192.168.77.1:6443/version"],
    );
    assert!(version.contains("gitVersion"), "{version}");

    // The echo's own output is captured too.
    assert!(read(&lab.pod_dir(&a).join("echo.log")).contains("serving 8080/tcp, 5353/udp"));

    // The pod's files and env.
    let resolv = read(&Path::new("/etc/netns").join(&b_ns).join("resolv.conf"));
    assert!(resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"));
    let log = read(&lab.pod_dir(&b).join("main.log"));
    assert!(
        log.contains(&format!("env client-b default {b_ip} node2 client-b")),
        "log: {log:?}"
    );
    let logs = Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args(["logs", "client-b", "--server", &lab.url])
        .arg("--data-dir")
        .arg(lab.dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&logs.stdout).contains("env client-b"));

    // svcnet exec runs in the pod's namespaces.
    let exec = Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args([
            "exec", "client-b", "--server", &lab.url, "--", "ip", "-4", "addr", "show", "eth0",
        ])
        .output()
        .unwrap();
    assert!(exec.status.success(), "{}", String::from_utf8_lossy(&exec.stderr));
    assert!(String::from_utf8_lossy(&exec.stdout).contains(&format!("inet {b_ip}/24")));
    let code = Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args(["exec", "client-b", "--server", &lab.url, "--", "sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(code.code(), Some(7));
    let on_node = Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args([
            "exec",
            "--node",
            "node1",
            "--prefix",
            &lab.prefix,
            "--",
            "ip",
            "-4",
            "addr",
            "show",
            "eth0",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&on_node.stdout).contains("inet 192.168.77.11/24"));

    // Readiness: fails until the marker exists, then flips back when it goes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let probed = lab.pods().get("probed").await.unwrap();
    assert_eq!(pod_ready(&probed), Some(false));
    std::fs::write(&marker, "").unwrap();
    lab.ready_pod("probed").await;
    std::fs::remove_file(&marker).unwrap();
    let pods = lab.pods();
    eventually("probed unready", || {
        let pods = pods.clone();
        async move { (pod_ready(&pods.get("probed").await.ok()?) == Some(false)).then_some(()) }
    })
    .await;

    // kill -9 of node1's agent and a restart: the container keeps running (same pid), Ready.
    let pid_file = lab.pod_dir(&a).join("echo.pid");
    let pid_before = read(&pid_file);
    lab.kill_agent("node1");
    lab.start_agent(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a_again = lab.ready_pod("echo-a").await;
    assert_eq!(read(&pid_file), pid_before);
    assert_eq!(pod_ip(&a_again), a_ip);
    assert_eq!(
        a_again.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0].restart_count,
        0
    );
    assert_eq!(http_from(&b_ns, &a_ip, 8080)["pod"], "echo-a");

    // Delete: the sandbox and the process go, then the pod object.
    let a_ns = lab.pod_netns(&a);
    let a_pid: i32 = pid_before.trim().parse().unwrap();
    lab.pods().delete("echo-a", &DeleteParams::default()).await.unwrap();
    eventually("echo-a released", || {
        let pods = pods.clone();
        async move { matches!(pods.get("echo-a").await, Err(kube::Error::Api(e)) if e.code == 404).then_some(()) }
    })
    .await;
    assert!(!netns::exists(&a_ns));
    assert!(!Path::new("/etc/netns").join(&a_ns).exists());
    assert!(!svcnet_node::shim::alive(a_pid));

    // A pod force-deleted while its agent is down: the restarted agent removes what is left.
    let b_pid: i32 = read(&lab.pod_dir(&b).join("main.pid")).trim().parse().unwrap();
    lab.kill_agent("node2");
    let force = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    lab.pods().delete("client-b", &force).await.unwrap();
    assert!(
        netns::exists(&b_ns),
        "nothing removes the sandbox while the agent is down"
    );
    lab.start_agent(1);
    eventually("client-b's sandbox removed by the restarted agent", || {
        let gone =
            !netns::exists(&b_ns) && !Path::new("/etc/netns").join(&b_ns).exists() && !svcnet_node::shim::alive(b_pid);
        async move { gone.then_some(()) }
    })
    .await;
}

/// Pods on two nodes reach each other and the other node in `cni` mode.
async fn cross_node(tag: &str, cni: &'static str) -> Lab {
    let lab = Lab::start(tag, 2, cni).await;
    lab.create_pod(echo_pod("echo-1", "node1")).await;
    lab.create_pod(echo_pod("echo-2", "node2")).await;
    let one = lab.ready_pod("echo-1").await;
    let two = lab.ready_pod("echo-2").await;
    let (one_ns, two_ns) = (lab.pod_netns(&one), lab.pod_netns(&two));
    let answer = http_from(&two_ns, &pod_ip(&one), 8080);
    assert_eq!(answer["pod"], "echo-1");
    assert_eq!(answer["clientIP"], pod_ip(&two).as_str());
    assert_eq!(http_from(&one_ns, &pod_ip(&two), 8080)["pod"], "echo-2");
    assert_eq!(udp_from(&one_ns, &pod_ip(&two), 5353)["node"], "node2");
    // Node to a pod on the other node: from its VPC address, or under VXLAN from its
    // flannel.1 address (the network address of its podCIDR), as flannel does.
    let node1 = Api::<Node>::all(lab.client()).get("node1").await.unwrap();
    let cidr = svcnet_node::ipam::Cidr::parse(node1.spec.unwrap().pod_cidr.as_deref().unwrap()).unwrap();
    let source = if cni == "flannel-vxlan" {
        cidr.addr.to_string()
    } else {
        "192.168.77.11".to_string()
    };
    assert_eq!(
        http_from(&lab.node_ns("node1"), &pod_ip(&two), 8080)["clientIP"],
        source.as_str()
    );
    let routes = in_netns(&lab.node_ns("node1"), &["ip", "route", "show"]);
    assert!(!routes.contains("default"), "a node has a default route: {routes}");
    assert!(routes.contains("203.0.113.0/24 via 192.168.77.1"), "{routes}");
    lab
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flannel_vxlan_pods_talk_across_nodes_over_flannel_1() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lab = cross_node("x", "flannel-vxlan").await;
    let node1 = lab.node_ns("node1");
    let link = in_netns(&node1, &["ip", "-d", "link", "show", "flannel.1"]);
    assert!(
        link.contains("mtu 1450") && link.contains("vxlan id 1") && link.contains("dstport 8472"),
        "{link}"
    );
    let two = lab.pods().get("echo-2").await.unwrap();
    let pod_link = in_netns(&lab.pod_netns(&two), &["ip", "link", "show", "eth0"]);
    assert!(pod_link.contains("mtu 1450"), "{pod_link}");
    let routes = in_netns(&node1, &["ip", "route", "show", "dev", "flannel.1"]);
    assert!(routes.contains("onlink"), "{routes}");
    // A large payload crosses the tunnel (MTU right, no silent drops).
    let one = lab.pods().get("echo-1").await.unwrap();
    let big = "x".repeat(20_000);
    let out = in_netns(
        &lab.pod_netns(&two),
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-d",
            &big,
            &format!("http://{}:8080/big", pod_ip(&one)),
        ],
    );
    assert!(out.contains("\"method\":\"POST\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terway_pods_take_vpc_addresses_and_talk_across_nodes() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lab = cross_node("w", "terway-eniip").await;
    let one = lab.pods().get("echo-1").await.unwrap();
    let ip: std::net::Ipv4Addr = pod_ip(&one).parse().unwrap();
    assert!(svcnet_node::ipam::Cidr::parse("192.168.80.0/20").unwrap().contains(ip));
    let addr = in_netns(&lab.pod_netns(&one), &["ip", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{ip}/32")), "{addr}");
    // The VPC router reaches the pod directly (what the SLB does with pod-direct backends).
    assert_eq!(http_from(&lab.vpc(), &ip.to_string(), 8080)["clientIP"], "192.168.77.1");
}

/// Pod create -> Ready for a batch of pods on one node, timed by a watch that runs while the
/// pods are created (the issue's goal is p99 < 200 ms at 100 pods per node on a release build;
/// this debug-build test only guards against regressions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pods_become_ready_quickly() {
    use futures::StreamExt;
    use kube::runtime::watcher;
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lab = Lab::start("m", 1, "flannel").await;
    let count: usize = std::env::var("SVCNET_TEST_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let pods = lab.pods();
    let ready_at = std::sync::Arc::new(std::sync::Mutex::new(
        std::collections::HashMap::<String, Instant>::new(),
    ));
    let recorder = {
        let ready_at = ready_at.clone();
        let stream = watcher::watcher(pods.clone(), watcher::Config::default());
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event {
                    if pod_ready(&pod) == Some(true) {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        ready_at.lock().unwrap().entry(name).or_insert_with(Instant::now);
                    }
                }
            }
        })
    };
    // Creates with 10 in flight, as `svcnet bench lab` sends them.
    let creates = (0..count).map(|i| {
        let pods = pods.clone();
        async move {
            let name = format!("p{i}");
            let started = Instant::now();
            let pod = serde_json::from_value(echo_pod(&name, "node1")).unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
            (name, started)
        }
    });
    let created: std::collections::HashMap<String, Instant> =
        futures::stream::iter(creates).buffer_unordered(10).collect().await;
    eventually("every pod Ready", || {
        let done = ready_at.lock().unwrap().len() == count;
        async move { done.then_some(()) }
    })
    .await;
    recorder.abort();
    let ready_at = ready_at.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = created.iter().map(|(name, at)| ready_at[name] - *at).collect();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    eprintln!("{count} pods: create -> Ready p50 {p50:?} p99 {p99:?}");
    if std::env::var("SVCNET_TEST_AGENT_LOG").is_ok() {
        eprintln!("{}", read(&lab.dir.path().join("node1.log")));
    }
    // Generous: debug binaries on a shared 2-core machine; a lost or stuck pod fails it.
    assert!(p99 < Duration::from_secs(15), "p99 {p99:?}");
    let ips: std::collections::HashSet<String> = pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(pod_ip)
        .collect();
    assert_eq!(ips.len(), count, "every pod has its own address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_restart_by_policy_and_on_liveness_failure() {
    if !is_root() {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    let lab = Lab::start("r", 1, "flannel").await;
    let marker = lab.dir.path().join("alive-marker");
    std::fs::write(&marker, "").unwrap();
    let pod = |name: &str, policy: &str, command: Value| {
        json!({"metadata": {"name": name}, "spec": {"nodeName": "node1", "restartPolicy": policy,
               "terminationGracePeriodSeconds": 1, "containers": [{"name": "main", "image": "busybox", "command": command}]}})
    };
    lab.create_pod(pod("crash", "Always", json!(["sh", "-c", "echo run; exit 3"])))
        .await;
    lab.create_pod(pod("once", "Never", json!(["sh", "-c", "exit 0"])))
        .await;
    lab.create_pod(pod("fails", "Never", json!(["sh", "-c", "exit 4"])))
        .await;
    let mut live = pod("live", "Always", json!(["sleep", "3600"]));
    live["spec"]["containers"][0]["livenessProbe"] = json!({
        "exec": {"command": ["test", "-e", marker.to_str().unwrap()]}, "periodSeconds": 1, "failureThreshold": 1});
    lab.create_pod(live).await;
    let mut host = pod(
        "host",
        "Always",
        json!(["sh", "-c", "ip -4 addr show eth0; exec sleep 3600"]),
    );
    host["spec"]["hostNetwork"] = json!(true);
    lab.create_pod(host).await;

    let pods = lab.pods();
    let status_of = |name: &'static str| {
        let pods = pods.clone();
        async move { pods.get(name).await.ok()?.status }
    };
    eventually("crash restarted twice", || async {
        let status = status_of("crash").await?;
        let restarts = status.container_statuses?.first()?.restart_count;
        (restarts >= 2 && status.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let crash = pods.get("crash").await.unwrap();
    assert!(read(&lab.pod_dir(&crash).join("main.log")).matches("run").count() >= 2);
    eventually("once Succeeded", || async {
        (status_of("once").await?.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    let failed = eventually("fails Failed", || async {
        let status = status_of("fails").await?;
        (status.phase.as_deref() == Some("Failed")).then_some(status)
    })
    .await;
    let state = failed.container_statuses.unwrap()[0].state.clone().unwrap();
    assert_eq!(state.terminated.unwrap().exit_code, 4);

    // hostNetwork: the node's address and namespace, no sandbox.
    let host = lab.ready_pod("host").await;
    assert_eq!(pod_ip(&host), "192.168.77.11");
    let host_log = lab.pod_dir(&host).join("main.log");
    eventually("the hostNetwork pod's output", || {
        let seen = read(&host_log).contains("inet 192.168.77.11/24");
        async move { seen.then_some(()) }
    })
    .await;
    assert!(!netns::exists(&lab.pod_netns(&host)));

    // Graceful deletion: one SIGTERM reaches the container, which exits well before its grace.
    let term_file = lab.dir.path().join("term");
    let trap = format!(
        "trap 'echo term >> {}; exit 0' TERM; while true; do sleep 0.1; done",
        term_file.display()
    );
    let mut graceful = pod("graceful", "Always", json!(["sh", "-c", trap]));
    graceful["spec"]["terminationGracePeriodSeconds"] = json!(20);
    lab.create_pod(graceful).await;
    lab.ready_pod("graceful").await;
    let asked = Instant::now();
    pods.delete("graceful", &DeleteParams::default()).await.unwrap();
    eventually("graceful released", || {
        let pods = pods.clone();
        async move { matches!(pods.get("graceful").await, Err(kube::Error::Api(e)) if e.code == 404).then_some(()) }
    })
    .await;
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "waited for the grace period: {:?}",
        asked.elapsed()
    );
    assert_eq!(read(&term_file), "term\n");

    lab.ready_pod("live").await;
    std::fs::remove_file(&marker).unwrap();
    eventually("live restarted by its liveness probe", || async {
        let restarts = status_of("live").await?.container_statuses?.first()?.restart_count;
        (restarts >= 1).then_some(())
    })
    .await;
}
