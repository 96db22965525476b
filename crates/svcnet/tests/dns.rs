//! The cluster DNS end to end: a real `svcnet server`, objects written with the real kubectl,
//! `svcnet dns` watching it, and the real `dig` over UDP and TCP on loopback. A second
//! `svcnet dns` (zone `upstream.test`) plays the upstream resolver, so no packet leaves loopback.

mod common;

use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kubectl, Server};

/// A running `svcnet dns`, killed on drop (also when an assertion fails).
struct Dns {
    child: Child,
    port: u16,
    metrics_port: u16,
    args: Vec<String>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Dns {
    fn start(server: &Server, extra: &[&str]) -> Dns {
        let port = free_port();
        let metrics_port = free_port();
        let mut args: Vec<String> = vec![
            "dns".into(),
            "--server".into(),
            server.url.clone(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--metrics".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--udp-threads".into(),
            "2".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = spawn(&args);
        let dns = Dns {
            child,
            port,
            metrics_port,
            args,
        };
        dns.wait_ready();
        dns
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if common::http_get(self.metrics_port, "/ready").is_ok_and(|body| body.ends_with("OK")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("svcnet dns did not become ready on port {}", self.port);
    }

    /// Kills the process and starts it again with the same flags (same ports).
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.args);
    }

    fn metrics(&self) -> String {
        common::http_get(self.metrics_port, "/metrics").unwrap()
    }
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_svcnet"))
        .args(args)
        .env("SVCNET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start svcnet dns")
}

/// What dig printed: status, flags and answer lines (`name ttl class type data`, one space).
#[derive(Debug)]
struct Dig {
    status: String,
    flags: String,
    answer: Vec<String>,
    authority: Vec<String>,
}

fn dig(port: u16, args: &[&str]) -> Dig {
    let out = Command::new("dig")
        .args([
            "+time=2",
            "+tries=2",
            "+noall",
            "+comments",
            "+answer",
            "+authority",
            "-p",
        ])
        .arg(port.to_string())
        .arg("@127.0.0.1")
        .args(args)
        .output()
        .expect("run dig (bind9-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no reply from dig {args:?}: {text}"))
        .to_string();
    let flags = text
        .split(";; flags: ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or("")
        .to_string();
    let mut answer = Vec::new();
    let mut authority = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if !line.starts_with(';') && !line.trim().is_empty() {
            let record = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match section {
                "answer" => answer.push(record),
                _ => authority.push(record),
            }
        }
    }
    answer.sort();
    Dig {
        status,
        flags,
        answer,
        authority,
    }
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- addresses: ["10.244.3.3"]
  conditions: {ready: true}
ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: default, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
endpoints:
- addresses: ["10.244.1.5"]
  hostname: db-0
  conditions: {ready: true}
- addresses: ["10.244.1.6"]
  hostname: db-1
- addresses: ["10.244.1.8"]
  hostname: db-2
  conditions: {ready: false}
ports: [{name: pg, port: 5432, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: empty-1, namespace: default, labels: {kubernetes.io/service-name: empty}}
addressType: IPv4
endpoints:
- addresses: ["10.244.2.1"]
  conditions: {ready: false}
ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: lazy, namespace: default}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: lazy-1, namespace: default, labels: {kubernetes.io/service-name: lazy}}
addressType: IPv4
endpoints:
- addresses: ["10.244.4.4"]
  conditions: {ready: true, serving: false}
ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: web.default.svc.upstream.test
---
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: default}
spec:
  containers: [{name: c, image: none}]
"#;

