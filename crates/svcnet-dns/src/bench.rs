//! `svcnet bench dns`: svcnet dns, NSD and unbound serving the same cluster (10,000 Services,
//! 50,000 pods by default) on loopback, each pinned to one core, dnsperf on the other, with the
//! perf-tests query mix (service 70 %, pod-ip 10 %, nx-domain 20 %). Prints QPS, latency
//! p50/p99 and resident memory side by side, and the change → answer latency at that scale.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::zone::Cluster;

/// Namespaces the generated Services are spread over.
const NAMESPACES: usize = 100;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchDnsArgs {
    /// Services in the generated cluster.
    #[arg(long, default_value_t = 10_000)]
    pub services: usize,
    /// Pods (spread evenly behind the Services as their ready endpoints).
    #[arg(long, default_value_t = 50_000)]
    pub pods: usize,
    /// Seconds of dnsperf load per server.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Queries per second of the latency run (p50/p99 at a fixed rate below saturation).
    #[arg(long, default_value_t = 20_000)]
    pub latency_qps: u64,
    /// CPU for the servers and CPU for dnsperf.
    #[arg(long, default_value = "0")]
    pub server_cpu: String,
    #[arg(long, default_value = "1")]
    pub client_cpu: String,
    /// Pod records mode of svcnet dns: insecure (kubeadm's) answers pod names without holding
    /// pods; verified indexes the 50,000 pod IPs.
    #[arg(long, value_enum, default_value = "insecure")]
    pub pod_records: crate::zone::PodsMode,
}

/// Service `i`: `svc-<i>` in `ns-<i % 100>`, ClusterIP 10.96.0.0/12 + i, port `http` 80.
fn service_name(i: usize) -> (String, String) {
    (format!("ns-{}", i % NAMESPACES), format!("svc-{i}"))
}

fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 16 + i as u32)
}

/// Pod `j`: IP 10.244.0.0/16 + j (wraps into 10.245... past 65k).
fn pod_ip(j: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 0)) + 2 + j as u32)
}

/// Feeds a generated cluster into `cluster` object by object, as the watch would (Services,
/// one EndpointSlice per Service with its pods ready, the pods, the namespaces).
pub fn synthetic_cluster(cluster: &mut Cluster, services: usize, pods: usize) {
    use serde_json::json;
    for n in 0..NAMESPACES {
        let namespace = serde_json::from_value(json!({"metadata": {"name": format!("ns-{n}")}}));
        if let Ok(namespace) = namespace {
            cluster.apply_namespace(&namespace, false);
        }
    }
    let per_service = pods.div_ceil(services.max(1));
    for i in 0..services {
        let (ns, name) = service_name(i);
        let service: Result<Service, _> = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": cluster_ip(i).to_string(), "ports": [{"name": "http", "port": 80}]}
        }));
        if let Ok(service) = service {
            cluster.apply_service(&service, false);
        }
        let members: Vec<usize> = (i * per_service..((i + 1) * per_service).min(pods)).collect();
        let endpoints: Vec<_> = members
            .iter()
            .map(|j| json!({"addresses": [pod_ip(*j).to_string()], "conditions": {"ready": true}}))
            .collect();
        let slice: Result<EndpointSlice, _> = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-abcde"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }));
        if let Ok(slice) = slice {
            cluster.apply_slice(&slice, false);
        }
        for j in members {
            let pod: Result<Pod, _> = serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-{j}"), "namespace": ns},
                "status": {"phase": "Running", "podIP": pod_ip(j).to_string()}
            }));
            if let Ok(pod) = pod {
                cluster.apply_pod(&pod, false);
            }
        }
    }
    cluster.changed = false;
}

