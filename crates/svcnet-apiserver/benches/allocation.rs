//! What Service allocation adds to a create, and what the start-up repair pass costs.
//!
//! - `plan`: the full `ServiceAllocator::plan` of a NodePort Service (a cluster IP, a node port,
//!   the IPAddress object and node-port key it stores) with 10,000 and 60,000 Services already
//!   holding addresses, without the store: the cost allocation adds to each create in the write
//!   path. Criterion gives the mean and median; p50/p99 come from a separate loop timing 10,000
//!   sequential plans one by one.
//! - `startup`: `svcnet_apiserver::app` over a store holding 10,000 Services with their IPAddress
//!   and node-port records, which rebuilds the bitmaps and reconciles the records, and the repair
//!   pass alone.
//!
//! `cargo bench -p svcnet-apiserver --bench allocation`; figures in docs/benchmarks.md.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use svcnet_apiserver::body::FieldValidation;
use svcnet_apiserver::registry::{Registry, WriteOptions};
use svcnet_apiserver::services::{ip_address_key, ip_address_object, node_port_key, ServiceAllocator, ServiceNetwork};
use svcnet_core::resources;
use svcnet_core::service::allocator::{IpRange, PortRange};
use svcnet_store::{Op, Precondition, RedbStore, Store};

/// Services in the store for the start-up benchmark, and how many of them are NodePort.
const STORED_SERVICES: usize = 10_000;
const STORED_NODE_PORTS: usize = 2_000;

/// splitmix64, seeded, so every run fills the ranges alike.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not, and gets a quick pass.
fn full_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Addresses and ports as automatic allocations leave them: the first address is the
/// `kubernetes` Service's, the rest come from `allocate_next`.
fn allocated_values(services: u64, ports: u64, seed: u64) -> (Vec<IpAddr>, Vec<u16>) {
    let mut random = Random(seed);
    let network = ServiceNetwork::default();
    let mut range = IpRange::parse(&network.cidrs[0]).unwrap();
    let first = range.address(0);
    range.allocate(first).unwrap();
    let mut ips = vec![first];
    for _ in 1..services {
        ips.push(range.allocate_next(random.next()).unwrap());
    }
    let mut port_range = PortRange::parse(&network.node_ports).unwrap();
    let ports = (0..ports)
        .map(|_| port_range.allocate_next(random.next()).unwrap())
        .collect();
    (ips, ports)
}

/// An allocator as the API server holds it once `services` Services hold an address and `ports`
/// node ports are taken.
fn allocator(services: u64, ports: u64) -> Arc<ServiceAllocator> {
    let allocator = Arc::new(ServiceAllocator::new(ServiceNetwork::default()).unwrap());
    let (ips, ports) = allocated_values(services, ports, services ^ ports);
    for ip in ips {
        assert!(allocator.mark_ip(ip));
    }
    for port in ports {
        assert!(allocator.mark_port(port));
    }
    allocator
}

/// A NodePort and a ClusterIP Service as the API server stores them, created through the
/// registry on a scratch store.
fn stored_templates(runtime: &Runtime) -> (Value, Value) {
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("store.redb")).unwrap());
        let network = ServiceNetwork::default();
        let _app = svcnet_apiserver::app(store.clone(), "127.0.0.1:6443", network.clone())
            .await
            .unwrap();
        let registry = Registry::new(store.clone(), Arc::new(ServiceAllocator::new(network).unwrap()));
        let services = resources::by_kind("Service").unwrap();
        let options = WriteOptions {
            dry_run: false,
            validation: FieldValidation::Strict,
        };
        let mut stored = Vec::new();
        for (name, kind) in [("web-nodeport", "NodePort"), ("web", "ClusterIP")] {
            let body = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "labels": {"app": "web"}},
                "spec": {
                    "type": kind,
                    "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                },
            });
            registry.create(services, Some("default"), body, options).await.unwrap();
            let kv = store
                .get(&format!("/registry/services/default/{name}"))
                .await
                .unwrap()
                .unwrap();
            stored.push(serde_json::from_slice::<Value>(&kv.value).unwrap());
        }
        let clusterip = stored.pop().unwrap();
        (stored.pop().unwrap(), clusterip)
    })
}