/// `(query args, status, answer records)`: run over UDP and over TCP.
const TABLE: &[(&str, &str, &[&str])] = &[
    (
        "dns-version.cluster.local TXT",
        "NOERROR",
        &["dns-version.cluster.local. 28800 IN TXT \"1.1.0\""],
    ),
    (
        "web.default.svc.cluster.local A",
        "NOERROR",
        &["web.default.svc.cluster.local. 5 IN A 10.96.0.20"],
    ),
    ("web.default.svc.cluster.local AAAA", "NOERROR", &[]),
    (
        "WEB.Default.svc.Cluster.Local A",
        "NOERROR",
        &["WEB.Default.svc.Cluster.Local. 5 IN A 10.96.0.20"],
    ),
    (
        "_http._tcp.web.default.svc.cluster.local SRV",
        "NOERROR",
        &["_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."],
    ),
    ("_http._udp.web.default.svc.cluster.local SRV", "NXDOMAIN", &[]),
    (
        "10-244-3-3.web.default.svc.cluster.local A",
        "NOERROR",
        &["10-244-3-3.web.default.svc.cluster.local. 5 IN A 10.244.3.3"],
    ),
    (
        "db.default.svc.cluster.local A",
        "NOERROR",
        &[
            "db.default.svc.cluster.local. 5 IN A 10.244.1.5",
            "db.default.svc.cluster.local. 5 IN A 10.244.1.6",
        ],
    ),
    (
        "db-0.db.default.svc.cluster.local A",
        "NOERROR",
        &["db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5"],
    ),
    ("db-2.db.default.svc.cluster.local A", "NXDOMAIN", &[]),
    (
        "_pg._tcp.db.default.svc.cluster.local SRV",
        "NOERROR",
        &[
            "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
            "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-1.db.default.svc.cluster.local.",
        ],
    ),
    ("empty.default.svc.cluster.local A", "NXDOMAIN", &[]),
    (
        "lazy.default.svc.cluster.local A",
        "NOERROR",
        &["lazy.default.svc.cluster.local. 5 IN A 10.244.4.4"],
    ),
    (
        "ext.default.svc.cluster.local A",
        "NOERROR",
        &[
            "ext.default.svc.cluster.local. 5 IN CNAME web.default.svc.upstream.test.",
            "web.default.svc.upstream.test. 5 IN A 10.96.0.20",
        ],
    ),
    (
        "ext.default.svc.cluster.local CNAME",
        "NOERROR",
        &["ext.default.svc.cluster.local. 5 IN CNAME web.default.svc.upstream.test."],
    ),
    (
        "-x 10.96.0.20",
        "NOERROR",
        &["20.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."],
    ),
    (
        "-x 10.244.1.5",
        "NOERROR",
        &["5.1.244.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local."],
    ),
    (
        "10-244-9-9.default.pod.cluster.local A",
        "NOERROR",
        &["10-244-9-9.default.pod.cluster.local. 5 IN A 10.244.9.9"],
    ),
    ("1-2-3-4.default.pod.cluster.local A", "NXDOMAIN", &[]),
    (
        "cluster.local NS",
        "NOERROR",
        &["cluster.local. 5 IN NS ns.dns.cluster.local."],
    ),
    ("default.svc.cluster.local A", "NOERROR", &[]),
    ("nons.svc.cluster.local A", "NXDOMAIN", &[]),
    ("nosvc.default.svc.cluster.local A", "NXDOMAIN", &[]),
    ("web.cluster.local A", "NXDOMAIN", &[]),
    // Outside the zone: forwarded to the upstream (our second server).
    (
        "web.default.svc.upstream.test A",
        "NOERROR",
        &["web.default.svc.upstream.test. 5 IN A 10.96.0.20"],
    ),
    ("nosvc.default.svc.upstream.test A", "NXDOMAIN", &[]),
];

