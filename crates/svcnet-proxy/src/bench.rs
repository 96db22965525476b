//! `svcnet bench proxy`: sync time and first-packet latency of the svcnet table against
//! kube-proxy's iptables layout (KUBE-SVC/KUBE-SEP chains with statistic probabilities, loaded
//! by iptables-restore) as the peer, in the same run. Everything happens in throwaway network
//! namespaces the benchmark makes (a node's shape: a node namespace that holds the tables and
//! routes between a client pod and a backend pod) and removes, also on failure; traffic never
//! leaves them, and every loop is bounded.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use crate::apply::{full_script, Applier, LiveObjects, Nft};
use crate::config::{ModelConfig, NodeInfo};
use crate::desired::desired;
use crate::incremental::{service_key, Delta, IncrementalModel};

/// `svcnet bench proxy` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchProxyArgs {
    /// Services in the sync benchmark.
    #[arg(long, default_value_t = 10_000)]
    pub services: usize,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    pub endpoints_per_service: usize,
    /// One-endpoint increments timed after the full sync.
    #[arg(long, default_value_t = 50)]
    pub increments: usize,
    /// Service counts of the first-packet latency sweep.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000,30000")]
    pub latency_services: Vec<usize>,
    /// Connections timed per point of the sweep (the p99 of 10,000 still moves by 10-20 %
    /// between runs; of 50,000 by a few per cent).
    #[arg(long, default_value_t = 50_000)]
    pub connects: usize,
    /// Leave out the iptables peer.
    #[arg(long)]
    pub skip_iptables: bool,
    /// Largest Service count the iptables peer is loaded with in the latency sweep (its load
    /// time grows faster than linearly: 30,000 Services x 10 endpoints take many minutes).
    #[arg(long, default_value_t = 10_000)]
    pub iptables_max_services: usize,
}

/// The backend every timed connection reaches, the client's address, and the node's address
/// on its pod links (the pods' gateway).
const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 50);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);
const BACKEND_PORT: u16 = 8080;

/// A node's shape made for the benchmark, deleted on drop: a node namespace (the one the tables
/// are loaded into) and two pod namespaces, client and backend, each on a routed veth to the
/// node (the terway layout: the pod's /32 routed to its link, the node its gateway). A timed
/// connection goes from the client pod through the node to the backend pod, whether it is
/// direct or through a Service, as a pod's connection does in the lab.
struct BenchNetns {
    /// The node namespace.
    name: String,
    client: String,
    backend: String,
}

impl BenchNetns {
    fn new(tag: &str) -> anyhow::Result<BenchNetns> {
        let name = format!("svpb-{}-{tag}", std::process::id());
        let netns = BenchNetns {
            client: format!("{name}-c"),
            backend: format!("{name}-b"),
            name,
        };
        // Made one by one, so that drop removes whatever was made before a failure.
        for ns in [&netns.name, &netns.client, &netns.backend] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // /proc/sys/net is the namespace of the thread that opens it.
        BenchNetns::run_in(&netns.name, || std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?
            .context("enabling forwarding in the node namespace")?;
        netns.pod_link(&netns.client, "vclient", CLIENT)?;
        netns.pod_link(&netns.backend, "vbackend", BACKEND)?;
        Ok(netns)
    }

    /// A veth from the node to the pod namespace `pod`, which holds `address`.
    fn pod_link(&self, pod: &str, node_side: &str, address: Ipv4Addr) -> anyhow::Result<()> {
        let node = self.name.as_str();
        ip(&[
            "-n", node, "link", "add", node_side, "type", "veth", "peer", "name", "eth0", "netns", pod,
        ])?;
        ip(&["-n", node, "addr", "add", &format!("{GATEWAY}/32"), "dev", node_side])?;
        ip(&["-n", node, "link", "set", node_side, "up"])?;
        ip(&["-n", node, "route", "add", &format!("{address}/32"), "dev", node_side])?;
        ip(&["-n", pod, "addr", "add", &format!("{address}/32"), "dev", "eth0"])?;
        ip(&["-n", pod, "link", "set", "eth0", "up"])?;
        ip(&["-n", pod, "route", "add", &format!("{GATEWAY}/32"), "dev", "eth0"])?;
        ip(&["-n", pod, "route", "add", "default", "via", &GATEWAY.to_string()])
    }

    /// Runs `f` on a thread inside the namespace `name`.
    fn run_in<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let file = std::fs::File::open(format!("/run/netns/{name}"))?;
        std::thread::spawn(move || -> anyhow::Result<T> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("benchmark thread panicked"))?
    }
}

