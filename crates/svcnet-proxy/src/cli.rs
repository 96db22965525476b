//! Command-line surface: the proxy's flags (flattened into `svcnet agent` and `svcnet proxy
//! run`), `svcnet proxy run` against any API server, and `svcnet proxy rules` to print a node's
//! live table.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::apply::Nft;
use crate::config::{Algorithm, Cidr, ModelConfig};
use crate::run::ProxyConfig;

/// The proxy's settings.
#[derive(clap::Args, Debug, Clone)]
pub struct ProxyFlags {
    /// Default balancing for Services without the `svcnet.io/lb-algorithm` annotation:
    /// round-robin, random, maglev or maglev-source.
    #[arg(long, env = "SVCNET_PROXY_LB_ALGORITHM", default_value = "round-robin")]
    pub proxy_lb_algorithm: Algorithm,
    /// Pod traffic source range (upstream --cluster-cidr); default: this Node's podCIDR
    /// (upstream's detect-local-mode NodeCIDR).
    #[arg(long, env = "SVCNET_PROXY_CLUSTER_CIDR")]
    pub proxy_cluster_cidr: Option<Cidr>,
    /// Milliseconds to wait after a change before syncing, to batch the changes that follow.
    #[arg(long, env = "SVCNET_PROXY_MIN_SYNC_MS", default_value_t = 5)]
    pub proxy_min_sync_ms: u64,
    /// Seconds between full resyncs of the table.
    #[arg(long, env = "SVCNET_PROXY_SYNC_PERIOD", default_value_t = 300)]
    pub proxy_sync_period: u64,
    /// Address of /healthz and /livez (and /metrics); "off" disables.
    #[arg(long, env = "SVCNET_PROXY_HEALTHZ_BIND_ADDRESS", default_value = "0.0.0.0:10256")]
    pub proxy_healthz_bind_address: String,
    /// Address of /metrics; "off" disables.
    #[arg(long, env = "SVCNET_PROXY_METRICS_BIND_ADDRESS", default_value = "127.0.0.1:10249")]
    pub proxy_metrics_bind_address: String,
}

fn bind(text: &str, flag: &str) -> anyhow::Result<Option<SocketAddr>> {
    if text == "off" || text.is_empty() {
        return Ok(None);
    }
    Ok(Some(text.parse().with_context(|| format!("{flag}: {text}"))?))
}

impl ProxyFlags {
    /// The run configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<ProxyConfig> {
        Ok(ProxyConfig {
            model: ModelConfig {
                cluster_cidr: self.proxy_cluster_cidr,
                default_algorithm: self.proxy_lb_algorithm,
            },
            min_sync_interval: Duration::from_millis(self.proxy_min_sync_ms),
            full_sync_interval: Duration::from_secs(self.proxy_sync_period.max(1)),
            healthz_bind: bind(&self.proxy_healthz_bind_address, "--proxy-healthz-bind-address")?,
            metrics_bind: bind(&self.proxy_metrics_bind_address, "--proxy-metrics-bind-address")?,
            nft: Nft::default(),
        })
    }
}

/// `svcnet proxy run`: the proxy alone, in the current network namespace.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// URL of the API server.
    #[arg(long, env = "SVCNET_SERVER", default_value = "http://127.0.0.1:6443")]
    pub server: String,
    /// This node's name.
    #[arg(long, env = "SVCNET_NODE")]
    pub node: String,
    /// The node address NodePorts answer on.
    #[arg(long, env = "SVCNET_NODE_IP")]
    pub node_ip: Ipv4Addr,
    /// The proxy's settings.
    #[command(flatten)]
    pub flags: ProxyFlags,
}

/// Runs `svcnet proxy run`.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = kube::Config::new(args.server.parse().context("--server")?);
    let client = kube::Client::try_from(config)?;
    crate::run(client, args.node, args.node_ip, args.flags.config()?).await
}

/// `svcnet proxy rules`: a node's live table.
#[derive(clap::Args, Debug, Clone)]
pub struct RulesArgs {
    /// The lab node whose namespace holds the table (omit for the current namespace).
    #[arg(long)]
    pub node: Option<String>,
    /// The lab's data dir (its prefix names the namespaces).
    #[arg(long, env = "SVCNET_DATA_DIR", default_value = "/var/lib/svcnet-lab")]
    pub data_dir: PathBuf,
    /// The lab's prefix, when it was named with --name.
    #[arg(long, env = "SVCNET_LAB_NAME")]
    pub prefix: Option<String>,
}

/// The lab's prefix: the flag, else the one `lab.json` records (labs made with --name), else
/// the one derived from the data dir.
fn lab_prefix_of(args: &RulesArgs, derived: impl Fn(&Path) -> String) -> String {
    if let Some(prefix) = &args.prefix {
        return prefix.clone();
    }
    let recorded = std::fs::read_to_string(args.data_dir.join("lab.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|state| state["prefix"].as_str().map(str::to_string));
    recorded.unwrap_or_else(|| derived(&args.data_dir))
}

/// Prints the live table in nft syntax; `lab_prefix` names the lab of a data dir.
pub fn rules(args: &RulesArgs, lab_prefix: impl Fn(&Path) -> String) -> anyhow::Result<()> {
    let netns = args
        .node
        .as_ref()
        .map(|node| format!("{}-{node}", lab_prefix_of(args, &lab_prefix)));
    if let Some(netns) = &netns {
        if !Path::new("/run/netns").join(netns).exists() {
            bail!("network namespace {netns} does not exist (is the lab up, and is --data-dir right?)");
        }
    }
    match (Nft { netns: netns.clone() }).list_table()? {
        Some(text) => print!("{text}"),
        None => bail!(
            "no table ip svcnet in {} (is the proxy running there?)",
            netns.as_deref().unwrap_or("this namespace")
        ),
    }
    Ok(())
}