#[test]
fn cluster_dns_answers_the_table_over_udp_and_tcp_and_stays_fresh() {
    let server = Server::start_with(&["--no-controllers"]);
    let kubectl = Kubectl::new(33, &server);
    let manifest = kubectl.file("objects.yaml", OBJECTS);
    kubectl.ok(&["apply", "-f", &manifest]);
    kubectl.ok(&[
        "patch",
        "pod",
        "p1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","podIP":"10.244.9.9","podIPs":[{"ip":"10.244.9.9"}]}}"#,
    ]);
    let upstream = Dns::start(&server, &["--zone", "upstream.test"]);
    let upstream_address = format!("127.0.0.1:{}", upstream.port);
    let dns = Dns::start(&server, &["--pods", "verified", "--upstream", &upstream_address]);

    for (query, status, answer) in TABLE {
        for transport in ["+notcp", "+tcp"] {
            let mut args: Vec<&str> = query.split_whitespace().collect();
            args.push(transport);
            let reply = dig(dns.port, &args);
            assert_eq!(reply.status, *status, "{query} {transport}: {reply:?}");
            let mut want: Vec<String> = answer.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(reply.answer, want, "{query} {transport}: {reply:?}");
            let in_zone = !query.contains("upstream.test");
            if in_zone && !query.starts_with("-x") {
                assert!(
                    reply.flags.split_whitespace().any(|f| f == "aa"),
                    "{query}: aa missing: {reply:?}"
                );
            }
            if reply.answer.is_empty() && in_zone {
                assert!(
                    reply.authority.iter().any(|r| r.contains(" SOA ")),
                    "{query}: SOA missing: {reply:?}"
                );
            }
        }
    }
    // Outside the zone with no upstream: REFUSED, never an open resolver.
    assert_eq!(dig(upstream.port, &["example.com", "A"]).status, "REFUSED");
    // The forwarded negative answer was cached (the second ask above hit it).
    let metrics = dns.metrics();
    assert!(
        metrics.contains("coredns_dns_requests_total{proto=\"udp\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coredns_dns_responses_total{rcode=\"NXDOMAIN\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("coredns_dns_request_duration_seconds_bucket"),
        "{metrics}"
    );
    let hits = metric(&metrics, "coredns_cache_hits_total{type=\"denial\"}")
        + metric(&metrics, "coredns_cache_hits_total{type=\"success\"}");
    assert!(hits >= 1.0, "no cache hits: {metrics}");
    assert!(common::http_get(dns.metrics_port, "/health").unwrap().ends_with("OK"));

    // Truncation over UDP (no EDNS, 512 octets), the full answer over TCP.
    let endpoints: String = (0..60).map(|i| format!("- addresses: [\"10.245.0.{i}\"]\n")).collect();
    let big = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: big, namespace: default}}\nspec:\n  clusterIP: None\n  ports: [{{port: 80}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: big-1, namespace: default, labels: {{kubernetes.io/service-name: big}}}}\n\
         addressType: IPv4\nendpoints:\n{endpoints}ports: [{{port: 80, protocol: TCP}}]\n"
    );
    let manifest = kubectl.file("big.yaml", &big);
    kubectl.ok(&["apply", "-f", &manifest]);
    let full = wait_for(dns.port, &["big.default.svc.cluster.local", "A", "+tcp"], |d| {
        d.answer.len() == 60
    });
    assert!(!full.flags.contains("tc"));
    let cut = dig(
        dns.port,
        &["big.default.svc.cluster.local", "A", "+notcp", "+ignore", "+noedns"],
    );
    assert!(cut.flags.split_whitespace().any(|f| f == "tc"), "{cut:?}");
    assert!(cut.answer.len() < 60);
    let edns = dig(
        dns.port,
        &["big.default.svc.cluster.local", "A", "+notcp", "+bufsize=4096"],
    );
    assert_eq!(edns.answer.len(), 60);

    // Freshness: a changed Service is answered by the next query.
    let started = Instant::now();
    kubectl.ok(&[
        "patch",
        "svc",
        "ext",
        "--type=merge",
        "-p",
        r#"{"spec":{"externalName":"other.example"}}"#,
    ]);
    wait_for(dns.port, &["ext.default.svc.cluster.local", "CNAME"], |d| {
        d.answer.iter().any(|r| r.ends_with("CNAME other.example."))
    });
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "change took {elapsed:?} to show");
    kubectl.ok(&["delete", "svc", "web"]);
    wait_for(dns.port, &["web.default.svc.cluster.local", "A"], |d| {
        d.status == "NXDOMAIN"
    });
    let metrics = dns.metrics();
    assert!(
        metric(&metrics, "svcnet_dns_programming_latency_seconds{quantile=\"0.99\"}") < 0.010,
        "{metrics}"
    );

    // Malformed packets: FORMERR or silence, and the server keeps answering.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    for garbage in [
        &b""[..],
        b"\x00",
        b"\x12\x34\x01\x00\x00\x01",
        &[0xFF; 64],
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xC0\x0C",
    ] {
        socket.send_to(garbage, ("127.0.0.1", dns.port)).unwrap();
        let mut buf = [0u8; 512];
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            assert!(n >= 12 && buf[3] & 0xF == 1, "not FORMERR: {:?}", &buf[..n]);
        }
    }
    {
        use std::io::Write;
        let mut tcp = TcpStream::connect(("127.0.0.1", dns.port)).unwrap();
        let _ = tcp.write_all(b"\x00\x05hello\xFF\xFF");
        let _ = tcp.write_all(&[0x42; 300]);
    }
    assert_eq!(dig(dns.port, &["db.default.svc.cluster.local", "A"]).status, "NOERROR");
    assert_eq!(
        dig(dns.port, &["db.default.svc.cluster.local", "A", "+tcp"]).status,
        "NOERROR"
    );
}

#[test]
fn a_backend_restart_does_not_stall_udp_clients() {
    let server = Server::start_with(&["--no-controllers"]);
    let kubectl = Kubectl::new(33, &server);
    let manifest = kubectl.file(
        "web.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  clusterIP: 10.96.0.20\n  ports: [{port: 80}]\n",
    );
    kubectl.ok(&["apply", "-f", &manifest]);
    let mut dns = Dns::start(&server, &[]);
    assert_eq!(dig(dns.port, &["web.default.svc.cluster.local", "A"]).answer.len(), 1);
    dns.restart();
    // A client asking during the restart: the moment between the old process exiting and the
    // new one binding is refused at once (ICMP), after that queries wait in the new socket
    // until the zone is loaded. Either way the answer comes within one short dig timeout.
    let started = Instant::now();
    let mut attempts = 0;
    let answered = loop {
        attempts += 1;
        let out = Command::new("dig")
            .args([
                "+short",
                "+time=1",
                "+tries=1",
                "-p",
                &dns.port.to_string(),
                "@127.0.0.1",
            ])
            .arg("web.default.svc.cluster.local")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if text == "10.96.0.20" || started.elapsed() > Duration::from_secs(5) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(answered, "10.96.0.20", "after {attempts} attempts");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered only after {:?}",
        started.elapsed()
    );
}

fn wait_for(port: u16, args: &[&str], done: impl Fn(&Dig) -> bool) -> Dig {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = dig(port, args);
        if done(&reply) {
            return reply;
        }
        assert!(Instant::now() < deadline, "{args:?} never matched: {reply:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in {text}"))
}