/// The dnsperf input: the perf-tests mix in a fixed pseudo-random order.
fn query_file(services: usize, pods: usize) -> String {
    let mut out = String::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let per_service = pods.div_ceil(services.max(1)).max(1);
    for _ in 0..100_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let pick = (state % 100) as usize;
        let n = (state >> 8) as usize;
        if pick < 70 {
            let (ns, name) = service_name(n % services);
            let _ = writeln!(out, "{name}.{ns}.svc.cluster.local A");
        } else if pick < 80 {
            let j = n % pods;
            let (ns, _) = service_name(j / per_service);
            let _ = writeln!(
                out,
                "{}.{ns}.pod.cluster.local A",
                pod_ip(j).to_string().replace('.', "-")
            );
        } else {
            let (ns, _) = service_name(n % services);
            let _ = writeln!(out, "nx-{n}.{ns}.svc.cluster.local A");
        }
    }
    out
}

/// The same records as authoritative data: Service A and SRV, endpoint A, pod A, SOA and NS.
fn records(services: usize, pods: usize) -> Vec<String> {
    let per_service = pods.div_ceil(services.max(1)).max(1);
    let mut out = Vec::with_capacity(services * 2 + pods * 2 + 2);
    out.push("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5".into());
    out.push("cluster.local. 5 IN NS ns.dns.cluster.local.".into());
    out.push("ns.dns.cluster.local. 5 IN A 10.96.0.10".into());
    for i in 0..services {
        let (ns, name) = service_name(i);
        out.push(format!("{name}.{ns}.svc.cluster.local. 5 IN A {}", cluster_ip(i)));
        out.push(format!(
            "_http._tcp.{name}.{ns}.svc.cluster.local. 5 IN SRV 0 100 80 {name}.{ns}.svc.cluster.local."
        ));
        for j in i * per_service..((i + 1) * per_service).min(pods) {
            let dashed = pod_ip(j).to_string().replace('.', "-");
            out.push(format!("{dashed}.{name}.{ns}.svc.cluster.local. 5 IN A {}", pod_ip(j)));
            out.push(format!("{dashed}.{ns}.pod.cluster.local. 5 IN A {}", pod_ip(j)));
        }
    }
    out
}

/// A server process under test, killed on drop.
struct Running {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Figures of one server.
struct Figures {
    name: &'static str,
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_kb: u64,
    lost: String,
}

fn free_port() -> anyhow::Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let port = socket.local_addr()?.port();
    // The TCP port must be free too (svcnet dns binds both).
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(|_| port)
        .or_else(|_| free_port())
}

/// Tools the benchmark needs, with the Debian packages that provide them.
const TOOLS: [(&str, &str); 5] = [
    ("nsd", "nsd"),
    ("unbound", "unbound"),
    ("dnsperf", "dnsperf"),
    ("taskset", "util-linux"),
    ("dig", "bind9-dnsutils"),
];

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.exists());
    found
}

