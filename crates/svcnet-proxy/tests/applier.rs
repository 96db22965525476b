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
    body.matches(" : goto ").count() + body.matches(" : jump ").count()
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
    assert!(listing.contains("chain pick-default/web/tcp/80"), "{listing}");
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
    assert!(!nft.list_table().unwrap().unwrap().contains("pick-default/web/tcp/80"));

    // Restart: a new applier converges from the live table, even to a different state.
    let mut restarted = Applier::new(nft.clone());
    assert!(restarted.sync(&second).unwrap().full);
    let listing = nft.list_table().unwrap().unwrap();
    assert!(listing.contains("chain pick-default/web/tcp/80"));
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

/// The listing of `rules` loaded the old way: its rendered text through `nft -f`, in a fresh
/// namespace. Netlink loads must list byte for byte the same.
fn listing_via_nft(rules: &svcnet_proxy::Ruleset) -> String {
    let netns = TestNetns::new().expect("root checked by the caller");
    let nft = netns.nft();
    nft.run_script(&rules.render()).unwrap();
    nft.list_table().unwrap().expect("table loaded by nft")
}

/// A listing with its objects and elements sorted: after increments the kernel lists objects
/// in creation order and hash sets in bucket order, which a fresh load does not reproduce.
fn normalized(listing: &str) -> String {
    let body = listing.trim_end().trim_end_matches('}');
    let mut blocks: Vec<String> = body
        .split("\n\n")
        .map(|block| block.trim_matches('\n'))
        .map(|block| match (block.find("elements = {"), block.rfind('}')) {
            (Some(start), Some(end)) if end > start => {
                let inner = &block[start + "elements = {".len()..end];
                let mut elements: Vec<&str> = inner.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
                elements.sort();
                format!(
                    "{}elements = {{ {} {}",
                    &block[..start],
                    elements.join(", "),
                    &block[end..]
                )
            }
            _ => block.to_string(),
        })
        .collect();
    blocks.sort();
    blocks.join("\n\n")
}

/// The kernel's objects as nft dumps them with `--debug=netlink`: every rule's expressions
/// (registers, byteorder, lengths) and every element's bytes; rule handles left out and each
/// set's elements sorted (the dump walks hash buckets). Stricter than the listing, which hides
/// implicit dependencies.
fn bytecode(netns: &str) -> String {
    let output = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "nft",
            "--debug=netlink",
            "list",
            "table",
            "ip",
            "svcnet",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let mut out: Vec<String> = Vec::new();
    let mut elements: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with("\telement") {
            elements.push(line);
            continue;
        }
        elements.sort();
        out.extend(elements.drain(..).map(str::to_string));
        out.push(match line.strip_prefix("ip svcnet ") {
            Some(rest) if !rest.starts_with('@') => rest.split(' ').next().unwrap_or_default().to_string(),
            _ => line.to_string(),
        });
    }
    out.join("\n")
}

/// Equal texts, or a panic that shows only the lines that differ.
fn assert_same(what: &str, netlink: &str, nft: &str) {
    if netlink == nft {
        return;
    }
    let only = |a: &str, b: &str| -> Vec<String> {
        let other: std::collections::HashSet<&str> = b.lines().collect();
        a.lines()
            .filter(|l| !other.contains(l))
            .take(20)
            .map(str::to_string)
            .collect()
    };
    panic!(
        "{what} differs\nonly via netlink:\n{}\nonly via nft -f:\n{}",
        only(netlink, nft).join("\n"),
        only(nft, netlink).join("\n")
    );
}

/// [`bytecode`] of `rules` loaded through `nft -f` in a fresh namespace.
fn bytecode_via_nft(rules: &svcnet_proxy::Ruleset) -> String {
    let netns = TestNetns::new().expect("root checked by the caller");
    netns.nft().run_script(&rules.render()).unwrap();
    bytecode(&netns.name)
}

