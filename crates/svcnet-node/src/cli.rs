//! `svcnet exec` and `svcnet logs`: a shell into a pod's (or a node's, or the client's)
//! namespaces, and a container's output.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

/// `svcnet exec` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ExecArgs {
    /// The pod to run in (omit with --node or --client).
    #[arg(required_unless_present_any = ["node", "client"])]
    pub pod: Option<String>,
    /// The pod's namespace.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// URL of the API server (default: the one the lab in --data-dir recorded, else
    /// http://127.0.0.1:6443).
    #[arg(long, env = "SVCNET_SERVER")]
    pub server: Option<String>,
    /// Run in this node's namespace instead.
    #[arg(long, conflicts_with_all = ["pod", "client"])]
    pub node: Option<String>,
    /// Run in the internet client's namespace instead.
    #[arg(long, conflicts_with_all = ["pod", "node"])]
    pub client: bool,
    /// The lab's data dir (its prefix names the namespaces).
    #[arg(long, env = "SVCNET_DATA_DIR", default_value = "/var/lib/svcnet-lab")]
    pub data_dir: PathBuf,
    /// The lab's prefix, when it was named with --name.
    #[arg(long, env = "SVCNET_LAB_NAME")]
    pub prefix: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `svcnet logs` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct LogsArgs {
    pub pod: String,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The container (default: the pod's first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// URL of the API server (default: the one the lab in --data-dir recorded, else
    /// http://127.0.0.1:6443).
    #[arg(long, env = "SVCNET_SERVER")]
    pub server: Option<String>,
    /// The lab's data dir (node agents keep logs under nodes/<node>/pods/<uid>/).
    #[arg(long, env = "SVCNET_DATA_DIR", default_value = "/var/lib/svcnet-lab")]
    pub data_dir: PathBuf,
}

/// A field of what `svcnet up` recorded about the lab in `<data dir>/lab.json`.
fn lab_record(data_dir: &Path, field: &str) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("lab.json")).ok()?;
    let record: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(record.get(field)?.as_str()?.to_string())
}

/// The API server: as given, else the lab's, else upstream's usual local address.
fn server_url(given: Option<&String>, data_dir: &Path) -> String {
    given
        .cloned()
        .or_else(|| lab_record(data_dir, "server"))
        .unwrap_or_else(|| "http://127.0.0.1:6443".to_string())
}

async fn get_pod(server: &str, namespace: &str, name: &str) -> anyhow::Result<Pod> {
    let client = crate::client_for(server)?;
    let api: Api<Pod> = Api::namespaced(client, namespace);
    api.get(name).await.with_context(|| format!("pod {namespace}/{name}"))
}

/// The pod namespace under /run/netns for `uid` (any lab prefix).
pub fn find_pod_netns(uid: &str) -> anyhow::Result<String> {
    let id = crate::names::pod_netns("", uid);
    let suffix = id.trim_start_matches('-');
    let entries = std::fs::read_dir(crate::netns::NETNS_DIR).context("reading /run/netns")?;
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with(&format!("-{suffix}")))
        .with_context(|| format!("no network namespace for pod UID {uid} (is its sandbox on this machine?)"))
}

/// Runs the command; returns only on failure to start it.
pub async fn exec(args: ExecArgs) -> anyhow::Result<()> {
    let netns = if let Some(node) = &args.node {
        format!("{}-{node}", prefix(&args))
    } else if args.client {
        format!("{}-client", prefix(&args))
    } else {
        let name = args.pod.as_deref().context("a pod name")?;
        let pod = get_pod(&server_url(args.server.as_ref(), &args.data_dir), &args.namespace, name).await?;
        find_pod_netns(pod.metadata.uid.as_deref().context("pod without UID")?)?
    };
    if !crate::netns::exists(&netns) {
        bail!("network namespace {netns} does not exist");
    }
    let err = std::process::Command::new("ip")
        .args(["netns", "exec", &netns])
        .args(&args.command)
        .exec();
    Err(err).context("running ip netns exec")
}

/// The lab's prefix: as given, else the one the lab recorded (it may have been named with
/// --name), else the one its data dir implies.
fn prefix(args: &ExecArgs) -> String {
    args.prefix
        .clone()
        .or_else(|| lab_record(&args.data_dir, "prefix"))
        .unwrap_or_else(|| crate::lab_prefix(&args.data_dir))
}

/// Where a container's log may be: the lab layout first, then an agent data dir itself.
pub fn log_candidates(data_dir: &Path, node: &str, uid: &str, container: &str) -> Vec<PathBuf> {
    let file = format!("{container}.log");
    vec![
        data_dir.join("nodes").join(node).join("pods").join(uid).join(&file),
        data_dir.join("pods").join(uid).join(&file),
    ]
}

/// Prints the container's output.
pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let pod = get_pod(
        &server_url(args.server.as_ref(), &args.data_dir),
        &args.namespace,
        &args.pod,
    )
    .await?;
    let spec = pod.spec.as_ref().context("pod without spec")?;
    let container = match &args.container {
        Some(c) => c.clone(),
        None => spec
            .containers
            .first()
            .map(|c| c.name.clone())
            .context("pod without containers")?,
    };
    let node = spec.node_name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    for path in log_candidates(&args.data_dir, &node, &uid, &container) {
        if let Ok(mut file) = std::fs::File::open(&path) {
            std::io::copy(&mut file, &mut std::io::stdout())?;
            return Ok(());
        }
    }
    bail!(
        "no log for container {container} of pod {}/{} under {}",
        args.namespace,
        args.pod,
        args.data_dir.display()
    )
}