/// A create as it reaches `plan`: defaulted, with no address, families or node port yet.
fn plan_input(stored: &Value) -> Value {
    let mut service = stored.clone();
    let spec = service["spec"].as_object_mut().unwrap();
    for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        spec.remove(field);
    }
    for port in spec["ports"].as_array_mut().unwrap() {
        port.as_object_mut().unwrap().remove("nodePort");
    }
    service
}

/// The fill levels the plan is measured at: (label, Services holding an address, node ports
/// taken of 2,768).
fn plan_cases() -> Vec<(String, u64, u64)> {
    let size = IpRange::parse("10.96.0.0/12").unwrap().bitmap().size();
    vec![
        ("10000 Services, ports 50%".into(), 10_000, 1_384),
        ("60000 Services, ports 50%".into(), 60_000, 1_384),
        ("10000 Services, ports 99.9%".into(), 10_000, 2_765),
        ("60000 Services, ports 99.9%".into(), 60_000, 2_765),
        ("/12 at 99.99%, ports 99.9%".into(), size * 9999 / 10_000, 2_765),
    ]
}

fn plan(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let (nodeport, _) = stored_templates(&runtime);
    let input = plan_input(&nodeport);
    let mut group = c.benchmark_group("plan_nodeport");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (label, services, ports) in plan_cases() {
        let allocator = allocator(services, ports);
        // Each plan's reservation is dropped after the clock stops, which returns its address
        // and port, so every plan sees the same fill level.
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut service = input.clone();
                    let start = Instant::now();
                    let reservation = allocator.plan(&mut service, None, false).unwrap();
                    total += start.elapsed();
                    drop(reservation);
                }
                total
            })
        });
    }
    group.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn micros(d: Duration) -> String {
    format!("{:.2} us", d.as_secs_f64() * 1e6)
}

