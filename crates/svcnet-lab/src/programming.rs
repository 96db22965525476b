//! `svcnet bench programming`: network programming latency in a lab, from a readiness flip to
//! the first connection through the Service's cluster IP that reaches the newly ready backend
//! (upstream's NetworkProgrammingLatency SLI, measured end to end: pod status write, endpoint
//! controllers, the node proxy's sync, a real TCP connection). Not a test: run by hand, figures
//! in docs/benchmarks.md.
//!
//! A Service has two echo backends: `prog-a`, always ready, and `prog-b`, whose exec readiness
//! probe tests a marker file. For each flip the benchmark makes `prog-b` unready and waits for the
//! rules to settle, starts a client in node1's namespace that connects to the cluster IP every
//! millisecond and asks the echo server who it is, creates the marker, and records when its own
//! watch sees `prog-b` Ready (the flip, as stored) and when `prog-b` first answers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, watcher::Event};
use serde_json::json;

use crate::bench::{bench_name, is_ready, percentile, start_lab, BenchLabArgs, BenchLabFlags};
use crate::plan::Cni;

/// Connections stop after this long without reaching the new backend (the flip then counts as
/// a failure): bounds the client's load.
const CLIENT_DEADLINE: Duration = Duration::from_secs(10);
/// Time the proxies get to program every background Service and the measured one.
const WARM_UP_DEADLINE: Duration = Duration::from_secs(120);
/// Pause between the client's connections.
const CLIENT_PAUSE: Duration = Duration::from_millis(1);
/// Connections that take longer than this are logged (at debug level).
const SLOW_CONNECTION: Duration = Duration::from_millis(20);
/// Time the rules get to drop the unready backend before the next flip starts.
const SETTLE: Duration = Duration::from_millis(1500);

#[derive(clap::Args, Debug, Clone)]
pub struct BenchProgrammingArgs {
    /// Nodes in the lab.
    #[arg(long, default_value_t = 2)]
    pub nodes: u32,
    #[arg(long, value_enum, default_value_t = Cni::Flannel)]
    pub cni: Cni,
    /// Readiness flips to measure.
    #[arg(long, default_value_t = 50)]
    pub flips: u32,
    /// Other Services present (selectorless, each with a hand-written EndpointSlice of 10
    /// endpoints that nobody answers on), so the proxy programs the flip into a big table.
    #[arg(long, default_value_t = 0)]
    pub services: u32,
    #[command(flatten)]
    pub lab: BenchLabFlags,
}

