//! End-to-end tests of the node proxy in a lab (`svcnet up`, agents running `svcnet-proxy`), as
//! root, once per CNI mode: Service types x traffic policies x clients in a pod, on a node and in
//! the internet namespace, checked against which backend answered and which client address it
//! saw (the seed's table: Cluster loses the client address when crossing nodes, Local keeps it
//! and uses only local backends). One lab per mode, many checks in it, so the whole file runs in
//! well under a minute per mode. Each lab has its own name, data dir and port; a guard runs
//! `svcnet down` also when a check fails.
//!
//! Pods: web-1a, web-1b on node1 and web-2a, web-2b on node2 (app=web, HTTP on 8080); one-1 on
//! node1 (app=one); udp-1 on node1 (app=udp, UDP 5353); cl on node2, the in-cluster client.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SVCNET: &str = env!("CARGO_BIN_EXE_svcnet");
const NODE1: &str = "192.168.77.11";
const NODE2: &str = "192.168.77.12";
const INTERNET_CLIENT: &str = "203.0.113.100";
const LB_VIP: &str = "203.0.113.50";
const LB_PROXY_MODE: &str = "203.0.113.51";

use common::is_root;

/// A running `svcnet up`; dropping it stops the lab and runs `svcnet down`.
struct Lab {
    child: Child,
    prefix: String,
    port: u16,
    data_dir: tempfile::TempDir,
}

