//! The applier against the kernel: each test makes its own network namespace (unique name,
//! removed by a drop guard also when the test fails), loads the table, changes it incrementally,
//! restarts, and sends real connections through it on a veth link. Needs root and nft; skipped
//! (with a message) otherwise.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};
use svcnet_proxy::apply::{Applier, Nft};
use svcnet_proxy::{desired, Algorithm, ModelConfig, NodeInfo};

/// A named network namespace that is deleted when dropped.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn new() -> Option<TestNetns> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        if unsafe { libc::geteuid() } != 0 || Command::new("nft").arg("--version").output().is_err() {
            eprintln!("skipped: needs root and nft");
            return None;
        }
        let name = format!("svp-t{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let netns = TestNetns { name };
        ip(&["netns", "add", &netns.name]);
        netns.ip(&["link", "set", "lo", "up"]);
        // Pods as addresses on a veth link; the service range routed to it so the output
        // path has a route before DNAT (as the lab's nodes have).
        netns.ip(&["link", "add", "pods", "type", "veth", "peer", "name", "pods-peer"]);
        netns.ip(&["link", "set", "pods-peer", "up"]);
        netns.ip(&["link", "set", "pods", "up"]);
        for address in [
            "10.244.1.10/32",
            "10.244.1.11/32",
            "10.244.2.10/32",
            "10.244.2.11/32",
            "10.244.1.50/32",
        ] {
            netns.ip(&["addr", "add", address, "dev", "pods"]);
        }
        netns.ip(&["route", "add", "10.96.0.0/12", "dev", "pods"]);
        Some(netns)
    }

    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    fn nft(&self) -> Nft {
        Nft {
            netns: Some(self.name.clone()),
        }
    }

    /// Runs `f` on a thread inside the namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = std::fs::File::open(format!("/run/netns/{}", self.name)).unwrap();
        std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}");
}

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

fn service(name: &str, ip: &str, tweak: impl FnOnce(&mut Value)) -> Service {
    let mut value = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    });
    tweak(&mut value);
    serde_json::from_value(value).unwrap()
}

fn slice(service: &str, ips: &[&str]) -> EndpointSlice {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "nodeName": "node1", "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{service}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap()
}

