//! `svcnet agent`: the node agent's main loop. It registers the Node, waits for its podCIDR,
//! sets up the node's pod network, then keeps the Lease and the node status fresh, keeps the
//! routes to other nodes' pods, and hands each pod bound to it to a pod worker.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::watch;

use crate::ipam::{Cidr, Ipam};
use crate::node::{self, NodeFacts};
use crate::pool::{Pool, PoolSize};
use crate::routes::{self, Cni, NodeInfo};
use crate::sandbox::{self, HostMounts};
use crate::sandboxer::Sandboxer;
use crate::worker::{self, Shared};

/// `svcnet agent` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// This node's name.
    #[arg(long, env = "SVCNET_NODE")]
    pub node: String,
    /// URL of the API server.
    #[arg(long, env = "SVCNET_SERVER", default_value = "http://127.0.0.1:6443")]
    pub server: String,
    /// The node's InternalIP (its VPC address).
    #[arg(long, env = "SVCNET_NODE_IP")]
    pub node_ip: Ipv4Addr,
    /// Pod network mode.
    #[arg(long, env = "SVCNET_CNI", value_enum, default_value = "flannel")]
    pub cni: Cni,
    /// The agent's state directory (pods under pods/<uid>/).
    #[arg(long, env = "SVCNET_AGENT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Prefix of the lab's namespace names (pods: <prefix>-p-<uid>).
    #[arg(long, env = "SVCNET_NETNS_PREFIX")]
    pub netns_prefix: String,
    /// topology.kubernetes.io/zone label.
    #[arg(long, env = "SVCNET_ZONE")]
    pub zone: Option<String>,
    /// Nameserver of pods' resolv.conf.
    #[arg(long, env = "SVCNET_CLUSTER_DNS", default_value = "10.96.0.10")]
    pub cluster_dns: String,
    /// Cluster domain of pods' search list.
    #[arg(long, env = "SVCNET_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The pod network of the cluster (flannel modes masquerade pod traffic leaving it).
    #[arg(long, env = "SVCNET_CLUSTER_CIDR", default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// Seconds the node Lease lasts; it is renewed every quarter of that.
    #[arg(long, env = "SVCNET_LEASE_DURATION_SECONDS", default_value_t = 40)]
    pub lease_duration_seconds: u64,
    /// Seconds between node status heartbeats.
    #[arg(long, env = "SVCNET_NODE_STATUS_UPDATE_FREQUENCY", default_value_t = 10)]
    pub node_status_update_frequency: u64,
    /// Run the node proxy (crate svcnet-proxy) in this agent (the default).
    #[arg(long, env = "SVCNET_PROXY", overrides_with = "no_proxy")]
    pub proxy: bool,
    /// Leave Services to another proxy: no `ip svcnet` table on this node.
    #[arg(long, env = "SVCNET_NO_PROXY", overrides_with = "proxy")]
    pub no_proxy: bool,
    /// Blank pod sandboxes kept ready at least (0: none until pods arrive).
    #[arg(long, env = "SVCNET_SANDBOX_POOL_MIN", default_value_t = 32)]
    pub sandbox_pool_min: usize,
    /// Blank pod sandboxes kept ready at most, after a burst of pod starts as large.
    #[arg(long, env = "SVCNET_SANDBOX_POOL_MAX", default_value_t = 128)]
    pub sandbox_pool_max: usize,
    /// The node proxy's settings.
    #[command(flatten)]
    pub proxy_flags: svcnet_proxy::cli::ProxyFlags,
}

/// The pieces of a Node the routes depend on.
pub fn node_info(node: &Node) -> NodeInfo {
    let annotations = node.metadata.annotations.clone().unwrap_or_default();
    let ip = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .and_then(|a| a.address.parse().ok());
    let vtep_mac = annotations
        .get(node::BACKEND_DATA)
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|d| d.get("VtepMAC").and_then(|m| m.as_str()).map(str::to_string));
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        ip,
        pod_cidr: node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| Cidr::parse(c).ok()),
        vtep_mac,
        public_ip: annotations.get(node::PUBLIC_IP).and_then(|ip| ip.parse().ok()),
    }
}

/// Threads making sandboxes: one per core of a small node; more only queue on the kernel's
/// network locks.
const SANDBOX_THREADS: usize = 2;