impl Drop for BenchNetns {
    fn drop(&mut self) {
        for ns in [&self.client, &self.backend, &self.name] {
            let _ = Command::new("ip")
                .args(["netns", "delete", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("running ip")?;
    if !output.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The cluster IP of Service `i` (10.96.0.1 upward).
fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 1)) + i as u32)
}

/// Endpoint `j` of the synthetic backends (10.246.0.0 upward: addresses nobody answers on).
fn endpoint_ip(j: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 246, 0, 0)) + j as u32)
}

/// `count` Services with `per` endpoints each; the last one's only endpoint is the real
/// backend, so it sits last in kube-proxy's KUBE-SERVICES list (its worst case).
pub fn objects(count: usize, per: usize) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut services = Vec::with_capacity(count);
    let mut slices = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("s{i}");
        let ip = cluster_ip(i).to_string();
        let service = json!({"metadata": {"name": name, "namespace": "bench"},
            "spec": {"clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}});
        let addresses: Vec<String> = if i + 1 == count {
            vec![BACKEND.to_string()]
        } else {
            (0..per).map(|k| endpoint_ip(i * per + k).to_string()).collect()
        };
        let endpoints: Vec<serde_json::Value> = addresses
            .iter()
            .map(|a| json!({"addresses": [a], "nodeName": "node1", "conditions": {"ready": true}}))
            .collect();
        let slice = json!({"metadata": {"name": format!("{name}-1"), "namespace": "bench",
                                        "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "port": BACKEND_PORT, "protocol": "TCP"}]});
        if let (Ok(service), Ok(slice)) = (serde_json::from_value(service), serde_json::from_value(slice)) {
            services.push(service);
            slices.push(slice);
        }
    }
    (services, slices)
}

/// The node the synthetic tables are computed for.
pub fn node() -> NodeInfo {
    NodeInfo {
        name: "node1".into(),
        ips: vec![Ipv4Addr::new(192, 168, 77, 11)],
    }
}

/// The model configuration of the synthetic tables (the lab's cluster CIDR).
pub fn model_config() -> ModelConfig {
    ModelConfig {
        cluster_cidr: "10.244.0.0/16".parse().ok(),
        ..ModelConfig::default()
    }
}

/// kube-proxy's iptables-mode nat table for the same Services, as `iptables-restore` input.
fn iptables_restore_input(count: usize, per: usize) -> String {
    let mut chains = String::new();
    let mut rules = String::new();
    let _ = writeln!(
        rules,
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
    );
    let _ = writeln!(
        rules,
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
    );
    let _ = writeln!(
        rules,
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
    );
    let _ = writeln!(rules, "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000");
    let _ = writeln!(rules, "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN");
    let _ = writeln!(rules, "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0");
    let _ = writeln!(rules, "-A KUBE-POSTROUTING -j MASQUERADE --random-fully");
    for i in 0..count {
        let svc = format!("KUBE-SVC-{i:016X}");
        let ip = cluster_ip(i);
        let _ = writeln!(chains, ":{svc} - [0:0]");
        let _ = writeln!(
            rules,
            "-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment \"bench/s{i}:http cluster IP\" -m tcp --dport 80 -j {svc}"
        );
        let _ = writeln!(
            rules,
            "-A {svc} ! -s 10.244.0.0/16 -d {ip}/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ"
        );
        let endpoints: Vec<Ipv4Addr> = if i + 1 == count {
            vec![BACKEND]
        } else {
            (0..per).map(|k| endpoint_ip(i * per + k)).collect()
        };
        let n = endpoints.len();
        for (k, endpoint) in endpoints.iter().enumerate() {
            let sep = format!("KUBE-SEP-{:016X}", i * per + k);
            let _ = writeln!(chains, ":{sep} - [0:0]");
            if k + 1 < n {
                let probability = 1.0 / (n - k) as f64;
                let _ = writeln!(
                    rules,
                    "-A {svc} -m statistic --mode random --probability {probability:.10} -j {sep}"
                );
            } else {
                let _ = writeln!(rules, "-A {svc} -j {sep}");
            }
            let _ = writeln!(rules, "-A {sep} -s {endpoint}/32 -j KUBE-MARK-MASQ");
            let _ = writeln!(
                rules,
                "-A {sep} -p tcp -m tcp -j DNAT --to-destination {endpoint}:{BACKEND_PORT}"
            );
        }
    }
    format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         :KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n{chains}{rules}COMMIT\n"
    )
}

fn iptables_restore(netns: &BenchNetns, input: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &netns.name, "iptables-restore"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting iptables-restore (apt-get install iptables)")?;
    // A missing iptables-restore shows as a closed pipe here; its exit status and stderr say
    // what went wrong, so they are read before the write's error.
    let written = child.stdin.take().context("stdin")?.write_all(input.as_bytes());
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "iptables-restore: {} (the peer needs the iptables package; --skip-iptables leaves it out)",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    written.context("writing the rules to iptables-restore")?;
    Ok(start.elapsed())
}

/// A listener on the backend address that accepts and drops connections until stopped.
struct Backend {
    stop: Arc<AtomicBool>,
}

impl Backend {
    fn start(netns: &BenchNetns) -> anyhow::Result<Backend> {
        let listener = BenchNetns::run_in(&netns.backend, || TcpListener::bind((BACKEND, BACKEND_PORT)))??;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_micros(50)),
                }
            }
        });
        Ok(Backend { stop })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// p50 and p99 of `count` connects to `target` from the client address.
