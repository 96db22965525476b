//! The conformance table: queries against a small cluster and the replies the spec (and
//! dns-spec.md, with the RFC choices in docs/dns.md) requires.

use super::*;
use crate::wire::wire_name;
use crate::zone::{zone, PodsMode, ZoneConfig};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).unwrap()
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).unwrap()
}

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

fn cluster_ip(ns: &str, name: &str, ips: &[&str], ports: serde_json::Value) -> Service {
    service(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ips[0], "clusterIPs": ips, "ports": ports}
    }))
}

fn headless(ns: &str, name: &str) -> Service {
    service(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"name": "http", "port": 80}]}
    }))
}

fn endpoint_slice(
    ns: &str,
    name: &str,
    svc: &str,
    family: &str,
    endpoints: serde_json::Value,
    ports: serde_json::Value,
) -> EndpointSlice {
    slice(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family,
        "endpoints": endpoints,
        "ports": ports
    }))
}

/// The cluster of the table: every kind of Service the records cover.
fn fixture(pods: PodsMode) -> Zone {
    let services = vec![
        cluster_ip(
            "default",
            "web",
            &["10.96.0.20"],
            json!([{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
        ),
        cluster_ip("default", "plain", &["10.96.0.21"], json!([{"port": 8080}])),
        cluster_ip(
            "default",
            "dual",
            &["10.96.0.22", "fd00:10:96::22"],
            json!([{"name": "http", "port": 80}]),
        ),
        cluster_ip("default", "noports", &["10.96.0.23"], json!([])),
        cluster_ip(
            "kube-system",
            "kube-dns",
            &["10.96.0.10"],
            json!([{"name": "dns", "port": 53, "protocol": "UDP"}]),
        ),
        headless("default", "db"),
        headless("default", "empty"),
        headless("default", "v6only"),
        headless("default", "lazy"),
        service(
            json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        ),
        service(
            json!({"metadata": {"name": "inner", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}}),
        ),
        service(
            json!({"metadata": {"name": "ipext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "1.2.3.4"}}),
        ),
    ];
    let slices = vec![
        endpoint_slice(
            "default",
            "db-a",
            "db",
            "IPv4",
            json!([
                {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.1.6"], "hostname": "db-1"},
                {"addresses": ["10.244.1.7"], "conditions": {"ready": true}},
                {"addresses": ["10.244.1.8"], "hostname": "db-2", "conditions": {"ready": false}}
            ]),
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        ),
        endpoint_slice(
            "default",
            "empty-a",
            "empty",
            "IPv4",
            json!([
                {"addresses": ["10.244.2.1"], "conditions": {"ready": false}}
            ]),
            json!([{"name": "http", "port": 80}]),
        ),
        endpoint_slice(
            "default",
            "v6only-a",
            "v6only",
            "IPv6",
            json!([
                {"addresses": ["fd00:10::7"]}
            ]),
            json!([{"name": "http", "port": 80}]),
        ),
        endpoint_slice(
            "default",
            "web-a",
            "web",
            "IPv4",
            json!([
                {"addresses": ["10.244.3.3"], "conditions": {"ready": true}}
            ]),
            json!([{"name": "http", "port": 8080}]),
        ),
        // publishNotReadyAddresses: the EndpointSlice controller writes ready=true.
        endpoint_slice(
            "default",
            "lazy-a",
            "lazy",
            "IPv4",
            json!([
                {"addresses": ["10.244.4.4"], "conditions": {"ready": true, "serving": false}}
            ]),
            json!([{"name": "http", "port": 80}]),
        ),
    ];
    let pods_list: Vec<Pod> = vec![serde_json::from_value(json!({
        "metadata": {"name": "p1", "namespace": "default"},
        "status": {"phase": "Running", "podIP": "10.244.9.9"}
    }))
    .unwrap()];
    let namespaces = vec![namespace("default"), namespace("kube-system")];
    let config = ZoneConfig {
        domain: "cluster.local".into(),
        ttl: 5,
        pods,
        forwarding: false,
    };
    let mut zone = zone(&services, &slices, &pods_list, &namespaces, &config);
    zone.serial = 1234;
    zone
}

fn packet(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut packet = vec![0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())];
    packet.extend(name_as_sent(name));
    packet.extend(qtype.to_be_bytes());
    packet.extend(CLASS_IN.to_be_bytes());
    if let Some(size) = edns {
        packet.extend([0, 0, 41]);
        packet.extend(size.to_be_bytes());
        packet.extend([0, 0, 0, 0, 0, 0]);
    }
    packet
}

/// Wire form keeping the case (wire_name lower-cases).
fn name_as_sent(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        out.push(label.len() as u8);
        out.extend(label.bytes());
    }
    out.push(0);
    out
}

/// A decoded reply: rcode, flags, and each section as `owner ttl TYPE data` strings.
#[derive(Debug)]
struct Decoded {
    id: u16,
    rcode: u16,
    aa: bool,
    tc: bool,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

fn decode(reply: &[u8]) -> Decoded {
    let flags = u16::from_be_bytes([reply[2], reply[3]]);
    let counts: Vec<usize> = (0..4)
        .map(|i| u16::from_be_bytes([reply[4 + 2 * i], reply[5 + 2 * i]]) as usize)
        .collect();
    let mut pos = HEADER_LEN;
    for _ in 0..counts[0] {
        pos = wire::skip_name(reply, pos).unwrap() + 4;
    }
    let mut sections = vec![Vec::new(), Vec::new(), Vec::new()];
    let mut rcode = flags & 0xF;
    for (section, count) in counts[1..].iter().enumerate() {
        for _ in 0..*count {
            let mut owner = Vec::new();
            let after = wire::read_name(reply, pos, &mut owner).unwrap();
            let f = &reply[after..after + 10];
            let rtype = u16::from_be_bytes([f[0], f[1]]);
            let ttl = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
            let rdlen = u16::from_be_bytes([f[8], f[9]]) as usize;
            let rdata_at = after + 10;
            let rdata = &reply[rdata_at..rdata_at + rdlen];
            let name_at = |at: usize| {
                let mut out = Vec::new();
                wire::read_name(reply, at, &mut out).unwrap();
                wire::presentation(&out)
            };
            let text = match rtype {
                rtype::A => format!("A {}", Ipv4Addr::from(<[u8; 4]>::try_from(rdata).unwrap())),
                rtype::AAAA => format!("AAAA {}", Ipv6Addr::from(<[u8; 16]>::try_from(rdata).unwrap())),
                rtype::CNAME => format!("CNAME {}", name_at(rdata_at)),
                rtype::NS => format!("NS {}", name_at(rdata_at)),
                rtype::PTR => format!("PTR {}", name_at(rdata_at)),
                rtype::TXT => format!("TXT {}", String::from_utf8_lossy(&rdata[1..])),
                rtype::SRV => format!(
                    "SRV {} {} {} {}",
                    u16::from_be_bytes([rdata[0], rdata[1]]),
                    u16::from_be_bytes([rdata[2], rdata[3]]),
                    u16::from_be_bytes([rdata[4], rdata[5]]),
                    name_at(rdata_at + 6)
                ),
                rtype::SOA => {
                    let mname_end = wire::skip_name(reply, rdata_at).unwrap();
                    let rname_end = wire::skip_name(reply, mname_end).unwrap();
                    let minimum = u32::from_be_bytes(reply[rname_end + 16..rname_end + 20].try_into().unwrap());
                    format!("SOA {} {} min {minimum}", name_at(rdata_at), name_at(mname_end))
                }
                rtype::OPT => {
                    rcode |= ((ttl >> 24) as u16) << 4;
                    format!("OPT size {}", u16::from_be_bytes([f[2], f[3]]))
                }
                other => format!("TYPE{other}"),
            };
            let owner = wire::presentation(&owner);
            sections[section].push(if rtype == rtype::OPT {
                text
            } else {
                format!("{owner} {ttl} {text}")
            });
            pos = rdata_at + rdlen;
        }
    }
    assert_eq!(pos, reply.len(), "trailing octets in reply");
    let [answer, authority, additional] = <[Vec<String>; 3]>::try_from(sections).unwrap();
    Decoded {
        id: u16::from_be_bytes([reply[0], reply[1]]),
        rcode,
        aa: flags & 0x0400 != 0,
        tc: flags & 0x0200 != 0,
        answer,
        authority,
        additional,
    }
}

fn ask_with(zone: &Zone, packet: &[u8], transport: Transport) -> Decoded {
    let mut out = vec![0u8; 65535];
    match answer(zone, packet, &mut out, transport) {
        Outcome::Reply(len) => decode(&out[..len]),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn ask(zone: &Zone, name: &str, qtype: u16) -> Decoded {
    ask_with(zone, &packet(name, qtype, None), Transport::Udp)
}

const NOERROR: u16 = 0;
const NXDOMAIN: u16 = 3;

/// One row: query, expected rcode, expected answer records (order-free).
struct Row {
    name: &'static str,
    qtype: u16,
    rcode: u16,
    answer: &'static [&'static str],
}

const fn row(name: &'static str, qtype: u16, rcode: u16, answer: &'static [&'static str]) -> Row {
    Row {
        name,
        qtype,
        rcode,
        answer,
    }
}

const TABLE: &[Row] = &[
    // §1.5 schema version.
    row("dns-version.cluster.local", rtype::TXT, NOERROR, &["dns-version.cluster.local. 28800 TXT 1.1.0"]),
    row("dns-version.cluster.local", rtype::A, NOERROR, &[]),
    // §1.1 ClusterIP.
    row("web.default.svc.cluster.local", rtype::A, NOERROR, &["web.default.svc.cluster.local. 5 A 10.96.0.20"]),
    row("web.default.svc.cluster.local", rtype::AAAA, NOERROR, &[]),
    row("web.default.svc.cluster.local", rtype::TXT, NOERROR, &[]),
    row("dual.default.svc.cluster.local", rtype::AAAA, NOERROR, &["dual.default.svc.cluster.local. 5 AAAA fd00:10:96::22"]),
    row("_http._tcp.web.default.svc.cluster.local", rtype::SRV, NOERROR, &["_http._tcp.web.default.svc.cluster.local. 5 SRV 0 100 80 web.default.svc.cluster.local."]),
    row("_dns._udp.web.default.svc.cluster.local", rtype::SRV, NOERROR, &["_dns._udp.web.default.svc.cluster.local. 5 SRV 0 100 53 web.default.svc.cluster.local."]),
    row("_dns._tcp.web.default.svc.cluster.local", rtype::SRV, NXDOMAIN, &[]),
    row("_nope._tcp.web.default.svc.cluster.local", rtype::SRV, NXDOMAIN, &[]),
    row("_http._tcp.web.default.svc.cluster.local", rtype::A, NOERROR, &[]),
    row("_tcp.web.default.svc.cluster.local", rtype::A, NOERROR, &[]),
    row("_sctp.web.default.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    row("web.default.svc.cluster.local", rtype::SRV, NOERROR, &[
        "web.default.svc.cluster.local. 5 SRV 0 50 80 web.default.svc.cluster.local.",
        "web.default.svc.cluster.local. 5 SRV 0 50 53 web.default.svc.cluster.local.",
    ]),
    row("plain.default.svc.cluster.local", rtype::SRV, NOERROR, &["plain.default.svc.cluster.local. 5 SRV 0 100 8080 plain.default.svc.cluster.local."]),
    row("noports.default.svc.cluster.local", rtype::SRV, NOERROR, &[]),
    row("10-244-3-3.web.default.svc.cluster.local", rtype::A, NOERROR, &["10-244-3-3.web.default.svc.cluster.local. 5 A 10.244.3.3"]),
    row("nosvc.default.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    row("web.nons.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    row("a.b.c.web.default.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    // §1.2 headless.
    row("db.default.svc.cluster.local", rtype::A, NOERROR, &[
        "db.default.svc.cluster.local. 5 A 10.244.1.5",
        "db.default.svc.cluster.local. 5 A 10.244.1.6",
        "db.default.svc.cluster.local. 5 A 10.244.1.7",
    ]),
    row("db.default.svc.cluster.local", rtype::AAAA, NOERROR, &[]),
    row("db-0.db.default.svc.cluster.local", rtype::A, NOERROR, &["db-0.db.default.svc.cluster.local. 5 A 10.244.1.5"]),
    row("10-244-1-7.db.default.svc.cluster.local", rtype::A, NOERROR, &["10-244-1-7.db.default.svc.cluster.local. 5 A 10.244.1.7"]),
    row("db-2.db.default.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    row("db-9.db.default.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    row("_pg._tcp.db.default.svc.cluster.local", rtype::SRV, NOERROR, &[
        "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 33 5432 db-0.db.default.svc.cluster.local.",
        "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 33 5432 db-1.db.default.svc.cluster.local.",
        "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 33 5432 10-244-1-7.db.default.svc.cluster.local.",
    ]),
    row("_http._tcp.db.default.svc.cluster.local", rtype::SRV, NXDOMAIN, &[]),
    row("empty.default.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    row("empty.default.svc.cluster.local", rtype::SRV, NXDOMAIN, &[]),
    row("v6only.default.svc.cluster.local", rtype::A, NOERROR, &[]),
    row("v6only.default.svc.cluster.local", rtype::AAAA, NOERROR, &["v6only.default.svc.cluster.local. 5 AAAA fd00:10::7"]),
    row("fd00-10--7.v6only.default.svc.cluster.local", rtype::AAAA, NOERROR, &["fd00-10--7.v6only.default.svc.cluster.local. 5 AAAA fd00:10::7"]),
    row("lazy.default.svc.cluster.local", rtype::A, NOERROR, &["lazy.default.svc.cluster.local. 5 A 10.244.4.4"]),
    // §1.3 ExternalName (no upstream: the CNAME alone; inside the zone: chased).
    row("ext.default.svc.cluster.local", rtype::CNAME, NOERROR, &["ext.default.svc.cluster.local. 5 CNAME example.com."]),
    row("ext.default.svc.cluster.local", rtype::A, NOERROR, &["ext.default.svc.cluster.local. 5 CNAME example.com."]),
    row("ext.default.svc.cluster.local", rtype::TXT, NOERROR, &["ext.default.svc.cluster.local. 5 CNAME example.com."]),
    row("inner.default.svc.cluster.local", rtype::A, NOERROR, &[
        "inner.default.svc.cluster.local. 5 CNAME web.default.svc.cluster.local.",
        "web.default.svc.cluster.local. 5 A 10.96.0.20",
    ]),
    row("x.ext.default.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    row("_a._tcp.ext.default.svc.cluster.local", rtype::SRV, NXDOMAIN, &[]),
    row("ipext.default.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    // §5 reverse.
    row("20.0.96.10.in-addr.arpa", rtype::PTR, NOERROR, &["20.0.96.10.in-addr.arpa. 5 PTR web.default.svc.cluster.local."]),
    row("5.1.244.10.in-addr.arpa", rtype::PTR, NOERROR, &["5.1.244.10.in-addr.arpa. 5 PTR db-0.db.default.svc.cluster.local."]),
    row("2.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa", rtype::PTR, NOERROR, &[
        "2.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 PTR dual.default.svc.cluster.local.",
    ]),
    row("20.0.96.10.in-addr.arpa", rtype::A, NOERROR, &[]),
    // §1.6 apex.
    row("cluster.local", rtype::SOA, NOERROR, &["cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. min 5"]),
    row("cluster.local", rtype::NS, NOERROR, &["cluster.local. 5 NS ns.dns.cluster.local."]),
    row("cluster.local", rtype::A, NOERROR, &[]),
    row("cluster.local", rtype::TXT, NOERROR, &[]),
    row("ns.dns.cluster.local", rtype::A, NOERROR, &["ns.dns.cluster.local. 5 A 10.96.0.10"]),
    row("ns.dns.cluster.local", rtype::AAAA, NOERROR, &[]),
    row("dns.cluster.local", rtype::A, NOERROR, &[]),
    // §1.7 empty non-terminals and names that do not exist.
    row("svc.cluster.local", rtype::A, NOERROR, &[]),
    row("svc.cluster.local", rtype::TXT, NOERROR, &[]),
    row("default.svc.cluster.local", rtype::A, NOERROR, &[]),
    row("nons.svc.cluster.local", rtype::A, NXDOMAIN, &[]),
    row("pod.cluster.local", rtype::A, NOERROR, &[]),
    row("web.cluster.local", rtype::A, NXDOMAIN, &[]),
    row("web.default.svc.cluster.local", rtype::SOA, NOERROR, &[]),
    row("nosvc.default.svc.cluster.local", rtype::SOA, NXDOMAIN, &[]),
    // §1.9 case: owner as sent, matching without case.
    row("WeB.DeFault.SVC.Cluster.Local", rtype::A, NOERROR, &["WeB.DeFault.SVC.Cluster.Local. 5 A 10.96.0.20"]),
];

#[test]
fn conformance_table() {
    let zone = fixture(PodsMode::Disabled);
    for row in TABLE {
        let reply = ask(&zone, row.name, row.qtype);
        let context = format!("{} type {}: {reply:#?}", row.name, row.qtype);
        assert_eq!(reply.id, 0xABCD, "{context}");
        assert_eq!(reply.rcode, row.rcode, "{context}");
        assert!(reply.aa, "{context}");
        assert!(!reply.tc, "{context}");
        let mut got = reply.answer.clone();
        let mut want: Vec<String> = row.answer.iter().map(|s| s.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{context}");
        if row.answer.is_empty() {
            assert_eq!(reply.authority.len(), 1, "negative answers carry the SOA: {context}");
            assert!(reply.authority[0].contains(" SOA "), "{context}");
        } else {
            assert!(reply.authority.is_empty(), "{context}");
        }
    }
}

#[test]
fn srv_answers_carry_target_addresses() {
    let zone = fixture(PodsMode::Disabled);
    let reply = ask(&zone, "_pg._tcp.db.default.svc.cluster.local", rtype::SRV);
    let mut additional = reply.additional.clone();
    additional.sort();
    assert_eq!(
        additional,
        [
            "10-244-1-7.db.default.svc.cluster.local. 5 A 10.244.1.7",
            "db-0.db.default.svc.cluster.local. 5 A 10.244.1.5",
            "db-1.db.default.svc.cluster.local. 5 A 10.244.1.6",
        ]
    );
    let reply = ask(&zone, "_http._tcp.web.default.svc.cluster.local", rtype::SRV);
    assert_eq!(reply.additional, ["web.default.svc.cluster.local. 5 A 10.96.0.20"]);
    let reply = ask(&zone, "cluster.local", rtype::NS);
    assert_eq!(reply.additional, ["ns.dns.cluster.local. 5 A 10.96.0.10"]);
}

#[test]
fn negative_answers_carry_the_soa_in_the_case_sent() {
    let zone = fixture(PodsMode::Disabled);
    let reply = ask(&zone, "nosvc.default.svc.CLUSTER.local", rtype::A);
    assert_eq!(
        reply.authority,
        ["CLUSTER.local. 5 SOA ns.dns.CLUSTER.local. hostmaster.CLUSTER.local. min 5"]
    );
}

#[test]
fn pod_records_by_mode() {
    let cases: &[(PodsMode, &str, u16, u16, &[&str])] = &[
        (
            PodsMode::Disabled,
            "10-244-9-9.default.pod.cluster.local",
            rtype::A,
            NXDOMAIN,
            &[],
        ),
        (PodsMode::Disabled, "default.pod.cluster.local", rtype::A, NXDOMAIN, &[]),
        (
            PodsMode::Insecure,
            "1-2-3-4.default.pod.cluster.local",
            rtype::A,
            NOERROR,
            &["1-2-3-4.default.pod.cluster.local. 5 A 1.2.3.4"],
        ),
        (
            PodsMode::Insecure,
            "1-2-3-4.default.pod.cluster.local",
            rtype::AAAA,
            NOERROR,
            &[],
        ),
        (
            PodsMode::Insecure,
            "fd00-10--7.default.pod.cluster.local",
            rtype::AAAA,
            NOERROR,
            &["fd00-10--7.default.pod.cluster.local. 5 AAAA fd00:10::7"],
        ),
        (
            PodsMode::Insecure,
            "not-an-ip.default.pod.cluster.local",
            rtype::A,
            NXDOMAIN,
            &[],
        ),
        (
            PodsMode::Insecure,
            "1-2-3-4.nons.pod.cluster.local",
            rtype::A,
            NXDOMAIN,
            &[],
        ),
        (PodsMode::Insecure, "default.pod.cluster.local", rtype::A, NOERROR, &[]),
        (
            PodsMode::Insecure,
            "x.1-2-3-4.default.pod.cluster.local",
            rtype::A,
            NXDOMAIN,
            &[],
        ),
        (
            PodsMode::Verified,
            "10-244-9-9.default.pod.cluster.local",
            rtype::A,
            NOERROR,
            &["10-244-9-9.default.pod.cluster.local. 5 A 10.244.9.9"],
        ),
        (
            PodsMode::Verified,
            "10-244-9-9.default.pod.cluster.local",
            rtype::AAAA,
            NOERROR,
            &[],
        ),
        (
            PodsMode::Verified,
            "1-2-3-4.default.pod.cluster.local",
            rtype::A,
            NXDOMAIN,
            &[],
        ),
        (
            PodsMode::Verified,
            "10-244-9-9.kube-system.pod.cluster.local",
            rtype::A,
            NXDOMAIN,
            &[],
        ),
    ];
    for (mode, name, qtype, rcode, answer) in cases {
        let reply = ask(&fixture(*mode), name, *qtype);
        assert_eq!(reply.rcode, *rcode, "{mode:?} {name}: {reply:?}");
        assert_eq!(reply.answer, *answer, "{mode:?} {name}: {reply:?}");
    }
}

#[test]
fn outside_the_zone_is_refused_or_forwarded() {
    let mut zone = fixture(PodsMode::Disabled);
    let reply = ask(&zone, "example.com", rtype::A);
    assert_eq!(reply.rcode, 5);
    assert!(!reply.aa);
    // A reverse name nobody claims is not ours either.
    assert_eq!(ask(&zone, "9.9.9.9.in-addr.arpa", rtype::PTR).rcode, 5);
    zone.forwarding = true;
    let mut out = vec![0u8; 512];
    assert_eq!(
        answer(&zone, &packet("example.com", rtype::A, None), &mut out, Transport::Udp),
        Outcome::Forward
    );
    let chase = answer(
        &zone,
        &packet("ext.default.svc.cluster.local", rtype::A, None),
        &mut out,
        Transport::Udp,
    );
    assert!(
        matches!(chase, Outcome::Chase { ref target, .. } if *target == wire_name("example.com").unwrap()),
        "{chase:?}"
    );
}

#[test]
fn chase_appends_upstream_addresses() {
    let mut zone = fixture(PodsMode::Disabled);
    zone.forwarding = true;
    let query_packet = packet("ext.default.svc.cluster.local", rtype::A, Some(1232));
    let mut out = vec![0u8; 4096];
    let Outcome::Chase { len, .. } = answer(&zone, &query_packet, &mut out, Transport::Udp) else {
        panic!()
    };
    // Upstream: example.com A 93.184.215.14, compressed owner.
    let mut upstream = packet("example.com", rtype::A, None);
    upstream[2] = 0x81;
    upstream[7] = 1;
    upstream.extend([0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 93, 184, 215, 14]);
    let query = wire::parse_query(&query_packet).unwrap();
    let len = complete_chase(&mut out, len, &query, Transport::Udp, &upstream);
    let reply = decode(&out[..len]);
    assert_eq!(
        reply.answer,
        [
            "ext.default.svc.cluster.local. 5 CNAME example.com.",
            "example.com. 60 A 93.184.215.14"
        ]
    );
    assert_eq!(reply.additional, ["OPT size 4096"]);
}

#[test]
fn edns_is_echoed_and_sizes_honoured() {
    let zone = fixture(PodsMode::Disabled);
    let reply = ask_with(
        &zone,
        &packet("web.default.svc.cluster.local", rtype::A, Some(1232)),
        Transport::Udp,
    );
    assert_eq!(reply.additional, ["OPT size 4096"]);
    let reply = ask(&zone, "web.default.svc.cluster.local", rtype::A);
    assert!(reply.additional.is_empty());
    // BADVERS for EDNS version 1.
    let mut bad = packet("web.default.svc.cluster.local", rtype::A, Some(1232));
    let version_at = bad.len() - 5;
    bad[version_at] = 1;
    let reply = ask_with(&zone, &bad, Transport::Udp);
    assert_eq!(reply.rcode, 16);
    assert!(reply.answer.is_empty());
}

/// A headless Service with 100 endpoints: over UDP without EDNS the answer is cut to whole
/// records under 512 octets with TC; with a large EDNS size or over TCP it is complete.
#[test]
fn truncation_over_udp_full_answers_over_tcp() {
    let endpoints: Vec<serde_json::Value> = (0..100)
        .map(|i| json!({"addresses": [format!("10.245.0.{i}")]}))
        .collect();
    let services = vec![headless("default", "big")];
    let slices = vec![endpoint_slice(
        "default",
        "big-a",
        "big",
        "IPv4",
        json!(endpoints),
        json!([{"name": "http", "port": 80}]),
    )];
    let zone = zone(&services, &slices, &[], &[namespace("default")], &ZoneConfig::default());
    let name = "big.default.svc.cluster.local";
    let mut out = vec![0u8; 65535];
    let Outcome::Reply(len) = answer(&zone, &packet(name, rtype::A, None), &mut out, Transport::Udp) else {
        panic!()
    };
    assert!(len <= 512);
    let udp = decode(&out[..len]);
    assert!(udp.tc);
    assert!(!udp.answer.is_empty() && udp.answer.len() < 100);
    let edns = ask_with(&zone, &packet(name, rtype::A, Some(4096)), Transport::Udp);
    assert!(!edns.tc);
    assert_eq!(edns.answer.len(), 100);
    let tcp = ask_with(&zone, &packet(name, rtype::A, None), Transport::Tcp);
    assert!(!tcp.tc);
    assert_eq!(tcp.answer.len(), 100);
    // SRV with uncompressed targets needs TCP for 100 endpoints; there it is complete.
    let srv = ask_with(&zone, &packet(name, rtype::SRV, Some(4096)), Transport::Udp);
    assert!(srv.tc);
    let srv = ask_with(&zone, &packet(name, rtype::SRV, None), Transport::Tcp);
    assert_eq!((srv.answer.len(), srv.additional.len(), srv.tc), (100, 100, false));
}

#[test]
fn malformed_packets_get_formerr_or_nothing() {
    let zone = fixture(PodsMode::Disabled);
    let mut out = vec![0u8; 4096];
    assert_eq!(answer(&zone, &[1, 2, 3], &mut out, Transport::Udp), Outcome::Drop);
    let mut two_questions = packet("web.default.svc.cluster.local", rtype::A, None);
    two_questions[5] = 2;
    let Outcome::Reply(len) = answer(&zone, &two_questions, &mut out, Transport::Udp) else {
        panic!()
    };
    assert_eq!(decode(&out[..len]).rcode, 1);
    let truncated = &packet("web.default.svc.cluster.local", rtype::A, None)[..20];
    let Outcome::Reply(len) = answer(&zone, truncated, &mut out, Transport::Udp) else {
        panic!()
    };
    assert_eq!(decode(&out[..len]).rcode, 1);
    let mut notify = packet("cluster.local", rtype::SOA, None);
    notify[2] = 0x20;
    let Outcome::Reply(len) = answer(&zone, &notify, &mut out, Transport::Udp) else {
        panic!()
    };
    assert_eq!(decode(&out[..len]).rcode, 4);
    let mut chaos = packet("version.bind", rtype::TXT, None);
    let class_at = chaos.len() - 1;
    chaos[class_at] = 3;
    assert_eq!(ask_with(&zone, &chaos, Transport::Udp).rcode, 5);
    assert_eq!(ask(&zone, "cluster.local", rtype::AXFR).rcode, 5);
}

proptest::proptest! {
    /// Random bytes never panic the parser or the answer path, and any reply decodes.
    #[test]
    fn random_packets_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let zone = fixture(PodsMode::Insecure);
        let mut out = vec![0u8; 65535];
        for transport in [Transport::Udp, Transport::Tcp] {
            if let Outcome::Reply(len) = answer(&zone, &bytes, &mut out, transport) {
                proptest::prop_assert!(len >= HEADER_LEN);
            }
        }
    }

    /// Random names in the zone (mutated valid queries) always get a well-formed reply.
    #[test]
    fn random_cluster_names_get_wellformed_replies(labels in proptest::collection::vec("[a-z0-9_-]{1,12}", 0..6), qtype in 0u16..300) {
        let zone = fixture(PodsMode::Insecure);
        let mut name = labels.join(".");
        name.push_str(if name.is_empty() { "cluster.local" } else { ".svc.cluster.local" });
        let mut out = vec![0u8; 65535];
        if let Outcome::Reply(len) = answer(&zone, &packet(&name, qtype, Some(1232)), &mut out, Transport::Udp) {
            decode(&out[..len]);
        }
    }
}