/// Runs the agent until the process ends.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    // Before anything else: the parent's mount namespace, where /run/netns mounts must go.
    let mounts = HostMounts::of_parent();
    std::fs::create_dir_all(args.data_dir.join("pods")).context("creating the data dir")?;
    let client = crate::client_for(&args.server)?;
    let facts = NodeFacts {
        name: args.node.clone(),
        ip: args.node_ip,
        cni: args.cni,
        zone: args.zone.clone(),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        memory_kib: node::memory_kib(),
    };
    let registered = retry("registering the node", || node::register(&client, &facts)).await;
    // A restarted agent finds its Node Ready: posting NotReady until the network is checked
    // again would make the node lifecycle controller mark every pod on it NotReady (and drop
    // them from their Services) for the moment of a restart, which the kubelet does not do.
    let ready_before = node::ready_since(&registered);
    if ready_before.is_none() {
        let since = Timestamp::now();
        retry("posting the node status", || {
            node::post_status(&client, &facts, false, since)
        })
        .await;
    }
    tokio::spawn(node::renew_lease(
        client.clone(),
        args.node.clone(),
        registered.metadata.uid,
        Duration::from_secs(args.lease_duration_seconds.max(1)),
    ));
    let pod_cidr = wait_for_pod_cidr(&client, &args.node).await?;
    tracing::info!(node = %args.node, %pod_cidr, cni = ?args.cni, "pod CIDR assigned");
    setup_node_network(&mounts, args.cni, args.node_ip, pod_cidr)?;
    let cluster_cidr = Cidr::parse(&args.cluster_cidr).context("--cluster-cidr")?;
    if let Some(script) = routes::masquerade_script(args.cni, cluster_cidr) {
        nft(&script).context("loading the ip-masq table")?;
    }
    let ready_since = ready_before.unwrap_or_else(Timestamp::now);
    retry("posting the node status", || {
        node::post_status(&client, &facts, true, ready_since)
    })
    .await;
    tokio::spawn(heartbeat(
        client.clone(),
        facts.clone(),
        ready_since,
        Duration::from_secs(args.node_status_update_frequency.max(1)),
    ));
    tokio::spawn(keep_routes(client.clone(), args.cni, args.node.clone()));
    // --- node proxy (svcnet-proxy): Services and EndpointSlices -> nftables in this namespace.
    if !args.no_proxy {
        let proxy = svcnet_proxy::run(
            client.clone(),
            args.node.clone(),
            args.node_ip,
            args.proxy_flags.config()?,
        );
        tokio::spawn(async move {
            if let Err(error) = proxy.await {
                tracing::error!(%error, "node proxy stopped");
            }
        });
    }
    // --- end node proxy

    let exe = std::env::current_exe().context("finding the svcnet binary")?;
    let ipam = Ipam::load(pod_cidr, &args.data_dir.join("ipam.json"))?;
    let sandboxer = Sandboxer::start(&mounts, SANDBOX_THREADS)?;
    let pool_size = PoolSize {
        min: args.sandbox_pool_min,
        max: args.sandbox_pool_max,
    };
    let pool = Pool::start(
        sandboxer.clone(),
        args.cni,
        args.netns_prefix.clone(),
        args.data_dir.join("pool"),
        pool_size,
    )
    .await;
    let shared = Arc::new(Shared {
        client,
        node: args.node,
        node_ip: args.node_ip,
        cni: args.cni,
        prefix: args.netns_prefix,
        data_dir: args.data_dir,
        cluster_dns: args.cluster_dns,
        cluster_domain: args.cluster_domain,
        exe,
        mounts,
        pod_cidr,
        ipam: std::sync::Mutex::new(ipam),
        sandboxer,
        pool,
    });
    run_pods(shared).await
}