fn connect_latency(netns: &BenchNetns, target: SocketAddr, count: usize) -> anyhow::Result<(Duration, Duration)> {
    let pairs = connect_latencies(netns, vec![target], count)?;
    Ok(pairs[0])
}

/// p50 and p99 of `count` connects to each target, taken in turns (one to each target, then
/// again) so that a change in the machine's load falls on every target alike.
fn connect_latencies(
    netns: &BenchNetns,
    targets: Vec<SocketAddr>,
    count: usize,
) -> anyhow::Result<Vec<(Duration, Duration)>> {
    let samples = BenchNetns::run_in(&netns.client, move || -> anyhow::Result<Vec<Vec<Duration>>> {
        let mut samples = vec![Vec::with_capacity(count); targets.len()];
        let deadline = Instant::now() + Duration::from_secs(120);
        for _ in 0..count {
            if Instant::now() > deadline {
                break;
            }
            for (target, samples) in targets.iter().zip(&mut samples) {
                samples.push(time_connect(*target)?);
            }
        }
        Ok(samples)
    })??;
    Ok(samples
        .iter()
        .map(|samples| (percentile(samples, 50), percentile(samples, 99)))
        .collect())
}

/// One connect from the client address to `target`.
fn time_connect(target: SocketAddr) -> anyhow::Result<Duration> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((CLIENT, 0)).into())?;
    // RST on close: no TIME_WAIT pile-up over thousands of connections.
    socket.set_linger(Some(Duration::ZERO))?;
    let start = Instant::now();
    socket.connect_timeout(&target.into(), Duration::from_secs(2))?;
    Ok(start.elapsed())
}

/// Connect latency through one static DNAT rule (the least any NAT-based proxy can do, so the
/// kernel's floor for the "within 10 % of direct" goal), beside direct connects in turns.
fn dnat_floor(args: &BenchProxyArgs, report: &mut Report) -> anyhow::Result<()> {
    let netns = BenchNetns::new("floor")?;
    let _backend = Backend::start(&netns)?;
    let target = SocketAddr::from((cluster_ip(0), 80));
    let script = format!(
        "table ip floor {{\n\tchain prerouting {{\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\tip daddr {} tcp dport 80 dnat to {BACKEND}:{BACKEND_PORT}\n\t}}\n}}\n",
        target.ip()
    );
    Nft {
        netns: Some(netns.name.clone()),
    }
    .run_script(&script)?;
    let direct = SocketAddr::from((BACKEND, BACKEND_PORT));
    // A second direct series in the same turns measures the machine's own spread: how far two
    // series of the very same connects land apart.
    let measured = connect_latencies(&netns, vec![direct, target, direct], args.connects)?;
    let _ = writeln!(
        report,
        "\nKernel floor, one static `dnat` rule and nothing else (connects in turns): direct {} / {}, through the rule {} / {} (p50 / p99), over direct {} / {}; \
         a second direct series in the same turns {} / {}, over the first {} / {} (the machine's spread)\n",
        micros(measured[0].0),
        micros(measured[0].1),
        micros(measured[1].0),
        micros(measured[1].1),
        over(measured[1].0, measured[0].0),
        over(measured[1].1, measured[0].1),
        micros(measured[2].0),
        micros(measured[2].1),
        over(measured[2].0, measured[0].0),
        over(measured[2].1, measured[0].1)
    );
    Ok(())
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * p / 100).min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Runs the benchmark, printing the Markdown report as its rows complete.
pub fn run(args: BenchProxyArgs) -> anyhow::Result<String> {
    let mut report = Report::default();
    let _ = writeln!(
        report,
        "## svcnet bench proxy\n\n{} Services x {} endpoints (sync), connects per point {}\n",
        args.services, args.endpoints_per_service, args.connects
    );
    sync_section(&args, &mut report)?;
    latency_section(&args, &mut report)?;
    dnat_floor(&args, &mut report)?;
    report.flush();
    Ok(String::new())
}