/// p50/p99 per create: sequential plans, each timed on its own.
fn plan_percentiles() {
    let plans = if full_run() { 10_000 } else { 100 };
    let runtime = Runtime::new().unwrap();
    let (nodeport, _) = stored_templates(&runtime);
    let input = plan_input(&nodeport);
    println!("plan of a NodePort Service, {plans} sequential plans per fill level (each timed alone):");
    for (label, services, ports) in plan_cases() {
        let allocator = allocator(services, ports);
        for _ in 0..plans / 10 {
            let mut service = input.clone();
            drop(allocator.plan(&mut service, None, false).unwrap());
        }
        let mut times = Vec::with_capacity(plans);
        for _ in 0..plans {
            let mut service = input.clone();
            let start = Instant::now();
            let reservation = allocator.plan(&mut service, None, false).unwrap();
            times.push(start.elapsed());
            drop(reservation);
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / plans as u32;
        println!(
            "  {label:<28} p50 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}  mean {:>9}",
            micros(percentile(&times, 0.50)),
            micros(percentile(&times, 0.99)),
            micros(percentile(&times, 0.999)),
            micros(*times.last().unwrap()),
            micros(mean),
        );
    }
    // The bitmaps are sized by the ranges, not by the Services holding values in them.
    let network = ServiceNetwork::default();
    let ip_words = IpRange::parse(&network.cidrs[0]).unwrap().bitmap().size().div_ceil(64) as usize;
    let port_words = PortRange::parse(&network.node_ports)
        .unwrap()
        .bitmap()
        .size()
        .div_ceil(64) as usize;
    let strings: usize = network.cidrs.iter().map(String::len).sum::<usize>()
        + size_of::<String>() * network.cidrs.len()
        + network.node_ports.len();
    let bytes = size_of::<ServiceAllocator>() + size_of::<IpRange>() + (ip_words + port_words) * 8 + strings;
    println!(
        "allocator memory for {} and {}, at 10000 and 60000 Services alike: {bytes} bytes ({:.1} KiB)",
        network.cidrs[0],
        network.node_ports,
        bytes as f64 / 1024.0
    );
}

/// A store holding `STORED_SERVICES` Services with their IPAddress and node-port records, as the
/// API server writes them, after a first start (namespaces, `default/kubernetes`).
fn populated_store(runtime: &Runtime, dir: &tempfile::TempDir) -> Arc<RedbStore> {
    let (nodeport, clusterip) = stored_templates(runtime);
    runtime.block_on(async {
        let store = Arc::new(RedbStore::open(&dir.path().join("store.redb")).unwrap());
        let _app = svcnet_apiserver::app(store.clone(), "127.0.0.1:6443", ServiceNetwork::default())
            .await
            .unwrap();
        let (ips, ports) = allocated_values(STORED_SERVICES as u64 + 1, STORED_NODE_PORTS as u64, 7);
        let mut ops = Vec::new();
        for (index, ip) in ips.iter().skip(1).enumerate() {
            let name = format!("svc-{index:05}");
            let mut service = if index < STORED_NODE_PORTS {
                let mut service = nodeport.clone();
                service["spec"]["ports"][0]["nodePort"] = json!(ports[index]);
                ops.push(Op::Put {
                    key: node_port_key(ports[index]),
                    value: format!("default/{name}").into_bytes(),
                    precondition: Precondition::MustNotExist,
                });
                service
            } else {
                clusterip.clone()
            };
            service["metadata"]["name"] = json!(name);
            service["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
            service["spec"]["clusterIP"] = json!(ip.to_string());
            service["spec"]["clusterIPs"] = json!([ip.to_string()]);
            let parent = json!({"group": "", "resource": "services", "namespace": "default", "name": name});
            ops.push(Op::Put {
                key: ip_address_key(&ip.to_string()),
                value: ip_address_object(ip, &parent),
                precondition: Precondition::MustNotExist,
            });
            ops.push(Op::Put {
                key: format!("/registry/services/default/{name}"),
                value: serde_json::to_vec(&service).unwrap(),
                precondition: Precondition::MustNotExist,
            });
            if ops.len() >= 1000 {
                store.txn(std::mem::take(&mut ops)).await.unwrap();
            }
        }
        if !ops.is_empty() {
            store.txn(ops).await.unwrap();
        }
        store
    })
}

fn startup(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = populated_store(&runtime, &dir);
    let store_dyn: Arc<dyn Store> = store.clone();
    // The records match the Services, so a start writes nothing and repair finds nothing to fix.
    let report = runtime.block_on(async {
        let revision = store.revision();
        let _app = svcnet_apiserver::app(store_dyn.clone(), "127.0.0.1:6443", ServiceNetwork::default())
            .await
            .unwrap();
        assert_eq!(
            store.revision(),
            revision,
            "a start over consistent records writes nothing"
        );
        let registry = Registry::new(
            store_dyn.clone(),
            Arc::new(ServiceAllocator::new(ServiceNetwork::default()).unwrap()),
        );
        svcnet_apiserver::repair::repair(&registry).await.unwrap()
    });
    println!("repair over the stored Services: {report:?}");
    assert_eq!(report.services, STORED_SERVICES + 1);
    assert_eq!(
        (
            report.leaked_ips,
            report.leaked_ports,
            report.missing_records,
            report.duplicates
        ),
        (0, 0, 0, 0)
    );
    let mut group = c.benchmark_group(format!("startup_{STORED_SERVICES}_services"));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("app (bootstrap, repair, cluster objects)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let app = runtime
                    .block_on(svcnet_apiserver::app(
                        store_dyn.clone(),
                        "127.0.0.1:6443",
                        ServiceNetwork::default(),
                    ))
                    .unwrap();
                total += start.elapsed();
                drop(app);
            }
            total
        })
    });
    group.bench_function("repair pass", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let registry = Registry::new(
                    store_dyn.clone(),
                    Arc::new(ServiceAllocator::new(ServiceNetwork::default()).unwrap()),
                );
                let start = Instant::now();
                let report = runtime.block_on(svcnet_apiserver::repair::repair(&registry)).unwrap();
                total += start.elapsed();
                assert_eq!(report.services, STORED_SERVICES + 1);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, plan, startup);
criterion_main!(plan_percentiles, benches);
