//! Endpoint tracking at scale: the API server in process, the EndpointSlice controller, and this
//! program playing the node agents (pods bound to Ready nodes, IPs and readiness posted through
//! `pods/{name}/status`). Prints a table; not a timed test.
//!
//! ```sh
//! cargo bench -p svcnet-controllers --bench endpoints                 # 10,000 Services x 10 pods
//! cargo bench -p svcnet-controllers --bench endpoints -- --services 1000 --flips 200
//! ```
//!
//! Phases:
//! 1. load: Nodes, Namespaces, pods (create + status) and Services over HTTP, 32 requests in
//!    flight; then the controller starts and the time until every Service has its ready slice
//!    is taken.
//! 2. flip-to-watch: a watch on all EndpointSlices from the current resourceVersion; one random
//!    pod's Ready condition is flipped at t0 and the clock stops when the watch delivers a slice
//!    holding that pod with the new condition. Events per flip (slice writes) and their size on
//!    the wire are counted, including any that follow within a quiet period.
//! 3. rolling update: one Service over 250 pods replaced like a Deployment with maxSurge 25 % and
//!    maxUnavailable 25 % (new pods created, made ready; old ones deleted gracefully, then
//!    removed by their node), counting slice writes against pod changes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{stream, AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::{json, Value};
use svcnet_controllers::{endpointslice, ControllerConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Requests in flight while loading.
const CONCURRENCY: usize = 32;
const NODES: usize = 10;
/// Services per namespace (the controller scans a namespace's Services per pod change).
const SERVICES_PER_NAMESPACE: usize = 100;
/// Longest wait for any single expected state.
const DEADLINE: Duration = Duration::from_secs(600);
/// Longest wait for one flip to show on the watch.
const FLIP_DEADLINE: Duration = Duration::from_secs(10);
/// How long after a flip's slice arrives further events are still counted as its writes.
const QUIET: Duration = Duration::from_millis(100);
const ROLLOUT_REPLICAS: usize = 250;

struct Options {
    services: usize,
    pods_per_service: usize,
    flips: usize,
}

fn options() -> Options {
    let mut options = Options {
        services: 10_000,
        pods_per_service: 10,
        flips: 200,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = || pair[1].parse().expect("a number");
        match pair[0].as_str() {
            "--services" => options.services = value(),
            "--pods" => options.pods_per_service = value(),
            "--flips" => options.flips = value(),
            _ => {}
        }
    }
    options
}

/// A small deterministic generator (xorshift64*), so runs pick the same pods.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

fn namespace_of(service: usize) -> String {
    format!("ns-{}", service / SERVICES_PER_NAMESPACE)
}

/// Pod `j` of Service `s`: its namespace, name, IP and node.
fn pod_of(s: usize, j: usize, pods_per_service: usize) -> (String, String, String, String) {
    let i = s * pods_per_service + j;
    let ip = format!("10.{}.{}.{}", 64 + i / 65_536, (i / 256) % 256, i % 256);
    (
        namespace_of(s),
        format!("svc-{s}-{j}"),
        ip,
        format!("node-{}", i % NODES),
    )
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Runs `f` over `items` with [`CONCURRENCY`] in flight; panics on the first error.
async fn bulk<T, F, Fut>(items: Vec<T>, f: F)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    stream::iter(items.into_iter().map(f))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .expect("bulk request");
}

async fn create_pod(client: &kube::Client, ns: &str, name: &str, labels: Value, node: &str) -> Result<(), kube::Error> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "x",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .map(|_| ())
}

/// What a node agent posts: Running with an IP, and the Ready condition.
async fn pod_status(client: &kube::Client, ns: &str, name: &str, ip: &str, ready: bool) -> Result<(), kube::Error> {
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
            "lastTransitionTime": now()}]}});
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map(|_| ())
}

/// One watch event as received: when, its size on the wire, and the decoded line.
struct Event {
    at: Instant,
    bytes: usize,
    value: Value,
}