fn all_kinds() -> (Vec<Service>, Vec<EndpointSlice>) {
    let services = vec![
        service("web", "10.96.0.20", |_| {}),
        service("sticky", "10.96.0.21", |s| {
            s["spec"]["sessionAffinity"] = json!("ClientIP")
        }),
        service("hash", "10.96.0.22", |s| {
            s["metadata"]["annotations"] = json!({"svcnet.io/lb-algorithm": "maglev"})
        }),
        service("empty", "10.96.0.23", |_| {}),
        service("by-source", "10.96.0.25", |s| {
            s["metadata"]["annotations"] = json!({"svcnet.io/lb-algorithm": "maglev-source"})
        }),
        service("lb", "10.96.0.24", |s| {
            s["spec"]["type"] = json!("LoadBalancer");
            s["spec"]["externalTrafficPolicy"] = json!("Local");
            s["spec"]["internalTrafficPolicy"] = json!("Local");
            s["spec"]["ports"][0]["nodePort"] = json!(30080);
            s["spec"]["loadBalancerSourceRanges"] = json!(["198.51.100.0/24"]);
            s["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}});
        }),
    ];
    let four = ["10.244.1.10", "10.244.1.11", "10.244.2.10", "10.244.2.11"];
    let slices = vec![
        slice("web", &four),
        slice("sticky", &four),
        slice("hash", &four),
        slice("lb", &four[..2]),
        slice("by-source", &four),
    ];
    (services, slices)
}

/// Elements of a verdict map in the live table.
fn element_count(nft: &Nft, set: &str) -> usize {
    let text = nft.list_table().unwrap().unwrap_or_default();
    let Some(start) = text.find(&format!("map {set} {{")) else {
        return 0;
    };
    let body = &text[start..];
    let body = &body[..body.find("\n\t}").unwrap_or(body.len())];
    body.matches(" : goto ").count()
}

#[test]
fn full_load_increment_restart_and_removal() {
    let Some(netns) = TestNetns::new() else { return };
    let nft = netns.nft();
    let (services, slices) = all_kinds();
    let mut applier = Applier::new(nft.clone());
    let first = desired(&services, &slices, &node(), &config());
    let report = applier.sync(&first).unwrap();
    assert!(report.full && report.changed);
    let listing = nft.list_table().unwrap().expect("table loaded");
    assert!(listing.contains("chain svc-default/web/tcp/80"), "{listing}");
    assert_eq!(element_count(&nft, "service-ips"), 7);

    // One endpoint replaced: an increment, elements only.
    let mut slices2 = slices.clone();
    slices2[0] = slice("web", &["10.244.1.10", "10.244.1.11", "10.244.2.10", "10.244.2.12"]);
    let second = desired(&services, &slices2, &node(), &config());
    let script = svcnet_proxy::apply::diff_script(&first, &second).unwrap();
    assert!(!script.contains("chain"), "{script}");
    let report = applier.sync(&second).unwrap();
    assert!(!report.full && report.changed);
    assert!(nft.list_table().unwrap().unwrap().contains("10.244.2.12 . 8080"));
    assert!(!applier.sync(&second).unwrap().changed);

    // A Service removed: its chain goes.
    let third = desired(&services[1..], &slices2[1..], &node(), &config());
    applier.sync(&third).unwrap();
    assert!(!nft.list_table().unwrap().unwrap().contains("svc-default/web/tcp/80"));

    // Restart: a new applier converges from the live table, even to a different state.
    let mut restarted = Applier::new(nft.clone());
    assert!(restarted.sync(&second).unwrap().full);
    let listing = nft.list_table().unwrap().unwrap();
    assert!(listing.contains("chain svc-default/web/tcp/80"));
    assert_eq!(element_count(&nft, "service-ips"), 7);

    restarted.delete_table().unwrap();
    assert!(nft.list_table().unwrap().is_none());
}

fn listeners(netns: &TestNetns, addresses: &[&'static str]) -> Vec<TcpListener> {
    let addresses: Vec<SocketAddr> = addresses.iter().map(|a| format!("{a}:8080").parse().unwrap()).collect();
    netns.run(move || {
        addresses
            .iter()
            .map(|a| {
                let l = TcpListener::bind(a).unwrap();
                l.set_nonblocking(true).unwrap();
                l
            })
            .collect()
    })
}

/// Connects from 10.244.1.50 to `target` inside the namespace; Ok(index of the listener that
/// accepted) or the connect error.
fn connect_once(netns: &TestNetns, target: &str, listeners: &[TcpListener]) -> Result<usize, std::io::ErrorKind> {
    let target: SocketAddr = target.parse().unwrap();
    let stream = netns.run(move || -> Result<TcpStream, std::io::ErrorKind> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from((Ipv4Addr::new(10, 244, 1, 50), 0)).into())
            .unwrap();
        socket
            .connect_timeout(&target.into(), Duration::from_secs(2))
            .map_err(|e| e.kind())?;
        Ok(socket.into())
    })?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        for (i, listener) in listeners.iter().enumerate() {
            if let Ok((mut accepted, _)) = listener.accept() {
                let _ = accepted.write_all(b"x");
                let mut stream = stream;
                let mut byte = [0u8; 1];
                let _ = stream.read(&mut byte);
                return Ok(i);
            }
        }
        assert!(Instant::now() < deadline, "no listener accepted");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn round_robin_affinity_and_reject_on_real_connections() {
    let Some(netns) = TestNetns::new() else { return };
    let four = ["10.244.1.10", "10.244.1.11", "10.244.2.10", "10.244.2.11"];
    let backends = listeners(&netns, &four);
    let (services, slices) = all_kinds();
    let mut applier = Applier::new(netns.nft());
    applier.sync(&desired(&services, &slices, &node(), &config())).unwrap();

    // Round robin: every backend once per round, in the same order each round.
    let order: Vec<usize> = (0..8)
        .map(|_| connect_once(&netns, "10.96.0.20:80", &backends).unwrap())
        .collect();
    let mut first_round = order[..4].to_vec();
    assert_eq!(order[..4], order[4..], "order {order:?}");
    first_round.sort();
    assert_eq!(first_round, vec![0, 1, 2, 3]);

    // ClientIP affinity: one client, one backend.
    let sticky: Vec<usize> = (0..5)
        .map(|_| connect_once(&netns, "10.96.0.21:80", &backends).unwrap())
        .collect();
    assert!(sticky.iter().all(|b| *b == sticky[0]), "{sticky:?}");

    // Maglev on the source address: one client, one backend, whatever its ports.
    let hashed: Vec<usize> = (0..5)
        .map(|_| connect_once(&netns, "10.96.0.25:80", &backends).unwrap())
        .collect();
    assert!(hashed.iter().all(|b| *b == hashed[0]), "{hashed:?}");

    // No endpoints: refused at once, not a timeout.
    let start = Instant::now();
    let refused = connect_once(&netns, "10.96.0.23:80", &backends);
    assert_eq!(refused, Err(std::io::ErrorKind::ConnectionRefused));
    assert!(start.elapsed() < Duration::from_millis(500));
}
