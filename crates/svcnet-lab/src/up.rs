//! `svcnet up`: record the lab, build it, run the control plane in this process, start one node
//! agent per node namespace, wait for every Node to be Ready, then stay in the foreground until
//! Ctrl-C or SIGTERM, and tear it all down.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use svcnet_node::netns;
use tokio::sync::watch;

use crate::plan::{self, Lab, Options, API_PORT, ROUTER_IP};
use crate::state::{AgentPid, LabState};
use crate::{build, teardown, vpc_routes, UpArgs};

/// Runs a lab until Ctrl-C or SIGTERM; everything it made is removed before it returns.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    crate::require_root("svcnet up")?;
    // Signals first: a Ctrl-C at any later point ends in the teardown below, not in a half lab.
    let stop = stop_on_signals()?;
    let data_dir = crate::prepare_data_dir(&args.data_dir)?;
    let prefix = match &args.name {
        Some(name) => name.clone(),
        None => crate::lab_prefix(&data_dir),
    };
    let lab = plan::plan(&Options {
        prefix,
        nodes: args.nodes,
        cni: args.cni,
        zones: args.zones.clone(),
    })?;
    clear_previous(&data_dir)?;
    refuse_taken_name(&lab)?;
    let host_listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("listening on {} (is another lab or server using it?)", args.listen))?;
    reset_run_dirs(&data_dir)?;
    let cidrs: Vec<&str> = lab.host_unreachable.clone();
    let mut state = LabState {
        prefix: lab.prefix.clone(),
        data_dir: data_dir.clone(),
        cni: lab.cni,
        namespaces: lab.namespace_names(),
        host_routes: cidrs.iter().map(|c| c.to_string()).collect(),
        route_metric: build::pick_route_metric(&lab.prefix, &cidrs)?,
        up_pid: std::process::id(),
        agents: Vec::new(),
        server: host_url(host_listener.local_addr()?),
    };
    state.save()?;
    let mut running = Running {
        grace_period: args.node_monitor_grace_period,
        ..Default::default()
    };
    let result = run(&args, &lab, &mut state, host_listener, stop, &mut running).await;
    println!("removing lab {} ...", lab.prefix);
    running.stop();
    let report = teardown::teardown(&state, false);
    LabState::remove(&data_dir)?;
    println!(
        "lab {} removed ({} namespaces, {} processes)",
        lab.prefix, report.namespaces, report.processes
    );
    result
}

/// What the lab started, stopped before the namespaces go (a listener socket inside a namespace
/// keeps it alive).
#[derive(Default)]
struct Running {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    agents: Vec<Child>,
    /// --node-monitor-grace-period, which the agents' heartbeats must beat.
    grace_period: u64,
}

impl Running {
    fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        for agent in &mut self.agents {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }
}

/// A channel that turns true on SIGINT, SIGTERM or SIGHUP (the terminal went away).
fn stop_on_signals() -> anyhow::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
        let _ = sender.send(true);
    });
    Ok(receiver)
}

/// A lab still running from this data dir is an error; the remains of a crashed one are removed.
fn clear_previous(data_dir: &Path) -> anyhow::Result<()> {
    let Some(previous) = LabState::load(data_dir)? else {
        return Ok(());
    };
    if previous.up_pid != std::process::id()
        && teardown::is_alive(previous.up_pid)
        && teardown::is_svcnet(previous.up_pid)
    {
        bail!(
            "lab {} is already running from {} (svcnet up, pid {}); stop it with: svcnet down --data-dir {}",
            previous.prefix,
            data_dir.display(),
            previous.up_pid,
            data_dir.display()
        );
    }
    println!(
        "removing the remains of lab {} (its svcnet up is gone)",
        previous.prefix
    );
    teardown::teardown(&previous, false);
    LabState::remove(data_dir)
}

/// Another lab (another data dir) may already use this name: its namespaces must not be touched,
/// so nothing is recorded or made.
fn refuse_taken_name(lab: &Lab) -> anyhow::Result<()> {
    if let Some(taken) = lab.namespaces.iter().find(|ns| netns::exists(&ns.name)) {
        bail!(
            "lab name {} is in use (network namespace {} exists): pick another --name, or remove that lab with svcnet down",
            lab.prefix,
            taken.name
        );
    }
    Ok(())
}