/// Retries `f` with a short pause until it succeeds (the API server may start after us).
async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match f().await {
            Ok(value) => return value,
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Polls the Node until node IPAM gave it a podCIDR.
async fn wait_for_pod_cidr(client: &kube::Client, name: &str) -> anyhow::Result<Cidr> {
    let api: Api<Node> = Api::all(client.clone());
    loop {
        if let Ok(node) = api.get(name).await {
            if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr) {
                return Cidr::parse(&cidr);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Forwarding on, and the mode's devices: `cni0` (flannel), `flannel.1` (flannel-vxlan).
fn setup_node_network(mounts: &HostMounts, cni: Cni, node_ip: Ipv4Addr, pod_cidr: Cidr) -> anyhow::Result<()> {
    sandbox::sysctl("net.ipv4.ip_forward", "1")?;
    let mut lines = Vec::new();
    if cni != Cni::TerwayEniip && !sandbox::link_exists(sandbox::BRIDGE) {
        lines.extend(sandbox::node_lines(cni, pod_cidr));
    } else if cni != Cni::TerwayEniip {
        lines.extend(sandbox::node_lines(cni, pod_cidr).into_iter().skip(1));
    }
    if cni == Cni::FlannelVxlan {
        let vxlan = sandbox::vxlan_lines(node_ip, pod_cidr);
        let skip = usize::from(sandbox::link_exists(routes::VXLAN_DEV));
        lines.extend(vxlan.into_iter().skip(skip));
    }
    if !lines.is_empty() {
        mounts.ip_batch(&lines)?;
    }
    Ok(())
}

/// Loads an nftables script (`nft -f -`) in the agent's namespace.
fn nft(script: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting nft (is nftables installed?)")?;
    child.stdin.take().context("nft stdin")?.write_all(script.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        anyhow::bail!("nft: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// Posts the node status every `every` (the Ready heartbeat).
async fn heartbeat(client: kube::Client, facts: NodeFacts, since: Timestamp, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Err(err) = node::post_status(&client, &facts, true, since).await {
            tracing::warn!(error = %err, "node status heartbeat failed");
        }
    }
}

/// Watches all nodes and keeps this node's routes (and VXLAN entries) matching them.
async fn keep_routes(client: kube::Client, cni: Cni, me: String) {
    let api: Api<Node> = Api::all(client);
    let mut nodes: HashMap<String, NodeInfo> = HashMap::new();
    let mut applied: Option<routes::Desired> = None;
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut resync = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(Event::Apply(node) | Event::InitApply(node))) => {
                    let info = node_info(&node);
                    nodes.insert(info.name.clone(), info);
                }
                Some(Ok(Event::Delete(node))) => {
                    nodes.remove(&node.metadata.name.unwrap_or_default());
                }
                Some(Ok(Event::Init)) => nodes.clear(),
                Some(Ok(Event::InitDone)) => {}
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "watching nodes");
                    continue;
                }
                None => return,
            },
            _ = resync.tick() => applied = None,
        }
        let list: Vec<NodeInfo> = nodes.values().cloned().collect();
        let want = routes::desired(cni, &me, &list);
        if applied.as_ref() == Some(&want) {
            continue;
        }
        let plan = want.clone();
        match tokio::task::spawn_blocking(move || routes::apply(cni, &plan)).await {
            Ok(Ok(())) => applied = Some(want),
            Ok(Err(err)) => tracing::warn!(error = %format!("{err:#}"), "applying routes failed"),
            Err(err) => tracing::warn!(error = %err, "applying routes failed"),
        }
    }
}

/// Watches the pods bound to this node and keeps one worker per pod.
async fn run_pods(shared: Arc<Shared>) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.node));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    listed.insert(uid);
                }
                dispatch(&shared, &mut workers, pod);
            }
            Ok(Event::Apply(pod)) => dispatch(&shared, &mut workers, pod),
            Ok(Event::Delete(pod)) => {
                if let Some(tx) = pod.metadata.uid.as_ref().and_then(|uid| workers.remove(uid)) {
                    let _ = tx.send(None);
                }
            }
            Ok(Event::InitDone) => forget_unlisted(&shared, &mut workers, &listed),
            Err(err) => tracing::warn!(error = %err, "watching pods"),
        }
    }
    Ok(())
}

/// Sends the pod to its worker, starting one if needed.
fn dispatch(shared: &Arc<Shared>, workers: &mut HashMap<String, watch::Sender<Option<Pod>>>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else { return };
    if let Some(tx) = workers.get(&uid) {
        if tx.send(Some(pod.clone())).is_ok() {
            return;
        }
    }
    let (tx, rx) = watch::channel(Some(pod));
    workers.insert(uid.clone(), tx);
    tracing::debug!(uid, workers = workers.len(), "pod seen; worker started");
    tokio::spawn(worker::run_pod(shared.clone(), uid, rx, tokio::time::Instant::now()));
}

/// After a (re)list: workers whose pods vanished stop, and pod directories of pods that no
/// longer exist (left by an earlier agent) are cleaned up.
fn forget_unlisted(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, watch::Sender<Option<Pod>>>,
    listed: &HashSet<String>,
) {
    workers.retain(|uid, tx| {
        let keep = listed.contains(uid);
        if !keep {
            let _ = tx.send(None);
        }
        keep
    });
    let dirs = std::fs::read_dir(shared.data_dir.join("pods"))
        .into_iter()
        .flatten()
        .flatten();
    for dir in dirs {
        let uid = dir.file_name().to_string_lossy().into_owned();
        if !listed.contains(&uid) && !workers.contains_key(&uid) {
            let shared = shared.clone();
            tokio::spawn(async move { worker::cleanup_orphan(&shared, &uid).await });
        }
    }
}