impl Lab {
    fn up(tag: &str, cni: &str) -> Lab {
        let prefix = format!("x{tag}{:x}", std::process::id() % 0xffff);
        let data_dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(SVCNET)
            .args(["up", "--nodes", "2", "--cni", cni, "--name", &prefix])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir.path())
            .env("SVCNET_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start svcnet up");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let lab = Lab {
            child,
            prefix,
            port,
            data_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(" ready in ") => break,
                Ok(_) => {}
                Err(_) => panic!("svcnet up did not get ready"),
            }
        }
        lab
    }

    fn ns(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    fn api(&self, method: &str, path: &str, content_type: &str, body: &Value) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let body = body.to_string();
        let output = run(
            "curl",
            &[
                "-sS",
                "--max-time",
                "5",
                "-X",
                method,
                "-H",
                &format!("Content-Type: {content_type}"),
                "-d",
                &body,
                &url,
            ],
        );
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        serde_json::from_slice(&run("curl", &["-sS", "--max-time", "5", &url]).stdout).unwrap_or(Value::Null)
    }

    fn create(&self, path: &str, object: Value) -> Value {
        let created = self.api("POST", path, "application/json", &object);
        assert!(created["metadata"]["uid"].is_string(), "create {path}: {created}");
        created
    }

    fn pod(&self, name: &str, node: &str, app: &str, port: Value) {
        self.create(
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "labels": {"app": app}},
                   "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "echo", "image": "echo", "ports": [port]}]}}),
        );
    }

    /// Waits for the pods to be Ready; their IPs and namespaces.
    fn wait_pods(&self, names: &[&str]) -> Vec<Pod> {
        names
            .iter()
            .map(|name| {
                let mut pod = Value::Null;
                wait_until(&format!("pod {name} ready"), Duration::from_secs(60), || {
                    pod = self.get(&format!("/api/v1/namespaces/default/pods/{name}"));
                    let ready = pod["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                    ready && pod["status"]["podIP"].is_string()
                });
                Pod {
                    name: name.to_string(),
                    ip: pod["status"]["podIP"].as_str().unwrap().to_string(),
                    netns: svcnet_node::pod_netns(&self.prefix, pod["metadata"]["uid"].as_str().unwrap()),
                }
            })
            .collect()
    }

    /// Creates a Service selecting `app`; returns it as created (cluster IP, node ports).
    fn service(&self, name: &str, app: &str, spec: Value) -> Value {
        let mut full = json!({"selector": {"app": app},
                              "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]});
        if let (Some(full), Some(spec)) = (full.as_object_mut(), spec.as_object()) {
            full.extend(spec.clone());
        }
        self.create(
            "/api/v1/namespaces/default/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": full}),
        )
    }

    fn set_lb_status(&self, name: &str, ingress: Value) {
        let patched = self.api(
            "PATCH",
            &format!("/api/v1/namespaces/default/services/{name}/status"),
            "application/merge-patch+json",
            &json!({"status": {"loadBalancer": {"ingress": ingress}}}),
        );
        assert!(
            patched["status"]["loadBalancer"]["ingress"].is_array(),
            "status patch: {patched}"
        );
    }

    fn agent_pid(&self, node: &str) -> Option<u64> {
        let text = std::fs::read_to_string(self.data_dir.path().join("lab.json")).ok()?;
        let state: Value = serde_json::from_str(&text).ok()?;
        state["agents"].as_array()?.iter().find(|a| a["node"] == node)?["pid"].as_u64()
    }

    fn rules(&self, node: &str) -> String {
        let output = Command::new(SVCNET)
            .args(["proxy", "rules", "--node", node, "--data-dir"])
            .arg(self.data_dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "svcnet proxy rules: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        common::svcnet_down(self.data_dir.path());
    }
}

#[derive(Debug, Clone)]
struct Pod {
    name: String,
    ip: String,
    netns: String,
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What curl got from inside a namespace.
#[derive(Debug)]
enum Answer {
    /// The echo's JSON.
    Echo(Value),
    /// curl's exit code (7 refused, 28 timeout) and how long it took.
    Failed(i32, Duration),
}

fn curl_in(netns: &str, target: &str, timeout_secs: &str) -> Answer {
    let start = Instant::now();
    let output = run(
        "ip",
        &[
            "netns",
            "exec",
            netns,
            "curl",
            "-s",
            "--max-time",
            timeout_secs,
            &format!("http://{target}/"),
        ],
    );
    match serde_json::from_slice::<Value>(&output.stdout) {
        Ok(value) if output.status.success() => Answer::Echo(value),
        _ => Answer::Failed(output.status.code().unwrap_or(-1), start.elapsed()),
    }
}

/// `n` requests; (pod, client IP it saw) per answer.
fn ask(netns: &str, target: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| match curl_in(netns, target, "3") {
            Answer::Echo(v) => (
                v["pod"].as_str().unwrap().to_string(),
                v["clientIP"].as_str().unwrap().to_string(),
            ),
            Answer::Failed(code, _) => panic!("{target} from {netns}: curl exit {code}"),
        })
        .collect()
}

fn pods_of(answers: &[(String, String)]) -> BTreeSet<String> {
    answers.iter().map(|(pod, _)| pod.clone()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn cluster_ip(service: &Value) -> String {
    service["spec"]["clusterIP"].as_str().unwrap().to_string()
}

fn node_port(service: &Value) -> u64 {
    service["spec"]["ports"][0]["nodePort"].as_u64().unwrap()
}

fn services_end_to_end(tag: &str, cni: &str) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let started = Instant::now();
    let lab = Lab::up(tag, cni);
    let web = json!({"containerPort": 8080});
    for (name, node) in [
        ("web-1a", "node1"),
        ("web-1b", "node1"),
        ("web-2a", "node2"),
        ("web-2b", "node2"),
    ] {
        lab.pod(name, node, "web", web.clone());
    }
    lab.pod("one-1", "node1", "one", web.clone());
    lab.pod("cl", "node2", "client", web.clone());
    lab.pod(
        "udp-1",
        "node1",
        "udp",
        json!({"containerPort": 5353, "protocol": "UDP"}),
    );

    let rr = lab.service("rr", "web", json!({}));
    let np_cluster = lab.service(
        "np-cluster",
        "web",
        json!({"type": "NodePort", "externalTrafficPolicy": "Cluster"}),
    );
    let np_local = lab.service(
        "np-local",
        "web",
        json!({"type": "NodePort", "externalTrafficPolicy": "Local"}),
    );
    lab.service(
        "lb-local",
        "web",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local"}),
    );
    lab.set_lb_status(
        "lb-local",
        json!([{"ip": LB_VIP, "ipMode": "VIP"}, {"ip": LB_PROXY_MODE, "ipMode": "Proxy"}]),
    );
    let one = lab.service(
        "one",
        "one",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local"}),
    );
    let empty = lab.service("empty", "nothing", json!({"type": "NodePort"}));
    let sticky = lab.service(
        "sticky",
        "web",
        json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
    );
    let expiring = lab.service(
        "expiring",
        "web",
        json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 1}}}),
    );
    let udp = lab.service(
        "udp",
        "udp",
        json!({"ports": [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]}),
    );
    let pods = lab.wait_pods(&["web-1a", "web-1b", "web-2a", "web-2b", "one-1", "cl", "udp-1"]);
    let cl = pods.iter().find(|p| p.name == "cl").unwrap().clone();
    let node1 = lab.ns("node1");
    let node2 = lab.ns("node2");
    let client = lab.ns("client");
    let rr_ip = cluster_ip(&rr);
    wait_until("the proxy programs every endpoint", Duration::from_secs(30), || {
        let rules = lab.rules("node2");
        pods.iter()
            .filter(|p| p.name.starts_with("web-"))
            .all(|p| rules.contains(&p.ip))
    });
    let all_web = set(&["web-1a", "web-1b", "web-2a", "web-2b"]);
    println!("[{cni}] lab and pods ready after {:?}", started.elapsed());

    // ClusterIP from a pod: exact round robin over the 4 backends, the pod's address kept.
    let answers = ask(&cl.netns, &format!("{rr_ip}:80"), 8);
    let order: Vec<&String> = answers.iter().map(|(pod, _)| pod).collect();
    assert_eq!(order[..4], order[4..], "round robin order repeats: {order:?}");
    assert_eq!(pods_of(&answers), all_web);
    assert!(answers.iter().all(|(_, client)| *client == cl.ip), "{answers:?}");
    // ... and from a node: every backend.
    assert_eq!(pods_of(&ask(&node1, &format!("{rr_ip}:80"), 4)), all_web);

    // The cluster DNS (kube-system/kube-dns at 10.96.0.10, through these same rules): the pod
    // finds the Service by its short and longer names through its resolv.conf search path.
    wait_until("the cluster DNS answers", Duration::from_secs(30), || {
        matches!(curl_in(&cl.netns, "rr:80", "2"), Answer::Echo(_))
    });
    for name in ["rr", "rr.default", "rr.default.svc", "rr.default.svc.cluster.local"] {
        match curl_in(&cl.netns, &format!("{name}:80"), "5") {
            Answer::Echo(echo) => assert!(all_web.contains(echo["pod"].as_str().unwrap_or("")), "{name}: {echo}"),
            Answer::Failed(code, took) => panic!("{name}: curl exit {code} after {took:?}"),
        }
    }

    // NodePort, policy Cluster, from the internet: every backend, the client address lost.
    let answers = ask(&client, &format!("{NODE1}:{}", node_port(&np_cluster)), 4);
    assert_eq!(pods_of(&answers), all_web);
    assert!(answers.iter().all(|(_, c)| c != INTERNET_CLIENT), "{answers:?}");

    // NodePort, policy Local, from the internet: only that node's backends, client address kept.
    let local_port = node_port(&np_local);
    let answers = ask(&client, &format!("{NODE1}:{local_port}"), 4);
    assert_eq!(pods_of(&answers), set(&["web-1a", "web-1b"]));
    assert!(answers.iter().all(|(_, c)| c == INTERNET_CLIENT), "{answers:?}");
    let answers = ask(&client, &format!("{NODE2}:{local_port}"), 4);
    assert_eq!(pods_of(&answers), set(&["web-2a", "web-2b"]));
    assert!(answers.iter().all(|(_, c)| c == INTERNET_CLIENT), "{answers:?}");
    // ... from a pod to its own node: short-circuited to every backend, unmasqueraded.
    let answers = ask(&cl.netns, &format!("{NODE2}:{local_port}"), 4);
    assert_eq!(pods_of(&answers), all_web);
    assert!(answers.iter().all(|(_, c)| *c == cl.ip), "{answers:?}");
    // ... from the node itself: every backend (masqueraded).
    assert_eq!(pods_of(&ask(&node2, &format!("{NODE2}:{local_port}"), 4)), all_web);

    // LoadBalancer VIP (ipMode VIP) short-circuited in the cluster; ipMode Proxy left alone.
    let answers = ask(&cl.netns, &format!("{LB_VIP}:80"), 4);
    assert_eq!(pods_of(&answers), all_web);
    assert!(answers.iter().all(|(_, c)| *c == cl.ip), "{answers:?}");
    assert_eq!(pods_of(&ask(&node1, &format!("{LB_VIP}:80"), 4)), all_web);
    assert!(matches!(
        curl_in(&cl.netns, &format!("{LB_PROXY_MODE}:80"), "1"),
        Answer::Failed(..)
    ));
    assert!(!lab.rules("node1").contains(LB_PROXY_MODE));

    // LoadBalancer + Local with one backend on node1: health checks and DROP on node2.
    let hc = one["spec"]["healthCheckNodePort"]
        .as_u64()
        .expect("healthCheckNodePort");
    let health = |node: &str| {
        let output = run(
            "ip",
            &[
                "netns",
                "exec",
                &client,
                "curl",
                "-s",
                "-w",
                "\n%{http_code}",
                "--max-time",
                "3",
                &format!("http://{node}:{hc}/"),
            ],
        );
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or_default();
        (
            code.to_string(),
            serde_json::from_str::<Value>(body).unwrap_or(Value::Null),
        )
    };
    let (code, body) = health(NODE1);
    assert_eq!((code.as_str(), &body["localEndpoints"]), ("200", &json!(1)), "{body}");
    assert_eq!(body["service"], json!({"namespace": "default", "name": "one"}));
    let (code, body) = health(NODE2);
    assert_eq!((code.as_str(), &body["localEndpoints"]), ("503", &json!(0)), "{body}");
    match curl_in(&client, &format!("{NODE2}:{}", node_port(&one)), "1") {
        Answer::Failed(28, _) => {}
        other => panic!("Local without local endpoints must drop (time out): {other:?}"),
    }
    assert!(matches!(
        curl_in(&client, &format!("{NODE1}:{}", node_port(&one)), "3"),
        Answer::Echo(_)
    ));

    // No endpoints: refused at once (REJECT), for the cluster IP and the node port.
    for (netns, target) in [
        (&cl.netns, format!("{}:80", cluster_ip(&empty))),
        (&client, format!("{NODE1}:{}", node_port(&empty))),
    ] {
        match curl_in(netns, &target, "3") {
            Answer::Failed(7, took) => assert!(took < Duration::from_millis(900), "refused after {took:?}"),
            other => panic!("{target} without endpoints: {other:?}"),
        }
    }

    // ClientIP affinity sticks.
    let answers = ask(&cl.netns, &format!("{}:80", cluster_ip(&sticky)), 5);
    assert_eq!(pods_of(&answers).len(), 1, "{answers:?}");

    // ... and expires: after the timeout the next connection takes the next backend in turn.
    let target = format!("{}:80", cluster_ip(&expiring));
    let answers = ask(&cl.netns, &target, 3);
    assert_eq!(pods_of(&answers).len(), 1, "{answers:?}");
    std::thread::sleep(Duration::from_millis(2_500));
    let after = ask(&cl.netns, &target, 1);
    assert_ne!(after[0].0, answers[0].0, "affinity expired");

    // A proxy restart resets no established connection: one keep-alive connection through the
    // cluster IP, the node agent (and its proxy) killed and restarted in between.
    let mut connection = connect_in(&cl.netns, &format!("{rr_ip}:80"));
    let first = http_get(&mut connection);
    let old_agent = lab.agent_pid("node2").expect("agent pid");
    run("kill", &["-9", &old_agent.to_string()]);
    wait_until("svcnet up restarts the agent", Duration::from_secs(30), || {
        lab.agent_pid("node2").is_some_and(|pid| pid != old_agent)
    });
    wait_until("the new proxy is live", Duration::from_secs(30), || {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &node2,
                "curl",
                "-sf",
                "--max-time",
                "1",
                "http://127.0.0.1:10256/healthz",
            ],
        )
        .status
        .success()
    });
    let second = http_get(&mut connection);
    assert_eq!(first["pod"], second["pod"], "same connection, same backend");
    assert_eq!(first["clientPort"], second["clientPort"]);

    // UDP through a cluster IP across a backend restart: the same client socket (same 5-tuple)
    // reaches the new backend once the old one is gone (stale conntrack entry deleted).
    let udp_target = format!("{}:53", cluster_ip(&udp));
    let socket = udp_socket_in(&cl.netns, &udp_target);
    let first = udp_ask(&socket, Duration::from_secs(10)).expect("UDP answer");
    assert_eq!(first["pod"], "udp-1");
    lab.api(
        "DELETE",
        "/api/v1/namespaces/default/pods/udp-1",
        "application/json",
        &json!({}),
    );
    lab.pod(
        "udp-2",
        "node2",
        "udp",
        json!({"containerPort": 5353, "protocol": "UDP"}),
    );
    lab.wait_pods(&["udp-2"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(answer) = udp_ask(&socket, Duration::from_millis(300)) {
            if answer["pod"] == "udp-2" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "UDP flow never moved to the new backend");
    }
    // Metrics under upstream's names, network programming latency from the slices' trigger times.
    let metrics = run(
        "ip",
        &[
            "netns",
            "exec",
            &node1,
            "curl",
            "-sf",
            "--max-time",
            "2",
            "http://127.0.0.1:10249/metrics",
        ],
    );
    let metrics = String::from_utf8_lossy(&metrics.stdout).to_string();
    let count = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        count("kubeproxy_sync_proxy_rules_duration_seconds_count") > 0.0,
        "{metrics}"
    );
    assert!(
        count("kubeproxy_network_programming_duration_seconds_count") > 0.0,
        "{metrics}"
    );
    assert!(
        count("kubeproxy_sync_proxy_rules_last_timestamp_seconds") > 0.0,
        "{metrics}"
    );
    println!("[{cni}] all checks passed after {:?}", started.elapsed());
}