/// A fresh store and fresh node dirs: a lab starts empty, like a new cluster.
fn reset_run_dirs(data_dir: &Path) -> anyhow::Result<()> {
    for dir in ["apiserver", "nodes"] {
        let path = data_dir.join(dir);
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => {}
        }
    }
    Ok(())
}

fn host_url(address: SocketAddr) -> String {
    let ip = match address.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, address.port()))
}

fn lab_url() -> String {
    format!("http://{ROUTER_IP}:{API_PORT}")
}

async fn run(
    args: &UpArgs,
    lab: &Lab,
    state: &mut LabState,
    host_listener: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
    running: &mut Running,
) -> anyhow::Result<()> {
    let started = Instant::now();
    println!(
        "building lab {}: {} nodes, {}, data in {}",
        lab.prefix,
        lab.nodes.len(),
        lab.cni,
        state.data_dir.display()
    );
    build::build(lab)?;
    add_host_routes(state)?;
    println!("  network namespaces and links ready ({:.0?})", started.elapsed());
    let client = start_control_plane(args, lab, state, host_listener, running)?;
    println!("  API server on {} (host) and {} (lab)", state.server, lab_url());
    let kubeconfig = write_kubeconfig(&state.data_dir, &lab.prefix, &state.server)?;
    if !args.no_cluster_dns && !args.no_agents {
        let exe = std::env::current_exe().context("locating the svcnet binary for the DNS pods")?;
        crate::cluster_dns::install(&client, &exe, &lab_url()).await?;
        println!(
            "  cluster DNS: kube-system/kube-dns at {}",
            crate::cluster_dns::CLUSTER_DNS_IP
        );
    }
    if !args.no_agents {
        start_agents(lab, state, running)?;
        state.save()?;
        let timeout = Duration::from_secs(args.ready_timeout);
        let deadline = Instant::now() + timeout;
        tokio::select! {
            result = wait_ready(&client, lab, &state.data_dir, running, started, timeout) => result?,
            _ = stop.wait_for(|s| *s) => bail!("interrupted"),
        }
        let pod_cidrs = pod_cidrs(&client).await;
        tokio::select! {
            result = wait_pod_routes(lab, &pod_cidrs, deadline) => result?,
            _ = stop.wait_for(|s| *s) => bail!("interrupted"),
        }
        println!(
            "  pod network routes in place ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    }
    let pod_cidrs = pod_cidrs(&client).await;
    println!("lab {} ready in {:.1} s", lab.prefix, started.elapsed().as_secs_f64());
    print_summary(lab, state, &kubeconfig, &pod_cidrs);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        restart_exited_agents(lab, state, running)?;
    }
}

/// The host routes at the recorded metric, or at the next free one when another lab took it in
/// the meantime (the record follows, so a teardown removes exactly these).
fn add_host_routes(state: &mut LabState) -> anyhow::Result<()> {
    let mut attempts = 0;
    loop {
        match build::add_host_routes(&state.host_routes, state.route_metric) {
            Ok(()) => return Ok(()),
            Err(error) if attempts >= 10 => {
                // Nothing of ours is on the host: the teardown must not remove another lab's.
                state.host_routes.clear();
                return Err(error);
            }
            Err(_) => {
                attempts += 1;
                let cidrs: Vec<&str> = state.host_routes.iter().map(String::as_str).collect();
                state.route_metric = build::pick_route_metric(&state.prefix, &cidrs)?.max(state.route_metric + 1);
                state.save()?;
            }
        }
    }
}

/// The API server (on the host listener and on 192.168.77.1:6443 inside the router namespace),
/// the controllers, and in terway mode the VPC route table.
fn start_control_plane(
    args: &UpArgs,
    lab: &Lab,
    state: &LabState,
    host_listener: std::net::TcpListener,
    running: &mut Running,
) -> anyhow::Result<kube::Client> {
    let lab_address = SocketAddr::new(ROUTER_IP.into(), API_PORT);
    let lab_listener = netns::tcp_listener_in(&lab.router_namespace(), lab_address)?;
    let listeners = vec![
        svcnet_apiserver::Listener::from_std(host_listener)?,
        svcnet_apiserver::Listener::from_std(lab_listener)?,
    ];
    let config = svcnet_apiserver::Config {
        data_dir: state.data_dir.join("apiserver"),
        listen: lab_address,
        service_network: Default::default(),
    };
    running.tasks.push(tokio::spawn(async move {
        if let Err(error) = svcnet_apiserver::serve_on(config, listeners, lab_address).await {
            tracing::error!(%error, "API server stopped");
        }
    }));
    let client = svcnet_controllers::client_for(&state.server)?;
    let controllers = svcnet_controllers::ControllerConfig {
        node_monitor_grace_period: Duration::from_secs(args.node_monitor_grace_period),
        cluster_cidr: lab.cni.cluster_cidr().to_string(),
        ..Default::default()
    };
    let controller_client = client.clone();
    running.tasks.push(tokio::spawn(async move {
        if let Err(error) = svcnet_controllers::run_all(controller_client, controllers).await {
            tracing::error!(%error, "controllers stopped");
        }
    }));
    if lab.cni == plan::Cni::TerwayEniip {
        running
            .tasks
            .push(tokio::spawn(vpc_routes::run(client.clone(), lab.router_namespace())));
    }
    Ok(client)
}

/// The agent's command line for a node (docs/lab.md).
pub fn agent_args(lab: &Lab, node: &plan::Node, data_dir: &Path, grace_period: u64) -> Vec<String> {
    let mut args = vec![
        "agent".to_string(),
        "--node".into(),
        node.name.clone(),
        "--server".into(),
        lab_url(),
        "--node-ip".into(),
        node.ip.to_string(),
        "--cni".into(),
        lab.cni.to_string(),
        "--data-dir".into(),
        node_dir(data_dir, &node.name).display().to_string(),
        "--netns-prefix".into(),
        lab.prefix.clone(),
    ];
    if let Some(zone) = &node.zone {
        args.extend(["--zone".to_string(), zone.clone()]);
    }
    args.extend(lease_args(grace_period));
    args
}

/// Lease and status heartbeats well inside the node monitor grace period (upstream pairs a 40 s
/// lease with a 40 s grace period, renewed every quarter of it), so a short grace period in a
/// test does not mark live nodes NotReady.
fn lease_args(grace_period: u64) -> [String; 4] {
    let lease = grace_period.clamp(1, 40);
    let status = (grace_period / 4).clamp(1, 10);
    [
        "--lease-duration-seconds".into(),
        lease.to_string(),
        "--node-status-update-frequency".into(),
        status.to_string(),
    ]
}

fn node_dir(data_dir: &Path, node: &str) -> PathBuf {
    data_dir.join("nodes").join(node)
}

/// One `ip netns exec <node ns> svcnet agent ...` per node (see [`spawn_agent`]).
fn start_agents(lab: &Lab, state: &mut LabState, running: &mut Running) -> anyhow::Result<()> {
    for node in &lab.nodes {
        let child = spawn_agent(lab, node, &state.data_dir, running.grace_period)?;
        state.agents.push(AgentPid {
            node: node.name.clone(),
            pid: child.id(),
        });
        running.agents.push(child);
    }
    println!(
        "  agents started on {}",
        lab.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// Starts a node's agent, its output appended to `nodes/<node>/agent.log`. In its own process
/// group, so a Ctrl-C in the terminal reaches `svcnet up` only and the teardown happens in order.
fn spawn_agent(lab: &Lab, node: &plan::Node, data_dir: &Path, grace_period: u64) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("locating the svcnet binary")?;
    let dir = node_dir(data_dir, &node.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))?;
    Command::new("ip")
        .args(["netns", "exec", &node.namespace])
        .arg(&exe)
        .args(agent_args(lab, node, data_dir, grace_period))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting the agent of {}", node.name))
}

/// Restarts agents that exited, as a kubelet's service manager does; the pods they ran keep
/// running under their shims and the new agent adopts them.
fn restart_exited_agents(lab: &Lab, state: &mut LabState, running: &mut Running) -> anyhow::Result<()> {
    let mut changed = false;
    for (i, node) in lab.nodes.iter().enumerate() {
        let grace_period = running.grace_period;
        let Some(agent) = running.agents.get_mut(i) else {
            continue;
        };
        if let Some(status) = agent.try_wait()? {
            println!("  agent of {} exited ({status}); restarting it", node.name);
            *agent = spawn_agent(lab, node, &state.data_dir, grace_period)?;
            if let Some(recorded) = state.agents.get_mut(i) {
                recorded.pid = agent.id();
            }
            changed = true;
        }
    }
    if changed {
        state.save()?;
    }
    Ok(())
}

/// Where a node is on its way to Ready, for progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Progress {
    Absent,
    Registered,
    Ready,
}