/// Report text that goes to stdout line by line, so a long run shows its rows as they come.
#[derive(Default)]
struct Report {
    pending: String,
}

impl std::fmt::Write for Report {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.pending.push_str(text);
        if let Some(end) = self.pending.rfind('\n') {
            let complete: String = self.pending.drain(..=end).collect();
            print!("{complete}");
            let _ = std::io::stdout().flush();
        }
        Ok(())
    }
}

impl Report {
    fn flush(&mut self) {
        print!("{}", std::mem::take(&mut self.pending));
        let _ = std::io::stdout().flush();
    }
}

fn sync_section(args: &BenchProxyArgs, report: &mut Report) -> anyhow::Result<()> {
    let netns = BenchNetns::new("sync")?;
    let (services, mut slices) = objects(args.services, args.endpoints_per_service);
    let start = Instant::now();
    let first = desired(&services, &slices, &node(), &model_config());
    let model_time = start.elapsed();
    let nft = Nft {
        netns: Some(netns.name.clone()),
    };
    let mut applier = Applier::new(nft.clone());
    let full = applier.sync(&first)?;
    if !full.netlink {
        bail!("the full sync fell back to nft -f");
    }
    let _ = writeln!(
        report,
        "| step | svcnet (netlink) | svcnet (nft -f, before) | kube-proxy iptables layout |\n|---|---|---|---|"
    );
    let by_nft = {
        let peer = BenchNetns::new("nft-sync")?;
        let script = full_script(&first, &LiveObjects::default());
        let start = Instant::now();
        Nft {
            netns: Some(peer.name.clone()),
        }
        .run_script(&script)?;
        millis(start.elapsed())
    };
    let peer_full = if args.skip_iptables {
        "skipped".to_string()
    } else {
        let peer = BenchNetns::new("ipt-sync")?;
        millis(iptables_restore(
            &peer,
            &iptables_restore_input(args.services, args.endpoints_per_service),
        )?)
    };
    let _ = writeln!(
        report,
        "| full sync into a fresh namespace | {} (+ {} model) | {by_nft} | {} |",
        millis(full.duration),
        millis(model_time),
        peer_full
    );
    // A restart: a new applier converges onto the live table (names dumped, sets and chains
    // flushed and refilled in place).
    let resync = Applier::new(nft).sync(&first)?.duration;
    let _ = writeln!(
        report,
        "| full resync onto the live table (restart) | {} | | |",
        millis(resync)
    );
    increments(args, report, &services, &mut slices, &mut applier)?;
    if let Some(applied) = applier.applied() {
        let _ = writeln!(
            report,
            "\nsvcnet table: {} chains, {} rules, {} elements\n",
            applied.chains.len(),
            applied.rule_count(),
            applied.element_count()
        );
    }
    Ok(())
}