/// Watches every object under `path` from `version`, forwarding each event stamped on arrival.
async fn watch_all(client: &kube::Client, path: &str, version: &str) -> mpsc::UnboundedReceiver<Event> {
    let request = kube::core::Request::new(path)
        .watch(&WatchParams::default().timeout(290), version)
        .unwrap();
    let body = client.request_stream(request).await.expect("watch");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = body.lines();
        while let Some(Ok(line)) = lines.next().await {
            let at = Instant::now();
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if tx
                .send(Event {
                    at,
                    bytes: line.len(),
                    value,
                })
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

async fn slice_version(client: &kube::Client) -> String {
    let list = Api::<EndpointSlice>::all(client.clone())
        .list(&ListParams::default().limit(1))
        .await
        .unwrap();
    list.metadata.resource_version.unwrap_or_default()
}

/// When the pod watch delivered pod `ns/name` with its Ready condition at `ready`: the moment
/// the flip was stored and visible to every watcher, the endpoint controller included.
async fn flip_on_watch(pods: &mut mpsc::UnboundedReceiver<Event>, ns: &str, name: &str, ready: bool) -> Instant {
    let wanted = if ready { "True" } else { "False" };
    loop {
        let event = tokio::time::timeout(FLIP_DEADLINE, pods.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("flip of {ns}/{name} not seen on the pod watch"));
        let meta = &event.value["object"]["metadata"];
        let conditions = event.value["object"]["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let is_ready = conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == wanted);
        if meta["namespace"] == ns && meta["name"] == name && is_ready {
            return event.at;
        }
    }
}

/// The Ready condition of pod `ns/name` in a slice event, if the slice holds it.
fn ready_in(event: &Value, ns: &str, name: &str) -> Option<bool> {
    let object = &event["object"];
    if object["metadata"]["namespace"] != ns {
        return None;
    }
    let endpoints = object["endpoints"].as_array()?;
    let endpoint = endpoints.iter().find(|e| e["targetRef"]["name"] == name)?;
    Some(endpoint["conditions"]["ready"] == true)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Waits until `probe` holds, polling every `every`; panics after [`DEADLINE`].
async fn until<F, Fut>(what: &str, every: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !probe().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(options()));
}

async fn bench(options: Options) {
    let Options {
        services,
        pods_per_service,
        flips,
    } = options;
    let dir = tempfile::tempdir().unwrap();
    let listener = svcnet_apiserver::Listener::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let config = svcnet_apiserver::Config {
        data_dir: dir.path().to_path_buf(),
        listen: address,
        service_network: Default::default(),
    };
    let server = tokio::spawn(async move {
        svcnet_apiserver::serve(config, listener).await.expect("API server");
    });
    let client = svcnet_controllers::client_for(&format!("http://{address}")).unwrap();
    let mut rows: Vec<(String, String)> = Vec::new();
    println!(
        "{services} Services x {pods_per_service} pods, {NODES} nodes, {SERVICES_PER_NAMESPACE} Services per namespace"
    );

    // --- load ---
    let start = Instant::now();
    let nodes: Api<Node> = Api::all(client.clone());
    for n in 0..NODES {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": format!("node-{n}"),
            "labels": {"topology.kubernetes.io/zone": format!("zone-{}", n % 3)}}}))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
            "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}});
        nodes
            .patch_status(&format!("node-{n}"), &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }
    let namespaces = services.div_ceil(SERVICES_PER_NAMESPACE);
    let names: Vec<String> = (0..namespaces)
        .map(|n| format!("ns-{n}"))
        .chain(["rollout".into()])
        .collect();
    bulk(names, |name| {
        let api: Api<Namespace> = Api::all(client.clone());
        async move {
            let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
            api.create(&PostParams::default(), &ns).await.map(|_| ())
        }
    })
    .await;
    let done = AtomicUsize::new(0);
    let total = services * pods_per_service;
    let pods: Vec<(usize, usize)> = (0..services)
        .flat_map(|s| (0..pods_per_service).map(move |j| (s, j)))
        .collect();
    bulk(pods, |(s, j)| {
        let (client, done) = (&client, &done);
        async move {
            let (ns, name, ip, node) = pod_of(s, j, pods_per_service);
            create_pod(client, &ns, &name, json!({"svc": format!("svc-{s}")}), &node).await?;
            pod_status(client, &ns, &name, &ip, true).await?;
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 10_000 == 0 {
                eprintln!("  {n}/{total} pods ({:.0} s)", start.elapsed().as_secs_f64());
            }
            Ok(())
        }
    })
    .await;
    let pods_loaded = start.elapsed();
    bulk((0..services).collect(), |s| {
        let client = &client;
        async move {
            let service: Service = serde_json::from_value(json!({
                "metadata": {"name": format!("svc-{s}")},
                "spec": {"selector": {"svc": format!("svc-{s}")},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            }))
            .unwrap();
            Api::<Service>::namespaced(client.clone(), &namespace_of(s))
                .create(&PostParams::default(), &service)
                .await
                .map(|_| ())
        }
    })
    .await;
    let loaded = start.elapsed();
    rows.push((
        format!("load {total} pods (create + status)"),
        format!(
            "{:.1} s ({:.0} pods/s)",
            pods_loaded.as_secs_f64(),
            total as f64 / pods_loaded.as_secs_f64()
        ),
    ));
    rows.push((
        format!("load {services} Services"),
        format!("{:.1} s", (loaded - pods_loaded).as_secs_f64()),
    ));

    // The controller starts on the loaded cluster; its first pass writes every slice.
    let (c, config) = (client.clone(), ControllerConfig::default());
    let controller = tokio::spawn(async move {
        endpointslice::run(c, config).await.expect("EndpointSlice controller");
    });
    let synced = Instant::now();
    let slices: Api<EndpointSlice> = Api::all(client.clone());
    until("every Service's slice", Duration::from_secs(1), || async {
        let list = slices.list(&ListParams::default()).await.unwrap();
        let ready: usize = list
            .items
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        eprintln!("  {} slices, {ready}/{total} ready endpoints", list.items.len());
        ready == total
    })
    .await;
    rows.push((
        format!("controller start to {total} ready endpoints"),
        format!("{:.1} s", synced.elapsed().as_secs_f64()),
    ));

    // --- flip-to-watch ---
    let version = slice_version(&client).await;
    let mut events = watch_all(&client, "/apis/discovery.k8s.io/v1/endpointslices", &version).await;
    let mut pod_events = watch_all(&client, "/api/v1/pods", &version).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ready = vec![true; total];
    let mut latencies = Vec::with_capacity(flips);
    let mut patch_times = Vec::with_capacity(flips);
    let mut from_stored = Vec::with_capacity(flips);
    let (mut writes, mut wire_bytes, mut object_bytes) = (0usize, 0usize, 0usize);
    let mut max_writes = 0usize;
    for _ in 0..flips {
        let i = rng.below(total);
        let (ns, name, ip, _) = pod_of(i / pods_per_service, i % pods_per_service, pods_per_service);
        ready[i] = !ready[i];
        let t0 = Instant::now();
        pod_status(&client, &ns, &name, &ip, ready[i]).await.unwrap();
        patch_times.push(t0.elapsed());
        let stored = flip_on_watch(&mut pod_events, &ns, &name, ready[i]).await;
        let mut seen = None;
        let mut count = 0;
        loop {
            let wait = match seen {
                None => FLIP_DEADLINE.saturating_sub(t0.elapsed()),
                Some(_) => QUIET,
            };
            let Ok(Some(event)) = tokio::time::timeout(wait, events.recv()).await else {
                break;
            };
            count += 1;
            wire_bytes += event.bytes;
            object_bytes += serde_json::to_vec(&event.value["object"]).unwrap().len();
            if seen.is_none() && ready_in(&event.value, &ns, &name) == Some(ready[i]) {
                seen = Some(event.at - t0);
            }
        }
        let latency = seen.unwrap_or_else(|| panic!("flip of {ns}/{name} not seen on the watch"));
        latencies.push(latency);
        from_stored.push((t0 + latency).saturating_duration_since(stored));
        writes += count;
        max_writes = max_writes.max(count);
    }
    latencies.sort();
    patch_times.sort();
    from_stored.sort();
    rows.push((
        format!("flip-to-watch, {flips} flips: p50 / p99 / max"),
        format!(
            "{} / {} / {}",
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            ms(*latencies.last().unwrap())
        ),
    ));
    rows.push((
        "  of which the status PATCH round trip: p50 / p99".into(),
        format!(
            "{} / {}",
            ms(percentile(&patch_times, 50.0)),
            ms(percentile(&patch_times, 99.0))
        ),
    ));
    rows.push((
        "flip stored (pod watch event) to slice on the watch: p50 / p99 / max".into(),
        format!(
            "{} / {} / {}",
            ms(percentile(&from_stored, 50.0)),
            ms(percentile(&from_stored, 99.0)),
            ms(*from_stored.last().unwrap())
        ),
    ));
    rows.push((
        "slice writes per flip: mean / max".into(),
        format!("{:.2} / {max_writes}", writes as f64 / flips as f64),
    ));
    rows.push((
        "bytes per flip: watch event / slice object (mean)".into(),
        format!("{} / {} B", wire_bytes / flips.max(1), object_bytes / flips.max(1)),
    ));
    drop(events);

    // --- rolling update ---
    rows.extend(rollout(&client).await);

    println!();
    println!("| measurement | value |");
    println!("| --- | --- |");
    for (what, value) in rows {
        println!("| {what} | {value} |");
    }
    controller.abort();
    server.abort();
    let _ = controller.await;
    let _ = server.await;
    drop(dir);
}

/// Pod names, IPs and nodes of the rollout namespace: `<hash>-<k>`.
fn rollout_pod(hash: &str, k: usize) -> (String, String, String) {
    let base = if hash == "old" { 0 } else { 1 };
    (
        format!("web-{hash}-{k}"),
        format!("10.200.{base}.{}", k + 1),
        format!("node-{}", k % NODES),
    )
}

async fn rollout(client: &kube::Client) -> Vec<(String, String)> {
    const NS: &str = "rollout";
    let n = ROLLOUT_REPLICAS;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    bulk((0..n).collect(), |k| async move {
        let (name, ip, node) = rollout_pod("old", k);
        create_pod(
            client,
            NS,
            &name,
            json!({"app": "web", "pod-template-hash": "old"}),
            &node,
        )
        .await?;
        pod_status(client, NS, &name, &ip, true).await
    })
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let ready_of = |hash: &'static str| {
        let slices = slices.clone();
        async move {
            let list = slices.list(&ListParams::default()).await.unwrap();
            let all: Vec<_> = list.items.iter().flat_map(|s| &s.endpoints).collect();
            let ready = all
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                .filter(|e| {
                    e.target_ref
                        .as_ref()
                        .and_then(|t| t.name.as_deref())
                        .is_some_and(|p| p.contains(hash))
                })
                .count();
            ready == n && all.len() == n
        }
    };
    until("250 old endpoints", Duration::from_millis(50), || ready_of("-old-")).await;
    // Let the writes of the set-up pass before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut events = watch_all(
        client,
        "/apis/discovery.k8s.io/v1/endpointslices",
        &slice_version(client).await,
    )
    .await;
    let start = Instant::now();
    // maxSurge 25 % rounds up, maxUnavailable 25 % rounds down (as the Deployment controller).
    let max_total = n + n.div_ceil(4);
    let min_available = n - n / 4;
    let (mut old, mut new, mut new_ready) = (n, 0usize, 0usize);
    let (mut created, mut readied, mut terminated, mut removed, mut steps) = (0, 0, 0, 0, 0);
    while (old > 0 || new_ready < n) && steps < 100 {
        steps += 1;
        // Scale up the new ReplicaSet as far as the surge allows.
        let up = (max_total - old - new).min(n - new);
        bulk((new..new + up).collect(), |k| async move {
            let (name, _, node) = rollout_pod("new", k);
            create_pod(
                client,
                NS,
                &name,
                json!({"app": "web", "pod-template-hash": "new"}),
                &node,
            )
            .await
        })
        .await;
        created += up;
        // Scale down the old one while enough pods stay available (new ones are not ready yet).
        let down = (old + new_ready).saturating_sub(min_available).min(old);
        let gone: Vec<usize> = (n - old..n - old + down).collect();
        bulk(gone.clone(), |k| {
            let pods = pods.clone();
            async move {
                pods.delete(&rollout_pod("old", k).0, &DeleteParams::default())
                    .await
                    .map(|_| ())
            }
        })
        .await;
        terminated += down;
        old -= down;
        // The new pods start; the old ones' containers stop and their nodes remove them.
        bulk((new..new + up).collect(), |k| async move {
            let (name, ip, _) = rollout_pod("new", k);
            pod_status(client, NS, &name, &ip, true).await
        })
        .await;
        readied += up;
        new += up;
        new_ready += up;
        bulk(gone, |k| {
            let pods = pods.clone();
            async move {
                pods.delete(&rollout_pod("old", k).0, &DeleteParams::default().grace_period(0))
                    .await
                    .map(|_| ())
            }
        })
        .await;
        removed += down;
    }
    until("250 new endpoints", Duration::from_millis(20), || ready_of("-new-")).await;
    let elapsed = start.elapsed();
    // Writes still in flight after the final state was seen count too.
    let mut writes = 0usize;
    let mut by_type = std::collections::BTreeMap::<String, usize>::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
        if event.value["object"]["metadata"]["namespace"] == NS {
            writes += 1;
            *by_type
                .entry(event.value["type"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
    }
    let changes = readied + terminated + removed;
    vec![
        (
            format!("rolling update of {n} replicas (maxSurge/maxUnavailable 25 %)"),
            format!("{steps} steps, {:.2} s", elapsed.as_secs_f64()),
        ),
        (
            "  pod changes: created / made ready / terminating / removed".into(),
            format!("{created} / {readied} / {terminated} / {removed}"),
        ),
        (
            "  slice writes (watch events)".into(),
            format!(
                "{writes} ({}) for {changes} endpoint changes: {:.3} per change",
                by_type
                    .iter()
                    .map(|(t, c)| format!("{c} {t}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                writes as f64 / changes as f64
            ),
        ),
    ]
}