fn progress_of(node: &Node) -> Progress {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if ready {
        Progress::Ready
    } else {
        Progress::Registered
    }
}

/// Polls the Nodes until every lab node is Ready, printing each step; fails early when an agent
/// exits, with the end of its log.
async fn wait_ready(
    client: &kube::Client,
    lab: &Lab,
    data_dir: &Path,
    running: &mut Running,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut seen: BTreeMap<String, Progress> = lab.nodes.iter().map(|n| (n.name.clone(), Progress::Absent)).collect();
    let deadline = Instant::now() + timeout;
    loop {
        check_agents(lab, running)?;
        if let Ok(list) = nodes.list(&Default::default()).await {
            for node in list.items {
                let name = node.metadata.name.clone().unwrap_or_default();
                let Some(before) = seen.get_mut(&name) else { continue };
                let now = progress_of(&node);
                if now != *before {
                    *before = now;
                    let what = if now == Progress::Ready { "Ready" } else { "registered" };
                    println!("  {name} {what} ({:.1} s)", started.elapsed().as_secs_f64());
                }
            }
        }
        if seen.values().all(|p| *p == Progress::Ready) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let waiting: Vec<&str> = seen
                .iter()
                .filter(|(_, p)| **p != Progress::Ready)
                .map(|(n, _)| n.as_str())
                .collect();
            bail!(
                "nodes not Ready after {timeout:?}: {} (see {}/nodes/<node>/agent.log)",
                waiting.join(", "),
                data_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An agent that exited before its node was Ready will not come back: say why.
fn check_agents(lab: &Lab, running: &mut Running) -> anyhow::Result<()> {
    for (node, agent) in lab.nodes.iter().zip(running.agents.iter_mut()) {
        if let Some(status) = agent.try_wait()? {
            bail!("the agent of {} exited ({status}) before its node was Ready", node.name);
        }
    }
    Ok(())
}

/// Where each node's pod CIDR must be routed before pods on different nodes can talk: in every
/// other node (flannel modes, the agents' routes) or in the VPC router (terway, ours).
pub fn expected_pod_routes(lab: &Lab, pod_cidrs: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut expected = Vec::new();
    for node in &lab.nodes {
        let Some(cidr) = pod_cidrs.get(&node.name) else {
            continue;
        };
        if lab.cni == plan::Cni::TerwayEniip {
            expected.push((lab.router_namespace(), cidr.clone()));
            continue;
        }
        for other in lab.nodes.iter().filter(|o| o.name != node.name) {
            expected.push((other.namespace.clone(), cidr.clone()));
        }
    }
    expected
}

/// "Ready" means pods can talk across nodes: waits until the routes between the nodes' pod CIDRs
/// are in place (the agents add theirs a moment after their Node turns Ready).
async fn wait_pod_routes(lab: &Lab, pod_cidrs: &BTreeMap<String, String>, deadline: Instant) -> anyhow::Result<()> {
    let mut missing = expected_pod_routes(lab, pod_cidrs);
    loop {
        let check = missing.clone();
        missing = tokio::task::spawn_blocking(move || {
            check
                .into_iter()
                .filter(|(ns, cidr)| !has_route(ns, cidr))
                .collect::<Vec<_>>()
        })
        .await?;
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let list: Vec<String> = missing.iter().map(|(ns, cidr)| format!("{cidr} in {ns}")).collect();
            bail!("pod network routes missing: {}", list.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_route(namespace: &str, cidr: &str) -> bool {
    Command::new("ip")
        .args(["-n", namespace, "-4", "route", "show", "exact", cidr])
        .output()
        .is_ok_and(|out| out.status.success() && !out.stdout.is_empty())
}

async fn pod_cidrs(client: &kube::Client) -> BTreeMap<String, String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let Ok(list) = nodes.list(&Default::default()).await else {
        return BTreeMap::new();
    };
    list.items
        .into_iter()
        .filter_map(|n| Some((n.metadata.name?, n.spec?.pod_cidr?)))
        .collect()
}

/// A kubeconfig for kubectl on the host; returns its path.
fn write_kubeconfig(data_dir: &Path, prefix: &str, server: &str) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig(prefix, server)).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

pub fn kubeconfig(prefix: &str, server: &str) -> String {
    let name = format!("svcnet-{prefix}");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n\
         contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: default\n\
         current-context: {name}\nusers:\n- name: {name}\n  user: {{}}\npreferences: {{}}\n"
    )
}

fn print_summary(lab: &Lab, state: &LabState, kubeconfig: &Path, pod_cidrs: &BTreeMap<String, String>) {
    println!(
        "  {:<8} {:<16} {:<15} {:<18} ZONE",
        "NODE", "NETNS", "ADDRESS", "POD CIDR"
    );
    for node in &lab.nodes {
        println!(
            "  {:<8} {:<16} {:<15} {:<18} {}",
            node.name,
            node.namespace,
            node.ip,
            pod_cidrs.get(&node.name).map_or("-", String::as_str),
            node.zone.as_deref().unwrap_or("-")
        );
    }
    println!(
        "  {:<8} {:<16} {} / {}",
        "slb",
        lab.slb_namespace(),
        plan::SLB_VPC_IP,
        plan::SLB_PUBLIC_IP
    );
    println!("  {:<8} {:<16} {}", "client", lab.client_namespace(), plan::CLIENT_IP);
    println!("  API server  {} (host), {} (inside the lab)", state.server, lab_url());
    println!("  kubeconfig  {}", kubeconfig.display());
    let dir = state.data_dir.display();
    println!(
        "  try         KUBECONFIG={} kubectl get nodes -o wide",
        kubeconfig.display()
    );
    println!("              svcnet exec --node node1 -- ip route");
    println!("  stop        Ctrl-C here, or svcnet down --data-dir {dir}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Cni;

    #[test]
    fn agent_command_line_follows_docs_lab() {
        let lab = plan::plan(&Options {
            prefix: "ab".into(),
            nodes: 2,
            cni: Cni::FlannelVxlan,
            zones: vec!["z1".into()],
        })
        .unwrap();
        let args = agent_args(&lab, &lab.nodes[1], Path::new("/d"), 4);
        assert_eq!(
            args.join(" "),
            "agent --node node2 --server http://192.168.77.1:6443 --node-ip 192.168.77.12 \
             --cni flannel-vxlan --data-dir /d/nodes/node2 --netns-prefix ab --zone z1 \
             --lease-duration-seconds 4 --node-status-update-frequency 1"
        );
        assert_eq!(
            lease_args(40).join(" "),
            "--lease-duration-seconds 40 --node-status-update-frequency 10"
        );
    }

    #[test]
    fn pod_routes_are_expected_in_the_other_nodes_or_the_router() {
        let options = |cni| Options {
            prefix: "ab".into(),
            nodes: 3,
            cni,
            zones: Vec::new(),
        };
        let cidrs: BTreeMap<String, String> = [("node1", "10.244.1.0/24"), ("node2", "10.244.2.0/24")]
            .into_iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect();
        let flannel = plan::plan(&options(Cni::Flannel)).unwrap();
        let expected = expected_pod_routes(&flannel, &cidrs);
        assert_eq!(expected.len(), 4, "node3 has no pod CIDR yet: {expected:?}");
        assert!(expected.contains(&("ab-node3".into(), "10.244.1.0/24".into())));
        assert!(!expected.contains(&("ab-node1".into(), "10.244.1.0/24".into())));
        let terway = plan::plan(&options(Cni::TerwayEniip)).unwrap();
        let expected = expected_pod_routes(&terway, &cidrs);
        assert_eq!(
            expected,
            [
                ("ab-vpc".into(), "10.244.1.0/24".into()),
                ("ab-vpc".into(), "10.244.2.0/24".into())
            ]
        );
    }

    #[test]
    fn host_url_never_names_the_unspecified_address() {
        assert_eq!(host_url("0.0.0.0:7443".parse().unwrap()), "http://127.0.0.1:7443");
        assert_eq!(host_url("127.0.0.2:6443".parse().unwrap()), "http://127.0.0.2:6443");
    }

    #[test]
    fn kubeconfig_points_at_the_server() {
        let text = kubeconfig("ab", "http://127.0.0.1:7443");
        assert!(text.contains("server: http://127.0.0.1:7443"));
        assert!(text.contains("current-context: svcnet-ab"));
    }
}
