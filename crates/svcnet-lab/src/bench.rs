//! `svcnet bench lab`: how long `svcnet up` takes until every node is Ready, and how long a pod
//! takes from its create to Ready (p50/p99) with many pods per node. Not a test: run by hand,
//! figures in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::{watcher, watcher::Event};
use kube::Api;
use serde_json::json;

use crate::plan::Cni;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchLabArgs {
    /// Nodes in the lab.
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    #[arg(long, value_enum, default_value_t = Cni::Flannel)]
    pub cni: Cni,
    /// Pods per node for the pod startup latency (0: only time the lab start).
    #[arg(long, default_value_t = 100)]
    pub pods_per_node: u32,
    /// Pod creates in flight at once.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Pod creates per second (0: as fast as --concurrency allows). Upstream's pod startup SLO
    /// is measured at a steady creation rate, not a burst.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// How many times to start the lab (the start time is reported per run).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    #[command(flatten)]
    pub lab: BenchLabFlags,
}

/// How a benchmark runs its lab: flags every lab benchmark shares.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchLabFlags {
    /// Host port of the benchmark lab's API server (0: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Log filter of the lab's processes (SVCNET_LOG syntax), e.g. `error,svcnet_node=debug` to
    /// see where a pod's start time goes, or `error,svcnet_proxy=debug` for each proxy sync, in
    /// `nodes/<node>/agent.log`.
    #[arg(long, default_value = "error")]
    pub log: String,
    /// Keep the lab's data dir (agent logs, pod directories) and print where it is.
    #[arg(long)]
    pub keep: bool,
}

impl BenchLabFlags {
    /// Picks a free port when none was given.
    pub fn pick_port(&mut self) -> anyhow::Result<()> {
        if self.port == 0 {
            self.port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        }
        Ok(())
    }
}

/// A `svcnet up` child, taken down (SIGTERM, then `svcnet down`) when dropped.
pub(crate) struct LabProcess {
    child: Child,
    data_dir: PathBuf,
    exe: PathBuf,
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = Command::new(&self.exe)
            .args(["down", "--data-dir"])
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .status();
    }
}

/// Starts `svcnet up` and waits for its "ready" line; returns the process and the time taken.
pub(crate) fn start_lab(exe: &Path, args: &BenchLabArgs, data_dir: &Path) -> anyhow::Result<(LabProcess, Duration)> {
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["up", "--nodes", &args.nodes.to_string(), "--cni", args.cni.as_str()])
        .args([
            "--listen",
            &format!("127.0.0.1:{}", args.lab.port),
            "--name",
            &bench_name(),
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("SVCNET_LOG", &args.lab.log)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting svcnet up")?;
    let stdout = child.stdout.take().context("svcnet up stdout")?;
    let lab = LabProcess {
        child,
        data_dir: data_dir.to_path_buf(),
        exe: exe.to_path_buf(),
    };
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(" ready in ") => break,
            Some(Ok(_)) => {}
            _ => bail!("svcnet up ended before the lab was ready"),
        }
    }
    let elapsed = started.elapsed();
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((lab, elapsed))
}

/// A lab name of its own, so the benchmark runs beside any other lab.
pub(crate) fn bench_name() -> String {
    format!("snb{:x}", std::process::id())
}