pub async fn run(args: BenchDnsArgs) -> anyhow::Result<String> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| find_tool(tool).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        bail!(
            "svcnet bench dns needs these Debian packages: apt-get install {}",
            missing.join(" ")
        );
    }
    let dir = tempfile_dir()?;
    std::fs::write(dir.join("queries.txt"), query_file(args.services, args.pods))?;
    let records = records(args.services, args.pods);
    let mut report = String::new();
    let _ = writeln!(
        report,
        "svcnet bench dns: {} Services, {} pods (svcnet --pods {:?}); {} records as zone data; servers on CPU {}, \
         dnsperf on CPU {}; load average before: {}",
        args.services,
        args.pods,
        args.pod_records,
        records.len(),
        args.server_cpu,
        args.client_cpu,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let mut figures = Vec::new();
    for which in ["svcnet", "nsd", "unbound"] {
        let server = match which {
            "svcnet" => start_svcnet(&args, &dir)?,
            "nsd" => start_nsd(&args, &dir, &records)?,
            _ => start_unbound(&args, &dir, &records)?,
        };
        wait_answering(&server)?;
        figures.push(measure(&args, &dir, &server)?);
    }
    let _ = writeln!(
        report,
        "
{:<10} {:>10} {:>9} {:>9} {:>10}  lost",
        "server", "QPS", "p50 ms", "p99 ms", "PSS MB"
    );
    for f in &figures {
        let _ = writeln!(
            report,
            "{:<10} {:>10.0} {:>9.3} {:>9.3} {:>10.1}  {}",
            f.name,
            f.qps,
            f.p50_ms,
            f.p99_ms,
            f.rss_kb as f64 / 1024.0,
            f.lost
        );
    }
    let (p50, p99) = programming_latency(args.services, args.pods);
    let _ = writeln!(
        report,
        "\nchange -> new snapshot at this size (apply one Service change + publish), 200 changes: p50 {p50:.3} ms, p99 {p99:.3} ms"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("svcnet-bench-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn pinned(cpu: &str, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.arg("-c").arg(cpu).arg(program);
    command.stdout(Stdio::null()).stderr(Stdio::inherit());
    command
}

fn start_svcnet(args: &BenchDnsArgs, _dir: &Path) -> anyhow::Result<Running> {
    let port = free_port()?;
    let exe = std::env::current_exe()?;
    let child = pinned(&args.server_cpu, &exe)
        .args([
            "dns",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--udp-threads",
            "1",
            "--pods",
            "verified",
        ])
        .arg("--synthetic-cluster")
        .arg(format!("{}:{}", args.services, args.pods))
        .env("SVCNET_LOG", "warn")
        .spawn()
        .context("start svcnet dns")?;
    Ok(Running {
        name: "svcnet",
        child,
        port,
    })
}

fn start_nsd(args: &BenchDnsArgs, dir: &Path, records: &[String]) -> anyhow::Result<Running> {
    let port = free_port()?;
    let mut zone = String::from("$ORIGIN cluster.local.\n");
    for record in records {
        zone.push_str(record);
        zone.push('\n');
    }
    std::fs::write(dir.join("cluster.local.zone"), zone)?;
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  \
         zonesdir: \"{dir}\"\n  pidfile: \"{dir}/nsd.pid\"\n  xfrdfile: \"{dir}/xfrd.state\"\n  zonelistfile: \"{dir}/zone.list\"\n  \
         database: \"\"\n  verbosity: 0\n  rrl-ratelimit: 0\n  hide-version: yes\nremote-control:\n  control-enable: no\n\
         zone:\n  name: cluster.local\n  zonefile: cluster.local.zone\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("nsd.conf"), conf)?;
    let nsd = find_tool("nsd").context("nsd")?;
    let child = pinned(&args.server_cpu, &nsd)
        .arg("-d")
        .arg("-c")
        .arg(dir.join("nsd.conf"))
        .spawn()?;
    Ok(Running {
        name: "nsd",
        child,
        port,
    })
}

fn start_unbound(args: &BenchDnsArgs, dir: &Path, records: &[String]) -> anyhow::Result<Running> {
    let port = free_port()?;
    let mut conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  \
         directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  num-threads: 1\n  verbosity: 0\n  use-syslog: no\n  \
         access-control: 127.0.0.0/8 allow\n  do-ip6: no\n  ratelimit: 0\n  ip-ratelimit: 0\n  module-config: \"iterator\"\n  \
         local-zone: \"cluster.local.\" static\n",
        dir = dir.display()
    );
    for record in records {
        let _ = writeln!(conf, "  local-data: \"{record}\"");
    }
    conf.push_str("remote-control:\n  control-enable: no\n");
    std::fs::write(dir.join("unbound.conf"), conf)?;
    let unbound = find_tool("unbound").context("unbound")?;
    let child = pinned(&args.server_cpu, &unbound)
        .arg("-d")
        .arg("-c")
        .arg(dir.join("unbound.conf"))
        .spawn()?;
    Ok(Running {
        name: "unbound",
        child,
        port,
    })
}

/// Waits (up to 120 s: zone loading) until the server answers a Service name.
fn wait_answering(server: &Running) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let out = Command::new("dig")
            .args([
                "+short",
                "+time=1",
                "+tries=1",
                "-p",
                &server.port.to_string(),
                "@127.0.0.1",
            ])
            .arg("svc-1.ns-1.svc.cluster.local")
            .output()?;
        if String::from_utf8_lossy(&out.stdout).trim() == cluster_ip(1).to_string() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{} did not answer on port {}", server.name, server.port)
}