/// One endpoint of one Service replaced each time, the way the proxy applies it: the
/// incremental model's old and new fragment of that Service through `apply_delta`.
fn increments(
    args: &BenchProxyArgs,
    report: &mut Report,
    services: &[Service],
    slices: &mut [EndpointSlice],
    applier: &mut Applier,
) -> anyhow::Result<()> {
    let service_refs: Vec<&Service> = services.iter().collect();
    let slice_refs: Vec<&EndpointSlice> = slices.iter().collect();
    let mut model = IncrementalModel::build(node(), model_config(), &service_refs, &slice_refs);
    let mut apply_times = Vec::new();
    let mut model_times = Vec::new();
    let mut flip_times = Vec::new();
    for n in 0..2 * args.increments.min(args.services.saturating_sub(1)) {
        let index = (n * 7919) % (args.services - 1);
        // Even steps move an endpoint (elements only); odd ones flip its readiness, which
        // changes the pool's size and so rewrites the port's selection rule.
        let flip = n % 2 == 1;
        if let Some(endpoint) = slices[index].endpoints.first_mut() {
            if flip {
                let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false);
                endpoint.conditions.get_or_insert_with(Default::default).ready = Some(!ready);
            } else {
                endpoint.addresses = vec![endpoint_ip(1_000_000 + n).to_string()];
            }
        }
        let start = Instant::now();
        let mut delta = Delta::default();
        let service = &services[index];
        model.update(service_key(service), Some(service), &[&slices[index]], &mut delta);
        model_times.push(start.elapsed());
        let report_sync = applier.apply_delta(&delta.before, &delta.after)?;
        if report_sync.full || !report_sync.changed || !report_sync.netlink {
            bail!("an increment was not sent as one netlink delta: {report_sync:?}");
        }
        if flip {
            flip_times.push(report_sync.duration);
        } else {
            apply_times.push(report_sync.duration);
        }
    }
    let _ = writeln!(
        report,
        "| one-endpoint increment: apply_delta of the Service's fragment (p50 / p99 of {}) | {} / {} (model {} / {}) | about 250 ms (nft dumps the table first) | one iptables-restore of the whole table |",
        apply_times.len(),
        millis(percentile(&apply_times, 50)),
        millis(percentile(&apply_times, 99)),
        millis(percentile(&model_times, 50)),
        millis(percentile(&model_times, 99)),
    );
    let _ = writeln!(
        report,
        "| one-endpoint readiness flip: the pool's size changes, its selection rule is rewritten (p50 / p99 of {}) | {} / {} | | |",
        flip_times.len(),
        millis(percentile(&flip_times, 50)),
        millis(percentile(&flip_times, 99)),
    );
    Ok(())
}

/// How much slower `through` is than `direct` (the connects taken in turns with it, so the
/// ratio holds when the machine's speed drifts between points), e.g. `+14 %`.
fn over(through: Duration, direct: Duration) -> String {
    if direct.is_zero() {
        return "n/a".to_string();
    }
    let ratio = through.as_secs_f64() / direct.as_secs_f64() - 1.0;
    format!("{:+.0} %", ratio * 100.0)
}

fn latency_section(args: &BenchProxyArgs, report: &mut Report) -> anyhow::Result<()> {
    let _ = writeln!(
        report,
        "| Services | direct p50 / p99 | svcnet p50 / p99 | svcnet over direct, p50 / p99 | second direct series over the first (spread) | iptables p50 / p99 | svcnet load | iptables load |\n|---|---|---|---|---|---|---|---|"
    );
    for &count in &args.latency_services {
        let count = count.max(1);
        let netns = BenchNetns::new("lat")?;
        let _backend = Backend::start(&netns)?;
        let (services, slices) = objects(count, args.endpoints_per_service);
        let mut applier = Applier::new(Nft {
            netns: Some(netns.name.clone()),
        });
        let load = applier
            .sync(&desired(&services, &slices, &node(), &model_config()))?
            .duration;
        let target = SocketAddr::from((cluster_ip(count - 1), 80));
        let direct_target = SocketAddr::from((BACKEND, BACKEND_PORT));
        let measured = connect_latencies(&netns, vec![direct_target, target, direct_target], args.connects)?;
        let (direct, through, again) = (measured[0], measured[1], measured[2]);
        drop(netns);
        let (peer, peer_load) = if args.skip_iptables || count > args.iptables_max_services {
            ("not run".to_string(), "not run".to_string())
        } else {
            let peer_netns = BenchNetns::new("ipt-lat")?;
            let _backend = Backend::start(&peer_netns)?;
            let load = iptables_restore(&peer_netns, &iptables_restore_input(count, args.endpoints_per_service))?;
            let (p50, p99) = connect_latency(&peer_netns, target, args.connects)?;
            (format!("{} / {}", micros(p50), micros(p99)), millis(load))
        };
        let _ = writeln!(
            report,
            "| {count} | {} / {} | {} / {} | {} / {} | {} / {} | {peer} | {} | {peer_load} |",
            micros(direct.0),
            micros(direct.1),
            micros(through.0),
            micros(through.1),
            over(through.0, direct.0),
            over(through.1, direct.1),
            over(again.0, direct.0),
            over(again.1, direct.1),
            millis(load)
        );
    }
    Ok(())
}