pub async fn bench_lab(mut args: BenchLabArgs) -> anyhow::Result<String> {
    crate::require_root("svcnet bench lab")?;
    args.lab.pick_port()?;
    let exe = std::env::current_exe()?;
    let data_dir = std::env::temp_dir().join(format!("svcnet-bench-lab-{}", std::process::id()));
    let mut report = format!(
        "svcnet bench lab: {} nodes, {}, {} pods per node\n",
        args.nodes, args.cni, args.pods_per_node
    );
    let mut starts = Vec::new();
    for _ in 0..args.runs.max(1) {
        let (lab, took) = start_lab(&exe, &args, &data_dir)?;
        starts.push(took);
        drop(lab);
    }
    let starts_ms: Vec<String> = starts.iter().map(|d| format!("{:.2} s", d.as_secs_f64())).collect();
    report.push_str(&format!(
        "svcnet up until all nodes Ready: {} (goal < 3 s)\n",
        starts_ms.join(", ")
    ));
    if args.pods_per_node > 0 {
        let (lab, _) = start_lab(&exe, &args, &data_dir)?;
        let client = svcnet_controllers::client_for(&format!("http://127.0.0.1:{}", args.lab.port))?;
        let result = pod_startup(&client, &args).await;
        drop(lab);
        report.push_str(&result?);
    }
    if args.lab.keep {
        report.push_str(&format!("data dir kept: {}\n", data_dir.display()));
    } else {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    Ok(report)
}

/// Creates the pods (at most `concurrency` creates in flight), watches them to Ready, and reports
/// create -> Ready latencies, measured from just before each create request.
async fn pod_startup(client: &kube::Client, args: &BenchLabArgs) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let total = (args.nodes * args.pods_per_node) as usize;
    let created: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let ready_at = tokio::spawn(watch_ready(pods.clone(), total));
    let started = Instant::now();
    let rate = args.rate;
    futures::stream::iter(0..total)
        .map(|i| {
            let pods = pods.clone();
            let created = created.clone();
            async move {
                if rate > 0.0 {
                    tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                }
                let name = format!("bench-{i}");
                created.lock().unwrap().insert(name.clone(), Instant::now());
                pods.create(&PostParams::default(), &bench_pod(&name)).await
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await
        .context("creating pods")?;
    let create_time = started.elapsed();
    let seen = tokio::time::timeout(Duration::from_secs(300), ready_at)
        .await
        .context("pods not Ready within 300 s")???;
    let created = created.lock().unwrap().clone();
    let latencies = intervals(&created, &seen.ready);
    // Where the time went: the scheduler's binding (create -> bound, as this watch saw it) and
    // the node agent (bound -> Ready).
    let scheduling = intervals(&created, &seen.bound);
    let on_node = intervals(&seen.bound, &seen.ready);
    let _ = pods
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await;
    Ok(format!(
        "pod create -> Ready, {} pods ({} created in {:.1} s, {}): p50 {}, p99 {}, max {} (goal p99 < 200 ms)\n  \
         of which create -> bound: p50 {}, p99 {}; bound -> Ready: p50 {}, p99 {}\n",
        latencies.len(),
        total,
        create_time.as_secs_f64(),
        if rate > 0.0 {
            format!("paced at {rate}/s")
        } else {
            format!("{} in flight", args.concurrency)
        },
        millis(percentile(&latencies, 50)),
        millis(percentile(&latencies, 99)),
        millis(latencies.last().copied().unwrap_or_default()),
        millis(percentile(&scheduling, 50)),
        millis(percentile(&scheduling, 99)),
        millis(percentile(&on_node, 50)),
        millis(percentile(&on_node, 99)),
    ))
}

/// Whole milliseconds (Debug of a Duration rounds seconds to "1s").
fn millis(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

/// Sorted durations from each pod's instant in `from` to its instant in `to`.
fn intervals(from: &BTreeMap<String, Instant>, to: &BTreeMap<String, Instant>) -> Vec<Duration> {
    let mut durations: Vec<Duration> = to
        .iter()
        .filter_map(|(name, at)| Some(at.saturating_duration_since(*from.get(name)?)))
        .collect();
    durations.sort();
    durations
}

/// When the benchmark's pods were first seen bound to a node and Ready.
#[derive(Debug, Default)]
struct Seen {
    bound: BTreeMap<String, Instant>,
    ready: BTreeMap<String, Instant>,
}

/// When each pod was first seen bound and Ready, until `total` are Ready.
async fn watch_ready(pods: Api<Pod>, total: usize) -> anyhow::Result<Seen> {
    let mut seen = Seen::default();
    let mut events = watcher(pods, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let pod = match event? {
            Event::Apply(pod) | Event::InitApply(pod) => pod,
            _ => continue,
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        if !name.starts_with("bench-") {
            continue;
        }
        let now = Instant::now();
        if pod.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
            seen.bound.entry(name.clone()).or_insert(now);
        }
        if is_ready(&pod) {
            seen.ready.entry(name).or_insert(now);
            if seen.ready.len() >= total {
                break;
            }
        }
    }
    Ok(seen)
}

pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn bench_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "echo", "image": "echo", "ports": [{"containerPort": 8080}]}]},
    }))
    .expect("a valid pod")
}

/// The `p`th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50), Duration::from_millis(50));
        assert_eq!(percentile(&values, 99), Duration::from_millis(99));
        assert_eq!(percentile(&values[..1], 99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn intervals_pair_pods_by_name() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let from: BTreeMap<String, Instant> = [("a".to_string(), at(0)), ("b".to_string(), at(10))].into();
        let to: BTreeMap<String, Instant> = [
            ("b".to_string(), at(15)),
            ("a".to_string(), at(40)),
            ("c".to_string(), at(1)),
        ]
        .into();
        assert_eq!(
            intervals(&from, &to),
            [Duration::from_millis(5), Duration::from_millis(40)]
        );
    }
}