/// Runs the benchmark and returns its report.
pub async fn bench_programming(mut args: BenchProgrammingArgs) -> anyhow::Result<String> {
    crate::require_root("svcnet bench programming")?;
    args.lab.pick_port()?;
    let exe = std::env::current_exe()?;
    let data_dir = std::env::temp_dir().join(format!("svcnet-bench-programming-{}", std::process::id()));
    let lab_args = BenchLabArgs {
        nodes: args.nodes.max(1),
        cni: args.cni,
        pods_per_node: 0,
        concurrency: 1,
        rate: 0.0,
        runs: 1,
        lab: BenchLabFlags {
            keep: false,
            ..args.lab.clone()
        },
    };
    let (lab, _) = start_lab(&exe, &lab_args, &data_dir)?;
    let name = bench_name();
    let marker = data_dir.join("prog-b-ready");
    let result = flips(&args, &format!("{name}-node1"), &marker).await;
    drop(lab);
    if args.lab.keep {
        return Ok(format!("{}data dir kept: {}\n", result?, data_dir.display()));
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

async fn flips(args: &BenchProgrammingArgs, client_netns: &str, marker: &Path) -> anyhow::Result<String> {
    let client = svcnet_controllers::client_for(&format!("http://127.0.0.1:{}", args.lab.port))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    create_background(&client, args.services).await?;
    let service = services.create(&PostParams::default(), &prog_service()).await?;
    let cluster_ip: Ipv4Addr = service
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the Service got no cluster IP")?
        .parse()?;
    pods.create(&PostParams::default(), &prog_pod("prog-a", None)).await?;
    pods.create(&PostParams::default(), &prog_pod("prog-b", Some(marker)))
        .await?;
    wait_ready(&pods, "prog-a", true).await?;
    let target = SocketAddr::from((cluster_ip, 80));
    // The proxy has programmed the Service (after every background one) once prog-a answers.
    let warm = spawn_client(client_netns, target, "prog-a", WARM_UP_DEADLINE);
    tokio::task::spawn_blocking(move || warm.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))??
        .context("prog-a never answered through the cluster IP")?;

    let mut from_flip = Vec::new();
    let mut from_marker = Vec::new();
    let mut failures = 0;
    for _ in 0..args.flips {
        let _ = std::fs::remove_file(marker);
        wait_ready(&pods, "prog-b", false).await?;
        tokio::time::sleep(SETTLE).await;
        let client = spawn_client(client_netns, target, "prog-b", CLIENT_DEADLINE);
        let marked = Instant::now();
        std::fs::write(marker, b"")?;
        let flipped = wait_ready(&pods, "prog-b", true).await?;
        let reached = tokio::task::spawn_blocking(move || client.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the client thread panicked"))??;
        match reached {
            Some(at) => {
                let (latency, since_marker) = (
                    at.saturating_duration_since(flipped),
                    at.saturating_duration_since(marked),
                );
                tracing::debug!(from_flip = ?latency, from_marker = ?since_marker, "flip reached the new backend");
                from_flip.push(latency);
                from_marker.push(since_marker);
            }
            None => failures += 1,
        }
    }
    let _ = std::fs::remove_file(marker);
    Ok(report(args, &mut from_flip, &mut from_marker, failures))
}

fn report(
    args: &BenchProgrammingArgs,
    from_flip: &mut [Duration],
    from_marker: &mut [Duration],
    failures: u32,
) -> String {
    from_flip.sort();
    from_marker.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    format!(
        "svcnet bench programming: {} nodes, {}, {} other Services, {} flips ({} never reached the new backend within {} s)\n\
         readiness flip stored -> first connection to the new backend: p50 {} / p99 {} / max {} (goal p99 < 50 ms)\n\
         marker created -> first connection (adds the exec probe's 1 s period): p50 {} / p99 {}\n",
        args.nodes,
        args.cni,
        args.services,
        from_flip.len(),
        failures,
        CLIENT_DEADLINE.as_secs(),
        ms(percentile(from_flip, 50)),
        ms(percentile(from_flip, 99)),
        ms(from_flip.last().copied().unwrap_or_default()),
        ms(percentile(from_marker, 50)),
        ms(percentile(from_marker, 99)),
    )
}

/// Creates `count` Services `bg-<i>` with a slice of 10 endpoints each, 32 requests in flight.
async fn create_background(client: &kube::Client, count: u32) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    futures::stream::iter(0..count)
        .map(|i| {
            let (services, slices) = (services.clone(), slices.clone());
            async move {
                services.create(&PostParams::default(), &background_service(i)).await?;
                slices.create(&PostParams::default(), &background_slice(i)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn background_service(i: u32) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bg-{i}")},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .expect("a valid Service")
}

/// Ten endpoints in 10.250.0.0/16, outside every pod network: never connected to.
fn background_slice(i: u32) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = (0..10u32)
        .map(|e| {
            let n = i * 10 + e;
            json!({"addresses": [format!("10.250.{}.{}", (n >> 8) & 0xff, n & 0xff)], "conditions": {"ready": true}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("bg-{i}-1"), "labels": {"kubernetes.io/service-name": format!("bg-{i}")}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
    }))
    .expect("a valid EndpointSlice")
}

/// Waits until the pod's Ready condition is `ready` and returns when the watch saw it.
async fn wait_ready(pods: &Api<Pod>, name: &str, ready: bool) -> anyhow::Result<Instant> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(pods.clone(), config).boxed();
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) if is_ready(&pod) == ready => {
                    return Ok(Instant::now());
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => bail!("watching {name}: {err}"),
                None => bail!("the watch on {name} ended"),
            },
            _ = &mut deadline => bail!("{name} did not become {} within 60 s", if ready { "ready" } else { "unready" }),
        }
    }
}

/// Connects to `target` from inside `netns` until `wanted` answers (its time) or the deadline
/// passes (None).
fn spawn_client(
    netns: &str,
    target: SocketAddr,
    wanted: &'static str,
    limit: Duration,
) -> std::thread::JoinHandle<anyhow::Result<Option<Instant>>> {
    let netns = netns.to_string();
    std::thread::spawn(move || {
        svcnet_node::netns::run_in(&netns, move || {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                let began = Instant::now();
                let answer = answered_by(target);
                let took = began.elapsed();
                if took > SLOW_CONNECTION {
                    tracing::debug!(?took, ?answer, "slow connection");
                }
                if answer.as_deref() == Some(wanted) {
                    return Some(Instant::now());
                }
                std::thread::sleep(CLIENT_PAUSE);
            }
            None
        })
    })
}

/// The pod name the echo server reports for one HTTP request (None on any failure).
fn answered_by(target: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: prog\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    // The echo server closes first and so holds each connection in TIME_WAIT for a minute; the
    // client reuses its ephemeral ports sooner, and a SYN that meets such a socket is answered
    // with an ACK and retried a second later (the kernel counts it as PAWSTimewait), with or
    // without a Service in the path. Closing with a reset leaves no TIME_WAIT behind, so every
    // lost connection is the proxy's.
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    let body = &response[response.windows(4).position(|w| w == b"\r\n\r\n")? + 4..];
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(value["pod"].as_str()?.to_string())
}

fn prog_service() -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "prog"},
        "spec": {"selector": {"app": "prog"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .expect("a valid Service")
}

/// An echo pod on port 8080; with a marker, ready only while the marker file exists.
fn prog_pod(name: &str, marker: Option<&Path>) -> Pod {
    let mut container = json!({"name": "echo", "image": "echo", "ports": [{"containerPort": 8080}]});
    if let Some(marker) = marker {
        container["readinessProbe"] = json!({
            "exec": {"command": ["test", "-e", PathBuf::from(marker)]},
            "periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1,
        });
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "prog"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
    }))
    .expect("a valid pod")
}