/// The throughput run (unlimited), then the latency run (fixed rate, per-query latencies).
fn measure(args: &BenchDnsArgs, dir: &Path, server: &Running) -> anyhow::Result<Figures> {
    let dnsperf = find_tool("dnsperf").context("dnsperf")?;
    let queries = dir.join("queries.txt");
    let port = server.port.to_string();
    let seconds = args.seconds.to_string();
    let output = pinned(&args.client_cpu, &dnsperf)
        .args([
            "-s",
            "127.0.0.1",
            "-p",
            &port,
            "-l",
            &seconds,
            "-q",
            "500",
            "-c",
            "1",
            "-T",
            "1",
        ])
        .arg("-d")
        .arg(&queries)
        .stdout(Stdio::piped())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let qps = field(&text, "Queries per second:").unwrap_or(0.0);
    let lost = text
        .lines()
        .find(|l| l.contains("Queries lost:"))
        .map_or(String::new(), |l| l.trim().to_string());
    let rss_kb = process_tree_rss(server.child.id());
    let latency = pinned(&args.client_cpu, &dnsperf)
        .args([
            "-s",
            "127.0.0.1",
            "-p",
            &port,
            "-l",
            "5",
            "-v",
            "-Q",
            &args.latency_qps.to_string(),
        ])
        .arg("-d")
        .arg(&queries)
        .stdout(Stdio::piped())
        .output()?;
    let mut samples: Vec<f64> = String::from_utf8_lossy(&latency.stdout)
        .lines()
        .filter(|line| line.starts_with('>'))
        .filter_map(|line| line.split_whitespace().last()?.parse().ok())
        .collect();
    samples.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        samples
            .get(((samples.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
            * 1e3
    };
    Ok(Figures {
        name: server.name,
        qps,
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        rss_kb,
        lost,
    })
}

fn field(text: &str, label: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(label))?;
    line.trim_start()
        .strip_prefix(label)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Proportional set size (PSS) of the server and its descendants: the taskset exec, NSD's
/// forked server and xfrd. PSS splits pages shared between the processes, so a forked copy of
/// a zone is not counted twice (summed RSS would be).
fn process_tree_rss(root: u32) -> u64 {
    let mut total = 0;
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            total += rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            pending.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    total
}

/// Change → new snapshot at full size: one Service's ClusterIP changes, the index is updated
/// and a snapshot published (what the watch loop does per event), 200 times.
fn programming_latency(services: usize, pods: usize) -> (f64, f64) {
    use arc_swap::ArcSwap;
    use std::sync::Arc;
    let mut cluster = Cluster::new(crate::zone::ZoneConfig {
        pods: crate::zone::PodsMode::Verified,
        ..Default::default()
    });
    synthetic_cluster(&mut cluster, services, pods);
    let published = ArcSwap::from_pointee(cluster.zone.clone());
    let mut samples = Vec::with_capacity(200);
    for round in 0..200 {
        let i = round * 37 % services.max(1);
        let (ns, name) = service_name(i);
        let service: Service = match serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": cluster_ip(services + round).to_string(), "ports": [{"name": "http", "port": 80}]}
        })) {
            Ok(service) => service,
            Err(_) => continue,
        };
        let started = Instant::now();
        cluster.apply_service(&service, false);
        published.store(Arc::new(cluster.zone.clone()));
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        samples
            .get(((samples.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.99))
}
