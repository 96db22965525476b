//! Fuzzes the query path: any bytes through the parser and the answer writer, over UDP and TCP
//! limits, against a zone with every kind of Service. Must never panic; replies must be
//! well-formed enough to carry a header.
#![no_main]

use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use libfuzzer_sys::fuzz_target;
use svcnet_dns::answer::{answer, Outcome, Transport};
use svcnet_dns::zone::{zone, PodsMode, Zone, ZoneConfig};

fn fixture() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        let services: Vec<Service> = serde_json::from_value(serde_json::json!([
            {"metadata": {"name": "web", "namespace": "default"},
             "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20", "fd00::20"], "ports": [{"name": "http", "port": 80}]}},
            {"metadata": {"name": "db", "namespace": "default"},
             "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
            {"metadata": {"name": "ext", "namespace": "default"},
             "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}},
            {"metadata": {"name": "out", "namespace": "default"},
             "spec": {"type": "ExternalName", "externalName": "example.com"}}
        ]))
        .unwrap();
        let slices: Vec<EndpointSlice> = serde_json::from_value(serde_json::json!([
            {"metadata": {"name": "db-a", "namespace": "default", "labels": {"kubernetes.io/service-name": "db"}},
             "addressType": "IPv4",
             "endpoints": [{"addresses": ["10.244.1.5"], "hostname": "db-0"}, {"addresses": ["10.244.1.6"]}],
             "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}
        ]))
        .unwrap();
        let namespaces: Vec<Namespace> = serde_json::from_value(serde_json::json!([{"metadata": {"name": "default"}}])).unwrap();
        let config = ZoneConfig { pods: PodsMode::Insecure, forwarding: true, ..ZoneConfig::default() };
        zone(&services, &slices, &[], &namespaces, &config)
    })
}

fuzz_target!(|data: &[u8]| {
    let zone = fixture();
    let mut out = vec![0u8; 65535];
    for transport in [Transport::Udp, Transport::Tcp] {
        match answer(zone, data, &mut out, transport) {
            Outcome::Reply(len) => assert!((12..=65535).contains(&len)),
            Outcome::Chase { len, .. } => assert!(len >= 12),
            Outcome::Drop | Outcome::Forward => {}
        }
    }
});