fn listing(nft: &Nft) -> String {
    nft.list_table().unwrap().expect("table loaded")
}

/// Every rule form and set type the model emits, plus the selector variants it can emit with
/// other configurations (prefixes that are not whole bytes, random, UDP and SCTP ports).
fn every_form() -> (Vec<Service>, Vec<EndpointSlice>) {
    let (mut services, mut slices) = all_kinds();
    services.push(service("dice", "10.96.0.26", |s| {
        s["metadata"]["annotations"] = json!({"svcnet.io/lb-algorithm": "random"});
        s["spec"]["ports"] = json!([
            {"name": "http", "port": 80, "protocol": "UDP"},
            {"name": "sig", "port": 9000, "protocol": "SCTP"}
        ]);
        s["spec"]["externalIPs"] = json!(["192.0.2.7"]);
        s["spec"]["sessionAffinity"] = json!("ClientIP");
        s["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 600}});
    }));
    let mut dice = slice("dice", &["10.244.3.10"]);
    dice.ports = Some(vec![
        serde_json::from_value(json!({"name": "http", "port": 8080, "protocol": "UDP"})).unwrap(),
        serde_json::from_value(json!({"name": "sig", "port": 9000, "protocol": "SCTP"})).unwrap(),
    ]);
    slices.push(dice);
    // External Local policy without a local endpoint (a `no-endpoint-drop` element), and a
    // NodePort without endpoints (a `no-endpoint-nodeport-reject` element).
    services.push(service("remote", "10.96.0.27", |s| {
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["externalTrafficPolicy"] = json!("Local");
        s["spec"]["ports"][0]["nodePort"] = json!(30081);
        s["spec"]["externalIPs"] = json!(["192.0.2.8"]);
    }));
    let mut remote = slice("remote", &["10.244.5.10"]);
    remote.endpoints[0].node_name = Some("node2".into());
    slices.push(remote);
    services.push(service("np-empty", "10.96.0.28", |s| {
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["ports"][0]["nodePort"] = json!(30082);
    }));
    (services, slices)
}

fn odd_prefix_config() -> ModelConfig {
    ModelConfig {
        cluster_cidr: Some("10.96.0.0/12".parse().unwrap()),
        default_algorithm: Algorithm::RoundRobin,
    }
}

#[test]
fn netlink_full_load_lists_like_nft() {
    let Some(netns) = TestNetns::new() else { return };
    let (services, slices) = every_form();
    for config in [config(), odd_prefix_config()] {
        let rules = desired(&services, &slices, &node(), &config);
        let mut applier = Applier::new(netns.nft());
        for expected in ["192.0.2.8 . tcp . 80", "tcp . 30082", "udp . 80", "sctp . 9000"] {
            assert!(
                rules.render().contains(expected),
                "the model no longer emits {expected}"
            );
        }
        let report = applier.sync(&rules).unwrap();
        assert!(report.full && report.netlink, "{report:?}");
        assert_eq!(listing(&netns.nft()), listing_via_nft(&rules));
        assert_same("bytecode", &bytecode(&netns.name), &bytecode_via_nft(&rules));
    }
    // A restart onto the live table reuses it in place and lists the same.
    let rules = desired(&services, &slices, &node(), &config());
    let mut restarted = Applier::new(netns.nft());
    assert!(restarted.sync(&rules).unwrap().netlink);
    assert_eq!(listing(&netns.nft()), listing_via_nft(&rules));
}

#[test]
fn netlink_encodes_every_selector_form() {
    let Some(netns) = TestNetns::new() else { return };
    let (services, slices) = all_kinds();
    let mut rules = desired(&services, &slices, &node(), &config());
    rules.chain("extra").rules = [
        "ip saddr 10.96.0.0/12 goto mark-for-masquerade",
        "ip saddr != 10.1.2.3/32 jump mark-for-masquerade",
        "ip saddr 0.0.0.0/0 goto mark-for-masquerade",
        "ip daddr 10.1.2.0/23 accept",
        "meta l4proto udp ct mark set numgen random mod 4 offset 0x19c10001 goto endpoint-dnat",
        "meta l4proto sctp ct mark set jhash ip saddr . ip daddr . th sport . th dport mod 7 seed 0x5eed offset 0x19c10001 goto endpoint-dnat",
        "meta mark set meta mark & 0xff",
        "meta mark & 0x4000 != 0 return",
        "ct mark >= 0x10 ct mark < 0x20 drop",
        "ct state new,established ct status snat th dport 53 drop",
        "meta l4proto { udp, tcp } return",
    ]
    .map(String::from)
    .to_vec();
    let mut applier = Applier::new(netns.nft());
    assert!(applier.sync(&rules).unwrap().netlink);
    assert_eq!(listing(&netns.nft()), listing_via_nft(&rules));
    assert_same("bytecode", &bytecode(&netns.name), &bytecode_via_nft(&rules));
}

/// `desired` for `services` without what every table has (hook chains, node addresses): the
/// part of the table these Services own, with every set declared.
fn fragment(services: &[Service], slices: &[EndpointSlice]) -> svcnet_proxy::Ruleset {
    let base = desired(&[] as &[Service], &[] as &[EndpointSlice], &node(), &config());
    let mut part = desired(services, slices, &node(), &config());
    part.chains.retain(|name, _| !base.chains.contains_key(name));
    for (name, set) in &mut part.sets {
        set.elements
            .retain(|key, _| !base.sets[name].elements.contains_key(key));
    }
    part
}

#[test]
fn apply_delta_matches_a_full_load() {
    let Some(netns) = TestNetns::new() else { return };
    let (mut services, mut slices) = all_kinds();
    // Endpoints of its own: `hairpin` elements are shared by Services with common endpoints,
    // and a fragment only speaks for its own Services.
    slices[0] = slice("web", &["10.244.4.10", "10.244.4.11"]);
    let mut applier = Applier::new(netns.nft());
    assert!(matches!(
        applier.apply_delta(&fragment(&[], &[]), &fragment(&[], &[])),
        Err(svcnet_proxy::apply::Error::NeedFullSync)
    ));
    applier.sync(&desired(&services, &slices, &node(), &config())).unwrap();

    // One endpoint replaced (elements only), then one added (the chain's rule changes).
    for endpoints in [
        &["10.244.4.10", "10.244.4.12"][..],
        &["10.244.4.10", "10.244.4.12", "10.244.4.13"][..],
    ] {
        let before = fragment(&services[..1], &slices[..1]);
        slices[0] = slice("web", endpoints);
        let after = fragment(&services[..1], &slices[..1]);
        let report = applier.apply_delta(&before, &after).unwrap();
        assert!(report.changed && report.netlink && !report.full);
        let full = desired(&services, &slices, &node(), &config());
        assert_eq!(applier.applied().map(|a| a.render()), Some(full.render()));
        assert_eq!(normalized(&listing(&netns.nft())), normalized(&listing_via_nft(&full)));
    }

    // A whole Service (with endpoints of its own) added, then removed: its chain goes.
    let solo = service("solo", "10.96.0.30", |_| {});
    let solo_slice = slice("solo", &["10.244.3.20"]);
    let added = fragment(std::slice::from_ref(&solo), std::slice::from_ref(&solo_slice));
    applier.apply_delta(&fragment(&[], &[]), &added).unwrap();
    services.push(solo);
    slices.push(solo_slice);
    let full = desired(&services, &slices, &node(), &config());
    assert_eq!(applier.applied().map(|a| a.render()), Some(full.render()));
    assert_eq!(normalized(&listing(&netns.nft())), normalized(&listing_via_nft(&full)));
    applier.apply_delta(&added, &fragment(&[], &[])).unwrap();
    services.pop();
    slices.pop();
    let full = desired(&services, &slices, &node(), &config());
    assert_eq!(applier.applied().map(|a| a.render()), Some(full.render()));
    let live = listing(&netns.nft());
    assert!(!live.contains("solo"), "{live}");
    assert_eq!(normalized(&live), normalized(&listing_via_nft(&full)));
    assert!(!applier.apply_delta(&added, &added).unwrap().changed);

    // The next regular sync diffs against the applied value the deltas kept.
    assert!(!applier.sync(&full).unwrap().changed);
}

#[test]
fn unknown_rule_falls_back_to_nft() {
    let Some(netns) = TestNetns::new() else { return };
    let (services, slices) = all_kinds();
    let mut rules = desired(&services, &slices, &node(), &config());
    rules.chain("extra").rules = vec!["tcp dport 22 counter accept".into()];
    let mut applier = Applier::new(netns.nft());
    let report = applier.sync(&rules).unwrap();
    assert!(report.changed && !report.netlink, "{report:?}");
    assert_eq!(listing(&netns.nft()), listing_via_nft(&rules));
    // Once the form is gone, increments go over netlink again.
    rules.chains.remove("extra");
    let report = applier.sync(&rules).unwrap();
    assert!(report.netlink && !report.full, "{report:?}");
    assert_eq!(listing(&netns.nft()), listing_via_nft(&rules));
}

#[test]
fn kernel_errors_name_the_object() {
    let Some(netns) = TestNetns::new() else { return };
    let (services, slices) = all_kinds();
    let mut rules = desired(&services, &slices, &node(), &config());
    rules.chain("extra").rules = vec!["goto no-such-chain".into()];
    let mut applier = Applier::new(netns.nft());
    let error = applier.sync(&rules).unwrap_err().to_string();
    assert!(error.contains("add rule extra goto no-such-chain"), "{error}");
    assert!(
        netns.nft().list_table().unwrap().is_none(),
        "nothing of the batch applied"
    );
    rules.chains.remove("extra");
    assert!(
        applier.sync(&rules).unwrap().full,
        "after an error the next sync is full"
    );
}

#[test]
fn resync_keeps_affinity_entries_and_delta_falls_back_too() {
    let Some(netns) = TestNetns::new() else { return };
    let nft = netns.nft();
    let (services, slices) = all_kinds();
    let rules = desired(&services, &slices, &node(), &config());
    let mut applier = Applier::new(nft.clone());
    applier.sync(&rules).unwrap();
    // What the data path would have remembered for a client.
    nft.run_script("add element ip svcnet affinity { 10.244.1.50 . 0x619a0000 timeout 1h : 0x619a0002 }\n")
        .unwrap();
    assert!(Applier::new(nft.clone()).sync(&rules).unwrap().full);
    assert!(listing(&nft).contains("10.244.1.50 . 0x619a0000"), "{}", listing(&nft));

    // A fragment with a form the encoder does not know goes through nft, as one transaction.
    let mut before = svcnet_proxy::Ruleset {
        sets: rules.sets.clone(),
        ..Default::default()
    };
    before.sets.values_mut().for_each(|s| s.elements.clear());
    let mut after = before.clone();
    after.chain("extra").rules = vec!["tcp dport 22 counter accept".into()];
    after.element("service-ips", "10.96.0.99 . tcp . 22", "goto extra");
    let report = applier.apply_delta(&before, &after).unwrap();
    assert!(report.changed && !report.netlink, "{report:?}");
    let mut full = rules.clone();
    full.chain("extra").rules = after.chains["extra"].rules.clone();
    full.element("service-ips", "10.96.0.99 . tcp . 22", "goto extra");
    assert_eq!(applier.applied().map(|a| a.render()), Some(full.render()));
    let live = listing(&nft);
    assert!(live.contains("10.96.0.99 . tcp . 22 : goto extra"), "{live}");
    assert!(
        live.contains("chain extra {\n\t\ttcp dport 22 counter packets 0 bytes 0 accept"),
        "{live}"
    );
}