/// A TCP connection opened inside `netns`.
fn connect_in(netns: &str, target: &str) -> TcpStream {
    let target: std::net::SocketAddr = target.parse().unwrap();
    let stream = svcnet_node::netns::run_in(netns, move || {
        TcpStream::connect_timeout(&target, Duration::from_secs(3))
    })
    .unwrap()
    .unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// One keep-alive GET on an open connection; the echo's JSON.
fn http_get(stream: &mut TcpStream) -> Value {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).expect("response on the kept connection");
        assert!(n > 0, "connection closed");
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return serde_json::from_str(&body[..length]).unwrap();
            }
        }
    }
}

fn udp_socket_in(netns: &str, target: &str) -> UdpSocket {
    let target: std::net::SocketAddr = target.parse().unwrap();
    svcnet_node::netns::run_in(netns, move || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.connect(target)?;
        Ok::<_, std::io::Error>(socket)
    })
    .unwrap()
    .unwrap()
}

/// Sends a datagram every 200 ms, as a DNS client retries, until the echo's JSON answer comes
/// or `timeout` passes.
fn udp_ask(socket: &UdpSocket, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 2048];
    while Instant::now() < deadline {
        socket.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
        socket.send(b"ping").ok()?;
        if let Ok(n) = socket.recv(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..n]).to_string();
            return serde_json::from_str(text.lines().next()?).ok();
        }
    }
    None
}

#[test]
fn flannel_services_end_to_end() {
    services_end_to_end("f", "flannel");
}

#[test]
fn terway_services_end_to_end() {
    services_end_to_end("w", "terway-eniip");
}
